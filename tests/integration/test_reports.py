"""Reports over 240 generated tickets: figures recomputed here, HTML rendered in Chromium, mail through SMTP.

The expected figures are computed in this file in plain Python straight from the ``Ticket`` rows (not with
``reports/stats.py``), following the definitions written in that module's docstring.
"""

from __future__ import annotations

import math
import re
import shutil
import statistics
import subprocess
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from maildesk.cli import load_settings
from maildesk.daemon import build_desk, template_environment
from maildesk.outbound.notices import Desk
from maildesk.privacy import mask_phones
from maildesk.reports.build import export_report, load_report, queue_report
from maildesk.reports.charts import BLUE
from maildesk.reports.commands import report as report_command
from maildesk.reports.periods import between
from maildesk.reports.stats import Period, Report
from maildesk.store import migrate
from maildesk.store.models import Message, Outbox, Ticket
from maildesk.store.session import make_engine, make_session_factory, transaction
from tests.fixtures.reports.make_tickets import make_tickets
from tests.integration.desk_helpers import write_config

ZONE = ZoneInfo("Asia/Shanghai")
OCTOBER = between(date(2026, 10, 1), date(2026, 10, 31), ZONE)
NOW = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HOSTILE_SUBJECT = '<script>alert(1)</script><img src=x onerror="alert(2)"> 打印机 javascript:alert(3)'
HOSTILE_NAME = '<svg onload=alert(4)>'
SUPERVISORS = ["chief@desk.test", "duty@desk.test"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Ticket]]:
    """A database with the generated tickets and one hostile, breached ticket; the URL and all tickets."""
    url = f"sqlite:///{tmp_path_factory.mktemp('reports') / 'maildesk.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        made = make_tickets(session)
        assert len(made) >= 200
        _add_hostile_ticket(session)
    with sessions() as session:
        tickets = list(session.scalars(select(Ticket)))
        for ticket in tickets:  # loaded while the session is open: the request texts for the term check
            ticket.request_text = ticket.messages[0].body_text if ticket.messages else ""
    engine.dispose()
    return url, tickets


def _add_hostile_ticket(session) -> None:  # noqa: ANN001
    at = datetime(2026, 10, 20, 2, 0, tzinfo=UTC)
    ticket = Ticket(number="TS20261020099", subject=HOSTILE_SUBJECT, status="open", priority="urgent",
                    category="hardware", group="hardware-support", assignee="wang.gong@desk.test", language="zh-CN",
                    requester_addr="evil@corp.test", requester_name=HOSTILE_NAME, created_at=at, updated_at=at,
                    first_response_due_at=at + timedelta(minutes=15), resolve_due_at=at + timedelta(hours=2),
                    classification={}, paused_seconds=0, reopened_count=0, escalation_level=0, kb_candidate=False)
    session.add(ticket)
    session.flush()
    session.add(Message(ticket_id=ticket.id, dedup_key="hostile", message_id="hostile@corp.test", direction="in",
                        kind="request", from_addr="evil@corp.test", from_name=HOSTILE_NAME, to_addrs=[],
                        cc_addrs=[], subject=HOSTILE_SUBJECT, body_text="<b onclick=x()>hi</b>",
                        reply_text="<b onclick=x()>hi</b>", created_at=at))


@pytest.fixture(scope="module")
def october(store: tuple[str, list[Ticket]]) -> Report:
    engine = make_engine(store[0])
    with transaction(make_session_factory(engine)) as session:
        result = load_report(session, OCTOBER, NOW, ZONE)
    engine.dispose()
    return result


# --- the figures, recomputed ------------------------------------------------------------------------------

def _in(period: Period, at: datetime | None) -> bool:
    return at is not None and period.start_at <= at < period.end_at


