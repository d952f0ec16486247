//! The records Tijori stores and their state machines. A payment or payout is
//! created `pending` and makes exactly one terminal transition; the
//! transition functions are the only way to change a status.

use crate::{
    Currency, EventId, Money, PaymentId, PayoutId, Rejection, Role, Secret, Timestamp, UserId,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Completed,
    Failed,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Completed => "completed",
            PaymentStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<PaymentStatus> {
        [
            PaymentStatus::Pending,
            PaymentStatus::Completed,
            PaymentStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutStatus {
    Pending,
    Processed,
    Rejected,
    /// Waiting in its wallet's FIFO for `available` to cover it (no hold).
    Queued,
    /// Cancelled while queued or pending; any hold released.
    Cancelled,
    /// Processed, then returned by the beneficiary's bank.
    Reversed,
}

impl PayoutStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PayoutStatus::Pending => "pending",
            PayoutStatus::Processed => "processed",
            PayoutStatus::Rejected => "rejected",
            PayoutStatus::Queued => "queued",
            PayoutStatus::Cancelled => "cancelled",
            PayoutStatus::Reversed => "reversed",
        }
    }

    pub fn parse(text: &str) -> Option<PayoutStatus> {
        [
            PayoutStatus::Pending,
            PayoutStatus::Processed,
            PayoutStatus::Rejected,
            PayoutStatus::Queued,
            PayoutStatus::Cancelled,
            PayoutStatus::Reversed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PayoutMode {
    #[default]
    #[serde(rename = "IMPS")]
    Imps,
    #[serde(rename = "NEFT")]
    Neft,
    #[serde(rename = "RTGS")]
    Rtgs,
    #[serde(rename = "UPI")]
    Upi,
}

impl PayoutMode {
    pub fn parse(text: &str) -> Option<PayoutMode> {
        match text {
            "IMPS" => Some(PayoutMode::Imps),
            "NEFT" => Some(PayoutMode::Neft),
            "RTGS" => Some(PayoutMode::Rtgs),
            "UPI" => Some(PayoutMode::Upi),
            _ => None,
        }
    }
}

/// A pay-in order. `fee` and `net_amount` are fixed when it is created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub id: PaymentId,
    pub order_id: String,
    pub merchant_id: UserId,
    pub created_by: UserId,
    pub amount: Money,
    pub fee: Money,
    pub net_amount: Money,
    pub currency: Currency,
    pub status: PaymentStatus,
    pub payer: String,
    pub payer_email: Option<String>,
    pub payer_phone: Option<String>,
    pub payer_vpa: Option<String>,
    pub description: Option<String>,
    pub metadata: Option<Value>,
    pub failure_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    /// Sum of the amounts of its refunds that have not failed (SPEC §12).
    #[serde(default)]
    pub refunded_amount: Money,
    /// The reason given with its terminal transition (the admin's manual
    /// one, or the rail's), whatever the status.
    #[serde(default)]
    pub status_reason: Option<String>,
}

/// The guard of every record with one terminal transition (pay-ins,
/// payouts, refunds, settlements): only a `pending` record moves, and only
/// to one of the `terminal` statuses its `settle` takes; anything else is
/// `invalid_status_transition`, naming both statuses.
pub(crate) fn leave_pending<S: Copy + PartialEq>(
    from: S,
    to: S,
    pending: S,
    terminal: &[S],
    name: fn(S) -> &'static str,
) -> Result<(), Rejection> {
    if from != pending || !terminal.contains(&to) {
        return Err(Rejection::InvalidStatusTransition {
            from: name(from),
            to: name(to).to_owned(),
        });
    }
    Ok(())
}

impl Payment {
    /// The one terminal transition. `to` must be `Completed` or `Failed`.
    pub fn settle(
        &mut self,
        to: PaymentStatus,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        leave_pending(
            self.status,
            to,
            PaymentStatus::Pending,
            &[PaymentStatus::Completed, PaymentStatus::Failed],
            PaymentStatus::as_str,
        )?;
        self.status = to;
        self.updated_at = now;
        self.status_reason.clone_from(&reason);
        match to {
            PaymentStatus::Completed => self.completed_at = Some(now),
            _ => self.failure_reason = reason.or_else(|| Some("declined".to_owned())),
        }
        Ok(())
    }

    /// The webhook payload of SPEC §7 for this payment's current status.
    pub fn event_payload(&self, id: EventId, event: EventType, now: Timestamp) -> EventPayload {
        /// The payload's fields in the order they are sent.
        #[derive(Serialize)]
        struct View<'a> {
            id: EventId,
            event: &'static str,
            transaction_id: PaymentId,
            order_id: &'a str,
            amount: Money,
            currency: Currency,
            status: &'static str,
            payer: &'a str,
            fee: Money,
            net_amount: Money,
            failure_reason: Option<&'a str>,
            timestamp: Timestamp,
        }
        EventPayload::of(&View {
            id,
            event: event.as_str(),
            transaction_id: self.id,
            order_id: &self.order_id,
            amount: self.amount,
            currency: self.currency,
            status: self.status.as_str(),
            payer: &self.payer,
            fee: self.fee,
            net_amount: self.net_amount,
            failure_reason: self.failure_reason.as_deref(),
            timestamp: now,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beneficiary {
    pub name: String,
    /// Empty for a UPI payout (which has `vpa` instead).
    pub account_number: String,
    /// Empty for a UPI payout.
    pub ifsc: String,
    /// The UPI address (`name@handle`) of a UPI payout.
    #[serde(default)]
    pub vpa: Option<String>,
}

impl Beneficiary {
    /// The account number as shown to API callers: all but the last 4 masked.
    pub fn masked_account(&self) -> String {
        crate::beneficiary::mask_account(&self.account_number)
    }
}

/// A payout. While `pending`, `amount + fee` is held in the wallet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payout {
    pub id: PayoutId,
    pub reference_id: Option<String>,
    pub merchant_id: UserId,
    pub created_by: UserId,
    pub amount: Money,
    pub fee: Money,
    pub currency: Currency,
    pub status: PayoutStatus,
    pub beneficiary: Beneficiary,
    pub mode: PayoutMode,
    pub purpose: Option<String>,
    pub reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub processed_at: Option<Timestamp>,
    /// The bank reference of a processed payout.
    #[serde(default)]
    pub utr: Option<String>,
}

impl Payout {
    /// What is held for this payout: amount + fee.
    pub fn hold(&self) -> Option<Money> {
        self.amount.checked_add(self.fee)
    }

    /// The one terminal transition. `to` must be `Processed` or `Rejected`.
    pub fn settle(
        &mut self,
        to: PayoutStatus,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        // Cancel, reverse and the queue have transitions of their own
        // (`payout_lifecycle.rs`): `settle` is the rail's verdict only.
        leave_pending(
            self.status,
            to,
            PayoutStatus::Pending,
            &[PayoutStatus::Processed, PayoutStatus::Rejected],
            PayoutStatus::as_str,
        )?;
        self.status = to;
        self.updated_at = now;
        self.reason = reason;
        if to == PayoutStatus::Processed {
            self.processed_at = Some(now);
        }
        Ok(())
    }

    pub fn event_payload(&self, id: EventId, event: EventType, now: Timestamp) -> EventPayload {
        /// The payload's fields in the order they are sent.
        #[derive(Serialize)]
        struct View<'a> {
            id: EventId,
            event: &'static str,
            payout_id: PayoutId,
            reference_id: Option<&'a str>,
            amount: Money,
            fee: Money,
            currency: Currency,
            status: &'static str,
            beneficiary_name: &'a str,
            reason: Option<&'a str>,
            utr: Option<&'a str>,
            timestamp: Timestamp,
        }
        EventPayload::of(&View {
            id,
            event: event.as_str(),
            payout_id: self.id,
            reference_id: self.reference_id.as_deref(),
            amount: self.amount,
            fee: self.fee,
            currency: self.currency,
            status: self.status.as_str(),
            beneficiary_name: &self.beneficiary.name,
            reason: self.reason.as_deref(),
            utr: self.utr.as_deref(),
            timestamp: now,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Suspended,
}

/// A user of any role. A merchant's `merchant_id` is its own id; an
/// api_user's is its merchant's. Fees and limits matter on merchants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub email: Option<String>,
    pub role: Role,
    pub status: UserStatus,
    pub parent_id: Option<UserId>,
    pub merchant_id: Option<UserId>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Secret,
    /// The secret before the last rotation; it keeps signing during the
    /// grace period so receivers can switch over without dropping events.
    #[serde(default)]
    pub previous_webhook_secret: Option<Secret>,
    #[serde(default)]
    pub webhook_secret_rotated_at: Option<Timestamp>,
    pub rate_limit_per_min: u32,
    pub payin_fee_bps: u32,
    pub payout_fee: Money,
    /// SHA-256 of the current API key, hex; the key itself is never stored.
    pub key_hash: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Where settlements of a merchant's balance go (SPEC §14).
    #[serde(default)]
    pub settlement_account: Option<crate::SettlementAccount>,
    /// What a settlement leaves in `available`.
    #[serde(default)]
    pub settlement_reserve: Money,
    /// When a key of this user last authenticated, to the minute (SPEC §16).
    #[serde(default)]
    pub last_used_at: Option<Timestamp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "payment.completed")]
    PaymentCompleted,
    #[serde(rename = "payment.failed")]
    PaymentFailed,
    #[serde(rename = "payout.processed")]
    PayoutProcessed,
    #[serde(rename = "payout.rejected")]
    PayoutRejected,
    #[serde(rename = "user.created")]
    UserCreated,
    #[serde(rename = "user.suspended")]
    UserSuspended,
    #[serde(rename = "settlement.processed")]
    SettlementProcessed,
    #[serde(rename = "settlement.failed")]
    SettlementFailed,
    #[serde(rename = "refund.processed")]
    RefundProcessed,
    #[serde(rename = "refund.failed")]
    RefundFailed,
    #[serde(rename = "payout.queued")]
    PayoutQueued,
    #[serde(rename = "payout.cancelled")]
    PayoutCancelled,
    #[serde(rename = "payout.reversed")]
    PayoutReversed,
    /// Security events (SPEC §16): to the user itself and its parent.
    #[serde(rename = "api_key.regenerated")]
    ApiKeyRegenerated,
    #[serde(rename = "webhook_secret.rotated")]
    WebhookSecretRotated,
    #[serde(rename = "user.reactivated")]
    UserReactivated,
    #[serde(rename = "user.role_changed")]
    UserRoleChanged,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PaymentCompleted => "payment.completed",
            EventType::PaymentFailed => "payment.failed",
            EventType::PayoutProcessed => "payout.processed",
            EventType::PayoutRejected => "payout.rejected",
            EventType::UserCreated => "user.created",
            EventType::UserSuspended => "user.suspended",
            EventType::SettlementProcessed => "settlement.processed",
            EventType::SettlementFailed => "settlement.failed",
            EventType::RefundProcessed => "refund.processed",
            EventType::RefundFailed => "refund.failed",
            EventType::PayoutQueued => "payout.queued",
            EventType::PayoutCancelled => "payout.cancelled",
            EventType::PayoutReversed => "payout.reversed",
            EventType::ApiKeyRegenerated => "api_key.regenerated",
            EventType::WebhookSecretRotated => "webhook_secret.rotated",
            EventType::UserReactivated => "user.reactivated",
            EventType::UserRoleChanged => "user.role_changed",
        }
    }
}

/// Where one event stands with one recipient's endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryStatus> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// The delivery of an event to one recipient (a user's webhook URL).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub recipient: UserId,
    pub status: DeliveryStatus,
    /// Every attempt ever made.
    pub attempts: u32,
    /// Attempts since the delivery was last (re)queued; the retry budget.
    pub round_attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub delivered_at: Option<Timestamp>,
}

