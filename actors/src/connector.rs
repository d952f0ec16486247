//! The sandbox rail (SPEC §6). It keeps the pending transactions in an
//! in-memory queue ordered by due time: wallets tell it about every pending
//! row they write (`ConnectorMsg::Due`, once the write is queued), and at
//! start it reads the `Pending` space once, so transactions left pending by
//! a restart are settled the same way. Every `connector_poll_ms` it takes
//! what has fallen due, decides each outcome deterministically, and settles
//! it through the wallet handle. No poll reads storage for due work: an idle
//! server does nothing that grows with history.
//!
//! A row leaves the `Pending` space in the wallet's settlement write itself
//! (one commit: the record settled, its transfers, its event, its row
//! gone). Rows whose record is found already settled (by hand) or gone are
//! deleted by the connector, together, at its next poll. A settlement that
//! failed for a passing reason (a busy wallet, a record not yet visible)
//! is retried from memory.
//!
//! It also keeps the set of transactions awaiting the rail (queued, being
//! settled, or to retry), ordered by creation time (their ids are
//! UUIDv7), and publishes its size and oldest creation time in
//! `SettlementStats` after every message: the pending-settlement gauges
//! come from there, never from a scan.

use crate::{CoreConfig, WalletHandle};
use domain::{
    PaymentId, PaymentStatus, PayoutId, PayoutStatus, RefundId, RefundStatus, Rejection, Timestamp,
};
use futures_util::stream::{FuturesUnordered, StreamExt};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use storage::{PendingId, PendingItem, PendingKind, Store, WriteSet};

/// The payer VPA that the sandbox always declines.
pub const FAIL_VPA: &str = "fail@sandbox";
/// The account number the sandbox always rejects.
pub const REJECT_ACCOUNT: &str = "000000000000";

pub(crate) enum ConnectorMsg {
    Poll,
    /// A pending row a wallet has queued for writing.
    Due(PendingItem),
    /// A settlement ended.
    Done(PendingItem, Finished),
    /// A queued payout left its wallet's queue (paid out or cancelled; its
    /// expiry row went in that write): its expiry timer is void.
    Unqueued([u8; 16]),
}

pub(crate) struct Connector;

/// How a settlement attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finished {
    /// Settled now: the wallet's write removed the row.
    Settled,
    /// Settled earlier (by hand) or the record is gone: the connector
    /// removes the row.
    Elsewhere,
    /// Failed for a passing reason: try again.
    Retry,
}

pub(crate) struct ConnectorArgs {
    pub store: Store,
    pub wallets: WalletHandle,
    pub config: Arc<CoreConfig>,
    pub stats: Arc<SettlementStats>,
}

/// Transactions awaiting the rail, as the connector last published them.
#[derive(Debug, Default)]
pub struct SettlementStats {
    pending: AtomicU64,
    /// Creation time (unix ms) of the oldest pending one; 0 when none.
    oldest_created_ms: AtomicI64,
    /// Payouts waiting in their wallets' queues (SPEC §13), and the
    /// creation time of the oldest (0 when none).
    queued: AtomicU64,
    oldest_queued_ms: AtomicI64,
}

impl SettlementStats {
    /// How many pay-ins, payouts, refunds and settlements (SPEC §14) await the rail.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// How long the oldest of them has waited since it was created, at
    /// `now_ms`; 0 when none waits.
    pub fn oldest_age_ms(&self, now_ms: i64) -> i64 {
        match self.oldest_created_ms.load(Ordering::Relaxed) {
            0 => 0,
            created => now_ms.saturating_sub(created).max(0),
        }
    }

