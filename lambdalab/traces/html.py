"""The report as one self-contained HTML file: data inline, charts drawn as SVG by inline script, nothing fetched."""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path

from lambdalab.errors import UserError
from lambdalab.traces.report import SOURCE_LABELS, Report
from lambdalab.traces.terminal import ms

LOG = logging.getLogger(__name__)

MAX_TIMELINE_ROWS = 400  # environments drawn; the rest are counted in the caption

_STYLE = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d232a;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px} .muted{color:#5b6670}
table{border-collapse:collapse;margin:8px 0} th,td{padding:4px 10px;border-bottom:1px solid #e3e7ea;text-align:right}
th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left} th{background:#f5f7f8}
.warn{background:#fff4d6;border-left:4px solid #e0a400;padding:6px 10px;margin:6px 0}
.legend span{display:inline-block;margin-right:16px} .sw{display:inline-block;width:12px;height:12px;margin-right:4px;
vertical-align:-1px;border-radius:2px}
svg text{font:11px system-ui,sans-serif;fill:#33404b} .axis line{stroke:#c9d1d7} .row-bg{fill:#f7f9fa}
.init{fill:#f0a33a} .invocation.cold{fill:#d64541} .invocation.warm{fill:#3b82c4} .invocation.provisioned{fill:#2f9e6e}
.cold-marker{fill:#d64541}
svg text.clipped{fill:#4a3000;font-size:10px;paint-order:stroke;stroke:#fff;stroke-width:3px}
 .hist-cold{fill:#d64541;opacity:.8} .hist-warm{fill:#3b82c4;opacity:.8}
.charts{display:flex;flex-wrap:wrap;gap:18px}
"""

_SCRIPT = r"""
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var inv = data.invocations;
  function el(name, attrs, parent, text) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) { node.setAttribute(k, attrs[k]); }
    if (text !== undefined) { node.textContent = text; }
    if (parent) { parent.appendChild(node); }
    return node;
  }
  function fmtMs(s) { return (s * 1000).toFixed(s < 0.01 ? 2 : 0) + " ms"; }

  // --- timeline of execution environments -----------------------------------------------------------------
  var envs = data.environments.slice(0, data.max_rows);
  var tl = document.getElementById("timeline");
  // The axis spans the invocations and the INITs they waited for. An INIT that ran long before any request
  // (provisioned concurrency) is clipped at the left edge and labelled with how much earlier it began.
  var t0 = Infinity, t1 = -Infinity;
  envs.forEach(function (env) {
    env.invocations.forEach(function (i) {
      var it = inv[i];
      if (it.invoke_start === null) { return; }
      var first = (it.start_kind === "cold" && it.init_start !== null) ? it.init_start : it.invoke_start;
      t0 = Math.min(t0, first); t1 = Math.max(t1, it.invoke_start + (it.duration_s || 0));
    });
  });
  if (t0 === Infinity) { t0 = 0; t1 = 1; }
  var rowH = 18, left = 250, right = 20, top = 24, width = 1150;
  var height = top + envs.length * rowH + 30;
  tl.setAttribute("width", width); tl.setAttribute("height", height);
  tl.setAttribute("viewBox", "0 0 " + width + " " + height);
  var span = (t1 > t0) ? (t1 - t0) : 1;
  var pad = span * 0.02;
  t0 -= pad; span += 2 * pad;
  function x(t) { return left + (Math.max(t, t0) - t0) / span * (width - left - right); }
  var axis = el("g", {"class": "axis"}, tl);
  for (var k = 0; k <= 5; k++) {
    var tx = left + k / 5 * (width - left - right);
    el("line", {x1: tx, x2: tx, y1: top - 6, y2: height - 24}, axis);
    el("text", {x: tx, y: height - 8, "text-anchor": "middle"}, axis, "+" + (span * k / 5).toFixed(2) + " s");
  }
  var drawn = 0, inits = 0, marks = 0;
  envs.forEach(function (env, row) {
    var y = top + row * rowH;
    if (row % 2 === 0) { el("rect", {"class": "row-bg", x: 0, y: y, width: width, height: rowH}, tl); }
    var name = env.function.length > 26 ? env.function.slice(0, 25) + "…" : env.function;
    var label = name + ":" + env.qualifier + " #" + (env.inferred ? env.id.split("#").pop() : env.id);
    el("text", {x: 4, y: y + 13}, tl, label.length > 40 ? label.slice(0, 39) + "…" : label);
    if (env.init_start !== null && env.init_end !== null) {
      var r = el("rect", {"class": "init", x: x(env.init_start), y: y + 3, height: rowH - 6,
        width: Math.max(1, x(env.init_end) - x(env.init_start))}, tl);
      el("title", {}, r, "INIT " + fmtMs(env.init_end - env.init_start));
      if (env.init_start < t0) {
        el("text", {x: x(t0) + 3, y: y + 12, "class": "clipped"}, tl,
          "« INIT began " + (t0 + pad - env.init_start).toFixed(1) + " s earlier");
      }
      inits++;
    }
    env.invocations.forEach(function (i) {
      var it = inv[i];
      if (it.invoke_start === null) { return; }
      var kind = it.start_kind || "warm";
      var bar = el("rect", {"class": "invocation " + kind, x: x(it.invoke_start), y: y + 3, height: rowH - 6,
        width: Math.max(1, x(it.invoke_start + (it.duration_s || 0)) - x(it.invoke_start)), "data-index": i}, tl);
      el("title", {}, bar, kind + " invocation " + (it.request_id || "") + ": " + fmtMs(it.duration_s || 0)
        + (it.end_to_end_s !== null ? ", end to end " + fmtMs(it.end_to_end_s) : ""));
      drawn++;
      if (kind === "cold") {
        var cx = x(it.invoke_start);
        el("path", {"class": "cold-marker", d: "M" + (cx - 4) + " " + (y + 1) + " L" + (cx + 4) + " " + (y + 1) +
          " L" + cx + " " + (y + 7) + " Z"}, tl);
        marks++;
      }
    });
  });
  tl.setAttribute("data-drawn-invocations", drawn);
  tl.setAttribute("data-drawn-inits", inits);
  tl.setAttribute("data-drawn-cold-markers", marks);

  // --- cold vs warm end-to-end latency, one histogram per function -----------------------------------------
  var box = document.getElementById("latency");
  var hists = 0, counted = 0;
  data.functions.forEach(function (fn) {
    var cold = [], warm = [];
    inv.forEach(function (it) {
      if (it.function !== fn.function || it.qualifier !== fn.qualifier || it.throttled || it.end_to_end_s === null) {
        return;
      }
      (it.start_kind === "cold" ? cold : warm).push(it.end_to_end_s * 1000);
    });
    if (!cold.length && !warm.length) { return; }
    var all = cold.concat(warm);
    var lo = Math.min.apply(null, all), hi = Math.max.apply(null, all);
    var bins = 24, w = 520, h = 200, pl = 40, pb = 34, pt = 26;
    var step = (hi > lo) ? (hi - lo) / bins : 1;
    function count(values) {
      var c = new Array(bins).fill(0);
      values.forEach(function (v) { c[Math.min(bins - 1, Math.floor((v - lo) / step))]++; });
      return c;
    }
    var cc = count(cold), wc = count(warm);
    var peak = Math.max(1, Math.max.apply(null, cc.concat(wc)));
    var svg = el("svg", {"class": "hist", width: w, height: h, viewBox: "0 0 " + w + " " + h,
      "data-function": fn.function, "data-qualifier": fn.qualifier}, box);
    el("text", {x: pl, y: 14}, svg, fn.function + ":" + fn.qualifier + " — cold " + cold.length + " (red), warm " +
      warm.length + " (blue), end-to-end ms");
    var bw = (w - pl - 10) / bins;
    [[wc, "hist-warm", 0], [cc, "hist-cold", bw / 2]].forEach(function (set) {
      set[0].forEach(function (n, b) {
        if (!n) { return; }
        var bh = n / peak * (h - pt - pb);
        var r = el("rect", {"class": set[1], x: pl + b * bw + set[2], y: h - pb - bh, width: Math.max(1, bw / 2 - 1),
          height: bh, "data-count": n}, svg);
        el("title", {}, r, n + " " + (set[1] === "hist-cold" ? "cold" : "warm") + " in " +
          (lo + b * step).toFixed(1) + " to " + (lo + (b + 1) * step).toFixed(1) + " ms");
        counted += n;
      });
    });
    el("line", {x1: pl, x2: w - 10, y1: h - pb, y2: h - pb, stroke: "#9aa6b0"}, svg);
    el("text", {x: pl, y: h - pb + 14}, svg, lo.toFixed(1));
    el("text", {x: w - 10, y: h - pb + 14, "text-anchor": "end"}, svg, hi.toFixed(1) + " ms");
    el("text", {x: pl - 4, y: pt + 8, "text-anchor": "end"}, svg, String(peak));
    hists++;
  });
  box.setAttribute("data-drawn-histograms", hists);
  box.setAttribute("data-drawn-values", counted);
  document.body.setAttribute("data-charts-drawn", "true");
})();
"""


def _cell(value: str) -> str:
    return f"<td>{html.escape(value)}</td>"


def render_html(report: Report, *, title: str = "Cold-start report", extra_sections: str = "") -> str:
    """The whole page as a string. The data travels as JSON in a script element, escaped for `</script>`.

    `extra_sections`: trusted HTML (e.g. the simulator's time series as inline SVG) placed before the notes."""
    payload = report.to_json()
    payload["max_rows"] = MAX_TIMELINE_ROWS
    blob = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    source = payload["source"]
    window = source["window"]
    subtitle = f"{SOURCE_LABELS.get(source['kind'], source['kind'])}: {source['detail']}"
    if window:
        subtitle += f" — {window['start']} to {window['end']}"
    if report.coverage is not None:
        subtitle += f" — coverage: {report.coverage.label} ({report.coverage.detail})"
    rows = []
    for f in report.functions:
        cells = [
            f.function,
            f.qualifier,
            str(f.invocations),
            str(f.cold_starts),
            "-" if f.cold_share is None else f"{f.cold_share:.0%}",
            str(f.provisioned_starts),
            f"{ms(f.init.p50)} / {ms(f.init.p95)} / {ms(f.init.max)}",
            f"{ms(f.duration.p50)} / {ms(f.duration.p95)} / {ms(f.duration.p99)}",
            ms(f.end_to_end_cold.p50),
            ms(f.end_to_end_warm.p50),
            ms(f.gap_p50_s),
            "n/a" if f.throttles is None else str(f.throttles),
            "n/a" if f.spillover is None else str(f.spillover),
        ]
        rows.append("<tr>" + "".join(_cell(c) for c in cells) + "</tr>")
    warnings = "".join(f'<div class="warn">{html.escape(w)}</div>' for w in report.warnings)
    notes = "".join(f'<li class="muted">{html.escape(n)}</li>' for n in report.notes)
    problems = report.problem_summary()
    problem_text = (
        "could not read "
        + str(problems["count"])
        + " item(s): "
        + ", ".join(f"{reason} x{count}" for reason, count in problems["reasons"].items())
        if problems["count"]
        else "every document was read"
    )
    hidden = max(0, len(report.environments) - MAX_TIMELINE_ROWS)
    caption = f" ({hidden} more environments not drawn)" if hidden else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<div class="muted">{html.escape(subtitle)}</div>
{warnings}
<h2>Per function and alias <span class="muted">(times in ms)</span></h2>
<table id="functions"><thead><tr><th>function</th><th>qualifier</th><th>calls</th><th>cold</th><th>cold %</th>
<th>prov.</th><th>INIT p50/p95/max</th><th>duration p50/p95/p99</th><th>e2e cold p50</th><th>e2e warm p50</th>
<th>gap</th><th>throttles</th><th>spillover</th></tr></thead><tbody>{"".join(rows)}</tbody></table>
<h2>Execution environments</h2>
<div class="legend">
<span><i class="sw" style="background:#f0a33a"></i>INIT</span>
<span><i class="sw" style="background:#d64541"></i>cold invocation (marked with a triangle)</span>
<span><i class="sw" style="background:#3b82c4"></i>warm</span>
<span><i class="sw" style="background:#2f9e6e"></i>provisioned</span></div>
<div class="muted">One row per environment{html.escape(caption)}.</div>
<svg id="timeline" role="img" aria-label="timeline of execution environments"></svg>
<h2>Cold vs warm end-to-end latency</h2>
<div id="latency" class="charts"></div>
{extra_sections}
<h2>Notes</h2><ul>{notes}<li class="muted">{html.escape(problem_text)}</li></ul>
<script type="application/json" id="report-data">{blob}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


def write_html(report: Report, path: Path) -> None:
    try:
        path.write_text(render_html(report), encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write --html {path}: {exc.strerror or exc}") from None
    LOG.info("wrote %s", path)
