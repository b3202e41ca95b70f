"""Response latency (scenario 3): APPEND → acknowledgment accepted by the SMTP server.

The daemon runs idle (``python -m maildesk run``, SQLite); corpus requests are APPENDed one at a time at a
steady rate over one IMAP connection.  A mail's latency is the time from just before its APPEND to the
sink's 250 for the acknowledgment whose ``In-Reply-To`` names it (both monotonic clocks, same machine).
Measured with IDLE (poll interval as shipped, 30 s) and without it (a short poll interval).
"""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

from bench.context import Run, log
from bench.corpus import SEED, CorpusMail, iter_corpus
from bench.deskproc import DeskProcess
from bench.stack import SinkProcess, new_imap_user, write_desk_config
from devstack.imapops import Client

_IN_REPLY_TO = re.compile(rb"^In-Reply-To:\s*<([^>\r\n]+)>", re.IGNORECASE | re.MULTILINE)


def run(ctx: Run) -> dict[str, object]:
    poll = ctx.sizes.poll_interval_s
    return {"idle": measure(ctx, idle=True, poll_interval=30),
            "poll": measure(ctx, idle=False, poll_interval=poll)}


def measure(ctx: Run, *, idle: bool, poll_interval: int) -> dict[str, object]:
    label = f"latency-{'idle' if idle else 'poll'}"
    folder = ctx.tmp / label
    password = new_imap_user(ctx.dovecot, label)
    n = ctx.sizes.latency_mails
    mails = [m for m in iter_corpus(3 * n + 40, seed=SEED + 1) if m.kind == "request"][: n + 1]
    sink = SinkProcess(folder / "sink", keep_eml=True).start()
    desk = None
    try:
        config = write_desk_config(folder, imap_port=ctx.dovecot.imap_port, imap_user=label, smtp_port=sink.port,
                                   database_url=f"sqlite:///{folder / 'var' / 'maildesk.db'}", idle=idle,
                                   poll_interval=f"{poll_interval}s")
        desk = DeskProcess(config, password, folder / "maildesk.log").start()
        with Client.login(ctx.dovecot.host, ctx.dovecot.imap_port, label, password) as client:
            client.append("INBOX", mails[0].raw)  # warm-up: the daemon is up and has answered once
            _wait_for_acks(sink, desk, {mails[0].message_id}, 90)
            time.sleep(1.0)
            appended = _append_steadily(client, mails[1:], ctx.sizes.latency_rate)
        acked = _wait_for_acks(sink, desk, set(appended), poll_interval + 60)
    finally:
        if desk is not None:
            desk.stop()
        sink.stop()
    latencies = sorted(acked[mid] - at for mid, at in appended.items() if mid in acked)
    result = {"idle": idle, "poll_interval_s": poll_interval, "mails": n, "acked": len(latencies),
              "rate_per_s": ctx.sizes.latency_rate, **percentiles(latencies)}
    log.info("%s: %s", label, result)
    return result


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_s": None, "p95_s": None, "p99_s": None, "max_s": None}
    cuts = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else [values[0]] * 99
    return {"p50_s": round(cuts[49], 3), "p95_s": round(cuts[94], 3), "p99_s": round(cuts[98], 3),
            "max_s": round(max(values), 3)}


def _append_steadily(client: Client, mails: list[CorpusMail], rate: float) -> dict[str, float]:
    appended: dict[str, float] = {}
    started = time.monotonic()
    for i, mail in enumerate(mails):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        appended[mail.message_id] = time.monotonic()
        client.append("INBOX", mail.raw)
    return appended


def _wait_for_acks(sink: SinkProcess, desk: DeskProcess, wanted: set[str], timeout: float) -> dict[str, float]:
    """Message-ID answered → monotonic time of the sink's 250, once all of ``wanted`` are in (or timeout)."""
    deadline = time.monotonic() + timeout
    found: dict[str, float] = {}
    while time.monotonic() < deadline:
        desk.check_alive()
        for record in sink.records():
            eml = record.get("eml")
            if not isinstance(eml, str):
                continue
            match = _IN_REPLY_TO.search(Path(eml).read_bytes().split(b"\r\n\r\n", 1)[0])
            if match:
                found[match.group(1).decode()] = float(record["monotonic"])  # type: ignore[arg-type]
        if wanted <= found.keys():
            break
        time.sleep(0.2)
    return found
