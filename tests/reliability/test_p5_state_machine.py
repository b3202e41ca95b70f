"""P5: the whole ingest/outbox loop as a Hypothesis state machine, in process, with the pass criteria after every step.

The real ``build_desk`` parts (``MailboxPoller``, ``IngestRunner``, ``OutboxSender``) on a real SQLite file, with
two fakes at the edges: an in-memory IMAP server behind the poller's ``source_factory`` seam and an SMTP transport
double with ``SmtpTransport.send_batch``'s interface that records the Message-ID of every mail it "accepts".

Rules: deliver a mail (new request, reply to an earlier request, out-of-office reply), fetch and store, process
what is pending, send what is due, arm a crash at a fault point, restart, make the next SMTP send fail
(temporary or permanent), move the ``FrozenClock``.  A crash is the exception :class:`SimulatedCrash` raised from
``maildesk.faults.crashpoint``: it is a ``BaseException``, so no ``except Exception`` of the product sees it, the
transaction in hand rolls back, and the desk object is dropped — the next desk is built on the same file, as a
restarted daemon would be (with the daemon's own start-up step, which frees claimed outbox rows).

After every step (the pass-criteria equations, restricted to what has happened so far): every delivered mail is
at most one raw row and at most one message row, and once processed exactly one of message / quarantine /
discard record; tickets == new requests processed; no raw row yields two messages; replies land on their
request's ticket; acks accepted by the server ≤ acks due, one Message-ID per request, duplicates ≤ crashes
injected between the 250 and ``mark_sent``; an ack marked sent was accepted; a dead ack had an injected failure
that justifies it.  At teardown the desk is drained and ``reconcile`` checks the full criteria.

Budget: ``make test`` 30 examples × 30 steps; ``MAILDESK_RELIABILITY_FULL=1`` 300 × 60.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from maildesk import faults
from maildesk.cli import load_settings
from maildesk.clock import FrozenClock
from maildesk.daemon import Daemon, Desk, build_desk
from maildesk.errors import PermanentDeliveryError, TemporaryDeliveryError
from maildesk.ingest.imap import FetchedMail
from maildesk.outbound.smtp import Envelope, SendResult
from maildesk.store.models import Event, Message, Outbox, RawMail, Ticket
from maildesk.store.session import make_engine, make_session_factory
from tests.reliability.corpus import AUTO_REPLY, NEW, REPLY, Corpus, CorpusMail, _out_of_office, _request
from tests.reliability.harness import FULL, progress, write_desk
from tests.reliability.reconcile import Reconciliation, reconcile

pytestmark = pytest.mark.reliability

EXAMPLES, STEPS = (300, 60) if FULL else (30, 30)
# The fault points the in-process loop passes (rules_reloading and sweep_mid belong to other jobs).
POINTS = ("fetched_not_committed", "raw_committed", "applied_not_flagged", "mid_apply", "outbox_claimed",
          "smtp_data_sent", "smtp_250_not_marked", "marked_sent")
WINDOW_POINT = "smtp_250_not_marked"  # the server said 250, the row is not marked sent yet
STEPS_OF_CLOCK = (timedelta(seconds=1), timedelta(seconds=30), timedelta(minutes=1), timedelta(minutes=5),
                  timedelta(hours=1), timedelta(days=1))
START_AT = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
ACK_GIVE_UP = timedelta(days=1)  # settings.give_up_acks_after of the test desk (the default)
TMPFS = Path("/dev/shm")  # the SQLite file in memory: thousands of commits per run, no fsync to wait for


class SimulatedCrash(BaseException):
    """A crash at a fault point; a BaseException so that it unwinds like a kill, past every ``except Exception``."""


class ArmedPoints:
    """Stands in for ``maildesk.faults._points``: raises :class:`SimulatedCrash` at the n-th pass of an armed point."""

    def __init__(self) -> None:
        self.armed: dict[str, int] = {}

    def hit(self, name: str) -> None:
        if name in self.armed:
            self.armed[name] -= 1
            if self.armed[name] <= 0:
                del self.armed[name]
                raise SimulatedCrash(name)


@dataclass
class FakeImapServer:
    """One folder of one mailbox: UIDs ascend, ``mark_done`` moves mail out (done_action = "move")."""

    uidvalidity: int = 7
    inbox: dict[int, bytes] = field(default_factory=dict)
    done: dict[int, bytes] = field(default_factory=dict)
    next_uid: int = 1

    def deliver(self, raw: bytes) -> int:
        uid, self.next_uid = self.next_uid, self.next_uid + 1
        self.inbox[uid] = raw
        return uid


class FakeImapSource:
    """``ImapSource``'s interface as the poller uses it, over a :class:`FakeImapServer`."""

    label = "support (fake IMAP)"

    def __init__(self, server: FakeImapServer) -> None:
        self.server = server

    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass

    def uidvalidity(self) -> int:
        return self.server.uidvalidity

    def candidate_uids(self) -> list[int]:
        return sorted(self.server.inbox)

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        return {uid: len(self.server.inbox[uid]) for uid in uids if uid in self.server.inbox}

    def fetch(self, uids: Sequence[int]) -> Iterator[FetchedMail]:
        for uid in uids:
            if uid in self.server.inbox:
                yield FetchedMail(uid, self.server.inbox[uid])

    def mark_done(self, uids: Sequence[int]) -> None:
        for uid in uids:
            if uid in self.server.inbox:
                self.server.done[uid] = self.server.inbox.pop(uid)


