//! The payout lifecycle of SPEC §13, as the wallet actor carries it out:
//! the FIFO of queued payouts (rebuilt at start from the merchant's queue
//! rows, one bounded read), queueing a payout `available` cannot cover,
//! draining the FIFO in the same write as every credit or release,
//! cancelling, reversing (the sandbox's magic account), the time to live
//! of a queued payout (a due row the rail fires), the UTR of a processed
//! payout, and a batch of payouts as one write.
//!
//! A child module of `actor`, so it works on the wallet's state directly.

use super::*;
use crate::wallet::messages::BatchReply;
use std::collections::{HashSet, VecDeque};
use storage::PendingId;

/// Most payouts one wallet keeps queued; beyond, a payout asking to be
/// queued fails with `insufficient_balance` as it would without asking.
pub(super) const PAYOUT_QUEUE_MAX: usize = 10_000;

/// The account number the sandbox reverses after processing.
pub const REVERSE_ACCOUNT: &str = "000000000001";

const REVERSAL_REASON: &str = "beneficiary bank returned the payout";
const TTL_REASON: &str = "queued longer than the payout queue TTL";
const CANCEL_REASON: &str = "cancelled on request";

/// The sandbox's bank reference for a processed payout: `TJR` and 13
/// base-36 digits (uppercase) of a fixed hash of its id; deterministic.
pub(super) fn sandbox_utr(id: &PayoutId) -> String {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut h = id
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    let mut utr = String::with_capacity(16);
    utr.push_str("TJR");
    for _ in 0..13 {
        utr.push(char::from(DIGITS[(h % 36) as usize]));
        h /= 36;
    }
    utr
}

/// The wallet's queued payouts, oldest first.
#[derive(Default)]
pub(super) struct PayoutQueue {
    items: VecDeque<Payout>,
}

impl PayoutQueue {
    /// The merchant's queued payouts as storage has them (the wallet loads
    /// after its predecessor's writes are applied).
    pub(super) fn load(store: &Store, merchant: &UserId) -> Result<PayoutQueue, StorageError> {
        let items = store.queued_payouts(merchant, PAYOUT_QUEUE_MAX)?;
        Ok(PayoutQueue {
            items: items.into(),
        })
    }

    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn remove(&mut self, id: &PayoutId) {
        self.items.retain(|p| p.id != *id);
    }

    fn get(&self, id: &PayoutId) -> Option<&Payout> {
        self.items.iter().find(|p| p.id == *id)
    }
}

/// What a write of the payout lifecycle changes besides its main record,
/// adopted once the write is queued.
#[derive(Default)]
pub(super) struct Lifecycle {
    /// Further rows for the rail: dequeued payouts, reversals, expiries.
    due: Vec<PendingItem>,
    /// Payouts that left the queue for `pending` (with their hold).
    activated: Vec<Payout>,
    /// Payouts that left the queue cancelled.
    removed: Vec<PayoutId>,
    /// A payout that joined the back of the queue.
    queued: Option<Payout>,
}

impl WalletState {
    /// When a payout queued at `created` expires.
    fn expire_at(&self, created: Timestamp) -> i64 {
        let ttl = i64::try_from(self.config.payout_queue_ttl_ms).unwrap_or(i64::MAX);
        created.plus_ms(ttl).unix_ms()
    }

    /// Whether a payout that asked to be queued must be: something is
    /// queued already (strict FIFO: it goes behind), or `available` does
    /// not cover its hold.
    pub(super) fn must_queue(&self, hold: Money) -> bool {
        !self.queue.is_empty() || self.wallet.available < hold
    }

    /// The newest version of one of this wallet's payouts.
    fn known_payout(&self, id: &PayoutId) -> Result<Payout, Rejection> {
        let known = self
            .inflight
            .payout(id)
            .or_else(|| self.pending.payouts.get(id))
            .or_else(|| self.queue.get(id));
        let payout = match known {
            Some(p) => p.clone(),
            None => self
                .store
                .payout(id)
                .map_err(db)?
                .ok_or(Rejection::NotFound)?,
        };
        if payout.merchant_id != self.merchant {
            return Err(Rejection::NotFound);
        }
        Ok(payout)
    }

