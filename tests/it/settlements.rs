//! Settlements to merchants' own bank accounts (SPEC §14), black-box: the
//! settlement account (set, validated, masked, who may set it and the
//! reserve), on-demand settlement by the admin (swept above the reserve,
//! held, then processed with a UTR or failed and returned), its ledger
//! transfers and events, the cycle sweeping several merchants on its own,
//! listing, detail, CSV and scopes, the manual status with its reason, and
//! the zero sum of all accounts.

use crate::api_support::{assert_error, avail_held, balance, fund, paise};
use crate::common::Server;
use serde_json::{json, Value};
use std::time::Duration;

const GOOD_ACCOUNT: &str = "123456789012";
const FAILING_ACCOUNT: &str = "000000000000";

fn account(number: &str) -> Value {
    json!({ "name": "Acme Traders", "account_number": number, "ifsc": "HDFC0001234" })
}

/// A merchant under the admin with a settlement account to `number` (set
/// by the admin), funded with one completed pay-in of `amount`.
async fn settled_merchant(server: &Server, number: &str, amount: &str) -> (String, String) {
    let (id, key) = server
        .create_user(&server.admin_key, "merchant", json!({}))
        .await;
    let r = server
        .patch(
            &format!("/api/v1/users/{id}"),
            &server.admin_key,
            json!({ "settlement_account": account(number) }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    fund(server, &key, &format!("fund-{id}"), json!(amount)).await;
    (id, key)
}

async fn settle_now(server: &Server, merchant: &str) -> Value {
    let r = server
        .post(
            "/api/v1/settlements",
            &server.admin_key,
            json!({ "merchant_id": merchant }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.data().clone()
}

async fn wait_settled(server: &Server, id: &str, key: &str) -> Value {
    server
        .wait_for(
            &format!("/api/v1/settlements/{id}"),
            key,
            Duration::from_secs(10),
            |r| r.status == 200 && r.data()["status"] != "pending",
        )
        .await
        .data()
        .clone()
}

/// Every currency's accounts sum to zero; returns the accounts.
async fn assert_zero_sum(server: &Server) -> Vec<Value> {
    let r = server
        .get("/api/v1/ledger/accounts", &server.admin_key)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let totals = r.data()["totals"].as_array().unwrap().clone();
    assert!(!totals.is_empty());
    for total in totals {
        assert_eq!(total["balance"], json!(0), "{}", r.text);
    }
    r.data()["accounts"].as_array().unwrap().clone()
}

fn account_balance(accounts: &[Value], name: &str) -> Value {
    accounts
        .iter()
        .find(|a| a["account"] == name)
        .map_or(json!(0), |a| a["balance"].clone())
}

async fn events_of(server: &Server, key: &str) -> Vec<Value> {
    let r = server.get("/api/v1/webhooks/events?limit=500", key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.data().as_array().unwrap().clone()
}

#[tokio::test]
async fn the_settlement_account_is_validated_masked_and_set_by_whom_it_may() {
    let server = Server::start(&[]);
    let admin = server.admin_key.clone();
    let (mgr_id, mgr) = server.create_user(&admin, "manager", json!({})).await;
    let (m_id, m_key) = server
        .create_user(&mgr, "merchant", json!({ "parent_id": mgr_id }))
        .await;
    let (u_id, u_key) = server.create_user(&m_key, "api_user", json!({})).await;

    // No account yet: null, reserve 0.
    let me = server.get("/api/v1/profile", &m_key).await;
    assert_eq!(me.data()["settlement_account"], Value::Null, "{}", me.text);
    assert_eq!(me.data()["settlement_reserve"], json!(0));

    // The merchant sets its own; it is shown masked but the last 4, everywhere.
    let r = server
        .patch(
            "/api/v1/profile",
            &m_key,
            json!({ "settlement_account": account(GOOD_ACCOUNT) }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let masked =
        json!({ "name": "Acme Traders", "account_number": "XXXXXXXX9012", "ifsc": "HDFC0001234" });
    assert_eq!(r.data()["settlement_account"], masked);
    let seen = server.get(&format!("/api/v1/users/{m_id}"), &mgr).await;
    assert_eq!(seen.data()["settlement_account"], masked, "{}", seen.text);
    assert!(!seen.text.contains(GOOD_ACCOUNT));

    // Bad accounts change nothing.
    let bad = [
        (
            json!({ "name": "A", "account_number": "12345678", "ifsc": "HDFC0001234" }),
            400,
            "invalid_request",
        ),
        (
            json!({ "name": "A", "account_number": "1234567890123456789", "ifsc": "HDFC0001234" }),
            400,
            "invalid_request",
        ),
        (
            json!({ "name": "A", "account_number": "12345678901a", "ifsc": "HDFC0001234" }),
            400,
            "invalid_request",
        ),
        (
            json!({ "name": "A", "account_number": "123456789012", "ifsc": "HDFC1001234" }),
            400,
            "invalid_request",
        ),
        (
            json!({ "name": "A", "account_number": "123456789012", "ifsc": "hdfc0001234" }),
            400,
            "invalid_request",
        ),
        (
            json!({ "name": "  ", "account_number": "123456789012", "ifsc": "HDFC0001234" }),
            400,
            "missing_fields",
        ),
        (
            json!({ "name": "A", "ifsc": "HDFC0001234" }),
            400,
            "missing_fields",
        ),
        (
            json!({ "name": "A", "account_number": 123456789012u64, "ifsc": "HDFC0001234" }),
            400,
            "invalid_request",
        ),
        (json!("123456789012"), 400, "invalid_request"),
    ];
    for (body, status, code) in bad {
        let r = server
            .patch(
                "/api/v1/profile",
                &m_key,
                json!({ "settlement_account": body }),
            )
            .await;
        assert_error(&r, status, code);
        let r = server
            .patch(
                &format!("/api/v1/users/{m_id}"),
                &admin,
                json!({ "settlement_account": body }),
            )
            .await;
        assert_error(&r, status, code);
    }
    let me = server.get("/api/v1/profile", &m_key).await;
    assert_eq!(me.data()["settlement_account"], masked);

    // Nobody sets a reserve through /profile; only merchants have an account.
    let r = server
        .patch(
            "/api/v1/profile",
            &m_key,
            json!({ "settlement_reserve": "10" }),
        )
        .await;
    assert_error(&r, 400, "invalid_request");
    let r = server
        .patch(
            "/api/v1/profile",
            &u_key,
            json!({ "settlement_account": account(GOOD_ACCOUNT) }),
        )
        .await;
    assert_error(&r, 400, "invalid_request");
    let r = server
        .patch(
            &format!("/api/v1/users/{u_id}"),
            &admin,
            json!({ "settlement_reserve": "1" }),
        )
        .await;
    assert_error(&r, 400, "invalid_request");

    // The reserve: admin and manager on PATCH /users/:id, not the merchant.
    let r = server
        .patch(
            &format!("/api/v1/users/{u_id}"),
            &m_key,
            json!({ "settlement_account": account(GOOD_ACCOUNT) }),
        )
        .await;
    assert_error(&r, 403, "insufficient_permissions");
    let r = server
        .patch(
            &format!("/api/v1/users/{m_id}"),
            &admin,
            json!({ "settlement_reserve": "10.50" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["settlement_reserve"].to_string(), "10.5");
    let r = server
        .patch(
            &format!("/api/v1/users/{m_id}"),
            &admin,
            json!({ "settlement_reserve": "1.234" }),
        )
        .await;
    assert_error(&r, 400, "invalid_amount");
    let r = server
        .patch(
            &format!("/api/v1/users/{m_id}"),
            &mgr,
            json!({ "settlement_reserve": 20, "settlement_account": account("9876543210") }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["settlement_reserve"], json!(20));
    assert_eq!(
        r.data()["settlement_account"]["account_number"],
        "XXXXXX3210"
    );

    // null removes the account.
    let r = server
        .patch(
            "/api/v1/profile",
            &m_key,
            json!({ "settlement_account": null }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["settlement_account"], Value::Null);
    assert_eq!(r.data()["settlement_reserve"], json!(20));
}

#[tokio::test]
async fn an_on_demand_settlement_sweeps_above_the_reserve_and_is_processed_with_a_utr() {
    let server = Server::start(&["--settle-delay-ms", "300"]);
    let admin = server.admin_key.clone();
    let (m_id, m_key) = server.create_user(&admin, "merchant", json!({})).await;
    fund(&server, &m_key, "fund-1", json!("1000.50")).await;

    // No account: a clear error and nothing moves.
    let r = server
        .post(
            "/api/v1/settlements",
            &admin,
            json!({ "merchant_id": m_id }),
        )
        .await;
    assert_error(&r, 400, "invalid_request");
    assert_eq!(
        avail_held(&balance(&server, &m_key, "").await),
        ("1000.5".into(), "0".into())
    );
    let r = server
        .patch(
            &format!("/api/v1/users/{m_id}"),
            &admin,
            json!({ "settlement_account": account(GOOD_ACCOUNT), "settlement_reserve": "100" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Only the admin settles on demand; a bad or unknown merchant is refused.
    let r = server
        .post(
            "/api/v1/settlements",
            &m_key,
            json!({ "merchant_id": m_id }),
        )
        .await;
    assert_error(&r, 403, "insufficient_permissions");
    let r = server.post("/api/v1/settlements", &admin, json!({})).await;
    assert_error(&r, 400, "missing_fields");
    let r = server
        .post(
            "/api/v1/settlements",
            &admin,
            json!({ "merchant_id": "usr_0000" }),
        )
        .await;
    assert_error(&r, 400, "invalid_request");
    let (other_admin_id, _) = server.create_user(&admin, "manager", json!({})).await;
    let r = server
        .post(
            "/api/v1/settlements",
            &admin,
            json!({ "merchant_id": other_admin_id }),
        )
        .await;
    assert_error(&r, 404, "not_found");

    let s = settle_now(&server, &m_id).await;
    let id = s["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("st_"), "{s}");
    assert_eq!(s["status"], "pending");
    assert_eq!(s["amount"].to_string(), "900.5");
    assert_eq!(s["merchant_id"], m_id.as_str());
    assert_eq!(s["utr"], Value::Null);
    assert_eq!(s["settlement_account"]["account_number"], "XXXXXXXX9012");
    // Held at once, the reserve left available.
    assert_eq!(
        avail_held(&balance(&server, &m_key, "").await),
        ("100".into(), "900.5".into())
    );
    // Nothing above the reserve now: nothing more to settle.
    let r = server
        .post(
            "/api/v1/settlements",
            &admin,
            json!({ "merchant_id": m_id }),
        )
        .await;
    assert_error(&r, 422, "insufficient_balance");

    let done = wait_settled(&server, &id, &m_key).await;
    assert_eq!(done["status"], "processed", "{done}");
    let utr = done["utr"].as_str().unwrap();
    assert!(utr.starts_with("TJST") && utr.len() == 16, "{utr}");
    assert!(done["processed_at"].is_string());
    assert_eq!(done["failure_reason"], Value::Null);
    assert_eq!(
        avail_held(&balance(&server, &m_key, "").await),
        ("100".into(), "0".into())
    );

    // The ledger: the hold and the settle, each for the amount, referencing it.
    let r = server.get("/api/v1/reports/ledger", &m_key).await;
    let lines = r.data().as_array().unwrap().clone();
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["settlement_settle", "settlement_hold", "payin_credit"],
        "{}",
        r.text
    );
    for line in &lines[..2] {
        assert_eq!(line["reference"], id.as_str());
        assert_eq!(line["amount"].to_string(), "900.5");
    }
    assert_eq!(lines[0]["credit_account"], "rail:settlements");
    assert_eq!(
        lines[1]["debit_account"],
        format!("merchant:{m_id}:available")
    );

    // The detail lists the transfers it covers: the pay-in and its own hold.
    assert_eq!(done["transfer_count"], json!(2), "{done}");
    let covered: Vec<&str> = done["transfers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(covered, ["payin_credit", "settlement_hold"]);
    assert_eq!(
        (done["first_seq"].clone(), done["last_seq"].clone()),
        (json!(1), json!(2))
    );

    // The event, to the merchant.
    let events = events_of(&server, &m_key).await;
    let event = events
        .iter()
        .find(|e| e["event"] == "settlement.processed")
        .unwrap_or_else(|| panic!("no settlement.processed in {events:?}"));
    assert_eq!(event["payload"]["settlement_id"], id.as_str());
    assert_eq!(event["payload"]["utr"], utr);
    assert_eq!(event["payload"]["amount"].to_string(), "900.5");
    assert_eq!(event["payload"]["account_number"], "XXXXXXXX9012");

    // A second settlement covers what came after the first one's hold.
    fund(&server, &m_key, "fund-2", json!("50")).await;
    let second = settle_now(&server, &m_id).await;
    assert_eq!(second["amount"].to_string(), "50");
    assert_eq!(
        (second["first_seq"].clone(), second["last_seq"].clone()),
        (json!(3), json!(5))
    );
    let second = wait_settled(&server, second["id"].as_str().unwrap(), &admin).await;
    let covered: Vec<&str> = second["transfers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        covered,
        ["settlement_settle", "payin_credit", "settlement_hold"]
    );

    let accounts = assert_zero_sum(&server).await;
    assert_eq!(
        account_balance(&accounts, "rail:settlements").to_string(),
        "950.5"
    );
}

#[tokio::test]
async fn a_settlement_to_the_failing_account_fails_and_the_money_comes_back() {
    let server = Server::start(&[]);
    let (m_id, m_key) = settled_merchant(&server, FAILING_ACCOUNT, "250").await;
    let s = settle_now(&server, &m_id).await;
    assert_eq!(s["amount"].to_string(), "250");
    let done = wait_settled(&server, s["id"].as_str().unwrap(), &m_key).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["utr"], Value::Null);
    assert_eq!(done["failure_reason"], "settlement account is invalid");
    assert_eq!(
        avail_held(&balance(&server, &m_key, "").await),
        ("250".into(), "0".into())
    );
    let r = server.get("/api/v1/reports/ledger", &m_key).await;
    let kinds: Vec<&str> = r
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["settlement_release", "settlement_hold", "payin_credit"]
    );
    let events = events_of(&server, &m_key).await;
    assert!(
        events.iter().any(|e| e["event"] == "settlement.failed"
            && e["payload"]["failure_reason"] == "settlement account is invalid"),
        "{events:?}"
    );
    let accounts = assert_zero_sum(&server).await;
    assert_eq!(account_balance(&accounts, "rail:settlements"), json!(0));
}

#[tokio::test]
async fn the_admin_settles_by_hand_and_the_reason_is_kept() {
    // The rail waits an hour: only the manual path settles.
    let server = Server::start(&["--settle-delay-ms", "3600000"]);
    let admin = server.admin_key.clone();
    let (m_id, m_key) = server.create_user(&admin, "merchant", json!({})).await;
    let p = crate::api_support::create_payin(
        &server,
        &m_key,
        json!({ "order_id": "o-1", "amount": "500", "payer": "P" }),
    )
    .await;
    crate::api_support::set_payment_status(&server, p["id"].as_str().unwrap(), "completed").await;
    server
        .patch(
            &format!("/api/v1/users/{m_id}"),
            &admin,
            json!({ "settlement_account": account(GOOD_ACCOUNT) }),
        )
        .await;
    let first = settle_now(&server, &m_id).await;
    let first_id = first["id"].as_str().unwrap();
    let path = format!("/api/v1/settlements/{first_id}/status");

    let r = server
        .post(&path, &m_key, json!({ "status": "failed", "reason": "x" }))
        .await;
    assert_error(&r, 403, "insufficient_permissions");
    let r = server
        .post(&path, &admin, json!({ "status": "failed" }))
        .await;
    assert_error(&r, 400, "missing_fields");
    let r = server
        .post(&path, &admin, json!({ "status": "pending", "reason": "x" }))
        .await;
    assert_error(&r, 400, "invalid_request");
    let r = server
        .post(
            "/api/v1/settlements/st_0123/status",
            &admin,
            json!({ "status": "failed", "reason": "x" }),
        )
        .await;
    assert_error(&r, 404, "not_found");

    let r = server
        .post(
            &path,
            &admin,
            json!({ "status": "failed", "reason": "bank returned it" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["status"], "failed");
    assert_eq!(r.data()["reason"], "bank returned it");
    assert_eq!(r.data()["failure_reason"], "bank returned it");
    assert_eq!(
        avail_held(&balance(&server, &m_key, "").await),
        ("500".into(), "0".into())
    );
    let r = server
        .post(
            &path,
            &admin,
            json!({ "status": "processed", "reason": "again" }),
        )
        .await;
    assert_error(&r, 409, "invalid_status_transition");

    let second = settle_now(&server, &m_id).await;
    let r = server
        .post(
            &format!(
                "/api/v1/settlements/{}/status",
                second["id"].as_str().unwrap()
            ),
            &admin,
            json!({ "status": "processed", "reason": "confirmed by phone" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["reason"], "confirmed by phone");
    assert!(r.data()["utr"]
        .as_str()
        .is_some_and(|u| u.starts_with("TJST")));
    assert_eq!(
        avail_held(&balance(&server, &m_key, "").await),
        ("0".into(), "0".into())
    );
    let got = server
        .get(&format!("/api/v1/settlements/{first_id}"), &m_key)
        .await;
    assert_eq!(got.data()["reason"], "bank returned it");
    let accounts = assert_zero_sum(&server).await;
    assert_eq!(
        account_balance(&accounts, "rail:settlements").to_string(),
        "500"
    );
}

#[tokio::test]
async fn the_cycle_sweeps_every_merchant_with_an_account_on_its_own() {
    let server = Server::start(&["--settlement-interval-secs", "1"]);
    let admin = server.admin_key.clone();
    let mut settled = Vec::new();
    for (i, amount) in ["100", "200.25", "300"].iter().enumerate() {
        let number = if i == 2 {
            FAILING_ACCOUNT
        } else {
            GOOD_ACCOUNT
        };
        settled.push((
            settled_merchant(&server, number, amount).await,
            *amount,
            number,
        ));
    }
    // A merchant without an account is never swept.
    let (lone_id, lone_key) = server.create_user(&admin, "merchant", json!({})).await;
    fund(&server, &lone_key, "lone", json!("75")).await;

    for ((m_id, m_key), amount, number) in &settled {
        let r = server
            .wait_for(
                &format!("/api/v1/settlements?merchant_id={m_id}"),
                &admin,
                Duration::from_secs(15),
                |r| {
                    r.status == 200
                        && r.data()
                            .as_array()
                            .is_some_and(|a| a.iter().any(|s| s["status"] != "pending"))
                },
            )
            .await;
        let s = r.data().as_array().unwrap().last().unwrap().clone();
        assert_eq!(s["amount"].to_string(), amount.to_string(), "{s}");
        let want = if *number == FAILING_ACCOUNT {
            "failed"
        } else {
            "processed"
        };
        assert_eq!(s["status"], want, "{s}");
        // A failed one's money came back (and may be swept again by a later
        // tick, so it is available or held); a processed one's is gone.
        let (available, held) = avail_held(&balance(&server, m_key, "").await);
        let total = paise(&available) + paise(&held);
        let left = if want == "failed" { paise(amount) } else { 0 };
        assert_eq!(total, left, "{m_id}: {available} + {held}");
    }
    let r = server
        .get(
            &format!("/api/v1/settlements?merchant_id={lone_id}"),
            &admin,
        )
        .await;
    assert_eq!(r.data(), &json!([]), "{}", r.text);
    assert_eq!(avail_held(&balance(&server, &lone_key, "").await).0, "75");
    assert_zero_sum(&server).await;
}

#[tokio::test]
async fn listing_detail_csv_and_scopes() {
    let server = Server::start(&["--settle-delay-ms", "3600000"]);
    let admin = server.admin_key.clone();
    let (mgr_id, mgr) = server.create_user(&admin, "manager", json!({})).await;
    let (a_id, a_key) = server
        .create_user(&mgr, "merchant", json!({ "parent_id": mgr_id }))
        .await;
    let (_, a_user) = server.create_user(&a_key, "api_user", json!({})).await;
    let (b_id, b_key) = settled_merchant(&server, GOOD_ACCOUNT, "40").await;
    server
        .patch(
            "/api/v1/profile",
            &a_key,
            json!({ "settlement_account": account(GOOD_ACCOUNT) }),
        )
        .await;
    let mut a_ids = Vec::new();
    for i in 0..3 {
        fund(
            &server,
            &a_key,
            &format!("a-{i}"),
            json!(format!("{}", 10 + i)),
        )
        .await;
        a_ids.push(
            settle_now(&server, &a_id).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let b_st = settle_now(&server, &b_id).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // One of A's fails by hand.
    let r = server
        .post(
            &format!("/api/v1/settlements/{}/status", a_ids[0]),
            &admin,
            json!({ "status": "failed", "reason": "closed, \"really\"" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let list_ids = |r: &crate::common::Resp| -> Vec<String> {
        r.data()
            .as_array()
            .unwrap_or_else(|| panic!("{}", r.text))
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let newest_first: Vec<String> = a_ids.iter().rev().cloned().collect();
    // Merchant, its api_user and its manager see A's, newest first; the admin all.
    for key in [&a_key, &a_user, &mgr] {
        let r = server.get("/api/v1/settlements", key).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(list_ids(&r), newest_first);
    }
    let r = server.get("/api/v1/settlements", &admin).await;
    let mut all = newest_first.clone();
    all.insert(0, b_st.clone());
    assert_eq!(list_ids(&r), all);
    let r = server.get("/api/v1/settlements", &b_key).await;
    assert_eq!(list_ids(&r), std::slice::from_ref(&b_st));

    // Filters and pages.
    let r = server
        .get("/api/v1/settlements?status=failed", &admin)
        .await;
    assert_eq!(list_ids(&r), [a_ids[0].clone()]);
    let r = server
        .get(
            &format!("/api/v1/settlements?merchant_id={a_id}&status=pending"),
            &admin,
        )
        .await;
    assert_eq!(list_ids(&r), [a_ids[2].clone(), a_ids[1].clone()]);
    let r = server.get("/api/v1/settlements?limit=2", &a_key).await;
    assert_eq!(list_ids(&r), newest_first[..2]);
    let cursor = r.json["pagination"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(r.json["pagination"]["has_more"], json!(true));
    let r = server
        .get(
            &format!("/api/v1/settlements?limit=2&cursor={cursor}"),
            &a_key,
        )
        .await;
    assert_eq!(list_ids(&r), newest_first[2..]);
    assert_eq!(r.json["pagination"]["has_more"], json!(false));
    let r = server
        .get(
            "/api/v1/settlements?from=2000-01-01T00:00:00.000Z&to=2001-01-01T00:00:00.000Z",
            &admin,
        )
        .await;
    assert_eq!(list_ids(&r), Vec::<String>::new());

    // Bad input and other merchants.
    for bad in [
        "?status=done",
        "?to=",
        "?nope=1",
        "?cursor=po_1",
        "?format=xml",
        "?limit=0",
    ] {
        let r = server
            .get(&format!("/api/v1/settlements{bad}"), &a_key)
            .await;
        assert_error(&r, 400, "invalid_request");
    }
    let r = server
        .get(&format!("/api/v1/settlements?merchant_id={b_id}"), &a_key)
        .await;
    assert_error(&r, 403, "insufficient_permissions");
    let r = server
        .get(&format!("/api/v1/settlements?merchant_id={b_id}"), &mgr)
        .await;
    assert_error(&r, 404, "not_found");
    for key in [&a_key, &a_user, &mgr] {
        let r = server
            .get(&format!("/api/v1/settlements/{b_st}"), key)
            .await;
        assert_error(&r, 404, "not_found");
    }
    let r = server
        .get(&format!("/api/v1/settlements/{b_st}"), &b_key)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["transfer_count"], json!(2));
    let r = server.get("/api/v1/settlements/st_nope", &admin).await;
    assert_error(&r, 404, "not_found");

    // CSV: the whole range whatever the limit, masked, quoted.
    let r = server
        .get("/api/v1/settlements?format=csv&limit=1", &a_key)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    let lines: Vec<&str> = r.text.lines().collect();
    assert!(
        lines[0].starts_with("id,merchant_id,amount,currency,status,utr"),
        "{}",
        r.text
    );
    assert_eq!(lines.len(), 4, "{}", r.text);
    for (line, id) in lines[1..].iter().zip(&newest_first) {
        assert!(line.starts_with(id.as_str()), "{line}");
        assert!(line.contains(",XXXXXXXX9012,"), "{line}");
    }
    assert!(
        lines[3].contains(",failed,") && lines[3].contains("\"closed, \"\"really\"\"\""),
        "{}",
        lines[3]
    );
    assert!(!r.text.contains(GOOD_ACCOUNT));
}

/// Settlements in flight when the server is killed with SIGKILL: one the
/// rail has not settled yet, one set failed by hand just before. After the
/// restart the pending one is settled by the rail, exactly once; nothing
/// is applied twice (one hold and one settle transfer per settlement, one
/// event each), and a third start changes nothing.
#[tokio::test]
async fn a_settlement_in_flight_at_kill_9_is_settled_after_the_restart_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    // The rail waits 4 s: nothing settles before the kill (a pending row's
    // due time is fixed when it is written).
    let mut server = Server::start_in(dir.path(), &["--settle-delay-ms", "4000"]);
    let admin = server.admin_key.clone();
    let (m_id, m_key) = server.create_user(&admin, "merchant", json!({})).await;
    let p = crate::api_support::create_payin(
        &server,
        &m_key,
        json!({ "order_id": "o-1", "amount": "700", "payer": "P" }),
    )
    .await;
    crate::api_support::set_payment_status(&server, p["id"].as_str().unwrap(), "completed").await;
    server
        .patch(
            &format!("/api/v1/users/{m_id}"),
            &admin,
            json!({ "settlement_account": account(GOOD_ACCOUNT), "settlement_reserve": "200" }),
        )
        .await;
    let pending = settle_now(&server, &m_id).await;
    let pending_id = pending["id"].as_str().unwrap().to_owned();
    assert_eq!(pending["amount"], json!(500));
    // A second one (after more money), failed by hand: it is terminal.
    crate::api_support::fund(&server, &m_key, "o-2", json!("100")).await;
    let second = settle_now(&server, &m_id).await;
    let second_id = second["id"].as_str().unwrap().to_owned();
    let r = server
        .post(
            &format!("/api/v1/settlements/{second_id}/status"),
            &admin,
            json!({ "status": "failed", "reason": "before the crash" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        avail_held(&balance(&server, &m_key, "").await),
        ("300".into(), "500".into())
    );
    let still = server
        .get(&format!("/api/v1/settlements/{pending_id}"), &m_key)
        .await;
    assert_eq!(still.data()["status"], "pending", "{}", still.text);
    server.kill9();
    drop(server);

    // Restarted with a short delay: the rail finds the pending one.
    let server = Server::start_in(dir.path(), &["--settle-delay-ms", "20"]);
    let done = wait_settled(&server, &pending_id, &m_key).await;
    assert_eq!(done["status"], "processed", "{done}");
    check_after_crash(&server, &m_key, &pending_id, &second_id).await;
    let r = server
        .post(
            &format!("/api/v1/settlements/{pending_id}/status"),
            &admin,
            json!({ "status": "failed", "reason": "too late" }),
        )
        .await;
    assert_error(&r, 409, "invalid_status_transition");
    let mut server = server;
    server.kill9();
    drop(server);
    let server = Server::start_in(dir.path(), &["--settle-delay-ms", "20"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    check_after_crash(&server, &m_key, &pending_id, &second_id).await;
    // A new wallet incarnation finds where the last settlement's coverage
    // ended in storage: the next one starts after the second one's hold
    // (seq 4: 1 pay-in, 2 hold, 3 pay-in, 4 hold, 5 release, 6 settle).
    crate::api_support::fund(&server, &m_key, "o-3", json!("50")).await;
    let third = settle_now(&server, &m_id).await;
    assert_eq!(third["amount"], json!(150), "{third}");
    assert_eq!(
        (third["first_seq"].clone(), third["last_seq"].clone()),
        (json!(5), json!(8))
    );
}

/// Concurrent on-demand settlements of one merchant: the wallet serialises
/// them, so exactly one sweeps the balance and the others find nothing
/// above the reserve.
#[tokio::test]
async fn concurrent_settlements_of_one_merchant_sweep_once() {
    let server = std::sync::Arc::new(Server::start(&["--settle-delay-ms", "3600000"]));
    let (m_id, m_key) = settled_merchant(&server, GOOD_ACCOUNT, "1234.56").await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (server, m_id) = (server.clone(), m_id.clone());
        tasks.push(tokio::spawn(async move {
            let admin = server.admin_key.clone();
            server
                .post(
                    "/api/v1/settlements",
                    &admin,
                    json!({ "merchant_id": m_id }),
                )
                .await
        }));
    }
    let mut created = Vec::new();
    for task in tasks {
        let r = task.await.unwrap();
        match r.status.as_u16() {
            201 => created.push(r.data().clone()),
            _ => assert_error(&r, 422, "insufficient_balance"),
        }
    }
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0]["amount"].to_string(), "1234.56");
    assert_eq!(
        avail_held(&balance(&server, &m_key, "").await),
        ("0".into(), "1234.56".into())
    );
    assert_zero_sum(&server).await;
}

/// The state after the crash test's restarts: balances, one hold and one
/// settle or release per settlement, one event each, the zero sum.
async fn check_after_crash(server: &Server, m_key: &str, pending_id: &str, second_id: &str) {
    assert_eq!(
        avail_held(&balance(server, m_key, "").await),
        ("300".into(), "0".into())
    );
    let r = server.get("/api/v1/reports/ledger?limit=500", m_key).await;
    let lines = r.data().as_array().unwrap().clone();
    let of = |id: &str| -> Vec<String> {
        let mut kinds: Vec<String> = lines
            .iter()
            .filter(|l| l["reference"] == id)
            .map(|l| l["kind"].as_str().unwrap().to_owned())
            .collect();
        kinds.sort();
        kinds
    };
    assert_eq!(
        of(pending_id),
        ["settlement_hold", "settlement_settle"],
        "{}",
        r.text
    );
    assert_eq!(
        of(second_id),
        ["settlement_hold", "settlement_release"],
        "{}",
        r.text
    );
    let events = events_of(server, m_key).await;
    let count = |kind: &str, id: &str| {
        events
            .iter()
            .filter(|e| e["event"] == kind && e["payload"]["settlement_id"] == id)
            .count()
    };
    assert_eq!(count("settlement.processed", pending_id), 1);
    assert_eq!(count("settlement.failed", second_id), 1);
    let accounts = assert_zero_sum(server).await;
    assert_eq!(account_balance(&accounts, "rail:settlements"), json!(500));
}
