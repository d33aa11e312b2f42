"""The drill report as one self-contained HTML page: no scripts or styles fetched from anywhere.

The timeline is an inline SVG: a time axis in seconds from the drill's start, one lane for the backups
and their verified copies, then one lane per recovery strategy with its RPO gap (the commits the restore
lacks, ending at the source's last commit) and its RTO (restore start to verified and writable) drawn as
labelled spans, and the disaster as a line across every lane. Every event is also listed in a table below,
so nothing needs hovering to be read.
"""

from __future__ import annotations

import math
from html import escape

from .drill import DrillReport, Event, StrategyResult

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:72rem}
h1{font-size:1.5rem}table{border-collapse:collapse;margin:1rem 0}
td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
.ok{color:#176f2c;font-weight:bold}.bad{color:#b00020;font-weight:bold}
svg{width:100%;height:auto;font-size:12px}svg text{fill:#222}
.legend{display:flex;flex-wrap:wrap;gap:1.2rem;margin:.5rem 0 1rem}
.legend span{display:inline-flex;align-items:center;gap:.35rem}
.legend i{display:inline-block;width:1.4rem;height:.8rem}
"""

# kind → (colour, legend label); the same colours in the SVG and the legend
_COLOURS = {"export": ("#3366cc", "export recorded (region-a)"),
            "watermark": ("#2ca02c", "copy verified (region-b watermark)"),
            "standby": ("#9467bd", "standby / pilot light applied"),
            "disaster": ("#d62728", "disaster: region-a lost"),
            "rpo": ("#f4a6a6", "RPO gap: commits not recovered"),
            "rto": ("#ff7f0e", "RTO: restore start → verified and writable")}
_LEFT, _RIGHT, _LANE, _TOP = 190, 980, 46, 34  # the SVG's geometry (viewBox units)


def render_html(report: DrillReport) -> str:
    verdict = '<span class="ok">VERIFIED</span>' if report.verdict else '<span class="bad">FAILED</span>'
    rows = "".join(
        f"<tr><td>{escape(r.strategy)}</td><td>{_fmt(r.rpo_seconds)}</td><td>{r.transactions_lost}</td>"
        f"<td>{r.rto_seconds:.2f}</td><td>{r.revisions_restored}</td><td>{r.last_block}</td>"
        f"<td><code>{escape((r.target_state_digest or '')[:16])}…</code></td>"
        f"<td class=\"{'ok' if r.verdict else 'bad'}\">{'verified' if r.verdict else 'failed'}</td></tr>"
        for r in report.results)
    events = "".join(f"<tr><td>{e.at:.2f}</td><td>{escape(e.kind)}</td><td>{escape(e.detail)}</td></tr>"
                     for e in report.timeline)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>ledgerdr drill report</title><style>{_STYLE}</style></head><body>
<h1>ledgerdr DR drill — {verdict}</h1>
<p>Started {escape(report.started_at)}; export interval {report.interval_seconds:.0f}s;
source ledger {report.source_blocks} blocks; region-b verified to block {report.replica_watermark_block};
disaster at t={report.disaster_at:.1f}s after the start.</p>
<table><thead><tr><th>strategy</th><th>RPO (s)</th><th>transactions lost</th><th>RTO (s)</th>
<th>revisions restored</th><th>last block</th><th>state digest</th><th>verdict</th></tr></thead>
<tbody>{rows}</tbody></table>
<h2>Timeline</h2>
<div class="legend">{_legend()}</div>
{timeline_svg(report)}
<h2>Events</h2>
<table><thead><tr><th>t (s)</th><th>event</th><th>detail</th></tr></thead><tbody>{events}</tbody></table>
</body></html>"""


def _legend() -> str:
    return "".join(f'<span><i style="background:{colour}"></i>{escape(label)}</span>'
                   for colour, label in _COLOURS.values())


def timeline_svg(report: DrillReport) -> str:
    """The timeline as inline SVG (see the module's docstring)."""
    end = axis_end(max([e.at for e in report.timeline] + [report.disaster_at, 1.0]))
    lanes = ["backups", *(r.strategy for r in report.results)]
    height = _TOP + _LANE * len(lanes) + 10

    def x(t: float) -> float:
        return _LEFT + (_RIGHT - _LEFT) * max(0.0, t) / end

    parts = [_axis(end, height, x)]
    for index, lane in enumerate(lanes):
        y = _TOP + _LANE * index
        parts.append(f'<text x="{_LEFT - 10}" y="{y + _LANE / 2 + 4:.1f}" text-anchor="end">{escape(lane)}</text>'
                     f'<line x1="{_LEFT}" x2="{_RIGHT}" y1="{y + _LANE:.1f}" y2="{y + _LANE:.1f}" stroke="#ddd"/>')
    parts.append(_backups_lane(report.timeline, x))
    for index, result in enumerate(report.results, start=1):
        parts.append(_strategy_lane(report, result, _TOP + _LANE * index, x))
    disaster = x(report.disaster_at)
    parts.append(f'<line x1="{disaster:.1f}" x2="{disaster:.1f}" y1="{_TOP - 6}" y2="{height - 10}" '
                 f'stroke="{_COLOURS["disaster"][0]}" stroke-width="2.5"/>'
                 f'<text x="{disaster + 4:.1f}" y="{_TOP - 8}" fill="{_COLOURS["disaster"][0]}">disaster '
                 f't={report.disaster_at:.2f}s</text>')
    return (f'<svg viewBox="0 0 1090 {height}" xmlns="http://www.w3.org/2000/svg" role="img" '
            f'aria-label="drill timeline">{"".join(parts)}</svg>')


def _axis(end: float, height: int, x) -> str:
    step = axis_step(end)
    ticks = []
    for i in range(int(round(end / step)) + 1):
        t = i * step
        ticks.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{_TOP}" y2="{height - 10}" stroke="#eee"/>'
                     f'<text x="{x(t):.1f}" y="{height}" text-anchor="middle">{t:g}s</text>')
    return "".join(ticks) + f'<text x="{_LEFT - 20}" y="{height}" text-anchor="end">seconds from start</text>'


def _backups_lane(timeline: list[Event], x) -> str:
    """Exports above the lane's middle, verified copies below: two rows of ticks that never hide each other."""
    marks = []
    for event in timeline:
        if event.kind in ("export", "watermark"):
            top = _TOP + (6 if event.kind == "export" else _LANE / 2)
            marks.append(f'<rect x="{x(event.at) - 1.5:.1f}" y="{top:.1f}" width="3" height="{_LANE / 2 - 8:.1f}" '
                         f'fill="{_COLOURS[event.kind][0]}"><title>t={event.at:.2f}s {escape(event.detail)}'
                         f'</title></rect>')
    return "".join(marks)


def _strategy_lane(report: DrillReport, result: StrategyResult, y: float, x) -> str:
    parts = []
    mid = y + _LANE / 2
    for event in report.timeline:  # the standby's and the pilot light's applies happen in their own lanes
        if (event.kind == "standby" and result.strategy == "warm-standby") or \
                (event.kind == "preload" and result.strategy == "intermediate"):
            parts.append(f'<rect x="{x(event.at) - 1.5:.1f}" y="{y + 6}" width="3" height="{_LANE - 12}" '
                         f'fill="{_COLOURS["standby"][0]}"/>')
    if result.rpo_seconds is not None and report.last_commit_at is not None:
        start, stop = x(report.last_commit_at - result.rpo_seconds), x(report.last_commit_at)
        parts.append(f'<rect x="{start:.1f}" y="{y + 8}" width="{max(stop - start, 2):.1f}" height="{_LANE - 16}" '
                     f'fill="{_COLOURS["rpo"][0]}" stroke="#b00020"/>'
                     f'<text x="{start - 4:.1f}" y="{mid + 4:.1f}" text-anchor="end">RPO {result.rpo_seconds:.2f}s'
                     f'</text>')
    span = _recovery(report.timeline, result.strategy)
    if span is not None:
        start, stop = x(span[0]), x(span[1])
        parts.append(f'<rect x="{start:.1f}" y="{y + 8}" width="{max(stop - start, 2):.1f}" height="{_LANE - 16}" '
                     f'fill="{_COLOURS["rto"][0]}"/>'
                     f'<text x="{stop + 4:.1f}" y="{mid + 4:.1f}">RTO {result.rto_seconds:.2f}s '
                     f'{"✔" if result.verdict else "✘ failed"}</text>')
    return "".join(parts)


def _recovery(timeline: list[Event], strategy: str) -> tuple[float, float] | None:
    """When the strategy's restore started and ended, from its events (drill.py marks both)."""
    start = next((e.at for e in timeline if e.kind == "restore-start" and e.detail == strategy), None)
    done = next((e.at for e in timeline if e.kind == "restore-done" and e.detail.startswith(f"{strategy}:")), None)
    return None if start is None or done is None else (start, done)


def axis_step(end: float) -> float:
    """A tick every 1, 2 or 5 × 10ⁿ seconds, about ten ticks in all."""
    raw = end / 10
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def axis_end(end: float) -> float:
    step = axis_step(end)
    return math.ceil(end / step) * step


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
