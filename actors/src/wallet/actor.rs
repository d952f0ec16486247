//! The wallet actor: owns one merchant's `Wallet` in memory and is the only
//! writer of its balance, ledger, payments and payouts. Each command is
//! validated against in-memory state, becomes ONE write set (record + ledger
//! entries + indexes + idempotency row + outbox row), and is handed to the
//! group committer. The actor replies with the write's ticket and moves on
//! to its next message without waiting for the fsync (pipelining); the
//! caller waits for the ticket. What it has written that storage cannot
//! show yet it keeps itself, typed (`InFlight`).

#[path = "settlements.rs"]
mod settlements;

use super::inflight::InFlight;
use super::messages::{NewPayin, NewPayout, Outcome, Reply, WalletMsg};
use crate::connector::ConnectorMsg;
use crate::registry::SupervisorMsg;
use crate::webhook::FreshEvents;
use crate::CoreConfig;
use domain::audit_log;
use domain::money::AmountLimits;
use domain::{AuditAction, AuditContext};
use domain::{
    Currency, EventId, EventType, Money, OutboxEvent, Payment, PaymentId, PaymentStatus, Payout,
    PayoutId, PayoutStatus, Rejection, Role, Timestamp, Transfer, TransferKind, User, UserId,
    Wallet,
};
use payout_lifecycle::{Lifecycle, PayoutQueue};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::{
    IdempotencyRecord, Listed, PendingItem, Replayable, StorageError, Store, UniqueKind, WriteSet,
};

// Refunds: an `impl WalletState` of their own, in a child module so that
// they share this module's private types.
#[path = "payout_lifecycle.rs"]
mod payout_lifecycle;
#[path = "refunds.rs"]
mod refunds;

pub(crate) struct WalletActor;

pub(crate) struct WalletArgs {
    pub merchant: UserId,
    pub store: Store,
    pub config: Arc<CoreConfig>,
    pub supervisor: ActorRef<SupervisorMsg>,
    /// Users in memory; `None` only before the directory has started.
    pub directory: Option<crate::Directory>,
    /// The rail that settles pending rows; `None` only before it started
    /// (it reads the Pending space when it starts).
    pub connector: Option<ActorRef<ConnectorMsg>>,
    /// Where the webhook dispatcher finds the events this wallet queues.
    pub fresh: Arc<FreshEvents>,
}

/// The fee schedule and limits of the merchant, from its user record.
#[derive(Clone, Debug)]
struct Settings {
    /// The merchant's manager, whose team listings include this wallet.
    team: Option<UserId>,
    payin_fee_bps: u32,
    payout_fee: Money,
    limits: AmountLimits,
}

pub(crate) struct WalletState {
    merchant: UserId,
    wallet: Wallet,
    settings: Settings,
    /// Its writes the store has not applied yet: claimed ids, stored
    /// Idempotency-Keys, the newest version of records it wrote.
    inflight: InFlight,
    directory: Option<crate::Directory>,
    connector: Option<ActorRef<ConnectorMsg>>,
    fresh: Arc<FreshEvents>,
    /// Records this incarnation created that are still pending, so that
    /// settling them reads no storage (older ones are read from it).
    pending: PendingRecords,
    /// The queue sequence of this wallet's last write set.
    last_write_seq: u64,
    /// Settlements: pending ones, those in flight, where the last one ended.
    settlements: settlements::SettlementBook,
    /// Its queued payouts, oldest first (SPEC §13).
    queue: PayoutQueue,
    store: Store,
    config: Arc<CoreConfig>,
    supervisor: ActorRef<SupervisorMsg>,
    last_active: Instant,
    idle_timer: Option<tokio::task::JoinHandle<()>>,
}

fn settings_of(store: &Store, user: &User, config: &CoreConfig) -> Result<Settings, Rejection> {
    if user.role != Role::Merchant {
        return Err(Rejection::NotFound);
    }
    let team = match user.parent_id {
        Some(parent) => store
            .user(&parent)
            .map_err(db)?
            .filter(|p| p.role == Role::Manager)
            .map(|p| p.id),
        None => None,
    };
    Ok(Settings {
        team,
        payin_fee_bps: user.payin_fee_bps.min(10_000),
        payout_fee: user.payout_fee,
        limits: config.amount_limits,
    })
}

