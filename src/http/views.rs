//! How records look on the wire (SPEC §9). Storage keeps full records; what
//! callers see is built here: masked account numbers, no key hashes, the
//! webhook secret only on the caller's own profile. Pay-ins and payouts, the
//! hot path, are serialised field by field straight into the response (no
//! intermediate `Value`); the rarer views are `json!` objects.

use domain::{Payment, Payout, Refund, User, Wallet};
use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::{json, Value};
use std::borrow::Borrow;

/// A pay-in as callers see it. Holds the record by reference for one
/// answer (`payment(&p)`) or by value for a page (`PaymentView(p)`).
pub struct PaymentView<P: Borrow<Payment>>(pub P);

pub fn payment(p: &Payment) -> PaymentView<&Payment> {
    PaymentView(p)
}

impl<P: Borrow<Payment>> Serialize for PaymentView<P> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_struct("Payment", 21)?;
        payment_fields(&mut out, self.0.borrow())?;
        out.end()
    }
}

/// A pay-in with its refunds (the newest, at most a bound), as the
/// responses about one pay-in show it (create, get, manual status).
pub struct PaymentWithRefunds<'a>(pub &'a Payment, pub &'a [Refund]);

impl Serialize for PaymentWithRefunds<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_struct("Payment", 22)?;
        payment_fields(&mut out, self.0)?;
        let refunds: Vec<RefundView<&Refund>> = self.1.iter().map(RefundView).collect();
        out.serialize_field("refunds", &refunds)?;
        out.end()
    }
}

fn payment_fields<S: SerializeStruct>(out: &mut S, p: &Payment) -> Result<(), S::Error> {
    out.serialize_field("id", &p.id)?;
    out.serialize_field("order_id", &p.order_id)?;
    out.serialize_field("merchant_id", &p.merchant_id)?;
    out.serialize_field("created_by", &p.created_by)?;
    out.serialize_field("amount", &p.amount)?;
    out.serialize_field("fee", &p.fee)?;
    out.serialize_field("net_amount", &p.net_amount)?;
    out.serialize_field("currency", &p.currency)?;
    out.serialize_field("status", p.status.as_str())?;
    out.serialize_field("payer", &p.payer)?;
    out.serialize_field("payer_email", &p.payer_email)?;
    out.serialize_field("payer_phone", &p.payer_phone)?;
    out.serialize_field("payer_vpa", &p.payer_vpa)?;
    out.serialize_field("description", &p.description)?;
    out.serialize_field("metadata", &p.metadata)?;
    out.serialize_field("failure_reason", &p.failure_reason)?;
    out.serialize_field("created_at", &p.created_at)?;
    out.serialize_field("updated_at", &p.updated_at)?;
    out.serialize_field("completed_at", &p.completed_at)?;
    out.serialize_field("refunded_amount", &p.refunded_amount)?;
    out.serialize_field("status_reason", &p.status_reason)?;
    Ok(())
}

/// A payout as callers see it: the beneficiary's account number masked.
pub struct PayoutView<P: Borrow<Payout>>(pub P);

pub fn payout(p: &Payout) -> PayoutView<&Payout> {
    PayoutView(p)
}

impl<P: Borrow<Payout>> Serialize for PayoutView<P> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.0.borrow();
        let mut out = s.serialize_struct("Payout", 16)?;
        out.serialize_field("id", &p.id)?;
        out.serialize_field("reference_id", &p.reference_id)?;
        out.serialize_field("merchant_id", &p.merchant_id)?;
        out.serialize_field("created_by", &p.created_by)?;
        out.serialize_field("amount", &p.amount)?;
        out.serialize_field("fee", &p.fee)?;
        out.serialize_field("currency", &p.currency)?;
        out.serialize_field("status", p.status.as_str())?;
        out.serialize_field("beneficiary", &BeneficiaryView(p))?;
        out.serialize_field("mode", &p.mode)?;
        out.serialize_field("purpose", &p.purpose)?;
        out.serialize_field("reason", &p.reason)?;
        out.serialize_field("created_at", &p.created_at)?;
        out.serialize_field("updated_at", &p.updated_at)?;
        out.serialize_field("processed_at", &p.processed_at)?;
        out.serialize_field("utr", &p.utr)?;
        out.end()
    }
}

struct BeneficiaryView<'a>(&'a Payout);

