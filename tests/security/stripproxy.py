"""H12: a man in the middle that strips STARTTLS from what the server offers and records what the client sends.

``StripProxy(upstream_host, upstream_port)`` listens on 127.0.0.1 and forwards both ways, one thread per
direction.  With ``strip=True`` every server line that offers STARTTLS has the word overwritten in place
(``250-STARTTLS`` → ``250-XXXXXXXX``, ``[CAPABILITY IMAP4rev1 STARTTLS ...`` → ``... XXXXXXXX ...``), the
downgrade attack a hostile network does; ``strip=False`` forwards unchanged.  ``client_bytes`` is everything
the client sent, for the "no credential in clear" check (after a real STARTTLS it is ciphertext).

(``devstack.tcpproxy`` forwards bytes but cannot rewrite them; this one is line-based and only meant for the
plain-text start of SMTP and IMAP.)
"""

from __future__ import annotations

import re
import socket
import threading
from contextlib import suppress
from types import TracebackType

_STARTTLS = re.compile(rb"STARTTLS", re.IGNORECASE)


class StripProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, strip: bool = True) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.strip = strip
        self.host = "127.0.0.1"
        self._listener = socket.create_server((self.host, 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._client_bytes = bytearray()
        self.stripped = 0
        self._sockets: list[socket.socket] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._accept, name="strip-proxy", daemon=True)

    @property
    def client_bytes(self) -> bytes:
        with self._lock:
            return bytes(self._client_bytes)

    def start(self) -> StripProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        for sock in [self._listener, *self._sockets]:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._thread.join(5)

    def __enter__(self) -> StripProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream, timeout=10)
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, downstream: bool) -> None:
        pending = b""
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if not downstream:
                    with self._lock:
                        self._client_bytes += data
                    target.sendall(data)
                    continue
                pending += data
                if self.strip:  # rewrite whole lines only, so a word split across reads is still caught
                    lines, _, pending = pending.rpartition(b"\n")
                    if not _:
                        continue
                    out, hits = _STARTTLS.subn(b"XXXXXXXX", lines + b"\n")
                    self.stripped += hits
                else:
                    out, pending = pending, b""
                target.sendall(out)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
