//! SPEC §17 "Stricter input", black-box: authentication before routing
//! under `/api/v1`, exactly the documented query parameters (no unknown,
//! empty or repeated one), money text only `^[0-9]+(\.[0-9]{1,2})?$`,
//! PATCHes that name something, and `merchant_id` scope errors (not_found
//! for admin/manager, insufficient_permissions for merchant/api_user). Each
//! refusal changes nothing.

use crate::api_support::{
    assert_error, balance, create_payin, fund, list_all, raw, NO_AUTO_SETTLE,
};
use crate::common::{payin_body, payout_body, Resp, Server};
use hyper::Method;
use serde_json::{json, Value};

/// POSTs `body` as the caller with `key`.
async fn post_json(server: &Server, path: &str, key: &str, body: &str) -> Resp {
    raw(server, Method::POST, path, Some(key), body.as_bytes(), &[]).await
}

async fn snapshot(server: &Server, key: &str) -> Value {
    json!({
        "balance": balance(server, key, "").await,
        "payments": list_all(server, "/api/v1/payments", key, 500).await,
        "payouts": list_all(server, "/api/v1/payouts", key, 500).await,
        "ledger": list_all(server, "/api/v1/reports/ledger", key, 500).await,
    })
}

#[tokio::test]
async fn authentication_comes_before_routing() {
    let server = Server::start(&[]);
    let (_id, a) = server
        .create_user(&server.admin_key, "merchant", json!({}))
        .await;
    let cases = [
        (Method::GET, "/api/v1/nope"),
        (Method::GET, "/api/v1"),
        (Method::DELETE, "/api/v1/payments"),
        (Method::PUT, "/api/v1/balance"),
        (Method::GET, "/api/v1/payments/x/y/z"),
    ];
    for (method, path) in &cases {
        for key in [None, Some("tjk_wrong"), Some("")] {
            let r = server.request(method.clone(), path, key, None).await;
            assert_error(&r, 401, "invalid_api_key");
            assert!(r.header("allow").is_none(), "{method} {path}: Allow");
            assert!(
                r.header("x-ratelimit-limit").is_some(),
                "{method} {path}: rate headers"
            );
        }
    }
    // Authenticated: the routing errors, 405 with Allow.
    assert_error(&server.get("/api/v1/nope", &a).await, 404, "not_found");
    assert_error(&server.get("/api/v1", &a).await, 404, "not_found");
    let r = server
        .request(Method::DELETE, "/api/v1/payments", Some(&a), None)
        .await;
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
    let r = server
        .request(Method::PUT, "/api/v1/balance", Some(&a), None)
        .await;
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    // Outside /api/v1 there is no key to check.
    for key in [None, Some(a.as_str())] {
        let r = server
            .request(Method::GET, "/api/v2/balance", key, None)
            .await;
        assert_error(&r, 404, "not_found");
    }
    let r = server.request(Method::POST, "/healthz", None, None).await;
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
}

