"""``python -m bench [--quick] [--only NAME ...] [--json PATH]``: run the scenarios, print one table.

Starts its own Dovecot and SMTP sink on loopback (and a throwaway PostgreSQL database when the server of
``MAILDESK_TEST_PG_URL`` answers), stops them all at the end, writes ``bench/results/latest.json``.
A scenario that fails is reported as failed and the others still run; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import report
from bench.context import Run, Sizes, log
from bench.scenarios import drain, latency, parsing, sending, sweeps
from bench.stack import DEFAULT_PG_URL, machine, mail_servers

RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS: dict[str, Callable[[Run], dict[str, Any]]] = {
    "parsing": parsing.run,
    "drain": drain.run,
    "memory": drain.run_memory,
    "latency": latency.run,
    "sending": sending.run,
    "sweeps": sweeps.run,
}
METHOD = {
    "daemon": "maildesk runs as `python -m maildesk run -c CONFIG` in its own process; peak RSS is its VmHWM "
              "from /proc; progress is read from its database every 0.1 s",
    "config": "the shipped example settings (poll 30 s, IDLE, batch 200, SMTP interval 5 s) on loopback "
              "without TLS; ack limit 1,000 per sender and hour so that every request is acknowledged",
    "raw_limit": "imap-tools MailBoxUnencrypted.fetch(bulk=500, mark_seen=False) of the same INBOX, each "
                 "mail parsed by email.message_from_bytes (compat32), nothing stored",
    "sink": "devstack SmtpSink in a separate process (bench.sinkproc)",
    "figures": "one run each, on a machine shared with other work",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="maildesk benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), metavar="NAME",
                        help=f"run only these scenarios ({', '.join(SCENARIOS)})")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    # Stop cleanly however we are stopped: a background job inherits SIGINT ignored, and SIGTERM would
    # otherwise end the process without the finally blocks that stop Dovecot, the sink and the daemon.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    names = args.only or list(SCENARIOS)
    pg_url = os.environ.get("MAILDESK_TEST_PG_URL", DEFAULT_PG_URL)
    started = time.monotonic()
    document: dict[str, Any] = {"mode": "quick" if args.quick else "full", "machine": machine(),
                                "method": METHOD, "scenarios": names}
    with tempfile.TemporaryDirectory(prefix="maildesk-bench-") as tmp, mail_servers(Path(tmp)) as (dovecot, sink):
        ctx = Run(args.quick, Sizes.of(args.quick), Path(tmp), dovecot, sink, pg_url)
        for name in names:
            log.info("== %s", name)
            try:
                ctx.results[name] = SCENARIOS[name](ctx)
            except Exception as exc:  # noqa: BLE001 - one failed scenario must not hide the others
                log.error("scenario %s failed:\n%s", name, traceback.format_exc())
                ctx.results[name] = {"error": f"{exc.__class__.__name__}: {exc}"}
    document.update(results=ctx.results, notes=ctx.notes, duration_s=round(time.monotonic() - started, 1))
    rows = report.checks(ctx.results)
    info = document["machine"]
    print(f"\nmaildesk benchmarks ({document['mode']}), {info['nproc']} cores {info['cpu']}, "
          f"python {info['python']}, {info['date']}; one run, machine shared with other work\n")
    print(report.table(rows))
    for note in ctx.notes:
        print(f"note: {note}")
    report.write_json(RESULTS / "latest.json", document, rows)
    if args.json:
        report.write_json(args.json, document, rows)
    print(f"\nJSON: {RESULTS / 'latest.json'}  ({document['duration_s']:.0f} s)")
    return 1 if any("error" in r for r in ctx.results.values() if isinstance(r, dict)) else 0


if __name__ == "__main__":
    raise SystemExit(main())
