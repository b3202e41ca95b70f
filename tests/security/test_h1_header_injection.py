"""H1: CR/LF and other controls smuggled through headers never become headers or recipients of what we send.

200 generated vectors (10 carriers × 10 separators × 2 injections): RFC 2047 encoded-words in Subject, in the
From and Reply-To display names; folded CR/LF in Message-ID and References (copied into our In-Reply-To and
References); RFC 2231 and RFC 2047 attachment names.  Each vector is one mail from its own requester through
the real pipeline (Dovecot → build_desk's poller, runner, sender → aiosmtpd sink).  Pass: every RCPT the sink
saw is the requester, an agent or an admin, never ``evil.test``; each sent mail re-parses without defects to
exactly the header set of a benign mail of its kind, with no control character in any value.
"""

from __future__ import annotations

import base64
import urllib.parse
from collections import Counter

from maildesk.store.models import RawMail, Ticket
from tests.integration.desk_helpers import count, request_mail

from .desk import SUPPORT, cycle, header_names, kind_of, make_desk, reparse, wait_for_mails

SEPARATORS = ("\r\n", "\n", "\r", "\r\n\t", "\x00", "\x0b", "\x0c", "\u2028", "\u0085", "\r\n\r\n")
INJECTIONS = ("Bcc: x@evil.test", "To: y@evil.test, z@evil.test")
CARRIERS = ("subject_q", "subject_b", "from_name_q", "from_name_b", "reply_to_name_q", "reply_to_name_b",
            "message_id_folded", "references_folded", "attachment_2231", "attachment_2047")


def _q(text: str) -> str:
    return "=?utf-8?q?" + "".join(f"={b:02X}" if not chr(b).isalnum() else chr(b)
                                  for b in text.encode("utf-8")) + "?="


def _b(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode("utf-8")).decode() + "?="


def hostile_mail(index: int, carrier: str, separator: str, injection: str) -> tuple[bytes, str]:
    """One mail carrying ``separator + injection`` in ``carrier``; returns (raw, sender address)."""
    sender = f"h1-{index}@corp.test"
    payload = f"hi{separator}{injection}"
    subject, name, reply_name = f"printer broken {index}", "Zhang San", "Zhang"
    mid, refs, attachment = f"<h1-{index}@corp.test>", "", ""
    if carrier == "subject_q":
        subject = _q(payload)
    elif carrier == "subject_b":
        subject = _b(payload)
    elif carrier == "from_name_q":
        name = _q(payload)
    elif carrier == "from_name_b":
        name = _b(payload)
    elif carrier == "reply_to_name_q":
        reply_name = _q(payload)
    elif carrier == "reply_to_name_b":
        reply_name = _b(payload)
    elif carrier == "message_id_folded":  # folding keeps the header going; the CR/LF stays in the value
        mid = f"<h1-{index}@corp.test\r\n\t{injection.replace(' ', '')}>"
    elif carrier == "references_folded":
        refs = f"References: <ref-{index}@corp.test>\r\n {injection}\r\n"
    elif carrier == "attachment_2231":
        attachment = f"attachment; filename*=utf-8''{urllib.parse.quote(payload + '.txt', safe='')}"
    elif carrier == "attachment_2047":
        attachment = f'attachment; filename="{_q(payload + ".txt")}"'
    head = (f"From: {name} <{sender}>\r\nTo: {SUPPORT}\r\nReply-To: {reply_name} <{sender}>\r\n"
            f"Subject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0800\r\nMessage-ID: {mid}\r\n{refs}"
            "MIME-Version: 1.0\r\n")
    text = "打印机无法打印，请帮忙。\r\n".encode()
    if not attachment:
        body = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + text
    else:
        body = (b"Content-Type: multipart/mixed; boundary=BOUND\r\n\r\n--BOUND\r\n"
                b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + text
                + f"--BOUND\r\nContent-Type: text/plain\r\nContent-Disposition: {attachment}\r\n\r\n".encode()
                + b"log line\r\n--BOUND--\r\n")
    return head.encode("utf-8", "surrogatepass") + body, sender


def vectors() -> list[tuple[bytes, str]]:
    found = []
    for carrier in CARRIERS:
        for separator in SEPARATORS:
            for injection in INJECTIONS:
                found.append(hostile_mail(len(found), carrier, separator, injection))
    return found


def _has_control(value: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 or c in "\u0085\u2028\u2029" for c in value)


def test_two_hundred_injection_vectors_add_no_header_and_no_recipient(tmp_path, imap_account, smtp_sink,
                                                                      monkeypatch) -> None:  # noqa: ANN001
    # A benign mail first: its ack and notices fix the header set each kind of mail must have.
    desk = make_desk(tmp_path, imap_account, smtp_sink, monkeypatch, batch_size=250)
    imap_account.append(request_mail("baseline@corp.test", "printer broken", "打印机无法打印")[0])
    assert cycle(desk).errors == (None,)
    baseline = {kind_of(m): sorted(header_names(m.raw)) for m in wait_for_mails(smtp_sink, 1)}
    assert "ack" in baseline, baseline
    sent_before = len(smtp_sink.received)

    mails = vectors()
    assert len(mails) >= 200
    imap_account.append_many([raw for raw, _ in mails])
    for _ in range(3):
        cycle(desk)
        if count(desk.sessions, RawMail, RawMail.status == "pending") == 0:
            break
    assert count(desk.sessions, RawMail) == len(mails) + 1

    senders = {sender for _, sender in mails}
    tickets = count(desk.sessions, Ticket) - 1
    received = wait_for_mails(smtp_sink, sent_before + tickets)[sent_before:]
    allowed_domains = ("corp.test", "example.com", "desk.test")
    rcpts = [rcpt for mail in received for rcpt in mail.rcpt_tos]
    print(f"H1: {len(mails)} vectors, {tickets} tickets, {len(received)} mails sent, {len(rcpts)} RCPTs, "
          f"kinds {dict(Counter(kind_of(m) for m in received))}")
    assert not [r for r in rcpts if "evil" in r.lower()]
    assert all(r.rpartition("@")[2] in allowed_domains for r in rcpts), rcpts
    assert all(not _has_control(r) and " " not in r and "<" not in r for r in rcpts)

    acked = Counter()
    for mail in received:
        kind = kind_of(mail)
        parsed = reparse(mail.raw)
        names = sorted(header_names(mail.raw))
        assert "bcc" not in names and "cc" not in names, names  # the injected text may show, folded, in a value
        if kind in baseline:
            assert names == baseline[kind], (kind, names, baseline[kind])
        assert not parsed.defects, (kind, parsed.defects)
        for name, value in parsed.items():
            assert not _has_control(str(value)), (name, value)
        if kind == "ack":
            assert mail.rcpt_tos[0] in senders and len(mail.rcpt_tos) == 1
            acked[mail.rcpt_tos[0]] += 1
    assert all(n == 1 for n in acked.values())
