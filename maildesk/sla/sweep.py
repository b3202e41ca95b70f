"""The SLA sweep: every promise of the process kept by mail, on time, once.

It asks the database only for tickets whose next automatic mail is due
(``tickets.next_due_at``, indexed; any change to a ticket sets it to "now"),
brings their deadlines up to date (priority changes, time spent waiting on
the requester), lets the pure ``tickets.lifecycle.plan`` say what is due, and
queues each mail under its unique key — so a second sweep, or a second
daemon, queues nothing twice.  Non-urgent reminders wait for the recipient's
business hours.  Then it stores when the ticket next needs a look.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from maildesk.domain import Clock, Priority, TicketStatus
from maildesk.faults import crashpoint
from maildesk.outbound.notifier import Notifier
from maildesk.outbound.ticket_mail import TicketMail
from maildesk.rules.loader import RuleConfig
from maildesk.rules.policy import RulesPolicy
from maildesk.sla.calendar import BusinessCalendar
from maildesk.sla.deadlines import clock_for
from maildesk.store import queries
from maildesk.store.models import Ticket
from maildesk.store.session import Session, SessionFactory, transaction
from maildesk.tickets import lifecycle, service

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepReport:
    tickets: int = 0
    mails: int = 0


def _next_deadline(ticket: Ticket) -> datetime | None:
    if ticket.first_response_at is None and ticket.first_response_due_at is not None:
        return ticket.first_response_due_at
    return ticket.resolve_due_at


class Sweeper:
    def __init__(self, *, sessions: SessionFactory, clock: Clock, policy: RulesPolicy, notifier: Notifier,
                 lifecycle_policy: lifecycle.LifecyclePolicy | None = None, batch_size: int = 100) -> None:
        self.sessions = sessions
        self.clock = clock
        self.policy = policy
        self.notifier = notifier
        self.lifecycle = lifecycle_policy or lifecycle.LifecyclePolicy()
        self.batch_size = batch_size

    def sweep(self, stop: threading.Event | None = None) -> SweepReport:
        """Handle every ticket that is due now; each batch is one transaction."""
        tickets = mails = 0
        now_at = self.clock.now()
        while not (stop and stop.is_set()):
            with transaction(self.sessions) as session:
                due = queries.due_tickets(session, now_at, self.batch_size)
                if not due:
                    break
                config = self.policy.config
                ticket_mail = TicketMail(self.notifier, config)
                for ticket in due:
                    mails += self._sweep_ticket(session, ticket, config, ticket_mail, now_at)
                    crashpoint("sweep_mid")
                tickets += len(due)
        if mails:
            log.info("sweep: %d mail(s) queued for %d ticket(s)", mails, tickets)
        return SweepReport(tickets, mails)

    def digest(self, *, at_local: str = "09:00", horizon: timedelta = timedelta(hours=4)) -> bool:
        """Once a day, from ``at_local`` on: what is open and at risk, to the supervisors on duty."""
        now_at = self.clock.now()
        config = self.policy.config
        zone = config.calendar().zone
        local = now_at.astimezone(zone)
        if local.strftime("%H:%M") < at_local:
            return False
        with transaction(self.sessions) as session:
            mails = TicketMail(self.notifier, config)
            total, risky = queries.open_tickets_at_risk(session, now_at + horizon)
            at_risk = [{
                "number": t.number, "subject": t.subject, "priority": t.priority,
                "due": mails.local(_next_deadline(t)),
                "left_minutes": int(((_next_deadline(t) or now_at) - now_at).total_seconds() // 60),
                "assignee": mails.agent_name(t.assignee) or "",
            } for t in risky]
            sent = mails.to_agents(session, None, "oncall_digest", mails.supervisors(), {
                "date": local.strftime("%Y-%m-%d"), "open_count": total, "at_risk": at_risk,
            }, f"digest:{local:%Y-%m-%d}")
        return bool(sent)

    def _sweep_ticket(self, session: Session, ticket: Ticket, config: RuleConfig, mails: TicketMail,
                      now_at: datetime) -> int:
        priority = Priority(ticket.priority)
        calendar = config.calendar_for(ticket.group)
        clock = clock_for(config.policy_for(ticket.group), priority, calendar)
        pauses = queries.pending_pauses(session, ticket.id)
        if TicketStatus(ticket.status) not in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
            deadlines = self.policy.deadlines(priority, ticket.created_at, group=ticket.group, paused=pauses)
            if ticket.pending_since_at is None:  # an open pause leaves the stored deadlines as they were
                service.set_deadlines(session, ticket, deadlines, "maildesk", now_at, why="SLA clock updated")
        facts = self._facts(ticket, config, pauses)
        sent = sum(self._act(session, ticket, due, facts, mails, calendar, now_at)
                   for due in lifecycle.plan(facts, self.lifecycle, now_at=now_at, calendar=clock))
        facts = self._facts(ticket, config, pauses)
        ticket.next_due_at = lifecycle.next_due_at(facts, self.lifecycle, calendar=clock, after=now_at)
        return sent

    def _facts(self, ticket: Ticket, config: RuleConfig, pauses: list[tuple[datetime, datetime | None]]
               ) -> lifecycle.TicketFacts:
        priority = Priority(ticket.priority)
        progress = config.policy_for(ticket.group).target(priority).progress_every
        return lifecycle.TicketFacts(
            number=ticket.number, status=TicketStatus(ticket.status), priority=priority,
            created_at=ticket.created_at, first_response_at=ticket.first_response_at,
            first_response_due_at=ticket.first_response_due_at, resolve_due_at=ticket.resolve_due_at,
            resolved_at=ticket.resolved_at, pending_since_at=ticket.pending_since_at,
            last_requester_at=ticket.last_requester_at, escalation_level=ticket.escalation_level,
            progress_every=progress, assignee=ticket.assignee, group=ticket.group, paused=tuple(pauses),
        )

    def _act(self, session: Session, ticket: Ticket, due: lifecycle.Due, facts: lifecycle.TicketFacts,
             mails: TicketMail, calendar: BusinessCalendar, now_at: datetime) -> int:
        urgent = ticket.priority == Priority.URGENT.value
        send_at = lifecycle.defer_to_business_hours(now_at, calendar, urgent=urgent)
        key = due.dedup_key
        if due.kind == "deadline_warning":
            people = mails.agent(ticket.assignee) or mails.group_agents(ticket.group)
            deadline_at = ticket.first_response_due_at if due.deadline == "first_response" else ticket.resolve_due_at
            left = int((deadline_at - now_at).total_seconds() // 60) if deadline_at else 0
            service.record_event(session, ticket.id, "sla_warning", "maildesk", now_at, deadline=due.deadline,
                                 due_at=deadline_at.isoformat() if deadline_at else None)
            return mails.to_agents(session, ticket, "deadline_warning", people, {
                "deadline": due.deadline or "", "due_at": mails.local(deadline_at), "left_minutes": max(left, 0),
                "assignee_name": mails.agent_name(ticket.assignee) or ""}, key, send_at=send_at)
        if due.kind == "escalation":
            level = due.level or ticket.escalation_level + 1
            reason = f"{(due.deadline or 'SLA').replace('_', ' ')} deadline missed"
            service.escalate(session, ticket, level, "maildesk", now_at, why=reason)
            first = next((m for m in ticket.messages if m.kind == "request"), None)
            tried = [{"at": mails.local(e.at), "who": e.actor, "text": e.kind}
                     for e in queries.ticket_history(session, ticket.id)]
            mails.escalation(session, ticket, level, reason, tried, first.body_text if first else ticket.subject, key)
            return 1
        if due.kind == "progress_report":
            since = int((now_at - ticket.created_at).total_seconds() // 60)
            last = queries.ticket_history(session, ticket.id, limit=1)
            every = facts.progress_every or timedelta(minutes=30)
            return mails.to_agents(session, ticket, "progress_report", mails.supervisors(), {
                "priority": ticket.priority, "status": ticket.status, "since_minutes": since,
                "last_update": f"{last[0].kind} ({mails.local(last[0].at)})" if last else "",
                "next_report_due": mails.local(now_at + every)}, key)
        if due.kind == "pending_reminder":
            waited = (now_at - ticket.pending_since_at).days if ticket.pending_since_at else 0
            return int(self.notifier.send(session, ticket, kind="pending_reminder", to=mails.requester_and_ccs(ticket)[:1],
                                          context={"requester_name": ticket.requester_name, "waiting_days": waited,
                                                   "n": int(key.rsplit(":", 1)[1])}, key=key, send_at=send_at))
        if due.kind == "auto_close":
            service.change_status(session, ticket, TicketStatus.CLOSED, "maildesk", now_at,
                                  why=f"no reply for {self.lifecycle.auto_close_after.days} days after resolution")
            return int(self.notifier.send(session, ticket, kind="auto_close", to=mails.requester_and_ccs(ticket)[:1],
                                          context={"requester_name": ticket.requester_name,
                                                   "days": self.lifecycle.auto_close_after.days}, key=key))
        log.warning("%s: unknown due kind %s", ticket.number, due.kind)
        return 0
