//! The router: one match on method and path segments. A `Route` names both
//! the handler and the low-cardinality label used in logs and metrics (its
//! template, never an id).

use domain::Rejection;
use hyper::Method;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    Healthz,
    Readyz,
    Metrics,
    Balance,
    PaymentsCreate,
    PaymentsList,
    PaymentGet,
    PaymentStatus,
    PayoutsCreate,
    PayoutsList,
    PayoutGet,
    PayoutStatus,
    ProfileGet,
    ProfilePatch,
    ProfileApiKey,
    ProfileWebhookSecret,
    UsersList,
    UsersCreate,
    UserGet,
    UserPatch,
    UserApiKey,
    ReportSummary,
    ReportLedger,
    LedgerAccounts,
    LedgerTransfers,
    WebhookEvents,
    WebhookRedeliver,
    WebhookReplay,
    AdminBackup,
    SettlementsCreate,
    SettlementsList,
    SettlementGet,
    SettlementStatus,
    RefundsCreate,
    RefundsList,
    RefundGet,
    RefundStatus,
    StatementsList,
    StatementsVerify,
    StatementGet,
    PayoutCancel,
    PayoutsBatch,
    AuditLog,
}

impl Route {
    /// Every route, for the OpenAPI parity test and metric pre-registration.
    pub const ALL: [Route; 43] = [
        Route::Healthz,
        Route::Readyz,
        Route::Metrics,
        Route::Balance,
        Route::PaymentsCreate,
        Route::PaymentsList,
        Route::PaymentGet,
        Route::PaymentStatus,
        Route::PayoutsCreate,
        Route::PayoutsList,
        Route::PayoutGet,
        Route::PayoutStatus,
        Route::ProfileGet,
        Route::ProfilePatch,
        Route::ProfileApiKey,
        Route::ProfileWebhookSecret,
        Route::UsersList,
        Route::UsersCreate,
        Route::UserGet,
        Route::UserPatch,
        Route::UserApiKey,
        Route::ReportSummary,
        Route::ReportLedger,
        Route::LedgerAccounts,
        Route::LedgerTransfers,
        Route::WebhookEvents,
        Route::WebhookRedeliver,
        Route::WebhookReplay,
        Route::AdminBackup,
        Route::SettlementsCreate,
        Route::SettlementsList,
        Route::SettlementGet,
        Route::SettlementStatus,
        Route::RefundsCreate,
        Route::RefundsList,
        Route::RefundGet,
        Route::RefundStatus,
        Route::StatementsList,
        Route::StatementsVerify,
        Route::StatementGet,
        Route::PayoutCancel,
        Route::PayoutsBatch,
        Route::AuditLog,
    ];

