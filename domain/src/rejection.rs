//! Business outcomes that are not success: one flat enum whose snake_case
//! codes are the API (SPEC.md §2). Message text is for people and may change;
//! codes and statuses may not. The HTTP layer maps with `status()` only.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Required fields are missing; lists every one of them.
    MissingFields(Vec<String>),
    InvalidRequest(String),
    /// `invalid_request` naming the fields at fault (`details.fields`).
    InvalidFields {
        message: String,
        fields: Vec<String>,
    },
    InvalidAmount(String),
    UnsupportedCurrency,
    InvalidApiKey,
    AccountSuspended,
    InsufficientPermissions,
    NotFound,
    MethodNotAllowed,
    DuplicateOrderId,
    /// The Idempotency-Key was used with another body; `fields` names the
    /// top-level body fields that differ from the first request's.
    IdempotencyConflict {
        fields: Vec<String>,
    },
    InsufficientBalance,
    /// The refunds of a pay-in would exceed its amount (SPEC §12).
    RefundExceedsPayment,
    PayloadTooLarge,
    RateLimitExceeded {
        retry_after_secs: u64,
    },
    /// A manual status change on a record that already reached a terminal
    /// state (or asked for a state the record cannot reach).
    InvalidStatusTransition {
        from: &'static str,
        to: String,
    },
    /// A backup of the store is already running; one at a time.
    BackupInProgress,
    /// The server is shutting down or a wallet is saturated; retry later.
    ServiceUnavailable,
    DatabaseError,
}

impl Rejection {
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::MissingFields(_) => "missing_fields",
            Rejection::InvalidRequest(_) => "invalid_request",
            Rejection::InvalidFields { .. } => "invalid_request",
            Rejection::InvalidAmount(_) => "invalid_amount",
            Rejection::UnsupportedCurrency => "unsupported_currency",
            Rejection::InvalidApiKey => "invalid_api_key",
            Rejection::AccountSuspended => "account_suspended",
            Rejection::InsufficientPermissions => "insufficient_permissions",
            Rejection::NotFound => "not_found",
            Rejection::MethodNotAllowed => "method_not_allowed",
            Rejection::DuplicateOrderId => "duplicate_order_id",
            Rejection::IdempotencyConflict { .. } => "idempotency_conflict",
            Rejection::InsufficientBalance => "insufficient_balance",
            Rejection::RefundExceedsPayment => "refund_exceeds_payment",
            Rejection::PayloadTooLarge => "payload_too_large",
            Rejection::RateLimitExceeded { .. } => "rate_limit_exceeded",
            Rejection::InvalidStatusTransition { .. } => "invalid_status_transition",
            Rejection::BackupInProgress => "backup_in_progress",
            Rejection::ServiceUnavailable => "service_unavailable",
            Rejection::DatabaseError => "database_error",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Rejection::MissingFields(_)
            | Rejection::InvalidRequest(_)
            | Rejection::InvalidFields { .. }
            | Rejection::InvalidAmount(_)
            | Rejection::UnsupportedCurrency => 400,
            Rejection::InvalidApiKey => 401,
            Rejection::AccountSuspended | Rejection::InsufficientPermissions => 403,
            Rejection::NotFound => 404,
            Rejection::MethodNotAllowed => 405,
            Rejection::DuplicateOrderId
            | Rejection::InvalidStatusTransition { .. }
            | Rejection::BackupInProgress => 409,
            Rejection::PayloadTooLarge => 413,
            Rejection::IdempotencyConflict { .. }
            | Rejection::InsufficientBalance
            | Rejection::RefundExceedsPayment => 422,
            Rejection::RateLimitExceeded { .. } => 429,
            Rejection::DatabaseError => 500,
            Rejection::ServiceUnavailable => 503,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Rejection::MissingFields(fields) => {
                format!("Required parameters are missing: {}.", fields.join(", "))
            }
            Rejection::InvalidRequest(why) | Rejection::InvalidAmount(why) => why.clone(),
            Rejection::InvalidFields { message, .. } => message.clone(),
            Rejection::UnsupportedCurrency => "Only INR is supported.".to_owned(),
            Rejection::InvalidApiKey => {
                "The provided API key is invalid or does not exist.".to_owned()
            }
            Rejection::AccountSuspended => "This account is suspended.".to_owned(),
            Rejection::InsufficientPermissions => {
                "Your role does not have access to this resource.".to_owned()
            }
            Rejection::NotFound => "The requested record does not exist.".to_owned(),
            Rejection::MethodNotAllowed => "Method not allowed on this route.".to_owned(),
            Rejection::DuplicateOrderId => {
                "A record with this order or reference id already exists.".to_owned()
            }
            Rejection::IdempotencyConflict { .. } => {
                "This Idempotency-Key was used with a different request body.".to_owned()
            }
            Rejection::InsufficientBalance => "Not enough available wallet balance.".to_owned(),
            Rejection::RefundExceedsPayment => {
                "The refunds of this payment would exceed its amount.".to_owned()
            }
            Rejection::PayloadTooLarge => {
                "Request body is too large (64 KiB; 1 MiB for a payout batch).".to_owned()
            }
            Rejection::RateLimitExceeded { retry_after_secs } => {
                format!("Too many requests; retry after {retry_after_secs} s.")
            }
            Rejection::InvalidStatusTransition { from, to } => {
                format!("Cannot move a record from '{from}' to '{to}'.")
            }
            Rejection::BackupInProgress => {
                "Another backup is running; try again once it has finished.".to_owned()
            }
            Rejection::ServiceUnavailable => "Service temporarily unavailable.".to_owned(),
            Rejection::DatabaseError => "Internal server error.".to_owned(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for Rejection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_statuses_match_the_spec() {
        let all = [
            (Rejection::MissingFields(vec!["amount".into()]), 400),
            (Rejection::InvalidRequest("bad".into()), 400),
            (Rejection::InvalidAmount("bad".into()), 400),
            (Rejection::UnsupportedCurrency, 400),
            (Rejection::InvalidApiKey, 401),
            (Rejection::AccountSuspended, 403),
            (Rejection::InsufficientPermissions, 403),
            (Rejection::NotFound, 404),
            (Rejection::MethodNotAllowed, 405),
            (Rejection::DuplicateOrderId, 409),
            (Rejection::IdempotencyConflict { fields: vec![] }, 422),
            (Rejection::InsufficientBalance, 422),
            (Rejection::RefundExceedsPayment, 422),
            (Rejection::PayloadTooLarge, 413),
            (
                Rejection::RateLimitExceeded {
                    retry_after_secs: 1,
                },
                429,
            ),
            (
                Rejection::InvalidStatusTransition {
                    from: "completed",
                    to: "failed".into(),
                },
                409,
            ),
            (Rejection::BackupInProgress, 409),
            (Rejection::ServiceUnavailable, 503),
            (Rejection::DatabaseError, 500),
        ];
        let mut codes: Vec<&str> = all.iter().map(|(r, _)| r.code()).collect();
        for (rejection, status) in &all {
            assert_eq!(rejection.status(), *status, "{}", rejection.code());
            assert!(!rejection.message().is_empty());
        }
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
