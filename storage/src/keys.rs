//! Key layouts. Ids are 16 UUIDv7 bytes, so keys that end in an id sort by
//! creation time and a reverse prefix scan lists newest first. Integers are
//! big-endian so that byte order is numeric order.

use domain::{Currency, PaymentId, PayoutId, RefundId, TransferId, UserId};

/// Tags of the `Index` space: which listing a key belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum IndexTag {
    PaymentsByMerchant = b'P',
    PaymentsByCreator = b'p',
    PayoutsByMerchant = b'O',
    PayoutsByCreator = b'o',
    /// Payments of the merchants under a manager.
    PaymentsByTeam = b'T',
    PayoutsByTeam = b't',
    UsersByAncestor = b'U',
    /// Webhook events by recipient user.
    EventsByRecipient = b'E',
    SettlementsByMerchant = b'S',
    /// Settlements of the merchants under a manager.
    SettlementsByTeam = b's',
    RefundsByMerchant = b'R',
    RefundsByCreator = b'r',
    /// Refunds of the merchants under a manager.
    RefundsByTeam = b'k',
    /// Refunds of one pay-in (the owner's 16 bytes are the pay-in's id).
    RefundsByPayment = b'q',
    /// A merchant's queued payouts, oldest first (its FIFO, SPEC §13).
    PayoutsQueued = b'Q',
    /// Audit entries by every user whose subtree holds their target (the
    /// target user, or the record's merchant, and their ancestors).
    AuditByScope = b'A',
}

impl IndexTag {
    /// Every tag (their bytes must be distinct: a test checks it).
    pub const ALL: [IndexTag; 16] = [
        IndexTag::PaymentsByMerchant,
        IndexTag::PaymentsByCreator,
        IndexTag::PayoutsByMerchant,
        IndexTag::PayoutsByCreator,
        IndexTag::PaymentsByTeam,
        IndexTag::PayoutsByTeam,
        IndexTag::UsersByAncestor,
        IndexTag::EventsByRecipient,
        IndexTag::SettlementsByMerchant,
        IndexTag::SettlementsByTeam,
        IndexTag::RefundsByMerchant,
        IndexTag::RefundsByCreator,
        IndexTag::RefundsByTeam,
        IndexTag::RefundsByPayment,
        IndexTag::PayoutsQueued,
        IndexTag::AuditByScope,
    ];
}

/// Kinds of merchant-scoped unique references in the `Unique` space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum UniqueKind {
    OrderId = b'o',
    ReferenceId = b'r',
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        key.extend_from_slice(part);
    }
    key
}

pub fn user(id: &UserId) -> Vec<u8> {
    id.as_bytes().to_vec()
}

pub fn payment(id: &PaymentId) -> Vec<u8> {
    id.as_bytes().to_vec()
}

pub fn payout(id: &PayoutId) -> Vec<u8> {
    id.as_bytes().to_vec()
}

pub fn refund(id: &RefundId) -> Vec<u8> {
    id.as_bytes().to_vec()
}

pub fn index(tag: IndexTag, owner: &UserId, record: &[u8; 16]) -> Vec<u8> {
    concat(&[&[tag as u8], owner.as_bytes(), record])
}

pub fn index_prefix(tag: IndexTag, owner: &UserId) -> Vec<u8> {
    concat(&[&[tag as u8], owner.as_bytes()])
}

pub fn unique(merchant: &UserId, kind: UniqueKind, reference: &str) -> Vec<u8> {
    concat(&[merchant.as_bytes(), &[kind as u8], reference.as_bytes()])
}

pub fn wallet(merchant: &UserId, currency: Currency) -> Vec<u8> {
    let code: u8 = match currency {
        Currency::Inr => 1,
    };
    concat(&[merchant.as_bytes(), &[code]])
}

/// A wallet's transfers, by their posting number.
pub fn ledger(merchant: &UserId, posting: u64) -> Vec<u8> {
    concat(&[merchant.as_bytes(), &posting.to_be_bytes()])
}

/// Every transfer by its time-ordered id; the value points into `Ledger`.
pub fn transfer(id: &TransferId) -> Vec<u8> {
    id.as_bytes().to_vec()
}

pub fn ledger_prefix(merchant: &UserId) -> Vec<u8> {
    merchant.as_bytes().to_vec()
}

pub fn idempotency(merchant: &UserId, user: &UserId, key: &str) -> Vec<u8> {
    concat(&[merchant.as_bytes(), user.as_bytes(), key.as_bytes()])
}

/// `Pending` keys sort by due time, so the connector reads only what is due.
pub fn pending(due_unix_ms: i64, kind: u8, record: &[u8; 16]) -> [u8; 25] {
    let mut key = [0u8; 25];
    key[..8].copy_from_slice(&u64::try_from(due_unix_ms).unwrap_or(0).to_be_bytes());
    key[8] = kind;
    key[9..].copy_from_slice(record);
    key
}

/// The smallest 16-byte id made at or after `unix_ms` (UUIDv7 keeps the
/// millisecond timestamp in its first 48 bits), for time-bounded scans.
pub fn id_floor_at(unix_ms: i64) -> [u8; 16] {
    let ms = u64::try_from(unix_ms.max(0))
        .unwrap_or(0)
        .min((1 << 48) - 1);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes
}

/// A merchant's statement of one day (`Statements`); days sort in order.
pub fn statement(merchant: &UserId, days: i32) -> Vec<u8> {
    // The sign bit flipped: big-endian byte order is numeric order.
    let ordered = (days as u32) ^ 0x8000_0000;
    concat(&[b"S", merchant.as_bytes(), &ordered.to_be_bytes()])
}

/// Where a merchant's statement chain stands (`Statements`).
pub fn statement_point(merchant: &UserId) -> Vec<u8> {
    concat(&[b"C", merchant.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_floor_orders_with_real_ids() {
        let id = PaymentId::new();
        let ms = i64::try_from(id.unix_ms()).unwrap();
        assert!(id_floor_at(ms).as_slice() <= id.as_bytes().as_slice());
        assert!(id_floor_at(ms + 1).as_slice() > id.as_bytes().as_slice());
    }

    #[test]
    fn index_tags_are_distinct() {
        let mut bytes: Vec<u8> = IndexTag::ALL.iter().map(|t| *t as u8).collect();
        bytes.sort_unstable();
        bytes.dedup();
        assert_eq!(
            bytes.len(),
            IndexTag::ALL.len(),
            "two index tags share a byte"
        );
        // Every variant is in ALL (a new one must be added there too).
        for tag in IndexTag::ALL {
            match tag {
                IndexTag::PaymentsByMerchant
                | IndexTag::PaymentsByCreator
                | IndexTag::PayoutsByMerchant
                | IndexTag::PayoutsByCreator
                | IndexTag::PaymentsByTeam
                | IndexTag::PayoutsByTeam
                | IndexTag::UsersByAncestor
                | IndexTag::EventsByRecipient
                | IndexTag::SettlementsByMerchant
                | IndexTag::SettlementsByTeam
                | IndexTag::RefundsByMerchant
                | IndexTag::RefundsByCreator
                | IndexTag::RefundsByTeam
                | IndexTag::RefundsByPayment
                | IndexTag::PayoutsQueued
                | IndexTag::AuditByScope => {}
            }
        }
    }

    #[test]
    fn ledger_keys_sort_numerically() {
        let m = UserId::new();
        assert!(ledger(&m, 255) < ledger(&m, 256));
        assert!(ledger(&m, 1) < ledger(&m, u64::MAX));
    }
}
