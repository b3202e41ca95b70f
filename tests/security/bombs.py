"""Builders of the hostile mails of H5 (MIME and header bombs) and H6 (compression bombs), deterministic."""

from __future__ import annotations

import base64
import gzip
import struct
import zlib

from .desk import SUPPORT

ONE_MB = 1 << 20


def _mail(name: str, head_extra: bytes, body: bytes, content_type: bytes = b"text/plain; charset=utf-8") -> bytes:
    return (f"From: bomb-{name}@corp.test\r\nTo: {SUPPORT}\r\nSubject: bomb {name}\r\n"
            f"Message-ID: <bomb-{name}@corp.test>\r\nMIME-Version: 1.0\r\n").encode() + head_extra \
        + b"Content-Type: " + content_type + b"\r\n\r\n" + body


def nested(depth: int = 1000) -> bytes:
    body = b"innermost\r\n"
    for level in range(depth):
        body = (f"--n{level}\r\nContent-Type: multipart/mixed; boundary=n{level - 1}\r\n\r\n".encode() + body
                + f"\r\n--n{level}--\r\n".encode()) if level else body
    return _mail("nesting", b"", body, f"multipart/mixed; boundary=n{depth - 1}".encode())


def many_parts(parts: int = 10_000) -> bytes:
    body = b"".join(b"--P\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(parts)) + b"--P--\r\n"
    return _mail("parts", b"", body, b"multipart/mixed; boundary=P")


def huge_header(size: int = ONE_MB) -> bytes:
    return _mail("header", b"X-Junk: " + b"a" * size + b"\r\n", b"body\r\n")


def rfc2231_parameters(count: int = 100_000) -> bytes:
    params = b"".join(b";\r\n p*%d=x" % i for i in range(count))
    part = b"--R\r\nContent-Type: text/plain" + params + b"\r\n\r\nhello\r\n--R--\r\n"
    return _mail("rfc2231", b"", part, b"multipart/mixed; boundary=R")


def semicolons(count: int = 1_000_000) -> bytes:
    part = b"--S\r\nContent-Type: text/plain" + b";" * count + b"\r\n\r\nhello\r\n--S--\r\n"
    return _mail("semicolons", b"", part, b"multipart/mixed; boundary=S")


def long_line(size: int = 10 * ONE_MB) -> bytes:
    return _mail("longline", b"", b"x" * size)


def gzip_body(expanded: int = 64 * ONE_MB) -> bytes:
    """A base64 body of gzip data that would expand ~1000x if anything inflated it."""
    data = base64.encodebytes(gzip.compress(b"a" * expanded, 9)).replace(b"\n", b"\r\n")
    return _mail("gzip", b"Content-Encoding: gzip\r\nContent-Transfer-Encoding: base64\r\n", data,
                 b"application/gzip; name=\"logs.gz\"")


def _deflated_zeros(total: int, chunk: int = ONE_MB) -> bytes:
    """Raw deflate of ``total`` zero bytes without compressing them all: after a full flush every chunk
    compresses to the same bytes, so one is repeated."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(bytes(chunk)) + comp.flush(zlib.Z_FULL_FLUSH)
    again = comp.compress(bytes(chunk)) + comp.flush(zlib.Z_FULL_FLUSH)
    assert block == again
    return block * (total // chunk) + comp.flush()


def _crc_of_zeros(total: int) -> int:
    crc, buf = 0, bytes(64 * ONE_MB)
    for _ in range(total // len(buf)):
        crc = zlib.crc32(buf, crc)
    return crc


def zip_of_zeros(entries: int = 10, each: int = 1 << 30) -> bytes:
    """A zip of ``entries`` files of ``each`` zero bytes (default 10 × 1 GiB), built by hand."""
    data, crc = _deflated_zeros(each), _crc_of_zeros(each)
    local, central = b"", b""
    for index in range(entries):
        name = f"zeros-{index}.bin".encode()
        offset = len(local)
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(data), each, len(name), 0) \
            + name + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(data), each,
                               len(name), 0, 0, 0, 0, 0, offset) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, entries, entries, len(central), len(local), 0)
    return local + central + end


def _stored_zip(name: str, payload: bytes) -> bytes:
    crc, raw = zlib.crc32(payload), name.encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, crc, len(payload), len(payload), len(raw), 0)
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0, crc, len(payload), len(payload),
                          len(raw), 0, 0, 0, 0, 0, 0)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central) + len(raw), len(local) + len(raw)
                      + len(payload), 0)
    return local + raw + payload + central + raw + end


def nested_zip(levels: int = 5, inner: bytes | None = None) -> bytes:
    payload = inner if inner is not None else zip_of_zeros(2, 64 * ONE_MB)
    for level in range(levels):
        payload = _stored_zip(f"level-{level}.zip", payload)
    return payload


def with_attachment(name: str, filename: str, content_type: str, payload: bytes) -> bytes:
    body = (b"--Z\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee attachment\r\n"
            + f"--Z\r\nContent-Type: {content_type}\r\nContent-Disposition: attachment; filename=\"{filename}\"\r\n"
              "Content-Transfer-Encoding: base64\r\n\r\n".encode()
            + base64.encodebytes(payload).replace(b"\n", b"\r\n") + b"--Z--\r\n")
    return _mail(name, b"", body, b"multipart/mixed; boundary=Z")
