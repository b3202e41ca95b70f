"""maildesk: an IT support desk run over plain email."""

from __future__ import annotations

import signal
import threading

__version__ = "0.1.0"

# A SIGTERM or SIGINT that arrives while the daemon starts (imports, migrations, rule files) must stop it
# cleanly, not kill it: the entry points call ``guard_startup`` before importing anything heavy, and the
# daemon takes this event as its stop flag.
EARLY_STOP = threading.Event()


def guard_startup() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: EARLY_STOP.set())
