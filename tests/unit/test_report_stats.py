"""Report figures on small hand-made rows: each definition of reports/stats.py checked once."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from maildesk.reports.exports import report_to_csv, report_to_dict
from maildesk.reports.periods import between, last_full, local_dates
from maildesk.reports.stats import Period, TicketRow, compute_report, percentile
from maildesk.reports.terms import frequent_phrases, frequent_terms

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 10, 5, tzinfo=UTC)
WEEK = Period(START, START + timedelta(days=7))
H = timedelta(hours=1)
M = timedelta(minutes=1)


def row(n: int, at: datetime, **kw: object) -> TicketRow:
    values: dict[str, object] = {
        "number": f"TS20261005{n:03d}", "subject": "打印机无法打印", "body": "", "status": "open",
        "priority": "medium", "category": "hardware", "group": "hw", "assignee": "a@desk.test",
        "requester_name": "张三", "requester_addr": "zhang.san@corp.test", "created_at": at,
    }
    values.update(kw)
    return TicketRow(**values)  # type: ignore[arg-type]


def test_new_resolved_and_open_follow_the_period_bounds() -> None:
    rows = [
        row(1, START - H, resolved_at=START + H),          # old, resolved in the period
        row(2, START, resolved_at=START + 2 * H),           # new and resolved
        row(3, START + 6 * 24 * H),                         # new, still open
        row(4, START - 30 * 24 * H),                        # old, still open
        row(5, START + 7 * 24 * H),                         # created at the end: next period
        row(6, START - 2 * H, closed_at=START - H),         # closed before: not open
    ]
    r = compute_report(rows, WEEK, START + 30 * 24 * H, UTC)
    assert (r.new, r.resolved, r.open) == (2, 2, 2)


def test_what_happens_after_as_of_is_not_seen() -> None:
    rows = [row(1, START, first_response_at=START + 3 * H, resolved_at=START + 5 * H)]
    r = compute_report(rows, WEEK, START + 4 * H, UTC)
    assert r.as_of_at == START + 4 * H
    assert (r.resolved, r.open, r.first_response.count) == (0, 1, 1)


def test_median_is_the_mean_of_the_middle_two_and_p90_the_nearest_rank() -> None:
    rows = [row(i, START, first_response_at=START + m * M) for i, m in enumerate([10, 20, 30, 40, 50, 60, 70,
                                                                                   80, 90, 100, 500])]
    r = compute_report(rows, WEEK, WEEK.end_at, UTC)
    assert r.first_response.median_minutes == 60
    assert r.first_response.p90_minutes == 100  # ceil(0.9 * 11) = 10th smallest
    assert percentile([1, 2], 0.9) == 2
    assert compute_report(rows[:2], WEEK, WEEK.end_at, UTC).first_response.median_minutes == 15


def test_sla_counts_met_late_overdue_and_ignores_undecided() -> None:
    due = START + H
    rows = [
        row(1, START, priority="urgent", first_response_due_at=due, first_response_at=due),       # met (on time)
        row(2, START, priority="urgent", first_response_due_at=due, first_response_at=due + M),   # late
        row(3, START, priority="urgent", first_response_due_at=due),                              # overdue
        row(4, START + 6 * 24 * H, priority="urgent",
            first_response_due_at=START + 8 * 24 * H),                                             # undecided
        row(5, START, priority="low", resolve_due_at=due, resolved_at=START + 30 * M),            # met
    ]
    r = compute_report(rows, WEEK, WEEK.end_at, UTC)
    urgent, low = r.sla
    assert (urgent.priority, urgent.response_met, urgent.response_breached) == ("urgent", 1, 2)
    assert (low.priority, low.resolve_met, low.resolve_breached) == ("low", 1, 0)
    assert urgent.response_rate == pytest.approx(1 / 3)
    assert r.response_compliance == pytest.approx(1 / 3) and r.resolve_compliance == 1
    assert [(b.number, b.kind) for b in r.breaches] == [("TS20261005003", "response"),
                                                        ("TS20261005002", "response")]
    assert r.breaches[1].overdue_minutes == 1


def test_breached_tickets_show_requesters_masked() -> None:
    rows = [row(1, START, subject="请回电 13812345678", requester_name="欧阳娜娜", first_response_due_at=START)]
    breach = compute_report(rows, WEEK, WEEK.end_at, UTC).breaches[0]
    assert (breach.requester, breach.subject) == ("欧阳*", "请回电 138****5678")
    nameless = row(2, START, requester_name="", requester_addr="wang.wu@corp.test", first_response_due_at=START)
    assert compute_report([nameless], WEEK, WEEK.end_at, UTC).breaches[0].requester == "wa***@corp.test"


def test_satisfaction_counts_ratings_given_in_the_period() -> None:
    rows = [
        row(1, START - 24 * H, satisfaction="very-satisfied", rated_at=START + H),
        row(2, START, satisfaction="dissatisfied", rated_at=START + H),
        row(3, START, satisfaction="satisfied", resolved_at=START + H),                # no rated_at: resolution
        row(4, START, satisfaction="neutral", rated_at=WEEK.end_at + H),               # next period
        row(5, START, satisfaction="bogus", rated_at=START + H),
    ]
    s = compute_report(rows, WEEK, WEEK.end_at + 48 * H, UTC).satisfaction
    assert dict(s.counts) == {"very-satisfied": 1, "satisfied": 1, "neutral": 0, "dissatisfied": 1}
    assert (s.rated, s.score) == (3, round((4 + 1 + 3) / 3, 2))


def test_reopen_rate_is_over_the_tickets_resolved_in_the_period() -> None:
    rows = [row(i, START, resolved_at=START + H, reopened_count=n) for i, n in enumerate([0, 1, 2, 0])]
    r = compute_report(rows, WEEK, WEEK.end_at, UTC)
    assert (r.reopened, r.reopen_rate) == (2, 0.5)


def test_breakdowns_order_by_new_tickets_and_name_the_unassigned() -> None:
    rows = [row(1, START, category="network", assignee=None), row(2, START, category="network"),
            row(3, START, category="hardware", group=None)]
    r = compute_report(rows, WEEK, WEEK.end_at, UTC)
    assert [(b.key, b.new) for b in r.by_category] == [("network", 2), ("hardware", 1)]
    assert {b.key for b in r.by_agent} == {"a@desk.test", "-"}
    assert {b.key for b in r.by_group} == {"hw", "-"}


def test_trend_compares_with_the_previous_period_of_the_same_length() -> None:
    rows = [row(1, START - 3 * 24 * H), row(2, START + H), row(3, START + 2 * H), row(4, START - 8 * 24 * H)]
    trend = {t.metric: t for t in compute_report(rows, WEEK, WEEK.end_at, UTC).trend}
    assert (trend["new"].current, trend["new"].previous, trend["new"].delta) == (2, 1, 1)
    assert trend["satisfaction_score"].delta is None


def test_daily_counts_use_local_days() -> None:
    at = datetime(2026, 10, 5, 17, 0, tzinfo=UTC)  # 01:00 on the 6th in Shanghai
    period = between(date(2026, 10, 5), date(2026, 10, 11), SHANGHAI)
    r = compute_report([row(1, at)], period, period.end_at, SHANGHAI)
    assert len(r.daily) == 7
    assert [d.day for d in r.daily if d.new] == [date(2026, 10, 6)]


def test_frequent_terms_and_phrases_count_tickets_not_words_and_skip_names_and_numbers() -> None:
    texts = ["打印机无法打印 打印机 打印机", "打印机卡纸，无法打印", "VPN连接中断 13812345678", "vpn disconnects",
             "张三说 TS20261005001"]
    terms = {t.text: t.tickets for t in frequent_terms(texts)}
    assert terms["打印机"] == 2 and terms["VPN"] == 2
    assert not any(ch.isdigit() for t in terms for ch in t)
    assert "张三" not in terms
    assert ("无法打印", 2) in [(p.text, p.tickets) for p in frequent_phrases(texts)]


def test_signatures_do_not_become_frequent_problems() -> None:
    rows = [row(i, START, subject="VPN连接中断", body=f"连不上\n\n{name}\n手机13812345678", requester_name=name)
            for i, name in enumerate(["孙悟空", "孙悟空", "Mary Smith", "Mary Smith"])]
    terms = [t.text for t in compute_report(rows, WEEK, WEEK.end_at, UTC).top_terms]
    assert "VPN" in terms
    assert not {"孙悟空", "Mary", "Smith", "手机", "138"} & set(terms)


def test_periods_are_local_weeks_and_months() -> None:
    week = last_full("week", date(2026, 11, 23), SHANGHAI)  # a Monday
    assert local_dates(week, SHANGHAI) == (date(2026, 11, 16), date(2026, 11, 22))
    assert week.start_at == datetime(2026, 11, 15, 16, 0, tzinfo=UTC)
    month = last_full("month", date(2026, 3, 15), SHANGHAI)
    assert local_dates(month, SHANGHAI) == (date(2026, 2, 1), date(2026, 2, 28))
    assert month.previous().end_at == month.start_at
    with pytest.raises(ValueError, match="before it starts"):
        between(date(2026, 3, 2), date(2026, 3, 1), SHANGHAI)
    with pytest.raises(ValueError, match="unknown report period"):
        last_full("year", date(2026, 3, 15), SHANGHAI)


def test_exports_carry_a_version_and_neutralise_formulas() -> None:
    rows = [row(1, START, assignee="=HYPERLINK(1)", first_response_due_at=START)]
    r = compute_report(rows, WEEK, WEEK.end_at, UTC)
    data = report_to_dict(r)
    assert data["version"] == 1 and data["new"] == 1
    json.dumps(data)
    lines = list(csv.reader(io.StringIO(report_to_csv(r))))
    assert lines[0] == ["section", "key", "metric", "value"]
    assert ["by_agent", "'=HYPERLINK(1)", "new", "1"] in lines
