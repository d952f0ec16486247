//! The HTTP front end on raw hyper 1.x: an accept loop with a connection
//! cap, HTTP/1.1 keep-alive with a header read timeout (so slow clients
//! cannot hold connections), bodies capped at 64 KiB, and graceful shutdown.
//! Each request under `/api/`: authenticate → rate limit → route → read
//! body → handler; under `/api/v1` a request without a valid key is 401
//! whatever its path and method (SPEC §17). Other paths (the probes, the
//! portal with its own sessions) take no API key.

pub mod auth;
pub mod error;
pub mod handlers;
pub mod ratelimit;
pub mod request;
pub mod request_id;
pub mod router;
pub mod views;

#[cfg(test)]
mod parsers_prop;

use crate::config::Config;
use actors::{Directory, WalletHandle};
use bytes::Bytes;
use domain::metric_names as names;
use domain::{Rejection, UserStatus};
use error::Body;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use ratelimit::{RateLimiter, Verdict};
use request_id::RequestId;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use storage::Store;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Largest request body accepted (SPEC §1).
pub const BODY_MAX_BYTES: usize = 64 * 1024;

/// Everything a request handler may use.
pub struct App {
    pub wallets: WalletHandle,
    pub directory: Directory,
    pub webhooks: actors::webhook::WebhookHandle,
    pub store: Store,
    pub metrics: crate::metrics::Exporter,
    pub limiter: RateLimiter,
    pub config: Config,
    /// Checks daily statements against the ledger (`GET /statements/verify`).
    pub statements: Arc<actors::statements::Verifier>,
    /// False once shutdown has begun (`/readyz` answers 503).
    pub ready: AtomicBool,
    /// The web portal's sessions (SPEC §18).
    pub portal: crate::portal::Portal,
}

/// Serves `listener` until `shutdown` resolves, then stops accepting and
/// gives open connections `shutdown_grace_ms` to finish.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let connections = Arc::new(Semaphore::new(app.config.connections_max.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(app.config.header_read_timeout_ms))
        .keep_alive(true)
        .max_buf_size(BODY_MAX_BYTES + 16 * 1024);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(&app, req, peer).await) }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let open = metrics::gauge!(names::HTTP_CONNECTIONS_OPEN);
        open.increment(1.0);
        tokio::spawn(async move {
            let _ = conn.await;
            open.decrement(1.0);
            drop(permit);
        });
    }
    app.ready.store(false, Ordering::Release);
    drop(listener);
    let grace = Duration::from_millis(app.config.shutdown_grace_ms);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after the shutdown grace period");
    }
}

