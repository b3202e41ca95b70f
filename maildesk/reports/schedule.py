"""The report on a schedule: every Monday the last week's, every 1st the last month's, to the supervisors.

Runs from a daemon job; each report is queued once (the outbox key is the period and the recipients), and
the day's check is a single indexed outbox lookup, so the job is cheap to run often.
"""

from __future__ import annotations

import logging
from datetime import datetime, time
from zoneinfo import ZoneInfo

import jinja2

from maildesk.domain import Clock
from maildesk.outbound.notifier import Notifier
from maildesk.reports.build import load_report, queue_report
from maildesk.reports.mail import KIND
from maildesk.reports.periods import last_full
from maildesk.rules.policy import RulesPolicy
from maildesk.store import queries
from maildesk.store.session import SessionFactory, transaction

log = logging.getLogger(__name__)


def due_kinds(local: datetime, at_local: str) -> list[str]:
    """Which reports are due at ``local``: the week's on Mondays, the month's on the 1st, from ``at_local``."""
    if local.strftime("%H:%M") < at_local:
        return []
    return [kind for kind, due in (("week", local.weekday() == 0), ("month", local.day == 1)) if due]


def send_scheduled_reports(*, sessions: SessionFactory, clock: Clock, policy: RulesPolicy, notifier: Notifier,
                           templates: jinja2.Environment, timezone: str, locale: str, at_local: str) -> int:
    now_at = clock.now()
    zone = ZoneInfo(timezone)
    local = now_at.astimezone(zone)
    kinds = due_kinds(local, at_local)
    supervisors = [a.addresses[0] for a in policy.config.agents.supervisors_on_duty()]
    if not kinds or not supervisors:
        return 0
    midnight = datetime.combine(local.date(), time(0, 0), zone)
    queued = 0
    with transaction(sessions) as session:
        done_today = queries.outbox_kind_since(session, KIND, midnight)
        for kind in kinds[done_today:]:  # the week's comes first; one already queued today is not redone
            report = load_report(session, last_full(kind, local.date(), zone), now_at, zone)
            result = queue_report(session, templates, notifier.desk(session), report, supervisors, now_at, zone,
                                  locale)
            queued += result.created
            log.info("%s report queued for %s", kind, ", ".join(supervisors))
    return queued
