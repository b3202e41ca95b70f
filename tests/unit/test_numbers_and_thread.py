"""Ticket numbers and threading decisions: pure, no I/O."""

from __future__ import annotations

from datetime import date

import pytest

from maildesk.domain import Address, AppendTo, CandidateTicket, NewTicket, ParsedMail
from maildesk.ingest.thread import decide, extract_ticket_ref, lookup_keys, strip_subject
from maildesk.tickets.numbers import TicketNumber, format_number, parse_number


def test_number_has_prefix_date_and_three_digit_sequence() -> None:
    assert format_number(date(2026, 11, 23), 1) == "TS20261123001"


def test_sequence_past_999_grows_to_four_digits_and_still_parses() -> None:
    number = format_number(date(2026, 11, 23), 1000)
    assert number == "TS202611231000"
    assert parse_number(number) == TicketNumber(date(2026, 11, 23), 1000)


def test_sequence_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        format_number(date(2026, 11, 23), 0)


@pytest.mark.parametrize("text", ["TS20261332001", "TS2026112300", "XX20261123001", "TS20260230001"])
def test_malformed_numbers_do_not_parse(text: str) -> None:
    assert parse_number(text) is None


@pytest.mark.parametrize(
    "subject",
    [
        "【技术支持】TS20261123001 打印机无法打印",
        "回复: 【技术支持】TS20261123001 打印机无法打印",
        "答复：【技术支持】TS20261123001",
        "Re: RE: Fwd: [技术支持]TS20261123001",
        "转发: [技术支持] TS20261123001",
        "【 技术支持 】 TS20261123001",
        "回复：【技术支持】ＴＳ２０２６１１２３００１ 打印机",  # full-width from a Chinese IME
        "［技术支持］TS20261123001",
        "re: 【技术支持】ts20261123001",
        "关于 TS20261123001 的补充",
    ],
)
def test_tag_is_found_through_prefixes_widths_and_spaces(subject: str) -> None:
    assert extract_ticket_ref(subject) == "TS20261123001"


@pytest.mark.parametrize("subject", ["打印机无法打印", "订单号 ORDERTS20261123001", "TS20261399001", ""])
def test_subjects_without_a_valid_number_have_no_ref(subject: str) -> None:
    assert extract_ticket_ref(subject) is None


def test_strip_subject_removes_prefixes_and_tag() -> None:
    assert strip_subject("回复: RE: 【技术支持】TS20261123001 打印机无法打印") == "打印机无法打印"
    assert strip_subject("Fwd: VPN drops every hour") == "VPN drops every hour"


def _mail(sender: str = "alice@example.com", subject: str = "x", **kw: object) -> ParsedMail:
    return ParsedMail(message_id="m1@x", from_addr=Address(sender), subject=subject, body_text="", **kw)  # type: ignore[arg-type]


def test_lookup_keys_put_in_reply_to_first_and_cap_references() -> None:
    refs = tuple(f"r{i}@x" for i in range(50))
    keys = lookup_keys(_mail(subject="Re: 【技术支持】TS20261123001", in_reply_to=("irt@x",), references=refs))
    assert keys.ticket_ref == "TS20261123001"
    assert keys.message_ids[0] == "irt@x"
    assert keys.message_ids[1] == "r49@x"
    assert len(keys.message_ids) == 32


def test_no_candidates_means_new_ticket() -> None:
    assert isinstance(decide(_mail(), [], sender_is_agent=False), NewTicket)


def test_participant_reply_is_appended() -> None:
    candidate = CandidateTicket(7, "TS20261123001", frozenset({"alice@example.com"}), "tag")
    decision = decide(_mail("Alice@Example.com"), [candidate], sender_is_agent=False)
    assert decision == AppendTo(7, "TS20261123001", reason="participant mail matched by tag")


def test_reply_with_tag_from_outsider_is_flagged_not_joined() -> None:
    candidate = CandidateTicket(7, "TS20261123001", frozenset({"alice@example.com"}), "tag")
    decision = decide(_mail("mallory@evil.example"), [candidate], sender_is_agent=False)
    assert isinstance(decision, AppendTo) and decision.outsider


def test_tagged_ticket_of_the_sender_wins_over_a_referenced_one() -> None:
    by_ref = CandidateTicket(3, "TS20261120001", frozenset({"alice@example.com"}), "message-id")
    by_tag = CandidateTicket(9, "TS20261123002", frozenset({"alice@example.com"}), "tag")
    decision = decide(_mail(), [by_ref, by_tag], sender_is_agent=False)
    assert isinstance(decision, AppendTo) and decision.ticket_id == 9


def test_forged_reference_to_someone_elses_ticket_is_flagged() -> None:
    foreign = CandidateTicket(3, "TS20261120001", frozenset({"bob@example.com"}), "message-id")
    decision = decide(_mail(), [foreign], sender_is_agent=False)
    assert isinstance(decision, AppendTo) and decision.outsider
