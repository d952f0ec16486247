//! Webhook retry timing with paused tokio time: the real dispatcher
//! (`WebhookHandle::start` with `Clock::tokio()`) over a real fjall store,
//! delivering through a scripted `Transport` that records the (virtual)
//! instant of every attempt and answers from a script.
//!
//! How the clock is driven, deterministically: fjall commits run on real
//! threads, and a paused runtime that goes idle auto-advances to its next
//! timer. So the test never lets the runtime idle: every wait is a
//! `yield_now` loop (a yield parks the driver with a zero timeout, which
//! advances the clock by zero), work that awaits the store is spawned and
//! spun on (`drive`), and virtual time moves only through
//! `tokio::time::advance`, straight to the next stored due time. With
//! `poll_ms = 1` an attempt then happens at exactly its due time, and that
//! due time is exactly the previous attempt plus `RetryPolicy::delay_ms`.

use crate::common;

use actors::webhook::{
    Attempt, Clock, DispatcherArgs, Outcome, RetryPolicy, Transport, WebhookConfig, WebhookHandle,
    WebhookStats,
};
use actors::{Core, CoreConfig};
use domain::{
    DeliveryStatus, EventId, EventType, Money, OutboxEvent, Role, Secret, Timestamp, User, UserId,
    UserStatus,
};
use serde_json::json;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use storage::{keys, Durability, Space, Store, WriteSet};
use tokio::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The scripted transport
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Script {
    /// 200 at once.
    Ok,
    /// This status, every time.
    Status(u16),
    /// A transport error (no answer) for the first `n` attempts of each
    /// event, then 200.
    ErrorFirst(u32),
    /// 200 after this many (virtual) milliseconds.
    SlowOk(u64),
}

#[derive(Clone, Debug)]
struct Call {
    host: String,
    event: String,
    attempt: String,
    start: Instant,
}

#[derive(Default)]
struct Log {
    calls: Vec<Call>,
    scripts: HashMap<String, Script>,
    per_event: HashMap<String, u32>,
    open: HashMap<String, usize>,
    max_open: HashMap<String, usize>,
}

#[derive(Clone, Default)]
struct Scripted(Arc<Mutex<Log>>);

fn header<'a>(attempt: &'a Attempt, name: &str) -> &'a str {
    attempt
        .headers
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, v)| v.as_str())
}

impl Transport for Scripted {
    async fn send(&self, attempt: Attempt) -> Outcome {
        let host = url::Url::parse(&attempt.url)
            .unwrap()
            .host_str()
            .unwrap()
            .to_owned();
        let event = header(&attempt, "x-webhook-id").to_owned();
        let (script, nth) = {
            let mut log = self.0.lock().unwrap();
            let script = log.scripts.get(&host).copied().unwrap_or(Script::Ok);
            let nth = {
                let n = log.per_event.entry(event.clone()).or_insert(0);
                *n += 1;
                *n
            };
            log.calls.push(Call {
                host: host.clone(),
                event,
                attempt: header(&attempt, "x-webhook-attempt").to_owned(),
                start: Instant::now(),
            });
            let open = {
                let o = log.open.entry(host.clone()).or_insert(0);
                *o += 1;
                *o
            };
            let most = log.max_open.entry(host.clone()).or_insert(0);
            *most = (*most).max(open);
            (script, nth)
        };
        let outcome = match script {
            Script::Ok => Outcome::Status(200),
            Script::Status(code) => Outcome::Status(code),
            Script::ErrorFirst(n) if nth <= n => Outcome::Error("connection refused".into()),
            Script::ErrorFirst(_) => Outcome::Status(200),
            Script::SlowOk(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Outcome::Status(200)
            }
        };
        *self.0.lock().unwrap().open.get_mut(&host).unwrap() -= 1;
        outcome
    }
}

impl Scripted {
    fn set(&self, host: &str, script: Script) {
        self.0
            .lock()
            .unwrap()
            .scripts
            .insert(host.to_owned(), script);
    }

    fn calls(&self) -> Vec<Call> {
        self.0.lock().unwrap().calls.clone()
    }

    fn calls_for(&self, event: &EventId) -> Vec<Call> {
        let id = event.to_string();
        self.calls().into_iter().filter(|c| c.event == id).collect()
    }

