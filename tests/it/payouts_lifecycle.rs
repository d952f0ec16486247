//! The payout lifecycle of SPEC §13, black-box: beneficiary checks with
//! `details.fields`, UPI payouts, the RTGS minimum, the UTR of processed
//! payouts, cancel, the sandbox's reversal, the queue for payouts that do
//! not fit (FIFO, paid out by a later pay-in, TTL) and batches.

use crate::api_support::{
    assert_error, balance, create_payin, create_payout, set_payment_status, set_payout_status,
    NO_AUTO_SETTLE,
};
use crate::common::{payout_body, Server};
use hyper::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// A merchant with a flat payout fee of 1.00, funded with `amount` by a
/// pay-in the admin completes.
async fn merchant(server: &Server, funds: u64) -> (String, String) {
    let (id, key) = server
        .create_user(&server.admin_key, "merchant", json!({ "payout_fee": 1 }))
        .await;
    if funds > 0 {
        credit(server, &key, &format!("FUND-{funds}"), funds).await;
    }
    (id, key)
}

/// A pay-in of `amount` rupees, completed by the admin.
async fn credit(server: &Server, key: &str, order_id: &str, amount: u64) {
    let p = create_payin(
        server,
        key,
        json!({ "order_id": order_id, "amount": amount, "payer": "Funder" }),
    )
    .await;
    let r = set_payment_status(server, p["id"].as_str().unwrap(), "completed").await;
    // On a server whose rail settles quickly it may have been first.
    let by_rail = r.status == 409 && r.json["error"]["details"]["from"] == "completed";
    assert!(r.status == 200 || by_rail, "{}", r.text);
}

fn bank(account: &str, ifsc: &str) -> Value {
    json!({ "name": "Ravi Kumar", "account_number": account, "ifsc": ifsc })
}

/// `available` and `held` of the caller's balance, as exact text.
async fn money(server: &Server, key: &str) -> (String, String) {
    let b = balance(server, key, "").await;
    (b["available"].to_string(), b["held"].to_string())
}

