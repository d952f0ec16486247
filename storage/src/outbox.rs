//! The webhook outbox. An event row is written in the same batch as the
//! change that caused it, together with one delivery record per recipient,
//! one `WebhookDue` row per pending delivery (keyed by due time, so the
//! dispatcher reads only what is due) and one index row per recipient (for
//! its event log). The event row never changes; after creation only the
//! webhook dispatcher rewrites delivery records (one small record per
//! attempt).

use crate::codec::{self, StoredEvent};
use crate::keys::{self, IndexTag};
use crate::{Space, StorageError, Store, WriteSet};
use domain::{Delivery, DeliveryStatus, EventId, OutboxEvent, UserId};

/// A delivery's due row: when its next attempt is due, for which event
/// and recipient. Opaque outside this crate (the row's key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DueId([u8; DUE_KEY_LEN]);

const DUE_KEY_LEN: usize = 40;

impl DueId {
    pub fn new(due_unix_ms: i64, event: &EventId, recipient: &UserId) -> DueId {
        let mut key = [0u8; DUE_KEY_LEN];
        key[..8].copy_from_slice(&due_floor(due_unix_ms));
        key[8..24].copy_from_slice(event.as_bytes());
        key[24..].copy_from_slice(recipient.as_bytes());
        DueId(key)
    }

    pub(crate) fn from_key(key: &[u8]) -> Result<DueId, StorageError> {
        let key: [u8; DUE_KEY_LEN] = key
            .try_into()
            .map_err(|_| StorageError::Codec("webhook due key of wrong length".into()))?;
        Ok(DueId(key))
    }

    pub fn due_unix_ms(&self) -> i64 {
        let mut ms = [0u8; 8];
        ms.copy_from_slice(&self.0[..8]);
        i64::try_from(u64::from_be_bytes(ms)).unwrap_or(i64::MAX)
    }
}

/// A delivery whose attempt is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueDelivery {
    /// Its due row, to remove once handled.
    pub id: DueId,
    pub due_unix_ms: i64,
    pub event_id: EventId,
    pub recipient: UserId,
}

/// Where a forward reader of due rows stands: before every row due at or
/// after a time, or just after one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DueCursor {
    From(i64),
    After(DueId),
}

impl DueCursor {
    /// The due time the cursor stands at.
    pub fn due_unix_ms(&self) -> i64 {
        match self {
            DueCursor::From(ms) => *ms,
            DueCursor::After(id) => id.due_unix_ms(),
        }
    }
}

/// The 8-byte prefix of due keys at `due_unix_ms`: it sorts before each of
/// them.
fn due_floor(due_unix_ms: i64) -> [u8; 8] {
    u64::try_from(due_unix_ms).unwrap_or(0).to_be_bytes()
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
        payload: event.payload.as_str().to_owned(),
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
            DueId::new(at.unix_ms(), event, &delivery.recipient)
                .0
                .to_vec(),
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
pub fn due_consumed(writes: &mut WriteSet, due: DueId) {
    writes.remove(Space::WebhookDue, due.0.to_vec());
}

/// Reads a `WebhookDue` key back.
fn parse_due(key: &[u8]) -> Result<DueDelivery, StorageError> {
    let id = DueId::from_key(key)?;
    let (Some(event_id), Some(recipient)) = (
        EventId::from_slice(&id.0[8..24]),
        UserId::from_slice(&id.0[24..]),
    ) else {
        return Err(StorageError::Codec(
            "webhook due key does not hold ids".into(),
        ));
    };
    Ok(DueDelivery {
        due_unix_ms: id.due_unix_ms(),
        id,
        event_id,
        recipient,
    })
}

impl Store {
    /// An event with the current state of each of its deliveries, in the
    /// order of its recipients.
    pub fn event(&self, id: &EventId) -> Result<Option<OutboxEvent>, StorageError> {
        let Some(bytes) = self.space(Space::Outbox).get(id.as_bytes())? else {
            return Ok(None);
        };
        let stored: StoredEvent = codec::from_bytes(&bytes)?;
        let mut deliveries = Vec::with_capacity(stored.recipients.len());
        for recipient in &stored.recipients {
            let bytes = self
                .get_raw(Space::Deliveries, &delivery_key(id, recipient))?
                .ok_or_else(|| StorageError::Codec("an event lacks a delivery".into()))?;
            deliveries.push(codec::from_bytes(&bytes)?);
        }
        Ok(Some(OutboxEvent {
            id: stored.id,
            event: stored.event,
            deliveries,
            payload: domain::EventPayload::from_stored(stored.payload),
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

    /// Like `due_deliveries`, starting at `cursor`.
    pub fn due_deliveries_after(
        &self,
        cursor: Option<&DueCursor>,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<DueDelivery>, StorageError> {
        use std::ops::Bound;
        let end = (u64::try_from(now_ms).unwrap_or(0).saturating_add(1))
            .to_be_bytes()
            .to_vec();
        let start = match cursor {
            // Excluded: the 8-byte floor sorts before every row due then.
            Some(DueCursor::From(ms)) => Bound::Excluded(due_floor(*ms).to_vec()),
            Some(DueCursor::After(id)) => Bound::Excluded(id.0.to_vec()),
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
