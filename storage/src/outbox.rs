//! The webhook outbox. An event row is written in the same batch as the
//! change that caused it, together with one delivery record per recipient,
//! one `WebhookDue` row per pending delivery (keyed by due time, so the
//! dispatcher reads only what is due) and one index row per recipient (for
//! its event log). The event row never changes; after creation only the
//! webhook dispatcher rewrites delivery records (one small record per
//! attempt).

use crate::codec::{self, StoredEvent};
use crate::keys::{self, IndexTag};
use crate::{Overlay, Space, StorageError, Store, WriteSet};
use domain::{Delivery, DeliveryStatus, EventId, OutboxEvent, UserId};

/// A delivery whose attempt is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueDelivery {
    /// The `WebhookDue` key, to delete once handled.
    pub key: Vec<u8>,
    pub due_unix_ms: i64,
    pub event_id: EventId,
    pub recipient: UserId,
}

/// The due time a `WebhookDue` key starts with.
pub fn due_of_key(key: &[u8]) -> Result<i64, StorageError> {
    let ms = key
        .first_chunk::<8>()
        .ok_or_else(|| StorageError::Codec("short due key".into()))?;
    Ok(i64::try_from(u64::from_be_bytes(*ms)).unwrap_or(i64::MAX))
}

/// The smallest `WebhookDue` key at or after `due_unix_ms`.
pub fn due_floor(due_unix_ms: i64) -> Vec<u8> {
    u64::try_from(due_unix_ms)
        .unwrap_or(0)
        .to_be_bytes()
        .to_vec()
}

pub fn due_key(due_unix_ms: i64, event: &EventId, recipient: &UserId) -> Vec<u8> {
    let due = u64::try_from(due_unix_ms).unwrap_or(0);
    let mut key = Vec::with_capacity(40);
    key.extend_from_slice(&due.to_be_bytes());
    key.extend_from_slice(event.as_bytes());
    key.extend_from_slice(recipient.as_bytes());
    key
}

/// A delivery record's key: its event, then its recipient.
fn delivery_key(event: &EventId, recipient: &UserId) -> Vec<u8> {
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(event.as_bytes());
    key.extend_from_slice(recipient.as_bytes());
    key
}

/// Adds a new event to `writes`: its row, its deliveries, its recipients'
/// index rows and a due row for each pending delivery.
pub fn enqueue(writes: &mut WriteSet, event: &OutboxEvent) -> Result<(), StorageError> {
    let stored = StoredEvent {
        id: event.id,
        event: event.event,
        recipients: event.deliveries.iter().map(|d| d.recipient).collect(),
        payload: serde_json::to_string(&event.payload)?,
        created_at: event.created_at,
    };
    writes.put_raw(
        Space::Outbox,
        event.id.as_bytes().to_vec(),
        codec::to_bytes(&stored),
    );
    for delivery in &event.deliveries {
        let index = keys::index(
            IndexTag::EventsByRecipient,
            &delivery.recipient,
            event.id.as_bytes(),
        );
        writes.put_raw(Space::Index, index, Vec::new());
        delivery_saved(writes, &event.id, delivery);
    }
    Ok(())
}

/// Records a delivery's new state, and its due row when it is pending.
/// The caller removes the due rows it consumed.
pub fn delivery_saved(writes: &mut WriteSet, event: &EventId, delivery: &Delivery) {
    if let (DeliveryStatus::Pending, Some(at)) = (delivery.status, delivery.next_attempt_at) {
        writes.put_raw(
            Space::WebhookDue,
            due_key(at.unix_ms(), event, &delivery.recipient),
            Vec::new(),
        );
    }
    writes.put_raw(
        Space::Deliveries,
        delivery_key(event, &delivery.recipient),
        codec::to_bytes(delivery),
    );
}

/// A delivery's due row is done with (attempted, superseded or dropped).
pub fn due_consumed(writes: &mut WriteSet, key: Vec<u8>) {
    writes.remove(Space::WebhookDue, key);
}

/// Reads a `WebhookDue` key back.
fn parse_due(key: &[u8]) -> Result<DueDelivery, StorageError> {
    if key.len() != 40 {
        return Err(StorageError::Codec(
            "webhook due key of wrong length".into(),
        ));
    }
    let mut ms = [0u8; 8];
    ms.copy_from_slice(&key[..8]);
    let (Some(event_id), Some(recipient)) = (
        EventId::from_slice(&key[8..24]),
        UserId::from_slice(&key[24..40]),
    ) else {
        return Err(StorageError::Codec(
            "webhook due key does not hold ids".into(),
        ));
    };
    Ok(DueDelivery {
        key: key.to_vec(),
        due_unix_ms: i64::try_from(u64::from_be_bytes(ms)).unwrap_or(i64::MAX),
        event_id,
        recipient,
    })
}

impl Store {
    /// An event with the current state of each of its deliveries, in the
    /// order of its recipients.
    pub fn event(&self, id: &EventId) -> Result<Option<OutboxEvent>, StorageError> {
        self.event_through(id, None)
    }

    /// `event`, as a writer of delivery records sees it: its own writes
    /// not yet applied (in `overlay`) first.
    pub fn event_seen_by(
        &self,
        id: &EventId,
        overlay: &Overlay,
    ) -> Result<Option<OutboxEvent>, StorageError> {
        self.event_through(id, Some(overlay))
    }

    fn event_through(
        &self,
        id: &EventId,
        overlay: Option<&Overlay>,
    ) -> Result<Option<OutboxEvent>, StorageError> {
        let Some(bytes) = self.space(Space::Outbox).get(id.as_bytes())? else {
            return Ok(None);
        };
        let stored: StoredEvent = codec::from_bytes(&bytes)?;
        let mut deliveries = Vec::with_capacity(stored.recipients.len());
        for recipient in &stored.recipients {
            let key = delivery_key(id, recipient);
            let bytes = match overlay {
                Some(overlay) => overlay.get(self, Space::Deliveries, &key)?,
                None => self.get_raw(Space::Deliveries, &key)?,
            }
            .ok_or_else(|| StorageError::Codec("an event lacks a delivery".into()))?;
            deliveries.push(codec::from_bytes(&bytes)?);
        }
        Ok(Some(OutboxEvent {
            id: stored.id,
            event: stored.event,
            deliveries,
            payload: serde_json::from_str(&stored.payload)?,
            created_at: stored.created_at,
        }))
    }

    /// Deliveries due at or before `now_ms`, oldest first, at most `limit`.
    pub fn due_deliveries(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<DueDelivery>, StorageError> {
        self.due_deliveries_after(None, now_ms, limit)
    }

    /// Like `due_deliveries`, starting after the due row `after`.
    pub fn due_deliveries_after(
        &self,
        after: Option<&[u8]>,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<DueDelivery>, StorageError> {
        use std::ops::Bound;
        let end = (u64::try_from(now_ms).unwrap_or(0).saturating_add(1))
            .to_be_bytes()
            .to_vec();
        let start = match after {
            Some(key) => Bound::Excluded(key.to_vec()),
            None => Bound::Unbounded,
        };
        let range = (start, Bound::Excluded(end));
        let mut due = Vec::new();
        for guard in self.space(Space::WebhookDue).range(range).take(limit) {
            let key = guard.key().map_err(StorageError::from)?;
            due.push(parse_due(&key)?);
        }
        Ok(due)
    }
}