async fn payout_of(server: &Server, key: &str, id: &str) -> Value {
    let r = server.get(&format!("/api/v1/payouts/{id}"), key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.data().clone()
}

/// Waits until the payout `id` has `status`.
async fn wait_status(server: &Server, key: &str, id: &str, status: &str) -> Value {
    server
        .wait_for(
            &format!("/api/v1/payouts/{id}"),
            key,
            Duration::from_secs(20),
            |r| r.data()["status"] == status,
        )
        .await
        .data()
        .clone()
}

/// The caller's events of one type (one page, newest first).
async fn events(server: &Server, key: &str, event: &str) -> Vec<Value> {
    let r = server
        .get(&format!("/api/v1/webhooks/events?event={event}"), key)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.data().as_array().unwrap().clone()
}

fn event_for(events: &[Value], payout_id: &str) -> Option<Value> {
    events
        .iter()
        .find(|e| e["payload"]["payout_id"] == payout_id)
        .cloned()
}

/// Every account of the books sums to exactly zero.
async fn assert_books_balance(server: &Server) {
    let r = server
        .get("/api/v1/ledger/accounts", &server.admin_key)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for total in r.data()["totals"].as_array().unwrap() {
        assert_eq!(total["balance"].to_string(), "0", "{}", r.text);
    }
}

/// The kinds of the transfers that reference a record, oldest first.
async fn transfer_kinds(server: &Server, reference: &str) -> Vec<String> {
    let r = server
        .get(
            &format!("/api/v1/ledger/transfers?reference={reference}&limit=50"),
            &server.admin_key,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut kinds: Vec<String> = r
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap().to_owned())
        .collect();
    kinds.reverse();
    kinds
}

#[tokio::test]
async fn bad_beneficiaries_name_every_bad_field_and_change_nothing() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let (_id, key) = merchant(&server, 300_000).await;
    let before = money(&server, &key).await;
    let upi_with_bank = json!({ "name": "J", "vpa": "jane@okaxis", "account_number": "123456789", "ifsc": "HDFC0001234" });
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({ "amount": 10, "beneficiary": bank("12", "bad") }),
            vec!["beneficiary.account_number", "beneficiary.ifsc"],
        ),
        (
            json!({ "amount": 10, "beneficiary": bank("1234567890123456789", "HDFC0001234") }),
            vec!["beneficiary.account_number"],
        ),
        (
            json!({ "amount": 10, "beneficiary": bank("12345678a", "HDFC0001234") }),
            vec!["beneficiary.account_number"],
        ),
        (
            json!({ "amount": 10, "beneficiary": bank("123456789", "hdfc0001234") }),
            vec!["beneficiary.ifsc"],
        ),
        (
            json!({ "amount": 10, "beneficiary": bank("123456789", "HDFC1001234") }),
            vec!["beneficiary.ifsc"],
        ),
        (
            json!({ "amount": 10, "mode": "UPI", "beneficiary": upi_with_bank }),
            vec!["beneficiary.account_number", "beneficiary.ifsc"],
        ),
        (
            json!({ "amount": 10, "mode": "UPI", "beneficiary": { "name": "J", "vpa": "jane" } }),
            vec!["beneficiary.vpa"],
        ),
        (
            json!({ "amount": 10, "mode": "UPI", "beneficiary": { "name": "J", "vpa": "ja@ne@upi" } }),
            vec!["beneficiary.vpa"],
        ),
        (
            json!({ "amount": 10, "mode": "IMPS", "beneficiary": { "name": "J", "vpa": "jane@okaxis", "account_number": "123456789", "ifsc": "HDFC0001234" } }),
            vec!["beneficiary.vpa"],
        ),
        (
            json!({ "amount": "199999.99", "mode": "RTGS", "beneficiary": bank("123456789", "HDFC0001234") }),
            vec!["amount"],
        ),
        (
            json!({ "amount": 10, "mode": "CASH", "beneficiary": bank("123456789", "HDFC0001234") }),
            vec!["mode"],
        ),
    ];
    for (body, fields) in cases {
        let r = server.post("/api/v1/payouts", &key, body.clone()).await;
        assert_error(&r, 400, "invalid_request");
        assert_eq!(
            r.json["error"]["details"]["fields"],
            json!(fields),
            "{body}"
        );
    }
    // A UPI payout without its VPA: missing, not malformed.
    let r = server
        .post(
            "/api/v1/payouts",
            &key,
            json!({ "amount": 10, "mode": "UPI", "beneficiary": { "name": "J" } }),
        )
        .await;
    assert_error(&r, 400, "missing_fields");
    assert_eq!(
        r.json["error"]["details"]["fields"],
        json!(["beneficiary.vpa"])
    );
    assert_eq!(money(&server, &key).await, before, "nothing moved");
    let r = server.get("/api/v1/payouts", &key).await;
    assert_eq!(r.data().as_array().unwrap().len(), 0, "nothing stored");

    // Valid ones: RTGS at its minimum, and UPI (its view shows the VPA).
    let rtgs = create_payout(
        &server,
        &key,
        json!({ "amount": 200000, "mode": "RTGS", "beneficiary": bank("123456789", "HDFC0001234") }),
    )
    .await;
    assert_eq!(rtgs["mode"], "RTGS");
    assert_eq!(rtgs["beneficiary"]["account_number"], "XXXXX6789");
    let upi = create_payout(
        &server,
        &key,
        json!({ "amount": 10, "mode": "UPI", "beneficiary": { "name": "Jane", "vpa": "jane.doe@okaxis" } }),
    )
    .await;
    assert_eq!(upi["mode"], "UPI");
    assert_eq!(
        upi["beneficiary"],
        json!({ "name": "Jane", "account_number": null, "ifsc": null, "vpa": "jane.doe@okaxis" })
    );
    assert_eq!(
        payout_of(&server, &key, upi["id"].as_str().unwrap()).await["beneficiary"]["vpa"],
        "jane.doe@okaxis"
    );
    let r = set_payout_status(&server, upi["id"].as_str().unwrap(), "processed").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_books_balance(&server).await;
}

