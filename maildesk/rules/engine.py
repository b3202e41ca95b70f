"""Evaluate a rule set against one mail: category, priority, group … and why.

Rules are read top to bottom like a table.  A rule matches when every
condition of its ``when`` holds and no condition of its ``unless`` does.  For
each field the first matching rule that sets it wins; a later rule replaces
it only with ``override = true``.  Tags accumulate.  ``stop = true`` ends the
evaluation after that rule.

Priority, in order: the ``priority`` of the first rule that sets one; else, if
any rule set ``impact`` or ``urgency``, the ``[priority_matrix]`` cell for them
(the missing one from ``[defaults]``); else ``[defaults].priority``.  Then each
``raise_priority`` of a matching rule raises it that many levels, and a VIP
sender (groups.toml) raises it one more level — recorded as the hit ``vip``.
Never above urgent.

Besides the rules that matched, ``hits`` may hold three reserved ids:
``priority-matrix`` (how impact × urgency gave the priority), ``vip`` and
``defaults`` (no rule matched).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from maildesk.domain import Classification, ParsedMail, Priority, RuleHit
from maildesk.rules.conditions import MailView, match_condition
from maildesk.rules.directory import GroupDirectory
from maildesk.rules.schema import Actions, Rule, RuleSet
from maildesk.sla.calendar import BusinessCalendar, is_business_time

_SINGLE_FIELDS = tuple(
    f.name for f in fields(Actions) if f.name not in ("tags", "raise_priority", "stop", "override")
)
_BY_RANK = sorted(Priority, key=lambda p: p.rank)


@dataclass
class _Outcome:
    """The fields as rules set them, with the id of the rule that set each."""

    values: dict[str, Any] = field(default_factory=dict)
    setters: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    raise_by: int = 0
    hits: list[RuleHit] = field(default_factory=list)

    def apply(self, rule: Rule) -> None:
        actions = rule.then
        for name in _SINGLE_FIELDS:
            value = getattr(actions, name)
            if value is not None and (name not in self.values or actions.override):
                self.values[name] = value
                self.setters[name] = rule.rule_id
        self.tags.extend(t for t in actions.tags if t not in self.tags)
        self.raise_by += actions.raise_priority


def evaluate(
    ruleset: RuleSet,
    mail: ParsedMail,
    *,
    at: datetime,
    mailbox: str | None = None,
    groups: GroupDirectory | None = None,
    calendar: BusinessCalendar | None = None,
    default_group: str | None = None,
) -> Classification:
    """Classify ``mail`` received at ``at`` (aware UTC) into ``mailbox``.

    Without ``calendar``, ``business_hours`` conditions never hold; without
    ``groups``, neither do ``sender_in_group`` and ``sender_vip``.
    ``default_group`` (the queue of the mailbox) stands in for ``[defaults]``'s
    group when no rule sets one.
    """
    view = build_view(mail, at=at, mailbox=mailbox, groups=groups, calendar=calendar)
    outcome = _Outcome()
    for rule in ruleset.rules:
        if not rule.enabled:
            continue
        why = rule_matches(rule, view)
        if why is None:
            continue
        outcome.hits.append(RuleHit(rule.rule_id, rule.location, why))
        outcome.apply(rule)
        if rule.then.stop:
            break
    return _classification(ruleset, outcome, view, groups, default_group)


def rule_matches(rule: Rule, view: MailView) -> str | None:
    """Why ``rule`` matches (its conditions' reasons joined), or None."""
    reasons = []
    for condition in rule.when:
        reason = match_condition(condition, view)
        if reason is None:
            return None
        reasons.append(reason)
    if any(match_condition(condition, view) is not None for condition in rule.unless):
        return None
    return "; ".join(reasons)


def build_view(
    mail: ParsedMail,
    *,
    at: datetime,
    mailbox: str | None,
    groups: GroupDirectory | None,
    calendar: BusinessCalendar | None,
) -> MailView:
    """Prepare ``mail`` for matching: addresses, attachments, business hours, groups, VIP."""
    sender = mail.from_addr.key if mail.from_addr else None
    recipients = [mailbox.lower()] if mailbox else []
    recipients += [a.key for a in (*mail.to, *mail.cc)]
    recipients += [v.strip().strip("<>").lower() for v in mail.header_all("delivered-to")]
    vip = groups.vip_entry(sender) if groups and sender else None
    return MailView(
        subject=mail.subject,
        body=mail.body_text,
        sender=sender,
        recipients=tuple(dict.fromkeys(recipients)),
        headers=mail.headers,
        attachments=tuple((a.filename.lower(), a.content_type.lower()) for a in mail.attachments if not a.inline),
        inside_hours=is_business_time(calendar, at) if calendar else None,
        sender_groups=groups.groups_of(sender) if groups and sender else (),
        vip_why=f"'{vip.pattern}' at {vip.location}" if vip else None,
    )


def _classification(ruleset: RuleSet, outcome: _Outcome, view: MailView, groups: GroupDirectory | None,
                    default_group: str | None = None) -> Classification:
    defaults = ruleset.defaults
    values = outcome.values
    priority, matrix_hit = _base_priority(ruleset, outcome)
    if matrix_hit:
        outcome.hits.append(matrix_hit)
    if not outcome.hits:
        outcome.hits.append(RuleHit("defaults", defaults.location, "no rule matched"))
    if outcome.raise_by:
        priority = raise_priority(priority, outcome.raise_by)
    if view.vip_why and groups is not None:
        vip = groups.vip_entry(view.sender or "")
        raised = raise_priority(priority, 1)
        why = f"sender {view.sender} is VIP: priority {priority.value} → {raised.value}"
        outcome.hits.append(RuleHit("vip", vip.location if vip else groups.path, why))
        priority = raised
    return Classification(
        category=values.get("category", defaults.category),
        priority=priority,
        group=values.get("group", default_group or defaults.group),
        assignee=values.get("assignee"),
        impact=values.get("impact", defaults.impact),
        tags=tuple(outcome.tags),
        language=values.get("language", defaults.language),
        suppress_ack=bool(values.get("suppress_ack", False)),
        reply_template=values.get("reply_template"),
        close=bool(values.get("close", False)),
        hits=tuple(outcome.hits),
    )


def _base_priority(ruleset: RuleSet, outcome: _Outcome) -> tuple[Priority, RuleHit | None]:
    values = outcome.values
    if "priority" in values:
        return values["priority"], None
    matrix = ruleset.matrix
    if matrix and ("impact" in values or "urgency" in values):
        impact = values.get("impact", ruleset.defaults.impact)
        urgency = values.get("urgency", ruleset.defaults.urgency)
        if impact and urgency and (found := matrix.lookup(impact, urgency)):
            why = (
                f"impact {impact} ({outcome.setters.get('impact', 'defaults')}) × urgency {urgency}"
                f" ({outcome.setters.get('urgency', 'defaults')}) → {found.value}"
            )
            return found, RuleHit("priority-matrix", matrix.location, why)
    return ruleset.defaults.priority, None


def raise_priority(priority: Priority, levels: int) -> Priority:
    """``priority`` made ``levels`` more urgent, never above urgent."""
    return _BY_RANK[max(priority.rank - levels, 0)]