#[tokio::test]
async fn query_parameters_are_exactly_the_documented_ones() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let admin = server.admin_key.clone();
    let (_id, a) = server.create_user(&admin, "merchant", json!({})).await;
    fund(&server, &a, "Q-FUND", json!(100)).await;
    let before = snapshot(&server, &a).await;
    let refused = [
        // Unknown parameters, on routes with and without parameters.
        ("/api/v1/payments?statuss=pending", &a),
        ("/api/v1/payments?status=pending&page=2", &a),
        ("/api/v1/payouts?order_id=X", &a),
        (
            "/api/v1/profile?user_id=usr_0190f1a2b3c47d8e9f00112233445566",
            &a,
        ),
        ("/api/v1/balance?currency=INR", &a),
        ("/api/v1/reports/summary?format=csv", &a),
        ("/api/v1/webhooks/events?merchant_id=x", &a),
        ("/api/v1/ledger/accounts?limit=5", &admin),
        ("/api/v1/users?name=x", &admin),
        // Empty values, with and without `=`.
        ("/api/v1/payments?to=", &a),
        ("/api/v1/payments?to", &a),
        ("/api/v1/payouts?min_amount=", &a),
        ("/api/v1/reports/ledger?format=", &a),
        ("/api/v1/users?role=", &admin),
        ("/api/v1/ledger/transfers?reference=", &admin),
        ("/api/v1/webhooks/events?status=", &a),
        ("/api/v1/balance?merchant_id=", &admin),
        // A parameter given twice.
        ("/api/v1/payments?status=pending&status=pending", &a),
        ("/api/v1/payments?limit=5&limit=6", &a),
    ];
    for (path, key) in refused {
        let r = server.get(path, key).await;
        assert_error(&r, 400, "invalid_request");
    }
    // A POST's query string is checked too, before anything moves.
    let r = server
        .post(
            "/api/v1/payments?dry_run=1",
            &a,
            payin_body("Q-1", json!(10)),
        )
        .await;
    assert_error(&r, 400, "invalid_request");
    assert_eq!(snapshot(&server, &a).await, before);

    // The documented ones still work; `from` after `to` is an empty range.
    let r = server
        .get("/api/v1/payments?status=completed&limit=5", &a)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data().as_array().map(Vec::len), Some(1));
    let r = server
        .get(
            "/api/v1/payments?from=2026-04-05T06:00:00.000Z&to=2026-04-04T06:00:00.000Z",
            &a,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data(), &json!([]));
    let r = server
        .get(
            "/api/v1/webhooks/events?from=2026-04-05T06:00:00.000Z&to=2026-04-04T06:00:00.000Z",
            &a,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A ledger cursor is 1 to 19 digits (regression: schemathesis sent 50
    // digits, which the schema allowed and the server refused).
    for cursor in [
        "%2B5",
        "25021482454005745671129289535204819749619615019731",
        "12345678901234567890",
    ] {
        let r = server
            .get(&format!("/api/v1/reports/ledger?cursor={cursor}"), &a)
            .await;
        assert_error(&r, 400, "invalid_request");
    }
    let r = server
        .get("/api/v1/reports/ledger?cursor=9999999999999999999", &a)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = server
        .get("/api/v1/reports/ledger?format=csv&cursor=99", &a)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.text.lines().count(),
        2,
        "header and the funding line: {}",
        r.text
    );
}

