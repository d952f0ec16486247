//! Daily statements (SPEC §15), black-box. Time is moved with libfaketime
//! (Debian `faketime`): a server started at 23:59:50 two days ago (faked)
//! takes pay-ins, stops; a server started on the same dir at the real time
//! writes the closed days at start. Without libfaketime those tests say so
//! and check only what holds today (no statement before a day closes).

use crate::common::{payin_body, Server, ADMIN_KEY};
use domain::statement::Date;
use domain::Timestamp;
use hyper::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const FAKETIME_LIBS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
];

/// libfaketime's library, if installed; `.ci/run` sets
/// `TIJORI_REQUIRE_FAKETIME` so that CI fails rather than skips without it.
fn libfaketime() -> Option<&'static str> {
    let lib = FAKETIME_LIBS
        .iter()
        .copied()
        .find(|p| Path::new(p).exists());
    if lib.is_none() && std::env::var_os("TIJORI_REQUIRE_FAKETIME").is_some() {
        panic!("TIJORI_REQUIRE_FAKETIME is set but libfaketime is not installed (apt-get install faketime)");
    }
    lib
}

/// A server on `dir` whose wall clock starts at `at` and runs on.
fn start_faked(dir: &Path, lib: &str, at: &str) -> Server {
    let faketime = format!("@{at}");
    Server::start_in_env(
        dir,
        &[],
        &[
            ("LD_PRELOAD", lib),
            ("FAKETIME", &faketime),
            // Timers and timeouts keep the real monotonic clock.
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ("TZ", "UTC"),
        ],
    )
}

