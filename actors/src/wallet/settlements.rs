//! The wallet's settlement commands (SPEC §14), as a child module of
//! `actor.rs` (it builds on the actor's private write path).
//!
//! `CreateSettlement` sweeps `available` above the merchant's
//! `settlement_reserve` into a pending settlement: ONE write set holds the
//! record, its listings, its row in the rail's due queue, the
//! `settlement_hold` transfer and the wallet. `SettleSettlement` applies
//! the rail's verdict (or an admin's) in ONE write set: the record, the
//! `settlement_settle` (processed) or `settlement_release` (failed)
//! transfer, the wallet, the webhook event and the removal of the due row.

use super::{db, Claims, Lifecycle, Prepared, Settled, WalletState};
use crate::wallet::messages::{Outcome, Reply};
use domain::settlement::{sandbox_outcome, SETTLEMENT_MIN};
use domain::AuditAction;
use domain::{
    EventType, Money, Rejection, Settlement, SettlementAccount, SettlementId, SettlementStatus,
    Timestamp, TransferKind,
};
use std::collections::HashMap;
use storage::WriteSet;

/// Most pending settlements one wallet keeps in memory; beyond, settling
/// reads them from storage.
const PENDING_MAX: usize = 1_000;

/// What the wallet knows of its settlements that storage may not show yet.
#[derive(Default)]
pub(super) struct SettlementBook {
    /// Pending settlements this incarnation created (bounded).
    pending: HashMap<SettlementId, Settlement>,
    /// The newest version of settlements whose write the store has not
    /// applied yet, with that write's sequence.
    inflight: HashMap<SettlementId, (u64, Settlement)>,
    /// Where the newest settlement's coverage ended: (posting, seq) of its
    /// hold. `None` until first needed (then read from storage once).
    covered_to: Option<(u64, u64)>,
}

impl SettlementBook {
    /// Nothing written that storage cannot show yet.
    pub(super) fn is_idle(&self, applied_seq: u64) -> bool {
        self.inflight.values().all(|(seq, _)| *seq <= applied_seq)
    }

    fn prune(&mut self, applied_seq: u64) {
        self.inflight.retain(|_, (seq, _)| *seq > applied_seq);
    }

    fn known(&self, id: &SettlementId) -> Option<&Settlement> {
        self.inflight
            .get(id)
            .map(|(_, s)| s)
            .or_else(|| self.pending.get(id))
    }
}

impl WalletState {
    /// The merchant's settlement account and reserve, as the directory
    /// (or, before it started, storage) has them.
    fn settlement_terms(&self) -> Result<(Option<SettlementAccount>, Money), Rejection> {
        // The directory's copy when it has one (it is updated once a change
        // is durable); storage for users written before it started.
        let known = (self.directory.as_ref()).and_then(|d| d.get(&self.merchant));
        let user = match known {
            Some(user) => Some((*user).clone()),
            None => self.store.user(&self.merchant).map_err(db)?,
        };
        let user = user.ok_or(Rejection::NotFound)?;
        Ok((user.settlement_account, user.settlement_reserve))
    }

    /// (posting, seq) of the newest settlement's hold: the coverage of the
    /// next one starts after it.
    fn covered_to(&self) -> Result<(u64, u64), Rejection> {
        if let Some(covered) = self.settlements.covered_to {
            return Ok(covered);
        }
        // The wallet loaded after every earlier write was applied, and
        // records every settlement it makes since: storage is exact here.
        let latest = self.store.latest_settlement(&self.merchant).map_err(db)?;
        Ok(latest.map_or((0, 0), |s| (s.last_posting, s.last_seq)))
    }

