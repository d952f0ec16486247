//! Request ids (SPEC §16): every response carries `X-Request-Id`, error
//! bodies carry it as `error.request_id`, and the request log line names
//! it. A caller's own id is kept when it is 1–64 characters of
//! `[A-Za-z0-9._-]`; otherwise the server makes one, `req_` + a UUIDv7.
//!
//! The id lives in a task-local for the duration of the request, so the
//! one function that renders errors (`error::rejection`) finds it without
//! every handler passing it along.

use hyper::header::HeaderValue;
use hyper::HeaderMap;

pub const HEADER: &str = "x-request-id";

/// Longest caller-supplied request id kept.
const CALLER_ID_MAX: usize = 64;

tokio::task_local! {
    static CURRENT: RequestId;
}

/// A request's id, held as the header value it is sent as: a caller's id
/// shares the request's buffer, and every copy (task-local, response
/// header, error body) is a reference count, not a new string. Only ASCII
/// letters, digits, `.`, `_` and `-` ever get in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The caller's `X-Request-Id` if exactly one is given and it is
    /// acceptable, else a fresh one.
    pub fn from_headers(headers: &HeaderMap) -> RequestId {
        let mut given = headers.get_all(HEADER).iter();
        match (given.next(), given.next()) {
            (Some(value), None) if acceptable(value.as_bytes()) => RequestId(value.clone()),
            _ => RequestId::fresh(),
        }
    }

    pub fn fresh() -> RequestId {
        const PREFIX: &[u8; 4] = b"req_";
        let mut text = [0u8; PREFIX.len() + uuid::fmt::Simple::LENGTH];
        text[..PREFIX.len()].copy_from_slice(PREFIX);
        uuid::Uuid::now_v7()
            .simple()
            .encode_lower(&mut text[PREFIX.len()..]);
        // Lowercase hex after a fixed prefix: always a valid value.
        RequestId(HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static("req_")))
    }

    pub fn as_str(&self) -> &str {
        // Every id is checked ASCII (`acceptable`, or made by `fresh`).
        self.0.to_str().unwrap_or_default()
    }

    pub fn header_value(&self) -> Option<HeaderValue> {
        Some(self.0.clone())
    }

    /// Runs `f` with this id as the current request's.
    pub async fn scope<F: std::future::Future>(self, f: F) -> F::Output {
        CURRENT.scope(self, f).await
    }

    /// The id of the request being answered, if any.
    pub fn current() -> Option<RequestId> {
        CURRENT.try_with(Clone::clone).ok()
    }
}

fn acceptable(id: &[u8]) -> bool {
    (1..=CALLER_ID_MAX).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(HEADER, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn a_callers_id_is_kept_when_it_is_acceptable() {
        assert_eq!(
            RequestId::from_headers(&headers(&["abc.DEF_1-2"])).as_str(),
            "abc.DEF_1-2"
        );
        let longest = "a".repeat(64);
        assert_eq!(
            RequestId::from_headers(&headers(&[&longest])).as_str(),
            longest
        );
    }

    #[test]
    fn anything_else_gets_a_fresh_id() {
        for bad in [
            vec!["a".repeat(65)],
            vec!["has space".to_owned()],
            vec!["slash/".to_owned()],
            vec!["".to_owned()],
            vec!["one".to_owned(), "two".to_owned()],
            vec![],
        ] {
            let refs: Vec<&str> = bad.iter().map(String::as_str).collect();
            let id = RequestId::from_headers(&headers(&refs));
            assert!(id.as_str().starts_with("req_"), "{bad:?} → {id:?}");
            assert_eq!(id.as_str().len(), 4 + 32);
        }
    }

    #[tokio::test]
    async fn the_current_id_is_visible_inside_its_scope_only() {
        assert_eq!(RequestId::current(), None);
        let id = RequestId::fresh();
        let seen = id.clone().scope(async { RequestId::current() }).await;
        assert_eq!(seen, Some(id));
        assert_eq!(RequestId::current(), None);
    }
}