impl Delivery {
    pub fn pending(recipient: UserId, at: Timestamp) -> Delivery {
        Delivery {
            recipient,
            status: DeliveryStatus::Pending,
            attempts: 0,
            round_attempts: 0,
            next_attempt_at: Some(at),
            last_status_code: None,
            last_error: None,
            delivered_at: None,
        }
    }
}

/// An event's payload: one JSON object, serialised once when the event is
/// made. Stored and sent as these bytes (the signature covers them), and
/// shared by every copy of the event, so a clone costs a reference count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventPayload(Arc<str>);

impl EventPayload {
    /// The JSON text of `value` (an object: a payload's fields).
    pub fn of<T: Serialize + ?Sized>(value: &T) -> EventPayload {
        // Our payloads are structs and maps with string keys, which
        // serde_json cannot fail to write; `{}` is never reached.
        let text = serde_json::to_string(value).unwrap_or_else(|_| String::from("{}"));
        EventPayload(text.into())
    }

    /// A payload read back from the store, where `of` wrote it.
    pub fn from_stored(text: String) -> EventPayload {
        EventPayload(text.into())
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The payload as a JSON value, for views that embed it.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

/// A webhook event, written to the outbox in the same batch as the change
/// that caused it, with one delivery per recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEvent {
    pub id: EventId,
    pub event: EventType,
    pub deliveries: Vec<Delivery>,
    pub payload: EventPayload,
    pub created_at: Timestamp,
}

impl OutboxEvent {
    /// A new event, due for delivery to every recipient at once.
    pub fn new(
        id: EventId,
        event: EventType,
        recipients: &[UserId],
        payload: EventPayload,
        now: Timestamp,
    ) -> OutboxEvent {
        let mut deliveries: Vec<Delivery> = Vec::with_capacity(recipients.len());
        for r in recipients {
            if !deliveries.iter().any(|d| d.recipient == *r) {
                deliveries.push(Delivery::pending(*r, now));
            }
        }
        OutboxEvent {
            id,
            event,
            deliveries,
            payload,
            created_at: now,
        }
    }

