//! `tijori-loadtest` as a library: configuration (`config`), the HTTP
//! client (`client`), set-up through the admin API (`setup`), the load
//! driver (`load`), measurements (`stats`), the harness's model of
//! acknowledged money (`model`, `money`), the webhook sink (`sink`), the
//! money audit (`audit`), run metadata (`meta`) and the reports (`report`
//! for text and JSON, `html`, `hgrm`). `run` does it all; the
//! binary (`main.rs`) only parses flags, prints and sets the exit code.
//!
//! It speaks HTTP only, and only to loopback targets.

pub mod audit;
pub mod client;
pub mod config;
pub mod hgrm;
pub mod html;
pub mod load;
pub mod meta;
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
use meta::RunMeta;
use model::{Live, Model};
use report::Summary;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything a run produced.
pub struct Outcome {
    pub model: Model,
    pub summary: Summary,
    pub meta: RunMeta,
    pub observed: Option<Observed>,
    pub audit: Option<AuditReport>,
}

/// The `.hgrm` files written next to a report at `path` (`r.html` →
/// `r.hgrm`, `r.uncorrected.hgrm`, `r.payin.hgrm`, …): the name and its
/// histogram, those with no request left out (the first two always).
pub fn hgrm_files<'a>(
    path: &std::path::Path,
    summary: &'a Summary,
) -> Vec<(std::path::PathBuf, &'a hdrhistogram::Histogram<u64>)> {
    let stem = path.with_extension("");
    let named = |suffix: &str| {
        let mut name = stem.clone().into_os_string();
        name.push(suffix);
        std::path::PathBuf::from(name)
    };
    let mut files = vec![
        (named(".hgrm"), &summary.hist_all),
        (named(".uncorrected.hgrm"), &summary.hist_service),
    ];
    for (op, h) in config::Op::ALL.iter().zip(&summary.hist_ops) {
        if !h.is_empty() {
            files.push((named(&format!(".{}.hgrm", op.name())), h));
        }
    }
    files
}

impl Outcome {
    /// False only when an audit ran and found problems.
    pub fn passed(&self) -> bool {
        self.audit.as_ref().is_none_or(AuditReport::passed)
    }

    pub fn text(&self) -> String {
        report::text(
            &self.summary,
            Some(&self.meta),
            self.audit.as_ref(),
            self.observed.as_ref(),
        )
    }

    pub fn json(&self) -> serde_json::Value {
        report::json(
            &self.summary,
            Some(&self.meta),
            self.audit.as_ref(),
            self.observed.as_ref(),
        )
    }

    /// The HTML page; `hgrm_names` are the `.hgrm` files it mentions.
    pub fn html(&self, hgrm_names: &[String]) -> String {
        html::page(
            &self.summary,
            Some(&self.meta),
            self.audit.as_ref(),
            self.observed.as_ref(),
            hgrm_names,
        )
    }

    /// Writes `--json-out` and `--html-out` when given, and the `.hgrm`
    /// percentile distributions next to the HTML report (or, without one,
    /// next to the JSON report).
    pub fn write_files(&self, cfg: &Config) -> anyhow::Result<()> {
        let write = |path: &std::path::Path, text: &str| {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
        };
        if let Some(path) = &cfg.json_out {
            write(path, &serde_json::to_string_pretty(&self.json())?)?;
        }
        let mut names = Vec::new();
        if let Some(next_to) = cfg.html_out.as_ref().or(cfg.json_out.as_ref()) {
            for (file, h) in hgrm_files(next_to, &self.summary) {
                write(&file, &hgrm::percentile_distribution(h))?;
                names.push(
                    file.file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                );
            }
        }
        if let Some(path) = &cfg.html_out {
            write(path, &self.html(&names))?;
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
    let mut meta = RunMeta::begin(&target.base);
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
    meta.probe_server(&api, target.port).await;
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
    let v2 = |percent: u32| if cfg.v2_ops { percent } else { 0 };
    let mix = if cfg.v2_ops {
        cfg.mix
    } else {
        cfg.mix.without_v2()
    };
    if mix.total() == 0 {
        anyhow::bail!("the mix has no operation left without the v2 ones (--v2-ops false)");
    }
    let plan = load::Plan {
        mix,
        fail_vpa_percent: cfg.fail_vpa_percent,
        reject_account_percent: cfg.reject_account_percent,
        reverse_account_percent: v2(cfg.reverse_account_percent),
        queue_payout_percent: v2(cfg.queue_payout_percent),
        refund_fail_percent: cfg.refund_fail_percent,
        batch_max_items: cfg.batch_max_items,
        batch_invalid_percent: cfg.batch_invalid_percent,
        credit_after: Duration::from_millis(cfg.server_settle_delay_ms.saturating_add(1_000)),
        seed: cfg.seed,
    };
    let driver = Arc::new(load::Driver::new(api.clone(), live, stats.clone(), plan));
    let total = warmup + Duration::from_secs(cfg.duration_secs);
    let target_rate = (cfg.mode == Mode::Open).then_some(cfg.rate);
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
                eprintln!(
                    "{}",
                    driver
                        .stats
                        .progress_line(start.elapsed(), total, target_rate, in_flight)
                );
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
    let mut model = Model {
        merchants: driver.live.iter().map(Live::freeze).collect(),
        payin_failures_allowed: cfg.server_payin_failure_rate.0 > 0,
        webhooks_expected: sink.is_some(),
        v2: cfg.v2_ops,
        queued_may_remain: !cfg.cancel_queued_after_load,
    };
    let summary = Summary::from_stats(cfg, &stats);
    let (observed, audit) = if cfg.audit {
        if !cfg.quiet {
            eprintln!(
                "load done; waiting for settlement and auditing {} pay-ins, {} payouts and {} refunds",
                model.acknowledged_payins(),
                model.acknowledged_payouts(),
                model.acknowledged_refunds()
            );
        }
        let limits = audit::Limits {
            settle: Duration::from_secs(cfg.settle_timeout_secs),
            read: Duration::from_secs(cfg.audit_read_timeout_secs),
            webhooks: Duration::from_secs(cfg.webhook_wait_secs),
        };
        let waiting = Arc::new(audit::Waiting::default());
        let wait_progress = (!cfg.quiet).then(|| {
            let waiting = waiting.clone();
            tokio::spawn(async move {
                let began = Instant::now();
                let mut tick = tokio::time::interval_at(
                    (began + Duration::from_secs(1)).into(),
                    Duration::from_secs(1),
                );
                loop {
                    tick.tick().await;
                    if let Some(line) = waiting.line(began.elapsed(), &limits) {
                        eprintln!("{line}");
                    }
                }
            })
        });
        let observed = audit::observe(
            &api,
            &mut model,
            &cfg.admin_key,
            sink.as_deref(),
            limits,
            &waiting,
        )
        .await;
        if let Some(p) = wait_progress {
            p.abort();
        }
        let report = audit::audit(&model, &observed);
        (Some(observed), Some(report))
    } else {
        (None, None)
    };
    meta.finish();
    Ok(Outcome {
        model,
        summary,
        meta,
        observed,
        audit,
    })
}
