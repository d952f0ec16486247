//! Responses: the success and error envelopes of SPEC §1 and the one place
//! where a `Rejection` becomes an HTTP status (`Rejection::status`).

use bytes::Bytes;
use domain::{Rejection, Timestamp};
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};

pub type Body = Full<Bytes>;

fn with_body(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `{"success": true, "data": …}` with `status`, serialised straight from
/// `data` (no intermediate `Value`).
pub fn ok<T: Serialize>(status: StatusCode, data: &T) -> Response<Body> {
    #[derive(Serialize)]
    struct Envelope<'a, T> {
        success: bool,
        data: &'a T,
    }
    let body = serde_json::to_vec(&Envelope {
        success: true,
        data,
    })
    .unwrap_or_default();
    with_body(status, "application/json", body)
}

/// A list with its pagination block.
pub fn page<T: Serialize>(
    items: &[T],
    limit: usize,
    next_cursor: Option<String>,
) -> Response<Body> {
    #[derive(Serialize)]
    struct Pagination {
        limit: usize,
        has_more: bool,
        next_cursor: Option<String>,
    }
    #[derive(Serialize)]
    struct Envelope<'a, T> {
        success: bool,
        data: &'a [T],
        pagination: Pagination,
    }
    let body = Envelope {
        success: true,
        data: items,
        pagination: Pagination {
            limit,
            has_more: next_cursor.is_some(),
            next_cursor,
        },
    };
    with_body(
        StatusCode::OK,
        "application/json",
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

pub fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Vec<u8>>,
) -> Response<Body> {
    with_body(status, content_type, body.into())
}

/// The seed's error envelope, plus `details` where they help.
pub fn rejection(rejection: &Rejection) -> Response<Body> {
    metrics::counter!(domain::metric_names::HTTP_REJECTIONS, "code" => rejection.code())
        .increment(1);
    if let Rejection::RateLimitExceeded { .. } = rejection {
        metrics::counter!(domain::metric_names::RATE_LIMITED).increment(1);
    }
    let status =
        StatusCode::from_u16(rejection.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut error = json!({
        "code": rejection.code(),
        "message": rejection.message(),
        "status": rejection.status(),
        "timestamp": Timestamp::now(),
    });
    if let Some(details) = details(rejection) {
        error["details"] = details;
    }
    if let Some(id) = crate::http::request_id::RequestId::current() {
        error["request_id"] = Value::String(id.as_str().to_owned());
    }
    let body = serde_json::to_vec(&json!({ "success": false, "error": error })).unwrap_or_default();
    let mut response = with_body(status, "application/json", body);
    if let Rejection::RateLimitExceeded { retry_after_secs } = rejection {
        if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
            response.headers_mut().insert("retry-after", value);
        }
    }
    response
}

fn details(rejection: &Rejection) -> Option<Value> {
    match rejection {
        Rejection::MissingFields(fields) => Some(json!({ "fields": fields })),
        Rejection::InvalidFields { fields, .. } => Some(json!({ "fields": fields })),
        Rejection::IdempotencyConflict { fields } => Some(json!({ "fields": fields })),
        Rejection::InvalidStatusTransition { from, to } => Some(json!({ "from": from, "to": to })),
        _ => None,
    }
}

/// The `error` object of the envelope for `rejection`, on its own (one
/// item's answer in a batch).
pub fn error_value(rejection: &Rejection) -> Value {
    metrics::counter!(domain::metric_names::HTTP_REJECTIONS, "code" => rejection.code())
        .increment(1);
    let mut error = json!({
        "code": rejection.code(),
        "message": rejection.message(),
        "status": rejection.status(),
    });
    if let Some(details) = details(rejection) {
        error["details"] = details;
    }
    error
}
