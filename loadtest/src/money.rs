//! Exact money for the harness's own model: amounts are `u64` paise, parsed
//! from the API's JSON numbers or strings by their text (never a float),
//! fees by integer basis points rounded half-up to the paisa. This is an
//! independent re-implementation of SPEC §1/§5, so a rounding bug in the
//! server is not hidden by sharing its code.

use serde_json::Value;

/// Parses a decimal with at most two fraction digits (`5000`, `5000.5`,
/// `12.34`) into paise. Anything else (signs, exponents, three decimals) is
/// `None`.
pub fn parse_paise(text: &str) -> Option<u64> {
    let text = text.trim();
    let (int, frac) = match text.split_once('.') {
        Some((_, "")) => return None,
        Some((i, f)) => (i, f),
        None => (text, ""),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || (!frac.is_empty() && !digits(frac)) || frac.len() > 2 {
        return None;
    }
    let whole = int.parse::<u64>().ok()?.checked_mul(100)?;
    let cents = match frac.len() {
        0 => 0,
        1 => frac.parse::<u64>().ok()? * 10,
        _ => frac.parse::<u64>().ok()?,
    };
    whole.checked_add(cents)
}

/// The paise of a JSON amount (number or string), by its exact text.
pub fn value_paise(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => parse_paise(&n.to_string()),
        Value::String(s) => parse_paise(s),
        _ => None,
    }
}

/// A signed decimal (`-50.5`, `0`, `1234.56`) into signed paise: an
/// optional leading `-`, then what `parse_paise` accepts. For ledger
/// balances, which may be negative (the debit-normal `rail:` accounts).
pub fn parse_signed_paise(text: &str) -> Option<i128> {
    let text = text.trim();
    match text.strip_prefix('-') {
        Some(rest) if !rest.starts_with(['-', '+', ' ']) => {
            parse_paise(rest).map(|p| -i128::from(p))
        }
        Some(_) => None,
        None => parse_paise(text).map(i128::from),
    }
}

/// The signed paise of a JSON amount (number or string), by its exact text.
pub fn value_signed_paise(value: &Value) -> Option<i128> {
    match value {
        Value::Number(n) => parse_signed_paise(&n.to_string()),
        Value::String(s) => parse_signed_paise(s),
        _ => None,
    }
}

/// The exact text of a JSON amount, for reports (`none` when absent).
pub fn value_text(value: &Value) -> String {
    match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Null => "none".into(),
        other => other.to_string(),
    }
}

/// `12.34`, always with two fraction digits.
pub fn render(paise: u64) -> String {
    format!("{}.{:02}", paise / 100, paise % 100)
}

/// A signed amount of paise, for differences in reports.
pub fn render_signed(paise: i128) -> String {
    let sign = if paise < 0 { "-" } else { "" };
    let abs = paise.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// `bps` basis points of `amount`, rounded half-up to the paisa.
pub fn bps_half_up(amount: u64, bps: u32) -> u64 {
    let scaled = u128::from(amount) * u128::from(bps) + 5_000;
    u64::try_from(scaled / 10_000).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_decimals() {
        assert_eq!(parse_paise("5000"), Some(500_000));
        assert_eq!(parse_paise("5000.5"), Some(500_050));
        assert_eq!(parse_paise("12.34"), Some(1_234));
        assert_eq!(parse_paise("0.01"), Some(1));
        assert_eq!(parse_paise("1.234"), None);
        assert_eq!(parse_paise("-1"), None);
        assert_eq!(parse_paise("1e3"), None);
        assert_eq!(parse_paise("5."), None);
        assert_eq!(parse_paise(".5"), None);
        assert_eq!(parse_paise(""), None);
    }

    #[test]
    fn json_amounts_and_rendering() {
        let v: Value = serde_json::from_str(r#"{"a": 5000.5, "b": "12.30", "c": true}"#)
            .unwrap_or(Value::Null);
        assert_eq!(value_paise(&v["a"]), Some(500_050));
        assert_eq!(value_paise(&v["b"]), Some(1_230));
        assert_eq!(value_paise(&v["c"]), None);
        assert_eq!(render(1_230), "12.30");
        assert_eq!(render(5), "0.05");
        assert_eq!(render_signed(-1), "-0.01");
    }

    #[test]
    fn parses_signed_decimals() {
        assert_eq!(parse_signed_paise("-50.5"), Some(-5_050));
        assert_eq!(parse_signed_paise("0"), Some(0));
        assert_eq!(parse_signed_paise("-0.00"), Some(0));
        assert_eq!(parse_signed_paise("12.34"), Some(1_234));
        assert_eq!(parse_signed_paise("--1"), None);
        assert_eq!(parse_signed_paise("-"), None);
        assert_eq!(parse_signed_paise("+1"), None);
        assert_eq!(parse_signed_paise("-0.001"), None);
        let v: Value =
            serde_json::from_str(r#"{"a": -50.5, "b": "0.01", "c": 0.001}"#).unwrap_or(Value::Null);
        assert_eq!(value_signed_paise(&v["a"]), Some(-5_050));
        assert_eq!(value_signed_paise(&v["b"]), Some(1));
        assert_eq!(value_signed_paise(&v["c"]), None);
        assert_eq!(value_text(&v["a"]), "-50.5");
        assert_eq!(value_text(&v["zz"]), "none");
    }

    #[test]
    fn fees_round_half_up() {
        assert_eq!(bps_half_up(10, 250), 0);
        assert_eq!(bps_half_up(20, 250), 1);
        assert_eq!(bps_half_up(500_000, 199), 9_950);
        assert_eq!(bps_half_up(123_456, 150), 1_852);
        assert_eq!(bps_half_up(u64::MAX, 0), 0);
    }
}
