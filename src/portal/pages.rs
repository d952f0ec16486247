//! The portal's HTML, as `maud` templates: checked at compile time, and
//! every value is HTML-escaped unless wrapped in `PreEscaped` (used only
//! for the doctype). No page carries inline script or style (the CSP
//! forbids both); no page carries an API key, except the one shown once
//! right after it was created or regenerated.

use super::session::Flash;
use super::{Failure, Signed};
use crate::http::router::Route;
use domain::Role;
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

/// Sidebar entries: path, label, and whether `role` sees it.
fn nav(role: Role) -> Vec<(&'static str, &'static str)> {
    let mut items = vec![
        ("/balance", "Balance"),
        ("/payments", "Payments"),
        ("/payouts", "Payouts"),
        ("/refunds", "Refunds"),
        ("/settlements", "Settlements"),
        ("/statements", "Statements"),
        ("/ledger", "Ledger"),
    ];
    if role != Role::Manager {
        items.push(("/webhooks", "Webhooks"));
    }
    if role != Role::ApiUser {
        items.push(("/users", "Users"));
        items.push(("/audit-log", "Audit log"));
    }
    items.push(("/profile", "Profile"));
    items.push(("/reference", "API reference"));
    items
}

fn layout(title: &str, signed: Option<&Signed>, current: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Tijori" }
                link rel="stylesheet" href="/assets/portal.css";
                script src="/assets/copy.js" defer {}
            }
            body {
                header.top {
                    span.brand { "Tijori" }
                    @if let Some(s) = signed {
                        span.who { (s.caller.user.name) " · " (s.caller.role().as_str()) }
                        form.inline method="post" action="/signout" {
                            (csrf(s))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                @if let Some(s) = signed {
                    div.layout {
                        nav.side aria-label="Sections" {
                            @for (path, label) in nav(s.caller.role()) {
                                a href=(path) .here[path == current] { (label) }
                            }
                        }
                        main { (content) }
                    }
                } @else {
                    main { (content) }
                }
            }
        }
    }
}

/// The hidden CSRF field of every form of a session.
fn csrf(s: &Signed) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.session.csrf); }
}

