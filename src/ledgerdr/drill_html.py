"""The drill report as one self-contained HTML page: no scripts or styles fetched from anywhere."""

from __future__ import annotations

from html import escape

from .drill import DrillReport

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:70rem}
h1{font-size:1.5rem}table{border-collapse:collapse;margin:1rem 0}
td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
.ok{color:#176f2c;font-weight:bold}.bad{color:#b00020;font-weight:bold}
.lane{position:relative;height:1.6rem;border-bottom:1px dashed #ddd}
.ev{position:absolute;top:.2rem;width:.7rem;height:.7rem;border-radius:50%}
.export{background:#3366cc}.watermark{background:#2ca02c}.disaster{background:#d62728;width:.3rem;height:1.2rem;border-radius:0}
.standby,.preload{background:#9467bd}.restore-start{background:#ff7f0e}.restore-done{background:#8c564b}
.legend span{display:inline-block;margin-right:1rem}
"""


def render_html(report: DrillReport) -> str:
    verdict = '<span class="ok">VERIFIED</span>' if report.verdict else '<span class="bad">FAILED</span>'
    rows = "".join(
        f"<tr><td>{escape(r.strategy)}</td><td>{_fmt(r.rpo_seconds)}</td><td>{r.transactions_lost}</td>"
        f"<td>{r.rto_seconds:.2f}</td><td>{r.revisions_restored}</td><td>{r.last_block}</td>"
        f"<td><code>{escape((r.target_state_digest or '')[:16])}…</code></td>"
        f"<td class=\"{'ok' if r.verdict else 'bad'}\">{'verified' if r.verdict else 'failed'}</td></tr>"
        for r in report.results)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>ledgerdr drill report</title><style>{_STYLE}</style></head><body>
<h1>ledgerdr DR drill — {verdict}</h1>
<p>Started {escape(report.started_at)}; export interval {report.interval_seconds:.0f}s;
source ledger {report.source_blocks} blocks; region-b verified to block {report.replica_watermark_block};
disaster at t={report.disaster_at:.1f}s.</p>
<table><thead><tr><th>strategy</th><th>RPO (s)</th><th>transactions lost</th><th>RTO (s)</th>
<th>revisions restored</th><th>last block</th><th>state digest</th><th>verdict</th></tr></thead>
<tbody>{rows}</tbody></table>
<h2>Timeline</h2>{_timeline(report)}
</body></html>"""


def _timeline(report: DrillReport) -> str:
    end = max([e.at for e in report.timeline] + [1.0])
    lanes = {"export": "exports (region-a)", "watermark": "watermarks (region-b)", "standby": "standby / pilot",
             "preload": "standby / pilot", "disaster": "disaster", "restore-start": "recovery",
             "restore-done": "recovery"}
    html = []
    for lane in dict.fromkeys(lanes.values()):
        dots = "".join(
            f'<span class="ev {escape(e.kind)}" style="left:{100 * e.at / end:.2f}%" '
            f'title="t={e.at:.2f}s {escape(e.kind)}: {escape(e.detail)}"></span>'
            for e in report.timeline if lanes.get(e.kind) == lane)
        html.append(f'<div><small>{escape(lane)}</small><div class="lane">{dots}</div></div>')
    items = "".join(f"<li>t={e.at:.2f}s <b>{escape(e.kind)}</b> {escape(e.detail)}</li>" for e in report.timeline)
    return "".join(html) + f"<details><summary>all events</summary><ul>{items}</ul></details>"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
