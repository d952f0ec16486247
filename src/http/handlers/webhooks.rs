//! The webhook event log: list the events sent (or being sent) to the
//! caller's endpoint, redeliver one, or replay many (by status and time).
//! Merchants and api_users see the events addressed to them; admins see
//! every event with all its deliveries.

use super::payments::{db, page_end, ID_CLOCK_SLACK_MS};
use super::{cursor, Ctx, LIST_SCAN_MAX};
use crate::http::error::{self, Body};
use crate::http::request::JsonBody;
use domain::{DeliveryStatus, EventId, EventType, OutboxEvent, Rejection, Role, Timestamp, UserId};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use storage::{Listing, Page, StorageError, Window};

/// Most events one replay request queues again.
const REPLAY_MAX: usize = 1_000;

/// The caller's view of an event: its own delivery, or (admin) all of them.
fn view(event: &OutboxEvent, viewer: Option<&UserId>) -> Value {
    let deliveries: Vec<Value> = event
        .deliveries
        .iter()
        .map(|d| {
            json!({
                "recipient": d.recipient, "status": d.status.as_str(), "attempts": d.attempts,
                "next_attempt_at": d.next_attempt_at, "last_status_code": d.last_status_code,
                "last_error": d.last_error, "delivered_at": d.delivered_at,
            })
        })
        .collect();
    let mine = viewer.and_then(|v| event.delivery(v));
    let (status, attempts, next, code, last_error) = match mine {
        Some(d) => (
            d.status,
            d.attempts,
            d.next_attempt_at,
            d.last_status_code,
            d.last_error.clone(),
        ),
        None => (
            event.status(),
            event.deliveries.iter().map(|d| d.attempts).sum(),
            event
                .deliveries
                .iter()
                .filter_map(|d| d.next_attempt_at)
                .min(),
            event
                .deliveries
                .iter()
                .rev()
                .find_map(|d| d.last_status_code),
            event
                .deliveries
                .iter()
                .rev()
                .find_map(|d| d.last_error.clone()),
        ),
    };
    let mut v = json!({
        "id": event.id, "event": event.event.as_str(), "status": status.as_str(), "attempts": attempts,
        "next_attempt_at": next, "last_status_code": code, "last_error": last_error,
        "payload": event.payload.to_value(), "created_at": event.created_at,
    });
    if viewer.is_none() {
        v["deliveries"] = Value::Array(deliveries);
    }
    v
}

/// Who the caller is to the event log: `None` for an admin (sees all).
fn viewer(ctx: &Ctx<'_>) -> Result<Option<UserId>, Rejection> {
    ctx.caller
        .require(&[Role::Admin, Role::Merchant, Role::ApiUser])?;
    Ok((ctx.caller.role() != Role::Admin).then(|| ctx.caller.id()))
}

struct EventFilter {
    status: Option<DeliveryStatus>,
    event: Option<String>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
}

impl EventFilter {
    fn accepts(&self, event: &OutboxEvent, viewer: Option<&UserId>) -> bool {
        let status = match viewer.and_then(|v| event.delivery(v)) {
            Some(d) => d.status,
            None if viewer.is_some() => return false,
            None => event.status(),
        };
        self.status.is_none_or(|s| s == status)
            && self
                .event
                .as_deref()
                .is_none_or(|e| e == event.event.as_str())
            && self.from.is_none_or(|f| event.created_at >= f)
            && self.to.is_none_or(|t| event.created_at < t)
    }
}

fn parse_status(text: Option<&str>) -> Result<Option<DeliveryStatus>, Rejection> {
    text.map(|s| {
        DeliveryStatus::parse(s).ok_or_else(|| {
            Rejection::InvalidRequest("status must be pending, delivered or failed".into())
        })
    })
    .transpose()
}

fn parse_event_type(text: Option<&str>) -> Result<Option<String>, Rejection> {
    match text {
        None => Ok(None),
        Some(t) => serde_json::from_value::<EventType>(json!(t))
            .map(|e| Some(e.as_str().to_owned()))
            .map_err(|_| Rejection::InvalidRequest(format!("unknown event type '{t}'"))),
    }
}

/// Scans the caller's events newest first, keeping those `filter` accepts.
fn scan(
    ctx: &Ctx<'_>,
    viewer: Option<UserId>,
    filter: &EventFilter,
    before: Option<[u8; 16]>,
    limit: usize,
) -> Result<(Vec<OutboxEvent>, Page), Rejection> {
    let store = &ctx.app.store;
    let mut found = Vec::new();
    let mut keep = |id: &[u8; 16]| -> Result<bool, StorageError> {
        let Some(event) = store.event(&EventId::from_bytes(*id))? else {
            return Ok(false);
        };
        if filter.accepts(&event, viewer.as_ref()) {
            found.push(event);
            return Ok(true);
        }
        Ok(false)
    };
    // An event's id may carry a later millisecond than its created_at:
    // scan a little past `to`; `accepts` decides exactly.
    let window = Window {
        from_ms: filter.from.map(Timestamp::unix_ms),
        to_ms: filter
            .to
            .map(|t| t.unix_ms().saturating_add(ID_CLOCK_SLACK_MS)),
        before,
        limit,
        scan_max: LIST_SCAN_MAX,
    };
    let page = store
        .list(Listing::Events(viewer), window, &mut keep)
        .map_err(db)?;
    Ok((found, page))
}

