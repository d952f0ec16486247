//! `WalletHandle`: the public API of the wallets, and the only one the HTTP
//! layer uses. Each call finds (or spawns) the merchant's actor, takes one of
//! the wallet's in-flight permits, calls it with a timeout and then waits for
//! the write to be durable before answering. A crashed or stopped actor
//! yields an error, never a hang.

use super::messages::{NewPayin, NewPayout, NewRefund, Outcome, Reply, WalletMsg};
use crate::registry::Registry;
use domain::metric_names as names;
use domain::{
    AuditContext, Payment, PaymentId, PaymentStatus, Payout, PayoutId, PayoutStatus, Refund,
    RefundId, RefundStatus, Rejection, UserId, Wallet,
};
use ractor::RpcReplyPort;
use std::sync::Arc;
use std::time::Duration;
use storage::PendingId;

/// A created record, and whether an Idempotency-Key replayed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created<T> {
    pub record: T,
    pub replayed: bool,
}

/// The wallets' in-flight calls against their bound (`WalletHandle::inflight`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inflight {
    pub calls: usize,
    pub busiest: usize,
    pub limit: usize,
}

#[derive(Clone)]
pub struct WalletHandle {
    registry: Arc<Registry>,
}

impl WalletHandle {
    pub(crate) fn new(registry: Arc<Registry>) -> WalletHandle {
        WalletHandle { registry }
    }

    /// Calls in flight (holding a permit) over all live wallets, the most
    /// on one wallet, and the per-wallet bound (`wallet_inflight_max`).
    pub fn inflight(&self) -> Inflight {
        let (calls, busiest) = self.registry.inflight();
        Inflight {
            calls,
            busiest,
            limit: self.registry.config().wallet_inflight_max.max(1),
        }
    }

    /// Creates a pending pay-in on `merchant`'s wallet. Answers once the
    /// payment is durable.
    pub async fn create_payin(
        &self,
        merchant: UserId,
        new: NewPayin,
    ) -> Result<Created<Payment>, Rejection> {
        let created = self
            .command("create_payin", merchant, |reply| {
                WalletMsg::CreatePayin(Box::new(new), reply)
            })
            .await?;
        if !created.replayed {
            metrics::counter!(names::PAYINS_CREATED).increment(1);
            metrics::counter!(names::PAYIN_AMOUNT, "stage" => "created")
                .increment(created.record.amount.paise());
        }
        Ok(created)
    }

    /// Settles a pending pay-in: `Completed` credits the net amount, `Failed`
    /// moves no money. A second settlement is `invalid_status_transition`.
    pub async fn settle_payin(
        &self,
        merchant: UserId,
        id: PaymentId,
        to: PaymentStatus,
        reason: Option<String>,
    ) -> Result<Payment, Rejection> {
        let audit = AuditContext::platform(None).with_reason(reason);
        self.set_payin_status(merchant, id, to, audit).await
    }

    /// `settle_payin` by hand on behalf of `audit`'s actor, with its reason;
    /// the audit entry (`payment.status_set`) is in the same write.
    pub async fn set_payin_status(
        &self,
        merchant: UserId,
        id: PaymentId,
        to: PaymentStatus,
        audit: AuditContext,
    ) -> Result<Payment, Rejection> {
        self.settle_payin_as(merchant, id, Outcome::Given(to, audit))
            .await
    }

    /// Settles a pending pay-in as the rail decides (the sandbox's rules).
    pub(crate) async fn settle_payin_by_rail(
        &self,
        merchant: UserId,
        id: PaymentId,
        pending: PendingId,
    ) -> Result<Payment, Rejection> {
        self.settle_payin_as(merchant, id, Outcome::Rail(pending))
            .await
    }

    async fn settle_payin_as(
        &self,
        merchant: UserId,
        id: PaymentId,
        outcome: Outcome<PaymentStatus>,
    ) -> Result<Payment, Rejection> {
        let payment = self
            .command("settle_payin", merchant, |reply| WalletMsg::SettlePayin {
                id,
                outcome,
                reply,
            })
            .await?
            .record;
        let outcome = payment.status.as_str();
        metrics::counter!(names::PAYINS_SETTLED, "outcome" => outcome).increment(1);
        metrics::counter!(names::PAYIN_AMOUNT, "stage" => outcome)
            .increment(payment.amount.paise());
        Ok(payment)
    }

