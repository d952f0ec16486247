//! API keys, suspension, rate limits and idempotency, black-box against the
//! real binary: a regenerated key replaces the old one at once (own key and
//! a sub-user's); suspending a user blocks its whole subtree until it is
//! reactivated; every `/api/v1` response, errors and 401s included, carries
//! the `X-RateLimit-*` headers; a spent limit answers 429 with
//! `Retry-After`; a key that keeps hitting its limit is suspended
//! automatically; and an `Idempotency-Key` replays the first pay-in or payout
//! (moving money once) or refuses a different body.

use crate::api_support::{
    assert_error, avail_held, balance, create_payin, fund, list_all, raw, wait_none_pending,
    NO_AUTO_SETTLE,
};
use crate::common::{payin_body, payout_body, Resp, Server};
use hyper::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// POST /users/{id}/api-key as `by`; returns the new key.
async fn regenerate_for(server: &Server, by: &str, id: &str) -> String {
    let r = server
        .request(
            Method::POST,
            &format!("/api/v1/users/{id}/api-key"),
            Some(by),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["user"]["id"], json!(id));
    r.data()["api_key"].as_str().unwrap().to_owned()
}

async fn set_user(server: &Server, by: &str, id: &str, patch: Value) {
    let r = server
        .patch(&format!("/api/v1/users/{id}"), by, patch.clone())
        .await;
    assert_eq!(r.status, 200, "{patch}: {}", r.text);
}

async fn user_status(server: &Server, id: &str) -> String {
    let r = server
        .get(&format!("/api/v1/users/{id}"), &server.admin_key)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.data()["status"].as_str().unwrap().to_owned()
}

/// POST with an Idempotency-Key and a raw body.
async fn post_idem(server: &Server, path: &str, key: &str, idem: &str, body: &str) -> Resp {
    raw(
        server,
        Method::POST,
        path,
        Some(key),
        body.as_bytes(),
        &[("idempotency-key", idem)],
    )
    .await
}

/// The three rate-limit headers, parsed.
fn rate_headers(r: &Resp) -> (u64, u64, u64) {
    let get = |name: &str| -> u64 {
        r.header(name)
            .unwrap_or_else(|| panic!("{name} missing on a {} answer: {}", r.status, r.text))
            .parse()
            .unwrap_or_else(|_| panic!("{name} is not a number"))
    };
    (
        get("x-ratelimit-limit"),
        get("x-ratelimit-remaining"),
        get("x-ratelimit-reset"),
    )
}

