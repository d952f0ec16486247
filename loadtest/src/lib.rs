//! `tijori-loadtest` as a library: configuration (`config`), the HTTP
//! client (`client`), set-up through the admin API (`setup`), the load
//! driver (`load`), measurements (`stats`), the harness's model of
//! acknowledged money (`model`, `money`), the webhook sink (`sink`), the
//! money audit (`audit`) and the reports (`report`). `run` does it all; the
//! binary (`main.rs`) only parses flags, prints and sets the exit code.
//!
//! It speaks HTTP only, and only to loopback targets.

pub mod audit;
pub mod client;
pub mod config;
pub mod load;
pub mod model;
pub mod money;
pub mod report;
pub mod setup;
pub mod sink;
pub mod stats;
pub mod util;

use anyhow::Context;
use audit::{AuditReport, Observed};
use config::{Config, Mode};
use model::{Live, Model};
use report::Summary;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything a run produced.
pub struct Outcome {
    pub model: Model,
    pub summary: Summary,
    pub observed: Option<Observed>,
    pub audit: Option<AuditReport>,
}

impl Outcome {
    /// False only when an audit ran and found problems.
    pub fn passed(&self) -> bool {
        self.audit.as_ref().is_none_or(AuditReport::passed)
    }

    pub fn text(&self) -> String {
        report::text(&self.summary, self.audit.as_ref(), self.observed.as_ref())
    }

    pub fn json(&self) -> serde_json::Value {
        report::json(&self.summary, self.audit.as_ref(), self.observed.as_ref())
    }

    pub fn html(&self) -> String {
        report::html(&self.summary, self.audit.as_ref(), self.observed.as_ref())
    }

    /// Writes `--json-out` and `--html-out` when given.
    pub fn write_files(&self, cfg: &Config) -> anyhow::Result<()> {
        if let Some(path) = &cfg.json_out {
            let text = serde_json::to_string_pretty(&self.json())?;
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        if let Some(path) = &cfg.html_out {
            std::fs::write(path, self.html())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

/// Sets up, loads, waits for settlement and audits. Errors are set-up or
/// target problems; audit findings are in the outcome.
pub async fn run(cfg: &Config) -> anyhow::Result<Outcome> {
    let target = config::check_target(&cfg.target).map_err(anyhow::Error::msg)?;
    config::resolve_loopback(&target)
        .await
        .map_err(anyhow::Error::msg)?;
    let pool = match cfg.mode {
        Mode::Open => cfg.max_in_flight,
        Mode::Closed => cfg.concurrency,
    } as usize;
    let api = client::Api::new(
        &target.base,
        Duration::from_millis(cfg.request_timeout_ms.max(1)),
        pool + 16,
    );
    let sink = if cfg.webhook_sink {
        Some(Arc::new(
            sink::Sink::start(match cfg.webhook_sink_hosts {
                0 => cfg.merchants as usize,
                n => n as usize,
            })
            .await
            .context("starting the webhook sink")?,
        ))
    } else {
        None
    };
    let merchants = setup::create(
        &api,
        &cfg.admin_key,
        cfg.merchants as usize,
        cfg.api_users_per_merchant as usize,
        sink.clone(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("set-up failed: {e}"))?;
    if !cfg.quiet {
        eprintln!(
            "set up {} merchants with {} api_users each against {}",
            merchants.len(),
            cfg.api_users_per_merchant,
            target.base
        );
    }
    let live: Vec<Live> = merchants.into_iter().map(Live::new).collect();
    let start = Instant::now() + Duration::from_millis(50);
    let warmup = Duration::from_secs(cfg.warmup_secs);
    let end = start + warmup + Duration::from_secs(cfg.duration_secs);
    let stats = Arc::new(stats::Stats::new(start, warmup));
    let plan = load::Plan {
        mix: cfg.mix,
        fail_vpa_percent: cfg.fail_vpa_percent,
        reject_account_percent: cfg.reject_account_percent,
        credit_after: Duration::from_millis(cfg.server_settle_delay_ms.saturating_add(1_000)),
        seed: cfg.seed,
    };
    let driver = Arc::new(load::Driver::new(api.clone(), live, stats.clone(), plan));
    let progress = (!cfg.quiet).then(|| {
        let driver = driver.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(
                (start + Duration::from_secs(1)).into(),
                Duration::from_secs(1),
            );
            loop {
                tick.tick().await;
                let in_flight = driver.in_flight.load(std::sync::atomic::Ordering::Relaxed);
                eprintln!("{}", driver.stats.progress_line(start.elapsed(), in_flight));
            }
        })
    });
    match cfg.mode {
        Mode::Open => {
            driver
                .clone()
                .open_loop(
                    start,
                    end,
                    cfg.rate,
                    cfg.max_in_flight as usize,
                    cfg.max_requests,
                )
                .await
        }
        Mode::Closed => {
            driver
                .clone()
                .closed_loop(end, cfg.concurrency as usize, cfg.max_requests)
                .await
        }
    }
    if let Some(p) = progress {
        p.abort();
    }
    let model = Model {
        merchants: driver.live.iter().map(Live::freeze).collect(),
        payin_failures_allowed: cfg.server_payin_failure_rate.0 > 0,
        webhooks_expected: sink.is_some(),
    };
    let summary = Summary::from_stats(cfg, &stats);
    let (observed, audit) = if cfg.audit {
        if !cfg.quiet {
            eprintln!(
                "load done; waiting for settlement and auditing {} pay-ins and {} payouts",
                model.acknowledged_payins(),
                model.acknowledged_payouts()
            );
        }
        let observed = audit::observe(
            &api,
            &model,
            &cfg.admin_key,
            sink.as_deref(),
            Duration::from_secs(cfg.settle_timeout_secs),
            Duration::from_secs(cfg.audit_read_timeout_secs),
            Duration::from_secs(cfg.webhook_wait_secs),
        )
        .await;
        let report = audit::audit(&model, &observed);
        (Some(observed), Some(report))
    } else {
        (None, None)
    };
    Ok(Outcome {
        model,
        summary,
        observed,
        audit,
    })
}