    fn payout_event(&self, payout: &Payout, event: EventType, now: Timestamp) -> OutboxEvent {
        let id = EventId::new();
        let recipients = self.recipients(payout.created_by);
        let body = payout.event_payload(id, event, now);
        OutboxEvent::new(id, event, &recipients, body, now)
    }

    /// A new payout `available` cannot cover (or that must wait behind
    /// the queue): stored `queued`, no hold, with its expiry row.
    pub(super) fn prepare_queued_payout(
        &self,
        mut payout: Payout,
        idempotency: Option<super::super::messages::Idempotency>,
        now: Timestamp,
    ) -> Result<Prepared<Payout>, Rejection> {
        if self.queue.items.len() >= PAYOUT_QUEUE_MAX {
            return Err(Rejection::InsufficientBalance);
        }
        payout.status = PayoutStatus::Queued;
        let mut writes = WriteSet::new();
        let expiry = writes
            .payout_queued(
                &payout,
                self.listed(&payout.created_by),
                self.expire_at(payout.created_at),
            )
            .map_err(db)?;
        let idempotency = Self::put_idempotency(
            &mut writes,
            &self.merchant,
            &payout.created_by,
            idempotency,
            &payout,
            now,
        )?;
        let event = self.payout_event(&payout, EventType::PayoutQueued, now);
        let next = self.wallet.clone();
        self.put_common(&mut writes, &next, &[], Some(&event))?;
        let claims = Claims {
            unique: payout
                .reference_id
                .clone()
                .map(|r| (UniqueKind::ReferenceId, r)),
            idempotency,
            due: Some(expiry),
            event: Some(event),
            lifecycle: Lifecycle {
                queued: Some(payout.clone()),
                ..Lifecycle::default()
            },
        };
        Ok(Prepared::write(writes, next, payout, claims))
    }

    /// Takes queued payouts off the head of the queue for as long as
    /// `next.available` covers them (strictly FIFO: the first that does
    /// not fit stops it), holding each and handing it to the rail, all in
    /// the write being built.
    pub(super) fn drain_queue(
        &self,
        next: &mut Wallet,
        writes: &mut WriteSet,
        transfers: &mut Vec<Transfer>,
        lifecycle: &mut Lifecycle,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        for queued in &self.queue.items {
            if lifecycle.removed.contains(&queued.id) {
                continue;
            }
            let hold = queued.hold().ok_or(Rejection::DatabaseError)?;
            if next.available < hold {
                break;
            }
            let mut payout = queued.clone();
            payout.activate(now)?;
            transfers.push(next.post(
                TransferKind::PayoutHold,
                hold,
                payout.id.to_string(),
                now,
            )?);
            writes
                .payout_unqueued(&payout, self.expire_at(payout.created_at))
                .map_err(db)?;
            lifecycle
                .due
                .push(writes.payout_due(&payout, self.settle_at(now)));
            lifecycle.activated.push(payout);
        }
        Ok(())
    }

    /// Adopts what a queued write changed in the payout lifecycle.
    pub(super) fn adopt_lifecycle(&mut self, seq: u64, lifecycle: Lifecycle) {
        let Lifecycle {
            due,
            activated,
            removed,
            queued,
        } = lifecycle;
        let mut unqueued = Vec::new();
        for id in removed {
            if self.queue.get(&id).is_some() {
                unqueued.push(id);
            }
            self.queue.remove(&id);
            self.pending.payouts.remove(&id);
        }
        for payout in activated {
            unqueued.push(payout.id);
            self.queue.remove(&payout.id);
            self.pending.payouts.remove(&payout.id);
            // Its newest version answers before any older one.
            self.inflight.put_payout(seq, payout.clone());
            self.pending.remember_payout(&payout);
        }
        if let Some(payout) = queued {
            self.queue.items.push_back(payout);
        }
        if let Some(connector) = &self.connector {
            for item in due {
                let _ = connector.cast(ConnectorMsg::Due(item));
            }
            // Their expiry rows went in this write: the rail's timers are void.
            for id in unqueued {
                let _ = connector.cast(ConnectorMsg::Unqueued(*id.as_bytes()));
            }
        }
    }

    /// After a cancel, reversal or expiry: the record's newest version.
    pub(super) fn payout_changed(&mut self, reply: &Reply<Payout>) {
        if let (Ok(p), false) = (&reply.result, reply.replayed) {
            self.pending.payouts.remove(&p.id);
            self.inflight.put_payout(self.last_write_seq, p.clone());
        }
    }

