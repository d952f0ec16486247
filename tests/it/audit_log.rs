//! The audit log and security events (SPEC §16), black box: every action
//! once, with its actor, target, before/after, reason and the request id of
//! the request that made it; scoping by role, filters, cursor and strict
//! parameters; durable with the change across a kill -9; never a key, key
//! hash or secret; security events to the user and its parent; a misuse
//! suspension by the platform.

use crate::api_support::NO_AUTO_SETTLE;
use crate::common::{payin_body, payout_body, Resp, Server};
use crate::webhooks::Receiver;
use hyper::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Sends a request with our own `X-Request-Id`.
async fn send(
    server: &Server,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
    request_id: &str,
) -> Resp {
    server
        .request_with(
            method,
            path,
            Some(key),
            body.map(|b| b.to_string().into_bytes()),
            &[("x-request-id", request_id)],
        )
        .await
}

fn ok(r: &Resp, what: &str) {
    assert!(r.status.is_success(), "{what}: {} {}", r.status, r.text);
}

/// Every entry `key` may see with `query`, following cursors `limit` at a time.
async fn audit_all(server: &Server, key: &str, query: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _page in 0..200 {
        let sep = if query.is_empty() { "" } else { "&" };
        let mut path = format!("/api/v1/audit-log?limit={limit}{sep}{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = server.get(&path, key).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        let items = r.data().as_array().unwrap().clone();
        assert!(items.len() <= limit);
        out.extend(items);
        match r.json["pagination"]["next_cursor"].as_str() {
            Some(c) if r.json["pagination"]["has_more"] == true => cursor = Some(c.to_owned()),
            _ => return out,
        }
    }
    panic!("too many pages");
}

fn of<'a>(entries: &'a [Value], action: &str, target: &str) -> Vec<&'a Value> {
    entries
        .iter()
        .filter(|e| e["action"] == action && e["target_id"] == target)
        .collect()
}

/// The one entry of `action` on `target`, checked field by field.
fn one<'a>(
    entries: &'a [Value],
    action: &str,
    target: &str,
    actor: Option<&str>,
    request_id: &str,
) -> &'a Value {
    let found = of(entries, action, target);
    assert_eq!(found.len(), 1, "{action} on {target}: {entries:#?}");
    let e = found[0];
    assert!(e["id"].as_str().unwrap().starts_with("aud_"), "{e}");
    assert_eq!(e["actor_id"], json!(actor), "{e}");
    assert_eq!(e["request_id"], request_id, "{e}");
    assert!(e["created_at"].as_str().unwrap().ends_with('Z'), "{e}");
    assert!(e["changes"].is_object(), "{e}");
    e
}

fn change(e: &Value, field: &str, before: Value, after: Value) {
    assert_eq!(
        e["changes"][field],
        json!({ "before": before, "after": after }),
        "{field} in {e}"
    );
}

fn hex_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn account(number: &str) -> Value {
    json!({ "name": "Acme Traders", "account_number": number, "ifsc": "HDFC0001234" })
}

struct World {
    server: Server,
    admin_id: String,
    manager: (String, String),
    merchant: (String, String),
    api_user: (String, String),
    /// A merchant under the admin, turned into a manager.
    promoted: String,
    /// Every key and secret the run saw.
    secrets: Vec<String>,
    payment: String,
    payout: String,
    refund: String,
    settlement: String,
}

