//! The merchant portal (SPEC §18): server-rendered pages at `/`, on the
//! same port as the API. A user signs in with an API key, which is
//! exchanged for a server-side session (see `session`); every page then
//! calls the API's own handler (`handlers::dispatch`) with the session's
//! user as the caller, so the portal has exactly the API's authorization,
//! scopes and validation, and renders its JSON answer (or its error) as
//! HTML. Portal requests count against the user's own rate-limit bucket.
//!
//! Every form carries the session's CSRF token, checked on every POST
//! along with the request's origin; every page carries a strict CSP and
//! no API key is ever written into a page except the one-time display
//! right after a key is created or regenerated.

pub mod assets;
mod pages;
pub mod session;

use crate::http::auth::{self, Caller};
use crate::http::error::Body;
use crate::http::handlers;
use crate::http::request::Query;
use crate::http::router::Route;
use crate::http::App;
use bytes::Bytes;
use domain::{Rejection, Role};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use session::{Session, Sessions};
use std::net::SocketAddr;
use std::time::Duration;

/// The one metric label of every portal request (bounded cardinality).
pub const METRIC_LABEL: &str = "/portal";

/// The strict policy of every portal response: only this origin's own
/// stylesheet and script, no inline code, no frames, forms only to here.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The portal's state: its sessions.
pub struct Portal {
    pub sessions: Sessions,
}

impl Portal {
    pub fn new(config: &crate::config::Config) -> Portal {
        Portal {
            sessions: Sessions::new(
                Duration::from_secs(config.portal_session_idle_secs.max(1)),
                config.portal_sessions_max,
            ),
        }
    }
}

/// The pages, with the API route each one reads.
const LIST_PAGES: [(&str, Route); 9] = [
    ("/payments", Route::PaymentsList),
    ("/payouts", Route::PayoutsList),
    ("/refunds", Route::RefundsList),
    ("/settlements", Route::SettlementsList),
    ("/statements", Route::StatementsList),
    ("/ledger", Route::ReportLedger),
    ("/users", Route::UsersList),
    ("/webhooks", Route::WebhookEvents),
    ("/audit-log", Route::AuditLog),
];

/// Whether the portal serves `path` (every other path is the API's or unknown).
pub fn owns(path: &str) -> bool {
    matches!(
        path,
        "/" | "/signin"
            | "/signout"
            | "/balance"
            | "/ledger.csv"
            | "/settlements.csv"
            | "/statement.csv"
            | "/profile"
            | "/profile/webhook-secret"
            | "/profile/settlement-account"
            | "/reference"
            | "/reference/regenerate"
            | "/assets/portal.css"
            | "/assets/copy.js"
    ) || LIST_PAGES.iter().any(|(p, _)| *p == path)
        || user_action(path).is_some()
        || redeliver_id(path).is_some()
}

/// `/webhooks/{id}/redeliver`: the event id.
fn redeliver_id(path: &str) -> Option<&str> {
    let id = path
        .strip_prefix("/webhooks/")?
        .strip_suffix("/redeliver")?;
    (!id.is_empty() && id.len() <= 64 && !id.contains('/')).then_some(id)
}

/// `/users/{id}/status` or `/users/{id}/api-key`: the id and the action.
fn user_action(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/users/")?;
    let (id, action) = rest.split_once('/')?;
    (!id.is_empty() && id.len() <= 64 && matches!(action, "status" | "api-key"))
        .then_some((id, action))
}

/// A signed-in request: the session (and its cookie value) and the caller.
pub(crate) struct Signed {
    pub cookie: String,
    pub session: Session,
    pub caller: Caller,
}

