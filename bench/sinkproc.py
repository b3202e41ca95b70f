"""The devstack SMTP sink in a process of its own, so it never shares a GIL with what it measures.

``python -m bench.sinkproc LOG.jsonl [EML_DIR]`` starts :class:`devstack.smtpsink.SmtpSink` on a free loopback port,
prints the port on one line, keeps every accepted mail as a JSON line in ``LOG.jsonl`` (with the
monotonic time of its 250 reply, comparable across processes on Linux) and stops when its standard input
closes or on SIGTERM.  With ``EML_DIR`` every mail is also written there as an ``.eml`` file (the log
line names it), so headers such as ``In-Reply-To`` can be read back.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from devstack.smtpsink import SmtpSink


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print("usage: python -m bench.sinkproc LOG.jsonl [EML_DIR]", file=sys.stderr)
        return 2
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    sink = SmtpSink(log_path=Path(argv[0]), eml_dir=Path(argv[1]) if len(argv) > 1 else None)
    sink.start()
    try:
        print(sink.port, flush=True)
        threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
        done.wait()
    finally:
        sink.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
