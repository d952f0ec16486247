//! Sending one webhook attempt. `Transport` is the seam between the retry
//! machinery and the network: production uses `HttpTransport` (hyper-util's
//! client with keep-alive, rustls for https, connect and total timeouts, no
//! redirects followed, the response body never read); the paused-clock retry
//! tests use a scripted transport.

use super::ssrf;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// One signed request to make.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub url: String,
    pub body: Bytes,
    pub headers: Vec<(&'static str, String)>,
}

/// What came of an attempt. Only `Status(200)` acknowledges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Status(u16),
    /// No answer: refused by the SSRF guard, connect or DNS failure, timeout.
    Error(String),
}

pub trait Transport: Send + Sync + 'static {
    fn send(&self, attempt: Attempt) -> impl Future<Output = Outcome> + Send;
}

/// A DNS resolver that refuses names resolving to forbidden addresses, so
/// the client connects only to vetted addresses.
#[derive(Clone)]
pub struct VettedResolver {
    allow_private: bool,
}

type ResolveFuture =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, std::io::Error>> + Send>>;

impl tower_service::Service<Name> for VettedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = ResolveFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            ssrf::resolve(name.as_str(), 0, allow_private)
                .await
                .map(Vec::into_iter)
                .map_err(|refused| {
                    std::io::Error::new(std::io::ErrorKind::PermissionDenied, refused.0)
                })
        })
    }
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector<VettedResolver>>, Full<Bytes>>;

pub struct HttpTransport {
    client: HttpsClient,
    allow_private: bool,
    total_timeout: Duration,
}

impl HttpTransport {
    pub fn new(
        allow_private: bool,
        connect_timeout: Duration,
        total_timeout: Duration,
    ) -> HttpTransport {
        let mut http = HttpConnector::new_with_resolver(VettedResolver { allow_private });
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(8)
            .build(https);
        HttpTransport {
            client,
            allow_private,
            total_timeout,
        }
    }
}

impl Transport for HttpTransport {
    async fn send(&self, attempt: Attempt) -> Outcome {
        // IP literals skip the resolver, so vet the URL itself every time.
        if let Err(refused) = ssrf::vet_url(&attempt.url, self.allow_private) {
            return Outcome::Error(refused.0);
        }
        let mut builder = hyper::Request::post(attempt.url.as_str())
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("tijori-webhooks/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in &attempt.headers {
            builder = builder.header(*name, value.as_str());
        }
        let request = match builder.body(Full::new(attempt.body)) {
            Ok(r) => r,
            Err(e) => return Outcome::Error(format!("bad request: {e}")),
        };
        match tokio::time::timeout(self.total_timeout, self.client.request(request)).await {
            // Only the status matters; the body is dropped unread (the
            // connection is then not reused, which bounds what we read).
            Ok(Ok(response)) => Outcome::Status(response.status().as_u16()),
            Ok(Err(e)) => Outcome::Error(format!("{e}")),
            Err(_) => Outcome::Error(format!(
                "no answer within {} ms",
                self.total_timeout.as_millis()
            )),
        }
    }
}
