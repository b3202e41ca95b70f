"""The mail parser and its helpers: charsets, headers, HTML, TNEF, limits, totality."""

from __future__ import annotations

import base64
import re
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest

from maildesk.domain import Address, ParsedMail
from maildesk.ingest import parse as parse_module
from maildesk.ingest.charsets import decode_bytes, decode_header_value, normalize_charset
from maildesk.ingest.headers import parse_addresses, parse_content_header, parse_date, parse_message_ids
from maildesk.ingest.html2text import html_to_text
from maildesk.ingest.parse import DEFAULT_LIMITS, FORWARD_SEPARATOR, ParseLimits, parse_mail, unflow
from maildesk.ingest.tnef import TnefError, decompress_rtf, read_tnef, rtf_to_text

ROOT = Path(__file__).resolve().parents[2]


def _mail(headers: str, body: bytes = b"body\r\n") -> bytes:
    return headers.strip().replace("\n", "\r\n").encode() + b"\r\n\r\n" + body


# --- charsets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("label", "codec"), [
    ("gb2312", "gb18030"), ("GBK", "gb18030"), ("x-gbk", "gb18030"), ("cp936", "gb18030"), ('"GB2312"', "gb18030"),
    ("big5", "cp950"), ("ks_c_5601-1987", "cp949"), ("unicode-1-1-utf-7", "utf-7"), (" 'UTF8' ", "utf-8"),
    ("utf-8*zh-cn", "utf-8"), ("iso-2022-jp", "iso2022_jp_ext"), ("no-such-charset", None), ("", None), (None, None),
])
def test_charset_labels_from_the_wild_map_to_codecs_that_decode_them(label: str | None, codec: str | None) -> None:
    assert normalize_charset(label) == codec


def test_gb2312_label_decodes_gbk_only_characters_without_defect() -> None:
    assert decode_bytes("朱镕基喆".encode("gbk"), "gb2312") == ("朱镕基喆", None)


def test_a_short_gbk_name_that_is_valid_utf8_by_accident_stays_gbk() -> None:
    assert decode_bytes("郑伟".encode("gbk"), "gb2312") == ("郑伟", None)


def test_utf8_content_under_a_gb2312_label_is_read_as_utf8_with_a_defect() -> None:
    text, defect = decode_bytes("财务系统无法登录".encode(), "gb2312")
    assert text == "财务系统无法登录"
    assert defect is not None and "decoded as utf-8" in defect


def test_big5_falls_back_to_hkscs_for_hong_kong_characters() -> None:
    assert decode_bytes("開唔到機㗎".encode("big5hkscs"), "big5") == ("開唔到機㗎", None)


def test_iso_2022_jp_is_decoded_although_its_bytes_are_ascii() -> None:
    assert decode_bytes("日本語".encode("iso-2022-jp"), "iso-2022-jp") == ("日本語", None)


def test_undecodable_bytes_are_replaced_and_reported() -> None:
    text, defect = decode_bytes(b"ok \xff\xfe\xfd", "utf-8")
    assert text.startswith("ok ") and "\ufffd" in text
    assert defect is not None and "replaced" in defect


def test_encoded_words_split_inside_a_character_are_joined_before_decoding() -> None:
    raw = "打印机".encode()
    value = f"=?UTF-8?B?{base64.b64encode(raw[:4]).decode()}?=\r\n =?UTF-8?B?{base64.b64encode(raw[4:]).decode()}?= ok"
    assert decode_header_value(value) == ("打印机 ok", [])


def test_words_of_gb2312_and_gbk_labels_count_as_one_charset_when_joined() -> None:
    raw = "王堃".encode("gbk")
    value = f"=?gb2312?B?{base64.b64encode(raw[:3]).decode()}?= =?GBK?B?{base64.b64encode(raw[3:]).decode()}?="
    assert decode_header_value(value)[0] == "王堃"


