"""The seeded, deterministic mail corpus of the fault tests, with its ground-truth manifest.

``build_corpus(seed, n)`` returns ``n`` mails in mailbox order — 60 % new requests, 25 % replies to an
earlier request (by In-Reply-To), 10 % automatic mail (half out-of-office replies threaded onto an earlier
request, half delivery reports about a mail we never sent) and 5 % hostile mail (NUL bytes, a huge header,
broken MIME) that the daemon must keep, not crash on.  The same seed gives the same bytes, every time.

Each mail carries what must become of it (``outcome``), the request it threads onto (``parent``) and
whether an acknowledgment is due.  ``Corpus.write_manifest`` saves that as JSON (``"version": 1``); the
reconciler (``tests/reliability/reconcile.py``) compares it with the database and the SMTP sink's log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

NEW, REPLY, AUTO_REPLY, BOUNCE, HOSTILE = "new", "reply", "auto-reply", "bounce", "hostile"
POISON = "poison"  # a new request whose parsing is made to raise (``with_poison``): quarantined after 3 attempts
OUTCOMES = (NEW, REPLY, AUTO_REPLY, BOUNCE, HOSTILE, POISON)
MIX = ((NEW, 0.60), (REPLY, 0.25), (AUTO_REPLY, 0.05), (BOUNCE, 0.05), (HOSTILE, 0.05))
SUPPORT = "support@desk.test"
HOSTILE_FAMILIES = ("nul-bytes", "huge-header", "broken-mime")
BASE_DATE = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)

_TOPICS = ("打印机无法打印", "VPN 连接断开", "邮箱容量已满", "ERP 报错 500", "新员工开通账号", "投影仪没有信号",
           "Password reset needed", "Laptop will not boot", "Wi-Fi drops every hour", "Teams 会议没有声音")
_LINES = ("三楼打印机卡纸，换了纸也不行。", "The error appears right after login.", "已经重启过电脑，问题依旧。",
          "麻烦尽快处理，谢谢！", "Screenshot attached in the next mail.", "影响整个财务部的月结工作。",
          "It worked fine until yesterday afternoon.", "我的分机是 8021。")


@dataclass(frozen=True)
class CorpusMail:
    """One mail of the corpus and what must become of it."""

    index: int
    message_id: str  # without angle brackets
    sha256: str
    imap_sha256: str  # what an IMAP server that stores NUL as 0x80 (Dovecot) hands back
    outcome: str  # one of OUTCOMES
    family: str
    sender: str
    ack_due: bool
    parent: str | None = None  # Message-ID of the request this mail threads onto
    raw: bytes = field(default=b"", repr=False, compare=False)

    @property
    def opens_ticket(self) -> bool:
        return self.outcome == NEW or (self.outcome == HOSTILE and self.family in HOSTILE_TICKET_FAMILIES)


# Hostile mails that still have a sender and a body a person could read: they must become tickets.
# A broken MIME structure is kept too (ticket or quarantine both keep it); it opens a ticket today.
HOSTILE_TICKET_FAMILIES = frozenset(HOSTILE_FAMILIES)


@dataclass(frozen=True)
class Corpus:
    seed: int
    mails: tuple[CorpusMail, ...]

    @property
    def raws(self) -> list[bytes]:
        return [mail.raw for mail in self.mails]

    def by_message_id(self) -> dict[str, CorpusMail]:
        return {mail.message_id: mail for mail in self.mails}

    def count(self, outcome: str) -> int:
        return sum(1 for mail in self.mails if mail.outcome == outcome)

    def write_manifest(self, path: Path) -> Path:
        """Save the ground truth (everything but the raw bytes) as JSON."""
        mails = [{k: v for k, v in asdict(m).items() if k != "raw"} for m in self.mails]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"version": 1, "seed": self.seed, "mails": mails}, ensure_ascii=False,
                                   indent=1), encoding="utf-8")
        return path


def with_poison(corpus: Corpus, share: float) -> Corpus:
    """The same mails with ``share`` of them turned poison: new requests nobody replies to, spread evenly.

    Their bytes do not change; the daemon is told their Message-IDs (``launch.py``'s
    ``MAILDESK_TEST_POISON_IDS``) and its parser raises on them, like F12's injected exception.
    """
    parents = {m.parent for m in corpus.mails if m.parent}
    candidates = [m for m in corpus.mails if m.outcome == NEW and m.message_id not in parents]
    count = max(1, round(share * len(corpus.mails)))
    step = max(1, len(candidates) // count)
    chosen = {m.message_id for m in candidates[::step][:count]}
    return Corpus(corpus.seed, tuple(replace(m, outcome=POISON, family="injected-parse-failure", ack_due=False)
                                     if m.message_id in chosen else m for m in corpus.mails))


def load_manifest(path: Path) -> Corpus:
    """Read a manifest written by :meth:`Corpus.write_manifest` (without the raw bytes)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("version") != 1:
        raise ValueError(f"{path}: unknown manifest version {data.get('version')!r}")
    return Corpus(int(data["seed"]), tuple(CorpusMail(**m) for m in data["mails"]))


def plan_outcomes(rng: random.Random, n: int) -> list[str]:
    """The outcome of each position: exact counts of the mix, shuffled, a new request first."""
    counts = {outcome: int(round(share * n)) for outcome, share in MIX}
    counts[NEW] += n - sum(counts.values())
    plan = [outcome for outcome, k in counts.items() for _ in range(k)]
    plan.remove(NEW)
    rng.shuffle(plan)
    return [NEW, *plan][:n]


