//! Every error code of SPEC §2, provoked black-box against the real binary,
//! with its exact HTTP status and the seed's envelope (`success: false`,
//! `error.code/message/status/timestamp`, `details.fields` listing every
//! missing field), and proof that a rejected request changed nothing: the
//! balance, the pay-in and payout lists and the ledger read the same before
//! and after.
//!
//! `database_error` (500) is not provoked here: it needs a storage failure,
//! which a black-box test cannot cause without corrupting the data dir
//! under a running server; the storage crate's own tests cover it.

use crate::api_support::{
    assert_error, balance, create_payin, create_payout, fund, list_all, raw, NO_AUTO_SETTLE,
};
use crate::common::{payin_body, payout_body, Server};
use hyper::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const UNKNOWN_TXN: &str = "txn_0190f1a2b3c47d8e9f00112233445566";
const UNKNOWN_PO: &str = "po_0190f1a2b3c47d8e9f00112233445566";
const UNKNOWN_USR: &str = "usr_0190f1a2b3c47d8e9f00112233445566";

/// Everything a rejected request must leave untouched on `key`'s wallet.
async fn snapshot(server: &Server, key: &str) -> Value {
    json!({
        "balance": balance(server, key, "").await,
        "payments": list_all(server, "/api/v1/payments", key, 500).await,
        "payouts": list_all(server, "/api/v1/payouts", key, 500).await,
        "ledger": list_all(server, "/api/v1/reports/ledger", key, 500).await,
    })
}

/// A merchant funded with 1000 (fee-free pay-ins, payout fee 1) on a server
/// that never settles by itself.
async fn funded_merchant(server: &Server) -> (String, String) {
    let (id, key) = server
        .create_user(&server.admin_key, "merchant", json!({ "payout_fee": 1 }))
        .await;
    fund(server, &key, "FUND", json!(1000)).await;
    (id, key)
}

#[tokio::test]
async fn missing_fields_lists_every_missing_field() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let admin = server.admin_key.clone();
    let (a_id, a) = funded_merchant(&server).await;
    let before = snapshot(&server, &a).await;

    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "/api/v1/payments",
            json!({}),
            vec!["order_id", "amount", "payer"],
        ),
        (
            "/api/v1/payments",
            json!({ "order_id": "", "amount": null, "payer": "   " }),
            vec!["order_id", "amount", "payer"],
        ),
        (
            "/api/v1/payments",
            json!({ "order_id": "X-1" }),
            vec!["amount", "payer"],
        ),
        ("/api/v1/payouts", json!({}), vec!["amount", "beneficiary"]),
        (
            "/api/v1/payouts",
            json!({ "amount": 10, "beneficiary": {} }),
            vec![
                "beneficiary.name",
                "beneficiary.account_number",
                "beneficiary.ifsc",
            ],
        ),
        (
            "/api/v1/payouts",
            json!({ "beneficiary": { "name": "R" } }),
            vec!["amount", "beneficiary.account_number", "beneficiary.ifsc"],
        ),
    ];
    for (path, body, fields) in cases {
        let r = server.post(path, &a, body.clone()).await;
        assert_error(&r, 400, "missing_fields");
        assert_eq!(
            r.json["error"]["details"]["fields"],
            json!(fields),
            "{path} {body}"
        );
        for f in &fields {
            assert!(
                r.json["error"]["message"].as_str().unwrap().contains(f),
                "the message names {f}: {}",
                r.text
            );
        }
    }
    // An empty body is an empty object.
    let r = raw(
        &server,
        Method::POST,
        "/api/v1/payments",
        Some(&a),
        b"",
        &[],
    )
    .await;
    assert_error(&r, 400, "missing_fields");
    assert_eq!(
        r.json["error"]["details"]["fields"],
        json!(["order_id", "amount", "payer"])
    );

    let r = server.post("/api/v1/users", &admin, json!({})).await;
    assert_error(&r, 400, "missing_fields");
    assert_eq!(
        r.json["error"]["details"]["fields"],
        json!(["name", "role"])
    );

    let p = create_payin(&server, &a, payin_body("MF-1", json!(10))).await;
    let r = server
        .post(
            &format!("/api/v1/payments/{}/status", p["id"].as_str().unwrap()),
            &admin,
            json!({}),
        )
        .await;
    assert_error(&r, 400, "missing_fields");
    assert_eq!(
        r.json["error"]["details"]["fields"],
        json!(["status", "reason"])
    );

    // The admin must name the merchant it acts for.
    let r = server
        .post("/api/v1/payments", &admin, payin_body("MF-2", json!(10)))
        .await;
    assert_error(&r, 400, "missing_fields");
    assert_eq!(r.json["error"]["details"]["fields"], json!(["merchant_id"]));
    let r = server
        .post("/api/v1/payouts", &admin, payout_body(json!(10)))
        .await;
    assert_error(&r, 400, "missing_fields");
    assert_eq!(r.json["error"]["details"]["fields"], json!(["merchant_id"]));

    // Only MF-1 was created; nothing else moved.
    let mut after = snapshot(&server, &a).await;
    let payments = after["payments"].as_array_mut().unwrap();
    assert_eq!(payments[0]["order_id"], json!("MF-1"));
    payments.remove(0);
    assert_eq!(after["payouts"], before["payouts"]);
    assert_eq!(after["ledger"], before["ledger"]);
    assert_eq!(after["payments"], before["payments"]);
    let b = &after["balance"];
    assert_eq!(b["available"], before["balance"]["available"]);
    assert_eq!(b["held"], before["balance"]["held"]);
    assert_eq!(b["pending_payins"].to_string(), "10");
    assert!(!a_id.is_empty());
}

