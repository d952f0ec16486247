//! Reports: the run's summary (per-operation latency percentiles, rates,
//! errors by code, schedule counters, per-second timeline), the audit and
//! webhook results, as text (stdout), JSON (`--json-out`) and a
//! self-contained HTML page with inline SVG plots (`--html-out`).

use crate::audit::{AuditReport, Observed};
use crate::config::{Config, Mode, Op, OPS};
use crate::meta::RunMeta;
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
    pub op_p99: [u64; OPS],
    /// HTTP statuses of the answers that arrived in this second (0: no
    /// HTTP answer).
    pub statuses: BTreeMap<u16, u64>,
    /// Error codes of the failures that arrived in this second.
    pub error_codes: BTreeMap<String, u64>,
    /// How much of this second the load covered: 1 for a whole second, a
    /// fraction for the last, partial one, 0 after the load ended (answers
    /// still arriving). Per-second counts are only drawn for whole seconds.
    pub span: f64,
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
    /// The weights the run used (after `--v2-ops false`), by `Op::index`.
    pub mix: [u32; OPS],
    /// The SPEC v2 operations and shares were on.
    pub v2_ops: bool,
    pub sent: u64,
    pub answered: u64,
    pub scheduled_measured: u64,
    pub answered_measured: u64,
    pub late: u64,
    pub missed: u64,
    pub skipped: [u64; OPS],
    /// Answers to measured requests per second of the window (until the last answer).
    pub achieved_rate: f64,
    /// 2xx answers per second, same window.
    pub ok_rate: f64,
    pub window_secs: f64,
    pub ops: Vec<(Op, Latency)>,
    pub all: Latency,
    /// Latency from the actual send (no coordinated-omission correction):
    /// the same requests as `all`, so the same counts.
    pub service: Latency,
    pub timeline: Vec<Tick>,
    /// Seconds from the start of the load until scheduling stopped.
    pub load_secs: f64,
    /// HTTP statuses of every answer (warm-up included; 0: no HTTP answer).
    pub statuses: BTreeMap<u16, u64>,
    /// Outcomes finer than the status (`payout:queued`, `batch_item:201`,
    /// `cancel:invalid_status_transition`, …), warm-up included.
    pub outcomes: BTreeMap<String, u64>,
    /// The measured window's histograms (µs): all operations, uncorrected,
    /// and per operation (in `Op::ALL` order).
    pub hist_all: Histogram<u64>,
    pub hist_service: Histogram<u64>,
    pub hist_ops: Vec<Histogram<u64>>,
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
        let hist_service = lock(&stats.service).clone();
        // The same requests as `all`, timed from the actual send: the same
        // outcomes.
        let service = latency_of(&hist_service, all_ok, all_errors.clone());
        let hist_ops: Vec<Histogram<u64>> = Op::ALL
            .iter()
            .map(|op| lock(&stats.ops[op.index()]).latency.clone())
            .collect();
        let load_secs = lock(&stats.load_end)
            .map(|t| t.saturating_duration_since(stats.started).as_secs_f64())
            .unwrap_or(0.0);
        let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
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
                for (code, n) in &s.statuses {
                    *statuses.entry(*code).or_insert(0) += n;
                }
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
                    statuses: s.statuses.clone(),
                    error_codes: s.error_codes.clone(),
                    span: (load_secs - i as f64).clamp(0.0, 1.0),
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
            mix: if cfg.v2_ops {
                cfg.mix.0
            } else {
                cfg.mix.without_v2().0
            },
            v2_ops: cfg.v2_ops,
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
            load_secs,
            statuses,
            outcomes: lock(&stats.outcomes).clone(),
            hist_all: all,
            hist_service,
            hist_ops,
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

fn loadavg(l: Option<[f64; 3]>) -> String {
    l.map_or("?".to_owned(), |[a, b, c]| format!("{a:.2} {b:.2} {c:.2}"))
}

