//! The binary codec of the records written on every money movement: the
//! wallet (on every command), its transfers (on every settlement), pay-ins
//! and payouts, idempotency records. A value is a version byte, then
//! fixed-width little-endian fields (a wallet's amounts and counters are
//! LEB128 varints); strings carry a u32 length, optional fields a presence
//! byte, and a pay-in's free-form `metadata` is its JSON text. Smaller and
//! cheaper than JSON, and independent of the REST wire shapes (which the
//! HTTP layer writes explicitly).

use crate::reads::{IdempotencyRecord, Replayable, StoredResponse, FIELD_DIGESTS_MAX};
use crate::StorageError;
use domain::{
    Beneficiary, Currency, Delivery, DeliveryStatus, EventId, EventType, Money, Payment, PaymentId,
    PaymentStatus, Payout, PayoutId, PayoutMode, PayoutStatus, Posted, Refund, RefundId,
    RefundStatus, Timestamp, Transfer, TransferId, TransferKind, UserId, Wallet,
};

/// A record with a binary form.
pub(crate) trait Codec: Sized {
    /// Bumped whenever the layout changes; a value of another version is
    /// refused as a codec error.
    const VERSION: u8;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(r: &mut Reader<'_>) -> Result<Self, StorageError>;
}

pub(crate) fn to_bytes<T: Codec>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.push(T::VERSION);
    value.encode(&mut out);
    out
}

pub(crate) fn from_bytes<T: Codec>(bytes: &[u8]) -> Result<T, StorageError> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.u8()?;
    if version != T::VERSION {
        return Err(StorageError::Codec(format!(
            "record version {version}, this build reads {}",
            T::VERSION
        )));
    }
    let value = T::decode(&mut r)?;
    if r.at != bytes.len() {
        return Err(StorageError::Codec("trailing bytes after a record".into()));
    }
    Ok(value)
}

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], StorageError> {
        let end = self.at + N;
        let chunk = self
            .bytes
            .get(self.at..end)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or_else(|| StorageError::Codec("record cut short".into()))?;
        self.at = end;
        Ok(chunk)
    }

    fn u8(&mut self) -> Result<u8, StorageError> {
        Ok(self.take::<1>()?[0])
    }

    fn u64(&mut self) -> Result<u64, StorageError> {
        self.take().map(u64::from_le_bytes)
    }

    fn varint(&mut self) -> Result<u64, StorageError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                break;
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(StorageError::Codec("a varint over 64 bits".into()))
    }

    fn varint_money(&mut self) -> Result<Money, StorageError> {
        self.varint().map(Money::from_paise)
    }

    fn u32(&mut self) -> Result<u32, StorageError> {
        self.take().map(u32::from_le_bytes)
    }

    fn money(&mut self) -> Result<Money, StorageError> {
        self.u64().map(Money::from_paise)
    }

    fn time(&mut self) -> Result<Timestamp, StorageError> {
        self.take()
            .map(|b| Timestamp::from_unix_ms(i64::from_le_bytes(b)))
    }

    fn user(&mut self) -> Result<UserId, StorageError> {
        self.take().map(UserId::from_bytes)
    }

    fn currency(&mut self) -> Result<Currency, StorageError> {
        match self.u8()? {
            0 => Ok(Currency::Inr),
            other => Err(StorageError::Codec(format!("unknown currency {other}"))),
        }
    }

    fn string(&mut self) -> Result<String, StorageError> {
        String::from_utf8(self.bytes()?)
            .map_err(|_| StorageError::Codec("string is not UTF-8".into()))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, StorageError> {
        let len = usize::try_from(u32::from_le_bytes(self.take()?))
            .map_err(|_| StorageError::Codec("length".into()))?;
        let end = self
            .at
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| StorageError::Codec("record cut short".into()))?;
        let bytes = self.bytes[self.at..end].to_vec();
        self.at = end;
        Ok(bytes)
    }

    fn present(&mut self) -> Result<bool, StorageError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(StorageError::Codec("bad presence byte".into())),
        }
    }

    fn opt_string(&mut self) -> Result<Option<String>, StorageError> {
        if self.present()? {
            self.string().map(Some)
        } else {
            Ok(None)
        }
    }

    fn opt_time(&mut self) -> Result<Option<Timestamp>, StorageError> {
        if self.present()? {
            self.time().map(Some)
        } else {
            Ok(None)
        }
    }

    /// A one-byte tag, as the index of its value in `all`.
    fn tag<T: Copy>(&mut self, all: &[T], what: &str) -> Result<T, StorageError> {
        let at = usize::from(self.u8()?);
        all.get(at)
            .copied()
            .ok_or_else(|| StorageError::Codec(format!("unknown {what} {at}")))
    }
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_money(out: &mut Vec<u8>, m: Money) {
    put_u64(out, m.paise());
}

