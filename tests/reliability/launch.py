"""Run the ``maildesk`` command with test-only knobs; ``python -m tests.reliability.launch run -c FILE``.

``MAILDESK_TEST_POISON_IDS`` names a file of Message-IDs (one a line): the parser raises on those mails, as
F12's injected exception does in process (LD1's 1 % poison).  ``MAILDESK_TEST_RETRY_DELAYS_S`` (e.g. ``1,2``)
shortens the waits between a failed mail's attempts (``maildesk.ingest.runner.RETRY_DELAYS``, 30 s and 5 min in
the product), so poison is quarantined in seconds instead of 5.5 minutes.

``MAILDESK_TEST_OUTBOX_LEASE_S`` shortens the outbox claim lease (``maildesk.outbound.sender.LEASE``,
5 min in the product).  A daemon killed after claiming leaves its rows leased for that long (a product
bug, see ``test_f2_crash_points.py::test_outbox_rows_claimed_by_a_killed_daemon_are_sent_soon_after_restart``);
scenarios that measure loss and duplication under kills shorten it so they finish in minutes, while that one
test keeps the product's value and fails until the bug is fixed.

``MAILDESK_TEST_RULES_CHECK_S`` makes the daemon look at the rule files more often than every 5 s, so F2 can
crash at the 7th and 23rd reload in reasonable time; ``MAILDESK_TEST_OUTBOX_BATCH`` makes the sender claim
that many rows at a time instead of 50, so F2 passes ``outbox_claimed`` once per mail.  Unset, this is exactly
``maildesk``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any


def main() -> None:
    from maildesk import guard_startup

    guard_startup()  # as ``python -m maildesk`` does: a SIGTERM during the imports below is a clean stop
    lease = os.environ.get("MAILDESK_TEST_OUTBOX_LEASE_S")
    if lease:
        from maildesk.outbound import sender

        sender.LEASE = timedelta(seconds=float(lease))
    delays = os.environ.get("MAILDESK_TEST_RETRY_DELAYS_S")
    if delays:
        from maildesk.ingest import runner

        runner.RETRY_DELAYS = tuple(timedelta(seconds=float(s)) for s in delays.split(","))
    poison = os.environ.get("MAILDESK_TEST_POISON_IDS")
    if poison:
        _poison_parser(Path(poison).read_text(encoding="utf-8").split())
    rules_check = os.environ.get("MAILDESK_TEST_RULES_CHECK_S")
    if rules_check:
        from maildesk import daemon

        daemon.RULES_CHECK_SECONDS = float(rules_check)
    batch = os.environ.get("MAILDESK_TEST_OUTBOX_BATCH")
    if batch:
        from maildesk.outbound import sender

        defaults = sender.OutboxSender.__init__.__kwdefaults__ or {}
        if "batch_size" not in defaults:
            raise SystemExit("launch.py: OutboxSender has no batch_size keyword any more; update the knob")
        defaults["batch_size"] = int(batch)
    from maildesk.cli import main as cli

    cli()


def _poison_parser(message_ids: list[str]) -> None:
    from maildesk.ingest import route

    marks = tuple(f"Message-ID: <{mid}>".encode() for mid in message_ids)
    real = route.parse_mail

    def parse_mail(raw: bytes, **kwargs: Any) -> Any:
        if any(mark in raw for mark in marks):
            raise RuntimeError("injected parser crash (poison mail)")
        return real(raw, **kwargs)

    route.parse_mail = parse_mail  # type: ignore[assignment]


if __name__ == "__main__":
    main()