    /// How many payouts wait in their wallets' queues.
    pub fn queued_payouts(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// How long the oldest queued payout has waited, at `now_ms`; 0 when none.
    pub fn oldest_queued_age_ms(&self, now_ms: i64) -> i64 {
        match self.oldest_queued_ms.load(Ordering::Relaxed) {
            0 => 0,
            created => now_ms.saturating_sub(created).max(0),
        }
    }

    fn publish_queued(&self, queued: &BTreeSet<[u8; 16]>) {
        let oldest = queued.first().map_or(0, created_ms);
        self.oldest_queued_ms.store(oldest, Ordering::Relaxed);
        self.queued.store(queued.len() as u64, Ordering::Relaxed);
    }

    fn publish(&self, awaiting: &BTreeSet<[u8; 16]>) {
        let oldest = awaiting.first().map_or(0, created_ms);
        self.oldest_created_ms.store(oldest, Ordering::Relaxed);
        self.pending.store(awaiting.len() as u64, Ordering::Relaxed);
    }
}

/// The creation time of a UUIDv7 record id: its first 48 bits, unix ms.
fn created_ms(id: &[u8; 16]) -> i64 {
    let mut ms = [0u8; 8];
    ms[2..].copy_from_slice(&id[..6]);
    i64::from_be_bytes(ms)
}

pub(crate) struct ConnectorState {
    args: ConnectorArgs,
    in_flight: HashSet<PendingId>,
    /// Pending transactions by due time (then key).
    queue: BinaryHeap<Reverse<Due>>,
    /// Settlements that failed for a passing reason, to try again.
    retry: Vec<PendingItem>,
    /// Rows of records settled elsewhere, deleted at the next poll.
    done: Vec<PendingId>,
    /// Record ids of every transaction awaiting the rail (in `queue`,
    /// `in_flight` or `retry`); byte order is creation order.
    awaiting: BTreeSet<[u8; 16]>,
    /// Payout ids with a live queue-expiry timer: the payouts waiting in
    /// their wallets' queues (the queued-payouts gauges come from here).
    queued: BTreeSet<[u8; 16]>,
    /// Queued payouts that left their queue while their expiry timer is
    /// still in `queue`: the timer is dropped unasked when it falls due.
    unqueued: HashSet<[u8; 16]>,
    timer: Option<tokio::task::JoinHandle<()>>,
}

/// A queued pending transaction, ordered by due time, then key.
struct Due(PendingItem);

impl PartialEq for Due {
    fn eq(&self, other: &Due) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Due) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Due) -> std::cmp::Ordering {
        (self.0.due_unix_ms, self.0.id).cmp(&(other.0.due_unix_ms, other.0.id))
    }
}

/// FNV-1a: a fixed, seedless hash, so the same id always gets the same fate.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The sandbox's verdict on a pay-in.
pub fn payin_outcome(
    id: &PaymentId,
    payer_vpa: Option<&str>,
    failure_ppm: u32,
) -> (PaymentStatus, Option<String>) {
    if payer_vpa == Some(FAIL_VPA) {
        return (
            PaymentStatus::Failed,
            Some("payer declined the collect request".into()),
        );
    }
    if fnv1a(id.as_bytes()) % 1_000_000 < u64::from(failure_ppm) {
        return (PaymentStatus::Failed, Some("sandbox bank declined".into()));
    }
    (PaymentStatus::Completed, None)
}

/// The refund `reason` that the sandbox always fails.
pub const FAIL_REFUND_REASON: &str = "fail@sandbox";

/// The sandbox's verdict on a refund: its `reason` decides.
pub fn refund_outcome(reason: Option<&str>) -> (RefundStatus, Option<String>) {
    if reason == Some(FAIL_REFUND_REASON) {
        return (
            RefundStatus::Failed,
            Some("the payer's bank refused the refund".into()),
        );
    }
    (RefundStatus::Processed, None)
}

/// The sandbox's verdict on a payout.
pub fn payout_outcome(account_number: &str) -> (PayoutStatus, Option<String>) {
    if account_number == REJECT_ACCOUNT {
        return (
            PayoutStatus::Rejected,
            Some("beneficiary account is invalid".into()),
        );
    }
    (PayoutStatus::Processed, None)
}

impl Actor for Connector {
    type Msg = ConnectorMsg;
    type State = ConnectorState;
    type Arguments = ConnectorArgs;

    async fn pre_start(
        &self,
        me: ActorRef<ConnectorMsg>,
        args: ConnectorArgs,
    ) -> Result<ConnectorState, ActorProcessingErr> {
        // The one read of the Pending space: what a restart left pending.
        let items = args.store.due_pending(i64::MAX, usize::MAX)?;
        let awaiting: BTreeSet<[u8; 16]> = items
            .iter()
            .filter(|item| awaits_rail(item))
            .map(|item| item.record)
            .collect();
        args.stats.publish(&awaiting);
        let queued: BTreeSet<[u8; 16]> = items
            .iter()
            .filter(|item| item.kind == PendingKind::PayoutQueueExpiry)
            .map(|item| item.record)
            .collect();
        args.stats.publish_queued(&queued);
        let queue = items.into_iter().map(|item| Reverse(Due(item))).collect();
        let period = Duration::from_millis(args.config.connector_poll_ms.max(1));
        let timer = Some(me.send_interval(period, || ConnectorMsg::Poll));
        Ok(ConnectorState {
            args,
            in_flight: HashSet::new(),
            queue,
            retry: Vec::new(),
            done: Vec::new(),
            awaiting,
            queued,
            unqueued: HashSet::new(),
            timer,
        })
    }