/// LEB128: seven bits a byte, low bits first. A wallet's amounts and the
/// zero balances of the accounts it does not use take one to five bytes
/// each, not eight; a wallet is written on every command, twice over (the
/// journal, then its row).
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v & 0x7f) as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_time(out: &mut Vec<u8>, t: Timestamp) {
    out.extend_from_slice(&t.unix_ms().to_le_bytes());
}

fn put_currency(out: &mut Vec<u8>, c: Currency) {
    out.push(match c {
        Currency::Inr => 0,
    });
}

fn put_opt_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            out.push(1);
            put_string(out, s);
        }
        None => out.push(0),
    }
}

fn put_opt_time(out: &mut Vec<u8>, t: Option<Timestamp>) {
    match t {
        Some(t) => {
            out.push(1);
            put_time(out, t);
        }
        None => out.push(0),
    }
}

/// A one-byte tag: the index of `value` in `all`.
fn put_tag<T: PartialEq>(out: &mut Vec<u8>, all: &[T], value: &T) {
    let at = all.iter().position(|v| v == value).unwrap_or(usize::MAX);
    out.push(u8::try_from(at).unwrap_or(u8::MAX));
}

const PAYMENT_STATUSES: [PaymentStatus; 3] = [
    PaymentStatus::Pending,
    PaymentStatus::Completed,
    PaymentStatus::Failed,
];
const PAYOUT_STATUSES: [PayoutStatus; 6] = [
    PayoutStatus::Pending,
    PayoutStatus::Processed,
    PayoutStatus::Rejected,
    PayoutStatus::Queued,
    PayoutStatus::Cancelled,
    PayoutStatus::Reversed,
];
const EVENT_TYPES: [EventType; 17] = [
    EventType::PaymentCompleted,
    EventType::PaymentFailed,
    EventType::PayoutProcessed,
    EventType::PayoutRejected,
    EventType::UserCreated,
    EventType::UserSuspended,
    EventType::SettlementProcessed,
    EventType::SettlementFailed,
    EventType::RefundProcessed,
    EventType::RefundFailed,
    EventType::PayoutQueued,
    EventType::PayoutCancelled,
    EventType::PayoutReversed,
    EventType::ApiKeyRegenerated,
    EventType::WebhookSecretRotated,
    EventType::UserReactivated,
    EventType::UserRoleChanged,
];
const DELIVERY_STATUSES: [DeliveryStatus; 3] = [
    DeliveryStatus::Pending,
    DeliveryStatus::Delivered,
    DeliveryStatus::Failed,
];
const PAYOUT_MODES: [PayoutMode; 4] = [
    PayoutMode::Imps,
    PayoutMode::Neft,
    PayoutMode::Rtgs,
    PayoutMode::Upi,
];

fn put_string(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // References are ids (a few dozen bytes); u32 covers any value here.
    let len = len_u32(b.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&b[..len as usize]);
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl Codec for Wallet {
    /// 2: amounts and counters as varints (1: eight bytes each).
    const VERSION: u8 = 2;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.merchant_id.as_bytes());
        put_currency(out, self.currency);
        put_varint(out, self.available.paise());
        put_varint(out, self.held.paise());
        for posted in &self.posted {
            put_varint(out, posted.debits.paise());
            put_varint(out, posted.credits.paise());
        }
        for m in [
            self.pending_payins,
            self.total_payins,
            self.total_payouts,
            self.total_fees,
        ] {
            put_varint(out, m.paise());
        }
        put_varint(out, self.last_seq);
        put_varint(out, self.last_posting);
        put_time(out, self.updated_at);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Wallet, StorageError> {
        let merchant_id = r.user()?;
        let currency = r.currency()?;
        let available = r.varint_money()?;
        let held = r.varint_money()?;
        let mut posted = [Posted::default(); 7];
        for p in &mut posted {
            p.debits = r.varint_money()?;
            p.credits = r.varint_money()?;
        }
        Ok(Wallet {
            merchant_id,
            currency,
            available,
            held,
            posted,
            pending_payins: r.varint_money()?,
            total_payins: r.varint_money()?,
            total_payouts: r.varint_money()?,
            total_fees: r.varint_money()?,
            last_seq: r.varint()?,
            last_posting: r.varint()?,
            updated_at: r.time()?,
        })
    }
}

