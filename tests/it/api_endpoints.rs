//! Happy paths of every route in `Route::ALL`, black-box against the real
//! binary: balance (own, named merchant, aggregate), pay-ins (create with
//! every money form, get, list with each filter and cursor pagination),
//! payouts (hold, masking, list, get), profile (read, patch, key, webhook
//! secret), users (create, list, get, suspend/reactivate, fees, rate limit,
//! role change, key), reports (summary with exact sums, ledger as JSON and
//! CSV), the admin's manual settlements with their exact balance effects,
//! the sandbox's magic values, and `/healthz`/`/readyz`.
//!
//! Most tests run a server whose sandbox never settles on its own
//! (`NO_AUTO_SETTLE`), so every money movement is one the test made and
//! every expected number is computed from the test's own inputs.

use crate::api_support::{
    assert_error, assert_money, assert_unique, avail_held, balance, create_payin, create_payout,
    fee_of, fund, ids, is_timestamp, list_all, paise, rupees, set_payment_status,
    set_payout_status, NO_AUTO_SETTLE,
};
use crate::common::{payin_body, payout_body, Server};
use hyper::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// The caller's own user id, from `/profile`.
async fn my_id(server: &Server, key: &str) -> String {
    let r = server.get("/api/v1/profile", key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.data()["id"].as_str().unwrap().to_owned()
}

/// The ids of `records`, in order.
fn id_list(records: &[&Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until a record at `path` leaves `pending`; returns its data.
async fn wait_settled(server: &Server, path: &str, key: &str) -> Value {
    server
        .wait_for(path, key, Duration::from_secs(20), |r| {
            r.status == 200 && r.data()["status"] != "pending"
        })
        .await
        .data()
        .clone()
}

/// A short pause so consecutive records get distinct millisecond timestamps.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(4)).await;
}

/// The CSV header of `GET /reports/ledger?format=csv` (SPEC §11).
const LEDGER_CSV_HEADER: &str =
    "seq,created_at,id,kind,debit_account,credit_account,amount,currency,available_after,held_after,reference";

/// What a merchant's ledger lines (JSON) did to `available + held`, in
/// paise: `+amount` when only the credit account is the merchant's,
/// `−amount` when only the debit account is, 0 between its two accounts.
fn ledger_effect(lines: &[Value], merchant_id: &str) -> i64 {
    let mine = |account: &Value| {
        let a = account.as_str().unwrap();
        a == format!("merchant:{merchant_id}:available")
            || a == format!("merchant:{merchant_id}:held")
    };
    lines
        .iter()
        .map(|e| {
            let amount = i64::try_from(paise(&e["amount"].to_string())).unwrap();
            match (mine(&e["debit_account"]), mine(&e["credit_account"])) {
                (false, true) => amount,
                (true, false) => -amount,
                (true, true) => 0,
                (false, false) => {
                    panic!("a ledger line touching neither of the merchant's accounts: {e}")
                }
            }
        })
        .sum()
}

/// The ledger CSV is the header and one row per JSON line, same order and values.
fn assert_csv_matches(csv: &str, lines: &[Value]) {
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], LEDGER_CSV_HEADER);
    assert_eq!(rows.len(), 1 + lines.len(), "{csv}");
    for (row, e) in rows[1..].iter().zip(lines) {
        let cells: Vec<&str> = row.split(',').collect();
        let text = |field: &str| match &e[field] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let expected: Vec<String> = LEDGER_CSV_HEADER.split(',').map(text).collect();
        assert_eq!(cells, expected, "{row} vs {e}");
    }
}

#[tokio::test]
async fn health_and_readiness_answer_without_a_key() {
    let server = Server::start(&[]);
    let r = server.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!({ "success": true, "data": { "status": "ok" } })
    );
    let r = server.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!({ "success": true, "data": { "status": "ready" } })
    );
    // A key is not needed, and a wrong one does not matter outside /api/v1.
    let r = server
        .request(Method::GET, "/healthz", Some("tjk_wrong"), None)
        .await;
    assert_eq!(r.status, 200);
    // Prometheus text, without a key, counting the requests just made.
    let r = server.request(Method::GET, "/metrics", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain")));
    assert!(r.text.contains("# TYPE tijori_http_requests_total counter"));
    assert!(r
        .text
        .lines()
        .any(|l| l.starts_with("tijori_http_requests_total{") && l.contains("/healthz")));
}

#[tokio::test]
async fn balance_own_named_and_aggregate() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let admin = server.admin_key.clone();
    let (manager_id, manager) = server.create_user(&admin, "manager", json!({})).await;
    // The manager sets the fee of its own merchant.
    let (a_id, a) = server
        .create_user(&manager, "merchant", json!({ "payin_fee_bps": 250 }))
        .await;
    let (b_id, b) = server.create_user(&admin, "merchant", json!({})).await;
    let (_u_id, u) = server.create_user(&a, "api_user", json!({})).await;

    let fresh = balance(&server, &a, "").await;
    assert_eq!(fresh["merchant_id"], json!(a_id));
    assert_eq!(fresh["currency"], json!("INR"));
    for field in [
        "available",
        "held",
        "pending_payins",
        "total_payins",
        "total_payouts",
        "total_fees",
    ] {
        assert_money(&fresh[field], "0", field);
    }
    assert!(fresh["updated_at"].as_str().is_some_and(is_timestamp));

    // The api_user's pay-in lands on its merchant's wallet, pending first.
    let p = create_payin(&server, &u, payin_body("BAL-1", json!(5000))).await;
    let pending = balance(&server, &a, "").await;
    assert_money(&pending["pending_payins"], "5000", "pending_payins");
    assert_money(&pending["available"], "0", "available while pending");
    let r = set_payment_status(&server, p["id"].as_str().unwrap(), "completed").await;
    assert_eq!(r.status, 200, "{}", r.text);

    let own = balance(&server, &a, "").await;
    assert_money(&own["available"], "4875", "available = 5000 - 2.5%");
    assert_money(&own["held"], "0", "held");
    assert_money(&own["pending_payins"], "0", "pending_payins");
    assert_money(&own["total_payins"], "5000", "total_payins");
    assert_money(&own["total_fees"], "125", "total_fees");
    assert_money(&own["total_payouts"], "0", "total_payouts");

    // The api_user, the admin and the manager see the same wallet.
    assert_eq!(balance(&server, &u, "").await, own);
    let q = format!("?merchant_id={a_id}");
    assert_eq!(balance(&server, &admin, &q).await, own);
    assert_eq!(balance(&server, &manager, &q).await, own);

    // Merchant B, outside the manager's team, with a string amount.
    let p = create_payin(&server, &b, payin_body("BAL-2", json!("12.34"))).await;
    set_payment_status(&server, p["id"].as_str().unwrap(), "completed").await;
    let other = balance(&server, &b, "").await;
    assert_money(&other["available"], "12.34", "B available");
    assert_eq!(other["merchant_id"], json!(b_id));
    let r = server
        .get(&format!("/api/v1/balance?merchant_id={b_id}"), &manager)
        .await;
    // Outside a manager's scope: not_found (SPEC §17).
    assert_error(&r, 404, "not_found");

    // Aggregates: the admin sums every merchant, the manager its team.
    let all = balance(&server, &admin, "").await;
    assert_money(&all["available"], "4887.34", "admin aggregate available");
    assert_money(&all["total_payins"], "5012.34", "admin aggregate payins");
    assert_money(&all["total_fees"], "125", "admin aggregate fees");
    assert_eq!(all["merchants"], json!(2));
    assert_eq!(all["merchant_id"], Value::Null);
    let team = balance(&server, &manager, "").await;
    assert_money(&team["available"], "4875", "manager aggregate available");
    assert_eq!(team["merchants"], json!(1));
    assert_ne!(manager_id, a_id);
}

