"""Shares of named hot spots in a py-spy profile of the running daemon (``py-spy record -f raw``).

``python -m bench.profile_shares PROFILE.txt`` prints, for each named stage, the share of all samples
whose stack passes through it (inclusive, so nested stages overlap).  How the profile is taken is in the
README's performance section: py-spy attached to ``python -m maildesk run`` while it drains a backlog.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

# (label, frame substring) — a sample counts for a stage when any frame of its stack contains the substring
STAGES: tuple[tuple[str, str], ...] = (
    ("poll job: process_pending (ingest)", "IngestRunner.process_pending"),
    ("  parse_mail", "parse_mail (maildesk/ingest/parse.py"),
    ("  loops.assess", "assess (maildesk/ingest/loops.py"),
    ("  find_candidates (thread lookup)", "find_candidates"),
    ("  rules + SLA policy decide", "RulesPolicy.decide"),
    ("  build_ack (render + compose the ack)", "build_ack"),
    ("    email.message/policy.default in compose", "maildesk/outbound/compose.py"),
    ("  service.open_ticket", "open_ticket (maildesk/tickets/service.py"),
    ("  service.add_message", "add_message (maildesk/tickets/service.py"),
    ("  service.enqueue", "enqueue (maildesk/tickets/service.py"),
    ("  _why_no_ack (suppression + rate limit)", "_why_no_ack"),
    ("  session commit (all)", "Session.commit"),
    ("  SQLAlchemy flush", "Session._flush"),
    ("poll job: poll_once (IMAP fetch + raw store)", "MailboxPoller.poll_once"),
    ("outbox job: send_due", "OutboxSender.send_due"),
    ("  SMTP transport", "SmtpTransport.send_batch"),
    ("  mark sent (one transaction per row)", "OutboxSender._record"),
    ("logging (all threads)", "(logging/__init__.py"),
    ("IDLE watcher", "Daemon._idle_loop"),
)


def shares(lines: Iterable[str]) -> tuple[int, dict[str, int]]:
    total = 0
    hits = dict.fromkeys((label for label, _ in STAGES), 0)
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        for label, needle in STAGES:
            if needle in stack:
                hits[label] += count
    return total, hits


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench.profile_shares PROFILE.txt", file=sys.stderr)
        return 2
    total, hits = shares(Path(argv[0]).read_text().splitlines())
    print(f"{total} samples (active threads only)")
    for label, count in hits.items():
        print(f"{100 * count / max(total, 1):5.1f}%  {label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