/// Makes one of every audited change, each with its own request id
/// (`rq-<what>`).
async fn world() -> World {
    let server = Server::start(&[NO_AUTO_SETTLE[0], NO_AUTO_SETTLE[1]]);
    let admin = server.admin_key.clone();
    let mut secrets = vec![admin.clone()];
    let me = server.get("/api/v1/profile", &admin).await;
    let admin_id = me.data()["id"].as_str().unwrap().to_owned();

    let create = |key: String, role: &'static str, rq: &'static str, extra: Value| {
        let server = &server;
        async move {
            let mut body = json!({ "name": format!("{role} one"), "role": role });
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            let r = send(server, Method::POST, "/api/v1/users", &key, Some(body), rq).await;
            ok(&r, rq);
            (
                r.data()["user"]["id"].as_str().unwrap().to_owned(),
                r.data()["api_key"].as_str().unwrap().to_owned(),
            )
        }
    };
    let manager = create(admin.clone(), "manager", "rq-create-manager", json!({})).await;
    let merchant = create(
        manager.1.clone(),
        "merchant",
        "rq-create-merchant",
        json!({}),
    )
    .await;
    let mut api_user = create(
        merchant.1.clone(),
        "api_user",
        "rq-create-api-user",
        json!({}),
    )
    .await;
    let (promoted, promoted_key) =
        create(admin.clone(), "merchant", "rq-create-promoted", json!({})).await;
    secrets.extend([
        manager.1.clone(),
        merchant.1.clone(),
        api_user.1.clone(),
        promoted_key,
    ]);
    for key in [&merchant.1, &api_user.1] {
        let p = server.get("/api/v1/profile", key).await;
        secrets.push(p.data()["webhook_secret"].as_str().unwrap().to_owned());
    }

    // One PATCH, three kinds of change: three entries.
    let r = send(
        &server,
        Method::PATCH,
        &format!("/api/v1/users/{}", merchant.0),
        &manager.1,
        Some(json!({
            "name": "Merchant Renamed", "payin_fee_bps": 150,
            "settlement_account": account("123456789012"), "reason": "onboarding",
        })),
        "rq-patch-merchant",
    )
    .await;
    ok(&r, "patch merchant");
    let r = send(
        &server,
        Method::PATCH,
        &format!("/api/v1/users/{promoted}"),
        &admin,
        Some(json!({ "role": "manager" })),
        "rq-role",
    )
    .await;
    ok(&r, "role change");
    let user_path = format!("/api/v1/users/{}", api_user.0);
    let r = send(
        &server,
        Method::PATCH,
        &user_path,
        &merchant.1,
        Some(json!({ "status": "suspended", "reason": "chargeback spike" })),
        "rq-suspend",
    )
    .await;
    ok(&r, "suspend");
    let r = send(
        &server,
        Method::PATCH,
        &user_path,
        &merchant.1,
        Some(json!({ "status": "active" })),
        "rq-reactivate",
    )
    .await;
    ok(&r, "reactivate");
    let r = send(
        &server,
        Method::POST,
        &format!("{user_path}/api-key"),
        &merchant.1,
        None,
        "rq-regenerate",
    )
    .await;
    ok(&r, "regenerate");
    api_user.1 = r.data()["api_key"].as_str().unwrap().to_owned();
    secrets.push(api_user.1.clone());
    let r = send(
        &server,
        Method::POST,
        "/api/v1/profile/webhook-secret",
        &merchant.1,
        None,
        "rq-rotate",
    )
    .await;
    ok(&r, "rotate");
    secrets.push(r.data()["webhook_secret"].as_str().unwrap().to_owned());

    // Manual status changes by the admin.
    let r = server
        .post(
            "/api/v1/payments",
            &merchant.1,
            payin_body("aud-1", json!("1000.00")),
        )
        .await;
    ok(&r, "payin");
    let payment = r.data()["id"].as_str().unwrap().to_owned();
    let r = send(
        &server,
        Method::POST,
        &format!("/api/v1/payments/{payment}/status"),
        &admin,
        Some(json!({ "status": "completed", "reason": "bank statement matched" })),
        "rq-payment-status",
    )
    .await;
    ok(&r, "payment status");
    let r = server
        .post("/api/v1/payouts", &merchant.1, payout_body(json!("100.00")))
        .await;
    ok(&r, "payout");
    let payout = r.data()["id"].as_str().unwrap().to_owned();
    let r = send(
        &server,
        Method::POST,
        &format!("/api/v1/payouts/{payout}/status"),
        &admin,
        Some(json!({ "status": "processed", "reason": "utr confirmed" })),
        "rq-payout-status",
    )
    .await;
    ok(&r, "payout status");
    let r = server
        .post(
            &format!("/api/v1/payments/{payment}/refunds"),
            &merchant.1,
            json!({ "amount": "10.00", "reason": "damaged" }),
        )
        .await;
    ok(&r, "refund");
    let refund = r.data()["id"].as_str().unwrap().to_owned();
    let r = send(
        &server,
        Method::POST,
        &format!("/api/v1/refunds/{refund}/status"),
        &admin,
        Some(json!({ "status": "failed", "reason": "card closed" })),
        "rq-refund-status",
    )
    .await;
    ok(&r, "refund status");
    let r = server
        .post(
            "/api/v1/settlements",
            &admin,
            json!({ "merchant_id": merchant.0 }),
        )
        .await;
    ok(&r, "settlement");
    let settlement = r.data()["id"].as_str().unwrap().to_owned();
    let r = send(
        &server,
        Method::POST,
        &format!("/api/v1/settlements/{settlement}/status"),
        &admin,
        Some(json!({ "status": "processed", "reason": "bank confirmed" })),
        "rq-settlement-status",
    )
    .await;
    ok(&r, "settlement status");
    let r = send(
        &server,
        Method::POST,
        "/api/v1/webhooks/replay",
        &merchant.1,
        Some(json!({})),
        "rq-replay",
    )
    .await;
    ok(&r, "replay");
    let events = server
        .get("/api/v1/webhooks/events?limit=1", &merchant.1)
        .await;
    let event = events.data()[0]["id"].as_str().unwrap().to_owned();
    let r = send(
        &server,
        Method::POST,
        &format!("/api/v1/webhooks/events/{event}/redeliver"),
        &merchant.1,
        None,
        "rq-redeliver",
    )
    .await;
    ok(&r, "redeliver");

    World {
        server,
        admin_id,
        manager,
        merchant,
        api_user,
        promoted,
        secrets,
        payment,
        payout,
        refund,
        settlement,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_is_logged_once_with_actor_target_changes_reason_and_request_id() {
    let w = world().await;
    let server = &w.server;
    let admin = server.admin_key.clone();
    let log = audit_all(server, &admin, "", 7).await;
    let (mgr, m, u) = (&w.manager.0, &w.merchant.0, &w.api_user.0);
    let admin_id = w.admin_id.as_str();

    // Newest first, ids distinct.
    let ids: Vec<&str> = log.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len());
    let times: Vec<&str> = log
        .iter()
        .map(|e| e["created_at"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|p| p[0] >= p[1]), "{times:?}");

    let e = one(
        &log,
        "user.created",
        mgr,
        Some(admin_id),
        "rq-create-manager",
    );
    change(e, "role", Value::Null, json!("manager"));
    change(e, "parent_id", Value::Null, json!(admin_id));
    let e = one(&log, "user.created", m, Some(mgr), "rq-create-merchant");
    change(e, "role", Value::Null, json!("merchant"));
    one(&log, "user.created", u, Some(m), "rq-create-api-user");

    // The three entries of one PATCH, each with its own fields.
    let e = one(&log, "user.updated", m, Some(mgr), "rq-patch-merchant");
    change(e, "name", json!("merchant one"), json!("Merchant Renamed"));
    change(e, "payin_fee_bps", json!(0), json!(150));
    assert_eq!(e["changes"].as_object().unwrap().len(), 2, "{e}");
    assert_eq!(e["reason"], "onboarding");
    let e = one(
        &log,
        "settlement_account.changed",
        m,
        Some(mgr),
        "rq-patch-merchant",
    );
    let after = &e["changes"]["settlement_account"]["after"];
    assert_eq!(after["account_number"], "XXXXXXXX9012", "{e}");
    assert_eq!(e["changes"]["settlement_account"]["before"], Value::Null);
    assert!(!e.to_string().contains("123456789012"), "{e}");

    let e = one(
        &log,
        "user.role_changed",
        &w.promoted,
        Some(admin_id),
        "rq-role",
    );
    change(e, "role", json!("merchant"), json!("manager"));
    change(e, "merchant_id", json!(w.promoted), Value::Null);
    assert!(of(&log, "user.updated", &w.promoted).is_empty());

    let e = one(&log, "user.suspended", u, Some(m), "rq-suspend");
    change(e, "status", json!("active"), json!("suspended"));
    assert_eq!(e["reason"], "chargeback spike");
    let e = one(&log, "user.reactivated", u, Some(m), "rq-reactivate");
    change(e, "status", json!("suspended"), json!("active"));
    let e = one(&log, "api_key.regenerated", u, Some(m), "rq-regenerate");
    assert_eq!(e["changes"], json!({}));
    let e = one(&log, "webhook_secret.rotated", m, Some(m), "rq-rotate");
    assert_eq!(e["changes"], json!({}));

    for (action, target, rq, before, after, reason) in [
        (
            "payment.status_set",
            &w.payment,
            "rq-payment-status",
            "pending",
            "completed",
            "bank statement matched",
        ),
        (
            "payout.status_set",
            &w.payout,
            "rq-payout-status",
            "pending",
            "processed",
            "utr confirmed",
        ),
        (
            "refund.status_set",
            &w.refund,
            "rq-refund-status",
            "pending",
            "failed",
            "card closed",
        ),
        (
            "settlement.status_set",
            &w.settlement,
            "rq-settlement-status",
            "pending",
            "processed",
            "bank confirmed",
        ),
    ] {
        let e = one(&log, action, target, Some(admin_id), rq);
        change(e, "status", json!(before), json!(after));
        assert_eq!(e["reason"], reason, "{e}");
    }
    let replays = of(&log, "webhooks.replayed", m);
    assert_eq!(replays.len(), 2, "{replays:#?}");
    let e = replays
        .iter()
        .find(|e| e["request_id"] == "rq-replay")
        .unwrap();
    assert_eq!(e["actor_id"], m.as_str());
    change(e, "status", json!("failed"), json!("pending"));
    // A redelivery of one event is a replay too.
    let e = replays
        .iter()
        .find(|e| e["request_id"] == "rq-redeliver")
        .unwrap();
    assert_eq!(e["actor_id"], m.as_str());
    assert!(e["changes"]["event_id"]["after"]
        .as_str()
        .unwrap()
        .starts_with("evt_"));
    // The first admin, made by the platform at the first start.
    let boot = of(&log, "user.created", admin_id);
    assert_eq!(boot.len(), 1);
    assert_eq!(boot[0]["actor_id"], Value::Null);
    assert_eq!(boot[0]["request_id"], Value::Null);
    assert_eq!(boot[0]["reason"], "bootstrap");
    // The money path itself (creating records, the rail) is not audited.
    let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(log.len(), 18, "{actions:?}");

    // Never a key, a key hash or a secret anywhere in the log.
    let text = serde_json::to_string(&log).unwrap();
    for secret in &w.secrets {
        assert!(!text.contains(secret.as_str()), "the log holds {secret}");
        assert!(!text.contains(&hex_sha256(secret)), "the log holds a hash");
    }
    for marker in ["tjk_", "whsec_", "key_hash", "webhook_secret\""] {
        assert!(!text.contains(marker), "the log holds {marker}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_scoped_filtered_paged_and_strict() {
    let w = world().await;
    let server = &w.server;
    let admin = server.admin_key.clone();
    let all = audit_all(server, &admin, "", 500).await;
    assert_eq!(all.len(), 18);

    // The manager: itself, its merchant, the merchant's api_user and
    // records; not the promoted user (under the admin) nor the admin.
    let (mgr, m, u) = (&w.manager.0, &w.merchant.0, &w.api_user.0);
    let seen = audit_all(server, &w.manager.1, "", 4).await;
    let targets: Vec<&str> = seen
        .iter()
        .map(|e| e["target_id"].as_str().unwrap())
        .collect();
    assert!(targets.iter().all(|t| [
        mgr.as_str(),
        m,
        u,
        &w.payment,
        &w.payout,
        &w.refund,
        &w.settlement
    ]
    .contains(t)));
    assert!(!targets.contains(&w.promoted.as_str()));
    assert_eq!(seen.len(), 15, "{targets:?}");

    // The merchant: itself, its api_user, its records.
    let seen = audit_all(server, &w.merchant.1, "", 500).await;
    assert!(seen.iter().all(|e| e["target_id"] != mgr.as_str()));
    assert_eq!(seen.len(), 14);

    // The api_user: 403.
    let r = server.get("/api/v1/audit-log", &w.api_user.1).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.code(), "insufficient_permissions");

    // Filters.
    let by = |q: &'static str| audit_all(server, &admin, q, 500);
    let only = by("action=user.created").await;
    assert_eq!(only.len(), 5);
    assert!(only.iter().all(|e| e["action"] == "user.created"));
    let q = format!("target_id={u}");
    let on_u = audit_all(server, &admin, &q, 500).await;
    assert_eq!(on_u.len(), 4, "{on_u:#?}");
    let q = format!("actor_id={}", w.admin_id);
    let by_admin = audit_all(server, &admin, &q, 500).await;
    assert_eq!(by_admin.len(), 7, "{by_admin:#?}");
    let q = format!("actor_id={m}&action=user.suspended");
    assert_eq!(audit_all(server, &admin, &q, 500).await.len(), 1);
    // from/to: the entries at or after the 5th newest's time.
    let fifth = all[4]["created_at"].as_str().unwrap();
    let q = format!("from={fifth}");
    let recent = audit_all(server, &admin, &q, 500).await;
    assert!(recent.len() >= 5 && recent.len() < 18, "{}", recent.len());
    assert!(recent
        .iter()
        .all(|e| e["created_at"].as_str().unwrap() >= fifth));
    let q = format!("to={fifth}");
    let older = audit_all(server, &admin, &q, 500).await;
    assert_eq!(older.len() + recent.len(), 18);
    // merchant_id narrows the admin's view to that merchant's subtree.
    let q = format!("merchant_id={m}");
    assert_eq!(audit_all(server, &admin, &q, 500).await.len(), 14);

    // Strict parameters.
    for bad in [
        "?action=user.deleted",
        "?actor_id=nope",
        "?target_id=abc",
        "?to=",
        "?limit=0",
        "?limit=501",
        "?cursor=xyz",
        "?from=yesterday",
        "?unknown=1",
    ] {
        let r = server.get(&format!("/api/v1/audit-log{bad}"), &admin).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert_eq!(r.code(), "invalid_request", "{bad}");
    }
    // A manager naming a merchant outside its team: not_found.
    let r = server
        .get(
            &format!("/api/v1/audit-log?merchant_id={}", w.promoted),
            &w.manager.1,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
}

/// The entry is in the same commit as the change: acknowledged, then
/// kill -9 at once, and both are there after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_survives_kill9_with_its_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &[NO_AUTO_SETTLE[0], NO_AUTO_SETTLE[1]]);
    let admin = server.admin_key.clone();
    let admin_id = server.get("/api/v1/profile", &admin).await.data()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (m, m_key) = server.create_user(&admin, "merchant", json!({})).await;
    let r = server
        .post("/api/v1/payments", &m_key, payin_body("k9", json!("50.00")))
        .await;
    ok(&r, "payin");
    let payment = r.data()["id"].as_str().unwrap().to_owned();
    let r = send(
        &server,
        Method::PATCH,
        &format!("/api/v1/users/{m}"),
        &admin,
        Some(json!({ "name": "After Crash" })),
        "rq-k9-patch",
    )
    .await;
    ok(&r, "patch");
    let r = send(
        &server,
        Method::POST,
        &format!("/api/v1/payments/{payment}/status"),
        &admin,
        Some(json!({ "status": "failed", "reason": "payer disputed" })),
        "rq-k9-status",
    )
    .await;
    ok(&r, "status");
    server.kill9();
    drop(server);

    let server = Server::start_in(dir.path(), &[NO_AUTO_SETTLE[0], NO_AUTO_SETTLE[1]]);
    let log = audit_all(&server, &admin, "", 50).await;
    let e = one(&log, "user.updated", &m, Some(&admin_id), "rq-k9-patch");
    change(e, "name", json!("merchant user"), json!("After Crash"));
    let r = server.get(&format!("/api/v1/users/{m}"), &admin).await;
    assert_eq!(r.data()["name"], "After Crash");
    let r = server
        .get(&format!("/api/v1/payments/{payment}"), &admin)
        .await;
    assert_eq!(r.data()["status"], "failed");
    let e = one(
        &log,
        "payment.status_set",
        &payment,
        Some(&admin_id),
        "rq-k9-status",
    );
    assert_eq!(e["reason"], "payer disputed");
}

/// SPEC §16: security events go to the user itself and to its parent;
/// payloads carry no key or secret; `user.suspended` names its reason and
/// actor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_events_reach_the_user_and_its_parent() {
    let rx = Receiver::start().await;
    let server = Server::start(&["--webhook-allow-private", "--webhook-retry-base-ms", "10"]);
    let admin = server.admin_key.clone();
    let admin_id = server.get("/api/v1/profile", &admin).await.data()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = server
        .patch(
            "/api/v1/profile",
            &admin,
            json!({ "webhook_url": rx.url("/admin") }),
        )
        .await;
    ok(&r, "admin url");
    let (m, m_key) = server
        .create_user(&admin, "merchant", json!({ "webhook_url": rx.url("/m") }))
        .await;
    let (p, _p_key) = server
        .create_user(&admin, "merchant", json!({ "webhook_url": rx.url("/p") }))
        .await;
    let r = server
        .post("/api/v1/profile/api-key", &m_key, json!({}))
        .await;
    ok(&r, "regenerate");
    let new_key = r.data()["api_key"].as_str().unwrap().to_owned();
    let r = server
        .post("/api/v1/profile/webhook-secret", &new_key, json!({}))
        .await;
    ok(&r, "rotate");
    let new_secret = r.data()["webhook_secret"].as_str().unwrap().to_owned();
    let user = format!("/api/v1/users/{m}");
    ok(
        &server
            .patch(&user, &admin, json!({ "status": "suspended" }))
            .await,
        "suspend",
    );
    ok(
        &server
            .patch(&user, &admin, json!({ "status": "active" }))
            .await,
        "reactivate",
    );
    ok(
        &server
            .patch(
                &format!("/api/v1/users/{p}"),
                &admin,
                json!({ "role": "manager" }),
            )
            .await,
        "role",
    );

    let expected = [
        ("/m", "api_key.regenerated", &m),
        ("/admin", "api_key.regenerated", &m),
        ("/m", "webhook_secret.rotated", &m),
        ("/admin", "webhook_secret.rotated", &m),
        ("/m", "user.reactivated", &m),
        ("/admin", "user.reactivated", &m),
        ("/p", "user.role_changed", &p),
        ("/admin", "user.role_changed", &p),
        ("/admin", "user.suspended", &m),
    ];
    let hits = rx
        .wait(Duration::from_secs(20), "security events", |hits| {
            expected.iter().all(|(path, event, user)| {
                hits.iter().any(|h| {
                    h.ok()
                        && h.path == *path
                        && h.json["event"] == *event
                        && h.json["user_id"] == **user
                })
            })
        })
        .await;
    for hit in &hits {
        let body = String::from_utf8_lossy(&hit.body);
        assert!(!body.contains(&new_key) && !body.contains(&m_key), "{body}");
        assert!(
            !body.contains(&new_secret) && !body.contains("whsec_"),
            "{body}"
        );
    }
    let suspended = hits
        .iter()
        .find(|h| h.json["event"] == "user.suspended")
        .unwrap();
    assert_eq!(suspended.json["reason"], "manual");
    assert_eq!(suspended.json["actor_id"], admin_id.as_str());
    // The user itself is not told of its own suspension (SPEC §7: the parent).
    assert!(!hits
        .iter()
        .any(|h| h.path == "/m" && h.json["event"] == "user.suspended"));
    let role = hits
        .iter()
        .find(|h| h.json["event"] == "user.role_changed")
        .unwrap();
    assert_eq!(role.json["role"], "manager");
    assert_eq!(role.json["actor_id"], admin_id.as_str());
}

/// A misuse suspension is the platform's: `actor_id` null, reason
/// `misuse`, in the log and in the event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misuse_suspension_is_the_platforms() {
    let server = Server::start(&["--misuse-rejections", "3"]);
    let admin = server.admin_key.clone();
    let (m, m_key) = server
        .create_user(&admin, "merchant", json!({ "rate_limit_per_min": 1 }))
        .await;
    let mut suspended_by = None;
    for i in 0..10 {
        let rq = format!("rq-flood-{i}");
        let r = send(&server, Method::GET, "/api/v1/balance", &m_key, None, &rq).await;
        if r.status == 403 {
            break;
        }
        if r.status == 429 {
            suspended_by = Some(rq);
        }
    }
    let log = audit_all(&server, &admin, "action=user.suspended", 50).await;
    let rq = suspended_by.expect("some 429s");
    let e = one(&log, "user.suspended", &m, None, &rq);
    assert_eq!(e["reason"], "misuse");
    change(e, "status", json!("active"), json!("suspended"));
    let events = server
        .get("/api/v1/webhooks/events?event=user.suspended", &admin)
        .await;
    let event = events
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["payload"]["user_id"] == m.as_str())
        .cloned()
        .expect("a user.suspended event");
    assert_eq!(event["payload"]["reason"], "misuse");
    assert_eq!(event["payload"]["actor_id"], Value::Null);
}