#[tokio::test]
async fn a_processed_payout_carries_a_utr_in_record_view_and_event() {
    let server = Server::start(&[]);
    let (_id, key) = merchant(&server, 1_000).await;
    let po = create_payout(&server, &key, payout_body(json!(100))).await;
    assert_eq!(po["utr"], Value::Null, "pending: no bank reference yet");
    let id = po["id"].as_str().unwrap();
    let done = wait_status(&server, &key, id, "processed").await;
    let utr = done["utr"].as_str().expect("a utr").to_owned();
    assert!(
        (12..=22).contains(&utr.len())
            && utr
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()),
        "{utr}"
    );
    let found = server
        .wait_for(
            "/api/v1/webhooks/events?event=payout.processed",
            &key,
            Duration::from_secs(20),
            |r| r.data().as_array().is_some_and(|a| !a.is_empty()),
        )
        .await;
    let event = event_for(found.data().as_array().unwrap(), id).expect("payout.processed");
    assert_eq!(event["payload"]["utr"], json!(utr));
    // A rejected payout has none.
    let mut body = payout_body(json!(10));
    body["beneficiary"]["account_number"] = json!("000000000000");
    let rejected = create_payout(&server, &key, body).await;
    let rejected = wait_status(&server, &key, rejected["id"].as_str().unwrap(), "rejected").await;
    assert_eq!(rejected["utr"], Value::Null);
}

