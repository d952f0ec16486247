//! Durability and concurrency, black-box against the real binary: 200
//! concurrent pay-ins on one merchant are all acknowledged, all listed once,
//! and settle to the exact balance; a SIGTERM restart exits 0, keeps every
//! acknowledged pay-in and payout (pending ones included, with their holds)
//! and settles the pending ones after the restart; a kill -9 in the middle
//! of concurrent pay-ins loses no acknowledged (201) pay-in, and the
//! settled balance is exactly the sum of the pay-ins that survived, which
//! are the acknowledged ones plus at most one in-flight request per client.

use crate::api_support::{
    assert_unique, balance, create_payin, create_payout, fee_of, fund, list_all, paise, rupees,
    wait_none_pending,
};
use crate::common::{payin_body, payout_body, Server};
use hyper::Method;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A varied amount with paise, as text: 1.01 .. 4999.99.
fn amount_for(i: u64) -> String {
    let paise = (i * 7_919) % 499_899 + 101;
    rupees(paise)
}

/// Σ amount, Σ fee and Σ net of `amounts` at `bps`, in paise.
fn sums(amounts: &[u64], bps: u64) -> (u64, u64, u64) {
    let gross: u64 = amounts.iter().sum();
    let fees: u64 = amounts.iter().map(|a| fee_of(*a, bps)).sum();
    (gross, fees, gross - fees)
}

/// Asserts the wallet's numbers after everything settled.
fn assert_settled(b: &Value, available: u64, payins: u64, fees: u64, payouts: u64) {
    assert_eq!(b["available"].to_string(), rupees(available), "available");
    assert_eq!(b["held"].to_string(), "0", "held");
    assert_eq!(b["pending_payins"].to_string(), "0", "pending_payins");
    assert_eq!(
        b["total_payins"].to_string(),
        rupees(payins),
        "total_payins"
    );
    assert_eq!(b["total_fees"].to_string(), rupees(fees), "total_fees");
    assert_eq!(
        b["total_payouts"].to_string(),
        rupees(payouts),
        "total_payouts"
    );
}

