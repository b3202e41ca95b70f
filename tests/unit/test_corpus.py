"""The parser corpus: every ``tests/fixtures/mail/<family>/<name>.eml`` against its ``.json``.

Convention of the expected ``.json`` (written by hand, see ``make_corpus.py``):
- a key of ``describe_mail`` (``DESCRIBE_KEYS``) must equal the described value exactly;
- ``body_text_contains`` / ``reply_text_contains``: substrings that must appear;
- ``body_text_excludes`` / ``reply_text_excludes``: substrings that must not appear;
- ``defects_contain``: substrings each found in at least one defect;
- ``attachment_names`` / ``attachment_types``: the filenames / content types of the attachments, in order.
Any other key is an error, so a typo in an expected file cannot silently pin nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from maildesk.cli import main
from maildesk.ingest.describe import DESCRIBE_KEYS, describe_mail

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "mail"
MAILS = sorted(CORPUS.rglob("*.eml"))
_CHECKS = {
    "body_text_contains", "body_text_excludes", "reply_text_contains", "reply_text_excludes",
    "defects_contain", "attachment_names", "attachment_types",
}


def _compare(described: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    problems = [f"unknown key {key!r} in the expected file" for key in expected if key not in DESCRIBE_KEYS and key not in _CHECKS]
    for key in DESCRIBE_KEYS:
        if key in expected and described[key] != expected[key]:
            problems.append(f"{key}: expected {expected[key]!r}, got {described[key]!r}")
    for field in ("body_text", "reply_text"):
        problems += [f"{field} lacks {text!r}" for text in expected.get(f"{field}_contains", []) if text not in described[field]]
        problems += [f"{field} has {text!r}" for text in expected.get(f"{field}_excludes", []) if text in described[field]]
    for text in expected.get("defects_contain", []):
        if not any(text in defect for defect in described["defects"]):
            problems.append(f"no defect contains {text!r}; defects are {described['defects']!r}")
    for key, field in (("attachment_names", "filename"), ("attachment_types", "content_type")):
        if key in expected and [item[field] for item in described["attachments"]] != expected[key]:
            problems.append(f"{key}: expected {expected[key]!r}, got {[item[field] for item in described['attachments']]!r}")
    return problems


def test_the_corpus_is_big_enough_and_every_mail_has_its_expectation() -> None:
    assert len(MAILS) >= 70
    missing = [str(path.relative_to(CORPUS)) for path in MAILS if not path.with_suffix(".json").exists()]
    assert not missing, f"mails without expected JSON: {missing}"


@pytest.mark.parametrize("path", MAILS, ids=[str(path.relative_to(CORPUS)) for path in MAILS])
def test_corpus_mail_is_described_as_expected(path: Path) -> None:
    expected = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    result = CliRunner().invoke(main, ["parse", str(path), "--json"])  # the admin's command, in process
    assert result.exit_code == 0, result.output
    described = json.loads(result.output)
    assert list(described) == list(DESCRIBE_KEYS)
    json.dumps(described, ensure_ascii=False)  # must be JSON-ready as the CLI prints it
    problems = _compare(described, expected)
    assert not problems, "\n".join(problems)


def test_compare_reports_a_wrong_value_and_an_unknown_key() -> None:
    described = describe_mail(b"From: a@b.example\r\nSubject: hi\r\n\r\nbody\r\n")
    problems = _compare(described, {"subject": "ho", "body_text_contains": ["nope"], "subjet": "typo"})
    assert len(problems) == 3


def _cli_has_parse_command() -> bool:
    try:
        from maildesk import cli
    except ImportError:
        return False
    return "parse" in getattr(cli.main, "commands", {})


@pytest.mark.parametrize("name", ["outlook/desktop-zh-printer.eml", "charsets/split-encoded-words.eml"])
def test_the_parse_command_prints_the_same_json_as_describe_mail(name: str) -> None:
    if not _cli_has_parse_command():
        pytest.skip("maildesk.cli has no parse command yet")
    path = CORPUS / name
    result = subprocess.run([sys.executable, "-m", "maildesk", "parse", str(path), "--json"],
                            capture_output=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")
    assert json.loads(result.stdout) == describe_mail(path.read_bytes())


def test_the_corpus_script_is_deterministic(tmp_path: Path) -> None:
    copy = tmp_path / "mail"
    shutil.copy(CORPUS / "make_corpus.py", tmp_path / "make_corpus.py")
    copy.mkdir()
    script = (tmp_path / "make_corpus.py").read_text(encoding="utf-8")
    (tmp_path / "make_corpus.py").write_text(script.replace("HERE = Path(__file__).resolve().parent", f"HERE = Path({str(copy)!r})"),
                                             encoding="utf-8")
    subprocess.run([sys.executable, str(tmp_path / "make_corpus.py")], check=True, capture_output=True, timeout=120)
    for built in copy.rglob("*.eml"):
        committed = CORPUS / built.relative_to(copy)
        assert built.read_bytes() == committed.read_bytes(), f"{committed} differs from what make_corpus.py writes"
