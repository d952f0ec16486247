//! The audit log (SPEC §16): who changed what outside the money path, when,
//! why, and through which request. An entry is written in the same write
//! set as the change it records; it never holds a key, a key hash or a
//! secret, and settlement account numbers in it are masked.

use crate::{AuditId, Timestamp, User, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Most characters of a reason, a request id or one rendered value kept in
/// an entry: `changes` stays bounded whatever a caller sent.
pub const TEXT_MAX: usize = 512;

/// What an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditAction {
    #[serde(rename = "user.created")]
    UserCreated,
    #[serde(rename = "user.updated")]
    UserUpdated,
    #[serde(rename = "user.suspended")]
    UserSuspended,
    #[serde(rename = "user.reactivated")]
    UserReactivated,
    #[serde(rename = "user.role_changed")]
    UserRoleChanged,
    #[serde(rename = "api_key.regenerated")]
    ApiKeyRegenerated,
    #[serde(rename = "webhook_secret.rotated")]
    WebhookSecretRotated,
    #[serde(rename = "settlement_account.changed")]
    SettlementAccountChanged,
    #[serde(rename = "payment.status_set")]
    PaymentStatusSet,
    #[serde(rename = "payout.status_set")]
    PayoutStatusSet,
    #[serde(rename = "refund.status_set")]
    RefundStatusSet,
    #[serde(rename = "settlement.status_set")]
    SettlementStatusSet,
    #[serde(rename = "webhooks.replayed")]
    WebhooksReplayed,
}

impl AuditAction {
    pub const ALL: [AuditAction; 13] = [
        AuditAction::UserCreated,
        AuditAction::UserUpdated,
        AuditAction::UserSuspended,
        AuditAction::UserReactivated,
        AuditAction::UserRoleChanged,
        AuditAction::ApiKeyRegenerated,
        AuditAction::WebhookSecretRotated,
        AuditAction::SettlementAccountChanged,
        AuditAction::PaymentStatusSet,
        AuditAction::PayoutStatusSet,
        AuditAction::RefundStatusSet,
        AuditAction::SettlementStatusSet,
        AuditAction::WebhooksReplayed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::UserCreated => "user.created",
            AuditAction::UserUpdated => "user.updated",
            AuditAction::UserSuspended => "user.suspended",
            AuditAction::UserReactivated => "user.reactivated",
            AuditAction::UserRoleChanged => "user.role_changed",
            AuditAction::ApiKeyRegenerated => "api_key.regenerated",
            AuditAction::WebhookSecretRotated => "webhook_secret.rotated",
            AuditAction::SettlementAccountChanged => "settlement_account.changed",
            AuditAction::PaymentStatusSet => "payment.status_set",
            AuditAction::PayoutStatusSet => "payout.status_set",
            AuditAction::RefundStatusSet => "refund.status_set",
            AuditAction::SettlementStatusSet => "settlement.status_set",
            AuditAction::WebhooksReplayed => "webhooks.replayed",
        }
    }

    pub fn parse(text: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

/// Who acts and why, handed down explicitly from the HTTP layer (or made
/// by the platform itself): the actor (`None` when the platform acts), the
/// request id, the reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditContext {
    pub actor_id: Option<UserId>,
    pub request_id: Option<String>,
    pub reason: Option<String>,
}

impl AuditContext {
    /// The platform acting on its own (no actor, no request).
    pub fn platform(reason: Option<&str>) -> AuditContext {
        AuditContext {
            actor_id: None,
            request_id: None,
            reason: reason.map(str::to_owned),
        }
    }

    pub fn by(actor: UserId, request_id: Option<String>) -> AuditContext {
        AuditContext {
            actor_id: Some(actor),
            request_id,
            reason: None,
        }
    }

    pub fn with_reason(mut self, reason: Option<String>) -> AuditContext {
        self.reason = reason;
        self
    }