    fn max_open(&self, host: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .max_open
            .get(host)
            .copied()
            .unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------
// Driving paused time
// ---------------------------------------------------------------------------

/// Yields (never idling the runtime, so the paused clock cannot
/// auto-advance) until `done` holds or 10 s of real time pass; whether it
/// held.
async fn spin(mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::task::yield_now().await;
    }
    true
}

/// `spin`, panicking if `done` never holds.
async fn spin_until(what: &str, done: impl FnMut() -> bool) {
    assert!(
        spin(done).await,
        "{what}: not reached (virtual time is frozen, so it never will)"
    );
}

/// Runs `f` (which may wait on the store's real threads) to completion
/// without letting the runtime idle.
async fn drive<F>(f: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = tokio::spawn(f);
    spin_until("a spawned future", || handle.is_finished()).await;
    handle.await.unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    core: Core,
    hooks: WebhookHandle,
    stats: Arc<WebhookStats>,
    transport: Scripted,
    origin_ms: i64,
    origin: Instant,
}

impl Fixture {
    /// Virtual milliseconds since the clock's origin.
    fn now_offset(&self) -> i64 {
        i64::try_from((Instant::now() - self.origin).as_millis()).unwrap()
    }

    fn offset(&self, at: Timestamp) -> i64 {
        at.unix_ms() - self.origin_ms
    }

    fn offset_of(&self, at: Instant) -> i64 {
        i64::try_from((at - self.origin).as_millis()).unwrap()
    }

    /// Moves virtual time to `origin + offset_ms`.
    async fn advance_to(&self, offset_ms: i64) {
        let now = self.now_offset();
        assert!(offset_ms >= now, "cannot go back from {now} to {offset_ms}");
        tokio::time::advance(Duration::from_millis(
            u64::try_from(offset_ms - now).unwrap(),
        ))
        .await;
        assert_eq!(self.now_offset(), offset_ms);
    }

    fn event(&self, id: &EventId) -> OutboxEvent {
        self.store.event(id).unwrap().expect("event exists")
    }

    /// Writes `event` to the outbox, due at `origin + due_offset` for
    /// every recipient.
    async fn enqueue(&self, recipients: &[UserId], due_offset: i64) -> EventId {
        let id = EventId::new();
        let at = Timestamp::from_unix_ms(self.origin_ms + due_offset);
        let payload = json!({ "id": id, "event": "payment.completed", "timestamp": at });
        let event = OutboxEvent::new(
            id,
            EventType::PaymentCompleted,
            recipients,
            domain::EventPayload::of(&payload),
            at,
        );
        let mut writes = WriteSet::new();
        storage::outbox::enqueue(&mut writes, &event).unwrap();
        let store = self.store.clone();
        drive(async move { store.commit(writes).await })
            .await
            .unwrap();
        id
    }

    async fn shutdown(self) {
        let Fixture {
            store, core, hooks, ..
        } = self;
        drive(async move {
            hooks.stop().await;
            core.shutdown().await;
        })
        .await;
        store.close();
    }
}

/// A user with a webhook URL, written straight to storage (the directory
/// loads it at start).
async fn hook_user(store: &Store, url: &str) -> UserId {
    let id = UserId::new();
    let now = Timestamp::now();
    let user = User {
        id,
        name: format!("hook {url}"),
        email: None,
        role: Role::Merchant,
        status: UserStatus::Active,
        parent_id: None,
        merchant_id: Some(id),
        webhook_url: Some(url.to_owned()),
        webhook_secret: Secret::new("whsec_test".into()),
        previous_webhook_secret: None,
        webhook_secret_rotated_at: None,
        rate_limit_per_min: 6_000,
        payin_fee_bps: 0,
        payout_fee: Money::ZERO,
        key_hash: String::new(),
        created_at: now,
        updated_at: now,
        settlement_account: None,
        settlement_reserve: Money::ZERO,
        last_used_at: None,
    };
    let mut writes = WriteSet::new();
    writes.put(Space::Users, keys::user(&id), &user).unwrap();
    store.commit(writes).await.unwrap();
    id
}

/// A store with one user per URL, a core (for its directory; its own
/// dispatcher is stopped) and the dispatcher under test on the tokio clock.
async fn fixture(config: WebhookConfig, urls: &[&str]) -> (Fixture, Vec<UserId>) {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), Durability::Buffered);
    let mut users = Vec::new();
    for url in urls {
        users.push(hook_user(&store, url).await);
    }
    let quiet = CoreConfig {
        connector_poll_ms: 3_600_000,
        webhooks: WebhookConfig {
            poll_ms: 3_600_000,
            ..WebhookConfig::default()
        },
        ..CoreConfig::default()
    };
    let core = {
        let store = store.clone();
        drive(async move { Core::start(store, quiet).await.expect("core starts") }).await
    };
    // The core's own dispatcher (real transport, wall clock) must not
    // compete for the outbox.
    let theirs = core.webhooks().clone();
    drive(async move { theirs.stop().await }).await;

    let transport = Scripted::default();
    let stats = Arc::new(WebhookStats::default());
    let clock = Clock::tokio();
    let Clock::Tokio { origin_ms, origin } = clock else {
        unreachable!()
    };
    let args = DispatcherArgs {
        store: store.clone(),
        directory: core.directory().clone(),
        config,
        clock,
        stats: stats.clone(),
        fresh: Default::default(),
    };
    let hooks = {
        let transport = transport.clone();
        drive(async move { WebhookHandle::start(transport, args).await.unwrap() }).await
    };
    assert_eq!(
        Instant::now(),
        origin,
        "no virtual time passed while starting"
    );
    let fixture = Fixture {
        _dir: dir,
        store,
        core,
        hooks,
        stats,
        transport,
        origin_ms,
        origin,
    };
    (fixture, users)
}

