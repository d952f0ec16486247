//! `GET /balance`: the caller's wallet, a named merchant's (admin, manager)
//! or the aggregate of everything in scope.

use super::Ctx;
use crate::http::error::{self, Body};
use crate::http::views;
use domain::{Currency, Rejection, Role, Timestamp, UserId, Wallet};
use hyper::{Response, StatusCode};
use serde_json::json;

pub async fn get(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let directory = &ctx.app.directory;
    let caller = &ctx.caller;
    let named = ctx.query.get("merchant_id");
    let merchant = match caller.role() {
        Role::Merchant | Role::ApiUser => Some(caller.acting_merchant(directory, named, false)?),
        Role::Admin | Role::Manager if named.is_some() => {
            Some(caller.acting_merchant(directory, named, true)?)
        }
        Role::Admin | Role::Manager => None,
    };
    match merchant {
        Some(id) => {
            let wallet = ctx.app.wallets.balance(id).await?;
            Ok(error::ok(StatusCode::OK, &views::balance(&wallet)))
        }
        None => aggregate(ctx),
    }
}

/// Sums the stored wallets of every merchant in the caller's scope.
fn aggregate(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let directory = &ctx.app.directory;
    let merchants: Vec<UserId> = directory
        .merchants()
        .into_iter()
        .filter(|m| ctx.caller.role() == Role::Admin || ctx.caller.manages(directory, m))
        .collect();
    let mut total = Wallet::new(ctx.caller.id(), Currency::Inr, Timestamp::from_unix_ms(0));
    for merchant in &merchants {
        let Some(w) = ctx
            .app
            .store
            .wallet(merchant, Currency::Inr)
            .map_err(|_| Rejection::DatabaseError)?
        else {
            continue;
        };
        let add =
            |a: domain::Money, b: domain::Money| a.checked_add(b).ok_or(Rejection::DatabaseError);
        total.available = add(total.available, w.available)?;
        total.held = add(total.held, w.held)?;
        total.pending_payins = add(total.pending_payins, w.pending_payins)?;
        total.total_payins = add(total.total_payins, w.total_payins)?;
        total.total_payouts = add(total.total_payouts, w.total_payouts)?;
        total.total_fees = add(total.total_fees, w.total_fees)?;
        total.updated_at = total.updated_at.max(w.updated_at);
    }
    let mut view = views::balance(&total);
    view["merchant_id"] = serde_json::Value::Null;
    view["merchants"] = json!(merchants.len());
    Ok(error::ok(StatusCode::OK, &view))
}
