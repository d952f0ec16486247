//! Reports: the run's summary (per-operation latency percentiles, rates,
//! errors by code, schedule counters, per-second timeline), the audit and
//! webhook results, as text (stdout), JSON (`--json-out`) and a
//! self-contained HTML page with inline SVG plots (`--html-out`).

use crate::audit::{AuditReport, Observed};
use crate::config::{Config, Mode, Op};
use crate::stats::{fmt_us, histogram, Stats, MAX_US};
use crate::util::lock;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

/// Latency percentiles of one operation (µs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

fn latency_of(h: &Histogram<u64>, ok: u64, errors: BTreeMap<String, u64>) -> Latency {
    let q = |x: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(x)
        }
    };
    Latency {
        count: h.len(),
        ok,
        errors,
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        p999: q(0.999),
        max: if h.is_empty() { 0 } else { h.max() },
        mean: if h.is_empty() { 0.0 } else { h.mean() },
    }
}

/// One second of the timeline (all operations), µs.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    pub second: u64,
    /// Requests scheduled in this second that were answered.
    pub answered: u64,
    /// Answers that arrived in this second.
    pub completed: u64,
    pub errors: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    /// p99 per operation (0: none that second).
    pub op_p99: [u64; 5],
}

#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub mode: Mode,
    pub target_rate: u32,
    pub concurrency: u32,
    pub merchants: u32,
    pub api_users_per_merchant: u32,
    pub warmup_secs: u64,
    pub duration_secs: u64,
    /// Loopback addresses of the webhook sink (0: no sink).
    pub sink_hosts: u32,
    pub sent: u64,
    pub answered: u64,
    pub scheduled_measured: u64,
    pub answered_measured: u64,
    pub late: u64,
    pub missed: u64,
    pub skipped: [u64; 5],
    /// Answers to measured requests per second of the window (until the last answer).
    pub achieved_rate: f64,
    /// 2xx answers per second, same window.
    pub ok_rate: f64,
    pub window_secs: f64,
    pub ops: Vec<(Op, Latency)>,
    pub all: Latency,
    /// Latency from the actual send (no coordinated-omission correction).
    pub service: Latency,
    pub timeline: Vec<Tick>,
}

impl Summary {
    pub fn from_stats(cfg: &Config, stats: &Stats) -> Summary {
        let mut all = histogram(MAX_US, 3);
        let mut all_errors: BTreeMap<String, u64> = BTreeMap::new();
        let mut all_ok = 0;
        let mut ops = Vec::new();
        for op in Op::ALL {
            let s = lock(&stats.ops[op.index()]);
            let _ = all.add(&s.latency);
            all_ok += s.ok;
            for (code, n) in &s.errors {
                *all_errors.entry(code.clone()).or_insert(0) += n;
            }
            ops.push((op, latency_of(&s.latency, s.ok, s.errors.clone())));
        }
        let service = latency_of(&lock(&stats.service), 0, BTreeMap::new());
        let answered_measured = stats.done_measured.load(Ordering::Relaxed);
        // From the start of measuring to the last measured answer (a run
        // cut short by --max-requests has a shorter window).
        let window_secs = lock(&stats.last_done)
            .map(|t| {
                t.saturating_duration_since(stats.measure_from)
                    .as_secs_f64()
            })
            .unwrap_or(0.0)
            .max(1e-3);
        let timeline = lock(&stats.timeline)
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut h = histogram(MAX_US, 2);
                for op in &s.latency {
                    let _ = h.add(op);
                }
                let q = |x: f64| {
                    if h.is_empty() {
                        0
                    } else {
                        h.value_at_quantile(x)
                    }
                };
                Tick {
                    second: i as u64,
                    answered: h.len(),
                    completed: s.completed,
                    errors: s.errors,
                    p50: q(0.5),
                    p90: q(0.9),
                    p99: q(0.99),
                    max: if h.is_empty() { 0 } else { h.max() },
                    op_p99: std::array::from_fn(|o| {
                        let oh = &s.latency[o];
                        if oh.is_empty() {
                            0
                        } else {
                            oh.value_at_quantile(0.99)
                        }
                    }),
                }
            })
            .collect();
        Summary {
            mode: cfg.mode,
            target_rate: cfg.rate,
            concurrency: cfg.concurrency,
            merchants: cfg.merchants,
            api_users_per_merchant: cfg.api_users_per_merchant,
            warmup_secs: cfg.warmup_secs,
            duration_secs: cfg.duration_secs,
            sink_hosts: match (cfg.webhook_sink, cfg.webhook_sink_hosts) {
                (false, _) => 0,
                (true, 0) => cfg.merchants.min(1_000),
                (true, n) => n,
            },
            sent: stats.sent.load(Ordering::Relaxed),
            answered: stats.done.load(Ordering::Relaxed),
            scheduled_measured: stats.scheduled_measured.load(Ordering::Relaxed),
            answered_measured,
            late: stats.late.load(Ordering::Relaxed),
            missed: stats.missed.load(Ordering::Relaxed),
            skipped: std::array::from_fn(|i| stats.skipped[i].load(Ordering::Relaxed)),
            achieved_rate: answered_measured as f64 / window_secs,
            ok_rate: all_ok as f64 / window_secs,
            window_secs,
            ops,
            all: latency_of(&all, all_ok, all_errors),
            service,
            timeline,
        }
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1_000.0
}