#[tokio::test]
async fn regenerated_keys_replace_the_old_one_at_once() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let admin = server.admin_key.clone();
    let (m_id, manager) = server.create_user(&admin, "manager", json!({})).await;
    let (a_id, a0) = server.create_user(&manager, "merchant", json!({})).await;
    let (u_id, u0) = server.create_user(&a0, "api_user", json!({})).await;
    let p = create_payin(&server, &a0, payin_body("K-1", json!(10))).await;

    // Own key, twice: every earlier key is dead at once.
    let r = server
        .request(Method::POST, "/api/v1/profile/api-key", Some(&a0), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let a1 = r.data()["api_key"].as_str().unwrap().to_owned();
    assert_error(
        &server.get("/api/v1/balance", &a0).await,
        401,
        "invalid_api_key",
    );
    let r = server
        .post("/api/v1/payments", &a0, payin_body("K-2", json!(10)))
        .await;
    assert_error(&r, 401, "invalid_api_key");
    assert_eq!(server.get("/api/v1/balance", &a1).await.status, 200);
    let r = server
        .request(Method::POST, "/api/v1/profile/api-key", Some(&a1), None)
        .await;
    let a2 = r.data()["api_key"].as_str().unwrap().to_owned();
    for dead in [&a0, &a1] {
        assert_error(
            &server.get("/api/v1/profile", dead).await,
            401,
            "invalid_api_key",
        );
    }
    // Same user, same records.
    let r = server
        .get(
            &format!("/api/v1/payments/{}", p["id"].as_str().unwrap()),
            &a2,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        server.get("/api/v1/profile", &a2).await.data()["id"],
        json!(a_id)
    );

    // A sub-user's key, by each ancestor that manages it.
    let a3 = regenerate_for(&server, &admin, &a_id).await;
    assert_error(
        &server.get("/api/v1/balance", &a2).await,
        401,
        "invalid_api_key",
    );
    assert_eq!(server.get("/api/v1/balance", &a3).await.status, 200);
    let a4 = regenerate_for(&server, &manager, &a_id).await;
    assert_error(
        &server.get("/api/v1/balance", &a3).await,
        401,
        "invalid_api_key",
    );
    assert_eq!(server.get("/api/v1/balance", &a4).await.status, 200);
    let u1 = regenerate_for(&server, &a4, &u_id).await;
    assert_error(
        &server.get("/api/v1/balance", &u0).await,
        401,
        "invalid_api_key",
    );
    assert_eq!(server.get("/api/v1/balance", &u1).await.status, 200);

    // Nobody regenerates a key above or beside itself.
    for (by, target) in [(&u1, &a_id), (&a4, &m_id), (&u1, &u_id)] {
        let r = server
            .request(
                Method::POST,
                &format!("/api/v1/users/{target}/api-key"),
                Some(by),
                None,
            )
            .await;
        assert!(
            matches!(r.status.as_u16(), 403 | 404),
            "{}: {}",
            r.status,
            r.text
        );
    }
    assert_eq!(server.get("/api/v1/balance", &a4).await.status, 200);
    assert_eq!(server.get("/api/v1/balance", &manager).await.status, 200);
}

#[tokio::test]
async fn suspending_a_user_blocks_its_whole_subtree() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let admin = server.admin_key.clone();
    let (m_id, manager) = server.create_user(&admin, "manager", json!({})).await;
    let (a_id, a) = server.create_user(&manager, "merchant", json!({})).await;
    let (a2_id, a2) = server.create_user(&manager, "merchant", json!({})).await;
    let (_u_id, u) = server.create_user(&a, "api_user", json!({})).await;
    let (_b_id, b) = server.create_user(&admin, "merchant", json!({})).await;
    let subtree = [&manager, &a, &a2, &u];

    set_user(&server, &admin, &m_id, json!({ "status": "suspended" })).await;
    for key in subtree {
        assert_error(
            &server.get("/api/v1/balance", key).await,
            403,
            "account_suspended",
        );
        let r = server
            .post("/api/v1/payments", key, payin_body("SUB-1", json!(10)))
            .await;
        assert_error(&r, 403, "account_suspended");
    }
    // Outside the subtree nothing changed; below it, own statuses are kept.
    assert_eq!(server.get("/api/v1/balance", &b).await.status, 200);
    assert_eq!(user_status(&server, &a_id).await, "active");
    let suspended = list_all(&server, "/api/v1/users?status=suspended", &admin, 50).await;
    assert_eq!(suspended.len(), 1);
    assert_eq!(suspended[0]["id"], json!(m_id));
    // Nothing was created while suspended.
    assert!(list_all(&server, "/api/v1/payments", &admin, 50)
        .await
        .is_empty());

    set_user(&server, &admin, &m_id, json!({ "status": "active" })).await;
    for key in subtree {
        assert_eq!(server.get("/api/v1/balance", key).await.status, 200);
    }

    // One level down: the manager suspends one merchant; its api_user is
    // blocked, the sibling merchant is not.
    set_user(&server, &manager, &a_id, json!({ "status": "suspended" })).await;
    for key in [&a, &u] {
        assert_error(
            &server.get("/api/v1/balance", key).await,
            403,
            "account_suspended",
        );
    }
    assert_eq!(server.get("/api/v1/balance", &a2).await.status, 200);
    assert_eq!(server.get("/api/v1/balance", &manager).await.status, 200);
    set_user(&server, &manager, &a_id, json!({ "status": "active" })).await;
    for key in [&a, &u] {
        assert_eq!(server.get("/api/v1/balance", key).await.status, 200);
    }
    assert!(!a2_id.is_empty());

    // Nobody suspends itself or a user above it: for the first admin that
    // would block every key with no way back.
    let root_id = server.get("/api/v1/profile", &admin).await.data()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (admin2_id, admin2) = server.create_user(&admin, "admin", json!({})).await;
    for (by, target) in [
        (&admin, &root_id),
        (&admin2, &root_id),
        (&admin2, &admin2_id),
    ] {
        let r = server
            .patch(
                &format!("/api/v1/users/{target}"),
                by,
                json!({ "status": "suspended" }),
            )
            .await;
        assert_error(&r, 400, "invalid_request");
    }
    for key in [&admin, &admin2, &manager, &a, &u, &b] {
        assert_eq!(server.get("/api/v1/balance", key).await.status, 200);
    }
    // The first admin may still suspend (and restore) the second.
    set_user(
        &server,
        &admin,
        &admin2_id,
        json!({ "status": "suspended" }),
    )
    .await;
    assert_error(
        &server.get("/api/v1/balance", &admin2).await,
        403,
        "account_suspended",
    );
    assert_eq!(server.get("/api/v1/balance", &admin).await.status, 200);
    set_user(&server, &admin, &admin2_id, json!({ "status": "active" })).await;
    assert_eq!(server.get("/api/v1/balance", &admin2).await.status, 200);
}

