//! What a wallet has written that reads of the store cannot see yet.
//!
//! The wallet answers its next command without waiting for the last one's
//! write to be applied (pipelining), so storage may not show its own recent
//! writes. It keeps, typed, just what its commands consult: the order and
//! reference ids it claimed, the Idempotency-Keys it stored, and the latest
//! version of each record it wrote. Each entry carries the queue sequence
//! of its write and is dropped once the store's applied sequence passes it,
//! so this holds at most the wallet's in-flight writes (it is the wallet's
//! authority until storage can answer, never a cache of storage).

use domain::{Payment, PaymentId, Payout, PayoutId, Refund, RefundId, UserId};
use std::collections::{HashMap, VecDeque};
use storage::{IdempotencyRecord, UniqueKind};

/// One thing a write claimed, for pruning.
enum Claim {
    Unique(UniqueKind, String),
    Idempotency(UserId, String),
    Payment(PaymentId),
    Payout(PayoutId),
    Refund(RefundId),
}

#[derive(Default)]
pub(super) struct InFlight {
    order_ids: HashMap<String, u64>,
    reference_ids: HashMap<String, u64>,
    idempotency: HashMap<(UserId, String), (u64, IdempotencyRecord)>,
    payments: HashMap<PaymentId, (u64, Payment)>,
    payouts: HashMap<PayoutId, (u64, Payout)>,
    refunds: HashMap<RefundId, (u64, Refund)>,
    /// Claims in the order they were written (sequences ascending).
    order: VecDeque<(u64, Claim)>,
}

impl InFlight {
    pub(super) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Forgets every claim whose write the store has applied: storage
    /// answers for it from now on. A later write of the same thing keeps
    /// its own, newer entry.
    pub(super) fn prune(&mut self, applied_seq: u64) {
        while self
            .order
            .front()
            .is_some_and(|(seq, _)| *seq <= applied_seq)
        {
            let Some((seq, claim)) = self.order.pop_front() else {
                break;
            };
            match claim {
                Claim::Unique(kind, id) => {
                    let ids = self.unique_mut(kind);
                    if ids.get(&id) == Some(&seq) {
                        ids.remove(&id);
                    }
                }
                Claim::Idempotency(by, key) => {
                    let key = (by, key);
                    if self.idempotency.get(&key).is_some_and(|(s, _)| *s == seq) {
                        self.idempotency.remove(&key);
                    }
                }
                Claim::Payment(id) => {
                    if self.payments.get(&id).is_some_and(|(s, _)| *s == seq) {
                        self.payments.remove(&id);
                    }
                }
                Claim::Payout(id) => {
                    if self.payouts.get(&id).is_some_and(|(s, _)| *s == seq) {
                        self.payouts.remove(&id);
                    }
                }
                Claim::Refund(id) => {
                    if self.refunds.get(&id).is_some_and(|(s, _)| *s == seq) {
                        self.refunds.remove(&id);
                    }
                }
            }
        }
    }

    fn unique_mut(&mut self, kind: UniqueKind) -> &mut HashMap<String, u64> {
        match kind {
            UniqueKind::OrderId => &mut self.order_ids,
            UniqueKind::ReferenceId => &mut self.reference_ids,
        }
    }

    pub(super) fn claim_unique(&mut self, seq: u64, kind: UniqueKind, id: String) {
        self.unique_mut(kind).insert(id.clone(), seq);
        self.order.push_back((seq, Claim::Unique(kind, id)));
    }

    pub(super) fn has_unique(&self, kind: UniqueKind, id: &str) -> bool {
        match kind {
            UniqueKind::OrderId => self.order_ids.contains_key(id),
            UniqueKind::ReferenceId => self.reference_ids.contains_key(id),
        }
    }

    pub(super) fn put_idempotency(
        &mut self,
        seq: u64,
        created_by: UserId,
        key: String,
        record: IdempotencyRecord,
    ) {
        self.idempotency
            .insert((created_by, key.clone()), (seq, record));
        self.order
            .push_back((seq, Claim::Idempotency(created_by, key)));
    }

    pub(super) fn idempotency(&self, created_by: UserId, key: &str) -> Option<&IdempotencyRecord> {
        self.idempotency
            .get(&(created_by, key.to_owned()))
            .map(|(_, record)| record)
    }

    pub(super) fn put_payment(&mut self, seq: u64, payment: Payment) {
        let id = payment.id;
        self.payments.insert(id, (seq, payment));
        self.order.push_back((seq, Claim::Payment(id)));
    }

    pub(super) fn payment(&self, id: &PaymentId) -> Option<&Payment> {
        self.payments.get(id).map(|(_, p)| p)
    }

    pub(super) fn put_payout(&mut self, seq: u64, payout: Payout) {
        let id = payout.id;
        self.payouts.insert(id, (seq, payout));
        self.order.push_back((seq, Claim::Payout(id)));
    }

    pub(super) fn payout(&self, id: &PayoutId) -> Option<&Payout> {
        self.payouts.get(id).map(|(_, p)| p)
    }

    pub(super) fn put_refund(&mut self, seq: u64, refund: Refund) {
        let id = refund.id;
        self.refunds.insert(id, (seq, refund));
        self.order.push_back((seq, Claim::Refund(id)));
    }

    pub(super) fn refund(&self, id: &RefundId) -> Option<&Refund> {
        self.refunds.get(id).map(|(_, r)| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_lives_until_its_write_is_applied() {
        let mut inflight = InFlight::default();
        inflight.claim_unique(5, UniqueKind::OrderId, "o-1".into());
        inflight.claim_unique(7, UniqueKind::ReferenceId, "r-1".into());
        assert!(inflight.has_unique(UniqueKind::OrderId, "o-1"));
        assert!(!inflight.has_unique(UniqueKind::ReferenceId, "o-1"));
        inflight.prune(4);
        assert!(inflight.has_unique(UniqueKind::OrderId, "o-1"));
        inflight.prune(5);
        assert!(!inflight.has_unique(UniqueKind::OrderId, "o-1"));
        assert!(inflight.has_unique(UniqueKind::ReferenceId, "r-1"));
        assert!(!inflight.is_empty());
        inflight.prune(7);
        assert!(inflight.is_empty());
    }

    #[test]
    fn a_newer_write_of_the_same_key_outlives_the_older_one() {
        let mut inflight = InFlight::default();
        let by = UserId::new();
        let record = |fingerprint: &str| IdempotencyRecord {
            fingerprint: fingerprint.into(),
            fields: Vec::new(),
            response: Default::default(),
            created_at: domain::Timestamp::from_unix_ms(0),
        };
        inflight.put_idempotency(3, by, "k".into(), record("first"));
        inflight.put_idempotency(9, by, "k".into(), record("second"));
        inflight.prune(3);
        assert_eq!(
            inflight
                .idempotency(by, "k")
                .map(|r| r.fingerprint.as_str()),
            Some("second")
        );
        inflight.prune(9);
        assert!(inflight.idempotency(by, "k").is_none());
    }
}
