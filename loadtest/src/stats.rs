//! Measurements: HdrHistograms of latency (µs) per operation over the
//! measured window, a per-second timeline (for the plot and the progress
//! line), outcome counts by error code, and the open loop's schedule
//! counters (sent, late, missed, skipped).

use crate::config::{Op, OPS};
use crate::util::lock;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Latencies are recorded in microseconds up to this (longer ones saturate).
pub const MAX_US: u64 = 120_000_000;

/// A histogram with fixed, valid bounds.
pub fn histogram(high: u64, sigfig: u8) -> Histogram<u64> {
    match Histogram::new_with_bounds(1, high.max(2), sigfig.min(5)) {
        Ok(h) => h,
        Err(e) => unreachable!("the bounds are valid: {e}"),
    }
}

/// Outcome of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Ok,
    /// An error envelope's code, `http_<status>`, or `transport:<kind>`.
    Error(String),
}

pub struct OpStats {
    pub latency: Histogram<u64>,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
}

impl OpStats {
    fn new() -> OpStats {
        OpStats {
            latency: histogram(MAX_US, 3),
            ok: 0,
            errors: BTreeMap::new(),
        }
    }

    pub fn count(&self) -> u64 {
        self.ok + self.errors.values().sum::<u64>()
    }
}

/// One second of the run (warm-up included). Latency and `errors` are
/// by the second a request was scheduled in; `completed`, `statuses` and
/// `error_codes` by the second its answer (or failure) arrived in.
pub struct Second {
    /// Latency of the requests scheduled in this second, per operation.
    pub latency: [Histogram<u64>; OPS],
    /// Errors among them.
    pub errors: u64,
    /// Answers that arrived in this second (throughput).
    pub completed: u64,
    /// HTTP status of the answers that arrived in this second (0: no
    /// HTTP answer, a transport failure or timeout).
    pub statuses: BTreeMap<u16, u64>,
    /// Error codes of the failures that arrived in this second.
    pub error_codes: BTreeMap<String, u64>,
}

impl Second {
    fn new() -> Second {
        Second {
            latency: std::array::from_fn(|_| histogram(MAX_US, 2)),
            errors: 0,
            completed: 0,
            statuses: BTreeMap::new(),
            error_codes: BTreeMap::new(),
        }
    }
}

pub struct Stats {
    pub started: Instant,
    pub measure_from: Instant,
    pub ops: [Mutex<OpStats>; OPS],
    /// Latency without coordinated-omission correction (from the actual send), all ops.
    pub service: Mutex<Histogram<u64>>,
    pub timeline: Mutex<Vec<Second>>,
    /// Requests sent (any phase).
    pub sent: AtomicU64,
    /// Requests answered or failed (any phase).
    pub done: AtomicU64,
    pub errors: AtomicU64,
    /// Open loop: requests sent more than `LATE` after their scheduled time.
    pub late: AtomicU64,
    /// Open loop: scheduled requests never sent (the window closed first).
    pub missed: AtomicU64,
    /// Outcomes finer than the HTTP status, counted over the whole run
    /// (warm-up included): `payout:pending`, `payout:queued`,
    /// `batch_item:201`, `batch_item:invalid_request`, `cancel:cancelled`,
    /// `cancel:invalid_status_transition`, `refund:pending`, …
    pub outcomes: Mutex<BTreeMap<String, u64>>,
    /// Operations skipped: payouts or refunds without modelled funds,
    /// lookups or cancels without ids.
    pub skipped: [AtomicU64; OPS],
    /// Requests sent whose scheduled time is inside the measured window
    /// (operations skipped for want of funds or ids are not counted).
    pub scheduled_measured: AtomicU64,
    /// Responses to measured requests.
    pub done_measured: AtomicU64,
    /// When the last measured response arrived.
    pub last_done: Mutex<Option<Instant>>,
    /// When the driver stopped scheduling (the window's end, or earlier
    /// with `--max-requests`); answers may still arrive after it.
    pub load_end: Mutex<Option<Instant>>,
}

/// A request sent this long after its scheduled time is late.
pub const LATE: Duration = Duration::from_millis(10);

impl Stats {
    pub fn new(started: Instant, warmup: Duration) -> Stats {
        Stats {
            started,
            measure_from: started + warmup,
            ops: std::array::from_fn(|_| Mutex::new(OpStats::new())),
            service: Mutex::new(histogram(MAX_US, 3)),
            timeline: Mutex::new(Vec::new()),
            sent: AtomicU64::new(0),
            done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            late: AtomicU64::new(0),
            missed: AtomicU64::new(0),
            outcomes: Mutex::new(BTreeMap::new()),
            skipped: std::array::from_fn(|_| AtomicU64::new(0)),
            scheduled_measured: AtomicU64::new(0),
            done_measured: AtomicU64::new(0),
            last_done: Mutex::new(None),
            load_end: Mutex::new(None),
        }
    }

