"""Named fault points for the reliability tests (RELIABILITY.md, "Crash points").

``MAILDESK_CRASHPOINT=name:n`` makes the process ``os._exit(137)`` the n-th
time it passes ``name`` (no cleanup, like kill -9);
``MAILDESK_SIGTERMPOINT=name:n`` sends it SIGTERM there instead, to test
clean stops at a known moment.  Unset (production), a point costs one dict
lookup.
"""

from __future__ import annotations

import os
import signal
import threading
import time

POINTS = (
    "fetched_not_committed", "raw_committed", "mid_apply", "applied_not_flagged", "outbox_claimed",
    "smtp_data_sent", "smtp_250_not_marked", "marked_sent", "rules_reloading", "sweep_mid",
)


class _Points:
    def __init__(self, environ: dict[str, str]) -> None:
        self.crash = _parse(environ.get("MAILDESK_CRASHPOINT"))
        self.sigterm = _parse(environ.get("MAILDESK_SIGTERMPOINT"))
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def hit(self, name: str) -> None:
        if name not in self.crash and name not in self.sigterm:
            return
        with self.lock:
            self.counts[name] = count = self.counts.get(name, 0) + 1
        if self.crash.get(name) == count:
            os._exit(137)
        if self.sigterm.get(name) == count:
            os.kill(os.getpid(), signal.SIGTERM)
            # The handler runs in the main thread; let it set the stop flag before this
            # worker goes on, so the test knows exactly which mail was in hand.
            time.sleep(0.5)


def _parse(spec: str | None) -> dict[str, int]:
    points: dict[str, int] = {}
    for item in (spec or "").split(","):
        name, _, n = item.strip().partition(":")
        if name:
            if name not in POINTS:
                raise ValueError(f"unknown fault point {name!r} (known: {', '.join(POINTS)})")
            points[name] = int(n or 1)
    return points


_points = _Points(dict(os.environ))


def crashpoint(name: str) -> None:
    """Mark a place where a crash or stop can be injected by the tests."""
    _points.hit(name)
