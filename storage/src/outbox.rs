//! The webhook outbox. An event row is written in the same batch as the
//! change that caused it, together with one `WebhookDue` row per pending
//! delivery (keyed by due time, so the dispatcher reads only what is due)
//! and one index row per recipient (for its event log). After creation
//! only the webhook dispatcher rewrites event rows.

use crate::keys::{self, IndexTag};
use crate::{Space, StorageError, Store, WriteSet};
use domain::{DeliveryStatus, EventId, OutboxEvent, UserId};

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

/// Adds a new event to `writes`: its row, its recipients' index rows and
/// a due row for each pending delivery.
pub fn enqueue(writes: &mut WriteSet, event: &OutboxEvent) -> Result<(), StorageError> {
    for delivery in &event.deliveries {
        let index = keys::index(
            IndexTag::EventsByRecipient,
            &delivery.recipient,
            event.id.as_bytes(),
        );
        writes.put_raw(Space::Index, index, Vec::new());
    }
    put(writes, event)
}

/// Rewrites an existing event and the due rows of its pending deliveries.
/// The caller removes the due rows it consumed.
pub fn put(writes: &mut WriteSet, event: &OutboxEvent) -> Result<(), StorageError> {
    for delivery in &event.deliveries {
        if let (DeliveryStatus::Pending, Some(at)) = (delivery.status, delivery.next_attempt_at) {
            writes.put_raw(
                Space::WebhookDue,
                due_key(at.unix_ms(), &event.id, &delivery.recipient),
                Vec::new(),
            );
        }
    }
    writes.put(Space::Outbox, event.id.as_bytes().to_vec(), event)
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
    pub fn event(&self, id: &EventId) -> Result<Option<OutboxEvent>, StorageError> {
        self.get(Space::Outbox, id.as_bytes())
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