/// SPEC §17: `idempotency_conflict` names the top-level fields that differ
/// from the first request (present in one body only counts as differing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_conflict_names_the_differing_fields() {
    let server = Server::start(&[NO_AUTO_SETTLE[0], NO_AUTO_SETTLE[1]]);
    let admin = server.admin_key.clone();
    let (_m, m_key) = server.create_user(&admin, "merchant", json!({})).await;
    let post = |path: &'static str, key: &'static str, body: Value| {
        let server = &server;
        let m_key = m_key.clone();
        async move {
            server
                .request_with(
                    Method::POST,
                    path,
                    Some(&m_key),
                    Some(body.to_string().into_bytes()),
                    &[("idempotency-key", key)],
                )
                .await
        }
    };
    let first = json!({ "order_id": "idem-1", "amount": "100.00", "payer": "Jane", "metadata": {"a": 1, "b": 2} });
    let r = post("/api/v1/payments", "k-pay", first.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    // The same body in another key order and spacing: a replay.
    let same = json!({ "metadata": {"b": 2, "a": 1}, "payer": "Jane", "amount": "100.00", "order_id": "idem-1" });
    let r = post("/api/v1/payments", "k-pay", same).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let other = json!({ "order_id": "idem-1", "amount": "200.00", "payer": "John", "description": "new", "metadata": {"a": 1, "b": 2} });
    let r = post("/api/v1/payments", "k-pay", other).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.code(), "idempotency_conflict");
    assert_eq!(
        r.json["error"]["details"]["fields"],
        json!(["amount", "description", "payer"])
    );
    // A nested change names its top-level field; a field left out differs.
    let nested = json!({ "order_id": "idem-1", "amount": "100.00", "payer": "Jane", "metadata": {"a": 1, "b": 3} });
    let r = post("/api/v1/payments", "k-pay", nested).await;
    assert_eq!(r.code(), "idempotency_conflict");
    assert_eq!(r.json["error"]["details"]["fields"], json!(["metadata"]));
    let fewer = json!({ "order_id": "idem-1", "amount": "100.00", "payer": "Jane" });
    let r = post("/api/v1/payments", "k-pay", fewer).await;
    assert_eq!(r.code(), "idempotency_conflict");
    assert_eq!(r.json["error"]["details"]["fields"], json!(["metadata"]));

    // Payouts the same way.
    let body = payout_body(json!("5.00"));
    let r = post(
        "/api/v1/payments",
        "k-fund",
        payin_body("fund", json!("500.00")),
    )
    .await;
    let fund = r.data()["id"].as_str().unwrap().to_owned();
    let r = server
        .post(
            &format!("/api/v1/payments/{fund}/status"),
            &admin,
            json!({ "status": "completed", "reason": "funding" }),
        )
        .await;
    ok(&r, "fund");
    let r = post("/api/v1/payouts", "k-po", body.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut changed = body.clone();
    changed["beneficiary"]["name"] = json!("Someone Else");
    changed["amount"] = json!("5");
    let r = post("/api/v1/payouts", "k-po", changed).await;
    assert_eq!(r.code(), "idempotency_conflict", "{}", r.text);
    assert_eq!(
        r.json["error"]["details"]["fields"],
        json!(["amount", "beneficiary"])
    );
}

