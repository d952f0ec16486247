//! The harness's command line (`tijori-loadtest --help`), the scenario mix,
//! and the loopback-only target check.

use clap::{ArgAction, Parser, ValueEnum};
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Constant arrival rate (`--rate`), latency from the scheduled send time.
    Open,
    /// `--concurrency` workers, each sending its next request when the last one is answered.
    Closed,
}

#[derive(Clone, Debug, Parser)]
#[command(
    name = "tijori-loadtest",
    version,
    about = "Load test and money audit for a Tijori server on loopback",
    long_about = "Sets up merchants and api_users through the admin API, drives a weighted mix of \
                  pay-ins, payouts (some queued if the balance is low), refunds, payout cancels, \
                  batch payouts, balance reads, listings and lookups at a constant arrival rate \
                  (open loop, coordinated-omission corrected) or with a fixed number of workers \
                  (closed loop), then waits for settlement and audits every acknowledged payment, \
                  refund, payout, cancel, balance, ledger and webhook through the API, and the books (admin \
                  GET /ledger/accounts: every currency sums to exactly 0, each merchant's \
                  accounts equal its balance). Exits 1 when the audit fails. \
                  Only loopback targets are accepted."
)]
pub struct Config {
    /// Base URL of the server; the host must be loopback (127.0.0.0/8, ::1, localhost).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,

    /// An admin API key of the server (e.g. its --admin-key).
    #[arg(long, env = "TIJORI_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: String,

    /// Merchants to create.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub merchants: u32,

    /// api_users per merchant (they send the traffic; 0: the merchant's own key does).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub api_users_per_merchant: u32,

    /// Open loop (constant arrival rate) or closed loop (fixed concurrency).
    #[arg(long, value_enum, default_value = "open")]
    pub mode: Mode,

    /// Target arrival rate, requests per second (open loop).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=200_000))]
    pub rate: u32,

    /// Workers (closed loop).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,

    /// Most requests in flight (open loop); a request that finds no free slot
    /// waits for one and is counted as late (its latency still runs from its
    /// scheduled time).
    #[arg(long, default_value_t = 1_024, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_in_flight: u32,

    /// Operation weights: payin, payout, refund, cancel, batch_payouts,
    /// balance, list, get (SPEC §12–13 for refund, cancel and batch_payouts).
    #[arg(long, default_value = DEFAULT_MIX, value_parser = parse_mix)]
    pub mix: Mix,

    /// The SPEC v2 money operations (§12 refunds, §13 queued payouts,
    /// cancels, batch payouts, reversals). `false` zeroes the refund, cancel
    /// and batch_payouts weights and the queue, reversal and refund-failure
    /// shares: the v1 mix, for a server without §12–13.
    #[arg(long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1, default_missing_value = "true")]
    pub v2_ops: bool,

    /// Share of payouts sent with queue_if_low_balance: true (SPEC §13;
    /// answered 201 `pending` or `queued`), percent.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub queue_payout_percent: u32,

    /// Share of payouts sent to account 000000000001, which the sandbox
    /// reverses after processing (expected `reversed`), percent.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub reverse_account_percent: u32,

    /// Share of refunds sent with reason fail@sandbox (expected `failed`), percent.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub refund_fail_percent: u32,

    /// Most payouts in one POST /payouts/batch (each batch has 2 to this many).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=1_000))]
    pub batch_max_items: u32,

    /// Share of batches with one invalid item (a malformed IFSC: per-item
    /// 400, nothing created), percent.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub batch_invalid_percent: u32,

    /// After the load, cancel the payouts still `queued` (so that every
    /// payout ends terminal); `false` leaves them queued, which the audit
    /// then accepts for payouts sent with queue_if_low_balance.
    #[arg(long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1, default_missing_value = "true")]
    pub cancel_queued_after_load: bool,

    /// Seconds of load before measuring (their requests still count in the audit).
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,

    /// Seconds of measured load after the warm-up.
    #[arg(long, default_value_t = 20)]
    pub duration_secs: u64,

    /// Stop after this many requests in all (warm-up included).
    #[arg(long)]
    pub max_requests: Option<u64>,

    /// Audit money, records, ledgers, the books (zero-sum) and webhooks after the run.
    #[arg(long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1, default_missing_value = "true")]
    pub audit: bool,

    /// Run the built-in webhook sink and point every merchant's webhook_url at
    /// it (the server needs --webhook-allow-private).
    #[arg(long, action = ArgAction::Set, default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    pub webhook_sink: bool,

    /// Loopback addresses the sink listens on, each on a free port
    /// (merchant i uses address i mod N): 1 (the default) puts every
    /// merchant on 127.0.0.1, one receiving host; 0 means one address per
    /// merchant (127.0.0.1, then 127.77.x.y), like merchants with their own
    /// endpoints (the server limits concurrent deliveries per host).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=1_000))]
    pub webhook_sink_hosts: u32,

    /// The server's --payin-failure-rate (0 to 1): above 0, a pay-in without
    /// fail@sandbox may also end `failed`.
    #[arg(long, default_value = "0", value_parser = parse_share)]
    pub server_payin_failure_rate: Share,

