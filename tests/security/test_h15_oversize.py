"""H15: a mail over 25 MB is not parsed, is kept raw, and its sender is told once per day.

Today maildesk has no size limit on intake: an oversize mail is parsed like any other and becomes a ticket
with an acknowledgment per mail.  The test states the wanted behaviour and is a strict xfail (product gap).
"""

from __future__ import annotations

import os

import pytest

from maildesk.store.models import RawMail, Ticket
from tests.integration.desk_helpers import count

from . import bombs
from .desk import cycle, make_desk, wait_for_mails

OVERSIZE = 26 * bombs.ONE_MB


def oversize_mail(index: int) -> bytes:
    raw = bombs.with_attachment(f"oversize-{index}", "disk.img", "application/octet-stream",
                                os.urandom(OVERSIZE * 3 // 4 + 1024))
    return raw.replace(f"bomb-oversize-{index}@corp.test>".encode(), f"big-{index}@corp.test>".encode(), 1) \
        .replace(b"From: bomb-oversize-%d@corp.test" % index, b"From: big.sender@corp.test", 1)


@pytest.mark.xfail(strict=True, reason="product gap: no intake size limit — a > 25 MB mail is parsed and gets a "
                   "ticket and an ack per mail, instead of being kept raw unparsed with one notice per sender and day")
def test_oversize_mails_are_kept_raw_unparsed_and_the_sender_is_told_once(tmp_path, imap_account, smtp_sink,
                                                                         monkeypatch) -> None:  # noqa: ANN001
    desk = make_desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    mails = [oversize_mail(i) for i in range(2)]
    assert all(len(m) > 25 * bombs.ONE_MB for m in mails)
    imap_account.append_many(mails)
    assert cycle(desk).errors == (None,)
    assert count(desk.sessions, RawMail) == 2  # kept raw …
    told = [m for m in wait_for_mails(smtp_sink, 1, timeout=5) if "big.sender@corp.test" in m.rcpt_tos]
    assert count(desk.sessions, Ticket) == 0, "an oversize mail must not be parsed into a ticket"
    assert len(told) == 1, "one notice per sender per day"