/// Jitter seed of a delivery, computed as `dispatcher.rs` does: the bytes of
/// the event id then the recipient id, folded by XOR into 8 bytes.
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

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// Two deliveries, each with one recipient: one always answers 500 (it is
/// marked failed after `max_attempts`), one has no answer twice then 200.
/// Virtual time jumps from stored due time to stored due time; every attempt
/// happens exactly at its due time, and every due time is exactly the
/// previous attempt plus `RetryPolicy::delay_ms(failures, seed)` (capped,
/// jittered). No attempt happens after the last one; a manual redelivery
/// gets a fresh budget and is delivered.
#[tokio::test(start_paused = true)]
async fn retries_happen_exactly_when_the_policy_says() {
    let policy = RetryPolicy {
        base_ms: 1_000,
        max_attempts: 6,
        cap_ms: 5_000,
    };
    let config = WebhookConfig {
        policy,
        workers: 4,
        per_host_max: 4,
        poll_ms: 1,
        ..WebhookConfig::default()
    };
    let (fx, users) = fixture(
        config,
        &["http://fails.example/hook", "http://flaky.example/hook"],
    )
    .await;
    fx.transport.set("fails.example", Script::Status(500));
    fx.transport.set("flaky.example", Script::ErrorFirst(2));
    let failing = fx.enqueue(&users[..1], 10).await;
    let flaky = fx.enqueue(&users[1..], 10).await;
    let tracked = [(failing, users[0]), (flaky, users[1])];

    // Expected (virtual) offsets of every attempt, built as we go.
    let mut expected: HashMap<EventId, Vec<i64>> = HashMap::new();
    for round in 0.. {
        assert!(round < 20, "too many rounds");
        // The store has caught up with every attempt made so far.
        spin_until("attempts recorded", || {
            tracked.iter().all(|(id, _)| {
                fx.event(id).deliveries[0].attempts as usize == fx.transport.calls_for(id).len()
            })
        })
        .await;
        let mut next: Option<i64> = None;
        for (id, recipient) in &tracked {
            let calls = fx.transport.calls_for(id);
            let starts: Vec<i64> = calls.iter().map(|c| fx.offset_of(c.start)).collect();
            assert_eq!(
                &starts,
                expected.get(id).unwrap_or(&Vec::new()),
                "attempt times of {id}"
            );
            let d = fx.event(id).deliveries[0].clone();
            if d.status != DeliveryStatus::Pending {
                continue;
            }
            let due = fx.offset(d.next_attempt_at.expect("pending has a due time"));
            match starts.last() {
                None => assert_eq!(due, 10),
                Some(last) => {
                    let delay = policy.delay_ms(d.round_attempts, seed(id, recipient));
                    assert_eq!(
                        due - last,
                        i64::try_from(delay).unwrap(),
                        "{id}: delay after {} failures",
                        d.round_attempts
                    );
                    // Jitter stays within ±20 % of the capped exponential.
                    let nominal = (1_000u64 << (d.round_attempts - 1)).min(5_000);
                    assert!(delay >= nominal * 8 / 10 && delay <= nominal * 12 / 10);
                }
            }
            assert!(due > fx.now_offset(), "{id} is overdue");
            next = Some(next.map_or(due, |n: i64| n.min(due)));
        }
        let Some(due) = next else { break };
        for (id, _) in &tracked {
            let d = fx.event(id).deliveries[0].clone();
            if d.status == DeliveryStatus::Pending
                && d.next_attempt_at.map(|t| fx.offset(t)) == Some(due)
            {
                expected.entry(*id).or_default().push(due);
            }
        }
        let total: usize = expected.values().map(Vec::len).sum();
        fx.advance_to(due).await;
        spin_until("the due attempts", || fx.transport.calls().len() == total).await;
    }

    // 500 every time: failed after exactly max_attempts, 5 delays apart.
    let f = fx.event(&failing).deliveries[0].clone();
    assert_eq!(f.status, DeliveryStatus::Failed);
    assert_eq!((f.attempts, f.round_attempts), (6, 6));
    assert_eq!(f.next_attempt_at, None);
    assert_eq!(f.last_status_code, Some(500));
    assert_eq!(f.last_error.as_deref(), Some("HTTP 500"));
    let calls = fx.transport.calls_for(&failing);
    assert_eq!(calls.len(), 6);
    let attempts: Vec<&str> = calls.iter().map(|c| c.attempt.as_str()).collect();
    assert_eq!(attempts, ["1", "2", "3", "4", "5", "6"]);
    let schedule = policy.schedule(seed(&failing, &users[0]));
    let starts: Vec<i64> = calls.iter().map(|c| fx.offset_of(c.start)).collect();
    let mut at = 10i64;
    let mut predicted = vec![at];
    for delay in &schedule {
        at += i64::try_from(*delay).unwrap();
        predicted.push(at);
    }
    assert_eq!(starts, predicted, "the whole schedule, to the millisecond");
    // Two errors then 200.
    let g = fx.event(&flaky).deliveries[0].clone();
    assert_eq!(g.status, DeliveryStatus::Delivered);
    assert_eq!(g.attempts, 3);
    assert_eq!(g.last_status_code, Some(200));
    assert_eq!(g.last_error, None);
    let third = fx.transport.calls_for(&flaky)[2].start;
    assert_eq!(
        fx.offset(g.delivered_at.unwrap()),
        fx.offset_of(third),
        "delivered when answered"
    );
    let s = &fx.stats;
    assert_eq!(s.attempts.load(Ordering::Relaxed), 9);
    assert_eq!(s.delivered.load(Ordering::Relaxed), 1);
    assert_eq!(s.failed_attempts.load(Ordering::Relaxed), 8);
    assert_eq!(s.exhausted.load(Ordering::Relaxed), 1);

    // Nothing more happens, however long we wait.
    let later = fx.now_offset() + 20_000;
    fx.advance_to(later).await;
    for _ in 0..1_000 {
        tokio::task::yield_now().await;
    }
    assert_eq!(fx.transport.calls().len(), 9);
    assert_eq!(fx.store.due_rows() as usize, 0, "no due rows left");

    // Manual redelivery: a fresh budget, delivered on the next poll.
    fx.transport.set("fails.example", Script::Ok);
    let hooks = fx.hooks.clone();
    let requeued = drive(async move { hooks.redeliver(failing, None, None).await })
        .await
        .unwrap();
    let d = &requeued.deliveries[0];
    assert_eq!(d.status, DeliveryStatus::Pending);
    assert_eq!(d.round_attempts, 0);
    assert_eq!(d.next_attempt_at.map(|t| fx.offset(t)), Some(later));
    // Stored (and possibly already attempted, if the store applied it
    // before the dispatcher's next read).
    spin_until("redelivery stored", || {
        fx.event(&failing).deliveries[0].status != DeliveryStatus::Failed
    })
    .await;
    if fx.transport.calls().len() == 9 {
        fx.advance_to(later + 1).await;
    }
    spin_until("the redelivery attempt", || {
        fx.transport.calls().len() == 10
    })
    .await;
    let at = fx.offset_of(fx.transport.calls()[9].start);
    assert!((later..=later + 1).contains(&at), "redelivered at {at}");
    spin_until("redelivery recorded", || {
        fx.event(&failing).deliveries[0].status == DeliveryStatus::Delivered
    })
    .await;
    let d = fx.event(&failing).deliveries[0].clone();
    assert_eq!((d.attempts, d.round_attempts), (7, 0));
    assert_eq!(d.last_status_code, Some(200));
    fx.shutdown().await;
}

