//! A store that can no longer write (SPEC §17): the disk filled up, or an
//! fsync failed. The server is started with a hidden fault-injection flag
//! that makes every group commit after the first N fail as on a full disk
//! (the same path a real ENOSPC takes: the committer poisons the store).
//! Then: every write fails at once with 500 `database_error`, reads and
//! `/healthz` keep answering and show exactly what was acknowledged,
//! `/readyz` is 503, SIGTERM still exits within the grace period, and no
//! actor panics.

use crate::api_support::{assert_error, list_all, NO_AUTO_SETTLE};
use crate::common::{payin_body, payout_body, Server};
use serde_json::json;
use std::time::{Duration, Instant};

/// A call on a poisoned store must answer well inside the wallet's call
/// timeout (10 s): it is refused or served, never left to time out.
const PROMPT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_at_once_and_keeps_reads_answering() {
    // Commits: the admin's bootstrap, the merchant, then a few pay-ins.
    let mut server = Server::start_capturing(&[
        "--fault-fail-commits-after",
        "8",
        NO_AUTO_SETTLE[0],
        NO_AUTO_SETTLE[1],
        "--shutdown-grace-ms",
        "3000",
    ]);
    let admin = server.admin_key.clone();
    let (m_id, m) = server.create_user(&admin, "merchant", json!({})).await;

    // Pay-ins one at a time until the disk "fills": each 201 is acknowledged.
    let mut acknowledged = Vec::new();
    let mut first_failure = None;
    for i in 0..50 {
        let r = server
            .post(
                "/api/v1/payments",
                &m,
                payin_body(&format!("FD-{i}"), json!(100 + i)),
            )
            .await;
        match r.status.as_u16() {
            201 => acknowledged.push(r.data()["id"].as_str().unwrap().to_owned()),
            _ => {
                first_failure = Some(r);
                break;
            }
        }
    }
    let first_failure = first_failure.expect("the injected fault struck");
    assert_error(&first_failure, 500, "database_error");
    assert!(!acknowledged.is_empty(), "some pay-ins were written first");

    // Every kind of write now fails at once with database_error.
    let writes = [
        ("/api/v1/payments", &m, payin_body("FD-AFTER", json!(5))),
        ("/api/v1/payouts", &m, payout_body(json!(1))),
        (
            "/api/v1/users",
            &admin,
            json!({ "name": "late", "role": "merchant" }),
        ),
    ];
    for (path, key, body) in writes {
        for _ in 0..3 {
            let started = Instant::now();
            let r = server.post(path, key, body.clone()).await;
            assert_error(&r, 500, "database_error");
            assert!(
                started.elapsed() < PROMPT,
                "{path} took {:?}",
                started.elapsed()
            );
        }
    }
    let started = Instant::now();
    let r = server
        .patch(
            &format!("/api/v1/users/{m_id}"),
            &admin,
            json!({ "name": "renamed" }),
        )
        .await;
    assert_error(&r, 500, "database_error");
    assert!(started.elapsed() < PROMPT);

    // Reads keep answering, promptly, and show exactly what was acknowledged.
    let started = Instant::now();
    let balance = server.get("/api/v1/balance", &m).await;
    assert_eq!(balance.status, 200, "{}", balance.text);
    assert!(
        started.elapsed() < PROMPT,
        "balance took {:?}",
        started.elapsed()
    );
    let expected: u64 = (0..acknowledged.len() as u64).map(|i| 100 + i).sum();
    assert_eq!(
        balance.data()["pending_payins"],
        json!(expected),
        "{}",
        balance.text
    );
    assert_eq!(balance.data()["available"], json!(0));
    let listed = list_all(&server, "/api/v1/payments", &m, 100).await;
    let mut listed: Vec<String> = listed
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    acknowledged.sort();
    assert_eq!(listed, acknowledged, "exactly the acknowledged pay-ins");
    for id in &acknowledged {
        let r = server.get(&format!("/api/v1/payments/{id}"), &m).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(
        server
            .get(&format!("/api/v1/users/{m_id}"), &admin)
            .await
            .status,
        200
    );
    let r = server
        .request(hyper::Method::GET, "/healthz", None, None)
        .await;
    assert_eq!(r.status, 200);
    let r = server
        .request(hyper::Method::GET, "/readyz", None, None)
        .await;
    assert_eq!(r.status, 503, "{}", r.text);

    // SIGTERM: out within the grace period (3 s here), whatever is stuck.
    let started = Instant::now();
    let _status = server.terminate();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "SIGTERM took {:?}",
        started.elapsed()
    );
    let log = server.stderr.as_ref().unwrap().lock().unwrap().clone();
    assert!(
        log.contains("injected fault"),
        "the failure is logged: {log}"
    );
    for banned in ["panicked", "failed to start"] {
        assert!(!log.contains(banned), "{banned:?} in the log:\n{log}");
    }
}

