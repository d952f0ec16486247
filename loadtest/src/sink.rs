//! The built-in webhook sink: a small hyper server on 127.0.0.1:0. Each
//! merchant's webhook_url is `http://127.0.0.1:PORT/hook/<merchant index>`,
//! so the sink knows whose secret signs a delivery. It verifies
//! `X-Webhook-Signature` (HMAC-SHA256 over "<t>.<body>"), measures delivery
//! delay (receive time − the payload's `timestamp`), counts duplicates (an
//! event id seen twice) and keeps, per payment/payout/refund id (the
//! payload's `transaction_id`, `payout_id`, `refund_id`), the events that
//! arrived. It always answers 200, so every retry it sees is the server's.

use crate::money;
use crate::util::{lock, now_unix_ms, parse_rfc3339_ms};
use bytes::Bytes;
use hdrhistogram::Histogram;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha2::Sha256;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

/// One event as first received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub event_id: String,
    pub event: String,
    pub status: String,
    pub amount: Option<u64>,
    pub merchant_index: usize,
}

/// Everything the sink saw.
#[derive(Clone, Debug)]
pub struct SinkLog {
    /// Deliveries (HTTP requests) received.
    pub received: u64,
    /// Times each event id arrived.
    pub by_event_id: HashMap<String, u32>,
    /// Payment/payout id → its events (first delivery of each).
    pub records: HashMap<String, Vec<Delivered>>,
    /// Event ids (or a description) whose signature did not verify.
    pub bad_signatures: Vec<String>,
    /// user.* events (not audited).
    pub other_events: u64,
    /// Delivery delay, ms, first delivery of each event.
    pub delay_ms: Histogram<u64>,
}

impl SinkLog {
    fn new() -> SinkLog {
        SinkLog {
            received: 0,
            by_event_id: HashMap::new(),
            records: HashMap::new(),
            bad_signatures: Vec::new(),
            other_events: 0,
            delay_ms: crate::stats::histogram(86_400_000, 3),
        }
    }

    /// Deliveries of an event beyond its first.
    pub fn duplicates(&self) -> u64 {
        self.by_event_id
            .values()
            .map(|n| u64::from(n.saturating_sub(1)))
            .sum()
    }
}

struct State {
    secrets: RwLock<HashMap<usize, String>>,
    log: Mutex<SinkLog>,
}

pub struct Sink {
    addrs: Vec<SocketAddr>,
    state: Arc<State>,
    accept: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        for task in &self.accept {
            task.abort();
        }
    }
}

/// The loopback address of sink host `j`: 127.0.0.1, then 127.77.x.y.
fn host_ip(j: usize) -> std::net::Ipv4Addr {
    if j == 0 {
        std::net::Ipv4Addr::LOCALHOST
    } else {
        let k = j - 1;
        std::net::Ipv4Addr::new(127, 77, (k / 250) as u8, (1 + k % 250) as u8)
    }
}

impl Sink {
    /// Binds `hosts` listeners (1 to 1,000), each on its own loopback
    /// address and a free port, and starts serving. The server limits
    /// concurrent deliveries per host, so one address per merchant is what
    /// merchants with their own endpoints look like; one address for all
    /// stresses a single receiving host.
    pub async fn start(hosts: usize) -> std::io::Result<Sink> {
        let state = Arc::new(State {
            secrets: RwLock::new(HashMap::new()),
            log: Mutex::new(SinkLog::new()),
        });
        let mut addrs = Vec::new();
        let mut accept = Vec::new();
        for j in 0..hosts.clamp(1, 1_000) {
            let listener = tokio::net::TcpListener::bind((host_ip(j), 0)).await?;
            addrs.push(listener.local_addr()?);
            accept.push(serve(listener, state.clone()));
        }
        Ok(Sink {
            addrs,
            state,
            accept,
        })
    }

    pub fn url_for(&self, merchant_index: usize) -> String {
        let addr = self.addrs[merchant_index % self.addrs.len()];
        format!("http://{addr}/hook/{merchant_index}")
    }

    pub fn hosts(&self) -> usize {
        self.addrs.len()
    }

