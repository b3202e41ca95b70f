"""Read Outlook's winmail.dat (application/ms-tnef): the message body and the files inside it.

Pure: ``struct`` over bytes.  Covers the TNEF stream ([MS-OXTNEF]), MAPI property
lists, compressed RTF ([MS-OXRTFCP]) and a small RTF reader that gives plain
text, or the HTML that Outlook encapsulated in the RTF (``\\fromhtml1``).
``read_tnef`` raises ``TnefError`` on a stream it cannot read; callers keep the
original winmail.dat in that case.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

TNEF_SIGNATURE = 0x223E9F78
_LVL_MESSAGE, _LVL_ATTACHMENT = 1, 2
# attribute ids (low 16 bits of the attribute tag)
_ATT_BODY, _ATT_ATTACH_TITLE, _ATT_ATTACH_DATA = 0x800C, 0x8010, 0x800F
_ATT_RENDDATA, _ATT_MSG_PROPS, _ATT_ATTACH_PROPS = 0x9002, 0x9003, 0x9005
# MAPI property ids
PR_BODY, PR_RTF_COMPRESSED, PR_BODY_HTML = 0x1000, 0x1009, 0x1013
PR_ATTACH_DATA, PR_ATTACH_FILENAME, PR_ATTACH_LONG_FILENAME = 0x3701, 0x3704, 0x3707
PR_ATTACH_MIME_TAG, PR_ATTACH_CONTENT_ID = 0x370E, 0x3712
_FIXED_SIZES = {0x2: 4, 0x3: 4, 0x4: 4, 0x5: 8, 0x6: 8, 0x7: 8, 0xA: 4, 0xB: 4, 0x14: 8, 0x40: 8, 0x48: 16}
_VARIABLE = frozenset({0x1E, 0x1F, 0x102, 0xD})
_PT_UNICODE, _PT_OBJECT, _MV_FLAG = 0x1F, 0xD, 0x1000


class TnefError(ValueError):
    """The bytes are not a TNEF stream this reader understands."""


@dataclass
class TnefFile:
    filename: str = ""
    data: bytes = b""
    content_type: str = "application/octet-stream"
    content_id: str | None = None


@dataclass
class TnefContent:
    body_text: str = ""
    body_html: str | None = None
    attachments: list[TnefFile] = field(default_factory=list)


def _u16(data: bytes, at: int) -> int:
    return int(struct.unpack_from("<H", data, at)[0])


def _u32(data: bytes, at: int) -> int:
    return int(struct.unpack_from("<I", data, at)[0])


def _string8(raw: bytes) -> str:
    raw = raw.split(b"\x00", 1)[0]
    for codec in ("utf-8", "gb18030", "cp1252"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def _read_fixed(data: bytes, at: int, ptype: int) -> tuple[bytes, int]:
    """One fixed-size property value and the offset after it."""
    size = _FIXED_SIZES[ptype]
    if at + size > len(data):
        raise TnefError("property value runs past the end")
    return data[at : at + size], at + size


def _skip_name(data: bytes, at: int) -> int:
    kind = _u32(data, at + 16)
    if kind == 0:
        return at + 24
    length = _u32(data, at + 20)
    return at + 24 + length + (-length % 4)


def parse_props(data: bytes) -> dict[int, tuple[int, bytes]]:
    """MAPI property list → {property id: (type, raw value)}; multi-valued props keep their first value."""
    props: dict[int, tuple[int, bytes]] = {}
    count, at = _u32(data, 0), 4
    for _ in range(count):
        ptype, pid = _u16(data, at), _u16(data, at + 2)
        at = _skip_name(data, at + 4) if pid >= 0x8000 else at + 4
        base = ptype & ~_MV_FLAG
        values = 1
        if ptype & _MV_FLAG or base in _VARIABLE:
            values, at = _u32(data, at), at + 4
        if base not in _FIXED_SIZES and base not in _VARIABLE:
            raise TnefError(f"unknown MAPI property type 0x{ptype:04x}")
        first = b""
        for index in range(values):
            value, at = _read_fixed(data, at, base) if base in _FIXED_SIZES else _read_counted(data, at)
            first = value if index == 0 else first
        props.setdefault(pid, (base, first))
    return props


def _read_counted(data: bytes, at: int) -> tuple[bytes, int]:
    length = _u32(data, at)
    end = at + 4 + length
    if end > len(data):
        raise TnefError("property value runs past the end")
    return data[at + 4 : end], end + (-length % 4)


def _prop_text(props: dict[int, tuple[int, bytes]], pid: int) -> str | None:
    if pid not in props:
        return None
    ptype, raw = props[pid]
    if ptype == _PT_UNICODE:
        return raw.decode("utf-16-le", errors="replace").rstrip("\x00")
    return _string8(raw)


def _attachment_from_props(target: TnefFile, props: dict[int, tuple[int, bytes]]) -> None:
    name = _prop_text(props, PR_ATTACH_LONG_FILENAME) or _prop_text(props, PR_ATTACH_FILENAME)
    if name:
        target.filename = name
    if PR_ATTACH_DATA in props:
        ptype, raw = props[PR_ATTACH_DATA]
        target.data = raw[16:] if ptype == _PT_OBJECT else raw  # objects start with a 16-byte IID
    mime = _prop_text(props, PR_ATTACH_MIME_TAG)
    if mime and "/" in mime:
        target.content_type = mime.strip().lower()
    cid = _prop_text(props, PR_ATTACH_CONTENT_ID)
    if cid:
        target.content_id = cid.strip().strip("<>")


def _body_from_props(content: TnefContent, props: dict[int, tuple[int, bytes]]) -> None:
    text = _prop_text(props, PR_BODY)
    if text and text.strip():
        content.body_text = text
    if PR_BODY_HTML in props:
        content.body_html = _string8(props[PR_BODY_HTML][1])
    if not content.body_text and content.body_html is None and PR_RTF_COMPRESSED in props:
        rtf = decompress_rtf(props[PR_RTF_COMPRESSED][1])
        content.body_text, content.body_html = rtf_to_text(rtf)


def _attributes(data: bytes) -> list[tuple[int, int, bytes]]:
    if len(data) < 6 or _u32(data, 0) != TNEF_SIGNATURE:
        raise TnefError("no TNEF signature")
    found: list[tuple[int, int, bytes]] = []
    at = 6
    while at + 9 <= len(data):
        level, tag, length = data[at], _u32(data, at + 1), _u32(data, at + 5)
        start = at + 9
        if start + length > len(data):
            raise TnefError("attribute runs past the end of the stream")
        found.append((level, tag & 0xFFFF, data[start : start + length]))
        at = start + length + 2  # 16-bit checksum
    return found


def read_tnef(data: bytes) -> TnefContent:
    """Body and attachments of a TNEF stream; raises TnefError when it cannot be read."""
    content = TnefContent()
    try:
        for level, attr, value in _attributes(data):
            if attr == _ATT_RENDDATA and level == _LVL_ATTACHMENT:
                content.attachments.append(TnefFile())
            elif level == _LVL_ATTACHMENT and content.attachments:
                _attachment_attr(content.attachments[-1], attr, value)
            elif attr == _ATT_BODY and not content.body_text:
                content.body_text = _string8(value)
            elif attr == _ATT_MSG_PROPS:
                _body_from_props(content, parse_props(value))
    except (struct.error, IndexError) as error:
        raise TnefError(f"truncated TNEF stream: {error}") from error
    content.attachments = [item for item in content.attachments if item.filename or item.data]
    return content


def _attachment_attr(target: TnefFile, attr: int, value: bytes) -> None:
    if attr == _ATT_ATTACH_TITLE and not target.filename:
        target.filename = _string8(value)
    elif attr == _ATT_ATTACH_DATA:
        target.data = value
    elif attr == _ATT_ATTACH_PROPS:
        _attachment_from_props(target, parse_props(value))


# --- compressed RTF ([MS-OXRTFCP]) ---------------------------------------------------------------

_RTF_PREBUF = (
    b"{\\rtf1\\ansi\\mac\\deff0\\deftab720{\\fonttbl;}{\\f0\\fnil \\froman \\fswiss \\fmodern \\fscript "
    b"\\fdecor MS Sans SerifSymbolArialTimes New RomanCourier{\\colortbl\\red0\\green0\\blue0\r\n\\par "
    b"\\pard\\plain\\f0\\fs20\\b\\i\\u\\tab\\tx"
)
_MAGIC_COMPRESSED, _MAGIC_PLAIN = 0x75465A4C, 0x414C454D


def decompress_rtf(data: bytes) -> bytes:
    """The RTF text of a PR_RTF_COMPRESSED value."""
    if len(data) < 16:
        raise TnefError("compressed RTF header is short")
    size, raw_size, magic = _u32(data, 0), _u32(data, 4), _u32(data, 8)
    body = data[16 : 4 + size]
    if magic == _MAGIC_PLAIN:
        return body[:raw_size]
    if magic != _MAGIC_COMPRESSED:
        raise TnefError("unknown compressed RTF magic")
    window = bytearray(_RTF_PREBUF.ljust(4096, b"\x00"))
    write, out, at = len(_RTF_PREBUF), bytearray(), 0
    while at < len(body):
        control, at = body[at], at + 1
        for bit in range(8):
            if at >= len(body):
                break
            if not control >> bit & 1:
                window[write], write = body[at], (write + 1) % 4096
                out.append(body[at])
                at += 1
                continue
            token, at = body[at] << 8 | body[at + 1], at + 2
            offset, length = token >> 4, (token & 0xF) + 2
            if offset == write:
                return bytes(out)
            for step in range(length):
                byte = window[(offset + step) % 4096]
                window[write], write = byte, (write + 1) % 4096
                out.append(byte)
    return bytes(out)


# --- a small RTF reader --------------------------------------------------------------------------

_RTF_TOKEN = re.compile(rb"\\([a-zA-Z]+)(-?\d+)? ?|\\'([0-9a-fA-F]{2})|\\(.)|([{}])|([^\\{}\r\n]+)|[\r\n]+", re.S)
_SKIPPED_DESTINATIONS = frozenset({
    b"fonttbl", b"colortbl", b"stylesheet", b"info", b"pict", b"object", b"header", b"footer",
    b"listtable", b"listoverridetable", b"themedata", b"datastore", b"latentstyles", b"rsidtbl",
    b"generator", b"xmlnstbl", b"mmathPr", b"filetbl", b"revtbl",
})
_BREAKS = {b"par": "\n", b"line": "\n", b"tab": "\t", b"cell": " ", b"row": "\n", b"emdash": "\u2014"}
_SYMBOLS = {b"~": "\u00a0", b"-": "", b"_": "-"}


class _RtfReader:
    """State of one pass over an RTF document: groups, skipped destinations, pending bytes."""

    def __init__(self, codec: str, from_html: bool) -> None:
        self.codec, self.from_html = codec, from_html
        self.chunks: list[str] = []
        self.pending = bytearray()
        self.stack: list[tuple[bool, bool]] = []
        self.skip = self.htmlrtf = self.star = False
        self.uc_skip = 0

    @property
    def hidden(self) -> bool:
        return self.skip or (self.from_html and self.htmlrtf)

    def text(self, value: str) -> None:
        if self.pending:
            self.chunks.append(self.pending.decode(self.codec, errors="replace"))
            self.pending.clear()
        self.chunks.append(value)

    def brace(self, value: bytes) -> None:
        self.text("")
        if value == b"{":
            self.stack.append((self.skip, self.htmlrtf))
        else:
            self.skip, self.htmlrtf = self.stack.pop() if self.stack else (False, False)

    def control(self, word: bytes, arg: bytes | None) -> None:
        if self.star:
            self.star = False
            if not (self.from_html and word == b"htmltag"):
                self.skip = True
                return
        if word in _SKIPPED_DESTINATIONS:
            self.skip = True
        elif word == b"htmlrtf":
            self.htmlrtf = arg != b"0"
        elif self.hidden:
            return
        elif word == b"u" and arg is not None:
            self.text(chr(int(arg) % 0x10000))
            self.uc_skip = 1
        elif word in _BREAKS:
            self.text(_BREAKS[word])

    def feed(self, match: re.Match[bytes]) -> None:
        word, arg, hexbyte, symbol, brace, text = match.groups()
        if brace is not None:
            self.brace(brace)
        elif symbol == b"*":
            self.star = True
        elif word is not None:
            self.control(word, arg)
        elif self.uc_skip and (hexbyte or text):
            self.uc_skip -= 1
            if text and len(text) > 1 and not self.hidden:
                self.text(text[1:].decode(self.codec, errors="replace"))
        elif self.hidden:
            return
        elif hexbyte is not None:
            self.pending.append(int(hexbyte, 16))
        elif symbol is not None:
            self.text(_SYMBOLS.get(symbol, symbol.decode("latin-1")))
        elif text is not None:
            self.text(text.decode(self.codec, errors="replace"))


def rtf_to_text(rtf: bytes) -> tuple[str, str | None]:
    """(plain text, encapsulated HTML or None) of an RTF document."""
    from_html = b"\\fromhtml" in rtf[:1024]
    codepage = re.search(rb"\\ansicpg(\d+)", rtf[:2048])
    codec = f"cp{int(codepage.group(1))}" if codepage else "cp1252"
    codec = "gb18030" if codec == "cp936" else codec
    try:
        "".encode(codec)
    except LookupError:
        codec = "cp1252"
    reader = _RtfReader(codec, from_html)
    for match in _RTF_TOKEN.finditer(rtf):
        reader.feed(match)
    reader.text("")
    result = "".join(reader.chunks)
    if from_html:
        return "", result
    return (result.strip("\n") + "\n" if result.strip() else ""), None
