//! `GET /audit-log` (SPEC §16): the admin sees every entry; a manager or a
//! merchant the entries whose target is in its subtree (a user under it or
//! itself, or a record of a merchant under it); an api_user nothing (403).
//! Filters `actor_id`, `target_id`, `action`, `merchant_id`, `from`, `to`;
//! newest first, cursor pages.

use super::payments::{db, page_end};
use super::{cursor, Ctx, LIST_SCAN_MAX};
use crate::http::error::{self, Body};
use crate::http::views;
use domain::{
    AuditAction, AuditId, PaymentId, PayoutId, RefundId, Rejection, Role, SettlementId, UserId,
};
use hyper::Response;
use storage::{Listing, StorageError, Window};

/// A `target_id` filter: any id an entry may target, checked for its form.
fn target_filter(text: Option<&str>) -> Result<Option<String>, Rejection> {
    let Some(text) = text else { return Ok(None) };
    let known = text.parse::<UserId>().is_ok()
        || text.parse::<PaymentId>().is_ok()
        || text.parse::<PayoutId>().is_ok()
        || text.parse::<RefundId>().is_ok()
        || text.parse::<SettlementId>().is_ok();
    if known {
        Ok(Some(text.to_owned()))
    } else {
        Err(Rejection::InvalidRequest(
            "target_id is not a usr_, txn_, po_, rf_ or st_ id".into(),
        ))
    }
}

pub fn list(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let caller = &ctx.caller;
    caller.require(&[Role::Admin, Role::Manager, Role::Merchant])?;
    let q = &ctx.query;
    let actor = q
        .get("actor_id")
        .map(|t| {
            t.parse::<UserId>()
                .map_err(|()| Rejection::InvalidRequest("actor_id is not a user id".into()))
        })
        .transpose()?;
    let target = target_filter(q.get("target_id"))?;
    let action = q
        .get("action")
        .map(|t| {
            AuditAction::parse(t)
                .ok_or_else(|| Rejection::InvalidRequest(format!("unknown action '{t}'")))
        })
        .transpose()?;
    let from = q.timestamp("from")?;
    let to = q.timestamp("to")?;
    let limit = q.limit()?;
    let before = cursor::<AuditId>(q, |id| *id.as_bytes())?;
    let named = caller.merchant_filter(&ctx.app.directory, q.get("merchant_id"))?;
    // Whose subtree: a named merchant's, else the caller's (the admin: all).
    let owner = named.or((caller.role() != Role::Admin).then(|| caller.id()));
    let store = &ctx.app.store;
    let mut items = Vec::new();
    let mut keep = |id: &[u8; 16]| -> Result<bool, StorageError> {
        let Some(entry) = store.audit_entry(&AuditId::from_bytes(*id))? else {
            return Ok(false);
        };
        let shown = actor.is_none_or(|a| entry.actor_id == Some(a))
            && target.as_deref().is_none_or(|t| entry.target_id == t)
            && action.is_none_or(|a| entry.action == a)
            && from.is_none_or(|f| entry.created_at >= f)
            && to.is_none_or(|t| entry.created_at < t);
        if shown {
            items.push(views::audit_entry(&entry));
        }
        Ok(shown)
    };
    // An entry's time is its id's: the window bounds the scan exactly.
    let window = Window {
        from_ms: from.map(domain::Timestamp::unix_ms),
        to_ms: to.map(domain::Timestamp::unix_ms),
        before,
        limit: limit + 1,
        scan_max: LIST_SCAN_MAX,
    };
    let page = store
        .list(Listing::Audit(owner), window, &mut keep)
        .map_err(db)?;
    let next = page_end(&mut items, &page, limit);
    Ok(error::page(
        &items,
        limit,
        next.map(|id| AuditId::from_bytes(id).to_string()),
    ))
}