def test_header_text_keeps_spaces_between_words_and_plain_text_and_drops_line_breaks() -> None:
    assert decode_header_value("Re: =?utf-8?Q?VPN_=E6=96=AD?= again\r\n\tand\rmore")[0] == "Re: VPN 断 again\tand more"


def test_raw_gbk_in_a_header_is_decoded_with_a_defect_and_raw_utf8_without() -> None:
    gbk = "故障".encode("gbk").decode("ascii", "surrogateescape")
    utf8 = "故障".encode().decode("ascii", "surrogateescape")
    text, defects = decode_header_value(gbk)
    assert text == "故障" and defects and "raw 8-bit" in defects[0]
    assert decode_header_value(utf8) == ("故障", [])


# --- structured headers -----------------------------------------------------------------------------


def test_addresses_keep_quoted_commas_decode_names_and_lower_case_domains() -> None:
    found, defects = parse_addresses('"Zhang, San" <San.Zhang@Corp.EXAMPLE.com>, li@x.cn (Li Si); =?gb2312?B?1cXI/Q==?= <zs@a.cn>')
    assert found == (Address("San.Zhang@corp.example.com", "Zhang, San"), Address("li@x.cn", "Li Si"), Address("zs@a.cn", "张三"))
    assert defects == []


@pytest.mark.parametrize("value", [
    "alice@example.org)<bob@example.com>",   # CVE-2023-27043: must not become alice or bob silently
    "<a@b.example> trailing@c.example",
    "noatsign",
    '"unterminated <x@y.example>',
])
def test_ambiguous_addresses_are_dropped_with_a_defect_instead_of_guessed(value: str) -> None:
    found, defects = parse_addresses(value)
    assert found == ()
    assert defects


def test_a_display_name_that_looks_like_an_address_does_not_replace_the_real_one() -> None:
    found, _ = parse_addresses('"ceo@corp.example.com" <attacker@evil.example>')
    assert found == (Address("attacker@evil.example", "ceo@corp.example.com"),)


def test_groups_and_undisclosed_recipients_yield_only_mailboxes() -> None:
    found, defects = parse_addresses("undisclosed-recipients:;, Team: a@x.example, b@x.example;")
    assert [a.addr for a in found] == ["a@x.example", "b@x.example"] and defects == []


def test_message_ids_lose_brackets_whitespace_and_duplicates() -> None:
    assert parse_message_ids("<a@b>\r\n <c@d>\t<a@b>") == ("a@b", "c@d")
    assert parse_message_ids("<abc\r\n def@host>") == ("abcdef@host",)
    assert parse_message_ids("bare@id.example") == ("bare@id.example",)
    assert parse_message_ids("") == ()


def test_dates_become_aware_utc_and_a_missing_zone_is_reported() -> None:
    assert parse_date("Mon, 23 Nov 2026 09:15:02 +0800") == (datetime(2026, 11, 23, 1, 15, 2, tzinfo=UTC), [])
    stamp, defects = parse_date("Mon, 23 Nov 2026 09:15:02")
    assert stamp == datetime(2026, 11, 23, 9, 15, 2, tzinfo=UTC) and "no time zone" in defects[0]
    assert parse_date("next tuesday")[0] is None
    assert parse_date("Mon, 31 Feb 2026 09:15:02 +0800")[0] is None


def test_content_parameters_follow_rfc2231_and_the_rfc2047_words_in_quotes() -> None:
    main, params, _ = parse_content_header("attachment;\r\n filename*0*=utf-8''%E6%8A%A5%E9%94;\r\n filename*1*=%99.png")
    assert (main, params["filename"]) == ("attachment", "报错.png")
    assert parse_content_header('application/pdf; name="=?gb2312?B?sai07S5kb2M=?="')[1]["name"] == "报错.doc"
    assert parse_content_header('"text/html"; charset="GB2312"')[:2] == ("text/html", {"charset": "GB2312"})


# --- HTML -------------------------------------------------------------------------------------------