    /// Method and path template.
    pub fn spec(self) -> (Method, &'static str) {
        match self {
            Route::Healthz => (Method::GET, "/healthz"),
            Route::Readyz => (Method::GET, "/readyz"),
            Route::Metrics => (Method::GET, "/metrics"),
            Route::Balance => (Method::GET, "/api/v1/balance"),
            Route::PaymentsCreate => (Method::POST, "/api/v1/payments"),
            Route::PaymentsList => (Method::GET, "/api/v1/payments"),
            Route::PaymentGet => (Method::GET, "/api/v1/payments/{id}"),
            Route::PaymentStatus => (Method::POST, "/api/v1/payments/{id}/status"),
            Route::PayoutsCreate => (Method::POST, "/api/v1/payouts"),
            Route::PayoutsList => (Method::GET, "/api/v1/payouts"),
            Route::PayoutGet => (Method::GET, "/api/v1/payouts/{id}"),
            Route::PayoutStatus => (Method::POST, "/api/v1/payouts/{id}/status"),
            Route::ProfileGet => (Method::GET, "/api/v1/profile"),
            Route::ProfilePatch => (Method::PATCH, "/api/v1/profile"),
            Route::ProfileApiKey => (Method::POST, "/api/v1/profile/api-key"),
            Route::ProfileWebhookSecret => (Method::POST, "/api/v1/profile/webhook-secret"),
            Route::UsersList => (Method::GET, "/api/v1/users"),
            Route::UsersCreate => (Method::POST, "/api/v1/users"),
            Route::UserGet => (Method::GET, "/api/v1/users/{id}"),
            Route::UserPatch => (Method::PATCH, "/api/v1/users/{id}"),
            Route::UserApiKey => (Method::POST, "/api/v1/users/{id}/api-key"),
            Route::ReportSummary => (Method::GET, "/api/v1/reports/summary"),
            Route::ReportLedger => (Method::GET, "/api/v1/reports/ledger"),
            Route::LedgerAccounts => (Method::GET, "/api/v1/ledger/accounts"),
            Route::LedgerTransfers => (Method::GET, "/api/v1/ledger/transfers"),
            Route::WebhookEvents => (Method::GET, "/api/v1/webhooks/events"),
            Route::WebhookRedeliver => (Method::POST, "/api/v1/webhooks/events/{id}/redeliver"),
            Route::WebhookReplay => (Method::POST, "/api/v1/webhooks/replay"),
            Route::AdminBackup => (Method::POST, "/api/v1/admin/backup"),
            Route::SettlementsCreate => (Method::POST, "/api/v1/settlements"),
            Route::SettlementsList => (Method::GET, "/api/v1/settlements"),
            Route::SettlementGet => (Method::GET, "/api/v1/settlements/{id}"),
            Route::SettlementStatus => (Method::POST, "/api/v1/settlements/{id}/status"),
            Route::RefundsCreate => (Method::POST, "/api/v1/payments/{id}/refunds"),
            Route::RefundsList => (Method::GET, "/api/v1/refunds"),
            Route::RefundGet => (Method::GET, "/api/v1/refunds/{id}"),
            Route::RefundStatus => (Method::POST, "/api/v1/refunds/{id}/status"),
            Route::StatementsList => (Method::GET, "/api/v1/statements"),
            Route::StatementsVerify => (Method::GET, "/api/v1/statements/verify"),
            Route::StatementGet => (Method::GET, "/api/v1/statements/{id}"),
            Route::PayoutCancel => (Method::POST, "/api/v1/payouts/{id}/cancel"),
            Route::PayoutsBatch => (Method::POST, "/api/v1/payouts/batch"),
            Route::AuditLog => (Method::GET, "/api/v1/audit-log"),
        }
    }

    /// The query parameters the route takes; any other, an empty value or
    /// one given twice is `invalid_request` (SPEC §17). docs/openapi.yaml
    /// documents exactly these (tests/it/openapi_routes.rs checks).
    pub fn query_params(self) -> &'static [&'static str] {
        const RECORDS: &[&str] = &[
            "status",
            "from",
            "to",
            "min_amount",
            "max_amount",
            "merchant_id",
            "limit",
            "cursor",
        ];
        match self {
            Route::Balance => &["merchant_id"],
            Route::PaymentsList => &[
                "status",
                "from",
                "to",
                "min_amount",
                "max_amount",
                "order_id",
                "merchant_id",
                "limit",
                "cursor",
            ],
            Route::PayoutsList => RECORDS,
            Route::RefundsList => &[
                "status",
                "payment_id",
                "from",
                "to",
                "min_amount",
                "max_amount",
                "merchant_id",
                "limit",
                "cursor",
            ],
            Route::UsersList => &["role", "status", "merchant_id", "limit", "cursor"],
            Route::ReportSummary => &[
                "from",
                "to",
                "merchant_id",
                "min_amount",
                "max_amount",
                "limit",
            ],
            Route::ReportLedger => &["merchant_id", "from", "to", "limit", "cursor", "format"],
            Route::LedgerTransfers => &[
                "account",
                "kind",
                "reference",
                "merchant_id",
                "from",
                "to",
                "limit",
                "cursor",
            ],
            Route::WebhookEvents => &[
                "status",
                "event",
                "from",
                "to",
                "limit",
                "cursor",
                "merchant_id",
            ],
            Route::SettlementsList => &[
                "status",
                "from",
                "to",
                "merchant_id",
                "limit",
                "cursor",
                "format",
            ],
            Route::StatementsList => &["merchant_id", "from", "to", "limit", "cursor"],
            Route::AuditLog => &[
                "actor_id",
                "target_id",
                "action",
                "merchant_id",
                "from",
                "to",
                "limit",
                "cursor",
            ],
            Route::StatementsVerify => &["merchant_id"],
            Route::StatementGet => &["merchant_id", "format"],
            Route::Healthz
            | Route::Readyz
            | Route::Metrics
            | Route::PaymentsCreate
            | Route::PaymentGet
            | Route::PaymentStatus
            | Route::PayoutsCreate
            | Route::PayoutGet
            | Route::PayoutStatus
            | Route::ProfileGet
            | Route::ProfilePatch
            | Route::ProfileApiKey
            | Route::ProfileWebhookSecret
            | Route::UsersCreate
            | Route::UserGet
            | Route::UserPatch
            | Route::UserApiKey
            | Route::LedgerAccounts
            | Route::WebhookRedeliver
            | Route::WebhookReplay
            | Route::AdminBackup
            | Route::SettlementsCreate
            | Route::SettlementGet
            | Route::SettlementStatus
            | Route::RefundsCreate
            | Route::RefundGet
            | Route::RefundStatus
            | Route::PayoutCancel
            | Route::PayoutsBatch => &[],
        }
    }

    pub fn template(self) -> &'static str {
        self.spec().1
    }

    /// Whether the route is under `/api/v1` (keyed, rate limited).
    pub fn is_api(self) -> bool {
        !matches!(self, Route::Healthz | Route::Readyz | Route::Metrics)
    }
}