    /// Creates a payout, holding amount + fee from `available` at once, or
    /// fails with `insufficient_balance`. Answers once durable.
    pub async fn create_payout(
        &self,
        merchant: UserId,
        new: NewPayout,
    ) -> Result<Created<Payout>, Rejection> {
        let created = self
            .command("create_payout", merchant, |reply| {
                WalletMsg::CreatePayout(Box::new(new), reply)
            })
            .await?;
        if !created.replayed {
            metrics::counter!(names::PAYOUTS_CREATED).increment(1);
            metrics::counter!(names::PAYOUT_AMOUNT, "stage" => "created")
                .increment(created.record.amount.paise());
        }
        Ok(created)
    }

    /// Settles a pending payout: `Processed` releases the hold out of the
    /// wallet, `Rejected` returns it to `available`.
    pub async fn settle_payout(
        &self,
        merchant: UserId,
        id: PayoutId,
        to: PayoutStatus,
        reason: Option<String>,
    ) -> Result<Payout, Rejection> {
        let audit = AuditContext::platform(None).with_reason(reason);
        self.set_payout_status(merchant, id, to, audit).await
    }

    /// `settle_payout` by hand, audited (`payout.status_set`).
    pub async fn set_payout_status(
        &self,
        merchant: UserId,
        id: PayoutId,
        to: PayoutStatus,
        audit: AuditContext,
    ) -> Result<Payout, Rejection> {
        self.settle_payout_as(merchant, id, Outcome::Given(to, audit))
            .await
    }

    /// Settles a pending payout as the rail decides (the sandbox's rules).
    pub(crate) async fn settle_payout_by_rail(
        &self,
        merchant: UserId,
        id: PayoutId,
        pending: PendingId,
    ) -> Result<Payout, Rejection> {
        self.settle_payout_as(merchant, id, Outcome::Rail(pending))
            .await
    }

    async fn settle_payout_as(
        &self,
        merchant: UserId,
        id: PayoutId,
        outcome: Outcome<PayoutStatus>,
    ) -> Result<Payout, Rejection> {
        let payout = self
            .command("settle_payout", merchant, |reply| WalletMsg::SettlePayout {
                id,
                outcome,
                reply,
            })
            .await?
            .record;
        let outcome = payout.status.as_str();
        metrics::counter!(names::PAYOUTS_SETTLED, "outcome" => outcome).increment(1);
        metrics::counter!(names::PAYOUT_AMOUNT, "stage" => outcome)
            .increment(payout.amount.paise());
        Ok(payout)
    }

    /// Sweeps the merchant's `available` above its `settlement_reserve`
    /// into a pending settlement (held at once, settled by the rail).
    /// `invalid_request` without a settlement account,
    /// `insufficient_balance` when less than 1.00 is above the reserve.
    /// Answers once durable.
    pub async fn create_settlement(
        &self,
        merchant: UserId,
    ) -> Result<domain::Settlement, Rejection> {
        let created = self
            .command("create_settlement", merchant, WalletMsg::CreateSettlement)
            .await?;
        Ok(created.record)
    }

    /// Settles a pending settlement by hand: `Processed` (money leaves the
    /// wallet, a UTR is made) or `Failed` (back to `available`).
    pub async fn settle_settlement(
        &self,
        merchant: UserId,
        id: domain::SettlementId,
        to: domain::SettlementStatus,
        reason: Option<String>,
    ) -> Result<domain::Settlement, Rejection> {
        let audit = AuditContext::platform(None).with_reason(reason);
        self.set_settlement_status(merchant, id, to, audit).await
    }

    /// `settle_settlement` by hand, audited (`settlement.status_set`).
    pub async fn set_settlement_status(
        &self,
        merchant: UserId,
        id: domain::SettlementId,
        to: domain::SettlementStatus,
        audit: AuditContext,
    ) -> Result<domain::Settlement, Rejection> {
        self.settle_settlement_as(merchant, id, Outcome::Given(to, audit))
            .await
    }