impl Codec for Transfer {
    const VERSION: u8 = 1;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(self.merchant_id.as_bytes());
        put_currency(out, self.currency);
        put_u64(out, self.posting);
        put_u64(out, self.seq);
        let kind = TransferKind::ALL
            .iter()
            .position(|k| *k == self.kind)
            .unwrap_or(usize::MAX);
        out.push(u8::try_from(kind).unwrap_or(u8::MAX));
        put_money(out, self.amount);
        put_string(out, &self.reference);
        put_money(out, self.available_after);
        put_money(out, self.held_after);
        put_time(out, self.created_at);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Transfer, StorageError> {
        let id = TransferId::from_bytes(r.take()?);
        let merchant_id = r.user()?;
        let currency = r.currency()?;
        let posting = r.u64()?;
        let seq = r.u64()?;
        let kind = *TransferKind::ALL
            .get(usize::from(r.u8()?))
            .ok_or_else(|| StorageError::Codec("unknown transfer kind".into()))?;
        Ok(Transfer {
            id,
            merchant_id,
            currency,
            posting,
            seq,
            kind,
            amount: r.money()?,
            reference: r.string()?,
            available_after: r.money()?,
            held_after: r.money()?,
            created_at: r.time()?,
        })
    }
}

impl Codec for Payment {
    /// 2: `refunded_amount` and `status_reason` at the end.
    const VERSION: u8 = 2;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.id.as_bytes());
        put_string(out, &self.order_id);
        out.extend_from_slice(self.merchant_id.as_bytes());
        out.extend_from_slice(self.created_by.as_bytes());
        put_money(out, self.amount);
        put_money(out, self.fee);
        put_money(out, self.net_amount);
        put_currency(out, self.currency);
        put_tag(out, &PAYMENT_STATUSES, &self.status);
        put_string(out, &self.payer);
        put_opt_string(out, self.payer_email.as_deref());
        put_opt_string(out, self.payer_phone.as_deref());
        put_opt_string(out, self.payer_vpa.as_deref());
        put_opt_string(out, self.description.as_deref());
        let metadata = self.metadata.as_ref().map(|m| m.to_string());
        put_opt_string(out, metadata.as_deref());
        put_opt_string(out, self.failure_reason.as_deref());
        put_time(out, self.created_at);
        put_time(out, self.updated_at);
        put_opt_time(out, self.completed_at);
        put_money(out, self.refunded_amount);
        put_opt_string(out, self.status_reason.as_deref());
    }

    fn decode(r: &mut Reader<'_>) -> Result<Payment, StorageError> {
        Ok(Payment {
            id: PaymentId::from_bytes(r.take()?),
            order_id: r.string()?,
            merchant_id: r.user()?,
            created_by: r.user()?,
            amount: r.money()?,
            fee: r.money()?,
            net_amount: r.money()?,
            currency: r.currency()?,
            status: r.tag(&PAYMENT_STATUSES, "payment status")?,
            payer: r.string()?,
            payer_email: r.opt_string()?,
            payer_phone: r.opt_string()?,
            payer_vpa: r.opt_string()?,
            description: r.opt_string()?,
            metadata: match r.opt_string()? {
                Some(text) => Some(serde_json::from_str(&text)?),
                None => None,
            },
            failure_reason: r.opt_string()?,
            created_at: r.time()?,
            updated_at: r.time()?,
            completed_at: r.opt_time()?,
            refunded_amount: r.money()?,
            status_reason: r.opt_string()?,
        })
    }
}

