//! The load harness against the real server, and its money audit.
//!
//! (a) A short open-loop run (a few merchants, modest rate, webhook sink
//!     on) against a `tijori` started by `common::Server` must audit clean:
//!     every acknowledged pay-in and payout present and settled per the
//!     sandbox rules, balances equal to the harness's own model, ledgers
//!     (SPEC §11 transfers, seq 1..n) running to the balances, the books
//!     (admin `GET /ledger/accounts`) summing to exactly 0 with each
//!     merchant's accounts equal to its balance, every settled record's
//!     webhook received with a valid signature.
//! (b) The audit must fail, naming exactly what is wrong, when the server
//!     lost a payment (the model holds an acknowledged id the server never
//!     had), when a balance is one paisa away from the model, when the
//!     server's balance itself was altered by one paisa, when the books do
//!     not sum to 0, and when a webhook was lost.
//!
//! The harness is used as a library (a path dev-dependency): cargo then
//! builds it once as part of this test binary, which is faster than
//! building and spawning its own binary, and lets (b) re-audit the very
//! same observations with tampered inputs without a second load run.

use crate::common::Server;
use clap::Parser;
use tijori_loadtest::audit::{audit, Problem, SeenBooks};
use tijori_loadtest::config::Config;
use tijori_loadtest::model::Payin;
use tijori_loadtest::money;

