//! The webhook dispatcher: drains due deliveries from the outbox into a
//! bounded pool of worker actors, records every attempt, and schedules
//! retries with backoff until a delivery is acknowledged (HTTP 200) or its
//! attempts are spent (`failed`, kept for manual redelivery).
//!
//! Fairness: at most `per_host_max` attempts run against one endpoint at a
//! time; deliveries for an endpoint at its cap wait in its in-memory queue,
//! so a slow or failing endpoint cannot hold the front of the queue or the
//! workers. After creation, only this actor rewrites delivery records; it
//! keeps what it wrote until the store has applied it (`Unapplied`) and
//! does not wait for its fsync (a crash in between means one more
//! delivery, which at-least-once allows).

use super::fresh::FreshEvents;
use super::policy::RetryPolicy;
use super::signing;
use super::transport::{Attempt, Outcome, Transport};
use super::unapplied::{due_of, Batch, Unapplied};
use crate::Directory;
use bytes::Bytes;
use domain::metric_names as names;
use domain::{Delivery, DeliveryStatus, EventId, OutboxEvent, Rejection, Timestamp, UserId};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use storage::{DueCursor, DueDelivery, DueId, StorageError, Store};

/// Settings of webhook delivery.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    pub policy: RetryPolicy,
    /// Delivery worker actors.
    pub workers: usize,
    /// Most attempts in flight against one endpoint (host and port).
    pub per_host_max: usize,
    /// How often the outbox is checked for due deliveries.
    pub poll_ms: u64,
    pub allow_private: bool,
    pub connect_timeout_ms: u64,
    /// Whole attempt, from connect to response headers.
    pub timeout_ms: u64,
    /// How long the previous secret keeps signing after a rotation.
    pub secret_grace_ms: i64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            policy: RetryPolicy::default(),
            workers: 32,
            per_host_max: 4,
            poll_ms: 20,
            allow_private: false,
            connect_timeout_ms: 5_000,
            timeout_ms: 10_000,
            secret_grace_ms: 24 * 3_600_000,
        }
    }
}

/// Where "now" comes from: the wall clock, or tokio's (pausable) clock
/// anchored at a wall-clock instant, for retry-timing tests.
#[derive(Clone, Copy, Debug)]
pub enum Clock {
    Wall,
    Tokio {
        origin_ms: i64,
        origin: tokio::time::Instant,
    },
}

