"""The benchmark corpus: a deterministic, seeded stream of support mails as mail clients write them.

The same ``(n, seed, ticket_day)`` always gives the same bytes.  The mix, drawn per mail:

- language: 70% Chinese, 30% English; Chinese in GB2312 (30%), GBK (20%) or UTF-8 (50%), English in
  US-ASCII or UTF-8; transfer encodings base64, quoted-printable or 8bit as real clients use them;
- body: 70% plain text, 15% multipart/alternative (text + HTML), 15% HTML only (Outlook or webmail markup);
- 5% carry an attachment (screenshot, log, spreadsheet or PDF; 8–60 kB);
- 30% are replies to an earlier request of the same requester (after the first 20 mails), with
  ``In-Reply-To``/``References`` to the request's Message-ID (how maildesk threads them reliably) and the
  quoted history in Outlook, Gmail or "Original Message" style.  When ``ticket_day`` is given, 60% of
  the replies also carry the tag ``回复: 【技术支持】TS…`` with the number the request is expected to get
  (requests are numbered in mailbox order from 001 on an empty database; a wrong guess is harmless —
  a tag naming someone else's ticket loses to the Message-ID match).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from email.utils import format_datetime

from bench import corpus_text as t
from bench import mime
from maildesk.tickets.numbers import format_number

SEED = 20261123
SUPPORT = "support@desk.test"
REPLY_SHARE = 0.30
ATTACHMENT_SHARE = 0.05
TAGGED_REPLY_SHARE = 0.60
FIRST_REPLY_AT = 20  # the first mails are all requests: there is nothing to reply to yet
BASE_AT = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)
BEIJING = timezone(timedelta(hours=8))
_MAILERS = ("Microsoft Outlook 16.0", "Foxmail 7.2.25.254", "iPhone Mail (21A351)", "Coremail Webmail",
            "Mozilla Thunderbird 115.4")


@dataclass(frozen=True)
class CorpusMail:
    index: int
    raw: bytes
    message_id: str  # without angle brackets
    kind: str  # request | reply
    language: str  # zh | en
    charset: str
    html: str  # "" | "alternative" | "html-only"
    attachment: bool
    sender: str
    in_reply_to: str | None = None
    ticket_ref: str | None = None  # the number put into a reply's subject


@dataclass(frozen=True)
class _Person:
    name: str
    addr: str
    language: str
    dept: str


@dataclass(frozen=True)
class _Request:
    message_id: str
    subject: str
    body: str
    person: _Person
    sent_at: datetime
    ordinal: int  # 1-based among the requests: the expected ticket sequence


def generate(n: int, seed: int = SEED, *, ticket_day: date | None = None) -> list[CorpusMail]:
    return list(iter_corpus(n, seed, ticket_day=ticket_day))


def iter_corpus(n: int, seed: int = SEED, *, ticket_day: date | None = None) -> Iterator[CorpusMail]:
    """``n`` mails, oldest first; memory stays small however large ``n`` is."""
    rng = random.Random(seed)
    people = [_person(rng, i) for i in range(max(20, n // 3))]
    recent: deque[_Request] = deque(maxlen=2000)
    ordinal = 0
    for index in range(n):
        sent_at = BASE_AT + timedelta(seconds=7 * index)
        if index >= FIRST_REPLY_AT and rng.random() < REPLY_SHARE:
            yield _reply(rng, index, rng.choice(recent), sent_at, ticket_day)
            continue
        ordinal += 1
        mail, request = _request(rng, index, rng.choice(people), sent_at, ordinal)
        recent.append(request)
        yield mail


def summary(mails: list[CorpusMail]) -> dict[str, object]:
    """Shares of the mix, for the smoke test and the report."""
    count = max(len(mails), 1)
    return {
        "mails": len(mails),
        "replies": sum(m.kind == "reply" for m in mails) / count,
        "attachments": sum(m.attachment for m in mails) / count,
        "html": sum(bool(m.html) for m in mails) / count,
        "zh": sum(m.language == "zh" for m in mails) / count,
        "charsets": sorted({m.charset for m in mails}),
        "bytes": sum(len(m.raw) for m in mails),
    }


def _person(rng: random.Random, i: int) -> _Person:
    domain = rng.choice(t.DOMAINS)
    if rng.random() < 0.7:
        surname = rng.choice(t.SURNAMES)
        return _Person(surname + rng.choice(t.GIVEN), f"{t.PINYIN[surname]}{i:05d}@{domain}", "zh",
                       rng.choice(t.DEPARTMENTS_ZH))
    first, last = rng.choice(t.FIRST_EN), rng.choice(t.LAST_EN)
    return _Person(f"{first} {last}", f"{first}.{last}{i}@{domain}".lower(), "en", rng.choice(t.DEPARTMENTS_EN))


def _slots(rng: random.Random, person: _Person) -> dict[str, object]:
    return {"dept": person.dept, "floor": rng.randint(2, 12), "code": f"{rng.randrange(16**4, 16**6):X}",
            "asset": rng.randint(10000, 99999), "ext": rng.randint(2000, 8999), "software": rng.choice(t.SOFTWARE)}


def _request(rng: random.Random, index: int, person: _Person, sent_at: datetime,
             ordinal: int) -> tuple[CorpusMail, _Request]:
    zh = person.language == "zh"
    slots = _slots(rng, person)
    subject, first = rng.choice(t.PROBLEMS_ZH if zh else t.PROBLEMS_EN)
    details = rng.sample(t.DETAILS_ZH if zh else t.DETAILS_EN, rng.randint(1, 3))
    lines = [rng.choice(t.GREETINGS_ZH if zh else t.GREETINGS_EN), "", first, *details, "",
             rng.choice(t.CLOSINGS_ZH if zh else t.CLOSINGS_EN), person.name, person.dept,
             rng.choice(t.SIGNATURES_ZH if zh else t.SIGNATURES_EN)]
    body = "\n".join(lines).format(**slots).strip() + "\n"
    subject = subject.format(**slots)
    mail = _compose(rng, index, person, subject, body, sent_at, "request", None, None)
    return mail, _Request(mail.message_id, subject, body, person, sent_at, ordinal)


def _reply(rng: random.Random, index: int, request: _Request, sent_at: datetime,
           ticket_day: date | None) -> CorpusMail:
    person = request.person
    zh = person.language == "zh"
    new_text = rng.choice(t.FOLLOWUPS_ZH if zh else t.FOLLOWUPS_EN).format(**_slots(rng, person))
    body = f"{new_text}\n\n{person.name}\n\n{_quoted(rng, request)}"
    ref = None
    if ticket_day is not None and rng.random() < TAGGED_REPLY_SHARE:
        ref = format_number(ticket_day, request.ordinal)
        subject = f"{'回复' if zh else 'RE'}: 【技术支持】{ref} {request.subject}"
    else:
        subject = f"{rng.choice(('回复', '答复', 'Re')) if zh else 'Re'}: {request.subject}"
    return _compose(rng, index, person, subject, body, sent_at, "reply", request.message_id, ref)


def _quoted(rng: random.Random, request: _Request) -> str:
    """The history under a reply, in the style of one of three client families."""
    person, when = request.person, request.sent_at.astimezone(BEIJING)
    style = rng.randrange(3)
    if style == 0 and person.language == "zh":
        head = (f"发件人: {person.name} <{person.addr}>\n发送时间: {when:%Y年%m月%d日 %H:%M}\n"
                f"收件人: {SUPPORT}\n主题: {request.subject}\n\n")
        return head + request.body
    if style == 0:
        return (f"-----Original Message-----\nFrom: {person.name} <{person.addr}>\nSent: {when:%A, %B %d, %Y %H:%M}\n"
                f"To: {SUPPORT}\nSubject: {request.subject}\n\n{request.body}")
    quoted = "\n".join(f"> {line}" if line else ">" for line in request.body.splitlines())
    if style == 1 and person.language == "zh":
        return f"在 {when:%Y年%m月%d日 %H:%M}，{person.name} <{person.addr}> 写道：\n{quoted}\n"
    if style == 1:
        return f"On {when:%a, %d %b %Y at %H:%M}, {person.name} <{person.addr}> wrote:\n{quoted}\n"
    return f"------------------ 原始邮件 ------------------\n{quoted}\n"


def _compose(rng: random.Random, index: int, person: _Person, subject: str, body: str, sent_at: datetime,
             kind: str, in_reply_to: str | None, ref: str | None) -> CorpusMail:
    zh = person.language == "zh"
    wanted = rng.choices(("gb2312", "gbk", "utf-8"), (30, 20, 50))[0] if zh else rng.choice(("us-ascii", "utf-8"))
    charset = mime.pick_charset(subject + body + person.name, wanted)
    style = rng.choices(("", "alternative", "html-only"), (70, 15, 15))[0]
    attachment = rng.random() < ATTACHMENT_SHARE
    domain = person.addr.rpartition("@")[2]
    message_id = f"{sent_at:%Y%m%d%H%M%S}.{index:06d}.{rng.getrandbits(32):08x}@{domain}"
    headers = [
        f"Received: from mail.{domain} (mail.{domain} [10.{index % 250}.{rng.randint(1, 250)}.7]) by mx.desk.test",
        f"\twith ESMTPS id {rng.getrandbits(40):010x}; {format_datetime(sent_at)}",
        f"From: {mime.address(person.name, person.addr, charset if charset != 'us-ascii' else 'utf-8')}",
        f"To: {mime.address('技术支持中心' if zh else 'IT Support', SUPPORT, 'utf-8' if charset == 'us-ascii' else charset)}",
        f"Subject: {mime.encode_word(subject, 'utf-8' if charset == 'us-ascii' else charset)}",
        f"Date: {format_datetime(sent_at.astimezone(BEIJING))}",
        f"Message-ID: <{message_id}>",
    ]
    if in_reply_to:
        headers += [f"In-Reply-To: <{in_reply_to}>", f"References: <{in_reply_to}>"]
    headers += [f"X-Mailer: {rng.choice(_MAILERS)}", "MIME-Version: 1.0"]
    part = _body_part(rng, body, style, charset, zh)
    if attachment:
        part = mime.multipart("mixed", f"----=_mix_{index:06d}", [part, _attachment(rng)])
    raw = (mime.CRLF.join(headers) + mime.CRLF + part).encode("utf-8" if charset == "utf-8" else charset)
    return CorpusMail(index, raw, message_id, kind, person.language, charset, style, attachment, person.addr,
                      in_reply_to, ref)


def _body_part(rng: random.Random, body: str, style: str, charset: str, zh: bool) -> str:
    cte = "7bit" if charset == "us-ascii" else rng.choice(("base64", "base64", "quoted-printable", "8bit"))
    if not style:
        return mime.text_part(body, "plain", charset, cte)
    html = mime.to_html(body, outlook=rng.random() < 0.5, font="宋体" if zh else "Calibri")
    html_cte = "quoted-printable" if cte == "7bit" else cte
    html_part = mime.text_part(html, "html", mime.pick_charset(html, charset), html_cte)
    if style == "html-only":
        return html_part
    return mime.multipart("alternative", f"----=_alt_{rng.getrandbits(48):012x}",
                          [mime.text_part(body, "plain", charset, cte), html_part])


def _attachment(rng: random.Random) -> str:
    filename, ctype = rng.choice(t.ATTACHMENTS)
    size = rng.randint(8_000, 60_000)
    if ctype == "text/plain":
        lines = (f"2026-11-23 09:{i // 60 % 60:02d}:{i % 60:02d} ERROR svc[{rng.randint(100, 999)}] "
                 f"request failed code={rng.randint(400, 599)}" for i in range(size // 60))
        data = "\n".join(lines).encode("ascii")
    else:
        data = rng.randbytes(size)
    return mime.binary_part(data, filename, ctype)
