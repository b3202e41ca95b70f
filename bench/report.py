"""The one table and the JSON file: every figure next to its target from issue 9, and whether it is met."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DJANGO_HELPDESK_PER_S = 18.0  # django-helpdesk get_email on this machine, as measured for issue 9


@dataclass(frozen=True)
class Check:
    scenario: str
    measure: str
    value: str
    target: str = "-"
    met: bool | None = None


def checks(results: dict[str, Any]) -> list[Check]:
    out: list[Check] = []
    for name, build in (("parsing", _parsing), ("drain", _drain), ("memory", _memory), ("latency", _latency),
                        ("sending", _sending), ("sweeps", _sweeps)):
        value = results.get(name)
        if isinstance(value, dict) and "error" in value:
            out.append(Check(name, "FAILED", str(value["error"])[:60]))
        elif value is not None:
            out.extend(build(value))
    return out


def _parsing(r: dict[str, Any]) -> list[Check]:
    return [Check("parsing", "parse+quotes+thread, mails/s", f"{r['maildesk_per_s']:.0f}"),
            Check("parsing", "stdlib compat32 alone / policy.default",
                  f"{r['compat32_per_s']:.0f} / {r['policy_default_per_s']:.0f}")]


def _drain(r: dict[str, Any]) -> list[Check]:
    out = []
    for backend in ("sqlite", "postgresql"):
        d = r.get(backend)
        if not d or "error" in d:
            out.append(Check("drain", f"{backend}: {'FAILED' if d else 'skipped'}", str((d or {}).get("error", "-"))[:60]))
            continue
        out.append(Check("drain", f"{backend} {d['mails']:,} mails: maildesk / raw, mails/s",
                         f"{d['mails_per_s']:.0f} / {d['raw']['mails_per_s']:.0f}"))
        target_met = d["ratio"] >= 0.5 if backend == "sqlite" else None
        out.append(Check("drain", f"{backend}: ratio maildesk/raw (×django-helpdesk)",
                         f"{100 * d['ratio']:.1f}% ({d['mails_per_s'] / DJANGO_HELPDESK_PER_S:.1f}×)",
                         ">= 50% (~40×)" if backend == "sqlite" else "-", target_met))
        out.append(Check("drain", f"{backend}: peak RSS of the daemon", f"{d['peak_rss_mb']:.0f} MB", "<= 200 MB",
                         d["peak_rss_mb"] <= 200))
    return out


def _memory(r: dict[str, Any]) -> list[Check]:
    small, large = r["small"], r["large"]
    growth = r["growth"]
    return [
        Check("memory", f"peak RSS {small['mails']:,} / {large['mails']:,} backlog",
              f"{small['peak_rss_mb']:.0f} / {large['peak_rss_mb']:.0f} MB", "<= 200 MB",
              max(small["peak_rss_mb"], large["peak_rss_mb"]) <= 200),
        Check("memory", "growth large vs small", f"{100 * growth:+.1f}%" if growth is not None else "?", "<= +10%",
              growth is not None and growth <= 0.10),
    ]


def _latency(r: dict[str, Any]) -> list[Check]:
    out = []
    for key, limit_of in (("idle", lambda p: 2.0), ("poll", lambda p: p + 2.0)):
        d = r.get(key)
        if not d:
            continue
        limit = limit_of(d["poll_interval_s"])
        what = "IDLE" if d["idle"] else f"no IDLE, poll {d['poll_interval_s']} s"
        met = d["p95_s"] is not None and d["p95_s"] <= limit and d["acked"] == d["mails"]
        out.append(Check("latency", f"{what}: p50/p95/p99 s ({d['acked']}/{d['mails']} acked)",
                         f"{d['p50_s']} / {d['p95_s']} / {d['p99_s']}", f"p95 <= {limit:g} s", met))
    return out


def _sending(r: dict[str, Any]) -> list[Check]:
    return [Check("sending", f"{r['mails']:,} mails: maildesk / raw aiosmtplib, mails/s",
                  f"{r['maildesk']['mails_per_s']:.0f} / {r['raw']['mails_per_s']:.0f}"),
            Check("sending", "ratio maildesk/raw", f"{100 * r['ratio']:.1f}%", ">= 70%", r["ratio"] >= 0.7)]


def _sweeps(r: dict[str, Any]) -> list[Check]:
    out = []
    for backend in ("sqlite", "postgresql"):
        d = r.get(backend)
        if not d:
            continue
        size = f"{backend} {d['tickets']:,} tickets"
        claim = d["outbox_claim"]["median_ms"]
        out.append(Check("sweeps", f"{size}: outbox claim (median of 5)", f"{claim:.1f} ms", "<= 50 ms", claim <= 50))
        for name in ("first_response_due", "resolve_due", "progress_due", "next_due"):
            if name in d:
                q = d[name]
                out.append(Check("sweeps", f"{backend}: {name} ({q['rows']:,} rows)", f"{q['median_ms']:.1f} ms"))
        sweep = d["sweep"]
        steady = sweep["steady"]["median_ms"]
        out.append(Check("sweeps", f"{backend}: one SLA sweep, nothing newly due (median of 5)", f"{steady:.1f} ms",
                         "<= 50 ms", steady <= 50))
        up = sweep["catch_up"]
        out.append(Check("sweeps", f"{backend}: catch-up sweep, {up['tickets']:,} due at once, {up['mails']:,} mails",
                         f"{up['s']:.1f} s ({up['ms_per_ticket']:.1f} ms/ticket)"))
    return out


def table(rows: list[Check]) -> str:
    header = Check("scenario", "measure", "value", "target", None)
    width = [max(len(getattr(r, f)) for r in [header, *rows]) for f in ("scenario", "measure", "value", "target")]
    lines = []
    for row in [header, *rows]:
        met = "met" if row.met else ("MISSED" if row.met is False else ("" if row is not header else "met?"))
        cells = (row.scenario, row.measure, row.value, row.target)
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, width, strict=True)) + "  " + met)
        if row is header:
            lines.append("-" * (sum(width) + 14))
    return "\n".join(lines)


def write_json(path: Path, document: dict[str, Any], rows: list[Check]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"version": 1, **document, "checks": [asdict(r) for r in rows]}
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
