//! Refunds (SPEC §12): money of a completed pay-in returned to its payer,
//! in full or in parts. A refund is created `pending` (its amount held from
//! `available` at once) and makes exactly one terminal transition:
//! `processed` (the hold leaves through `rail:refunds`) or `failed` (the
//! hold goes back to `available`). The rules on amounts live here, so the
//! wallet actor that serialises a merchant's refunds only applies them.

use crate::records::{EventPayload, EventType, Payment, PaymentStatus};
use crate::{Currency, EventId, Money, PaymentId, RefundId, Rejection, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The smallest partial refund: 1.00. A refund of the whole remaining
/// amount may be smaller.
pub const REFUND_MIN: Money = Money::from_paise(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Pending,
    Processed,
    Failed,
}

impl RefundStatus {
    pub const ALL: [RefundStatus; 3] = [
        RefundStatus::Pending,
        RefundStatus::Processed,
        RefundStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::Processed => "processed",
            RefundStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<RefundStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A refund of (part of) a pay-in. While `pending`, `amount` is held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: RefundId,
    pub payment_id: PaymentId,
    pub merchant_id: UserId,
    pub created_by: UserId,
    pub amount: Money,
    pub currency: Currency,
    pub status: RefundStatus,
    /// The merchant's reason for the refund, as given at creation.
    pub reason: Option<String>,
    pub failure_reason: Option<String>,
    /// The reason given with the terminal transition (the admin's manual
    /// one, or the rail's), whatever the status.
    pub status_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub processed_at: Option<Timestamp>,
}

impl Refund {
    /// The one terminal transition. `to` must be `Processed` or `Failed`.
    pub fn settle(
        &mut self,
        to: RefundStatus,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        crate::records::leave_pending(
            self.status,
            to,
            RefundStatus::Pending,
            &[RefundStatus::Processed, RefundStatus::Failed],
            RefundStatus::as_str,
        )?;
        self.status = to;
        self.updated_at = now;
        self.status_reason.clone_from(&reason);
        match to {
            RefundStatus::Processed => self.processed_at = Some(now),
            _ => self.failure_reason = reason.or_else(|| Some("declined".to_owned())),
        }
        Ok(())
    }

    /// The webhook payload of `refund.processed` / `refund.failed`.
    pub fn event_payload(&self, id: EventId, event: EventType, now: Timestamp) -> EventPayload {
        EventPayload::of(&json!({
            "id": id, "event": event.as_str(), "refund_id": self.id,
            "payment_id": self.payment_id, "amount": self.amount,
            "currency": self.currency, "status": self.status.as_str(),
            "reason": self.reason, "failure_reason": self.failure_reason,
            "timestamp": now,
        }))
    }
}

/// What is left to refund of `payment`: its amount less its non-failed
/// refunds. `None` when the books are broken (more refunded than paid).
pub fn refundable(payment: &Payment) -> Option<Money> {
    payment.amount.checked_sub(payment.refunded_amount)
}

/// The amount of a new refund of `payment`: `requested`, or the whole rest
/// when `None`. Only a completed pay-in is refunded
/// (`invalid_status_transition`); the refunds never exceed its amount
/// (`refund_exceeds_payment`); a partial refund is at least `REFUND_MIN`
/// (`invalid_amount`) unless it is exactly the rest.
pub fn refund_amount(payment: &Payment, requested: Option<Money>) -> Result<Money, Rejection> {
    if payment.status != PaymentStatus::Completed {
        return Err(Rejection::InvalidStatusTransition {
            from: payment.status.as_str(),
            to: "refunded".to_owned(),
        });
    }
    let rest = refundable(payment).ok_or(Rejection::DatabaseError)?;
    let amount = requested.unwrap_or(rest);
    if rest.is_zero() || amount > rest {
        return Err(Rejection::RefundExceedsPayment);
    }
    if amount.is_zero() || (amount < REFUND_MIN && amount != rest) {
        return Err(Rejection::InvalidAmount(
            "a partial refund must be at least 1.00".into(),
        ));
    }
    Ok(amount)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completed(amount: u64, refunded: u64) -> Payment {
        let now = Timestamp::from_unix_ms(1);
        Payment {
            id: PaymentId::new(),
            order_id: "o-1".into(),
            merchant_id: UserId::new(),
            created_by: UserId::new(),
            amount: Money::from_paise(amount),
            fee: Money::ZERO,
            net_amount: Money::from_paise(amount),
            currency: Currency::Inr,
            status: PaymentStatus::Completed,
            payer: "P".into(),
            payer_email: None,
            payer_phone: None,
            payer_vpa: None,
            description: None,
            metadata: None,
            failure_reason: None,
            created_at: now,
            updated_at: now,
            completed_at: Some(now),
            refunded_amount: Money::from_paise(refunded),
            status_reason: None,
        }
    }

    fn refund() -> Refund {
        let now = Timestamp::from_unix_ms(1);
        Refund {
            id: RefundId::new(),
            payment_id: PaymentId::new(),
            merchant_id: UserId::new(),
            created_by: UserId::new(),
            amount: Money::from_paise(500),
            currency: Currency::Inr,
            status: RefundStatus::Pending,
            reason: None,
            failure_reason: None,
            status_reason: None,
            created_at: now,
            updated_at: now,
            processed_at: None,
        }
    }

    #[test]
    fn amounts_follow_the_rules() {
        let m = Money::from_paise;
        assert_eq!(refund_amount(&completed(10_000, 0), None), Ok(m(10_000)));
        assert_eq!(refund_amount(&completed(10_000, 9_950), None), Ok(m(50)));
        assert_eq!(
            refund_amount(&completed(10_000, 9_950), Some(m(50))),
            Ok(m(50))
        );
        assert_eq!(
            refund_amount(&completed(10_000, 0), Some(m(99))),
            Err(Rejection::InvalidAmount(
                "a partial refund must be at least 1.00".into()
            ))
        );
        assert_eq!(
            refund_amount(&completed(10_000, 0), Some(m(100))),
            Ok(m(100))
        );
        assert_eq!(
            refund_amount(&completed(10_000, 5_000), Some(m(5_001))),
            Err(Rejection::RefundExceedsPayment)
        );
        assert_eq!(
            refund_amount(&completed(10_000, 10_000), None),
            Err(Rejection::RefundExceedsPayment)
        );
        for status in [PaymentStatus::Pending, PaymentStatus::Failed] {
            let mut p = completed(10_000, 0);
            p.status = status;
            assert!(matches!(
                refund_amount(&p, None),
                Err(Rejection::InvalidStatusTransition { .. })
            ));
        }
        assert_eq!(
            refund_amount(&completed(10_000, 10_001), None),
            Err(Rejection::DatabaseError)
        );
    }

    #[test]
    fn a_refund_has_exactly_one_terminal_transition() {
        for first in [RefundStatus::Processed, RefundStatus::Failed] {
            let mut r = refund();
            assert!(r
                .settle(RefundStatus::Pending, None, Timestamp::now())
                .is_err());
            r.settle(first, Some("why".into()), Timestamp::now())
                .unwrap();
            assert_eq!(r.status_reason.as_deref(), Some("why"));
            assert_eq!(r.processed_at.is_some(), first == RefundStatus::Processed);
            for again in RefundStatus::ALL {
                let before = r.clone();
                assert!(r.settle(again, None, Timestamp::now()).is_err());
                assert_eq!(r, before);
            }
        }
    }

    #[test]
    fn payload_names_the_refund_and_its_payment() {
        let r = refund();
        let v = r
            .event_payload(
                EventId::new(),
                EventType::RefundProcessed,
                Timestamp::from_unix_ms(2),
            )
            .to_value();
        assert_eq!(v["event"], "refund.processed");
        assert_eq!(v["refund_id"], r.id.to_string());
        assert_eq!(v["payment_id"], r.payment_id.to_string());
        assert_eq!(v["amount"].to_string(), "5");
    }
}