/// Answers one request; never fails (errors become envelopes).
pub async fn handle(app: &App, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let label = if crate::portal::owns(&path) {
        crate::portal::METRIC_LABEL
    } else {
        router::route(&method, &path).map_or("unmatched", |m| m.route.template())
    };
    let in_flight = metrics::gauge!(names::HTTP_REQUESTS_IN_FLIGHT);
    in_flight.increment(1.0);
    let request_id = RequestId::from_headers(req.headers());
    let mut response = request_id
        .clone()
        .scope(respond(app, req, &path, peer))
        .await;
    in_flight.decrement(1.0);
    common_headers(&mut response, &request_id);
    let method_label = metric_method(&method);
    metrics::counter!(names::HTTP_REQUESTS, "route" => label, "method" => method_label, "status" => response.status().as_str().to_owned())
        .increment(1);
    metrics::histogram!(names::HTTP_REQUEST_DURATION, "route" => label, "method" => method_label)
        .record(started.elapsed().as_secs_f64());
    tracing::debug!(
        request_id = request_id.as_str(),
        %method,
        route = label,
        status = response.status().as_u16(),
        elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

async fn respond(
    app: &App,
    req: Request<Incoming>,
    path: &str,
    peer: SocketAddr,
) -> Response<Body> {
    let path = path.to_owned();
    let is_api = path.starts_with("/api/");
    if crate::portal::owns(&path) {
        return crate::portal::handle(app, req, peer).await;
    }
    if !is_api {
        return match router::route(req.method(), &path) {
            Ok(m) => handlers::outside(app, m.route).await,
            Err(r) => with_allow(error::rejection(&r), &path),
        };
    }
    // Exactly one key header: with two, a proxy and Tijori could each act
    // on a different one, so more than one is no key at all (SPEC §17).
    let mut keys = req.headers().get_all("x-api-key").iter();
    let key = match (keys.next(), keys.next()) {
        (Some(v), None) => v.to_str().ok().map(str::to_owned),
        _ => None,
    };
    let caller = auth::authenticate(&app.directory, key.as_deref());
    let verdict = match &caller {
        Ok(c) => app
            .limiter
            .check(*c.id().as_bytes(), c.user.rate_limit_per_min),
        Err(_) => app
            .limiter
            .check(peer_key(&peer), app.config.rate_limit_per_min),
    };
    let route_error = router::route(req.method(), &path).err();
    // Under /api/v1 the key comes first (SPEC §17): without a valid one,
    // every path and method answers 401, so routing reveals nothing to an
    // unauthenticated caller. Other /api/ paths are simply unknown.
    let under_v1 = path == "/api/v1" || path.starts_with("/api/v1/");
    let mut response = match (caller, verdict.allowed) {
        (_, true) if !under_v1 => {
            let rejection = route_error.unwrap_or(Rejection::NotFound);
            with_allow(error::rejection(&rejection), &path)
        }
        // An unknown route or method, for an authenticated caller.
        (Ok(_), true) if route_error.is_some() => {
            let rejection = route_error.unwrap_or(Rejection::NotFound);
            with_allow(error::rejection(&rejection), &path)
        }
        (Ok(caller), true) => match api(app, req, &path, caller).await {
            Ok(response) => response,
            Err(rejection) => error::rejection(&rejection),
        },
        // Its user is being suspended for misuse: refused as suspended
        // from the threshold on, before the directory shows it.
        (Ok(_), false) if verdict.suspended => error::rejection(&Rejection::AccountSuspended),
        (Ok(caller), false) => {
            if verdict.misuse {
                suspend_for_misuse(app, &caller).await;
            }
            error::rejection(&Rejection::RateLimitExceeded {
                retry_after_secs: verdict.retry_after_secs,
            })
        }
        (Err(_), false) => error::rejection(&Rejection::RateLimitExceeded {
            retry_after_secs: verdict.retry_after_secs,
        }),
        (Err(rejection), true) => error::rejection(&rejection),
    };
    rate_headers(&mut response, &verdict);
    response
}

async fn api(
    app: &App,
    req: Request<Incoming>,
    path: &str,
    caller: auth::Caller,
) -> Result<Response<Body>, Rejection> {
    let matched = router::route(req.method(), path)?;
    let id = matched.id.map(str::to_owned);
    let (parts, body) = req.into_parts();
    let limit = match matched.route {
        router::Route::PayoutsBatch => handlers::payouts_batch::BODY_MAX_BYTES,
        _ => BODY_MAX_BYTES,
    };
    let body = read_body(app, &parts.headers, body, limit).await?;
    if !body.is_empty() {
        request::require_json_content_type(&parts.headers)?;
    }
    let query = request::Query::parse(parts.uri.query())?;
    query.check(matched.route.query_params())?;
    let ctx = handlers::Ctx {
        app,
        caller,
        id: id.as_deref(),
        query,
        body,
        headers: &parts.headers,
    };
    handlers::dispatch(matched.route, &ctx).await
}

pub(crate) async fn read_body(
    app: &App,
    headers: &hyper::HeaderMap,
    mut body: Incoming,
    limit: usize,
) -> Result<Bytes, Rejection> {
    let declared = headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let timeout = Duration::from_millis(app.config.body_read_timeout_ms);
    let drain_max = DRAIN_MAX_BYTES.max(limit.saturating_mul(2));
    if declared.is_some_and(|n| n > limit as u64) {
        if declared.is_some_and(|n| n <= drain_max as u64) {
            let _ = tokio::time::timeout(timeout, drain(&mut body, drain_max)).await;
        }
        return Err(Rejection::PayloadTooLarge);
    }
    let limited = Limited::new(&mut body, limit);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            let _ = tokio::time::timeout(timeout, drain(&mut body, drain_max)).await;
            Err(Rejection::PayloadTooLarge)
        }
        Ok(Err(_)) | Err(_) => Err(Rejection::InvalidRequest(
            "the request body could not be read".into(),
        )),
    }
}