    /// Settles a pending settlement as the rail decides (the sandbox's rules).
    pub(crate) async fn settle_settlement_by_rail(
        &self,
        merchant: UserId,
        id: domain::SettlementId,
        pending: PendingId,
    ) -> Result<domain::Settlement, Rejection> {
        self.settle_settlement_as(merchant, id, Outcome::Rail(pending))
            .await
    }

    async fn settle_settlement_as(
        &self,
        merchant: UserId,
        id: domain::SettlementId,
        outcome: Outcome<domain::SettlementStatus>,
    ) -> Result<domain::Settlement, Rejection> {
        let settled = self
            .command("settle_settlement", merchant, |reply| {
                WalletMsg::SettleSettlement { id, outcome, reply }
            })
            .await?;
        Ok(settled.record)
    }

    /// Creates a pending refund of a completed pay-in of `merchant`,
    /// holding its amount from `available` at once. Answers once durable.
    pub async fn create_refund(
        &self,
        merchant: UserId,
        new: NewRefund,
    ) -> Result<Created<Refund>, Rejection> {
        self.command("create_refund", merchant, |reply| {
            WalletMsg::CreateRefund(Box::new(new), reply)
        })
        .await
    }

    /// Settles a pending refund by hand: `Processed` sends the hold out
    /// through `rail:refunds`, `Failed` returns it to `available`.
    pub async fn settle_refund(
        &self,
        merchant: UserId,
        id: RefundId,
        to: RefundStatus,
        reason: Option<String>,
    ) -> Result<Refund, Rejection> {
        let audit = AuditContext::platform(None).with_reason(reason);
        self.set_refund_status(merchant, id, to, audit).await
    }

    /// `settle_refund` by hand, audited (`refund.status_set`).
    pub async fn set_refund_status(
        &self,
        merchant: UserId,
        id: RefundId,
        to: RefundStatus,
        audit: AuditContext,
    ) -> Result<Refund, Rejection> {
        self.settle_refund_as(merchant, id, Outcome::Given(to, audit))
            .await
    }

    /// Settles a pending refund as the rail decides (the sandbox's rules).
    pub(crate) async fn settle_refund_by_rail(
        &self,
        merchant: UserId,
        id: RefundId,
        pending: PendingId,
    ) -> Result<Refund, Rejection> {
        self.settle_refund_as(merchant, id, Outcome::Rail(pending))
            .await
    }

    async fn settle_refund_as(
        &self,
        merchant: UserId,
        id: RefundId,
        outcome: Outcome<RefundStatus>,
    ) -> Result<Refund, Rejection> {
        Ok(self
            .command("settle_refund", merchant, |reply| WalletMsg::SettleRefund {
                id,
                outcome,
                reply,
            })
            .await?
            .record)
    }

    /// Cancels a queued or pending payout (SPEC §13): a pending one's hold
    /// goes back to `available`. Answers once durable.
    pub async fn cancel_payout(
        &self,
        merchant: UserId,
        id: PayoutId,
        reason: Option<String>,
    ) -> Result<Payout, Rejection> {
        self.cancel_payout_audited(merchant, id, reason, None).await
    }

    /// `cancel_payout`; with `audit` (the admin's manual status change) the
    /// write carries a `payout.status_set` audit entry.
    pub async fn cancel_payout_audited(
        &self,
        merchant: UserId,
        id: PayoutId,
        reason: Option<String>,
        audit: Option<AuditContext>,
    ) -> Result<Payout, Rejection> {
        let payout = self
            .command("cancel_payout", merchant, |reply| WalletMsg::CancelPayout {
                id,
                reason,
                audit: audit.map(Box::new),
                reply,
            })
            .await?
            .record;
        metrics::counter!(names::PAYOUTS_SETTLED, "outcome" => "cancelled").increment(1);
        Ok(payout)
    }

    /// Reverses a processed payout by hand (the admin's manual path).
    pub async fn reverse_payout(
        &self,
        merchant: UserId,
        id: PayoutId,
        reason: Option<String>,
    ) -> Result<Payout, Rejection> {
        let audit = AuditContext::platform(None).with_reason(reason);
        self.reverse_payout_audited(merchant, id, audit).await
    }

