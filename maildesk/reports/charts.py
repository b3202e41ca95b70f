"""The report's charts as PNG bytes, drawn with matplotlib (Agg, no display).

Chinese labels need a CJK font: Noto Sans CJK (Debian ``fonts-noto-cjk``),
Source Han Sans or WenQuanYi when installed.  Without one the charts fall
back to DejaVu Sans with English labels and a logged warning, so a report
never shows boxes instead of characters.
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")

from matplotlib import font_manager  # noqa: E402 - the backend is chosen first
from matplotlib.figure import Figure  # noqa: E402

from maildesk.reports.mail import Chart  # noqa: E402
from maildesk.reports.stats import PRIORITIES, SATISFACTION_LEVELS, Report  # noqa: E402

log = logging.getLogger(__name__)

CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
             "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Noto Sans CJK JP")
FALLBACK_FONT = "DejaVu Sans"
BLUE, ORANGE, GREY = "#4C78A8", "#F58518", "#9AA5B1"
SATISFACTION_COLOURS = ("#2E7D32", "#4C78A8", "#F2B233", "#D64545")
WIDTH_IN, HEIGHT_IN, DPI = 6.0, 2.7, 150

LABELS = {
    "zh-CN": {
        "daily": "每日新建与解决", "new": "新建", "resolved": "已解决", "category": "问题分类（新建工单）",
        "sla": "SLA 达标率（%）", "response": "首次响应", "resolution": "解决", "satisfaction": "满意度分布",
        "hardware": "硬件类", "software": "软件类", "network": "网络类", "account": "权限与账号类",
        "third-party": "第三方服务类", "question": "咨询/建议", "other": "其他",
        "urgent": "紧急", "high": "高", "medium": "中", "low": "低",
        "very-satisfied": "非常满意", "satisfied": "满意", "neutral": "一般", "dissatisfied": "不满意",
    },
    "en": {
        "daily": "New and resolved per day", "new": "New", "resolved": "Resolved",
        "category": "Categories (new tickets)", "sla": "SLA compliance (%)", "response": "First response",
        "resolution": "Resolution", "satisfaction": "Satisfaction",
        "hardware": "Hardware", "software": "Software", "network": "Network", "account": "Account & access",
        "third-party": "Third-party", "question": "Question", "other": "Other",
        "urgent": "Urgent", "high": "High", "medium": "Medium", "low": "Low",
        "very-satisfied": "Very satisfied", "satisfied": "Satisfied", "neutral": "Neutral",
        "dissatisfied": "Dissatisfied",
    },
}


@functools.cache
def chart_font() -> str | None:
    """The installed CJK font family, or None (warned once)."""
    installed = {f.name for f in font_manager.fontManager.ttflist}
    for family in CJK_FONTS:
        if family in installed:
            return family
    log.warning("no CJK font found (install fonts-noto-cjk); charts use %s with English labels", FALLBACK_FONT)
    return None


def render_charts(report: Report, locale: str) -> tuple[Chart, ...]:
    """The daily volume, categories, SLA and satisfaction charts of ``report``."""
    font = chart_font()
    labels = LABELS["zh-CN" if locale == "zh-CN" and font else "en"]
    drawers: tuple[tuple[str, Callable[[Figure, Report, dict[str, str]], None]], ...] = (
        ("daily", _daily), ("category", _categories), ("sla", _sla), ("satisfaction", _satisfaction))
    return tuple(Chart(name, labels[name], _draw(draw, report, labels, font)) for name, draw in drawers)


def _draw(draw: Callable[[Figure, Report, dict[str, str]], None], report: Report, labels: dict[str, str],
          font: str | None) -> bytes:
    with matplotlib.rc_context({"font.family": [font or FALLBACK_FONT, FALLBACK_FONT], "font.size": 9,
                                "axes.spines.top": False, "axes.spines.right": False}):
        figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
        draw(figure, report, labels)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def _daily(figure: Figure, report: Report, labels: dict[str, str]) -> None:
    axes = figure.subplots()
    days = [d.day.strftime("%m-%d") for d in report.daily]
    positions = range(len(days))
    axes.bar(positions, [d.new for d in report.daily], color=BLUE, label=labels["new"])
    axes.plot(positions, [d.resolved for d in report.daily], color=ORANGE, marker="o", markersize=3,
              label=labels["resolved"])
    step = max(1, len(days) // 10)
    axes.set_xticks(list(positions)[::step], days[::step])
    highest = max([d.new for d in report.daily] + [d.resolved for d in report.daily] + [1])
    axes.set_ylim(0, highest * 1.3)
    axes.set_title(labels["daily"])
    axes.legend(frameon=False, loc="upper left", ncol=2)


def _categories(figure: Figure, report: Report, labels: dict[str, str]) -> None:
    axes = figure.subplots()
    lines = list(reversed(report.by_category))
    axes.barh([labels.get(line.key, line.key) for line in lines], [line.new for line in lines], color=BLUE)
    for y, line in enumerate(lines):
        axes.text(line.new, y, f" {line.new}", va="center")
    axes.set_title(labels["category"])


def _sla(figure: Figure, report: Report, labels: dict[str, str]) -> None:
    axes = figure.subplots()
    by_priority = {line.priority: line for line in report.sla}
    shown = [p for p in PRIORITIES if p in by_priority]
    response = [100 * (by_priority[p].response_rate or 0) for p in shown]
    resolve = [100 * (by_priority[p].resolve_rate or 0) for p in shown]
    x = range(len(shown))
    axes.bar([i - 0.2 for i in x], response, width=0.4, color=BLUE, label=labels["response"])
    axes.bar([i + 0.2 for i in x], resolve, width=0.4, color=ORANGE, label=labels["resolution"])
    axes.set_xticks(list(x), [labels[p] for p in shown])
    axes.set_ylim(0, 130)
    axes.set_yticks([0, 25, 50, 75, 100])
    axes.set_title(labels["sla"])
    axes.legend(frameon=False, loc="upper center", ncol=2)


def _satisfaction(figure: Figure, report: Report, labels: dict[str, str]) -> None:
    axes = figure.subplots()
    counts = dict(report.satisfaction.counts)
    levels = list(reversed(SATISFACTION_LEVELS))
    axes.barh([labels[level] for level in levels], [counts.get(level, 0) for level in levels],
              color=list(reversed(SATISFACTION_COLOURS)))
    for y, level in enumerate(levels):
        axes.text(counts.get(level, 0), y, f" {counts.get(level, 0)}", va="center")
    axes.set_title(labels["satisfaction"])