impl Clock {
    /// A tokio clock that reads `Timestamp::now()` at this instant.
    pub fn tokio() -> Clock {
        Clock::Tokio {
            origin_ms: Timestamp::now().unix_ms(),
            origin: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Timestamp {
        match self {
            Clock::Wall => Timestamp::now(),
            Clock::Tokio { origin_ms, origin } => {
                let elapsed = i64::try_from(origin.elapsed().as_millis()).unwrap_or(i64::MAX);
                Timestamp::from_unix_ms(origin_ms.saturating_add(elapsed))
            }
        }
    }
}

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub struct WebhookStats {
    pub attempts: AtomicU64,
    pub delivered: AtomicU64,
    pub failed_attempts: AtomicU64,
    /// Deliveries that spent their attempts.
    pub exhausted: AtomicU64,
    pub in_flight: AtomicU64,
}

#[doc(hidden)]
pub struct Job {
    worker: usize,
    due: DueId,
    due_ms: i64,
    event_id: EventId,
    recipient: UserId,
    host: String,
    attempt: Attempt,
}

#[doc(hidden)]
pub struct Finished {
    job: Job,
    outcome: Outcome,
}

pub enum DispatcherMsg {
    Poll,
    #[doc(hidden)]
    Done(Box<Finished>),
    Redeliver {
        event: EventId,
        recipient: Option<UserId>,
        /// Only deliveries in this state (e.g. a replay of failed ones).
        only: Option<DeliveryStatus>,
        reply: RpcReplyPort<Result<OutboxEvent, Rejection>>,
    },
    /// Redelivers many events in ONE write, with the replay's audit entry.
    Replay(
        Box<ReplayRequest>,
        RpcReplyPort<Result<Replayed, Rejection>>,
    ),
}

/// A replay: the events, whose deliveries (`recipient`'s, or all) in state
/// `only` are queued again, and the audit entry with its scope.
pub struct ReplayRequest {
    pub events: Vec<EventId>,
    pub recipient: Option<UserId>,
    pub only: Option<DeliveryStatus>,
    pub audit: domain::AuditEntry,
    pub scope: Vec<UserId>,
    /// Refuse (`not_found`, nothing written) when no event had a delivery
    /// to requeue; otherwise the request is recorded even then.
    pub require_any: bool,
}

/// What a replay queued again, and the ticket of its one write (which
/// holds the audit entry): answer only once it is durable.
pub struct Replayed {
    pub replayed: usize,
    /// The events as requeued (those that had a delivery to requeue).
    pub events: Vec<OutboxEvent>,
    pub ticket: storage::Ticket,
}

pub enum WorkerMsg {
    Deliver(Box<Job>),
}

/// A delivery worker: one attempt at a time.
struct DeliveryWorker<T: Transport> {
    transport: Arc<T>,
}

impl<T: Transport> Actor for DeliveryWorker<T> {
    type Msg = WorkerMsg;
    type State = ActorRef<DispatcherMsg>;
    type Arguments = ActorRef<DispatcherMsg>;

    async fn pre_start(
        &self,
        _me: ActorRef<WorkerMsg>,
        dispatcher: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(dispatcher)
    }

    async fn handle(
        &self,
        _me: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        dispatcher: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let WorkerMsg::Deliver(job) = msg;
        let outcome = self.transport.send(job.attempt.clone()).await;
        let _ = dispatcher.cast(DispatcherMsg::Done(Box::new(Finished {
            job: *job,
            outcome,
        })));
        Ok(())
    }
}

pub struct Dispatcher<T: Transport> {
    transport: Arc<T>,
}

pub struct DispatcherArgs {
    pub store: Store,
    pub directory: Directory,
    pub config: WebhookConfig,
    pub clock: Clock,
    pub stats: Arc<WebhookStats>,
    /// Events wallets queued, held until their first attempt (`fresh.rs`).
    pub fresh: Arc<FreshEvents>,
}

pub struct DispatcherState {
    args: DispatcherArgs,
    workers: Vec<ActorRef<WorkerMsg>>,
    idle: Vec<usize>,
    in_flight: HashSet<DueId>,
    /// Events with attempts in flight, as this dispatcher last wrote them,
    /// with how many attempts: recording an outcome reads no storage.
    attempting: HashMap<EventId, (usize, OutboxEvent)>,
    per_host: HashMap<String, usize>,
    /// This dispatcher's writes the store has not applied yet.
    unapplied: Unapplied,
    timer: Option<tokio::task::JoinHandle<()>>,
    queue_sampled_ms: i64,
    /// Due deliveries read from storage, waiting for a worker, by endpoint.
    queues: HashMap<String, VecDeque<DueDelivery>>,
    /// Their due rows.
    queued: HashSet<DueId>,
    /// Endpoints with queued deliveries, in round-robin order.
    rotation: VecDeque<String>,
    /// Where the next read of due rows starts.
    cursor: Option<DueCursor>,
}

/// Most due deliveries held in memory waiting for a worker.
const QUEUED_MAX: usize = 20_000;
/// Most due rows read per pass.
const READ_MAX: usize = 2_048;

/// How often the queue gauges are refreshed.
const QUEUE_SAMPLE_MS: i64 = 2_000;

/// The public face of the dispatcher.
#[derive(Clone)]
pub struct WebhookHandle {
    actor: ActorRef<DispatcherMsg>,
    stats: Arc<WebhookStats>,
}

impl WebhookHandle {
    /// Starts the dispatcher and its workers over `transport`.
    pub async fn start<T: Transport>(
        transport: T,
        args: DispatcherArgs,
    ) -> Result<WebhookHandle, ractor::SpawnErr> {
        let stats = args.stats.clone();
        let (actor, _join) = Actor::spawn(
            None,
            Dispatcher {
                transport: Arc::new(transport),
            },
            args,
        )
        .await?;
        Ok(WebhookHandle { actor, stats })
    }

    /// Queues the event again for `recipient` (or every recipient), with a
    /// fresh retry budget, whatever its state.
    pub async fn redeliver(
        &self,
        event: EventId,
        recipient: Option<UserId>,
        only: Option<DeliveryStatus>,
    ) -> Result<OutboxEvent, Rejection> {
        let call = self.actor.call(
            |reply| DispatcherMsg::Redeliver {
                event,
                recipient,
                only,
                reply,
            },
            Some(Duration::from_secs(10)),
        );
        match call.await {
            Ok(ractor::rpc::CallResult::Success(result)) => result,
            _ => Err(Rejection::ServiceUnavailable),
        }
    }

    /// Queues the `request.events` again in one write with the replay's
    /// audit entry (written even when nothing matched: the request is
    /// recorded). Await the returned ticket before answering.
    pub async fn replay(&self, request: ReplayRequest) -> Result<Replayed, Rejection> {
        let call = self.actor.call(
            |reply| DispatcherMsg::Replay(Box::new(request), reply),
            Some(Duration::from_secs(10)),
        );
        match call.await {
            Ok(ractor::rpc::CallResult::Success(result)) => result,
            _ => Err(Rejection::ServiceUnavailable),
        }
    }

    pub fn stats(&self) -> &WebhookStats {
        &self.stats
    }

    /// Stops the dispatcher and its workers; deliveries in flight are
    /// attempted again after a restart (their due rows are still there).
    pub async fn stop(&self) {
        let _ = self
            .actor
            .stop_and_wait(None, Some(Duration::from_secs(5)))
            .await;
    }
}

fn db(e: StorageError) -> Rejection {
    tracing::error!(error = %e, "storage error in webhook dispatcher");
    Rejection::DatabaseError
}

/// Jitter seed of a delivery: its event and recipient.
fn seed(event: &EventId, recipient: &UserId) -> u64 {
    let mut bytes = [0u8; 8];
    for (i, b) in event
        .as_bytes()
        .iter()
        .chain(recipient.as_bytes())
        .enumerate()
    {
        bytes[i % 8] ^= *b;
    }
    u64::from_le_bytes(bytes)
}

impl<T: Transport> Actor for Dispatcher<T> {
    type Msg = DispatcherMsg;
    type State = DispatcherState;
    type Arguments = DispatcherArgs;

    async fn pre_start(
        &self,
        me: ActorRef<DispatcherMsg>,
        args: DispatcherArgs,
    ) -> Result<DispatcherState, ActorProcessingErr> {
        let mut workers = Vec::with_capacity(args.config.workers.max(1));
        for _ in 0..args.config.workers.max(1) {
            let worker = DeliveryWorker {
                transport: self.transport.clone(),
            };
            let (actor, _join) =
                Actor::spawn_linked(None, worker, me.clone(), me.get_cell()).await?;
            workers.push(actor);
        }
        let idle = (0..workers.len()).collect();
        Ok(DispatcherState {
            args,
            workers,
            idle,
            in_flight: HashSet::new(),
            attempting: HashMap::new(),
            per_host: HashMap::new(),
            unapplied: Unapplied::default(),
            timer: None,
            queue_sampled_ms: 0,
            queues: HashMap::new(),
            queued: HashSet::new(),
            rotation: VecDeque::new(),
            cursor: None,
        })
    }

    async fn post_start(
        &self,
        me: ActorRef<DispatcherMsg>,
        state: &mut DispatcherState,
    ) -> Result<(), ActorProcessingErr> {
        let period = Duration::from_millis(state.args.config.poll_ms.max(1));
        state.timer = Some(me.send_interval(period, || DispatcherMsg::Poll));
        Ok(())
    }

    async fn post_stop(
        &self,
        _me: ActorRef<DispatcherMsg>,
        state: &mut DispatcherState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(timer) = state.timer.take() {
            timer.abort();
        }
        for worker in &state.workers {
            worker.stop(None);
        }
        Ok(())
    }

    async fn handle(
        &self,
        _me: ActorRef<DispatcherMsg>,
        msg: DispatcherMsg,
        state: &mut DispatcherState,
    ) -> Result<(), ActorProcessingErr> {
        state.unapplied.prune(state.args.store.applied_seq());
        // Storage is read for newly due rows on the timer and after a
        // redelivery, not after every finished attempt: a range read per
        // delivery cost more than the delivery itself.
        let read = !matches!(msg, DispatcherMsg::Done(_));
        match msg {
            DispatcherMsg::Poll => state.sample_queue(),
            DispatcherMsg::Done(finished) => {
                if let Err(e) = state.finish(*finished).await {
                    tracing::error!(error = %e, "recording a webhook attempt failed");
                }
            }
            DispatcherMsg::Redeliver {
                event,
                recipient,
                only,
                reply,
            } => {
                let _ = reply.send(state.redeliver(event, recipient, only).await);
            }
            DispatcherMsg::Replay(request, reply) => {
                let _ = reply.send(state.replay(*request).await);
            }
        }
        if let Err(e) = state.dispatch(read).await {
            tracing::error!(error = %e, "webhook dispatch failed");
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<DispatcherMsg>,
        event: ractor::SupervisionEvent,
        state: &mut DispatcherState,
    ) -> Result<(), ActorProcessingErr> {
        // A worker that died (it should not: it never returns Err) is
        // replaced; its delivery's due row stays and is retried later.
        if let ractor::SupervisionEvent::ActorFailed(cell, error) = event {
            tracing::error!(%error, "webhook worker failed; replacing it");
            if let Some(index) = state
                .workers
                .iter()
                .position(|w| w.get_id() == cell.get_id())
            {
                let worker = DeliveryWorker {
                    transport: self.transport.clone(),
                };
                let (actor, _join) =
                    Actor::spawn_linked(None, worker, me.clone(), me.get_cell()).await?;
                state.workers[index] = actor;
                if !state.idle.contains(&index) {
                    state.idle.push(index);
                }
            }
        }
        Ok(())
    }
}

impl DispatcherState {
    fn now(&self) -> Timestamp {
        self.args.clock.now()
    }

    /// Updates the queue gauges, at most every `QUEUE_SAMPLE_MS`, from
    /// counters and the in-memory queues: never a scan of storage.
    fn sample_queue(&mut self) {
        let now = self.now();
        if now.unix_ms() - self.queue_sampled_ms < QUEUE_SAMPLE_MS {
            return;
        }
        self.queue_sampled_ms = now.unix_ms();
        let waiting = self.args.store.due_rows();
        metrics::gauge!(names::WEBHOOK_QUEUE_DEPTH).set(waiting as f64);
        // The queues are read in due order, so their fronts hold the
        // oldest due delivery not yet attempted.
        let oldest = self
            .queues
            .values()
            .filter_map(|q| q.front().map(|d| d.due_unix_ms))
            .min();
        let age_ms = oldest.map_or(0, |due| (now.unix_ms() - due).max(0));
        metrics::gauge!(names::WEBHOOK_OLDEST_PENDING_AGE).set(age_ms as f64 / 1_000.0);
        metrics::gauge!(names::WEBHOOK_IN_FLIGHT).set(self.in_flight.len() as f64);
    }

    /// The event as last written: by this dispatcher if it has attempts
    /// in flight or writes not yet applied, else as stored.
    fn load(&self, id: &EventId) -> Result<Option<OutboxEvent>, StorageError> {
        if let Some((_, event)) = self.attempting.get(id) {
            return Ok(Some(event.clone()));
        }
        if let Some(event) = self.args.fresh.get(id) {
            return Ok(Some(event));
        }
        match self.unapplied.event(id) {
            Some(event) => Ok(Some(event.clone())),
            None => self.args.store.event(id),
        }
    }

    /// Queues a step's writes; the step's changes are remembered until
    /// the store has applied them.
    async fn write(&mut self, batch: Batch) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let (writes, written) = batch.into_writes();
        // Not awaited: see the module comment.
        let ticket = self.args.store.submit(writes).await?;
        self.unapplied.record(ticket.seq(), written);
        Ok(())
    }

    /// The endpoint a recipient's deliveries go to (`host:port`), which is
    /// what the per-endpoint cap counts; `None` when it has no usable URL.
    fn endpoint_of(&self, recipient: &UserId) -> Option<String> {
        let user = self.args.directory.get(recipient)?;
        let url = url::Url::parse(user.webhook_url.as_deref()?).ok()?;
        Some(format!(
            "{}:{}",
            url.host_str()?,
            url.port_or_known_default()?
        ))
    }

    /// Reads newly due deliveries into per-endpoint queues (when `read`),
    /// then starts as
    /// many as there are idle workers, round-robin over endpoints, skipping
    /// an endpoint at its cap. A slow or dead endpoint therefore holds at
    /// most `per_host_max` workers and never the queue of anyone else, and
    /// nothing is rewritten to wait.
    async fn dispatch(&mut self, read: bool) -> Result<(), StorageError> {
        let now = self.now();
        if read {
            self.read_due(now)?;
        }
        // Events this pass rewrites (a delivery failed for want of a URL)
        // are kept in the batch: a later delivery of the same event starts
        // from that copy.
        let mut batch = Batch::default();
        let cap = self.args.config.per_host_max;
        let mut blocked_in_a_row = 0;
        while !self.idle.is_empty() && blocked_in_a_row < self.rotation.len() {
            let Some(endpoint) = self.rotation.pop_front() else {
                break;
            };
            let busy = self.per_host.get(&endpoint).copied().unwrap_or(0);
            if !endpoint.is_empty() && busy >= cap {
                self.rotation.push_back(endpoint);
                blocked_in_a_row += 1;
                continue;
            }
            blocked_in_a_row = 0;
            let queue = self.queues.entry(endpoint.clone()).or_default();
            let item = queue.pop_front();
            let more = !queue.is_empty();
            if more {
                self.rotation.push_back(endpoint.clone());
            } else {
                self.queues.remove(&endpoint);
            }
            if let Some(item) = item {
                self.queued.remove(&item.id);
                self.start_one(item, endpoint, now, &mut batch)?;
            }
        }
        self.write(batch).await
    }

    /// Moves due rows past the read cursor into the endpoint queues. The
    /// cursor spares each pass the rows (and deletions) already seen; when
    /// rows were made visible behind it (a write queued before a later one
    /// but applied after it), the store says how far back, and it steps
    /// back exactly that far.
    fn read_due(&mut self, now: Timestamp) -> Result<(), StorageError> {
        if let Some(min_new) = self.args.store.take_min_new_due_ms() {
            if self
                .cursor
                .as_ref()
                .is_some_and(|c| c.due_unix_ms() >= min_new)
            {
                self.cursor = Some(DueCursor::From(min_new));
            }
        }
        let room = QUEUED_MAX.saturating_sub(self.queued.len()).min(READ_MAX);
        if room == 0 {
            return Ok(());
        }
        let store = self.args.store.clone();
        let due = store.due_deliveries_after(self.cursor.as_ref(), now.unix_ms(), room)?;
        // Fewer than asked: nothing else is due up to `now`, so the next pass
        // starts there rather than at the last live row (or it would walk
        // every deletion made since, on every pass).
        let exhausted = due.len() < room;
        self.cursor = match (exhausted, due.last()) {
            (true, _) => Some(DueCursor::From(now.unix_ms().saturating_add(1))),
            (false, Some(last)) => Some(DueCursor::After(last.id)),
            (false, None) => self.cursor.take(),
        };
        for item in due {
            if self.in_flight.contains(&item.id)
                || self.queued.contains(&item.id)
                || self.unapplied.is_consumed(&item.id)
            {
                continue;
            }
            // No usable URL: queued under "" (never capped); start_one fails it.
            let endpoint = self.endpoint_of(&item.recipient).unwrap_or_default();
            self.queued.insert(item.id);
            let queue = self.queues.entry(endpoint.clone()).or_default();
            if queue.is_empty() {
                self.rotation.push_back(endpoint);
            }
            queue.push_back(item);
        }
        Ok(())
    }

    /// Starts, fails or drops one due delivery.
    fn start_one(
        &mut self,
        item: DueDelivery,
        endpoint: String,
        now: Timestamp,
        batch: &mut Batch,
    ) -> Result<(), StorageError> {
        let loaded = match batch.event(&item.event_id) {
            Some(event) => Some(event.clone()),
            None => self.load(&item.event_id)?,
        };
        let Some(mut event) = loaded else {
            batch.consume(item.id);
            return Ok(());
        };
        let Some(index) = event
            .deliveries
            .iter()
            .position(|d| d.recipient == item.recipient)
        else {
            batch.consume(item.id);
            return Ok(());
        };
        let delivery = &event.deliveries[index];
        let current = delivery.status == DeliveryStatus::Pending
            && delivery.next_attempt_at.map(Timestamp::unix_ms) == Some(item.due_unix_ms);
        if !current {
            // Superseded by a redelivery or already finished.
            batch.consume(item.id);
            return Ok(());
        }
        let user = self.args.directory.get(&item.recipient);
        let Some((user, url)) = user.and_then(|u| u.webhook_url.clone().map(|url| (u, url))) else {
            let d = &mut event.deliveries[index];
            d.status = DeliveryStatus::Failed;
            d.next_attempt_at = None;
            d.last_error = Some("the recipient has no webhook_url".into());
            batch.consume(item.id);
            self.remember(&event);
            batch.save(event, &[item.recipient]);
            return Ok(());
        };
        let body = Bytes::copy_from_slice(event.payload.as_str().as_bytes());
        let t = now.unix_ms().div_euclid(1_000);
        let mut secrets = vec![user.webhook_secret.expose()];
        if let (Some(previous), Some(rotated)) = (
            &user.previous_webhook_secret,
            user.webhook_secret_rotated_at,
        ) {
            if now.unix_ms() - rotated.unix_ms() < self.args.config.secret_grace_ms {
                secrets.push(previous.expose());
            }
        }
        let attempt_no = event.deliveries[index].attempts + 1;
        let attempt = Attempt {
            url,
            headers: vec![
                ("x-webhook-id", event.id.to_string()),
                ("x-webhook-timestamp", t.to_string()),
                ("x-webhook-signature", signing::header(&secrets, t, &body)),
                ("x-webhook-event", event.event.as_str().to_owned()),
                ("x-webhook-attempt", attempt_no.to_string()),
            ],
            body,
        };
        let Some(worker) = self.idle.pop() else {
            return Ok(());
        };
        let job = Job {
            worker,
            due: item.id,
            due_ms: item.due_unix_ms,
            event_id: event.id,
            recipient: item.recipient,
            host: endpoint.clone(),
            attempt,
        };
        if let Err(e) = self.workers[worker].cast(WorkerMsg::Deliver(Box::new(job))) {
            tracing::error!(error = %e, "webhook worker is gone");
            return Ok(());
        }
        self.in_flight.insert(item.id);
        self.args.fresh.remove(&event.id);
        self.attempting.entry(event.id).or_insert((0, event)).0 += 1;
        *self.per_host.entry(endpoint).or_insert(0) += 1;
        self.args
            .stats
            .in_flight
            .store(self.in_flight.len() as u64, Ordering::Relaxed);
        metrics::gauge!(names::WEBHOOK_IN_FLIGHT).set(self.in_flight.len() as f64);
        Ok(())
    }

    /// Records an attempt's outcome and schedules what comes next.
    async fn finish(&mut self, finished: Finished) -> Result<(), StorageError> {
        let Finished { job, outcome } = finished;
        self.idle.push(job.worker);
        self.in_flight.remove(&job.due);
        if let Some(n) = self.per_host.get_mut(&job.host) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_host.remove(&job.host);
            }
        }
        let stats = &self.args.stats;
        stats
            .in_flight
            .store(self.in_flight.len() as u64, Ordering::Relaxed);
        stats.attempts.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(names::WEBHOOK_ATTEMPTS).increment(1);
        metrics::gauge!(names::WEBHOOK_IN_FLIGHT).set(self.in_flight.len() as f64);
        let mut batch = Batch::default();
        batch.consume(job.due);
        let cached = match self.attempting.get_mut(&job.event_id) {
            Some((n, event)) if *n > 1 => {
                *n -= 1;
                Some(event.clone())
            }
            Some(_) => self.attempting.remove(&job.event_id).map(|(_, e)| e),
            None => None,
        };
        let loaded = match cached {
            Some(event) => Some(event),
            None => self.load(&job.event_id)?,
        };
        let Some(mut event) = loaded else {
            return self.write(batch).await;
        };
        let now = self.now();
        let policy = self.args.config.policy;
        let Some(d) = event
            .deliveries
            .iter_mut()
            .find(|d| d.recipient == job.recipient)
        else {
            return self.write(batch).await;
        };
        let acknowledged = outcome == Outcome::Status(200);
        d.attempts += 1;
        match &outcome {
            Outcome::Status(code) => {
                d.last_status_code = Some(*code);
                d.last_error = (!acknowledged).then(|| format!("HTTP {code}"));
            }
            Outcome::Error(e) => {
                d.last_status_code = None;
                d.last_error = Some(e.chars().take(300).collect());
            }
        }
        let scheduled = d.status == DeliveryStatus::Pending
            && d.next_attempt_at.map(Timestamp::unix_ms) == Some(job.due_ms);
        if acknowledged {
            if d.status == DeliveryStatus::Pending && !scheduled {
                // A redelivery was queued meanwhile; it is no longer needed.
                if let Some(at) = d.next_attempt_at {
                    batch.consume(due_of(at, &job.event_id, &job.recipient));
                }
            }
            mark_delivered(d, now);
            stats.delivered.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(names::WEBHOOK_DELIVERIES, "result" => "delivered").increment(1);
            let delay_ms = now
                .unix_ms()
                .saturating_sub(event.created_at.unix_ms())
                .max(0);
            metrics::histogram!(names::WEBHOOK_DELIVERY_DELAY).record(delay_ms as f64 / 1_000.0);
        } else {
            stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(names::WEBHOOK_DELIVERIES, "result" => "failed_attempt").increment(1);
            if scheduled {
                d.round_attempts += 1;
                if policy.retries_left(d.round_attempts) {
                    let delay =
                        policy.delay_ms(d.round_attempts, seed(&job.event_id, &job.recipient));
                    d.next_attempt_at = Some(now.plus_ms(i64::try_from(delay).unwrap_or(i64::MAX)));
                } else {
                    d.status = DeliveryStatus::Failed;
                    d.next_attempt_at = None;
                    stats.exhausted.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(names::WEBHOOK_DELIVERIES, "result" => "exhausted")
                        .increment(1);
                }
            }
        }
        self.remember(&event);
        batch.save(event, &[job.recipient]);
        self.write(batch).await
    }