@dataclass
class FakeSmtp:
    """``SmtpTransport.send_batch``'s interface; ``accepted`` is the sink's log (Message-ID, kind, time of 250)."""

    clock: FrozenClock
    failures: deque[str] = field(default_factory=deque)  # "temporary" / "permanent", one per next mail
    accepted: list[tuple[str, str, datetime]] = field(default_factory=list)
    failed: dict[str, list[tuple[str, datetime]]] = field(default_factory=lambda: defaultdict(list))

    def send_batch(self, mails: Sequence[Envelope],
                   on_result: Callable[[int, SendResult], None] | None = None) -> list[SendResult]:
        results: list[SendResult] = []
        for index, mail in enumerate(mails):
            headers = BytesHeaderParser().parsebytes(mail.raw)
            message_id = str(headers["Message-ID"] or "").strip().strip("<>")
            if self.failures:
                how = self.failures.popleft()
                self.failed[message_id].append((how, self.clock.now()))
                error = (TemporaryDeliveryError("451 4.3.0 injected: try later", 451) if how == "temporary"
                         else PermanentDeliveryError("550 5.1.1 injected: no such user", 550))
                result = SendResult(error=error)
            else:
                faults.crashpoint("smtp_data_sent")
                self.accepted.append((message_id, str(headers["X-Maildesk-Kind"] or ""), self.clock.now()))
                result = SendResult(accepted=mail.recipients)
            results.append(result)
            if on_result is not None:
                on_result(index, result)
        return results

    def write_log(self, path: Path) -> Path:
        path.write_text("".join(json.dumps({"message_id": mid, "received_at": at.isoformat()}) + "\n"
                                for mid, _kind, at in self.accepted), encoding="utf-8")
        return path


def _mail(index: int, outcome: str, parent: CorpusMail | None, run: int) -> CorpusMail:
    mid = f"p5-{run}-{index:04d}@corp.test"
    at = START_AT + timedelta(minutes=index)
    if outcome == NEW:
        sender = f"user{run}-{index:04d}@corp.test"
        raw, family = _request(sender, f"打印机无法打印 #{index}", mid, at, "三楼打印机卡纸。"), "plain"
    else:
        assert parent is not None
        sender = parent.sender
        subject = f"打印机无法打印 #{parent.index}"
        if outcome == REPLY:
            raw, family = _request(sender, f"Re: {subject}", mid, at, "还是不行。", in_reply_to=parent.message_id), "reply"
        else:
            raw, family = _out_of_office(sender, subject, mid, at, parent.message_id), "out-of-office"
    sha = hashlib.sha256(raw).hexdigest()
    return CorpusMail(index, mid, sha, sha, outcome, family, sender, outcome == NEW,
                      parent.message_id if parent else None, raw)