    /// The rail's reversal row, when a processed payout went to the
    /// sandbox's reversing account.
    pub(super) fn reversal_due(
        &self,
        payout: &Payout,
        writes: &mut WriteSet,
        now: Timestamp,
    ) -> Lifecycle {
        let mut lifecycle = Lifecycle::default();
        if payout.status == PayoutStatus::Processed
            && payout.beneficiary.account_number == REVERSE_ACCOUNT
        {
            lifecycle
                .due
                .push(writes.payout_reversal_due(payout, self.settle_at(now)));
        }
        lifecycle
    }

    /// `queued | pending → cancelled`; a pending payout's hold goes back
    /// to `available` (and the queue is tried: money came back).
    pub(super) fn prepare_cancel_payout(
        &self,
        id: PayoutId,
        reason: Option<String>,
        audit: Option<&AuditContext>,
    ) -> Result<Prepared<Payout>, Rejection> {
        let now = Timestamp::now();
        let mut payout = self.known_payout(&id)?;
        let reason = reason.unwrap_or_else(|| CANCEL_REASON.to_owned());
        let was = payout.cancel(Some(reason), now)?;
        let mut writes = WriteSet::new();
        self.audit_status(
            &mut writes,
            audit,
            AuditAction::PayoutStatusSet,
            payout.id.to_string(),
            (was.as_str(), payout.status.as_str()),
        )?;
        let mut next = self.wallet.clone();
        let mut transfers = Vec::with_capacity(1);
        let mut lifecycle = Lifecycle::default();
        if was == PayoutStatus::Pending {
            let hold = payout.hold().ok_or(Rejection::DatabaseError)?;
            transfers.push(next.post(
                TransferKind::PayoutRelease,
                hold,
                payout.id.to_string(),
                now,
            )?);
            // Its due row stays: the rail finds it cancelled and drops it.
            writes.payout_saved(&payout).map_err(db)?;
        } else {
            writes
                .payout_unqueued(&payout, self.expire_at(payout.created_at))
                .map_err(db)?;
            lifecycle.removed.push(id);
        }
        let settled = Settled {
            writes,
            created_by: payout.created_by,
            transfers,
            event_type: EventType::PayoutCancelled,
            now,
            lifecycle,
        };
        self.settlement(settled, next, payout, Payout::event_payload)
    }

    /// `processed → reversed`: the amount comes back to `available` from
    /// `rail:payouts`; the fee stays earned.
    pub(super) fn prepare_reverse_payout(
        &self,
        id: PayoutId,
        outcome: Outcome<PayoutStatus>,
    ) -> Result<Prepared<Payout>, Rejection> {
        let now = Timestamp::now();
        let mut payout = self.known_payout(&id)?;
        let mut manual = None;
        let (reason, due) = match outcome {
            Outcome::Rail(due) => (Some(REVERSAL_REASON.to_owned()), Some(due)),
            Outcome::Given(_, audit) => {
                manual = Some(audit);
                (manual.as_ref().and_then(|a| a.reason.clone()), None)
            }
        };
        let before = payout.status.as_str();
        payout.reverse(reason, now)?;
        let mut next = self.wallet.clone();
        let transfer = next.post(
            TransferKind::PayoutReverse,
            payout.amount,
            payout.id.to_string(),
            now,
        )?;
        next.total_payouts = next
            .total_payouts
            .checked_sub(payout.amount)
            .ok_or(Rejection::DatabaseError)?;
        let mut writes = WriteSet::new();
        writes.payout_saved(&payout).map_err(db)?;
        if let Some(due) = due {
            writes.settled(due);
        }
        self.audit_status(
            &mut writes,
            manual.as_ref(),
            AuditAction::PayoutStatusSet,
            payout.id.to_string(),
            (before, payout.status.as_str()),
        )?;
        let settled = Settled {
            writes,
            created_by: payout.created_by,
            transfers: vec![transfer],
            event_type: EventType::PayoutReversed,
            now,
            lifecycle: Lifecycle::default(),
        };
        self.settlement(settled, next, payout, Payout::event_payload)
    }

