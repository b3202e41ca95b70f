"""H4: hostile attachment names write no file anywhere and are shown sanitised.

maildesk keeps attachments only inside the raw mail in the database; these tests prove no path in a name
ever reaches the file system (the test's tmp tree and the repository are listed before and after a real
pipeline run) and that ``parse_mail`` displays names without path separators or control characters.
"""

from __future__ import annotations

import os
import unicodedata
import urllib.parse
from pathlib import Path

from maildesk.ingest.parse import parse_mail
from maildesk.store.models import RawMail, Ticket
from tests.integration.desk_helpers import count

from .desk import ROOT, SUPPORT, cycle, make_desk

NAMES = ("../../x", "../../../../../../tmp/h4-escape", "/etc/passwd", "/tmp/h4-absolute", "C:\\x",
         "C:\\Windows\\System32\\h4.dll", "..\\..\\h4-back", "a\x00b.txt", "CON", "NUL.txt", "aux",
         "A" * 300 + ".txt", "invoice\u202egpj.exe", "..", ".", "a/../../b", "x\r\n.txt", "~/.ssh/authorized_keys")


def _disposition(index: int, name: str) -> str:
    """Plain, RFC 2231 and RFC 2047 forms in turn, so ``../`` appears only after decoding in two of three."""
    form = index % 3
    if form == 0:
        return 'attachment; filename="' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if form == 1:
        return "attachment; filename*=utf-8''" + urllib.parse.quote(name, safe="")
    return 'attachment; filename="=?utf-8?b?' + __import__("base64").b64encode(name.encode()).decode() + '?="'


def hostile_attachment_mail(index: int, names: tuple[str, ...]) -> bytes:
    parts = [b"--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\xe9\x99\x84\xe4\xbb\xb6\r\n"]
    for offset, name in enumerate(names):
        parts.append(f"--B\r\nContent-Type: application/octet-stream\r\n"
                     f"Content-Disposition: {_disposition(index + offset, name)}\r\n"
                     "Content-Transfer-Encoding: base64\r\n\r\naDQgcGF5bG9hZA==\r\n".encode())
    head = (f"From: h4-{index}@corp.test\r\nTo: {SUPPORT}\r\nSubject: attachments {index}\r\n"
            f"Message-ID: <h4-{index}@corp.test>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=B\r\n\r\n").encode()
    return head + b"".join(parts) + b"--B--\r\n"


def _tree(root: Path, skip: tuple[str, ...] = ()) -> set[str]:
    found = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip]
        found.update(os.path.relpath(os.path.join(folder, f), root) for f in files)
    return found


def _shown_safely(name: str) -> bool:
    return not any(c in name for c in "/\\") and not any(unicodedata.category(c) == "Cc" for c in name)


def test_hostile_attachment_names_write_no_file_anywhere(tmp_path, imap_account, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    skip = (".git", ".venv", "__pycache__", ".ruff_cache", ".mypy_cache", ".pytest_cache", "var", "node_modules")
    desk = make_desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    tmp_before, repo_before = _tree(tmp_path), _tree(ROOT, skip)
    escapes = [Path("/tmp/h4-escape"), Path("/tmp/h4-absolute"), Path.home() / "h4-back"]
    assert not any(p.exists() for p in escapes)

    mails = [hostile_attachment_mail(i, NAMES) for i in range(3)]  # each name in each of the 3 encodings
    imap_account.append_many(mails)
    assert cycle(desk).errors == (None,)

    assert count(desk.sessions, RawMail) == 3 and count(desk.sessions, Ticket) == 3
    new_in_tmp = _tree(tmp_path) - tmp_before
    assert all(p.startswith(("var/maildesk.db", "sink-")) for p in new_in_tmp), new_in_tmp
    assert _tree(ROOT, skip) - repo_before == set()
    assert not any(p.exists() for p in escapes)


def test_displayed_attachment_names_have_no_path_separator_and_no_control(tmp_path) -> None:  # noqa: ANN001
    for index in range(3):
        parsed = parse_mail(hostile_attachment_mail(index, NAMES))
        names = [a.filename for a in parsed.attachments]
        assert len(names) == len(NAMES), names
        bad = [n for n in names if not _shown_safely(n)]
        assert not bad, bad


def test_displayed_attachment_names_carry_no_bidi_override() -> None:
    parsed = parse_mail(hostile_attachment_mail(0, ("invoice\u202egpj.exe",)))
    assert not any(unicodedata.category(c) == "Cf" for a in parsed.attachments for c in a.filename)