#[tokio::test]
async fn cancel_releases_pending_and_queued_payouts_and_refuses_the_rest() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let (_id, key) = merchant(&server, 1_000).await;
    let po = create_payout(&server, &key, payout_body(json!(100))).await;
    let id = po["id"].as_str().unwrap().to_owned();
    assert_eq!(
        money(&server, &key).await,
        ("899".to_owned(), "101".to_owned())
    );
    let r = server
        .post(&format!("/api/v1/payouts/{id}/cancel"), &key, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["status"], "cancelled");
    assert_eq!(
        money(&server, &key).await,
        ("1000".to_owned(), "0".to_owned()),
        "the hold came back"
    );
    assert_eq!(
        transfer_kinds(&server, &id).await,
        ["payout_hold", "payout_release"]
    );
    assert!(event_for(&events(&server, &key, "payout.cancelled").await, &id).is_some());
    // Twice: the second is refused and moves nothing.
    let r = server
        .post(&format!("/api/v1/payouts/{id}/cancel"), &key, json!({}))
        .await;
    assert_error(&r, 409, "invalid_status_transition");
    assert_eq!(money(&server, &key).await.0, "1000");

    // A processed payout cannot be cancelled.
    let done = create_payout(&server, &key, payout_body(json!(50))).await;
    let done_id = done["id"].as_str().unwrap();
    assert_eq!(
        set_payout_status(&server, done_id, "processed")
            .await
            .status,
        200
    );
    let r = server
        .post(
            &format!("/api/v1/payouts/{done_id}/cancel"),
            &key,
            json!({}),
        )
        .await;
    assert_error(&r, 409, "invalid_status_transition");

    // A queued payout: no hold to release, its place in the queue goes.
    let (avail, held) = money(&server, &key).await;
    let mut body = payout_body(json!(5_000));
    body["queue_if_low_balance"] = json!(true);
    let queued = create_payout(&server, &key, body).await;
    assert_eq!(queued["status"], "queued");
    let qid = queued["id"].as_str().unwrap();
    assert_eq!(money(&server, &key).await, (avail.clone(), held.clone()));
    let r = server
        .post(
            &format!("/api/v1/payouts/{qid}/cancel"),
            &key,
            json!({ "reason": "changed my mind" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["status"], "cancelled");
    assert_eq!(r.data()["reason"], "changed my mind");
    assert_eq!(money(&server, &key).await, (avail, held));
    assert!(transfer_kinds(&server, qid).await.is_empty());
    assert!(event_for(&events(&server, &key, "payout.cancelled").await, qid).is_some());
    // Once cancelled it stays so: a later credit does not pay it out.
    credit(&server, &key, "LATER", 10_000).await;
    assert_eq!(payout_of(&server, &key, qid).await["status"], "cancelled");
    // Nobody else's: another merchant does not see it.
    let (_other, other_key) = merchant(&server, 0).await;
    let r = server
        .post(
            &format!("/api/v1/payouts/{id}/cancel"),
            &other_key,
            json!({}),
        )
        .await;
    assert_error(&r, 404, "not_found");
    let r = server.get("/api/v1/payouts?status=cancelled", &key).await;
    assert_eq!(r.data().as_array().unwrap().len(), 2, "{}", r.text);
    assert_books_balance(&server).await;
}

#[tokio::test]
async fn the_sandbox_reverses_payouts_to_its_magic_account_once() {
    let server = Server::start(&[]);
    let (_id, key) = merchant(&server, 1_000).await;
    let mut body = payout_body(json!(100));
    body["beneficiary"]["account_number"] = json!("000000000001");
    let po = create_payout(&server, &key, body).await;
    let id = po["id"].as_str().unwrap();
    let reversed = wait_status(&server, &key, id, "reversed").await;
    assert!(reversed["utr"].as_str().is_some(), "it was processed first");
    // The amount came back; the fee of 1.00 stays earned.
    assert_eq!(
        money(&server, &key).await,
        ("999".to_owned(), "0".to_owned())
    );
    assert_eq!(
        transfer_kinds(&server, id).await,
        [
            "payout_hold",
            "payout_settle",
            "payout_fee",
            "payout_reverse"
        ]
    );
    let found = server
        .wait_for(
            "/api/v1/webhooks/events?event=payout.reversed",
            &key,
            Duration::from_secs(20),
            |r| r.data().as_array().is_some_and(|a| !a.is_empty()),
        )
        .await;
    let event = event_for(found.data().as_array().unwrap(), id).expect("payout.reversed");
    assert_eq!(event["payload"]["status"], "reversed");
    // Exactly once: a while later nothing more happened.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(transfer_kinds(&server, id).await.len(), 4);
    assert_eq!(events(&server, &key, "payout.reversed").await.len(), 1);
    let r = server
        .post(&format!("/api/v1/payouts/{id}/cancel"), &key, json!({}))
        .await;
    assert_error(&r, 409, "invalid_status_transition");
    assert_books_balance(&server).await;
}

#[tokio::test]
async fn queued_payouts_are_paid_out_in_order_when_money_comes_in() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let (_id, key) = merchant(&server, 100).await;
    let queue = |amount: u64, reference: &str| {
        let mut body = payout_body(json!(amount));
        body["queue_if_low_balance"] = json!(true);
        body["reference_id"] = json!(reference);
        body
    };
    // Without asking, an over-balance payout still fails.
    let r = server
        .post("/api/v1/payouts", &key, payout_body(json!(500)))
        .await;
    assert_error(&r, 422, "insufficient_balance");
    // A (500 + 1) does not fit: queued. B (10 + 1) would fit, but waits
    // behind A (strict FIFO).
    let a = create_payout(&server, &key, queue(500, "Q-A")).await;
    let b = create_payout(&server, &key, queue(10, "Q-B")).await;
    assert_eq!(
        (a["status"].as_str(), b["status"].as_str()),
        (Some("queued"), Some("queued"))
    );
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    assert!(event_for(&events(&server, &key, "payout.queued").await, a).is_some());
    assert_eq!(
        money(&server, &key).await,
        ("100".to_owned(), "0".to_owned())
    );
    // 300 more: 400 available, A still does not fit, so B waits too.
    credit(&server, &key, "IN-1", 300).await;
    assert_eq!(payout_of(&server, &key, a).await["status"], "queued");
    assert_eq!(payout_of(&server, &key, b).await["status"], "queued");
    // 200 more: 600 covers A (501) and then B (11), in the credit's write.
    credit(&server, &key, "IN-2", 200).await;
    assert_eq!(payout_of(&server, &key, a).await["status"], "pending");
    assert_eq!(payout_of(&server, &key, b).await["status"], "pending");
    assert_eq!(
        money(&server, &key).await,
        ("88".to_owned(), "512".to_owned())
    );
    assert_eq!(transfer_kinds(&server, a).await, ["payout_hold"]);
    // And from there the rail takes them as any payout.
    for id in [a, b] {
        assert_eq!(
            set_payout_status(&server, id, "processed").await.status,
            200
        );
    }
    assert_books_balance(&server).await;
}