impl Serialize for BeneficiaryView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let b = &self.0.beneficiary;
        let mut out = s.serialize_struct("Beneficiary", 4)?;
        out.serialize_field("name", &b.name)?;
        // A UPI payout has a VPA and no bank account (SPEC §13).
        match &b.vpa {
            Some(vpa) => {
                out.serialize_field("account_number", &None::<String>)?;
                out.serialize_field("ifsc", &None::<String>)?;
                out.serialize_field("vpa", vpa)?;
            }
            None => {
                out.serialize_field("account_number", &b.masked_account())?;
                out.serialize_field("ifsc", &b.ifsc)?;
                out.serialize_field("vpa", &None::<String>)?;
            }
        }
        out.end()
    }
}

/// A refund as callers see it (SPEC §12).
pub struct RefundView<R: Borrow<Refund>>(pub R);

pub fn refund(r: &Refund) -> RefundView<&Refund> {
    RefundView(r)
}

impl<R: Borrow<Refund>> Serialize for RefundView<R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0.borrow();
        let mut out = s.serialize_struct("Refund", 13)?;
        out.serialize_field("id", &r.id)?;
        out.serialize_field("payment_id", &r.payment_id)?;
        out.serialize_field("merchant_id", &r.merchant_id)?;
        out.serialize_field("created_by", &r.created_by)?;
        out.serialize_field("amount", &r.amount)?;
        out.serialize_field("currency", &r.currency)?;
        out.serialize_field("status", r.status.as_str())?;
        out.serialize_field("reason", &r.reason)?;
        out.serialize_field("failure_reason", &r.failure_reason)?;
        out.serialize_field("status_reason", &r.status_reason)?;
        out.serialize_field("created_at", &r.created_at)?;
        out.serialize_field("updated_at", &r.updated_at)?;
        out.serialize_field("processed_at", &r.processed_at)?;
        out.end()
    }
}

pub fn user(u: &User) -> Value {
    json!({
        "id": u.id, "name": u.name, "email": u.email, "role": u.role, "status": u.status,
        "parent_id": u.parent_id, "merchant_id": u.merchant_id, "webhook_url": u.webhook_url,
        "rate_limit_per_min": u.rate_limit_per_min, "payin_fee_bps": u.payin_fee_bps,
        "payout_fee": u.payout_fee, "created_at": u.created_at, "updated_at": u.updated_at,
        "settlement_account": u.settlement_account.as_ref().map(domain::SettlementAccount::view),
        "settlement_reserve": u.settlement_reserve, "last_used_at": u.last_used_at,
    })
}

pub fn balance(w: &Wallet) -> Value {
    json!({
        "merchant_id": w.merchant_id, "currency": w.currency, "available": w.available,
        "held": w.held, "pending_payins": w.pending_payins, "total_payins": w.total_payins,
        "total_payouts": w.total_payouts, "total_fees": w.total_fees, "updated_at": w.updated_at,
    })
}

/// A daily statement (SPEC §15): its canonical fields plus `hash`, amounts
/// as strings with two decimals, so that a client can check the hash by
/// dropping `hash` and hashing the rest with sorted keys and no spaces.
pub fn statement(s: &domain::statement::Statement) -> Value {
    use domain::statement::{hex, two_decimals};
    let money = |m: domain::Money| two_decimals(m.paise());
    let totals: serde_json::Map<String, Value> = {
        let mut kinds: Vec<_> = s.totals.iter().collect();
        kinds.sort_unstable_by_key(|(k, _)| k.as_str());
        kinds
            .into_iter()
            .map(|(k, v)| (k.as_str().to_owned(), Value::String(two_decimals(*v))))
            .collect()
    };
    json!({
        "closing_available": money(s.closing_available),
        "closing_held": money(s.closing_held),
        "date": s.date.to_string(),
        "first_seq": s.first_seq,
        "hash": hex(&s.hash),
        "last_seq": s.last_seq,
        "merchant_id": s.merchant_id,
        "opening_available": money(s.opening_available),
        "opening_held": money(s.opening_held),
        "prev_hash": hex(&s.prev_hash),
        "totals": totals,
        "transfer_count": s.transfer_count,
    })
}

/// An audit log entry (SPEC §16), field by field.
pub fn audit_entry(e: &domain::AuditEntry) -> Value {
    json!({
        "id": e.id, "actor_id": e.actor_id, "action": e.action.as_str(),
        "target_id": e.target_id, "changes": e.changes, "reason": e.reason,
        "request_id": e.request_id, "created_at": e.created_at,
    })
}