/// A matched route and its `{id}` segment, if it has one.
pub struct Matched<'a> {
    pub route: Route,
    pub id: Option<&'a str>,
}

/// Matches a request. Unknown path: `not_found`; known path, other method:
/// `method_not_allowed`.
pub fn route<'a>(method: &Method, path: &'a str) -> Result<Matched<'a>, Rejection> {
    let trimmed = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let segments: Vec<&str> = trimmed.split('/').skip(1).collect();
    let m = method;
    let (route, id) = match segments.as_slice() {
        ["healthz"] => (pick(m, &[(Method::GET, Route::Healthz)])?, None),
        ["readyz"] => (pick(m, &[(Method::GET, Route::Readyz)])?, None),
        ["metrics"] => (pick(m, &[(Method::GET, Route::Metrics)])?, None),
        ["api", "v1", rest @ ..] => match rest {
            ["balance"] => (pick(m, &[(Method::GET, Route::Balance)])?, None),
            ["payments"] => (
                pick(
                    m,
                    &[
                        (Method::POST, Route::PaymentsCreate),
                        (Method::GET, Route::PaymentsList),
                    ],
                )?,
                None,
            ),
            ["payments", id] => (pick(m, &[(Method::GET, Route::PaymentGet)])?, Some(*id)),
            ["payments", id, "status"] => {
                (pick(m, &[(Method::POST, Route::PaymentStatus)])?, Some(*id))
            }
            ["payments", id, "refunds"] => {
                (pick(m, &[(Method::POST, Route::RefundsCreate)])?, Some(*id))
            }
            ["refunds"] => (pick(m, &[(Method::GET, Route::RefundsList)])?, None),
            ["refunds", id] => (pick(m, &[(Method::GET, Route::RefundGet)])?, Some(*id)),
            ["refunds", id, "status"] => {
                (pick(m, &[(Method::POST, Route::RefundStatus)])?, Some(*id))
            }
            ["payouts"] => (
                pick(
                    m,
                    &[
                        (Method::POST, Route::PayoutsCreate),
                        (Method::GET, Route::PayoutsList),
                    ],
                )?,
                None,
            ),
            ["payouts", "batch"] => (pick(m, &[(Method::POST, Route::PayoutsBatch)])?, None),
            ["payouts", id] => (pick(m, &[(Method::GET, Route::PayoutGet)])?, Some(*id)),
            ["payouts", id, "cancel"] => {
                (pick(m, &[(Method::POST, Route::PayoutCancel)])?, Some(*id))
            }
            ["payouts", id, "status"] => {
                (pick(m, &[(Method::POST, Route::PayoutStatus)])?, Some(*id))
            }
            ["profile"] => (
                pick(
                    m,
                    &[
                        (Method::GET, Route::ProfileGet),
                        (Method::PATCH, Route::ProfilePatch),
                    ],
                )?,
                None,
            ),
            ["profile", "api-key"] => (pick(m, &[(Method::POST, Route::ProfileApiKey)])?, None),
            ["profile", "webhook-secret"] => (
                pick(m, &[(Method::POST, Route::ProfileWebhookSecret)])?,
                None,
            ),
            ["users"] => (
                pick(
                    m,
                    &[
                        (Method::GET, Route::UsersList),
                        (Method::POST, Route::UsersCreate),
                    ],
                )?,
                None,
            ),
            ["users", id] => (
                pick(
                    m,
                    &[
                        (Method::GET, Route::UserGet),
                        (Method::PATCH, Route::UserPatch),
                    ],
                )?,
                Some(*id),
            ),
            ["users", id, "api-key"] => (pick(m, &[(Method::POST, Route::UserApiKey)])?, Some(*id)),
            ["reports", "summary"] => (pick(m, &[(Method::GET, Route::ReportSummary)])?, None),
            ["reports", "ledger"] => (pick(m, &[(Method::GET, Route::ReportLedger)])?, None),
            ["ledger", "accounts"] => (pick(m, &[(Method::GET, Route::LedgerAccounts)])?, None),
            ["ledger", "transfers"] => (pick(m, &[(Method::GET, Route::LedgerTransfers)])?, None),
            ["webhooks", "events"] => (pick(m, &[(Method::GET, Route::WebhookEvents)])?, None),
            ["webhooks", "events", id, "redeliver"] => (
                pick(m, &[(Method::POST, Route::WebhookRedeliver)])?,
                Some(*id),
            ),
            ["webhooks", "replay"] => (pick(m, &[(Method::POST, Route::WebhookReplay)])?, None),
            ["admin", "backup"] => (pick(m, &[(Method::POST, Route::AdminBackup)])?, None),
            ["settlements"] => (
                pick(
                    m,
                    &[
                        (Method::POST, Route::SettlementsCreate),
                        (Method::GET, Route::SettlementsList),
                    ],
                )?,
                None,
            ),
            ["settlements", id] => (pick(m, &[(Method::GET, Route::SettlementGet)])?, Some(*id)),
            ["settlements", id, "status"] => (
                pick(m, &[(Method::POST, Route::SettlementStatus)])?,
                Some(*id),
            ),
            ["statements"] => (pick(m, &[(Method::GET, Route::StatementsList)])?, None),
            ["audit-log"] => (pick(m, &[(Method::GET, Route::AuditLog)])?, None),
            ["statements", "verify"] => (pick(m, &[(Method::GET, Route::StatementsVerify)])?, None),
            ["statements", id] => (pick(m, &[(Method::GET, Route::StatementGet)])?, Some(*id)),
            _ => return Err(Rejection::NotFound),
        },
        _ => return Err(Rejection::NotFound),
    };
    Ok(Matched { route, id })
}