    /// A queued payout's expiry row fell due: still queued → `cancelled`.
    /// Anything else is `invalid_status_transition` (the rail drops the row).
    pub(super) fn prepare_expire_payout(
        &self,
        id: PayoutId,
        due: PendingId,
    ) -> Result<Prepared<Payout>, Rejection> {
        let now = Timestamp::now();
        let mut payout = self.known_payout(&id)?;
        if payout.status != PayoutStatus::Queued {
            return Err(Rejection::InvalidStatusTransition {
                from: payout.status.as_str(),
                to: PayoutStatus::Cancelled.as_str().to_owned(),
            });
        }
        payout.cancel(Some(TTL_REASON.to_owned()), now)?;
        let mut writes = WriteSet::new();
        writes
            .payout_unqueued(&payout, self.expire_at(payout.created_at))
            .map_err(db)?;
        writes.settled(due);
        let settled = Settled {
            writes,
            created_by: payout.created_by,
            transfers: Vec::new(),
            event_type: EventType::PayoutCancelled,
            now,
            lifecycle: Lifecycle {
                removed: vec![id],
                ..Lifecycle::default()
            },
        };
        self.settlement(settled, self.wallet.clone(), payout, Payout::event_payload)
    }

    /// Several payouts, each validated on its own against the wallet as the
    /// items before it left it; the accepted ones in ONE write set.
    pub(super) async fn create_payouts(&mut self, items: Vec<NewPayout>) -> BatchReply {
        let before = self.wallet.clone();
        let mut writes = WriteSet::new();
        let mut results: Vec<Result<Payout, Rejection>> = Vec::with_capacity(items.len());
        let mut accepted: Vec<Claims> = Vec::new();
        let mut references: HashSet<String> = HashSet::new();
        let mut queued_here: Vec<PayoutId> = Vec::new();
        for new in items {
            let reference = new.reference_id.clone();
            if reference.as_ref().is_some_and(|r| references.contains(r)) {
                results.push(Err(Rejection::DuplicateOrderId));
                continue;
            }
            match self.prepare_payout(new) {
                Ok(Prepared::Write(write)) => {
                    let Write {
                        writes: own,
                        next,
                        record,
                        mut claims,
                    } = *write;
                    writes.append(own);
                    // The items after it see the wallet and queue it left.
                    self.wallet = next;
                    if let Some(payout) = claims.lifecycle.queued.take() {
                        queued_here.push(payout.id);
                        self.queue.items.push_back(payout);
                    }
                    if let Some(reference) = reference {
                        references.insert(reference);
                    }
                    accepted.push(claims);
                    results.push(Ok(record));
                }
                Ok(Prepared::Replay(record)) => results.push(Ok(record)),
                Err(rejection) => results.push(Err(rejection)),
            }
        }
        if accepted.is_empty() {
            return BatchReply {
                results,
                ticket: None,
            };
        }
        writes.keep_last_wallet();
        match self.store.submit(writes).await {
            Ok(ticket) => {
                let seq = ticket.seq();
                self.last_write_seq = seq;
                for claims in accepted {
                    if let Some((kind, id)) = claims.unique {
                        self.inflight.claim_unique(seq, kind, id);
                    }
                    if let (Some(connector), Some(item)) = (&self.connector, claims.due) {
                        let _ = connector.cast(ConnectorMsg::Due(item));
                    }
                    if let Some(event) = claims.event {
                        self.fresh.put(event);
                    }
                    self.adopt_lifecycle(seq, claims.lifecycle);
                }
                for payout in results.iter().flatten() {
                    if !self.pending.remember_payout(payout) {
                        self.inflight.put_payout(seq, payout.clone());
                    }
                }
                BatchReply {
                    results,
                    ticket: Some(ticket),
                }
            }
            Err(e) => {
                self.wallet = before;
                for id in &queued_here {
                    self.queue.remove(id);
                }
                let failed = db(e);
                let results = results
                    .into_iter()
                    .map(|r| r.and(Err(failed.clone())))
                    .collect();
                BatchReply {
                    results,
                    ticket: None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utr_is_deterministic_and_bank_like() {
        let id = PayoutId::new();
        let utr = sandbox_utr(&id);
        assert_eq!(utr, sandbox_utr(&id));
        assert_eq!(utr.len(), 16);
        assert!(utr
            .bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
        assert_ne!(utr, sandbox_utr(&PayoutId::new()));
    }
}