fn db(e: StorageError) -> Rejection {
    tracing::error!(error = %e, "storage error in wallet");
    Rejection::DatabaseError
}

impl Actor for WalletActor {
    type Msg = WalletMsg;
    type State = WalletState;
    type Arguments = WalletArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<WalletMsg>,
        args: WalletArgs,
    ) -> Result<WalletState, ActorProcessingErr> {
        // An earlier incarnation may still have writes queued: load only
        // after they are applied, or we would build on stale balances.
        args.store.applied_barrier().await?;
        let user = args
            .store
            .user(&args.merchant)?
            .ok_or("merchant does not exist")?;
        let settings = settings_of(&args.store, &user, &args.config).map_err(|r| r.to_string())?;
        let now = Timestamp::now();
        let wallet = args
            .store
            .wallet(&args.merchant, Currency::Inr)?
            .unwrap_or_else(|| Wallet::new(args.merchant, Currency::Inr, now));
        // Paired assertions: the wallet read back balances its own books
        // and agrees with the last transfer it posted.
        if let Err(why) = wallet.check() {
            panic!("wallet {} is unbalanced: {why}", args.merchant);
        }
        if let Some(last) = args.store.last_transfer(&args.merchant)? {
            assert_eq!(
                (last.posting, last.available_after, last.held_after),
                (wallet.last_posting, wallet.available, wallet.held),
                "wallet {} disagrees with its last transfer",
                args.merchant
            );
        } else {
            assert_eq!(
                wallet.last_posting, 0,
                "wallet {} has postings but no ledger",
                args.merchant
            );
        }
        let queue = PayoutQueue::load(&args.store, &args.merchant)?;
        Ok(WalletState {
            queue,
            merchant: args.merchant,
            wallet,
            settings,
            inflight: InFlight::default(),
            directory: args.directory,
            connector: args.connector,
            fresh: args.fresh,
            pending: PendingRecords::default(),
            last_write_seq: 0,
            settlements: settlements::SettlementBook::default(),
            store: args.store,
            config: args.config,
            supervisor: args.supervisor,
            last_active: Instant::now(),
            idle_timer: None,
        })
    }

    async fn post_start(
        &self,
        me: ActorRef<WalletMsg>,
        state: &mut WalletState,
    ) -> Result<(), ActorProcessingErr> {
        if state.config.wallet_idle_max_ms > 0 {
            let period = Duration::from_millis((state.config.wallet_idle_max_ms / 2).max(1));
            state.idle_timer = Some(me.send_interval(period, || WalletMsg::IdleCheck));
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _me: ActorRef<WalletMsg>,
        state: &mut WalletState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(timer) = state.idle_timer.take() {
            timer.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<WalletMsg>,
        msg: WalletMsg,
        state: &mut WalletState,
    ) -> Result<(), ActorProcessingErr> {
        state.inflight.prune(state.store.applied_seq());
        if !matches!(msg, WalletMsg::IdleCheck) {
            state.last_active = Instant::now();
        }
        match msg {
            WalletMsg::CreatePayin(new, reply) => {
                let reply_ = state.run(state.prepare_payin(*new)).await;
                if let (Ok(p), false) = (&reply_.result, reply_.replayed) {
                    // Beyond the pending map's bound, the record stays
                    // in-flight until storage shows it.
                    if !state.pending.remember_payin(p) {
                        state.inflight.put_payment(state.last_write_seq, p.clone());
                    }
                }
                let _ = reply.send(reply_);
            }
            WalletMsg::SettlePayin { id, outcome, reply } => {
                let reply_ = state.run(state.prepare_settle_payin(id, outcome)).await;
                if let (Ok(p), false) = (&reply_.result, reply_.replayed) {
                    state.pending.payins.remove(&id);
                    state.inflight.put_payment(state.last_write_seq, p.clone());
                }
                let _ = reply.send(reply_);
            }
            WalletMsg::CreatePayout(new, reply) => {
                let reply_ = state.run(state.prepare_payout(*new)).await;
                if let (Ok(p), false) = (&reply_.result, reply_.replayed) {
                    if !state.pending.remember_payout(p) {
                        state.inflight.put_payout(state.last_write_seq, p.clone());
                    }
                }
                let _ = reply.send(reply_);
            }
            WalletMsg::SettlePayout { id, outcome, reply } => {
                let reply_ = state.run(state.prepare_settle_payout(id, outcome)).await;
                if let (Ok(p), false) = (&reply_.result, reply_.replayed) {
                    state.pending.payouts.remove(&id);
                    state.inflight.put_payout(state.last_write_seq, p.clone());
                }
                let _ = reply.send(reply_);
            }
            WalletMsg::CreateSettlement(reply) => {
                let reply_ = state.run(state.prepare_create_settlement()).await;
                state.settlement_created(&reply_);
                let _ = reply.send(reply_);
            }
            WalletMsg::SettleSettlement { id, outcome, reply } => {
                let prepared = state.prepare_settle_settlement(id, outcome);
                let reply_ = state.run(prepared).await;
                state.settlement_settled(&reply_);
                let _ = reply.send(reply_);
            }
            WalletMsg::CreateRefund(new, reply) => {
                let _ = reply.send(state.create_refund(*new).await);
            }
            WalletMsg::SettleRefund { id, outcome, reply } => {
                let _ = reply.send(state.settle_refund(id, outcome).await);
            }
            WalletMsg::CancelPayout {
                id,
                reason,
                audit,
                reply,
            } => {
                let prepared = state.prepare_cancel_payout(id, reason, audit.as_deref());
                let reply_ = state.run(prepared).await;
                state.payout_changed(&reply_);
                let _ = reply.send(reply_);
            }
            WalletMsg::ReversePayout { id, outcome, reply } => {
                let reply_ = state.run(state.prepare_reverse_payout(id, outcome)).await;
                state.payout_changed(&reply_);
                let _ = reply.send(reply_);
            }
            WalletMsg::ExpireQueuedPayout { id, due, reply } => {
                let reply_ = state.run(state.prepare_expire_payout(id, due)).await;
                state.payout_changed(&reply_);
                let _ = reply.send(reply_);
            }
            WalletMsg::CreatePayouts(items, reply) => {
                let reply_ = state.create_payouts(items).await;
                let _ = reply.send(reply_);
            }
            WalletMsg::Balance(reply) => {
                // Writes of this wallet still in their group commit: the
                // caller waits until they are durable and visible before
                // showing the balance (so a read of the ledger after it
                // agrees with it).
                let pending = if state.store.applied_seq() < state.last_write_seq {
                    state.store.durable_barrier().map(Some)
                } else {
                    Ok(None)
                };
                let _ = reply.send((state.wallet.clone(), pending));
            }
            WalletMsg::ReloadSettings(reply) => {
                let _ = reply.send(state.reload_settings());
            }
            WalletMsg::IdleCheck => {
                let idle = state.last_active.elapsed()
                    >= Duration::from_millis(state.config.wallet_idle_max_ms);
                if idle
                    && state.inflight.is_empty()
                    && state.settlements.is_idle(state.store.applied_seq())
                {
                    let _ = state
                        .supervisor
                        .cast(SupervisorMsg::Passivate(state.merchant, me.get_id()));
                }
            }
            WalletMsg::Crash => panic!("fault injection: wallet {} told to crash", state.merchant),
        }
        Ok(())
    }
}

/// What a create command found for its Idempotency-Key.
enum Prior<T> {
    None,
    Replay(T),
}

impl WalletState {
    fn reload_settings(&mut self) -> Result<(), Rejection> {
        let user = self
            .store
            .user(&self.merchant)
            .map_err(db)?
            .ok_or(Rejection::NotFound)?;
        self.settings = settings_of(&self.store, &user, &self.config)?;
        Ok(())
    }

    /// Looks up an Idempotency-Key: a replay of the first response, a
    /// conflict, or nothing (also when the record has expired).
    fn check_idempotency<T: Replayable>(
        &self,
        created_by: &UserId,
        idem: Option<&super::messages::Idempotency>,
        now: Timestamp,
    ) -> Result<Prior<T>, Rejection> {
        let Some(idem) = idem else {
            return Ok(Prior::None);
        };
        let stored;
        let record = match self.inflight.idempotency(*created_by, &idem.key) {
            Some(record) => record,
            None => {
                stored = self
                    .store
                    .idempotency(&self.merchant, created_by, &idem.key)
                    .map_err(db)?;
                match &stored {
                    Some(record) => record,
                    None => return Ok(Prior::None),
                }
            }
        };
        if now.unix_ms() - record.created_at.unix_ms() > self.config.idempotency_ttl_ms {
            return Ok(Prior::None);
        }
        if record.fingerprint != idem.fingerprint {
            let fields = record.differing_fields(&idem.fields);
            return Err(Rejection::IdempotencyConflict { fields });
        }
        let first = record.response::<T>().map_err(db)?;
        Ok(Prior::Replay(first))
    }

    /// Replies with an earlier response, but only once the first request's
    /// write is durable: it may be queued, or visible yet still syncing.
    async fn replay<T>(&mut self, record: T) -> Reply<T> {
        let ticket = match self.store.durable_barrier() {
            Ok(ticket) => Some(ticket),
            Err(e) => return Reply::rejected(db(e)),
        };
        Reply {
            result: Ok(record),
            ticket,
            replayed: true,
        }
    }

    /// Carries out a prepared command: write it, replay an earlier answer,
    /// or pass the rejection on.
    async fn run<T>(&mut self, prepared: Result<Prepared<T>, Rejection>) -> Reply<T> {
        match prepared {
            Ok(Prepared::Write(write)) => self.write(*write).await,
            Ok(Prepared::Replay(record)) => self.replay(record).await,
            Err(rejection) => Reply::rejected(rejection),
        }
    }

    /// Whether the merchant already used this order or reference id: in a
    /// write of ours still in flight, or in storage.
    fn unique_taken(&self, kind: UniqueKind, reference: &str) -> Result<bool, Rejection> {
        if self.inflight.has_unique(kind, reference) {
            return Ok(true);
        }
        Ok(self
            .store
            .unique(&self.merchant, kind, reference)
            .map_err(db)?
            .is_some())
    }

    /// Hands the write set to the committer, remembering what it claims as
    /// in flight, and adopts `next` as the wallet only once it is queued.
    async fn write<T>(&mut self, write: Write<T>) -> Reply<T> {
        let Write {
            writes,
            next,
            record,
            claims,
        } = write;
        match self.store.submit(writes).await {
            Ok(ticket) => {
                self.wallet = next;
                let seq = ticket.seq();
                self.last_write_seq = seq;
                if let Some((kind, id)) = claims.unique {
                    self.inflight.claim_unique(seq, kind, id);
                }
                if let Some((created_by, key, row)) = claims.idempotency {
                    self.inflight.put_idempotency(seq, created_by, key, row);
                }
                if let (Some(connector), Some(item)) = (&self.connector, claims.due) {
                    let _ = connector.cast(ConnectorMsg::Due(item));
                }
                if let Some(event) = claims.event {
                    self.fresh.put(event);
                }
                self.adopt_lifecycle(seq, claims.lifecycle);
                Reply {
                    result: Ok(record),
                    ticket: Some(ticket),
                    replayed: false,
                }
            }
            Err(e) => Reply::rejected(db(e)),
        }
    }

    fn put_common(
        &self,
        writes: &mut WriteSet,
        wallet: &Wallet,
        transfers: &[Transfer],
        event: Option<&OutboxEvent>,
    ) -> Result<(), Rejection> {
        writes.put_wallet(wallet);
        for transfer in transfers {
            writes.put_transfer(transfer);
        }
        if let Some(event) = event {
            storage::outbox::enqueue(writes, event).map_err(db)?;
        }
        Ok(())
    }

    /// Stores the first response under its Idempotency-Key, and returns
    /// the claim that keeps it answerable until storage shows it.
    fn put_idempotency<T: Replayable>(
        writes: &mut WriteSet,
        merchant: &UserId,
        created_by: &UserId,
        idem: Option<super::messages::Idempotency>,
        record: &T,
        now: Timestamp,
    ) -> Result<Option<(UserId, String, IdempotencyRecord)>, Rejection> {
        let Some(idem) = idem else {
            return Ok(None);
        };
        let row = IdempotencyRecord::new(idem.fingerprint, record, now, idem.fields);
        writes
            .idempotency_saved(merchant, created_by, &idem.key, &row)
            .map_err(db)?;
        Ok(Some((*created_by, idem.key, row)))
    }

    /// Who hears about a payment or payout (SPEC §7): the merchant, and the
    /// api_user that submitted it if it set a URL of its own (admins and
    /// managers acting on the merchant's behalf are not recipients).
    fn recipients(&self, created_by: UserId) -> Vec<UserId> {
        let hears = |u: &User| u.role == Role::ApiUser && u.webhook_url.is_some();
        let submitter_is_api_user = created_by != self.merchant
            && match &self.directory {
                Some(directory) => directory.get(&created_by).is_some_and(|u| hears(&u)),
                None => self
                    .store
                    .user(&created_by)
                    .ok()
                    .flatten()
                    .is_some_and(|u| hears(&u)),
            };
        if submitter_is_api_user {
            vec![self.merchant, created_by]
        } else {
            vec![self.merchant]
        }
    }

    /// Who lists a new record besides its merchant.
    /// The audit entry of a status set by hand (`audit` is `None` for the
    /// rail's verdicts: the money path is not audited), listed for the
    /// merchant and its manager; in the settle's own write set.
    pub(super) fn audit_status(
        &self,
        writes: &mut WriteSet,
        audit: Option<&AuditContext>,
        action: AuditAction,
        target: String,
        (before, after): (&str, &str),
    ) -> Result<(), Rejection> {
        let Some(audit) = audit else {
            return Ok(());
        };
        let entry = audit.entry(action, target, audit_log::status_change(before, after));
        let mut scope = vec![self.merchant];
        scope.extend(self.settings.team);
        writes.audit_recorded(&entry, &scope).map_err(db)
    }

    fn listed<'a>(&'a self, created_by: &'a UserId) -> Listed<'a> {
        Listed {
            created_by,
            team: self.settings.team.as_ref(),
        }
    }

    /// When the rail settles a record created `now`.
    fn settle_at(&self, now: Timestamp) -> i64 {
        let delay = i64::try_from(self.config.settle_delay_ms).unwrap_or(i64::MAX);
        now.plus_ms(delay).unix_ms()
    }

    fn prepare_payin(&self, new: NewPayin) -> Result<Prepared<Payment>, Rejection> {
        let id = PaymentId::new();
        // The record's time is its id's time, so time filters on ids agree with it.
        let now = Timestamp::from_unix_ms(i64::try_from(id.unix_ms()).unwrap_or(i64::MAX));
        if let Prior::Replay(first) =
            self.check_idempotency(&new.created_by, new.idempotency.as_ref(), now)?
        {
            return Ok(Prepared::Replay(first));
        }
        self.settings.limits.check(new.amount)?;
        if self.unique_taken(UniqueKind::OrderId, &new.order_id)? {
            return Err(Rejection::DuplicateOrderId);
        }
        let fee = new.amount.bps_half_up(self.settings.payin_fee_bps);
        let net_amount = new
            .amount
            .checked_sub(fee)
            .ok_or(Rejection::InvalidAmount("fee exceeds amount".into()))?;
        let payment = Payment {
            id,
            order_id: new.order_id,
            merchant_id: self.merchant,
            created_by: new.created_by,
            amount: new.amount,
            fee,
            net_amount,
            currency: new.currency,
            status: PaymentStatus::Pending,
            payer: new.payer,
            payer_email: new.payer_email,
            payer_phone: new.payer_phone,
            payer_vpa: new.payer_vpa,
            description: new.description,
            metadata: new.metadata,
            failure_reason: None,
            created_at: now,
            updated_at: now,
            completed_at: None,
            refunded_amount: Money::ZERO,
            status_reason: None,
        };
        let mut next = self.wallet.clone();
        next.pending_payins =
            next.pending_payins
                .checked_add(payment.amount)
                .ok_or(Rejection::InvalidAmount(
                    "amount overflows the wallet".into(),
                ))?;
        next.updated_at = now;

        let mut writes = WriteSet::new();
        let due = writes
            .payin_created(
                &payment,
                self.listed(&payment.created_by),
                self.settle_at(now),
            )
            .map_err(db)?;
        let idempotency = Self::put_idempotency(
            &mut writes,
            &self.merchant,
            &payment.created_by,
            new.idempotency,
            &payment,
            now,
        )?;
        self.put_common(&mut writes, &next, &[], None)?;
        let claims = Claims {
            unique: Some((UniqueKind::OrderId, payment.order_id.clone())),
            idempotency,
            due: Some(due),
            event: None,
            lifecycle: Lifecycle::default(),
        };
        Ok(Prepared::write(writes, next, payment, claims))
    }

    fn prepare_settle_payin(
        &self,
        id: PaymentId,
        outcome: Outcome<PaymentStatus>,
    ) -> Result<Prepared<Payment>, Rejection> {
        let now = Timestamp::now();
        let mut manual = None;
        let known = (self.inflight.payment(&id)).or_else(|| self.pending.payins.get(&id));
        let mut payment = match known {
            Some(p) => p.clone(),
            None => self
                .store
                .payment(&id)
                .map_err(db)?
                .ok_or(Rejection::NotFound)?,
        };
        if payment.merchant_id != self.merchant {
            return Err(Rejection::NotFound);
        }
        let (to, reason, due) = match outcome {
            Outcome::Rail(due) => {
                let (to, reason) = crate::connector::payin_outcome(
                    &id,
                    payment.payer_vpa.as_deref(),
                    self.config.payin_failure_ppm,
                );
                (to, reason, Some(due))
            }
            Outcome::Given(to, audit) => {
                manual = Some(audit);
                (to, manual.as_ref().and_then(|a| a.reason.clone()), None)
            }
        };
        let before = payment.status.as_str();
        payment.settle(to, reason, now)?;
        let mut next = self.wallet.clone();
        next.pending_payins = next
            .pending_payins
            .checked_sub(payment.amount)
            .ok_or(Rejection::DatabaseError)?;
        next.updated_at = now;
        let mut transfers = Vec::with_capacity(2);
        let event_type = if to == PaymentStatus::Completed {
            // rail:payins → available (net) and rail:payins → platform:fees (fee).
            let reference = payment.id.to_string();
            for (kind, amount) in [
                (TransferKind::PayinCredit, payment.net_amount),
                (TransferKind::PayinFee, payment.fee),
            ] {
                if !amount.is_zero() {
                    transfers.push(next.post(kind, amount, reference.clone(), now)?);
                }
            }
            next.total_payins = next
                .total_payins
                .checked_add(payment.amount)
                .ok_or(Rejection::DatabaseError)?;
            next.total_fees = next
                .total_fees
                .checked_add(payment.fee)
                .ok_or(Rejection::DatabaseError)?;
            EventType::PaymentCompleted
        } else {
            EventType::PaymentFailed
        };
        let mut writes = WriteSet::new();
        writes.payment_saved(&payment).map_err(db)?;
        if let Some(due) = due {
            writes.settled(due);
        }
        self.audit_status(
            &mut writes,
            manual.as_ref(),
            AuditAction::PaymentStatusSet,
            payment.id.to_string(),
            (before, payment.status.as_str()),
        )?;
        let settled = Settled {
            writes,
            created_by: payment.created_by,
            transfers,
            event_type,
            now,
            lifecycle: Lifecycle::default(),
        };
        self.settlement(settled, next, payment, Payment::event_payload)
    }

    fn prepare_payout(&self, new: NewPayout) -> Result<Prepared<Payout>, Rejection> {
        let id = PayoutId::new();
        let now = Timestamp::from_unix_ms(i64::try_from(id.unix_ms()).unwrap_or(i64::MAX));
        if let Prior::Replay(first) =
            self.check_idempotency(&new.created_by, new.idempotency.as_ref(), now)?
        {
            return Ok(Prepared::Replay(first));
        }
        self.settings.limits.check(new.amount)?;
        if let Some(reference) = &new.reference_id {
            if self.unique_taken(UniqueKind::ReferenceId, reference)? {
                return Err(Rejection::DuplicateOrderId);
            }
        }
        let payout = Payout {
            id,
            reference_id: new.reference_id,
            merchant_id: self.merchant,
            created_by: new.created_by,
            amount: new.amount,
            fee: self.settings.payout_fee,
            currency: new.currency,
            status: PayoutStatus::Pending,
            beneficiary: new.beneficiary,
            mode: new.mode,
            purpose: new.purpose,
            reason: None,
            created_at: now,
            updated_at: now,
            processed_at: None,
            utr: None,
        };
        let hold = payout
            .hold()
            .ok_or(Rejection::InvalidAmount("amount overflows".into()))?;
        if new.queue_if_low_balance && self.must_queue(hold) {
            return self.prepare_queued_payout(payout, new.idempotency, now);
        }
        let mut next = self.wallet.clone();
        let hold = next.post(TransferKind::PayoutHold, hold, payout.id.to_string(), now)?;

        let mut writes = WriteSet::new();
        let due = writes
            .payout_created(
                &payout,
                self.listed(&payout.created_by),
                self.settle_at(now),
            )
            .map_err(db)?;
        let idempotency = Self::put_idempotency(
            &mut writes,
            &self.merchant,
            &payout.created_by,
            new.idempotency,
            &payout,
            now,
        )?;
        self.put_common(&mut writes, &next, &[hold], None)?;
        let claims = Claims {
            unique: payout
                .reference_id
                .clone()
                .map(|r| (UniqueKind::ReferenceId, r)),
            idempotency,
            due: Some(due),
            event: None,
            lifecycle: Lifecycle::default(),
        };
        Ok(Prepared::write(writes, next, payout, claims))
    }

    fn prepare_settle_payout(
        &self,
        id: PayoutId,
        outcome: Outcome<PayoutStatus>,
    ) -> Result<Prepared<Payout>, Rejection> {
        let now = Timestamp::now();
        let mut manual = None;
        let known = (self.inflight.payout(&id)).or_else(|| self.pending.payouts.get(&id));
        let mut payout = match known {
            Some(p) => p.clone(),
            None => self
                .store
                .payout(&id)
                .map_err(db)?
                .ok_or(Rejection::NotFound)?,
        };
        if payout.merchant_id != self.merchant {
            return Err(Rejection::NotFound);
        }
        let (to, reason, due) = match outcome {
            Outcome::Rail(due) => {
                let (to, reason) =
                    crate::connector::payout_outcome(&payout.beneficiary.account_number);
                (to, reason, Some(due))
            }
            Outcome::Given(to, audit) => {
                manual = Some(audit);
                (to, manual.as_ref().and_then(|a| a.reason.clone()), None)
            }
        };
        let before = payout.status.as_str();
        payout.settle(to, reason, now)?;
        if to == PayoutStatus::Processed {
            payout.utr = Some(payout_lifecycle::sandbox_utr(&payout.id));
        }
        let hold = payout.hold().ok_or(Rejection::DatabaseError)?;
        let mut next = self.wallet.clone();
        let reference = payout.id.to_string();
        // processed: held → rail:payouts (amount) and held → platform:fees
        // (fee); rejected: the whole hold back to available.
        let (moves, event_type) = match to {
            PayoutStatus::Processed => (
                vec![
                    (TransferKind::PayoutSettle, payout.amount),
                    (TransferKind::PayoutFee, payout.fee),
                ],
                EventType::PayoutProcessed,
            ),
            _ => (
                vec![(TransferKind::PayoutRelease, hold)],
                EventType::PayoutRejected,
            ),
        };
        let mut transfers = Vec::with_capacity(moves.len());
        for (kind, amount) in moves {
            if !amount.is_zero() {
                transfers.push(next.post(kind, amount, reference.clone(), now)?);
            }
        }
        if to == PayoutStatus::Processed {
            next.total_payouts = next
                .total_payouts
                .checked_add(payout.amount)
                .ok_or(Rejection::DatabaseError)?;
            next.total_fees = next
                .total_fees
                .checked_add(payout.fee)
                .ok_or(Rejection::DatabaseError)?;
        }
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
        let lifecycle = self.reversal_due(&payout, &mut writes, now);
        let settled = Settled {
            writes,
            created_by: payout.created_by,
            transfers,
            event_type,
            now,
            lifecycle,
        };
        self.settlement(settled, next, payout, Payout::event_payload)
    }

    /// The write set of a settlement: the record, the wallet (and its
    /// transfers, if money moved) and the webhook event.
    fn settlement<T>(
        &self,
        settled: Settled,
        next: Wallet,
        record: T,
        payload: impl FnOnce(&T, EventId, EventType, Timestamp) -> domain::EventPayload,
    ) -> Result<Prepared<T>, Rejection> {
        let Settled {
            mut writes,
            created_by,
            mut transfers,
            event_type,
            now,
            mut lifecycle,
        } = settled;
        // Money came back or in: queued payouts that now fit leave the
        // queue in this same write (SPEC §13).
        let mut next = next;
        self.drain_queue(&mut next, &mut writes, &mut transfers, &mut lifecycle, now)?;
        let event_id = EventId::new();
        let recipients = self.recipients(created_by);
        let body = payload(&record, event_id, event_type, now);
        let event = OutboxEvent::new(event_id, event_type, &recipients, body, now);
        self.put_common(&mut writes, &next, &transfers, Some(&event))?;
        let claims = Claims {
            event: Some(event),
            lifecycle,
            ..Claims::default()
        };
        Ok(Prepared::write(writes, next, record, claims))
    }
}

/// Most pending records one wallet keeps in memory; beyond, settling reads
/// them from storage.
const PENDING_RECORDS_MAX: usize = 10_000;

/// Pending records created by this wallet incarnation, by id.
#[derive(Default)]
struct PendingRecords {
    payins: std::collections::HashMap<PaymentId, Payment>,
    payouts: std::collections::HashMap<PayoutId, Payout>,
    refunds: std::collections::HashMap<domain::RefundId, domain::Refund>,
}

impl PendingRecords {
    /// Keeps a new pending pay-in, if there is room; says whether it did.
    fn remember_payin(&mut self, p: &Payment) -> bool {
        let room = self.payins.len() < PENDING_RECORDS_MAX;
        if room {
            self.payins.insert(p.id, p.clone());
        }
        room
    }

    /// Keeps a new pending payout, if there is room; says whether it did.
    fn remember_payout(&mut self, p: &Payout) -> bool {
        let room = self.payouts.len() < PENDING_RECORDS_MAX;
        if room {
            self.payouts.insert(p.id, p.clone());
        }
        room
    }
}

/// A settlement: its write set so far (the record) and what else it
/// writes besides the wallet.
struct Settled {
    writes: WriteSet,
    created_by: UserId,
    transfers: Vec<Transfer>,
    event_type: EventType,
    now: Timestamp,
    /// Rows and records of the payout lifecycle it also writes.
    lifecycle: Lifecycle,
}

/// What a write claims, to be kept in flight until storage shows it.
#[derive(Default)]
struct Claims {
    /// A merchant-scoped order or reference id.
    unique: Option<(UniqueKind, String)>,
    /// An Idempotency-Key (by its caller) and the row stored under it.
    idempotency: Option<(UserId, String, IdempotencyRecord)>,
    /// The record's place in the rail's due queue, for the rail to hear of
    /// once the write is queued.
    due: Option<PendingItem>,
    /// The webhook event written, for the dispatcher to hold in memory.
    event: Option<OutboxEvent>,
    /// What the payout lifecycle wrote besides (SPEC §13).
    lifecycle: Lifecycle,
}

/// A command's write: the write set, the wallet once it is queued, the
/// record to answer with and what it claims.
struct Write<T> {
    writes: WriteSet,
    next: Wallet,
    record: T,
    claims: Claims,
}

/// A command, ready to write or answered from an earlier response.
enum Prepared<T> {
    Write(Box<Write<T>>),
    Replay(T),
}

impl<T> Prepared<T> {
    fn write(writes: WriteSet, next: Wallet, record: T, claims: Claims) -> Prepared<T> {
        Prepared::Write(Box::new(Write {
            writes,
            next,
            record,
            claims,
        }))
    }
}