#[tokio::test]
async fn invalid_request_for_bad_json_types_and_filters() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let admin = server.admin_key.clone();
    let (_a_id, a) = funded_merchant(&server).await;
    let before = snapshot(&server, &a).await;

    // Malformed JSON and bodies that are not objects.
    for body in [
        &b"{\"order_id\": "[..],
        b"{'order_id': 'x'}",
        b"[1, 2]",
        b"\"text\"",
        b"42",
        b"{\"a\":1}}",
    ] {
        for path in ["/api/v1/payments", "/api/v1/payouts", "/api/v1/users"] {
            let key = if path.ends_with("users") { &admin } else { &a };
            let r = raw(&server, Method::POST, path, Some(key), body, &[]).await;
            assert_error(&r, 400, "invalid_request");
        }
    }
    let r = raw(
        &server,
        Method::PATCH,
        "/api/v1/profile",
        Some(&a),
        b"{nope",
        &[],
    )
    .await;
    assert_error(&r, 400, "invalid_request");

    // Wrong types.
    let full = |k: &str, v: Value| {
        let mut b = payin_body("WT-1", json!(10));
        b[k] = v;
        b
    };
    for body in [
        full("payer", json!(5)),
        full("order_id", json!(123)),
        full("metadata", json!("not an object")),
        full("payer_email", json!(["a"])),
        full("description", json!({ "x": 1 })),
        full("merchant_id", json!(7)),
        // An amount of the wrong JSON type is a wrong type, not a bad amount.
        full("amount", json!(true)),
        full("amount", json!([10])),
        full("amount", json!({ "value": 10 })),
    ] {
        let r = server.post("/api/v1/payments", &a, body.clone()).await;
        assert_error(&r, 400, "invalid_request");
    }
    for body in [
        json!({ "amount": 10, "beneficiary": "Ravi" }),
        json!({ "amount": false, "beneficiary": { "name": "R", "account_number": "123456789", "ifsc": "HDFC0000001" } }),
        json!({ "amount": 10, "mode": "CASH", "beneficiary": { "name": "R", "account_number": "123456789", "ifsc": "HDFC0000001" } }),
        json!({ "amount": 10, "beneficiary": { "name": "R", "account_number": "12-34", "ifsc": "HDFC0000001" } }),
        json!({ "amount": 10, "reference_id": 5, "beneficiary": { "name": "R", "account_number": "123456789", "ifsc": "HDFC0000001" } }),
    ] {
        let r = server.post("/api/v1/payouts", &a, body.clone()).await;
        assert_error(&r, 400, "invalid_request");
    }
    for body in [
        json!({ "name": "X", "role": "superuser" }),
        json!({ "name": 5, "role": "merchant" }),
        json!({ "name": "X", "role": "merchant", "parent_id": "usr_nope" }),
        json!({ "name": "X", "role": "merchant", "rate_limit_per_min": "fast" }),
        json!({ "name": "X", "role": "merchant", "rate_limit_per_min": 0 }),
        json!({ "name": "X", "role": "merchant", "payin_fee_bps": -1 }),
        json!({ "name": "X", "role": "merchant", "webhook_url": "ftp://example.com/x" }),
    ] {
        let r = server.post("/api/v1/users", &admin, body.clone()).await;
        assert_error(&r, 400, "invalid_request");
    }
    for body in [
        json!({ "role": "admin" }),
        json!({ "payin_fee_bps": 0 }),
        json!({ "webhook_url": "not a url" }),
        json!({ "name": 42 }),
    ] {
        let r = server.patch("/api/v1/profile", &a, body.clone()).await;
        assert_error(&r, 400, "invalid_request");
    }

    // Bad filter values, limits and cursors.
    for query in [
        "status=bogus",
        "status=processed",
        "from=yesterday",
        "to=2026-13-45T00:00:00.000Z",
        "min_amount=abc",
        "max_amount=-5",
        "min_amount=1.234",
        "limit=501",
        "limit=0",
        "limit=ten",
        "cursor=garbage",
        "cursor=po_0190f1a2b3c47d8e9f00112233445566",
        "merchant_id=nope",
        "status=%zz",
    ] {
        let r = server.get(&format!("/api/v1/payments?{query}"), &a).await;
        assert_error(&r, 400, "invalid_request");
    }
    for query in ["status=completed", "limit=501", "cursor=txn_x"] {
        let r = server.get(&format!("/api/v1/payouts?{query}"), &a).await;
        assert_error(&r, 400, "invalid_request");
    }
    for path in [
        "/api/v1/users?limit=501",
        "/api/v1/users?role=king",
        "/api/v1/users?status=gone",
        "/api/v1/users?cursor=zzz",
    ] {
        assert_error(&server.get(path, &admin).await, 400, "invalid_request");
    }
    for path in [
        "/api/v1/reports/summary?from=soon",
        "/api/v1/reports/ledger?cursor=abc",
        "/api/v1/reports/ledger?limit=501",
    ] {
        assert_error(&server.get(path, &a).await, 400, "invalid_request");
    }
    // An Idempotency-Key longer than 255 characters.
    let long = "k".repeat(256);
    let r = raw(
        &server,
        Method::POST,
        "/api/v1/payments",
        Some(&a),
        payin_body("IK-1", json!(10)).to_string().as_bytes(),
        &[("idempotency-key", &long)],
    )
    .await;
    assert_error(&r, 400, "invalid_request");

    assert_eq!(snapshot(&server, &a).await, before);
}