    pub(super) fn prepare_create_settlement(&self) -> Result<Prepared<Settlement>, Rejection> {
        let (account, reserve) = self.settlement_terms()?;
        let account = account.ok_or_else(|| {
            Rejection::InvalidRequest("the merchant has no settlement account".into())
        })?;
        let amount = self
            .wallet
            .available
            .checked_sub(reserve)
            .filter(|a| *a >= SETTLEMENT_MIN)
            .ok_or(Rejection::InsufficientBalance)?;
        let id = SettlementId::new();
        let now = Timestamp::from_unix_ms(i64::try_from(id.unix_ms()).unwrap_or(i64::MAX));
        let (prev_posting, prev_seq) = self.covered_to()?;
        let mut next = self.wallet.clone();
        let hold = next.post(TransferKind::SettlementHold, amount, id.to_string(), now)?;
        let settlement = Settlement {
            id,
            merchant_id: self.merchant,
            amount,
            currency: self.wallet.currency,
            status: SettlementStatus::Pending,
            utr: None,
            failure_reason: None,
            reason: None,
            settlement_account: account,
            first_seq: prev_seq.saturating_add(1),
            last_seq: hold.seq,
            first_posting: prev_posting.saturating_add(1),
            last_posting: hold.posting,
            created_at: now,
            updated_at: now,
            processed_at: None,
        };
        let mut writes = WriteSet::new();
        let due = writes
            .settlement_created(
                &settlement,
                self.settings.team.as_ref(),
                self.settle_at(now),
            )
            .map_err(db)?;
        self.put_common(&mut writes, &next, &[hold], None)?;
        let claims = Claims {
            due: Some(due),
            ..Claims::default()
        };
        Ok(Prepared::write(writes, next, settlement, claims))
    }

    /// After a create was written (or refused): remember the new one.
    pub(super) fn settlement_created(&mut self, reply: &Reply<Settlement>) {
        let Ok(s) = &reply.result else { return };
        self.settlements.covered_to = Some((s.last_posting, s.last_seq));
        if self.settlements.pending.len() < PENDING_MAX {
            self.settlements.pending.insert(s.id, s.clone());
        } else {
            self.settlements
                .inflight
                .insert(s.id, (self.last_write_seq, s.clone()));
        }
    }

    pub(super) fn prepare_settle_settlement(
        &mut self,
        id: SettlementId,
        outcome: Outcome<SettlementStatus>,
    ) -> Result<Prepared<Settlement>, Rejection> {
        self.settlements.prune(self.store.applied_seq());
        let now = Timestamp::now();
        let mut given = None;
        let mut settlement = match self.settlements.known(&id) {
            Some(s) => s.clone(),
            None => self
                .store
                .settlement(&id)
                .map_err(db)?
                .ok_or(Rejection::NotFound)?,
        };
        if settlement.merchant_id != self.merchant {
            return Err(Rejection::NotFound);
        }
        let (to, failure, manual, due) = match outcome {
            Outcome::Rail(due) => {
                let (to, failure) = sandbox_outcome(&settlement.settlement_account);
                (to, failure, None, Some(due))
            }
            Outcome::Given(to, audit) => {
                given = Some(audit);
                (
                    to,
                    None,
                    given.as_ref().and_then(|a| a.reason.clone()),
                    None,
                )
            }
        };
        let before = settlement.status.as_str();
        settlement.settle(to, failure, manual, now)?;
        let (kind, event_type) = match to {
            SettlementStatus::Processed => (
                TransferKind::SettlementSettle,
                EventType::SettlementProcessed,
            ),
            _ => (TransferKind::SettlementRelease, EventType::SettlementFailed),
        };
        let mut next = self.wallet.clone();
        let transfer = next.post(kind, settlement.amount, settlement.id.to_string(), now)?;
        let mut writes = WriteSet::new();
        writes.settlement_saved(&settlement).map_err(db)?;
        if let Some(due) = due {
            writes.settled(due);
        }
        self.audit_status(
            &mut writes,
            given.as_ref(),
            AuditAction::SettlementStatusSet,
            settlement.id.to_string(),
            (before, settlement.status.as_str()),
        )?;
        let settled = Settled {
            writes,
            created_by: self.merchant,
            transfers: vec![transfer],
            event_type,
            now,
            lifecycle: Lifecycle::default(),
        };
        self.settlement(settled, next, settlement, Settlement::event_payload)
    }

    /// After a settle was written: it is no longer pending, and storage
    /// may not show it yet.
    pub(super) fn settlement_settled(&mut self, reply: &Reply<Settlement>) {
        let (Ok(s), false) = (&reply.result, reply.replayed) else {
            return;
        };
        self.settlements.pending.remove(&s.id);
        self.settlements
            .inflight
            .insert(s.id, (self.last_write_seq, s.clone()));
    }
}
