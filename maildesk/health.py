"""What the desk is doing, for an operator: Prometheus metrics and ``maildesk status``.

Every figure is read from the database at the moment it is asked for, so it
is the same whichever daemon serves it, and a restart resets nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from maildesk.domain import Clock
from maildesk.store import queries
from maildesk.store.session import SessionFactory, transaction


@dataclass(frozen=True)
class Health:
    at: datetime
    raw: dict[str, int]
    outbox: dict[str, int]
    tickets: int
    open_tickets: int
    events: dict[str, int]
    first_response_breaches: int
    mailboxes: list[tuple[str, datetime | None, str | None]]

    @property
    def quarantined(self) -> int:
        return self.raw.get("quarantined", 0)

    @property
    def outbox_depth(self) -> int:
        return self.outbox.get("queued", 0) + self.outbox.get("sending", 0)


def collect(sessions: SessionFactory, clock: Clock) -> Health:
    with transaction(sessions) as session:
        counts = queries.health_counts(session)
    return Health(at=clock.now(), **counts)  # type: ignore[arg-type]


def prometheus_text(health: Health) -> str:
    """The Prometheus exposition format (text 0.0.4)."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

    metric("maildesk_mails_fetched_total", "counter", "Mails fetched and stored raw, by what became of them.",
           [(f'{{status="{k}"}}', v) for k, v in sorted(health.raw.items())] or [("", 0)])
    metric("maildesk_tickets_created_total", "counter", "Tickets created.", [("", health.tickets)])
    metric("maildesk_tickets_open", "gauge", "Tickets new, open or pending.", [("", health.open_tickets)])
    metric("maildesk_mails_sent_total", "counter", "Mails accepted by the SMTP server.",
           [("", health.outbox.get("sent", 0))])
    metric("maildesk_mails_failed_total", "counter", "Mails given up on (dead letters).",
           [("", health.outbox.get("dead", 0))])
    metric("maildesk_outbox_depth", "gauge", "Mails waiting to be sent.", [("", health.outbox_depth)])
    metric("maildesk_quarantine_size", "gauge", "Mails kept aside because they could not be processed.",
           [("", health.quarantined)])
    metric("maildesk_sla_warnings_total", "counter", "Warnings before an SLA deadline.",
           [("", health.events.get("sla_warning", 0))])
    metric("maildesk_sla_breaches_total", "counter", "Escalations after a breached deadline.",
           [("", health.events.get("escalated", 0))])
    metric("maildesk_first_response_breaches_total", "counter", "First responses later than promised.",
           [("", health.first_response_breaches)])
    metric("maildesk_last_successful_poll_timestamp_seconds", "gauge", "When each mailbox was last polled.",
           [(f'{{mailbox="{name}"}}', at.timestamp() if at else 0) for name, at, _ in health.mailboxes])
    metric("maildesk_mailbox_up", "gauge", "1 when the last poll of the mailbox worked.",
           [(f'{{mailbox="{name}"}}', 0 if error else 1) for name, _, error in health.mailboxes])
    return "\n".join(lines) + "\n"


def serve_metrics(host: str, port: int, sessions: SessionFactory, clock: Clock) -> ThreadingHTTPServer:
    """Serve ``/metrics`` on a local port in a background thread; returns the server (``shutdown()`` it)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            try:
                body = prometheus_text(collect(sessions, clock)).encode()
            except Exception as exc:  # noqa: BLE001 - a scrape must get an answer, not a dropped socket
                self.send_error(503, f"database unavailable: {exc.__class__.__name__}")
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
