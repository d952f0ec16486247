//! A `WriteSet` is everything one command changes: records, indexes, ledger
//! entries, idempotency and outbox rows. It is applied atomically.

use crate::keys::{IndexTag, UniqueKind};
use crate::reads::PendingId;
use crate::{codec, keys, IdempotencyRecord, PendingItem, PendingKind, Space, StorageError};
use domain::{Payment, Payout, Refund, Transfer, User, UserId, Wallet};
use serde::Serialize;

#[derive(Debug, Default)]
pub struct WriteSet {
    pub(crate) ops: Vec<(Space, Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteSet {
    pub fn new() -> WriteSet {
        WriteSet {
            ops: Vec::with_capacity(8),
        }
    }

    pub fn put_raw(&mut self, space: Space, key: Vec<u8>, value: Vec<u8>) {
        assert!(!space.is_internal(), "a write set wrote {space:?}");
        self.ops.push((space, key, Some(value)));
    }

    pub fn put<T: Serialize>(
        &mut self,
        space: Space,
        key: Vec<u8>,
        value: &T,
    ) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(value)?;
        self.put_raw(space, key, bytes);
        Ok(())
    }

    /// A posted transfer: under its wallet and posting number, and by id.
    pub fn put_transfer(&mut self, transfer: &Transfer) {
        let posting = keys::ledger(&transfer.merchant_id, transfer.posting);
        self.put_raw(Space::Ledger, posting.clone(), codec::to_bytes(transfer));
        self.put_raw(Space::Transfers, keys::transfer(&transfer.id), posting);
    }

    /// A wallet, under its merchant and currency.
    pub fn put_wallet(&mut self, wallet: &Wallet) {
        let key = keys::wallet(&wallet.merchant_id, wallet.currency);
        self.put_raw(Space::Wallets, key, codec::to_bytes(wallet));
    }

    pub fn remove(&mut self, space: Space, key: Vec<u8>) {
        assert!(!space.is_internal(), "a write set removed from {space:?}");
        self.ops.push((space, key, None));
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations (for tests).
    #[cfg(test)]
    pub(crate) fn ops(&self) -> impl Iterator<Item = (Space, &[u8], Option<&[u8]>)> {
        self.ops
            .iter()
            .map(|(s, k, v)| (*s, k.as_slice(), v.as_deref()))
    }
}

/// Who lists a new pay-in or payout besides its merchant: the user who
/// created it (when not the merchant) and the merchant's manager (team).
#[derive(Clone, Copy, Debug)]
pub struct Listed<'a> {
    pub created_by: &'a UserId,
    pub team: Option<&'a UserId>,
}

/// Typed commands: what a wallet writes, in terms of records. The rows,
/// keys and indexes they become are this crate's business alone.
impl WriteSet {
    /// A new pay-in: the record, its listings, its order id (unique per
    /// merchant) and its row in the rail's due queue, which is returned.
    pub fn payin_created(
        &mut self,
        payment: &Payment,
        listed: Listed<'_>,
        settle_at_ms: i64,
    ) -> Result<PendingItem, StorageError> {
        let id = payment.id.as_bytes();
        self.put_raw(
            Space::Payments,
            keys::payment(&payment.id),
            codec::to_bytes(payment),
        );
        self.listing(
            &payment.merchant_id,
            [
                IndexTag::PaymentsByMerchant,
                IndexTag::PaymentsByCreator,
                IndexTag::PaymentsByTeam,
            ],
            listed,
            id,
        );
        self.put_raw(
            Space::Unique,
            keys::unique(&payment.merchant_id, UniqueKind::OrderId, &payment.order_id),
            id.to_vec(),
        );
        Ok(self.pending(PendingKind::Payin, id, &payment.merchant_id, settle_at_ms))
    }

    /// A pay-in changed (settled).
    pub fn payment_saved(&mut self, payment: &Payment) -> Result<(), StorageError> {
        self.put_raw(
            Space::Payments,
            keys::payment(&payment.id),
            codec::to_bytes(payment),
        );
        Ok(())
    }

