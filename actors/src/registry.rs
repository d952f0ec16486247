//! The sharded registry of wallet actors and their supervisor.
//!
//! Lookups are a `DashMap` read (sharded, no global lock). A miss goes to
//! the supervisor actor, which alone spawns wallets, so two callers can never
//! start two actors for one wallet. The supervisor restarts a wallet that
//! panicked (its state is reloaded from storage in `pre_start`), with a
//! restart budget, and stops idle wallets (passivation) after draining them.

use crate::wallet::actor::{WalletActor, WalletArgs};
use crate::wallet::messages::WalletMsg;
use crate::CoreConfig;
use dashmap::DashMap;
use domain::metric_names as names;
use domain::{Rejection, Role, UserId};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use storage::Store;
use tokio::sync::Semaphore;

/// A live wallet actor and the permits that bound its in-flight calls.
#[derive(Clone)]
pub(crate) struct Slot {
    pub actor: ActorRef<WalletMsg>,
    pub inflight: Arc<Semaphore>,
}

pub(crate) struct Registry {
    slots: DashMap<UserId, Slot>,
    supervisor: OnceLock<ActorRef<SupervisorMsg>>,
    /// The user directory, once started (it starts after the wallets, which
    /// it tells about fee changes): wallets look users up in memory there.
    pub(crate) directory: OnceLock<crate::Directory>,
    /// The sandbox rail, once started: wallets tell it what falls due.
    pub(crate) connector: OnceLock<ActorRef<crate::connector::ConnectorMsg>>,
    /// Where wallets leave the events they queue for the webhook dispatcher.
    pub(crate) fresh: Arc<crate::webhook::FreshEvents>,
    store: Store,
    config: Arc<CoreConfig>,
}

