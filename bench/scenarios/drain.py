"""Backlog drain (scenario 1) and memory (scenario 2).

A backlog of N corpus mails waits in INBOX.  First the raw limit: imap-tools ``MailBoxUnencrypted``
fetches the whole folder in bulk batches of 500 (``BODY.PEEK``, nothing changes on the server) and
``MailMessage`` parses every mail with ``email.message_from_bytes`` (compat32), storing nothing.  Then
maildesk runs as the operator runs it, ``python -m maildesk run -c CONFIG`` in its own process, from
process start until every mail is processed (its acknowledgment is queued in the outbox in the same
transaction).  Peak RSS is the daemon's ``VmHWM``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from imap_tools import MailBoxUnencrypted

from bench.context import Run, log
from bench.corpus import iter_corpus
from bench.deskproc import DeskProcess, Progress
from bench.stack import new_imap_user, pg_database, write_desk_config

POLL_SECONDS = 0.1
# The memory runs poll every 5 s instead of the shipped 30 s: the daemon processes at most 1,000 mails per
# poll job and then waits for the next poll, and a 50,000 backlog would otherwise take half an hour.
MEMORY_POLL = "5s"


def run(ctx: Run) -> dict[str, object]:
    out: dict[str, object] = {"sqlite": _guarded(ctx, lambda: drain(ctx, ctx.sizes.drain, "sqlite"))}
    with pg_database(ctx.pg_url) as url:
        if url is None:
            ctx.note(f"PostgreSQL not reachable at {ctx.pg_url}: backlog drain on PostgreSQL skipped")
            out["postgresql"] = None
        else:
            out["postgresql"] = _guarded(ctx, lambda: drain(ctx, ctx.sizes.drain, "postgresql", url))
    return out


def _guarded(ctx: Run, work: Callable[[], dict[str, object]]) -> dict[str, object]:
    """One backend's figures, or its error, so that one failing backend keeps the other's figures."""
    try:
        return work()
    except Exception as exc:  # noqa: BLE001 - reported in the table and the JSON
        log.exception("drain failed")
        ctx.note(f"drain failed: {exc.__class__.__name__}: {str(exc)[:300]}")
        return {"error": f"{exc.__class__.__name__}: {exc}"}


def run_memory(ctx: Run) -> dict[str, object]:
    """Peak RSS of the daemon draining the small and the large backlog (SQLite)."""
    small, large = ctx.sizes.memory
    first = drain(ctx, small, "sqlite", poll_interval=MEMORY_POLL)
    second = drain(ctx, large, "sqlite", poll_interval=MEMORY_POLL)
    growth = second["peak_rss_mb"] / first["peak_rss_mb"] - 1 if first["peak_rss_mb"] else None
    return {"small": {"mails": small, "peak_rss_mb": first["peak_rss_mb"], "mails_per_s": first["mails_per_s"]},
            "large": {"mails": large, "peak_rss_mb": second["peak_rss_mb"], "mails_per_s": second["mails_per_s"],
                      "raw_mails_per_s": second["raw"]["mails_per_s"]},
            "growth": growth, "poll_interval": MEMORY_POLL}


def raw_limit(host: str, port: int, user: str, password: str) -> dict[str, float]:
    """imap-tools bulk fetch (500 per FETCH) + compat32 parse of every mail; nothing stored."""
    started = time.perf_counter()
    count = size = 0
    with MailBoxUnencrypted(host, port).login(user, password, initial_folder="INBOX") as box:
        for message in box.fetch(mark_seen=False, bulk=500):
            count += 1
            size += len(message.obj.get("Message-ID", ""))  # touch the parsed object
    seconds = time.perf_counter() - started
    return {"mails": count, "seconds": round(seconds, 2), "mails_per_s": round(count / seconds, 1)}


def drain(ctx: Run, n: int, backend: str, database_url: str | None = None,
          poll_interval: str = "30s") -> dict[str, object]:
    label = f"drain-{backend}-{n}-{poll_interval}"
    folder = ctx.tmp / label
    user = label
    password = new_imap_user(ctx.dovecot, user)
    mails = list(_load(ctx, user, password, n))
    requests = sum(1 for kind in mails if kind == "request")
    raw = raw_limit(ctx.dovecot.host, ctx.dovecot.imap_port, user, password)
    log.info("%s: raw limit %.0f mails/s", label, raw["mails_per_s"])
    url = database_url or f"sqlite:///{folder / 'var' / 'maildesk.db'}"
    config = write_desk_config(folder, imap_port=ctx.dovecot.imap_port, imap_user=user, smtp_port=ctx.sink.port,
                               database_url=url, poll_interval=poll_interval)
    sent_before = ctx.sink.count()
    with _running(DeskProcess(config, password, folder / "maildesk.log")) as desk:
        progress = Progress(url)
        try:
            first_stored, done_at, rss_samples = _wait_drained(desk, progress, n)
            peak = desk.memory_mb("VmHWM")
            counts = _outcome_counts(progress)
        finally:
            progress.close()
    elapsed = done_at - desk.started
    result = {
        "backend": backend, "mails": n, "poll_interval": poll_interval, "seconds": round(elapsed, 2), "mails_per_s": round(n / elapsed, 1),
        "startup_s": round(first_stored - desk.started, 2), "peak_rss_mb": round(peak, 1),
        "rss_samples_mb": rss_samples, "raw": raw, "ratio": round(n / elapsed / raw["mails_per_s"], 3),
        "expected": {"tickets": requests, "replies": n - requests}, "counts": counts,
        "acks_at_sink_when_done": ctx.sink.count() - sent_before,
    }
    log.info("%s: %.1f mails/s (%.0f%% of raw), peak RSS %.0f MB", label, result["mails_per_s"],
             100 * result["ratio"], peak)
    if counts.get("tickets") != requests:
        ctx.note(f"{label}: {counts.get('tickets')} tickets for {requests} requests (see counts)")
    return result


def _load(ctx: Run, user: str, password: str, n: int) -> Iterator[str]:
    """APPEND the corpus to the user's INBOX; yields the kind of every mail."""
    kinds: list[str] = []

    def raws() -> Iterator[bytes]:
        for mail in iter_corpus(n, ticket_day=ctx.ticket_day):
            kinds.append(mail.kind)
            yield mail.raw

    started = time.perf_counter()
    ctx.dovecot.append_many(user, password, "INBOX", raws(), batch=500)
    log.info("%s: %d mails appended in %.1f s", user, n, time.perf_counter() - started)
    return iter(kinds)


