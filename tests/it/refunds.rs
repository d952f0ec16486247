//! Refunds (SPEC §12), black-box: full, partial and default refunds, the
//! 1.00 minimum, refunds only of completed pay-ins, the sum of refunds
//! never above the pay-in (also under 20 concurrent requests), the hold
//! from `available`, idempotency, the rail's verdicts and their events,
//! scopes, the manual path, and the ledger's zero sum after all of it.

use crate::api_support::{
    assert_error, assert_money, avail_held, balance, create_payin, create_payout, fund, list_all,
    paise, rupees, set_payment_status, NO_AUTO_SETTLE,
};
use crate::common::{payin_body, payout_body, Server};
use serde_json::{json, Value};
use std::time::Duration;

async fn refund(server: &Server, key: &str, payment: &str, body: Value) -> crate::common::Resp {
    server
        .post(&format!("/api/v1/payments/{payment}/refunds"), key, body)
        .await
}

async fn payment(server: &Server, key: &str, id: &str) -> Value {
    let r = server.get(&format!("/api/v1/payments/{id}"), key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.data().clone()
}

async fn set_refund_status(server: &Server, id: &str, status: &str) -> crate::common::Resp {
    server
        .post(
            &format!("/api/v1/refunds/{id}/status"),
            &server.admin_key,
            json!({ "status": status, "reason": format!("manual {status}") }),
        )
        .await
}

/// Every currency's accounts sum to zero (`GET /ledger/accounts`).
async fn assert_ledger_zero(server: &Server) -> Value {
    let r = server
        .get("/api/v1/ledger/accounts", &server.admin_key)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let totals = r.data()["totals"].as_array().unwrap().clone();
    assert!(!totals.is_empty(), "{}", r.text);
    for t in totals {
        assert_money(&t["balance"], "0", "a currency's accounts sum to zero");
    }
    r.data().clone()
}

/// The balance of one ledger account, in paise (negative allowed).
fn account_balance(accounts: &Value, name: &str) -> i64 {
    accounts["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == json!(name))
        .map_or(0, |a| {
            let text = a["balance"].to_string();
            match text.strip_prefix('-') {
                Some(abs) => -(paise(abs) as i64),
                None => paise(&text) as i64,
            }
        })
}

#[tokio::test]
async fn full_partial_default_and_manual_refunds() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let admin = server.admin_key.clone();
    let (_merchant, key) = server.create_user(&admin, "merchant", json!({})).await;
    let paid = fund(&server, &key, "rf-1", json!("100.00")).await;
    let pid = paid["id"].as_str().unwrap().to_owned();
    // The manual `completed` keeps its reason on the record.
    assert_eq!(paid["status_reason"], json!("manual completed"));
    assert_money(&paid["refunded_amount"], "0", "nothing refunded yet");

    // A partial refund: held from available at once.
    let r = refund(
        &server,
        &key,
        &pid,
        json!({ "amount": "30", "reason": "damaged" }),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let first = r.data().clone();
    assert!(first["id"].as_str().unwrap().starts_with("rf_"));
    assert_eq!(first["payment_id"], json!(pid));
    assert_eq!(first["status"], json!("pending"));
    assert_eq!(first["reason"], json!("damaged"));
    assert_eq!(first["failure_reason"], Value::Null);
    assert_eq!(first["processed_at"], Value::Null);
    assert_money(&first["amount"], "30", "refund amount");
    let b = balance(&server, &key, "").await;
    assert_eq!(avail_held(&b), ("70".into(), "30".into()));

    // A second partial one, and one under 1.00 that is not the rest.
    let r = refund(&server, &key, &pid, json!({ "amount": 20.5 })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let second = r.data().clone();
    let r = refund(&server, &key, &pid, json!({ "amount": "0.99" })).await;
    assert_error(&r, 400, "invalid_amount");
    for bad in [json!("-1"), json!("1.001"), json!("0"), json!(true)] {
        let r = refund(&server, &key, &pid, json!({ "amount": bad })).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    // More than the rest.
    let r = refund(&server, &key, &pid, json!({ "amount": "49.51" })).await;
    assert_error(&r, 422, "refund_exceeds_payment");

    // No amount: the whole rest.
    let r = refund(&server, &key, &pid, json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let third = r.data().clone();
    assert_money(&third["amount"], "49.5", "the rest");
    let r = refund(&server, &key, &pid, json!({})).await;
    assert_error(&r, 422, "refund_exceeds_payment");

    let p = payment(&server, &key, &pid).await;
    assert_money(&p["refunded_amount"], "100", "refunded_amount");
    let embedded = ids_of(&p["refunds"]);
    assert_eq!(embedded.len(), 3, "{p}");
    assert_eq!(embedded[0], third["id"].as_str().unwrap(), "newest first");
    let b = balance(&server, &key, "").await;
    assert_eq!(avail_held(&b), ("0".into(), "100".into()));

    // The manual path: processed (money leaves), failed (money back, and
    // the pay-in may be refunded by that much again).
    let r = set_refund_status(&server, first["id"].as_str().unwrap(), "processed").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["status"], json!("processed"));
    assert_eq!(r.data()["status_reason"], json!("manual processed"));
    assert!(r.data()["processed_at"].is_string());
    let r = set_refund_status(&server, first["id"].as_str().unwrap(), "failed").await;
    assert_error(&r, 409, "invalid_status_transition");
    let r = set_refund_status(&server, second["id"].as_str().unwrap(), "failed").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["failure_reason"], json!("manual failed"));
    let r = set_refund_status(&server, third["id"].as_str().unwrap(), "pending").await;
    assert_error(&r, 400, "invalid_request");
    let r = server
        .post(
            &format!("/api/v1/refunds/{}/status", third["id"].as_str().unwrap()),
            &key,
            json!({ "status": "processed", "reason": "x" }),
        )
        .await;
    assert_error(&r, 403, "insufficient_permissions");
    let b = balance(&server, &key, "").await;
    assert_eq!(avail_held(&b), ("20.5".into(), "49.5".into()));
    let p = payment(&server, &key, &pid).await;
    assert_money(
        &p["refunded_amount"],
        "79.5",
        "a failed refund no longer counts",
    );
    let r = refund(&server, &key, &pid, json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_money(&r.data()["amount"], "20.5", "the rest again");

    // Reads: one refund, the listing and its filters.
    let r = server
        .get(
            &format!("/api/v1/refunds/{}", first["id"].as_str().unwrap()),
            &key,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["status"], json!("processed"));
    let all = list_all(&server, "/api/v1/refunds", &key, 2).await;
    assert_eq!(all.len(), 4);
    let failed = list_all(&server, "/api/v1/refunds?status=failed", &key, 10).await;
    assert_eq!(ids_of(&json!(failed)), [second["id"].as_str().unwrap()]);
    let of_payment = list_all(
        &server,
        &format!("/api/v1/refunds?payment_id={pid}"),
        &admin,
        3,
    )
    .await;
    assert_eq!(of_payment.len(), 4);
    for bad in [
        "/api/v1/refunds?status=done",
        "/api/v1/refunds?payment_id=po_1",
        "/api/v1/refunds?to=",
        "/api/v1/refunds?sort=amount",
        "/api/v1/refunds?limit=501",
    ] {
        let r = server.get(bad, &key).await;
        assert_error(&r, 400, "invalid_request");
    }

    // Only a completed pay-in is refunded.
    let pending = create_payin(&server, &key, payin_body("rf-2", json!(10))).await;
    let pending_id = pending["id"].as_str().unwrap();
    let r = refund(&server, &key, pending_id, json!({})).await;
    assert_error(&r, 409, "invalid_status_transition");
    let r = set_payment_status(&server, pending_id, "failed").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = refund(&server, &key, pending_id, json!({ "amount": 5 })).await;
    assert_error(&r, 409, "invalid_status_transition");
    let r = refund(
        &server,
        &key,
        "txn_0190f0c0000070008000000000000000",
        json!({}),
    )
    .await;
    assert_error(&r, 404, "not_found");

    let accounts = assert_ledger_zero(&server).await;
    assert_eq!(account_balance(&accounts, "rail:refunds"), 3_000);
}

fn ids_of(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_partial_refunds_never_exceed_the_payment() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let admin = server.admin_key.clone();
    let (_merchant, key) = server.create_user(&admin, "merchant", json!({})).await;
    let paid = fund(&server, &key, "c-1", json!("100.00")).await;
    // Plenty of balance besides: the pay-in's amount is the only limit.
    fund(&server, &key, "c-2", json!("1000.00")).await;
    let pid = paid["id"].as_str().unwrap().to_owned();

    // 20 refunds of 7.00 at once: 14 fit in 100.00 (98.00), 6 do not.
    let server = std::sync::Arc::new(server);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (server, key, pid) = (server.clone(), key.clone(), pid.clone());
            tokio::spawn(async move {
                refund(
                    &server,
                    &key,
                    &pid,
                    json!({ "amount": "7.00", "reason": format!("part {i}") }),
                )
                .await
            })
        })
        .collect();
    let mut responses = Vec::new();
    for task in tasks {
        responses.push(task.await.unwrap());
    }
    let mut created = 0u64;
    let mut refused = 0;
    for r in &responses {
        match r.status.as_u16() {
            201 => created += paise(&r.data()["amount"].to_string()),
            _ => {
                assert_error(r, 422, "refund_exceeds_payment");
                refused += 1;
            }
        }
    }
    assert_eq!(created, 9_800, "exactly the refunds that fit");
    assert_eq!(refused, 6);

    let p = payment(&server, &key, &pid).await;
    assert_money(&p["refunded_amount"], "98", "refunded_amount");
    assert_eq!(p["refunds"].as_array().unwrap().len(), 14);
    let b = balance(&server, &key, "").await;
    assert_eq!(avail_held(&b), ("1002".into(), "98".into()));
    let r = refund(&server, &key, &pid, json!({ "amount": "2.01" })).await;
    assert_error(&r, 422, "refund_exceeds_payment");
    let r = refund(&server, &key, &pid, json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_money(&r.data()["amount"], "2", "the rest");

    // The ledger agrees: 15 holds of the refunds, nothing else moved.
    let transfers = list_all(
        &server,
        "/api/v1/ledger/transfers?kind=refund_hold",
        &admin,
        100,
    )
    .await;
    assert_eq!(transfers.len(), 15);
    let held: u64 = transfers
        .iter()
        .map(|t| paise(&t["amount"].to_string()))
        .sum();
    assert_eq!(held, 10_000);
    let accounts = assert_ledger_zero(&server).await;
    let merchant = paid["merchant_id"].as_str().unwrap();
    assert_eq!(
        account_balance(&accounts, &format!("merchant:{merchant}:held")),
        10_000
    );
}

#[tokio::test]
async fn holds_idempotency_and_scopes() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let admin = server.admin_key.clone();
    let (merchant, key) = server.create_user(&admin, "merchant", json!({})).await;
    let (_other, other_key) = server.create_user(&admin, "merchant", json!({})).await;
    let (_api, api_key) = server.create_user(&key, "api_user", json!({})).await;
    let (_api2, api2_key) = server.create_user(&key, "api_user", json!({})).await;

    // An api_user's pay-in, completed: it and its merchant may refund it.
    let p = create_payin(&server, &api_key, payin_body("s-1", json!(100))).await;
    let pid = p["id"].as_str().unwrap().to_owned();
    assert_eq!(
        set_payment_status(&server, &pid, "completed").await.status,
        200
    );
    let r = refund(&server, &other_key, &pid, json!({ "amount": 1 })).await;
    assert_error(&r, 404, "not_found");
    let r = refund(&server, &api2_key, &pid, json!({ "amount": 1 })).await;
    assert_error(&r, 404, "not_found");
    let r = refund(&server, &api_key, &pid, json!({ "amount": 10 })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let by_api = r.data()["id"].as_str().unwrap().to_owned();
    assert_eq!(r.data()["created_by"], json!(_api));
    let r = refund(&server, &key, &pid, json!({ "amount": 10 })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let by_merchant = r.data()["id"].as_str().unwrap().to_owned();

    // Reads are scoped like pay-ins.
    for (k, id, status) in [
        (&other_key, &by_api, 404),
        (&api2_key, &by_api, 404),
        (&api_key, &by_merchant, 404),
        (&api_key, &by_api, 200),
        (&key, &by_api, 200),
        (&admin, &by_merchant, 200),
    ] {
        let r = server.get(&format!("/api/v1/refunds/{id}"), k).await;
        assert_eq!(r.status, status, "{}", r.text);
    }
    assert_eq!(
        list_all(&server, "/api/v1/refunds", &api_key, 10)
            .await
            .len(),
        1
    );
    assert_eq!(
        list_all(&server, "/api/v1/refunds", &key, 10).await.len(),
        2
    );
    assert!(list_all(&server, "/api/v1/refunds", &other_key, 10)
        .await
        .is_empty());
    let r = server
        .get(
            &format!("/api/v1/refunds?merchant_id={merchant}"),
            &other_key,
        )
        .await;
    assert_error(&r, 403, "insufficient_permissions");
    let mine = list_all(
        &server,
        &format!("/api/v1/refunds?merchant_id={merchant}"),
        &admin,
        10,
    )
    .await;
    assert_eq!(mine.len(), 2);

    // Idempotency: a replay answers the first refund and moves nothing.
    let with_key = |body: Value, k: &'static str| {
        let server = &server;
        let key = key.clone();
        let pid = pid.clone();
        async move {
            server
                .request_with(
                    hyper::Method::POST,
                    &format!("/api/v1/payments/{pid}/refunds"),
                    Some(&key),
                    Some(serde_json::to_vec(&body).unwrap()),
                    &[("content-type", "application/json"), ("idempotency-key", k)],
                )
                .await
        }
    };
    let first = with_key(json!({ "amount": 5, "reason": "late" }), "k-1").await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = with_key(json!({ "reason": "late", "amount": 5 }), "k-1").await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.data()["id"], first.data()["id"]);
    let conflict = with_key(json!({ "amount": 6, "reason": "late" }), "k-1").await;
    assert_error(&conflict, 422, "idempotency_conflict");
    let p = payment(&server, &key, &pid).await;
    assert_money(&p["refunded_amount"], "25", "a replay moved nothing");

    // The hold comes from available: a payout took most of it.
    let b = balance(&server, &key, "").await;
    assert_eq!(avail_held(&b), ("75".into(), "25".into()));
    create_payout(&server, &key, payout_body(json!(70))).await;
    let r = refund(&server, &key, &pid, json!({ "amount": 6 })).await;
    assert_error(&r, 422, "insufficient_balance");
    let p = payment(&server, &key, &pid).await;
    assert_money(
        &p["refunded_amount"],
        "25",
        "a refused refund changed nothing",
    );
    let r = refund(&server, &key, &pid, json!({ "amount": 5 })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_ledger_zero(&server).await;
}

#[tokio::test]
async fn the_rail_settles_refunds_with_events() {
    let server = Server::start(&[]);
    let admin = server.admin_key.clone();
    let (_merchant, key) = server.create_user(&admin, "merchant", json!({})).await;
    let p = create_payin(&server, &key, payin_body("r-1", json!(100))).await;
    let pid = p["id"].as_str().unwrap().to_owned();
    server
        .wait_for(
            &format!("/api/v1/payments/{pid}"),
            &key,
            Duration::from_secs(10),
            |r| r.data()["status"] == json!("completed"),
        )
        .await;
    let ok = refund(
        &server,
        &key,
        &pid,
        json!({ "amount": 10, "reason": "damaged" }),
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    let bad = refund(
        &server,
        &key,
        &pid,
        json!({ "amount": 5, "reason": "fail@sandbox" }),
    )
    .await;
    assert_eq!(bad.status, 201, "{}", bad.text);
    for (r, want) in [(&ok, "processed"), (&bad, "failed")] {
        let id = r.data()["id"].as_str().unwrap();
        let done = server
            .wait_for(
                &format!("/api/v1/refunds/{id}"),
                &key,
                Duration::from_secs(10),
                |r| r.data()["status"] != json!("pending"),
            )
            .await;
        assert_eq!(done.data()["status"], json!(want), "{}", done.text);
    }
    let b = balance(&server, &key, "").await;
    assert_eq!(avail_held(&b), ("90".into(), "0".into()));
    let p = payment(&server, &key, &pid).await;
    assert_money(&p["refunded_amount"], "10", "the failed refund is released");

    // One event per outcome, in the merchant's log.
    for (event, id) in [
        ("refund.processed", ok.data()["id"].clone()),
        ("refund.failed", bad.data()["id"].clone()),
    ] {
        let events = list_all(
            &server,
            &format!("/api/v1/webhooks/events?event={event}"),
            &key,
            10,
        )
        .await;
        assert_eq!(events.len(), 1, "{event}: {events:?}");
        let payload = &events[0]["payload"];
        assert_eq!(payload["refund_id"], id);
        assert_eq!(payload["payment_id"], json!(pid));
    }
    // Exactly one hold and one settlement or release per refund.
    for (id, kind) in [
        (ok.data()["id"].as_str().unwrap(), "refund_settle"),
        (bad.data()["id"].as_str().unwrap(), "refund_release"),
    ] {
        let ts = list_all(
            &server,
            &format!("/api/v1/ledger/transfers?reference={id}"),
            &admin,
            10,
        )
        .await;
        let kinds: Vec<&str> = ts.iter().map(|t| t["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds.len(), 2, "{kinds:?}");
        assert!(
            kinds.contains(&"refund_hold") && kinds.contains(&kind),
            "{kinds:?}"
        );
    }
    let accounts = assert_ledger_zero(&server).await;
    assert_eq!(account_balance(&accounts, "rail:refunds"), 1_000);
}

/// kill -9 with refunds pending: after the restart the rail settles each
/// exactly once (one hold, one settlement or release each).
#[tokio::test]
async fn pending_refunds_survive_kill_9_and_settle_once() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--settle-delay-ms", "1500"];
    let mut server = Server::start_in(dir.path(), &args);
    let admin = server.admin_key.clone();
    let (_merchant, key) = server.create_user(&admin, "merchant", json!({})).await;
    let p = create_payin(&server, &key, payin_body("k-1", json!(100))).await;
    let pid = p["id"].as_str().unwrap().to_owned();
    assert_eq!(
        set_payment_status(&server, &pid, "completed").await.status,
        200
    );
    let mut refunds = Vec::new();
    for i in 0..6 {
        let reason = if i % 3 == 0 {
            "fail@sandbox"
        } else {
            "returned"
        };
        let r = refund(
            &server,
            &key,
            &pid,
            json!({ "amount": 10, "reason": reason }),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        refunds.push((r.data()["id"].as_str().unwrap().to_owned(), reason));
    }
    server.kill9();

    let server = Server::start_in(dir.path(), &args);
    for (id, reason) in &refunds {
        let done = server
            .wait_for(
                &format!("/api/v1/refunds/{id}"),
                &key,
                Duration::from_secs(15),
                |r| r.status == 200 && r.data()["status"] != json!("pending"),
            )
            .await;
        let want = if *reason == "fail@sandbox" {
            "failed"
        } else {
            "processed"
        };
        assert_eq!(done.data()["status"], json!(want));
    }
    // Give a second settlement every chance to happen, then count.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let holds = list_all(
        &server,
        "/api/v1/ledger/transfers?kind=refund_hold",
        &admin,
        50,
    )
    .await;
    let settles = list_all(
        &server,
        "/api/v1/ledger/transfers?kind=refund_settle",
        &admin,
        50,
    )
    .await;
    let releases = list_all(
        &server,
        "/api/v1/ledger/transfers?kind=refund_release",
        &admin,
        50,
    )
    .await;
    assert_eq!((holds.len(), settles.len(), releases.len()), (6, 4, 2));
    let b = balance(&server, &key, "").await;
    assert_eq!(avail_held(&b), (rupees(6_000), "0".into()));
    let p = payment(&server, &key, &pid).await;
    assert_money(&p["refunded_amount"], "40", "processed refunds only");
    assert_ledger_zero(&server).await;
}