#[tokio::test]
async fn payment_create_and_get_with_every_money_form() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let admin = server.admin_key.clone();
    let (a_id, a) = server
        .create_user(&admin, "merchant", json!({ "payin_fee_bps": 250 }))
        .await;

    let body = json!({
        "order_id": "ORD-FULL-1", "amount": 5000, "currency": "INR", "payer": "Jane Smith",
        "payer_email": "jane@example.com", "payer_phone": "+919800000000",
        "payer_vpa": "jane@upi", "description": "two mangoes",
        "metadata": { "cart": 42, "tags": ["a", "b"] },
    });
    let r = server.post("/api/v1/payments", &a, body.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["success"], json!(true));
    let p = r.data().clone();
    assert!(p["id"].as_str().unwrap().starts_with("txn_"), "{p}");
    assert_eq!(p["status"], json!("pending"));
    assert_eq!(p["merchant_id"], json!(a_id));
    assert_eq!(p["created_by"], json!(a_id));
    assert_money(&p["amount"], "5000", "amount");
    assert_money(&p["fee"], "125", "fee");
    assert_money(&p["net_amount"], "4875", "net_amount");
    for field in [
        "order_id",
        "currency",
        "payer",
        "payer_email",
        "payer_phone",
        "payer_vpa",
        "description",
        "metadata",
    ] {
        assert_eq!(p[field], body[field], "{field}");
    }
    assert_eq!(p["failure_reason"], Value::Null);
    assert_eq!(p["completed_at"], Value::Null);
    assert!(p["created_at"].as_str().is_some_and(is_timestamp), "{p}");
    assert!(p["updated_at"].as_str().is_some_and(is_timestamp), "{p}");

    let id = p["id"].as_str().unwrap();
    let got = server.get(&format!("/api/v1/payments/{id}"), &a).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.data(), &p);

    // Amounts as numbers and strings, read and rendered exactly; the fee is
    // 2.5% rounded half-up to the paisa.
    let cases = [
        (json!("12.34"), "12.34", "0.31", "12.03"),
        (json!(5000.5), "5000.5", "125.01", "4875.49"),
        (json!("99.99"), "99.99", "2.5", "97.49"),
        (json!(1), "1", "0.03", "0.97"),
        (json!("1.00"), "1", "0.03", "0.97"),
        (json!(1_000_000), "1000000", "25000", "975000"),
        (json!("999999.99"), "999999.99", "25000", "974999.99"),
    ];
    for (i, (amount, shown, fee, net)) in cases.iter().enumerate() {
        // The test's own arithmetic agrees with the table.
        assert_eq!(rupees(fee_of(paise(shown), 250)), *fee);
        assert_eq!(rupees(paise(shown) - paise(fee)), *net);
        let body = json!({ "order_id": format!("ORD-{i}"), "amount": amount, "payer": "P" });
        let p = create_payin(&server, &a, body).await;
        assert_money(&p["amount"], shown, "amount");
        assert_money(&p["fee"], fee, "fee");
        assert_money(&p["net_amount"], net, "net_amount");
        assert_eq!(p["currency"], json!("INR"), "currency defaults to INR");
        assert_eq!(p["payer_email"], Value::Null);
        assert_eq!(p["metadata"], Value::Null);
    }
}

