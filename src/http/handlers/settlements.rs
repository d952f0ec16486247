//! Settlements to merchants' own bank accounts (SPEC §14): on-demand
//! creation (admin), listing (JSON pages or a CSV of the whole selected
//! range), one settlement with the ledger transfers it covers, and the
//! admin's manual status change. Also the `settlement_account` and
//! `settlement_reserve` fields of PATCH /profile and PATCH /users/:id.
//!
//! Scopes: admin every settlement; a manager those of its merchants; a
//! merchant and its api_users the merchant's own. Anything else by id is
//! `not_found`.

use super::payments::{db, page_end};
use super::{cursor, Ctx, LIST_SCAN_MAX};
use crate::http::error::{self, Body};
use crate::http::request::JsonBody;
use domain::{
    Money, Rejection, Role, Settlement, SettlementAccount, SettlementId, SettlementStatus,
    Timestamp, Transfer, UserId,
};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use std::fmt::Write as _;
use storage::{Listing, Page, Scope, StorageError, Window};

/// Most transfers a settlement's detail lists (the first of the range it
/// covers, oldest first); `transfer_count` gives the whole range's size.
pub const DETAIL_TRANSFERS_MAX: usize = 1_000;
/// Most settlements one CSV holds, and most it may read to find them; a
/// larger range is refused (narrow `from`/`to`), never cut silently.
const CSV_ROWS_MAX: usize = 100_000;
const CSV_SCAN_MAX: usize = 10 * CSV_ROWS_MAX;

/// A settlement as callers see it: the account number masked.
pub fn view(s: &Settlement) -> Value {
    json!({
        "id": s.id, "merchant_id": s.merchant_id, "amount": s.amount,
        "currency": s.currency, "status": s.status.as_str(), "utr": s.utr,
        "failure_reason": s.failure_reason, "reason": s.reason,
        "settlement_account": s.settlement_account.view(),
        "first_seq": s.first_seq, "last_seq": s.last_seq,
        "created_at": s.created_at, "updated_at": s.updated_at,
        "processed_at": s.processed_at,
    })
}

/// Whether the caller may see `merchant`'s settlements.
fn may_see(ctx: &Ctx<'_>, merchant: &UserId) -> bool {
    let caller = &ctx.caller;
    match caller.role() {
        Role::Admin => true,
        Role::Manager => caller.manages(&ctx.app.directory, merchant),
        Role::Merchant => caller.id() == *merchant,
        Role::ApiUser => caller.user.merchant_id == Some(*merchant),
    }
}

fn visible(ctx: &Ctx<'_>, id: &SettlementId) -> Result<Settlement, Rejection> {
    let settlement = ctx
        .app
        .store
        .settlement(id)
        .map_err(db)?
        .ok_or(Rejection::NotFound)?;
    if !may_see(ctx, &settlement.merchant_id) {
        return Err(Rejection::NotFound);
    }
    Ok(settlement)
}

/// `POST /settlements` {merchant_id}: settle that merchant now (admin).
pub async fn create(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    ctx.caller.require(&[Role::Admin])?;
    let body = JsonBody::parse(&ctx.body)?;
    body.require(&["merchant_id"])?;
    let named = body.required_string("merchant_id", 64)?;
    let merchant = ctx
        .caller
        .merchant_filter(&ctx.app.directory, Some(&named))?
        .ok_or_else(|| Rejection::MissingFields(vec!["merchant_id".into()]))?;
    let settlement = ctx.app.wallets.create_settlement(merchant).await?;
    Ok(error::ok(StatusCode::CREATED, &view(&settlement)))
}

/// `GET /settlements/:id`, with the merchant-ledger transfers it covers.
pub fn get(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let id: SettlementId = ctx.path_id()?;
    let settlement = visible(ctx, &id)?;
    let transfers = covered(ctx, &settlement)?;
    let mut out = view(&settlement);
    out["transfer_count"] = json!(settlement
        .last_seq
        .saturating_sub(settlement.first_seq)
        .saturating_add(1));
    out["transfers"] = Value::Array(transfers.iter().map(transfer_json).collect());
    Ok(error::ok(StatusCode::OK, &out))
}

/// The merchant-ledger transfers a settlement covers, oldest first, at
/// most `DETAIL_TRANSFERS_MAX`.
fn covered(ctx: &Ctx<'_>, s: &Settlement) -> Result<Vec<Transfer>, Rejection> {
    let store = &ctx.app.store;
    let mut out = Vec::new();
    let mut from = s.first_posting.max(1);
    while out.len() < DETAIL_TRANSFERS_MAX && from <= s.last_posting {
        let batch = store.ledger(&s.merchant_id, from, 512).map_err(db)?;
        let Some(last) = batch.last().map(|t| t.posting) else {
            break;
        };
        for t in batch {
            if t.posting > s.last_posting || out.len() == DETAIL_TRANSFERS_MAX {
                return Ok(out);
            }
            if t.seq > 0 {
                out.push(t);
            }
        }
        from = last.saturating_add(1);
    }
    Ok(out)
}