/// `tijori_storage_write_sets_total` from `/metrics`.
async fn write_sets(server: &Server) -> u64 {
    let r = server.request(Method::GET, "/metrics", None, None).await;
    r.text
        .lines()
        .find(|l| l.starts_with("tijori_storage_write_sets_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
        .expect("the write-set counter")
}

/// SPEC §16: `last_used_at`, to the minute, set when a key authenticates,
/// without a write per request, and kept across a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_used_at_moves_to_the_minute_without_a_write_per_request_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &[]);
    let admin = server.admin_key.clone();
    let (m, m_key) = server.create_user(&admin, "merchant", json!({})).await;
    let user = format!("/api/v1/users/{m}");
    let r = server.get(&user, &admin).await;
    assert_eq!(r.data()["last_used_at"], Value::Null, "{}", r.text);

    let before = write_sets(&server).await;
    let started = chrono_minute_floor(std::time::SystemTime::now());
    for _ in 0..30 {
        assert_eq!(server.get("/api/v1/balance", &m_key).await.status, 200);
    }
    let r = server
        .wait_for(&user, &admin, Duration::from_secs(10), |r| {
            r.data()["last_used_at"].is_string()
        })
        .await;
    let used = r.data()["last_used_at"].as_str().unwrap().to_owned();
    assert!(used.ends_with(":00.000Z"), "minute precision: {used}");
    let ended = chrono_minute_floor(std::time::SystemTime::now());
    let used_ms = parse_ms(&used);
    assert!(
        started <= used_ms && used_ms <= ended,
        "{used} not in the minute of the requests"
    );
    // 30 requests (GETs write nothing themselves) took at most a couple
    // of writes (the merchant's minute, the admin's), not one each.
    let after = write_sets(&server).await;
    assert!(
        after - before <= 4,
        "{} write sets for 30 requests",
        after - before
    );
    // The profile shows it too.
    let r = server.get("/api/v1/profile", &m_key).await;
    assert_eq!(r.data()["last_used_at"], used.as_str());

    server.kill9();
    drop(server);
    let server = Server::start_in(dir.path(), &[]);
    let r = server.get(&user, &admin).await;
    assert_eq!(r.data()["last_used_at"], used.as_str(), "{}", r.text);
}

fn parse_ms(text: &str) -> i64 {
    // 2026-12-02T08:11:00.000Z: days from the civil date, then the time.
    let (date, time) = text.split_once('T').unwrap();
    let mut d = date.split('-').map(|p| p.parse::<i64>().unwrap());
    let (y, mo, da) = (d.next().unwrap(), d.next().unwrap(), d.next().unwrap());
    let t = time.trim_end_matches('Z');
    let mut parts = t.split(':');
    let h: i64 = parts.next().unwrap().parse().unwrap();
    let mi: i64 = parts.next().unwrap().parse().unwrap();
    let s: f64 = parts.next().unwrap().parse().unwrap();
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + h) * 60 + mi) * 60_000 + (s * 1000.0).round() as i64
}

fn chrono_minute_floor(t: std::time::SystemTime) -> i64 {
    let ms = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let ms = i64::try_from(ms).unwrap();
    ms - ms.rem_euclid(60_000)
}