def test_html_blocks_breaks_lists_and_links_become_readable_text() -> None:
    html = ("<head><title>T</title><style>p{}</style></head><div>A&nbsp;&amp;&nbsp;B</div><div><br></div>"
            "<ul><li>one</li><li>two <a href='https://kb.example/12'>KB</a></li></ul>"
            "<p><a href='https://x.example'>https://x.example</a> <a href='mailto:it@x.example'>it@x.example</a></p>"
            "<script>alert(1)</script><blockquote><p>old</p></blockquote>end")
    assert html_to_text(html) == "A & B\n\n- one\n- two KB (https://kb.example/12)\nhttps://x.example it@x.example\n> old\nend"


def test_html_text_respects_its_limit_and_survives_broken_markup() -> None:
    assert len(html_to_text("<p>" + "x" * 5000, limit=100)) <= 100
    assert html_to_text("<div><<<>>></b></p><a href=") is not None


# --- TNEF -------------------------------------------------------------------------------------------


def test_compressed_rtf_example_of_ms_oxrtfcp_decompresses() -> None:
    data = bytes.fromhex("2d0000002b0000004c5a4675f1c5c7a703000a0072637067313235423 20af32068656c0900206277 05b06c647d0a800fa0"
                         .replace(" ", ""))
    assert decompress_rtf(data) == b"{\\rtf1\\ansi\\ansicpg1252\\pard hello world}\r\n"


def test_rtf_text_reads_code_page_escapes_and_unicode() -> None:
    rtf = b"{\\rtf1\\ansi\\ansicpg936{\\fonttbl{\\f0 x;}}\\pard \\'d6\\'d0\\'ce\\'c4\\par \\u8364?ok\\par}"
    assert rtf_to_text(rtf) == ("中文\n\u20acok\n", None)


def test_rtf_with_encapsulated_html_gives_the_html() -> None:
    rtf = (b"{\\rtf1\\ansi\\fromhtml1{\\*\\htmltag19 <html>}\\htmlrtf {\\htmlrtf0 {\\*\\htmltag64 <p>}Hi"
           b"{\\*\\htmltag72 </p>}\\htmlrtf\\par}\\htmlrtf0 {\\*\\mhtmltag0 <dup>}{\\*\\htmltag27 </html>}}")
    assert rtf_to_text(rtf) == ("", "<html><p>Hi</p></html>")


def test_tnef_garbage_and_truncation_raise_tnef_error() -> None:
    with pytest.raises(TnefError):
        read_tnef(b"not tnef at all")
    stream = struct.pack("<IH", 0x223E9F78, 1) + struct.pack("<BII", 1, 0x0002800C, 500) + b"short"
    with pytest.raises(TnefError):
        read_tnef(stream)


def test_tnef_body_attribute_and_attachment_are_read() -> None:
    def attr(level: int, tag: int, data: bytes) -> bytes:
        return struct.pack("<BII", level, tag, len(data)) + data + struct.pack("<H", sum(data) & 0xFFFF)

    stream = (struct.pack("<IH", 0x223E9F78, 1) + attr(1, 0x0002800C, b"Body text\x00")
              + attr(2, 0x00069002, b"\x00" * 14) + attr(2, 0x00018010, b"a.txt\x00") + attr(2, 0x0006800F, b"hello"))
    content = read_tnef(stream)
    assert content.body_text == "Body text"
    assert [(f.filename, f.data) for f in content.attachments] == [("a.txt", b"hello")]


# --- parse_mail -------------------------------------------------------------------------------------


def test_headers_are_decoded_with_lower_case_names_and_no_line_breaks() -> None:
    mail = parse_mail(_mail("From: a@B.Example\nX-Custom: =?utf-8?B?5Lit5paH?=\n continued\nSubject: s"))
    assert mail.headers == (("from", "a@B.Example"), ("x-custom", "中文 continued"), ("subject", "s"))
    assert mail.from_addr == Address("a@b.example")


