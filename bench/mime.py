"""Writing MIME by hand for the corpus: encoded words, text parts in a charset, multiparts, CRLF.

Hand-written rather than ``email.message.EmailMessage`` so that generating 50,000 mails takes seconds and
the bytes are exactly what the generator chose (charset, transfer encoding, folding), like real clients.
"""

from __future__ import annotations

import base64
import html
import quopri

CRLF = "\r\n"


def encode_word(text: str, charset: str) -> str:
    """``text`` as RFC 2047 base64 encoded words (ASCII text stays as it is), each under 76 characters."""
    if text.isascii():
        return text
    words: list[str] = []
    chunk = ""
    for char in text:
        if len((chunk + char).encode(charset)) > 42:
            words.append(_word(chunk, charset))
            chunk = ""
        chunk += char
    if chunk:
        words.append(_word(chunk, charset))
    return "\r\n ".join(words)


def _word(text: str, charset: str) -> str:
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode('ascii')}?="


def address(name: str, addr: str, charset: str) -> str:
    if not name:
        return addr
    shown = encode_word(name, charset) if not name.isascii() else f'"{name}"'
    return f"{shown} <{addr}>"


def pick_charset(text: str, wanted: str) -> str:
    """``wanted`` when it can encode ``text``, else the next wider of GB2312 → GBK → UTF-8."""
    order = ("us-ascii", "gb2312", "gbk", "utf-8")
    for charset in order[order.index(wanted):] if wanted in order else ("utf-8",):
        try:
            text.encode(charset)
        except UnicodeEncodeError:
            continue
        return charset
    return "utf-8"


def text_part(text: str, subtype: str, charset: str, cte: str) -> str:
    """A leaf part (headers and body) of ``text`` in ``charset`` with transfer encoding ``cte``."""
    data = text.replace("\n", CRLF).encode(charset)
    if cte == "base64":
        body = _base64_lines(data)
    elif cte == "quoted-printable":
        body = quopri.encodestring(data).decode("ascii").replace("\r\n", "\n").replace("\n", CRLF)
    else:
        cte = "8bit" if not data.isascii() else "7bit"
        body = data.decode(charset)
    head = f"Content-Type: text/{subtype}; charset=\"{charset}\"{CRLF}Content-Transfer-Encoding: {cte}{CRLF}"
    return head + CRLF + body


def binary_part(data: bytes, filename: str, ctype: str) -> str:
    shown = encode_word(filename, "utf-8")
    return (f"Content-Type: {ctype}; name=\"{shown}\"{CRLF}Content-Transfer-Encoding: base64{CRLF}"
            f"Content-Disposition: attachment; filename=\"{shown}\"{CRLF}{CRLF}{_base64_lines(data)}")


def multipart(subtype: str, boundary: str, parts: list[str]) -> str:
    out = [f"Content-Type: multipart/{subtype}; boundary=\"{boundary}\"{CRLF}{CRLF}"
           f"This is a multi-part message in MIME format.{CRLF}"]
    for part in parts:
        out.append(f"--{boundary}{CRLF}{part}{CRLF}")
    out.append(f"--{boundary}--{CRLF}")
    return "".join(out)


def to_html(text: str, *, outlook: bool, font: str = "Calibri") -> str:
    """The HTML a client makes of ``text``: paragraphs, Outlook's MsoNormal or a webmail's <div>s."""
    paragraphs = []
    for line in text.split("\n"):
        escaped = html.escape(line) or "&nbsp;"
        if outlook:
            paragraphs.append(f"<p class=\"MsoNormal\"><span style=\"font-family:{font}\">{escaped}</span></p>")
        else:
            paragraphs.append(f"<div style=\"font-size:14px\">{escaped}</div>")
    head = "<style>p.MsoNormal{margin:0cm;font-size:11pt}</style>" if outlook else ""
    return (f"<html><head><meta http-equiv=\"Content-Type\" content=\"text/html\">{head}</head>"
            f"<body>\n" + "\n".join(paragraphs) + "\n</body></html>")


def _base64_lines(data: bytes) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return CRLF.join(encoded[i:i + 76] for i in range(0, len(encoded), 76))