def _minutes(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 60


def _median_p90(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    ordered = sorted(values)
    return round(statistics.median(ordered), 1), round(ordered[math.ceil(0.9 * len(ordered)) - 1], 1)


def _expected(tickets: list[Ticket], period: Period) -> dict:
    end = period.end_at
    new = [t for t in tickets if _in(period, t.created_at)]
    resolved = [t for t in tickets if _in(period, t.resolved_at)]
    sla: dict[str, list[int]] = {}
    for t in new:
        counts = sla.setdefault(t.priority, [0, 0, 0, 0])
        for slot, due, done in ((0, t.first_response_due_at, t.first_response_at), (2, t.resolve_due_at, t.resolved_at)):
            done = done if done is not None and done <= end else None
            if due is None or (done is None and due >= end):
                continue
            counts[slot + (0 if done is not None and done <= due else 1)] += 1
    rated = [t.satisfaction for t in tickets if t.satisfaction and _in(period, t.rated_at or t.resolved_at)]
    scores = {"very-satisfied": 4, "satisfied": 3, "neutral": 2, "dissatisfied": 1}
    return {
        "new": len(new),
        "resolved": len(resolved),
        "open": sum(1 for t in tickets if t.created_at < end and not any(
            x is not None and x <= end for x in (t.resolved_at, t.closed_at))),
        "category": Counter(t.category for t in new),
        "priority": Counter(t.priority for t in new),
        "group": Counter(t.group for t in new),
        "agent": Counter(t.assignee for t in new),
        "agent_resolved": Counter(t.assignee for t in resolved),
        "first_response": _median_p90([_minutes(t.created_at, t.first_response_at) for t in new
                                       if t.first_response_at and t.first_response_at <= end]),
        "resolution": _median_p90([_minutes(t.created_at, t.resolved_at) for t in resolved if t.resolved_at]),
        "sla": {p: tuple(c) for p, c in sla.items()},
        "satisfaction": Counter(rated),
        "score": round(sum(scores[s] for s in rated) / len(rated), 2) if rated else None,
        "reopen_rate": sum(1 for t in resolved if t.reopened_count) / len(resolved) if resolved else None,
    }


def test_the_fixture_spans_two_months_in_two_languages(store: tuple[str, list[Ticket]]) -> None:
    tickets = store[1]
    assert len(tickets) >= 200
    assert min(t.created_at for t in tickets) < datetime(2026, 9, 3, tzinfo=UTC)
    assert max(t.created_at for t in tickets) > datetime(2026, 10, 28, tzinfo=UTC)
    assert {t.language for t in tickets} == {"zh-CN", "en"}
    assert len({t.category for t in tickets}) == 6


def test_report_figures_match_an_independent_count(store: tuple[str, list[Ticket]], october: Report) -> None:
    want = _expected(store[1], OCTOBER)
    assert (october.new, october.resolved, october.open) == (want["new"], want["resolved"], want["open"])
    assert {b.key: b.new for b in october.by_category} == want["category"]
    assert {b.key: b.new for b in october.by_priority} == want["priority"]
    assert {b.key: b.new for b in october.by_group if b.new} == want["group"]
    assert {b.key: b.new for b in october.by_agent if b.new} == want["agent"]
    assert {b.key: b.resolved for b in october.by_agent if b.resolved} == want["agent_resolved"]
    assert (october.first_response.median_minutes, october.first_response.p90_minutes) == want["first_response"]
    assert (october.resolution.median_minutes, october.resolution.p90_minutes) == want["resolution"]
    got_sla = {s.priority: (s.response_met, s.response_breached, s.resolve_met, s.resolve_breached)
               for s in october.sla}
    assert got_sla == want["sla"]
    assert len(october.breaches) == sum(c[1] + c[3] for c in want["sla"].values())
    assert {k: v for k, v in october.satisfaction.counts if v} == want["satisfaction"]
    assert october.satisfaction.score == want["score"]
    assert october.reopen_rate == pytest.approx(want["reopen_rate"])


def test_the_trend_compares_with_the_31_days_before(store: tuple[str, list[Ticket]], october: Report) -> None:
    previous = _expected(store[1], OCTOBER.previous())
    trend = {t.metric: t for t in october.trend}
    assert trend["new"].previous == previous["new"] and trend["resolved"].previous == previous["resolved"]
    assert trend["open"].previous == previous["open"]
    assert trend["first_response_median"].previous == previous["first_response"][0]
    assert trend["satisfaction_score"].previous == previous["score"]
    assert trend["new"].delta == october.new - previous["new"]


def test_frequent_problems_are_the_fixtures_problems(store: tuple[str, list[Ticket]], october: Report) -> None:
    texts = {t.number: "" for t in store[1] if _in(OCTOBER, t.created_at)}
    for t in store[1]:
        if t.number in texts:
            texts[t.number] = mask_phones(f"{t.subject}\n{t.request_text}").lower()
    terms = {t.text.lower(): t.tickets for t in october.top_terms}
    assert {"vpn", "erp"} <= set(terms)
    for term, count in terms.items():
        if term.isascii():  # an English word: exactly the tickets that contain it as a word
            word = re.compile(rf"(?<![a-z]){re.escape(term)}(?![a-z])")
            assert count == sum(1 for text in texts.values() if word.search(text)), term
        else:  # a Chinese word: at most the tickets that contain the characters
            assert 2 <= count <= sum(1 for text in texts.values() if term in text), term
    assert october.top_phrases and all(p.tickets >= 2 for p in october.top_phrases)


def _desk(url: str) -> Desk:
    return Desk("support@desk.test", "技术支持中心", "bounces@desk.test", "desk.test", "s3cret", "Asia/Shanghai",
                "zh-CN")


def _env():  # noqa: ANN202
    import jinja2

    from maildesk.outbound.render import build_environment

    return build_environment(jinja2.FileSystemLoader(str(Path(__file__).resolve().parents[2] / "templates")))


def test_no_person_and_no_active_html_leaks_into_any_export(store: tuple[str, list[Ticket]], october: Report) -> None:
    outputs = {fmt: export_report(_env(), _desk(store[0]), october, fmt, ZONE, locale)
               for fmt in ("html", "csv", "json") for locale in ("zh-CN",)}
    outputs["html-en"] = export_report(_env(), _desk(store[0]), october, "html", ZONE, "en")
    requesters = {t.requester_addr for t in store[1]} | {t.requester_name for t in store[1] if len(t.requester_name) > 1}
    for name, text in outputs.items():
        assert not re.search(r"(?<!\d)1[3-9]\d{9}(?!\d)", text), name
        leaked = [r for r in requesters if r in text]
        assert not leaked, (name, leaked)
    assert "TS20261020099" in outputs["html"]  # the hostile ticket is listed, escaped
    for name in ("html", "html-en"):
        _assert_inert(outputs[name])


class _ActiveFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "iframe", "object", "embed", "svg"):
            self.found.append(tag)
        for key, value in attrs:
            value = (value or "").strip().lower()
            if key.startswith("on") or "javascript:" in value or "expression(" in value:
                self.found.append(f"{tag}.{key}")
            if key in ("src", "href") and value.startswith("data:") and not value.startswith("data:image/png;"):
                self.found.append(f"{tag}.{key}=data")


def _assert_inert(html: str) -> None:
    finder = _ActiveFinder()
    finder.feed(html)
    assert finder.found == []


# --- rendering in a browser -------------------------------------------------------------------------------

def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=5000", *args],
        capture_output=True, text=True, timeout=90, check=True)


