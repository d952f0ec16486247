//! Operations, black-box against the real binary:
//!
//! - `tijori backup` while pay-ins and payouts keep coming: writes go on
//!   during the backup; `tijori restore` into a fresh dir and a server on
//!   it find every operation acknowledged before the backup was asked for,
//!   none sent after it finished, and books that balance (every currency
//!   sums to 0, each merchant's accounts are its balance, its ledger runs
//!   to it);
//! - start-up failures are one `error:` line naming the busy address or
//!   the locked data dir, exit non-zero, no backtrace, no ANSI colours on a
//!   stderr that is not a terminal; a key given with `--admin-key` is never
//!   printed.

use crate::api_support::{balance, fund, paise};
use crate::common::{payin_body, payout_body, Server, ADMIN_KEY};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tijori");

struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `tijori args` to its end (at most 60 s), stdout and stderr piped,
/// with the default log filter.
fn run_to_end(args: &[&str]) -> Finished {
    let child = Command::new(BIN)
        .args(args)
        .env_remove("TIJORI_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tijori starts");
    let pid = child.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => {
            let output = output.expect("tijori ran");
            Finished {
                status: output.status,
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }
        }
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("tijori {args:?} did not finish within 60 s");
        }
    }
}

/// A failure reported as one `error:` line with `needles`, exit status 1.
fn assert_clear_failure(f: &Finished, needles: &[&str]) {
    assert_eq!(f.status.code(), Some(1), "stderr: {}", f.stderr);
    let lines: Vec<&str> = f.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {:?}", f.stderr);
    assert!(lines[0].starts_with("error: "), "{:?}", f.stderr);
    for needle in needles {
        assert!(f.stderr.contains(needle), "{needle:?} in {:?}", f.stderr);
    }
    for banned in ["backtrace", "panicked", "\x1b["] {
        assert!(!f.stderr.contains(banned), "{banned:?} in {:?}", f.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_failures_are_one_clear_line() {
    let server = Server::start(&[]);
    let addr = server.base.trim_start_matches("http://").to_owned();

    // The port is taken.
    let other = tempfile::tempdir().unwrap();
    let other_dir = other.path().join("data");
    let busy = tokio::task::spawn_blocking({
        let (addr, dir) = (addr.clone(), other_dir.clone());
        move || run_to_end(&["--listen", &addr, "--data-dir", dir.to_str().unwrap()])
    })
    .await
    .unwrap();
    assert_clear_failure(&busy, &[&format!("{addr} is already in use")]);

    // The data dir is held by the running server.
    let data_dir = server.data_dir.to_str().unwrap().to_owned();
    let locked = tokio::task::spawn_blocking({
        let dir = data_dir.clone();
        move || run_to_end(&["--listen", "127.0.0.1:0", "--data-dir", &dir])
    })
    .await
    .unwrap();
    assert_clear_failure(
        &locked,
        &[data_dir.as_str(), "another Tijori process holds it"],
    );

    // An admin key that is not a Tijori key (a checksum off by one
    // character): refused at start, and not echoed.
    let near_miss = "tjk_testAdminKey0123456789abcdefABCD3bVcpm";
    let refused = tokio::task::spawn_blocking({
        let dir = other.path().join("fresh");
        move || {
            run_to_end(&[
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                dir.to_str().unwrap(),
                "--admin-key",
                near_miss,
            ])
        }
    })
    .await
    .unwrap();
    assert_clear_failure(&refused, &["--admin-key", "tijori keygen"]);
    assert!(!refused.stderr.contains(near_miss), "{}", refused.stderr);

    // `tijori keygen` prints a key that the format accepts, different each time.
    let keys: Vec<String> = (0..2)
        .map(|_| {
            let k = run_to_end(&["keygen"]);
            assert!(k.status.success(), "{}", k.stderr);
            k.stdout.trim().to_owned()
        })
        .collect();
    for key in &keys {
        assert!(domain::api_key::is_well_formed(key), "{key:?}");
        assert_eq!(key.len(), 42);
    }
    assert_ne!(keys[0], keys[1]);

    // A bad flag: clap's message, without colours on a pipe.
    let bad = tokio::task::spawn_blocking(|| run_to_end(&["--no-such-flag"]))
        .await
        .unwrap();
    assert!(!bad.status.success());
    assert!(bad.stderr.contains("--no-such-flag"), "{}", bad.stderr);
    assert!(!bad.stderr.contains("\x1b["), "{:?}", bad.stderr);
}

/// A server started and stopped with its stdout and stderr captured: the
/// logs have no colour codes, and the key given never appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_have_no_colours_on_a_pipe_and_a_given_admin_key_is_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let key = "tjk_operatorChosenKey5f2a9c00000000025PDeh";
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--admin-key", key, "--data-dir"])
        .arg(dir.path().join("data"))
        .env("TIJORI_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tijori starts");
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let stdout_pipe = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout_pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stdout = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stdout.contains("listening on") {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("the server starts in time");
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let base = stdout
        .lines()
        .find_map(|l| l.strip_prefix("listening on "))
        .unwrap()
        .to_owned();
    // The key works: it was taken, just not printed.
    let addr = base.trim_start_matches("http://").to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let request = format!(
            "GET /api/v1/profile HTTP/1.1\r\nHost: {addr}\r\nX-API-KEY: {key}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let stderr = stderr.join().unwrap();
    assert!(
        stderr.contains("tijori is serving"),
        "logs captured: {stderr}"
    );
    assert!(stderr.contains("stopped cleanly"), "{stderr}");
    assert!(
        !stderr.contains("\x1b["),
        "colour codes on a pipe: {stderr:?}"
    );
    assert!(
        stdout.contains("admin user created with the key given by --admin-key"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(key) && !stderr.contains(key),
        "{stdout}\n{stderr}"
    );
}

#[derive(Clone, Debug)]
struct Op {
    payout: bool,
    id: String,
    amount: Value,
    status: String,
    sent: Instant,
    acked: Instant,
}

/// One merchant's stream of pay-ins (four in five) and payouts, one at a
/// time, until `stop` or `max` operations; every answer must be 201.
async fn drive(server: Arc<Server>, key: String, tag: usize, stop: Arc<AtomicBool>) -> Vec<Op> {
    let mut ops = Vec::new();
    for i in 0..5_000u64 {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let payout = i % 5 == 4;
        let amount = json!(format!("{}.{:02}", 10 + i % 90, (i * 37) % 100));
        let (path, body) = if payout {
            ("/api/v1/payouts", payout_body(amount.clone()))
        } else {
            (
                "/api/v1/payments",
                payin_body(&format!("m{tag}-{i}"), amount.clone()),
            )
        };
        let sent = Instant::now();
        let r = server.post(path, &key, body).await;
        assert_eq!(r.status, 201, "{path}: {}", r.text);
        ops.push(Op {
            payout,
            id: r.data()["id"].as_str().unwrap().to_owned(),
            amount,
            status: r.data()["status"].as_str().unwrap().to_owned(),
            sent,
            acked: Instant::now(),
        });
    }
    ops
}

/// Signed paise of a JSON money value (`-12.5`, `0`, `665`).
fn signed_paise(v: &Value) -> i128 {
    let text = v.to_string().trim_matches('"').to_owned();
    match text.strip_prefix('-') {
        Some(rest) => -i128::from(paise(rest)),
        None => i128::from(paise(&text)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_acknowledged_operation_and_whole_books() {
    const ARGS: [&str; 2] = ["--rate-limit-per-min", "1000000"];
    let server = Arc::new(Server::start(&ARGS));
    let mut merchants = Vec::new();
    for m in 0..3 {
        let (id, key) = server
            .create_user(
                &server.admin_key,
                "merchant",
                json!({ "payin_fee_bps": 200, "payout_fee": 3 }),
            )
            .await;
        fund(&server, &key, &format!("fund-{m}"), json!("100000")).await;
        merchants.push((id, key));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let drivers: Vec<_> = merchants
        .iter()
        .enumerate()
        .map(|(m, (_, key))| tokio::spawn(drive(server.clone(), key.clone(), m, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;

    let backups = tempfile::tempdir().unwrap();
    let to = backups.path().join("backup");
    let backup_sent = Instant::now();
    let backup = tokio::task::spawn_blocking({
        let (to, base) = (to.to_str().unwrap().to_owned(), server.base.clone());
        move || {
            run_to_end(&[
                "backup",
                "--to",
                &to,
                "--server",
                &base,
                "--admin-key",
                ADMIN_KEY,
            ])
        }
    })
    .await
    .unwrap();
    let backup_done = Instant::now();
    assert!(backup.status.success(), "backup: {}", backup.stderr);
    assert!(
        backup.stdout.contains("backup written to"),
        "{}",
        backup.stdout
    );
    println!("{}", backup.stdout.trim());
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Release);
    let mut ops = Vec::new();
    for d in drivers {
        ops.extend(d.await.unwrap());
    }
    let before: Vec<&Op> = ops.iter().filter(|o| o.acked < backup_sent).collect();
    let after: Vec<&Op> = ops.iter().filter(|o| o.sent > backup_done).collect();
    let during = ops
        .iter()
        .filter(|o| o.sent > backup_sent && o.acked < backup_done)
        .count();
    println!(
        "{} operations: {} acknowledged before the backup was asked for, {during} within it, \
         {} sent after it; backup took {:?}",
        ops.len(),
        before.len(),
        after.len(),
        backup_done - backup_sent
    );
    assert!(
        before.len() >= 20,
        "load before the backup: {}",
        before.len()
    );
    assert!(during > 0, "writes went on while the backup ran");
    assert!(!after.is_empty(), "load after the backup");

    let mut server = Arc::try_unwrap(server).ok().expect("drivers are done");
    assert!(server.terminate().success());

    // Restore into a fresh dir; a second restore there is refused.
    let restored = tempfile::tempdir().unwrap();
    let data = restored.path().join("data");
    let (from, into) = (to.to_str().unwrap(), data.to_str().unwrap());
    let r = run_to_end(&["restore", "--from", from, "--data-dir", into]);
    assert!(r.status.success(), "restore: {}", r.stderr);
    assert!(r.stdout.contains("restored"), "{}", r.stdout);
    let again = run_to_end(&["restore", "--from", from, "--data-dir", into]);
    assert_clear_failure(&again, &["is not empty"]);

    let server = Server::start_in(Path::new(&data), &ARGS);
    let admin = server.admin_key.clone();
    for op in &before {
        let kind = if op.payout { "payouts" } else { "payments" };
        let r = server
            .get(&format!("/api/v1/{kind}/{}", op.id), &admin)
            .await;
        assert_eq!(
            r.status, 200,
            "{kind} {} acknowledged before the backup: {}",
            op.id, r.text
        );
        assert_eq!(
            paise(&r.data()["amount"].to_string()),
            paise(op.amount.as_str().unwrap()),
            "{}",
            r.text
        );
        let status = r.data()["status"].as_str().unwrap();
        assert!(
            status == op.status || op.status == "pending",
            "{} was {} when acknowledged, is {status}",
            op.id,
            op.status
        );
    }
    for op in &after {
        let kind = if op.payout { "payouts" } else { "payments" };
        let r = server
            .get(&format!("/api/v1/{kind}/{}", op.id), &admin)
            .await;
        assert_eq!(
            r.status, 404,
            "{} was sent after the backup finished",
            op.id
        );
    }

    // The restored server settles what was pending; then the books balance.
    for (_, key) in &merchants {
        for path in ["/api/v1/payments", "/api/v1/payouts"] {
            crate::api_support::wait_none_pending(&server, path, key, Duration::from_secs(30))
                .await;
        }
    }
    let r = server.get("/api/v1/ledger/accounts", &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let books = r.data();
    let totals = books["totals"].as_array().unwrap();
    assert!(!totals.is_empty(), "{}", r.text);
    for t in totals {
        assert_eq!(signed_paise(&t["balance"]), 0, "total: {t}");
    }
    let accounts = books["accounts"].as_array().unwrap();
    for (id, key) in &merchants {
        let b = balance(&server, key, "").await;
        for side in ["available", "held"] {
            let name = format!("merchant:{id}:{side}");
            let account = accounts
                .iter()
                .find(|a| a["account"] == json!(name))
                .unwrap_or_else(|| panic!("{name} not listed"));
            assert_eq!(
                signed_paise(&account["balance"]),
                signed_paise(&b[side]),
                "{name} vs GET /balance"
            );
            assert_eq!(
                signed_paise(&account["balance"]),
                signed_paise(&account["credits_posted"]) - signed_paise(&account["debits_posted"]),
                "{name}"
            );
        }
        let r = server.get("/api/v1/reports/ledger?limit=1", key).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.data()[0]["available_after"], b["available"]);
        assert_eq!(r.data()[0]["held_after"], b["held"]);
    }
}
