//! Reading requests: the JSON body as an object with typed, bounded field
//! accessors that produce SPEC §2 errors, and the query string.

use domain::{Money, Rejection, Timestamp};
use serde_json::{Map, Value};

/// A request body that must be a JSON object.
pub struct JsonBody(Map<String, Value>);

impl JsonBody {
    /// Parses `bytes`; an empty body (no bytes at all) is an empty object.
    /// Anything else must be a JSON object: white space alone is not JSON.
    pub fn parse(bytes: &[u8]) -> Result<JsonBody, Rejection> {
        if bytes.is_empty() {
            return Ok(JsonBody(Map::new()));
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => {
                refuse_duplicate_keys(bytes)?;
                Ok(JsonBody(map))
            }
            Ok(_) => Err(Rejection::InvalidRequest(
                "the body must be a JSON object".into(),
            )),
            Err(e) => Err(Rejection::InvalidRequest(format!("malformed JSON: {e}"))),
        }
    }

    pub fn value(&self) -> Value {
        Value::Object(self.0.clone())
    }

    fn present(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// Refuses an empty body or `{}`: a PATCH that names nothing to change
    /// is a client mistake, not a successful no-op.
    pub fn require_some_field(&self) -> Result<(), Rejection> {
        if self.0.is_empty() {
            return Err(Rejection::InvalidRequest(
                "the body must be a JSON object with at least one field to change".into(),
            ));
        }
        Ok(())
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Fails with `missing_fields` naming every field of `names` that is
    /// absent, null or an empty string.
    pub fn require(&self, names: &[&str]) -> Result<(), Rejection> {
        let missing: Vec<String> = names
            .iter()
            .filter(|n| match self.present(n) {
                None => true,
                Some(Value::String(s)) => s.trim().is_empty(),
                Some(_) => false,
            })
            .map(|n| (*n).to_owned())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Rejection::MissingFields(missing))
        }
    }

    /// An optional string of at most `max_chars` characters.
    pub fn string(&self, name: &str, max_chars: usize) -> Result<Option<String>, Rejection> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::String(s)) => {
                if s.chars().count() > max_chars {
                    return Err(Rejection::InvalidRequest(format!(
                        "{name} is longer than {max_chars} characters"
                    )));
                }
                if s.chars().any(char::is_control) {
                    return Err(Rejection::InvalidRequest(format!(
                        "{name} contains control characters"
                    )));
                }
                Ok(Some(s.clone()))
            }
            Some(_) => Err(Rejection::InvalidRequest(format!(
                "{name} must be a string"
            ))),
        }
    }

    /// An optional string that, when given, must not be blank (names).
    pub fn non_blank(&self, name: &str, max_chars: usize) -> Result<Option<String>, Rejection> {
        match self.string(name, max_chars)? {
            Some(s) if s.trim().is_empty() => Err(Rejection::InvalidRequest(format!(
                "{name} must not be blank"
            ))),
            other => Ok(other),
        }
    }

    /// A string that `require` has already checked for.
    pub fn required_string(&self, name: &str, max_chars: usize) -> Result<String, Rejection> {
        self.string(name, max_chars)?
            .ok_or_else(|| Rejection::MissingFields(vec![name.to_owned()]))
    }

    /// An amount: JSON number or decimal string, exact. Any other JSON type
    /// is a wrong type (`invalid_request`), not a bad amount.
    pub fn money(&self, name: &str) -> Result<Option<Money>, Rejection> {
        match self.present(name) {
            Some(Value::Number(_) | Value::String(_)) | None => {
                self.present(name).map(Money::from_json).transpose()
            }
            Some(_) => Err(Rejection::InvalidRequest(format!(
                "{name} must be a number or a decimal string"
            ))),
        }
    }

    /// A non-negative fee or setting amount: zero (`0`, `0.00`, `"0.0"`)
    /// is allowed, otherwise as `money`.
    pub fn money_or_zero(&self, name: &str) -> Result<Option<Money>, Rejection> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::Number(n)) => Money::parse_non_negative(n.as_str()).map(Some),
            Some(Value::String(s)) => Money::parse_non_negative(s).map(Some),
            Some(_) => Err(Rejection::InvalidRequest(format!(
                "{name} must be a number or a decimal string"
            ))),
        }
    }

    pub fn u32(&self, name: &str, max: u32) -> Result<Option<u32>, Rejection> {
        match self.present(name) {
            None => Ok(None),
            // JSON has one number type: `124.0` is the whole number 124.
            Some(Value::Number(n)) => match whole_number(n.as_str()).parse::<u32>() {
                Ok(v) if v <= max => Ok(Some(v)),
                _ => Err(Rejection::InvalidRequest(format!(
                    "{name} must be a whole number from 0 to {max}"
                ))),
            },
            Some(_) => Err(Rejection::InvalidRequest(format!(
                "{name} must be a number"
            ))),
        }
    }

    /// An optional JSON object of at most `max_bytes` serialised.
    pub fn object(&self, name: &str, max_bytes: usize) -> Result<Option<Value>, Rejection> {
        match self.present(name) {
            None => Ok(None),
            Some(v @ Value::Object(_)) => {
                if serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX) > max_bytes {
                    return Err(Rejection::InvalidRequest(format!(
                        "{name} is larger than {max_bytes} bytes"
                    )));
                }
                Ok(Some(v.clone()))
            }
            Some(_) => Err(Rejection::InvalidRequest(format!(
                "{name} must be an object"
            ))),
        }
    }

    /// An optional boolean.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, Rejection> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Rejection::InvalidRequest(format!(
                "{name} must be true or false"
            ))),
        }
    }

    /// The array `name` of objects, at most `max` of them (absent: `None`).
    pub fn objects(&self, name: &str, max: usize) -> Result<Option<Vec<JsonBody>>, Rejection> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::Array(items)) => {
                if items.len() > max {
                    return Err(Rejection::InvalidFields {
                        message: format!("{name} holds more than {max} items"),
                        fields: vec![name.to_owned()],
                    });
                }
                Ok(Some(
                    items
                        .iter()
                        .map(|item| match item {
                            Value::Object(map) => JsonBody(map.clone()),
                            _ => JsonBody(Map::new()),
                        })
                        .collect(),
                ))
            }
            Some(_) => Err(Rejection::InvalidRequest(format!(
                "{name} must be an array"
            ))),
        }
    }

    /// The sub-object `name` (absent: `None`).
    pub fn nested(&self, name: &str) -> Result<Option<JsonBody>, Rejection> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(JsonBody(map.clone()))),
            Some(_) => Err(Rejection::InvalidRequest(format!(
                "{name} must be an object"
            ))),
        }
    }
}

