"""Hypothesis: random and broken MIME trees never make ``parse_mail`` raise, and its limits hold."""

from __future__ import annotations

import base64
import quopri
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maildesk.domain import ParsedMail
from maildesk.ingest.parse import ParseLimits, parse_mail

LIMITS = ParseLimits(max_depth=6, max_parts=40, max_text_chars=3000, max_header_bytes=2048)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CHARSETS = ["utf-8", "gb2312", "gbk", "gb18030", "big5", "iso-2022-jp", "x-unknown", '"GBK"', "unicode-1-1-utf-7", "", "utf-8*zh"]
ENCODINGS = ["base64", "quoted-printable", "7bit", "8bit", "binary", "x-uuencode", "bogus"]
LEAF_TYPES = ["text/plain", "text/html", "application/pdf", "image/png", "application/ms-tnef", "message/rfc822",
              "message/delivery-status", "text/calendar", "text", "multipart/mixed"]
SUBTYPES = ["mixed", "alternative", "related", "report", "signed", "digest"]
TEXTS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200) | st.sampled_from(
    ["打印机无法打印", "<p>VPN<br>断开</p><script>x</script>", "=?utf-8?B?5Lit?=", "\x00\r\n\r\n--b--", "Re: 【技术支持】TS20261123001"])


@dataclass
class Leaf:
    ctype: str
    charset: str
    cte: str
    body: bytes
    filename: str | None


@dataclass
class Node:
    subtype: str
    boundary: str
    children: list[Leaf | Node]


def _encode(text: str, charset: str) -> bytes:
    try:
        return text.encode(charset.strip('"').split("*")[0] or "utf-8")
    except (LookupError, UnicodeEncodeError):
        return text.encode("utf-8", "replace")


@st.composite
def leaves(draw: st.DrawFn) -> Leaf:
    charset = draw(st.sampled_from(CHARSETS))
    body = draw(st.one_of(TEXTS.map(lambda t: _encode(t, charset)), st.binary(max_size=300)))
    name = draw(st.none() | st.sampled_from(["a.pdf", "=?gb2312?B?sai07S5kb2M=?=", "报错.png", "..\\..\\x.exe", ""]))
    return Leaf(draw(st.sampled_from(LEAF_TYPES)), charset, draw(st.sampled_from(ENCODINGS)), body, name)


boundaries = st.text(alphabet="abcXYZ0123456789'()+_,-./:=? ", min_size=1, max_size=20)
trees = st.recursive(leaves(), lambda children: st.builds(Node, st.sampled_from(SUBTYPES), boundaries,
                                                            st.lists(children, max_size=5)), max_leaves=25)


def _render_leaf(leaf: Leaf) -> bytes:
    body = leaf.body
    if leaf.cte == "base64":
        body = base64.encodebytes(body)
    elif leaf.cte == "quoted-printable":
        body = quopri.encodestring(body)
    header = f"Content-Type: {leaf.ctype}; charset={leaf.charset}"
    if leaf.filename is not None:
        header += f'\r\nContent-Disposition: attachment; filename="{leaf.filename}"'
    return f"{header}\r\nContent-Transfer-Encoding: {leaf.cte}\r\n\r\n".encode() + body


def render(tree: Leaf | Node) -> bytes:
    if isinstance(tree, Leaf):
        return _render_leaf(tree)
    out = f'Content-Type: multipart/{tree.subtype}; boundary="{tree.boundary}"\r\n\r\n'.encode()
    for child in tree.children:
        out += f"--{tree.boundary}\r\n".encode() + render(child) + b"\r\n"
    return out + f"--{tree.boundary}--\r\n".encode()


def count(tree: Leaf | Node) -> tuple[int, int]:
    """(parts, depth) of a tree as written."""
    if isinstance(tree, Leaf):
        return 1, 0
    sizes = [count(child) for child in tree.children]
    return 1 + sum(parts for parts, _ in sizes), 1 + max((depth for _, depth in sizes), default=0)


HEADERS = (b"From: =?gb2312?B?1cXI/Q==?= <a@B.example>\r\nTo: x@y.example, \"q, r\" <r@s.example>\r\nSubject: fuzz\r\n"
           b"Message-ID: <m@x>\r\nDate: Mon, 23 Nov 2026 09:15:02 +0800\r\nMIME-Version: 1.0\r\n")


def _check(mail: ParsedMail) -> None:
    assert isinstance(mail, ParsedMail)
    assert len(mail.body_text) <= LIMITS.max_text_chars
    assert len(mail.references) <= LIMITS.max_references
    assert all(isinstance(item, str) for item in mail.defects)
    assert mail.truncated or not any(defect.startswith("limit:") for defect in mail.defects)


@FUZZ
@given(tree=trees)
def test_random_mime_trees_parse_within_limits(tree: Leaf | Node) -> None:
    mail = parse_mail(HEADERS + render(tree), limits=LIMITS)
    _check(mail)
    parts, depth = count(tree)
    if parts > LIMITS.max_parts or depth > LIMITS.max_depth:
        assert mail.truncated
    assert len(mail.attachments) <= LIMITS.max_parts * 2  # a forwarded mail is one file plus its own parts


@FUZZ
@given(tree=trees, cut=st.floats(min_value=0, max_value=1), crlf=st.booleans(),
       noise=st.lists(st.tuples(st.integers(min_value=0), st.binary(min_size=1, max_size=4)), max_size=5))
def test_truncated_and_corrupted_mime_never_raises(tree: Leaf | Node, cut: float, crlf: bool,
                                                   noise: list[tuple[int, bytes]]) -> None:
    raw = bytearray(HEADERS + render(tree))
    for position, junk in noise:
        index = position % (len(raw) + 1)
        raw[index:index] = junk
    data = bytes(raw[: int(len(raw) * cut)])
    _check(parse_mail(data if crlf else data.replace(b"\r\n", b"\n"), limits=LIMITS))


@FUZZ
@given(raw=st.binary(max_size=3000))
def test_random_bytes_never_raise(raw: bytes) -> None:
    _check(parse_mail(raw, limits=LIMITS))


header_names = st.sampled_from(["From", "To", "Cc", "Subject", "Date", "Message-ID", "References", "In-Reply-To",
                                "Content-Type", "Content-Disposition", "Reply-To", "Sender", "X-Junk"])
header_values = st.one_of(TEXTS, st.sampled_from([
    "=?utf-8?B?5Lit?==?utf-8?Q?=E6=96?=", "=?gbk?B?!!!?=", "<<a@b>>", "a@b.c)<d@e.f>", '"unterminated', "(((comment",
    "multipart/mixed; boundary=", "attachment; filename*0*=x''%ZZ; filename*1=", "=?iso-2022-jp?B?GyRC?=", "<a@b> <c@d> junk",
]))


@FUZZ
@given(headers=st.lists(st.tuples(header_names, header_values), max_size=15), body=TEXTS)
def test_random_header_soup_never_raises(headers: list[tuple[str, str]], body: str) -> None:
    raw = b"".join(f"{name}: {value}\r\n".encode("utf-8", "surrogateescape") for name, value in headers)
    _check(parse_mail(raw + b"\r\n" + body.encode(), limits=LIMITS))


def test_nesting_far_deeper_than_the_python_stack_still_returns_a_mail() -> None:
    depth = 3000
    raw = b"".join(b'Content-Type: multipart/mixed; boundary="d%d"\r\n\r\n--d%d\r\n' % (n, n) for n in range(depth))
    mail = parse_mail(HEADERS + raw, limits=LIMITS)
    assert isinstance(mail, ParsedMail) and mail.truncated
