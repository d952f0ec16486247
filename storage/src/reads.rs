//! Reads. They go straight to fjall (never through the committer) and see
//! everything applied so far.

use crate::keys::{self, IndexTag, UniqueKind};
use crate::{codec, Space, StorageError, Store};
use domain::{
    Currency, Payment, PaymentId, Payout, PayoutId, Refund, RefundId, Timestamp, Transfer,
    TransferId, User, UserId, Wallet,
};
use serde::de::DeserializeOwned;
use std::ops::Bound;

/// A stored `Idempotency-Key`: which request it was first used with, and
/// the response that request got. Stored in the binary codec, the response
/// as its record's binary form: a plain pay-in's record is 307 bytes where
/// its JSON was 756, and every request with a key writes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Hex SHA-256 (or any stable digest) of the first request's body.
    pub fingerprint: String,
    /// The first response's record, as it was then.
    pub response: StoredResponse,
    pub created_at: Timestamp,
    /// A short digest of each top-level body field of the first request
    /// (name, 16 hex digits; at most `FIELD_DIGESTS_MAX`, sorted by name),
    /// so that a conflicting reuse can name the fields that differ.
    pub fields: Vec<(String, String)>,
}

/// A record an `Idempotency-Key` can replay, in its binary form, tagged
/// with its kind. (`Default`: none, for tests that never replay.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredResponse(pub(crate) Vec<u8>);

/// The records a replay answers with.
pub trait Replayable: Sized {
    #[doc(hidden)]
    fn to_response(&self) -> StoredResponse;
    #[doc(hidden)]
    fn from_response(response: &StoredResponse) -> Result<Self, StorageError>;
}

impl IdempotencyRecord {
    pub fn new<T: Replayable>(
        fingerprint: String,
        response: &T,
        created_at: Timestamp,
        fields: Vec<(String, String)>,
    ) -> IdempotencyRecord {
        IdempotencyRecord {
            fingerprint,
            response: response.to_response(),
            created_at,
            fields,
        }
    }

    /// The first response's record; a codec error when it is of another
    /// kind than `T`.
    pub fn response<T: Replayable>(&self) -> Result<T, StorageError> {
        T::from_response(&self.response)
    }

    /// The top-level fields whose digests differ between the first
    /// request (`self.fields`) and `other` (a field present in only one of
    /// them differs too), sorted.
    pub fn differing_fields(&self, other: &[(String, String)]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (name, digest) in &self.fields {
            if !other.iter().any(|(n, d)| n == name && d == digest) {
                out.push(name.clone());
            }
        }
        for (name, _) in other {
            if !self.fields.iter().any(|(n, _)| n == name) && !out.contains(name) {
                out.push(name.clone());
            }
        }
        out.sort_unstable();
        out
    }
}

/// Most per-field digests kept with an idempotency record.
pub const FIELD_DIGESTS_MAX: usize = 64;

/// Which kind of record a `Pending` row is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingKind {
    Payin,
    Payout,
    Settlement,
    Refund,
    /// A processed payout the sandbox will reverse (SPEC §13).
    PayoutReversal,
    /// A queued payout's time to live runs out (SPEC §13).
    PayoutQueueExpiry,
}

impl PendingKind {
    pub fn tag(self) -> u8 {
        match self {
            PendingKind::Payin => b'i',
            PendingKind::Payout => b'o',
            PendingKind::Settlement => b's',
            PendingKind::Refund => b'r',
            PendingKind::PayoutReversal => b'v',
            PendingKind::PayoutQueueExpiry => b'q',
        }
    }
}

/// A transaction's place in the rail's due queue: opaque outside this
/// crate (the `Pending` row's key), removed by `WriteSet::settled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PendingId([u8; PENDING_KEY_LEN]);

const PENDING_KEY_LEN: usize = 25;

impl PendingId {
    pub(crate) fn new(due_unix_ms: i64, kind: PendingKind, record: &[u8; 16]) -> PendingId {
        PendingId(keys::pending(due_unix_ms, kind.tag(), record))
    }