#[tokio::test]
async fn rate_limit_headers_on_every_api_response() {
    // Unauthenticated calls use the server default (500); the user has 100.
    let server = Server::start(&[
        "--rate-limit-per-min",
        "500",
        NO_AUTO_SETTLE[0],
        NO_AUTO_SETTLE[1],
    ]);
    let admin = server.admin_key.clone();
    let (a_id, a) = server
        .create_user(&admin, "merchant", json!({ "rate_limit_per_min": 100 }))
        .await;
    let (s_id, s) = server.create_user(&admin, "merchant", json!({})).await;
    set_user(&server, &admin, &s_id, json!({ "status": "suspended" })).await;
    fund(&server, &a, "RL-FUND", json!(10)).await;

    let big = format!(
        "{{\"order_id\":\"RL-BIG\",\"amount\":1,\"payer\":\"x\",\"description\":\"{}\"}}",
        "x".repeat(70_000)
    );
    let keyed: Vec<(u16, Resp)> = vec![
        (200, server.get("/api/v1/balance", &a).await),
        (
            201,
            server
                .post("/api/v1/payments", &a, payin_body("RL-1", json!(10)))
                .await,
        ),
        (
            409,
            server
                .post("/api/v1/payments", &a, payin_body("RL-1", json!(10)))
                .await,
        ),
        (
            400,
            server
                .post("/api/v1/payments", &a, json!({ "amount": 0 }))
                .await,
        ),
        (
            422,
            server
                .post("/api/v1/payouts", &a, payout_body(json!(500)))
                .await,
        ),
        (
            403,
            server
                .post(
                    "/api/v1/users",
                    &a,
                    json!({ "name": "x", "role": "manager" }),
                )
                .await,
        ),
        (404, server.get("/api/v1/nope", &a).await),
        (
            404,
            server
                .get("/api/v1/payments/txn_0190f1a2b3c47d8e9f00112233445566", &a)
                .await,
        ),
        (
            405,
            server
                .request(Method::DELETE, "/api/v1/balance", Some(&a), None)
                .await,
        ),
        (
            413,
            raw(
                &server,
                Method::POST,
                "/api/v1/payments",
                Some(&a),
                big.as_bytes(),
                &[],
            )
            .await,
        ),
    ];
    let mut seen = Vec::new();
    for (status, r) in &keyed {
        assert_eq!(r.status.as_u16(), *status, "{}", r.text);
        let (limit, remaining, reset) = rate_headers(r);
        assert_eq!(limit, 100, "the user's own limit on a {status}");
        assert!(remaining < 100, "{remaining}");
        assert!(reset <= 60, "a full bucket takes at most a minute: {reset}");
        seen.push(remaining);
    }
    // Every answer took a token (a refill adds one per 600 ms at most).
    assert!(seen[seen.len() - 1] < seen[0], "{seen:?}");

    // 401s (missing, wrong key), 403 suspended and an unknown route asked
    // without a key are limited per client address with the server default.
    let anonymous = [
        (
            401,
            server
                .request(Method::GET, "/api/v1/balance", None, None)
                .await,
        ),
        (401, server.get("/api/v1/balance", "tjk_wrong").await),
        (
            401,
            server
                .request(Method::GET, "/api/v1/nope", None, None)
                .await,
        ),
        (403, server.get("/api/v1/balance", &s).await),
    ];
    for (status, r) in &anonymous {
        assert_eq!(r.status.as_u16(), *status, "{}", r.text);
        let (limit, remaining, _reset) = rate_headers(r);
        assert_eq!(limit, 500, "the server default on a {status}");
        assert!(remaining < 500);
    }
    assert!(!a_id.is_empty());
}