/// The newest ledger entry agrees with the balance.
async fn assert_ledger_matches(server: &Server, key: &str) {
    let b = balance(server, key, "").await;
    let r = server.get("/api/v1/reports/ledger?limit=1", key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let last = &r.data()[0];
    assert_eq!(last["available_after"], b["available"]);
    assert_eq!(last["held_after"], b["held"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_payins_on_one_merchant() {
    let server = Arc::new(Server::start(&[]));
    let (_a_id, a) = server
        .create_user(
            &server.admin_key,
            "merchant",
            json!({ "payin_fee_bps": 250 }),
        )
        .await;
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let (server, key) = (server.clone(), a.clone());
        tasks.push(tokio::spawn(async move {
            let amount = amount_for(i);
            let r = server
                .post(
                    "/api/v1/payments",
                    &key,
                    payin_body(&format!("CONC-{i}"), json!(amount)),
                )
                .await;
            assert_eq!(r.status, 201, "pay-in {i}: {}", r.text);
            assert_eq!(r.data()["amount"].to_string(), amount);
            r.data()["id"].as_str().unwrap().to_owned()
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.push(t.await.expect("task"));
    }
    assert_unique(&acked);

    // Every acknowledged pay-in is listed once, in one page or in many.
    let listed: Vec<String> = list_all(&server, "/api/v1/payments", &a, 500)
        .await
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed.len(), 200);
    assert_eq!(
        listed.iter().collect::<HashSet<_>>(),
        acked.iter().collect::<HashSet<_>>()
    );
    let mut sorted = listed.clone();
    sorted.sort_unstable_by(|x, y| y.cmp(x));
    assert_eq!(listed, sorted, "newest first");
    let paged: Vec<String> = list_all(&server, "/api/v1/payments", &a, 33)
        .await
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paged, listed);

    wait_none_pending(&server, "/api/v1/payments", &a, Duration::from_secs(60)).await;
    let completed = list_all(&server, "/api/v1/payments?status=completed", &a, 500).await;
    assert_eq!(completed.len(), 200);
    let amounts: Vec<u64> = (0..200).map(|i| paise(&amount_for(i))).collect();
    let (gross, fees, net) = sums(&amounts, 250);
    assert_settled(&balance(&server, &a, "").await, net, gross, fees, 0);
    let ledger = list_all(&server, "/api/v1/reports/ledger", &a, 500).await;
    assert_eq!(ledger.len(), 200);
    assert_ledger_matches(&server, &a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_restart_keeps_everything_and_settles_pending() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough that nothing settles before the stop.
    let mut first = Server::start_in(dir.path(), &["--settle-delay-ms", "10000"]);
    let admin = first.admin_key.clone();
    let (_a_id, a) = first
        .create_user(
            &admin,
            "merchant",
            json!({ "payin_fee_bps": 100, "payout_fee": 5 }),
        )
        .await;
    let started = Instant::now();
    fund(&first, &a, "FUND", json!(10000)).await;
    let payout = create_payout(&first, &a, payout_body(json!(1000))).await;
    let mut created: Vec<Value> = Vec::new();
    for i in 0..40u64 {
        created.push(
            create_payin(
                &first,
                &a,
                payin_body(&format!("T-{i}"), json!(amount_for(i))),
            )
            .await,
        );
    }
    let before = balance(&first, &a, "").await;
    assert_eq!(before["available"].to_string(), "8895");
    assert_eq!(before["held"].to_string(), "1005");
    let pending = list_all(&first, "/api/v1/payments?status=pending", &a, 500).await;
    assert_eq!(pending.len(), 40, "all still pending when stopped");
    let listed_before = list_all(&first, "/api/v1/payments", &a, 500).await;

    let status = first.terminate();
    assert!(status.success(), "SIGTERM exits 0: {status:?}");
    drop(first);

    let second = Server::start_in(dir.path(), &[]);
    let r = second.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, 200);
    // Before the first due time, the restarted server shows the same state.
    let listed_after = list_all(&second, "/api/v1/payments", &a, 500).await;
    if started.elapsed() < Duration::from_secs(9) {
        assert_eq!(listed_after, listed_before);
        assert_eq!(balance(&second, &a, "").await, before);
    }
    assert_eq!(listed_after.len(), 41);
    for p in &created {
        let r = second
            .get(
                &format!("/api/v1/payments/{}", p["id"].as_str().unwrap()),
                &a,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.data()["order_id"], p["order_id"]);
        assert_eq!(r.data()["amount"], p["amount"]);
        assert_eq!(r.data()["created_at"], p["created_at"]);
    }

    // After the restart the sandbox settles what was pending.
    wait_none_pending(&second, "/api/v1/payments", &a, Duration::from_secs(40)).await;
    wait_none_pending(&second, "/api/v1/payouts", &a, Duration::from_secs(40)).await;
    let x = second
        .get(
            &format!("/api/v1/payouts/{}", payout["id"].as_str().unwrap()),
            &a,
        )
        .await;
    assert_eq!(x.data()["status"], json!("processed"));
    let completed = list_all(&second, "/api/v1/payments?status=completed", &a, 500).await;
    assert_eq!(completed.len(), 41);
    let amounts: Vec<u64> = (0..40).map(|i| paise(&amount_for(i))).collect();
    let (gross, fees, net) = sums(&amounts, 100);
    // FUND: 10000 - 100 fee; payout: 1000 + 5 fee.
    assert_settled(
        &balance(&second, &a, "").await,
        990_000 - 100_500 + net,
        1_000_000 + gross,
        10_000 + 500 + fees,
        100_000,
    );
    assert_ledger_matches(&second, &a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_concurrent_payins_loses_nothing_acknowledged() {
    const WORKERS: u64 = 8;
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(Server::start_in(dir.path(), &[]));
    let admin = server.admin_key.clone();
    let (_a_id, a) = server
        .create_user(&admin, "merchant", json!({ "payin_fee_bps": 200 }))
        .await;
    let acked_count = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (server, key, count) = (server.clone(), a.clone(), acked_count.clone());
        workers.push(tokio::spawn(async move {
            // (order id, amount) sent, and (id, order id, amount) acknowledged.
            let mut sent: Vec<(String, String)> = Vec::new();
            let mut acked: Vec<(String, String, String)> = Vec::new();
            for i in 0..2_000u64 {
                let order = format!("K-{w}-{i}");
                let amount = amount_for(w * 10_000 + i);
                sent.push((order.clone(), amount.clone()));
                let body = payin_body(&order, json!(amount)).to_string().into_bytes();
                match server
                    .try_request_with(
                        Method::POST,
                        "/api/v1/payments",
                        Some(&key),
                        Some(body),
                        &[],
                    )
                    .await
                {
                    Ok(r) if r.status == 201 => {
                        assert_eq!(r.data()["order_id"], json!(order));
                        acked.push((r.data()["id"].as_str().unwrap().to_owned(), order, amount));
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => panic!("pay-in {order} answered {}: {}", r.status, r.text),
                    Err(_) => break, // the server is gone
                }
            }
            (sent, acked)
        }));
    }
    // Kill while the workers are busy: after 150 acknowledgements.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked_count.load(Ordering::SeqCst) < 150 {
        assert!(Instant::now() < deadline, "pay-ins too slow to start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = server.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut sent: HashMap<String, String> = HashMap::new();
    let mut acked: Vec<(String, String, String)> = Vec::new();
    for w in workers {
        let (s, k) = w.await.expect("worker");
        sent.extend(s);
        acked.extend(k);
    }
    drop(server); // reaps the killed process
    assert!(acked.len() >= 150);

    let second = Server::start_in(dir.path(), &[]);
    // Every acknowledged pay-in is there, unchanged.
    for (id, order, amount) in &acked {
        let r = second.get(&format!("/api/v1/payments/{id}"), &a).await;
        assert_eq!(r.status, 200, "acknowledged {order} lost: {}", r.text);
        assert_eq!(r.data()["order_id"], json!(order));
        assert_eq!(r.data()["amount"].to_string(), *amount);
    }
    wait_none_pending(&second, "/api/v1/payments", &a, Duration::from_secs(60)).await;
    let survived = list_all(&second, "/api/v1/payments", &a, 500).await;
    let survived_ids: HashSet<String> = survived
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(survived_ids.len(), survived.len());
    for (id, _, _) in &acked {
        assert!(survived_ids.contains(id));
    }
    // Whatever else survived was sent and in flight at the kill: at most
    // one per worker, and exactly as sent.
    let acked_orders: HashSet<&String> = acked.iter().map(|(_, o, _)| o).collect();
    let mut extra = 0;
    for p in &survived {
        let order = p["order_id"].as_str().unwrap().to_owned();
        let amount = sent.get(&order).expect("only pay-ins that were sent");
        assert_eq!(p["amount"].to_string(), *amount);
        assert_eq!(p["status"], json!("completed"));
        if !acked_orders.contains(&order) {
            extra += 1;
        }
    }
    assert!(
        extra <= WORKERS as usize,
        "{extra} unacknowledged survivors"
    );
    assert_eq!(survived.len(), acked.len() + extra);

    // The settled balance is exactly the sum of the surviving pay-ins.
    let amounts: Vec<u64> = survived
        .iter()
        .map(|p| paise(&p["amount"].to_string()))
        .collect();
    let (gross, fees, net) = sums(&amounts, 200);
    assert_settled(&balance(&second, &a, "").await, net, gross, fees, 0);
    let acked_amounts: Vec<u64> = acked.iter().map(|(_, _, a)| paise(a)).collect();
    assert!(sums(&acked_amounts, 200).2 <= net);
    assert_ledger_matches(&second, &a).await;
    let ledger = list_all(&second, "/api/v1/reports/ledger", &a, 500).await;
    assert_eq!(ledger.len(), survived.len(), "one credit per pay-in");
}