/// With `per_host_max = 2`, an endpoint whose two attempts hang gets no
/// third: its other deliveries wait in the dispatcher's queue, untouched
/// (same due time, no attempt spent, no rewrite), while another endpoint's
/// delivery goes at once; they start the moment a slot frees.
#[tokio::test(start_paused = true)]
async fn per_endpoint_cap_queues_without_spending_attempts() {
    let config = WebhookConfig {
        policy: RetryPolicy {
            base_ms: 1_000,
            max_attempts: 3,
            cap_ms: 60_000,
        },
        workers: 8,
        per_host_max: 2,
        poll_ms: 1,
        ..WebhookConfig::default()
    };
    let (fx, users) = fixture(
        config,
        &["http://slow.example/hook", "http://fast.example/hook"],
    )
    .await;
    fx.transport.set("slow.example", Script::SlowOk(4_500));
    let mut slow = Vec::new();
    for _ in 0..4 {
        slow.push(fx.enqueue(&users[..1], 10).await);
    }
    let fast = fx.enqueue(&users[1..], 10).await;

    fx.advance_to(10).await;
    spin_until("first round", || {
        fx.transport.calls().len() == 3
            && fx.event(&fast).deliveries[0].status == DeliveryStatus::Delivered
    })
    .await;
    let calls = fx.transport.calls();
    let started: Vec<String> = calls
        .iter()
        .filter(|c| c.host == "slow.example")
        .map(|c| c.event.clone())
        .collect();
    // Due rows are taken oldest first, then by event id: the first two.
    assert_eq!(started, [slow[0].to_string(), slow[1].to_string()]);
    assert!(calls.iter().all(|c| fx.offset_of(c.start) == 10));

    // While the endpoint is at its cap, the others wait as they are.
    for now in [1_010, 2_010, 3_010, 4_010] {
        fx.advance_to(now).await;
        assert_eq!(fx.transport.calls().len(), 3, "no attempt at {now}");
        for id in &slow[2..] {
            let d = fx.event(id).deliveries[0].clone();
            assert_eq!(d.status, DeliveryStatus::Pending);
            assert_eq!((d.attempts, d.round_attempts), (0, 0), "waiting is free");
            assert_eq!(d.next_attempt_at.map(|t| fx.offset(t)), Some(10));
        }
    }
    // The hanging attempts finish at 4,510; the waiting two start at once.
    fx.advance_to(4_510).await;
    spin_until("the waiting two start", || fx.transport.calls().len() == 5).await;
    let late: Vec<(String, i64)> = fx.transport.calls()[3..]
        .iter()
        .map(|c| (c.event.clone(), fx.offset_of(c.start)))
        .collect();
    assert_eq!(
        late,
        [(slow[2].to_string(), 4_510), (slow[3].to_string(), 4_510)]
    );
    fx.advance_to(9_010).await;
    spin_until("all delivered", || {
        slow.iter()
            .all(|id| fx.event(id).deliveries[0].status == DeliveryStatus::Delivered)
    })
    .await;
    for id in &slow {
        assert_eq!(fx.event(id).deliveries[0].attempts, 1);
    }
    assert_eq!(fx.transport.max_open("slow.example"), 2);
    assert_eq!(fx.stats.attempts.load(Ordering::Relaxed), 5);
    assert_eq!(fx.stats.delivered.load(Ordering::Relaxed), 5);
    fx.shutdown().await;
}

