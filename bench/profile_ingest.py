"""Where the drain's time goes: maildesk's poll and ingest runner in process, under cProfile.

``python -m bench.profile_ingest [N] [--pg]`` appends N corpus mails (default 1,000) to a fresh Dovecot
user, builds the desk as ``maildesk run`` does (``daemon.build_desk``) and profiles one
``poll_once`` followed by ``process_pending`` until nothing is left (the outbox sender is not run).
Prints the functions with the most cumulative and own time, and the share of the named hot spots.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
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


def profile(n: int, use_pg: bool, top: int) -> str:
    with tempfile.TemporaryDirectory(prefix="maildesk-profile-") as tmp, mail_servers(Path(tmp)) as (dovecot, sink):
        password = new_imap_user(dovecot, "profile")
        dovecot.append_many("profile", password, "INBOX", (m.raw for m in iter_corpus(n)), batch=500)
        with pg_database(DEFAULT_PG_URL if use_pg else "sqlite://") as pg_url:
            url = pg_url if use_pg and pg_url else f"sqlite:///{tmp}/var/maildesk.db"
            config = write_desk_config(Path(tmp), imap_port=dovecot.imap_port, imap_user="profile",
                                       smtp_port=sink.port, database_url=url)
            os.environ[PASSWORD_ENV] = password
            desk = build_desk(*load_settings(str(config)))
            profiler = cProfile.Profile()
            started = time.perf_counter()
            profiler.enable()
            for poller in desk.pollers:
                poller.poll_once()
            processed = 0
            while batch := desk.runner.process_pending():
                processed += len(batch)
            profiler.disable()
            seconds = time.perf_counter() - started
            desk.sessions.kw["bind"].dispose()
    out = io.StringIO()
    out.write(f"{n} mails, {processed} processed in {seconds:.1f} s under the profiler "
              f"({n / seconds:.0f} mails/s; cProfile slows Python code down)\n")
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=1000)
    parser.add_argument("--pg", action="store_true", help="profile on PostgreSQL instead of SQLite")
    parser.add_argument("--top", type=int, default=45)
    args = parser.parse_args()
    print(profile(args.n, args.pg, args.top))


if __name__ == "__main__":
    main()
