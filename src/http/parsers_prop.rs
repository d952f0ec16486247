//! Property tests of the HTTP layer's parsers of outside input (issue 11):
//! JSON bodies, query strings, cursors, request ids and content types never
//! panic on any input, round-trip where they have a canonical form, and
//! refuse a duplicate key wherever it hides.

use super::handlers::cursor;
use super::request::{require_json_content_type, JsonBody, Query};
use super::request_id::RequestId;
use domain::{PaymentId, Rejection};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::HeaderMap;
use proptest::prelude::*;
use serde_json::{Map, Value};

/// JSON values without duplicate keys (a map cannot hold two), a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    proptest::collection::btree_map(any::<String>(), json_value(), 0..8)
        .prop_map(|m| m.into_iter().collect())
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn any_bytes_are_a_body_or_a_clear_refusal(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        match JsonBody::parse(&bytes) {
            Ok(_) => {}
            Err(Rejection::InvalidRequest(_)) => {}
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn objects_round_trip(object in json_object()) {
        let text = serde_json::to_vec(&Value::Object(object.clone())).unwrap();
        let body = JsonBody::parse(&text).unwrap();
        prop_assert_eq!(body.value(), Value::Object(object));
    }

    #[test]
    fn a_duplicate_key_is_refused_at_any_depth(
        key in any::<String>(),
        a in json_value(),
        b in json_value(),
        depth in 0usize..4,
    ) {
        let k = serde_json::to_string(&key).unwrap();
        let mut text = format!(
            "{{{k}:{},{k}:{}}}",
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        for level in 0..depth {
            text = if level % 2 == 0 {
                format!("{{\"wrap\":{text},\"x\":1}}")
            } else {
                format!("{{\"list\":[1,{text}]}}")
            };
        }
        let refused = JsonBody::parse(text.as_bytes());
        prop_assert!(
            matches!(&refused, Err(Rejection::InvalidRequest(m)) if m.contains("duplicate key")),
            "{}: {:?}", text, refused.err()
        );
    }

    #[test]
    fn any_query_string_parses_or_is_refused(raw in any::<String>()) {
        if let Ok(q) = Query::parse(Some(&raw)) {
            let _ = q.check(&["from", "to", "limit", "cursor"]);
            let _ = q.limit();
            let _ = q.timestamp("from");
            let _ = q.money("min_amount");
            let _ = cursor::<PaymentId>(&q, |id| *id.as_bytes());
        }
    }

    #[test]
    fn encoded_queries_round_trip(
        pairs in proptest::collection::vec(("[a-z_]{1,8}".prop_map(String::from), any::<String>()), 0..10),
    ) {
        let raw: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        let q = Query::parse(Some(&raw.join("&"))).unwrap();
        for (k, _) in &pairs {
            // `get` answers the first value given for a name (a repeated name
            // is refused by `check`), and treats an empty value as absent.
            let first = pairs.iter().find(|(k2, _)| k2 == k).map(|(_, v)| v.as_str()).unwrap();
            let expected = (!first.is_empty()).then_some(first);
            prop_assert_eq!(q.get(k), expected);
        }
    }

    #[test]
    fn malformed_percent_escapes_are_refused(hex in "[^0-9A-Fa-f]{1,2}") {
        let raw = format!("a=%{hex}");
        prop_assert!(Query::parse(Some(&raw)).is_err(), "{}", raw);
    }

    #[test]
    fn a_signed_or_short_escape_is_refused(sign in "[+-]", digit in "[0-9a-f]") {
        let raw = format!("a=%{sign}{digit}");
        prop_assert!(Query::parse(Some(&raw)).is_err(), "{}", raw);
        let raw = format!("a=%{digit}");
        prop_assert!(Query::parse(Some(&raw)).is_err(), "{}", raw);
    }

    #[test]
    fn request_ids_and_content_types_never_panic(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..3)) {
        let mut headers = HeaderMap::new();
        for v in &values {
            if let Ok(value) = HeaderValue::from_bytes(v) {
                headers.append("x-request-id", value.clone());
                headers.append(CONTENT_TYPE, value);
            }
        }
        let id = RequestId::from_headers(&headers);
        prop_assert!(id.header_value().is_some());
        prop_assert!((1..=64).contains(&id.as_str().len()) || id.as_str().starts_with("req_"));
        let _ = require_json_content_type(&headers);
    }
}
