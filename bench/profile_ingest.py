"""Where the drain's time goes: maildesk's poll and ingest runner in process, under cProfile.

``python -m bench.profile_ingest [N] [--pg]`` appends N corpus mails (default 1,000) to a fresh Dovecot
user, builds the desk as ``maildesk run`` does (``daemon.build_desk``) and profiles one
``poll_once`` followed by ``process_pending`` until nothing is left (the outbox sender is not run).
Prints the functions with the most cumulative and own time, and the share of the named hot spots.
The profiler counts CPU time of this process (``time.process_time``), not wall-clock time, so other
processes on the machine do not inflate the figures; ``--no-profile`` runs without the profiler and
prints only the CPU and wall time per mail.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import tempfile
import time
from pathlib import Path

from bench.corpus import iter_corpus
from bench.stack import (
    DEFAULT_PG_URL,
    PASSWORD_ENV,
    mail_servers,
    new_imap_user,
    pg_database,
    write_desk_config,
)
from maildesk.cli import load_settings
from maildesk.daemon import build_desk


def profile(n: int, use_pg: bool, top: int, enabled: bool = True) -> str:
    with tempfile.TemporaryDirectory(prefix="maildesk-profile-") as tmp, mail_servers(Path(tmp)) as (dovecot, sink):
        password = new_imap_user(dovecot, "profile")
        dovecot.append_many("profile", password, "INBOX", (m.raw for m in iter_corpus(n)), batch=500)
        with pg_database(DEFAULT_PG_URL if use_pg else "sqlite://") as pg_url:
            url = pg_url if use_pg and pg_url else f"sqlite:///{tmp}/var/maildesk.db"
            config = write_desk_config(Path(tmp), imap_port=dovecot.imap_port, imap_user="profile",
                                       smtp_port=sink.port, database_url=url)
            os.environ[PASSWORD_ENV] = password
            desk = build_desk(*load_settings(str(config)))
            profiler = cProfile.Profile(time.process_time)
            started, cpu_started = time.perf_counter(), time.process_time()
            if enabled:
                profiler.enable()
            for poller in desk.pollers:
                poller.poll_once()
            processed = 0
            while batch := desk.runner.process_pending():
                processed += len(batch)
            profiler.disable()
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            desk.sessions.kw["bind"].dispose()
    out = io.StringIO()
    under = "under the profiler" if enabled else "without the profiler"
    out.write(f"{n} mails, {processed} processed in {seconds:.1f} s wall, {cpu:.1f} s CPU {under} "
              f"({cpu / max(processed, 1) * 1000:.1f} ms CPU per mail; cProfile slows Python code down); "
              f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB\n")
    if not enabled:
        return out.getvalue()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=1000)
    parser.add_argument("--pg", action="store_true", help="profile on PostgreSQL instead of SQLite")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--no-profile", action="store_true", help="only the CPU and wall time per mail")
    args = parser.parse_args()
    print(profile(args.n, args.pg, args.top, enabled=not args.no_profile))


if __name__ == "__main__":
    main()