pub fn sign_in(failure: Option<&Failure>) -> Markup {
    layout(
        "Sign in",
        None,
        "/",
        html! {
            div.signin.card {
                h1 { "Sign in" }
                p.muted { "Sign in with your personal API key. It is exchanged for a session and is not kept in this browser." }
                @if let Some(f) = failure {
                    div.card.error { code { (f.code) } " " (f.message) }
                }
                form method="post" action="/signin" autocomplete="off" {
                    label {
                        "API key"
                        input type="password" name="api_key" required autocomplete="off" spellcheck="false" placeholder="tjk_…";
                    }
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// The API's refusal as a page: its status, code and message.
pub fn failure(signed: Option<&Signed>, f: &Failure) -> Markup {
    layout(
        "Error",
        signed,
        "",
        html! {
            h1 { (f.status.as_u16()) " " (f.status.canonical_reason().unwrap_or("Error")) }
            div.card.error {
                p { code { (f.code) } }
                p { (f.message) }
            }
            @if signed.is_none() {
                p { a href="/" { "Sign in" } }
            }
        },
    )
}

/// A JSON value as table text.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

fn at<'a>(item: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(item, |v, key| &v[key])
}

fn merchant_select(merchants: &[(String, String)], chosen: Option<&str>) -> Markup {
    html! {
        label {
            "Merchant"
            select name="merchant_id" {
                option value="" { "All in scope" }
                @for (id, name) in merchants {
                    option value=(id) selected[Some(id.as_str()) == chosen] { (name) " (" (id) ")" }
                }
            }
        }
    }
}

pub fn balance(
    s: &Signed,
    data: &Value,
    merchants: &[(String, String)],
    chosen: Option<&str>,
) -> Markup {
    const FIELDS: [(&str, &str); 7] = [
        ("available", "Available"),
        ("held", "Held"),
        ("pending_payins", "Pending pay-ins"),
        ("total_payins", "Total pay-ins"),
        ("total_payouts", "Total payouts"),
        ("total_fees", "Total fees"),
        ("currency", "Currency"),
    ];
    layout(
        "Balance",
        Some(s),
        "/balance",
        html! {
            h1 { "Balance" }
            @if !merchants.is_empty() {
                form.filters method="get" action="/balance" {
                    (merchant_select(merchants, chosen))
                    button type="submit" { "Show" }
                }
            }
            div.grid {
                @for (key, label) in FIELDS {
                    div.stat id=(format!("balance-{key}")) {
                        div.label { (label) }
                        div.value { (text(&data[key])) }
                    }
                }
            }
            p.muted { "Updated " (text(&data["updated_at"])) }
        },
    )
}

/// A secret as shown in a page: its prefix and last 4 characters only.
fn masked(secret: &str) -> String {
    let prefix = secret.split_once('_').map_or("", |(p, _)| p);
    let tail: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if prefix.is_empty() {
        format!("…{tail}")
    } else {
        format!("{prefix}_…{tail}")
    }
}

pub fn profile(s: &Signed, data: &Value, new_secret: Option<&Flash>) -> Markup {
    let rows = [
        ("User id", "id"),
        ("Name", "name"),
        ("Email", "email"),
        ("Role", "role"),
        ("Status", "status"),
        ("Merchant", "merchant_id"),
        ("Rate limit per minute", "rate_limit_per_min"),
        ("Created", "created_at"),
    ];
    let webhook = data["webhook_url"].as_str().unwrap_or_default();
    layout(
        "Profile",
        Some(s),
        "/profile",
        html! {
            h1 { "Profile" }
            div.table-wrap {
                table {
                    @for (label, key) in rows {
                        tr { th { (label) } td { (text(&data[key])) } }
                    }
                    @if data["merchant_settings"].is_object() {
                        tr { th { "Pay-in fee (bps)" } td { (text(&data["merchant_settings"]["payin_fee_bps"])) } }
                        tr { th { "Payout fee" } td { (text(&data["merchant_settings"]["payout_fee"])) } }
                    }
                }
            }
            h2 { "Settings" }
            form.card method="post" action="/profile" {
                (csrf(s))
                label { "Name" input type="text" name="name" maxlength="200" value=(data["name"].as_str().unwrap_or_default()); }
                label { "Webhook URL (empty to remove)" input type="url" name="webhook_url" maxlength="2048" value=(webhook) placeholder="https://example.com/hooks/tijori"; }
                p { button type="submit" { "Save" } }
            }
            @if matches!(s.caller.role(), Role::Merchant | Role::ApiUser) {
                h2 { "Webhook signing secret" }
                @if let Some(flash) = new_secret {
                    div.card.notice id="new-key" {
                        p { "Your new webhook signing secret. The previous one keeps signing during the rotation's grace period." }
                        p { strong { "It is shown only this once:" } " copy it now." }
                        code.key id="new-key-value" { (flash.key) }
                        button type="button" data-copy="new-key-value" hidden { "Copy" }
                    }
                }
                form.card method="post" action="/profile/webhook-secret" {
                    (csrf(s))
                    p { "Current: " code { (masked(data["webhook_secret"].as_str().unwrap_or_default())) } }
                    p { button type="submit" { "Rotate the secret" } }
                }
            }
            @if s.caller.role() == Role::Merchant {
                h2 { "Settlement account" }
                form.card method="post" action="/profile/settlement-account" {
                    (csrf(s))
                    @let account = &data["settlement_account"];
                    p { "Current: "
                        @if account.is_object() {
                            (text(&account["name"])) ", " code { (text(&account["account_number"])) } ", " (text(&account["ifsc"]))
                        } @else { "none" }
                    }
                    label { "Account holder" input type="text" name="account_name" maxlength="200" required; }
                    label { "Account number (9–18 digits)" input type="text" name="account_number" inputmode="numeric" pattern="[0-9]{9,18}" required; }
                    label { "IFSC" input type="text" name="ifsc" pattern="[A-Z]{4}0[A-Z0-9]{6}" required; }
                    p { button type="submit" { "Save the account" } }
                }
            }
        },
    )
}

/// What a list page shows.
pub struct ListView<'a> {
    pub path: &'a str,
    pub route: Route,
    pub listing: &'a Value,
    pub filters: &'a [(String, String)],
    pub merchants: &'a [(String, String)],
    pub flash: Option<&'a Flash>,
    pub needs_merchant: bool,
}

/// Title and columns (label, JSON path, numeric) of each list.
fn columns(route: Route) -> (&'static str, &'static [(&'static str, &'static str, bool)]) {
    match route {
        Route::PaymentsList => (
            "Payments",
            &[
                ("Id", "id", false),
                ("Order", "order_id", false),
                ("Amount", "amount", true),
                ("Fee", "fee", true),
                ("Status", "status", false),
                ("Payer", "payer", false),
                ("Created", "created_at", false),
            ],
        ),
        Route::PayoutsList => (
            "Payouts",
            &[
                ("Id", "id", false),
                ("Reference", "reference_id", false),
                ("Amount", "amount", true),
                ("Fee", "fee", true),
                ("Status", "status", false),
                ("Beneficiary", "beneficiary.name", false),
                ("Mode", "mode", false),
                ("Created", "created_at", false),
            ],
        ),
        Route::RefundsList => (
            "Refunds",
            &[
                ("Id", "id", false),
                ("Payment", "payment_id", false),
                ("Amount", "amount", true),
                ("Status", "status", false),
                ("Reason", "reason", false),
                ("Created", "created_at", false),
            ],
        ),
        Route::SettlementsList => (
            "Settlements",
            &[
                ("Id", "id", false),
                ("Merchant", "merchant_id", false),
                ("Amount", "amount", true),
                ("Status", "status", false),
                ("UTR", "utr", false),
                ("Created", "created_at", false),
            ],
        ),
        Route::StatementsList => (
            "Statements",
            &[
                ("Date", "date", false),
                ("Merchant", "merchant_id", false),
                ("Opening available", "opening_available", true),
                ("Closing available", "closing_available", true),
                ("Closing held", "closing_held", true),
                ("Transfers", "transfer_count", true),
            ],
        ),
        Route::ReportLedger => (
            "Ledger",
            &[
                ("Seq", "seq", true),
                ("Kind", "kind", false),
                ("Amount", "amount", true),
                ("Available after", "available_after", true),
                ("Held after", "held_after", true),
                ("Reference", "reference", false),
                ("Created", "created_at", false),
            ],
        ),
        Route::WebhookEvents => (
            "Webhook deliveries",
            &[
                ("Id", "id", false),
                ("Event", "event", false),
                ("Status", "status", false),
                ("Attempts", "attempts", true),
                ("Last HTTP status", "last_status_code", true),
                ("Next attempt", "next_attempt_at", false),
                ("Created", "created_at", false),
            ],
        ),
        Route::AuditLog => (
            "Audit log",
            &[
                ("Id", "id", false),
                ("Action", "action", false),
                ("Actor", "actor_id", false),
                ("Target", "target_id", false),
                ("Reason", "reason", false),
                ("Request", "request_id", false),
                ("Created", "created_at", false),
            ],
        ),
        _ => (
            "Users",
            &[
                ("Id", "id", false),
                ("Name", "name", false),
                ("Role", "role", false),
                ("Status", "status", false),
                ("Created", "created_at", false),
            ],
        ),
    }
}

/// `a=b&c=d`, percent-encoded.
fn encode_query(pairs: &[(String, String)]) -> String {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Roles a caller may create (SPEC §3), for the create form.
fn creatable(role: Role) -> Vec<Role> {
    [Role::Admin, Role::Manager, Role::Merchant, Role::ApiUser]
        .into_iter()
        .filter(|r| role.may_create(*r))
        .collect()
}

fn filter_form(v: &ListView<'_>) -> Markup {
    let value = |name: &str| {
        v.filters
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, val)| val.as_str())
    };
    let params: Vec<&str> = v
        .route
        .query_params()
        .iter()
        .copied()
        .filter(|p| !matches!(*p, "cursor" | "format"))
        .collect();
    html! {
        form.filters method="get" action=(v.path) {
            @for p in params {
                @if p == "merchant_id" {
                    @if !v.merchants.is_empty() {
                        (merchant_select(v.merchants, Some(value(p))))
                    }
                } @else {
                    label {
                        (p.replace('_', " "))
                        input type="text" name=(p) value=(value(p)) placeholder=(placeholder(p)) size="14";
                    }
                }
            }
            button type="submit" { "Filter" }
            a href=(v.path) { "Clear" }
        }
    }
}

fn placeholder(param: &str) -> &'static str {
    match param {
        "from" | "to" => "2026-12-01T00:00:00.000Z",
        "limit" => "50",
        "min_amount" | "max_amount" => "0.00",
        "status" => "any",
        "role" => "any",
        _ => "",
    }
}

pub fn list(s: &Signed, v: &ListView<'_>) -> Markup {
    let (title, cols) = columns(v.route);
    let items = v.listing["data"].as_array().map_or(&[][..], Vec::as_slice);
    let next = v.listing["pagination"]["next_cursor"].as_str();
    let paged = v.filters.to_vec();
    let next_href = next.map(|c| {
        let mut q = paged.clone();
        q.push(("cursor".into(), c.into()));
        format!("{}?{}", v.path, encode_query(&q))
    });
    let first_href = format!("{}?{}", v.path, encode_query(&paged));
    let users = v.route == Route::UsersList;
    let webhooks = v.route == Route::WebhookEvents;
    let statements = v.route == Route::StatementsList;
    layout(
        title,
        Some(s),
        v.path,
        html! {
            h1 { (title) }
            @if let Some(flash) = v.flash {
                (shown_once(flash))
            }
            @if users {
                (create_user_form(s))
            }
            (filter_form(v))
            @if v.route == Route::ReportLedger && !v.needs_merchant {
                p { a href=(format!("/ledger.csv?{}", encode_query(&paged))) download { "Download CSV" } }
            }
            @if v.route == Route::SettlementsList {
                p { a href=(format!("/settlements.csv?{}", encode_query(&paged))) download { "Download CSV" } }
            }
            @if v.needs_merchant {
                p.muted { "Choose a merchant." }
            } @else if items.is_empty() {
                p.muted { "Nothing here yet." }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr {
                            @for (label, _, _) in cols { th { (label) } }
                            @if users || webhooks { th { "Actions" } }
                            @if statements { th { "CSV" } }
                        } }
                        tbody {
                            @for item in items {
                                tr {
                                    @for (_, path, num) in cols {
                                        @let value = at(item, path);
                                        @if *path == "status" {
                                            td { span.badge.(text(value)) { (text(value)) } }
                                        } @else {
                                            td.num[*num] { (text(value)) }
                                        }
                                    }
                                    @if users { td { (user_actions(s, item)) } }
                                    @if webhooks { td { (redeliver(s, item)) } }
                                    @if statements {
                                        td { a href=(format!("/statement.csv?{}", encode_query(&[
                                            ("date".to_owned(), text(&item["date"])),
                                            ("merchant_id".to_owned(), text(&item["merchant_id"])),
                                        ]))) download { "CSV" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            div.pager {
                @if let Some(href) = &next_href { a href=(href) rel="next" { "Next page →" } }
                a href=(first_href) { "First page" }
            }
        },
    )
}

fn user_actions(s: &Signed, item: &Value) -> Markup {
    let id = item["id"].as_str().unwrap_or_default();
    let suspended = item["status"].as_str() == Some("suspended");
    html! {
        form.inline method="post" action=(format!("/users/{id}/status")) {
            (csrf(s))
            @if suspended {
                input type="hidden" name="status" value="active";
                button.secondary type="submit" { "Reactivate" }
            } @else {
                input type="hidden" name="status" value="suspended";
                button.danger type="submit" { "Suspend" }
            }
        }
        " "
        form.inline method="post" action=(format!("/users/{id}/api-key")) {
            (csrf(s))
            button.secondary type="submit" { "New key" }
        }
    }
}

fn redeliver(s: &Signed, item: &Value) -> Markup {
    let id = item["id"].as_str().unwrap_or_default();
    html! {
        form.inline method="post" action=(format!("/webhooks/{id}/redeliver")) {
            (csrf(s))
            button.secondary type="submit" { "Redeliver" }
        }
    }
}

fn create_user_form(s: &Signed) -> Markup {
    html! {
        details.card {
            summary { "Create a user" }
            form.filters method="post" action="/users" {
                (csrf(s))
                label { "Name" input type="text" name="name" required maxlength="200"; }
                label { "Email" input type="email" name="email" maxlength="254"; }
                label {
                    "Role"
                    select name="role" {
                        @for r in creatable(s.caller.role()) {
                            option value=(r.as_str()) selected[r == Role::ApiUser] { (r.as_str()) }
                        }
                    }
                }
                button type="submit" { "Create" }
            }
        }
    }
}

/// A key shown exactly once, with the copy button (the portal's only script).
fn shown_once(flash: &Flash) -> Markup {
    html! {
        div.card.notice id="new-key" {
            @if let Some((id, name)) = &flash.user {
                p { "New API key of " strong { (name) } " (" (id) "). " }
            } @else {
                p { "Your new API key. Your previous key no longer works." }
            }
            p { strong { "It is shown only this once:" } " copy it now and keep it somewhere safe." }
            code.key id="new-key-value" { (flash.key) }
            button type="button" data-copy="new-key-value" hidden { "Copy" }
        }
    }
}

pub fn reference(s: &Signed, flash: Option<&Flash>) -> Markup {
    let endpoints: [(&str, &str, &str); 20] = [
        ("GET", "/balance", "Current balance and wallet info"),
        (
            "POST",
            "/payments",
            "Create a pay-in order to collect money from a customer",
        ),
        ("GET", "/payments", "List payments, with filters"),
        ("GET", "/payments/:id", "One payment by transaction id"),
        (
            "POST",
            "/payments/:id/refunds",
            "Refund a completed payment, in whole or in part",
        ),
        ("GET", "/refunds", "List refunds"),
        (
            "POST",
            "/payouts",
            "Create a payout to a bank account or UPI id",
        ),
        ("GET", "/payouts", "List payouts, with a status filter"),
        ("GET", "/payouts/:id", "One payout"),
        ("POST", "/payouts/:id/cancel", "Cancel a queued payout"),
        ("GET", "/profile", "Your profile and merchant settings"),
        ("PATCH", "/profile", "Change your name or webhook URL"),
        ("POST", "/profile/api-key", "Regenerate your key"),
        ("GET", "/users", "List your sub-users"),
        (
            "POST",
            "/users",
            "Create a sub-user (its key is shown once)",
        ),
        ("PATCH", "/users/:id", "Suspend or reactivate a sub-user"),
        ("GET", "/reports/summary", "Counts and sums by status"),
        (
            "GET",
            "/reports/ledger",
            "Ledger entries behind the balance (format=csv)",
        ),
        ("GET", "/settlements", "Settlements to the merchant's bank"),
        ("GET", "/statements", "Daily statements"),
    ];
    let errors: [(&str, u16, &str); 10] = [
        ("missing_fields", 400, "Required parameters are missing"),
        (
            "invalid_request",
            400,
            "Malformed JSON, wrong types, bad filters",
        ),
        (
            "invalid_amount",
            400,
            "Amount not positive, too precise or out of limits",
        ),
        ("invalid_api_key", 401, "API key is missing or invalid"),
        (
            "account_suspended",
            403,
            "The key's user or an ancestor is suspended",
        ),
        ("insufficient_permissions", 403, "Role does not have access"),
        ("not_found", 404, "Record does not exist"),
        ("duplicate_order_id", 409, "Order id already exists"),
        ("insufficient_balance", 422, "Not enough wallet balance"),
        ("rate_limit_exceeded", 429, "Too many requests"),
    ];
    let roles: [(&str, &str); 4] = [
        ("admin", "Full access to all endpoints; manage any user and role; all financial data and reports."),
        ("manager", "Payment endpoints for its merchants; list and manage sub-users; team history and reports."),
        ("merchant", "Pay-in and payout endpoints on its wallet; create and manage api_users; own history."),
        ("api_user", "Balance and profile; submit pay-ins and payouts; its own transactions and reports only."),
    ];
    let masked = format!("tjk_…{}", s.session.key_last4);
    layout(
        "API reference",
        Some(s),
        "/reference",
        html! {
            h1 { "API reference " span.badge { "v1" } }
            p { "Integrate, automate and build on top of Tijori. Every request needs your personal API key in the " code { "X-API-KEY" } " header." }
            @if let Some(flash) = flash {
                (shown_once(flash))
            }
            div.card {
                h2 { "Your personal access token" }
                div.ref-token {
                    code.key id="token-masked" { (masked) }
                    form.inline method="post" action="/reference/regenerate" {
                        (csrf(s))
                        button.danger type="submit" { "Regenerate" }
                    }
                }
                p.muted { "Never share your key. Regenerating it invalidates the previous one at once, and ends your other portal sessions." }
            }
            h2 { "Base URL" }
            p { code { "/api/v1" } " — all responses are JSON." }
            pre { "curl -X GET \"/api/v1/balance\" \\\n  -H \"X-API-KEY: YOUR_API_KEY\" \\\n  -H \"Content-Type: application/json\"" }
            h2 { "Endpoints" }
            div.table-wrap {
                table {
                    thead { tr { th { "Method" } th { "Path" } th { "What" } } }
                    tbody {
                        @for (method, path, what) in endpoints {
                            tr { td { code { (method) } } td { code { (path) } } td { (what) } }
                        }
                    }
                }
            }
            h2 { "Create a payment" }
            pre { "curl -X POST \"/api/v1/payments\" \\\n  -H \"X-API-KEY: YOUR_API_KEY\" \\\n  -H \"Content-Type: application/json\" \\\n  -H \"Idempotency-Key: order-2026-001\" \\\n  -d '{\"order_id\": \"TXN-2026-001\", \"amount\": 5000, \"payer\": \"Jane Smith\"}'" }
            h2 { "Create a payout" }
            pre { "curl -X POST \"/api/v1/payouts\" \\\n  -H \"X-API-KEY: YOUR_API_KEY\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{\"amount\": 1200, \"mode\": \"IMPS\", \"beneficiary\": {\"name\": \"A Supplier\", \"account_number\": \"123456789012\", \"ifsc\": \"HDFC0001234\"}}'" }
            h2 { "Rate limits" }
            p { "Every response carries " code { "X-RateLimit-Limit" } " and " code { "X-RateLimit-Remaining" } "; over the limit the answer is 429 with " code { "Retry-After" } ". Portal pages count against the same limit." }
            h2 { "Roles" }
            div.table-wrap {
                table {
                    @for (role, what) in roles {
                        tr { th { code { (role) } } td { (what) } }
                    }
                }
            }
            h2 { "Webhooks" }
            p { "Set your webhook URL in your " a href="/profile" { "profile" } ". Tijori POSTs a signed JSON payload for every event; answer HTTP 200 to acknowledge." }
            p { @for e in ["payment.completed", "payment.failed", "payout.processed", "payout.rejected", "user.created", "user.suspended"] { span.badge { (e) } " " } }
            pre { "{\n  \"id\": \"evt_…\",\n  \"event\": \"payment.completed\",\n  \"transaction_id\": \"txn_…\",\n  \"order_id\": \"TXN-2026-001\",\n  \"amount\": 5000,\n  \"currency\": \"INR\",\n  \"status\": \"completed\",\n  \"payer\": \"Jane Smith\",\n  \"timestamp\": \"2026-04-05T06:00:00.000Z\"\n}" }
            h2 { "Errors" }
            pre { "{\n  \"success\": false,\n  \"error\": {\n    \"code\": \"invalid_api_key\",\n    \"message\": \"The provided API key is invalid or does not exist.\",\n    \"status\": 401,\n    \"timestamp\": \"2026-04-05T06:00:00.000Z\"\n  }\n}" }
            div.table-wrap {
                table {
                    thead { tr { th { "Code" } th { "Status" } th { "When" } } }
                    tbody {
                        @for (code, status, when) in errors {
                            tr { td { code { (code) } } td.num { (status) } td { (when) } }
                        }
                    }
                }
            }
        },
    )
}
