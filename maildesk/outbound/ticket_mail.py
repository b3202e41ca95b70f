"""The mails of a ticket's life, each addressed to the right people.

One method per notification; each resolves its recipients from the agent
and group directory of the configuration in force, gives every agent their
personal ``support+<token>@`` reply address (which authenticates their
answers), and queues the mail through ``Notifier.send`` in the caller's
transaction.  Requester details shown to agents are masked where the process
asks for it.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from zoneinfo import ZoneInfo

from maildesk.ingest.authn import make_reply_address
from maildesk.outbound.notifier import REPLY_TOKEN_SECRET, SURVEY_SECRET, Notifier, Personal, Recipient
from maildesk.privacy import mask_phones
from maildesk.rules.agents import Agent
from maildesk.rules.loader import RuleConfig
from maildesk.store.models import Ticket
from maildesk.store.session import Session
from maildesk.tickets import survey

COMMANDS_HELP = (
    {"zh": "#状态 已解决|待用户|处理中", "en": "#status resolved|pending|open", "help": "change the status"},
    {"zh": "#优先级 紧急|高|中|低", "en": "#priority urgent|high|medium|low", "help": "change the priority"},
    {"zh": "#指派 姓名", "en": "#assign NAME", "help": "hand the ticket to an agent"},
    {"zh": "#转组 组名", "en": "#group NAME", "help": "move the ticket to another group"},
    {"zh": "#备注", "en": "#note", "help": "an internal note, never sent to the requester"},
    {"zh": "#抄送 地址", "en": "#cc ADDRESS", "help": "add someone to the ticket"},
    {"zh": "#合并 TS…", "en": "#merge TS…", "help": "merge this ticket into another"},
    {"zh": "#知识库", "en": "#kb", "help": "mark the solution for the knowledge base"},
    {"zh": "#升级 原因", "en": "#escalate REASON", "help": "escalate to the next level"},
)


def reply_token(secret: str, address: str) -> str:
    """An agent's personal reply token: HMAC of the address, so it cannot be guessed or moved."""
    return hmac.new(secret.encode(), address.strip().lower().encode(), hashlib.sha256).hexdigest()[:20]