#[tokio::test]
async fn a_queued_payout_goes_to_the_rail_when_a_payin_completes() {
    let server = Server::start(&["--settle-delay-ms", "100"]);
    let (_id, key) = merchant(&server, 0).await;
    let mut body = payout_body(json!(250));
    body["queue_if_low_balance"] = json!(true);
    let po = create_payout(&server, &key, body).await;
    assert_eq!(po["status"], "queued");
    let id = po["id"].as_str().unwrap();
    // The rail completes the pay-in; the queued payout is then held and
    // processed by the rail, with no further call.
    create_payin(
        &server,
        &key,
        json!({ "order_id": "IN", "amount": 1000, "payer": "P" }),
    )
    .await;
    let done = wait_status(&server, &key, id, "processed").await;
    assert!(done["utr"].as_str().is_some());
    assert_eq!(
        money(&server, &key).await,
        ("749".to_owned(), "0".to_owned())
    );
    assert_books_balance(&server).await;
}

#[tokio::test]
async fn a_queued_payout_is_cancelled_after_the_queue_ttl() {
    let server = Server::start(&[
        "--settle-delay-ms",
        "3600000",
        "--payout-queue-ttl-secs",
        "1",
    ]);
    let (_id, key) = merchant(&server, 10).await;
    let mut body = payout_body(json!(500));
    body["queue_if_low_balance"] = json!(true);
    let po = create_payout(&server, &key, body).await;
    let id = po["id"].as_str().unwrap();
    let cancelled = wait_status(&server, &key, id, "cancelled").await;
    assert!(cancelled["reason"]
        .as_str()
        .is_some_and(|r| r.contains("TTL")));
    assert!(event_for(&events(&server, &key, "payout.cancelled").await, id).is_some());
    // It no longer waits: money that comes in stays available.
    credit(&server, &key, "LATE", 1_000).await;
    assert_eq!(payout_of(&server, &key, id).await["status"], "cancelled");
    assert_eq!(money(&server, &key).await.0, "1010");
    assert_books_balance(&server).await;
}

