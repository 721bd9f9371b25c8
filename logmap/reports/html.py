"""The dry-run report as one self-contained HTML file.

Everything is inline — CSS, the SVG charts (drawn here, server-side, so the page needs no charting library and
no script to show its numbers), and a few lines of JavaScript for the "download JSON" button — and a Content
Security Policy forbids every fetch, so the file opens the same from an e-mail attachment, offline, years later.

Log content is attacker-controlled (a user agent can be ``<script>…``): every string from the report is
HTML-escaped, and the embedded JSON escapes ``<`` so that it cannot close its ``<script>`` element.

Each chart element carries its number in a ``data-value`` attribute (and the key it stands for in ``data-key``),
which is how the browser test checks that the charts show the report's numbers.
"""

from __future__ import annotations

import json
import unicodedata
from html import escape
from pathlib import Path
from typing import Any

from logmap.reports.dryrun import display_label
from logmap.sinks.output import write_text_atomically

#: One colour per interaction type, assigned in sorted type order (Tableau 10, then 10 more).
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
#: Beyond this many hours, the records-over-time chart shows days instead.
MAX_HOURLY_BARS = 240
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

_CSS = """
:root { --fg:#1f2328; --muted:#656d76; --line:#d0d7de; --bg:#fff; --soft:#f6f8fa; --bad:#cf222e; --good:#1a7f37; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); margin: 0 auto; padding: 24px 32px 64px; max-width: 1180px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 32px 0 8px; border-bottom: 1px solid var(--line);
 padding-bottom: 4px; } h3 { font-size: 14px; margin: 16px 0 6px; }
.meta { color: var(--muted); margin: 0 0 16px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; min-width: 150px; background: var(--soft); }
.card .n { font-size: 20px; font-weight: 600; } .card .l { color: var(--muted); font-size: 12px; }
.ok { color: var(--good); font-weight: 600; } .bad { color: var(--bad); font-weight: 600; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.code, .code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px;
  word-break: break-all; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 8px 32px; }
.chart { margin: 8px 0 4px; } .chart svg { max-width: 100%; height: auto; }
.chart text { font: 11px system-ui, sans-serif; fill: var(--muted); }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; margin: 2px 0 8px; }
.legend span::before { content: ""; display: inline-block; width: 10px; height: 10px; margin-right: 5px;
  background: var(--c); border-radius: 2px; }
.empty { color: var(--muted); font-style: italic; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px;
  font-size: 12px; overflow-x: auto; margin: 4px 0 10px; }
details { margin: 4px 0; } summary { cursor: pointer; }
button { font: inherit; padding: 4px 10px; border: 1px solid var(--line); border-radius: 6px; background: var(--soft);
  cursor: pointer; }
"""  # noqa: E501 - CSS rules kept one per line

_SCRIPT = """
(function () {
  var button = document.getElementById('download-json');
  if (!button) { return; }
  button.addEventListener('click', function () {
    var text = document.getElementById('report-data').textContent;
    var link = document.createElement('a');
    link.href = 'data:application/json;charset=utf-8,' + encodeURIComponent(text);
    link.download = 'dry-run-report.json';
    link.click();
  });
  document.body.setAttribute('data-ready', 'yes');
})();
"""