#[tokio::test]
async fn spent_limit_answers_429_with_retry_after() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let admin = server.admin_key.clone();
    let (a_id, a) = server.create_user(&admin, "merchant", json!({})).await;
    let (_b_id, b) = server.create_user(&admin, "merchant", json!({})).await;
    let r = server.get("/api/v1/balance", &a).await;
    assert_eq!(rate_headers(&r).0, 6000);

    // The admin lowers the limit to 5 a minute: the bucket shrinks at once.
    set_user(&server, &admin, &a_id, json!({ "rate_limit_per_min": 5 })).await;
    for expected in [4, 3, 2, 1, 0] {
        let r = server.get("/api/v1/balance", &a).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let (limit, remaining, reset) = rate_headers(&r);
        assert_eq!((limit, remaining), (5, expected));
        assert!((1..=60).contains(&reset), "reset {reset}");
    }
    for _ in 0..3 {
        let r = server
            .post("/api/v1/payments", &a, payin_body("RL-429", json!(10)))
            .await;
        assert_error(&r, 429, "rate_limit_exceeded");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=12).contains(&retry), "one token per 12 s: {retry}");
        let (limit, remaining, reset) = rate_headers(&r);
        assert_eq!((limit, remaining), (5, 0));
        assert!(reset >= retry && reset <= 60, "reset {reset}");
    }
    // The refused pay-ins were never created; other keys are unaffected.
    let all = list_all(&server, "/api/v1/payments", &admin, 50).await;
    assert!(all.is_empty(), "{all:?}");
    assert_eq!(server.get("/api/v1/balance", &b).await.status, 200);

    // Raising the limit again lets the key through once a token refills.
    set_user(
        &server,
        &admin,
        &a_id,
        json!({ "rate_limit_per_min": 6000 }),
    )
    .await;
    server
        .wait_for("/api/v1/balance", &a, Duration::from_secs(10), |r| {
            r.status == 200
        })
        .await;
    assert_eq!(user_status(&server, &a_id).await, "active");
}

