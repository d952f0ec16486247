//! Pay-ins: create (money-moving: answered once durable), list with filters
//! and cursor, get one, and the admin's manual settlement.

use super::{cursor, Ctx, LIST_SCAN_MAX};
use crate::http::error::{self, Body};
use crate::http::request::JsonBody;
use crate::http::views;
use actors::NewPayin;
use domain::{
    Currency, Money, Payment, PaymentId, PaymentStatus, Rejection, Role, Timestamp, UserId,
};
use hyper::{Response, StatusCode};
use storage::{Listing, Page, Scope, StorageError, Window};

pub async fn create(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let body = JsonBody::parse(&ctx.body)?;
    body.require(&["order_id", "amount", "payer"])?;
    let merchant_id = body.string("merchant_id", 64)?;
    let merchant = ctx
        .caller
        .acting_merchant(&ctx.app.directory, merchant_id.as_deref(), true)?;
    let new = NewPayin {
        order_id: body.required_string("order_id", 64)?,
        amount: body
            .money("amount")?
            .ok_or_else(|| Rejection::MissingFields(vec!["amount".into()]))?,
        currency: body
            .string("currency", 8)?
            .map_or(Ok(Currency::Inr), |c| Currency::parse(&c))?,
        payer: body.required_string("payer", 200)?,
        payer_email: body.string("payer_email", 254)?,
        payer_phone: body.string("payer_phone", 32)?,
        payer_vpa: body.string("payer_vpa", 100)?,
        description: body.string("description", 500)?,
        metadata: body.object("metadata", 4_096)?,
        created_by: ctx.caller.id(),
        idempotency: ctx.idempotency("payin", &body)?,
    };
    let created = ctx.app.wallets.create_payin(merchant, new).await?;
    // A new pay-in has no refunds yet.
    let view = views::PaymentWithRefunds(&created.record, &[]);
    let mut response = error::ok(StatusCode::CREATED, &view);
    if created.replayed {
        response.headers_mut().insert(
            "idempotent-replayed",
            hyper::header::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

pub fn get(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let id: PaymentId = ctx.path_id()?;
    let payment = visible(ctx, &id)?;
    let refunds = super::refunds::of_payment(ctx, &payment)?;
    Ok(error::ok(
        StatusCode::OK,
        &views::PaymentWithRefunds(&payment, &refunds),
    ))
}

/// The payment, if it exists and the caller may see it; else `not_found`.
pub(super) fn visible(ctx: &Ctx<'_>, id: &PaymentId) -> Result<Payment, Rejection> {
    let payment = ctx
        .app
        .store
        .payment(id)
        .map_err(db)?
        .ok_or(Rejection::NotFound)?;
    if !ctx.caller.can_see(
        &ctx.app.directory,
        &payment.merchant_id,
        &payment.created_by,
    ) {
        return Err(Rejection::NotFound);
    }
    Ok(payment)
}

pub async fn set_status(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    ctx.caller.require(&[Role::Admin])?;
    let id: PaymentId = ctx.path_id()?;
    let body = JsonBody::parse(&ctx.body)?;
    body.require(&["status", "reason"])?;
    let status = body.required_string("status", 16)?;
    let to = match PaymentStatus::parse(&status) {
        Some(s @ (PaymentStatus::Completed | PaymentStatus::Failed)) => s,
        _ => {
            return Err(Rejection::InvalidRequest(
                "status must be 'completed' or 'failed'".into(),
            ))
        }
    };
    let reason = body.required_string("reason", 500)?;
    let payment = visible(ctx, &id)?;
    let settled = ctx
        .app
        .wallets
        .set_payin_status(
            payment.merchant_id,
            id,
            to,
            ctx.audit().with_reason(Some(reason)),
        )
        .await?;
    let refunds = super::refunds::of_payment(ctx, &settled)?;
    Ok(error::ok(
        StatusCode::OK,
        &views::PaymentWithRefunds(&settled, &refunds),
    ))
}

/// Filters shared by the payment and payout listings.
pub struct Filters {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub min_amount: Option<Money>,
    pub max_amount: Option<Money>,
    pub merchant: Option<UserId>,
    pub limit: usize,
}

impl Filters {
    pub fn parse(ctx: &Ctx<'_>) -> Result<Filters, Rejection> {
        let q = &ctx.query;
        let merchant = ctx
            .caller
            .merchant_filter(&ctx.app.directory, q.get("merchant_id"))?;
        let filters = Filters {
            from: q.timestamp("from")?,
            to: q.timestamp("to")?,
            min_amount: q.money("min_amount")?,
            max_amount: q.money("max_amount")?,
            merchant,
            limit: q.limit()?,
        };
        // `from` after `to` is an empty range (an empty page), not an error:
        // a schema cannot say that one parameter must not pass another.
        Ok(filters)
    }

    pub fn amount_ok(&self, amount: Money) -> bool {
        self.min_amount.is_none_or(|m| amount >= m) && self.max_amount.is_none_or(|m| amount <= m)
    }

    pub fn time_ok(&self, at: Timestamp) -> bool {
        self.from.is_none_or(|f| at >= f) && self.to.is_none_or(|t| at < t)
    }

    /// The id-time range (ms) to scan for `from`/`to`. A record's id is
    /// made just after its `created_at` is read, so it may carry a later
    /// millisecond: the upper end is widened by `ID_CLOCK_SLACK_MS` and
    /// `time_ok` then decides exactly on `created_at`.
    pub fn id_range(&self) -> (Option<i64>, Option<i64>) {
        (
            self.from.map(Timestamp::unix_ms),
            self.to
                .map(|t| t.unix_ms().saturating_add(ID_CLOCK_SLACK_MS)),
        )
    }
}

/// Most milliseconds a record's id may run ahead of its `created_at`.
pub const ID_CLOCK_SLACK_MS: i64 = 1_000;

/// Whose pay-ins or payouts the caller lists, given a `merchant_id` filter
/// that `Caller::merchant_filter` has checked.
pub fn listing_scope(ctx: &Ctx<'_>, merchant_filter: Option<UserId>) -> Result<Scope, Rejection> {
    let caller = &ctx.caller;
    Ok(match (caller.role(), merchant_filter) {
        (Role::Admin, None) => Scope::All,
        (Role::Manager, None) => Scope::Team(caller.id()),
        (Role::Admin | Role::Manager, Some(m)) => Scope::Merchant(m),
        (Role::Merchant, _) => Scope::Merchant(caller.id()),
        (Role::ApiUser, _) => Scope::CreatedBy(caller.id()),
    })
}

/// Runs a newest-first listing, keeping records that `keep` accepts, at
/// most `limit`.
pub fn run_listing<T>(
    ctx: &Ctx<'_>,
    listing: Listing,
    filters: &Filters,
    before: Option<[u8; 16]>,
    mut keep: impl FnMut(&[u8; 16]) -> Result<Option<T>, StorageError>,
) -> Result<(Vec<T>, Option<[u8; 16]>), Rejection> {
    let store = &ctx.app.store;
    let mut items = Vec::new();
    let mut collect = |id: &[u8; 16]| -> Result<bool, StorageError> {
        match keep(id)? {
            Some(item) => {
                items.push(item);
                Ok(true)
            }
            None => Ok(false),
        }
    };
    let (from_ms, to_ms) = filters.id_range();
    let window = Window {
        from_ms,
        to_ms,
        before,
        limit: filters.limit + 1,
        scan_max: LIST_SCAN_MAX,
    };
    let page: Page = store.list(listing, window, &mut collect).map_err(db)?;
    let next = page_end(&mut items, &page, filters.limit);
    Ok((items, next))
}

/// The cursor after a page that the store filled with up to `limit + 1`
/// matches (`items` holds them too and is cut to `limit`): one match more
/// than the page holds means more exist, so `has_more` is exact under
/// filters; otherwise only a scan cut short by `LIST_SCAN_MAX` has more.
pub fn page_end<T>(items: &mut Vec<T>, page: &Page, limit: usize) -> Option<[u8; 16]> {
    if page.ids.len() > limit {
        items.truncate(limit);
        limit.checked_sub(1).and_then(|i| page.ids.get(i)).copied()
    } else {
        page.next
    }
}

pub fn list(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let filters = Filters::parse(ctx)?;
    let status = match ctx.query.get("status") {
        None => None,
        Some(s) => Some(PaymentStatus::parse(s).ok_or_else(|| {
            Rejection::InvalidRequest("status must be pending, completed or failed".into())
        })?),
    };
    let before = cursor::<PaymentId>(&ctx.query, |id| *id.as_bytes())?;
    let scope = listing_scope(ctx, filters.merchant)?;
    let store = &ctx.app.store;
    let matches = |p: &Payment| {
        status.is_none_or(|s| p.status == s)
            && filters.amount_ok(p.amount)
            && filters.time_ok(p.created_at)
            && ctx
                .caller
                .can_see(&ctx.app.directory, &p.merchant_id, &p.created_by)
    };
    if let Some(order_id) = ctx.query.get("order_id") {
        // An order id is unique per merchant: one lookup, no scan.
        let merchant = match (scope, ctx.caller.user.merchant_id) {
            (Scope::Merchant(m), _) => Some(m),
            (_, Some(m)) => Some(m),
            _ => filters.merchant,
        }
        .ok_or_else(|| Rejection::MissingFields(vec!["merchant_id".into()]))?;
        let payment = store.payment_by_order_id(&merchant, order_id).map_err(db)?;
        let items: Vec<_> = payment
            .filter(|p| matches(p))
            .map(views::PaymentView)
            .into_iter()
            .collect();
        return Ok(error::page(&items, filters.limit, None));
    }
    let listing = Listing::Payments(scope);
    let (items, next) = run_listing(ctx, listing, &filters, before, |id| {
        let payment = store.payment(&PaymentId::from_bytes(*id))?;
        Ok(payment.filter(|p| matches(p)).map(views::PaymentView))
    })?;
    Ok(error::page(
        &items,
        filters.limit,
        next.map(|id| PaymentId::from_bytes(id).to_string()),
    ))
}

pub fn db(e: StorageError) -> Rejection {
    tracing::error!(error = %e, "storage read failed");
    Rejection::DatabaseError
}
