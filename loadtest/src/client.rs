//! The HTTP client: hyper 1 with hyper-util's pooled legacy client, HTTP/1.1
//! keep-alive, TCP_NODELAY, a per-request timeout. Only ever pointed at a
//! target that `config::check_target` accepted.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::time::Duration;

/// An answer: status and raw body.
#[derive(Clone, Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Bytes,
    /// `Retry-After` seconds, on a 429.
    pub retry_after: Option<u64>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// `error.code` of the error envelope, or `http_<status>` without one.
    pub fn error_code(&self) -> String {
        match self.json()["error"]["code"].as_str() {
            Some(code) => code.to_owned(),
            None => format!("http_{}", self.status),
        }
    }
}

/// A request that got no HTTP answer: its outcome on the server is unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    Transport(String),
}

impl Failure {
    /// The label used in error counts.
    pub fn code(&self) -> String {
        match self {
            Failure::Timeout => "transport:timeout".into(),
            Failure::Transport(kind) => format!("transport:{kind}"),
        }
    }
}

#[derive(Clone)]
pub struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    timeout: Duration,
}

impl Api {
    /// A client for `base` (`http://127.0.0.1:PORT`) keeping up to `pool` idle connections.
    pub fn new(base: &str, timeout: Duration, pool: usize) -> Api {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(pool)
            .build(connector);
        Api {
            client,
            base: base.trim_end_matches('/').to_owned(),
            timeout,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends one request; `body` goes as JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
        idempotency_key: Option<&str>,
    ) -> Result<Resp, Failure> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(key) = key {
            builder = builder.header("x-api-key", key);
        }
        if body.is_some() {
            builder = builder.header("content-type", "application/json");
        }
        if let Some(k) = idempotency_key {
            builder = builder.header("idempotency-key", k);
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Failure::Transport(format!("request: {e}")))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                let kind = if e.is_connect() { "connect" } else { "error" };
                Failure::Transport(kind.into())
            })?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|_| Failure::Transport("body".into()))?
                .to_bytes();
            Ok(Resp {
                status,
                body,
                retry_after,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(Failure::Timeout))
    }

    /// A call for set-up and audit: retries transport failures, 429s and
    /// 503s a few times, and wants `expect` as the status. Returns `data`.
    pub async fn expect(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<&Value>,
        expect: u16,
    ) -> Result<Value, String> {
        let mut last = String::new();
        for attempt in 0..8u64 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            let r = self
                .call(
                    method.clone(),
                    path,
                    Some(key),
                    body.map(Value::to_string),
                    None,
                )
                .await;
            match r {
                Ok(resp) if resp.status == expect => return Ok(resp.json()["data"].clone()),
                Ok(resp) if resp.status == 429 || resp.status == 503 => {
                    let wait = resp.retry_after.unwrap_or(1).min(5);
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                    last = format!("{} {}", resp.status, resp.error_code());
                }
                Ok(resp) => {
                    return Err(format!(
                        "{method} {path}: {} {}",
                        resp.status,
                        String::from_utf8_lossy(&resp.body)
                    ))
                }
                Err(f) => last = f.code(),
            }
        }
        Err(format!("{method} {path}: gave up after retries ({last})"))
    }

    /// Every item of a cursor-paginated listing (`path` has a query string).
    /// `max_pages` bounds the walk.
    pub async fn list_all(
        &self,
        path: &str,
        key: &str,
        max_pages: usize,
    ) -> Result<Vec<Value>, String> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..max_pages {
            let page_path = match &cursor {
                Some(c) => format!("{path}&cursor={c}"),
                None => path.to_owned(),
            };
            let mut last = String::new();
            let mut page = None;
            for attempt in 0..8u64 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                match self
                    .call(Method::GET, &page_path, Some(key), None, None)
                    .await
                {
                    Ok(r) if r.status == 200 => {
                        page = Some(r.json());
                        break;
                    }
                    Ok(r) if r.status == 429 || r.status == 503 => {
                        last = r.error_code();
                        tokio::time::sleep(Duration::from_secs(r.retry_after.unwrap_or(1).min(5)))
                            .await;
                    }
                    Ok(r) => {
                        return Err(format!(
                            "GET {page_path}: {} {}",
                            r.status,
                            String::from_utf8_lossy(&r.body)
                        ))
                    }
                    Err(f) => last = f.code(),
                }
            }
            let page = page.ok_or_else(|| format!("GET {page_path}: gave up ({last})"))?;
            if let Some(data) = page["data"].as_array() {
                items.extend(data.iter().cloned());
            }
            match page["pagination"]["next_cursor"].as_str() {
                Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
                _ => return Ok(items),
            }
        }
        Err(format!("GET {path}: more than {max_pages} pages"))
    }
}