#[tokio::test]
async fn repeated_429s_suspend_the_key_automatically() {
    let server = Server::start(&[
        "--misuse-rejections",
        "5",
        NO_AUTO_SETTLE[0],
        NO_AUTO_SETTLE[1],
    ]);
    let admin = server.admin_key.clone();
    let (a_id, a) = server
        .create_user(&admin, "merchant", json!({ "rate_limit_per_min": 1 }))
        .await;
    let (_u_id, u) = server
        .create_user(&admin, "api_user", json!({ "parent_id": a_id }))
        .await;
    let (c_id, c) = server
        .create_user(&admin, "merchant", json!({ "rate_limit_per_min": 1 }))
        .await;

    // C is refused 4 times: under the threshold, it stays active.
    assert_eq!(server.get("/api/v1/balance", &c).await.status, 200);
    for _ in 0..4 {
        assert_error(
            &server.get("/api/v1/balance", &c).await,
            429,
            "rate_limit_exceeded",
        );
    }

    // A is refused 5 times: the 5th rejection suspends it.
    assert_eq!(server.get("/api/v1/balance", &a).await.status, 200);
    for _ in 0..5 {
        assert_error(
            &server.get("/api/v1/balance", &a).await,
            429,
            "rate_limit_exceeded",
        );
    }
    // At the threshold, at once: the very next request is refused as
    // suspended, and the suspension is already the user's stored status
    // (the 5th rejection was answered after it was durable), with a
    // user.suspended event in the log.
    assert_error(
        &server.get("/api/v1/balance", &a).await,
        403,
        "account_suspended",
    );
    assert_eq!(user_status(&server, &a_id).await, "suspended");
    // The merchant's api_user is blocked with it.
    assert_error(
        &server.get("/api/v1/balance", &u).await,
        403,
        "account_suspended",
    );
    assert_eq!(user_status(&server, &c_id).await, "active");
    let events = list_all(
        &server,
        "/api/v1/webhooks/events?event=user.suspended",
        &admin,
        50,
    )
    .await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["payload"]["user_id"], json!(a_id));
    assert_eq!(events[0]["payload"]["status"], json!("suspended"));

    // Reactivated with a usable limit, the key works again.
    set_user(
        &server,
        &admin,
        &a_id,
        json!({ "status": "active", "rate_limit_per_min": 600 }),
    )
    .await;
    server
        .wait_for("/api/v1/balance", &a, Duration::from_secs(10), |r| {
            r.status == 200
        })
        .await;
    assert_eq!(server.get("/api/v1/balance", &u).await.status, 200);
    assert_eq!(user_status(&server, &a_id).await, "active");
}

#[tokio::test]
async fn idempotent_payins_replay_once_or_conflict() {
    let server = Server::start(&[]);
    let admin = server.admin_key.clone();
    let (_a_id, a) = server
        .create_user(&admin, "merchant", json!({ "payin_fee_bps": 100 }))
        .await;

    let body =
        r#"{"order_id":"IDEM-1","amount":"1000.50","payer":"Jane Smith","metadata":{"x":1,"y":2}}"#;
    let first = post_idem(&server, "/api/v1/payments", &a, "key-1", body).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.header("idempotent-replayed"), None);
    let id = first.data()["id"].as_str().unwrap().to_owned();

    // Same key, same body (also re-ordered and re-spaced): the first answer.
    let reordered = r#"{ "payer": "Jane Smith", "metadata": {"y": 2, "x": 1}, "amount": "1000.50", "order_id": "IDEM-1" }"#;
    for again in [body, reordered, body] {
        let r = post_idem(&server, "/api/v1/payments", &a, "key-1", again).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.header("idempotent-replayed"), Some("true"));
        assert_eq!(r.json, first.json, "the first response, again");
    }
    // Same key, another body: refused.
    let other =
        r#"{"order_id":"IDEM-1","amount":"1000.51","payer":"Jane Smith","metadata":{"x":1,"y":2}}"#;
    let r = post_idem(&server, "/api/v1/payments", &a, "key-1", other).await;
    assert_error(&r, 422, "idempotency_conflict");
    // Another key, same order id: a new request, a duplicate order.
    let r = post_idem(&server, "/api/v1/payments", &a, "key-2", body).await;
    assert_error(&r, 409, "duplicate_order_id");

    // Concurrent retries of one new request create one pay-in.
    let body3 = r#"{"order_id":"IDEM-3","amount":250,"payer":"P"}"#;
    let (r1, r2, r3, r4, r5) = tokio::join!(
        post_idem(&server, "/api/v1/payments", &a, "key-3", body3),
        post_idem(&server, "/api/v1/payments", &a, "key-3", body3),
        post_idem(&server, "/api/v1/payments", &a, "key-3", body3),
        post_idem(&server, "/api/v1/payments", &a, "key-3", body3),
        post_idem(&server, "/api/v1/payments", &a, "key-3", body3),
    );
    let all = [r1, r2, r3, r4, r5];
    for r in &all {
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.data()["id"], all[0].data()["id"]);
    }
    let replays = all
        .iter()
        .filter(|r| r.header("idempotent-replayed") == Some("true"))
        .count();
    assert_eq!(replays, 4, "exactly one of five was the original");

    // Money moved once per pay-in.
    wait_none_pending(&server, "/api/v1/payments", &a, Duration::from_secs(20)).await;
    let list = list_all(&server, "/api/v1/payments", &a, 50).await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[1]["id"], json!(id));
    let b = balance(&server, &a, "").await;
    // 1000.50 - 10.01 (1%, half-up) + 250 - 2.50
    assert_eq!(b["available"].to_string(), "1237.99");
    assert_eq!(b["total_payins"].to_string(), "1250.5");
    assert_eq!(b["total_fees"].to_string(), "12.51");
}

