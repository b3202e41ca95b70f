"""The report as a mail: text and HTML with the charts inline, in one MIME tree.

Pure: the Jinja2 environment, the desk, the report, its charts and the time to
stamp come in; an ``OutboxMessage`` comes out.  The tree is

    multipart/alternative
      text/plain
      multipart/related
        text/html           (<img src="cid:…">)
        image/png × charts  (Content-ID matching, inline)

which Outlook, Gmail, Apple Mail and phone clients all show with the images
in place.  The same HTML with ``data:`` images is written for a browser.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from email.headerregistry import Address as EmailAddress
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any

import jinja2

from maildesk.domain import OutboxMessage
from maildesk.outbound.compose import clean_header_value, make_message_id, safe_address
from maildesk.outbound.notices import Desk
from maildesk.outbound.render import Rendered, render
from maildesk.reports.periods import local_dates
from maildesk.reports.stats import Report

KIND = "report"
MAX_BREACHES_SHOWN = 20


@dataclass(frozen=True)
class Chart:
    """One chart image: ``name`` is also the base of its Content-ID and file name."""

    name: str
    title: str
    png: bytes


def content_id(chart: Chart, report: Report, domain: str) -> str:
    """A Content-ID (no brackets) unique per chart and period."""
    seed = f"{chart.name}:{report.period.start_at.isoformat()}:{report.period.end_at.isoformat()}"
    return f"{chart.name}.{hashlib.sha256(seed.encode()).hexdigest()[:12]}@{domain or 'maildesk'}"


def report_context(report: Report, desk: Desk, zone: tzinfo, images: Mapping[str, str],
                   charts: Sequence[Chart]) -> dict[str, Any]:
    """What the report templates see; ``images`` maps a chart name to the ``src`` of its <img>."""
    first, last = local_dates(report.period, zone)
    return {
        "r": report,
        "first_day": first.isoformat(),
        "last_day": last.isoformat(),
        "days": (last - first).days + 1,
        "as_of": report.as_of_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        "charts": [{"name": c.name, "title": c.title, "src": images[c.name]} for c in charts],
        "breaches": [
            {"b": b, "due": b.due_at.astimezone(zone).strftime("%m-%d %H:%M")}
            for b in report.breaches[:MAX_BREACHES_SHOWN]
        ],
        "more_breaches": max(0, len(report.breaches) - MAX_BREACHES_SHOWN),
        "desk_name": desk.support_name,
        "support_address": desk.support_address,
    }


def render_report(env: jinja2.Environment, report: Report, desk: Desk, zone: tzinfo, locale: str,
                  charts: Sequence[Chart], *, inline: bool = True) -> Rendered:
    """Subject, text and HTML; images as ``cid:`` references (mail) or ``data:`` URIs (browser)."""
    if inline:
        images = {c.name: "cid:" + content_id(c, report, desk.message_id_domain) for c in charts}
    else:
        images = {c.name: "data:image/png;base64," + base64.b64encode(c.png).decode("ascii") for c in charts}
    return render(env, KIND, locale, report_context(report, desk, zone, images, charts))


def report_key(report: Report, recipients: Sequence[str], locale: str, nonce: str = "") -> str:
    """The outbox key: one mail per period, locale and set of recipients (plus ``nonce`` to send again)."""
    who = hashlib.sha256(",".join(sorted(a.lower() for a in recipients)).encode()).hexdigest()[:12]
    span = f"{report.period.start_at:%Y%m%d%H%M}-{report.period.end_at:%Y%m%d%H%M}"
    return f"{KIND}:{span}:{locale}:{who}" + (f":{nonce}" if nonce else "")


def build_report_mail(env: jinja2.Environment, desk: Desk, report: Report, charts: Sequence[Chart],
                      recipients: Sequence[str], now_at: datetime, zone: tzinfo, locale: str,
                      nonce: str = "") -> OutboxMessage:
    """The complete report mail to ``recipients``, ready for the outbox."""
    to = tuple(a for a in (safe_address(r) for r in recipients) if a)
    if not to:
        raise ValueError("a report mail needs at least one deliverable recipient")
    rendered = render_report(env, report, desk, zone, locale, charts)
    key = report_key(report, to, locale, nonce)
    message_id = make_message_id(desk.secret, KIND, f"{report.period.start_at:%Y%m%d}", key,
                                 desk.message_id_domain)
    msg = _headers(desk, rendered.subject, to, message_id, now_at)
    msg.set_content(rendered.text, subtype="plain", charset="utf-8", cte="base64")
    msg.add_alternative(rendered.html or "", subtype="html", charset="utf-8", cte="base64")
    html_part = msg.get_body(preferencelist=("html",))
    if not isinstance(html_part, EmailMessage):  # set just above: cannot happen
        raise AssertionError("the HTML part of the report mail is missing")
    for chart in charts:
        html_part.add_related(chart.png, maintype="image", subtype="png", disposition="inline",
                              filename=f"{chart.name}.png", cid=f"<{content_id(chart, report, desk.message_id_domain)}>")
    return OutboxMessage(kind=KIND, dedup_key=key, message_id=message_id,
                         mail_from=safe_address(desk.bounce_address) or "", recipients=to,
                         raw=msg.as_bytes(policy=SMTP))


def _headers(desk: Desk, subject: str, to: Sequence[str], message_id: str, now_at: datetime) -> EmailMessage:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = _address(desk.support_name, desk.support_address)
    msg["To"] = ", ".join(str(_address("", addr)) for addr in to)
    msg["Subject"] = clean_header_value(subject)
    msg["Date"] = format_datetime(now_at)
    msg["Message-ID"] = f"<{message_id}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["Precedence"] = "bulk"
    msg["X-Maildesk-Kind"] = KIND
    return msg


def _address(name: str, addr: str) -> EmailAddress:
    local, _, domain = addr.rpartition("@")
    return EmailAddress(display_name=clean_header_value(name, 200), username=local, domain=domain)