#[tokio::test]
async fn invalid_amount_and_unsupported_currency() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let (_a_id, a) = funded_merchant(&server).await;
    let before = snapshot(&server, &a).await;

    let bad = [
        json!(0),
        json!("0"),
        json!("0.00"),
        json!(-5),
        json!("-5"),
        json!(12.345),
        json!("12.345"),
        json!("0.001"),
        json!(0.99),
        json!("0.5"),
        json!(1_000_000.01),
        json!("1000000.01"),
        json!(2_000_000),
        json!("abc"),
        json!(""),
        json!("12.3.4"),
        json!("1e400"),
    ];
    for (i, amount) in bad.iter().enumerate() {
        let r = server
            .post(
                "/api/v1/payments",
                &a,
                payin_body(&format!("IA-{i}"), amount.clone()),
            )
            .await;
        if amount == &json!("") {
            // An empty string is a missing amount.
            assert_error(&r, 400, "missing_fields");
            continue;
        }
        assert_error(&r, 400, "invalid_amount");
        let r = server
            .post("/api/v1/payouts", &a, payout_body(amount.clone()))
            .await;
        assert_error(&r, 400, "invalid_amount");
    }
    for currency in ["USD", "EUR", "XYZ"] {
        let mut body = payin_body("CUR-1", json!(10));
        body["currency"] = json!(currency);
        let r = server.post("/api/v1/payments", &a, body).await;
        assert_error(&r, 400, "unsupported_currency");
        let mut body = payout_body(json!(10));
        body["currency"] = json!(currency);
        let r = server.post("/api/v1/payouts", &a, body).await;
        assert_error(&r, 400, "unsupported_currency");
    }
    assert_eq!(snapshot(&server, &a).await, before);

    // The limits themselves are inside: 1.00 and 1,000,000.00 are accepted.
    let p = create_payin(&server, &a, payin_body("LIM-LO", json!("1.00"))).await;
    assert_eq!(p["amount"].to_string(), "1");
    let p = create_payin(&server, &a, payin_body("LIM-HI", json!("1000000.00"))).await;
    assert_eq!(p["amount"].to_string(), "1000000");
    let x = create_payout(&server, &a, payout_body(json!(1))).await;
    assert_eq!(x["amount"].to_string(), "1");
}