/// The methods a known path answers to (for `Allow` on a 405).
pub fn allowed_methods(path: &str) -> Vec<&'static str> {
    [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PATCH, "PATCH"),
    ]
    .into_iter()
    .filter(|(m, _)| route(m, path).is_ok())
    .map(|(_, name)| name)
    .collect()
}

fn pick(method: &Method, allowed: &[(Method, Route)]) -> Result<Route, Rejection> {
    allowed
        .iter()
        .find(|(m, _)| m == method || (*m == Method::GET && method == Method::HEAD))
        .map(|(_, r)| *r)
        .ok_or(Rejection::MethodNotAllowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_matches_its_own_template() {
        for route in Route::ALL {
            let (method, template) = route.spec();
            let path = template.replace("{id}", "txn_0123");
            let matched = route_or_panic(&method, &path);
            assert_eq!(matched.route, route, "{template}");
            assert_eq!(matched.id.is_some(), template.contains("{id}"));
        }
    }

    fn route_or_panic<'a>(method: &Method, path: &'a str) -> Matched<'a> {
        match route(method, path) {
            Ok(m) => m,
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    #[test]
    fn unknown_paths_and_methods() {
        assert_eq!(
            route(&Method::GET, "/api/v1/nope").err(),
            Some(Rejection::NotFound)
        );
        assert_eq!(route(&Method::GET, "/").err(), Some(Rejection::NotFound));
        assert_eq!(
            route(&Method::GET, "/api/v2/balance").err(),
            Some(Rejection::NotFound)
        );
        assert_eq!(
            route(&Method::DELETE, "/api/v1/payments").err(),
            Some(Rejection::MethodNotAllowed)
        );
        assert_eq!(
            route(&Method::PUT, "/api/v1/users/usr_1").err(),
            Some(Rejection::MethodNotAllowed)
        );
        assert!(route(&Method::GET, "/api/v1/balance/").is_ok());
        assert_eq!(allowed_methods("/api/v1/payments"), ["GET", "HEAD", "POST"]);
        assert_eq!(
            allowed_methods("/api/v1/users/usr_1"),
            ["GET", "HEAD", "PATCH"]
        );
        assert!(allowed_methods("/nope").is_empty());
    }
}