def test_references_keep_only_the_last_32_ids_and_in_reply_to_loses_brackets() -> None:
    refs = " ".join(f"<id{n}@x>" for n in range(40))
    mail = parse_mail(_mail(f"From: a@b.example\nReferences: {refs}\nIn-Reply-To: <id39@x>\nMessage-ID: < m@x >"))
    assert mail.references == tuple(f"id{n}@x" for n in range(8, 40))
    assert mail.in_reply_to == ("id39@x",)
    assert mail.message_id == "m@x"


def test_forwarded_mail_is_read_after_a_separator_with_its_headers_and_files() -> None:
    inner = _mail("From: Vendor <v@vendor.example>\nSubject: key\nDate: Fri, 20 Nov 2026 16:45:00 +0000\nMessage-ID: <i@v>",
                  b"the key\r\n")
    raw = _mail('From: a@b.example\nContent-Type: multipart/mixed; boundary="b"',
                b"--b\r\nContent-Type: text/plain\r\n\r\nsee below\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--b--\r\n")
    mail = parse_mail(raw)
    assert mail.body_text == (f"see below\n\n{FORWARD_SEPARATOR}\nFrom: Vendor <v@vendor.example>\n"
                              "Date: Fri, 20 Nov 2026 16:45:00 +0000\nSubject: key\n\nthe key")
    assert [a.content_type for a in mail.attachments] == ["message/rfc822"]
    assert b"Message-ID: <i@v>" in mail.attachments[0].data


def test_alternative_prefers_plain_and_keeps_the_html_for_body_html() -> None:
    raw = _mail('From: a@b.example\nContent-Type: multipart/alternative; boundary="b"',
                b"--b\r\nContent-Type: text/plain\r\n\r\nplain words\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>html words</p>\r\n--b--\r\n")
    mail = parse_mail(raw)
    assert mail.body_text == "plain words"
    assert mail.body_html is not None and "html words" in mail.body_html


def test_inline_image_keeps_its_content_id_and_is_marked_inline() -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    raw = _mail('From: a@b.example\nContent-Type: multipart/related; boundary="b"',
                f"--b\r\nContent-Type: text/html\r\n\r\n<img src=cid:i1>\r\n--b\r\nContent-Type: image/png\r\nContent-ID: <i1>\r\n"
                f"Content-Transfer-Encoding: base64\r\n\r\n{png}\r\n--b--\r\n".encode())
    (image,) = parse_mail(raw).attachments
    assert (image.content_id, image.inline, image.data) == ("i1", True, b"\x89PNG fake")


def test_path_elements_are_removed_from_attachment_names() -> None:
    raw = _mail('From: a@b.example\nContent-Type: multipart/mixed; boundary="b"',
                b'--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="C:\\\\Users\\\\x\\\\..\\\\evil.exe"'
                b"\r\n\r\ndata\r\n--b--\r\n")
    assert parse_mail(raw).attachments[0].filename == "evil.exe"


def test_format_flowed_soft_breaks_are_joined() -> None:
    assert unflow("one \ntwo\n-- \nsig") == "one two\n-- \nsig"
    assert unflow("one \ntwo", delsp=True) == "onetwo"
    assert unflow(" From me") == "From me"


def _multipart(count: int) -> bytes:
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % n for n in range(count))
    return _mail('From: a@b.example\nContent-Type: multipart/mixed; boundary="b"', parts + b"--b--\r\n")


def test_more_parts_than_the_limit_truncate_the_mail_and_say_which_limit() -> None:
    mail = parse_mail(_multipart(50), limits=ParseLimits(max_parts=10))
    assert mail.truncated
    assert any("max_parts" in defect for defect in mail.defects)
    assert mail.body_text.count("part ") == 9  # the root counts as a part
    assert not parse_mail(_multipart(50)).truncated


