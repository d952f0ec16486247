//! Exact money. An amount is a whole number of paise in a `u64`, so it can
//! never be negative and never passes through a float. Parsing reads the
//! exact text (`12.34`, `"12.34"`; SPEC §17 refuses exponents, signs and
//! spaces); rendering writes back the shortest exact JSON number.

use crate::Rejection;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Paise in one rupee.
const SCALE: u64 = 100;

/// A non-negative amount of money in paise. Arithmetic is checked only:
/// there is deliberately no `impl Add`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(u64);

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_paise(paise: u64) -> Money {
        Money(paise)
    }

    /// Whole rupees; `None` if it would overflow.
    pub const fn from_rupees(rupees: u64) -> Option<Money> {
        match rupees.checked_mul(SCALE) {
            Some(p) => Some(Money(p)),
            None => None,
        }
    }

    pub const fn paise(self) -> u64 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// `None` when the result would be negative.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    /// Basis points of this amount, rounded half-up to the paisa.
    pub fn bps_half_up(self, bps: u32) -> Money {
        let scaled = u128::from(self.0) * u128::from(bps) + 5_000;
        // bps ≤ u32::MAX and the amount ≤ u64::MAX, so the quotient fits
        // unless bps > 10_000 on an amount near u64::MAX; saturate then.
        Money(u64::try_from(scaled / 10_000).unwrap_or(u64::MAX))
    }

    pub fn to_decimal(self) -> Decimal {
        // u64 paise always fit in a Decimal's 96-bit mantissa.
        Decimal::from_i128_with_scale(i128::from(self.0), 2).normalize()
    }

    /// Parses an amount such as `"5000"`, `"12.34"` or `"0.5"`: the text must
    /// match `^[0-9]+(\.[0-9]{1,2})?$` (SPEC §17: no exponent, sign, spaces
    /// or more than two fraction digits) and be greater than zero.
    pub fn parse_amount(text: &str) -> Result<Money, Rejection> {
        let money = Money::parse_non_negative(text)?;
        if money.is_zero() {
            return Err(Rejection::InvalidAmount(
                "amount must be greater than zero".to_owned(),
            ));
        }
        Ok(money)
    }

    /// As `parse_amount`, but zero (`0`, `0.0`, `0.00`) is allowed: fees
    /// and settings.
    pub fn parse_non_negative(text: &str) -> Result<Money, Rejection> {
        let bad = |why: &str| Rejection::InvalidAmount(why.to_owned());
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let well_formed =
            digits(whole) && (!text.contains('.') || (digits(fraction) && fraction.len() <= 2));
        if !well_formed {
            return Err(bad(
                "amount must be a decimal number with at most 2 fraction digits \
                 (digits, optionally a point and 1 or 2 digits)",
            ));
        }
        let overflow = || bad("amount is too large");
        let mut paise: u64 = 0;
        for b in whole.bytes() {
            paise = paise
                .checked_mul(10)
                .and_then(|p| p.checked_add(u64::from(b - b'0')))
                .ok_or_else(overflow)?;
        }
        paise = paise.checked_mul(SCALE).ok_or_else(overflow)?;
        let cents = match fraction.as_bytes() {
            [] => 0,
            [d] => u64::from(d - b'0') * 10,
            [d, e] => u64::from(d - b'0') * 10 + u64::from(e - b'0'),
            _ => return Err(overflow()),
        };
        paise = paise.checked_add(cents).ok_or_else(overflow)?;
        Ok(Money(paise))
    }

    /// Reads an amount from a JSON value: a number (read from its exact text,
    /// which needs serde_json's `arbitrary_precision`) or a string.
    pub fn from_json(value: &serde_json::Value) -> Result<Money, Rejection> {
        match value {
            serde_json::Value::Number(n) => Money::parse_amount(n.as_str()),
            serde_json::Value::String(s) => Money::parse_amount(s),
            _ => Err(Rejection::InvalidAmount(
                "amount must be a number or a decimal string".to_owned(),
            )),
        }
    }

    /// The exact JSON number for this amount: `5000`, `5000.5`, `12.34`.
    pub fn to_json_number(self) -> serde_json::Number {
        let text = self.to_string();
        // A normalised Decimal always renders as a valid JSON number.
        serde_json::Number::from_str(&text).unwrap_or_else(|_| serde_json::Number::from(0u8))
    }
}

impl fmt::Display for Money {
    /// The shortest exact decimal: `5000`, `5000.5`, `12.34` (the same text
    /// as the normalised `Decimal`, without building one on the hot path).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (rupees, paise) = (self.0 / SCALE, self.0 % SCALE);
        match paise {
            0 => write!(f, "{rupees}"),
            p if p.is_multiple_of(10) => write!(f, "{rupees}.{}", p / 10),
            p => write!(f, "{rupees}.{p:02}"),
        }
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_multiple_of(SCALE) {
            s.serialize_u64(self.0 / SCALE)
        } else {
            self.to_json_number().serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        match &value {
            // Stored balances may be zero, which `parse_amount` refuses.
            serde_json::Value::Number(n) if n.as_str() == "0" => Ok(Money::ZERO),
            _ => Money::from_json(&value).map_err(serde::de::Error::custom),
        }
    }
}

/// Currencies Tijori settles in. Only INR is enabled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Currency {
    #[default]
    #[serde(rename = "INR")]
    Inr,
}

