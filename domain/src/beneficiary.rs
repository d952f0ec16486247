//! Beneficiary checks of SPEC §13: a bank payout (IMPS, NEFT, RTGS) needs
//! an IFSC and an account number of 9–18 digits; a UPI payout a VPA
//! (`name@handle`) and neither of the bank fields; RTGS needs at least
//! 2,00,000.00. Every field at fault is named (`details.fields`).

use crate::{Beneficiary, Money, PayoutMode, Rejection};

/// The least amount an RTGS payout may carry: 2,00,000.00.
pub const RTGS_MIN: Money = Money::from_paise(20_000_000);

/// Longest VPA accepted, in bytes (all ASCII).
pub const VPA_MAX: usize = 100;

/// The beneficiary fields of a payout request, as given (absent: `None`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BeneficiaryInput {
    pub name: String,
    pub account_number: Option<String>,
    pub ifsc: Option<String>,
    pub vpa: Option<String>,
}

/// `^[A-Z]{4}0[A-Z0-9]{6}$`
pub fn ifsc_ok(ifsc: &str) -> bool {
    let b = ifsc.as_bytes();
    b.len() == 11
        && b[..4].iter().all(u8::is_ascii_uppercase)
        && b[4] == b'0'
        && b[5..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// An account number as API callers see it: every character but the last
/// 4 masked with `X` (payouts' beneficiaries and settlement accounts alike).
pub fn mask_account(account: &str) -> String {
    let chars: Vec<char> = account.chars().collect();
    let keep = chars.len().saturating_sub(4);
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < keep { 'X' } else { *c })
        .collect()
}

/// 9 to 18 ASCII digits.
pub fn account_number_ok(account: &str) -> bool {
    (9..=18).contains(&account.len()) && account.bytes().all(|c| c.is_ascii_digit())
}

/// `name@handle`: the name 2–64 of `[A-Za-z0-9._-]`, starting with a letter
/// or digit; the handle 2–32 of `[A-Za-z0-9]`, starting with a letter;
/// exactly one `@`; at most `VPA_MAX` bytes in all.
pub fn vpa_ok(vpa: &str) -> bool {
    if vpa.len() > VPA_MAX {
        return false;
    }
    let Some((name, handle)) = vpa.split_once('@') else {
        return false;
    };
    let name_ok = (2..=64).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    let handle_ok = (2..=32).contains(&handle.len())
        && handle
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && handle.bytes().all(|c| c.is_ascii_alphanumeric());
    name_ok && handle_ok
}

/// Checks a payout's beneficiary against its mode and amount. Missing
/// required fields are `missing_fields`; anything malformed, or a field
/// the mode does not take, is `invalid_request` naming every such field.
pub fn check(
    mode: PayoutMode,
    amount: Money,
    input: BeneficiaryInput,
) -> Result<Beneficiary, Rejection> {
    let BeneficiaryInput {
        name,
        account_number,
        ifsc,
        vpa,
    } = input;
    let mut bad: Vec<String> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    if mode == PayoutMode::Upi {
        match &vpa {
            None => missing.push("beneficiary.vpa".into()),
            Some(v) if !vpa_ok(v) => bad.push("beneficiary.vpa".into()),
            Some(_) => {}
        }
        if account_number.is_some() {
            bad.push("beneficiary.account_number".into());
        }
        if ifsc.is_some() {
            bad.push("beneficiary.ifsc".into());
        }
    } else {
        match &account_number {
            None => missing.push("beneficiary.account_number".into()),
            Some(a) if !account_number_ok(a) => bad.push("beneficiary.account_number".into()),
            Some(_) => {}
        }
        match &ifsc {
            None => missing.push("beneficiary.ifsc".into()),
            Some(i) if !ifsc_ok(i) => bad.push("beneficiary.ifsc".into()),
            Some(_) => {}
        }
        if vpa.is_some() {
            bad.push("beneficiary.vpa".into());
        }
    }
    if mode == PayoutMode::Rtgs && amount < RTGS_MIN {
        bad.push("amount".into());
    }
    if !missing.is_empty() {
        return Err(Rejection::MissingFields(missing));
    }
    if !bad.is_empty() {
        let message = format!(
            "invalid beneficiary for mode {}: {} (ifsc ^[A-Z]{{4}}0[A-Z0-9]{{6}}$, \
             account_number 9-18 digits, UPI takes vpa name@handle only, RTGS at least 200000.00)",
            mode.as_str(),
            bad.join(", ")
        );
        return Err(Rejection::InvalidFields {
            message,
            fields: bad,
        });
    }
    Ok(Beneficiary {
        name,
        account_number: account_number.unwrap_or_default(),
        ifsc: ifsc.unwrap_or_default(),
        vpa,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bank(account: &str, ifsc: &str) -> BeneficiaryInput {
        BeneficiaryInput {
            name: "A".into(),
            account_number: Some(account.into()),
            ifsc: Some(ifsc.into()),
            vpa: None,
        }
    }

    fn fields(r: Result<Beneficiary, Rejection>) -> Vec<String> {
        match r {
            Err(Rejection::InvalidFields { fields, .. }) => fields,
            Err(Rejection::MissingFields(fields)) => fields,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn ifsc_grammar() {
        for ok in ["HDFC0001234", "SBIN0ABC123", "ABCD0000000"] {
            assert!(ifsc_ok(ok), "{ok}");
        }
        for bad in [
            "bad",
            "hdfc0001234",
            "HDFC1001234",
            "HDFC000123",
            "HDFC00012345",
            "HDF00001234",
            "HDFC0abc123",
            "HDFC000123\u{e9}",
        ] {
            assert!(!ifsc_ok(bad), "{bad}");
        }
    }

    #[test]
    fn account_and_vpa_grammar() {
        assert!(account_number_ok("123456789"));
        assert!(account_number_ok("123456789012345678"));
        assert!(!account_number_ok("12345678"));
        assert!(!account_number_ok("1234567890123456789"));
        assert!(!account_number_ok("12345678a"));
        for ok in ["jane@okaxis", "j.doe-1_x@upi", "99@ybl2"] {
            assert!(vpa_ok(ok), "{ok}");
        }
        for bad in [
            "jane",
            "@upi",
            "j@upi",
            "jane@u",
            "jane@1upi",
            "ja@ne@upi",
            ".jane@upi",
            "jane@up-i",
            "jané@upi",
            "jane @upi",
        ] {
            assert!(!vpa_ok(bad), "{bad}");
        }
        assert!(!vpa_ok(&format!("{}@upi", "a".repeat(VPA_MAX))));
    }

    #[test]
    fn every_bad_field_is_named() {
        let amount = Money::from_paise(10_000);
        let r = check(PayoutMode::Imps, amount, bank("12", "bad"));
        assert_eq!(
            fields(r),
            ["beneficiary.account_number", "beneficiary.ifsc"]
        );
        let r = check(PayoutMode::Rtgs, amount, bank("123456789", "HDFC0001234"));
        assert_eq!(fields(r), ["amount"]);
        assert!(check(PayoutMode::Rtgs, RTGS_MIN, bank("123456789", "HDFC0001234")).is_ok());
        let mut upi = bank("123456789", "HDFC0001234");
        upi.vpa = Some("jane@okaxis".into());
        assert_eq!(
            fields(check(PayoutMode::Upi, amount, upi.clone())),
            ["beneficiary.account_number", "beneficiary.ifsc"]
        );
        assert_eq!(
            fields(check(PayoutMode::Neft, amount, upi)),
            ["beneficiary.vpa"]
        );
        let only_vpa = BeneficiaryInput {
            name: "J".into(),
            vpa: Some("jane@okaxis".into()),
            ..Default::default()
        };
        let b = check(PayoutMode::Upi, amount, only_vpa).unwrap();
        assert_eq!(
            (b.account_number.as_str(), b.vpa.as_deref()),
            ("", Some("jane@okaxis"))
        );
        let none = BeneficiaryInput {
            name: "J".into(),
            ..Default::default()
        };
        assert!(matches!(
            check(PayoutMode::Upi, amount, none),
            Err(Rejection::MissingFields(f)) if f == ["beneficiary.vpa"]
        ));
    }
}
