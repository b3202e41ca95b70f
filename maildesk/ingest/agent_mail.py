"""An authenticated agent's mail on a ticket: commands, internal notes, and replies relayed to the requester.

All commands are checked before any is applied, so a mail with one bad
command changes nothing and its author gets a short answer naming the line.
The text left after the command lines is the reply: relayed to the requester
and the ticket's CCs from the support address under the agent's name —
unless it was a ``#note``, or the agent already wrote to the requester
directly with the support address in copy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

from maildesk.domain import Address, ParsedMail, Priority, TicketStatus
from maildesk.ingest.commands import Command, CommandBlock, extract_commands
from maildesk.kb import mail as kb_mail
from maildesk.outbound.ticket_mail import TicketMail
from maildesk.rules.policy import RulesPolicy
from maildesk.store import queries
from maildesk.store.models import Ticket
from maildesk.store.session import Session
from maildesk.tickets import service
from maildesk.tickets.states import TransitionError, check_transition

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentOutcome:
    kind: str  # "note" | "reply" | "commands" | "refused"
    reason: str


class AgentMail:
    def __init__(self, mail: TicketMail, policy: RulesPolicy) -> None:
        self.ticket_mail = mail
        self.policy = policy

    def handle(self, session: Session, ticket: Ticket, parsed: ParsedMail, agent: str, *, raw_id: int,
               dedup_key: str, at: datetime) -> AgentOutcome:
        block = extract_commands(parsed.reply_text or parsed.body_text)
        problems = [{"line": e.line, "raw": e.raw, "problem": e.problem} for e in block.errors]
        problems += self._check(session, ticket, block)
        note = bool(block.all("note"))
        body = block.body.strip()
        kind = "note" if note or not body else "reply"
        service.add_message(session, ticket, mail=_with_text(parsed, body), raw_mail_id=raw_id,
                            dedup_key=dedup_key, kind=kind if not problems else "note", at=at)
        service.add_participants(session, ticket, [(Address(agent), "agent")], frozenset())
        if problems:
            service.record_event(session, ticket.id, "commands_refused", agent, at, problems=problems)
            self.ticket_mail.command_error(session, ticket, agent, dedup_key, problems)
            return AgentOutcome("refused", f"{len(problems)} command problem(s); nothing applied")
        for command in block.commands:
            self._apply(session, ticket, command, agent, at, body)
        if kind == "reply":
            service.record_first_response(session, ticket, agent, at)
            if _wrote_to_requester(parsed, ticket):
                service.record_event(session, ticket.id, "reply_not_relayed", agent, at,
                                     why="the agent wrote to the requester directly, support in copy")
            else:
                self.ticket_mail.relay(session, ticket, agent, body, dedup_key)
        if any(c.name == "status" and c.argument == "resolved" for c in block.commands):
            self.ticket_mail.resolution(session, ticket, agent, ticket.solution or body)
        if ticket.kb_candidate and TicketStatus(ticket.status) in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
            kb_mail.article_from_resolved(session, self.ticket_mail, ticket, agent, at)  # once per ticket
        ticket.next_due_at = at  # the sweep re-plans this ticket's reminders
        return AgentOutcome(kind, f"{len(block.commands)} command(s), {kind}")

    def _check(self, session: Session, ticket: Ticket, block: CommandBlock) -> list[dict[str, object]]:
        """Problems only the directory and the store can see (who, which group, which ticket)."""
        config = self.policy.config
        problems: list[dict[str, object]] = []
        for command in block.commands:
            problem = None
            if command.name == "assign" and config.agents.by_name(command.argument) is None:
                problem = f"no agent called '{command.argument}'"
            elif command.name == "group" and self._group_id(command.argument) is None:
                problem = f"no group called '{command.argument}'"
            elif command.name == "merge":
                target = queries.ticket_by_number(session, command.argument)
                if target is None or target.id == ticket.id:
                    problem = f"no other ticket {command.argument} to merge into"
            elif command.name == "status":
                try:
                    if TicketStatus(ticket.status).value != command.argument:
                        check_transition(TicketStatus(ticket.status), TicketStatus(command.argument))
                except TransitionError as exc:
                    problem = str(exc)
            if problem:
                problems.append({"line": command.line, "raw": command.raw, "problem": problem})
        return problems

    def _group_id(self, name: str) -> str | None:
        groups = self.policy.config.groups
        wanted = name.strip().lower()
        for group in groups.groups:
            if wanted in (group.group_id.lower(), group.name.lower(), group.name_en.lower()):
                return group.group_id
        return None

    def _apply(self, session: Session, ticket: Ticket, command: Command, agent: str, at: datetime,
               body: str) -> None:
        name, arg = command.name, command.argument
        why = f"{command.raw.strip()} (line {command.line})"
        if name == "status":
            if arg == "resolved":
                ticket.solution = body or ticket.solution
            service.change_status(session, ticket, TicketStatus(arg), agent, at, why=why)
        elif name == "priority":
            if service.change_field(session, ticket, "priority", arg, agent, at, why=why):
                paused = queries.pending_pauses(session, ticket.id)
                deadlines = self.policy.deadlines(Priority(arg), ticket.created_at, group=ticket.group, paused=paused)
                service.set_deadlines(session, ticket, deadlines, agent, at, why=f"priority changed to {arg}")
        elif name == "assign":
            found = self.policy.config.agents.by_name(arg)
            assert found is not None  # checked before
            if service.change_field(session, ticket, "assignee", found.agent_id, agent, at, why=why):
                self.ticket_mail.assigned(session, ticket, by=self.ticket_mail.agent_name(agent) or agent)
        elif name == "group":
            service.change_field(session, ticket, "group", self._group_id(arg), agent, at, why=why)
        elif name == "cc":
            service.add_participants(session, ticket, [(Address(arg), "cc")], self.ticket_mail.settings.own_addresses)
            service.record_event(session, ticket.id, "cc_added", agent, at, address=arg)
        elif name == "kb":
            ticket.kb_candidate = True
            ticket.solution = body or ticket.solution
            service.record_event(session, ticket.id, "kb_marked", agent, at)
        elif name == "merge":
            self._merge(session, ticket, arg, agent, at)
        elif name == "escalate":
            self._escalate(session, ticket, arg, agent, at)

    def _merge(self, session: Session, ticket: Ticket, number: str, agent: str, at: datetime) -> None:
        target = queries.ticket_by_number(session, number)
        assert target is not None
        ticket.merged_into_id = target.id
        people = [(Address(p.address, p.name), p.role if p.role != "requester" else "cc") for p in ticket.participants]
        service.add_participants(session, target, people, self.ticket_mail.settings.own_addresses)
        service.record_event(session, target.id, "merged_in", agent, at, source=ticket.number)
        service.record_event(session, ticket.id, "merged_into", agent, at, target=target.number)
        if TicketStatus(ticket.status) is not TicketStatus.CLOSED:
            service.change_status(session, ticket, TicketStatus.CLOSED, agent, at, why=f"merged into {number}")

    def _escalate(self, session: Session, ticket: Ticket, reason: str, agent: str, at: datetime) -> None:
        level = ticket.escalation_level + 1
        service.escalate(session, ticket, level, agent, at, why=reason or "escalated by hand")
        tried = [{"at": self.ticket_mail.local(e.at), "who": e.actor, "text": _event_text(e.kind, e.data)}
                 for e in queries.ticket_history(session, ticket.id)]
        first = next((m for m in ticket.messages if m.kind == "request"), None)
        self.ticket_mail.escalation(session, ticket, level, reason or "escalated by hand", tried,
                                    first.body_text if first else ticket.subject, key=f"escalation:{level}")


def _with_text(parsed: ParsedMail, body: str) -> ParsedMail:
    """The mail as stored: the reply text without the command lines."""
    return replace(parsed, reply_text=body)


def _wrote_to_requester(parsed: ParsedMail, ticket: Ticket) -> bool:
    return any(a.key == ticket.requester_addr.lower() for a in (*parsed.to, *parsed.cc))


def _event_text(kind: str, data: dict[str, object]) -> str:
    details = ", ".join(f"{k}={v}" for k, v in data.items() if k not in ("version", "rules", "deadlines"))
    return f"{kind}: {details}"[:300]
