"""`drill --history DIR`: each drill's JSON report kept, and RPO/RTO charted over the past drills.

DIR holds one `drill-<start>.json` per drill (never overwritten) and `history.html`, rewritten after each
drill: per strategy, RPO and RTO across the drills as inline SVG charts, and every figure in a table
(self-contained, like the drill report).
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import orjson

from .drill import STRATEGIES
from .drill_html import axis_end, axis_step
from .repository import parse_iso

_STRATEGY_COLOURS = dict(zip(STRATEGIES, ("#3366cc", "#ff7f0e", "#9467bd"), strict=True))
_LEFT, _RIGHT, _TOP, _HEIGHT = 80, 850, 20, 220


def keep_report(directory: Path, report: dict[str, Any]) -> Path:
    """Store one drill's JSON report under a new name (its start time; a suffix if two share a second)."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = parse_iso(report["started_at"]).strftime("%Y%m%dT%H%M%SZ")
    for suffix in ("", *(f"-{n}" for n in range(1, 1000))):
        path = directory / f"drill-{stamp}{suffix}.json"
        try:
            with path.open("xb") as out:
                out.write(orjson.dumps(report, option=orjson.OPT_INDENT_2))
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"too many drills started at {stamp} in {directory}")


def load_history(directory: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The kept reports, oldest first, and the names of files that are not drill reports."""
    drills, unreadable = [], []
    for path in sorted(directory.glob("drill-*.json")):
        try:
            report = orjson.loads(path.read_bytes())
            parse_iso(report["started_at"])
            drills.append(report)
        except (OSError, ValueError, KeyError, TypeError):
            unreadable.append(path.name)
    return sorted(drills, key=lambda r: parse_iso(r["started_at"])), unreadable


def render_history(drills: list[dict[str, Any]], unreadable: list[str]) -> str:
    rows = "".join(
        f"<tr><td>{escape(d['started_at'])}</td><td>{escape(r['strategy'])}</td><td>{_num(r['rpo_seconds'])}</td>"
        f"<td>{r['transactions_lost']}</td><td>{_num(r['rto_seconds'])}</td>"
        f"<td>{'verified' if r['verdict'] else 'FAILED'}</td></tr>"
        for d in drills for r in d.get("results", []))
    legend = "".join(f'<span><i style="background:{c}"></i>{escape(s)}</span>' for s, c in _STRATEGY_COLOURS.items())
    skipped = "".join(f"<li>{escape(name)}: not a readable drill report (left out)</li>" for name in unreadable)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ledgerdr drill history</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:72rem}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}
svg{{width:100%;height:auto;font-size:12px}}.legend span{{margin-right:1.2rem}}
.legend i{{display:inline-block;width:1.4rem;height:.8rem;margin-right:.3rem}}</style></head><body>
<h1>ledgerdr drill history — {len(drills)} drills</h1>
<div class="legend">{legend}</div>
<h2>RPO (seconds of commits not recovered)</h2>{_chart(drills, "rpo_seconds")}
<h2>RTO (seconds to a verified, writable ledger)</h2>{_chart(drills, "rto_seconds")}
<ul>{skipped}</ul>
<table><thead><tr><th>drill started</th><th>strategy</th><th>RPO (s)</th><th>transactions lost</th>
<th>RTO (s)</th><th>verdict</th></tr></thead><tbody>{rows}</tbody></table>
</body></html>"""


def _chart(drills: list[dict[str, Any]], figure: str) -> str:
    """One line per strategy across the drills (x: the drill, labelled by its start; y: seconds from 0)."""
    values = [r[figure] for d in drills for r in d.get("results", []) if r.get(figure) is not None]
    top = axis_end(max(values + [0.1]))
    step = axis_step(top)
    count = max(len(drills), 2)

    def x(i: int) -> float:
        return _LEFT + (_RIGHT - _LEFT) * i / (count - 1)

    def y(v: float) -> float:
        return _TOP + (_HEIGHT - _TOP) * (1 - v / top)

    parts: list[str] = []
    labels: list[float] = []  # labels: the y of each last-value label, so that close values do not overlap
    for k in range(int(round(top / step)) + 1):
        v = k * step
        parts.append(f'<line x1="{_LEFT}" x2="{_RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
                     f'<text x="{_LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}s</text>')
    for i, drill in enumerate(drills):
        parts.append(f'<text x="{x(i):.1f}" y="{_HEIGHT + 18}" text-anchor="middle">'
                     f'{escape(drill["started_at"][:19].replace("T", " "))}</text>')
    for strategy, colour in _STRATEGY_COLOURS.items():
        points = [(x(i), y(r[figure]), r[figure]) for i, d in enumerate(drills) for r in d.get("results", [])
                  if r["strategy"] == strategy and r.get(figure) is not None]
        if not points:
            continue
        line = " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in points)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{colour}"/>' for px, py, _ in points]
        px, py, value = points[-1]
        label_y = py + 4
        while any(abs(label_y - used) < 13 for used in labels):
            label_y += 13
        labels.append(label_y)
        parts.append(f'<text x="{px + 8:.1f}" y="{label_y:.1f}" fill="{colour}">{escape(strategy)} {value:.2f}s'
                     '</text>')
    return f'<svg viewBox="0 0 1000 {_HEIGHT + 28}" xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