    pub(crate) fn from_key(key: &[u8]) -> Result<PendingId, StorageError> {
        let key: [u8; PENDING_KEY_LEN] = key
            .try_into()
            .map_err(|_| StorageError::Codec("pending key of wrong length".into()))?;
        Ok(PendingId(key))
    }

    pub(crate) fn key(&self) -> Vec<u8> {
        self.0.to_vec()
    }
}

/// A transaction waiting for the connector, and its row to remove when done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingItem {
    pub id: PendingId,
    pub due_unix_ms: i64,
    pub kind: PendingKind,
    pub record: [u8; 16],
    pub merchant_id: UserId,
}

impl PendingItem {
    /// Reads a `Pending` row (as stored, or as a write set holds it).
    pub fn from_row(key: &[u8], value: &[u8]) -> Result<PendingItem, StorageError> {
        let id = PendingId::from_key(key)?;
        let mut due = [0u8; 8];
        due.copy_from_slice(&key[..8]);
        let kind = match key[8] {
            b'o' => PendingKind::Payout,
            b's' => PendingKind::Settlement,
            b'r' => PendingKind::Refund,
            b'v' => PendingKind::PayoutReversal,
            b'q' => PendingKind::PayoutQueueExpiry,
            _ => PendingKind::Payin,
        };
        let mut record = [0u8; 16];
        record.copy_from_slice(&key[9..]);
        let merchant_id = UserId::from_slice(value)
            .ok_or_else(|| StorageError::Codec("pending value is not a user id".into()))?;
        Ok(PendingItem {
            id,
            due_unix_ms: i64::try_from(u64::from_be_bytes(due)).unwrap_or(i64::MAX),
            kind,
            record,
            merchant_id,
        })
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StorageError> {
    serde_json::from_slice(bytes).map_err(StorageError::from)
}

fn engine(e: fjall::Error) -> StorageError {
    StorageError::from(e)
}

impl Store {
    pub fn get_raw(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .space(space)
            .get(key)
            .map_err(engine)?
            .map(|v| v.to_vec()))
    }

    pub fn get<T: DeserializeOwned>(
        &self,
        space: Space,
        key: &[u8],
    ) -> Result<Option<T>, StorageError> {
        match self.space(space).get(key).map_err(engine)? {
            Some(bytes) => decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    pub fn user(&self, id: &UserId) -> Result<Option<User>, StorageError> {
        self.get(Space::Users, &keys::user(id))
    }

    pub fn payment(&self, id: &PaymentId) -> Result<Option<Payment>, StorageError> {
        match self.space(Space::Payments).get(keys::payment(id))? {
            Some(bytes) => codec::from_bytes(&bytes).map(Some),
            None => Ok(None),
        }
    }

    pub fn payout(&self, id: &PayoutId) -> Result<Option<Payout>, StorageError> {
        match self.space(Space::Payouts).get(keys::payout(id))? {
            Some(bytes) => codec::from_bytes(&bytes).map(Some),
            None => Ok(None),
        }
    }

    pub fn refund(&self, id: &RefundId) -> Result<Option<Refund>, StorageError> {
        match self.space(Space::Refunds).get(keys::refund(id))? {
            Some(bytes) => codec::from_bytes(&bytes).map(Some),
            None => Ok(None),
        }
    }

    pub fn wallet(
        &self,
        merchant: &UserId,
        currency: Currency,
    ) -> Result<Option<Wallet>, StorageError> {
        match self
            .space(Space::Wallets)
            .get(keys::wallet(merchant, currency))?
        {
            Some(bytes) => codec::from_bytes(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The record id a merchant's `order_id` / `reference_id` points to.
    pub fn unique(
        &self,
        merchant: &UserId,
        kind: UniqueKind,
        reference: &str,
    ) -> Result<Option<[u8; 16]>, StorageError> {
        let value = self.get_raw(Space::Unique, &keys::unique(merchant, kind, reference))?;
        Ok(value.and_then(|v| <[u8; 16]>::try_from(v.as_slice()).ok()))
    }

    /// A merchant's pay-in by its `order_id` (unique per merchant).
    pub fn payment_by_order_id(
        &self,
        merchant: &UserId,
        order_id: &str,
    ) -> Result<Option<Payment>, StorageError> {
        match self.unique(merchant, UniqueKind::OrderId, order_id)? {
            Some(id) => self.payment(&PaymentId::from_bytes(id)),
            None => Ok(None),
        }
    }

    /// What a caller's `Idempotency-Key` stored for a merchant, if anything.
    pub fn idempotency(
        &self,
        merchant: &UserId,
        created_by: &UserId,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StorageError> {
        self.get_raw(
            Space::Idempotency,
            &keys::idempotency(merchant, created_by, key),
        )?
        .map(|bytes| codec::from_bytes(&bytes))
        .transpose()
    }

    /// The user an API key hash belongs to.
    pub fn user_by_key_hash(&self, hash: &[u8; 32]) -> Result<Option<UserId>, StorageError> {
        let value = self.get_raw(Space::ApiKeys, hash)?;
        Ok(value.and_then(|v| UserId::from_slice(&v)))
    }

    /// Every user. Users are few next to payments; the auth index is built
    /// from this at start-up.
    pub fn all_users(&self) -> Result<Vec<User>, StorageError> {
        self.space(Space::Users)
            .iter()
            .map(|guard| decode(&guard.value().map_err(engine)?))
            .collect()
    }

    /// Transfers a wallet posted with `from_posting <= posting`, oldest
    /// first, at most `limit`.
    pub fn ledger(
        &self,
        merchant: &UserId,
        from_posting: u64,
        limit: usize,
    ) -> Result<Vec<Transfer>, StorageError> {
        let start = keys::ledger(merchant, from_posting);
        let end = keys::ledger(merchant, u64::MAX);
        self.space(Space::Ledger)
            .range(start..=end)
            .take(limit)
            .map(|guard| codec::from_bytes(&guard.value().map_err(engine)?))
            .collect()
    }

    /// Transfers a wallet posted with `posting < before_posting`, newest
    /// first, at most `limit`.
    pub fn ledger_newest(
        &self,
        merchant: &UserId,
        before_posting: u64,
        limit: usize,
    ) -> Result<Vec<Transfer>, StorageError> {
        let start = keys::ledger(merchant, 0);
        let end = keys::ledger(merchant, before_posting);
        self.space(Space::Ledger)
            .range(start..end)
            .rev()
            .take(limit)
            .map(|guard| codec::from_bytes(&guard.value().map_err(engine)?))
            .collect()
    }

    /// The newest transfer a wallet posted, if any.
    pub fn last_transfer(&self, merchant: &UserId) -> Result<Option<Transfer>, StorageError> {
        match self
            .space(Space::Ledger)
            .prefix(keys::ledger_prefix(merchant))
            .next_back()
        {
            Some(guard) => codec::from_bytes(&guard.value().map_err(engine)?).map(Some),
            None => Ok(None),
        }
    }

    /// One transfer by id.
    pub fn transfer(&self, id: &TransferId) -> Result<Option<Transfer>, StorageError> {
        let Some(pointer) = self.get_raw(Space::Transfers, &keys::transfer(id))? else {
            return Ok(None);
        };
        let (merchant, posting) = pointer
            .split_first_chunk::<16>()
            .and_then(|(m, rest)| Some((UserId::from_bytes(*m), <[u8; 8]>::try_from(rest).ok()?)))
            .ok_or_else(|| StorageError::Codec("transfer pointer of wrong length".into()))?;
        let key = keys::ledger(&merchant, u64::from_be_bytes(posting));
        match self.space(Space::Ledger).get(key)? {
            Some(bytes) => codec::from_bytes(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Record ids of one listing, newest first, created in
    /// `[from_ms, to_ms)` and strictly older than `before` (the cursor).
    /// `keep` sees each id and decides whether it counts; scanning stops at
    /// `limit` kept ids or after `scan_max` ids looked at, whichever is first.
    /// `Page::next` is the cursor to continue from, if anything may remain.
    #[allow(clippy::too_many_arguments)]
    pub fn list_index(
        &self,
        tag: IndexTag,
        owner: &UserId,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        before: Option<[u8; 16]>,
        limit: usize,
        scan_max: usize,
        mut keep: impl FnMut(&[u8; 16]) -> Result<bool, StorageError>,
    ) -> Result<Page, StorageError> {
        let prefix = keys::index_prefix(tag, owner);
        let lower = keys::index(tag, owner, &keys::id_floor_at(from_ms.unwrap_or(0)));
        let mut upper_id = to_ms.map_or([0xff; 16], keys::id_floor_at);
        if let Some(cursor) = before {
            upper_id = upper_id.min(cursor);
        }
        let upper = keys::index(tag, owner, &upper_id);
        let range = (Bound::Included(lower), Bound::Excluded(upper));
        scan_ids(
            self.space(Space::Index).range(range).rev(),
            prefix.len(),
            limit,
            scan_max,
            &mut keep,
        )
    }

    /// Like `list_index` over every record of a space whose keys are ids
    /// (payments, payouts): the admin's view.
    #[allow(clippy::too_many_arguments)]
    pub fn list_all(
        &self,
        space: Space,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        before: Option<[u8; 16]>,
        limit: usize,
        scan_max: usize,
        mut keep: impl FnMut(&[u8; 16]) -> Result<bool, StorageError>,
    ) -> Result<Page, StorageError> {
        let lower = keys::id_floor_at(from_ms.unwrap_or(0)).to_vec();
        let mut upper = to_ms.map_or([0xff; 16], keys::id_floor_at);
        if let Some(cursor) = before {
            upper = upper.min(cursor);
        }
        let range = (Bound::Included(lower), Bound::Excluded(upper.to_vec()));
        scan_ids(
            self.space(space).range(range).rev(),
            0,
            limit,
            scan_max,
            &mut keep,
        )
    }

    /// Pending transactions due at or before `now_ms`, oldest first.
    pub fn due_pending(&self, now_ms: i64, limit: usize) -> Result<Vec<PendingItem>, StorageError> {
        self.due_pending_after(None, now_ms, limit)
    }

    /// Like `due_pending`, starting after the item `after` (a poller's
    /// cursor, so that it does not walk rows it has already handled).
    pub fn due_pending_after(
        &self,
        after: Option<&PendingId>,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingItem>, StorageError> {
        let end = keys::pending(now_ms.saturating_add(1), 0, &[0; 16]).to_vec();
        let start = match after {
            Some(id) => Bound::Excluded(id.key()),
            None => Bound::Unbounded,
        };
        let mut items = Vec::new();
        for guard in self
            .space(Space::Pending)
            .range((start, Bound::Excluded(end)))
            .take(limit)
        {
            let (key, value) = guard.into_inner().map_err(engine)?;
            items.push(PendingItem::from_row(&key, &value)?);
        }
        Ok(items)
    }

    /// Number of pending rows (for tests and gauges; a full scan).
    pub fn pending_count(&self) -> Result<usize, StorageError> {
        self.space(Space::Pending).len().map_err(engine)
    }

    /// The count of records in a space (a full scan: tests and tools only).
    pub fn count(&self, space: Space) -> Result<usize, StorageError> {
        self.space(space).len().map_err(engine)
    }
}

/// One page of a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub ids: Vec<[u8; 16]>,
    /// Where the next page starts (exclusive), if anything may remain.
    pub next: Option<[u8; 16]>,
}

fn scan_ids(
    iter: impl Iterator<Item = fjall::Guard>,
    skip: usize,
    limit: usize,
    scan_max: usize,
    keep: &mut impl FnMut(&[u8; 16]) -> Result<bool, StorageError>,
) -> Result<Page, StorageError> {
    // A page holds at least one record, so that a cursor always moves on.
    let (limit, scan_max) = (limit.max(1), scan_max.max(1));
    let mut page = Page::default();
    let mut last_seen = None;
    for (scanned, guard) in iter.enumerate() {
        if page.ids.len() >= limit || scanned >= scan_max {
            // Something remains after the last id we looked at.
            page.next = last_seen;
            return Ok(page);
        }
        let key = guard.key().map_err(engine)?;
        let id = key
            .get(skip..)
            .and_then(|k| <[u8; 16]>::try_from(k).ok())
            .ok_or_else(|| StorageError::Codec("index key of wrong length".into()))?;
        if keep(&id)? {
            page.ids.push(id);
        }
        last_seen = Some(id);
    }
    Ok(page)
}
