//! The API key format (SPEC §16): `tjk_` + 32 random base62 characters + 6
//! base62 characters of the CRC32 (IEEE) of those 32, left-padded with `0`:
//! 42 characters in all. Secret scanners can recognise a Tijori key by its
//! shape and checksum, and the server refuses a mistyped or truncated key
//! before looking it up.
//!
//! Base62 digits are `0-9`, then `A-Z`, then `a-z`; the checksum is the
//! CRC32 written as a base62 number, most significant digit first.

/// Every API key starts with this.
pub const PREFIX: &str = "tjk_";
/// Random characters after the prefix.
pub const RANDOM_LEN: usize = 32;
/// Checksum characters after the random ones.
pub const CHECK_LEN: usize = 6;
/// Length of a whole key.
pub const LEN: usize = PREFIX.len() + RANDOM_LEN + CHECK_LEN;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// CRC-32/ISO-HDLC (the IEEE polynomial, reflected, as zlib and PNG use).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// `n` as `CHECK_LEN` base62 digits, zero-padded (62^6 > 2^32, so it fits).
fn checksum_digits(n: u32) -> [u8; CHECK_LEN] {
    let mut out = [b'0'; CHECK_LEN];
    let mut rest = n;
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(rest % 62) as usize];
        rest /= 62;
    }
    out
}

/// A key from a source of random bytes: each random character is drawn by
/// rejection sampling (bytes ≥ 248 are skipped), so all 62 are equally likely.
pub fn generate<E>(mut fill: impl FnMut(&mut [u8]) -> Result<(), E>) -> Result<String, E> {
    let mut random = Vec::with_capacity(RANDOM_LEN);
    let mut buf = [0u8; 48];
    while random.len() < RANDOM_LEN {
        fill(&mut buf)?;
        random.extend(
            buf.iter()
                .filter(|b| **b < 248)
                .map(|b| ALPHABET[usize::from(*b % 62)])
                .take(RANDOM_LEN - random.len()),
        );
    }
    let check = checksum_digits(crc32(&random));
    let mut key = String::with_capacity(LEN);
    key.push_str(PREFIX);
    key.extend(random.iter().chain(check.iter()).map(|b| char::from(*b)));
    Ok(key)
}

/// Length of a key issued before keys had a checksum: `tjk_` + 40
/// lowercase hex digits (20 random bytes).
pub const LEGACY_LEN: usize = PREFIX.len() + 40;

/// Whether `key` may be looked up: a key of today's shape whose checksum
/// holds, or a key of the shape issued before checksums (those stay valid:
/// only their hashes are stored, so a data dir keeps working). Anything
/// else is refused without a lookup.
pub fn may_be_valid(key: &str) -> bool {
    is_well_formed(key) || is_legacy(key)
}

/// Whether `key` has the shape of a key issued before checksums.
pub fn is_legacy(key: &str) -> bool {
    key.len() == LEGACY_LEN
        && key.strip_prefix(PREFIX).is_some_and(|hex| {
            hex.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// Whether `key` has the shape of a Tijori key and its checksum holds.
pub fn is_well_formed(key: &str) -> bool {
    let Some(rest) = key.strip_prefix(PREFIX) else {
        return false;
    };
    if rest.len() != RANDOM_LEN + CHECK_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let (random, check) = rest.as_bytes().split_at(RANDOM_LEN);
    checksum_digits(crc32(random)) == check
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        // The catalogue's check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn checksum_digits_are_padded_base62() {
        assert_eq!(&checksum_digits(0), b"000000");
        assert_eq!(&checksum_digits(61), b"00000z");
        assert_eq!(&checksum_digits(62), b"000010");
        // u32::MAX = 4,294,967,295 = 4·62^5 + 42·62^4 + 41·62^3 + 15·62^2 + 12·62 + 3
        assert_eq!(&checksum_digits(u32::MAX), b"4gfFC3");
    }

    fn counter_source() -> impl FnMut(&mut [u8]) -> Result<(), ()> {
        let mut next = 0u8;
        move |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                *b = next;
                next = next.wrapping_add(7);
            }
            Ok(())
        }
    }

    #[test]
    fn generated_keys_are_well_formed_and_a_typo_is_caught() {
        let key = generate(counter_source()).unwrap();
        assert_eq!(key.len(), LEN);
        assert!(key.starts_with(PREFIX));
        assert!(is_well_formed(&key), "{key}");
        // Change any one character of the random part or the checksum.
        for i in PREFIX.len()..LEN {
            let mut bytes = key.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(bytes).unwrap();
            assert!(!is_well_formed(&typo), "{typo}");
        }
        assert!(!is_well_formed(&key[..LEN - 1]));
        assert!(!is_well_formed(&format!("{key}0")));
        assert!(!is_well_formed(&key.replacen(PREFIX, "tjx_", 1)));
        assert!(!is_well_formed(""));
    }

    #[test]
    fn keys_of_the_old_shape_may_still_be_looked_up() {
        let legacy = format!("{PREFIX}{}", "0123456789abcdef0123456789abcdef01234567");
        assert!(is_legacy(&legacy) && may_be_valid(&legacy));
        assert!(!is_well_formed(&legacy));
        for not_legacy in [
            format!("{PREFIX}{}", "0123456789ABCDEF0123456789abcdef01234567"),
            format!("{PREFIX}{}", "0123456789abcdef0123456789abcdef0123456"),
            format!("{PREFIX}{}", "0123456789abcdef0123456789abcdef012345678"),
            format!("tjx_{}", "0123456789abcdef0123456789abcdef01234567"),
        ] {
            assert!(!may_be_valid(&not_legacy), "{not_legacy}");
        }
    }

    #[test]
    fn rejection_sampling_skips_biased_bytes() {
        // A source of only 255s then zeros: the 255s are skipped.
        let mut calls = 0;
        let key = generate(|buf: &mut [u8]| {
            calls += 1;
            buf.fill(if calls == 1 { 255 } else { 0 });
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(
            &key[PREFIX.len()..PREFIX.len() + RANDOM_LEN],
            "0".repeat(32)
        );
        assert!(is_well_formed(&key));
    }
}