#[tokio::test]
async fn payment_list_filters_scope_and_pagination() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let admin = server.admin_key.clone();
    let (a_id, a) = server.create_user(&admin, "merchant", json!({})).await;
    let (b_id, b) = server.create_user(&admin, "merchant", json!({})).await;
    let (_u_id, u) = server.create_user(&a, "api_user", json!({})).await;

    // (order id, amount, creator key) in creation order.
    let plan = [
        ("F-1", "100", &a),
        ("F-2", "250.5", &a),
        ("F-3", "999.99", &a),
        ("U-1", "300", &u),
        ("F-4", "1000", &a),
        ("U-2", "700", &u),
        ("F-5", "5000", &a),
    ];
    let mut created: Vec<Value> = Vec::new();
    for (order, amount, key) in plan {
        created.push(create_payin(&server, key, payin_body(order, json!(amount))).await);
        tick().await;
    }
    create_payin(&server, &b, payin_body("B-1", json!(100))).await;
    let id_of = |order: &str| {
        created
            .iter()
            .find(|p| p["order_id"] == json!(order))
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for (order, to) in [
        ("F-2", "completed"),
        ("F-4", "completed"),
        ("U-1", "completed"),
        ("F-3", "failed"),
    ] {
        let r = set_payment_status(&server, &id_of(order), to).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let status_of = |order: &str| match order {
        "F-2" | "F-4" | "U-1" => "completed",
        "F-3" => "failed",
        _ => "pending",
    };

    // Newest first: the reverse of creation order, every record once.
    let newest_first: Vec<String> = created.iter().rev().map(|p| p["id"].to_string()).collect();
    let orders = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .map(|p| p["order_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = list_all(&server, "/api/v1/payments", &a, 500).await;
    assert_eq!(
        all.iter().map(|p| p["id"].to_string()).collect::<Vec<_>>(),
        newest_first
    );
    for p in &all {
        let order = p["order_id"].as_str().unwrap();
        assert_eq!(p["status"], json!(status_of(order)), "{order}");
        assert_eq!(p["merchant_id"], json!(a_id));
    }
    // The expected result of a filter, computed from the plan.
    let expect = |keep: &dyn Fn(&str, u64) -> bool| -> Vec<String> {
        plan.iter()
            .rev()
            .filter(|(o, amt, _)| keep(o, paise(amt)))
            .map(|(o, _, _)| (*o).to_owned())
            .collect()
    };

    for status in ["pending", "completed", "failed"] {
        let got = list_all(
            &server,
            &format!("/api/v1/payments?status={status}"),
            &a,
            50,
        )
        .await;
        assert_eq!(
            orders(&got),
            expect(&|o, _| status_of(o) == status),
            "status={status}"
        );
    }
    let got = list_all(&server, "/api/v1/payments?min_amount=250.5", &a, 50).await;
    assert_eq!(orders(&got), expect(&|_, p| p >= 25_050));
    let got = list_all(&server, "/api/v1/payments?max_amount=999.99", &a, 50).await;
    assert_eq!(orders(&got), expect(&|_, p| p <= 99_999));
    let got = list_all(
        &server,
        "/api/v1/payments?min_amount=250.5&max_amount=999.99",
        &a,
        50,
    )
    .await;
    assert_eq!(orders(&got), ["U-2", "U-1", "F-3", "F-2"]);
    let got = list_all(
        &server,
        "/api/v1/payments?status=pending&min_amount=500",
        &a,
        50,
    )
    .await;
    assert_eq!(orders(&got), ["F-5", "U-2"]);

    // order_id: exactly one record, or none.
    let got = list_all(&server, "/api/v1/payments?order_id=F-3", &a, 50).await;
    assert_eq!(orders(&got), ["F-3"]);
    assert_eq!(got[0]["id"], json!(id_of("F-3")));
    let got = list_all(&server, "/api/v1/payments?order_id=NOPE", &a, 50).await;
    assert!(got.is_empty());

    // from (inclusive) and to (exclusive), on the records' own created_at.
    let at = |i: usize| created[i]["created_at"].as_str().unwrap().to_owned();
    let (from, to) = (at(2), at(5));
    let got = list_all(
        &server,
        &format!("/api/v1/payments?from={from}&to={to}"),
        &a,
        50,
    )
    .await;
    assert_eq!(orders(&got), ["F-4", "U-1", "F-3"]);
    let got = list_all(&server, &format!("/api/v1/payments?from={from}"), &a, 50).await;
    assert_eq!(orders(&got), ["F-5", "U-2", "F-4", "U-1", "F-3"]);
    let got = list_all(&server, &format!("/api/v1/payments?to={from}"), &a, 50).await;
    assert_eq!(orders(&got), ["F-2", "F-1"]);

    // merchant_id: the admin picks one merchant; unfiltered it sees all.
    let got = list_all(
        &server,
        &format!("/api/v1/payments?merchant_id={a_id}"),
        &admin,
        50,
    )
    .await;
    assert_eq!(got.len(), 7);
    let got = list_all(
        &server,
        &format!("/api/v1/payments?merchant_id={b_id}"),
        &admin,
        50,
    )
    .await;
    assert_eq!(orders(&got), ["B-1"]);
    let got = list_all(&server, "/api/v1/payments", &admin, 50).await;
    assert_eq!(got.len(), 8);
    let got = list_all(
        &server,
        &format!("/api/v1/payments?merchant_id={a_id}"),
        &a,
        50,
    )
    .await;
    assert_eq!(got.len(), 7);

    // The api_user sees only what it created; the merchant sees those too.
    let got = list_all(&server, "/api/v1/payments", &u, 50).await;
    assert_eq!(orders(&got), ["U-2", "U-1"]);
    let r = server
        .get(&format!("/api/v1/payments/{}", id_of("U-1")), &a)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = server
        .get(&format!("/api/v1/payments/{}", id_of("F-1")), &u)
        .await;
    assert_error(&r, 404, "not_found");

    // Cursor pagination with limit=2: pages of 2, 2, 2, 1; has_more and
    // next_cursor exact; no duplicates or gaps.
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut sizes = Vec::new();
    loop {
        let url = match &cursor {
            None => "/api/v1/payments?limit=2".to_owned(),
            Some(c) => format!("/api/v1/payments?limit=2&cursor={c}"),
        };
        let r = server.get(&url, &a).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let page = r.data().as_array().unwrap().clone();
        sizes.push(page.len());
        seen.extend(page.iter().map(|p| p["id"].to_string()));
        let more = r.json["pagination"]["has_more"].as_bool().unwrap();
        assert_eq!(r.json["pagination"]["limit"], json!(2));
        assert_eq!(
            more,
            seen.len() < 7,
            "has_more after {} records",
            seen.len()
        );
        if !more {
            assert_eq!(r.json["pagination"]["next_cursor"], Value::Null);
            break;
        }
        let next = r.json["pagination"]["next_cursor"].as_str().unwrap();
        assert_eq!(
            format!("\"{next}\""),
            *seen.last().unwrap(),
            "the cursor is the last id shown"
        );
        cursor = Some(next.to_owned());
    }
    assert_eq!(sizes, [2, 2, 2, 1]);
    assert_eq!(seen, newest_first);
    let plain: Vec<String> = seen
        .iter()
        .map(|s| s.trim_matches('"').to_owned())
        .collect();
    assert_unique(&plain);

    // Pagination under a filter: the pending ones in pages of 2.
    let pending = list_all(&server, "/api/v1/payments?status=pending", &a, 2).await;
    assert_eq!(orders(&pending), ["F-5", "U-2", "F-1"]);
    // A page that holds the last match says so, even when older records
    // that do not match remain (F-1 is older than every completed one).
    let r = server
        .get("/api/v1/payments?status=completed&limit=3", &a)
        .await;
    assert_eq!(orders(r.data().as_array().unwrap()), ["F-4", "U-1", "F-2"]);
    assert_eq!(
        r.json["pagination"],
        json!({ "limit": 3, "has_more": false, "next_cursor": null }),
        "no more completed pay-ins exist"
    );
}

/// `from`/`to` select on `created_at` exactly, at millisecond boundaries:
/// for consecutive distinct creation times T1 < T2, the window [T1, T2)
/// holds exactly the records created at T1, in the listing and in the
/// summary. (A record's id may carry a later millisecond than its
/// `created_at`; the window must still find it.)
#[tokio::test]
async fn time_windows_are_exact_at_millisecond_boundaries() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let (_a_id, a) = server
        .create_user(&server.admin_key, "merchant", json!({}))
        .await;
    let mut by_time: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for i in 0..300 {
        let p = create_payin(&server, &a, payin_body(&format!("W-{i}"), json!(1))).await;
        by_time
            .entry(p["created_at"].as_str().unwrap().to_owned())
            .or_default()
            .push(p["id"].as_str().unwrap().to_owned());
    }
    let times: Vec<&String> = by_time.keys().collect();
    for (i, t) in times.iter().enumerate() {
        let url = match times.get(i + 1) {
            Some(next) => format!("/api/v1/payments?from={t}&to={next}&limit=500"),
            None => format!("/api/v1/payments?from={t}&limit=500"),
        };
        let r = server.get(&url, &a).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let mut got = ids(r.data().as_array().unwrap());
        got.sort();
        let mut want = by_time[*t].clone();
        want.sort();
        assert_eq!(got, want, "{url}");
        let summary = server
            .get(&url.replace("/payments?", "/reports/summary?"), &a)
            .await;
        assert_eq!(
            summary.data()["payins"]["pending"]["count"],
            json!(want.len()),
            "{url}"
        );
    }
}

#[tokio::test]
async fn payouts_hold_mask_list_and_get() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let admin = server.admin_key.clone();
    let (a_id, a) = server
        .create_user(&admin, "merchant", json!({ "payout_fee": "10" }))
        .await;
    let (u_id, u) = server.create_user(&a, "api_user", json!({})).await;
    fund(&server, &a, "FUND-1", json!(5000)).await;
    assert_eq!(
        avail_held(&balance(&server, &a, "").await),
        ("5000".into(), "0".into())
    );

    let body = json!({
        "amount": 1000, "mode": "NEFT", "reference_id": "REF-1", "purpose": "vendor",
        "beneficiary": { "name": "Ravi Kumar", "account_number": "123456789012", "ifsc": "HDFC0000001" },
    });
    let r = server.post("/api/v1/payouts", &a, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(
        !r.text.contains("123456789012"),
        "full account number leaked"
    );
    let x1 = r.data().clone();
    assert!(x1["id"].as_str().unwrap().starts_with("po_"));
    assert_eq!(x1["status"], json!("pending"));
    assert_eq!(x1["merchant_id"], json!(a_id));
    assert_eq!(x1["created_by"], json!(a_id));
    assert_money(&x1["amount"], "1000", "amount");
    assert_money(&x1["fee"], "10", "fee");
    assert_eq!(x1["currency"], json!("INR"));
    assert_eq!(
        x1["beneficiary"],
        json!({ "name": "Ravi Kumar", "account_number": "XXXXXXXX9012", "ifsc": "HDFC0000001", "vpa": null })
    );
    assert_eq!(x1["mode"], json!("NEFT"));
    assert_eq!(x1["reference_id"], json!("REF-1"));
    assert_eq!(x1["purpose"], json!("vendor"));
    assert_eq!(x1["reason"], Value::Null);
    assert_eq!(x1["processed_at"], Value::Null);
    assert!(x1["created_at"].as_str().is_some_and(is_timestamp));
    // amount + fee moved from available to held at once.
    assert_eq!(
        avail_held(&balance(&server, &a, "").await),
        ("3990".into(), "1010".into())
    );

    tick().await;
    let x2 = create_payout(&server, &a, payout_body(json!("250.75"))).await;
    assert_eq!(x2["mode"], json!("IMPS"), "default mode");
    assert_eq!(x2["reference_id"], Value::Null);
    assert_eq!(x2["beneficiary"]["account_number"], json!("XXXXXXXX9012"));
    assert_eq!(
        avail_held(&balance(&server, &a, "").await),
        ("3729.25".into(), "1270.75".into())
    );

    // The api_user pays out of its merchant's wallet.
    tick().await;
    let x3 = create_payout(&server, &u, payout_body(json!(100))).await;
    assert_eq!(x3["merchant_id"], json!(a_id));
    assert_eq!(x3["created_by"], json!(u_id));
    let b = balance(&server, &a, "").await;
    assert_eq!(avail_held(&b), ("3619.25".into(), "1380.75".into()));
    assert_money(&b["total_payouts"], "0", "nothing processed yet");

    // The admin pays out on behalf of a named merchant.
    tick().await;
    let admin_id = my_id(&server, &admin).await;
    let mut body = payout_body(json!(9));
    body["merchant_id"] = json!(a_id);
    let x4 = create_payout(&server, &admin, body).await;
    assert_eq!(x4["created_by"], json!(admin_id));
    assert_eq!(
        avail_held(&balance(&server, &a, "").await),
        ("3600.25".into(), "1399.75".into())
    );

    // Get one: masked too.
    for x in [&x1, &x2, &x3, &x4] {
        let r = server
            .get(
                &format!("/api/v1/payouts/{}", x["id"].as_str().unwrap()),
                &a,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.data(), x);
        assert!(!r.text.contains("123456789012"));
    }

    // Lists: newest first, filters, scope, pagination.
    let all = list_all(&server, "/api/v1/payouts", &a, 50).await;
    assert_eq!(ids(&all), id_list(&[&x4, &x3, &x2, &x1]));
    assert!(all
        .iter()
        .all(|x| x["beneficiary"]["account_number"] == json!("XXXXXXXX9012")));
    let paged = list_all(&server, "/api/v1/payouts", &a, 3).await;
    assert_eq!(ids(&paged), ids(&all));
    let pending = list_all(&server, "/api/v1/payouts?status=pending", &a, 50).await;
    assert_eq!(pending.len(), 4);
    let processed = list_all(&server, "/api/v1/payouts?status=processed", &a, 50).await;
    assert!(processed.is_empty());
    let big = list_all(&server, "/api/v1/payouts?min_amount=250.75", &a, 50).await;
    assert_eq!(ids(&big), id_list(&[&x2, &x1]));
    let small = list_all(&server, "/api/v1/payouts?max_amount=100", &a, 50).await;
    assert_eq!(ids(&small), id_list(&[&x4, &x3]));
    let from = x2["created_at"].as_str().unwrap();
    let to = x4["created_at"].as_str().unwrap();
    let window = list_all(
        &server,
        &format!("/api/v1/payouts?from={from}&to={to}"),
        &a,
        50,
    )
    .await;
    assert_eq!(ids(&window), id_list(&[&x3, &x2]));
    let mine = list_all(&server, "/api/v1/payouts", &u, 50).await;
    assert_eq!(ids(&mine), id_list(&[&x3]));
    let by_admin = list_all(
        &server,
        &format!("/api/v1/payouts?merchant_id={a_id}"),
        &admin,
        50,
    )
    .await;
    assert_eq!(ids(&by_admin), ids(&all));
}

#[tokio::test]
async fn admin_manual_settlement_moves_exact_money() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let admin = server.admin_key.clone();
    let (_a_id, a) = server
        .create_user(
            &admin,
            "merchant",
            json!({ "payin_fee_bps": 200, "payout_fee": 5 }),
        )
        .await;

    // Pay-in completed: amount - 2% credited.
    let p1 = create_payin(&server, &a, payin_body("M-1", json!(5000))).await;
    let p1_id = p1["id"].as_str().unwrap();
    assert_money(
        &balance(&server, &a, "").await["pending_payins"],
        "5000",
        "pending",
    );
    let r = set_payment_status(&server, p1_id, "completed").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["status"], json!("completed"));
    assert!(r.data()["completed_at"].as_str().is_some_and(is_timestamp));
    assert_eq!(r.data()["failure_reason"], Value::Null);
    let b = balance(&server, &a, "").await;
    assert_eq!(avail_held(&b), ("4900".into(), "0".into()));
    assert_money(&b["pending_payins"], "0", "pending_payins");
    assert_money(&b["total_payins"], "5000", "total_payins");
    assert_money(&b["total_fees"], "100", "total_fees");
    let got = server.get(&format!("/api/v1/payments/{p1_id}"), &a).await;
    assert_eq!(got.data(), r.data(), "the change is stored");

    // Pay-in failed: no money moves; the reason is kept.
    let p2 = create_payin(&server, &a, payin_body("M-2", json!(300))).await;
    let r = set_payment_status(&server, p2["id"].as_str().unwrap(), "failed").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["status"], json!("failed"));
    assert_eq!(r.data()["failure_reason"], json!("manual failed"));
    assert_eq!(r.data()["completed_at"], Value::Null);
    let b = balance(&server, &a, "").await;
    assert_eq!(avail_held(&b), ("4900".into(), "0".into()));
    assert_money(&b["pending_payins"], "0", "pending_payins");
    assert_money(&b["total_payins"], "5000", "failed adds nothing");

    // Payout processed: the hold leaves the wallet.
    let x = create_payout(&server, &a, payout_body(json!(1000))).await;
    assert_money(&x["fee"], "5", "payout fee");
    assert_eq!(
        avail_held(&balance(&server, &a, "").await),
        ("3895".into(), "1005".into())
    );
    let r = set_payout_status(&server, x["id"].as_str().unwrap(), "processed").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["status"], json!("processed"));
    assert_eq!(r.data()["reason"], json!("manual processed"));
    assert!(r.data()["processed_at"].as_str().is_some_and(is_timestamp));
    let b = balance(&server, &a, "").await;
    assert_eq!(avail_held(&b), ("3895".into(), "0".into()));
    assert_money(&b["total_payouts"], "1000", "total_payouts");
    assert_money(&b["total_fees"], "105", "total_fees");

    // Payout rejected: the hold returns to available.
    let y = create_payout(&server, &a, payout_body(json!(2000))).await;
    assert_eq!(
        avail_held(&balance(&server, &a, "").await),
        ("1890".into(), "2005".into())
    );
    let r = set_payout_status(&server, y["id"].as_str().unwrap(), "rejected").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["status"], json!("rejected"));
    assert_eq!(r.data()["reason"], json!("manual rejected"));
    assert_eq!(r.data()["processed_at"], Value::Null);
    let settled = balance(&server, &a, "").await;
    assert_eq!(avail_held(&settled), ("3895".into(), "0".into()));
    assert_money(&settled["total_payouts"], "1000", "rejected adds nothing");
    assert_money(&settled["total_fees"], "105", "rejected charges no fee");

    // Exactly one terminal transition: a second one is refused, no money moves.
    let r = set_payment_status(&server, p1_id, "failed").await;
    assert_error(&r, 409, "invalid_status_transition");
    assert_eq!(
        r.json["error"]["details"],
        json!({ "from": "completed", "to": "failed" })
    );
    let r = set_payout_status(&server, x["id"].as_str().unwrap(), "rejected").await;
    assert_error(&r, 409, "invalid_status_transition");
    assert_eq!(balance(&server, &a, "").await, settled);
}