fn transfer_json(t: &Transfer) -> Value {
    json!({
        "id": t.id, "seq": t.seq, "merchant_id": t.merchant_id, "kind": t.kind.as_str(),
        "debit_account": t.debit_account(), "credit_account": t.credit_account(),
        "amount": t.amount, "currency": t.currency, "reference": t.reference,
        "available_after": t.available_after, "held_after": t.held_after,
        "created_at": t.created_at,
    })
}

/// `POST /settlements/:id/status` {status, reason} (admin): the manual path.
pub async fn set_status(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    ctx.caller.require(&[Role::Admin])?;
    let id: SettlementId = ctx.path_id()?;
    let body = JsonBody::parse(&ctx.body)?;
    body.require(&["status", "reason"])?;
    let to = match SettlementStatus::parse(&body.required_string("status", 16)?) {
        Some(s @ (SettlementStatus::Processed | SettlementStatus::Failed)) => s,
        _ => {
            return Err(Rejection::InvalidRequest(
                "status must be 'processed' or 'failed'".into(),
            ))
        }
    };
    let reason = body.required_string("reason", 500)?;
    let settlement = visible(ctx, &id)?;
    let settled = ctx
        .app
        .wallets
        .set_settlement_status(
            settlement.merchant_id,
            id,
            to,
            ctx.audit().with_reason(Some(reason)),
        )
        .await?;
    Ok(error::ok(StatusCode::OK, &view(&settled)))
}

/// `GET /settlements`: newest first; filters `status`, `from`, `to`,
/// `merchant_id`; `format=csv` for the whole selected range.
pub fn list(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let q = &ctx.query;
    let caller = &ctx.caller;
    let named = caller.merchant_filter(&ctx.app.directory, q.get("merchant_id"))?;
    let status = match q.get("status") {
        None => None,
        Some(s) => Some(SettlementStatus::parse(s).ok_or_else(|| {
            Rejection::InvalidRequest("status must be pending, processed or failed".into())
        })?),
    };
    let from = q.timestamp("from")?;
    let to = q.timestamp("to")?;
    let csv = match q.get("format") {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(Rejection::InvalidRequest("format is json or csv".into())),
    };
    let limit = q.limit()?;
    let before = cursor::<SettlementId>(q, |id| *id.as_bytes())?;
    let scope = match (caller.role(), named) {
        (Role::Admin, None) => Scope::All,
        (Role::Manager, None) => Scope::Team(caller.id()),
        (Role::Admin | Role::Manager, Some(m)) => Scope::Merchant(m),
        (Role::Merchant, _) => Scope::Merchant(caller.id()),
        (Role::ApiUser, _) => Scope::Merchant(
            caller
                .user
                .merchant_id
                .ok_or(Rejection::InsufficientPermissions)?,
        ),
    };
    let time_ok = |at: Timestamp| from.is_none_or(|f| at >= f) && to.is_none_or(|t| at < t);
    let store = &ctx.app.store;
    let mut items: Vec<Settlement> = Vec::new();
    let mut keep = |id: &[u8; 16]| -> Result<bool, StorageError> {
        let found = store.settlement(&SettlementId::from_bytes(*id))?;
        let shown = found.filter(|s| {
            status.is_none_or(|st| s.status == st)
                && time_ok(s.created_at)
                && may_see(ctx, &s.merchant_id)
        });
        Ok(match shown {
            Some(s) => {
                items.push(s);
                true
            }
            None => false,
        })
    };
    // A settlement's id is made before its `created_at` is read from it:
    // the id's time is `created_at`, so `from`/`to` bound the scan exactly.
    let (from_ms, to_ms) = (from.map(Timestamp::unix_ms), to.map(Timestamp::unix_ms));
    if !csv {
        let window = Window {
            from_ms,
            to_ms,
            before,
            limit: limit + 1,
            scan_max: LIST_SCAN_MAX,
        };
        let page = store
            .list(Listing::Settlements(scope), window, &mut keep)
            .map_err(db)?;
        let next = page_end(&mut items, &page, limit);
        let views: Vec<Value> = items.iter().map(view).collect();
        return Ok(error::page(
            &views,
            limit,
            next.map(|id| SettlementId::from_bytes(id).to_string()),
        ));
    }
    // CSV: every page of the range, or a clear refusal if it is too large.
    let too_large = || {
        Rejection::InvalidRequest(format!(
            "the selected range is too large for one CSV ({CSV_ROWS_MAX} settlements, \
             {CSV_SCAN_MAX} read): narrow from/to"
        ))
    };
    let mut position = before;
    let (mut rows, mut scanned) = (0usize, 0usize);
    loop {
        let window = Window {
            from_ms,
            to_ms,
            before: position,
            limit: 1_000,
            scan_max: 10_000,
        };
        let page: Page = store
            .list(Listing::Settlements(scope), window, &mut keep)
            .map_err(db)?;
        rows = rows.saturating_add(page.ids.len());
        scanned = scanned.saturating_add(10_000);
        if rows > CSV_ROWS_MAX || scanned > CSV_SCAN_MAX {
            return Err(too_large());
        }
        match page.next {
            Some(next) => position = Some(next),
            None => break,
        }
    }
    Ok(settlements_csv(&items))
}

