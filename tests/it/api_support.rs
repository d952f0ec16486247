//! Helpers shared by the `api_*` black-box tests: the error-envelope check,
//! exact money arithmetic done on the test's side (integer paise, never a
//! float), listing every page of a collection, and the admin's manual
//! settlement. Built on `common`'s `Server`.
#![allow(dead_code)]

use crate::common::{Resp, Server};
use hyper::Method;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

/// A server whose sandbox rail never settles anything during a test, so
/// every transition is made by the test through the admin's manual path.
pub const NO_AUTO_SETTLE: [&str; 2] = ["--settle-delay-ms", "3600000"];

/// True for `2026-04-05T06:00:00.000Z` (RFC 3339, UTC, milliseconds).
pub fn is_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19, 23].contains(&i) || c.is_ascii_digit())
}

/// Asserts the SPEC §1 error envelope with `status` and `code`.
pub fn assert_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "status of {}", r.text);
    assert_eq!(r.json["success"], json!(false), "{}", r.text);
    let error = &r.json["error"];
    assert_eq!(error["code"], json!(code), "{}", r.text);
    assert_eq!(error["status"], json!(status), "{}", r.text);
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error.message: {}",
        r.text
    );
    assert!(
        error["timestamp"].as_str().is_some_and(is_timestamp),
        "error.timestamp: {}",
        r.text
    );
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "content-type of an error"
    );
    // SPEC §16: the error names the request, as the header does.
    assert!(
        r.header("x-request-id").is_some_and(|id| !id.is_empty()),
        "X-Request-Id on an error"
    );
    assert_eq!(
        error["request_id"].as_str(),
        r.header("x-request-id"),
        "error.request_id: {}",
        r.text
    );
}

/// Asserts that `v` is a JSON number whose exact text is `expected`.
pub fn assert_money(v: &Value, expected: &str, what: &str) {
    assert!(v.is_number(), "{what} must be a JSON number, got {v}");
    assert_eq!(v.to_string(), expected, "{what}");
}

/// Exact paise of a decimal text such as `12.34`, `5000` or `5000.5`.
pub fn paise(text: &str) -> u64 {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    assert!(frac.len() <= 2, "{text}");
    let frac = format!("{frac:0<2}");
    whole.parse::<u64>().unwrap() * 100 + frac.parse::<u64>().unwrap()
}

/// The shortest exact rendering of `paise`, as the server writes money.
pub fn rupees(paise: u64) -> String {
    let (whole, frac) = (paise / 100, paise % 100);
    match frac {
        0 => whole.to_string(),
        f if f % 10 == 0 => format!("{whole}.{}", f / 10),
        f => format!("{whole}.{f:02}"),
    }
}

/// `bps` basis points of `paise`, rounded half-up to the paisa.
pub fn fee_of(paise: u64, bps: u64) -> u64 {
    (paise * bps + 5_000) / 10_000
}

/// Every record of a listing (`path` may carry filters), following the
/// cursor with `limit`; asserts the pagination block on every page.
pub async fn list_all(server: &Server, path: &str, key: &str, limit: usize) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _page in 0..10_000 {
        let url = match &cursor {
            None => format!("{path}{sep}limit={limit}"),
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
        };
        let r = server.get(&url, key).await;
        assert_eq!(r.status, 200, "{url}: {}", r.text);
        assert_eq!(r.json["success"], json!(true));
        let items = r.data().as_array().expect("a list").clone();
        let p = &r.json["pagination"];
        assert_eq!(p["limit"], json!(limit), "{url}");
        assert!(items.len() <= limit, "{url}: page larger than limit");
        // has_more is exact: a page it promised is not empty.
        assert!(
            cursor.is_none() || !items.is_empty(),
            "{url}: has_more was true but the next page is empty"
        );
        out.extend(items);
        if p["has_more"] == json!(true) {
            cursor = Some(p["next_cursor"].as_str().expect("next_cursor").to_owned());
        } else {
            assert_eq!(p["next_cursor"], Value::Null, "{url}");
            return out;
        }
    }
    panic!("{path}: listing never ended");
}

/// The `id` of each record.
pub fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| v["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Asserts no id appears twice.
pub fn assert_unique(ids: &[String]) {
    let set: HashSet<&String> = ids.iter().collect();
    assert_eq!(set.len(), ids.len(), "duplicate ids in {ids:?}");
}

/// Creates a pay-in and returns its data, asserting 201.
pub async fn create_payin(server: &Server, key: &str, body: Value) -> Value {
    let r = server.post("/api/v1/payments", key, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.data().clone()
}

/// Creates a payout and returns its data, asserting 201.
pub async fn create_payout(server: &Server, key: &str, body: Value) -> Value {
    let r = server.post("/api/v1/payouts", key, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.data().clone()
}

/// The admin's manual settlement of a pay-in; returns the response.
pub async fn set_payment_status(server: &Server, id: &str, status: &str) -> Resp {
    server
        .post(
            &format!("/api/v1/payments/{id}/status"),
            &server.admin_key,
            json!({ "status": status, "reason": format!("manual {status}") }),
        )
        .await
}

/// The admin's manual settlement of a payout; returns the response.
pub async fn set_payout_status(server: &Server, id: &str, status: &str) -> Resp {
    server
        .post(
            &format!("/api/v1/payouts/{id}/status"),
            &server.admin_key,
            json!({ "status": status, "reason": format!("manual {status}") }),
        )
        .await
}

/// Funds a merchant: one pay-in of `amount`, completed by the admin.
pub async fn fund(server: &Server, key: &str, order_id: &str, amount: Value) -> Value {
    let p = create_payin(
        server,
        key,
        json!({ "order_id": order_id, "amount": amount, "payer": "Funder" }),
    )
    .await;
    let r = set_payment_status(server, p["id"].as_str().unwrap(), "completed").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.data().clone()
}

/// The balance `data` seen by `key` (with an optional query).
pub async fn balance(server: &Server, key: &str, query: &str) -> Value {
    let r = server.get(&format!("/api/v1/balance{query}"), key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.data().clone()
}

/// `available` and `held` of a balance, as exact text.
pub fn avail_held(b: &Value) -> (String, String) {
    (b["available"].to_string(), b["held"].to_string())
}

/// Waits until the listing at `path` has no pending record left.
pub async fn wait_none_pending(server: &Server, path: &str, key: &str, within: Duration) {
    let sep = if path.contains('?') { '&' } else { '?' };
    server
        .wait_for(
            &format!("{path}{sep}status=pending&limit=1"),
            key,
            within,
            |r| r.status == 200 && r.data().as_array().is_some_and(Vec::is_empty),
        )
        .await;
}

/// A raw request with a body of exact bytes and extra headers.
pub async fn raw(
    server: &Server,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: &[u8],
    headers: &[(&str, &str)],
) -> Resp {
    server
        .request_with(method, path, key, Some(body.to_vec()), headers)
        .await
}
