"""The report as data: JSON (versioned) and CSV (one figure per line), for spreadsheets and scripts.

Pure: a ``Report`` in, text out.  Requesters are already masked in the report.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from maildesk.reports.stats import Report

FORMAT_VERSION = 1
CSV_HEADER = ("section", "key", "metric", "value")


def report_to_dict(report: Report) -> dict[str, Any]:
    """Every figure, with the derived rates, as JSON-ready values (``"version": 1``)."""
    data = asdict(report)
    data["sla"] = [
        {**asdict(line), "response_rate": line.response_rate, "resolve_rate": line.resolve_rate}
        for line in report.sla
    ]
    data["trend"] = [{**asdict(line), "delta": line.delta} for line in report.trend]
    data["response_compliance"] = report.response_compliance
    data["resolve_compliance"] = report.resolve_compliance
    return {"version": FORMAT_VERSION, **_plain(data)}


def report_to_json(report: Report) -> str:
    return json.dumps(report_to_dict(report), ensure_ascii=False, indent=2) + "\n"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def report_to_csv(report: Report) -> str:
    """``section,key,metric,value`` lines: every count, time, rate, term and breach."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(_csv_rows(report))
    return out.getvalue()


def _csv_rows(report: Report) -> list[tuple[str, str, str, Any]]:
    rows: list[tuple[str, str, str, Any]] = [
        ("period", "", "start_at", report.period.start_at.isoformat()),
        ("period", "", "end_at", report.period.end_at.isoformat()),
        ("volume", "", "new", report.new),
        ("volume", "", "resolved", report.resolved),
        ("volume", "", "open", report.open),
    ]
    for section in ("by_category", "by_priority", "by_group", "by_agent"):
        for line in getattr(report, section):
            rows += [(section, line.key, "new", line.new), (section, line.key, "resolved", line.resolved)]
    for name in ("first_response", "resolution"):
        d = getattr(report, name)
        rows += [(name, "", "count", d.count), (name, "", "median_minutes", d.median_minutes),
                 (name, "", "p90_minutes", d.p90_minutes)]
    for sla in report.sla:
        rows += [("sla", sla.priority, f, getattr(sla, f)) for f in
                 ("response_met", "response_breached", "response_rate", "resolve_met", "resolve_breached",
                  "resolve_rate")]
    rows += [("satisfaction", level, "count", n) for level, n in report.satisfaction.counts]
    rows += [("satisfaction", "", "score", report.satisfaction.score),
             ("reopen", "", "reopened", report.reopened), ("reopen", "", "rate", report.reopen_rate)]
    rows += [("top_terms", t.text, "tickets", t.tickets) for t in report.top_terms]
    rows += [("top_phrases", t.text, "tickets", t.tickets) for t in report.top_phrases]
    rows += [("trend", t.metric, f, getattr(t, f)) for t in report.trend for f in ("current", "previous", "delta")]
    rows += [("breach", b.number, b.kind, b.overdue_minutes) for b in report.breaches]
    return [(s, _cell(k), m, "" if v is None else v) for s, k, m, v in rows]


def _cell(text: str) -> str:
    """Text a spreadsheet would not run as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