    pub fn set_secret(&self, merchant_index: usize, secret: String) {
        if let Ok(mut s) = self.state.secrets.write() {
            s.insert(merchant_index, secret);
        }
    }

    pub fn snapshot(&self) -> SinkLog {
        lock(&self.state.log).clone()
    }

    /// How many of `wanted` (a record id and the statuses it must have
    /// had an event for) have all their events.
    pub fn count_with_events(&self, wanted: &[(String, Vec<&'static str>)]) -> usize {
        let log = lock(&self.state.log);
        wanted
            .iter()
            .filter(|(id, statuses)| {
                log.records.get(id).is_some_and(|events| {
                    statuses
                        .iter()
                        .all(|s| events.iter().any(|e| e.status == *s))
                })
            })
            .count()
    }
}

/// Accepts connections on `listener` and serves each with `handle`.
fn serve(listener: tokio::net::TcpListener, state: Arc<State>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let state = state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(&state, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let received_at = now_unix_ms();
    let index = req
        .uri()
        .path()
        .strip_prefix("/hook/")
        .and_then(|i| i.parse::<usize>().ok());
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let signature = header("x-webhook-signature");
    let event_header = header("x-webhook-id");
    let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return respond(400),
    };
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let event_id = payload["id"]
        .as_str()
        .map(str::to_owned)
        .or(event_header)
        .unwrap_or_else(|| "<no id>".into());
    let secret = index.and_then(|i| state.secrets.read().ok().and_then(|s| s.get(&i).cloned()));
    let verified = match (secret, signature) {
        (Some(secret), Some(sig)) => verify(&secret, &sig, &body, received_at / 1_000),
        _ => false,
    };
    let mut log = lock(&state.log);
    log.received += 1;
    if !verified {
        log.bad_signatures.push(event_id);
        return respond(200);
    }
    let seen = log.by_event_id.entry(event_id.clone()).or_insert(0);
    *seen += 1;
    if *seen > 1 {
        return respond(200);
    }
    if let Some(sent) = payload["timestamp"].as_str().and_then(parse_rfc3339_ms) {
        let delay = u64::try_from(received_at.saturating_sub(sent)).unwrap_or(0);
        let _ = log.delay_ms.record(delay.max(1));
    }
    // A refund's event may name its pay-in too: the refund id comes first.
    let record_id = payload["refund_id"]
        .as_str()
        .or(payload["payout_id"].as_str())
        .or(payload["transaction_id"].as_str())
        .map(str::to_owned);
    match record_id {
        Some(record) => {
            let delivered = Delivered {
                event_id,
                event: payload["event"].as_str().unwrap_or("").to_owned(),
                status: payload["status"].as_str().unwrap_or("").to_owned(),
                amount: money::value_paise(&payload["amount"]),
                merchant_index: index.unwrap_or(usize::MAX),
            };
            log.records.entry(record).or_default().push(delivered);
        }
        None => log.other_events += 1,
    }
    respond(200)
}

fn respond(status: u16) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r
}

/// Checks `t=<secs>,v1=<hex>[,v1=…]` against `secret`, with a 300 s tolerance.
pub fn verify(secret: &str, header: &str, body: &[u8], now_secs: i64) -> bool {
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => candidates.push(v.to_owned()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now_secs - t).abs() > 300 {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    candidates
        .iter()
        .any(|c| unhex(c).is_some_and(|bytes| mac.clone().verify_slice(&bytes).is_ok()))
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `t=…,v1=…` for `body` (used by tests of `verify`).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        let body = br#"{"id":"evt_1"}"#;
        let h = sign("whsec_a", 1_775_368_800, body);
        assert!(verify("whsec_a", &h, body, 1_775_368_800));
        assert!(verify(
            "whsec_a",
            &format!("{h},v1=00"),
            body,
            1_775_368_900
        ));
        assert!(!verify("whsec_b", &h, body, 1_775_368_800));
        assert!(!verify("whsec_a", &h, b"{}", 1_775_368_800));
        assert!(!verify("whsec_a", &h, body, 1_775_369_200));
        assert!(!verify("whsec_a", "v1=zz", body, 1));
    }
}
