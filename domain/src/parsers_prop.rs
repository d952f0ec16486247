//! Property tests of the domain's parsers of outside input (issue 11):
//! amounts, ids, timestamps and API keys never panic on any text, and
//! round-trip where they have a canonical form.

use crate::{api_key, Money, PaymentId, Timestamp, UserId};
use proptest::prelude::*;

/// Text biased towards the shapes these parsers care about.
fn amountish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("0".to_owned()),
        Just(".".to_owned()),
        Just("-".to_owned()),
        Just("+".to_owned()),
        Just("e".to_owned()),
        Just(" ".to_owned()),
        Just("_".to_owned()),
        (0u64..10_000).prop_map(|n| n.to_string()),
        any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|v| v.concat())
}

fn is_canonical_amount(text: &str) -> bool {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && (!text.contains('.') || (digits(fraction) && fraction.len() <= 2))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn amounts_never_panic_and_accept_exactly_the_grammar(text in amountish()) {
        let parsed = Money::parse_non_negative(&text);
        if parsed.is_ok() {
            prop_assert!(is_canonical_amount(&text), "accepted {text:?}");
        } else if is_canonical_amount(&text) {
            // Only an amount beyond u64 paise may be refused.
            prop_assert!(text.split('.').next().unwrap().trim_start_matches('0').len() >= 17, "{text:?}");
        }
        let _ = Money::parse_amount(&text);
        let _ = Money::from_json(&serde_json::Value::String(text.clone()));
    }

    #[test]
    fn any_text_is_refused_or_parsed_without_panic(text in any::<String>()) {
        let _ = Money::parse_amount(&text);
        let _ = text.parse::<UserId>();
        let _ = text.parse::<PaymentId>();
        let _ = Timestamp::parse_rfc3339(&text);
        let _ = api_key::may_be_valid(&text);
    }

    #[test]
    fn amounts_round_trip_through_their_text(paise in 1u64..=u64::MAX / 100) {
        let money = Money::parse_amount(&format!("{}.{:02}", paise / 100, paise % 100)).unwrap();
        prop_assert_eq!(money.paise(), paise);
        // Display is the shortest exact text, and parses back to the same value.
        prop_assert_eq!(Money::parse_amount(&money.to_string()).unwrap(), money);
        let number = serde_json::Value::Number(money.to_json_number());
        prop_assert_eq!(Money::from_json(&number).unwrap(), money);
    }

    #[test]
    fn ids_round_trip(bytes in any::<[u8; 16]>()) {
        let id = UserId::from_bytes(bytes);
        prop_assert_eq!(id.to_string().parse::<UserId>().unwrap(), id);
        // An id of another kind is not this kind.
        prop_assert!(PaymentId::from_bytes(bytes).to_string().parse::<UserId>().is_err());
    }

    #[test]
    fn timestamps_round_trip(ms in 0i64..=253_402_300_799_999) {
        let t = Timestamp::from_unix_ms(ms);
        let text = serde_json::to_value(t).unwrap();
        let text = text.as_str().unwrap();
        prop_assert_eq!(Timestamp::parse_rfc3339(text), Some(t));
    }

    #[test]
    fn generated_keys_are_well_formed_and_any_one_change_is_caught(
        seed in any::<[u8; 48]>(),
        at in api_key::PREFIX.len()..api_key::LEN,
        with in prop::sample::select(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".to_vec()),
    ) {
        let mut fed = false;
        let key = api_key::generate(|buf: &mut [u8]| {
            // The seed first, then a counter, so generation always ends.
            for (i, b) in buf.iter_mut().enumerate() {
                *b = if fed { (i as u8).wrapping_mul(37) % 200 } else { seed[i % 48] };
            }
            fed = true;
            Ok::<(), ()>(())
        })
        .unwrap();
        prop_assert!(api_key::is_well_formed(&key));
        prop_assert!(api_key::may_be_valid(&key));
        let mut changed = key.clone().into_bytes();
        prop_assume!(changed[at] != with);
        changed[at] = with;
        let changed = String::from_utf8(changed).unwrap();
        // CRC32 catches every single-character change.
        prop_assert!(!api_key::is_well_formed(&changed), "{key} → {changed}");
    }
}