/// One event for two recipients on an endpoint with room for one attempt:
/// the deliveries go one after the other, and recording the first does not
/// overwrite the second's state with a stale copy of the event.
#[tokio::test(start_paused = true)]
async fn two_deliveries_of_one_event_share_a_capped_endpoint() {
    let config = WebhookConfig {
        policy: RetryPolicy {
            base_ms: 1_000,
            max_attempts: 3,
            cap_ms: 60_000,
        },
        workers: 8,
        per_host_max: 1,
        poll_ms: 1,
        ..WebhookConfig::default()
    };
    let (fx, users) = fixture(
        config,
        &[
            "http://shared.example/a",
            "http://shared.example/b",
            "http://shared.example/c",
        ],
    )
    .await;
    fx.transport.set("shared.example", Script::SlowOk(2_500));
    let blocker = fx.enqueue(&users[..1], 1).await;
    let both = fx.enqueue(&users[1..], 1).await;
    fx.advance_to(1).await;
    spin_until("the blocker goes", || fx.transport.calls().len() == 1).await;
    assert_eq!(fx.transport.calls()[0].event, blocker.to_string());
    fx.advance_to(2_501).await;
    spin_until("the first of both goes", || fx.transport.calls().len() == 2).await;
    fx.advance_to(5_001).await;
    spin_until("the second of both goes", || {
        fx.transport.calls().len() == 3
    })
    .await;
    fx.advance_to(7_501).await;
    spin_until("both delivered", || {
        fx.event(&both)
            .deliveries
            .iter()
            .all(|d| d.status == DeliveryStatus::Delivered && d.attempts == 1)
    })
    .await;
    let starts: Vec<i64> = fx
        .transport
        .calls()
        .iter()
        .map(|c| fx.offset_of(c.start))
        .collect();
    assert_eq!(starts, [1, 2_501, 5_001]);
    assert_eq!(fx.transport.max_open("shared.example"), 1);
    fx.shutdown().await;
}