PROBE = """<script>window.addEventListener("load", function () {
  var out = [];
  for (var i = 0; i < document.images.length; i++) {
    var img = document.images[i], box = img.getBoundingClientRect();
    out.push([img.naturalWidth, Math.round(box.left), Math.round(box.top + window.scrollY),
              Math.round(box.width), Math.round(box.height)].join(":"));
  }
  document.body.setAttribute("data-probe", out.join(" ") + "|" + document.body.scrollHeight);
});</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_the_html_report_renders_with_its_charts_in_chromium(store: tuple[str, list[Ticket]], october: Report,
                                                            tmp_path: Path) -> None:
    import numpy
    from PIL import Image

    html = export_report(_env(), _desk(store[0]), october, "html", ZONE, "zh-CN")
    page = tmp_path / "report.html"
    page.write_text(html.replace("</body>", PROBE, 1), encoding="utf-8")
    dom = _chromium(tmp_path, "--window-size=900,2400", "--dump-dom", page.as_uri()).stdout
    probe = re.search(r'data-probe="([^"]*)"', dom)
    assert probe, dom[-2000:]
    boxes_text, height = probe.group(1).split("|")
    boxes = [tuple(int(v) for v in item.split(":")) for item in boxes_text.split()]
    assert len(boxes) == 4 and all(natural > 0 and w > 300 and h > 100 for natural, _, _, w, h in boxes), boxes

    shot = tmp_path / "report.png"
    page.write_text(html, encoding="utf-8")
    _chromium(tmp_path, f"--window-size=900,{int(height) + 20}", f"--screenshot={shot}", page.as_uri())
    image = numpy.asarray(Image.open(shot).convert("RGB"), dtype=int)
    blue = numpy.array([int(BLUE[i:i + 2], 16) for i in (1, 3, 5)])
    for _, left, top, width, h in boxes:  # each chart area shows the charts' blue bars
        area = image[top:top + h, left:left + width]
        coloured = int((numpy.abs(area - blue).sum(axis=2) < 40).sum())
        assert coloured > 500, (left, top, coloured)
    outside = image[:, :30]  # the grey margin left of the report holds no chart
    assert int((numpy.abs(outside - blue).sum(axis=2) < 40).sum()) == 0


# --- the mail, through SMTP ------------------------------------------------------------------------------

def test_the_report_mail_arrives_as_valid_mime_with_inline_charts(store: tuple[str, list[Ticket]], october: Report,
                                                                  tmp_path: Path, smtp_sink) -> None:  # noqa: ANN001
    config = write_config(tmp_path, imap_host="127.0.0.1", imap_port=1, imap_user="nobody",
                          smtp_host=smtp_sink.host, smtp_port=smtp_sink.port, database_url=store[0])
    settings, base = load_settings(str(config))
    desk = build_desk(settings, base, environ={"MAILDESK_TEST_IMAP_PASSWORD": "x"})
    env = template_environment(settings, base)
    with transaction(desk.sessions) as session:
        queued = queue_report(session, env, _desk(store[0]), october, SUPERVISORS, NOW, ZONE, "zh-CN")
        again = queue_report(session, env, _desk(store[0]), october, SUPERVISORS, NOW, ZONE, "zh-CN")
    assert queued.created and not again.created and again.outbox_id == queued.outbox_id
    desk.sender.send_due()
    received = smtp_sink.wait_for(1, timeout=20)
    assert len(received) == 1 and sorted(received[0].rcpt_tos) == sorted(SUPERVISORS)

    mail = message_from_bytes(received[0].raw, policy=policy.default)
    assert not mail.defects
    assert mail.get_content_type() == "multipart/alternative"
    assert "服务报告" in mail["Subject"] and mail["Auto-Submitted"] == "auto-generated"
    text, related = mail.get_payload()
    assert text.get_content_type() == "text/plain" and related.get_content_type() == "multipart/related"
    html_part, *images = related.get_payload()
    assert html_part.get_content_type() == "text/html" and len(images) == 4
    html = html_part.get_content()
    referenced = set(re.findall(r'src="cid:([^"]+)"', html))
    carried = {img["Content-ID"].strip("<>") for img in images}
    assert referenced == carried and len(carried) == 4
    for img in images:
        assert img.get_content_type() == "image/png" and img.get_content_disposition() == "inline"
        from PIL import Image

        assert Image.open(BytesIO(img.get_content())).size[0] > 500
    assert str(october.new) in text.get_content()
    _assert_inert(html)


def test_the_report_command_prints_exports_and_queues_the_mail(store: tuple[str, list[Ticket]],
                                                              tmp_path: Path) -> None:
    config = write_config(tmp_path, imap_host="127.0.0.1", imap_port=1, imap_user="nobody", smtp_host="127.0.0.1",
                          smtp_port=1, database_url=store[0])
    runner = CliRunner()
    args = ["-c", str(config), "--from", "2026-10-01", "--to", "2026-10-31"]
    result = runner.invoke(report_command, [*args, "--format", "csv"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "section,key,metric,value"
    out = tmp_path / "r.json"
    result = runner.invoke(report_command, [*args, "--format", "json", "-o", str(out), "--send",
                                            "--send-to", "lead@desk.test"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert '"version": 1' in out.read_text(encoding="utf-8") and "queued for lead@desk.test" in result.stderr
    result = runner.invoke(report_command, [*args, "--send", "--send-to", "lead@desk.test", "-o", str(out)])
    assert "already queued" in result.stderr
    assert runner.invoke(report_command, [*args, "--send"]).exit_code == 2
    engine = make_engine(store[0])
    with make_session_factory(engine)() as session:
        kinds = [o.kind for o in session.scalars(select(Outbox).where(Outbox.recipient_key == "lead@desk.test"))]
    engine.dispose()
    assert kinds == ["report"]