    async fn post_stop(
        &self,
        _me: ActorRef<ConnectorMsg>,
        state: &mut ConnectorState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(timer) = state.timer.take() {
            timer.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<ConnectorMsg>,
        msg: ConnectorMsg,
        state: &mut ConnectorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ConnectorMsg::Done(item, finished) => {
                state.in_flight.remove(&item.id);
                match finished {
                    Finished::Retry => state.retry.push(item),
                    Finished::Settled | Finished::Elsewhere => {
                        state.awaiting.remove(&item.record);
                        state.args.stats.publish(&state.awaiting);
                        if item.kind == PendingKind::PayoutQueueExpiry
                            && state.queued.remove(&item.record)
                        {
                            state.args.stats.publish_queued(&state.queued);
                        }
                        if finished == Finished::Elsewhere {
                            state.done.push(item.id);
                        }
                    }
                }
            }
            ConnectorMsg::Due(item) => {
                if awaits_rail(&item) && state.awaiting.insert(item.record) {
                    state.args.stats.publish(&state.awaiting);
                }
                if item.kind == PendingKind::PayoutQueueExpiry && state.queued.insert(item.record) {
                    state.args.stats.publish_queued(&state.queued);
                }
                state.queue.push(Reverse(Due(item)));
            }
            ConnectorMsg::Unqueued(record) => {
                // Only a payout with a live timer: its timer is skipped
                // when it falls due (so the set stays bounded by the heap).
                if state.queued.remove(&record) {
                    state.unqueued.insert(record);
                    state.args.stats.publish_queued(&state.queued);
                }
            }
            ConnectorMsg::Poll => state.poll(&me).await,
        }
        Ok(())
    }
}

impl ConnectorState {
    async fn poll(&mut self, me: &ActorRef<ConnectorMsg>) {
        if !self.done.is_empty() {
            let mut writes = WriteSet::new();
            for id in self.done.drain(..) {
                writes.settled(id);
            }
            // Not awaited: a row whose delete is lost in a crash is found
            // settled after the restart, and deleted then.
            if let Err(e) = self.args.store.submit(writes).await {
                tracing::error!(error = %e, "connector could not clear settled rows");
            }
        }
        let room = self
            .args
            .config
            .connector_inflight_max
            .saturating_sub(self.in_flight.len());
        if room == 0 {
            return;
        }
        let mut fresh: Vec<PendingItem> = self.retry.drain(..room.min(self.retry.len())).collect();
        let now = Timestamp::now().unix_ms();
        while fresh.len() < room {
            match self.queue.peek() {
                Some(Reverse(Due(item))) if item.due_unix_ms <= now => {}
                _ => break,
            }
            if let Some(Reverse(Due(item))) = self.queue.pop() {
                // The timer of a payout that already left its queue: its
                // row went in that write, nothing to ask.
                if item.kind == PendingKind::PayoutQueueExpiry && self.unqueued.remove(&item.record)
                {
                    continue;
                }
                fresh.push(item);
            }
        }
        fresh.retain(|item| self.in_flight.insert(item.id));
        if fresh.is_empty() {
            return;
        }
        // One task per round, not per row: it asks the wallets concurrently
        // and reports each row as its wallet answers.
        let (wallets, me) = (self.args.wallets.clone(), me.clone());
        tokio::spawn(async move {
            let mut settling: FuturesUnordered<_> = fresh
                .into_iter()
                .map(|item| {
                    let wallets = &wallets;
                    async move {
                        let finished = settle(wallets, &item).await;
                        (item, finished)
                    }
                })
                .collect();
            while let Some((item, finished)) = settling.next().await {
                let _ = me.cast(ConnectorMsg::Done(item, finished));
            }
        });
    }
}

/// Whether a due row is money awaiting the rail (a queued payout's
/// expiry row is a timer, not a settlement: it stays out of the gauges).
fn awaits_rail(item: &PendingItem) -> bool {
    item.kind != PendingKind::PayoutQueueExpiry
}