/// Decoded query parameters.
pub struct Query(Vec<(String, String)>);

/// Most query parameters a request may carry (no route takes more than 9).
const QUERY_PARAMS_MAX: usize = 64;

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Query, Rejection> {
        let mut pairs = Vec::new();
        for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            if pairs.len() == QUERY_PARAMS_MAX {
                return Err(Rejection::InvalidRequest(format!(
                    "more than {QUERY_PARAMS_MAX} query parameters"
                )));
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((decode(k)?, decode(v)?));
        }
        Ok(Query(pairs))
    }

    /// Refuses a parameter the route does not take, an empty value
    /// (`?to=`, `?to`) and a parameter given twice: each would otherwise be
    /// silently ignored or ambiguous (SPEC §17).
    pub fn check(&self, allowed: &[&str]) -> Result<(), Rejection> {
        for (i, (name, value)) in self.0.iter().enumerate() {
            let shown: String = name.chars().take(40).collect();
            if !allowed.contains(&name.as_str()) {
                let takes = if allowed.is_empty() {
                    "this route takes no query parameters".to_owned()
                } else {
                    format!("this route takes {}", allowed.join(", "))
                };
                return Err(Rejection::InvalidRequest(format!(
                    "unknown query parameter '{shown}': {takes}"
                )));
            }
            if value.is_empty() {
                return Err(Rejection::InvalidRequest(format!(
                    "query parameter '{shown}' is empty"
                )));
            }
            if self.0[..i].iter().any(|(earlier, _)| earlier == name) {
                return Err(Rejection::InvalidRequest(format!(
                    "query parameter '{shown}' is given more than once"
                )));
            }
        }
        Ok(())
    }

    /// The query without its empty parameters (an HTML form sends every
    /// field, filled in or not; the portal's pages pass the rest on).
    pub fn without_empty(self) -> Query {
        Query(self.0.into_iter().filter(|(_, v)| !v.is_empty()).collect())
    }

    /// Its parameters, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The query with `name` set to `value` (replacing any earlier value).
    pub fn with(mut self, name: &str, value: &str) -> Query {
        self.0.retain(|(k, _)| k != name);
        self.0.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub fn timestamp(&self, name: &str) -> Result<Option<Timestamp>, Rejection> {
        self.get(name)
            .map(|v| {
                Timestamp::parse_rfc3339(v).ok_or_else(|| {
                    Rejection::InvalidRequest(format!("{name} must be an RFC 3339 timestamp"))
                })
            })
            .transpose()
    }

    pub fn money(&self, name: &str) -> Result<Option<Money>, Rejection> {
        self.get(name)
            .map(|v| {
                Money::parse_amount(v).map_err(|_| {
                    Rejection::InvalidRequest(format!("{name} must be a positive amount"))
                })
            })
            .transpose()
    }

    /// `limit`: default 50, at most 500.
    pub fn limit(&self) -> Result<usize, Rejection> {
        match self.get("limit") {
            None => Ok(50),
            // Digits only: `usize::from_str` would also take a `+` sign.
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=500).contains(&n) && v.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
                _ => Err(Rejection::InvalidRequest(
                    "limit must be from 1 to 500".into(),
                )),
            },
        }
    }
}