    /// The server's --settle-delay-ms: a pay-in's net counts as spendable for
    /// payouts this long (plus a second) after it was acknowledged.
    #[arg(long, default_value_t = 1_000)]
    pub server_settle_delay_ms: u64,

    /// Share of pay-ins sent with payer_vpa fail@sandbox (expected `failed`), percent.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub fail_vpa_percent: u32,

    /// Share of payouts sent to account 000000000000 (expected `rejected`), percent.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub reject_account_percent: u32,

    /// Time allowed for one request.
    #[arg(long, default_value_t = 10_000)]
    pub request_timeout_ms: u64,

    /// Most time to wait for settlement (no pending pay-ins or payouts) before auditing.
    #[arg(long, default_value_t = 120)]
    pub settle_timeout_secs: u64,

    /// Most time to read every merchant's records, balance and ledger for the audit.
    #[arg(long, default_value_t = 300)]
    pub audit_read_timeout_secs: u64,

    /// Most time to wait for the last webhooks before counting losses.
    #[arg(long, default_value_t = 60)]
    pub webhook_wait_secs: u64,

    /// Seed of the operation, merchant and amount choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Write the JSON report here.
    #[arg(long)]
    pub json_out: Option<PathBuf>,

    /// Write a self-contained HTML latency-over-time plot here.
    #[arg(long)]
    pub html_out: Option<PathBuf>,

    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// The default `--mix`.
pub const DEFAULT_MIX: &str =
    "payin=55,payout=10,refund=5,cancel=3,batch_payouts=2,balance=12,list=8,get=5";

/// How many operations there are.
pub const OPS: usize = 8;

/// The operations, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Payin,
    Payout,
    /// `POST /payments/:id/refunds` (SPEC §12).
    Refund,
    /// `POST /payouts/:id/cancel` (SPEC §13).
    Cancel,
    /// `POST /payouts/batch` (SPEC §13).
    BatchPayouts,
    Balance,
    List,
    Get,
}

impl Op {
    pub const ALL: [Op; OPS] = [
        Op::Payin,
        Op::Payout,
        Op::Refund,
        Op::Cancel,
        Op::BatchPayouts,
        Op::Balance,
        Op::List,
        Op::Get,
    ];

    /// The operations of SPEC v2 (§12–13), off with `--v2-ops false`.
    pub const V2: [Op; 3] = [Op::Refund, Op::Cancel, Op::BatchPayouts];

    pub fn name(self) -> &'static str {
        match self {
            Op::Payin => "payin",
            Op::Payout => "payout",
            Op::Refund => "refund",
            Op::Cancel => "cancel",
            Op::BatchPayouts => "batch_payouts",
            Op::Balance => "balance",
            Op::List => "list",
            Op::Get => "get",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Weights of the operations, indexed by `Op::index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix(pub [u32; OPS]);

impl Mix {
    /// The mix without the SPEC v2 operations.
    pub fn without_v2(mut self) -> Mix {
        for op in Op::V2 {
            self.0[op.index()] = 0;
        }
        self
    }

    pub fn total(&self) -> u64 {
        self.0.iter().map(|w| u64::from(*w)).sum()
    }

    /// The operation at `ticket` in `0..total()`.
    pub fn pick(&self, ticket: u64) -> Op {
        let mut left = ticket;
        for op in Op::ALL {
            let w = u64::from(self.0[op.index()]);
            if left < w {
                return op;
            }
            left -= w;
        }
        Op::Payin
    }
}

pub fn parse_mix(text: &str) -> Result<Mix, String> {
    let mut weights = [0u32; OPS];
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, weight) = part
            .split_once('=')
            .ok_or_else(|| format!("'{part}' is not name=weight"))?;
        let op = Op::ALL
            .into_iter()
            .find(|op| op.name() == name.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = Op::ALL.iter().map(|op| op.name()).collect();
                format!("unknown operation '{name}' ({})", names.join(", "))
            })?;
        weights[op.index()] = weight
            .trim()
            .parse()
            .map_err(|_| format!("'{weight}' is not a whole number"))?;
    }
    let mix = Mix(weights);
    if mix.total() == 0 {
        return Err("the weights add up to 0".into());
    }
    Ok(mix)
}

/// A share from 0 to 1 in parts per million (parsed without a float).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share(pub u32);

pub fn parse_share(text: &str) -> Result<Share, String> {
    let text = text.trim();
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!("'{text}' is not a decimal from 0 to 1"));
    }
    let mut ppm: u64 = int
        .parse::<u64>()
        .map_err(|e| e.to_string())?
        .saturating_mul(1_000_000);
    for (i, c) in frac.bytes().take(6).enumerate() {
        ppm += u64::from(c - b'0') * 10u64.pow(5 - i as u32);
    }
    if ppm > 1_000_000 {
        return Err("the share must be between 0 and 1".into());
    }
    Ok(Share(ppm as u32))
}

/// A target the harness may load: `http://<loopback host>:<port>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `http://host:port`, no trailing slash.
    pub base: String,
    pub host: String,
    pub port: u16,
}

/// Accepts only `http://` URLs whose host is in 127.0.0.0/8, `::1` or
/// `localhost` (which `resolve_loopback` then checks resolves to loopback
/// only). No path, query or credentials.
pub fn check_target(url: &str) -> Result<Target, String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("'{url}' is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("'{url}': only http:// targets are supported"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("'{url}' has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("'{url}': credentials in the URL are not accepted"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!(
            "'{url}': give the base URL only (no path or query)"
        ));
    }
    let host = authority.host().to_owned();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = if bare.eq_ignore_ascii_case("localhost") {
        true
    } else {
        match bare.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => v4.octets()[0] == 127,
            Ok(IpAddr::V6(v6)) => v6 == Ipv6Addr::LOCALHOST,
            Err(_) => false,
        }
    };
    if !loopback {
        return Err(format!(
            "refusing target host '{host}': only loopback (127.0.0.0/8, ::1, localhost) may be loaded"
        ));
    }
    let port = authority.port_u16().unwrap_or(80);
    Ok(Target {
        base: format!("http://{}:{port}", host),
        host,
        port,
    })
}

