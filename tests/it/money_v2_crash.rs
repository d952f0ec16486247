//! Issue 10's crash case, black box: a real kill -9 while pending refunds,
//! a settlement in flight and queued payouts all wait at once. After the
//! restart the rail settles the refunds and the settlement, the queued
//! payouts stay queued until a credit makes room and are then paid out, and
//! every transition happened exactly once: one hold and one settle transfer
//! per record, the books summing to zero, the same after a second restart.

use crate::api_support::{balance, fund, list_all};
use crate::common::{payin_body, Server};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// The kinds of every transfer with `reference`, counted.
async fn kinds(server: &Server, reference: &str) -> BTreeMap<String, u64> {
    let path = format!("/api/v1/ledger/transfers?reference={reference}");
    let mut out = BTreeMap::new();
    for t in list_all(server, &path, &server.admin_key, 100).await {
        *out.entry(t["kind"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    out
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

async fn status(server: &Server, path: &str) -> String {
    let r = server.get(path, &server.admin_key).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    r.data()["status"].as_str().unwrap().to_owned()
}

async fn books_balance(server: &Server) {
    let r = server
        .get("/api/v1/ledger/accounts", &server.admin_key)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for total in r.data()["totals"].as_array().unwrap() {
        assert_eq!(total["balance"], json!(0), "{}", r.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_with_refunds_a_settlement_and_queued_payouts_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The rail settles 5 s after creation: everything below is still in
    // flight when the server is killed (a due time is fixed when written).
    let mut server = Server::start_in(&data, &["--settle-delay-ms", "5000"]);
    let admin = server.admin_key.clone();
    let (m_id, m) = server.create_user(&admin, "merchant", json!({})).await;
    let r = server
        .patch(
            "/api/v1/profile",
            &m,
            json!({ "settlement_account": {
                "name": "Acme Stores", "account_number": "123456789012", "ifsc": "HDFC0001234"
            }}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // 10,000 completed; 1,500 of it refunding; the rest swept into a settlement.
    let payin = fund(&server, &m, "CRASH-FUND", json!(10_000)).await;
    let payin_id = payin["id"].as_str().unwrap().to_owned();
    let mut refunds = Vec::new();
    for amount in [1_000, 500] {
        let r = server
            .post(
                &format!("/api/v1/payments/{payin_id}/refunds"),
                &m,
                json!({ "amount": amount, "reason": "crash test" }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        refunds.push(r.data()["id"].as_str().unwrap().to_owned());
    }
    let r = server
        .post(
            "/api/v1/settlements",
            &admin,
            json!({ "merchant_id": m_id }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.data()["amount"], json!(8_500), "{}", r.text);
    let settlement = r.data()["id"].as_str().unwrap().to_owned();
    // Nothing is available now: these two wait in the queue.
    let mut queued = Vec::new();
    for (i, amount) in [300, 200].into_iter().enumerate() {
        let body = json!({
            "amount": amount, "reference_id": format!("Q-{i}"), "queue_if_low_balance": true,
            "beneficiary": { "name": "Ravi Kumar", "account_number": "123456789012", "ifsc": "HDFC0000001" },
        });
        let r = server.post("/api/v1/payouts", &m, body).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.data()["status"], "queued", "{}", r.text);
        queued.push(r.data()["id"].as_str().unwrap().to_owned());
    }
    let b = balance(&server, &m, "").await;
    assert_eq!(
        (b["available"].clone(), b["held"].clone()),
        (json!(0), json!(10_000))
    );

    server.kill9();
    // Restarted, the rail settles what falls due (and new writes after 50 ms).
    let mut server = Server::start_in(&data, &[]);
    for id in &refunds {
        server
            .wait_for(
                &format!("/api/v1/refunds/{id}"),
                &admin,
                Duration::from_secs(20),
                |r| r.data()["status"] == "processed",
            )
            .await;
    }
    server
        .wait_for(
            &format!("/api/v1/settlements/{settlement}"),
            &admin,
            Duration::from_secs(20),
            |r| r.data()["status"] == "processed",
        )
        .await;
    // No credit since: the queue still waits, in order.
    for id in &queued {
        assert_eq!(
            status(&server, &format!("/api/v1/payouts/{id}")).await,
            "queued"
        );
    }

    // A pay-in completes: its credit pays the queue out, head first.
    let r = server
        .post(
            "/api/v1/payments",
            &m,
            payin_body("CRASH-CREDIT", json!(2_000)),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    for id in &queued {
        server
            .wait_for(
                &format!("/api/v1/payouts/{id}"),
                &admin,
                Duration::from_secs(20),
                |r| r.data()["status"] == "processed",
            )
            .await;
    }

    verify(&server, &refunds, &settlement, &queued).await;
    let b: Value = balance(&server, &m, "").await;
    assert_eq!(
        (b["available"].clone(), b["held"].clone()),
        (json!(1_500), json!(0)),
        "{b}"
    );

    // A second start changes nothing.
    server.terminate();
    let server = Server::start_in(&data, &[]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    verify(&server, &refunds, &settlement, &queued).await;
    let again = balance(&server, &m, "").await;
    assert_eq!(again["available"], b["available"]);
    assert_eq!(again["held"], b["held"]);
}

/// One hold and one settle per record, and books summing to zero.
async fn verify(server: &Server, refunds: &[String], settlement: &str, queued: &[String]) {
    for id in refunds {
        assert_eq!(
            kinds(server, id).await,
            counts(&[("refund_hold", 1), ("refund_settle", 1)]),
            "refund {id}"
        );
        assert_eq!(
            status(server, &format!("/api/v1/refunds/{id}")).await,
            "processed"
        );
    }
    assert_eq!(
        kinds(server, settlement).await,
        counts(&[("settlement_hold", 1), ("settlement_settle", 1)]),
        "settlement {settlement}"
    );
    for id in queued {
        assert_eq!(
            kinds(server, id).await,
            counts(&[("payout_hold", 1), ("payout_settle", 1)]),
            "payout {id}"
        );
    }
    books_balance(server).await;
}
