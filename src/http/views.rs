//! How records look on the wire (SPEC §9). Storage keeps full records; what
//! callers see is built here: masked account numbers, no key hashes, the
//! webhook secret only on the caller's own profile.

use domain::{Payment, Payout, User, Wallet};
use serde_json::{json, Value};

pub fn payment(p: &Payment) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}

pub fn payout(p: &Payout) -> Value {
    json!({
        "id": p.id, "reference_id": p.reference_id, "merchant_id": p.merchant_id,
        "created_by": p.created_by, "amount": p.amount, "fee": p.fee, "currency": p.currency,
        "status": p.status.as_str(),
        "beneficiary": {
            "name": p.beneficiary.name,
            "account_number": p.beneficiary.masked_account(),
            "ifsc": p.beneficiary.ifsc,
        },
        "mode": p.mode, "purpose": p.purpose, "reason": p.reason,
        "created_at": p.created_at, "updated_at": p.updated_at, "processed_at": p.processed_at,
    })
}

pub fn user(u: &User) -> Value {
    json!({
        "id": u.id, "name": u.name, "email": u.email, "role": u.role, "status": u.status,
        "parent_id": u.parent_id, "merchant_id": u.merchant_id, "webhook_url": u.webhook_url,
        "rate_limit_per_min": u.rate_limit_per_min, "payin_fee_bps": u.payin_fee_bps,
        "payout_fee": u.payout_fee, "created_at": u.created_at, "updated_at": u.updated_at,
    })
}

pub fn balance(w: &Wallet) -> Value {
    json!({
        "merchant_id": w.merchant_id, "currency": w.currency, "available": w.available,
        "held": w.held, "pending_payins": w.pending_payins, "total_payins": w.total_payins,
        "total_payouts": w.total_payouts, "total_fees": w.total_fees, "updated_at": w.updated_at,
    })
}