@contextmanager
def _running(desk: DeskProcess) -> Iterator[DeskProcess]:
    desk.start()
    try:
        yield desk
    finally:
        code = desk.stop()
        if code not in (0, None):
            log.warning("maildesk exited with %s; log tail:\n%s", code, desk.log_tail())


def _wait_drained(desk: DeskProcess, progress: Progress, n: int) -> tuple[float, float, list[float]]:
    """Poll the database until all ``n`` mails are processed; (first stored, done, RSS every ~5 s)."""
    deadline = time.monotonic() + max(300.0, n / 5)
    first_stored = 0.0
    samples: list[float] = []
    next_sample = time.monotonic()
    while time.monotonic() < deadline:
        desk.check_alive()
        counts = progress.raw_counts()
        total = sum(counts.values())
        if total and not first_stored:
            first_stored = time.monotonic()
        if total >= n and counts.get("pending", 0) == 0:
            return first_stored, time.monotonic(), samples
        if time.monotonic() >= next_sample:
            samples.append(round(desk.memory_mb("VmRSS"), 1))
            next_sample += 5.0
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"maildesk did not drain {n} mails in time (raw mails by status: {progress.raw_counts()})")


def _outcome_counts(progress: Progress) -> dict[str, int]:
    counts = {f"raw_{k}": v for k, v in progress.raw_counts().items()}
    counts["tickets"] = progress.scalar("SELECT count(*) FROM tickets")
    for kind in ("request", "reply", "outsider", "automatic"):
        counts[f"messages_{kind}"] = progress.scalar(f"SELECT count(*) FROM messages WHERE kind = '{kind}'")
    counts["acks_queued"] = progress.scalar("SELECT count(*) FROM outbox WHERE kind = 'ack'")
    return counts