impl Currency {
    pub fn as_str(self) -> &'static str {
        match self {
            Currency::Inr => "INR",
        }
    }

    pub fn parse(text: &str) -> Result<Currency, Rejection> {
        match text {
            "INR" => Ok(Currency::Inr),
            _ => Err(Rejection::UnsupportedCurrency),
        }
    }
}

/// Inclusive per-transaction bounds on an amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmountLimits {
    pub min: Money,
    pub max: Money,
}

impl Default for AmountLimits {
    fn default() -> Self {
        AmountLimits {
            min: Money::from_paise(100),
            max: Money::from_paise(100_000_000),
        }
    }
}

impl AmountLimits {
    pub fn check(&self, amount: Money) -> Result<(), Rejection> {
        if amount < self.min || amount > self.max {
            return Err(Rejection::InvalidAmount(format!(
                "amount must be between {} and {}",
                self.min, self.max
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> u64 {
        match Money::parse_amount(text) {
            Ok(m) => m.paise(),
            Err(e) => panic!("{text}: {e:?}"),
        }
    }

    #[test]
    fn parses_exactly() {
        assert_eq!(ok("5000"), 500_000);
        assert_eq!(ok("12.34"), 1_234);
        assert_eq!(ok("0.01"), 1);
        assert_eq!(ok("5000.50"), 500_050);
        assert_eq!(ok("0.5"), 50);
        assert_eq!(ok("007"), 700);
        assert_eq!(ok("184467440737095516.15"), u64::MAX);
    }

    #[test]
    fn refuses_bad_amounts() {
        // SPEC §17: only `^[0-9]+(\.[0-9]{1,2})?$`, and greater than zero.
        for text in [
            "0",
            "-1",
            "+1",
            "0.001",
            "1.234",
            "abc",
            "",
            "1e-3",
            "NaN",
            "1e40",
            "0.00",
            "1.5e3",
            "1E2",
            "10.100",
            " 5",
            "5 ",
            "5.",
            ".5",
            "1,000",
            "1_000",
            "0x10",
            "١٢",
            "5.0.0",
            "184467440737095516.16",
            "99999999999999999999999",
        ] {
            assert!(Money::parse_amount(text).is_err(), "{text} accepted");
        }
        assert_eq!(Money::parse_non_negative("0.00"), Ok(Money::ZERO));
        assert_eq!(Money::parse_non_negative("0"), Ok(Money::ZERO));
        assert!(Money::parse_non_negative("-0").is_err());
        assert!(Money::parse_non_negative("0e0").is_err());
    }

    #[test]
    fn display_agrees_with_the_normalised_decimal() {
        for paise in (0..100_000).chain([u64::MAX, u64::MAX - 1, 1_000_000_000_007]) {
            let m = Money::from_paise(paise);
            assert_eq!(m.to_string(), m.to_decimal().to_string(), "{paise}");
            assert_eq!(
                Money::parse_amount(&m.to_string())
                    .ok()
                    .filter(|_| paise > 0),
                (paise > 0).then_some(m)
            );
        }
    }

    #[test]
    fn renders_shortest_exact_number() {
        assert_eq!(Money::from_paise(500_000).to_string(), "5000");
        assert_eq!(Money::from_paise(500_050).to_string(), "5000.5");
        assert_eq!(Money::from_paise(1_234).to_string(), "12.34");
        assert_eq!(Money::ZERO.to_string(), "0");
        let json = serde_json::to_string(&Money::from_paise(1)).unwrap_or_default();
        assert_eq!(json, "0.01");
    }

    #[test]
    fn json_round_trip_number_and_string() {
        for (text, paise) in [("12.34", 1_234), ("\"12.34\"", 1_234), ("7", 700)] {
            let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
            assert_eq!(Money::from_json(&value).map(Money::paise), Ok(paise));
        }
        let back: Money = serde_json::from_str("0").unwrap_or(Money::from_paise(9));
        assert_eq!(back, Money::ZERO);
    }

    #[test]
    fn bps_rounds_half_up_to_the_paisa() {
        // 2.5% of 0.10 is 0.0025 -> 0.00; 2.5% of 0.20 is 0.005 -> 0.01.
        assert_eq!(Money::from_paise(10).bps_half_up(250), Money::ZERO);
        assert_eq!(Money::from_paise(20).bps_half_up(250), Money::from_paise(1));
        assert_eq!(
            Money::from_paise(500_000).bps_half_up(199),
            Money::from_paise(9_950)
        );
        assert_eq!(Money::from_paise(u64::MAX).bps_half_up(0), Money::ZERO);
    }

    #[test]
    fn checked_arithmetic_never_goes_negative() {
        assert_eq!(Money::from_paise(1).checked_sub(Money::from_paise(2)), None);
        assert_eq!(
            Money::from_paise(u64::MAX).checked_add(Money::from_paise(1)),
            None
        );
    }

    #[test]
    fn limits_are_inclusive() {
        let limits = AmountLimits::default();
        assert!(limits.check(Money::from_paise(100)).is_ok());
        assert!(limits.check(Money::from_paise(99)).is_err());
        assert!(limits.check(Money::from_paise(100_000_000)).is_ok());
        assert!(limits.check(Money::from_paise(100_000_001)).is_err());
    }
}