#[tokio::test]
async fn sandbox_magic_values_decide_the_outcome() {
    let server = Server::start(&[]);
    let admin = server.admin_key.clone();
    let (_a_id, a) = server.create_user(&admin, "merchant", json!({})).await;

    let mut body = payin_body("S-FAIL", json!(700));
    body["payer_vpa"] = json!("fail@sandbox");
    let failing = create_payin(&server, &a, body).await;
    let ok = create_payin(&server, &a, payin_body("S-OK", json!(1000))).await;
    let f = wait_settled(
        &server,
        &format!("/api/v1/payments/{}", failing["id"].as_str().unwrap()),
        &a,
    )
    .await;
    assert_eq!(f["status"], json!("failed"));
    assert!(f["failure_reason"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(f["completed_at"], Value::Null);
    let c = wait_settled(
        &server,
        &format!("/api/v1/payments/{}", ok["id"].as_str().unwrap()),
        &a,
    )
    .await;
    assert_eq!(c["status"], json!("completed"));
    let b = balance(&server, &a, "").await;
    assert_eq!(avail_held(&b), ("1000".into(), "0".into()));
    assert_money(&b["pending_payins"], "0", "pending_payins");

    let mut body = payout_body(json!(400));
    body["beneficiary"]["account_number"] = json!("000000000000");
    let rejected = create_payout(&server, &a, body).await;
    assert_eq!(
        rejected["beneficiary"]["account_number"],
        json!("XXXXXXXX0000")
    );
    let r = wait_settled(
        &server,
        &format!("/api/v1/payouts/{}", rejected["id"].as_str().unwrap()),
        &a,
    )
    .await;
    assert_eq!(r["status"], json!("rejected"));
    assert!(r["reason"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(
        avail_held(&balance(&server, &a, "").await),
        ("1000".into(), "0".into())
    );

    let processed = create_payout(&server, &a, payout_body(json!(300))).await;
    let r = wait_settled(
        &server,
        &format!("/api/v1/payouts/{}", processed["id"].as_str().unwrap()),
        &a,
    )
    .await;
    assert_eq!(r["status"], json!("processed"));
    let b = balance(&server, &a, "").await;
    assert_eq!(avail_held(&b), ("700".into(), "0".into()));
    assert_money(&b["total_payouts"], "300", "total_payouts");
}

#[tokio::test]
async fn profile_read_patch_key_and_webhook_secret() {
    let server = Server::start(&[]);
    let admin = server.admin_key.clone();
    let admin_id = my_id(&server, &admin).await;
    let (a_id, a) = server
        .create_user(
            &admin,
            "merchant",
            json!({ "payin_fee_bps": 150, "payout_fee": "2.5", "email": "shop@example.com" }),
        )
        .await;
    let (u_id, u) = server.create_user(&a, "api_user", json!({})).await;

    let r = server.get("/api/v1/profile", &a).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let p = r.data().clone();
    assert_eq!(p["id"], json!(a_id));
    assert_eq!(p["role"], json!("merchant"));
    assert_eq!(p["status"], json!("active"));
    assert_eq!(p["email"], json!("shop@example.com"));
    assert_eq!(p["parent_id"], json!(admin_id));
    assert_eq!(p["merchant_id"], json!(a_id));
    assert_eq!(p["webhook_url"], Value::Null);
    assert_eq!(p["rate_limit_per_min"], json!(6000));
    assert_eq!(p["payin_fee_bps"], json!(150));
    assert_money(&p["payout_fee"], "2.5", "payout_fee");
    assert!(p["created_at"].as_str().is_some_and(is_timestamp));
    let secret = p["webhook_secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 20,
        "{secret}"
    );
    let settings = &p["merchant_settings"];
    assert_eq!(settings["merchant_id"], json!(a_id));
    assert_eq!(settings["payin_fee_bps"], json!(150));
    assert_money(&settings["payout_fee"], "2.5", "settings payout_fee");
    assert_money(&settings["min_amount"], "1", "min_amount");
    assert_money(&settings["max_amount"], "1000000", "max_amount");
    assert_eq!(settings["currency"], json!("INR"));
    assert!(!r.text.contains(&a), "the key is never shown again");
    assert!(p.get("api_key").is_none() && p.get("key_hash").is_none());

    let r = server.get("/api/v1/profile", &u).await;
    assert_eq!(r.data()["id"], json!(u_id));
    assert_eq!(r.data()["role"], json!("api_user"));
    assert_eq!(r.data()["parent_id"], json!(a_id));
    assert_eq!(r.data()["merchant_settings"]["merchant_id"], json!(a_id));
    assert_eq!(r.data()["merchant_settings"]["payin_fee_bps"], json!(150));

    let r = server.get("/api/v1/profile", &admin).await;
    assert_eq!(r.data()["role"], json!("admin"));
    assert_eq!(r.data()["parent_id"], Value::Null);

    // PATCH name and webhook URL; then clear the URL.
    let r = server
        .patch(
            "/api/v1/profile",
            &a,
            json!({ "name": "Acme Stores", "webhook_url": "https://example.com/hooks/tijori" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["name"], json!("Acme Stores"));
    assert_eq!(
        r.data()["webhook_url"],
        json!("https://example.com/hooks/tijori")
    );
    let r = server.get("/api/v1/profile", &a).await;
    assert_eq!(r.data()["name"], json!("Acme Stores"));
    assert_eq!(
        r.data()["webhook_url"],
        json!("https://example.com/hooks/tijori")
    );
    let r = server
        .patch("/api/v1/profile", &a, json!({ "webhook_url": null }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["webhook_url"], Value::Null);
    assert_eq!(r.data()["name"], json!("Acme Stores"), "name untouched");

    // Rotate the webhook signing secret.
    let r = server
        .request(
            Method::POST,
            "/api/v1/profile/webhook-secret",
            Some(&a),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rotated = r.data()["webhook_secret"].as_str().unwrap().to_owned();
    assert!(rotated.starts_with("whsec_"));
    assert_ne!(rotated, secret);
    let r = server.get("/api/v1/profile", &a).await;
    assert_eq!(r.data()["webhook_secret"], json!(rotated));
    let r = server
        .request(
            Method::POST,
            "/api/v1/profile/webhook-secret",
            Some(&u),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "api_users may rotate theirs: {}", r.text);

    // Regenerate the own key: shown once, the old one is dead at once.
    let r = server
        .request(Method::POST, "/api/v1/profile/api-key", Some(&a), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["user"]["id"], json!(a_id));
    let new_key = r.data()["api_key"].as_str().unwrap().to_owned();
    assert!(new_key.starts_with("tjk_") && new_key.len() >= 36);
    assert_ne!(new_key, a);
    assert_error(
        &server.get("/api/v1/profile", &a).await,
        401,
        "invalid_api_key",
    );
    let r = server.get("/api/v1/profile", &new_key).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.data()["id"], json!(a_id));
}

#[tokio::test]
async fn users_create_list_get_patch_and_key() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let admin = server.admin_key.clone();
    let admin_id = my_id(&server, &admin).await;

    let r = server
        .post(
            "/api/v1/users",
            &admin,
            json!({ "name": "North", "email": "north@example.com", "role": "manager" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let m = r.data()["user"].clone();
    let manager = r.data()["api_key"].as_str().unwrap().to_owned();
    let m_id = m["id"].as_str().unwrap().to_owned();
    assert!(m_id.starts_with("usr_"));
    assert!(
        manager.starts_with("tjk_") && manager.len() >= 36,
        "≥128-bit key"
    );
    assert_eq!(m["name"], json!("North"));
    assert_eq!(m["email"], json!("north@example.com"));
    assert_eq!(m["role"], json!("manager"));
    assert_eq!(m["status"], json!("active"));
    assert_eq!(m["parent_id"], json!(admin_id));
    assert_eq!(m["merchant_id"], Value::Null);
    assert_eq!(m["rate_limit_per_min"], json!(6000));
    assert_eq!(m["payin_fee_bps"], json!(0));
    assert_money(&m["payout_fee"], "0", "payout_fee");
    assert!(m["created_at"].as_str().is_some_and(is_timestamp));

    // parent_id defaults to the caller; a manager may place an api_user
    // under one of its merchants.
    let (a_id, a) = server.create_user(&manager, "merchant", json!({})).await;
    let (u_id, u) = server
        .create_user(&manager, "api_user", json!({ "parent_id": a_id }))
        .await;
    let (v_id, v) = server.create_user(&a, "api_user", json!({})).await;
    let (b_id, _b) = server.create_user(&admin, "merchant", json!({})).await;
    for (id, parent, merchant) in [
        (&a_id, &m_id, Some(&a_id)),
        (&u_id, &a_id, Some(&a_id)),
        (&v_id, &a_id, Some(&a_id)),
        (&b_id, &admin_id, Some(&b_id)),
    ] {
        let r = server.get(&format!("/api/v1/users/{id}"), &admin).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.data()["parent_id"], json!(parent));
        assert_eq!(r.data()["merchant_id"], json!(merchant));
        assert!(r.data().get("api_key").is_none());
    }

    // Lists: newest first and scoped.
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let all = list_all(&server, "/api/v1/users", &admin, 50).await;
    let all_ids = ids(&all);
    assert_eq!(
        sorted(all_ids.clone()),
        sorted(vec![
            admin_id.clone(),
            m_id.clone(),
            a_id.clone(),
            u_id.clone(),
            v_id.clone(),
            b_id.clone()
        ])
    );
    assert_eq!(
        all_ids,
        vec![
            b_id.clone(),
            v_id.clone(),
            u_id.clone(),
            a_id.clone(),
            m_id.clone(),
            admin_id.clone()
        ],
        "newest first"
    );
    assert_eq!(
        ids(&list_all(&server, "/api/v1/users", &admin, 2).await),
        all_ids
    );
    let merchants = list_all(&server, "/api/v1/users?role=merchant", &admin, 50).await;
    assert_eq!(ids(&merchants), vec![b_id.clone(), a_id.clone()]);
    let merchants = list_all(&server, "/api/v1/users?role=merchant", &admin, 2).await;
    assert_eq!(ids(&merchants), vec![b_id.clone(), a_id.clone()]);
    let team = list_all(&server, "/api/v1/users", &manager, 50).await;
    assert_eq!(ids(&team), vec![v_id.clone(), u_id.clone(), a_id.clone()]);
    let own = list_all(&server, "/api/v1/users", &a, 50).await;
    assert_eq!(ids(&own), vec![v_id.clone(), u_id.clone()]);
    let r = server.get(&format!("/api/v1/users/{u_id}"), &a).await;
    assert_eq!(r.status, 200, "a merchant sees its api_users");

    // Suspend and reactivate (by the manager, within its subtree).
    let r = server
        .patch(
            &format!("/api/v1/users/{a_id}"),
            &manager,
            json!({ "status": "suspended" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["status"], json!("suspended"));
    assert_error(
        &server.get("/api/v1/balance", &a).await,
        403,
        "account_suspended",
    );
    assert_error(
        &server.get("/api/v1/balance", &u).await,
        403,
        "account_suspended",
    );
    let suspended = list_all(&server, "/api/v1/users?status=suspended", &admin, 50).await;
    assert_eq!(ids(&suspended), vec![a_id.clone()]);
    let r = server
        .patch(
            &format!("/api/v1/users/{a_id}"),
            &manager,
            json!({ "status": "active" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["status"], json!("active"));
    assert_eq!(server.get("/api/v1/balance", &a).await.status, 200);
    assert_eq!(server.get("/api/v1/balance", &u).await.status, 200);

    // Fees (manager) apply to the next pay-in.
    let r = server
        .patch(
            &format!("/api/v1/users/{a_id}"),
            &manager,
            json!({ "payin_fee_bps": 300, "payout_fee": "7.5", "name": "Shop A" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["payin_fee_bps"], json!(300));
    assert_money(&r.data()["payout_fee"], "7.5", "payout_fee");
    assert_eq!(r.data()["name"], json!("Shop A"));
    let p = create_payin(&server, &a, payin_body("FEE-1", json!(1000))).await;
    assert_money(&p["fee"], "30", "3% of 1000");
    assert_money(&p["net_amount"], "970", "net");

    // Rate limit (admin): the header shows the new limit.
    let r = server
        .patch(
            &format!("/api/v1/users/{v_id}"),
            &admin,
            json!({ "rate_limit_per_min": 120 }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["rate_limit_per_min"], json!(120));
    let r = server.get("/api/v1/balance", &v).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-ratelimit-limit"), Some("120"));

    // Role change (admin): a manager without users becomes a merchant and
    // can take pay-ins on its own new wallet.
    let (m2_id, m2) = server.create_user(&admin, "manager", json!({})).await;
    let r = server
        .patch(
            &format!("/api/v1/users/{m2_id}"),
            &admin,
            json!({ "role": "merchant" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["role"], json!("merchant"));
    assert_eq!(r.data()["merchant_id"], json!(m2_id));
    assert_eq!(r.data()["parent_id"], json!(admin_id));
    let p = create_payin(&server, &m2, payin_body("ROLE-1", json!(10))).await;
    assert_eq!(p["merchant_id"], json!(m2_id));

    // Regenerate a sub-user's key: old one dead, new one works.
    let r = server
        .request(
            Method::POST,
            &format!("/api/v1/users/{u_id}/api-key"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["user"]["id"], json!(u_id));
    let new_u = r.data()["api_key"].as_str().unwrap().to_owned();
    assert_ne!(new_u, u);
    assert_error(
        &server.get("/api/v1/balance", &u).await,
        401,
        "invalid_api_key",
    );
    assert_eq!(server.get("/api/v1/balance", &new_u).await.status, 200);

    // Creation and suspension left user events in the log (the admin sees
    // every event; redelivery and replay are tested in tests/it/webhooks.rs).
    let created = list_all(
        &server,
        "/api/v1/webhooks/events?event=user.created",
        &admin,
        500,
    )
    .await;
    let mut created_for: Vec<String> = created
        .iter()
        .map(|e| e["payload"]["user_id"].as_str().unwrap().to_owned())
        .collect();
    created_for.sort();
    let mut expected = vec![m_id, a_id.clone(), u_id, v_id, b_id, m2_id];
    expected.sort();
    assert_eq!(created_for, expected);
    let suspended = list_all(
        &server,
        "/api/v1/webhooks/events?event=user.suspended",
        &admin,
        500,
    )
    .await;
    assert_eq!(suspended.len(), 1);
    assert_eq!(suspended[0]["payload"]["user_id"], json!(a_id));
    assert_eq!(suspended[0]["payload"]["status"], json!("suspended"));
    assert!(suspended[0]["id"].as_str().unwrap().starts_with("evt_"));
}

/// The webhook event log's three routes: list, redeliver one, replay the
/// failed ones, also several replays at once (each answers 202; one that
/// finds an event already requeued by another skips it). Deliveries go to
/// a closed port on 127.0.0.1, so each fails at once; tests/it/webhooks.rs
/// covers delivery itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_event_log_list_redeliver_and_replay() {
    let server = Server::start(&[
        "--webhook-allow-private",
        "--webhook-max-attempts",
        "1",
        "--webhook-retry-base-ms",
        "10",
    ]);
    let admin = server.admin_key.clone();
    let r = server
        .patch(
            "/api/v1/profile",
            &admin,
            json!({ "webhook_url": "http://127.0.0.1:9/closed" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut created = Vec::new();
    for _ in 0..8 {
        created.push(server.create_user(&admin, "merchant", json!({})).await.0);
    }
    let failed = server
        .wait_for(
            "/api/v1/webhooks/events?event=user.created&status=failed&limit=500",
            &admin,
            Duration::from_secs(20),
            |r| r.data().as_array().is_some_and(|l| l.len() == 8),
        )
        .await;
    let events = failed.data().as_array().unwrap().clone();
    let mut about: Vec<String> = events
        .iter()
        .map(|e| e["payload"]["user_id"].as_str().unwrap().to_owned())
        .collect();
    about.sort();
    created.sort();
    assert_eq!(about, created);
    for e in &events {
        assert_eq!(e["event"], json!("user.created"));
        assert_eq!(e["payload"]["role"], json!("merchant"));
        assert!(e["attempts"].as_u64().unwrap() >= 1);
    }

    let id = events[0]["id"].as_str().unwrap();
    let r = server
        .request(
            Method::POST,
            &format!("/api/v1/webhooks/events/{id}/redeliver"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.data()["id"], json!(id));

    let body = json!({ "event": "user.created" });
    let (r1, r2, r3) = tokio::join!(
        server.post("/api/v1/webhooks/replay", &admin, body.clone()),
        server.post("/api/v1/webhooks/replay", &admin, body.clone()),
        server.post("/api/v1/webhooks/replay", &admin, body.clone()),
    );
    for r in [r1, r2, r3] {
        assert_eq!(r.status, 202, "{}", r.text);
        assert!(r.data()["replayed"].as_u64().unwrap() <= 8, "{}", r.text);
        assert_eq!(r.data()["status"], json!("failed"));
    }
}

#[tokio::test]
async fn reports_summary_and_ledger_are_exact() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let admin = server.admin_key.clone();
    let (a_id, a) = server
        .create_user(
            &admin,
            "merchant",
            json!({ "payin_fee_bps": 250, "payout_fee": 10 }),
        )
        .await;
    let (_u_id, u) = server.create_user(&a, "api_user", json!({})).await;

    let p1 = create_payin(&server, &a, payin_body("R-1", json!(5000))).await;
    tick().await;
    let p2 = create_payin(&server, &u, payin_body("R-2", json!(1000))).await;
    tick().await;
    let p3 = create_payin(&server, &a, payin_body("R-3", json!(200))).await;
    tick().await;
    create_payin(&server, &a, payin_body("R-4", json!(300))).await;
    for (p, to) in [(&p1, "completed"), (&p2, "completed"), (&p3, "failed")] {
        let r = set_payment_status(&server, p["id"].as_str().unwrap(), to).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let x1 = create_payout(&server, &a, payout_body(json!(1000))).await;
    set_payout_status(&server, x1["id"].as_str().unwrap(), "processed").await;
    let x2 = create_payout(&server, &u, payout_body(json!(500))).await;
    set_payout_status(&server, x2["id"].as_str().unwrap(), "rejected").await;
    let x3 = create_payout(&server, &a, payout_body(json!(100))).await;

    let b = balance(&server, &a, "").await;
    assert_eq!(avail_held(&b), ("4730".into(), "110".into()));
    assert_money(&b["pending_payins"], "300", "pending_payins");
    assert_money(&b["total_payins"], "6000", "total_payins");
    assert_money(&b["total_payouts"], "1000", "total_payouts");
    assert_money(&b["total_fees"], "160", "total_fees");

    // Summary: counts and sums by status, fees, net.
    let check_summary = |d: &Value, payins: [(u64, &str); 3], payouts: [(u64, &str); 3]| {
        for (status, (count, amount)) in ["pending", "completed", "failed"].iter().zip(payins) {
            assert_eq!(
                d["payins"][status]["count"],
                json!(count),
                "payins {status}"
            );
            assert_money(&d["payins"][status]["amount"], amount, status);
        }
        for (status, (count, amount)) in ["pending", "processed", "rejected"].iter().zip(payouts) {
            assert_eq!(
                d["payouts"][status]["count"],
                json!(count),
                "payouts {status}"
            );
            assert_money(&d["payouts"][status]["amount"], amount, status);
        }
        assert_eq!(d["currency"], json!("INR"));
        assert_eq!(d["truncated"], json!(false));
    };
    let r = server.get("/api/v1/reports/summary", &a).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let s = r.data().clone();
    check_summary(
        &s,
        [(1, "300"), (2, "6000"), (1, "200")],
        [(1, "100"), (1, "1000"), (1, "500")],
    );
    assert_money(&s["fees"]["payins"], "150", "payin fees");
    assert_money(&s["fees"]["payouts"], "10", "payout fees");
    assert_money(&s["fees"]["total"], "160", "total fees");
    assert_money(&s["net"], "4840", "net = 6000 - 150 - 1000 - 10");

    // The admin naming the merchant, and its aggregate (one merchant), agree.
    let r = server
        .get(
            &format!("/api/v1/reports/summary?merchant_id={a_id}"),
            &admin,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data(), &s);
    let r = server.get("/api/v1/reports/summary", &admin).await;
    assert_eq!(r.data(), &s);

    // The api_user's own report.
    let r = server.get("/api/v1/reports/summary", &u).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let su = r.data().clone();
    check_summary(
        &su,
        [(0, "0"), (1, "1000"), (0, "0")],
        [(0, "0"), (0, "0"), (1, "500")],
    );
    assert_money(&su["fees"]["payins"], "25", "api_user payin fees");
    assert_money(&su["fees"]["total"], "25", "api_user fees");
    assert_money(&su["net"], "975", "api_user net");

    // A time window: `to` at R-2's creation keeps only R-1.
    let to = p2["created_at"].as_str().unwrap();
    let r = server
        .get(&format!("/api/v1/reports/summary?to={to}"), &a)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["to"], json!(to));
    check_summary(
        r.data(),
        [(0, "0"), (1, "5000"), (0, "0")],
        [(0, "0"), (0, "0"), (0, "0")],
    );
    assert_money(&r.data()["net"], "4875", "net of R-1");
    let r = server
        .get("/api/v1/reports/summary?from=2999-01-01T00:00:00.000Z", &a)
        .await;
    check_summary(
        r.data(),
        [(0, "0"), (0, "0"), (0, "0")],
        [(0, "0"), (0, "0"), (0, "0")],
    );
    assert_money(&r.data()["net"], "0", "net of nothing");

    // Ledger: newest first, every transfer touching the merchant's two
    // accounts (SPEC §11), consistent with the balance.
    let r = server.get("/api/v1/reports/ledger?limit=500", &a).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let entries = r.data().as_array().unwrap().clone();
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    let available = format!("merchant:{a_id}:available");
    let held = format!("merchant:{a_id}:held");
    let (av, hd) = (available.as_str(), held.as_str());
    let expected = [
        ("payout_hold", av, hd, "110", "4730", "110", id(&x3)),
        ("payout_release", hd, av, "510", "4840", "0", id(&x2)),
        ("payout_hold", av, hd, "510", "4330", "510", id(&x2)),
        (
            "payout_fee",
            hd,
            "platform:fees",
            "10",
            "4840",
            "0",
            id(&x1),
        ),
        (
            "payout_settle",
            hd,
            "rail:payouts",
            "1000",
            "4840",
            "10",
            id(&x1),
        ),
        ("payout_hold", av, hd, "1010", "4840", "1010", id(&x1)),
        (
            "payin_credit",
            "rail:payins",
            av,
            "975",
            "5850",
            "0",
            id(&p2),
        ),
        (
            "payin_credit",
            "rail:payins",
            av,
            "4875",
            "4875",
            "0",
            id(&p1),
        ),
    ];
    assert_eq!(entries.len(), expected.len(), "{}", r.text);
    for (i, (e, (kind, debit, credit, amount, avail, held_after, reference))) in
        entries.iter().zip(expected.iter()).enumerate()
    {
        assert_eq!(e["kind"], json!(kind), "entry {i}");
        assert_eq!(e["debit_account"], json!(debit), "entry {i}");
        assert_eq!(e["credit_account"], json!(credit), "entry {i}");
        assert_money(&e["amount"], amount, "amount");
        assert_money(&e["available_after"], avail, "available_after");
        assert_money(&e["held_after"], held_after, "held_after");
        assert_eq!(e["reference"], json!(reference), "entry {i}");
        assert_eq!(e["seq"], json!(expected.len() - i), "entry {i}");
        assert_eq!(e["merchant_id"], json!(a_id));
        assert_eq!(e["currency"], json!("INR"));
        assert!(e["id"].as_str().is_some_and(|t| t.starts_with("tr_")));
        assert!(e.get("gross").is_none() && e.get("fee").is_none(), "{e}");
        assert!(e["created_at"].as_str().is_some_and(is_timestamp));
    }
    // Σ (credits to the merchant's accounts) − Σ (debits) == available + held.
    assert_eq!(ledger_effect(&entries, &a_id), 484_000);
    assert_eq!(
        paise(&b["available"].to_string()) + paise(&b["held"].to_string()),
        484_000
    );

    // Pages of 3 follow the cursor with no gap.
    let paged = list_all(&server, "/api/v1/reports/ledger", &a, 3).await;
    let seqs: Vec<Value> = paged.iter().map(|e| e["seq"].clone()).collect();
    assert_eq!(seqs, (1..=8).rev().map(|s| json!(s)).collect::<Vec<_>>());

    // The api_user sees the entries of its own transactions only.
    let r = server.get("/api/v1/reports/ledger", &u).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let kinds: Vec<&str> = r
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["payout_release", "payout_hold", "payin_credit"]);
    let paged = list_all(&server, "/api/v1/reports/ledger", &u, 3).await;
    assert_eq!(paged.as_slice(), r.data().as_array().unwrap().as_slice());
    let paged = list_all(&server, "/api/v1/reports/ledger", &u, 1).await;
    assert_eq!(paged.as_slice(), r.data().as_array().unwrap().as_slice());

    // The admin names the merchant.
    let r = server
        .get(
            &format!("/api/v1/reports/ledger?merchant_id={a_id}"),
            &admin,
        )
        .await;
    assert_eq!(r.data().as_array().unwrap(), &entries);

    // CSV download: same rows.
    let r = server.get("/api/v1/reports/ledger?format=csv", &a).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    assert!(r
        .header("content-disposition")
        .is_some_and(|d| d.starts_with("attachment")));
    assert_csv_matches(&r.text, &entries);
}

/// The admin's `GET /ledger/transfers` with `query`, every page.
async fn transfers(server: &Server, query: &str) -> Vec<Value> {
    list_all(
        server,
        &format!("/api/v1/ledger/transfers{query}"),
        &server.admin_key,
        500,
    )
    .await
}

/// (kind, debit, credit, amount) of transfers, sorted (order-free compare).
fn legs(items: &[Value]) -> Vec<(String, String, String, String)> {
    let mut out: Vec<_> = items
        .iter()
        .map(|t| {
            (
                t["kind"].as_str().unwrap().to_owned(),
                t["debit_account"].as_str().unwrap().to_owned(),
                t["credit_account"].as_str().unwrap().to_owned(),
                t["amount"].to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn leg(kind: &str, debit: &str, credit: &str, amount: &str) -> (String, String, String, String) {
    (kind.into(), debit.into(), credit.into(), amount.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_entry_ledger_transfers_and_books() {
    // The sandbox settles on its own (after 50 ms): pay-in → completed,
    // payout → processed, account 000000000000 → rejected.
    let server = Server::start(&[]);
    let admin = server.admin_key.clone();

    // Merchant B, no fees: its pay-in has no `payin_fee` transfer (F = 0).
    let (b_id, b) = server.create_user(&admin, "merchant", json!({})).await;
    let pb = create_payin(&server, &b, payin_body("DE-B", json!(100))).await;
    let pb_id = pb["id"].as_str().unwrap().to_owned();
    let done = wait_settled(&server, &format!("/api/v1/payments/{pb_id}"), &b).await;
    assert_eq!(done["status"], json!("completed"));
    assert_money(&done["fee"], "0", "B's fee");

    // Merchant A: fees set by the admin, 2.5% and 10.00 per payout.
    let (a_id, a) = server.create_user(&admin, "merchant", json!({})).await;
    let r = server
        .patch(
            &format!("/api/v1/users/{a_id}"),
            &admin,
            json!({ "payin_fee_bps": 250, "payout_fee": "10" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["payin_fee_bps"], json!(250));
    assert_money(&r.data()["payout_fee"], "10", "payout_fee");

    tick().await;
    let p = create_payin(&server, &a, payin_body("DE-A", json!(1000))).await;
    let p_id = p["id"].as_str().unwrap().to_owned();
    let done = wait_settled(&server, &format!("/api/v1/payments/{p_id}"), &a).await;
    assert_eq!(done["status"], json!("completed"));
    assert_money(&done["fee"], "25", "2.5% of 1000");
    assert_money(&done["net_amount"], "975", "net");

    tick().await;
    let x1 = create_payout(&server, &a, payout_body(json!(300))).await;
    let x1_id = x1["id"].as_str().unwrap().to_owned();
    let done = wait_settled(&server, &format!("/api/v1/payouts/{x1_id}"), &a).await;
    assert_eq!(done["status"], json!("processed"));
    assert_money(&done["fee"], "10", "payout fee");

    tick().await;
    let mut body = payout_body(json!(200));
    body["beneficiary"]["account_number"] = json!("000000000000");
    let x2 = create_payout(&server, &a, body).await;
    let x2_id = x2["id"].as_str().unwrap().to_owned();
    let done = wait_settled(&server, &format!("/api/v1/payouts/{x2_id}"), &a).await;
    assert_eq!(done["status"], json!("rejected"));

    // 975 − (300 + 10) = 665; nothing held.
    let bal = balance(&server, &a, "").await;
    assert_eq!(avail_held(&bal), ("665".into(), "0".into()));
    let bal_b = balance(&server, &b, "").await;
    assert_eq!(avail_held(&bal_b), ("100".into(), "0".into()));

    // A's ledger: exactly its transfers, oldest = seq 1, newest first. The
    // pay-in fee (rail:payins → platform:fees) is not on it, nor is B's pay-in.
    let av = format!("merchant:{a_id}:available");
    let hd = format!("merchant:{a_id}:held");
    let (av, hd) = (av.as_str(), hd.as_str());
    let lines = list_all(&server, "/api/v1/reports/ledger", &a, 2).await;
    let expected = [
        ("payin_credit", "rail:payins", av, "975", "975", "0", &p_id),
        ("payout_hold", av, hd, "310", "665", "310", &x1_id),
        (
            "payout_settle",
            hd,
            "rail:payouts",
            "300",
            "665",
            "10",
            &x1_id,
        ),
        ("payout_fee", hd, "platform:fees", "10", "665", "0", &x1_id),
        ("payout_hold", av, hd, "210", "455", "210", &x2_id),
        ("payout_release", hd, av, "210", "665", "0", &x2_id),
    ];
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    for (n, (e, (kind, debit, credit, amount, avail, held, reference))) in
        lines.iter().rev().zip(expected.iter()).enumerate()
    {
        let what = format!("seq {}: {e}", n + 1);
        assert_eq!(e["seq"], json!(n + 1), "{what}");
        assert_eq!(e["kind"], json!(kind), "{what}");
        assert_eq!(e["debit_account"], json!(debit), "{what}");
        assert_eq!(e["credit_account"], json!(credit), "{what}");
        assert_money(&e["amount"], amount, &what);
        assert_money(&e["available_after"], avail, &what);
        assert_money(&e["held_after"], held, &what);
        assert_eq!(e["reference"], json!(reference), "{what}");
        assert_eq!(e["merchant_id"], json!(a_id), "{what}");
        assert_eq!(e["currency"], json!("INR"), "{what}");
        assert!(
            e["id"].as_str().is_some_and(|t| t.starts_with("tr_")),
            "{what}"
        );
        assert!(e["created_at"].as_str().is_some_and(is_timestamp), "{what}");
    }
    assert_eq!(ledger_effect(&lines, &a_id), 66_500);
    assert_eq!(lines[0]["available_after"], bal["available"]);
    assert_eq!(lines[0]["held_after"], bal["held"]);
    // B's ledger: its one credit, no fee.
    let lines_b = list_all(&server, "/api/v1/reports/ledger", &b, 50).await;
    assert_eq!(lines_b.len(), 1, "{lines_b:?}");
    assert_eq!(lines_b[0]["kind"], json!("payin_credit"));
    assert_eq!(lines_b[0]["seq"], json!(1));
    assert_money(&lines_b[0]["amount"], "100", "B's credit");

    // The books: every currency sums to exactly 0; platform:fees holds the
    // fees, rail:payins minus the gross collected, the merchants' accounts
    // what /balance shows.
    let r = server.get("/api/v1/ledger/accounts", &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let books = r.data().clone();
    let totals = books["totals"].as_array().unwrap();
    assert_eq!(totals.len(), 1, "{}", r.text);
    assert_eq!(totals[0]["currency"], json!("INR"));
    assert_money(&totals[0]["balance"], "0", "INR total");
    let accounts = books["accounts"].as_array().unwrap();
    let account = |name: &str| {
        accounts
            .iter()
            .find(|x| x["account"] == json!(name))
            .unwrap_or_else(|| panic!("{name} is not listed: {}", r.text))
            .clone()
    };
    let check = |name: &str, normal: &str, debits: &str, credits: &str, bal: &str| {
        let x = account(name);
        assert_eq!(x["currency"], json!("INR"), "{name}");
        assert_eq!(x["normal"], json!(normal), "{name}");
        assert_money(
            &x["debits_posted"],
            debits,
            &format!("{name} debits_posted"),
        );
        assert_money(
            &x["credits_posted"],
            credits,
            &format!("{name} credits_posted"),
        );
        assert_money(&x["balance"], bal, &format!("{name} balance"));
    };
    check(av, "credit", "520", "1185", "665");
    check(hd, "credit", "520", "520", "0");
    check(
        &format!("merchant:{b_id}:available"),
        "credit",
        "0",
        "100",
        "100",
    );
    check(&format!("merchant:{b_id}:held"), "credit", "0", "0", "0");
    check("platform:fees", "credit", "0", "35", "35");
    check("rail:payins", "debit", "1100", "0", "-1100");
    check("rail:payouts", "debit", "0", "300", "300");
    check("rail:refunds", "debit", "0", "0", "0");
    check("rail:settlements", "debit", "0", "0", "0");
    assert_eq!(accounts.len(), 2 * 2 + 5, "{}", r.text);
    assert_eq!(account(av)["balance"], bal["available"]);
    assert_eq!(account(hd)["balance"], bal["held"]);
    let mut sum: i64 = 0;
    for x in accounts {
        let text = x["balance"].to_string();
        let magnitude = i64::try_from(paise(text.trim_start_matches('-'))).unwrap();
        sum += if text.starts_with('-') {
            -magnitude
        } else {
            magnitude
        };
    }
    assert_eq!(sum, 0, "the listed balances sum to 0");

    // Transfers by reference: the pay-in's credit and its fee.
    let by_ref = transfers(&server, &format!("?reference={p_id}")).await;
    assert_eq!(
        legs(&by_ref),
        vec![
            leg("payin_credit", "rail:payins", av, "975"),
            leg("payin_fee", "rail:payins", "platform:fees", "25"),
        ]
    );
    for t in &by_ref {
        assert_eq!(t["reference"], json!(p_id));
        assert_eq!(t["merchant_id"], json!(a_id));
        assert_eq!(t["currency"], json!("INR"));
        assert!(t["created_at"].as_str().is_some_and(is_timestamp));
        match t["kind"].as_str().unwrap() {
            "payin_credit" => {
                assert_eq!(t["seq"], json!(1), "{t}");
                assert_eq!(t["id"], lines[5]["id"], "{t}");
                assert_eq!(t["balances_after"].as_object().unwrap().len(), 1, "{t}");
                assert_money(
                    &t["balances_after"][av],
                    "975",
                    "available after the credit",
                );
            }
            _ => {
                assert_eq!(t["seq"], Value::Null, "{t}");
                assert_eq!(t["balances_after"], json!({}), "{t}");
            }
        }
    }
    // B's pay-in: one transfer, no fee.
    let by_ref = transfers(&server, &format!("?reference={pb_id}")).await;
    assert_eq!(
        legs(&by_ref),
        vec![leg(
            "payin_credit",
            "rail:payins",
            &format!("merchant:{b_id}:available"),
            "100"
        )]
    );
    // The processed payout: hold, settle, fee; the balances after each.
    let by_ref = transfers(&server, &format!("?reference={x1_id}")).await;
    assert_eq!(
        legs(&by_ref),
        vec![
            leg("payout_fee", hd, "platform:fees", "10"),
            leg("payout_hold", av, hd, "310"),
            leg("payout_settle", hd, "rail:payouts", "300"),
        ]
    );
    let hold = by_ref.iter().find(|t| t["kind"] == "payout_hold").unwrap();
    assert_eq!(
        hold["balances_after"].as_object().unwrap().len(),
        2,
        "{hold}"
    );
    assert_money(
        &hold["balances_after"][av],
        "665",
        "available after the hold",
    );
    assert_money(&hold["balances_after"][hd], "310", "held after the hold");

    // Filters: kind, account, both; every transfer in pages of 2.
    let fees = transfers(&server, "?kind=payin_fee").await;
    assert_eq!(
        legs(&fees),
        vec![leg("payin_fee", "rail:payins", "platform:fees", "25")]
    );
    assert_eq!(fees[0]["reference"], json!(p_id));
    let to_fees = transfers(&server, "?account=platform:fees").await;
    assert_eq!(
        legs(&to_fees),
        vec![
            leg("payin_fee", "rail:payins", "platform:fees", "25"),
            leg("payout_fee", hd, "platform:fees", "10"),
        ]
    );
    let holds = transfers(&server, &format!("?account={av}&kind=payout_hold")).await;
    assert_eq!(
        legs(&holds),
        vec![
            leg("payout_hold", av, hd, "210"),
            leg("payout_hold", av, hd, "310")
        ]
    );
    let all = list_all(&server, "/api/v1/ledger/transfers", &admin, 2).await;
    assert_unique(&ids(&all));
    assert_eq!(all.len(), 8, "A: 6 lines + the pay-in fee; B: 1");
    // The merchant's ledger is exactly the transfers touching its accounts.
    let mut on_a: Vec<String> = ids(&transfers(&server, &format!("?account={av}")).await);
    on_a.extend(ids(&transfers(&server, &format!("?account={hd}")).await));
    on_a.sort();
    on_a.dedup();
    let mut listed = ids(&lines);
    listed.sort();
    assert_eq!(on_a, listed);

    // Refusals: only admins read the books; bad filters are invalid_request.
    for path in ["/api/v1/ledger/accounts", "/api/v1/ledger/transfers"] {
        assert_error(&server.get(path, &a).await, 403, "insufficient_permissions");
    }
    for query in [
        "account=bogus",
        "account=merchant:usr_x:available",
        "kind=bogus",
        "cursor=nope",
    ] {
        assert_error(
            &server
                .get(&format!("/api/v1/ledger/transfers?{query}"), &admin)
                .await,
            400,
            "invalid_request",
        );
    }

    // CSV: the header and one row per JSON line, whatever `limit` says.
    for query in ["format=csv", "format=csv&limit=2"] {
        let r = server
            .get(&format!("/api/v1/reports/ledger?{query}"), &a)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
        assert_csv_matches(&r.text, &lines);
    }

    // from/to: [the first payout's hold, the second payout's hold) selects
    // the first payout's three lines, in JSON and in CSV.
    let at = |seq: usize| {
        lines[lines.len() - seq]["created_at"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        at(1) < at(2) && at(4) < at(5),
        "distinct instants: {lines:#?}"
    );
    let window = format!("from={}&to={}", at(2), at(5));
    let r = server
        .get(&format!("/api/v1/reports/ledger?{window}"), &a)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let selected = r.data().as_array().unwrap().clone();
    let seqs: Vec<Value> = selected.iter().map(|e| e["seq"].clone()).collect();
    assert_eq!(seqs, [json!(4), json!(3), json!(2)]);
    assert_eq!(selected.as_slice(), &lines[2..5]);
    let r = server
        .get(&format!("/api/v1/reports/ledger?format=csv&{window}"), &a)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_csv_matches(&r.text, &selected);
    let r = server
        .get(&format!("/api/v1/reports/ledger?from={}", at(5)), &a)
        .await;
    let seqs: Vec<Value> = r
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].clone())
        .collect();
    assert_eq!(seqs, [json!(6), json!(5)]);
    // The admin's transfers take the same window.
    let windowed = transfers(&server, &format!("?{window}")).await;
    let mut got = ids(&windowed);
    got.sort();
    let mut want = ids(&lines[2..5]);
    want.sort();
    assert_eq!(got, want);
    // `from` after `to` is an empty range, not an error (SPEC §17 refuses
    // only unknown and empty parameters).
    let r = server
        .get(
            &format!("/api/v1/reports/ledger?from={}&to={}", at(5), at(2)),
            &a,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data(), &json!([]));
    assert_error(
        &server.get("/api/v1/reports/ledger?format=xml", &a).await,
        400,
        "invalid_request",
    );
}