fn settlements_csv(items: &[Settlement]) -> Response<Body> {
    let mut out = String::from(
        "id,merchant_id,amount,currency,status,utr,failure_reason,reason,account_name,account_number,ifsc,first_seq,last_seq,created_at,updated_at,processed_at\n",
    );
    for s in items {
        let opt_time = |t: Option<Timestamp>| t.map(|t| t.to_string()).unwrap_or_default();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            s.id,
            s.merchant_id,
            s.amount,
            s.currency.as_str(),
            s.status.as_str(),
            s.utr.as_deref().unwrap_or(""),
            csv_field(s.failure_reason.as_deref().unwrap_or("")),
            csv_field(s.reason.as_deref().unwrap_or("")),
            csv_field(&s.settlement_account.name),
            s.settlement_account.masked_account(),
            csv_field(&s.settlement_account.ifsc),
            s.first_seq,
            s.last_seq,
            s.created_at,
            s.updated_at,
            opt_time(s.processed_at),
        );
    }
    let mut response = error::text(StatusCode::OK, "text/csv; charset=utf-8", out);
    response.headers_mut().insert(
        "content-disposition",
        hyper::header::HeaderValue::from_static("attachment; filename=\"settlements.csv\""),
    );
    response
}

/// A free-text CSV field: quoted when it holds a separator, a quote or a
/// line break, and never read as a formula by a spreadsheet.
fn csv_field(text: &str) -> String {
    let mut text = text.to_owned();
    if text.starts_with(['=', '+', '-', '@']) {
        text.insert(0, '\'');
    }
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The `settlement_account` field of a PATCH body: absent (`None`),
/// removed with null (`Some(None)`), or a valid account.
pub fn account_field(body: &JsonBody) -> Result<Option<Option<SettlementAccount>>, Rejection> {
    if !body.has("settlement_account") {
        return Ok(None);
    }
    let Some(nested) = body.nested("settlement_account")? else {
        return Ok(Some(None));
    };
    if let Err(Rejection::MissingFields(fields)) =
        nested.require(&["name", "account_number", "ifsc"])
    {
        let fields = fields
            .into_iter()
            .map(|f| format!("settlement_account.{f}"))
            .collect();
        return Err(Rejection::MissingFields(fields));
    }
    let wrong_type = |why: Rejection| match why {
        Rejection::InvalidRequest(m) => {
            Rejection::InvalidRequest(format!("settlement_account.{m}"))
        }
        other => other,
    };
    let account = SettlementAccount {
        name: nested
            .required_string("name", domain::settlement::ACCOUNT_NAME_MAX)
            .map_err(wrong_type)?,
        account_number: nested
            .required_string("account_number", 18)
            .map_err(wrong_type)?,
        ifsc: nested.required_string("ifsc", 11).map_err(wrong_type)?,
    };
    account.validate().map_err(|fields| {
        Rejection::InvalidRequest(format!(
            "invalid {}: the IFSC must match ^[A-Z]{{4}}0[A-Z0-9]{{6}}$, the account number \
             must be 9 to 18 digits and the name must not be blank",
            fields.join(", ")
        ))
    })?;
    Ok(Some(Some(account)))
}

/// The settlement fields of PATCH /profile: a merchant sets its own
/// account; nobody sets a reserve there.
pub fn profile_fields(
    ctx: &Ctx<'_>,
    body: &JsonBody,
) -> Result<Option<Option<SettlementAccount>>, Rejection> {
    if body.has("settlement_reserve") {
        return Err(Rejection::InvalidRequest(
            "settlement_reserve cannot be changed through /profile".into(),
        ));
    }
    let account = account_field(body)?;
    if account.is_some() && ctx.caller.role() != Role::Merchant {
        return Err(Rejection::InvalidRequest(
            "only a merchant has a settlement account".into(),
        ));
    }
    Ok(account)
}

/// The settlement fields of PATCH /users/:id: admins and managers set a
/// merchant's account and reserve.
pub fn user_fields(
    ctx: &Ctx<'_>,
    body: &JsonBody,
    target: &domain::User,
) -> Result<(Option<Option<SettlementAccount>>, Option<Money>), Rejection> {
    let account = account_field(body)?;
    let reserve = body.money_or_zero("settlement_reserve")?;
    if account.is_none() && reserve.is_none() {
        return Ok((None, None));
    }
    if !matches!(ctx.caller.role(), Role::Admin | Role::Manager) {
        return Err(Rejection::InsufficientPermissions);
    }
    if target.role != Role::Merchant {
        return Err(Rejection::InvalidRequest(
            "only merchants have a settlement account and reserve".into(),
        ));
    }
    Ok((account, reserve))
}