    /// Keeps the in-memory copies of an event current after a rewrite.
    fn remember(&mut self, event: &OutboxEvent) {
        if let Some((_, cached)) = self.attempting.get_mut(&event.id) {
            cached.clone_from(event);
        }
        self.args.fresh.update(event);
    }

    async fn redeliver(
        &mut self,
        id: EventId,
        recipient: Option<UserId>,
        only: Option<DeliveryStatus>,
    ) -> Result<OutboxEvent, Rejection> {
        let mut batch = Batch::default();
        let event = self.requeue(&mut batch, id, recipient, only)?;
        self.write(batch).await.map_err(db)?;
        Ok(event)
    }

    async fn replay(&mut self, request: ReplayRequest) -> Result<Replayed, Rejection> {
        let mut batch = Batch::default();
        let mut replayed = 0usize;
        let mut events = Vec::new();
        for id in request.events {
            match self.requeue(&mut batch, id, request.recipient, request.only) {
                Ok(event) => {
                    replayed += 1;
                    events.push(event);
                }
                // Requeued meanwhile: nothing in that state any more.
                Err(Rejection::NotFound) => {}
                Err(rejection) => return Err(rejection),
            }
        }
        if replayed == 0 && request.require_any {
            return Err(Rejection::NotFound);
        }
        batch.audit(&request.audit, &request.scope).map_err(db)?;
        let (writes, written) = batch.into_writes();
        let ticket = self.args.store.submit(writes).await.map_err(db)?;
        self.unapplied.record(ticket.seq(), written);
        Ok(Replayed {
            replayed,
            events,
            ticket,
        })
    }

