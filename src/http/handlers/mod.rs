//! Handlers, one file per resource. Each is thin: parse → authorise →
//! convert → call the core → render.

mod admin;
mod audit_log;
mod balance;
mod ledger;
mod payments;
mod payouts;
pub(crate) mod payouts_batch;
mod profile;
mod refunds;
mod reports;
pub mod settlements;
mod statements;
mod users;
mod webhooks;

use super::auth::Caller;
use super::error::{self, Body};
use super::request::Query;
use super::router::Route;
use super::App;
use bytes::Bytes;
use domain::Rejection;
use hyper::{HeaderMap, Response, StatusCode};
use sha2::{Digest, Sha256};
use std::sync::atomic::Ordering;

/// What a handler gets to work with.
pub struct Ctx<'a> {
    pub app: &'a App,
    pub caller: Caller,
    /// The `{id}` path segment, for routes that have one.
    pub id: Option<&'a str>,
    pub query: Query,
    pub body: Bytes,
    pub headers: &'a HeaderMap,
}

impl Ctx<'_> {
    /// Who acts, for the audit log (SPEC §16): the caller and the id of the
    /// request being answered, handed down to the actors explicitly.
    pub fn audit(&self) -> domain::AuditContext {
        let request_id = super::request_id::RequestId::current().map(|r| r.as_str().to_owned());
        domain::AuditContext::by(self.caller.id(), request_id)
    }

    /// The `{id}` segment parsed as `T`; unparsable ids are `not_found`.
    pub fn path_id<T: std::str::FromStr>(&self) -> Result<T, Rejection> {
        self.id
            .and_then(|id| id.parse().ok())
            .ok_or(Rejection::NotFound)
    }

    /// The `Idempotency-Key` header, with a digest of the canonical body.
    pub fn idempotency(
        &self,
        scope: &str,
        body: &crate::http::request::JsonBody,
    ) -> Result<Option<actors::Idempotency>, Rejection> {
        let Some(value) = self.headers.get("idempotency-key") else {
            return Ok(None);
        };
        let key = value
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= 255)
            .ok_or_else(|| {
                Rejection::InvalidRequest(
                    "Idempotency-Key must be 1 to 255 visible characters".into(),
                )
            })?;
        // Keys sorted at every level: equal bodies digest equally whatever
        // their key order or spacing.
        let canonical = serde_json::to_vec(&canonical(&body.value()))
            .map_err(|_| Rejection::InvalidRequest("bad body".into()))?;
        let digest: [u8; 32] = Sha256::digest(&canonical).into();
        Ok(Some(actors::Idempotency {
            key: format!("{scope}:{key}"),
            fingerprint: digest.iter().map(|b| format!("{b:02x}")).collect(),
            fields: field_digests(&body.value()),
        }))
    }
}

/// A short digest (8 bytes of SHA-256, hex) of each top-level field of a
/// body, by name (names cut at 64 characters), at most
/// `storage::FIELD_DIGESTS_MAX` of them, sorted by name: kept with the
/// Idempotency-Key so that a conflict names the fields that differ.
fn field_digests(body: &serde_json::Value) -> Vec<(String, String)> {
    let serde_json::Value::Object(map) = body else {
        return Vec::new();
    };
    let mut fields: Vec<(String, String)> = map
        .iter()
        .map(|(name, value)| {
            let bytes = serde_json::to_vec(&canonical(value)).unwrap_or_default();
            let digest = Sha256::digest(&bytes);
            let hex = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            (name.chars().take(64).collect::<String>(), hex)
        })
        .collect();
    fields.sort_unstable();
    fields.truncate(storage::FIELD_DIGESTS_MAX);
    fields
}

/// `value` with every object's keys in sorted order.
fn canonical(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let sorted = entries.into_iter().map(|(k, v)| (k.clone(), canonical(v)));
            serde_json::Value::Object(sorted.collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(canonical).collect())
        }
        other => other.clone(),
    }
}

