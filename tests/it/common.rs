//! The black-box harness: starts the real `tijori` binary on 127.0.0.1:0
//! with a temp data dir, reads the printed port and admin key, and talks to
//! it with a real HTTP client (hyper) over loopback. Dropping a `Server`
//! kills its process.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_KEY: &str = "tjk_testAdminKey0123456789abcdefABCD3bVcpl";

pub struct Server {
    pub child: Child,
    pub base: String,
    pub admin_key: String,
    pub data_dir: PathBuf,
    /// Keeps the temp dir alive when the server owns it.
    _dir: Option<tempfile::TempDir>,
    /// What the server wrote to stderr, when started with `start_capturing`.
    pub stderr: Option<std::sync::Arc<std::sync::Mutex<String>>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// A response: status, headers and the parsed JSON body (`Value::Null` when
/// the body is not JSON; the raw text is kept too).
pub struct Resp {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Resp {
    /// `error.code` of an error envelope.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    pub fn data(&self) -> &Value {
        &self.json["data"]
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Server {
    /// Starts a server on a fresh temp dir with test-friendly defaults
    /// (settle after 50 ms, buffered durability is NOT used: sync), plus `args`.
    pub fn start(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let mut server = Server::start_in(&path, args);
        server._dir = Some(dir);
        server
    }

    /// Starts a server on `data_dir` (which outlives it). A default flag
    /// (`--settle-delay-ms`, `--connector-poll-ms`, ...) named in `args` is
    /// replaced by the caller's value (clap refuses a flag given twice).
    pub fn start_in(data_dir: &Path, args: &[&str]) -> Server {
        Server::spawn(data_dir, args, &[], false)
    }

    /// `start_in` with extra environment variables for the process (e.g.
    /// libfaketime's `LD_PRELOAD` and `FAKETIME`).
    pub fn start_in_env(data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Server {
        Server::spawn(data_dir, args, envs, false)
    }

    /// Like `start`, keeping what the server writes to stderr (its log,
    /// at `warn`) in `stderr`.
    pub fn start_capturing(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let mut server = Server::spawn(&path, args, &[], true);
        server._dir = Some(dir);
        server
    }

    fn spawn(
        data_dir: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
        capture_stderr: bool,
    ) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tijori"));
        cmd.envs(envs.iter().copied());
        let defaults = [
            ("--listen", "127.0.0.1:0"),
            ("--admin-key", ADMIN_KEY),
            ("--settle-delay-ms", "50"),
            ("--connector-poll-ms", "5"),
        ];
        for (flag, value) in defaults {
            let overridden = args
                .iter()
                .any(|a| *a == flag || a.starts_with(&format!("{flag}=")));
            if !overridden {
                cmd.args([flag, value]);
            }
        }
        cmd.arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env("TIJORI_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if capture_stderr {
                Stdio::piped()
            } else {
                Stdio::inherit()
            });
        let mut child = cmd.spawn().expect("tijori starts");
        let stderr = child.stderr.take().map(|pipe| {
            let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut all = sink.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
            });
            log
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let base = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("server printed its address in time");
            if let Some(addr) = line.strip_prefix("listening on ") {
                break addr.trim().to_owned();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        let client = Client::builder(TokioExecutor::new()).build_http();
        Server {
            child,
            base,
            admin_key: ADMIN_KEY.to_owned(),
            data_dir: data_dir.to_path_buf(),
            _dir: None,
            stderr,
            client,
        }
    }

    /// Sends a request; `body` is sent as JSON when given.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        self.request_with(
            method,
            path,
            key,
            body.map(|b| b.to_string().into_bytes()),
            &[],
        )
        .await
    }

    pub async fn request_with(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(key) = key {
            builder = builder.header("x-api-key", key);
        }
        if body.is_some()
            && !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            builder = builder.header("content-type", "application/json");
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .expect("server answered in time")
            .expect("request succeeded");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            json,
            text,
        }
    }

    /// Like `request_with`, but a transport failure (the server died, the
    /// connection was reset, no answer in 30 s) is an `Err`, not a panic.
    pub async fn try_request_with(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<Resp, String> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(key) = key {
            builder = builder.header("x-api-key", key);
        }
        if body.is_some()
            && !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            builder = builder.header("content-type", "application/json");
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .map_err(|_| "no answer within 30 s".to_owned())?
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Resp {
            status,
            headers,
            json,
            text,
        })
    }

    pub async fn get(&self, path: &str, key: &str) -> Resp {
        self.request(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Resp {
        self.request(Method::POST, path, Some(key), Some(&body))
            .await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> Resp {
        self.request(Method::PATCH, path, Some(key), Some(&body))
            .await
    }

    /// Creates a user as `creator`; returns (user id, api key).
    pub async fn create_user(&self, creator: &str, role: &str, extra: Value) -> (String, String) {
        let mut body = json!({ "name": format!("{role} user"), "role": role });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let r = self.post("/api/v1/users", creator, body).await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "creating a {role}: {}",
            r.text
        );
        let id = r.data()["user"]["id"].as_str().unwrap().to_owned();
        let key = r.data()["api_key"].as_str().unwrap().to_owned();
        (id, key)
    }

    /// Polls `GET path` until `done` holds for the response, or panics after `within`.
    pub async fn wait_for(
        &self,
        path: &str,
        key: &str,
        within: Duration,
        done: impl Fn(&Resp) -> bool,
    ) -> Resp {
        let deadline = Instant::now() + within;
        loop {
            let r = self.get(path, key).await;
            if done(&r) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "condition on {path} not met within {within:?}: {}",
                r.text
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Creates a pay-in (which must answer 201) and waits up to 10 s for
    /// the rail to complete it; returns its id.
    pub async fn completed_payin(&self, key: &str, order_id: &str, amount: Value) -> String {
        let r = self
            .post("/api/v1/payments", key, payin_body(order_id, amount))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let id = r.data()["id"].as_str().unwrap().to_owned();
        self.wait_for(
            &format!("/api/v1/payments/{id}"),
            key,
            Duration::from_secs(10),
            |r| r.data()["status"] == "completed",
        )
        .await;
        id
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pay-in body with a unique order id.
pub fn payin_body(order_id: &str, amount: Value) -> Value {
    json!({ "order_id": order_id, "amount": amount, "payer": "Jane Smith" })
}

/// A payout body to a normal account.
pub fn payout_body(amount: Value) -> Value {
    json!({ "amount": amount, "beneficiary": { "name": "Ravi Kumar", "account_number": "123456789012", "ifsc": "HDFC0000001" } })
}