/// The SHA-256 of a statement's JSON without `hash`, keys sorted, no
/// whitespace, computed here independently of the server's code.
fn client_hash(statement: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(map) => {
                let ordered: BTreeMap<&String, Value> =
                    map.iter().map(|(k, v)| (k, sorted(v))).collect();
                let mut out = serde_json::Map::new();
                for (k, v) in ordered {
                    out.insert(k.clone(), v);
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }
    let mut body = statement.clone();
    body.as_object_mut().unwrap().remove("hash");
    let text = serde_json::to_string(&sorted(&body)).unwrap();
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn today() -> Date {
    Date::of(Timestamp::now())
}

/// The faked day of the pay-ins: the day before yesterday, so that two
/// days have closed by the time the real-time server starts.
fn first_day() -> Date {
    today().prev().prev()
}

/// Every day from `first` to yesterday, newest first.
fn closed_days_since(first: Date) -> Vec<String> {
    let mut days = Vec::new();
    let mut d = today().prev();
    while d >= first {
        days.push(d.to_string());
        d = d.prev();
    }
    days
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Opens a stopped server's store in this process, changes it with the
/// test-only hooks, and closes it.
async fn tamper(dir: &Path, change: impl AsyncFnOnce(&storage::Store)) {
    let store = storage::Store::open(dir, storage::StoreConfig::default()).unwrap();
    change(&store).await;
    store.close();
    drop(store);
    // fjall lets go of its lock file once its workers are gone.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

struct World {
    dir: tempfile::TempDir,
    manager_key: String,
    merchant: String,
    merchant_key: String,
    api_user_key: String,
    other_merchant: String,
    other_key: String,
    net_total: u64,
}

/// Pay-ins at 23:59:5x two days ago (faked), then a real-time server that
/// writes the closed days at start.
async fn world(lib: &str) -> (World, Server) {
    let dir = tempfile::tempdir().unwrap();
    let mut faked = start_faked(dir.path(), lib, &format!("{} 23:59:50", first_day()));
    let (manager, manager_key) = faked.create_user(ADMIN_KEY, "manager", json!({})).await;
    let (merchant, merchant_key) = faked
        .create_user(&manager_key, "merchant", json!({ "parent_id": manager }))
        .await;
    let (_, api_user_key) = faked
        .create_user(&merchant_key, "api_user", json!({}))
        .await;
    let (other_merchant, other_key) = faked.create_user(ADMIN_KEY, "merchant", json!({})).await;
    let mut net_total = 0;
    for (i, amount) in [json!(100), json!("50.50")].into_iter().enumerate() {
        let r = faked
            .post(
                "/api/v1/payments",
                &merchant_key,
                payin_body(&format!("st-{i}"), amount),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let ledger = faked
        .wait_for(
            "/api/v1/reports/ledger",
            &merchant_key,
            Duration::from_secs(10),
            |r| r.data().as_array().is_some_and(|a| a.len() == 2),
        )
        .await;
    for line in ledger.data().as_array().unwrap() {
        assert!(
            line["created_at"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{}T23:59:", first_day())),
            "faketime did not move the server's clock: {line}"
        );
        let text = line["amount"].to_string();
        net_total += paise(&text);
    }
    assert!(faked.terminate().success());
    let server = Server::start_in(dir.path(), &[]);
    let w = World {
        dir,
        manager_key,
        merchant,
        merchant_key,
        api_user_key,
        other_merchant,
        other_key,
        net_total,
    };
    (w, server)
}

/// Exact paise of a JSON money number's text (`150`, `49.5`, `12.34`).
fn paise(text: &str) -> u64 {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let frac = format!("{frac:0<2}");
    whole.parse::<u64>().unwrap() * 100 + frac[..2].parse::<u64>().unwrap()
}

fn amount(text: &Value) -> u64 {
    paise(text.as_str().expect("amounts are strings"))
}

#[tokio::test]
async fn closed_days_are_written_listed_chained_and_verified() {
    let Some(lib) = libfaketime() else {
        eprintln!("libfaketime is not installed (Debian package `faketime`): skipping");
        return;
    };
    let (w, server) = world(lib).await;
    let expected = closed_days_since(first_day());
    let list_path = "/api/v1/statements?limit=500";
    let listed = server
        .wait_for(list_path, &w.merchant_key, Duration::from_secs(20), |r| {
            r.data()
                .as_array()
                .is_some_and(|a| a.len() == expected.len())
        })
        .await;
    let items = listed.data().as_array().unwrap().clone();
    let dates: Vec<&str> = items.iter().map(|s| s["date"].as_str().unwrap()).collect();
    assert_eq!(
        dates, expected,
        "every closed day, quiet ones too, newest first"
    );
    assert_eq!(listed.json["pagination"]["has_more"], json!(false));
    let oldest = items.last().unwrap();
    assert_eq!(oldest["merchant_id"], json!(w.merchant));
    assert_eq!(oldest["prev_hash"], json!("0".repeat(64)));
    assert_eq!(oldest["opening_available"], json!("0.00"));
    assert_eq!(oldest["transfer_count"], json!(2));
    assert_eq!(
        (&oldest["first_seq"], &oldest["last_seq"]),
        (&json!(1), &json!(2))
    );
    assert_eq!(amount(&oldest["totals"]["payin_credit"]), w.net_total);
    assert_eq!(oldest["totals"].as_object().unwrap().len(), 1);
    assert_eq!(amount(&oldest["closing_available"]), w.net_total);
    assert_eq!(oldest["closing_held"], json!("0.00"));
    for pair in items.windows(2) {
        let (newer, older) = (&pair[0], &pair[1]);
        assert_eq!(newer["prev_hash"], older["hash"]);
        assert_eq!(newer["opening_available"], older["closing_available"]);
        assert_eq!(newer["opening_held"], older["closing_held"]);
        // Quiet after the 30th.
        assert_eq!(newer["transfer_count"], json!(0));
        assert_eq!(
            (&newer["first_seq"], &newer["last_seq"]),
            (&Value::Null, &Value::Null)
        );
        assert_eq!(newer["totals"], json!({}));
    }
    for s in &items {
        assert_eq!(s["hash"].as_str().unwrap(), client_hash(s), "{s}");
    }

    // One day, JSON and CSV; today and non-dates are not found.
    let one = server
        .get(
            &format!("/api/v1/statements/{}", first_day()),
            &w.merchant_key,
        )
        .await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    assert_eq!(one.data(), oldest);
    let csv = server
        .get(
            &format!("/api/v1/statements/{}?format=csv", first_day()),
            &w.merchant_key,
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(lines.len(), 2, "{}", csv.text);
    assert!(lines[0].starts_with("merchant_id,date,opening_available,"));
    assert!(lines[0].contains(",payin_credit,payin_fee,"));
    assert!(lines[1].starts_with(&format!("{},{},0.00,0.00,", w.merchant, first_day())));
    assert!(lines[1].ends_with(oldest["hash"].as_str().unwrap()));
    for path in [
        format!("/api/v1/statements/{}", today()),
        format!("/api/v1/statements/{}", first_day().prev()),
        "/api/v1/statements/2026-13-01".into(),
        "/api/v1/statements/nope".into(),
    ] {
        let r = server.get(&path, &w.merchant_key).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }

    // Pages: newest first, the cursor a date.
    let first = server
        .get(
            &format!("/api/v1/statements?limit=1&from={}", first_day()),
            &w.merchant_key,
        )
        .await;
    assert_eq!(first.data().as_array().unwrap().len(), 1);
    if expected.len() > 1 {
        assert_eq!(first.json["pagination"]["has_more"], json!(true));
        let cursor = first.json["pagination"]["next_cursor"].as_str().unwrap();
        assert_eq!(cursor, expected[0]);
        let next = server
            .get(
                &format!("/api/v1/statements?limit=1&cursor={cursor}"),
                &w.merchant_key,
            )
            .await;
        assert_eq!(next.data()[0]["date"], json!(expected[1]));
    }
    let window = server
        .get(
            &format!(
                "/api/v1/statements?from={}&to={}",
                first_day(),
                first_day().next()
            ),
            &w.merchant_key,
        )
        .await;
    let dates: Vec<&Value> = window
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["date"])
        .collect();
    assert_eq!(dates, [&json!(first_day().to_string())], "to is exclusive");

    // Verify: the chain matches the ledger.
    let verdict = server
        .get("/api/v1/statements/verify", &w.merchant_key)
        .await;
    assert_eq!(verdict.status, StatusCode::OK, "{}", verdict.text);
    assert_eq!(verdict.data(), &json!({ "ok": true, "first_bad": null }));
    drop(server);
    drop(w.dir);
}

#[tokio::test]
async fn statements_are_scoped_and_take_strict_input() {
    let Some(lib) = libfaketime() else {
        eprintln!("libfaketime is not installed (Debian package `faketime`): skipping");
        return;
    };
    let (w, server) = world(lib).await;
    let path = |q: &str| format!("/api/v1/statements{q}");
    let mine = server
        .wait_for(&path(""), &w.merchant_key, Duration::from_secs(20), |r| {
            r.data().as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    let m = &w.merchant;
    // The api_user sees its merchant's; the manager and the admin name it.
    for (key, query) in [
        (&w.api_user_key, String::new()),
        (&w.merchant_key, format!("?merchant_id={m}")),
        (&w.manager_key, format!("?merchant_id={m}")),
        (&ADMIN_KEY.to_owned(), format!("?merchant_id={m}")),
    ] {
        let r = server.get(&path(&query), key).await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text);
        assert_eq!(r.data(), mine.data());
        let v = server
            .get(&format!("/api/v1/statements/verify{query}"), key)
            .await;
        assert_eq!(v.data()["ok"], json!(true), "{}", v.text);
    }
    // The other merchant has no transfers: no statements, a clean verdict.
    let other = server.get(&path(""), &w.other_key).await;
    assert_eq!(other.data(), &json!([]));
    let cases = [
        (
            &w.other_key,
            format!("?merchant_id={m}"),
            StatusCode::FORBIDDEN,
            "insufficient_permissions",
        ),
        (
            &w.api_user_key,
            format!("?merchant_id={}", w.other_merchant),
            StatusCode::FORBIDDEN,
            "insufficient_permissions",
        ),
        (
            &w.manager_key,
            format!("?merchant_id={}", w.other_merchant),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &w.manager_key,
            String::new(),
            StatusCode::BAD_REQUEST,
            "missing_fields",
        ),
        (
            &ADMIN_KEY.to_owned(),
            String::new(),
            StatusCode::BAD_REQUEST,
            "missing_fields",
        ),
        (
            &w.merchant_key,
            "?nope=1".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            &w.merchant_key,
            "?to=".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            &w.merchant_key,
            "?from=2026-11-31".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            &w.merchant_key,
            "?from=2026-11-30T00:00:00Z".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            &w.merchant_key,
            "?cursor=yesterday".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            &w.merchant_key,
            "?limit=0".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (key, query, status, code) in cases {
        let r = server.get(&path(&query), key).await;
        assert_eq!((r.status, r.code()), (status, code), "{query}: {}", r.text);
    }
    for (key, query, status, code) in [
        (
            &w.other_key,
            format!("/verify?merchant_id={m}"),
            StatusCode::FORBIDDEN,
            "insufficient_permissions",
        ),
        (
            &w.manager_key,
            "/verify".into(),
            StatusCode::BAD_REQUEST,
            "missing_fields",
        ),
        (
            &w.merchant_key,
            "/verify?from=2026-11-30".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            &w.merchant_key,
            "/2026-11-30?format=xml".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            &w.other_key,
            "/2026-11-30".into(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &w.manager_key,
            format!("/2026-11-30?merchant_id={}", w.other_merchant),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        let r = server.get(&path(&query), key).await;
        assert_eq!((r.status, r.code()), (status, code), "{query}: {}", r.text);
    }
    let v = server.get(&path("/verify"), &w.other_key).await;
    assert_eq!(v.data(), &json!({ "ok": true, "first_bad": null }));
    let no_key = server.get(&path(""), "").await;
    assert_eq!(no_key.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn verify_names_the_day_of_a_tampered_copy() {
    let Some(lib) = libfaketime() else {
        eprintln!("libfaketime is not installed (Debian package `faketime`): skipping");
        return;
    };
    let (w, mut server) = world(lib).await;
    let expected = closed_days_since(first_day());
    server
        .wait_for(
            "/api/v1/statements?limit=500",
            &w.merchant_key,
            Duration::from_secs(20),
            |r| {
                r.data()
                    .as_array()
                    .is_some_and(|a| a.len() == expected.len())
            },
        )
        .await;
    assert!(server.terminate().success());
    let merchant: domain::UserId = w.merchant.parse().unwrap();
    let copies = tempfile::tempdir().unwrap();

    // A copy with one statement changed (the newest closed day).
    let newest = Date::parse(&expected[0]).unwrap();
    let statement_copy: PathBuf = copies.path().join("statement");
    copy_dir(w.dir.path(), &statement_copy);
    tamper(&statement_copy, async |store| {
        let changed = store
            .tamper_statement_for_tests(&merchant, newest, |s| {
                s.closing_available = domain::Money::from_paise(1);
            })
            .await
            .unwrap();
        assert!(changed);
    })
    .await;
    let server = Server::start_in(&statement_copy, &[]);
    let v = server
        .get("/api/v1/statements/verify", &w.merchant_key)
        .await;
    assert_eq!(
        v.data(),
        &json!({ "ok": false, "first_bad": expected[0] }),
        "{}",
        v.text
    );
    drop(server);

    // A copy with one ledger row changed (the 30th's first pay-in).
    let ledger_copy = copies.path().join("ledger");
    copy_dir(w.dir.path(), &ledger_copy);
    tamper(&ledger_copy, async |store| {
        let changed = store
            .tamper_transfer_for_tests(&merchant, 1, |t| {
                t.amount = domain::Money::from_paise(t.amount.paise() + 100);
            })
            .await
            .unwrap();
        assert!(changed);
    })
    .await;
    let server = Server::start_in(&ledger_copy, &[]);
    let v = server
        .get("/api/v1/statements/verify", &w.merchant_key)
        .await;
    assert_eq!(
        v.data(),
        &json!({ "ok": false, "first_bad": first_day().to_string() }),
        "{}",
        v.text
    );
    drop(server);

    // The original is untouched.
    let server = Server::start_in(w.dir.path(), &[]);
    let v = server
        .get("/api/v1/statements/verify", &w.merchant_key)
        .await;
    assert_eq!(v.data(), &json!({ "ok": true, "first_bad": null }));
}

/// What holds without moving time: today is never written, and a merchant
/// whose first transfer is today has no statements and a clean verdict.
#[tokio::test]
async fn today_is_not_written_yet() {
    let server = Server::start(&[]);
    let (_, key) = server.create_user(ADMIN_KEY, "merchant", json!({})).await;
    let r = server
        .post("/api/v1/payments", &key, payin_body("today-1", json!(10)))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    server
        .wait_for(
            "/api/v1/reports/ledger",
            &key,
            Duration::from_secs(10),
            |r| r.data().as_array().is_some_and(|a| a.len() == 1),
        )
        .await;
    let list = server.get("/api/v1/statements", &key).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert_eq!(list.data(), &json!([]));
    let one = server
        .get(&format!("/api/v1/statements/{}", today()), &key)
        .await;
    assert_eq!(one.status, StatusCode::NOT_FOUND);
    let v = server.get("/api/v1/statements/verify", &key).await;
    assert_eq!(v.data(), &json!({ "ok": true, "first_bad": null }));
}
