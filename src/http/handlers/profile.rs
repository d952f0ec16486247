//! The caller's own profile: read it (with its merchant's settings and its
//! webhook signing secret), change its name and webhook URL, regenerate its
//! key, rotate its webhook secret.

use super::users::{key_response, webhook_url_field};
use super::Ctx;
use crate::http::error::{self, Body};
use crate::http::request::JsonBody;
use crate::http::views;
use actors::UserPatch;
use domain::{Rejection, Role, User};
use hyper::{Response, StatusCode};
use serde_json::json;

/// Fields of a user that nobody may change through `/profile`.
const FORBIDDEN: [&str; 8] = [
    "role",
    "status",
    "merchant_id",
    "parent_id",
    "payin_fee_bps",
    "payout_fee",
    "rate_limit_per_min",
    "email",
];

fn profile_view(ctx: &Ctx<'_>, user: &User) -> serde_json::Value {
    let mut view = views::user(user);
    view["webhook_secret"] = json!(user.webhook_secret.expose());
    let merchant = user.merchant_id.and_then(|m| ctx.app.directory.get(&m));
    if let Some(m) = merchant {
        let limits = ctx.app.config.core().amount_limits;
        view["merchant_settings"] = json!({
            "merchant_id": m.id, "payin_fee_bps": m.payin_fee_bps, "payout_fee": m.payout_fee,
            "min_amount": limits.min, "max_amount": limits.max, "currency": "INR",
        });
    }
    view
}

pub fn get(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    Ok(error::ok(
        StatusCode::OK,
        &profile_view(ctx, &ctx.caller.user),
    ))
}

pub async fn patch(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let body = JsonBody::parse(&ctx.body)?;
    body.require_some_field()?;
    if let Some(field) = FORBIDDEN.iter().find(|f| body.has(f)) {
        return Err(Rejection::InvalidRequest(format!(
            "{field} cannot be changed through /profile"
        )));
    }
    let patch = UserPatch {
        name: body.non_blank("name", 200)?,
        webhook_url: webhook_url_field(ctx, &body).await?,
        settlement_account: super::settlements::profile_fields(ctx, &body)?,
        ..UserPatch::default()
    };
    let user = ctx
        .app
        .directory
        .update_as(ctx.caller.id(), patch, ctx.audit())
        .await?;
    Ok(error::ok(StatusCode::OK, &profile_view(ctx, &user)))
}

pub async fn regenerate_key(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let (user, key) = ctx
        .app
        .directory
        .regenerate_key_as(ctx.caller.id(), ctx.audit())
        .await?;
    Ok(key_response(StatusCode::OK, &user, &key))
}

pub async fn rotate_secret(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    ctx.caller.require(&[Role::Merchant, Role::ApiUser])?;
    let user = ctx
        .app
        .directory
        .rotate_webhook_secret_as(ctx.caller.id(), ctx.audit())
        .await?;
    Ok(error::ok(StatusCode::OK, &profile_view(ctx, &user)))
}