/// Resolves the target's host and refuses it unless every address is loopback.
pub async fn resolve_loopback(target: &Target) -> Result<(), String> {
    let host = target.host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<_> = tokio::net::lookup_host((host, target.port))
        .await
        .map_err(|e| format!("resolving {host}: {e}"))?
        .collect();
    if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
        return Err(format!(
            "refusing '{host}': it resolves to {addrs:?}, not only loopback"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets() {
        assert!(check_target("http://127.0.0.1:8080").is_ok());
        assert!(check_target("http://127.3.4.5:1/").is_ok());
        assert!(check_target("http://localhost:8080").is_ok());
        assert!(check_target("http://[::1]:8080").is_ok());
        assert_eq!(
            check_target("http://[::1]:9").map(|t| t.base),
            Ok("http://[::1]:9".into())
        );
        for bad in [
            "http://10.0.0.1:8080",
            "http://192.168.1.1",
            "http://128.0.0.1:80",
            "http://example.com",
            "http://127.0.0.1.nip.io",
            "http://[::2]:80",
            "https://127.0.0.1:443",
            "http://127.0.0.1:80/api",
            "http://user@127.0.0.1:80",
            "ftp://127.0.0.1",
        ] {
            assert!(check_target(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn the_v2_operations_are_on_by_default_and_can_be_turned_off() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["tijori-loadtest", "--admin-key", "k"];
            args.extend_from_slice(extra);
            Config::try_parse_from(args).map_err(|e| e.to_string())
        };
        let default = parse(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(default.v2_ops && default.cancel_queued_after_load);
        assert_eq!(default.mix.0[Op::Refund.index()], 5);
        assert_eq!(
            (
                default.queue_payout_percent,
                default.reverse_account_percent,
                default.refund_fail_percent
            ),
            (20, 2, 10)
        );
        let off = parse(&["--v2-ops", "false", "--cancel-queued-after-load=false"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!off.v2_ops && !off.cancel_queued_after_load);
        assert!(parse(&["--v2-ops"]).is_ok_and(|c| c.v2_ops));
        assert!(parse(&["--batch-max-items", "1"]).is_err());
        assert!(parse(&["--reverse-account-percent", "101"]).is_err());
    }

    #[test]
    fn mix_and_share() {
        let mix = parse_mix("payin=60,payout=10,balance=15,list=10,get=5").unwrap_or(Mix([0; OPS]));
        assert_eq!(mix.0, [60, 10, 0, 0, 0, 15, 10, 5]);
        assert_eq!(mix.pick(0), Op::Payin);
        assert_eq!(mix.pick(59), Op::Payin);
        assert_eq!(mix.pick(60), Op::Payout);
        assert_eq!(mix.pick(70), Op::Balance);
        assert_eq!(mix.pick(99), Op::Get);
        assert!(parse_mix("payin=0").is_err());
        assert!(parse_mix("refunds=1").is_err());
        let v2 = parse_mix(DEFAULT_MIX).unwrap_or(Mix([0; OPS]));
        assert_eq!(v2.0, [55, 10, 5, 3, 2, 12, 8, 5]);
        assert_eq!(v2.total(), 100);
        assert_eq!(v2.pick(65), Op::Refund);
        assert_eq!(v2.pick(70), Op::Cancel);
        assert_eq!(v2.pick(73), Op::BatchPayouts);
        assert_eq!(v2.without_v2().0, [55, 10, 0, 0, 0, 12, 8, 5]);
        assert!(parse_mix("batch_payouts=1").is_ok());
        assert_eq!(parse_share("0.05"), Ok(Share(50_000)));
        assert_eq!(parse_share("1"), Ok(Share(1_000_000)));
        assert!(parse_share("1.5").is_err());
        assert!(parse_share("-0.1").is_err());
    }
}
