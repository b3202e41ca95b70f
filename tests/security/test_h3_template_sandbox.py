"""H3: admin templates cannot reach Python.  Every payload is refused by the sandbox, no code runs.

Each payload becomes ``zh-CN/ack.subject.j2`` of a fresh templates dir, rendered through the daemon's own
``template_environment`` path (``render.build_environment`` → ``SandboxedEnvironment``).  A payload that
would run code tries to create a marker file; the marker must never appear.  The unbounded payloads
(``range(10**9)``, ``'x' * 10**9``) run in a child process under an address-space limit, so a missing bound
shows as a failed assertion instead of a machine out of memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

from maildesk.errors import TemplateError
from maildesk.outbound.render import build_environment, render

from .desk import ROOT

ESCAPES = {
    "mro": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "cycler-globals": "{{ cycler.__init__.__globals__.os.system('touch MARKER') }}",
    "joiner-globals": "{{ joiner.__init__.__globals__['__builtins__']['open']('MARKER', 'w') }}",
    "str-format": "{{ '{0.__class__.__init__.__globals__}'.format(ctx) }}",
    "format-filter": "{{ '%s'|format(ctx.__class__.__mro__) }}",
    "attr-filter": "{{ (ctx|attr('__class__')|attr('__base__')|attr('__subclasses__'))() }}",
    "request-namespace": "{{ namespace.__init__.__globals__.sys.modules.os.system('touch MARKER') }}",
    "lipsum-globals": "{{ lipsum.__globals__.os.popen('touch MARKER').read() }}",
}


def _templates(tmp: Path, subject: str) -> Path:
    folder = tmp / "templates"
    (folder / "zh-CN").mkdir(parents=True, exist_ok=True)
    (folder / "zh-CN" / "ack.subject.j2").write_text("【技术支持】 {{ number }}\n" + subject + "\n",
                                                     encoding="utf-8")
    (folder / "zh-CN" / "ack.txt.j2").write_text("您好 {{ number }}\n", encoding="utf-8")
    return folder


def _render(folder: Path) -> None:
    env = build_environment(jinja2.FileSystemLoader(str(folder)))
    render(env, "ack", "zh-CN", {"number": "TS20261123001", "ctx": object()})


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_sandbox_escape_payload_is_refused_and_runs_no_code(name: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "MARKER"
    folder = _templates(tmp_path, ESCAPES[name].replace("MARKER", str(marker)))
    with pytest.raises(TemplateError) as raised:
        _render(folder)
    text = str(raised.value)
    assert "unsafe" in text or "no attribute" in text or "undefined" in text, text
    assert not marker.exists()


def test_sandbox_refusal_names_the_template_file_and_line(tmp_path: Path) -> None:
    folder = _templates(tmp_path, ESCAPES["mro"])
    with pytest.raises(TemplateError) as raised:
        _render(folder)
    assert "zh-CN/ack.subject.j2:2" in str(raised.value), raised.value


_CHILD = r"""
import json, pathlib, re, resource, sys
import jinja2
from maildesk.outbound.render import build_environment, render
vm = int(re.search(r"VmSize:\s+(\d+)", open("/proc/self/status").read()).group(1)) * 1024
limit = vm + 256 * 2**20  # 256 MB more than the interpreter needs: a bound template never gets near it
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
env = build_environment(jinja2.FileSystemLoader(sys.argv[1]))
try:
    out = render(env, "ack", "zh-CN", {"number": "TS1"})
    print(json.dumps({"outcome": "rendered", "size": len(out.subject) + len(out.text)}))
except BaseException as exc:
    print(json.dumps({"outcome": type(exc).__name__, "module": type(exc).__module__, "text": str(exc)[:300]}))
"""


def _render_in_child(folder: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", _CHILD, str(folder)], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.stdout.strip(), done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    print(result)
    return result


def test_range_of_a_billion_is_refused_as_a_template_error(tmp_path: Path) -> None:
    folder = _templates(tmp_path, "{% for i in range(10**9) %}{{ i }}{% endfor %}")
    assert _render_in_child(folder)["outcome"] == "TemplateError"


def test_string_repeated_a_billion_times_is_refused_as_a_template_error(tmp_path: Path) -> None:
    folder = _templates(tmp_path, "{{ 'x' * 10**9 }}")
    assert _render_in_child(folder)["outcome"] == "TemplateError"


def test_user_text_with_template_syntax_is_shown_literally(tmp_path: Path) -> None:
    """The ticket fields are data: ``{{7*7}}`` in a subject is never evaluated (complements the unit tests)."""
    folder = _templates(tmp_path, "{{ subject }}")
    env = build_environment(jinja2.FileSystemLoader(str(folder)))
    out = render(env, "ack", "zh-CN", {"number": "TS1", "subject": "{{7*7}} {% raw %}{{ cycler }}"})
    assert "{{7*7}}" in out.subject and "49" not in out.subject
