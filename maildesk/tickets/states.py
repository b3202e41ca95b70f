"""Ticket states and the transitions allowed between them.

new → open → pending (waiting on the requester; SLA paused) → resolved → closed,
with reopening from pending and resolved.  The table below is the whole truth.
"""

from __future__ import annotations

from maildesk.domain import TicketStatus as S

TRANSITIONS: dict[S, frozenset[S]] = {
    S.NEW: frozenset({S.OPEN, S.PENDING, S.RESOLVED, S.CLOSED}),
    S.OPEN: frozenset({S.PENDING, S.RESOLVED, S.CLOSED}),
    S.PENDING: frozenset({S.OPEN, S.RESOLVED, S.CLOSED}),
    S.RESOLVED: frozenset({S.OPEN, S.CLOSED}),
    S.CLOSED: frozenset(),
}

ACTIVE = frozenset({S.NEW, S.OPEN, S.PENDING})


class TransitionError(ValueError):
    """A status change the process does not allow (e.g. closed → open)."""


def check_transition(current: S, target: S) -> S:
    """``target`` if the process allows moving there from ``current``."""
    if target not in TRANSITIONS[current]:
        raise TransitionError(f"a ticket cannot go from {current.value} to {target.value}")
    return target


def after_requester_reply(current: S) -> S:
    """A requester writing again wakes a ticket that waited on them."""
    return S.OPEN if current is S.PENDING else current