fn harness(server: &Server, extra: &[&str]) -> Config {
    let mut args = vec![
        "tijori-loadtest",
        "--target",
        &server.base,
        "--admin-key",
        &server.admin_key,
        "--webhook-sink",
        "--server-settle-delay-ms",
        "50",
        "--settle-timeout-secs",
        "20",
        "--webhook-wait-secs",
        "20",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    Config::parse_from(args)
}

/// Server flags: private webhook URLs allowed (the sink is on loopback),
/// quick retries, and room for the sink's host so delivery is not deferred.
const SERVER_ARGS: [&str; 5] = [
    "--webhook-allow-private",
    "--webhook-retry-base-ms",
    "200",
    "--webhook-per-host-max",
    "16",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_audits_clean() {
    // The rail takes 400 ms, so that some cancels reach a payout before it
    // and some payouts are queued behind pay-ins still pending.
    let mut args = SERVER_ARGS.to_vec();
    args.extend(["--settle-delay-ms", "400"]);
    let server = Server::start(&args);
    let mut cfg = harness(
        &server,
        &[
            "--merchants",
            "3",
            "--api-users-per-merchant",
            "2",
            "--rate",
            "80",
            "--warmup-secs",
            "1",
            "--duration-secs",
            "7",
            "--reverse-account-percent",
            "10",
        ],
    );
    cfg.server_settle_delay_ms = 400;
    let outcome = tijori_loadtest::run(&cfg).await.expect("the run completes");
    let report = outcome.text();
    let audit = outcome.audit.as_ref().expect("the audit ran");
    assert!(audit.passed(), "the audit must be clean:\n{report}");
    assert!(audit.settled, "{report}");

    // The run really moved money through every path the audit checks.
    let s = &outcome.summary;
    assert!(s.achieved_rate > 60.0, "achieved rate too low:\n{report}");
    // No request may fail, but a cancel the rail beat to its payout.
    for (code, n) in &s.all.errors {
        assert_eq!(
            code.as_str(),
            "invalid_status_transition",
            "{n} failed:\n{report}"
        );
    }
    let c = &audit.checked;
    assert_eq!(c.merchants, 3);
    assert!(c.payins >= 250, "{report}");
    assert!(c.payouts >= 10, "{report}");
    for status in [
        "payin_completed",
        "payin_failed",
        "payout_processed",
        "payout_rejected",
        "payout_reversed",
        "payout_cancelled",
        "refund_processed",
        "refund_failed",
    ] {
        assert!(
            c.statuses.get(status).copied().unwrap_or(0) > 0,
            "no {status}:\n{report}"
        );
    }
    let log = outcome
        .observed
        .as_ref()
        .and_then(|o| o.webhooks.as_ref())
        .expect("the sink's log");
    assert!(log.bad_signatures.is_empty());
    let settled = c.statuses.values().sum::<u64>();
    assert_eq!(log.records.len() as u64, settled, "{report}");
    assert!(c.ledger_entries >= c.payins / 2 + c.payouts, "{report}");
    // The books were read: the merchants' two accounts and the platform's.
    assert!(c.ledger_accounts >= 3 * 2 + 5, "{report}");
    let books = &outcome.observed.as_ref().expect("observations").books;
    assert_eq!(books.fetch_error, None);
    assert!(
        books.totals.iter().all(|t| t.balance == Some(0)) && !books.totals.is_empty(),
        "{books:?}"
    );

    // The reports: run metadata that names this very server, the
    // uncorrected latency over the same requests with the same outcomes,
    // per-second status codes adding up to every answer, and the files.
    let j = outcome.json();
    let run = &j["run"];
    assert_eq!(run["server"]["pid"], server.child.id(), "{run}");
    assert_eq!(run["server"]["version"], env!("CARGO_PKG_VERSION"), "{run}");
    assert!(
        run["server"]["healthz"]
            .as_str()
            .is_some_and(|h| h.starts_with("200 ")),
        "{run}"
    );
    let cmdline = run["server"]["cmdline"].to_string();
    assert!(cmdline.contains("--webhook-allow-private"), "{cmdline}");
    assert!(
        !cmdline.contains(&server.admin_key),
        "the admin key must be redacted"
    );
    assert!(!j.to_string().contains(&server.admin_key));
    assert!(run["started_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(run["host"]["load_average_before"].is_array(), "{run}");
    assert_eq!(j["uncorrected"]["count"], j["all"]["count"]);
    assert_eq!(j["uncorrected"]["ok"], j["all"]["ok"]);
    assert!(
        j["uncorrected"]["ok"].as_u64() > Some(400),
        "{}",
        j["uncorrected"]
    );
    assert_eq!(j["sent_in_window"], j["answered_in_window"]);
    let per_second: u64 = j["timeline"]
        .as_array()
        .expect("a timeline")
        .iter()
        .flat_map(|t| t["status_codes"].as_object().expect("codes").values())
        .filter_map(serde_json::Value::as_u64)
        .sum();
    assert_eq!(per_second, j["answered"].as_u64().unwrap_or(0));
    assert_eq!(s.statuses.values().sum::<u64>(), s.answered);

    let dir = tempfile::tempdir().expect("a temp dir");
    let mut files = cfg.clone();
    files.json_out = Some(dir.path().join("r.json"));
    files.html_out = Some(dir.path().join("r.html"));
    outcome
        .write_files(&files)
        .expect("the reports are written");
    let html = std::fs::read_to_string(dir.path().join("r.html")).expect("r.html");
    assert!(html.contains("PASSED") && html.contains("<code>r.hgrm</code>"));
    assert!(!html.contains("src=") && !html.contains("href="));
    let hgrm = std::fs::read_to_string(dir.path().join("r.hgrm")).expect("r.hgrm");
    assert!(hgrm.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
    assert!(
        hgrm.contains(&format!("Total count    = {:>12}]", s.all.count)),
        "{hgrm}"
    );
    for name in ["r.uncorrected.hgrm", "r.payin.hgrm", "r.payout.hgrm"] {
        assert!(dir.path().join(name).exists(), "{name}");
    }
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("r.json")).expect("r.json"))
            .expect("JSON");
    assert_eq!(written["run"]["server"]["pid"], server.child.id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_the_audit_names_lost_and_altered_money() {
    let server = Server::start(&SERVER_ARGS);
    let cfg = harness(
        &server,
        &[
            "--merchants",
            "2",
            "--api-users-per-merchant",
            "1",
            "--rate",
            "60",
            "--warmup-secs",
            "0",
            "--duration-secs",
            "3",
            "--mix",
            "payin=80,payout=20",
        ],
    );
    let outcome = tijori_loadtest::run(&cfg).await.expect("the run completes");
    let report = outcome.text();
    let clean = outcome.audit.as_ref().expect("the audit ran");
    assert!(clean.passed(), "the untouched run must be clean:\n{report}");
    let observed = outcome.observed.clone().expect("observations");
    let model = &outcome.model;

    // 1. The server lost a payment: the model has an acknowledged pay-in
    //    the server never had. Exactly one problem, naming it.
    let mut lost = model.clone();
    let ghost = "txn_0000000000007000800000000000dead".to_owned();
    lost.merchants[0].payins.push(Payin {
        id: ghost.clone(),
        order_id: "never-sent".into(),
        amount: 12_345,
        fee: 0,
        expect_fail: false,
    });
    assert_eq!(
        audit(&lost, &observed).problems,
        vec![Problem::MissingPayment {
            merchant: 0,
            id: ghost
        }]
    );

    // 2. The model's expected balance is one paisa off: one completed
    //    pay-in modelled one paisa larger. The record and the two balance
    //    fields it feeds are named, each off by exactly one paisa.
    let m = 1;
    let seen = &observed.merchants[m];
    let (k, payin) = model.merchants[m]
        .payins
        .iter()
        .enumerate()
        .find(|(_, p)| {
            seen.payments
                .iter()
                .any(|s| s.id == p.id && s.status == "completed")
        })
        .expect("a completed pay-in");
    let mut off = model.clone();
    off.merchants[m].payins[k].amount += 1;
    let available = seen.balance.available.unwrap();
    let total_payins = seen.balance.total_payins.unwrap();
    assert_eq!(
        audit(&off, &observed).problems,
        vec![
            Problem::PaymentField {
                id: payin.id.clone(),
                field: "amount",
                expected: money::render(payin.amount + 1),
                actual: money::render(payin.amount),
            },
            Problem::Balance {
                merchant: m,
                field: "available",
                expected: i128::from(available) + 1,
                actual: Some(available),
            },
            Problem::Balance {
                merchant: m,
                field: "total_payins",
                expected: i128::from(total_payins) + 1,
                actual: Some(total_payins),
            },
        ]
    );

    // 3. The server's balance was altered by one paisa: the balance check,
    //    the ledger (its lines' end and its last line) and the books (the
    //    merchant's available account) all catch it.
    let mut altered = observed.clone();
    let shown = observed.merchants[0].balance.available.unwrap();
    altered.merchants[0].balance.available = Some(shown - 1);
    let problems = audit(model, &altered).problems;
    let kinds: Vec<_> = problems.iter().map(Problem::kind).collect();
    assert_eq!(
        kinds,
        ["balance", "ledger", "ledger", "account_balance"],
        "{problems:?}"
    );
    assert!(matches!(
        &problems[0],
        Problem::Balance { merchant: 0, field: "available", expected, actual: Some(a) }
            if *expected == i128::from(*a) + 1
    ));
    let account = format!("merchant:{}:available", model.merchants[0].id);
    let in_books = observed
        .books
        .accounts
        .iter()
        .find(|a| a.account == account)
        .expect("the merchant's available account is listed");
    assert_eq!(in_books.balance, Some(i128::from(shown)));
    assert_eq!(
        problems[3],
        Problem::AccountBalance {
            merchant: 0,
            account,
            field: "available",
            books: in_books.balance_text.clone(),
            balance: Some(shown - 1),
        }
    );

    // 3b. The books do not sum to 0: one paisa more in platform:fees, with
    //     its credits (so the account is consistent in itself) and nothing
    //     debited for it. Exactly one problem, naming the total.
    let mut unbalanced = observed.clone();
    let fees = unbalanced
        .books
        .accounts
        .iter_mut()
        .find(|a| a.account == "platform:fees")
        .expect("platform:fees is listed");
    fees.credits_posted = Some(fees.credits_posted.unwrap() + 1);
    fees.balance = Some(fees.balance.unwrap() + 1);
    let inr = unbalanced
        .books
        .totals
        .iter_mut()
        .find(|t| t.currency == "INR")
        .expect("an INR total");
    assert_eq!(inr.balance, Some(0));
    inr.balance = Some(1);
    inr.balance_text = "0.01".into();
    assert_eq!(
        audit(model, &unbalanced).problems,
        vec![Problem::LedgerTotal {
            currency: "INR".into(),
            balance: "0.01".into(),
        }]
    );

    // 3c. The books could not be read: named, not passed over.
    let mut unread = observed.clone();
    unread.books = SeenBooks {
        fetch_error: Some("403".into()),
        ..SeenBooks::default()
    };
    let kinds: Vec<_> = audit(model, &unread)
        .problems
        .iter()
        .map(Problem::kind)
        .collect();
    assert_eq!(kinds, ["ledger_accounts"]);

    // 4. A lost webhook: one settled record's events removed from the log.
    let mut no_hook = observed.clone();
    let log = no_hook.webhooks.as_mut().expect("the sink's log");
    let id = observed.merchants[0].payments[0].id.clone();
    let status = observed.merchants[0].payments[0].status.clone();
    assert!(log.records.remove(&id).is_some());
    assert_eq!(
        audit(model, &no_hook).problems,
        vec![Problem::WebhookLost { id, status }]
    );
}
