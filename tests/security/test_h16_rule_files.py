"""H16: hostile rule files — 10⁶ keys, deep nesting, a huge array, YAML with ``!!python/object/apply``.

The rule files are found by name in ``rules_dir``: ``rules.toml``, ``sla.toml``, ``groups.toml`` and
``agents.toml`` (``maildesk.rules.loader.CONFIG_FILES``), parsed with ``tomllib``.  YAML is not a format
maildesk reads: a ``rules.yaml`` beside them is named as ignored in the log, never opened; YAML text inside
``rules.toml`` is a TOML syntax error with file:line.  Each hostile file is tried as a hot reload
(``RuleWatcher.check()``, the daemon's path: refused, the last good config object stays in force and still
classifies) and through ``maildesk check-config`` (exit 1, file and limit named).  The 10⁶-key load runs in a
child process under an address-space cap 96 MB above the interpreter's own, so an unbounded parse (tomllib
takes ~160 MB and ~8 s CPU for it) fails the test instead of passing slowly.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from maildesk.rules.loader import MAX_CONFIG_BYTES, RuleWatcher
from maildesk.rules.tomlsource import MAX_TOML_DEPTH, MAX_TOML_VALUES
from tests.integration.desk_helpers import ROOT, write_config

SHIPPED = ("rules.toml", "sla.toml", "groups.toml", "agents.toml")
YAML_PAYLOAD = """\
rules:
  - id: pwned
    when: !!python/object/apply:os.system ["touch {marker}"]
    then: !!python/object/apply:subprocess.check_output [["touch", "{marker}"]]
