//! Events wallets hand to the webhook dispatcher as they queue them, so that
//! the dispatcher finds an event in memory, not in storage, when its due
//! rows become visible.
//!
//! A shared map rather than a message: a message sits in the dispatcher's
//! mailbox behind whatever it is busy with, and under load the event's due
//! row became visible (durable) before the message was read, so the event
//! was read back from storage anyway. A wallet puts the event here right
//! after queueing its write, before that write can be durable; the
//! dispatcher starts nothing before the due row is visible, so nothing is
//! sent early. An event that is not here is read from storage.
//!
//! Bounded, and when full it keeps what it holds and refuses the newest:
//! deliveries start oldest first, so under a backlog longer than the map
//! the events it holds are the next to go, and each start makes room for
//! one more. (Dropping the oldest instead would evict every event before
//! its turn once the backlog outgrew the map: no hits at all.) Entries
//! older than `FRESH_TTL` give way, so events that were never attempted
//! through here (superseded, replayed) cannot keep the map full.

use domain::{EventId, OutboxEvent};
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Most events held before their first attempt.
pub const FRESH_MAX: usize = 20_000;
/// How long an event is held at most when the map is full.
pub const FRESH_TTL: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct FreshEvents {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    events: HashMap<EventId, OutboxEvent>,
    /// Insertion order and time, for expiry; may hold ids already taken out.
    order: VecDeque<(EventId, Instant)>,
}

impl FreshEvents {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing under the lock can panic half-way through a change.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds an event a wallet just queued, if there is room (see above).
    pub fn put(&self, event: OutboxEvent) {
        self.put_at(event, Instant::now());
    }

    fn put_at(&self, event: OutboxEvent, now: Instant) {
        let mut inner = self.lock();
        let Inner { events, order } = &mut *inner;
        if events.len() >= FRESH_MAX {
            while let Some((id, at)) = order.front() {
                if now.saturating_duration_since(*at) < FRESH_TTL {
                    break;
                }
                events.remove(id);
                order.pop_front();
            }
            if events.len() >= FRESH_MAX {
                return;
            }
        }
        // Ids taken out meanwhile linger in the order; compact it when it
        // has grown well past the map.
        if order.len() > 2 * FRESH_MAX {
            order.retain(|(id, _)| events.contains_key(id));
        }
        order.push_back((event.id, now));
        events.insert(event.id, event);
    }

    /// A copy of the event, if it is held.
    pub fn get(&self, id: &EventId) -> Option<OutboxEvent> {
        self.lock().events.get(id).cloned()
    }

    /// Keeps a held copy current after the dispatcher rewrote the event.
    pub fn update(&self, event: &OutboxEvent) {
        if let Some(held) = self.lock().events.get_mut(&event.id) {
            held.clone_from(event);
        }
    }

    /// Lets go of an event (its first attempt started).
    pub fn remove(&self, id: &EventId) {
        self.lock().events.remove(id);
    }

    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{EventPayload, EventType, Timestamp, UserId};

    fn event() -> OutboxEvent {
        let payload = EventPayload::of(&serde_json::json!({ "n": 1 }));
        let at = Timestamp::from_unix_ms(1);
        OutboxEvent::new(
            EventId::new(),
            EventType::PaymentCompleted,
            &[UserId::new()],
            payload,
            at,
        )
    }

    #[test]
    fn holds_events_until_taken_and_keeps_them_current() {
        let fresh = FreshEvents::default();
        let e = event();
        fresh.put(e.clone());
        assert_eq!(fresh.get(&e.id), Some(e.clone()));
        let mut changed = e.clone();
        changed.deliveries[0].attempts = 3;
        fresh.update(&changed);
        assert_eq!(fresh.get(&e.id).unwrap().deliveries[0].attempts, 3);
        fresh.remove(&e.id);
        assert_eq!(fresh.get(&e.id), None);
        // An update of an event no longer held does not bring it back.
        fresh.update(&changed);
        assert!(fresh.is_empty());
    }

    #[test]
    fn when_full_it_keeps_the_oldest_until_they_expire() {
        let fresh = FreshEvents::default();
        let t0 = Instant::now();
        let first = event();
        fresh.put_at(first.clone(), t0);
        for _ in 1..FRESH_MAX {
            fresh.put_at(event(), t0);
        }
        assert_eq!(fresh.len(), FRESH_MAX);
        // Full: the newest is refused, the oldest (next to start) kept.
        let refused = event();
        fresh.put_at(refused.clone(), t0 + Duration::from_secs(1));
        assert_eq!(fresh.get(&refused.id), None);
        assert!(fresh.get(&first.id).is_some());
        // A start makes room for one more.
        fresh.remove(&first.id);
        let next = event();
        fresh.put_at(next.clone(), t0 + Duration::from_secs(2));
        assert!(fresh.get(&next.id).is_some());
        assert_eq!(fresh.len(), FRESH_MAX);
        // Held past the TTL, the old entries give way to a new one.
        let late = event();
        fresh.put_at(late.clone(), t0 + FRESH_TTL);
        assert!(fresh.get(&late.id).is_some());
        assert_eq!(fresh.len(), 2, "only `next` and `late` are younger");
    }

    #[test]
    fn the_order_stays_bounded_as_events_come_and_go() {
        let fresh = FreshEvents::default();
        for _ in 0..3 * FRESH_MAX {
            let e = event();
            fresh.put(e.clone());
            fresh.remove(&e.id);
        }
        assert!(fresh.is_empty());
        assert!(fresh.lock().order.len() <= 2 * FRESH_MAX + 1);
    }
}