/// Routes under `/api/v1`.
pub async fn dispatch(route: Route, ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    match route {
        Route::Healthz | Route::Readyz | Route::Metrics => Err(Rejection::NotFound),
        Route::Balance => balance::get(ctx).await,
        Route::PaymentsCreate => payments::create(ctx).await,
        Route::PaymentsList => payments::list(ctx),
        Route::PaymentGet => payments::get(ctx),
        Route::PaymentStatus => payments::set_status(ctx).await,
        Route::PayoutsCreate => payouts::create(ctx).await,
        Route::PayoutsList => payouts::list(ctx),
        Route::PayoutGet => payouts::get(ctx),
        Route::PayoutStatus => payouts::set_status(ctx).await,
        Route::ProfileGet => profile::get(ctx),
        Route::ProfilePatch => profile::patch(ctx).await,
        Route::ProfileApiKey => profile::regenerate_key(ctx).await,
        Route::ProfileWebhookSecret => profile::rotate_secret(ctx).await,
        Route::UsersList => users::list(ctx),
        Route::UsersCreate => users::create(ctx).await,
        Route::UserGet => users::get(ctx),
        Route::UserPatch => users::patch(ctx).await,
        Route::UserApiKey => users::regenerate_key(ctx).await,
        Route::ReportSummary => reports::summary(ctx),
        Route::ReportLedger => ledger::merchant_ledger(ctx),
        Route::LedgerAccounts => ledger::accounts(ctx),
        Route::LedgerTransfers => ledger::transfers(ctx),
        Route::WebhookEvents => webhooks::list(ctx),
        Route::AuditLog => audit_log::list(ctx),
        Route::WebhookRedeliver => webhooks::redeliver(ctx).await,
        Route::WebhookReplay => webhooks::replay(ctx).await,
        Route::AdminBackup => admin::backup(ctx).await,
        Route::SettlementsCreate => settlements::create(ctx).await,
        Route::SettlementsList => settlements::list(ctx),
        Route::SettlementGet => settlements::get(ctx),
        Route::SettlementStatus => settlements::set_status(ctx).await,
        Route::RefundsCreate => refunds::create(ctx).await,
        Route::RefundsList => refunds::list(ctx),
        Route::RefundGet => refunds::get(ctx),
        Route::RefundStatus => refunds::set_status(ctx).await,
        Route::StatementsList => statements::list(ctx),
        Route::StatementsVerify => statements::verify(ctx).await,
        Route::StatementGet => statements::get(ctx),
        Route::PayoutCancel => payouts::cancel(ctx).await,
        Route::PayoutsBatch => payouts_batch::create(ctx).await,
    }
}

/// Routes outside `/api/v1`, without a key.
pub async fn outside(app: &App, route: Route) -> Response<Body> {
    match route {
        Route::Healthz => error::ok(StatusCode::OK, &serde_json::json!({ "status": "ok" })),
        Route::Readyz => {
            if app.ready.load(Ordering::Acquire) && app.store.is_healthy() {
                error::ok(StatusCode::OK, &serde_json::json!({ "status": "ready" }))
            } else {
                error::rejection(&Rejection::ServiceUnavailable)
            }
        }
        Route::Metrics => error::text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            crate::metrics::render(&app.metrics),
        ),
        _ => error::rejection(&Rejection::NotFound),
    }
}

/// A `cursor` query parameter: the id of the last record of the previous
/// page, in its text form.
pub fn cursor<T: std::str::FromStr>(
    query: &Query,
    as_bytes: impl Fn(&T) -> [u8; 16],
) -> Result<Option<[u8; 16]>, Rejection> {
    match query.get("cursor") {
        None => Ok(None),
        Some(text) => text
            .parse::<T>()
            .map(|id| Some(as_bytes(&id)))
            .map_err(|_| Rejection::InvalidRequest("cursor is not valid".into())),
    }
}

/// Most records one listing request may look at, however selective its filters.
pub const LIST_SCAN_MAX: usize = 20_000;

#[cfg(test)]
mod tests {
    use super::canonical;
    use serde_json::json;

    #[test]
    fn canonical_form_ignores_key_order_at_every_level() {
        let a = json!({"b": 1, "a": {"y": [ {"q": 1, "p": 2} ], "x": "s"}});
        let b = json!({"a": {"x": "s", "y": [ {"p": 2, "q": 1} ]}, "b": 1});
        let text = |v| serde_json::to_string(&canonical(v)).unwrap_or_default();
        assert_eq!(text(&a), text(&b));
        assert_ne!(text(&a), text(&json!({"b": 2, "a": {"y": [], "x": "s"}})));
    }
}