    /// `reverse_payout` on behalf of `audit`'s actor (`payout.status_set`).
    pub async fn reverse_payout_audited(
        &self,
        merchant: UserId,
        id: PayoutId,
        audit: AuditContext,
    ) -> Result<Payout, Rejection> {
        let outcome = Outcome::Given(PayoutStatus::Reversed, audit);
        self.reverse_payout_as(merchant, id, outcome).await
    }

    /// The sandbox reverses a processed payout (its reversal row fell due).
    pub(crate) async fn reverse_payout_by_rail(
        &self,
        merchant: UserId,
        id: PayoutId,
        pending: PendingId,
    ) -> Result<Payout, Rejection> {
        self.reverse_payout_as(merchant, id, Outcome::Rail(pending))
            .await
    }

    async fn reverse_payout_as(
        &self,
        merchant: UserId,
        id: PayoutId,
        outcome: Outcome<PayoutStatus>,
    ) -> Result<Payout, Rejection> {
        let payout = self
            .command("reverse_payout", merchant, |reply| {
                WalletMsg::ReversePayout { id, outcome, reply }
            })
            .await?
            .record;
        metrics::counter!(names::PAYOUTS_SETTLED, "outcome" => "reversed").increment(1);
        Ok(payout)
    }

    /// A queued payout's time to live ran out (its expiry row fell due).
    pub(crate) async fn expire_payout_by_rail(
        &self,
        merchant: UserId,
        id: PayoutId,
        due: PendingId,
    ) -> Result<Payout, Rejection> {
        let payout = self
            .command("expire_payout", merchant, |reply| {
                WalletMsg::ExpireQueuedPayout { id, due, reply }
            })
            .await?
            .record;
        metrics::counter!(names::PAYOUTS_SETTLED, "outcome" => "cancelled").increment(1);
        Ok(payout)
    }

    /// Several payouts on one wallet, each validated on its own, the
    /// accepted ones in ONE durable write. One result per item, in order;
    /// answers once that write is durable.
    pub async fn create_payouts(
        &self,
        merchant: UserId,
        items: Vec<NewPayout>,
    ) -> Result<Vec<Result<Payout, Rejection>>, Rejection> {
        let started = std::time::Instant::now();
        let reply = self
            .call(merchant, |reply| WalletMsg::CreatePayouts(items, reply))
            .await;
        metrics::histogram!(names::WALLET_CALL_DURATION, "command" => "create_payouts")
            .record(started.elapsed().as_secs_f64());
        let reply = reply?;
        if let Some(ticket) = reply.ticket {
            if let Err(e) = ticket.durable().await {
                tracing::error!(error = %e, %merchant, "a batch failed to become durable");
                self.registry.restart(merchant).await;
                return Err(Rejection::DatabaseError);
            }
        }
        for payout in reply.results.iter().flatten() {
            metrics::counter!(names::PAYOUTS_CREATED).increment(1);
            metrics::counter!(names::PAYOUT_AMOUNT, "stage" => "created")
                .increment(payout.amount.paise());
        }
        Ok(reply.results)
    }