/// `tijori_storage_write_sets_total` as the server reports it.
async fn write_sets(server: &Server) -> u64 {
    let r = server.request(Method::GET, "/metrics", None, None).await;
    r.text
        .lines()
        .find(|l| l.starts_with("tijori_storage_write_sets_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn item(amount: u64, reference: &str) -> Value {
    let mut body = payout_body(json!(amount));
    body["reference_id"] = json!(reference);
    body
}

#[tokio::test]
async fn a_batch_answers_each_item_and_commits_the_valid_ones() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let (_id, key) = merchant(&server, 1_000).await;
    let mut bad_ifsc = item(10, "B-2");
    bad_ifsc["beneficiary"]["ifsc"] = json!("bad");
    let mut queued = item(5_000, "B-5");
    queued["queue_if_low_balance"] = json!(true);
    let no_reference = payout_body(json!(10));
    let items = json!([
        item(100, "B-1"),
        bad_ifsc,
        no_reference,
        item(5_000, "B-4"),
        queued,
        item(10, "B-1"),
        item(50, "B-7"),
    ]);
    let r = server
        .post("/api/v1/payouts/batch", &key, json!({ "payouts": items }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["success"], json!(true));
    let results = r.data()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 7);
    let status: Vec<u64> = results
        .iter()
        .map(|x| x["status"].as_u64().unwrap())
        .collect();
    assert_eq!(status, [201, 400, 400, 422, 201, 409, 201], "{}", r.text);
    for (i, x) in results.iter().enumerate() {
        assert_eq!(x["index"], json!(i));
    }
    assert_eq!(results[0]["payout"]["status"], "pending");
    assert_eq!(results[1]["error"]["code"], "invalid_request");
    assert_eq!(
        results[1]["error"]["details"]["fields"],
        json!(["beneficiary.ifsc"])
    );
    assert_eq!(results[2]["error"]["code"], "missing_fields");
    assert_eq!(
        results[2]["error"]["details"]["fields"],
        json!(["reference_id"])
    );
    assert_eq!(results[3]["error"]["code"], "insufficient_balance");
    assert_eq!(results[4]["payout"]["status"], "queued");
    assert_eq!(results[5]["error"]["code"], "duplicate_order_id");
    // B-7 asked for no queue and fits: held at once.
    assert_eq!(results[6]["payout"]["status"], "pending");
    // 101 + 51 held; the failed items left nothing behind.
    assert_eq!(
        money(&server, &key).await,
        ("848".to_owned(), "152".to_owned())
    );
    let all = server.get("/api/v1/payouts?limit=50", &key).await;
    assert_eq!(all.data().as_array().unwrap().len(), 3);
    for x in [&results[0], &results[4], &results[6]] {
        let id = x["payout"]["id"].as_str().unwrap();
        assert_eq!(payout_of(&server, &key, id).await["id"], json!(id));
    }
    assert_books_balance(&server).await;
}

#[tokio::test]
async fn a_batch_is_one_write_per_wallet_and_bounded() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let (_id, key) = merchant(&server, 100_000).await;
    // Wait for the background writes of the funding (its webhook delivery
    // record) to settle: the count holds still for half a second.
    let mut before = write_sets(&server).await;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = write_sets(&server).await;
        if now == before {
            break;
        }
        before = now;
    }
    let items: Vec<Value> = (0..200).map(|i| item(10, &format!("W-{i}"))).collect();
    let r = server
        .post("/api/v1/payouts/batch", &key, json!({ "payouts": items }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.data()["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["status"] == 201));
    let after = write_sets(&server).await;
    assert_eq!(
        after - before,
        1,
        "200 payouts of one wallet, one write set"
    );
    assert_eq!(
        money(&server, &key).await,
        ("97800".to_owned(), "2200".to_owned())
    );

    // More than 1,000 items: refused whole.
    let items: Vec<Value> = (0..1_001).map(|i| item(1, &format!("X-{i}"))).collect();
    let r = server
        .post("/api/v1/payouts/batch", &key, json!({ "payouts": items }))
        .await;
    assert_error(&r, 400, "invalid_request");
    assert_eq!(r.json["error"]["details"]["fields"], json!(["payouts"]));
    // Past 1 MiB: 413; this route alone reads more than 64 KiB.
    let padded = |n: usize, pad: usize| -> Value {
        let items: Vec<Value> = (0..n)
            .map(|i| {
                let mut x = item(1, &format!("P-{n}-{i}"));
                x["purpose"] = json!("p".repeat(200));
                x["note"] = json!("n".repeat(pad));
                x
            })
            .collect();
        json!({ "payouts": items })
    };
    let big = padded(1_000, 1_000);
    assert!(big.to_string().len() > 1024 * 1024);
    let r = server.post("/api/v1/payouts/batch", &key, big).await;
    assert_error(&r, 413, "payload_too_large");
    let medium = padded(300, 300);
    assert!(medium.to_string().len() > 64 * 1024);
    let r = server.post("/api/v1/payouts/batch", &key, medium).await;
    assert_eq!(r.status, 200, "{}", &r.text[..r.text.len().min(500)]);
    assert_eq!(
        money(&server, &key).await.1,
        "2800",
        "300 more of 2.00 held"
    );
    assert_books_balance(&server).await;
}

#[tokio::test]
async fn the_admin_cancels_and_reverses_by_hand_and_lists_by_the_new_statuses() {
    let server = Server::start(&NO_AUTO_SETTLE);
    let (_id, key) = merchant(&server, 1_000).await;
    let po = create_payout(&server, &key, payout_body(json!(100))).await;
    let id = po["id"].as_str().unwrap();
    // Reversing a pending payout is refused; once processed it is allowed.
    assert_error(
        &set_payout_status(&server, id, "reversed").await,
        409,
        "invalid_status_transition",
    );
    assert_eq!(
        set_payout_status(&server, id, "processed").await.status,
        200
    );
    let r = set_payout_status(&server, id, "reversed").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["status"], "reversed");
    assert_eq!(r.data()["reason"], "manual reversed");
    assert_eq!(
        transfer_kinds(&server, id).await,
        [
            "payout_hold",
            "payout_settle",
            "payout_fee",
            "payout_reverse"
        ]
    );
    assert_eq!(money(&server, &key).await.0, "999");
    // A queued payout: the admin cancels it; `processed` is refused.
    let mut body = payout_body(json!(5_000));
    body["queue_if_low_balance"] = json!(true);
    let queued = create_payout(&server, &key, body).await;
    let qid = queued["id"].as_str().unwrap();
    let r = server.get("/api/v1/payouts?status=queued", &key).await;
    assert_eq!(r.data().as_array().unwrap().len(), 1, "{}", r.text);
    assert_error(
        &set_payout_status(&server, qid, "processed").await,
        409,
        "invalid_status_transition",
    );
    let r = set_payout_status(&server, qid, "cancelled").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["status"], "cancelled");
    for (status, n) in [("queued", 0), ("cancelled", 1), ("reversed", 1)] {
        let r = server
            .get(&format!("/api/v1/payouts?status={status}"), &key)
            .await;
        assert_eq!(
            r.data().as_array().unwrap().len(),
            n,
            "{status}: {}",
            r.text
        );
    }
    let r = server.get("/api/v1/payouts?status=lost", &key).await;
    assert_error(&r, 400, "invalid_request");
    // A manager cannot cancel.
    let (_mgr, mgr_key) = server
        .create_user(&server.admin_key, "manager", json!({}))
        .await;
    let r = server
        .post(
            &format!("/api/v1/payouts/{qid}/cancel"),
            &mgr_key,
            json!({}),
        )
        .await;
    assert_eq!(r.status.as_u16() / 100, 4, "{}", r.text);
    assert_books_balance(&server).await;
}