impl Codec for Refund {
    const VERSION: u8 = 1;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(self.payment_id.as_bytes());
        out.extend_from_slice(self.merchant_id.as_bytes());
        out.extend_from_slice(self.created_by.as_bytes());
        put_money(out, self.amount);
        put_currency(out, self.currency);
        put_tag(out, &RefundStatus::ALL, &self.status);
        put_opt_string(out, self.reason.as_deref());
        put_opt_string(out, self.failure_reason.as_deref());
        put_opt_string(out, self.status_reason.as_deref());
        put_time(out, self.created_at);
        put_time(out, self.updated_at);
        put_opt_time(out, self.processed_at);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Refund, StorageError> {
        Ok(Refund {
            id: RefundId::from_bytes(r.take()?),
            payment_id: PaymentId::from_bytes(r.take()?),
            merchant_id: r.user()?,
            created_by: r.user()?,
            amount: r.money()?,
            currency: r.currency()?,
            status: r.tag(&RefundStatus::ALL, "refund status")?,
            reason: r.opt_string()?,
            failure_reason: r.opt_string()?,
            status_reason: r.opt_string()?,
            created_at: r.time()?,
            updated_at: r.time()?,
            processed_at: r.opt_time()?,
        })
    }
}

impl Codec for Payout {
    const VERSION: u8 = 1;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.id.as_bytes());
        put_opt_string(out, self.reference_id.as_deref());
        out.extend_from_slice(self.merchant_id.as_bytes());
        out.extend_from_slice(self.created_by.as_bytes());
        put_money(out, self.amount);
        put_money(out, self.fee);
        put_currency(out, self.currency);
        put_tag(out, &PAYOUT_STATUSES, &self.status);
        put_string(out, &self.beneficiary.name);
        put_string(out, &self.beneficiary.account_number);
        put_string(out, &self.beneficiary.ifsc);
        put_tag(out, &PAYOUT_MODES, &self.mode);
        put_opt_string(out, self.purpose.as_deref());
        put_opt_string(out, self.reason.as_deref());
        put_time(out, self.created_at);
        put_time(out, self.updated_at);
        put_opt_time(out, self.processed_at);
        // Payout lifecycle (SPEC §13).
        put_opt_string(out, self.beneficiary.vpa.as_deref());
        put_opt_string(out, self.utr.as_deref());
    }

    fn decode(r: &mut Reader<'_>) -> Result<Payout, StorageError> {
        let mut payout = Payout {
            id: PayoutId::from_bytes(r.take()?),
            reference_id: r.opt_string()?,
            merchant_id: r.user()?,
            created_by: r.user()?,
            amount: r.money()?,
            fee: r.money()?,
            currency: r.currency()?,
            status: r.tag(&PAYOUT_STATUSES, "payout status")?,
            beneficiary: Beneficiary {
                name: r.string()?,
                account_number: r.string()?,
                ifsc: r.string()?,
                vpa: None,
            },
            mode: r.tag(&PAYOUT_MODES, "payout mode")?,
            purpose: r.opt_string()?,
            reason: r.opt_string()?,
            created_at: r.time()?,
            updated_at: r.time()?,
            processed_at: r.opt_time()?,
            utr: None,
        };
        payout.beneficiary.vpa = r.opt_string()?;
        payout.utr = r.opt_string()?;
        Ok(payout)
    }
}

/// A webhook event as stored: what happened, to whom, and its payload
/// (JSON text). Its deliveries are records of their own, so recording an
/// attempt rewrites a few dozen bytes, not the event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredEvent {
    pub id: EventId,
    pub event: EventType,
    pub recipients: Vec<UserId>,
    pub payload: String,
    pub created_at: Timestamp,
}

impl Codec for StoredEvent {
    const VERSION: u8 = 1;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.id.as_bytes());
        put_tag(out, &EVENT_TYPES, &self.event);
        out.push(u8::try_from(self.recipients.len()).unwrap_or(u8::MAX));
        for r in self.recipients.iter().take(usize::from(u8::MAX)) {
            out.extend_from_slice(r.as_bytes());
        }
        put_string(out, &self.payload);
        put_time(out, self.created_at);
    }

    fn decode(r: &mut Reader<'_>) -> Result<StoredEvent, StorageError> {
        let id = EventId::from_bytes(r.take()?);
        let event = r.tag(&EVENT_TYPES, "event type")?;
        let count = r.u8()?;
        let recipients = (0..count).map(|_| r.user()).collect::<Result<_, _>>()?;
        Ok(StoredEvent {
            id,
            event,
            recipients,
            payload: r.string()?,
            created_at: r.time()?,
        })
    }
}

impl Codec for IdempotencyRecord {
    const VERSION: u8 = 1;

