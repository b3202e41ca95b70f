"""compose builds the bytes of an outgoing mail by hand; a strict parser must read back exactly what we meant."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest

from maildesk.outbound.compose import Envelope, clean_header_value, compose, safe_address
from maildesk.outbound.render import Rendered

AT = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
ACK_HEADERS = ["From", "To", "Subject", "Date", "Message-ID", "Reply-To", "In-Reply-To", "References",
               "Auto-Submitted", "X-Auto-Response-Suppress", "Precedence", "X-Loop", "X-Maildesk-Kind",
               "MIME-Version", "Content-Type"]


def _envelope(**changes: object) -> Envelope:
    values: dict[str, object] = {
        "from_addr": "support@corp.test", "from_name": "技术支持", "to": (("张三", "zhang@corp.test"),),
        "bounce_addr": "bounce@corp.test", "reply_to": "support@corp.test", "in_reply_to": "<req-1@corp.test>",
        "references": ("<req-1@corp.test>",), "loop_marker": "support@corp.test"}
    values.update(changes)
    return Envelope(**values)  # type: ignore[arg-type]


def _compose(subject: str = "【技术支持】TS2026112300001 已收到", text: str = "您好，\n已收到。",
             html: str | None = "<p>您好</p>", kind: str = "ack", **envelope: object) -> bytes:
    rendered = Rendered(subject=subject, text=text, html=html)
    return compose(rendered, _envelope(**envelope), kind=kind, dedup_key="TS1:ack",
                   message_id="md.ack.TS1.abc.def@corp.test", date_at=AT).raw


def _parse(raw: bytes) -> object:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert not parsed.defects
    for name, value in parsed.items():
        assert not value.defects, name
        assert not re.search(r"[\x00-\x1f\x7f]", str(value)), name
    return parsed


def test_an_acknowledgment_reparses_to_the_header_set_and_values_we_meant() -> None:
    raw = _compose()
    parsed = _parse(raw)
    assert list(parsed.keys()) == ACK_HEADERS
    assert str(parsed["Subject"]) == "【技术支持】TS2026112300001 已收到"
    assert [(a.display_name, a.addr_spec) for a in parsed["To"].addresses] == [("张三", "zhang@corp.test")]
    assert parsed["From"].addresses[0].display_name == "技术支持"
    assert str(parsed["Message-ID"]) == "<md.ack.TS1.abc.def@corp.test>"
    assert str(parsed["In-Reply-To"]) == "<req-1@corp.test>"
    assert str(parsed["Auto-Submitted"]) == "auto-replied"
    assert parsed["Date"].datetime == AT
    assert raw.decode("ascii")  # 7-bit on the wire
    assert all(len(line) <= 78 for line in raw.split(b"\r\n"))


def test_bodies_are_base64_utf8_with_crlf_line_ends_and_decode_to_the_text() -> None:
    parsed = _parse(_compose(text="第一行\n第二行\r\n", html="<p>好</p>"))
    plain, html = [p for p in parsed.walk() if not p.is_multipart()]
    assert plain["Content-Transfer-Encoding"] == "base64" and plain.get_content_charset() == "utf-8"
    assert plain.get_content() == "第一行\r\n第二行\r\n"
    assert html.get_content_type() == "text/html" and html.get_content() == "<p>好</p>\r\n"
    single = _parse(_compose(html=None))
    assert single.get_content_type() == "text/plain" and single.get_content() == "您好，\r\n已收到。\r\n"


def test_a_literal_encoded_word_in_a_subject_or_name_stays_text_and_injects_nothing() -> None:
    trap = "=?utf-8?q?hi=0D=0ABcc:_x@evil.test?="
    raw = _compose(subject=f"Re: {trap}", to=((trap, "zhang@corp.test"),), loop_marker=trap)
    parsed = _parse(raw)
    assert "Bcc" not in parsed and b"\r\nBcc:" not in raw
    assert str(parsed["Subject"]) == f"Re: {trap}"
    assert parsed["To"].addresses[0].display_name == trap
    assert str(parsed["X-Loop"]) == trap


@pytest.mark.parametrize("separator", ["\r\n", "\n", "\r", "\x00", "\u2028", "\u0085", "\r\n\t"])
def test_control_characters_in_values_never_become_headers(separator: str) -> None:
    evil = f"hi{separator}Bcc: x@evil.test"
    raw = _compose(subject=evil, to=((evil, "zhang@corp.test"),), from_name=evil,
                   in_reply_to=f"<a@b{separator}Bcc:x@evil.test>", references=(f"<r@b{separator}To:y@evil.test>",))
    parsed = _parse(raw)
    assert list(parsed.keys()) == ACK_HEADERS
    assert str(parsed["Subject"]) == clean_header_value(evil)
    assert [a.addr_spec for a in parsed["To"].addresses] == ["zhang@corp.test"]


def test_long_subjects_and_many_recipients_fold_and_read_back_whole() -> None:
    subject = "打印机坏了 " * 40 + "printer broken " * 20
    people = tuple((f"Agent {i} “引号”", f"agent{i}@corp.test") for i in range(12))
    raw = _compose(subject=subject, to=people, kind="new_ticket_notice")
    parsed = _parse(raw)
    assert str(parsed["Subject"]) == clean_header_value(subject)
    assert [(a.display_name, a.addr_spec) for a in parsed["To"].addresses] == list(people)
    assert str(parsed["Auto-Submitted"]) == "auto-generated" and str(parsed["Precedence"]) == "bulk"
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78


def test_ascii_names_with_specials_are_quoted() -> None:
    people = (('Bob "the" Smith, Jr.', "bob@corp.test"), ("Back\\slash", "b@corp.test"), ("", "c@corp.test"))
    parsed = _parse(_compose(to=people))
    assert [(a.display_name, a.addr_spec) for a in parsed["To"].addresses] == list(people)


def test_undeliverable_recipients_are_left_out_and_none_left_is_refused() -> None:
    raw = _compose(to=(("x", "zhang@corp.test"), ("y", "bad address@corp.test"), ("z", "a@b>c")))
    assert [a.addr_spec for a in _parse(raw)["To"].addresses] == ["zhang@corp.test"]
    with pytest.raises(ValueError, match="no deliverable recipient"):
        _compose(to=(("y", "not-an-address"),))


def test_mail_written_by_a_person_carries_no_automatic_markers() -> None:
    parsed = _parse(_compose(kind="agent_reply", automatic=False))
    assert "Auto-Submitted" not in parsed and "Precedence" not in parsed
    assert "X-Auto-Response-Suppress" not in parsed


def test_an_address_that_looks_like_an_encoded_word_is_not_deliverable() -> None:
    hidden = "=?utf-8?q?a=0D=0ARCPT_TO=3A=3Cx=40evil=2Etest=3E?=@corp.test"
    assert safe_address(hidden) is None
    raw = _compose(to=(("", hidden), ("", "zhang@corp.test")))
    assert [a.addr_spec for a in _parse(raw)["To"].addresses] == ["zhang@corp.test"]
