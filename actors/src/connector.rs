//! The sandbox rail (SPEC §6). Every `connector_poll_ms` it reads the
//! transactions that have become due from storage (the `Pending` space is
//! keyed by due time, so a poll reads only what is due), decides each
//! outcome deterministically, and settles it through the wallet handle.
//! Because it works from storage, pending transactions found after a
//! restart are settled the same way. A row is deleted only after its
//! settlement is durable or the record is found already settled.

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
    Done(Vec<u8>),
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
    timer: Option<tokio::task::JoinHandle<()>>,
    /// The last pending row read; the next poll starts after it.
    cursor: Option<Vec<u8>>,
    rescanned: std::time::Instant,
}

/// How often the connector reads the pending rows from the start again.
const RESCAN: Duration = Duration::from_secs(5);

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
            ConnectorMsg::Done(key) => {
                state.in_flight.remove(&key);
            }
            ConnectorMsg::Poll => {
                let room = state
                    .args
                    .config
                    .connector_inflight_max
                    .saturating_sub(state.in_flight.len());
                if room == 0 {
                    return Ok(());
                }
                // Read forward from a cursor, so settled rows (deleted but
                // still in the memtable) are not walked on every poll; go
                // back to the start now and then for rows left behind
                // (a settlement that failed and must be retried).
                if state.rescanned.elapsed() >= RESCAN {
                    state.cursor = None;
                    state.rescanned = std::time::Instant::now();
                }
                let due = match state.args.store.due_pending_after(
                    state.cursor.as_deref(),
                    Timestamp::now().unix_ms(),
                    room,
                ) {
                    Ok(due) => due,
                    Err(e) => {
                        tracing::error!(error = %e, "connector could not read pending transactions");
                        return Ok(());
                    }
                };
                if let Some(last) = due.last() {
                    state.cursor = Some(last.key.clone());
                }
                let fresh: Vec<PendingItem> = due
                    .into_iter()
                    .filter(|i| !state.in_flight.contains(&i.key))
                    .take(room)
                    .collect();
                for item in fresh {
                    state.in_flight.insert(item.key.clone());
                    let (store, wallets, config, me) = (
                        state.args.store.clone(),
                        state.args.wallets.clone(),
                        state.args.config.clone(),
                        me.clone(),
                    );
                    tokio::spawn(async move {
                        let key = item.key.clone();
                        settle(&store, &wallets, &config, item).await;
                        let _ = me.cast(ConnectorMsg::Done(key));
                    });
                }
            }
        }
        Ok(())
    }
}

/// Settles one due transaction; deletes its row once nothing is left to do.
async fn settle(store: &Store, wallets: &WalletHandle, config: &CoreConfig, item: PendingItem) {
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
        // Settled now, settled earlier (manually), or gone: the row is done.
        Ok(()) | Err(Rejection::InvalidStatusTransition { .. }) | Err(Rejection::NotFound) => {
            let mut writes = WriteSet::new();
            writes.remove(Space::Pending, item.key);
            if let Err(e) = store.commit(writes).await {
                tracing::error!(error = %e, "connector could not clear a settled row");
            }
        }
        // Transient (wallet busy, storage hiccup): the next poll retries.
        Err(rejection) => tracing::warn!(%rejection, "settlement will be retried"),
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