"""


def _config_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    for name in SHIPPED:
        shutil.copy(ROOT / "config" / name, folder / name)
    return folder


def _million_keys() -> str:
    return "".join(f"k{i} = {i}\n" for i in range(1_000_000))


def _hostile_files(marker: Path) -> dict[str, str]:
    shipped = (ROOT / "config" / "rules.toml").read_text(encoding="utf-8")
    return {
        "million-keys": shipped + "\n[junk]\n" + _million_keys(),
        "deep-array": shipped + "\nx = " + "[" * 5000 + "]" * 5000 + "\n",
        "deep-inline-table": shipped + "\ny = " + "{a = " * 2000 + "1" + "}" * 2000 + "\n",
        "nested-past-limit": shipped + "\nz = " + "[" * (MAX_TOML_DEPTH + 5) + "]" * (MAX_TOML_DEPTH + 5) + "\n",
        "huge-array": shipped + "\nw = [" + "0," * (MAX_TOML_VALUES + 50_000) + "]\n",
        "yaml-in-toml": YAML_PAYLOAD.format(marker=marker),
    }


EXPECTED = {  # what the refusal must name, besides the file
    "million-keys": [f"limit of {MAX_CONFIG_BYTES} bytes"],
    "deep-array": [f"limit of {MAX_TOML_DEPTH} levels"],
    "deep-inline-table": [f"limit of {MAX_TOML_DEPTH} levels"],
    "nested-past-limit": [f"limit of {MAX_TOML_DEPTH} levels"],
    "huge-array": [f"limit of {MAX_TOML_VALUES}"],
    "yaml-in-toml": ["TOML syntax"],
}


@pytest.mark.parametrize("case", list(EXPECTED))
def test_a_hostile_rule_file_is_refused_at_reload_and_the_last_good_rules_stay(case: str, tmp_path: Path) -> None:
    folder = _config_dir(tmp_path)
    marker = tmp_path / "executed"
    watcher = RuleWatcher(folder)
    good = watcher.current
    (folder / "rules.toml").write_text(_hostile_files(marker)[case], encoding="utf-8")
    problems = watcher.check()
    print(case, problems)
    assert problems, f"{case} was accepted"
    assert all(str(folder / "rules.toml") in p for p in problems), problems
    assert any(all(word in p for word in EXPECTED[case]) for p in problems), problems
    assert watcher.current is good and watcher.problems == problems
    assert not marker.exists()
    assert watcher.check() == []  # the same broken state is not reported twice
    (folder / "rules.toml").write_bytes((ROOT / "config" / "rules.toml").read_bytes())
    assert watcher.check() and watcher.problems == []  # the good file is taken back


def test_a_yaml_rule_file_is_never_loaded_and_named_as_ignored(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    folder = _config_dir(tmp_path)
    marker = tmp_path / "executed"
    watcher = RuleWatcher(folder)
    good = watcher.current
    for name in ("rules.yaml", "rules.yml"):
        (folder / name).write_text(YAML_PAYLOAD.format(marker=marker), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="maildesk.rules.loader"):
        assert watcher.check() == []  # the TOML files did not change
        watcher.check()
    notes = [r.getMessage() for r in caplog.records]
    print(notes)
    for name in ("rules.yaml", "rules.yml"):
        assert sum(str(folder / name) in n and "ignored" in n and "never loaded" in n for n in notes) == 1, notes
    assert watcher.current is good and not marker.exists()


def _check_config(tmp_path: Path, folder: Path) -> subprocess.CompletedProcess[str]:
    config = write_config(tmp_path, imap_host="127.0.0.1", imap_port=1, imap_user="u", smtp_host="127.0.0.1",
                          smtp_port=1)
    text = config.read_text(encoding="utf-8").replace(f'rules_dir = "{config.parent}"', f'rules_dir = "{folder}"')
    config.write_text(text, encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "maildesk", "check-config", "-c", str(config)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_check_config_names_the_file_and_the_limit_and_ignores_yaml(tmp_path: Path) -> None:
    folder = _config_dir(tmp_path)
    marker = tmp_path / "executed"
    (folder / "rules.yaml").write_text(YAML_PAYLOAD.format(marker=marker), encoding="utf-8")
    clean = _check_config(tmp_path, folder)
    print(clean.stdout, clean.stderr)
    assert clean.returncode == 0, clean.stderr[-2000:]
    assert f"{folder / 'rules.yaml'}: ignored" in clean.stderr
    (folder / "groups.toml").write_text(_hostile_files(marker)["million-keys"], encoding="utf-8")
    refused = _check_config(tmp_path, folder)
    print(refused.stderr[-1000:])
    assert refused.returncode == 1
    assert f"{folder / 'groups.toml'}:1: the file is larger than the limit of {MAX_CONFIG_BYTES} bytes" \
        in refused.stderr
    assert not marker.exists()


_CHILD = r"""
import json, pathlib, re, resource, sys
from maildesk.errors import ConfigError
from maildesk.rules.loader import load_config_dir
vm = int(re.search(r"VmSize:\s+(\d+)", open("/proc/self/status").read()).group(1)) * 1024
limit = vm + 96 * 2**20  # tomllib needs ~160 MB for 10**6 keys; the guarded loader reads 1 MiB
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    load_config_dir(pathlib.Path(sys.argv[1]))
    print(json.dumps({"outcome": "loaded"}))
except ConfigError as exc:
    print(json.dumps({"outcome": "refused", "problems": exc.problems}))
except BaseException as exc:
    print(json.dumps({"outcome": type(exc).__name__, "text": str(exc)[:300]}))
"""


def test_a_million_keys_are_refused_within_a_memory_cap(tmp_path: Path) -> None:
    folder = _config_dir(tmp_path)
    (folder / "rules.toml").write_text(_hostile_files(tmp_path / "executed")["million-keys"], encoding="utf-8")
    assert (folder / "rules.toml").stat().st_size > 10 * 2**20
    done = subprocess.run([sys.executable, "-c", _CHILD, str(folder)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.stdout.strip(), done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(result)
    assert result["outcome"] == "refused", result
    assert any(f"{folder / 'rules.toml'}:1:" in p and str(MAX_CONFIG_BYTES) in p for p in result["problems"])