    /// An entry of `action` on `target` with `changes`, made now.
    pub fn entry(&self, action: AuditAction, target: String, changes: Changes) -> AuditEntry {
        let id = AuditId::new();
        AuditEntry {
            id,
            actor_id: self.actor_id,
            action,
            target_id: target,
            changes: changes.0,
            reason: self.reason.as_deref().map(bounded),
            request_id: self.request_id.as_deref().map(bounded),
            created_at: Timestamp::from_unix_ms(i64::try_from(id.unix_ms()).unwrap_or(i64::MAX)),
        }
    }
}

fn bounded(text: &str) -> String {
    text.chars().take(TEXT_MAX).collect()
}

/// Changed fields, each `{"before", "after"}`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes(pub Map<String, Value>);

impl Changes {
    /// Records `field` if `before != after`.
    pub fn field(&mut self, field: &str, before: Value, after: Value) {
        if before != after {
            let cut = |v: Value| match v {
                Value::String(s) if s.chars().count() > TEXT_MAX => Value::String(bounded(&s)),
                other => other,
            };
            self.0.insert(
                field.to_owned(),
                json!({ "before": cut(before), "after": cut(after) }),
            );
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: AuditId,
    pub actor_id: Option<UserId>,
    pub action: AuditAction,
    /// The user, or the `txn_`/`po_`/`rf_`/`st_` record.
    pub target_id: String,
    pub changes: Map<String, Value>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub created_at: Timestamp,
}

/// A user's settlement account as the log shows it (number masked).
fn account(user: &User) -> Value {
    user.settlement_account
        .as_ref()
        .map_or(Value::Null, |a| a.view())
}

/// The audit entries one change of a user makes: one per kind of change
/// (role; status; settlement account; everything else), each with its own
/// changed fields. Never a key hash or secret: those fields are not read.
pub fn user_changes(before: &User, after: &User) -> Vec<(AuditAction, Changes)> {
    let mut out = Vec::new();
    let mut role = Changes::default();
    role.field("role", json!(before.role), json!(after.role));
    role.field(
        "merchant_id",
        json!(before.merchant_id),
        json!(after.merchant_id),
    );
    if before.role != after.role {
        out.push((AuditAction::UserRoleChanged, role));
    }
    let mut status = Changes::default();
    status.field("status", json!(before.status), json!(after.status));
    if !status.is_empty() {
        let action = match after.status {
            crate::UserStatus::Suspended => AuditAction::UserSuspended,
            crate::UserStatus::Active => AuditAction::UserReactivated,
        };
        out.push((action, status));
    }
    let mut settlement = Changes::default();
    settlement.field("settlement_account", account(before), account(after));
    if !settlement.is_empty() {
        out.push((AuditAction::SettlementAccountChanged, settlement));
    }
    let mut rest = Changes::default();
    rest.field("name", json!(before.name), json!(after.name));
    rest.field("email", json!(before.email), json!(after.email));
    rest.field(
        "webhook_url",
        json!(before.webhook_url),
        json!(after.webhook_url),
    );
    rest.field(
        "rate_limit_per_min",
        json!(before.rate_limit_per_min),
        json!(after.rate_limit_per_min),
    );
    rest.field(
        "payin_fee_bps",
        json!(before.payin_fee_bps),
        json!(after.payin_fee_bps),
    );
    rest.field(
        "payout_fee",
        json!(before.payout_fee),
        json!(after.payout_fee),
    );
    rest.field(
        "settlement_reserve",
        json!(before.settlement_reserve),
        json!(after.settlement_reserve),
    );
    if !rest.is_empty() {
        out.push((AuditAction::UserUpdated, rest));
    }
    out
}

/// The fields of a new user, each with `before: null`.
pub fn user_created(user: &User) -> Changes {
    let mut c = Changes::default();
    c.field("name", Value::Null, json!(user.name));
    c.field("email", Value::Null, json!(user.email));
    c.field("role", Value::Null, json!(user.role));
    c.field("status", Value::Null, json!(user.status));
    c.field("parent_id", Value::Null, json!(user.parent_id));
    c.field("merchant_id", Value::Null, json!(user.merchant_id));
    c.field("webhook_url", Value::Null, json!(user.webhook_url));
    c.field(
        "rate_limit_per_min",
        Value::Null,
        json!(user.rate_limit_per_min),
    );
    c.field("payin_fee_bps", Value::Null, json!(user.payin_fee_bps));
    c.field("payout_fee", Value::Null, json!(user.payout_fee));
    c
}

/// A record's status change.
pub fn status_change(before: &str, after: &str) -> Changes {
    let mut c = Changes::default();
    c.field("status", json!(before), json!(after));
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_and_are_distinct() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
            assert_eq!(serde_json::to_value(a).unwrap(), json!(a.as_str()));
        }
        let mut names: Vec<_> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), AuditAction::ALL.len());
    }

    fn user() -> User {
        let now = Timestamp::from_unix_ms(1_700_000_000_000);
        let id = UserId::new();
        User {
            id,
            name: "M".into(),
            email: None,
            role: crate::Role::Merchant,
            status: crate::UserStatus::Active,
            parent_id: Some(UserId::new()),
            merchant_id: Some(id),
            webhook_url: None,
            webhook_secret: crate::Secret::new("whsec_old".into()),
            previous_webhook_secret: None,
            webhook_secret_rotated_at: None,
            rate_limit_per_min: 60,
            payin_fee_bps: 0,
            payout_fee: crate::Money::ZERO,
            key_hash: "aa".repeat(32),
            created_at: now,
            updated_at: now,
            settlement_account: None,
            settlement_reserve: crate::Money::ZERO,
            last_used_at: None,
        }
    }

    #[test]
    fn one_entry_per_kind_of_change_each_with_its_own_fields() {
        let before = user();
        let mut after = before.clone();
        after.role = crate::Role::Manager;
        after.merchant_id = None;
        after.status = crate::UserStatus::Suspended;
        after.name = "N".into();
        after.settlement_account = Some(crate::SettlementAccount {
            name: "A".into(),
            account_number: "123456789012".into(),
            ifsc: "HDFC0001234".into(),
        });
        // Secrets, key hash and bookkeeping are never diffed.
        after.key_hash = "bb".repeat(32);
        after.webhook_secret = crate::Secret::new("whsec_new".into());
        after.updated_at = Timestamp::from_unix_ms(1_700_000_100_000);
        after.last_used_at = Some(after.updated_at);
        let entries = user_changes(&before, &after);
        let actions: Vec<_> = entries.iter().map(|(a, _)| *a).collect();
        assert_eq!(
            actions,
            [
                AuditAction::UserRoleChanged,
                AuditAction::UserSuspended,
                AuditAction::SettlementAccountChanged,
                AuditAction::UserUpdated
            ]
        );
        let keys = |i: usize| -> Vec<&str> { entries[i].1 .0.keys().map(String::as_str).collect() };
        assert_eq!(keys(0), ["role", "merchant_id"]);
        assert_eq!(keys(1), ["status"]);
        assert_eq!(keys(2), ["settlement_account"]);
        assert_eq!(keys(3), ["name"]);
        let text =
            serde_json::to_string(&entries.iter().map(|e| &e.1 .0).collect::<Vec<_>>()).unwrap();
        for secret in ["whsec_", &"bb".repeat(32), &"aa".repeat(32), "123456789012"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        // Nothing changed but bookkeeping: no entry.
        let mut touched = before.clone();
        touched.last_used_at = Some(touched.created_at);
        touched.key_hash = "cc".repeat(32);
        assert!(user_changes(&before, &touched).is_empty());
    }

    #[test]
    fn changes_keep_only_what_changed_and_are_bounded() {
        let mut c = Changes::default();
        c.field("a", json!(1), json!(1));
        c.field("b", json!("x".repeat(5_000)), json!("y"));
        assert!(!c.0.contains_key("a"));
        let before = c.0["b"]["before"].as_str().unwrap();
        assert_eq!(before.chars().count(), TEXT_MAX);
    }
}
