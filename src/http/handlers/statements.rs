//! Daily statements (SPEC §15): the list, one day (JSON or CSV), and the
//! chain's verification against the ledger. Statements are written by the
//! core's statement writer once a UTC day closes; these only read them.
//! Admins and managers name the merchant (`merchant_id`, in their scope);
//! merchants and api_users see their own merchant's.

use super::payments::db;
use super::Ctx;
use crate::http::error::{self, Body};
use crate::http::views;
use domain::statement::{two_decimals, Date, Statement};
use domain::{Rejection, TransferKind, UserId};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use std::fmt::Write as _;

fn merchant(ctx: &Ctx<'_>) -> Result<UserId, Rejection> {
    ctx.caller
        .acting_merchant(&ctx.app.directory, ctx.query.get("merchant_id"), true)
}

fn date_param(ctx: &Ctx<'_>, name: &str) -> Result<Option<Date>, Rejection> {
    ctx.query
        .get(name)
        .map(|v| {
            Date::parse(v).ok_or_else(|| {
                Rejection::InvalidRequest(format!("{name} must be a YYYY-MM-DD date"))
            })
        })
        .transpose()
}

/// `GET /statements?from&to`: days in `[from, to)`, newest first; `cursor`
/// is the date of the last statement of the previous page.
pub fn list(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let merchant = merchant(ctx)?;
    let from = date_param(ctx, "from")?.unwrap_or(Date::from_days(i32::MIN));
    let to = date_param(ctx, "to")?.unwrap_or(Date::from_days(i32::MAX));
    let before = match ctx.query.get("cursor") {
        None => to,
        Some(text) => Date::parse(text)
            .ok_or_else(|| Rejection::InvalidRequest("cursor is not valid".into()))?
            .min(to),
    };
    let limit = ctx.query.limit()?;
    let mut found = ctx
        .app
        .store
        .statements_newest(&merchant, from, before, limit + 1)
        .map_err(db)?;
    let next = (found.len() > limit).then(|| {
        found.truncate(limit);
        found.last().map(|s| s.date.to_string())
    });
    let items: Vec<Value> = found.iter().map(views::statement).collect();
    Ok(error::page(&items, limit, next.flatten()))
}

/// `GET /statements/:date` (`format=json|csv`). A day not written (not
/// closed yet, or before the merchant's first transfer) is `not_found`.
pub fn get(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let date: Date = ctx.id.and_then(Date::parse).ok_or(Rejection::NotFound)?;
    let csv = match ctx.query.get("format") {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(Rejection::InvalidRequest("format is json or csv".into())),
    };
    let merchant = merchant(ctx)?;
    let statement = ctx
        .app
        .store
        .statement(&merchant, date)
        .map_err(db)?
        .ok_or(Rejection::NotFound)?;
    if csv {
        return Ok(statement_csv(&statement));
    }
    Ok(error::ok(StatusCode::OK, &views::statement(&statement)))
}

/// One statement as CSV: a header and one line; one column per transfer
/// kind (0.00 where none moved).
fn statement_csv(s: &Statement) -> Response<Body> {
    let mut out = String::from(
        "merchant_id,date,opening_available,opening_held,closing_available,closing_held,\
         transfer_count,first_seq,last_seq",
    );
    for kind in TransferKind::ALL {
        out.push(',');
        out.push_str(kind.as_str());
    }
    out.push_str(",prev_hash,hash\n");
    let seq = |s: Option<u64>| s.map(|n| n.to_string()).unwrap_or_default();
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{},{},{},{},{},{},{},{},{}",
        s.merchant_id,
        s.date,
        two_decimals(s.opening_available.paise()),
        two_decimals(s.opening_held.paise()),
        two_decimals(s.closing_available.paise()),
        two_decimals(s.closing_held.paise()),
        s.transfer_count,
        seq(s.first_seq),
        seq(s.last_seq),
    );
    for kind in TransferKind::ALL {
        let amount = s
            .totals
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, v)| *v);
        let _ = write!(out, ",{}", two_decimals(amount));
    }
    let _ = writeln!(
        out,
        ",{},{}",
        domain::statement::hex(&s.prev_hash),
        domain::statement::hex(&s.hash)
    );
    let mut response = error::text(StatusCode::OK, "text/csv; charset=utf-8", out);
    if let Ok(value) = hyper::header::HeaderValue::from_str(&format!(
        "attachment; filename=\"statement-{}.csv\"",
        s.date
    )) {
        response.headers_mut().insert("content-disposition", value);
    }
    response
}

/// `GET /statements/verify`: recomputes the merchant's chain from its
/// ledger and compares it with the stored statements.
pub async fn verify(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let merchant = merchant(ctx)?;
    let store = ctx.app.store.clone();
    let verifier = ctx.app.statements.clone();
    let verdict = tokio::task::spawn_blocking(move || verifier.verify(&store, &merchant))
        .await
        .map_err(|_| Rejection::DatabaseError)?
        .map_err(db)?;
    let first_bad = verdict.first_bad.map(|d| d.to_string());
    Ok(error::ok(
        StatusCode::OK,
        &json!({ "ok": verdict.ok, "first_bad": first_bad }),
    ))
}