#[tokio::test]
async fn invalid_api_key_on_every_api_route() {
    let server = Server::start(&[]);
    let paths = [
        (Method::GET, "/api/v1/balance".to_owned()),
        (Method::POST, "/api/v1/payments".to_owned()),
        (Method::GET, "/api/v1/payments".to_owned()),
        (Method::GET, format!("/api/v1/payments/{UNKNOWN_TXN}")),
        (
            Method::POST,
            format!("/api/v1/payments/{UNKNOWN_TXN}/status"),
        ),
        (Method::POST, "/api/v1/payouts".to_owned()),
        (Method::GET, "/api/v1/payouts".to_owned()),
        (Method::GET, format!("/api/v1/payouts/{UNKNOWN_PO}")),
        (Method::POST, format!("/api/v1/payouts/{UNKNOWN_PO}/status")),
        (Method::GET, "/api/v1/profile".to_owned()),
        (Method::PATCH, "/api/v1/profile".to_owned()),
        (Method::POST, "/api/v1/profile/api-key".to_owned()),
        (Method::POST, "/api/v1/profile/webhook-secret".to_owned()),
        (Method::GET, "/api/v1/users".to_owned()),
        (Method::POST, "/api/v1/users".to_owned()),
        (Method::GET, format!("/api/v1/users/{UNKNOWN_USR}")),
        (Method::PATCH, format!("/api/v1/users/{UNKNOWN_USR}")),
        (Method::POST, format!("/api/v1/users/{UNKNOWN_USR}/api-key")),
        (Method::GET, "/api/v1/reports/summary".to_owned()),
        (Method::GET, "/api/v1/reports/ledger".to_owned()),
    ];
    let long = format!("tjk_{}", "a".repeat(300));
    for (method, path) in &paths {
        for key in [None, Some("tjk_wrong"), Some(""), Some(long.as_str())] {
            let body = if *method == Method::GET {
                None
            } else {
                Some(b"{}".to_vec())
            };
            let r = server
                .request_with(method.clone(), path, key, body, &[])
                .await;
            assert_error(&r, 401, "invalid_api_key");
            assert_eq!(
                r.json["error"]["message"],
                json!("The provided API key is invalid or does not exist."),
                "the seed's message"
            );
        }
    }
    // The admin key is case-sensitive.
    let r = server
        .get("/api/v1/balance", &server.admin_key.to_uppercase())
        .await;
    assert_error(&r, 401, "invalid_api_key");
}

