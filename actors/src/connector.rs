//! The sandbox rail (SPEC §6). Every `connector_poll_ms` it reads the
//! transactions that have become due from storage (the `Pending` space is
//! keyed by due time, so a poll reads only what is due), decides each
//! outcome deterministically, and settles it through the wallet handle.
//! Because it works from storage, pending transactions found after a
//! restart are settled the same way. A row is deleted only after its
//! settlement is durable or the record is found already settled; the rows
//! settled between two polls are deleted together, in one write.
//!
//! No pass reads from the start of the `Pending` space: settled rows leave
//! tombstones there, and walking them made an idle server's CPU grow with
//! history. Reads go forward from a cursor, stepping back a bounded
//! `LOOKBACK_MS` now and then for rows applied behind it; a settlement
//! that failed for a passing reason is retried from memory.

use crate::{CoreConfig, WalletHandle};
use domain::{PaymentId, PaymentStatus, PayoutId, PayoutStatus, Rejection, Timestamp};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use storage::{PendingItem, PendingKind, Space, Store, WriteSet};

/// The payer VPA that the sandbox always declines.
pub const FAIL_VPA: &str = "fail@sandbox";
/// The account number the sandbox always rejects.
pub const REJECT_ACCOUNT: &str = "000000000000";

pub(crate) enum ConnectorMsg {
    Poll,
    /// A settlement ended: its row is done (`true`) or must be retried.
    Done(PendingItem, bool),
}

pub(crate) struct Connector;

pub(crate) struct ConnectorArgs {
    pub store: Store,
    pub wallets: WalletHandle,
    pub config: Arc<CoreConfig>,
}

pub(crate) struct ConnectorState {
    args: ConnectorArgs,
    in_flight: HashSet<Vec<u8>>,
    /// Settlements that failed for a passing reason, to try again.
    retry: Vec<PendingItem>,
    /// Rows whose settlement is done, deleted at the next poll.
    done: Vec<Vec<u8>>,
    timer: Option<tokio::task::JoinHandle<()>>,
    /// The last pending row read (and its due time); the next poll starts after it.
    cursor: Option<(Vec<u8>, i64)>,
    rescanned: std::time::Instant,
}

/// How often the cursor steps back for rows applied behind it.
const RESCAN: Duration = Duration::from_secs(5);
/// How far it steps back: far longer than a commit takes to apply.
const LOOKBACK_MS: i64 = 30_000;

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
        let period = Duration::from_millis(args.config.connector_poll_ms.max(1));
        let timer = Some(me.send_interval(period, || ConnectorMsg::Poll));
        Ok(ConnectorState {
            args,
            in_flight: HashSet::new(),
            retry: Vec::new(),
            done: Vec::new(),
            timer,
            cursor: None,
            rescanned: std::time::Instant::now(),
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
                state.in_flight.remove(&item.key);
                if finished {
                    state.done.push(item.key);
                } else {
                    state.retry.push(item);
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
            for key in self.done.drain(..) {
                writes.remove(Space::Pending, key);
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
        if self.rescanned.elapsed() >= RESCAN {
            if let Some((_, due)) = self.cursor {
                let back = storage::keys::pending(due - LOOKBACK_MS, 0, &[0; 16]);
                self.cursor = Some((back, due - LOOKBACK_MS));
            }
            self.rescanned = std::time::Instant::now();
        }
        let mut fresh: Vec<PendingItem> = self.retry.drain(..room.min(self.retry.len())).collect();
        let due = match self.args.store.due_pending_after(
            self.cursor.as_ref().map(|(key, _)| key.as_slice()),
            Timestamp::now().unix_ms(),
            room - fresh.len(),
        ) {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "connector could not read pending transactions");
                Vec::new()
            }
        };
        if let Some(last) = due.last() {
            self.cursor = Some((last.key.clone(), last.due_unix_ms));
        }
        fresh.extend(due);
        for item in fresh {
            if !self.in_flight.insert(item.key.clone()) {
                continue;
            }
            let (store, wallets, config, me) = (
                self.args.store.clone(),
                self.args.wallets.clone(),
                self.args.config.clone(),
                me.clone(),
            );
            tokio::spawn(async move {
                let finished = settle(&store, &wallets, &config, &item).await;
                let _ = me.cast(ConnectorMsg::Done(item, finished));
            });
        }
    }
}

/// Settles one due transaction. True when its row is done with: settled
/// now, settled earlier (by hand), or its record is gone.
async fn settle(
    store: &Store,
    wallets: &WalletHandle,
    config: &CoreConfig,
    item: &PendingItem,
) -> bool {
    let result = match item.kind {
        PendingKind::Payin => {
            let id = PaymentId::from_bytes(item.record);
            match store.payment(&id) {
                Ok(Some(p)) => {
                    let (to, reason) =
                        payin_outcome(&id, p.payer_vpa.as_deref(), config.payin_failure_ppm);
                    wallets
                        .settle_payin(item.merchant_id, id, to, reason)
                        .await
                        .map(|_| ())
                }
                Ok(None) => Err(Rejection::NotFound),
                Err(_) => Err(Rejection::DatabaseError),
            }
        }
        PendingKind::Payout => {
            let id = PayoutId::from_bytes(item.record);
            match store.payout(&id) {
                Ok(Some(p)) => {
                    let (to, reason) = payout_outcome(&p.beneficiary.account_number);
                    wallets
                        .settle_payout(item.merchant_id, id, to, reason)
                        .await
                        .map(|_| ())
                }
                Ok(None) => Err(Rejection::NotFound),
                Err(_) => Err(Rejection::DatabaseError),
            }
        }
    };
    match result {
        Ok(()) | Err(Rejection::InvalidStatusTransition { .. }) | Err(Rejection::NotFound) => true,
        // Transient (wallet busy, storage hiccup): the next poll retries.
        Err(rejection) => {
            tracing::warn!(%rejection, "settlement will be retried");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