def _fmt(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer() or digits:
        return f"{value:,.{digits or 1}f}"
    return f"{int(value):,}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 120:
        return f"{value:.0f}s"
    if value < 7200:
        return f"{value / 60:.1f}m"
    return f"{value / 3600:.1f}h"


def _share(value: float) -> str:
    return f"{100 * value:.1f}%"


def type_colors(types: list[str]) -> dict[str, str]:
    """A stable colour per interaction type: sorted order, cycling through the palette."""
    return {t: PALETTE[i % len(PALETTE)] for i, t in enumerate(sorted(types))}


# --- charts ---------------------------------------------------------------------------------------------------

def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1
    power = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # pragma: no cover


#: Pixels a character of an 11px chart label may take, by kind: generous for any sans-serif font, so that a
#: label cut to fit by this estimate fits whatever font the browser picks.
_NARROW_PX, _WIDE_LATIN_PX, _OTHER_PX, _FULL_WIDTH_PX = 7.0, 10.0, 8.0, 12.0


def _text_px(text: str) -> float:
    """An upper bound of the width of ``text`` in an 11px chart label."""
    total = 0.0
    for c in text:
        if c.isascii():
            total += _WIDE_LATIN_PX if c in "MWmw@%" or c.isupper() else _NARROW_PX
        elif unicodedata.east_asian_width(c) in ("W", "F"):
            total += _FULL_WIDTH_PX
        else:
            total += _OTHER_PX
    return total


def fit_label(text: str, width_px: float) -> str:
    """``text`` cut (with an ellipsis) so that it fits in ``width_px`` pixels of chart label."""
    if _text_px(text) <= width_px:
        return text
    room = width_px - _NARROW_PX
    cut = ""
    for c in text:
        if _text_px(cut + c) > room:
            break
        cut += c
    return cut + "…"


def hbar_chart(chart_id: str, items: list[tuple[str, int]], *, color: str = "#4e79a7", label_width: int = 300,
               width: int = 760, labels: list[str] | None = None) -> str:
    """Horizontal bars, one per (key, value), largest first as given. ``labels`` are the texts shown (default the
    keys), left-aligned in a column of ``label_width`` pixels, cut to fit it and clipped to it."""
    if not items:
        return f'<p class="empty" id="{chart_id}-empty">nothing to show</p>'
    labels = labels or [key for key, _ in items]
    row, top, pad = 22, 6, 4
    height = top + row * len(items) + 6
    plot = width - label_width - 70
    peak = max(v for _, v in items) or 1
    clip = f"{chart_id}-labels"
    parts = [f'<svg id="{chart_id}" class="hbar" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" data-label-width="{label_width}">',
             f'<defs><clipPath id="{clip}"><rect x="0" y="0" width="{label_width - pad}" height="{height}"/>'
             f'</clipPath></defs>']
    for i, ((key, value), label) in enumerate(zip(items, labels)):
        y = top + i * row
        w = max(1.0, plot * value / peak) if value else 0.0
        shown = fit_label(label, label_width - 3 * pad)
        parts.append(f'<text class="label" x="{pad}" y="{y + 15}" clip-path="url(#{clip})">{escape(shown)}'
                     f'<title>{escape(label)}</title></text>')
        parts.append(f'<rect class="bar" x="{label_width}" y="{y + 3}" width="{w:.2f}" height="{row - 6}" '
                     f'fill="{color}" data-key="{escape(key)}" data-value="{value}">'
                     f'<title>{escape(label)}: {value:,}</title></rect>')
        parts.append(f'<text x="{label_width + w + 6:.2f}" y="{y + 15}">{value:,}</text>')
    parts.append("</svg>")
    return "".join(parts)


def stacked_chart(chart_id: str, categories: list[str], series: dict[str, list[int]], colors: dict[str, str], *,
                  labels: list[str] | None = None, width: int = 1100, height: int = 260) -> str:
    """Vertical bars per category, stacked by series (interaction type). ``labels`` are the x-axis texts."""
    if not categories or not series:
        return f'<p class="empty" id="{chart_id}-empty">nothing to show</p>'
    labels = labels or categories
    left, right, top, bottom = 48, 10, 10, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(values[i] for values in series.values()) for i in range(len(categories))]
    peak = _nice_max(max(totals))
    slot = plot_w / len(categories)
    bar = min(48.0, max(1.0, slot * 0.8))
    parts = [f'<svg id="{chart_id}" class="stacked" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    for fraction in (0, 0.5, 1):
        y = top + plot_h * (1 - fraction)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d0d7de" '
                     f'stroke-width="1"/><text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{_fmt(peak * fraction)}</text>')
    every = max(1, round(len(categories) / 12))
    for i, category in enumerate(categories):
        x = left + i * slot + (slot - bar) / 2
        y = top + plot_h
        for name, values in series.items():
            value = values[i]
            if not value:
                continue
            h = plot_h * value / peak
            y -= h
            parts.append(f'<rect class="bar" x="{x:.2f}" y="{y:.2f}" width="{bar:.2f}" height="{h:.2f}" '
                         f'fill="{colors.get(name, "#888")}" data-key="{escape(category)}" '
                         f'data-series="{escape(name)}" data-value="{value}">'
                         f'<title>{escape(labels[i])} · {escape(name)}: {value:,}</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{left + i * slot + slot / 2:.1f}" y="{top + plot_h + 16}" '
                         f'text-anchor="middle">{escape(labels[i])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def legend(colors: dict[str, str], names: list[str]) -> str:
    return '<div class="legend">' + "".join(
        f'<span style="--c:{colors[n]}">{escape(n)}</span>' for n in names) + "</div>"


def time_series(report: dict[str, Any]) -> tuple[str, list[str], list[str], dict[str, list[int]]]:
    """The records-over-time chart's data: per hour, or per day when the run spans more than
    ``MAX_HOURLY_BARS`` hours. Returns (unit, category keys, axis labels, counts per type)."""
    hours = report.get("records_per_hour", [])
    unit = "hour" if len(hours) <= MAX_HOURLY_BARS else "day"
    buckets: dict[str, dict[str, int]] = {}
    for entry in hours:
        key = entry["hour"] if unit == "hour" else entry["hour"][:10]
        bucket = buckets.setdefault(key, {})
        for type_name, n in entry["counts"].items():
            bucket[type_name] = bucket.get(type_name, 0) + n
    keys = sorted(buckets)
    types = sorted({t for b in buckets.values() for t in b})
    series = {t: [buckets[k].get(t, 0) for k in keys] for t in types}
    labels = [k[5:13].replace("T", " ") + "h" if unit == "hour" else k[5:] for k in keys]
    return unit, keys, labels, series


def _compact(seconds: float) -> str:
    """``90`` → ``90s``, ``300`` → ``5m``, ``5400`` → ``1.5h``: short axis labels."""
    if seconds < 120:
        return f"{seconds:g}s"
    if seconds < 7200:
        return f"{seconds / 60:g}m"
    return f"{seconds / 3600:g}h"


def _histogram_label(entry: dict[str, Any]) -> str:
    low, high = entry["from_s"], entry["to_s"]
    return f"≥{_compact(low)}" if high is None else f"{_compact(low)}–{_compact(high)}"


# --- tables ---------------------------------------------------------------------------------------------------

def _table(headers: list[str], rows: list[list[Any]], *, numeric: set[int] | None = None, code: set[int] | None = None,
           table_id: str | None = None) -> str:
    if not rows:
        return '<p class="empty">none</p>'
    numeric, code = numeric or set(), code or set()
    head = "".join(f'<th class="{"num" if i in numeric else ""}">{escape(h)}</th>' for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = "num" if i in numeric else "code" if i in code else ""
            cells.append(f'<td class="{cls}">{escape(str(cell))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _card(number: str, label: str, cls: str = "") -> str:
    return f'<div class="card"><div class="n {cls}">{escape(number)}</div><div class="l">{escape(label)}</div></div>'


# --- the page -------------------------------------------------------------------------------------------------

def render_html(report: dict[str, Any]) -> str:
    """The whole page for a dry-run report dict (``DryRunReport.to_dict()``)."""
    ledger = report["ledger"]
    inputs = ledger["input_rows"]
    emitted = ledger["emitted"]
    per_type: dict[str, int] = report.get("records_per_type", {})
    types = sorted(set(per_type) | {t for e in report.get("records_per_hour", []) for t in e["counts"]})
    colors = type_colors(types)

    def pct(n: int, whole: int = inputs) -> str:
        return f"{100 * n / whole:.1f}%" if whole else "–"

    title = f"logmap dry-run · {report.get('mapping_name') or report.get('mapping', '')}"
    out: list[str] = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">mapping <span class="code">{escape(str(report.get("mapping", "")))}</span> · inputs '
        f'<span class="code">{escape(", ".join(report.get("inputs", [])))}</span>'
        f' · {escape(report.get("created_at", ""))}'
        f' · logmap {escape(str(report.get("logmap_version", "")))} · report_version {report.get("report_version")}'
        f' <button id="download-json" type="button">download JSON</button></p>',
    ]
    for warning in report.get("warnings", []):
        out.append(f'<p class="bad">warning: {escape(warning)}</p>')

    balanced = ledger.get("balanced")
    time_range = report.get("time_range", {})
    visitors = report.get("visitors", {})
    product = report.get("product_ids", {})
    out.append('<div class="cards">' + "".join([
        _card(_fmt(inputs), "input rows"),
        _card(_fmt(emitted), f"records ({pct(emitted)})"),
        _card(_fmt(ledger["dropped_total"]), f"dropped ({pct(ledger['dropped_total'])})"),
        _card("balanced" if balanced else "NOT balanced", "input = records + dropped", "ok" if balanced else "bad"),
        _card(_fmt(visitors.get("anonymous_ids", 0)), "distinct anonymous_ids"),
        _card(_fmt(visitors.get("user_ids", 0)), "distinct user_ids"),
        _card(_share(product.get("share", 0.0)), "records with product ids"),
    ]) + "</div>")
    out.append(f'<p class="meta">records from <span class="code">{escape(str(time_range.get("first")))}</span> to '
               f'<span class="code">{escape(str(time_range.get("last")))}</span></p>')

    # Records over time
    unit, keys, labels, series = time_series(report)
    out.append(f"<h2>Records per {unit}, by type</h2>")
    out.append(legend(colors, [t for t in types if t in series]))
    out.append(f'<div class="chart" data-unit="{unit}">'
               + stacked_chart("chart-records-over-time", keys, series, colors, labels=labels) + "</div>")

    # Ledger
    out.append('<h2>The ledger</h2><div class="grid"><div>')
    rows = [["input rows", _fmt(inputs), "100.0%" if inputs else "–"], ["records", _fmt(emitted), pct(emitted)]]
    rows += [[f"dropped: {d['reason']}", _fmt(d["count"]), f"{d['percent']:.2f}%"] for d in report.get("drops", [])]
    out.append(_table(["", "rows", "% of input"], rows, numeric={1, 2}, table_id="table-ledger"))
    out.append("</div><div><h3>Drops by reason</h3>")
    drops = [(d["reason"], d["count"]) for d in report.get("drops", [])]
    out.append('<div class="chart">' + hbar_chart("chart-drops", drops, color="#e15759", label_width=160,
                                                  width=560) + "</div>")
    out.append("</div></div>")

    # Types and rules
    out.append('<h2>Records per type and per rule</h2><div class="grid"><div>')
    type_rows = [[t, _fmt(n), pct(n, emitted)] for t, n in sorted(per_type.items(), key=lambda kv: -kv[1])]
    out.append(_table(["type", "records", "% of records"], type_rows, numeric={1, 2}, table_id="table-types"))
    out.append("</div><div>")
    rule_rows = [[r, _fmt(n), pct(n, emitted)] for r, n in report.get("records_per_rule", {}).items()]
    out.append(_table(["rule", "records", "% of records"], rule_rows, numeric={1, 2}, table_id="table-rules"))
    out.append("</div></div>")

    # Unmatched shapes
    shapes = report.get("unmatched_shapes", [])
    out.append("<h2>Top unmatched path shapes — the rules you may be missing</h2>")
    chart = hbar_chart("chart-unmatched", [(s["value"], s["count"]) for s in shapes], color="#f28e2b",
                       labels=[display_label(s) for s in shapes])
    out.append(f'<div class="chart">{chart}</div>')
    out.append(_table(["shape", "rows", "% of unmatched", "example"],
                      [[display_label(s), _fmt(s["count"]), f"{s['percent']:.1f}%",
                        s.get("example_label") or s.get("example", "")] for s in shapes],
                      numeric={1, 2}, code={0, 3}, table_id="table-unmatched"))

    # Durations
    durations = report.get("durations", {})
    per_duration_type: dict[str, Any] = durations.get("per_type", {})
    out.append(f"<h2>Durations (capped at {_compact(durations.get('max_s') or 0)})</h2>")
    duration_types = sorted(per_duration_type)
    if duration_types:
        bins = per_duration_type[duration_types[0]]["histogram"]
        keys = [str(b["from_s"]) for b in bins]
        hist_series = {t: [b["count"] for b in per_duration_type[t]["histogram"]] for t in duration_types}
        out.append(legend(colors, duration_types))
        out.append('<div class="chart">' + stacked_chart(
            "chart-durations", keys, hist_series, colors, labels=[_histogram_label(b) for b in bins], width=900,
            height=240) + "</div>")
    out.append(_table(
        ["type", "records", "with duration", "median", "p90", "absent", "capped"],
        [[t, _fmt(s["records"]), _fmt(s["with_duration"]), _seconds(s["median_s"]), _seconds(s["p90_s"]),
          _share(s["absent_share"]), _share(s["capped_share"])] for t, s in sorted(per_duration_type.items())],
        numeric={1, 2, 3, 4, 5, 6}, table_id="table-durations"))
    out.append('<p class="meta">absent: share of the type\'s records without a duration (last page of a visit, or a '
               'gap longer than the session timeout); capped: share of durations at the cap. Median and p90 are '
               'nearest-rank over 1-second bins.</p>')

    # Visitors and product ids
    out.append('<h2>Visitors and products</h2>')
    out.append(_table(["", "count"], [["distinct user_ids", _fmt(visitors.get("user_ids", 0))],
                                      ["distinct anonymous_ids", _fmt(visitors.get("anonymous_ids", 0))],
                                      ["distinct visitors (user_id, else anonymous_id)",
                                       _fmt(visitors.get("visitors", 0))]],
                      numeric={1}, table_id="table-visitors"))
    product_rows = [[t, _fmt(v["records"]), _share(v["share"])] for t, v in product.get("per_type", {}).items()]
    product_rows.append(["all records", _fmt(product.get("records", 0)), _share(product.get("share", 0.0))])
    out.append(_table(["type", "records with product ids", "share"], product_rows, numeric={1, 2},
                      table_id="table-products"))

    # Drops in detail
    out.append("<h2>Dropped rows by reason</h2>")
    for reason, detail in report.get("drops_detail", {}).items():
        count = ledger["dropped"].get(reason, 0)
        out.append(f"<details><summary><b>{escape(reason)}</b> — {_fmt(count)} rows ({pct(count)})</summary>")
        out.append('<div class="grid"><div>')
        if detail["paths"]:
            out.append("<h3>top paths</h3>" + _table(["path", "rows", "%"], [
                [display_label(r), _fmt(r["count"]), f"{r['percent']:.1f}%"] for r in detail["paths"]],
                numeric={1, 2}, code={0}))
        if detail["details"]:
            out.append("<h3>why</h3>" + _table(["detail", "rows", "%"], [
                [r["value"], _fmt(r["count"]), f"{r['percent']:.1f}%"] for r in detail["details"]],
                numeric={1, 2}, code={0}))
        out.append("</div><div>")
        if detail["user_agents"]:
            out.append("<h3>top user agents</h3>" + _table(["user agent", "rows", "%"], [
                [r["value"], _fmt(r["count"]), f"{r['percent']:.1f}%"] for r in detail["user_agents"]],
                numeric={1, 2}, code={0}))
        out.append("</div></div>")
        if detail["examples"]:
            out.append("<h3>examples</h3>" + _table(["file:line", "path / line"], [
                [f"{e['file']}:{e['line']}", e.get("raw") or e.get("path_label") or e.get("path") or ""]
                for e in detail["examples"]],
                code={0, 1}))
        out.append("</details>")

    # Samples
    out.append("<h2>Sample records</h2>")
    for type_name, samples in report.get("samples", {}).items():
        out.append(f"<details><summary><b>{escape(type_name)}</b> — {len(samples)} sample(s)</summary>")
        for sample in samples:
            out.append(f'<p class="meta code">{escape(str(sample["file"]))}:{sample["line"]} · rule '
                       f'{escape(str(sample["rule"]))}</p>')
            out.append(f"<pre>{escape(json.dumps(sample['record'], indent=2, ensure_ascii=False))}</pre>")
        out.append("</details>")

    rankings = "exact" if report.get("rankings_exact", True) else "approximate (pruned to the top entries per chunk)"
    out.append(f'<p class="meta">{_fmt(inputs)} rows in {report.get("elapsed_s", 0)}s · rankings {rankings}</p>')
    data = json.dumps(report, ensure_ascii=False).replace("<", "\\u003c").replace("\u2028", "\\u2028") \
        .replace("\u2029", "\\u2029")
    out.append(f'<script type="application/json" id="report-data">{data}</script>')
    out.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(out)


def write_html(report: dict[str, Any], path: str | Path) -> None:
    write_text_atomically(Path(path), render_html(report))