impl Registry {
    pub(crate) fn new(store: Store, config: Arc<CoreConfig>) -> Registry {
        Registry {
            slots: DashMap::new(),
            supervisor: OnceLock::new(),
            directory: OnceLock::new(),
            connector: OnceLock::new(),
            fresh: Arc::default(),
            store,
            config,
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn config(&self) -> &CoreConfig {
        &self.config
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// In-flight permits held: in total over the live wallets, and by the
    /// busiest one. A pass over the live wallets (in memory; idle ones are
    /// passivated), for the saturation gauges at scrape time.
    pub(crate) fn inflight(&self) -> (usize, usize) {
        let limit = self.config.wallet_inflight_max.max(1);
        let (mut total, mut busiest) = (0usize, 0usize);
        for slot in self.slots.iter() {
            let held = limit.saturating_sub(slot.inflight.available_permits());
            total = total.saturating_add(held);
            busiest = busiest.max(held);
        }
        (total, busiest)
    }

    pub(crate) fn is_running(&self, merchant: &UserId) -> bool {
        self.slots.contains_key(merchant)
    }

    /// The merchant's live actor, spawned by the supervisor if need be.
    pub(crate) async fn slot(&self, merchant: UserId) -> Result<Slot, Rejection> {
        if let Some(slot) = self.slots.get(&merchant) {
            return Ok(slot.clone());
        }
        let supervisor = self.supervisor.get().ok_or(Rejection::ServiceUnavailable)?;
        let timeout = Duration::from_millis(self.config.wallet_call_timeout_ms);
        match supervisor
            .call(|reply| SupervisorMsg::Spawn(merchant, reply), Some(timeout))
            .await
        {
            Ok(ractor::rpc::CallResult::Success(result)) => result,
            _ => Err(Rejection::ServiceUnavailable),
        }
    }

    /// Drops the slot if it still names actor `id` (which is gone).
    pub(crate) fn forget(&self, merchant: UserId, id: ActorId) {
        self.slots
            .remove_if(&merchant, |_, slot| slot.actor.get_id() == id);
    }

    /// Stops the merchant's actor so that the next call reloads it from storage.
    pub(crate) async fn restart(&self, merchant: UserId) {
        if let Some((_, slot)) = self.slots.remove(&merchant) {
            let _ = slot
                .actor
                .stop_and_wait(None, Some(Duration::from_secs(5)))
                .await;
        }
    }
}

pub(crate) enum SupervisorMsg {
    Spawn(UserId, RpcReplyPort<Result<Slot, Rejection>>),
    Passivate(UserId, ActorId),
    /// Stop every wallet, letting each finish what is in its mailbox.
    DrainAll(RpcReplyPort<()>),
}

pub(crate) struct Supervisor;

pub(crate) struct SupervisorState {
    registry: Arc<Registry>,
    merchants: HashMap<ActorId, UserId>,
    restarts: HashMap<UserId, VecDeque<Instant>>,
}

impl Supervisor {
    /// Starts the supervisor and connects it to `registry`.
    pub(crate) async fn start(
        registry: Arc<Registry>,
    ) -> Result<ActorRef<SupervisorMsg>, ractor::SpawnErr> {
        let (actor, _join) = Actor::spawn(None, Supervisor, registry.clone()).await?;
        let _ = registry.supervisor.set(actor.clone());
        Ok(actor)
    }
}

impl SupervisorState {
    async fn spawn(
        &mut self,
        me: &ActorRef<SupervisorMsg>,
        merchant: UserId,
    ) -> Result<Slot, Rejection> {
        if let Some(slot) = self.registry.slots.get(&merchant) {
            return Ok(slot.clone());
        }
        let store = &self.registry.store;
        match store.user(&merchant) {
            Ok(Some(user)) if user.role == Role::Merchant => {}
            Ok(_) => return Err(Rejection::NotFound),
            Err(_) => return Err(Rejection::DatabaseError),
        }
        let args = WalletArgs {
            merchant,
            store: store.clone(),
            config: self.registry.config.clone(),
            supervisor: me.clone(),
            directory: self.registry.directory.get().cloned(),
            connector: self.registry.connector.get().cloned(),
            fresh: self.registry.fresh.clone(),
        };
        let (actor, _join) = Actor::spawn_linked(None, WalletActor, args, me.get_cell())
            .await
            .map_err(|e| {
                tracing::error!(%merchant, error = %e, "wallet failed to start");
                Rejection::DatabaseError
            })?;
        let slot = Slot {
            actor,
            inflight: Arc::new(Semaphore::new(
                self.registry.config.wallet_inflight_max.max(1),
            )),
        };
        self.merchants.insert(slot.actor.get_id(), merchant);
        self.registry.slots.insert(merchant, slot.clone());
        metrics::counter!(names::WALLETS_SPAWNED).increment(1);
        metrics::gauge!(names::WALLETS_ACTIVE).set(self.registry.slots.len() as f64);
        Ok(slot)
    }

    /// Whether a crashed wallet may be restarted now (restart budget).
    fn may_restart(&mut self, merchant: UserId) -> bool {
        let config = &self.registry.config;
        let window = Duration::from_millis(config.restart_window_ms);
        let history = self.restarts.entry(merchant).or_default();
        let now = Instant::now();
        while history
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            history.pop_front();
        }
        if history.len() >= config.wallet_restarts_max as usize {
            return false;
        }
        history.push_back(now);
        true
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = Arc<Registry>;

    async fn pre_start(
        &self,
        _me: ActorRef<SupervisorMsg>,
        registry: Arc<Registry>,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        Ok(SupervisorState {
            registry,
            merchants: HashMap::new(),
            restarts: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        me: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Spawn(merchant, reply) => {
                let _ = reply.send(state.spawn(&me, merchant).await);
            }
            SupervisorMsg::Passivate(merchant, id) => {
                let removed = state
                    .registry
                    .slots
                    .remove_if(&merchant, |_, s| s.actor.get_id() == id);
                if let Some((_, slot)) = removed {
                    // Drain, so nothing already queued is refused; spawns for
                    // this merchant wait behind us until it has stopped.
                    let _ = slot
                        .actor
                        .drain_and_wait(Some(Duration::from_secs(5)))
                        .await;
                    tracing::debug!(%merchant, "wallet passivated");
                    metrics::counter!(names::WALLETS_PASSIVATED).increment(1);
                    metrics::gauge!(names::WALLETS_ACTIVE).set(state.registry.slots.len() as f64);
                }
            }
            SupervisorMsg::DrainAll(reply) => {
                let slots: Vec<Slot> = state
                    .registry
                    .slots
                    .iter()
                    .map(|e| e.value().clone())
                    .collect();
                state.registry.slots.clear();
                for slot in slots {
                    let _ = slot
                        .actor
                        .drain_and_wait(Some(Duration::from_secs(5)))
                        .await;
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, error) => {
                let Some(merchant) = state.merchants.remove(&cell.get_id()) else {
                    return Ok(());
                };
                state.registry.forget(merchant, cell.get_id());
                tracing::error!(%merchant, %error, "wallet actor failed");
                metrics::gauge!(names::WALLETS_ACTIVE).set(state.registry.slots.len() as f64);
                if state.may_restart(merchant) {
                    metrics::counter!(names::WALLETS_RESTARTED).increment(1);
                    if let Err(rejection) = state.spawn(&me, merchant).await {
                        tracing::error!(%merchant, %rejection, "wallet restart failed");
                    }
                } else {
                    tracing::error!(%merchant, "wallet restart budget spent; it restarts on next use");
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if let Some(merchant) = state.merchants.remove(&cell.get_id()) {
                    state.registry.forget(merchant, cell.get_id());
                }
                metrics::gauge!(names::WALLETS_ACTIVE).set(state.registry.slots.len() as f64);
            }
            _ => {}
        }
        Ok(())
    }
}