    /// The wallet as it is durably: when the actor holds writes still in
    /// their group commit, the answer waits for them (a balance shown is
    /// never one a crash could take back, SPEC §19).
    pub async fn balance(&self, merchant: UserId) -> Result<Wallet, Rejection> {
        let store = self.registry.store();
        if !store.is_healthy() {
            // The actor's state may include writes that failed; storage
            // holds exactly what became durable and visible.
            return match store.wallet(&merchant, domain::Currency::Inr) {
                Ok(Some(wallet)) => Ok(wallet),
                Ok(None) => Ok(Wallet::new(
                    merchant,
                    domain::Currency::Inr,
                    domain::Timestamp::now(),
                )),
                Err(e) => {
                    tracing::error!(error = %e, "reading a wallet from a poisoned store");
                    Err(Rejection::DatabaseError)
                }
            };
        }
        let (wallet, pending) = self.call(merchant, WalletMsg::Balance).await?;
        let durable = match pending {
            Ok(Some(ticket)) => ticket.durable().await,
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        durable.map_err(|e| {
            tracing::error!(error = %e, "a balance's writes did not become durable");
            Rejection::DatabaseError
        })?;
        Ok(wallet)
    }

    /// Makes the wallet re-read its merchant's fee schedule.
    pub async fn reload_settings(&self, merchant: UserId) -> Result<(), Rejection> {
        if !self.registry.is_running(&merchant) {
            return Ok(()); // it will read the new settings when it starts
        }
        self.call(merchant, WalletMsg::ReloadSettings).await?
    }

    /// Number of wallet actors alive now.
    pub fn active_wallets(&self) -> usize {
        self.registry.len()
    }

    /// Fault injection for supervision tests: makes the wallet panic.
    #[doc(hidden)]
    pub async fn crash_for_test(&self, merchant: UserId) -> Result<(), Rejection> {
        let slot = self.registry.slot(merchant).await?;
        slot.actor
            .cast(WalletMsg::Crash)
            .map_err(|_| Rejection::ServiceUnavailable)
    }

    async fn command<T: Send + 'static>(
        &self,
        label: &'static str,
        merchant: UserId,
        build: impl FnOnce(RpcReplyPort<Reply<T>>) -> WalletMsg,
    ) -> Result<Created<T>, Rejection> {
        // A store that can no longer write refuses at once (SPEC §17): no
        // actor is asked, none is restarted, nothing waits for a timeout.
        if !self.registry.store().is_healthy() {
            return Err(Rejection::DatabaseError);
        }
        let started = std::time::Instant::now();
        let result = self.command_inner(merchant, build).await;
        metrics::histogram!(names::WALLET_CALL_DURATION, "command" => label)
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn command_inner<T: Send + 'static>(
        &self,
        merchant: UserId,
        build: impl FnOnce(RpcReplyPort<Reply<T>>) -> WalletMsg,
    ) -> Result<Created<T>, Rejection> {
        let reply = self.call(merchant, build).await?;
        let record = reply.result?;
        if let Some(ticket) = reply.ticket {
            if let Err(e) = ticket.durable().await {
                tracing::error!(error = %e, %merchant, "write failed to become durable");
                // The actor already adopted the change in memory: make it
                // reload from storage before it serves anyone else. On a
                // poisoned store no wallet is asked anything again (see
                // `command` and `balance`), and a new one could not load.
                if self.registry.store().is_healthy() {
                    self.registry.restart(merchant).await;
                }
                return Err(Rejection::DatabaseError);
            }
        }
        Ok(Created {
            record,
            replayed: reply.replayed,
        })
    }

    async fn call<T: Send + 'static>(
        &self,
        merchant: UserId,
        build: impl FnOnce(RpcReplyPort<T>) -> WalletMsg,
    ) -> Result<T, Rejection> {
        let timeout = Duration::from_millis(self.registry.config().wallet_call_timeout_ms);
        let (tx, rx) = ractor::concurrency::oneshot();
        let mut msg = build(tx.into());
        // A wallet passivated between lookup and send hands the message back
        // unseen: look it up again (a fresh incarnation) and resend, once.
        for _attempt in 0..2 {
            let slot = self.registry.slot(merchant).await?;
            let _permit = tokio::time::timeout(timeout, slot.inflight.clone().acquire_owned())
                .await
                .map_err(|_| Rejection::ServiceUnavailable)?
                .map_err(|_| Rejection::ServiceUnavailable)?;
            match slot.actor.cast(msg) {
                Ok(()) => {
                    return match tokio::time::timeout(timeout, rx).await {
                        Ok(Ok(value)) => Ok(value),
                        // The actor died with our message: an error, not a hang.
                        Ok(Err(_)) | Err(_) => Err(Rejection::ServiceUnavailable),
                    };
                }
                Err(ractor::MessagingErr::SendErr(back)) => {
                    self.registry.forget(merchant, slot.actor.get_id());
                    msg = back;
                }
                Err(_) => return Err(Rejection::ServiceUnavailable),
            }
        }
        Err(Rejection::ServiceUnavailable)
    }
}
