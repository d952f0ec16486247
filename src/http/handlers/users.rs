//! Users: create (answering the key once), list and view the caller's
//! subtree, suspend/reactivate, change role (admin), settings (fees:
//! admin/manager; rate limit: admin), regenerate a sub-user's key.

use super::payments::{db, page_end};
use super::{cursor, Ctx, LIST_SCAN_MAX};
use crate::http::error::{self, Body};
use crate::http::request::JsonBody;
use crate::http::views;
use actors::{NewUser, UserPatch};
use domain::{Rejection, Role, User, UserId, UserStatus};
use hyper::{Response, StatusCode};
use serde_json::json;
use storage::{Listing, Window};

/// `{"user": …, "api_key": …}`: the only response that carries a key.
pub fn key_response(status: StatusCode, user: &User, key: &str) -> Response<Body> {
    error::ok(
        status,
        &json!({ "user": views::user(user), "api_key": key }),
    )
}

/// The `webhook_url` field of a body: absent (`None`), cleared with null
/// (`Some(None)`), or a URL that passed the SSRF guard (`Some(Some(url))`).
pub async fn webhook_url_field(
    ctx: &Ctx<'_>,
    body: &JsonBody,
) -> Result<Option<Option<String>>, Rejection> {
    if !body.has("webhook_url") {
        return Ok(None);
    }
    let Some(url) = body.string("webhook_url", 2_048)? else {
        return Ok(Some(None));
    };
    let allow_private = ctx.app.config.webhook_allow_private;
    match actors::webhook::ssrf::vet_on_save(&url, allow_private).await {
        Ok(vetted) => Ok(Some(Some(vetted))),
        Err(refused) => Err(Rejection::InvalidRequest(refused.0)),
    }
}

fn target(ctx: &Ctx<'_>) -> Result<User, Rejection> {
    // api_users may use no users endpoint (SPEC §4): 403, as for list/create.
    ctx.caller
        .require(&[Role::Admin, Role::Manager, Role::Merchant])?;
    let id: UserId = ctx.path_id()?;
    let user = ctx.app.directory.get(&id).ok_or(Rejection::NotFound)?;
    if !ctx.caller.can_manage_user(&ctx.app.directory, &user) {
        return Err(Rejection::NotFound);
    }
    Ok((*user).clone())
}

pub async fn create(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let caller = &ctx.caller;
    caller.require(&[Role::Admin, Role::Manager, Role::Merchant])?;
    let body = JsonBody::parse(&ctx.body)?;
    body.require(&["name", "role"])?;
    let role = Role::parse(&body.required_string("role", 16)?)?;
    if !caller.role().may_create(role) {
        return Err(Rejection::InsufficientPermissions);
    }
    let parent_id = match body.string("parent_id", 64)? {
        None => caller.id(),
        Some(text) => text
            .parse()
            .map_err(|()| Rejection::InvalidRequest("parent_id is not a user id".into()))?,
    };
    if caller.role() != Role::Admin && !ctx.app.directory.is_within(&caller.id(), &parent_id) {
        return Err(Rejection::InsufficientPermissions);
    }
    let settings = settings(ctx, &body)?;
    let new = NewUser {
        name: body.required_string("name", 200)?,
        email: body.string("email", 254)?,
        role,
        parent_id: Some(parent_id),
        webhook_url: webhook_url_field(ctx, &body).await?.flatten(),
        rate_limit_per_min: settings.rate_limit_per_min,
        payin_fee_bps: settings.payin_fee_bps,
        payout_fee: settings.payout_fee,
    };
    let (user, key) = ctx.app.directory.create_as(new, ctx.audit()).await?;
    Ok(key_response(StatusCode::CREATED, &user, &key))
}

/// Fee and rate-limit settings in a body, refused for callers without the right.
fn settings(ctx: &Ctx<'_>, body: &JsonBody) -> Result<UserPatch, Rejection> {
    let role = ctx.caller.role();
    let patch = UserPatch {
        rate_limit_per_min: body.u32("rate_limit_per_min", 1_000_000)?,
        payin_fee_bps: body.u32("payin_fee_bps", 10_000)?,
        payout_fee: body.money_or_zero("payout_fee")?,
        ..UserPatch::default()
    };
    if patch.rate_limit_per_min == Some(0) {
        return Err(Rejection::InvalidRequest(
            "rate_limit_per_min must be at least 1".into(),
        ));
    }
    if patch.rate_limit_per_min.is_some() && role != Role::Admin {
        return Err(Rejection::InsufficientPermissions);
    }
    if (patch.payin_fee_bps.is_some() || patch.payout_fee.is_some())
        && !matches!(role, Role::Admin | Role::Manager)
    {
        return Err(Rejection::InsufficientPermissions);
    }
    Ok(patch)
}