#[tokio::test]
async fn idempotent_payouts_replay_once_or_conflict() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let admin = server.admin_key.clone();
    let (_a_id, a) = server
        .create_user(&admin, "merchant", json!({ "payout_fee": 5 }))
        .await;
    let (_u_id, u) = server.create_user(&a, "api_user", json!({})).await;
    fund(&server, &a, "IDEM-FUND", json!(1000)).await;

    let body = payout_body(json!(100)).to_string();
    let first = post_idem(&server, "/api/v1/payouts", &a, "po-key-1", &body).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.header("idempotent-replayed"), None);
    let after_first = balance(&server, &a, "").await;
    assert_eq!(avail_held(&after_first), ("895".into(), "105".into()));

    for _ in 0..3 {
        let r = post_idem(&server, "/api/v1/payouts", &a, "po-key-1", &body).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.header("idempotent-replayed"), Some("true"));
        assert_eq!(r.json, first.json);
    }
    let other = payout_body(json!(200)).to_string();
    let r = post_idem(&server, "/api/v1/payouts", &a, "po-key-1", &other).await;
    assert_error(&r, 422, "idempotency_conflict");
    // Held once; nothing else moved.
    assert_eq!(balance(&server, &a, "").await, after_first);

    // Keys belong to their user: the api_user's "po-key-1" is its own.
    let r = post_idem(&server, "/api/v1/payouts", &u, "po-key-1", &other).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("idempotent-replayed"), None);
    assert_eq!(
        avail_held(&balance(&server, &a, "").await),
        ("690".into(), "310".into())
    );

    // Concurrent retries hold the money once.
    let body2 = payout_body(json!(50)).to_string();
    let (r1, r2, r3, r4) = tokio::join!(
        post_idem(&server, "/api/v1/payouts", &a, "po-key-2", &body2),
        post_idem(&server, "/api/v1/payouts", &a, "po-key-2", &body2),
        post_idem(&server, "/api/v1/payouts", &a, "po-key-2", &body2),
        post_idem(&server, "/api/v1/payouts", &a, "po-key-2", &body2),
    );
    let all = [r1, r2, r3, r4];
    for r in &all {
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.data()["id"], all[0].data()["id"]);
    }
    assert_eq!(
        avail_held(&balance(&server, &a, "").await),
        ("635".into(), "365".into())
    );
    let list = list_all(&server, "/api/v1/payouts", &a, 50).await;
    assert_eq!(list.len(), 3);
}