    /// Queues `id`'s matching deliveries again into `batch`, with a fresh
    /// retry budget; `not_found` when none matches.
    fn requeue(
        &mut self,
        batch: &mut Batch,
        id: EventId,
        recipient: Option<UserId>,
        only: Option<DeliveryStatus>,
    ) -> Result<OutboxEvent, Rejection> {
        let mut event = match batch.event(&id) {
            Some(e) => e.clone(),
            None => self.load(&id).map_err(db)?.ok_or(Rejection::NotFound)?,
        };
        let now = self.now();
        let mut touched = Vec::new();
        for d in event.deliveries.iter_mut().filter(|d| {
            recipient.is_none_or(|r| d.recipient == r) && only.is_none_or(|s| d.status == s)
        }) {
            if let (DeliveryStatus::Pending, Some(at)) = (d.status, d.next_attempt_at) {
                batch.consume(due_of(at, &id, &d.recipient));
            }
            d.status = DeliveryStatus::Pending;
            d.round_attempts = 0;
            d.next_attempt_at = Some(now);
            touched.push(d.recipient);
        }
        if touched.is_empty() {
            return Err(Rejection::NotFound);
        }
        self.remember(&event);
        batch.save(event.clone(), &touched);
        Ok(event)
    }
}

fn mark_delivered(d: &mut Delivery, now: Timestamp) {
    d.status = DeliveryStatus::Delivered;
    d.next_attempt_at = None;
    d.delivered_at = Some(now);
    d.last_error = None;
}