class TicketMail:
    def __init__(self, notifier: Notifier, config: RuleConfig) -> None:
        self.notifier = notifier
        self.config = config
        self.settings = notifier.settings

    # -- who ----------------------------------------------------------------------------------

    def reply_token_for(self, session: Session, address: str) -> str:
        return reply_token(self.notifier.named_secret(session, REPLY_TOKEN_SECRET), address)

    def survey_secret(self, session: Session) -> str:
        return self.notifier.named_secret(session, SURVEY_SECRET)

    def group_agents(self, group: str | None) -> list[Recipient]:
        """Everyone of the group: its agents, its members, its lead (each once)."""
        found = self.config.groups.get(group) if group else None
        people: dict[str, str] = {}
        for agent in self.config.agents.members_of(group or ""):
            people.setdefault(agent.addresses[0], agent.name)
        for address in (found.members if found else ()):
            people.setdefault(address.lower(), self._name(address))
        return [(name, address) for address, name in people.items()]

    def lead(self, group: str | None) -> list[Recipient]:
        found = self.config.groups.get(group) if group else None
        if found and found.lead:
            return [(self._name(found.lead), found.lead.lower())]
        return self.supervisors()

    def supervisors(self) -> list[Recipient]:
        return [(a.name, a.addresses[0]) for a in self.config.agents.supervisors_on_duty()]

    def agent(self, agent_id_or_address: str | None) -> list[Recipient]:
        if not agent_id_or_address:
            return []
        found = self.config.agents.by_name(agent_id_or_address)
        if found is not None:
            return [(found.name, found.addresses[0])]
        return [("", agent_id_or_address)] if "@" in agent_id_or_address else []

    def requester_and_ccs(self, ticket: Ticket) -> list[Recipient]:
        people = [(ticket.requester_name, ticket.requester_addr)]
        people += [(p.name, p.address) for p in ticket.participants if p.role == "cc"]
        return people

    def _name(self, address: str) -> str:
        found = self.config.agents.by_address(address)
        return found.name if found else ""

    def agent_name(self, address_or_id: str | None) -> str | None:
        if not address_or_id:
            return None
        found = self.config.agents.by_name(address_or_id) or self.config.agents.by_address(address_or_id)
        return found.name if found else address_or_id

    def assignee_agent(self, ticket: Ticket) -> Agent | None:
        return self.config.agents.by_name(ticket.assignee) if ticket.assignee else None

    def local(self, at: datetime | None) -> str:
        return at.astimezone(ZoneInfo(self.settings.timezone)).strftime("%Y-%m-%d %H:%M") if at else ""

    # -- to agents: each their own mail, with their own reply address ---------------------------

    def to_agents(self, session: Session, ticket: Ticket | None, kind: str, people: list[Recipient],
                  context: dict[str, object], key: str, send_at: datetime | None = None) -> int:
        personal = []
        for name, address in people:
            agent = self.config.agents.by_address(address)
            personal.append(Personal(name, address, agent.language if agent else self.settings.locale,
                                     make_reply_address(self.settings.support_address,
                                                        self.reply_token_for(session, address))))
        if ticket is None:  # not about a ticket: no thread, no shared text to save
            return sum(self.notifier.send(session, None, kind=kind, to=[(p.name, p.address)],
                                          key=f"{key}:{p.address}", context=context, locale=p.locale,
                                          send_at=send_at, reply_to=p.reply_to) for p in personal)
        return self.notifier.send_each(session, ticket, kind=kind, people=personal, context=context, key=key,
                                       send_at=send_at, shows_reply_address=kind in _NEEDS_REPLY_ADDRESS)

    def new_ticket(self, session: Session, ticket: Ticket, body: str, urgent_or_high: bool) -> None:
        context = {
            "requester_name": ticket.requester_name, "requester_address": ticket.requester_addr,
            "requester_phone": _phone_of(body), "impact": ticket.impact or "", "category": ticket.category,
            "priority": ticket.priority, "group_name": self.config.group_name(ticket.group) or "",
            "first_response_due": self.local(ticket.first_response_due_at),
            "resolve_due": self.local(ticket.resolve_due_at), "body": mask_phones(body[:6000]),
            "commands": list(COMMANDS_HELP),
        }
        self.to_agents(session, ticket, "new_ticket_notice", self.group_agents(ticket.group), context, "new")
        if urgent_or_high:
            self.to_agents(session, ticket, "supervisor_notice", self.supervisors(),
                           {**context, "reason": f"priority {ticket.priority}"}, "supervisor")

    def assigned(self, session: Session, ticket: Ticket, by: str) -> None:
        self.to_agents(session, ticket, "assigned_notice", self.agent(ticket.assignee), {
            "assignee_name": self.agent_name(ticket.assignee) or "", "assigned_by": by,
            "priority": ticket.priority, "due": self.local(ticket.first_response_due_at or ticket.resolve_due_at),
        }, f"assigned:{ticket.assignee}:{ticket.updated_at:%Y%m%dT%H%M%S}")

    def command_error(self, session: Session, ticket: Ticket, agent_address: str, message_key: str,
                      errors: list[dict[str, object]]) -> None:
        self.to_agents(session, ticket, "command_error", [(self._name(agent_address), agent_address)],
                       {"errors": errors}, f"command-error:{message_key}")

    def impostor(self, session: Session, ticket: Ticket | None, agent_address: str, subject: str,
                 reason: str, message_key: str) -> None:
        self.to_agents(session, ticket, "impostor_notice", [(self._name(agent_address), agent_address)], {
            "agent_name": self._name(agent_address) or agent_address, "claimed_address": agent_address,
            "subject": subject, "received_at": self.local(self.notifier.clock.now()), "reason": reason,
        }, f"impostor:{message_key}")

    def reopened(self, session: Session, ticket: Ticket, reason: str, text: str) -> None:
        people = self.agent(ticket.assignee) or self.group_agents(ticket.group)
        self.to_agents(session, ticket, "reopened_notice", people, {"reason": reason, "text": text[:4000]},
                       f"reopened:{ticket.reopened_count}")

    def low_rating(self, session: Session, ticket: Ticket, rating_label: str, comment: str) -> None:
        self.to_agents(session, ticket, "low_rating", self.lead(ticket.group), {
            "rating_label": rating_label, "comment": comment[:4000],
            "assignee_name": self.agent_name(ticket.assignee) or "",
        }, f"low-rating:{ticket.rated_at:%Y%m%dT%H%M%S}")

    def escalation(self, session: Session, ticket: Ticket, level: int, reason: str, tried: list[dict[str, str]],
                   description: str, key: str) -> None:
        people = self.lead(ticket.group) if level == 1 else self.supervisors()
        level_name = {1: "group lead", 2: "on-duty supervisor"}.get(level, f"level {level}")
        self.to_agents(session, ticket, "escalation", people, {
            "level": level, "level_name": level_name, "reason": reason, "description": description[:4000],
            "impact": ticket.impact or "", "tried": tried,
        }, key)

    # -- to the requester ---------------------------------------------------------------------------

    def relay(self, session: Session, ticket: Ticket, agent_address: str, body: str, message_key: str) -> bool:
        """An agent's answer, from the support address under the agent's name, to requester and CCs."""
        name = self.agent_name(agent_address) or ""
        return self.notifier.send(
            session, ticket, kind="agent_reply", to=self.requester_and_ccs(ticket),
            context={"agent_name": name, "body": body}, key=f"reply:{message_key}",
            from_name=f"{name} ({self.settings.support_name})" if name else None, automatic=False)

    def resolution(self, session: Session, ticket: Ticket, agent_address: str, solution: str) -> None:
        secret = self.survey_secret(session)
        self.notifier.send(session, ticket, kind="resolution_notice", to=self.requester_and_ccs(ticket)[:1], context={
            "requester_name": ticket.requester_name, "solution": solution,
            "agent_name": self.agent_name(agent_address) or "",
            "survey": survey.survey_choices(secret, self.settings.support_address, ticket.number, ticket.language),
            "survey_token": survey.survey_token(secret, ticket.number),
        }, key=f"resolved:{ticket.resolved_at:%Y%m%dT%H%M%S}")

    def rating_thanks(self, session: Session, ticket: Ticket, rating_label: str, comment: str) -> None:
        self.notifier.send(session, ticket, kind="rating_thanks", to=self.requester_and_ccs(ticket)[:1],
                           context={"rating_label": rating_label, "comment": comment[:2000]},
                           key=f"rated:{ticket.rated_at:%Y%m%dT%H%M%S}")


_NEEDS_REPLY_ADDRESS = frozenset({"new_ticket_notice", "supervisor_notice"})


def _phone_of(text: str) -> str:
    """The first phone-like number of the request, masked (what agents need to call back, no more)."""
    text = text[:6000]  # the phone is in the first lines or the signature of a normal request, not past them
    masked = mask_phones(text)
    for original, shown in zip(text.split(), masked.split(), strict=False):
        if original != shown:
            return shown
    return ""