/// `text` without a fraction of zeros (`124.0` → `124`); anything else as is.
fn whole_number(text: &str) -> &str {
    match text.split_once('.') {
        Some((whole, zeros)) if !zeros.is_empty() && zeros.bytes().all(|b| b == b'0') => whole,
        _ => text,
    }
}

fn decode(text: &str) -> Result<String, Rejection> {
    let bad = || Rejection::InvalidRequest("malformed query string".into());
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                // Exactly two hex digits (`from_str_radix` alone would take "+1").
                let hex = text
                    .get(i + 1..i + 3)
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .ok_or_else(bad)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Refuses a request body that is not `application/json` (a `charset`
/// parameter is fine): a JSON body sent as text/plain or a form is a
/// client mistake, or a cross-site request a browser sent without a
/// preflight (SPEC §17).
pub fn require_json_content_type(headers: &hyper::HeaderMap) -> Result<(), Rejection> {
    let refused = || {
        Rejection::InvalidRequest(
            "the request body must be sent as Content-Type: application/json".into(),
        )
    };
    let mut values = headers.get_all(hyper::header::CONTENT_TYPE).iter();
    let value = match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().map_err(|_| refused())?,
        _ => return Err(refused()),
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(refused());
    }
    for parameter in parts {
        let (name, _) = parameter.split_once('=').ok_or_else(refused)?;
        if !name.trim().eq_ignore_ascii_case("charset") {
            return Err(refused());
        }
    }
    Ok(())
}

/// Refuses a JSON text with a duplicate key in any object, at any depth.
/// serde_json keeps the last of duplicates, another parser (a proxy, a
/// signer) may keep the first: the two would act on different requests.
/// Called on text that already parsed, so any error here is a duplicate.
fn refuse_duplicate_keys(bytes: &[u8]) -> Result<(), Rejection> {
    serde_json::from_slice::<UniqueKeys>(bytes)
        .map(|_| ())
        .map_err(|e| Rejection::InvalidRequest(format!("malformed JSON: {e}")))
}

/// Walks a JSON value, failing on the first object with a repeated key.
struct UniqueKeys;

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<UniqueKeys, D::Error> {
        d.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_i64<E>(self, _: i64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_u64<E>(self, _: u64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_f64<E>(self, _: f64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_str<E>(self, _: &str) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueKeys, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
        let mut seen = std::collections::BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<UniqueKeys>()?;
            if seen.contains(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key {shown:?}"
                )));
            }
            seen.insert(key);
        }
        Ok(UniqueKeys)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        for body in [
            r#"{"amount":5,"amount":5000}"#,
            r#"{"a":{"b":1,"b":2}}"#,
            r#"{"a":[1,{"x":"1","y":2,"x":3}]}"#,
            r#"{"metadata":{"k":{"k":1}},"metadata":{}}"#,
        ] {
            let refused = JsonBody::parse(body.as_bytes()).err();
            assert!(
                matches!(&refused, Some(Rejection::InvalidRequest(m)) if m.contains("duplicate key")),
                "{body}: {refused:?}"
            );
        }
        // The same key in sibling objects, numbers of every form and
        // nested arrays are fine.
        let ok = r#"{"a":{"k":1},"b":{"k":2.50},"c":[{"k":1e3},{"k":-1}],"d":null,"e":true}"#;
        assert!(JsonBody::parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn only_application_json_is_a_body_type() {
        let check = |values: &[&str]| {
            let mut headers = hyper::HeaderMap::new();
            for v in values {
                headers.append(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_str(v).unwrap(),
                );
            }
            require_json_content_type(&headers).is_ok()
        };
        assert!(check(&["application/json"]));
        assert!(check(&["Application/JSON; charset=utf-8"]));
        assert!(check(&["application/json;charset=UTF-8"]));
        for refused in [
            &[][..],
            &["text/plain"],
            &["application/x-www-form-urlencoded"],
            &["application/xml"],
            &["application/json-patch+json"],
            &["application/jsonx"],
            &["application/json; boundary=x"],
            &["application/json; charset"],
            &["application/json", "application/json"],
        ] {
            assert!(!check(refused), "{refused:?}");
        }
    }

    use super::*;

    #[test]
    fn missing_fields_lists_every_one() {
        let body = JsonBody::parse(br#"{"amount": 10, "payer": "  ", "order_id": null}"#).unwrap();
        assert_eq!(
            body.require(&["order_id", "amount", "payer", "currency"]),
            Err(Rejection::MissingFields(vec![
                "order_id".into(),
                "payer".into(),
                "currency".into()
            ]))
        );
    }

    #[test]
    fn malformed_and_non_object_bodies() {
        assert!(matches!(
            JsonBody::parse(b"{"),
            Err(Rejection::InvalidRequest(_))
        ));
        assert!(matches!(
            JsonBody::parse(b"[1]"),
            Err(Rejection::InvalidRequest(_))
        ));
        assert!(JsonBody::parse(b"").is_ok());
        assert!(matches!(
            JsonBody::parse(b"  "),
            Err(Rejection::InvalidRequest(_))
        ));
    }

    #[test]
    fn typed_accessors() {
        let body =
            JsonBody::parse(br#"{"a": 12.5, "s": 3, "n": "x", "fee": 0, "big": 99999999999}"#)
                .unwrap();
        assert_eq!(body.money("a").unwrap().map(Money::paise), Some(1_250));
        assert!(body.string("s", 10).is_err());
        assert!(body.string("n", 0).is_err());
        assert_eq!(body.money_or_zero("fee").unwrap(), Some(Money::ZERO));
        for zero in [r#"{"f": "0.00"}"#, r#"{"f": 0.0}"#, r#"{"f": "0"}"#] {
            let b = JsonBody::parse(zero.as_bytes()).unwrap();
            assert_eq!(b.money_or_zero("f").unwrap(), Some(Money::ZERO), "{zero}");
        }
        let b = JsonBody::parse(br#"{"f": "0.001"}"#).unwrap();
        assert!(b.money_or_zero("f").is_err());
        assert!(body.u32("big", 10_000).is_err());
        let b = JsonBody::parse(br#"{"w": 124.0, "x": 1.5, "y": 1e2, "z": "5"}"#).unwrap();
        assert_eq!(b.u32("w", 1_000).unwrap(), Some(124));
        for name in ["x", "y", "z"] {
            assert!(b.u32(name, 1_000).is_err(), "{name}");
        }
    }

    #[test]
    fn query_decoding() {
        let q = Query::parse(Some(
            "status=completed&from=2026-04-05T06%3A00%3A00.000Z&x=a+b&limit=",
        ))
        .unwrap();
        assert_eq!(q.get("status"), Some("completed"));
        assert_eq!(q.get("x"), Some("a b"));
        assert_eq!(q.get("limit"), None);
        assert!(q.timestamp("from").unwrap().is_some());
        assert!(Query::parse(Some("a=%zz")).is_err());
        assert!(Query::parse(Some("a=%")).is_err());
        assert!(Query::parse(Some("limit=501")).unwrap().limit().is_err());
        assert!(Query::parse(Some("limit=%2B5")).unwrap().limit().is_err());
        assert_eq!(Query::parse(Some("limit=005")).unwrap().limit(), Ok(5));
    }

    #[test]
    fn query_check_refuses_unknown_empty_and_repeated() {
        let allowed = ["status", "to"];
        let ok = Query::parse(Some("status=completed&to=2026-04-05T06%3A00%3A00.000Z")).unwrap();
        assert!(ok.check(&allowed).is_ok());
        assert!(Query::parse(None).unwrap().check(&[]).is_ok());
        for bad in [
            "to=",
            "to",
            "statuss=x",
            "status=a&status=b",
            "=x",
            "status=a&x=1",
        ] {
            let q = Query::parse(Some(bad)).unwrap();
            assert!(
                matches!(q.check(&allowed), Err(Rejection::InvalidRequest(_))),
                "{bad} accepted"
            );
        }
        assert!(Query::parse(Some("a=1")).unwrap().check(&[]).is_err());
        let many = vec!["status=a"; 65].join("&");
        assert!(Query::parse(Some(&many)).is_err());
    }
}
