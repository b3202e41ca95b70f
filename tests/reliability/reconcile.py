"""Compare the corpus manifest with the database and the SMTP sink's log; print and check the pass criteria.

One line per run, as RELIABILITY.md shows it::

    scenario=F1 seed=1 mails_in=100 raw=100 messages=95 quarantined=0 discarded_with_record=5 tickets=65
    tickets_expected=65 acks_due=65 acks_received=66 acks_distinct=65 dup_acks=1 window_events=1 lost=0
    dup_tickets=0 dup_messages=0 p99_delay_s=3.2 misthreaded=0 corrupt=0 ack_ids_differ=0 integrity_errors=0

Counting rules:

- a manifest mail is *kept* when it is a message of a ticket, a quarantined raw row, or a discarded raw row
  with its ``automatic_mail_discarded`` event; ``lost`` counts the others;
- ``dup_messages``: message rows beyond the first per manifest mail or per raw row;
- ``dup_tickets``: tickets beyond the first per manifest mail, plus tickets opened by a mail that should have
  threaded onto another ticket (a reply, an auto-reply); ``misthreaded`` counts those landing elsewhere;
- ``corrupt``: a stored raw row whose SHA-256 is not the manifest's (a partial mail stored as complete);
- acks are the outbox rows of kind ``ack``, matched to the sink's log by Message-ID; ``dup_acks`` are the
  copies beyond the first, and ``ack_ids_differ`` counts requests acknowledged under two Message-IDs;
- a *window event* is a kill that landed after the sink's 250 for a mail (less ``IN_FLIGHT``) and before the
  outbox row was marked sent (wall-clock times of the sink's log and of ``outbox.sent_at`` against the kill times the test
  recorded), plus the cuts a test scripted itself (``extra_window_events``), plus each database outage (an
  interval in ``outages``, F16's held SQLite lock) that overlaps the span from the 250 to ``sent_at``: the
  daemon had the 250 but could not record it, so its lease runs out and the mail goes again.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from maildesk.store.models import Event, Message, Outbox, RawMail, Ticket
from maildesk.store.session import SessionFactory
from tests.reliability.corpus import AUTO_REPLY, HOSTILE, REPLY, Corpus, CorpusMail

INTEGRITY = re.compile(r"IntegrityError|UNIQUE constraint failed|duplicate key value violates")
# A mail whose "." left before the kill may reach the sink just after it (loopback socket buffers); the
# server accepted it and the daemon never saw the 250: the same unavoidable window.
IN_FLIGHT = timedelta(seconds=0.25)
LINE_FIELDS = ("scenario", "seed", "mails_in", "raw", "messages", "quarantined", "discarded_with_record",
               "tickets", "tickets_expected", "acks_due", "acks_received", "acks_distinct", "dup_acks",
               "window_events", "lost", "dup_tickets", "dup_messages", "p99_delay_s", "misthreaded", "corrupt",
               "ack_ids_differ", "integrity_errors")


@dataclass
class Reconciliation:
    """The counts of one run and the names of the mails behind any failure."""

    scenario: str
    seed: int
    counts: dict[str, float | int | str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        values: dict[str, object] = {"scenario": self.scenario, "seed": self.seed, **self.counts}
        return " ".join(f"{name}={values.get(name, '-')}" for name in LINE_FIELDS)

    def check(self, *, allow_quarantine: bool = False) -> None:
        """Fail on any pass criterion of RELIABILITY.md; the message lists the mails behind it."""
        c = self.counts
        failures = [name for name in ("lost", "dup_tickets", "dup_messages", "misthreaded", "corrupt",
                                      "ack_ids_differ", "integrity_errors") if c[name] != 0]
        if c["tickets"] != c["tickets_expected"]:
            failures.append("tickets != tickets_expected")
        if c["acks_distinct"] != c["acks_due"] or c["acks_missing"]:
            failures.append("acks_distinct != acks_due (or a due ack is missing)")
        if int(c["dup_acks"]) > int(c["window_events"]):
            failures.append("dup_acks > window_events")
        if not allow_quarantine and c["quarantined"] != 0:
            failures.append("quarantined != 0")
        assert not failures, f"{self.line()}\nfailed: {', '.join(failures)}\n" + "\n".join(self.problems[:40])


def read_sink_log(path: Path | None) -> list[dict[str, object]]:
    """The JSON lines the sink wrote (one per mail answered 250)."""
    if path is None or not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def reconcile(scenario: str, corpus: Corpus, sessions: SessionFactory, sink_log: Path | None, *,
              kill_times: list[datetime] | None = None, extra_window_events: int = 0, logs: str = "",
              via_pipe: bool = False, not_innocent: frozenset[str] = frozenset(),
              outages: list[tuple[datetime, datetime]] | None = None) -> Reconciliation:
    """Count everything the pass criteria need; nothing is asserted here (see :meth:`Reconciliation.check`)."""
    result = Reconciliation(scenario, corpus.seed)
    with sessions() as session:
        raws = session.execute(select(RawMail.id, RawMail.message_id, RawMail.sha256, RawMail.status,
                                      RawMail.fetched_at, RawMail.processed_at)).all()
        messages = session.execute(select(Message.id, Message.ticket_id, Message.raw_mail_id, Message.message_id,
                                          Message.kind)).all()
        tickets = list(session.scalars(select(Ticket.id)))
        acks = session.execute(select(Outbox.message_id, Outbox.ticket_id, Outbox.status, Outbox.sent_at)
                               .where(Outbox.kind == "ack")).all()
        discard_events = {int(e.data.get("raw_mail_id") or 0) for e in session.scalars(
            select(Event).where(Event.kind == "automatic_mail_discarded"))}
    manifest = corpus.by_message_id()
    raws_of: dict[str, list] = defaultdict(list)
    for row in raws:
        raws_of[row.message_id or ""].append(row)
    msgs_of: dict[str, list] = defaultdict(list)
    for row in messages:
        msgs_of[row.message_id or ""].append(row)
    c = result.counts
    c.update(mails_in=len(corpus.mails), raw=len(raws), messages=len(messages), tickets=len(tickets),
             quarantined=sum(1 for r in raws if r.status == "quarantined"),
             discarded_with_record=sum(1 for r in raws if r.status == "discarded" and r.id in discard_events),
             tickets_expected=sum(1 for m in corpus.mails if m.opens_ticket))
    _count_mails(result, corpus, raws_of, msgs_of, discard_events, via_pipe)
    c["dup_messages"] = int(c["dup_messages"]) + sum(
        n - 1 for n in Counter(m.raw_mail_id for m in messages if m.raw_mail_id is not None).values() if n > 1)
    _count_acks(result, corpus, manifest, msgs_of, acks, read_sink_log(sink_log), kill_times or [],
                extra_window_events, outages or [])
    delays = sorted((r.processed_at - r.fetched_at).total_seconds() for r in raws
                    if r.processed_at is not None and r.message_id in manifest
                    and manifest[r.message_id].outcome != HOSTILE and r.message_id not in not_innocent)
    c["p99_delay_s"] = round(delays[min(len(delays) - 1, math.ceil(0.99 * len(delays)) - 1)], 1) if delays else 0.0
    c["integrity_errors"] = len(INTEGRITY.findall(logs))
    return result


def _count_mails(result: Reconciliation, corpus: Corpus, raws_of: dict[str, list], msgs_of: dict[str, list],
                 discard_events: set[int], via_pipe: bool) -> None:
    lost = dup_messages = dup_tickets = misthreaded = corrupt = 0
    ticket_of_request = {mid: rows[0].ticket_id for mid, rows in msgs_of.items() if rows}
    for mail in corpus.mails:
        raws, msgs = raws_of.get(mail.message_id, []), msgs_of.get(mail.message_id, [])
        expected_sha = mail.sha256 if via_pipe else mail.imap_sha256
        bad = [r.id for r in raws if r.sha256 != expected_sha]
        if bad:
            corrupt += 1
            result.problems.append(f"corrupt: {mail.message_id} raw rows {bad} differ from the manifest")
        kept = bool(msgs) or any(r.status == "quarantined" or (r.status == "discarded" and r.id in discard_events)
                                 for r in raws)
        if not kept:
            lost += 1
            result.problems.append(f"lost: {mail.message_id} ({mail.outcome}/{mail.family}) raw statuses "
                                   f"{[r.status for r in raws]}")
        dup_messages += max(0, len(msgs) - 1)
        opened = [m for m in msgs if m.kind == "request"]
        dup_tickets += max(0, len(opened) - 1)
        if mail.outcome in (REPLY, AUTO_REPLY) and msgs:
            if opened:
                dup_tickets += len(opened)
            if any(m.ticket_id != ticket_of_request.get(mail.parent or "") for m in msgs):
                misthreaded += 1
                result.problems.append(f"misthreaded: {mail.message_id} ({mail.outcome}) not on the ticket of "
                                       f"{mail.parent}")
    result.counts.update(lost=lost, dup_messages=dup_messages, dup_tickets=dup_tickets, misthreaded=misthreaded,
                         corrupt=corrupt)


def _count_acks(result: Reconciliation, corpus: Corpus, manifest: dict[str, CorpusMail], msgs_of: dict[str, list],
                acks: list, sink: list[dict[str, object]], kill_times: list[datetime],
                extra_window_events: int, outages: list[tuple[datetime, datetime]]) -> None:
    request_of_ticket = {rows[0].ticket_id: mid for mid, rows in msgs_of.items()
                         if rows and rows[0].kind == "request"}
    ack_rows = {row.message_id: row for row in acks}
    received: dict[str, list[datetime]] = defaultdict(list)
    for line in sink:
        mid = str(line.get("message_id") or "").strip("<>")
        if mid in ack_rows:
            received[mid].append(datetime.fromisoformat(str(line["received_at"])))
    ids_per_request: dict[str, set[str]] = defaultdict(set)
    for mid in received:
        request = request_of_ticket.get(ack_rows[mid].ticket_id)
        ids_per_request[request or f"?ticket {ack_rows[mid].ticket_id}"].add(mid)
    due = {m.message_id for m in corpus.mails if m.ack_due}
    missing = sorted(due - set(ids_per_request))
    if missing:
        result.problems.append(f"acks never received for {len(missing)} requests: {missing[:10]}")
    differ = [request for request, ids in ids_per_request.items() if len(ids) > 1]
    result.problems.extend(f"two ack Message-IDs for {request}: {sorted(ids_per_request[request])}"
                           for request in differ[:10])
    window = extra_window_events
    for mid, times in received.items():
        first, sent_at = min(times), ack_rows[mid].sent_at
        window += sum(1 for k in kill_times if first - IN_FLIGHT <= k and (sent_at is None or k < sent_at))
        window += sum(1 for begin, end in outages if end >= first - IN_FLIGHT and (sent_at is None or begin < sent_at))
    total = sum(len(times) for times in received.values())
    dups = [f"{mid} x{len(t)}" for mid, t in received.items() if len(t) > 1]
    if dups:
        result.problems.append(f"duplicate acks: {dups[:10]}")
    result.counts.update(acks_due=len(due & set(manifest)), acks_received=total, acks_distinct=len(received),
                         dup_acks=total - len(received), window_events=window, ack_ids_differ=len(differ),
                         acks_missing=len(missing))
