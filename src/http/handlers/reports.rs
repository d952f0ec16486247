//! Reports: a summary of pay-ins and payouts by status over a time range.
//! The ledger report lives with the other ledger views in `ledger.rs`.

use super::payments::{db, listing_scope, Filters};
use super::Ctx;
use crate::http::error::{self, Body};
use domain::{Money, PaymentId, PaymentStatus, PayoutId, PayoutStatus, Rejection, UserId};
use hyper::{Response, StatusCode};
use serde_json::json;
use std::collections::BTreeMap;
use storage::{Listing, Scope, Window};

/// Most records a summary adds up per kind; beyond, it says `truncated`.
const SUMMARY_SCAN_MAX: usize = 200_000;

#[derive(Default)]
struct Tally {
    count: u64,
    amount: u128,
    fees: u128,
}

fn money_json(paise: u128) -> serde_json::Value {
    json!(Money::from_paise(u64::try_from(paise).unwrap_or(u64::MAX)))
}

fn tallies_json(
    tallies: &BTreeMap<&'static str, Tally>,
    statuses: &[&'static str],
) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for status in statuses {
        let t = tallies.get(status);
        out.insert(
            (*status).to_owned(),
            json!({ "count": t.map_or(0, |t| t.count), "amount": money_json(t.map_or(0, |t| t.amount)) }),
        );
    }
    serde_json::Value::Object(out)
}

/// What a summary needs of a payment or a payout.
trait Summarised: Sized {
    /// The listing of this kind of record over a scope.
    const LISTING: fn(Scope) -> Listing;
    fn load(store: &storage::Store, id: [u8; 16]) -> Result<Option<Self>, storage::StorageError>;
    fn owners(&self) -> (UserId, UserId);
    fn amount(&self) -> Money;
    fn fee(&self) -> Money;
    fn created_at(&self) -> domain::Timestamp;
    fn status(&self) -> &'static str;
}

impl Summarised for domain::Payment {
    const LISTING: fn(Scope) -> Listing = Listing::Payments;
    fn load(store: &storage::Store, id: [u8; 16]) -> Result<Option<Self>, storage::StorageError> {
        store.payment(&PaymentId::from_bytes(id))
    }
    fn owners(&self) -> (UserId, UserId) {
        (self.merchant_id, self.created_by)
    }
    fn amount(&self) -> Money {
        self.amount
    }
    fn fee(&self) -> Money {
        self.fee
    }
    fn created_at(&self) -> domain::Timestamp {
        self.created_at
    }
    fn status(&self) -> &'static str {
        self.status.as_str()
    }
}

impl Summarised for domain::Payout {
    const LISTING: fn(Scope) -> Listing = Listing::Payouts;
    fn load(store: &storage::Store, id: [u8; 16]) -> Result<Option<Self>, storage::StorageError> {
        store.payout(&PayoutId::from_bytes(id))
    }
    fn owners(&self) -> (UserId, UserId) {
        (self.merchant_id, self.created_by)
    }
    fn amount(&self) -> Money {
        self.amount
    }
    fn fee(&self) -> Money {
        self.fee
    }
    fn created_at(&self) -> domain::Timestamp {
        self.created_at
    }
    fn status(&self) -> &'static str {
        self.status.as_str()
    }
}

/// Counts and sums the caller's records of one kind by status; the bool
/// says whether the scan budget ran out first.
fn tally<R: Summarised>(
    ctx: &Ctx<'_>,
    filters: &Filters,
) -> Result<(BTreeMap<&'static str, Tally>, bool), Rejection> {
    let store = &ctx.app.store;
    let directory = &ctx.app.directory;
    let (from, to) = filters.id_range();
    let mut tallies: BTreeMap<&'static str, Tally> = BTreeMap::new();
    let mut add = |id: &[u8; 16]| {
        if let Some(r) = R::load(store, *id)? {
            let (merchant, created_by) = r.owners();
            if ctx.caller.can_see(directory, &merchant, &created_by)
                && filters.amount_ok(r.amount())
                && filters.time_ok(r.created_at())
            {
                let t = tallies.entry(r.status()).or_default();
                t.count += 1;
                t.amount += u128::from(r.amount().paise());
                t.fees += u128::from(r.fee().paise());
            }
        }
        Ok(false)
    };
    let listing = R::LISTING(listing_scope(ctx, filters.merchant)?);
    let window = Window {
        from_ms: from,
        to_ms: to,
        before: None,
        limit: 1,
        scan_max: SUMMARY_SCAN_MAX,
    };
    let page = store.list(listing, window, &mut add).map_err(db)?;
    Ok((tallies, page.next.is_some()))
}

pub fn summary(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let filters = Filters::parse(ctx)?;
    let (payins, payins_truncated) = tally::<domain::Payment>(ctx, &filters)?;
    let (payouts, payouts_truncated) = tally::<domain::Payout>(ctx, &filters)?;

    let completed = payins.get(PaymentStatus::Completed.as_str());
    let processed = payouts.get(PayoutStatus::Processed.as_str());
    let payin_fees = completed.map_or(0, |t| t.fees);
    let payout_fees = processed.map_or(0, |t| t.fees);
    let credited = completed.map_or(0, |t| t.amount).saturating_sub(payin_fees);
    let debited = processed.map_or(0, |t| t.amount) + payout_fees;
    let data = json!({
        "from": filters.from, "to": filters.to, "currency": "INR",
        "payins": tallies_json(&payins, &["pending", "completed", "failed"]),
        "payouts": tallies_json(&payouts, &["pending", "processed", "rejected"]),
        "fees": { "payins": money_json(payin_fees), "payouts": money_json(payout_fees), "total": money_json(payin_fees + payout_fees) },
        "net": signed_money_json(i128::try_from(credited).unwrap_or(i128::MAX) - i128::try_from(debited).unwrap_or(i128::MAX)),
        "truncated": payins_truncated || payouts_truncated,
    });
    Ok(error::ok(StatusCode::OK, &data))
}

/// An exact JSON number for a signed amount of paise (net can be negative).
fn signed_money_json(paise: i128) -> serde_json::Value {
    let text = rust_decimal::Decimal::try_from_i128_with_scale(paise, 2)
        .map(|d| d.normalize().to_string());
    match text.ok().and_then(|t| t.parse::<serde_json::Number>().ok()) {
        Some(n) => serde_json::Value::Number(n),
        None => serde_json::Value::Null,
    }
}