/// What a page shows when the API refuses: the API's own status and code.
pub(crate) struct Failure {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl From<Rejection> for Failure {
    fn from(r: Rejection) -> Failure {
        Failure {
            status: StatusCode::from_u16(r.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: r.code(),
            message: r.message(),
        }
    }
}

/// Answers one portal request; never fails.
pub async fn handle(app: &App, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let mut response = if let Some(asset) = assets::get(&path) {
        if parts.method == Method::GET || parts.method == Method::HEAD {
            asset
        } else {
            method_not_allowed("GET")
        }
    } else {
        page(app, &parts, body, &path, peer).await
    };
    security_headers(response.headers_mut());
    response
}

async fn page(
    app: &App,
    parts: &hyper::http::request::Parts,
    body: Incoming,
    path: &str,
    peer: SocketAddr,
) -> Response<Body> {
    let signed = signed_in(app, &parts.headers);
    // The same buckets as the API: the session's user, or (signing in)
    // the peer's address.
    let verdict = match &signed {
        Some(s) => app
            .limiter
            .check(*s.caller.id().as_bytes(), s.caller.user.rate_limit_per_min),
        None => app
            .limiter
            .check(crate::http::peer_key(&peer), app.config.rate_limit_per_min),
    };
    if !verdict.allowed {
        if let (Some(s), true) = (&signed, verdict.misuse) {
            crate::http::suspend_for_misuse(app, &s.caller).await;
        }
        let mut response = failure_page(
            signed.as_ref(),
            &Rejection::RateLimitExceeded {
                retry_after_secs: verdict.retry_after_secs,
            }
            .into(),
        );
        if let Ok(v) = HeaderValue::from_str(&verdict.retry_after_secs.to_string()) {
            response.headers_mut().insert("retry-after", v);
        }
        return response;
    }
    match parts.method {
        Method::GET | Method::HEAD => get(app, parts, path, signed).await,
        Method::POST => {
            let form = match read_form(app, parts, body).await {
                Ok(form) => form,
                Err(f) => return failure_page(signed.as_ref(), &f),
            };
            post(app, parts, path, signed, form).await
        }
        _ => method_not_allowed("GET, POST"),
    }
}

async fn get(
    app: &App,
    parts: &hyper::http::request::Parts,
    path: &str,
    signed: Option<Signed>,
) -> Response<Body> {
    let Some(s) = signed else {
        return if path == "/" {
            html(StatusCode::OK, pages::sign_in(None))
        } else {
            see_other("/")
        };
    };
    let query = parts.uri.query();
    let result = match path {
        "/" => return see_other("/balance"),
        "/balance" => balance_page(app, &s, query).await,
        "/profile" => {
            let profile = call(app, &s.caller, Route::ProfileGet, None, None, None).await;
            let flash = app
                .portal
                .sessions
                .take_flash(&s.cookie)
                .filter(|f| f.secret);
            profile.map(|v| pages::profile(&s, &v["data"], flash.as_ref()))
        }
        "/reference" => {
            let flash = app
                .portal
                .sessions
                .take_flash(&s.cookie)
                .filter(|f| f.user.is_none() && !f.secret);
            Ok(pages::reference(&s, flash.as_ref()))
        }
        "/ledger.csv" => return csv_download(app, &s, query, Route::ReportLedger).await,
        "/settlements.csv" => {
            return csv_download(app, &s, query, Route::SettlementsList).await;
        }
        "/statement.csv" => return statement_csv(app, &s, query).await,
        _ => match LIST_PAGES.iter().find(|(p, _)| *p == path) {
            Some((_, route)) => list_page(app, &s, path, *route, query).await,
            None => Err(Rejection::MethodNotAllowed.into()),
        },
    };
    match result {
        Ok(markup) => html(StatusCode::OK, markup),
        Err(f) => failure_page(Some(&s), &f),
    }
}

async fn post(
    app: &App,
    parts: &hyper::http::request::Parts,
    path: &str,
    signed: Option<Signed>,
    form: Query,
) -> Response<Body> {
    if !same_origin(&parts.headers) {
        return forbidden_form(signed.as_ref());
    }
    if path == "/signin" {
        return sign_in(app, &parts.headers, &form);
    }
    let Some(s) = signed else {
        return see_other("/");
    };
    // Every form of a session carries its token; without it nothing changes.
    if !form
        .get("csrf")
        .is_some_and(|t| session::same(t, &s.session.csrf))
    {
        return forbidden_form(Some(&s));
    }
    let sessions = &app.portal.sessions;
    let result = match path {
        "/signout" => {
            sessions.end(&s.cookie);
            let mut response = see_other("/");
            set_cookie(&mut response, &clear_cookie(&parts.headers));
            return response;
        }
        "/profile" => {
            let mut body = serde_json::Map::new();
            if let Some(name) = form.get("name") {
                body.insert("name".into(), json!(name));
            }
            body.insert("webhook_url".into(), json!(form.get("webhook_url")));
            send(app, &s.caller, Route::ProfilePatch, Value::Object(body))
                .await
                .map(|_| ())
        }
        "/profile/webhook-secret" => {
            match send(app, &s.caller, Route::ProfileWebhookSecret, json!({})).await {
                Ok(v) => {
                    let secret = v["data"]["webhook_secret"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    sessions.set_secret_flash(&s.cookie, secret);
                    return see_other("/profile");
                }
                Err(f) => Err(f),
            }
        }
        "/profile/settlement-account" => {
            let account = json!({
                "name": form.get("account_name"),
                "account_number": form.get("account_number"),
                "ifsc": form.get("ifsc"),
            });
            send(
                app,
                &s.caller,
                Route::ProfilePatch,
                json!({ "settlement_account": account }),
            )
            .await
            .map(|_| ())
        }
        "/reference/regenerate" => {
            match send(app, &s.caller, Route::ProfileApiKey, json!({})).await {
                Ok(v) => {
                    let key = v["data"]["api_key"].as_str().unwrap_or_default().to_owned();
                    // This session goes on with the new key; every other
                    // session of the user ends (the old key is dead).
                    if let Some(user) = app.directory.get(&s.caller.id()) {
                        sessions.rebind(&s.cookie, user.key_hash.clone(), last4(&key));
                        sessions.end_stale(&user.id, &user.key_hash);
                    }
                    sessions.set_flash(&s.cookie, None, key);
                    return see_other("/reference");
                }
                Err(f) => Err(f),
            }
        }
        "/users" => {
            let mut body = serde_json::Map::new();
            for field in ["name", "role", "email"] {
                if let Some(v) = form.get(field) {
                    body.insert(field.into(), json!(v));
                }
            }
            match send(app, &s.caller, Route::UsersCreate, Value::Object(body)).await {
                Ok(v) => {
                    flash_user_key(sessions, &s, &v);
                    return see_other("/users");
                }
                Err(f) => Err(f),
            }
        }
        _ if redeliver_id(path).is_some() => send_to(
            app,
            &s.caller,
            Route::WebhookRedeliver,
            redeliver_id(path),
            json!({}),
        )
        .await
        .map(|_| ()),
        _ => match user_action(path) {
            Some((id, "status")) => {
                let status = form.get("status").unwrap_or_default();
                send_to(
                    app,
                    &s.caller,
                    Route::UserPatch,
                    Some(id),
                    json!({ "status": status }),
                )
                .await
                .map(|_| ())
            }
            Some((id, _)) => {
                match send_to(app, &s.caller, Route::UserApiKey, Some(id), json!({})).await {
                    Ok(v) => {
                        flash_user_key(sessions, &s, &v);
                        return see_other("/users");
                    }
                    Err(f) => Err(f),
                }
            }
            None => Err(Rejection::MethodNotAllowed.into()),
        },
    };
    match result {
        Ok(()) => see_other(back_to(path)),
        Err(f) => failure_page(Some(&s), &f),
    }
}

/// Where a successful form sends the browser.
fn back_to(path: &str) -> &'static str {
    if path.starts_with("/profile") {
        "/profile"
    } else if path.starts_with("/webhooks/") {
        "/webhooks"
    } else {
        "/users"
    }
}

fn flash_user_key(sessions: &Sessions, s: &Signed, v: &Value) {
    let key = v["data"]["api_key"].as_str().unwrap_or_default().to_owned();
    let id = v["data"]["user"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let name = v["data"]["user"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    sessions.set_flash(&s.cookie, Some((id, name)), key);
}

/// `POST /signin`: the key is checked exactly as the API checks
/// `X-API-KEY`, then forgotten: the session keeps its user, the hash the
/// user's key had and its last four characters.
fn sign_in(app: &App, headers: &HeaderMap, form: &Query) -> Response<Body> {
    let key = form.get("api_key").map(str::trim);
    let user = match auth::authenticate(&app.directory, key) {
        Ok(caller) => caller.user,
        Err(r) => {
            let f = Failure::from(r);
            return html(f.status, pages::sign_in(Some(&f)));
        }
    };
    let last4 = key.map(last4).unwrap_or_default();
    let Some(cookie) = app
        .portal
        .sessions
        .create(user.id, user.key_hash.clone(), last4)
    else {
        return failure_page(None, &Rejection::ServiceUnavailable.into());
    };
    let mut response = see_other("/balance");
    set_cookie(&mut response, &session_cookie(headers, &cookie));
    response
}

fn last4(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

/// The session of the request's cookie, if it is live: not idle past its
/// expiry, its user's key still the one it was begun (or rebound) with,
/// and neither the user nor an ancestor suspended. Otherwise it is ended.
fn signed_in(app: &App, headers: &HeaderMap) -> Option<Signed> {
    let cookie = cookie_value(headers, session::COOKIE)?;
    let sessions = &app.portal.sessions;
    let session = sessions.get(&cookie)?;
    let live = app
        .directory
        .get(&session.user_id)
        .filter(|u| session::same(&u.key_hash, &session.key_hash) && !app.directory.is_blocked(u));
    match live {
        Some(user) => Some(Signed {
            cookie,
            session,
            caller: Caller { user },
        }),
        None => {
            sessions.end(&cookie);
            None
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether the client reached us over TLS (directly, or through a proxy
/// that says so). Tijori itself serves plain HTTP; a claim of HTTPS can
/// only make the cookie stricter, so it is taken as given.
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn session_cookie(headers: &HeaderMap, value: &str) -> String {
    let secure = if over_tls(headers) { "; Secure" } else { "" };
    format!(
        "{}={value}; HttpOnly; SameSite=Strict; Path=/{secure}",
        session::COOKIE
    )
}

fn clear_cookie(headers: &HeaderMap) -> String {
    let secure = if over_tls(headers) { "; Secure" } else { "" };
    format!(
        "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}",
        session::COOKIE
    )
}

fn set_cookie(response: &mut Response<Body>, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(SET_COOKIE, v);
    }
}

/// A POST must come from a page of this origin: when the browser says
/// where it comes from (`Sec-Fetch-Site`, or an `Origin`) it must be here.
fn same_origin(headers: &HeaderMap) -> bool {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = header("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    // With `Referrer-Policy: no-referrer` a browser sends `Origin: null`
    // on its own forms: that names no origin (`Sec-Fetch-Site` above does).
    match (header("origin").filter(|o| *o != "null"), header("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            let origin = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            origin == Some(host)
        }
        (Some(_), None) => false,
    }
}

/// A form body (`application/x-www-form-urlencoded`), at most the API's
/// 64 KiB, parsed by the API's own query parser.
async fn read_form(
    app: &App,
    parts: &hyper::http::request::Parts,
    body: Incoming,
) -> Result<Query, Failure> {
    let bytes = crate::http::read_body(app, &parts.headers, body, crate::http::BODY_MAX_BYTES)
        .await
        .map_err(Failure::from)?;
    let is_form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form && !bytes.is_empty() {
        return Err(Rejection::InvalidRequest(
            "a form is sent as application/x-www-form-urlencoded".into(),
        )
        .into());
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Failure::from(Rejection::InvalidRequest("the form is not UTF-8".into())))?;
    Query::parse(Some(text)).map_err(Failure::from)
}

/// Calls the API's own handler for `route` as `caller` and answers its
/// JSON envelope, or its refusal.
/// A form's action: the API route with no query, answered as `call` does.
async fn send(app: &App, caller: &Caller, route: Route, body: Value) -> Result<Value, Failure> {
    call(app, caller, route, None, None, Some(body)).await
}

/// As `send`, on the record a path names.
async fn send_to(
    app: &App,
    caller: &Caller,
    route: Route,
    id: Option<&str>,
    body: Value,
) -> Result<Value, Failure> {
    call(app, caller, route, id, None, Some(body)).await
}

pub(crate) async fn call(
    app: &App,
    caller: &Caller,
    route: Route,
    id: Option<&str>,
    query: Option<Query>,
    body: Option<Value>,
) -> Result<Value, Failure> {
    let response = call_raw(app, caller, route, id, query, body).await?;
    let bytes = response
        .into_body()
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    serde_json::from_slice(&bytes)
        .map_err(|_| Failure::from(Rejection::InvalidRequest("unexpected answer".into())))
}

async fn call_raw(
    app: &App,
    caller: &Caller,
    route: Route,
    id: Option<&str>,
    query: Option<Query>,
    body: Option<Value>,
) -> Result<Response<Body>, Failure> {
    let query = match query {
        Some(q) => q,
        None => Query::parse(None)?,
    };
    query.check(route.query_params())?;
    let body = match body {
        Some(v) => Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
        None => Bytes::new(),
    };
    let headers = HeaderMap::new();
    let ctx = handlers::Ctx {
        app,
        caller: caller.clone(),
        id,
        query,
        body,
        headers: &headers,
    };
    Ok(handlers::dispatch(route, &ctx).await?)
}

/// The page's query string as the API's query, without the empty fields
/// an HTML form sends for every input left blank.
fn page_query(raw: Option<&str>) -> Result<Query, Failure> {
    Ok(Query::parse(raw)?.without_empty())
}

async fn balance_page(app: &App, s: &Signed, raw: Option<&str>) -> Result<maud::Markup, Failure> {
    let query = page_query(raw)?;
    let chosen = query.get("merchant_id").map(str::to_owned);
    let merchants = merchant_choices(app, s).await;
    let balance = call(app, &s.caller, Route::Balance, None, Some(query), None).await?;
    Ok(pages::balance(
        s,
        &balance["data"],
        &merchants,
        chosen.as_deref(),
    ))
}

/// For admins and managers: the merchants they may choose (the first
/// page of the API's own `GET /users?role=merchant`).
async fn merchant_choices(app: &App, s: &Signed) -> Vec<(String, String)> {
    if !matches!(s.caller.role(), Role::Admin | Role::Manager) {
        return Vec::new();
    }
    let Ok(query) = Query::parse(Some("role=merchant&limit=100")) else {
        return Vec::new();
    };
    let Ok(v) = call(app, &s.caller, Route::UsersList, None, Some(query), None).await else {
        return Vec::new();
    };
    v["data"]
        .as_array()
        .map(|users| {
            users
                .iter()
                .map(|u| {
                    (
                        u["id"].as_str().unwrap_or_default().to_owned(),
                        u["name"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn list_page(
    app: &App,
    s: &Signed,
    path: &str,
    route: Route,
    raw: Option<&str>,
) -> Result<maud::Markup, Failure> {
    let query = page_query(raw)?;
    let filters: Vec<(String, String)> = query
        .pairs()
        .filter(|(k, _)| *k != "cursor")
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let merchants = merchant_choices(app, s).await;
    let flash = if route == Route::UsersList {
        app.portal
            .sessions
            .take_flash(&s.cookie)
            .filter(|f| f.user.is_some())
    } else {
        None
    };
    // The ledger and statements of an admin or manager are one merchant's:
    // until one is chosen, the page only offers the choice.
    let needs_merchant = matches!(route, Route::ReportLedger | Route::StatementsList)
        && matches!(s.caller.role(), Role::Admin | Role::Manager)
        && query.get("merchant_id").is_none();
    let listing = if needs_merchant {
        json!({ "data": [], "pagination": { "next_cursor": null } })
    } else {
        call(app, &s.caller, route, None, Some(query), None).await?
    };
    Ok(pages::list(
        s,
        &pages::ListView {
            path,
            route,
            listing: &listing,
            filters: &filters,
            merchants: &merchants,
            flash: flash.as_ref(),
            needs_merchant,
        },
    ))
}

/// `GET /statement.csv?date=D[&merchant_id=M]`: the API's
/// `GET /statements/D?format=csv`, as a download.
async fn statement_csv(app: &App, s: &Signed, raw: Option<&str>) -> Response<Body> {
    let query = match page_query(raw) {
        Ok(q) => q,
        Err(f) => return failure_page(Some(s), &f),
    };
    let Some(date) = query.get("date").map(str::to_owned) else {
        return failure_page(
            Some(s),
            &Rejection::MissingFields(vec!["date".into()]).into(),
        );
    };
    // Only what the API's statement route takes: the merchant and the format.
    let mut api = match Query::parse(None) {
        Ok(q) => q.with("format", "csv"),
        Err(f) => return failure_page(Some(s), &f.into()),
    };
    if let Some(m) = query.get("merchant_id") {
        api = api.with("merchant_id", m);
    }
    match call_raw(
        app,
        &s.caller,
        Route::StatementGet,
        Some(&date),
        Some(api),
        None,
    )
    .await
    {
        Ok(mut response) => {
            response.headers_mut().insert(
                hyper::header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"statement.csv\""),
            );
            response
        }
        Err(f) => failure_page(Some(s), &f),
    }
}

/// `GET /ledger.csv` and `GET /settlements.csv`: the API's own CSV of the
/// route (`format=csv`, the whole selected range), as a download.
async fn csv_download(app: &App, s: &Signed, raw: Option<&str>, route: Route) -> Response<Body> {
    let query = match page_query(raw) {
        Ok(q) => q.with("format", "csv"),
        Err(f) => return failure_page(Some(s), &f),
    };
    let disposition = match route {
        Route::SettlementsList => "attachment; filename=\"settlements.csv\"",
        _ => "attachment; filename=\"ledger.csv\"",
    };
    match call_raw(app, &s.caller, route, None, Some(query), None).await {
        Ok(mut response) => {
            response.headers_mut().insert(
                hyper::header::CONTENT_DISPOSITION,
                HeaderValue::from_static(disposition),
            );
            response
        }
        Err(f) => failure_page(Some(s), &f),
    }
}

fn html(status: StatusCode, markup: maud::Markup) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(markup.into_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn see_other(location: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_static(location));
    response
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = failure_page(None, &Rejection::MethodNotAllowed.into());
    response
        .headers_mut()
        .insert(hyper::header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// The API's refusal, rendered as a page with the API's status.
fn failure_page(signed: Option<&Signed>, f: &Failure) -> Response<Body> {
    html(f.status, pages::failure(signed, f))
}

/// A form without its session's token, or from another origin: 403.
fn forbidden_form(signed: Option<&Signed>) -> Response<Body> {
    failure_page(
        signed,
        &Failure {
            status: StatusCode::FORBIDDEN,
            code: "csrf_failed",
            message: "This form's security token is missing or wrong, or it was sent from \
                      another site. Nothing was changed: reload the page and try again."
                .into(),
        },
    )
}

/// The headers of every portal response (the server adds `nosniff`).
fn security_headers(headers: &mut HeaderMap) {
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}
