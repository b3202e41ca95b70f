"""Fixtures of the fault tests: the integration servers, a per-test deadline, and the results table.

The servers (Dovecot, the SMTP sink, the TCP fault proxy, PostgreSQL) are the integration suite's fixtures,
imported here.  Each test runs under a SIGALRM deadline (``MAILDESK_RELIABILITY_TIMEOUT`` seconds; 300 by
default, 3600 at full scale) so no test can hang.  Each test hands its reconciliation to ``record_line``;
the lines are printed, appended to ``MAILDESK_RELIABILITY_RESULTS`` when set, and shown as one table at the
end of the session.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import (  # noqa: F401 - fixtures re-exported for the fault tests
    dovecot,
    imap_account,
    pg_url,
    smtp_sink,
    smtp_sink_factory,
    tcp_proxy,
)
from tests.reliability.harness import FULL
from tests.reliability.reconcile import LINE_FIELDS, Reconciliation

TIMEOUT = float(os.environ.get("MAILDESK_RELIABILITY_TIMEOUT", "3600" if FULL else "300"))
_LINES: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reliability: a fault test of tests/reliability (RELIABILITY.md)")
    config.addinivalue_line("markers", "soak(timeout): the chaos soak (F16), run by `make test-soak`; its own "
                                       "deadline in seconds")


@pytest.fixture(autouse=True)
def _reliability_deadline(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail (not hang) a fault test that runs longer than MAILDESK_RELIABILITY_TIMEOUT seconds (a soak: its own)."""
    soak = request.node.get_closest_marker("soak")
    timeout = float(soak.kwargs["timeout"]) if soak is not None and "timeout" in soak.kwargs else TIMEOUT

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"{request.node.nodeid} ran longer than {timeout:.0f} s (MAILDESK_RELIABILITY_TIMEOUT)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def record_line() -> Callable[[Reconciliation], str]:
    """Print a run's pass-criteria line and keep it for the session table."""

    def record(result: Reconciliation) -> str:
        line = result.line()
        print(line)
        _LINES.append(line)
        target = os.environ.get("MAILDESK_RELIABILITY_RESULTS")
        if target:
            with Path(target).open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        return line

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _LINES:
        return
    columns = [name for name in LINE_FIELDS if name != "seed"]
    rows = [dict(item.split("=", 1) for item in line.split(" ")) for line in _LINES]
    terminalreporter.section("reliability: pass-criteria lines")
    terminalreporter.write_line("| " + " | ".join(columns) + " |")
    terminalreporter.write_line("|" + "---|" * len(columns))
    for row in rows:
        terminalreporter.write_line("| " + " | ".join(row.get(name, "-") for name in columns) + " |")
