//! The README's quick start, as a test: admin creates a merchant, the
//! merchant creates a pay-in, it completes, the balance shows it.

use crate::common::{payin_body, Server};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn quick_start_flow() {
    let server = Server::start(&[]);
    let admin = server.admin_key.clone();
    let (_merchant, key) = server
        .create_user(&admin, "merchant", json!({ "payin_fee_bps": 200 }))
        .await;
    let r = server
        .post("/api/v1/payments", &key, payin_body("ORDER-1", json!(5000)))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.data()["status"], "pending");
    let id = r.data()["id"].as_str().unwrap().to_owned();
    server
        .wait_for(
            &format!("/api/v1/payments/{id}"),
            &key,
            Duration::from_secs(10),
            |r| r.data()["status"] == "completed",
        )
        .await;
    let b = server.get("/api/v1/balance", &key).await;
    assert_eq!(b.status, 200);
    assert_eq!(b.data()["available"].to_string(), "4900");
    assert_eq!(b.data()["total_fees"].to_string(), "100");
    assert_eq!(b.header("x-ratelimit-limit"), Some("6000"));
}
