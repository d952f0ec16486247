//! Refunds in the wallet actor (SPEC §12). A child module of `actor`, so it
//! shares that module's private types (`Prepared`, `Claims`, `Settled`).
//!
//! The wallet is the serialisation point of its merchant's refunds: a new
//! refund reads the pay-in as the wallet last wrote it (its in-flight
//! version, else storage), whose `refunded_amount` already counts every
//! non-failed refund, including those whose writes are still in flight. The
//! refund, the pay-in with its new `refunded_amount`, the hold transfer, the
//! wallet, the idempotency row and the rail's due row are ONE write set; so
//! is a settlement (refund, transfer, wallet, event, due row removed, and
//! on failure the pay-in with its `refunded_amount` lowered again).

use super::*;
use crate::wallet::messages::NewRefund;
use domain::refund::refund_amount;
use domain::{Refund, RefundId, RefundStatus};

/// A prepared refund command, and the pay-in it changes (if it does).
type WithPayment = (Prepared<Refund>, Option<Payment>);

impl WalletState {
    /// Creates a pending refund, holding its amount from `available`.
    pub(super) async fn create_refund(&mut self, new: NewRefund) -> Reply<Refund> {
        let (prepared, payment) = split(self.prepare_refund(new));
        let reply = self.run(prepared).await;
        if let (Ok(refund), false) = (&reply.result, reply.replayed) {
            if let Some(payment) = payment {
                self.inflight.put_payment(self.last_write_seq, payment);
            }
            if !self.pending.remember_refund(refund) {
                self.inflight
                    .put_refund(self.last_write_seq, refund.clone());
            }
        }
        reply
    }

    /// Settles a pending refund (by the rail or by hand).
    pub(super) async fn settle_refund(
        &mut self,
        id: RefundId,
        outcome: Outcome<RefundStatus>,
    ) -> Reply<Refund> {
        let (prepared, payment) = split(self.prepare_settle_refund(id, outcome));
        let reply = self.run(prepared).await;
        if let (Ok(refund), false) = (&reply.result, reply.replayed) {
            self.pending.refunds.remove(&id);
            self.inflight
                .put_refund(self.last_write_seq, refund.clone());
            if let Some(payment) = payment {
                self.inflight.put_payment(self.last_write_seq, payment);
            }
        }
        reply
    }

    /// A pay-in of this wallet as it last wrote it.
    fn current_payment(&self, id: &PaymentId) -> Result<Payment, Rejection> {
        let known = self
            .inflight
            .payment(id)
            .or_else(|| self.pending.payins.get(id));
        let payment = match known {
            Some(p) => p.clone(),
            None => self
                .store
                .payment(id)
                .map_err(db)?
                .ok_or(Rejection::NotFound)?,
        };
        if payment.merchant_id != self.merchant {
            return Err(Rejection::NotFound);
        }
        Ok(payment)
    }

    fn prepare_refund(&self, new: NewRefund) -> Result<WithPayment, Rejection> {
        let id = RefundId::new();
        let now = Timestamp::from_unix_ms(i64::try_from(id.unix_ms()).unwrap_or(i64::MAX));
        if let Prior::Replay(first) =
            self.check_idempotency(&new.created_by, new.idempotency.as_ref(), now)?
        {
            return Ok((Prepared::Replay(first), None));
        }
        let mut payment = self.current_payment(&new.payment_id)?;
        let amount = refund_amount(&payment, new.amount)?;
        payment.refunded_amount = payment
            .refunded_amount
            .checked_add(amount)
            .ok_or(Rejection::DatabaseError)?;
        payment.updated_at = now;
        let refund = Refund {
            id,
            payment_id: payment.id,
            merchant_id: self.merchant,
            created_by: new.created_by,
            amount,
            currency: payment.currency,
            status: RefundStatus::Pending,
            reason: new.reason,
            failure_reason: None,
            status_reason: None,
            created_at: now,
            updated_at: now,
            processed_at: None,
        };
        let mut next = self.wallet.clone();
        // available → held; `insufficient_balance` when available is short.
        let hold = next.post(TransferKind::RefundHold, amount, refund.id.to_string(), now)?;

        let mut writes = WriteSet::new();
        let due = writes
            .refund_created(
                &refund,
                self.listed(&refund.created_by),
                self.settle_at(now),
            )
            .map_err(db)?;
        writes.payment_saved(&payment).map_err(db)?;
        let idempotency = Self::put_idempotency(
            &mut writes,
            &self.merchant,
            &refund.created_by,
            new.idempotency,
            &refund,
            now,
        )?;
        self.put_common(&mut writes, &next, &[hold], None)?;
        let claims = Claims {
            unique: None,
            idempotency,
            due: Some(due),
            event: None,
            lifecycle: Lifecycle::default(),
        };
        Ok((Prepared::write(writes, next, refund, claims), Some(payment)))
    }