/// Settles one due transaction.
async fn settle(wallets: &WalletHandle, item: &PendingItem) -> Finished {
    // The wallet holds the record (or reads it, if older than the wallet's
    // incarnation) and applies the rail's rules to it.
    let result = match item.kind {
        PendingKind::Payin => wallets
            .settle_payin_by_rail(
                item.merchant_id,
                PaymentId::from_bytes(item.record),
                item.id,
            )
            .await
            .map(|_| ()),
        PendingKind::Payout => wallets
            .settle_payout_by_rail(item.merchant_id, PayoutId::from_bytes(item.record), item.id)
            .await
            .map(|_| ()),
        PendingKind::Settlement => wallets
            .settle_settlement_by_rail(
                item.merchant_id,
                domain::SettlementId::from_bytes(item.record),
                item.id,
            )
            .await
            .map(|_| ()),
        PendingKind::Refund => wallets
            .settle_refund_by_rail(item.merchant_id, RefundId::from_bytes(item.record), item.id)
            .await
            .map(|_| ()),
        PendingKind::PayoutReversal => wallets
            .reverse_payout_by_rail(item.merchant_id, PayoutId::from_bytes(item.record), item.id)
            .await
            .map(|_| ()),
        PendingKind::PayoutQueueExpiry => wallets
            .expire_payout_by_rail(item.merchant_id, PayoutId::from_bytes(item.record), item.id)
            .await
            .map(|_| ()),
    };
    match result {
        Ok(()) => Finished::Settled,
        Err(Rejection::InvalidStatusTransition { .. }) | Err(Rejection::NotFound) => {
            Finished::Elsewhere
        }
        // Transient (wallet busy, storage hiccup): the next poll retries.
        Err(rejection) => {
            tracing::debug!(%rejection, "settlement will be retried");
            Finished::Retry
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_settlements_are_counted_and_aged_by_creation_time() {
        let stats = SettlementStats::default();
        let mut awaiting = BTreeSet::new();
        stats.publish(&awaiting);
        assert_eq!((stats.pending(), stats.oldest_age_ms(1_000)), (0, 0));
        let older = PaymentId::new();
        std::thread::sleep(Duration::from_millis(3));
        let newer = PayoutId::new();
        assert_eq!(created_ms(older.as_bytes()), older.unix_ms() as i64);
        awaiting.insert(*newer.as_bytes());
        awaiting.insert(*older.as_bytes());
        stats.publish(&awaiting);
        let now = newer.unix_ms() as i64 + 10_000;
        assert_eq!(stats.pending(), 2);
        assert_eq!(stats.oldest_age_ms(now), now - older.unix_ms() as i64);
        awaiting.remove(older.as_bytes());
        stats.publish(&awaiting);
        assert_eq!(stats.pending(), 1);
        assert_eq!(stats.oldest_age_ms(now), 10_000);
        // A clock that went back shows 0, not a negative age.
        assert_eq!(stats.oldest_age_ms(0), 0);
    }

    #[test]
    fn magic_values_decide() {
        let id = PaymentId::new();
        assert_eq!(
            payin_outcome(&id, Some(FAIL_VPA), 0).0,
            PaymentStatus::Failed
        );
        assert_eq!(
            payin_outcome(&id, Some("jane@upi"), 0).0,
            PaymentStatus::Completed
        );
        assert_eq!(payin_outcome(&id, None, 1_000_000).0, PaymentStatus::Failed);
        assert_eq!(payout_outcome(REJECT_ACCOUNT).0, PayoutStatus::Rejected);
        assert_eq!(payout_outcome("123456789012").0, PayoutStatus::Processed);
        assert_eq!(
            refund_outcome(Some(FAIL_REFUND_REASON)).0,
            RefundStatus::Failed
        );
        assert_eq!(refund_outcome(Some("damaged")).0, RefundStatus::Processed);
        assert_eq!(refund_outcome(None).0, RefundStatus::Processed);
    }

    #[test]
    fn failure_rate_is_deterministic_and_close_to_the_setting() {
        let ids: Vec<PaymentId> = (0..20_000).map(|_| PaymentId::new()).collect();
        let failed = |ids: &[PaymentId]| {
            ids.iter()
                .filter(|id| payin_outcome(id, None, 100_000).0 == PaymentStatus::Failed)
                .count()
        };
        let first = failed(&ids);
        assert_eq!(first, failed(&ids));
        assert!(
            (1_500..2_500).contains(&first),
            "{first} of 20000 failed at 10%"
        );
    }
}