    /// A new payout: as `payin_created`, with its optional reference id.
    pub fn payout_created(
        &mut self,
        payout: &Payout,
        listed: Listed<'_>,
        settle_at_ms: i64,
    ) -> Result<PendingItem, StorageError> {
        let id = payout.id.as_bytes();
        self.put_raw(
            Space::Payouts,
            keys::payout(&payout.id),
            codec::to_bytes(payout),
        );
        self.listing(
            &payout.merchant_id,
            [
                IndexTag::PayoutsByMerchant,
                IndexTag::PayoutsByCreator,
                IndexTag::PayoutsByTeam,
            ],
            listed,
            id,
        );
        if let Some(reference) = &payout.reference_id {
            self.put_raw(
                Space::Unique,
                keys::unique(&payout.merchant_id, UniqueKind::ReferenceId, reference),
                id.to_vec(),
            );
        }
        Ok(self.pending(PendingKind::Payout, id, &payout.merchant_id, settle_at_ms))
    }

    /// A payout changed (settled).
    pub fn payout_saved(&mut self, payout: &Payout) -> Result<(), StorageError> {
        self.put_raw(
            Space::Payouts,
            keys::payout(&payout.id),
            codec::to_bytes(payout),
        );
        Ok(())
    }

    /// A new refund: the record, its listings (merchant, creator, team, and
    /// its pay-in's) and its row in the rail's due queue, which is returned.
    pub fn refund_created(
        &mut self,
        refund: &Refund,
        listed: Listed<'_>,
        settle_at_ms: i64,
    ) -> Result<PendingItem, StorageError> {
        let id = refund.id.as_bytes();
        self.put_raw(
            Space::Refunds,
            keys::refund(&refund.id),
            codec::to_bytes(refund),
        );
        self.listing(
            &refund.merchant_id,
            [
                IndexTag::RefundsByMerchant,
                IndexTag::RefundsByCreator,
                IndexTag::RefundsByTeam,
            ],
            listed,
            id,
        );
        let payment = UserId::from_bytes(*refund.payment_id.as_bytes());
        self.put_raw(
            Space::Index,
            keys::index(IndexTag::RefundsByPayment, &payment, id),
            Vec::new(),
        );
        Ok(self.pending(PendingKind::Refund, id, &refund.merchant_id, settle_at_ms))
    }

    /// A refund changed (settled).
    pub fn refund_saved(&mut self, refund: &Refund) {
        self.put_raw(
            Space::Refunds,
            keys::refund(&refund.id),
            codec::to_bytes(refund),
        );
    }

    /// The first response to a caller's `Idempotency-Key` on a merchant.
    pub fn idempotency_saved(
        &mut self,
        merchant: &UserId,
        created_by: &UserId,
        key: &str,
        record: &IdempotencyRecord,
    ) -> Result<(), StorageError> {
        self.put_raw(
            Space::Idempotency,
            keys::idempotency(merchant, created_by, key),
            codec::to_bytes(record),
        );
        Ok(())
    }

    /// A record the rail settled leaves its due queue.
    pub fn settled(&mut self, pending: PendingId) {
        self.remove(Space::Pending, pending.key());
    }

    /// A user, new or changed.
    pub fn user_saved(&mut self, user: &User) -> Result<(), StorageError> {
        self.put(Space::Users, keys::user(&user.id), user)
    }

    /// A new user in the listings of everyone above it in the role tree.
    pub fn user_listed(&mut self, user: &UserId, ancestors: &[UserId]) {
        for ancestor in ancestors {
            self.put_raw(
                Space::Index,
                keys::index(IndexTag::UsersByAncestor, ancestor, user.as_bytes()),
                Vec::new(),
            );
        }
    }

    /// An API key (its SHA-256) now authenticates `user`.
    pub fn api_key_issued(&mut self, hash: &[u8; 32], user: &UserId) {
        self.put_raw(Space::ApiKeys, hash.to_vec(), user.as_bytes().to_vec());
    }