#[tokio::test]
async fn money_text_is_digits_with_at_most_two_fraction_digits() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let admin = server.admin_key.clone();
    let (_id, a) = server.create_user(&admin, "merchant", json!({})).await;
    fund(&server, &a, "M-FUND", json!(1000)).await;
    let before = snapshot(&server, &a).await;
    // JSON numbers, as raw text (a JSON library would normalise them).
    let numbers = ["1e3", "1E2", "1.5e1", "12.340", "10.0e0", "-5", "-0"];
    // Strings.
    let strings = [
        "1e3", "+5", " 5", "5 ", "12.340", "1,000", "5.", ".5", "0x10", "١٢", "Infinity",
    ];
    let amounts: Vec<String> = numbers
        .iter()
        .map(|n| (*n).to_owned())
        .chain(strings.iter().map(|s| format!("\"{s}\"")))
        .collect();
    for (i, amount) in amounts.iter().enumerate() {
        let body = format!(r#"{{"order_id": "SM-{i}", "amount": {amount}, "payer": "P"}}"#);
        let r = post_json(&server, "/api/v1/payments", &a, &body).await;
        assert_error(&r, 400, "invalid_amount");
        let body = format!(
            r#"{{"amount": {amount}, "beneficiary": {{"name": "R", "account_number": "123456789", "ifsc": "HDFC0000001"}}}}"#
        );
        let r = post_json(&server, "/api/v1/payouts", &a, &body).await;
        assert_error(&r, 400, "invalid_amount");
    }
    for fee in ["\"1e1\"", "1e1", "\"-1\"", "\" 1\"", "0.001"] {
        let body = format!(r#"{{"name": "F", "role": "merchant", "payout_fee": {fee}}}"#);
        let r = post_json(&server, "/api/v1/users", &admin, &body).await;
        assert_error(&r, 400, "invalid_amount");
    }
    assert_eq!(snapshot(&server, &a).await, before);

    // What the grammar allows: plain digits, one or two fraction digits,
    // leading zeros; a zero fee; a whole number written `124.0`.
    for (i, amount) in ["12.5", "\"12.50\"", "\"007\"", "10"].iter().enumerate() {
        let body = format!(r#"{{"order_id": "OK-{i}", "amount": {amount}, "payer": "P"}}"#);
        let r = post_json(&server, "/api/v1/payments", &a, &body).await;
        assert_eq!(r.status, 201, "{amount}: {}", r.text);
    }
    let r = raw(
        &server,
        Method::POST,
        "/api/v1/users",
        Some(&admin),
        br#"{"name": "F", "role": "merchant", "payout_fee": "0.00", "rate_limit_per_min": 124.0}"#,
        &[],
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.data()["user"]["rate_limit_per_min"], json!(124));
    assert_eq!(r.data()["user"]["payout_fee"], json!(0));
}

#[tokio::test]
async fn patch_must_name_something() {
    let server = Server::start(&[]);
    let admin = server.admin_key.clone();
    let (m_id, m) = server.create_user(&admin, "merchant", json!({})).await;
    let user_path = format!("/api/v1/users/{m_id}");
    for (path, key) in [("/api/v1/profile", &m), (user_path.as_str(), &admin)] {
        // `last_used_at` moves with any use of the key: not a change.
        let user = |mut v: Value| {
            if let Some(u) = v.as_object_mut() {
                u.remove("last_used_at");
            }
            v
        };
        let before = user(server.get(&user_path, &admin).await.json["data"].clone());
        for body in [&b""[..], b"  ", b"{}"] {
            let r = raw(&server, Method::PATCH, path, Some(key), body, &[]).await;
            assert_error(&r, 400, "invalid_request");
        }
        let after = user(server.get(&user_path, &admin).await.json["data"].clone());
        assert_eq!(after, before);
    }
    let r = server
        .patch("/api/v1/profile", &m, json!({ "name": "Renamed" }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A body of white space is not JSON, where a body is optional too
    // (regression: schemathesis found POST /webhooks/replay accepting " ").
    for body in [&b" "[..], b"\n\t "] {
        let r = raw(
            &server,
            Method::POST,
            "/api/v1/webhooks/replay",
            Some(&m),
            body,
            &[],
        )
        .await;
        assert_error(&r, 400, "invalid_request");
    }
    let r = raw(
        &server,
        Method::POST,
        "/api/v1/webhooks/replay",
        Some(&m),
        b"",
        &[],
    )
    .await;
    assert_eq!(r.status, 202, "an empty body is {{}}: {}", r.text);
}

#[tokio::test]
async fn merchant_id_outside_the_scope() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let admin = server.admin_key.clone();
    let (mgr_id, mgr) = server.create_user(&admin, "manager", json!({})).await;
    let (a_id, a) = server.create_user(&mgr, "merchant", json!({})).await;
    let (b_id, b) = server.create_user(&admin, "merchant", json!({})).await;
    let (u_id, u) = server.create_user(&a, "api_user", json!({})).await;
    let (_v_id, _v) = server.create_user(&b, "api_user", json!({})).await;
    fund(&server, &a, "S-A", json!(100)).await;
    fund(&server, &b, "S-B", json!(100)).await;
    let before_a = snapshot(&server, &a).await;
    let before_b = snapshot(&server, &b).await;
    let unknown = "usr_0190f1a2b3c47d8e9f00112233445566";

    let lists = [
        "/api/v1/balance",
        "/api/v1/payments",
        "/api/v1/payouts",
        "/api/v1/reports/summary",
        "/api/v1/reports/ledger",
        "/api/v1/users",
    ];
    // Admin: any merchant; a non-merchant or unknown id is not_found.
    for list in lists.iter().chain(&["/api/v1/ledger/transfers"]) {
        for id in [mgr_id.as_str(), u_id.as_str(), unknown] {
            let r = server
                .get(&format!("{list}?merchant_id={id}"), &admin)
                .await;
            assert_error(&r, 404, "not_found");
        }
        let r = server
            .get(&format!("{list}?merchant_id={b_id}"), &admin)
            .await;
        assert_eq!(r.status, 200, "{list}: {}", r.text);
    }
    // Manager: its own merchants only; another is not_found.
    for list in lists {
        let r = server
            .get(&format!("{list}?merchant_id={b_id}"), &mgr)
            .await;
        assert_error(&r, 404, "not_found");
        let r = server
            .get(&format!("{list}?merchant_id={a_id}"), &mgr)
            .await;
        assert_eq!(r.status, 200, "{list}: {}", r.text);
    }
    let mut body = payin_body("S-MGR", json!(10));
    body["merchant_id"] = json!(b_id);
    assert_error(
        &server.post("/api/v1/payments", &mgr, body).await,
        404,
        "not_found",
    );
    // Merchant and api_user: another merchant is insufficient_permissions,
    // never silently their own; their own is fine.
    for key in [&a, &u] {
        for list in lists.iter().filter(|l| !l.ends_with("users") || *key == a) {
            let r = server.get(&format!("{list}?merchant_id={b_id}"), key).await;
            assert_error(&r, 403, "insufficient_permissions");
            let r = server.get(&format!("{list}?merchant_id={a_id}"), key).await;
            assert_eq!(r.status, 200, "{list}: {}", r.text);
        }
        let mut body = payin_body("S-OTHER", json!(10));
        body["merchant_id"] = json!(b_id);
        let r = server.post("/api/v1/payments", key, body).await;
        assert_error(&r, 403, "insufficient_permissions");
        let mut body = payout_body(json!(10));
        body["merchant_id"] = json!(b_id);
        let r = server.post("/api/v1/payouts", key, body).await;
        assert_error(&r, 403, "insufficient_permissions");
    }
    assert_eq!(snapshot(&server, &a).await, before_a);
    assert_eq!(snapshot(&server, &b).await, before_b);
    // Naming its own wallet works for a merchant.
    let mut body = payin_body("S-OWN", json!(10));
    body["merchant_id"] = json!(a_id);
    create_payin(&server, &a, body).await;

    // The new filters: users of one merchant; transfers of one merchant.
    let r = server
        .get(&format!("/api/v1/users?merchant_id={a_id}"), &admin)
        .await;
    let mut ids: Vec<&str> = r
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected = vec![a_id.as_str(), u_id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    let r = server
        .get(
            &format!("/api/v1/ledger/transfers?merchant_id={b_id}"),
            &admin,
        )
        .await;
    let transfers = r.data().as_array().unwrap();
    assert!(!transfers.is_empty());
    assert!(
        transfers.iter().all(|t| t["merchant_id"] == json!(b_id)),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn more_than_one_api_key_header_is_no_key() {
    let server = Server::start(&[]);
    let (_id, a) = server
        .create_user(&server.admin_key, "merchant", json!({}))
        .await;
    // The valid key first or second: either way the request is refused.
    for headers in [[("x-api-key", "bogus")], [("x-api-key", a.as_str())]] {
        let r = server
            .request_with(Method::GET, "/api/v1/balance", Some(&a), None, &headers)
            .await;
        assert_error(&r, 401, "invalid_api_key");
    }
    assert_eq!(server.get("/api/v1/balance", &a).await.status, 200);
}

#[tokio::test]
async fn bodies_must_be_json_objects_sent_as_json_without_duplicate_keys() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let (_id, a) = server
        .create_user(&server.admin_key, "merchant", json!({}))
        .await;
    fund(&server, &a, "FUND-1", json!(10_000)).await;
    let before = snapshot(&server, &a).await;
    let payin = payin_body("CT-1", json!(500)).to_string();
    let payout = payout_body(json!(100)).to_string();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
        "application/json; boundary=x",
        "multipart/form-data; boundary=x",
    ] {
        for (path, body) in [("/api/v1/payments", &payin), ("/api/v1/payouts", &payout)] {
            let r = raw(
                &server,
                Method::POST,
                path,
                Some(&a),
                body.as_bytes(),
                &[("content-type", content_type)],
            )
            .await;
            assert_error(&r, 400, "invalid_request");
        }
    }
    // A charset parameter is fine.
    let r = raw(
        &server,
        Method::POST,
        "/api/v1/payments",
        Some(&a),
        payin_body("CT-OK", json!(1)).to_string().as_bytes(),
        &[("content-type", "application/json; charset=utf-8")],
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);

    // Duplicate keys, at the top and deeper down: 400, nothing written.
    let before_dupes = snapshot(&server, &a).await;
    for body in [
        r#"{"order_id":"DUP-1","amount":5,"amount":5000,"payer":"P"}"#,
        r#"{"order_id":"DUP-2","amount":5,"payer":"P","metadata":{"k":1,"k":2}}"#,
        r#"{"order_id":"DUP-3","order_id":"DUP-4","amount":5,"payer":"P"}"#,
    ] {
        let r = post_json(&server, "/api/v1/payments", &a, body).await;
        assert_error(&r, 400, "invalid_request");
        assert!(r.text.contains("duplicate key"), "{}", r.text);
    }
    let r = post_json(
        &server,
        "/api/v1/payouts",
        &a,
        r#"{"amount":1,"amount":9000,"beneficiary":{"name":"B","name":"C","account_number":"123456789012","ifsc":"HDFC0001234"}}"#,
    )
    .await;
    assert_error(&r, 400, "invalid_request");
    assert_eq!(snapshot(&server, &a).await, before_dupes);
    assert_ne!(
        before, before_dupes,
        "the charset-parameter pay-in was written"
    );
}

#[tokio::test]
async fn every_response_names_its_request_and_is_not_cached() {
    let server = Server::start(&[]);
    let (_id, a) = server
        .create_user(&server.admin_key, "merchant", json!({}))
        .await;
    let mut seen = std::collections::HashSet::new();
    for (path, key) in [
        ("/healthz", None),
        ("/metrics", None),
        ("/api/v1/balance", Some(a.as_str())),
        ("/api/v1/balance", None),
        ("/api/v1/nothing", Some(a.as_str())),
    ] {
        let r = server.request(Method::GET, path, key, None).await;
        let id = r.header("x-request-id").expect("X-Request-Id").to_owned();
        assert!(id.starts_with("req_") && id.len() == 36, "{path}: {id}");
        assert!(seen.insert(id), "request ids are unique");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
    }
    // The caller's own id is kept when it is acceptable, on success and error.
    for key in [Some(a.as_str()), None] {
        let r = server
            .request_with(
                Method::GET,
                "/api/v1/balance",
                key,
                None,
                &[("x-request-id", "order-7.retry_2")],
            )
            .await;
        assert_eq!(r.header("x-request-id"), Some("order-7.retry_2"));
    }
    let r = server
        .request_with(
            Method::GET,
            "/api/v1/balance",
            None,
            None,
            &[("x-request-id", "no spaces/or slashes")],
        )
        .await;
    assert_error(&r, 401, "invalid_api_key");
    assert!(r
        .header("x-request-id")
        .is_some_and(|id| id.starts_with("req_")));
}

#[tokio::test]
async fn keys_carry_a_checksum_that_is_checked_before_lookup() {
    let server = Server::start(&[]);
    let (id, a) = server
        .create_user(&server.admin_key, "merchant", json!({}))
        .await;
    assert_eq!(a.len(), domain::api_key::LEN, "{a}");
    assert!(domain::api_key::is_well_formed(&a), "{a}");
    let r = server
        .post(
            &format!("/api/v1/users/{id}/api-key"),
            &server.admin_key,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b = r.data()["api_key"].as_str().unwrap().to_owned();
    assert!(domain::api_key::is_well_formed(&b) && b != a, "{b}");
    // One character changed anywhere after the prefix: refused.
    for i in [4, 20, 35, 41] {
        let mut typo = b.clone().into_bytes();
        typo[i] = if typo[i] == b'x' { b'y' } else { b'x' };
        let typo = String::from_utf8(typo).unwrap();
        assert_error(
            &server.get("/api/v1/balance", &typo).await,
            401,
            "invalid_api_key",
        );
    }
    assert_eq!(server.get("/api/v1/balance", &b).await.status, 200);
}

/// Keys issued before keys had a checksum (`tjk_` + 40 hex digits) stay
/// valid: only their hashes are stored, so an older data dir keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_before_checksums_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = "tjk_5c1e0a9b8d7f6e5d4c3b2a1908f7e6d5c4b3a291";
    assert!(domain::api_key::is_legacy(legacy));
    {
        let store = storage::Store::open(dir.path(), storage::StoreConfig::default()).unwrap();
        let core = actors::Core::start(store.clone(), actors::CoreConfig::default())
            .await
            .unwrap();
        let made = core.directory().bootstrap(Some(legacy.to_owned())).await;
        assert!(matches!(made, Ok(Some(_))), "{made:?}");
        core.shutdown().await;
        tokio::task::spawn_blocking(move || store.close())
            .await
            .unwrap();
    }
    let server = Server::start_in(dir.path(), &[]);
    let r = server.get("/api/v1/users", legacy).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // One character off is an unknown key, as before.
    let off = legacy.replace("291", "292");
    assert_error(
        &server.get("/api/v1/users", &off).await,
        401,
        "invalid_api_key",
    );
}