    fn prepare_settle_refund(
        &self,
        id: RefundId,
        outcome: Outcome<RefundStatus>,
    ) -> Result<WithPayment, Rejection> {
        let now = Timestamp::now();
        let mut manual = None;
        let known = (self.inflight.refund(&id)).or_else(|| self.pending.refunds.get(&id));
        let mut refund = match known {
            Some(r) => r.clone(),
            None => self
                .store
                .refund(&id)
                .map_err(db)?
                .ok_or(Rejection::NotFound)?,
        };
        if refund.merchant_id != self.merchant {
            return Err(Rejection::NotFound);
        }
        let (to, reason, due) = match outcome {
            Outcome::Rail(due) => {
                let (to, reason) = crate::connector::refund_outcome(refund.reason.as_deref());
                (to, reason, Some(due))
            }
            Outcome::Given(to, audit) => {
                manual = Some(audit);
                (to, manual.as_ref().and_then(|a| a.reason.clone()), None)
            }
        };
        let before = refund.status.as_str();
        refund.settle(to, reason, now)?;
        // processed: held → rail:refunds; failed: held → available, and the
        // pay-in may be refunded by that much again.
        let (kind, event_type) = match to {
            RefundStatus::Processed => (TransferKind::RefundSettle, EventType::RefundProcessed),
            _ => (TransferKind::RefundRelease, EventType::RefundFailed),
        };
        let mut next = self.wallet.clone();
        let transfer = next.post(kind, refund.amount, refund.id.to_string(), now)?;
        let mut writes = WriteSet::new();
        writes.refund_saved(&refund);
        let payment = if to == RefundStatus::Failed {
            let mut payment = self.current_payment(&refund.payment_id)?;
            payment.refunded_amount = payment
                .refunded_amount
                .checked_sub(refund.amount)
                .ok_or(Rejection::DatabaseError)?;
            payment.updated_at = now;
            writes.payment_saved(&payment).map_err(db)?;
            Some(payment)
        } else {
            None
        };
        if let Some(due) = due {
            writes.settled(due);
        }
        self.audit_status(
            &mut writes,
            manual.as_ref(),
            AuditAction::RefundStatusSet,
            refund.id.to_string(),
            (before, refund.status.as_str()),
        )?;
        let settled = Settled {
            writes,
            created_by: refund.created_by,
            transfers: vec![transfer],
            event_type,
            now,
            lifecycle: Lifecycle::default(),
        };
        let prepared = self.settlement(settled, next, refund, Refund::event_payload)?;
        Ok((prepared, payment))
    }
}

impl PendingRecords {
    /// Keeps a new pending refund, if there is room; says whether it did.
    fn remember_refund(&mut self, r: &Refund) -> bool {
        let room = self.refunds.len() < PENDING_RECORDS_MAX;
        if room {
            self.refunds.insert(r.id, r.clone());
        }
        room
    }
}

fn split(
    prepared: Result<WithPayment, Rejection>,
) -> (Result<Prepared<Refund>, Rejection>, Option<Payment>) {
    match prepared {
        Ok((prepared, payment)) => (Ok(prepared), payment),
        Err(rejection) => (Err(rejection), None),
    }
}