fn latency_json(l: &Latency) -> Value {
    json!({
        "count": l.count, "ok": l.ok, "errors": l.errors,
        "p50_ms": ms(l.p50), "p90_ms": ms(l.p90), "p99_ms": ms(l.p99),
        "p999_ms": ms(l.p999), "max_ms": ms(l.max), "mean_ms": l.mean / 1_000.0,
    })
}

/// The text report for stdout.
pub fn text(summary: &Summary, audit: Option<&AuditReport>, observed: Option<&Observed>) -> String {
    let mut out = String::new();
    let s = summary;
    let _ = writeln!(out, "== tijori-loadtest");
    let _ = match s.mode {
        Mode::Open => writeln!(
            out,
            "mode open loop, target {} req/s, {} merchants x {} api_users, warm-up {} s, measured {} s",
            s.target_rate, s.merchants, s.api_users_per_merchant, s.warmup_secs, s.duration_secs
        ),
        Mode::Closed => writeln!(
            out,
            "mode closed loop, {} workers, {} merchants x {} api_users, warm-up {} s, measured {} s",
            s.concurrency, s.merchants, s.api_users_per_merchant, s.warmup_secs, s.duration_secs
        ),
    };
    let _ = writeln!(
        out,
        "achieved {:.1} req/s ({:.1} ok/s) over {:.2} s; sent {} in all, {} in the window; late {} (> 10 ms behind schedule), missed {}, skipped {}",
        s.achieved_rate,
        s.ok_rate,
        s.window_secs,
        s.sent,
        s.scheduled_measured,
        s.late,
        s.missed,
        Op::ALL
            .iter()
            .filter(|op| s.skipped[op.index()] > 0)
            .map(|op| format!("{}={}", op.name(), s.skipped[op.index()]))
            .collect::<Vec<_>>()
            .join(",")
    );
    let _ = writeln!(
        out,
        "{:<8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}  errors",
        "op", "count", "ok", "p50", "p90", "p99", "p99.9", "max"
    );
    for (op, l) in s
        .ops
        .iter()
        .map(|(o, l)| (o.name(), l))
        .chain([("all", &s.all)])
    {
        let errors = l
            .errors
            .iter()
            .map(|(c, n)| format!("{c}={n}"))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = writeln!(
            out,
            "{:<8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}  {}",
            op,
            l.count,
            l.ok,
            fmt_us(l.p50),
            fmt_us(l.p90),
            fmt_us(l.p99),
            fmt_us(l.p999),
            fmt_us(l.max),
            errors
        );
    }
    let _ = writeln!(
        out,
        "uncorrected (from the actual send): p50 {} p99 {} max {}",
        fmt_us(s.service.p50),
        fmt_us(s.service.p99),
        fmt_us(s.service.max)
    );
    if let Some(o) = observed {
        let _ = writeln!(
            out,
            "settlement: {} after {:.1} s",
            if o.settled { "done" } else { "NOT done" },
            o.settle_wait.as_secs_f64()
        );
        if let Some(log) = &o.webhooks {
            let d = &log.delay_ms;
            let q = |x: f64| {
                if d.is_empty() {
                    0
                } else {
                    d.value_at_quantile(x)
                }
            };
            let _ = writeln!(
                out,
                "webhooks ({} sink hosts): {} deliveries, {} events with a record, {} other, {} duplicates, {} bad signatures; delay p50 {} ms p99 {} ms max {} ms (waited {:.1} s)",
                s.sink_hosts,
                log.received,
                log.records.len(),
                log.other_events,
                log.duplicates(),
                log.bad_signatures.len(),
                q(0.5),
                q(0.99),
                if d.is_empty() { 0 } else { d.max() },
                o.webhook_wait.as_secs_f64()
            );
        }
    }
    if let Some(a) = audit {
        let c = &a.checked;
        let _ = writeln!(
            out,
            "audit: {} merchants, {} pay-ins, {} payouts acknowledged, {} unanswered found ({} absent), {} ledger lines, {} ledger accounts; statuses {}",
            c.merchants,
            c.payins,
            c.payouts,
            c.adopted,
            c.absent,
            c.ledger_entries,
            c.ledger_accounts,
            c.statuses
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        if a.passed() {
            let _ = writeln!(out, "audit: PASSED");
        } else {
            let _ = writeln!(
                out,
                "audit: FAILED, {} problems ({})",
                a.problems.len(),
                a.by_kind()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            for p in a.problems.iter().take(30) {
                let _ = writeln!(out, "  - {p}");
            }
            if a.problems.len() > 30 {
                let _ = writeln!(out, "  … {} more", a.problems.len() - 30);
            }
        }
    }
    out
}

pub fn json(summary: &Summary, audit: Option<&AuditReport>, observed: Option<&Observed>) -> Value {
    let s = summary;
    let webhooks = observed.and_then(|o| o.webhooks.as_ref()).map(|log| {
        let d = &log.delay_ms;
        let q = |x: f64| if d.is_empty() { 0 } else { d.value_at_quantile(x) };
        json!({
            "deliveries": log.received, "events_with_record": log.records.len(),
            "other_events": log.other_events, "duplicates": log.duplicates(),
            "bad_signatures": log.bad_signatures.len(),
            "delay_ms": { "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": if d.is_empty() { 0 } else { d.max() } },
        })
    });
    json!({
        "mode": match s.mode { Mode::Open => "open", Mode::Closed => "closed" },
        "target_rate": if s.mode == Mode::Open { json!(s.target_rate) } else { Value::Null },
        "concurrency": if s.mode == Mode::Closed { json!(s.concurrency) } else { Value::Null },
        "merchants": s.merchants,
        "api_users_per_merchant": s.api_users_per_merchant,
        "warmup_secs": s.warmup_secs,
        "webhook_sink_hosts": s.sink_hosts,
        "duration_secs": s.duration_secs,
        "window_secs": s.window_secs,
        "achieved_rate": s.achieved_rate,
        "ok_rate": s.ok_rate,
        "sent": s.sent,
        "answered": s.answered,
        "sent_in_window": s.scheduled_measured,
        "answered_in_window": s.answered_measured,
        "late": s.late,
        "missed": s.missed,
        "skipped": Op::ALL.iter().map(|op| (op.name().to_owned(), json!(s.skipped[op.index()]))).collect::<serde_json::Map<_, _>>(),
        "operations": s.ops.iter().map(|(op, l)| (op.name().to_owned(), latency_json(l))).collect::<serde_json::Map<_, _>>(),
        "all": latency_json(&s.all),
        "uncorrected": latency_json(&s.service),
        "timeline": s.timeline.iter().map(|t| json!({
            "second": t.second, "answered": t.answered, "completed": t.completed, "errors": t.errors,
            "p50_ms": ms(t.p50), "p90_ms": ms(t.p90), "p99_ms": ms(t.p99), "max_ms": ms(t.max),
        })).collect::<Vec<_>>(),
        "settled": observed.map(|o| o.settled),
        "settle_wait_secs": observed.map(|o| o.settle_wait.as_secs_f64()),
        "webhooks": webhooks,
        "audit": audit.map(|a| json!({
            "passed": a.passed(),
            "problems": a.problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "problems_by_kind": a.by_kind(),
            "payins": a.checked.payins, "payouts": a.checked.payouts,
            "adopted": a.checked.adopted, "absent": a.checked.absent,
            "ledger_entries": a.checked.ledger_entries,
            "ledger_accounts": a.checked.ledger_accounts, "statuses": a.checked.statuses,
        })),
    })
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const COLORS: [&str; 5] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];

/// An SVG line chart: `series` of (label, colour, values per second); log
/// scale (µs) or linear.
fn chart(
    title: &str,
    seconds: usize,
    warmup: u64,
    series: &[(String, &str, Vec<u64>)],
    log_scale: bool,
    unit: &str,
) -> String {
    let (w, h, left, right, top, bottom) = (900.0, 320.0, 70.0, 150.0, 30.0, 40.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max_v = series
        .iter()
        .flat_map(|s| s.2.iter().copied())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let (lo, hi) = if log_scale {
        let min_v = series
            .iter()
            .flat_map(|s| s.2.iter().copied())
            .filter(|v| *v > 0)
            .min()
            .unwrap_or(1) as f64;
        (
            min_v.log10().floor(),
            max_v.log10().ceil().max(min_v.log10().floor() + 1.0),
        )
    } else {
        (0.0, max_v * 1.1)
    };
    let y = |v: f64| {
        let t = if log_scale {
            (v.max(1.0).log10() - lo) / (hi - lo)
        } else {
            v / hi
        };
        top + plot_h * (1.0 - t.clamp(0.0, 1.0))
    };
    let span = seconds.max(2) as f64 - 1.0;
    let x = |i: usize| left + plot_w * (i as f64 / span);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        svg,
        r#"<text x="{left}" y="18" font-size="13" font-weight="bold">{}</text>"#,
        esc(title)
    );
    if warmup > 0 {
        let wx = x((warmup as usize).min(seconds.saturating_sub(1)));
        let _ = write!(
            svg,
            r##"<rect x="{left}" y="{top}" width="{:.1}" height="{plot_h}" fill="#eeeeee"/><text x="{:.1}" y="{:.1}" fill="#888">warm-up</text>"##,
            (wx - left).max(0.0),
            left + 4.0,
            top + 12.0
        );
    }
    // Grid and labels.
    if log_scale {
        let mut d = lo;
        while d <= hi {
            let yy = y(10f64.powf(d));
            let _ = write!(
                svg,
                r##"<line x1="{left}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                left + plot_w,
                left - 6.0,
                yy + 4.0,
                fmt_us(10f64.powf(d) as u64)
            );
            d += 1.0;
        }
    } else {
        for k in 0..=4 {
            let v = hi * f64::from(k) / 4.0;
            let yy = y(v);
            let _ = write!(
                svg,
                r##"<line x1="{left}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{:.0}{unit}</text>"##,
                left + plot_w,
                left - 6.0,
                yy + 4.0,
                v
            );
        }
    }
    let step = (seconds / 10).max(1);
    for i in (0..seconds).step_by(step) {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{i}s</text>"#,
            x(i),
            top + plot_h + 16.0
        );
    }
    let _ = write!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>"##
    );
    for (n, (label, color, values)) in series.iter().enumerate() {
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| **v > 0 || !log_scale)
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v as f64)))
            .collect();
        if !points.is_empty() {
            let _ = write!(
                svg,
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
                points.join(" ")
            );
        }
        let ly = top + 14.0 * n as f64 + 8.0;
        let lx = left + plot_w + 12.0;
        let _ = write!(
            svg,
            r#"<line x1="{lx:.1}" x2="{:.1}" y1="{ly:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 16.0,
            lx + 20.0,
            ly + 4.0,
            esc(label)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A self-contained HTML page: the summary table and three inline SVG
/// charts (latency percentiles, p99 per operation, answers per second).
pub fn html(summary: &Summary, audit: Option<&AuditReport>, observed: Option<&Observed>) -> String {
    let s = summary;
    let seconds = s.timeline.len();
    let pick = |f: fn(&Tick) -> u64| s.timeline.iter().map(f).collect::<Vec<u64>>();
    let latency = chart(
        "Latency over time, all operations (by scheduled second; log scale)",
        seconds,
        s.warmup_secs,
        &[
            ("p50".into(), COLORS[0], pick(|t| t.p50)),
            ("p90".into(), COLORS[2], pick(|t| t.p90)),
            ("p99".into(), COLORS[1], pick(|t| t.p99)),
            ("max".into(), "#555", pick(|t| t.max)),
        ],
        true,
        "",
    );
    let per_op: Vec<(String, &str, Vec<u64>)> = Op::ALL
        .iter()
        .map(|op| {
            (
                format!("{} p99", op.name()),
                COLORS[op.index()],
                s.timeline.iter().map(|t| t.op_p99[op.index()]).collect(),
            )
        })
        .collect();
    let per_op = chart(
        "p99 per operation (log scale)",
        seconds,
        s.warmup_secs,
        &per_op,
        true,
        "",
    );
    let mut rate_series = vec![
        ("answers/s".to_owned(), COLORS[0], pick(|t| t.completed)),
        ("errors/s".to_owned(), COLORS[1], pick(|t| t.errors)),
    ];
    if s.mode == Mode::Open {
        rate_series.push((
            "target".to_owned(),
            "#999",
            vec![u64::from(s.target_rate); seconds],
        ));
    }
    let rates = chart(
        "Answers per second (by arrival second)",
        seconds,
        s.warmup_secs,
        &rate_series,
        false,
        "",
    );
    let report = text(summary, audit, observed);
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tijori-loadtest report</title>
<style>body{{font-family:sans-serif;margin:24px;color:#222}} pre{{background:#f6f6f6;padding:12px;overflow-x:auto;font-size:12px}} svg{{display:block;margin:16px 0}}</style>
</head><body>
<h1>tijori-loadtest</h1>
<p>Latency is measured from each request's scheduled send time (open loop: coordinated-omission corrected).</p>
{latency}
{per_op}
{rates}
<h2>Report</h2>
<pre>{}</pre>
</body></html>
"#,
        esc(&report)
    )
}