def build_corpus(seed: int, n: int, *, domain: str = "corp.test") -> Corpus:
    """``n`` mails in mailbox order; the same ``seed`` and ``n`` give the same bytes."""
    rng = random.Random(seed)
    requests: list[tuple[str, str, str]] = []  # (message-id, sender, subject) of earlier new requests
    mails: list[CorpusMail] = []
    hostile_seen = 0
    for index, outcome in enumerate(plan_outcomes(rng, n)):
        mid = f"r{seed}-{index:05d}.{rng.getrandbits(32):08x}@{domain}"
        at = BASE_DATE + timedelta(minutes=index)
        parent: str | None = None
        if outcome == NEW:
            sender = f"user{seed}-{index:05d}@{domain}"
            subject = f"{rng.choice(_TOPICS)} #{index}"
            raw, family = _request(sender, subject, mid, at, _body(rng)), "plain"
            requests.append((mid, sender, subject))
        elif outcome in (REPLY, AUTO_REPLY):
            parent, sender, subject = rng.choice(requests)
            if outcome == REPLY:
                raw, family = _request(sender, f"Re: {subject}", mid, at, _body(rng), in_reply_to=parent), "reply"
            else:
                raw, family = _out_of_office(sender, subject, mid, at, parent), "out-of-office"
        elif outcome == BOUNCE:
            sender, family = f"MAILER-DAEMON@mx.{domain}", "dsn"
            raw = _dsn(f"gone{seed}-{index:05d}@{domain}", f"never-sent-{seed}-{index}@desk.test", mid, at)
        else:
            family = HOSTILE_FAMILIES[hostile_seen % len(HOSTILE_FAMILIES)]
            hostile_seen += 1
            sender = f"odd{seed}-{index:05d}@{domain}"
            raw = _hostile(family, sender, mid, at, rng)
        ack_due = outcome == NEW or (outcome == HOSTILE and family in HOSTILE_TICKET_FAMILIES)
        mails.append(CorpusMail(index, mid, hashlib.sha256(raw).hexdigest(),
                                hashlib.sha256(raw.replace(b"\x00", b"\x80")).hexdigest(), outcome, family, sender,
                                ack_due, parent, raw))
    return Corpus(seed, tuple(mails))


def _body(rng: random.Random) -> str:
    return "\r\n".join(rng.choice(_LINES) for _ in range(rng.randint(1, 12)))


def _headers(sender: str, subject: str, mid: str, at: datetime, extra: tuple[str, ...] = ()) -> str:
    from email.header import Header

    return "\r\n".join((f"From: {sender}", f"To: {SUPPORT}", f"Subject: {Header(subject, 'utf-8').encode()}",
                        f"Date: {format_datetime(at)}", f"Message-ID: <{mid}>", "MIME-Version: 1.0", *extra))


def _request(sender: str, subject: str, mid: str, at: datetime, body: str, *, in_reply_to: str | None = None) -> bytes:
    extra = (f"In-Reply-To: <{in_reply_to}>", f"References: <{in_reply_to}>") if in_reply_to else ()
    encoded = base64.encodebytes(body.encode("utf-8")).decode("ascii").replace("\n", "\r\n")
    head = _headers(sender, subject, mid, at, (*extra, "Content-Type: text/plain; charset=utf-8",
                                               "Content-Transfer-Encoding: base64"))
    return f"{head}\r\n\r\n{encoded}".encode("ascii")


def _out_of_office(sender: str, subject: str, mid: str, at: datetime, parent: str) -> bytes:
    head = _headers(sender, f"自动回复: {subject}", mid, at, (
        "Auto-Submitted: auto-replied", "X-Auto-Response-Suppress: All", f"In-Reply-To: <{parent}>",
        f"References: <{parent}>", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"))
    return f"{head}\r\n\r\n我正在休假，12月1日返回。\r\n".encode()


def _dsn(recipient: str, original_id: str, mid: str, at: datetime) -> bytes:
    return (
        f"Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.corp.test (Mail Delivery System)\r\nTo: {SUPPORT}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\nDate: {format_datetime(at)}\r\nMessage-ID: <{mid}>\r\n"
        "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\nThis message could not be delivered.\r\n\r\n"
        f"<{recipient}>: host mx said: 550 5.1.1 User unknown\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.corp.test\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {SUPPORT}\r\nTo: {recipient}\r\nMessage-ID: <{original_id}>\r\nSubject: ack\r\n--B--\r\n"
    ).encode()


def _hostile(family: str, sender: str, mid: str, at: datetime, rng: random.Random) -> bytes:
    if family == "nul-bytes":
        head = _headers(sender, "NUL\x00in subject", mid, at, ("Content-Type: text/plain; charset=utf-8",))
        return (head + "\r\n\r\nbefore\x00\x00after\r\n" + "x\x00" * rng.randint(10, 200) + "\r\n").encode()
    if family == "huge-header":
        long_value = " ".join(f"token{i:05d}" for i in range(rng.randint(3000, 6000)))
        head = _headers(sender, "huge header", mid, at, (f"X-Huge: {long_value}",
                                                        "Content-Type: text/plain; charset=utf-8"))
        return f"{head}\r\n\r\n一个超长的头部。\r\n".encode()
    head = _headers(sender, "broken MIME", mid, at, ('Content-Type: multipart/mixed; boundary="never-closed"',))
    return (f"{head}\r\n\r\n--never-closed\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n@@@not base64!!!\r\n--never-closed\r\n"
            "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA====\r\n").encode()
