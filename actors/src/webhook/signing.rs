//! Webhook signatures (SPEC §7): `X-Webhook-Signature: t=<unix seconds>,
//! v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. During a secret rotation the
//! header carries one `v1` per valid secret. `verify` is the receiver's side,
//! with a constant-time comparison and a timestamp tolerance.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The signature header value for `body`, signed with every secret given
/// (the current one first).
pub fn header(secrets: &[&str], timestamp: i64, body: &[u8]) -> String {
    let mut value = format!("t={timestamp}");
    for secret in secrets {
        value.push_str(",v1=");
        value.push_str(&hex(&mac(secret, timestamp, body).finalize().into_bytes()));
    }
    value
}

/// Why a signature was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyError {
    Malformed,
    /// The timestamp is further than the tolerance from `now`.
    Stale,
    /// No `v1` matches.
    Mismatch,
}

/// Checks a signature header against `secret`: the timestamp must be within
/// `tolerance_secs` of `now_secs` and some `v1` must match (constant time).
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => {
                timestamp = Some(t.parse::<i64>().map_err(|_| VerifyError::Malformed)?)
            }
            Some(("v1", v)) => candidates.push(unhex(v).ok_or(VerifyError::Malformed)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed)?;
    if candidates.is_empty() {
        return Err(VerifyError::Malformed);
    }
    if (now_secs - timestamp).abs() > tolerance_secs {
        return Err(VerifyError::Stale);
    }
    let expected = mac(secret, timestamp, body);
    if candidates
        .iter()
        .any(|c| expected.clone().verify_slice(c).is_ok())
    {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies() {
        let body = br#"{"id":"evt_1"}"#;
        let h = header(&["whsec_a"], 1_775_368_800, body);
        assert!(h.starts_with("t=1775368800,v1="));
        assert_eq!(verify("whsec_a", &h, body, 1_775_368_800, 300), Ok(()));
        assert_eq!(
            verify("whsec_b", &h, body, 1_775_368_800, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify("whsec_a", &h, b"{}", 1_775_368_800, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify("whsec_a", &h, body, 1_775_369_200, 300),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify("whsec_a", "t=1,v1=zz", body, 1, 300),
            Err(VerifyError::Malformed)
        );
        assert_eq!(
            verify("whsec_a", "v1=00", body, 1, 300),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn rotation_signs_with_both_secrets() {
        let body = b"payload";
        let h = header(&["new", "old"], 10, body);
        assert_eq!(h.matches("v1=").count(), 2);
        assert_eq!(verify("new", &h, body, 10, 5), Ok(()));
        assert_eq!(verify("old", &h, body, 10, 5), Ok(()));
        assert_eq!(verify("other", &h, body, 10, 5), Err(VerifyError::Mismatch));
    }

    #[test]
    fn known_vector() {
        // HMAC-SHA256("key", "0.The quick brown fox jumps over the lazy dog")
        // computed independently with Python's hmac module.
        let h = header(&["key"], 0, b"The quick brown fox jumps over the lazy dog");
        assert_eq!(
            h,
            "t=0,v1=8511f28f7a1949f0c42772b447d68b2daf760f5f0439a20a17e3b4e7cd395763"
        );
    }
}