/// Most bytes of an oversized body read and thrown away before the 413 is
/// sent. Without this the connection is closed under a client that is
/// still sending, which then sees a reset (EPIPE) instead of the 413.
const DRAIN_MAX_BYTES: usize = 1024 * 1024;

async fn drain(body: &mut Incoming, max: usize) {
    let mut seen = 0usize;
    while seen <= max {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, Bytes::len),
            Some(Err(_)) | None => return,
        }
    }
}

/// Adds `Allow` to a 405 (RFC 9110 §15.5.6).
fn with_allow(mut response: Response<Body>, path: &str) -> Response<Body> {
    if response.status() == hyper::StatusCode::METHOD_NOT_ALLOWED {
        let allowed = router::allowed_methods(path).join(", ");
        if let Ok(value) = HeaderValue::from_str(&allowed) {
            response.headers_mut().insert(hyper::header::ALLOW, value);
        }
    }
    response
}

/// A bounded set of method labels.
fn metric_method(method: &hyper::Method) -> &'static str {
    match *method {
        hyper::Method::GET => "GET",
        hyper::Method::POST => "POST",
        hyper::Method::PATCH => "PATCH",
        hyper::Method::HEAD => "HEAD",
        hyper::Method::PUT => "PUT",
        hyper::Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

pub(crate) fn peer_key(peer: &SocketAddr) -> ratelimit::BucketKey {
    let mut key = [0xffu8; 16];
    match peer.ip() {
        std::net::IpAddr::V4(ip) => key[12..].copy_from_slice(&ip.octets()),
        std::net::IpAddr::V6(ip) => key = ip.octets(),
    }
    key[0] = 0xfe; // never a UUIDv7 user id
    key
}

fn rate_headers(response: &mut Response<Body>, verdict: &Verdict) {
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", u64::from(verdict.limit)),
        ("x-ratelimit-remaining", u64::from(verdict.remaining)),
        ("x-ratelimit-reset", verdict.reset_secs),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
            headers.insert(name, v);
        }
    }
}

/// A key that keeps hitting its limit is suspended (`user.suspended`).
/// The request that crossed the threshold is answered once the suspension
/// is durable; its key's later requests are refused by the limiter's flag
/// meanwhile.
pub(crate) async fn suspend_for_misuse(app: &App, caller: &auth::Caller) {
    let id = caller.id();
    tracing::warn!(user = %id, "rate-limit misuse threshold reached; suspending the key's user");
    let patch = actors::UserPatch {
        status: Some(UserStatus::Suspended),
        ..Default::default()
    };
    // The platform acts (no actor); the request that crossed the threshold
    // is named.
    let audit = domain::AuditContext {
        actor_id: None,
        request_id: request_id::RequestId::current().map(|r| r.as_str().to_owned()),
        reason: Some("misuse".into()),
    };
    if let Err(r) = app.directory.update_as(id, patch, audit).await {
        tracing::error!(user = %id, rejection = %r, "automatic suspension failed");
    }
}

/// Headers on every response: its request id; no MIME sniffing; and no
/// caching, since every answer is per caller and may carry money.
fn common_headers(response: &mut Response<Body>, request_id: &RequestId) {
    let headers = response.headers_mut();
    if let Some(value) = request_id.header_value() {
        headers.insert(request_id::HEADER, value);
    }
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
}