/// A tmpfs mounted for the test and unmounted (lazily) when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB on `dir`, or says why it cannot.
    fn mount(dir: &std::path::Path, mib: u32) -> Result<Tmpfs, String> {
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs(dir.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The real thing: the data dir on a 10 MiB tmpfs, filled by concurrent
/// pay-ins until the disk is full. Needs root (CI runs as root); skipped
/// with a message where a tmpfs cannot be mounted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_full_disk_on_tmpfs() {
    let mount_point = tempfile::tempdir().unwrap();
    let _tmpfs = match Tmpfs::mount(mount_point.path(), 10) {
        Ok(t) => t,
        Err(why) => {
            eprintln!("SKIPPED a_real_full_disk_on_tmpfs: cannot mount a tmpfs here ({why})");
            return;
        }
    };
    let data = mount_point.path().join("data");
    let server = Server::start_in(
        &data,
        &[
            NO_AUTO_SETTLE[0],
            NO_AUTO_SETTLE[1],
            "--shutdown-grace-ms",
            "3000",
        ],
    );
    let admin = server.admin_key.clone();
    let (_m_id, m) = server
        .create_user(
            &admin,
            "merchant",
            json!({ "rate_limit_per_min": 1_000_000 }),
        )
        .await;
    let server = std::sync::Arc::new(server);

    // Eight writers, each until its first failure (at most 20,000 pay-ins
    // of ~5 KB: far more than 10 MiB holds), within two minutes.
    let began = Instant::now();
    let deadline = began + Duration::from_secs(120);
    let mut writers = Vec::new();
    for w in 0..8 {
        let (server, m) = (server.clone(), m.clone());
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..2_500 {
                let mut body = payin_body(&format!("TMPFS-{w}-{i}"), json!(1));
                // Random, so that compression cannot shrink it.
                let noise: String = (0..120)
                    .map(|_| uuid::Uuid::new_v4().simple().to_string())
                    .collect();
                body["metadata"] = json!({ "noise": noise });
                let r = server.post("/api/v1/payments", &m, body).await;
                match r.status.as_u16() {
                    201 => acknowledged.push(r.data()["id"].as_str().unwrap().to_owned()),
                    _ => return (acknowledged, Some(r)),
                }
                if Instant::now() > deadline {
                    break;
                }
            }
            (acknowledged, None)
        }));
    }
    let mut acknowledged = Vec::new();
    let mut failures = Vec::new();
    for w in writers {
        let (mine, failure) = w.await.unwrap();
        acknowledged.extend(mine);
        failures.extend(failure);
    }
    eprintln!(
        "tmpfs full after {} acknowledged pay-ins, {:?}",
        acknowledged.len(),
        began.elapsed()
    );
    assert!(!failures.is_empty(), "the disk never filled");
    for f in &failures {
        assert_error(f, 500, "database_error");
    }

    // Writes now fail at once; reads answer and show what was acknowledged.
    let started = Instant::now();
    let r = server
        .post("/api/v1/payments", &m, payin_body("LATE", json!(1)))
        .await;
    assert_error(&r, 500, "database_error");
    assert!(
        started.elapsed() < PROMPT,
        "a write took {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let balance = server.get("/api/v1/balance", &m).await;
    assert_eq!(balance.status, 200, "{}", balance.text);
    assert!(
        started.elapsed() < PROMPT,
        "balance took {:?}",
        started.elapsed()
    );
    let listed = list_all(&server, "/api/v1/payments", &m, 500).await;
    let mut listed: Vec<String> = listed
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    acknowledged.sort();
    assert_eq!(
        listed.len(),
        acknowledged.len(),
        "exactly the acknowledged pay-ins"
    );
    assert_eq!(listed, acknowledged);
    assert_eq!(balance.data()["pending_payins"], json!(acknowledged.len()));
    let r = server
        .request(hyper::Method::GET, "/healthz", None, None)
        .await;
    assert_eq!(r.status, 200);
    let r = server
        .request(hyper::Method::GET, "/readyz", None, None)
        .await;
    assert_eq!(r.status, 503);

    let mut server = std::sync::Arc::try_unwrap(server)
        .ok()
        .expect("every writer is done");
    let started = Instant::now();
    server.terminate();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "SIGTERM took {:?}",
        started.elapsed()
    );
}
