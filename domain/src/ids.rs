//! Server-made, time-ordered ids: UUIDv7 behind a type prefix (`txn_`, `po_`,
//! `usr_`, `evt_`). The 16 raw bytes sort by creation time, which is what
//! storage keys and newest-first listings rely on.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id, ordered after every id made before it in this process.
            pub fn new() -> Self {
                $name(Uuid::now_v7())
            }

            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                $name(Uuid::from_bytes(bytes))
            }

            /// Reads the 16-byte form back from a storage key.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; 16]>::try_from(bytes).ok().map(Self::from_bytes)
            }

            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            /// Milliseconds since the epoch at which the id was made.
            pub fn unix_ms(&self) -> u64 {
                self.0
                    .get_timestamp()
                    .map(|ts| {
                        let (secs, nanos) = ts.to_unix();
                        secs * 1_000 + u64::from(nanos / 1_000_000)
                    })
                    .unwrap_or(0)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0.simple())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = ();
            fn from_str(text: &str) -> Result<Self, ()> {
                let hex = text.strip_prefix($prefix).ok_or(())?;
                if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(());
                }
                Uuid::try_parse(hex).map($name).map_err(|_| ())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse()
                    .map_err(|()| serde::de::Error::custom(concat!("expected a ", $prefix, " id")))
            }
        }
    };
}

prefixed_id!(
    /// A pay-in (payment) transaction.
    PaymentId,
    "txn_"
);
prefixed_id!(
    /// A payout to a bank account.
    PayoutId,
    "po_"
);
prefixed_id!(
    /// A user of any role; a merchant's user id is also its wallet's id.
    UserId,
    "usr_"
);
prefixed_id!(
    /// A webhook event.
    EventId,
    "evt_"
);
prefixed_id!(
    /// A ledger transfer between two accounts (SPEC §11).
    TransferId,
    "tr_"
);
prefixed_id!(
    /// A settlement to a merchant's own bank account (SPEC §14).
    SettlementId,
    "st_"
);
prefixed_id!(
    /// A refund of (part of) a completed pay-in (SPEC §12).
    RefundId,
    "rf_"
);
prefixed_id!(
    /// An entry of the audit log (SPEC §16).
    AuditId,
    "aud_"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text_and_bytes() {
        let id = PaymentId::new();
        let text = id.to_string();
        assert!(text.starts_with("txn_") && text.len() == 36);
        assert_eq!(text.parse::<PaymentId>(), Ok(id));
        assert_eq!(PaymentId::from_slice(id.as_bytes()), Some(id));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<PaymentId>(&json).unwrap(), id);
    }

    #[test]
    fn refuses_wrong_prefix_and_garbage() {
        let id = PayoutId::new().to_string();
        assert!(id.parse::<PaymentId>().is_err());
        for bad in [
            "",
            "txn_",
            "txn_xyz",
            "txn_0123",
            "usr_0192f0c0-0000-7000-8000-000000000000",
        ] {
            assert!(bad.parse::<PaymentId>().is_err(), "{bad}");
            assert!(bad.parse::<UserId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_are_time_ordered() {
        let ids: Vec<EventId> = (0..1_000).map(|_| EventId::new()).collect();
        assert!(ids.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()));
        assert!(ids[0].unix_ms() > 1_700_000_000_000);
    }
}
