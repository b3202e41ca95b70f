"""Run the ``maildesk`` command with test-only knobs; ``python -m tests.reliability.launch run -c FILE``.

``MAILDESK_TEST_OUTBOX_LEASE_S`` shortens the outbox claim lease (``maildesk.outbound.sender.LEASE``,
5 min in the product).  A daemon killed after claiming leaves its rows leased for that long (a product
bug, see ``test_f2_crash_points.py::test_outbox_rows_claimed_by_a_killed_daemon_are_sent_soon_after_restart``);
scenarios that measure loss and duplication under kills shorten it so they finish in minutes, while that one
test keeps the product's value and fails until the bug is fixed.  Unset, this is exactly ``maildesk``.
"""

from __future__ import annotations

import os
from datetime import timedelta


def main() -> None:
    lease = os.environ.get("MAILDESK_TEST_OUTBOX_LEASE_S")
    if lease:
        from maildesk.outbound import sender

        sender.LEASE = timedelta(seconds=float(lease))
    from maildesk.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