@dataclass(frozen=True)
class Snapshot:
    """What the database says, read by the checker's own engine."""

    raws: list
    messages: list
    tickets: int
    acks: list
    discard_events: set[int]


class DeskLoop(RuleBasedStateMachine):
    """The model: what was delivered, what crashes and failures were injected; the desk is the system under test."""

    runs = 0

    def __init__(self) -> None:
        super().__init__()
        DeskLoop.runs += 1
        self.run = DeskLoop.runs
        self.tmp = Path(tempfile.mkdtemp(prefix="maildesk-p5-", dir=TMPFS if TMPFS.is_dir() else None))
        self.config = write_desk(self.tmp, imap=("127.0.0.1", 1, "p5", "unused"), smtp=("127.0.0.1", 1),
                                 batch_size=4, idle=False)
        self.settings, self.base = load_settings(str(self.config.path))
        self.clock = FrozenClock(START_AT)
        self.imap = FakeImapServer()
        self.smtp = FakeSmtp(self.clock)
        self.points = ArmedPoints()
        faults._points = self.points  # type: ignore[assignment]  # restored by the test's monkeypatch
        self.mails: list[CorpusMail] = []
        self.crashes: Counter[str] = Counter()
        self.window_events = 0
        self.broken = False
        self.desk: Desk | None = None
        self._start()
        self.check_engine = make_engine(self.config.database_url)
        self.check_sessions = make_session_factory(self.check_engine)

    # -- the desk's life ---------------------------------------------------------------------------

    def _start(self) -> None:
        desk = build_desk(self.settings, self.base, clock=self.clock, environ=self.config.env)
        desk.pollers[0]._factory = lambda _settings, _credential: FakeImapSource(self.imap)  # type: ignore[assignment]
        desk.sender.transport = self.smtp  # type: ignore[assignment]
        Daemon(desk)._register()  # what `maildesk run` does first: frees rows a dead predecessor had claimed
        self.desk = desk

    def _drop(self) -> None:
        """The process is gone: its connections close (SQLite locks go with them), nothing else is cleaned up."""
        if self.desk is not None:
            self.desk.sessions.kw["bind"].dispose()
            self.desk = None

    def _step(self, action: Callable[[Desk], object]) -> None:
        assert self.desk is not None
        try:
            action(self.desk)
        except SimulatedCrash as crash:
            point = str(crash)
            self.crashes[point] += 1
            self.window_events += point == WINDOW_POINT
            self.points.armed.clear()  # the arming died with the process
            self._drop()

    # -- rules -------------------------------------------------------------------------------------

    @rule(mails=st.lists(st.tuples(st.sampled_from((NEW, NEW, REPLY, AUTO_REPLY)), st.integers(0, 10**6)),
                         min_size=1, max_size=4))
    def deliver_mails(self, mails: list[tuple[str, int]]) -> None:
        """New requests, replies and out-of-office replies to earlier requests (picked by ``pick``)."""
        for outcome, pick in mails:
            requests = [m for m in self.mails if m.outcome == NEW]
            if not requests:
                outcome = NEW
            parent = requests[pick % len(requests)] if outcome != NEW else None
            mail = _mail(len(self.mails), outcome, parent, self.run)
            self.mails.append(mail)
            self.imap.deliver(mail.raw)

    @precondition(lambda self: self.desk is not None)
    @rule()
    def fetch_and_store(self) -> None:
        self._step(lambda desk: desk.pollers[0].poll_once())

    @precondition(lambda self: self.desk is not None)
    @rule()
    def process_pending(self) -> None:
        self._step(lambda desk: desk.runner.process_pending())

    @precondition(lambda self: self.desk is not None)
    @rule()
    def send_due(self) -> None:
        self._step(lambda desk: desk.sender.send_due())

    @precondition(lambda self: self.desk is not None)
    @rule(pick=st.integers(min_value=0, max_value=2**16), nth=st.integers(min_value=1, max_value=2))
    def crash_at_a_point(self, pick: int, nth: int) -> None:
        """A new request arrives, a point is armed for its ``nth`` pass, and one daemon cycle (poll, process,
        send) runs into it: with work in hand every point of the loop is passed at least once.  The point comes
        from ``pick`` through a seeded shuffle: Hypothesis favours a few values (the first element of a
        ``sampled_from``, 0, the bounds), and this spreads those over the points."""
        point = random.Random(pick).choice(POINTS)
        note(f"crash at {point}:{nth}")
        self.deliver_mails([(NEW, 0)])
        self.points.armed[point] = nth
        for action in (lambda d: d.pollers[0].poll_once(), lambda d: d.runner.process_pending(),
                       lambda d: d.sender.send_due()):
            if self.desk is None:
                return
            self._step(action)
        self.points.armed.clear()  # not reached this often: the process lives on
        DeskLoop.points_missed[point] += 1

    @rule()
    def restart(self) -> None:
        self.points.armed.clear()
        self._drop()
        self._start()

    @rule(how=st.sampled_from(("temporary", "permanent")))
    def smtp_fails_for_the_next_send(self, how: str) -> None:
        self.smtp.failures.append(how)

    @rule(delta=st.sampled_from(STEPS_OF_CLOCK))
    def clock_advances(self, delta: timedelta) -> None:
        self.clock.advance(delta)

    # -- invariants --------------------------------------------------------------------------------

    def _snapshot(self) -> Snapshot:
        with self.check_sessions() as session:
            return Snapshot(
                session.execute(select(RawMail.id, RawMail.message_id, RawMail.status)).all(),
                session.execute(select(Message.ticket_id, Message.raw_mail_id, Message.message_id, Message.kind)).all(),
                len(list(session.scalars(select(Ticket.id)))),
                session.execute(select(Outbox.message_id, Outbox.ticket_id, Outbox.status, Outbox.created_at)
                                .where(Outbox.kind == "ack")).all(),
                {int(e.data.get("raw_mail_id") or 0) for e in session.scalars(
                    select(Event).where(Event.kind == "automatic_mail_discarded"))})

    @invariant()
    def pass_criteria_hold_so_far(self) -> None:
        self.broken = True  # until every check below passed: teardown then reports the first failure only
        snap = self._snapshot()
        raws_of, msgs_of = defaultdict(list), defaultdict(list)
        for row in snap.raws:
            raws_of[row.message_id].append(row)
        for row in snap.messages:
            msgs_of[row.message_id].append(row)
        ticket_of = {mid: rows[0].ticket_id for mid, rows in msgs_of.items() if rows}
        processed_new = 0
        for mail in self.mails:
            raws, msgs = raws_of.get(mail.message_id, []), msgs_of.get(mail.message_id, [])
            assert len(raws) <= 1, f"{mail.message_id} stored {len(raws)} times"
            assert len(msgs) <= 1, f"{mail.message_id} became {len(msgs)} messages"
            if not raws or raws[0].status == "pending":
                assert not msgs, f"{mail.message_id} is a message while its raw row is pending"
                continue
            raw = raws[0]
            records = len(msgs) + (raw.status == "quarantined") + (
                raw.status == "discarded" and raw.id in snap.discard_events)
            assert records == 1, f"{mail.message_id} ({mail.outcome}, raw {raw.status}) has {records} records"
            assert raw.status != "quarantined", f"{mail.message_id} quarantined: nothing here is poison"
            if mail.outcome == NEW:
                processed_new += 1
                assert msgs and msgs[0].kind == "request", f"{mail.message_id} opened no ticket"
            elif msgs:
                assert msgs[0].kind != "request", f"{mail.message_id} ({mail.outcome}) opened a second ticket"
                assert msgs[0].ticket_id == ticket_of.get(mail.parent or ""), f"{mail.message_id} misthreaded"
        per_raw = Counter(m.raw_mail_id for m in snap.messages if m.raw_mail_id is not None)
        assert all(n == 1 for n in per_raw.values()), f"a raw row yields two messages: {per_raw.most_common(3)}"
        assert snap.tickets == processed_new, f"tickets={snap.tickets} but {processed_new} new requests processed"
        self._check_acks(snap, processed_new)
        self.broken = False

    def _check_acks(self, snap: Snapshot, processed_new: int) -> None:
        ack_rows = {row.message_id: row for row in snap.acks}
        accepted = Counter(mid for mid, _kind, _at in self.smtp.accepted if mid in ack_rows)
        assert not [mid for mid, kind, _ in self.smtp.accepted if kind == "ack" and mid not in ack_rows]
        assert len(accepted) <= processed_new, f"{len(accepted)} distinct acks for {processed_new} requests"
        dups = sum(accepted.values()) - len(accepted)
        assert dups <= self.window_events, (f"{dups} duplicate acks, {self.window_events} crashes between "
                                            f"250 and mark_sent: {accepted.most_common(3)}")
        per_ticket = Counter(row.ticket_id for row in snap.acks)
        assert all(n == 1 for n in per_ticket.values()), f"a ticket has two acks: {per_ticket.most_common(3)}"
        for mid, row in ack_rows.items():
            if row.status == "sent":
                assert accepted[mid] >= 1, f"ack {mid} marked sent but the server never accepted it"
            if row.status == "dead":
                assert self._death_justified(mid, row.created_at), f"ack {mid} dead without a reason"

    def _death_justified(self, message_id: str, created_at: datetime) -> bool:
        created = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
        return any(how == "permanent" or at - created >= ACK_GIVE_UP for how, at in self.smtp.failed[message_id])

    # -- the end: drain, then the full reconciliation ----------------------------------------------

    def teardown(self) -> None:
        try:
            if not self.broken:
                self._drain_and_reconcile()
        finally:
            self._drop()
            self.check_engine.dispose()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _drain_and_reconcile(self) -> None:
        self.points.armed.clear()
        self.smtp.failures.clear()
        self._drop()
        self._start()
        assert self.desk is not None
        for _ in range(8):
            self.desk.pollers[0].poll_once()
            self.desk.runner.process_pending()
            self.desk.sender.send_due()
            if not self.imap.inbox and progress(self.check_sessions).drained(len(self.mails)):
                break
            self.clock.advance(timedelta(minutes=61))  # past any retry backoff (capped at 60 min)
        self.pass_criteria_hold_so_far()
        assert not self.imap.inbox, f"left on the server: {sorted(self.imap.inbox)}"
        dead = self._dead_ack_requests()
        corpus = Corpus(self.run, tuple(replace(m, ack_due=m.ack_due and m.message_id not in dead)
                                        for m in self.mails))
        result = reconcile("P5", corpus, self.desk.sessions, self.smtp.write_log(self.tmp / "sink.jsonl"),
                           extra_window_events=self.window_events)
        result.check()
        DeskLoop.results.append(result)
        DeskLoop.points_fired.update(self.crashes)

    def _dead_ack_requests(self) -> set[str]:
        """Message-IDs of requests whose ack is a dead letter the server never accepted (the invariant checks that
        each death was earned; an ack accepted before a crash and refused when resent did reach the requester)."""
        assert self.desk is not None
        accepted = {mid for mid, _kind, _at in self.smtp.accepted}
        with self.desk.sessions() as session:
            dead_tickets = set(session.scalars(select(Outbox.ticket_id).where(
                Outbox.kind == "ack", Outbox.status == "dead", Outbox.message_id.not_in(accepted))))
            return set(session.scalars(select(Message.message_id).where(Message.ticket_id.in_(dead_tickets),
                                                                         Message.kind == "request")))

    results: list[Reconciliation] = []
    points_fired: Counter[str] = Counter()
    points_missed: Counter[str] = Counter()


def test_the_ingest_and_outbox_loop_keeps_the_pass_criteria_after_every_step(monkeypatch, record_line) -> None:  # noqa: ANN001
    monkeypatch.setattr(faults, "_points", faults._points)
    DeskLoop.results.clear()
    DeskLoop.points_fired.clear()
    DeskLoop.points_missed.clear()
    run_state_machine_as_test(DeskLoop, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, derandomize=not FULL, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    print(f"P5 examples={len(DeskLoop.results)} crashes by point: {dict(sorted(DeskLoop.points_fired.items()))}; "
          f"armed but not reached: {dict(sorted(DeskLoop.points_missed.items()))}")
    if DeskLoop.results:  # the pass-criteria line of the example with the most mails
        record_line(max(DeskLoop.results, key=lambda r: int(r.counts["mails_in"])))