    /// An API key (its SHA-256) no longer authenticates anyone.
    pub fn api_key_revoked(&mut self, hash: &[u8; 32]) {
        self.remove(Space::ApiKeys, hash.to_vec());
    }

    /// The listing rows of a new record: by merchant, by creator (read for
    /// api_users only, so the merchant's own records skip it) and by team.
    pub(crate) fn listing(
        &mut self,
        merchant: &UserId,
        tags: [IndexTag; 3],
        listed: Listed<'_>,
        id: &[u8; 16],
    ) {
        let [by_merchant, by_creator, by_team] = tags;
        self.put_raw(
            Space::Index,
            keys::index(by_merchant, merchant, id),
            Vec::new(),
        );
        if listed.created_by != merchant {
            self.put_raw(
                Space::Index,
                keys::index(by_creator, listed.created_by, id),
                Vec::new(),
            );
        }
        if let Some(team) = listed.team {
            self.put_raw(Space::Index, keys::index(by_team, team, id), Vec::new());
        }
    }

    pub(crate) fn pending(
        &mut self,
        kind: PendingKind,
        id: &[u8; 16],
        merchant: &UserId,
        due_unix_ms: i64,
    ) -> PendingItem {
        let pending = PendingId::new(due_unix_ms, kind, id);
        self.put_raw(Space::Pending, pending.key(), merchant.as_bytes().to_vec());
        PendingItem {
            id: pending,
            due_unix_ms: due_unix_ms.max(0),
            kind,
            record: *id,
            merchant_id: *merchant,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Currency, Money, PaymentId, PaymentStatus, Timestamp};

    fn payment(merchant: UserId, created_by: UserId) -> Payment {
        let now = Timestamp::from_unix_ms(1_700_000_000_000);
        Payment {
            id: PaymentId::new(),
            order_id: "o-1".into(),
            merchant_id: merchant,
            created_by,
            amount: Money::from_paise(10_000),
            fee: Money::from_paise(250),
            net_amount: Money::from_paise(9_750),
            currency: Currency::Inr,
            status: PaymentStatus::Pending,
            payer: "Payer".into(),
            payer_email: None,
            payer_phone: None,
            payer_vpa: None,
            description: None,
            metadata: None,
            failure_reason: None,
            created_at: now,
            updated_at: now,
            completed_at: None,
            refunded_amount: Money::ZERO,
            status_reason: None,
        }
    }

    fn spaces(writes: &WriteSet) -> Vec<Space> {
        writes.ops().map(|(space, _, _)| space).collect()
    }

    #[test]
    fn a_new_payin_is_its_record_listings_order_id_and_due_row() {
        let (merchant, api_user, manager) = (UserId::new(), UserId::new(), UserId::new());
        let p = payment(merchant, merchant);
        let mut own = WriteSet::new();
        let listed = Listed {
            created_by: &merchant,
            team: None,
        };
        let due = own.payin_created(&p, listed, 1_700_000_000_050).unwrap();
        // The merchant's own pay-in, no team: one listing row.
        assert_eq!(
            spaces(&own),
            [Space::Payments, Space::Index, Space::Unique, Space::Pending]
        );
        // The due item handed to the rail is exactly what its row reads back as.
        let (_, key, value) = own.ops().last().unwrap();
        assert_eq!(PendingItem::from_row(key, value.unwrap()).unwrap(), due);
        assert_eq!(
            (due.kind, due.record, due.merchant_id, due.due_unix_ms),
            (
                PendingKind::Payin,
                *p.id.as_bytes(),
                merchant,
                1_700_000_000_050
            )
        );

        // Made by an api_user for a merchant with a manager: three listings.
        let p = payment(merchant, api_user);
        let mut theirs = WriteSet::new();
        let listed = Listed {
            created_by: &api_user,
            team: Some(&manager),
        };
        theirs.payin_created(&p, listed, 0).unwrap();
        let listings = spaces(&theirs)
            .into_iter()
            .filter(|s| *s == Space::Index)
            .count();
        assert_eq!(listings, 3);
    }
}