pub fn get(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    Ok(error::ok(StatusCode::OK, &views::user(&target(ctx)?)))
}

pub async fn patch(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let user = target(ctx)?;
    let body = JsonBody::parse(&ctx.body)?;
    body.require_some_field()?;
    for field in ["merchant_id", "parent_id", "email", "id"] {
        if body.has(field) {
            return Err(Rejection::InvalidRequest(format!(
                "{field} cannot be changed"
            )));
        }
    }
    let mut patch = settings(ctx, &body)?;
    (patch.settlement_account, patch.settlement_reserve) =
        super::settlements::user_fields(ctx, &body, &user)?;
    patch.name = body.non_blank("name", 200)?;
    patch.webhook_url = webhook_url_field(ctx, &body).await?;
    patch.status = match body.string("status", 16)?.as_deref() {
        None => None,
        Some("active") => Some(UserStatus::Active),
        Some("suspended") => Some(UserStatus::Suspended),
        Some(_) => {
            return Err(Rejection::InvalidRequest(
                "status must be 'active' or 'suspended'".into(),
            ))
        }
    };
    // Suspending oneself or an ancestor would block the caller's own key
    // (and, for the first admin, every key) with no way back.
    if patch.status == Some(UserStatus::Suspended)
        && ctx.app.directory.is_within(&user.id, &ctx.caller.id())
    {
        return Err(Rejection::InvalidRequest(
            "you cannot suspend yourself or a user above you".into(),
        ));
    }
    if let Some(role) = body.string("role", 16)? {
        ctx.caller.require(&[Role::Admin])?;
        patch.role = Some(Role::parse(&role)?);
    }
    // An optional reason for the audit log (e.g. why a user is suspended).
    let reason = body.string("reason", 500)?;
    let reactivated = patch.status == Some(UserStatus::Active);
    let audit = ctx.audit().with_reason(reason);
    let updated = ctx.app.directory.update_as(user.id, patch, audit).await?;
    if reactivated {
        ctx.app.limiter.forgive(updated.id.as_bytes());
    }
    Ok(error::ok(StatusCode::OK, &views::user(&updated)))
}

pub async fn regenerate_key(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let user = target(ctx)?;
    let (user, key) = ctx
        .app
        .directory
        .regenerate_key_as(user.id, ctx.audit())
        .await?;
    Ok(key_response(StatusCode::OK, &user, &key))
}

pub fn list(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let caller = &ctx.caller;
    caller.require(&[Role::Admin, Role::Manager, Role::Merchant])?;
    let limit = ctx.query.limit()?;
    let role = ctx.query.get("role").map(Role::parse).transpose()?;
    let status = match ctx.query.get("status") {
        None => None,
        Some("active") => Some(UserStatus::Active),
        Some("suspended") => Some(UserStatus::Suspended),
        Some(_) => {
            return Err(Rejection::InvalidRequest(
                "status must be 'active' or 'suspended'".into(),
            ))
        }
    };
    let before = cursor::<UserId>(&ctx.query, |id| *id.as_bytes())?;
    let directory = &ctx.app.directory;
    // A merchant and its api_users.
    let merchant = caller.merchant_filter(directory, ctx.query.get("merchant_id"))?;
    let mut items = Vec::new();
    let mut keep = |id: &[u8; 16]| {
        let user = directory.get(&UserId::from_bytes(*id));
        let shown = user.filter(|u| {
            role.is_none_or(|r| u.role == r)
                && status.is_none_or(|s| u.status == s)
                && merchant.is_none_or(|m| u.merchant_id == Some(m))
                && caller.can_manage_user(directory, u)
        });
        Ok(match shown {
            Some(u) => {
                items.push(views::user(&u));
                true
            }
            None => false,
        })
    };
    let store = &ctx.app.store;
    // The admin sees everyone; anyone else, the users below them.
    let listing = Listing::Users((caller.role() != Role::Admin).then(|| caller.id()));
    let window = Window {
        from_ms: None,
        to_ms: None,
        before,
        limit: limit + 1,
        scan_max: LIST_SCAN_MAX,
    };
    let page = store.list(listing, window, &mut keep).map_err(db)?;
    let next = page_end(&mut items, &page, limit);
    Ok(error::page(
        &items,
        limit,
        next.map(|id| UserId::from_bytes(id).to_string()),
    ))
}
