//! Payouts: create (holds amount + fee at once; answered once durable),
//! list, get one, and the admin's manual settlement.

use super::payments::{db, listing_scope, run_listing, Filters};
use super::{cursor, Ctx};
use crate::http::error::{self, Body};
use crate::http::request::JsonBody;
use crate::http::views;
use actors::NewPayout;
use domain::beneficiary::BeneficiaryInput;
use domain::{Currency, Payout, PayoutId, PayoutMode, PayoutStatus, Rejection, Role, UserId};
use hyper::{Response, StatusCode};
use storage::Listing;

pub async fn create(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let body = JsonBody::parse(&ctx.body)?;
    let (merchant, mut new) = new_payout(ctx, &body)?;
    new.idempotency = ctx.idempotency("payout", &body)?;
    let created = ctx.app.wallets.create_payout(merchant, new).await?;
    let mut response = error::ok(StatusCode::CREATED, &views::payout(&created.record));
    if created.replayed {
        response.headers_mut().insert(
            "idempotent-replayed",
            hyper::header::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

/// One payout request body (POST /payouts, or an item of a batch), parsed
/// and checked (SPEC §13 beneficiary rules), with the wallet it is for.
/// Missing fields are `missing_fields`, all of them at once.
pub(super) fn new_payout(ctx: &Ctx<'_>, body: &JsonBody) -> Result<(UserId, NewPayout), Rejection> {
    let beneficiary = body.nested("beneficiary")?;
    let mode = match body.string("mode", 8)? {
        None => PayoutMode::default(),
        Some(m) => PayoutMode::parse(&m).ok_or_else(|| Rejection::InvalidFields {
            message: "mode must be IMPS, NEFT, RTGS or UPI".into(),
            fields: vec!["mode".into()],
        })?,
    };
    let mut missing = match body.require(&["amount", "beneficiary"]) {
        Err(Rejection::MissingFields(fields)) => fields,
        _ => Vec::new(),
    };
    if let Some(b) = &beneficiary {
        let needed: &[&str] = if mode == PayoutMode::Upi {
            &["name", "vpa"]
        } else {
            &["name", "account_number", "ifsc"]
        };
        if let Err(Rejection::MissingFields(fields)) = b.require(needed) {
            missing.extend(fields.into_iter().map(|f| format!("beneficiary.{f}")));
        }
    }
    if !missing.is_empty() {
        return Err(Rejection::MissingFields(missing));
    }
    let merchant_id = body.string("merchant_id", 64)?;
    let merchant = ctx
        .caller
        .acting_merchant(&ctx.app.directory, merchant_id.as_deref(), false)?;
    let b = beneficiary.ok_or_else(|| Rejection::MissingFields(vec!["beneficiary".into()]))?;
    let amount = body
        .money("amount")?
        .ok_or_else(|| Rejection::MissingFields(vec!["amount".into()]))?;
    let input = BeneficiaryInput {
        name: b.required_string("name", 200)?,
        account_number: b.string("account_number", 64)?,
        ifsc: b.string("ifsc", 64)?,
        vpa: b.string("vpa", 1_000)?,
    };
    let beneficiary = domain::beneficiary::check(mode, amount, input)?;
    let new = NewPayout {
        amount,
        currency: body
            .string("currency", 8)?
            .map_or(Ok(Currency::Inr), |c| Currency::parse(&c))?,
        beneficiary,
        mode,
        reference_id: body.string("reference_id", 64)?,
        purpose: body.string("purpose", 200)?,
        created_by: ctx.caller.id(),
        idempotency: None,
        queue_if_low_balance: body.bool("queue_if_low_balance")?.unwrap_or(false),
    };
    Ok((merchant, new))
}

/// `POST /payouts/:id/cancel`: a queued or pending payout → `cancelled`
/// (its hold back to `available`); by whoever may create payouts for its
/// merchant and can see it.
pub async fn cancel(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let id: PayoutId = ctx.path_id()?;
    let body = JsonBody::parse(&ctx.body)?;
    let reason = body.string("reason", 500)?;
    let payout = visible(ctx, &id)?;
    ctx.caller
        .require(&[Role::Admin, Role::Merchant, Role::ApiUser])?;
    let cancelled = ctx
        .app
        .wallets
        .cancel_payout(payout.merchant_id, id, reason)
        .await?;
    Ok(error::ok(StatusCode::OK, &views::payout(&cancelled)))
}

fn visible(ctx: &Ctx<'_>, id: &PayoutId) -> Result<Payout, Rejection> {
    let payout = ctx
        .app
        .store
        .payout(id)
        .map_err(db)?
        .ok_or(Rejection::NotFound)?;
    if !ctx
        .caller
        .can_see(&ctx.app.directory, &payout.merchant_id, &payout.created_by)
    {
        return Err(Rejection::NotFound);
    }
    Ok(payout)
}

pub fn get(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let id: PayoutId = ctx.path_id()?;
    Ok(error::ok(
        StatusCode::OK,
        &views::payout(&visible(ctx, &id)?),
    ))
}

pub async fn set_status(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    ctx.caller.require(&[Role::Admin])?;
    let id: PayoutId = ctx.path_id()?;
    let body = JsonBody::parse(&ctx.body)?;
    body.require(&["status", "reason"])?;
    let to = match PayoutStatus::parse(&body.required_string("status", 16)?) {
        Some(
            s @ (PayoutStatus::Processed
            | PayoutStatus::Rejected
            | PayoutStatus::Cancelled
            | PayoutStatus::Reversed),
        ) => s,
        _ => {
            return Err(Rejection::InvalidRequest(
                "status must be 'processed', 'rejected', 'cancelled' or 'reversed'".into(),
            ))
        }
    };
    let reason = body.required_string("reason", 500)?;
    let payout = visible(ctx, &id)?;
    let wallets = &ctx.app.wallets;
    let merchant = payout.merchant_id;
    let audit = ctx.audit().with_reason(Some(reason.clone()));
    let settled = match to {
        PayoutStatus::Cancelled => {
            wallets
                .cancel_payout_audited(merchant, id, Some(reason), Some(audit))
                .await?
        }
        PayoutStatus::Reversed => wallets.reverse_payout_audited(merchant, id, audit).await?,
        _ => wallets.set_payout_status(merchant, id, to, audit).await?,
    };
    Ok(error::ok(StatusCode::OK, &views::payout(&settled)))
}

pub fn list(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let filters = Filters::parse(ctx)?;
    let status = match ctx.query.get("status") {
        None => None,
        Some(s) => Some(PayoutStatus::parse(s).ok_or_else(|| {
            Rejection::InvalidRequest(
                "status must be queued, pending, processed, rejected, cancelled or reversed".into(),
            )
        })?),
    };
    let before = cursor::<PayoutId>(&ctx.query, |id| *id.as_bytes())?;
    let listing = Listing::Payouts(listing_scope(ctx, filters.merchant)?);
    let store = &ctx.app.store;
    let (items, next) = run_listing(ctx, listing, &filters, before, |id| {
        let payout = store.payout(&PayoutId::from_bytes(*id))?;
        Ok(payout
            .filter(|p| {
                status.is_none_or(|s| p.status == s)
                    && filters.amount_ok(p.amount)
                    && filters.time_ok(p.created_at)
                    && ctx
                        .caller
                        .can_see(&ctx.app.directory, &p.merchant_id, &p.created_by)
            })
            .map(views::PayoutView))
    })?;
    Ok(error::page(
        &items,
        filters.limit,
        next.map(|id| PayoutId::from_bytes(id).to_string()),
    ))
}