/// The text report for stdout.
pub fn text(
    summary: &Summary,
    meta: Option<&RunMeta>,
    audit: Option<&AuditReport>,
    observed: Option<&Observed>,
) -> String {
    let mut out = String::new();
    let s = summary;
    let _ = writeln!(out, "== tijori-loadtest");
    if let Some(m) = meta {
        let _ = writeln!(
            out,
            "run {} .. {}; harness {} at {}; server {} at {} (pid {}); host {} ({} CPUs, kernel {}), load average {} before, {} after",
            m.started_at,
            m.finished_at,
            m.harness_version,
            m.harness_commit,
            m.server_version().unwrap_or("?"),
            m.server.target,
            m.server.pid.map_or("?".to_owned(), |p| p.to_string()),
            m.host.hostname.as_deref().unwrap_or("?"),
            m.host.cpus.map_or("?".to_owned(), |n| n.to_string()),
            m.host.kernel.as_deref().unwrap_or("?"),
            loadavg(m.host.load_before),
            loadavg(m.host.load_after),
        );
        if let Some(cmd) = &m.server.cmdline {
            let _ = writeln!(out, "server command line: {}", cmd.join(" "));
        }
    }
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
        "mix {}{}",
        Op::ALL
            .iter()
            .filter(|op| s.mix[op.index()] > 0)
            .map(|op| format!("{}={}", op.name(), s.mix[op.index()]))
            .collect::<Vec<_>>()
            .join(","),
        if s.v2_ops { "" } else { " (--v2-ops false)" }
    );
    let _ = writeln!(
        out,
        "achieved {:.1} req/s ({:.1} ok/s) over {:.2} s; sent {} in all, {} in the window (scheduled in seconds {}..{}), {} of them answered; late {} (> 10 ms behind schedule), missed {}, skipped {}",
        s.achieved_rate,
        s.ok_rate,
        s.window_secs,
        s.sent,
        s.scheduled_measured,
        s.warmup_secs,
        s.warmup_secs + s.duration_secs,
        s.answered_measured,
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
        "{:<13} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}  errors",
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
            "{:<13} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}  {}",
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
        "uncorrected (same requests, timed from the actual send): p50 {} p99 {} p99.9 {} max {}",
        fmt_us(s.service.p50),
        fmt_us(s.service.p99),
        fmt_us(s.service.p999),
        fmt_us(s.service.max)
    );
    let _ = writeln!(
        out,
        "status codes (all answers, warm-up included): {}",
        s.statuses
            .iter()
            .map(|(c, n)| format!("{}={n}", status_label(*c)))
            .collect::<Vec<_>>()
            .join(" ")
    );
    if !s.outcomes.is_empty() {
        let _ = writeln!(
            out,
            "outcomes (all answers, warm-up included): {}",
            s.outcomes
                .iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    if let Some(o) = observed {
        let _ = writeln!(
            out,
            "settlement: {} after {:.1} s",
            if o.settled { "done" } else { "NOT done" },
            o.settle_wait.as_secs_f64()
        );
        if o.swept.found > 0 {
            let _ = writeln!(
                out,
                "queued payouts after the load: {} found, {} cancelled, {} refused (the rail got there first), {} unanswered",
                o.swept.found, o.swept.cancelled, o.swept.refused, o.swept.unknown
            );
        }
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
            "audit: {} merchants, {} pay-ins, {} payouts, {} refunds acknowledged, {} cancels sent, {} unanswered found ({} absent), {} ledger lines, {} ledger accounts; statuses {}",
            c.merchants,
            c.payins,
            c.payouts,
            c.refunds,
            c.cancels,
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

/// What "in the window" means, written into the JSON report.
pub const WINDOW_NOTE: &str = "The measured window is the --duration-secs seconds after the \
--warmup-secs warm-up. A request is in the window when its scheduled send time (open loop; its \
actual send time in a closed loop) falls inside it; its answer may arrive after the window closed \
and still counts. sent_in_window counts the requests actually sent (an operation skipped for want \
of funds or ids is not); answered_in_window those of them that got an answer or failed (a \
transport failure counts). Latency percentiles, per-operation counts and error codes are over \
these requests; `sent` and `answered` also count the warm-up. window_secs runs from the start of \
the window to the last answer of a windowed request, and achieved_rate is answered_in_window / \
window_secs.";

pub fn json(
    summary: &Summary,
    meta: Option<&RunMeta>,
    audit: Option<&AuditReport>,
    observed: Option<&Observed>,
) -> Value {
    let s = summary;
    let webhooks = observed.and_then(|o| o.webhooks.as_ref()).map(|log| {
        let d = &log.delay_ms;
        let q = |x: f64| if d.is_empty() { 0 } else { d.value_at_quantile(x) };
        json!({
            "deliveries": log.received, "events_with_record": log.records.len(),
            "other_events": log.other_events, "duplicates": log.duplicates(),
            "bad_signatures": log.bad_signatures.len(),
            "delay_ms": { "count": d.len(), "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999), "max": if d.is_empty() { 0 } else { d.max() } },
        })
    });
    let audit_json = audit.map(|a| {
        json!({
            "passed": a.passed(),
            "problems": a.problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "problems_by_kind": a.by_kind(),
            "payins": a.checked.payins, "payouts": a.checked.payouts,
            "refunds": a.checked.refunds, "cancels": a.checked.cancels,
            "adopted": a.checked.adopted, "absent": a.checked.absent,
            "ledger_entries": a.checked.ledger_entries,
            "ledger_accounts": a.checked.ledger_accounts, "statuses": a.checked.statuses,
        })
    });
    let swept = observed.map(|o| {
        json!({
            "found": o.swept.found, "cancelled": o.swept.cancelled,
            "refused": o.swept.refused, "unanswered": o.swept.unknown,
        })
    });
    json!({
        "run": meta.map(RunMeta::json),
        "mode": match s.mode { Mode::Open => "open", Mode::Closed => "closed" },
        "target_rate": if s.mode == Mode::Open { json!(s.target_rate) } else { Value::Null },
        "concurrency": if s.mode == Mode::Closed { json!(s.concurrency) } else { Value::Null },
        "merchants": s.merchants,
        "api_users_per_merchant": s.api_users_per_merchant,
        "warmup_secs": s.warmup_secs,
        "webhook_sink_hosts": s.sink_hosts,
        "mix": Op::ALL.iter().map(|op| (op.name().to_owned(), json!(s.mix[op.index()]))).collect::<serde_json::Map<_, _>>(),
        "v2_ops": s.v2_ops,
        "duration_secs": s.duration_secs,
        "window_secs": s.window_secs,
        "achieved_rate": s.achieved_rate,
        "ok_rate": s.ok_rate,
        "sent": s.sent,
        "answered": s.answered,
        "sent_in_window": s.scheduled_measured,
        "answered_in_window": s.answered_measured,
        "window": {
            "from_secs": s.warmup_secs,
            "to_secs": s.warmup_secs + s.duration_secs,
            "meaning": WINDOW_NOTE,
        },
        "load_secs": s.load_secs,
        "status_codes": s.statuses.iter().map(|(code, n)| (status_label(*code), json!(n))).collect::<serde_json::Map<_, _>>(),
        "outcomes": s.outcomes,
        "late": s.late,
        "missed": s.missed,
        "skipped": Op::ALL.iter().map(|op| (op.name().to_owned(), json!(s.skipped[op.index()]))).collect::<serde_json::Map<_, _>>(),
        "operations": s.ops.iter().map(|(op, l)| (op.name().to_owned(), latency_json(l))).collect::<serde_json::Map<_, _>>(),
        "all": latency_json(&s.all),
        "uncorrected": latency_json(&s.service),
        "timeline": s.timeline.iter().map(|t| json!({
            "second": t.second, "span": t.span, "answered": t.answered, "completed": t.completed, "errors": t.errors,
            "p50_ms": ms(t.p50), "p90_ms": ms(t.p90), "p99_ms": ms(t.p99), "max_ms": ms(t.max),
            "status_codes": t.statuses.iter().map(|(code, n)| (status_label(*code), json!(n))).collect::<serde_json::Map<_, _>>(),
            "error_codes": t.error_codes,
        })).collect::<Vec<_>>(),
        "settled": observed.map(|o| o.settled),
        "settle_wait_secs": observed.map(|o| o.settle_wait.as_secs_f64()),
        "queued_after_load": swept,
        "webhooks": webhooks,
        "audit": audit_json,
    })
}

/// `"201"`, or `"none"` for a request without an HTTP answer.
pub fn status_label(code: u16) -> String {
    if code == 0 {
        "none".to_owned()
    } else {
        code.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Outcome as Out;
    use clap::Parser;
    use std::time::{Duration, Instant};

    fn cfg() -> Config {
        Config::parse_from([
            "tijori-loadtest",
            "--admin-key",
            "k",
            "--rate",
            "10",
            "--warmup-secs",
            "1",
            "--duration-secs",
            "3",
        ])
    }

    /// A run of 3.4 s (load stopped early): 10 requests a second scheduled
    /// at 0.0, 0.1, … s, each answered 2 ms later (one in six waits 40 ms
    /// for its send), statuses 201/200, some 422s, one timeout; the answers
    /// arrive by the clock given, not the test's.
    fn stats() -> Stats {
        let t0 = Instant::now();
        let stats = Stats::new(t0, Duration::from_secs(1));
        for i in 0..34u64 {
            let scheduled = t0 + Duration::from_millis(100 * i);
            let sent = scheduled + Duration::from_millis(if i % 6 == 0 { 40 } else { 0 });
            let done = sent + Duration::from_millis(2);
            let (op, status, outcome) = match i {
                5 | 25 => (
                    Op::Payout,
                    Some(422),
                    Out::Error("insufficient_funds".into()),
                ),
                31 => (Op::Payin, None, Out::Error("transport:timeout".into())),
                _ if i % 2 == 0 => (Op::Payin, Some(201), Out::Ok),
                _ => (Op::Balance, Some(200), Out::Ok),
            };
            if stats.is_measured(scheduled) {
                stats.scheduled_measured.fetch_add(1, Ordering::Relaxed);
            }
            stats.sent.fetch_add(1, Ordering::Relaxed);
            stats.record_at(op, scheduled, sent, done, status, &outcome);
        }
        stats.note(Op::Payout, "queued");
        stats.note(Op::Cancel, "invalid_status_transition");
        stats.note(Op::Cancel, "invalid_status_transition");
        stats.mark_load_end(t0 + Duration::from_millis(3_400));
        stats.mark_load_end(t0 + Duration::from_millis(9_999)); // the first counts
        stats
    }

    #[test]
    fn the_summary_counts_what_was_recorded() {
        let s = Summary::from_stats(&cfg(), &stats());
        // In the window: scheduled at 1.0 s and later, 24 requests.
        assert_eq!(s.scheduled_measured, 24);
        assert_eq!(s.answered_measured, 24);
        assert_eq!(s.all.count, 24);
        assert_eq!(s.all.errors.values().sum::<u64>(), 2); // the 422 at 2.5 s, the timeout
        assert_eq!(s.all.ok, 22);
        // The uncorrected latency covers the same requests with the same
        // outcomes (it used to say ok: 0), and is never above the corrected.
        assert_eq!(s.service.count, 24);
        assert_eq!(s.service.ok, s.all.ok);
        assert_eq!(s.service.errors, s.all.errors);
        assert!(s.service.max <= s.all.max);
        assert!(s.all.max >= 42_000 && s.service.max < 3_000, "{s:?}");
        // Statuses of every answer, warm-up included; none = no HTTP answer.
        assert_eq!(s.statuses.get(&201), Some(&17));
        assert_eq!(s.statuses.get(&200), Some(&14));
        assert_eq!(s.statuses.get(&422), Some(&2));
        assert_eq!(s.statuses.get(&0), Some(&1));
        // The last second is partial: 0.4 s of load.
        assert!((s.load_secs - 3.4).abs() < 1e-6);
        let spans: Vec<f64> = s.timeline.iter().map(|t| t.span).collect();
        assert_eq!(spans.len(), 4);
        assert!(spans[..3].iter().all(|x| *x == 1.0));
        assert!((spans[3] - 0.4).abs() < 1e-6);
        // Per second, by arrival: the 422 and the timeout are where they arrived.
        assert_eq!(
            s.timeline[0].error_codes.get("insufficient_funds"),
            Some(&1)
        );
        assert_eq!(s.timeline[3].error_codes.get("transport:timeout"), Some(&1));
        assert_eq!(s.timeline[3].completed, 4);
        assert_eq!(s.timeline.iter().map(|t| t.completed).sum::<u64>(), 34);
        // Histograms kept for the spectrum and the .hgrm files.
        assert_eq!(s.hist_all.len(), 24);
        assert_eq!(s.hist_ops.iter().map(|h| h.len()).sum::<u64>(), 24);
        assert_eq!(s.hist_ops[Op::Payout.index()].len(), 1);
    }

    #[test]
    fn the_json_report_has_metadata_and_explains_the_window() {
        let s = Summary::from_stats(&cfg(), &stats());
        let mut meta = RunMeta::begin("http://127.0.0.1:1");
        meta.server
            .build_info
            .insert("version".into(), "9.9.9".into());
        meta.finish();
        let j = json(&s, Some(&meta), None, None);
        assert_eq!(j["run"]["server"]["version"], "9.9.9");
        assert_eq!(j["run"]["harness"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(j["run"]["started_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')));
        assert_eq!(j["uncorrected"]["ok"], 22);
        assert_eq!(j["uncorrected"]["errors"]["insufficient_funds"], 1);
        assert_eq!(j["sent_in_window"], 24);
        assert_eq!(j["window"]["from_secs"], 1);
        assert_eq!(j["window"]["to_secs"], 4);
        assert!(j["window"]["meaning"]
            .as_str()
            .is_some_and(|m| m.contains("scheduled send time")));
        assert_eq!(j["status_codes"]["none"], 1);
        assert_eq!(j["status_codes"]["422"], 2);
        assert_eq!(j["timeline"][3]["error_codes"]["transport:timeout"], 1);
        assert_eq!(
            j["timeline"][3]["span"]
                .as_f64()
                .map(|x| (x * 10.0).round()),
            Some(4.0)
        );
        let t = text(&s, Some(&meta), None, None);
        assert!(
            t.contains("24 in the window (scheduled in seconds 1..4), 24 of them answered"),
            "{t}"
        );
        assert!(t.contains("server 9.9.9"), "{t}");
        assert!(
            t.contains("outcomes (all answers, warm-up included): cancel:invalid_status_transition=2 payout:queued=1"),
            "{t}"
        );
        assert_eq!(j["outcomes"]["payout:queued"], 1);
        assert_eq!(j["mix"]["refund"], 5);
        assert_eq!(j["v2_ops"], true);
        assert!(
            t.contains("mix payin=55,payout=10,refund=5,cancel=3,batch_payouts=2,balance=12,list=8,get=5\n"),
            "{t}"
        );
        // Every operation has its row, the new ones too.
        for op in ["refund", "cancel", "batch_payouts"] {
            assert!(j["operations"][op]["count"].is_u64(), "{op}");
            assert!(t.lines().any(|l| l.starts_with(op)), "{op}: {t}");
        }
        assert!(t.contains("none=1"), "{t}");
    }

    #[test]
    fn the_html_report_is_self_contained_and_carries_the_data() {
        let s = Summary::from_stats(&cfg(), &stats());
        let page = crate::html::page(&s, None, None, None, &["r.hgrm".to_owned()]);
        let lower = page.to_ascii_lowercase();
        for banned in [
            "src=",
            "href=",
            "url(",
            "@import",
            "fetch(",
            "xmlhttprequest",
            "<link",
            "<img",
            "<iframe",
            "websocket",
            "eventsource",
            "import(",
            "https://",
        ] {
            assert!(
                !lower.contains(banned),
                "the page must not load anything: {banned}"
            );
        }
        // The only URL is the SVG namespace, a name, not a request.
        assert_eq!(page.matches("http://").count(), 1);
        assert!(page.contains(r#"const NS = "http://www.w3.org/2000/svg";"#));
        // Tiles: achieved rate, the percentiles, errors, the audit verdict.
        for label in [
            "achieved rate",
            "p50 latency",
            "p99 latency",
            "p99.9 latency",
            "errors",
            "money audit",
            "not run",
        ] {
            assert!(page.contains(label), "tile {label}");
        }
        assert!(page.contains("<code>r.hgrm</code>"));
        assert!(page.contains("Outcomes (all answers, warm-up included): cancel:invalid_status_transition=2 payout:queued=1"));
        assert!(page.contains("<td>batch_payouts</td>"));
        // The embedded data parses and matches the summary.
        let start = page
            .find(r#"<script id="report-data" type="application/json">"#)
            .unwrap();
        let rest = &page[start..];
        let body = &rest[rest.find('>').unwrap() + 1..rest.find("</script>").unwrap()];
        let data: Value = serde_json::from_str(body).unwrap();
        assert_eq!(data["target_rate"], 10);
        assert_eq!(data["warmup"], 1);
        assert_eq!(data["timeline"]["span"].as_array().map(Vec::len), Some(4));
        let statuses = data["timeline"]["statuses"].as_array().unwrap();
        let codes: Vec<&str> = statuses.iter().filter_map(|x| x["code"].as_str()).collect();
        assert_eq!(codes, ["none", "200", "201", "422"]);
        let bins = data["histogram"].as_array().unwrap();
        assert_eq!(bins.iter().filter_map(|b| b[2].as_u64()).sum::<u64>(), 24);
        let spectrum = data["spectrum"].as_array().unwrap();
        assert_eq!(spectrum[0]["label"], "all (corrected)");
        let last = spectrum[0]["points"]
            .as_array()
            .and_then(|p| p.last())
            .unwrap();
        assert_eq!(last[0], 1.0);
        assert_eq!(
            last[1].as_u64(),
            Some(s.hist_all.highest_equivalent(s.hist_all.max()))
        );
        assert!(data["webhook"].is_null());
    }

    #[test]
    fn the_progress_line() {
        let stats = stats();
        let line = stats.progress_line(
            Duration::from_millis(3_050),
            Duration::from_secs(4),
            Some(10),
            3,
        );
        assert!(line.starts_with("[   3/4 s measure] target 10/s, achieved 10/s | sent 34 done 34 errors 3 (8.82%) late 0 in-flight 3 | second 2: 10 answered"), "{line}");
        let closed = stats.progress_line(
            Duration::from_millis(1_000),
            Duration::from_secs(4),
            None,
            0,
        );
        assert!(
            closed.starts_with("[   1/4 s warm-up] closed loop, achieved 10/s"),
            "{closed}"
        );
    }
}
