"""The desk's policy as the runners see it: the live rule files behind one call per mail.

Wraps ``RuleWatcher`` (hot reload, last good config kept) and answers, from
one snapshot of the configuration, everything a new ticket needs: its
classification, deadlines and the promise made in the acknowledgment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from maildesk.domain import Classification, Clock, Deadlines, ParsedMail, Priority, RuleHit
from maildesk.errors import ConfigError
from maildesk.rules.loader import RuleConfig, RuleWatcher, load_config_dir
from maildesk.sla.deadlines import Pause


@dataclass(frozen=True)
class PolicyDecision:
    classification: Classification
    deadlines: Deadlines
    response_target: timedelta | None  # the promised first response, as a duration
    response_business: bool  # counted in business hours (else 24×7)
    group_name: str | None


class RulesPolicy:
    def __init__(self, watcher: RuleWatcher) -> None:
        self.watcher = watcher

    @classmethod
    def load(cls, config_dir: Path, clock: Clock | None = None) -> RulesPolicy:
        """Load the rule files; ConfigError (every problem, file:line) if they are invalid."""
        return cls(RuleWatcher(config_dir, clock))

    @property
    def config(self) -> RuleConfig:
        return self.watcher.current

    def refresh(self) -> list[str]:
        """Pick up edited files; returns the changes or problems it logged."""
        return self.watcher.check()

    def decide(self, mail: ParsedMail, *, at: datetime, mailbox: str | None,
               default_group: str | None = None) -> PolicyDecision:
        """Classify a new mail; ``default_group`` is the queue of the mailbox it came to."""
        config = self.watcher.current  # one snapshot for the whole decision
        classification = config.classify(mail, at=at, mailbox=mailbox, default_group=default_group)
        if default_group and classification.group == default_group:
            hit = RuleHit("mailbox-queue", f"maildesk.toml [[mailbox]] {mailbox}",
                          f"no rule chose a group: mail to mailbox {mailbox!r} goes to its queue {default_group!r}")
            classification = replace(classification, hits=(*classification.hits, hit))
        deadlines = config.deadlines(classification.priority, at, group=classification.group)
        target, business = response_promise(config, classification.priority, classification.group)
        return PolicyDecision(classification, deadlines, target, business, config.group_name(classification.group))

    def deadlines(self, priority: Priority, created_at: datetime, *, group: str | None,
                  paused: Sequence[Pause] = ()) -> Deadlines:
        return self.watcher.current.deadlines(priority, created_at, group=group, paused=paused)


def response_promise(config: RuleConfig, priority: Priority, group: str | None) -> tuple[timedelta, bool]:
    """The first-response target of ``priority`` in ``group``'s queue, and whether it runs on business hours."""
    policy = config.policy_for(group)
    target = policy.target(priority)
    calendar = config.calendar(policy.calendar)
    return target.first_response.to_timedelta(calendar.day_length), target.clock != "24x7"


def check_rules_dir(config_dir: Path) -> list[str]:
    """Every problem of the rule files as ``file:line: reason`` (empty when they load)."""
    try:
        load_config_dir(config_dir)
    except ConfigError as exc:
        return exc.problems
    return []