/// The value of an unlabelled gauge in /metrics.
async fn gauge(server: &Server, name: &str) -> f64 {
    let r = server.request(Method::GET, "/metrics", None, None).await;
    r.text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

/// Polls a gauge until it reads `want` (the rail hears of queue changes
/// just after the write that makes them).
async fn wait_gauge(server: &Server, name: &str, want: f64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = gauge(server, name).await;
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} = {got}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_queued_payouts_gauges_follow_the_queues_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &NO_AUTO_SETTLE);
    assert_eq!(gauge(&server, "tijori_payouts_queued").await, 0.0);
    assert_eq!(
        gauge(&server, "tijori_payouts_oldest_queued_age_seconds").await,
        0.0
    );
    let (_id, key) = merchant(&server, 10).await;
    let mut ids = Vec::new();
    for (i, amount) in [500, 600, 700].into_iter().enumerate() {
        let mut body = payout_body(json!(amount));
        body["queue_if_low_balance"] = json!(true);
        body["reference_id"] = json!(format!("G-{i}"));
        let p = create_payout(&server, &key, body).await;
        assert_eq!(p["status"], "queued");
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    wait_gauge(&server, "tijori_payouts_queued", 3.0).await;
    // A queued payout cancelled leaves the count.
    let r = server
        .post(
            &format!("/api/v1/payouts/{}/cancel", ids[2]),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    wait_gauge(&server, "tijori_payouts_queued", 2.0).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(gauge(&server, "tijori_payouts_oldest_queued_age_seconds").await >= 1.0);

    // After a restart the count comes back from storage, not from zero.
    server.terminate();
    let server = Server::start_in(dir.path(), &NO_AUTO_SETTLE);
    assert_eq!(gauge(&server, "tijori_payouts_queued").await, 2.0);
    // A credit pays the head out (501 fits, 601 does not yet), then the rest.
    credit(&server, &key, "G-IN-1", 500).await;
    wait_gauge(&server, "tijori_payouts_queued", 1.0).await;
    credit(&server, &key, "G-IN-2", 700).await;
    wait_gauge(&server, "tijori_payouts_queued", 0.0).await;
    assert_eq!(
        gauge(&server, "tijori_payouts_oldest_queued_age_seconds").await,
        0.0
    );
    assert_books_balance(&server).await;
}
