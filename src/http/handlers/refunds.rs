//! Refunds (SPEC §12): create one on a completed pay-in (money-moving:
//! answered once durable), list with filters and cursor, get one, and the
//! admin's manual settlement. The rules on amounts are the wallet's.

use super::payments::{self, db, listing_scope, run_listing, Filters};
use super::{cursor, Ctx};
use crate::http::error::{self, Body};
use crate::http::request::JsonBody;
use crate::http::views;
use actors::NewRefund;
use domain::{Payment, PaymentId, Refund, RefundId, RefundStatus, Rejection, Role};
use hyper::{Response, StatusCode};
use storage::{Listing, StorageError, Window};

/// Most refunds a pay-in's view embeds (the newest); `GET /refunds?payment_id=`
/// pages through all of them.
pub const EMBEDDED_REFUNDS_MAX: usize = 100;

pub async fn create(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let payment_id: PaymentId = ctx.path_id()?;
    let body = JsonBody::parse(&ctx.body)?;
    let amount = body.money("amount")?;
    let reason = body.string("reason", 500)?;
    let payment = payments::visible(ctx, &payment_id)?;
    // Whoever may create pay-ins for the pay-in's merchant (and sees it).
    let merchant_id = payment.merchant_id.to_string();
    let merchant = ctx
        .caller
        .acting_merchant(&ctx.app.directory, Some(&merchant_id), true)?;
    let new = NewRefund {
        payment_id,
        amount,
        reason,
        created_by: ctx.caller.id(),
        // Keys are per pay-in: the same key on another pay-in is another request.
        idempotency: ctx.idempotency(&format!("refund:{payment_id}"), &body)?,
    };
    let created = ctx.app.wallets.create_refund(merchant, new).await?;
    let mut response = error::ok(StatusCode::CREATED, &views::refund(&created.record));
    if created.replayed {
        response.headers_mut().insert(
            "idempotent-replayed",
            hyper::header::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

/// The refund, if it exists and the caller may see it; else `not_found`.
fn visible(ctx: &Ctx<'_>, id: &RefundId) -> Result<Refund, Rejection> {
    let refund = ctx
        .app
        .store
        .refund(id)
        .map_err(db)?
        .ok_or(Rejection::NotFound)?;
    if !ctx
        .caller
        .can_see(&ctx.app.directory, &refund.merchant_id, &refund.created_by)
    {
        return Err(Rejection::NotFound);
    }
    Ok(refund)
}

pub fn get(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let id: RefundId = ctx.path_id()?;
    Ok(error::ok(
        StatusCode::OK,
        &views::refund(&visible(ctx, &id)?),
    ))
}

pub async fn set_status(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    ctx.caller.require(&[Role::Admin])?;
    let id: RefundId = ctx.path_id()?;
    let body = JsonBody::parse(&ctx.body)?;
    body.require(&["status", "reason"])?;
    let to = match RefundStatus::parse(&body.required_string("status", 16)?) {
        Some(s @ (RefundStatus::Processed | RefundStatus::Failed)) => s,
        _ => {
            return Err(Rejection::InvalidRequest(
                "status must be 'processed' or 'failed'".into(),
            ))
        }
    };
    let reason = body.required_string("reason", 500)?;
    let refund = visible(ctx, &id)?;
    let settled = ctx
        .app
        .wallets
        .set_refund_status(
            refund.merchant_id,
            id,
            to,
            ctx.audit().with_reason(Some(reason)),
        )
        .await?;
    Ok(error::ok(StatusCode::OK, &views::refund(&settled)))
}

pub fn list(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let filters = Filters::parse(ctx)?;
    let status = match ctx.query.get("status") {
        None => None,
        Some(s) => Some(RefundStatus::parse(s).ok_or_else(|| {
            Rejection::InvalidRequest("status must be pending, processed or failed".into())
        })?),
    };
    let payment_id = match ctx.query.get("payment_id") {
        None => None,
        Some(text) => Some(
            text.parse::<PaymentId>()
                .map_err(|()| Rejection::InvalidRequest("payment_id is not a payment id".into()))?,
        ),
    };
    let before = cursor::<RefundId>(&ctx.query, |id| *id.as_bytes())?;
    let listing = match payment_id {
        Some(p) => Listing::RefundsOfPayment(p),
        None => Listing::Refunds(listing_scope(ctx, filters.merchant)?),
    };
    let store = &ctx.app.store;
    let (items, next) = run_listing(ctx, listing, &filters, before, |id| {
        let refund = store.refund(&RefundId::from_bytes(*id))?;
        Ok(refund
            .filter(|r| {
                status.is_none_or(|s| r.status == s)
                    && filters.merchant.is_none_or(|m| r.merchant_id == m)
                    && filters.amount_ok(r.amount)
                    && filters.time_ok(r.created_at)
                    && ctx
                        .caller
                        .can_see(&ctx.app.directory, &r.merchant_id, &r.created_by)
            })
            .map(views::RefundView))
    })?;
    Ok(error::page(
        &items,
        filters.limit,
        next.map(|id| RefundId::from_bytes(id).to_string()),
    ))
}

/// The newest refunds of a pay-in the caller sees, at most
/// `EMBEDDED_REFUNDS_MAX` (all of them are part of the pay-in's view).
pub fn of_payment(ctx: &Ctx<'_>, payment: &Payment) -> Result<Vec<Refund>, Rejection> {
    let store = &ctx.app.store;
    let mut refunds = Vec::new();
    let window = Window {
        from_ms: None,
        to_ms: None,
        before: None,
        limit: EMBEDDED_REFUNDS_MAX,
        scan_max: EMBEDDED_REFUNDS_MAX,
    };
    store
        .list(
            Listing::RefundsOfPayment(payment.id),
            window,
            |id| -> Result<bool, StorageError> {
                match store.refund(&RefundId::from_bytes(*id))? {
                    Some(r) => {
                        refunds.push(r);
                        Ok(true)
                    }
                    None => Ok(false),
                }
            },
        )
        .map_err(db)?;
    Ok(refunds)
}