#[tokio::test]
async fn account_suspended_and_insufficient_permissions() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let admin = server.admin_key.clone();
    let (_m_id, manager) = server.create_user(&admin, "manager", json!({})).await;
    let (a_id, a) = server.create_user(&manager, "merchant", json!({})).await;
    let (b_id, _b) = server.create_user(&admin, "merchant", json!({})).await;
    let (u_id, u) = server.create_user(&a, "api_user", json!({})).await;
    fund(&server, &a, "FUND-A", json!(100)).await;
    let pa = create_payin(&server, &a, payin_body("PA", json!(10))).await;
    let pa_id = pa["id"].as_str().unwrap().to_owned();
    let xa = create_payout(&server, &a, payout_body(json!(10))).await;
    let xa_id = xa["id"].as_str().unwrap().to_owned();
    let before = snapshot(&server, &a).await;

    // insufficient_permissions: the role may not do this, or the target is
    // outside the caller's scope.
    let forbidden: Vec<(Method, String, &str, Value)> = vec![
        (Method::GET, "/api/v1/users".into(), &u, Value::Null),
        (
            Method::POST,
            "/api/v1/users".into(),
            &u,
            json!({ "name": "x", "role": "api_user" }),
        ),
        (
            Method::POST,
            "/api/v1/users".into(),
            &a,
            json!({ "name": "x", "role": "manager" }),
        ),
        (
            Method::POST,
            "/api/v1/users".into(),
            &a,
            json!({ "name": "x", "role": "merchant" }),
        ),
        (
            Method::POST,
            "/api/v1/users".into(),
            &manager,
            json!({ "name": "x", "role": "admin" }),
        ),
        (
            Method::POST,
            "/api/v1/users".into(),
            &manager,
            json!({ "name": "x", "role": "api_user", "parent_id": b_id }),
        ),
        (
            Method::POST,
            "/api/v1/users".into(),
            &a,
            json!({ "name": "x", "role": "api_user", "payin_fee_bps": 10 }),
        ),
        (
            Method::POST,
            "/api/v1/users".into(),
            &manager,
            json!({ "name": "x", "role": "merchant", "rate_limit_per_min": 10 }),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{u_id}"),
            &a,
            json!({ "rate_limit_per_min": 10 }),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{a_id}"),
            &manager,
            json!({ "role": "manager" }),
        ),
        (
            Method::POST,
            format!("/api/v1/payments/{pa_id}/status"),
            &a,
            json!({ "status": "completed", "reason": "x" }),
        ),
        (
            Method::POST,
            format!("/api/v1/payments/{pa_id}/status"),
            &manager,
            json!({ "status": "completed", "reason": "x" }),
        ),
        (
            Method::POST,
            format!("/api/v1/payouts/{xa_id}/status"),
            &a,
            json!({ "status": "processed", "reason": "x" }),
        ),
        (Method::POST, "/api/v1/payouts".into(), &manager, {
            let mut body = payout_body(json!(10));
            body["merchant_id"] = json!(a_id);
            body
        }),
        (
            Method::POST,
            "/api/v1/profile/webhook-secret".into(),
            &admin,
            Value::Null,
        ),
        (
            Method::POST,
            "/api/v1/profile/webhook-secret".into(),
            &manager,
            Value::Null,
        ),
        (
            Method::GET,
            format!("/api/v1/payments?merchant_id={b_id}"),
            &a,
            Value::Null,
        ),
        (
            Method::GET,
            format!("/api/v1/reports/summary?merchant_id={b_id}"),
            &u,
            Value::Null,
        ),
        (
            Method::GET,
            format!("/api/v1/balance?merchant_id={b_id}"),
            &a,
            Value::Null,
        ),
        (Method::POST, "/api/v1/payments".into(), &u, {
            let mut body = payin_body("API-B", json!(10));
            body["merchant_id"] = json!(b_id);
            body
        }),
    ];
    for (method, path, key, body) in &forbidden {
        let body = (!body.is_null()).then_some(body);
        let r = server.request(method.clone(), path, Some(key), body).await;
        assert_error(&r, 403, "insufficient_permissions");
    }
    // A manager naming a merchant outside its scope: not_found (SPEC §17).
    let mut body = payin_body("MGR-B", json!(10));
    body["merchant_id"] = json!(b_id);
    let r = server.post("/api/v1/payments", &manager, body).await;
    assert_error(&r, 404, "not_found");
    for path in ["balance", "payouts", "reports/ledger"] {
        let r = server
            .get(&format!("/api/v1/{path}?merchant_id={b_id}"), &manager)
            .await;
        assert_error(&r, 404, "not_found");
    }
    assert_eq!(snapshot(&server, &a).await, before);

    // account_suspended: the user, and everything below it.
    let r = server
        .patch(
            &format!("/api/v1/users/{a_id}"),
            &admin,
            json!({ "status": "suspended" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for key in [&a, &u] {
        assert_error(
            &server.get("/api/v1/balance", key).await,
            403,
            "account_suspended",
        );
        let r = server
            .post("/api/v1/payments", key, payin_body("SUSP-1", json!(10)))
            .await;
        assert_error(&r, 403, "account_suspended");
        let r = server
            .post("/api/v1/payouts", key, payout_body(json!(10)))
            .await;
        assert_error(&r, 403, "account_suspended");
        let r = server
            .request(Method::POST, "/api/v1/profile/api-key", Some(key), None)
            .await;
        assert_error(&r, 403, "account_suspended");
    }
    // The suspension itself moved no money and created nothing.
    let r = server
        .patch(
            &format!("/api/v1/users/{a_id}"),
            &admin,
            json!({ "status": "active" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(snapshot(&server, &a).await, before);
}

#[tokio::test]
async fn not_found_and_method_not_allowed() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let admin = server.admin_key.clone();
    let (a_id, a) = server.create_user(&admin, "merchant", json!({})).await;
    let (b_id, b) = server.create_user(&admin, "merchant", json!({})).await;
    let (_v_id, _v) = server.create_user(&b, "api_user", json!({})).await;
    fund(&server, &a, "FUND-A", json!(100)).await;
    let pa = create_payin(&server, &a, payin_body("NF-A", json!(10))).await;
    let xa = create_payout(&server, &a, payout_body(json!(10))).await;
    let pa_id = pa["id"].as_str().unwrap();
    let xa_id = xa["id"].as_str().unwrap();

    // Unknown routes, with a valid key and without one outside /api/v1.
    for path in [
        "/api/v1/nope",
        "/api/v1",
        "/api/v2/balance",
        "/api/v1/payments/x/y/z",
        "/api/v1/reports",
    ] {
        assert_error(&server.get(path, &a).await, 404, "not_found");
    }
    // Under /api/v1 the key comes first (SPEC §17): without a valid one an
    // unknown route or method is 401; elsewhere an unknown route is 404.
    for key in [None, Some("tjk_wrong")] {
        let r = server.request(Method::GET, "/api/v1/nope", key, None).await;
        assert_error(&r, 401, "invalid_api_key");
        let r = server
            .request(Method::DELETE, "/api/v1/payments", key, None)
            .await;
        assert_error(&r, 401, "invalid_api_key");
        assert!(r.header("allow").is_none(), "no Allow without a key");
        let r = server
            .request(Method::GET, "/api/v2/balance", key, None)
            .await;
        assert_error(&r, 404, "not_found");
    }
    // (`/` is the portal's sign-in page since SPEC §18: tests/it/portal.rs.)
    for path in ["/nope", "/healthz/extra"] {
        let r = server.request(Method::GET, path, None, None).await;
        assert_error(&r, 404, "not_found");
    }
    // Unknown or malformed ids.
    for path in [
        format!("/api/v1/payments/{UNKNOWN_TXN}"),
        "/api/v1/payments/garbage".to_owned(),
        format!("/api/v1/payments/{UNKNOWN_PO}"),
        format!("/api/v1/payouts/{UNKNOWN_PO}"),
        "/api/v1/payouts/po_".to_owned(),
        format!("/api/v1/users/{UNKNOWN_USR}"),
    ] {
        assert_error(&server.get(&path, &admin).await, 404, "not_found");
    }
    let r = server
        .post(
            &format!("/api/v1/payments/{UNKNOWN_TXN}/status"),
            &admin,
            json!({ "status": "completed", "reason": "x" }),
        )
        .await;
    assert_error(&r, 404, "not_found");
    let r = server
        .post(
            &format!("/api/v1/payouts/{UNKNOWN_PO}/status"),
            &admin,
            json!({ "status": "processed", "reason": "x" }),
        )
        .await;
    assert_error(&r, 404, "not_found");
    let r = server
        .request(
            Method::POST,
            &format!("/api/v1/users/{UNKNOWN_USR}/api-key"),
            Some(&admin),
            None,
        )
        .await;
    assert_error(&r, 404, "not_found");
    let r = server
        .get(
            &format!("/api/v1/balance?merchant_id={UNKNOWN_USR}"),
            &admin,
        )
        .await;
    assert_error(&r, 404, "not_found");

    // Another merchant's records do not exist for B.
    for path in [
        format!("/api/v1/payments/{pa_id}"),
        format!("/api/v1/payouts/{xa_id}"),
        format!("/api/v1/users/{a_id}"),
    ] {
        assert_error(&server.get(&path, &b).await, 404, "not_found");
    }
    let r = server
        .patch(
            &format!("/api/v1/users/{a_id}"),
            &b,
            json!({ "status": "suspended" }),
        )
        .await;
    assert_error(&r, 404, "not_found");
    let r = server
        .request(
            Method::POST,
            &format!("/api/v1/users/{a_id}/api-key"),
            Some(&b),
            None,
        )
        .await;
    assert_error(&r, 404, "not_found");
    // ... and the attempts changed nothing on A.
    assert_eq!(server.get("/api/v1/balance", &a).await.status, 200);
    let r = server.get(&format!("/api/v1/users/{a_id}"), &admin).await;
    assert_eq!(r.data()["status"], json!("active"));
    assert!(!b_id.is_empty());

    // Known route, wrong method.
    for (method, path) in [
        (Method::DELETE, "/api/v1/payments"),
        (Method::PUT, "/api/v1/payments"),
        (Method::PATCH, "/api/v1/balance"),
        (Method::POST, "/api/v1/balance"),
        (Method::DELETE, "/api/v1/users/usr_1"),
        (Method::PUT, "/api/v1/users/usr_1"),
        (Method::GET, "/api/v1/profile/api-key"),
        (Method::DELETE, "/api/v1/profile"),
        (Method::GET, "/api/v1/payments/txn_1/status"),
        (Method::POST, "/api/v1/reports/summary"),
        (Method::POST, "/api/v1/reports/ledger"),
    ] {
        let r = server.request(method, path, Some(&a), None).await;
        assert_error(&r, 405, "method_not_allowed");
        assert!(
            r.header("allow").is_some_and(|a| !a.is_empty()),
            "Allow on {path}"
        );
    }
    let r = server
        .request(Method::DELETE, "/api/v1/payments", Some(&a), None)
        .await;
    let allow = r.header("allow").unwrap_or("");
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    for (method, path) in [(Method::POST, "/healthz"), (Method::DELETE, "/readyz")] {
        let r = server.request(method, path, None, None).await;
        assert_error(&r, 405, "method_not_allowed");
    }
}

#[tokio::test]
async fn conflicts_duplicates_and_insufficient_balance() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let (_a_id, a) = funded_merchant(&server).await;
    let (_b_id, b) = server
        .create_user(&server.admin_key, "merchant", json!({}))
        .await;

    create_payin(&server, &a, payin_body("DUP-1", json!(10))).await;
    let mut ref_body = payout_body(json!(100));
    ref_body["reference_id"] = json!("REF-DUP");
    create_payout(&server, &a, ref_body.clone()).await;
    let before = snapshot(&server, &a).await;
    assert_eq!(before["balance"]["available"].to_string(), "899");
    assert_eq!(before["balance"]["held"].to_string(), "101");

    // duplicate_order_id: same order id, even with another amount.
    for amount in [json!(10), json!(20)] {
        let r = server
            .post("/api/v1/payments", &a, payin_body("DUP-1", amount))
            .await;
        assert_error(&r, 409, "duplicate_order_id");
    }
    // ... and a payout's reference_id; no second hold.
    let r = server.post("/api/v1/payouts", &a, ref_body.clone()).await;
    assert_error(&r, 409, "duplicate_order_id");
    // Order ids are per merchant: B may use the same one.
    fund(&server, &b, "DUP-1", json!(500)).await;
    create_payout(&server, &b, ref_body.clone()).await;
    assert_eq!(snapshot(&server, &a).await, before);

    // insufficient_balance: 899 available, fee 1.
    let r = server
        .post("/api/v1/payouts", &a, payout_body(json!(899)))
        .await;
    assert_error(&r, 422, "insufficient_balance");
    let r = server
        .post("/api/v1/payouts", &a, payout_body(json!("898.01")))
        .await;
    assert_error(&r, 422, "insufficient_balance");
    assert_eq!(snapshot(&server, &a).await, before);
    // Exactly the available balance (amount + fee) is allowed.
    create_payout(&server, &a, payout_body(json!(898))).await;
    let bal = balance(&server, &a, "").await;
    assert_eq!(bal["available"].to_string(), "0");
    assert_eq!(bal["held"].to_string(), "1000");
    let r = server
        .post("/api/v1/payouts", &a, payout_body(json!(1)))
        .await;
    assert_error(&r, 422, "insufficient_balance");

    // idempotency_conflict: the same key with another body.
    let before = snapshot(&server, &a).await;
    let key = [("idempotency-key", "idem-conflict-1")];
    let first = raw(
        &server,
        Method::POST,
        "/api/v1/payments",
        Some(&a),
        payin_body("IC-1", json!(10)).to_string().as_bytes(),
        &key,
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.text);
    for other in [
        payin_body("IC-1", json!(11)),
        payin_body("IC-2", json!(10)),
        json!({ "order_id": "IC-1", "amount": 10, "payer": "Someone Else" }),
    ] {
        let r = raw(
            &server,
            Method::POST,
            "/api/v1/payments",
            Some(&a),
            other.to_string().as_bytes(),
            &key,
        )
        .await;
        assert_error(&r, 422, "idempotency_conflict");
    }
    let after = snapshot(&server, &a).await;
    assert_eq!(
        after["payments"].as_array().unwrap().len(),
        before["payments"].as_array().unwrap().len() + 1,
        "only the first request created a pay-in"
    );
}

#[tokio::test]
async fn payload_too_large_is_413_and_changes_nothing() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let (_a_id, a) = funded_merchant(&server).await;
    let before = snapshot(&server, &a).await;

    // A valid pay-in padded past 64 KiB.
    let mut body = payin_body("BIG-1", json!(10));
    body["description"] = json!("x".repeat(70 * 1024));
    let r = raw(
        &server,
        Method::POST,
        "/api/v1/payments",
        Some(&a),
        body.to_string().as_bytes(),
        &[],
    )
    .await;
    assert_error(&r, 413, "payload_too_large");
    let mut body = payout_body(json!(10));
    body["purpose"] = json!("y".repeat(65 * 1024));
    let r = raw(
        &server,
        Method::POST,
        "/api/v1/payouts",
        Some(&a),
        body.to_string().as_bytes(),
        &[],
    )
    .await;
    assert_error(&r, 413, "payload_too_large");
    assert_eq!(snapshot(&server, &a).await, before);

    // A chunked body (no Content-Length) that grows past the cap, sent over
    // a raw socket: the 413 still reaches the client.
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/payments HTTP/1.1\r\nHost: {addr}\r\nX-API-KEY: {a}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = "a".repeat(8 * 1024);
    for _ in 0..10 {
        let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
        if stream.write_all(framed.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                break;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), read)
        .await
        .expect("an answer to the chunked request");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"payload_too_large\""), "{answer}");
    assert_eq!(snapshot(&server, &a).await, before);

    // Just under the cap is read (and refused for its content, not its size).
    let mut body = payin_body("BIG-2", json!(10));
    body["description"] = json!("z".repeat(60 * 1024));
    let r = raw(
        &server,
        Method::POST,
        "/api/v1/payments",
        Some(&a),
        body.to_string().as_bytes(),
        &[],
    )
    .await;
    assert_error(&r, 400, "invalid_request");
}

#[tokio::test]
async fn rate_limit_exceeded_is_429_with_retry_after() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let (_id, key) = server
        .create_user(
            &server.admin_key,
            "merchant",
            json!({ "rate_limit_per_min": 3 }),
        )
        .await;
    for remaining in ["2", "1", "0"] {
        let r = server.get("/api/v1/balance", &key).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("x-ratelimit-remaining"), Some(remaining));
    }
    let r = server
        .post("/api/v1/payments", &key, payin_body("RL-1", json!(10)))
        .await;
    assert_error(&r, 429, "rate_limit_exceeded");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    // One token per 20 s at 3 per minute.
    assert!((1..=20).contains(&retry), "Retry-After {retry}");
    assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    // The refused pay-in does not exist.
    let list = list_all(&server, "/api/v1/payments", &server.admin_key, 50).await;
    assert!(list.is_empty(), "{list:?}");
}