    /// Counts one fine-grained outcome (see `outcomes`).
    pub fn note(&self, op: Op, what: &str) {
        *lock(&self.outcomes)
            .entry(format!("{}:{what}", op.name()))
            .or_insert(0) += 1;
    }

    pub fn is_measured(&self, scheduled: Instant) -> bool {
        scheduled >= self.measure_from
    }

    /// Marks the end of scheduling (the first call counts).
    pub fn mark_load_end(&self, at: Instant) {
        lock(&self.load_end).get_or_insert(at);
    }

    /// Records one finished request. `scheduled` is when it should have
    /// been sent (open loop) or was sent (closed loop); `sent` when it was;
    /// `status` the HTTP status (None: no HTTP answer).
    pub fn record(
        &self,
        op: Op,
        scheduled: Instant,
        sent: Instant,
        status: Option<u16>,
        outcome: &Outcome,
    ) {
        self.record_at(op, scheduled, sent, Instant::now(), status, outcome);
    }

    /// `record` with the time the answer arrived.
    pub fn record_at(
        &self,
        op: Op,
        scheduled: Instant,
        sent: Instant,
        now: Instant,
        status: Option<u16>,
        outcome: &Outcome,
    ) {
        // A request the dispatcher sent a little early (it wakes up to 1 ms
        // ahead of the timer's resolution) is timed from its actual send.
        let latency = micros(now.saturating_duration_since(scheduled.min(sent)));
        let service = micros(now.saturating_duration_since(sent));
        self.done.fetch_add(1, Ordering::Relaxed);
        let is_error = matches!(outcome, Outcome::Error(_));
        if is_error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let second = scheduled.saturating_duration_since(self.started).as_secs() as usize;
        let arrival = now.saturating_duration_since(self.started).as_secs() as usize;
        {
            let mut timeline = lock(&self.timeline);
            while timeline.len() <= second.max(arrival) {
                timeline.push(Second::new());
            }
            timeline[arrival].completed += 1;
            *timeline[arrival]
                .statuses
                .entry(status.unwrap_or(0))
                .or_insert(0) += 1;
            if let Outcome::Error(code) = outcome {
                *timeline[arrival]
                    .error_codes
                    .entry(code.clone())
                    .or_insert(0) += 1;
            }
            let _ = timeline[second].latency[op.index()].record(latency);
            if is_error {
                timeline[second].errors += 1;
            }
        }
        if !self.is_measured(scheduled) {
            return;
        }
        self.done_measured.fetch_add(1, Ordering::Relaxed);
        *lock(&self.last_done) = Some(now);
        let _ = lock(&self.service).record(service);
        let mut s = lock(&self.ops[op.index()]);
        let _ = s.latency.record(latency);
        match outcome {
            Outcome::Ok => s.ok += 1,
            Outcome::Error(code) => *s.errors.entry(code.clone()).or_insert(0) += 1,
        }
    }

    /// The progress line printed each second: elapsed of total, the phase,
    /// target against achieved rate (answers that arrived in the second
    /// that just ended), totals so far, and the latency of the requests
    /// scheduled in that second. `target` is the open loop's rate (None in
    /// a closed loop).
    pub fn progress_line(
        &self,
        elapsed: Duration,
        total: Duration,
        target: Option<u32>,
        in_flight: u64,
    ) -> String {
        let second = elapsed.as_secs().saturating_sub(1) as usize;
        let (achieved, count, p50, p99) = {
            let timeline = lock(&self.timeline);
            match timeline.get(second) {
                Some(s) => {
                    let mut all = histogram(MAX_US, 2);
                    for h in &s.latency {
                        let _ = all.add(h);
                    }
                    let q = |x: f64| {
                        if all.is_empty() {
                            0
                        } else {
                            all.value_at_quantile(x)
                        }
                    };
                    (s.completed, all.len(), q(0.5), q(0.99))
                }
                None => (0, 0, 0, 0),
            }
        };
        let phase = if self.started + Duration::from_secs(second as u64) < self.measure_from {
            "warm-up"
        } else {
            "measure"
        };
        let done = self.done.load(Ordering::Relaxed);
        let errors = self.errors.load(Ordering::Relaxed);
        let share = if done == 0 {
            0.0
        } else {
            errors as f64 * 100.0 / done as f64
        };
        let target = match target {
            Some(rate) => format!("target {rate}/s"),
            None => "closed loop".to_owned(),
        };
        format!(
            "[{:>4}/{} s {phase}] {target}, achieved {achieved}/s | sent {} done {done} errors {errors} ({share:.2}%) late {} in-flight {in_flight} | second {second}: {count} answered, p50 {} p99 {}",
            elapsed.as_secs(),
            total.as_secs(),
            self.sent.load(Ordering::Relaxed),
            self.late.load(Ordering::Relaxed),
            fmt_us(p50),
            fmt_us(p99),
        )
    }
}

pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_US)
}

/// `1.23ms`, `456µs`, `2.5s`.
pub fn fmt_us(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else if us >= 1_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{us}µs")
    }
}