    /// One status for the whole event: delivered when every delivery is,
    /// failed when any failed, else pending.
    pub fn status(&self) -> DeliveryStatus {
        if self
            .deliveries
            .iter()
            .all(|d| d.status == DeliveryStatus::Delivered)
        {
            DeliveryStatus::Delivered
        } else if self
            .deliveries
            .iter()
            .any(|d| d.status == DeliveryStatus::Failed)
        {
            DeliveryStatus::Failed
        } else {
            DeliveryStatus::Pending
        }
    }

    pub fn delivery(&self, recipient: &UserId) -> Option<&Delivery> {
        self.deliveries.iter().find(|d| d.recipient == *recipient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment() -> Payment {
        let now = Timestamp::from_unix_ms(1);
        Payment {
            id: PaymentId::new(),
            order_id: "o-1".into(),
            merchant_id: UserId::new(),
            created_by: UserId::new(),
            amount: Money::from_paise(500_000),
            fee: Money::ZERO,
            net_amount: Money::from_paise(500_000),
            currency: Currency::Inr,
            status: PaymentStatus::Pending,
            payer: "Jane Smith".into(),
            payer_email: None,
            payer_phone: None,
            payer_vpa: None,
            description: None,
            metadata: None,
            failure_reason: None,
            created_at: now,
            updated_at: now,
            completed_at: None,
            refunded_amount: Money::ZERO,
            status_reason: None,
        }
    }

    #[test]
    fn a_manual_reason_is_kept_whatever_the_status() {
        let mut p = payment();
        p.settle(
            PaymentStatus::Completed,
            Some("bank statement 12".into()),
            Timestamp::from_unix_ms(2),
        )
        .unwrap();
        assert_eq!(p.status_reason.as_deref(), Some("bank statement 12"));
        assert_eq!(p.failure_reason, None);
    }

    #[test]
    fn payment_has_exactly_one_terminal_transition() {
        for first in [PaymentStatus::Completed, PaymentStatus::Failed] {
            let mut p = payment();
            assert!(p
                .settle(PaymentStatus::Pending, None, Timestamp::now())
                .is_err());
            p.settle(first, None, Timestamp::now()).unwrap();
            for again in [
                PaymentStatus::Pending,
                PaymentStatus::Completed,
                PaymentStatus::Failed,
            ] {
                let before = p.clone();
                assert!(p.settle(again, None, Timestamp::now()).is_err());
                assert_eq!(p, before);
            }
        }
    }

    #[test]
    fn payload_matches_the_seed() {
        let mut p = payment();
        p.settle(PaymentStatus::Completed, None, Timestamp::from_unix_ms(2))
            .unwrap();
        let v = p
            .event_payload(
                EventId::new(),
                EventType::PaymentCompleted,
                Timestamp::from_unix_ms(2),
            )
            .to_value();
        assert_eq!(v["event"], "payment.completed");
        assert_eq!(v["amount"].to_string(), "5000");
        assert_eq!(v["currency"], "INR");
        assert_eq!(v["status"], "completed");
        assert_eq!(v["payer"], "Jane Smith");
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00.002Z");
    }

    /// The payload is written in one pass from the record; its text (what
    /// receivers verify signatures over) is the field order SPEC §7 lists.
    #[test]
    fn payloads_are_written_whole_in_the_documented_order() {
        let mut p = payment();
        p.settle(PaymentStatus::Failed, None, Timestamp::from_unix_ms(2))
            .unwrap();
        let id = EventId::new();
        let at = Timestamp::from_unix_ms(3);
        let text = p.event_payload(id, EventType::PaymentFailed, at);
        let expected = serde_json::json!({
            "id": id, "event": "payment.failed", "transaction_id": p.id,
            "order_id": p.order_id, "amount": p.amount, "currency": p.currency,
            "status": "failed", "payer": p.payer, "fee": p.fee,
            "net_amount": p.net_amount, "failure_reason": p.failure_reason,
            "timestamp": at,
        });
        assert_eq!(text.as_str(), serde_json::to_string(&expected).unwrap());
        assert!(p.failure_reason.is_some());
        // A clone shares the text; reading it back gives the same value.
        let copy = text.clone();
        assert!(std::ptr::eq(copy.as_str(), text.as_str()));
        assert_eq!(copy.to_value(), expected);
    }

    #[test]
    fn account_numbers_are_masked_but_the_last_four() {
        let b = Beneficiary {
            name: "A".into(),
            account_number: "123456789012".into(),
            ifsc: "X".into(),
            vpa: None,
        };
        assert_eq!(b.masked_account(), "XXXXXXXX9012");
        let short = Beneficiary {
            account_number: "12".into(),
            ..b
        };
        assert_eq!(short.masked_account(), "12");
    }
}
