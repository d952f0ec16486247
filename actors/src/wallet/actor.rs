//! The wallet actor: owns one merchant's `Wallet` in memory and is the only
//! writer of its balance, ledger, payments and payouts. Each command is
//! validated against in-memory state, becomes ONE write set (record + ledger
//! entries + indexes + idempotency row + outbox row), and is handed to the
//! group committer. The actor replies with the write's ticket and moves on
//! to its next message without waiting for the fsync (pipelining); the
//! caller waits for the ticket. Its own in-flight writes are visible to it
//! through an `Overlay`.

use super::messages::{NewPayin, NewPayout, Reply, WalletMsg};
use crate::connector::ConnectorMsg;
use crate::registry::SupervisorMsg;
use crate::CoreConfig;
use domain::money::AmountLimits;
use domain::{
    Currency, EventId, EventType, Money, OutboxEvent, Payment, PaymentId, PaymentStatus, Payout,
    PayoutId, PayoutStatus, Rejection, Role, Timestamp, Transfer, TransferKind, User, UserId,
    Wallet,
};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::keys::{self, IndexTag, UniqueKind};
use storage::{
    IdempotencyRecord, Overlay, PendingItem, PendingKind, Space, StorageError, Store, WriteSet,
};

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
    overlay: Overlay,
    directory: Option<crate::Directory>,
    connector: Option<ActorRef<ConnectorMsg>>,
    /// Records this incarnation created that are still pending, so that
    /// settling them reads no storage (older ones are read from it).
    pending: PendingRecords,
    /// The queue sequence of this wallet's last write set.
    last_write_seq: u64,
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
        Ok(WalletState {
            merchant: args.merchant,
            wallet,
            settings,
            overlay: Overlay::default(),
            directory: args.directory,
            connector: args.connector,
            pending: PendingRecords::default(),
            last_write_seq: 0,
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
        state.overlay.prune(state.store.applied_seq());
        if !matches!(msg, WalletMsg::IdleCheck) {
            state.last_active = Instant::now();
        }
        match msg {
            WalletMsg::CreatePayin(new, reply) => {
                let reply_ = state.run(state.prepare_payin(*new)).await;
                if let (Ok(p), false) = (&reply_.result, reply_.replayed) {
                    state.pending.remember_payin(p);
                }
                let _ = reply.send(reply_);
            }
            WalletMsg::SettlePayin {
                id,
                to,
                reason,
                reply,
            } => {
                let reply_ = state.run(state.prepare_settle_payin(id, to, reason)).await;
                if reply_.result.is_ok() {
                    state.pending.payins.remove(&id);
                }
                let _ = reply.send(reply_);
            }
            WalletMsg::CreatePayout(new, reply) => {
                let reply_ = state.run(state.prepare_payout(*new)).await;
                if let (Ok(p), false) = (&reply_.result, reply_.replayed) {
                    state.pending.remember_payout(p);
                }
                let _ = reply.send(reply_);
            }
            WalletMsg::SettlePayout {
                id,
                to,
                reason,
                reply,
            } => {
                let reply_ = state.run(state.prepare_settle_payout(id, to, reason)).await;
                if reply_.result.is_ok() {
                    state.pending.payouts.remove(&id);
                }
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
                if idle && state.overlay.is_empty() {
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
    fn read<T: DeserializeOwned>(&self, space: Space, key: &[u8]) -> Result<Option<T>, Rejection> {
        match self.overlay.get(&self.store, space, key).map_err(db)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| db(e.into())),
            None => Ok(None),
        }
    }

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
    fn check_idempotency<T: DeserializeOwned>(
        &self,
        created_by: &UserId,
        idem: Option<&super::messages::Idempotency>,
        now: Timestamp,
    ) -> Result<Prior<T>, Rejection> {
        let Some(idem) = idem else {
            return Ok(Prior::None);
        };
        let key = keys::idempotency(&self.merchant, created_by, &idem.key);
        let in_flight = self
            .overlay
            .get(&self.store, Space::Idempotency, &key)
            .map_err(db)?;
        let Some(bytes) = in_flight else {
            return Ok(Prior::None);
        };
        let record: IdempotencyRecord = serde_json::from_slice(&bytes).map_err(|e| db(e.into()))?;
        if now.unix_ms() - record.created_at.unix_ms() > self.config.idempotency_ttl_ms {
            return Ok(Prior::None);
        }
        if record.fingerprint != idem.fingerprint {
            return Err(Rejection::IdempotencyConflict);
        }
        let first = serde_json::from_value(record.response).map_err(|e| db(e.into()))?;
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
            Ok(Prepared::Write(writes, next, record)) => self.write(writes, *next, record).await,
            Ok(Prepared::Replay(record)) => self.replay(record).await,
            Err(rejection) => Reply::rejected(rejection),
        }
    }

    fn unique_taken(&self, kind: UniqueKind, reference: &str) -> Result<bool, Rejection> {
        let key = keys::unique(&self.merchant, kind, reference);
        Ok(self
            .overlay
            .get(&self.store, Space::Unique, &key)
            .map_err(db)?
            .is_some())
    }

    /// Hands the write set to the committer, remembering it in the overlay,
    /// and adopts `next` as the wallet only once the write is queued.
    async fn write<T>(&mut self, writes: WriteSet, next: Wallet, record: T) -> Reply<T> {
        // The pending rows this write adds, for the rail's due queue.
        let due: Vec<PendingItem> = writes
            .ops()
            .filter_map(|(space, key, value)| match (space, value) {
                (Space::Pending, Some(value)) => PendingItem::from_row(key, value).ok(),
                _ => None,
            })
            .collect();
        match self.store.submit_tracked(writes, &mut self.overlay).await {
            Ok(ticket) => {
                self.wallet = next;
                self.last_write_seq = ticket.seq();
                if let Some(connector) = &self.connector {
                    for item in due {
                        let _ = connector.cast(ConnectorMsg::Due(item));
                    }
                }
                Reply {
                    result: Ok(record),
                    ticket: Some(ticket),
                    replayed: false,
                }
            }
            Err(e) => Reply::rejected(db(e)),
        }
    }

    fn put<T: Serialize>(
        writes: &mut WriteSet,
        space: Space,
        key: Vec<u8>,
        value: &T,
    ) -> Result<(), Rejection> {
        writes.put(space, key, value).map_err(db)
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

    fn put_idempotency<T: Serialize>(
        writes: &mut WriteSet,
        merchant: &UserId,
        created_by: &UserId,
        idem: Option<&super::messages::Idempotency>,
        record: &T,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        if let Some(idem) = idem {
            let response = serde_json::to_value(record).map_err(|e| db(e.into()))?;
            let row = IdempotencyRecord {
                fingerprint: idem.fingerprint.clone(),
                response,
                created_at: now,
            };
            Self::put(
                writes,
                Space::Idempotency,
                keys::idempotency(merchant, created_by, &idem.key),
                &row,
            )?;
        }
        Ok(())
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

    /// The listing rows of a new record: by merchant, by creator (unless
    /// the merchant made it) and, when the merchant has a manager, by team.
    fn index_rows(
        &self,
        writes: &mut WriteSet,
        tags: [IndexTag; 3],
        created_by: &UserId,
        id: &[u8; 16],
    ) {
        let [by_merchant, by_creator, by_team] = tags;
        writes.put_raw(
            Space::Index,
            keys::index(by_merchant, &self.merchant, id),
            Vec::new(),
        );
        // The by-creator listing is read for api_users only (everyone else
        // lists by merchant, team or all): the merchant's own records skip it.
        if *created_by != self.merchant {
            writes.put_raw(
                Space::Index,
                keys::index(by_creator, created_by, id),
                Vec::new(),
            );
        }
        if let Some(team) = &self.settings.team {
            writes.put_raw(Space::Index, keys::index(by_team, team, id), Vec::new());
        }
    }

    fn pending_row(&self, writes: &mut WriteSet, kind: PendingKind, id: &[u8; 16], now: Timestamp) {
        let delay = i64::try_from(self.config.settle_delay_ms).unwrap_or(i64::MAX);
        let key = keys::pending(now.plus_ms(delay).unix_ms(), kind.tag(), id);
        writes.put_raw(Space::Pending, key, self.merchant.as_bytes().to_vec());
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
        };
        let mut next = self.wallet.clone();
        next.pending_payins =
            next.pending_payins
                .checked_add(payment.amount)
                .ok_or(Rejection::InvalidAmount(
                    "amount overflows the wallet".into(),
                ))?;
        next.updated_at = now;

        let id = payment.id.as_bytes();
        let mut writes = WriteSet::new();
        Self::put(
            &mut writes,
            Space::Payments,
            keys::payment(&payment.id),
            &payment,
        )?;
        self.index_rows(
            &mut writes,
            [
                IndexTag::PaymentsByMerchant,
                IndexTag::PaymentsByCreator,
                IndexTag::PaymentsByTeam,
            ],
            &payment.created_by,
            id,
        );
        writes.put_raw(
            Space::Unique,
            keys::unique(&self.merchant, UniqueKind::OrderId, &payment.order_id),
            id.to_vec(),
        );
        self.pending_row(&mut writes, PendingKind::Payin, id, now);
        Self::put_idempotency(
            &mut writes,
            &self.merchant,
            &payment.created_by,
            new.idempotency.as_ref(),
            &payment,
            now,
        )?;
        self.put_common(&mut writes, &next, &[], None)?;
        Ok(Prepared::Write(writes, Box::new(next), payment))
    }

    fn prepare_settle_payin(
        &self,
        id: PaymentId,
        to: PaymentStatus,
        reason: Option<String>,
    ) -> Result<Prepared<Payment>, Rejection> {
        let now = Timestamp::now();
        let mut payment: Payment = match self.pending.payins.get(&id) {
            Some(p) => p.clone(),
            None => self
                .read(Space::Payments, &keys::payment(&id))?
                .ok_or(Rejection::NotFound)?,
        };
        if payment.merchant_id != self.merchant {
            return Err(Rejection::NotFound);
        }
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
        let key = keys::payment(&payment.id);
        let created_by = payment.created_by;
        let settled = Settled {
            space: Space::Payments,
            key,
            created_by,
            transfers,
            event_type,
            now,
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
        };
        let hold = payout
            .hold()
            .ok_or(Rejection::InvalidAmount("amount overflows".into()))?;
        let mut next = self.wallet.clone();
        let hold = next.post(TransferKind::PayoutHold, hold, payout.id.to_string(), now)?;

        let id = payout.id.as_bytes();
        let mut writes = WriteSet::new();
        Self::put(
            &mut writes,
            Space::Payouts,
            keys::payout(&payout.id),
            &payout,
        )?;
        self.index_rows(
            &mut writes,
            [
                IndexTag::PayoutsByMerchant,
                IndexTag::PayoutsByCreator,
                IndexTag::PayoutsByTeam,
            ],
            &payout.created_by,
            id,
        );
        if let Some(reference) = &payout.reference_id {
            writes.put_raw(
                Space::Unique,
                keys::unique(&self.merchant, UniqueKind::ReferenceId, reference),
                id.to_vec(),
            );
        }
        self.pending_row(&mut writes, PendingKind::Payout, id, now);
        Self::put_idempotency(
            &mut writes,
            &self.merchant,
            &payout.created_by,
            new.idempotency.as_ref(),
            &payout,
            now,
        )?;
        self.put_common(&mut writes, &next, &[hold], None)?;
        Ok(Prepared::Write(writes, Box::new(next), payout))
    }

    fn prepare_settle_payout(
        &self,
        id: PayoutId,
        to: PayoutStatus,
        reason: Option<String>,
    ) -> Result<Prepared<Payout>, Rejection> {
        let now = Timestamp::now();
        let mut payout: Payout = match self.pending.payouts.get(&id) {
            Some(p) => p.clone(),
            None => self
                .read(Space::Payouts, &keys::payout(&id))?
                .ok_or(Rejection::NotFound)?,
        };
        if payout.merchant_id != self.merchant {
            return Err(Rejection::NotFound);
        }
        payout.settle(to, reason, now)?;
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
        let key = keys::payout(&payout.id);
        let created_by = payout.created_by;
        let settled = Settled {
            space: Space::Payouts,
            key,
            created_by,
            transfers,
            event_type,
            now,
        };
        self.settlement(settled, next, payout, Payout::event_payload)
    }

    /// The write set of a settlement: the record, the wallet (and its
    /// transfers, if money moved) and the webhook event.
    fn settlement<T: Serialize>(
        &self,
        settled: Settled,
        next: Wallet,
        record: T,
        payload: impl FnOnce(&T, EventId, EventType, Timestamp) -> serde_json::Value,
    ) -> Result<Prepared<T>, Rejection> {
        let Settled {
            space,
            key,
            created_by,
            transfers,
            event_type,
            now,
        } = settled;
        let event_id = EventId::new();
        let recipients = self.recipients(created_by);
        let body = payload(&record, event_id, event_type, now);
        let event = OutboxEvent::new(event_id, event_type, &recipients, body, now);
        let mut writes = WriteSet::new();
        Self::put(&mut writes, space, key, &record)?;
        self.put_common(&mut writes, &next, &transfers, Some(&event))?;
        Ok(Prepared::Write(writes, Box::new(next), record))
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
}

impl PendingRecords {
    fn remember_payin(&mut self, p: &Payment) {
        if self.payins.len() < PENDING_RECORDS_MAX {
            self.payins.insert(p.id, p.clone());
        }
    }

    fn remember_payout(&mut self, p: &Payout) {
        if self.payouts.len() < PENDING_RECORDS_MAX {
            self.payouts.insert(p.id, p.clone());
        }
    }
}

/// What a settlement wrote besides the wallet.
struct Settled {
    space: Space,
    key: Vec<u8>,
    created_by: UserId,
    transfers: Vec<Transfer>,
    event_type: EventType,
    now: Timestamp,
}

/// A command, ready to write or answered from an earlier response.
enum Prepared<T> {
    Write(WriteSet, Box<Wallet>, T),
    Replay(T),
}