    fn encode(&self, out: &mut Vec<u8>) {
        put_string(out, &self.fingerprint);
        put_time(out, self.created_at);
        put_bytes(out, &self.response.0);
        out.extend_from_slice(&len_u32(self.fields.len()).to_le_bytes());
        for (name, digest) in &self.fields {
            put_string(out, name);
            put_string(out, digest);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<IdempotencyRecord, StorageError> {
        let fingerprint = r.string()?;
        let created_at = r.time()?;
        let response = StoredResponse(r.bytes()?);
        let count = r.u32()?;
        let mut fields = Vec::with_capacity((count as usize).min(FIELD_DIGESTS_MAX));
        for _ in 0..count {
            fields.push((r.string()?, r.string()?));
        }
        Ok(IdempotencyRecord {
            fingerprint,
            response,
            created_at,
            fields,
        })
    }
}

/// The kind tags of replayable records, ahead of their binary form.
const REPLAY_PAYMENT: u8 = 1;
const REPLAY_PAYOUT: u8 = 2;
const REPLAY_REFUND: u8 = 3;

fn to_response<T: Codec>(kind: u8, record: &T) -> StoredResponse {
    let mut out = Vec::with_capacity(200);
    out.push(kind);
    out.push(T::VERSION);
    record.encode(&mut out);
    StoredResponse(out)
}

fn from_response<T: Codec>(kind: u8, response: &StoredResponse) -> Result<T, StorageError> {
    match response.0.split_first() {
        Some((tag, rest)) if *tag == kind => from_bytes(rest),
        Some((tag, _)) => Err(StorageError::Codec(format!(
            "an idempotent replay of kind {tag} read as kind {kind}"
        ))),
        None => Err(StorageError::Codec("an empty idempotent response".into())),
    }
}

macro_rules! replayable {
    ($($record:ty => $kind:expr),* $(,)?) => {$(
        impl Replayable for $record {
            fn to_response(&self) -> StoredResponse {
                to_response($kind, self)
            }
            fn from_response(response: &StoredResponse) -> Result<$record, StorageError> {
                from_response($kind, response)
            }
        }
    )*};
}

replayable!(Payment => REPLAY_PAYMENT, Payout => REPLAY_PAYOUT, Refund => REPLAY_REFUND);

impl Codec for Delivery {
    const VERSION: u8 = 1;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.recipient.as_bytes());
        put_tag(out, &DELIVERY_STATUSES, &self.status);
        out.extend_from_slice(&self.attempts.to_le_bytes());
        out.extend_from_slice(&self.round_attempts.to_le_bytes());
        put_opt_time(out, self.next_attempt_at);
        match self.last_status_code {
            Some(code) => {
                out.push(1);
                out.extend_from_slice(&code.to_le_bytes());
            }
            None => out.push(0),
        }
        put_opt_string(out, self.last_error.as_deref());
        put_opt_time(out, self.delivered_at);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Delivery, StorageError> {
        Ok(Delivery {
            recipient: r.user()?,
            status: r.tag(&DELIVERY_STATUSES, "delivery status")?,
            attempts: r.u32()?,
            round_attempts: r.u32()?,
            next_attempt_at: r.opt_time()?,
            last_status_code: if r.present()? {
                Some(u16::from_le_bytes(r.take()?))
            } else {
                None
            },
            last_error: r.opt_string()?,
            delivered_at: r.opt_time()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_every_width_and_refuse_overlong_ones() {
        let mut values = vec![0u64, 1, 127, 128, 16_383, 16_384, u64::MAX - 1, u64::MAX];
        values.extend((0..64).map(|bit| 1u64 << bit));
        values.extend((1..64).map(|bit| (1u64 << bit) - 1));
        for v in values {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(
                out.len(),
                (64 - v.leading_zeros() as usize).div_ceil(7).max(1)
            );
            let mut r = Reader { bytes: &out, at: 0 };
            assert_eq!(r.varint().unwrap(), v);
            assert_eq!(r.at, out.len());
            for cut in 0..out.len() {
                let mut r = Reader {
                    bytes: &out[..cut],
                    at: 0,
                };
                assert!(r.varint().is_err(), "{v} cut at {cut}");
            }
        }
        // 2^64 and an eleventh byte are refused, not wrapped.
        let too_big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Reader {
            bytes: &too_big,
            at: 0
        }
        .varint()
        .is_err());
        let eleven = [0x80; 11];
        assert!(Reader {
            bytes: &eleven,
            at: 0
        }
        .varint()
        .is_err());
    }

    #[test]
    fn wallets_and_transfers_round_trip_and_refuse_damage() {
        let now = Timestamp::from_unix_ms(1_764_000_000_123);
        let mut wallet = Wallet::new(UserId::new(), Currency::Inr, now);
        let credit = wallet
            .post(
                TransferKind::PayinCredit,
                Money::from_paise(9_800),
                "txn_x".into(),
                now,
            )
            .unwrap();
        let fee = wallet
            .post(
                TransferKind::PayinFee,
                Money::from_paise(200),
                "txn_x".into(),
                now,
            )
            .unwrap();
        wallet.pending_payins = Money::from_paise(5);
        wallet.total_fees = Money::from_paise(200);
        let bytes = to_bytes(&wallet);
        assert_eq!(from_bytes::<Wallet>(&bytes).unwrap(), wallet);
        // Version 1 took 202 bytes whatever the amounts.
        assert!(bytes.len() <= 60, "{} bytes", bytes.len());
        for t in [credit, fee] {
            let bytes = to_bytes(&t);
            assert_eq!(from_bytes::<Transfer>(&bytes).unwrap(), t);
            for cut in 0..bytes.len() {
                assert!(from_bytes::<Transfer>(&bytes[..cut]).is_err());
            }
        }
        for cut in 0..bytes.len() {
            assert!(from_bytes::<Wallet>(&bytes[..cut]).is_err());
        }
        let mut newer = bytes.clone();
        newer[0] = 3;
        assert!(from_bytes::<Wallet>(&newer).is_err());
        let mut longer = bytes;
        longer.push(0);
        assert!(from_bytes::<Wallet>(&longer).is_err());
    }

    /// A pay-in with every optional field set.
    fn payment(now: Timestamp) -> Payment {
        Payment {
            id: PaymentId::new(),
            order_id: "order-₹-1".into(),
            merchant_id: UserId::new(),
            created_by: UserId::new(),
            amount: Money::from_paise(10_000),
            fee: Money::from_paise(250),
            net_amount: Money::from_paise(9_750),
            currency: Currency::Inr,
            status: PaymentStatus::Failed,
            payer: "Asha".into(),
            payer_email: Some("asha@example.com".into()),
            payer_phone: None,
            payer_vpa: Some("asha@upi".into()),
            description: None,
            metadata: Some(serde_json::json!({"cart": [1, 2.50, "x"], "n": null})),
            failure_reason: Some("declined".into()),
            created_at: now,
            updated_at: now,
            completed_at: Some(now),
            refunded_amount: Money::from_paise(2_500),
            status_reason: Some("manual".into()),
        }
    }

    #[test]
    fn payments_and_payouts_round_trip_and_refuse_damage() {
        let now = Timestamp::from_unix_ms(1_764_000_000_123);
        let payment = payment(now);
        let payout = Payout {
            id: PayoutId::new(),
            reference_id: Some("ref-9".into()),
            merchant_id: UserId::new(),
            created_by: UserId::new(),
            amount: Money::from_paise(50_000),
            fee: Money::from_paise(1_000),
            currency: Currency::Inr,
            status: PayoutStatus::Processed,
            beneficiary: Beneficiary {
                name: "Ravi".into(),
                account_number: "123456789012".into(),
                ifsc: "HDFC0001234".into(),
                vpa: Some("ravi@okaxis".into()),
            },
            mode: PayoutMode::Upi,
            purpose: None,
            reason: None,
            created_at: now,
            updated_at: now,
            processed_at: None,
            utr: Some("TJRS0123456789AB".into()),
        };
        let bytes = to_bytes(&payment);
        assert_eq!(from_bytes::<Payment>(&bytes).unwrap(), payment);
        for cut in 0..bytes.len() {
            assert!(from_bytes::<Payment>(&bytes[..cut]).is_err());
        }
        let bytes = to_bytes(&payout);
        assert_eq!(from_bytes::<Payout>(&bytes).unwrap(), payout);
        for cut in 0..bytes.len() {
            assert!(from_bytes::<Payout>(&bytes[..cut]).is_err());
        }
        let mut unknown_mode = bytes.clone();
        // The lifecycle trailer: vpa and utr, each a presence byte, a length and the text.
        let trailer = (1 + 4 + "ravi@okaxis".len()) + (1 + 4 + "TJRS0123456789AB".len());
        let mode_at = bytes.len() - trailer - 8 - 8 - 1 - 1 - 1 - 1;
        assert_eq!(unknown_mode[mode_at], 3, "the mode tag sits where expected");
        unknown_mode[mode_at] = 9;
        assert!(from_bytes::<Payout>(&unknown_mode).is_err());
    }

    #[test]
    fn idempotency_records_round_trip_and_replay_only_their_kind() {
        let now = Timestamp::from_unix_ms(1_764_000_000_123);
        // A plain pay-in, as the quick start makes one.
        let payment = Payment {
            status: PaymentStatus::Pending,
            payer_email: None,
            payer_vpa: None,
            metadata: None,
            failure_reason: None,
            completed_at: None,
            refunded_amount: Money::ZERO,
            status_reason: None,
            ..payment(now)
        };
        let fields: Vec<(String, String)> = ["amount", "order_id", "payer"]
            .iter()
            .map(|name| (name.to_string(), "0123456789abcdef".to_string()))
            .collect();
        let record = IdempotencyRecord::new("ab".repeat(32), &payment, now, fields.clone());
        let bytes = to_bytes(&record);
        let back = from_bytes::<IdempotencyRecord>(&bytes).unwrap();
        assert_eq!(back, record);
        assert_eq!(back.response::<Payment>().unwrap(), payment);
        assert!(back.response::<Payout>().is_err());
        assert!(back.response::<Refund>().is_err());
        assert!(
            IdempotencyRecord::new("x".into(), &payment, now, Vec::new())
                .response::<Payment>()
                .is_ok()
        );
        assert!(StoredResponse::default().0.is_empty());
        assert!(Payment::from_response(&StoredResponse::default()).is_err());
        for cut in 0..bytes.len() {
            assert!(from_bytes::<IdempotencyRecord>(&bytes[..cut]).is_err());
        }
        // Against the JSON form it replaced (the record as a JSON value).
        let json = serde_json::to_vec(&serde_json::json!({
            "fingerprint": record.fingerprint, "response": payment,
            "created_at": now, "fields": fields,
        }))
        .unwrap();
        assert!(
            bytes.len() * 2 < json.len(),
            "{} bytes against {} as JSON",
            bytes.len(),
            json.len()
        );
    }

    #[test]
    fn refunds_round_trip_and_refuse_damage() {
        let now = Timestamp::from_unix_ms(1_764_000_000_123);
        let refund = Refund {
            id: RefundId::new(),
            payment_id: PaymentId::new(),
            merchant_id: UserId::new(),
            created_by: UserId::new(),
            amount: Money::from_paise(12_345),
            currency: Currency::Inr,
            status: RefundStatus::Failed,
            reason: Some("fail@sandbox".into()),
            failure_reason: Some("declined".into()),
            status_reason: None,
            created_at: now,
            updated_at: now,
            processed_at: None,
        };
        let bytes = to_bytes(&refund);
        assert_eq!(from_bytes::<Refund>(&bytes).unwrap(), refund);
        for cut in 0..bytes.len() {
            assert!(from_bytes::<Refund>(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn events_and_deliveries_round_trip_and_refuse_damage() {
        let now = Timestamp::from_unix_ms(1_764_000_000_123);
        let event = StoredEvent {
            id: EventId::new(),
            event: EventType::PayoutRejected,
            recipients: vec![UserId::new(), UserId::new()],
            payload: r#"{"event":"payout.rejected","amount":"10.00"}"#.into(),
            created_at: now,
        };
        let bytes = to_bytes(&event);
        assert_eq!(from_bytes::<StoredEvent>(&bytes).unwrap(), event);
        for cut in 0..bytes.len() {
            assert!(from_bytes::<StoredEvent>(&bytes[..cut]).is_err());
        }
        let mut delivery = Delivery::pending(UserId::new(), now);
        for _ in 0..2 {
            let bytes = to_bytes(&delivery);
            assert_eq!(from_bytes::<Delivery>(&bytes).unwrap(), delivery);
            for cut in 0..bytes.len() {
                assert!(from_bytes::<Delivery>(&bytes[..cut]).is_err());
            }
            delivery.status = DeliveryStatus::Failed;
            delivery.attempts = 7;
            delivery.round_attempts = 3;
            delivery.next_attempt_at = None;
            delivery.last_status_code = Some(503);
            delivery.last_error = Some("HTTP 503".into());
            delivery.delivered_at = Some(now);
        }
    }
}
