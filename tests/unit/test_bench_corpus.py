"""The benchmark corpus is deterministic and has the mix the benchmarks claim (no timing asserted here)."""

from __future__ import annotations

from datetime import date

from bench.corpus import generate, summary
from maildesk.ingest import thread
from maildesk.ingest.parse import parse_mail

DAY = date(2026, 11, 23)


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    first = [m.raw for m in generate(300, ticket_day=DAY)]
    assert first == [m.raw for m in generate(300, ticket_day=DAY)]
    assert first != [m.raw for m in generate(300, seed=1, ticket_day=DAY)]


def test_the_corpus_has_the_stated_mix() -> None:
    mix = summary(generate(3000, ticket_day=DAY))
    assert 0.27 <= mix["replies"] <= 0.33
    assert 0.035 <= mix["attachments"] <= 0.065
    assert 0.25 <= mix["html"] <= 0.35
    assert 0.65 <= mix["zh"] <= 0.75
    assert {"gb2312", "gbk", "utf-8", "us-ascii"} <= set(mix["charsets"])


def test_replies_point_at_an_earlier_request_of_the_same_sender_and_some_carry_the_tag() -> None:
    mails = generate(600, ticket_day=DAY)
    requests = {m.message_id: m for m in mails if m.kind == "request"}
    replies = [m for m in mails if m.kind == "reply"]
    for reply in replies:
        original = requests[reply.in_reply_to]
        assert original.index < reply.index
        assert original.sender == reply.sender
    tagged = [r for r in replies if r.ticket_ref]
    assert tagged and all(r.ticket_ref.startswith("TS20261123") for r in tagged)


def test_every_mail_reads_cleanly_and_a_tagged_reply_names_its_ticket() -> None:
    mails = generate(400, ticket_day=DAY)
    for mail in mails:
        parsed = parse_mail(mail.raw)
        assert parsed.message_id == mail.message_id
        assert parsed.body_text.strip()
        assert bool(parsed.attachments) == mail.attachment
    reply = next(m for m in mails if m.ticket_ref)
    parsed = parse_mail(reply.raw)
    assert thread.lookup_keys(parsed).ticket_ref == reply.ticket_ref
    assert reply.in_reply_to in parsed.in_reply_to
