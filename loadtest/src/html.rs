//! The HTML report (`--html-out`): one self-contained file, no network
//! requests. Summary tiles and tables are rendered here; the charts are
//! drawn in the browser by a small inline script (inline SVG sized to the
//! page, redrawn on resize) from the data embedded as JSON in the page:
//! latency over time, p99 per operation, answers per second by HTTP status
//! against the target, errors per second by code, the latency percentile
//! spectrum (HdrHistogram style), the latency histogram and the webhook
//! delay distribution. Per-second counts are drawn for whole seconds of
//! load only: the last, partial second and the answers that arrive after
//! the load stopped are reported beside the chart, not drawn as a drop.

use crate::audit::{AuditReport, Observed};
use crate::config::{Mode, Op};
use crate::hgrm;
use crate::meta::RunMeta;
use crate::report::{self, status_label, Summary};
use crate::stats::fmt_us;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Bins per decade of the latency and webhook-delay histograms.
pub const BINS_PER_DECADE: u32 = 10;

/// Log-spaced bins `(low, high, count)` covering every recorded value of
/// `h`, `per_decade` bins per power of ten, empty bins between the lowest
/// and the highest included (so the shape is drawn as it is).
pub fn log_bins(h: &Histogram<u64>, per_decade: u32) -> Vec<(f64, f64, u64)> {
    let per_decade = f64::from(per_decade.max(1));
    let mut counts: BTreeMap<i64, u64> = BTreeMap::new();
    for v in h.iter_recorded() {
        let value = v.value_iterated_to().max(1) as f64;
        let k = (value.log10() * per_decade + 1e-9).floor() as i64;
        *counts.entry(k).or_insert(0) += v.count_at_value();
    }
    let (Some(lo), Some(hi)) = (
        counts.keys().next().copied(),
        counts.keys().next_back().copied(),
    ) else {
        return Vec::new();
    };
    (lo..=hi)
        .map(|k| {
            (
                10f64.powf(k as f64 / per_decade),
                10f64.powf((k + 1) as f64 / per_decade),
                counts.get(&k).copied().unwrap_or(0),
            )
        })
        .collect()
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JSON that is safe inside a `<script>` element.
fn script_json(v: &Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The data the page's script draws from.
pub fn chart_data(summary: &Summary, observed: Option<&Observed>) -> Value {
    let s = summary;
    let t = &s.timeline;
    let codes: std::collections::BTreeSet<u16> =
        t.iter().flat_map(|k| k.statuses.keys().copied()).collect();
    let errors: std::collections::BTreeSet<&String> =
        t.iter().flat_map(|k| k.error_codes.keys()).collect();
    let mut spectrum = vec![
        json!({"label": "all (corrected)", "points": hgrm::spectrum(&s.hist_all)}),
        json!({"label": "all, uncorrected", "points": hgrm::spectrum(&s.hist_service), "dash": true}),
    ];
    for (op, h) in Op::ALL.iter().zip(&s.hist_ops) {
        if !h.is_empty() {
            spectrum.push(json!({"label": op.name(), "points": hgrm::spectrum(h)}));
        }
    }
    let webhook = observed.and_then(|o| o.webhooks.as_ref()).map(|log| {
        let d = &log.delay_ms;
        let q = |x: f64| {
            if d.is_empty() {
                0
            } else {
                d.value_at_quantile(x)
            }
        };
        json!({
            "bins": log_bins(d, BINS_PER_DECADE),
            "count": d.len(),
            "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999),
            "max": if d.is_empty() { 0 } else { d.max() },
        })
    });
    json!({
        "warmup": s.warmup_secs,
        "load_secs": s.load_secs,
        "target_rate": if s.mode == Mode::Open { json!(s.target_rate) } else { Value::Null },
        "timeline": {
            "span": t.iter().map(|k| k.span).collect::<Vec<_>>(),
            "p50": t.iter().map(|k| k.p50).collect::<Vec<_>>(),
            "p90": t.iter().map(|k| k.p90).collect::<Vec<_>>(),
            "p99": t.iter().map(|k| k.p99).collect::<Vec<_>>(),
            "max": t.iter().map(|k| k.max).collect::<Vec<_>>(),
            "completed": t.iter().map(|k| k.completed).collect::<Vec<_>>(),
            "op_p99": Op::ALL.iter().map(|op| (op.name().to_owned(), json!(t.iter().map(|k| k.op_p99[op.index()]).collect::<Vec<_>>()))).collect::<serde_json::Map<_, _>>(),
            "statuses": codes.iter().map(|c| json!({
                "code": status_label(*c),
                "counts": t.iter().map(|k| k.statuses.get(c).copied().unwrap_or(0)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "errors": errors.iter().map(|e| json!({
                "code": e,
                "counts": t.iter().map(|k| k.error_codes.get(*e).copied().unwrap_or(0)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        },
        "spectrum": spectrum,
        "histogram": log_bins(&s.hist_all, BINS_PER_DECADE),
        "webhook": webhook,
    })
}

fn tile(out: &mut String, class: &str, label: &str, value: &str, sub: &str) {
    // Error codes are long snake_case words: a narrow tile may break them
    // after an underscore, not in the middle of a word.
    let _ = write!(
        out,
        r#"<div class="tile {class}"><div class="label">{}</div><div class="value">{}</div><div class="sub">{}</div></div>"#,
        esc(label),
        esc(value),
        esc(sub).replace('_', "_<wbr>")
    );
}

/// The summary tiles: achieved rate, p50/p99/p99.9, errors, audit verdict,
/// schedule (late/missed), webhooks.
pub fn tiles(s: &Summary, audit: Option<&AuditReport>, observed: Option<&Observed>) -> String {
    let mut out = String::from(r#"<div class="tiles">"#);
    let target = match s.mode {
        Mode::Open => format!("target {}/s, open loop", s.target_rate),
        Mode::Closed => format!("closed loop, {} workers", s.concurrency),
    };
    let short = s.mode == Mode::Open && s.achieved_rate < f64::from(s.target_rate) * 0.95;
    tile(
        &mut out,
        if short { "warn" } else { "" },
        "achieved rate",
        &format!("{:.1}/s", s.achieved_rate),
        &format!("{target}; {:.1} ok/s", s.ok_rate),
    );
    for (label, v, u) in [
        ("p50", s.all.p50, s.service.p50),
        ("p99", s.all.p99, s.service.p99),
        ("p99.9", s.all.p999, s.service.p999),
    ] {
        tile(
            &mut out,
            "",
            &format!("{label} latency"),
            &fmt_us(v),
            &format!("uncorrected {}", fmt_us(u)),
        );
    }
    let errors: u64 = s.all.errors.values().sum();
    let share = if s.all.count == 0 {
        0.0
    } else {
        errors as f64 * 100.0 / s.all.count as f64
    };
    let mut top: Vec<(&String, &u64)> = s.all.errors.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1));
    let top = top
        .iter()
        .take(3)
        .map(|(c, n)| format!("{c} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    tile(
        &mut out,
        if errors > 0 { "bad" } else { "good" },
        "errors",
        &errors.to_string(),
        &if errors == 0 {
            format!("of {} requests in the window", s.all.count)
        } else {
            format!("{share:.2}% of {}; {top}", s.all.count)
        },
    );
    match audit {
        Some(a) if a.passed() => tile(
            &mut out,
            "good",
            "money audit",
            "PASSED",
            &format!(
                "{} pay-ins, {} payouts, {} ledger lines",
                a.checked.payins, a.checked.payouts, a.checked.ledger_entries
            ),
        ),
        Some(a) => tile(
            &mut out,
            "bad",
            "money audit",
            "FAILED",
            &format!("{} problems", a.problems.len()),
        ),
        None => tile(&mut out, "", "money audit", "not run", "--audit false"),
    }
    if s.mode == Mode::Open {
        tile(
            &mut out,
            if s.late + s.missed > 0 { "warn" } else { "" },
            "late / missed",
            &format!("{} / {}", s.late, s.missed),
            "sent > 10 ms after schedule / never sent",
        );
    }
    if let Some(log) = observed.and_then(|o| o.webhooks.as_ref()) {
        let d = &log.delay_ms;
        let q = |x: f64| {
            if d.is_empty() {
                0
            } else {
                d.value_at_quantile(x)
            }
        };
        tile(
            &mut out,
            "",
            "webhook delay p99",
            &format!("{} ms", q(0.99)),
            &format!("p50 {} ms; {} deliveries", q(0.5), log.received),
        );
    }
    out.push_str("</div>");
    out
}

fn op_table(s: &Summary) -> String {
    let mut out = String::from(
        "<table><thead><tr><th>operation</th><th>count</th><th>ok</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>errors</th></tr></thead><tbody>",
    );
    let rows = s
        .ops
        .iter()
        .map(|(op, l)| (op.name(), l))
        .chain([("all", &s.all), ("all, uncorrected", &s.service)]);
    for (name, l) in rows {
        let errors = l
            .errors
            .iter()
            .map(|(c, n)| format!("{c}={n}"))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            l.count,
            l.ok,
            fmt_us(l.p50),
            fmt_us(l.p90),
            fmt_us(l.p99),
            fmt_us(l.p999),
            fmt_us(l.max),
            esc(&errors)
        );
    }
    out.push_str("</tbody></table>");
    if !s.outcomes.is_empty() {
        let outcomes = s
            .outcomes
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = write!(
            out,
            "<p class=\"note\">Outcomes (all answers, warm-up included): {}</p>",
            esc(&outcomes)
        );
    }
    out
}

fn meta_line(meta: Option<&RunMeta>) -> String {
    let Some(m) = meta else {
        return String::new();
    };
    let load =
        |l: Option<[f64; 3]>| l.map_or("?".to_owned(), |[a, b, c]| format!("{a:.2} {b:.2} {c:.2}"));
    format!(
        "<p class=\"meta\">{} → {} · server {} {} (pid {}) · harness {} at <code>{}</code> · host {} ({} CPUs, Linux {}) · load average {} before, {} after</p>",
        esc(&m.started_at),
        esc(&m.finished_at),
        esc(&m.server.target),
        esc(m.server_version().map_or("version ?".to_owned(), |v| format!("v{v}")).as_str()),
        m.server.pid.map_or("?".to_owned(), |p| p.to_string()),
        esc(&m.harness_version),
        esc(m.harness_commit.get(..12).unwrap_or(&m.harness_commit)),
        esc(m.host.hostname.as_deref().unwrap_or("?")),
        m.host.cpus.map_or("?".to_owned(), |n| n.to_string()),
        esc(m.host.kernel.as_deref().unwrap_or("?")),
        load(m.host.load_before),
        load(m.host.load_after),
    )
}

/// The whole page. `hgrm_files`: names of the `.hgrm` files written next to it.
pub fn page(
    summary: &Summary,
    meta: Option<&RunMeta>,
    audit: Option<&AuditReport>,
    observed: Option<&Observed>,
    hgrm_files: &[String],
) -> String {
    let data = script_json(&chart_data(summary, observed));
    let text = report::text(summary, meta, audit, observed);
    let hgrm = if hgrm_files.is_empty() {
        String::new()
    } else {
        format!(
            "<p>Percentile distributions in HdrHistogram's text format, next to this file: {}.</p>",
            hgrm_files
                .iter()
                .map(|f| format!("<code>{}</code>", esc(f)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>tijori-loadtest report</title>
<style>{STYLE}</style>
</head><body>
<h1>tijori-loadtest</h1>
{meta}
{tiles}
<div class="charts">
<div class="chart wide" id="c-latency"></div>
<div class="chart wide" id="c-rate"></div>
<div class="chart" id="c-errors"></div>
<div class="chart" id="c-ops"></div>
<div class="chart" id="c-spectrum"></div>
<div class="chart" id="c-histogram"></div>
<div class="chart wide" id="c-webhooks"></div>
</div>
<noscript><p>The charts need JavaScript (inline, no network); the numbers are below.</p></noscript>
<h2>Per operation (measured window)</h2>
<div class="scroll">{ops}</div>
<p class="note">Latency runs from each request's scheduled send time (open loop: coordinated-omission corrected); "uncorrected" times the same requests from their actual send. {window}</p>
{hgrm}
<h2>Text report</h2>
<pre>{text}</pre>
<script id="report-data" type="application/json">{data}</script>
<script>{SCRIPT}</script>
</body></html>
"#,
        meta = meta_line(meta),
        tiles = tiles(summary, audit, observed),
        ops = op_table(summary),
        window = esc(report::WINDOW_NOTE),
        text = esc(&text),
    )
}

const STYLE: &str = r##"
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:16px 20px;color:#1d2430;background:#f5f6f8}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:24px 0 8px}
h3{font-size:14px;margin:0 0 4px;font-weight:600}
.meta{color:#5a6472;font-size:12px;margin:0 0 14px;line-height:1.5}
code{font-size:12px}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px;margin-bottom:14px}
.tile{background:#fff;border:1px solid #dde1e6;border-left:5px solid #8a94a3;border-radius:6px;padding:10px 12px;min-width:0}
.tile .label{font-size:12px;color:#5a6472;text-transform:uppercase;letter-spacing:.03em}
.tile .value{font-size:26px;font-weight:650;margin:2px 0;white-space:nowrap}
.tile .sub{font-size:12px;color:#5a6472;overflow-wrap:break-word}
.tile.good{border-left-color:#2e9e44}.tile.good .value{color:#1e7a31}
.tile.bad{border-left-color:#d62728}.tile.bad .value{color:#b71c1c}
.tile.warn{border-left-color:#e69500}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(520px,100%),1fr));gap:12px}
.chart{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:10px 12px;min-width:0}
.chart.wide{grid-column:1/-1}
.chart svg{display:block;max-width:100%;height:auto}
.chart .note{font-size:12px;color:#5a6472;margin:4px 0 0}
.legend{display:flex;flex-wrap:wrap;gap:2px 12px;font-size:12px;margin:2px 0 4px}
.legend i{display:inline-block;width:14px;height:3px;margin-right:4px;vertical-align:middle}
.legend i.box{height:10px}
.legend i.dash{background:repeating-linear-gradient(90deg,currentColor 0 4px,transparent 4px 7px)!important}
.scroll{overflow-x:auto}
table{border-collapse:collapse;background:#fff;font-size:13px}
th,td{border:1px solid #dde1e6;padding:4px 8px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
p.note{font-size:12px;color:#5a6472;max-width:1100px}
pre{background:#fff;border:1px solid #dde1e6;padding:12px;overflow-x:auto;font-size:12px}
@media (max-width:600px){body{padding:10px}.charts{grid-template-columns:1fr}.tile .value{font-size:21px}}
"##;

const SCRIPT: &str = r##"
"use strict";
const D = JSON.parse(document.getElementById("report-data").textContent);
const NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];
function trim(text) { return text.indexOf(".") < 0 ? text : text.replace(/\.?0+$/, ""); }
function fmtUs(us) {
  if (us >= 1e6) return trim((us / 1e6).toFixed(us >= 1e7 ? 1 : 2)) + " s";
  if (us >= 1e3) return trim((us / 1e3).toFixed(us >= 1e4 ? 1 : 2)) + " ms";
  return Math.round(us) + " µs";
}
function fmtMs(ms) { return fmtUs(ms * 1000); }
function fmtN(n) {
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(0) + "k";
  if (n >= 1e3) return (n / 1e3).toFixed(1) + "k";
  return String(Math.round(n * 100) / 100);
}
function niceStep(span, n) {
  const raw = span / Math.max(1, n);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const m = raw / p;
  return (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * p;
}
function ticks(lo, hi, n) {
  if (!(hi > lo)) return [lo];
  const step = niceStep(hi - lo, n), out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(10));
  return out;
}
function el(tag, attrs, parent) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
function tip(e, text) { el("title", {}, e).textContent = text; }
function statusColor(code) {
  const c = Number(code);
  if (code === "none") return "#7f7f7f";
  if (c === 200) return "#2ca02c";
  if (c === 201) return "#74c476";
  if (c < 300) return "#a1d99b";
  if (c === 429) return "#ffbb78";
  if (c < 500) return "#ff7f0e";
  return "#d62728";
}
// One chart: c = {title, note, x:{min,max,log,ticks,fmt}, y:{log,fmt,max},
// lines:[{label,color,pts:[[x,y]],dash}], bars:[{x0,x1,y0,y1,color,tip}],
// legend:[{label,color,box,dash}], band:{x0,x1,label}, empty}
function plot(box, c) {
  box.textContent = "";
  const h3 = document.createElement("h3");
  h3.textContent = c.title;
  box.appendChild(h3);
  const legend = document.createElement("div");
  legend.className = "legend";
  for (const l of c.legend || []) {
    const s = document.createElement("span");
    const i = document.createElement("i");
    i.style.background = l.color;
    i.style.color = l.color;
    if (l.box) i.className = "box";
    if (l.dash) i.className = "dash";
    s.appendChild(i);
    s.appendChild(document.createTextNode(l.label));
    legend.appendChild(s);
  }
  box.appendChild(legend);
  const W = Math.max(240, box.clientWidth - 24);
  const H = c.empty ? 90 : Math.round(Math.min(300, Math.max(190, W * 0.4)));
  const svg = el("svg", {width: W, height: H, viewBox: "0 0 " + W + " " + H, "font-size": 11, "font-family": "system-ui,sans-serif"}, box);
  if (c.note) {
    const p = document.createElement("p");
    p.className = "note";
    p.textContent = c.note;
    box.appendChild(p);
  }
  if (c.empty) {
    const t = el("text", {x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#5a6472", "font-size": 13}, svg);
    t.textContent = c.empty;
    return;
  }
  const m = {l: W < 480 ? 48 : 60, r: 10, t: 8, b: 30};
  const pw = W - m.l - m.r, ph = H - m.t - m.b;
  const tx = c.x.log ? (v) => Math.log10(v) : (v) => v;
  const x0 = tx(c.x.min), x1 = tx(c.x.max);
  const X = (v) => m.l + pw * (tx(v) - x0) / ((x1 - x0) || 1);
  let ymax = 0, ymin = Infinity;
  for (const l of c.lines || []) for (const p of l.pts) if (p[1] > 0) { ymax = Math.max(ymax, p[1]); ymin = Math.min(ymin, p[1]); }
  for (const b of c.bars || []) if (b.y1 > 0) { ymax = Math.max(ymax, b.y1); ymin = Math.min(ymin, b.y1); }
  if (c.y.max) ymax = Math.max(ymax, c.y.max);
  if (ymax <= 0) ymax = 1;
  let ylo, yhi, ty, yt;
  if (c.y.log) {
    // From the decade below the smallest value to a little above the
    // largest; ticks at 1, 2, 5 × 10^n (only 1 × 10^n over many decades).
    ylo = Math.floor(Math.log10(Math.min(ymin, ymax)));
    yhi = Math.max(ylo + 1, Math.log10(ymax) + 0.08);
    ty = (v) => Math.log10(Math.max(v, Math.pow(10, ylo)));
    yt = [];
    const steps = yhi - ylo > 4 || ph < 150 ? [1] : [1, 2, 5];
    for (let d = ylo; d <= Math.ceil(yhi); d++) {
      for (const k of steps) {
        const v = k * Math.pow(10, d);
        if (Math.log10(v) <= yhi + 1e-9) yt.push(v);
      }
    }
  } else {
    const step = niceStep(ymax * 1.05, Math.max(2, Math.floor(ph / 45)));
    ylo = 0;
    yhi = Math.ceil(ymax * 1.05 / step) * step;
    ty = (v) => v;
    yt = ticks(0, yhi, Math.max(2, Math.floor(ph / 45)));
  }
  const Y = (v) => m.t + ph * (1 - Math.min(1, Math.max(0, (ty(v) - ylo) / ((yhi - ylo) || 1))));
  if (c.band && c.band.x1 > c.band.x0) {
    const bx0 = X(Math.max(c.band.x0, c.x.min)), bx1 = X(Math.min(c.band.x1, c.x.max));
    el("rect", {x: bx0, y: m.t, width: Math.max(0, bx1 - bx0), height: ph, fill: "#eef0f3"}, svg);
    const t = el("text", {x: bx0 + 4, y: m.t + 12, fill: "#8a94a3"}, svg);
    t.textContent = c.band.label;
  }
  const yfmt = c.y.fmt || fmtN;
  for (const v of yt) {
    const yy = Y(v);
    el("line", {x1: m.l, x2: m.l + pw, y1: yy, y2: yy, stroke: "#e3e6ea"}, svg);
    const t = el("text", {x: m.l - 5, y: yy + 4, "text-anchor": "end", fill: "#444"}, svg);
    t.textContent = yfmt(v);
  }
  // A log axis: ticks at 1, 2, 5 × 10^n when the labels have room (about
  // 55 px between 1 and 2), else at powers of ten only, so that a range of
  // less than two decades (webhook delays of 2-60 ms) still reads.
  const xt = c.x.ticks || (c.x.log
    ? (() => {
      const a = [], steps = Math.log10(2) * pw / ((x1 - x0) || 1) >= 55 ? [1, 2, 5] : [1];
      for (let d = Math.floor(x0); d <= Math.ceil(x1); d++) {
        for (const k of steps) {
          const v = k * Math.pow(10, d);
          if (Math.log10(v) >= x0 - 1e-9 && Math.log10(v) <= x1 + 1e-9) a.push([v]);
        }
      }
      return a;
    })()
    : ticks(c.x.min, c.x.max, Math.max(2, Math.floor(pw / 70))).map((v) => [v]));
  for (const [v, label] of xt) {
    const xx = X(v);
    if (xx < m.l - 0.5 || xx > m.l + pw + 0.5) continue;
    el("line", {x1: xx, x2: xx, y1: m.t, y2: m.t + ph, stroke: "#f0f2f4"}, svg);
    const anchor = xx > m.l + pw - 24 ? "end" : "middle";
    const t = el("text", {x: xx, y: m.t + ph + 15, "text-anchor": anchor, fill: "#444"}, svg);
    t.textContent = label !== undefined ? label : (c.x.fmt || fmtN)(v);
  }
  if (c.x.label) {
    const t = el("text", {x: m.l + pw, y: H - 2, "text-anchor": "end", fill: "#5a6472"}, svg);
    t.textContent = c.x.label;
  }
  for (const b of c.bars || []) {
    if (!(b.y1 > (b.y0 || 0))) continue;
    const xa = X(b.x0), xb = X(b.x1);
    const ya = Y(b.y1), yb = b.y0 ? Y(b.y0) : m.t + ph;
    const r = el("rect", {x: xa, y: ya, width: Math.max(1, xb - xa), height: Math.max(0.5, yb - ya), fill: b.color}, svg);
    if (b.tip) tip(r, b.tip);
  }
  for (const l of c.lines || []) {
    let d = "", pen = false;
    for (const p of l.pts) {
      if (p[1] === null || (c.y.log && !(p[1] > 0)) || p[0] < c.x.min || p[0] > c.x.max) { pen = false; continue; }
      d += (pen ? "L" : "M") + X(p[0]).toFixed(1) + " " + Y(p[1]).toFixed(1);
      pen = true;
    }
    if (d) el("path", {d: d, fill: "none", stroke: l.color, "stroke-width": l.width || 1.6, "stroke-dasharray": l.dash ? "5 3" : "none", "stroke-linejoin": "round"}, svg);
    if (l.pts.length <= 400) {
      for (const p of l.pts) {
        if (p[1] === null || !(p[1] > 0) || p[0] < c.x.min || p[0] > c.x.max) continue;
        const dot = el("circle", {cx: X(p[0]), cy: Y(p[1]), r: 3, fill: l.color, "fill-opacity": 0.01}, svg);
        tip(dot, l.label + ": " + (l.tip ? l.tip(p) : yfmt(p[1])));
      }
    }
  }
  el("rect", {x: m.l, y: m.t, width: pw, height: ph, fill: "none", stroke: "#aab2bd"}, svg);
}

const T = D.timeline;
const N = T.span.length;
const whole = T.span.filter((s) => s >= 1).length;
const band = D.warmup > 0 ? {x0: 0, x1: D.warmup, label: "warm-up"} : null;
const secondsAxis = {min: 0, max: Math.max(1, Math.ceil(D.load_secs || N)), fmt: (v) => v + " s", label: "second of the run"};
function series(values, label, color, extra) {
  return Object.assign({label: label, color: color, pts: values.map((v, i) => [i + 0.5, v > 0 ? v : null])}, extra || {});
}

function drawLatency(box) {
  const lines = [series(T.p50, "p50", PALETTE[0]), series(T.p90, "p90", PALETTE[2]), series(T.p99, "p99", PALETTE[1]), series(T.max, "max", "#555")];
  plot(box, {title: "Latency over time, all operations (by scheduled second, log scale)", x: secondsAxis, y: {log: true, fmt: fmtUs},
    lines: lines, legend: lines, band: band, empty: N ? null : "no requests"});
}
function drawOps(box) {
  const lines = Object.keys(T.op_p99).map((op, i) => series(T.op_p99[op], op + " p99", PALETTE[i])).filter((l) => l.pts.some((p) => p[1]));
  plot(box, {title: "p99 per operation over time (log scale)", x: secondsAxis, y: {log: true, fmt: fmtUs}, lines: lines, legend: lines, band: band,
    empty: lines.length ? null : "no requests"});
}
function stacked(layers, colorOf) {
  const bars = [], base = new Array(N).fill(0);
  for (const layer of layers) {
    layer.counts.forEach((n, i) => {
      if (T.span[i] < 1 || !n) return;
      bars.push({x0: i + 0.06, x1: i + 0.94, y0: base[i], y1: base[i] + n, color: colorOf(layer), tip: "second " + i + ": " + layer.code + " × " + n});
      base[i] += n;
    });
  }
  return bars;
}
function tailNote() {
  let after = 0;
  T.completed.forEach((n, i) => { if (T.span[i] < 1) after += n; });
  if (!after) return null;
  const partial = N > whole && T.span[whole] > 0;
  return "Not drawn: the " + after + " answers that arrived " +
    (partial ? "in the last, partial second (" + T.span[whole].toFixed(2) + " s of load) or " : "") +
    "after the load stopped (still counted in the totals).";
}
function drawRate(box) {
  const bars = stacked(T.statuses, (l) => statusColor(l.code));
  const legend = T.statuses.map((l) => ({label: "HTTP " + l.code, color: statusColor(l.code), box: true}));
  const lines = [];
  if (D.target_rate) {
    lines.push({label: "target", color: "#333", dash: true, pts: [[0, D.target_rate], [whole, D.target_rate]]});
    legend.push({label: "target " + D.target_rate + "/s", color: "#333", dash: true});
  }
  plot(box, {title: "Answers per second by HTTP status (by arrival second)", x: {min: 0, max: Math.max(1, whole), fmt: (v) => v + " s", label: "second of the run"},
    y: {log: false, max: D.target_rate || 0}, bars: bars, lines: lines, legend: legend, band: band, note: tailNote(),
    empty: whole ? null : "the load lasted less than a whole second"});
}
function drawErrors(box) {
  const layers = T.errors;
  let after = 0;
  for (const l of layers) l.counts.forEach((n, i) => { if (T.span[i] < 1) after += n; });
  const colors = {};
  layers.forEach((l, i) => { colors[l.code] = PALETTE[(i + 1) % PALETTE.length]; });
  const bars = stacked(layers, (l) => colors[l.code]);
  plot(box, {title: "Errors per second by code (by arrival second)", x: {min: 0, max: Math.max(1, whole), fmt: (v) => v + " s", label: "second of the run"},
    y: {log: false}, bars: bars, legend: layers.map((l) => ({label: l.code, color: colors[l.code], box: true})), band: band,
    note: after ? "Not drawn: " + after + " errors that arrived in the last, partial second or after the load stopped." : null,
    empty: layers.length ? (bars.length ? null : "errors only in the partial last second or after the load") : "no errors"});
}
function drawSpectrum(box) {
  const colors = [PALETTE[0], "#555", PALETTE[2], PALETTE[1], PALETTE[3], PALETTE[4], PALETTE[5]];
  let maxX = 1;
  for (const s of D.spectrum) for (const p of s.points) if (p[0] < 1) maxX = Math.max(maxX, -Math.log10(1 - p[0]));
  maxX = Math.ceil(maxX + 0.25);
  const lines = D.spectrum.map((s, i) => ({label: s.label, color: colors[i % colors.length], dash: !!s.dash, width: i === 0 ? 2.4 : 1.4,
    pts: s.points.map((p) => [p[0] < 1 ? -Math.log10(1 - p[0]) : maxX, p[1]]),
    tip: (p) => fmtUs(p[1])}));
  const labels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%", "99.99999%"];
  const xt = [];
  for (let d = 0; d <= maxX; d++) xt.push([d, labels[d] || ("1-1e-" + d)]);
  plot(box, {title: "Latency by percentile (HdrHistogram spectrum, measured window)", x: {min: 0, max: maxX, ticks: xt, label: "percentile"},
    y: {log: true, fmt: fmtUs}, lines: lines, legend: lines, empty: D.spectrum[0].points.length ? null : "no requests"});
}
function drawHistogram(box) {
  const bins = D.histogram;
  const bars = bins.map((b) => ({x0: b[0], x1: b[1], y1: b[2], color: PALETTE[0], tip: fmtUs(b[0]) + "–" + fmtUs(b[1]) + ": " + b[2]}));
  plot(box, {title: "Latency histogram, all operations (measured window, log-spaced bins)",
    x: {log: true, min: bins.length ? bins[0][0] : 1, max: bins.length ? bins[bins.length - 1][1] : 10, fmt: fmtUs, label: "latency"},
    y: {log: false}, bars: bars, legend: [{label: "requests per bin", color: PALETTE[0], box: true}], empty: bins.length ? null : "no requests"});
}
function drawWebhooks(box) {
  const w = D.webhook;
  if (!w) { plot(box, {title: "Webhook delivery delay", empty: "no webhook sink in this run (--webhook-sink)"}); return; }
  const bins = w.bins;
  const bars = bins.map((b) => ({x0: b[0], x1: b[1], y1: b[2], color: PALETTE[3], tip: fmtMs(b[0]) + "–" + fmtMs(b[1]) + ": " + b[2]}));
  plot(box, {title: "Webhook delivery delay (receipt − event timestamp, first delivery of each event)",
    x: {log: true, min: bins.length ? bins[0][0] : 1, max: bins.length ? bins[bins.length - 1][1] : 10, fmt: fmtMs, label: "delay"},
    y: {log: false}, bars: bars, legend: [{label: "events per bin", color: PALETTE[3], box: true}],
    note: w.count + " events: p50 " + fmtMs(w.p50) + ", p90 " + fmtMs(w.p90) + ", p99 " + fmtMs(w.p99) + ", p99.9 " + fmtMs(w.p999) + ", max " + fmtMs(w.max),
    empty: bins.length ? null : "no webhook received"});
}
const CHARTS = [["c-latency", drawLatency], ["c-rate", drawRate], ["c-spectrum", drawSpectrum], ["c-histogram", drawHistogram],
  ["c-ops", drawOps], ["c-errors", drawErrors], ["c-webhooks", drawWebhooks]];
function drawAll() { for (const [id, f] of CHARTS) { const box = document.getElementById(id); if (box) f(box); } }
drawAll();
// Redraw when the page width changes (not on the height changes a redraw makes).
let drawnWidth = document.body.clientWidth, pending = null;
new ResizeObserver(() => {
  if (document.body.clientWidth === drawnWidth) return;
  clearTimeout(pending);
  pending = setTimeout(() => { drawnWidth = document.body.clientWidth; drawAll(); }, 100);
}).observe(document.body);
"##;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{histogram, MAX_US};

    #[test]
    fn log_bins_cover_every_value_once() {
        let mut h = histogram(MAX_US, 3);
        for v in [1u64, 9, 10, 11, 99, 100, 1_000, 1_000, 12_345, 120_000] {
            let _ = h.record(v);
        }
        let bins = log_bins(&h, 10);
        assert_eq!(bins.iter().map(|b| b.2).sum::<u64>(), h.len());
        // Contiguous from 10^0 to past the max, ten bins a decade.
        assert!((bins[0].0 - 1.0).abs() < 1e-9);
        assert!(bins.windows(2).all(|w| (w[0].1 - w[1].0).abs() < 1e-6));
        assert_eq!(bins.len(), 51);
        let last = bins.last().copied().unwrap_or_default();
        assert!(last.0 <= 120_000.0 && 120_000.0 < last.1 * 1.0001);
        // 10 is the first value of its decade's first bin (not the last
        // bin of the one before), and the two 1,000s share a bin.
        let bin_of = |v: f64| bins.iter().position(|b| b.0 <= v * 1.000_001 && v < b.1);
        assert_eq!(bins[bin_of(10.0).unwrap_or(0)].2, 2); // 10 and 11
        assert_eq!(bins[bin_of(1_000.0).unwrap_or(0)].2, 2);
        assert!(log_bins(&histogram(MAX_US, 3), 10).is_empty());
    }

    #[test]
    fn tiles_escape_text_and_break_codes_only_after_underscores() {
        let mut out = String::new();
        tile(
            &mut out,
            "bad",
            "errors",
            "3",
            "<b> invalid_status_transition 3",
        );
        assert!(out.contains("&lt;b&gt; invalid_<wbr>status_<wbr>transition 3"));
        assert!(!out.contains("<b>"));
    }

    #[test]
    fn script_json_cannot_close_the_script() {
        let v = json!({"code": "</script><script>alert(1)</script>"});
        let text = script_json(&v);
        assert!(!text.contains("</script"));
        let back: Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back, v);
    }
}
