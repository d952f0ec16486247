//! What the dispatcher has written that reads of the store cannot see yet.
//!
//! The dispatcher does not wait for its writes (attempt records, consumed
//! due rows) to be applied before its next pass, so storage may lag behind
//! it. It keeps, typed, just what its passes consult: the newest version of
//! each event whose deliveries it rewrote, and the due rows it consumed.
//! Each entry carries the queue sequence of its write and is dropped once
//! the store's applied sequence passes it, so this holds at most the
//! dispatcher's in-flight writes (never a cache of storage).

use domain::{DeliveryStatus, EventId, OutboxEvent, Timestamp, UserId};
use std::collections::{HashMap, HashSet, VecDeque};
use storage::outbox;
use storage::{DueId, WriteSet};

/// The writes of one dispatcher step, and what they mean.
#[derive(Default)]
pub(super) struct Batch {
    writes: WriteSet,
    consumed: HashSet<DueId>,
    /// The newest version of each event this step rewrote.
    events: HashMap<EventId, OutboxEvent>,
}

impl Batch {
    /// A due row is done with (attempted, superseded or dropped). Its
    /// removal is written last, unless the step schedules it again.
    pub(super) fn consume(&mut self, due: DueId) {
        self.consumed.insert(due);
    }

    /// Records the state of the `recipients`' deliveries of `event` (and
    /// their due rows when pending), keeping `event` as the newest version.
    pub(super) fn save(&mut self, event: OutboxEvent, recipients: &[UserId]) {
        for d in event
            .deliveries
            .iter()
            .filter(|d| recipients.contains(&d.recipient))
        {
            outbox::delivery_saved(&mut self.writes, &event.id, d);
            if let (DeliveryStatus::Pending, Some(at)) = (d.status, d.next_attempt_at) {
                // Due again at the same instant: the row stays.
                self.consumed.remove(&due_of(at, &event.id, &d.recipient));
            }
        }
        self.events.insert(event.id, event);
    }

    /// An audit entry joins this step's write (a replay, SPEC §16).
    pub(super) fn audit(
        &mut self,
        entry: &domain::AuditEntry,
        scope: &[UserId],
    ) -> Result<(), storage::StorageError> {
        self.writes.audit_recorded(entry, scope)
    }

    /// The version of an event this step already rewrote.
    pub(super) fn event(&self, id: &EventId) -> Option<&OutboxEvent> {
        self.events.get(id)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.consumed.is_empty()
    }

    pub(super) fn into_writes(mut self) -> (WriteSet, Written) {
        for due in &self.consumed {
            outbox::due_consumed(&mut self.writes, *due);
        }
        (
            self.writes,
            Written {
                consumed: self.consumed,
                events: self.events,
            },
        )
    }
}

/// What a submitted batch changed, to remember until it is applied.
pub(super) struct Written {
    consumed: HashSet<DueId>,
    events: HashMap<EventId, OutboxEvent>,
}

enum Entry {
    Event(EventId),
    Due(DueId),
}

#[derive(Default)]
pub(super) struct Unapplied {
    events: HashMap<EventId, (u64, OutboxEvent)>,
    consumed: HashMap<DueId, u64>,
    /// Entries in the order they were written (sequences ascending).
    order: VecDeque<(u64, Entry)>,
}

impl Unapplied {
    /// Remembers what the write set queued under `seq` changed.
    pub(super) fn record(&mut self, seq: u64, written: Written) {
        for (id, event) in written.events {
            self.events.insert(id, (seq, event));
            self.order.push_back((seq, Entry::Event(id)));
        }
        for due in written.consumed {
            self.consumed.insert(due, seq);
            self.order.push_back((seq, Entry::Due(due)));
        }
    }

    /// Forgets every entry whose write the store has applied: storage
    /// answers for it from now on. A later write of the same thing keeps
    /// its own, newer entry.
    pub(super) fn prune(&mut self, applied_seq: u64) {
        while self
            .order
            .front()
            .is_some_and(|(seq, _)| *seq <= applied_seq)
        {
            let Some((seq, entry)) = self.order.pop_front() else {
                break;
            };
            match entry {
                Entry::Event(id) => {
                    if self.events.get(&id).is_some_and(|(s, _)| *s == seq) {
                        self.events.remove(&id);
                    }
                }
                Entry::Due(due) => {
                    if self.consumed.get(&due) == Some(&seq) {
                        self.consumed.remove(&due);
                    }
                }
            }
        }
    }

    /// The newest version of an event written and not yet applied.
    pub(super) fn event(&self, id: &EventId) -> Option<&OutboxEvent> {
        self.events.get(id).map(|(_, event)| event)
    }

    /// Whether a due row's removal is written and not yet applied (a read
    /// of the store may still return it).
    pub(super) fn is_consumed(&self, due: &DueId) -> bool {
        self.consumed.contains_key(due)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.events.len() + self.consumed.len()
    }
}

/// The due row of a delivery that is pending at `at`.
pub(super) fn due_of(at: Timestamp, event: &EventId, recipient: &UserId) -> DueId {
    DueId::new(at.unix_ms(), event, recipient)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Delivery, EventType};

    fn event(recipient: UserId, status: DeliveryStatus, at: Option<i64>) -> OutboxEvent {
        OutboxEvent {
            id: EventId::new(),
            event: EventType::PaymentCompleted,
            deliveries: vec![Delivery {
                status,
                next_attempt_at: at.map(Timestamp::from_unix_ms),
                ..Delivery::pending(recipient, Timestamp::from_unix_ms(0))
            }],
            payload: domain::EventPayload::of(&serde_json::json!({})),
            created_at: Timestamp::from_unix_ms(1),
        }
    }

    #[test]
    fn entries_live_until_their_write_is_applied() {
        let r = UserId::new();
        let mut unapplied = Unapplied::default();
        let first = event(r, DeliveryStatus::Pending, Some(10));
        let due = DueId::new(10, &first.id, &r);

        let mut batch = Batch::default();
        batch.consume(due);
        let mut done = first.clone();
        done.deliveries[0].status = DeliveryStatus::Delivered;
        done.deliveries[0].next_attempt_at = None;
        batch.save(done, &[r]);
        let (writes, written) = batch.into_writes();
        assert!(!writes.is_empty());
        unapplied.record(5, written);
        assert!(unapplied.is_consumed(&due));
        assert_eq!(
            unapplied.event(&first.id).map(|e| e.deliveries[0].status),
            Some(DeliveryStatus::Delivered)
        );

        // A newer write of the same event outlives the older one's pruning.
        let mut batch = Batch::default();
        let mut again = first.clone();
        again.deliveries[0].next_attempt_at = Some(Timestamp::from_unix_ms(20));
        batch.save(again, &[r]);
        unapplied.record(7, batch.into_writes().1);
        unapplied.prune(5);
        assert!(!unapplied.is_consumed(&due));
        assert_eq!(
            unapplied
                .event(&first.id)
                .and_then(|e| e.deliveries[0].next_attempt_at),
            Some(Timestamp::from_unix_ms(20))
        );
        unapplied.prune(7);
        assert_eq!(unapplied.len(), 0);
    }

    #[test]
    fn a_due_row_scheduled_again_is_not_consumed() {
        let r = UserId::new();
        let e = event(r, DeliveryStatus::Pending, Some(10));
        let due = DueId::new(10, &e.id, &r);
        let mut batch = Batch::default();
        batch.consume(due);
        batch.save(e, &[r]);
        let mut unapplied = Unapplied::default();
        unapplied.record(1, batch.into_writes().1);
        assert!(!unapplied.is_consumed(&due));
    }
}