def test_text_beyond_the_limit_is_cut_and_reported() -> None:
    mail = parse_mail(_mail("From: a@b.example", b"x" * 5000), limits=ParseLimits(max_text_chars=1000))
    assert len(mail.body_text) == 1000 and mail.truncated
    assert any("max_text_chars" in defect for defect in mail.defects)


def test_a_huge_header_block_is_cut_and_the_body_kept() -> None:
    raw = _mail("From: a@b.example\n" + "".join(f"X-Junk-{n}: {'y' * 90}\n" for n in range(200)) + "Subject: late", b"the body\r\n")
    mail = parse_mail(raw, limits=ParseLimits(max_header_bytes=4096))
    assert mail.truncated and mail.body_text == "the body"
    assert any("max_header_bytes" in defect for defect in mail.defects)
    assert mail.subject == ""


def test_limits_refuse_impossible_values_with_a_sentence() -> None:
    with pytest.raises(ValueError, match="max_depth must be at least 1"):
        ParseLimits(max_depth=0)
    assert DEFAULT_LIMITS.max_depth == 20 and DEFAULT_LIMITS.max_references == 32


@pytest.mark.parametrize("raw", [b"", b"\x00" * 100, b"\xff\xfe garbage", b"From:\r\n\r\n", b"Content-Type: multipart/mixed\r\n\r\n--",
                                 "not bytes at all"])
def test_parse_mail_never_raises_and_always_returns_a_parsed_mail(raw: bytes) -> None:
    assert isinstance(parse_mail(raw), ParsedMail)


def test_an_internal_crash_becomes_a_defect_and_the_headers_are_still_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(parse_module, "_walk", explode)
    mail = parse_mail(_mail("From: a@b.example\nSubject: still here\nMessage-ID: <m@x>"))
    assert (mail.subject, mail.message_id, mail.truncated) == ("still here", "m@x", True)
    assert any("RuntimeError" in defect for defect in mail.defects)


def test_a_failing_quote_stripper_keeps_the_whole_body_as_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(text: str) -> str:
        raise ValueError("bad")

    monkeypatch.setattr(parse_module, "extract_reply", explode)
    mail = parse_mail(_mail("From: a@b.example", b"hello\r\n"))
    assert mail.reply_text == "hello"
    assert any("quote stripping failed" in defect for defect in mail.defects)


_FORBIDDEN = re.compile(r"(?<!def )\b(?:now|today|utcnow)\(|time\.time\(|(?<![\w.])open\(|\benviron\b")


@pytest.mark.parametrize("module", ["parse", "charsets", "headers", "html2text", "tnef", "describe"])
def test_parser_modules_read_no_clock_file_or_environment(module: str) -> None:
    source = (ROOT / "maildesk" / "ingest" / f"{module}.py").read_text(encoding="utf-8")
    offences = [line for line in source.splitlines() if _FORBIDDEN.search(line.split("#", 1)[0])]
    assert not offences


@pytest.mark.parametrize("raw", [
    b"Subject: " + b"=?a?B?xx " * 25000 + b"\r\n\r\nx",
    b"To: " + b"a@b.example," * 20000 + b">\r\n\r\nx",
    b"To: " + b'"a", ' * 50000 + b"\r\n\r\nx",
    b"Content-Type: text/html\r\n\r\n" + b"<a href=x>" * 50000 + b"t" + b"</a>" * 50000,
], ids=["open-encoded-words", "commas-then-bracket", "quoted-names", "nested-links"])
def test_hostile_headers_and_html_are_read_in_linear_time(raw: bytes) -> None:
    import time

    started = time.process_time()
    assert isinstance(parse_mail(raw), ParsedMail)
    assert time.process_time() - started < 3.0  # CPU, not wall-clock: quadratic versions of these took minutes


def test_a_long_plain_address_list_is_split_completely() -> None:
    found, defects = parse_addresses(", ".join(f"user{n}@Corp.Example" for n in range(5000)))
    assert len(found) == 5000 and defects == [] and found[-1].addr == "user4999@corp.example"