pub fn list(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let viewer = viewer(ctx)?;
    let q = &ctx.query;
    // `merchant_id` (SPEC §17): an admin lists the events addressed to that
    // merchant (with every delivery, as always for an admin); a merchant or
    // api_user may name only its own merchant, which changes nothing.
    let named = ctx
        .caller
        .merchant_filter(&ctx.app.directory, q.get("merchant_id"))?;
    let owner = viewer.or(named);
    let filter = EventFilter {
        status: parse_status(q.get("status"))?,
        event: parse_event_type(q.get("event"))?,
        from: q.timestamp("from")?,
        to: q.timestamp("to")?,
    };
    let limit = q.limit()?;
    let before = cursor::<EventId>(q, |id| *id.as_bytes())?;
    let (events, page) = scan(ctx, owner, &filter, before, limit + 1)?;
    let mut items: Vec<Value> = events.iter().map(|e| view(e, viewer.as_ref())).collect();
    let next = page_end(&mut items, &page, limit);
    Ok(error::page(
        &items,
        limit,
        next.map(|id| EventId::from_bytes(id).to_string()),
    ))
}

pub async fn redeliver(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let viewer = viewer(ctx)?;
    let id: EventId = ctx.path_id()?;
    let event = ctx
        .app
        .store
        .event(&id)
        .map_err(db)?
        .ok_or(Rejection::NotFound)?;
    if viewer.is_some_and(|v| event.delivery(&v).is_none()) {
        return Err(Rejection::NotFound);
    }
    // A replay of one event (SPEC §16 "replay requested"): requeued in one
    // write with its audit entry, answered once that write is durable.
    let mut changes = domain::audit_log::Changes::default();
    changes.field("event_id", json!(null), json!(id));
    changes.field("events", json!(null), json!(1));
    let mut request = replay_request(ctx, vec![id], viewer, None, changes);
    request.require_any = true;
    let done = ctx.app.webhooks.replay(request).await?;
    done.ticket.durable().await.map_err(db)?;
    let event = done.events.into_iter().next().ok_or(Rejection::NotFound)?;
    Ok(error::ok(
        StatusCode::ACCEPTED,
        &view(&event, viewer.as_ref()),
    ))
}

/// A replay of `events` by the caller, with its `webhooks.replayed` audit
/// entry (target: the caller; listed for the caller and its ancestors).
fn replay_request(
    ctx: &Ctx<'_>,
    events: Vec<EventId>,
    viewer: Option<UserId>,
    only: Option<DeliveryStatus>,
    changes: domain::audit_log::Changes,
) -> actors::webhook::ReplayRequest {
    let caller = ctx.caller.id();
    let audit = ctx.audit().entry(
        domain::AuditAction::WebhooksReplayed,
        caller.to_string(),
        changes,
    );
    let mut scope = vec![caller];
    scope.extend(ctx.app.directory.ancestors_of(&caller));
    actors::webhook::ReplayRequest {
        events,
        recipient: viewer,
        only,
        audit,
        scope,
        require_any: false,
    }
}

pub async fn replay(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let viewer = viewer(ctx)?;
    let body = JsonBody::parse(&ctx.body)?;
    let timestamp = |name: &str| -> Result<Option<Timestamp>, Rejection> {
        body.string(name, 40)?
            .map(|t| {
                Timestamp::parse_rfc3339(&t).ok_or_else(|| {
                    Rejection::InvalidRequest(format!("{name} must be an RFC 3339 timestamp"))
                })
            })
            .transpose()
    };
    let filter = EventFilter {
        status: parse_status(body.string("status", 16)?.as_deref())?
            .or(Some(DeliveryStatus::Failed)),
        event: parse_event_type(body.string("event", 32)?.as_deref())?,
        from: timestamp("from")?,
        to: timestamp("to")?,
    };
    let (events, page) = scan(ctx, viewer, &filter, None, REPLAY_MAX)?;
    // The audit entry (SPEC §16) names the filter the replay used; it is
    // in the same write as the requeued deliveries, and the answer waits
    // for that write to be durable.
    let mut changes = domain::audit_log::Changes::default();
    let status = filter.status.map(DeliveryStatus::as_str);
    changes.field("status", json!(status), json!("pending"));
    changes.field("events", json!(null), json!(events.len()));
    if let Some(event) = &filter.event {
        changes.field("event", json!(null), json!(event));
    }
    changes.field("from", json!(null), json!(filter.from));
    changes.field("to", json!(null), json!(filter.to));
    let ids = events.iter().map(|e| e.id).collect();
    let request = replay_request(ctx, ids, viewer, filter.status, changes);
    let done = ctx.app.webhooks.replay(request).await?;
    done.ticket.durable().await.map_err(db)?;
    let replayed = done.replayed;
    let data = json!({
        "replayed": replayed,
        "truncated": page.next.is_some(),
        "status": filter.status.map(DeliveryStatus::as_str),
    });
    Ok(error::ok(StatusCode::ACCEPTED, &data))
}
