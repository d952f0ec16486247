//! The web portal (SPEC §18), black-box.
//!
//! Plain HTTP (no browser): the sign-in page and the headers of every
//! page, the session cookie's flags, CSRF and same-origin checks, sessions
//! ending on idle expiry, suspension (of the user or an ancestor) and key
//! regeneration, the API's own answer for a page outside the role, the
//! shared rate limit, and no key in any page.
//!
//! In a real headless Chromium through WebDriver (`fantoccini` and the
//! Debian `chromium-driver`): sign in, watch the balance change after a
//! pay-in settles, create an api_user and see its key once, regenerate
//! one's own key and find the old session ended, an api_user refused a
//! merchant's page, the cookie's flags as the browser holds them. Without
//! chromedriver these skip with a message, unless `TIJORI_REQUIRE_BROWSER=1`
//! (CI), where they fail. With `TIJORI_PORTAL_SCREENSHOTS=<dir>` the
//! browser test also saves the main pages at desktop and phone widths.

use crate::common::{Resp, Server};
use hyper::Method;
use serde_json::json;
use std::time::Duration;

const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// Whether `text` holds anything shaped like an API key (`tjk_` and 38
/// base62 characters).
fn holds_a_key(text: &str) -> bool {
    text.match_indices("tjk_").any(|(i, _)| {
        let rest = &text[i + 4..];
        rest.len() >= 38 && rest.bytes().take(38).all(|b| b.is_ascii_alphanumeric())
    })
}

async fn get(server: &Server, path: &str, cookie: &str) -> Resp {
    server
        .request_with(Method::GET, path, None, None, &[("cookie", cookie)])
        .await
}

async fn post_form(server: &Server, path: &str, cookie: &str, form: &str) -> Resp {
    server
        .request_with(
            Method::POST,
            path,
            None,
            Some(form.as_bytes().to_vec()),
            &[FORM, ("cookie", cookie)],
        )
        .await
}

/// Signs in with `key` over plain HTTP; answers the `Cookie` header value.
async fn sign_in(server: &Server, key: &str) -> String {
    let r = post_form(server, "/signin", "", &format!("api_key={key}")).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.header("location"), Some("/balance"));
    let set = r.header("set-cookie").expect("a session cookie");
    set.split(';').next().unwrap().to_owned()
}

/// The CSRF token in a page's forms.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with its token");
    page[at + 19..at + 19 + 64].to_owned()
}

fn assert_page_headers(r: &Resp) {
    assert_eq!(r.header("content-security-policy"), Some(CSP));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
}

#[tokio::test]
async fn sign_in_page_headers_and_the_rest_of_the_server_unchanged() {
    let server = Server::start(&[]);
    let r = get(&server, "/", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.text.contains("action=\"/signin\""), "{}", r.text);
    assert_page_headers(&r);
    for asset in ["/assets/portal.css", "/assets/copy.js"] {
        let r = get(&server, asset, "").await;
        assert_eq!(r.status, 200, "{asset}");
        assert_page_headers(&r);
    }
    // A page without a session goes to the sign-in page.
    let r = get(&server, "/balance", "").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/"));
    // The rest of the server is as it was.
    let r = get(&server, "/healthz", "").await;
    assert_eq!(
        (r.status.as_u16(), r.data()["status"].as_str()),
        (200, Some("ok"))
    );
    let r = get(&server, "/no-such-page", "").await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
    let r = get(&server, "/api/v1/balance", "").await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "invalid_api_key"));
    let metrics = get(&server, "/metrics", "").await.text;
    assert!(
        metrics.contains("route=\"/portal\""),
        "portal series registered"
    );
}

#[tokio::test]
async fn session_cookie_flags_and_a_wrong_key() {
    let server = Server::start(&[]);
    let r = post_form(
        &server,
        "/signin",
        "",
        &format!("api_key={}", server.admin_key),
    )
    .await;
    assert_eq!(r.status, 303);
    assert_page_headers(&r);
    let cookie = r.header("set-cookie").unwrap().to_owned();
    let attrs: Vec<&str> = cookie.split("; ").collect();
    assert!(
        attrs[0].starts_with("tijori_session=") && attrs[0].len() == 15 + 64,
        "{cookie}"
    );
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(attrs.contains(&flag), "{flag} in {cookie}");
    }
    // Plain HTTP here: no Secure (a browser would drop the cookie).
    assert!(!attrs.contains(&"Secure"), "{cookie}");
    assert!(!cookie.contains(&server.admin_key));
    // Behind a TLS-terminating proxy that says so, the cookie is Secure.
    let r = server
        .request_with(
            Method::POST,
            "/signin",
            None,
            Some(format!("api_key={}", server.admin_key).into_bytes()),
            &[FORM, ("x-forwarded-proto", "https")],
        )
        .await;
    assert!(r.header("set-cookie").unwrap().ends_with("; Secure"));
    // A wrong key: the API's answer, as a page, and no session.
    let wrong = "tjk_0000000000000000000000000000000000000000";
    let r = post_form(&server, "/signin", "", &format!("api_key={wrong}")).await;
    assert_eq!(r.status, 401);
    assert!(r.text.contains("invalid_api_key"));
    assert!(r.header("set-cookie").is_none());
    assert!(!r.text.contains(wrong), "a typed key is not echoed");
}

#[tokio::test]
async fn forms_without_their_csrf_token_or_from_another_origin_change_nothing() {
    let server = Server::start(&[]);
    let (_, merchant) = server
        .create_user(&server.admin_key, "merchant", json!({}))
        .await;
    let cookie = sign_in(&server, &merchant).await;
    let page = get(&server, "/users", &cookie).await;
    assert_eq!(page.status, 200);
    let token = csrf_of(&page.text);
    let count = || async {
        server
            .get("/api/v1/users", &merchant)
            .await
            .data()
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count().await, 0);
    for form in [
        "name=Eve&role=api_user".to_owned(),
        format!("name=Eve&role=api_user&csrf={}", "0".repeat(64)),
        format!("name=Eve&role=api_user&csrf={}", &token[..63]),
    ] {
        let r = post_form(&server, "/users", &cookie, &form).await;
        assert_eq!(r.status, 403, "{form}");
        assert!(r.text.contains("csrf_failed"));
        assert_page_headers(&r);
    }
    // The right token from another site's page.
    let r = server
        .request_with(
            Method::POST,
            "/users",
            None,
            Some(format!("name=Eve&role=api_user&csrf={token}").into_bytes()),
            &[FORM, ("cookie", &cookie), ("origin", "http://evil.example")],
        )
        .await;
    assert_eq!(r.status, 403);
    // Sign-out without its token keeps the session.
    let r = post_form(&server, "/signout", &cookie, "").await;
    assert_eq!(r.status, 403);
    assert_eq!(count().await, 0, "nothing was created");
    // With its token the form works.
    let r = post_form(
        &server,
        "/users",
        &cookie,
        &format!("name=Ann&role=api_user&csrf={token}"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(count().await, 1);
    // Sign-out ends the session and clears the cookie.
    let r = post_form(&server, "/signout", &cookie, &format!("csrf={token}")).await;
    assert_eq!(r.status, 303);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(get(&server, "/balance", &cookie).await.status, 303);
}

#[tokio::test]
async fn sessions_end_on_suspension_of_the_user_or_an_ancestor_and_on_a_new_key() {
    let server = Server::start(&[]);
    let admin = server.admin_key.clone();
    let (merchant_id, merchant) = server.create_user(&admin, "merchant", json!({})).await;
    let (api_user_id, api_user) = server.create_user(&merchant, "api_user", json!({})).await;
    let m = sign_in(&server, &merchant).await;
    let a = sign_in(&server, &api_user).await;
    assert_eq!(get(&server, "/balance", &a).await.status, 200);
    // Suspending the merchant ends its session and its api_user's.
    let r = server
        .patch(
            &format!("/api/v1/users/{merchant_id}"),
            &admin,
            json!({"status": "suspended"}),
        )
        .await;
    assert_eq!(r.status, 200);
    for cookie in [&m, &a] {
        let r = get(&server, "/balance", cookie).await;
        assert_eq!((r.status.as_u16(), r.header("location")), (303, Some("/")));
    }
    // Ended for good: reactivating does not bring them back.
    server
        .patch(
            &format!("/api/v1/users/{merchant_id}"),
            &admin,
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(get(&server, "/balance", &a).await.status, 303);
    // A suspended user cannot sign in: the API's answer.
    server
        .patch(
            &format!("/api/v1/users/{api_user_id}"),
            &merchant,
            json!({"status": "suspended"}),
        )
        .await;
    let r = post_form(&server, "/signin", "", &format!("api_key={api_user}")).await;
    assert_eq!(r.status, 403);
    assert!(r.text.contains("account_suspended"));
    // A key regenerated through the API ends the sessions begun with the old one.
    let m = sign_in(&server, &merchant).await;
    assert_eq!(get(&server, "/balance", &m).await.status, 200);
    let r = server
        .post("/api/v1/profile/api-key", &merchant, json!({}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(get(&server, "/balance", &m).await.status, 303);
}

#[tokio::test]
async fn regenerating_from_the_portal_shows_the_key_once_and_ends_the_other_sessions() {
    let server = Server::start(&[]);
    let (_, merchant) = server
        .create_user(&server.admin_key, "merchant", json!({}))
        .await;
    let here = sign_in(&server, &merchant).await;
    let elsewhere = sign_in(&server, &merchant).await;
    let page = get(&server, "/reference", &here).await;
    let masked = format!("tjk_…{}", &merchant[merchant.len() - 4..]);
    assert!(page.text.contains(&masked), "masked token shown");
    assert!(!holds_a_key(&page.text));
    let token = csrf_of(&page.text);
    let r = post_form(&server, "/reference/regenerate", &here, "").await;
    assert_eq!(r.status, 403, "not without the token");
    let r = post_form(
        &server,
        "/reference/regenerate",
        &here,
        &format!("csrf={token}"),
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.header("location")),
        (303, Some("/reference"))
    );
    let page = get(&server, "/reference", &here).await;
    assert!(holds_a_key(&page.text), "the new key, once");
    let at = page.text.find("id=\"new-key-value\">").unwrap() + 19;
    let new_key = page.text[at..at + 42].to_owned();
    assert!(page.text.contains(&format!("tjk_…{}", &new_key[38..])));
    assert_eq!(server.get("/api/v1/balance", &new_key).await.status, 200);
    assert_eq!(server.get("/api/v1/balance", &merchant).await.status, 401);
    // Not again on reload; this session goes on, the other one ended.
    let again = get(&server, "/reference", &here).await;
    assert_eq!(again.status, 200);
    assert!(!holds_a_key(&again.text) && !again.text.contains(&new_key));
    assert_eq!(get(&server, "/balance", &elsewhere).await.status, 303);
}

#[tokio::test]
async fn idle_sessions_expire() {
    let server = Server::start(&["--portal-session-idle-secs", "1"]);
    let cookie = sign_in(&server, &server.admin_key.clone()).await;
    assert_eq!(get(&server, "/balance", &cookie).await.status, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        get(&server, "/balance", &cookie).await.status,
        200,
        "use keeps it alive"
    );
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let r = get(&server, "/balance", &cookie).await;
    assert_eq!((r.status.as_u16(), r.header("location")), (303, Some("/")));
}

#[tokio::test]
async fn an_api_user_gets_the_apis_answer_and_no_page_holds_a_key() {
    let server = Server::start(&[]);
    let admin = server.admin_key.clone();
    let (_, merchant) = server.create_user(&admin, "merchant", json!({})).await;
    let (_, api_user) = server.create_user(&merchant, "api_user", json!({})).await;
    let api = server.get("/api/v1/users", &api_user).await;
    assert_eq!(
        (api.status.as_u16(), api.code()),
        (403, "insufficient_permissions")
    );
    let cookie = sign_in(&server, &api_user).await;
    let page = get(&server, "/users", &cookie).await;
    assert_eq!(page.status, api.status);
    assert!(
        page.text.contains("insufficient_permissions"),
        "{}",
        page.text
    );
    assert_page_headers(&page);
    assert!(
        !page.text.contains("href=\"/users\""),
        "no Users entry for an api_user"
    );
    // Filters are the API's: an unknown one is its invalid_request.
    let r = get(&server, "/payments?colour=blue", &cookie).await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("invalid_request"));
    // No page of any role carries a key.
    for key in [&admin, &merchant, &api_user] {
        let cookie = sign_in(&server, key).await;
        for path in [
            "/balance",
            "/payments",
            "/payouts",
            "/refunds",
            "/settlements",
            "/statements",
            "/ledger",
            "/users",
            "/profile",
            "/reference",
            "/audit-log",
            "/payments?status=completed&limit=5",
        ] {
            let r = get(&server, path, &cookie).await;
            assert!(r.status == 200 || r.status == 403, "{path}: {}", r.status);
            assert!(!holds_a_key(&r.text), "{path} holds a key");
            assert_page_headers(&r);
        }
    }
}

#[tokio::test]
async fn portal_pages_count_against_the_users_rate_limit() {
    let server = Server::start(&[]);
    let (_, merchant) = server
        .create_user(
            &server.admin_key,
            "merchant",
            json!({"rate_limit_per_min": 4}),
        )
        .await;
    let cookie = sign_in(&server, &merchant).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(get(&server, "/balance", &cookie).await.status.as_u16());
    }
    // The API shares the bucket the pages drained.
    let api = server.get("/api/v1/balance", &merchant).await;
    statuses.push(api.status.as_u16());
    let page = get(&server, "/balance", &cookie).await;
    statuses.push(page.status.as_u16());
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(page.status, 429, "{statuses:?}");
    assert!(page.text.contains("rate_limit_exceeded"));
    assert!(page.header("retry-after").is_some());
}

#[tokio::test]
async fn profile_form_and_the_ledger_csv_go_through_the_api() {
    let server = Server::start(&["--webhook-allow-private"]);
    let (_, merchant) = server
        .create_user(&server.admin_key, "merchant", json!({}))
        .await;
    let cookie = sign_in(&server, &merchant).await;
    let page = get(&server, "/profile", &cookie).await;
    let token = csrf_of(&page.text);
    let form =
        format!("csrf={token}&name=Chai+%26+Co&webhook_url=http%3A%2F%2F127.0.0.1%3A9%2Fhook");
    let r = post_form(&server, "/profile", &cookie, &form).await;
    assert_eq!(
        (r.status.as_u16(), r.header("location")),
        (303, Some("/profile")),
        "{}",
        r.text
    );
    let api = server.get("/api/v1/profile", &merchant).await;
    assert_eq!(api.data()["name"], "Chai & Co");
    assert_eq!(api.data()["webhook_url"], "http://127.0.0.1:9/hook");
    let page = get(&server, "/profile", &cookie).await;
    assert!(page.text.contains("Chai &amp; Co"), "escaped");
    // The API's own validation, as a page: a webhook URL that is not one.
    let r = post_form(
        &server,
        "/profile",
        &cookie,
        &format!("csrf={token}&webhook_url=nope"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("invalid_request"));
    // The ledger's CSV download is the API's CSV.
    server
        .completed_payin(&merchant, "ORDER-CSV", json!(100))
        .await;
    let page = get(&server, "/ledger", &cookie).await;
    assert!(page.text.contains("href=\"/ledger.csv?\""), "{}", page.text);
    let csv = get(&server, "/ledger.csv", &cookie).await;
    let api = server
        .get("/api/v1/reports/ledger?format=csv", &merchant)
        .await;
    assert_eq!(csv.status, 200);
    assert_eq!(csv.header("content-type"), api.header("content-type"));
    assert_eq!(csv.text, api.text);
    assert!(csv.text.contains("payin_credit"), "{}", csv.text);
    assert!(csv
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment"));
    // The settlements CSV is the API's too.
    let page = get(&server, "/settlements", &cookie).await;
    assert!(
        page.text.contains("href=\"/settlements.csv?\""),
        "{}",
        page.text
    );
    let csv = get(&server, "/settlements.csv", &cookie).await;
    let api = server
        .get("/api/v1/settlements?format=csv", &merchant)
        .await;
    assert_eq!(
        (csv.status.as_u16(), csv.text.as_str()),
        (200, api.text.as_str())
    );
    assert!(
        csv.text.starts_with("id,merchant_id,amount"),
        "{}",
        csv.text
    );
    assert_eq!(
        csv.header("content-disposition"),
        Some("attachment; filename=\"settlements.csv\"")
    );
    // Webhook deliveries (to the unreachable URL set above) and redelivery.
    let page = get(&server, "/webhooks", &cookie).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("payment.completed"), "{}", page.text);
    let events = server.get("/api/v1/webhooks/events", &merchant).await;
    let event = events.data()[0]["id"].as_str().unwrap().to_owned();
    let path = format!("/webhooks/{event}/redeliver");
    assert!(page.text.contains(&path));
    assert_eq!(post_form(&server, &path, &cookie, "").await.status, 403);
    let r = post_form(&server, &path, &cookie, &format!("csrf={token}")).await;
    assert_eq!(
        (r.status.as_u16(), r.header("location")),
        (303, Some("/webhooks")),
        "{}",
        r.text
    );
    let r = post_form(
        &server,
        "/webhooks/evt_nope/redeliver",
        &cookie,
        &format!("csrf={token}"),
    )
    .await;
    assert_eq!(r.status, 404, "the API's answer");
}

#[tokio::test]
async fn admins_and_managers_choose_a_merchant_within_their_scope() {
    let server = Server::start(&[]);
    let admin = server.admin_key.clone();
    let (manager_id, manager) = server.create_user(&admin, "manager", json!({})).await;
    let (mine, mine_key) = server
        .create_user(
            &admin,
            "merchant",
            json!({"name": "Mine", "parent_id": manager_id}),
        )
        .await;
    let (other, _) = server
        .create_user(&admin, "merchant", json!({"name": "Other"}))
        .await;
    server
        .completed_payin(&mine_key, "ORDER-M", json!(250))
        .await;
    let m = sign_in(&server, &manager).await;
    let page = get(&server, "/balance", &m).await;
    assert!(
        page.text.contains(&format!("value=\"{mine}\"")),
        "its merchant offered"
    );
    assert!(
        !page.text.contains(&other),
        "another team's merchant not offered"
    );
    let page = get(&server, &format!("/balance?merchant_id={mine}"), &m).await;
    assert_eq!(page.status, 200);
    assert!(
        page.text.contains("<div class=\"value\">250</div>"),
        "{}",
        page.text
    );
    // Outside the scope: the API's not_found, for the balance and a list.
    for path in [
        format!("/balance?merchant_id={other}"),
        format!("/payments?merchant_id={other}"),
    ] {
        let page = get(&server, &path, &m).await;
        let api = server.get(&format!("/api/v1{path}"), &manager).await;
        assert_eq!(
            (page.status, api.code()),
            (api.status, "not_found"),
            "{path}"
        );
        assert!(page.text.contains("not_found"));
    }
    // The admin sees both, and the manager's ledger waits for a choice.
    let a = sign_in(&server, &admin).await;
    let page = get(&server, "/balance", &a).await;
    assert!(page.text.contains(&mine) && page.text.contains(&other));
    let page = get(&server, "/ledger", &m).await;
    assert!(page.text.contains("Choose a merchant."));
    let page = get(&server, &format!("/ledger?merchant_id={mine}"), &m).await;
    assert!(page.text.contains("payin_credit"), "{}", page.text);
}

/// The browser tests: a real headless Chromium driven over WebDriver.
mod browser {
    use super::*;
    use fantoccini::{Client, ClientBuilder, Locator};
    use std::process::{Child, Command, Stdio};

    /// chromedriver on a free port, stopped (killed) on drop.
    struct Driver {
        child: Child,
        url: String,
    }

    impl Drop for Driver {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn chromedriver() -> Option<String> {
        if let Ok(path) = std::env::var("TIJORI_CHROMEDRIVER") {
            return Some(path);
        }
        ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .map(str::to_owned)
    }

    /// Starts chromedriver and a headless browser session, or says why the
    /// test skips (and fails instead under `TIJORI_REQUIRE_BROWSER=1`).
    async fn browser() -> Option<(Driver, Client)> {
        let required = std::env::var("TIJORI_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        let Some(path) = chromedriver() else {
            assert!(
                !required,
                "TIJORI_REQUIRE_BROWSER=1 but chromedriver is missing (Debian: chromium chromium-driver)"
            );
            eprintln!("skipping the portal browser test: no chromedriver (apt-get install chromium chromium-driver)");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {path}: {e}"));
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "chromedriver did not listen"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut options = json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,800", "--hide-scrollbars"]
        });
        if std::path::Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|e| panic!("a WebDriver session: {e}"));
        Some((driver, client))
    }

    async fn sign_in_as(c: &Client, base: &str, key: &str) {
        c.goto(&format!("{base}/")).await.unwrap();
        c.find(Locator::Css("input[name=api_key]"))
            .await
            .unwrap()
            .send_keys(key)
            .await
            .unwrap();
        click(c, "form[action='/signin'] button").await;
        wait_path(c, "/balance").await;
    }

    async fn wait_path(c: &Client, path: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let url = c.current_url().await.unwrap();
            if url.path() == path {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "at {url}, not {path}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn text_of(c: &Client, css: &str) -> String {
        c.find(Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn click(c: &Client, css: &str) {
        c.find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// The new key a page shows once, waiting for it to appear.
    async fn shown_key(c: &Client) -> String {
        c.wait()
            .for_element(Locator::Id("new-key-value"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Saves the page at desktop and phone widths when asked to.
    async fn screenshots(c: &Client, name: &str) {
        let Ok(dir) = std::env::var("TIJORI_PORTAL_SCREENSHOTS") else {
            return;
        };
        std::fs::create_dir_all(&dir).unwrap();
        for (label, w, h) in [("desktop", 1280, 800), ("phone", 390, 844)] {
            c.set_window_size(w, h).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let png = c.screenshot().await.unwrap();
            std::fs::write(format!("{dir}/{name}-{label}.png"), png).unwrap();
        }
        c.set_window_size(1280, 800).await.unwrap();
    }

    #[tokio::test]
    async fn the_portal_in_a_real_browser() {
        let Some((_driver, c)) = browser().await else {
            return;
        };
        // Run in a task so that a failed assertion still ends the browser.
        let session = c.clone();
        let result = tokio::spawn(async move { run(&session).await }).await;
        let _ = c.close().await;
        if let Err(e) = result {
            std::panic::resume_unwind(e.into_panic());
        }
    }

    async fn run(c: &Client) {
        let server = Server::start(&[]);
        let base = server.base.clone();
        let admin = server.admin_key.clone();
        let (_, merchant) = server
            .create_user(&admin, "merchant", json!({"name": "Chai Point"}))
            .await;
        let mut sources = Vec::new();

        // Sign in; the balance page; a pay-in settles and the page shows it.
        sign_in_as(c, &base, &merchant).await;
        assert_eq!(text_of(c, "#balance-available .value").await, "0");
        server
            .completed_payin(&merchant, "ORDER-1", json!(5000))
            .await;
        c.refresh().await.unwrap();
        assert_eq!(text_of(c, "#balance-available .value").await, "5000");
        screenshots(c, "balance").await;
        sources.push(c.source().await.unwrap());

        // The cookie as the browser holds it; nothing in script's reach.
        let cookie = c.get_named_cookie("tijori_session").await.unwrap();
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
        assert_ne!(cookie.secure(), Some(true), "plain HTTP: not Secure");
        let visible = c
            .execute(
                "return document.cookie + '|' + localStorage.length + '|' + sessionStorage.length",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(visible, json!("|0|0"));

        // Payments list with a filter.
        c.goto(&format!("{base}/payments?status=completed"))
            .await
            .unwrap();
        assert!(text_of(c, "table").await.contains("ORDER-1"));
        screenshots(c, "payments").await;
        sources.push(c.source().await.unwrap());

        // Create an api_user: its key once, with a working copy button.
        c.goto(&format!("{base}/users")).await.unwrap();
        click(c, "details summary").await;
        c.find(Locator::Css("form[action='/users'] input[name=name]"))
            .await
            .unwrap()
            .send_keys("Till 1")
            .await
            .unwrap();
        c.find(Locator::Css("form[action='/users'] select[name=role]"))
            .await
            .unwrap()
            .select_by_value("api_user")
            .await
            .unwrap();
        click(c, "form[action='/users'] button").await;
        let new_key = shown_key(c).await;
        assert!(holds_a_key(&new_key), "{new_key}");
        assert_eq!(server.get("/api/v1/balance", &new_key).await.status, 200);
        let copy = c.find(Locator::Css("button[data-copy]")).await.unwrap();
        assert!(
            copy.is_displayed().await.unwrap(),
            "the script showed the copy button"
        );
        c.refresh().await.unwrap();
        let again = c.source().await.unwrap();
        assert!(
            !again.contains(&new_key) && !holds_a_key(&again),
            "shown once only"
        );
        assert!(again.contains("Till 1"));
        screenshots(c, "users").await;
        sources.push(again);

        // The API reference with the masked token.
        c.goto(&format!("{base}/reference")).await.unwrap();
        let masked = text_of(c, "#token-masked").await;
        assert_eq!(masked, format!("tjk_…{}", &merchant[merchant.len() - 4..]));
        screenshots(c, "reference").await;
        sources.push(c.source().await.unwrap());
        for source in &sources {
            assert!(!holds_a_key(source), "a page source holds a key");
            assert!(!source.contains(&merchant) && !source.contains(&admin));
        }

        // Regenerate one's own key: shown once; the old session elsewhere ends.
        let elsewhere = super::sign_in(&server, &merchant).await;
        assert_eq!(
            super::get(&server, "/balance", &elsewhere).await.status,
            200
        );
        click(c, "form[action='/reference/regenerate'] button").await;
        let regenerated = shown_key(c).await;
        assert!(holds_a_key(&regenerated) && regenerated != merchant);
        assert_eq!(server.get("/api/v1/balance", &merchant).await.status, 401);
        assert_eq!(
            server.get("/api/v1/balance", &regenerated).await.status,
            200
        );
        let r = super::get(&server, "/balance", &elsewhere).await;
        assert_eq!(
            (r.status.as_u16(), r.header("location")),
            (303, Some("/")),
            "old session ended"
        );
        c.refresh().await.unwrap();
        assert!(
            !c.source().await.unwrap().contains(&regenerated),
            "not on reload"
        );
        assert_eq!(
            text_of(c, "#token-masked").await,
            format!("tjk_…{}", &regenerated[regenerated.len() - 4..])
        );

        // Sign out; the api_user opens a merchant's page: the API's answer.
        click(c, "form[action='/signout'] button").await;
        wait_path(c, "/").await;
        assert!(
            c.get_named_cookie("tijori_session").await.is_err(),
            "cookie cleared"
        );
        sign_in_as(c, &base, &new_key).await;
        c.goto(&format!("{base}/users")).await.unwrap();
        let body = text_of(c, "main").await;
        let api = server.get("/api/v1/users", &new_key).await;
        assert_eq!(api.code(), "insufficient_permissions");
        assert!(
            body.contains("403") && body.contains("insufficient_permissions"),
            "{body}"
        );
        screenshots(c, "forbidden").await;

        // Back to the sign-in page for its picture.
        click(c, "form[action='/signout'] button").await;
        wait_path(c, "/").await;
        screenshots(c, "signin").await;
    }
}

#[tokio::test]
async fn the_audit_log_page_is_the_apis_audit_log() {
    let server = Server::start(&[]);
    let admin = server.admin_key.clone();
    let (m_id, merchant) = server.create_user(&admin, "merchant", json!({})).await;
    let (_, api_user) = server.create_user(&merchant, "api_user", json!({})).await;
    // A change by the admin, with its reason, lands in the log.
    let r = server
        .patch(
            &format!("/api/v1/users/{m_id}"),
            &admin,
            json!({ "name": "Renamed Stores", "reason": "brand change" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let api = server
        .get(&format!("/api/v1/audit-log?target_id={m_id}"), &admin)
        .await;
    assert_eq!(api.status, 200, "{}", api.text);
    let entries = api.data().as_array().unwrap().clone();
    assert!(!entries.is_empty());
    let cookie = sign_in(&server, &admin).await;
    let page = get(&server, &format!("/audit-log?target_id={m_id}"), &cookie).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_page_headers(&page);
    for e in &entries {
        assert!(page.text.contains(e["id"].as_str().unwrap()), "{e}");
        assert!(page.text.contains(e["action"].as_str().unwrap()), "{e}");
    }
    assert!(page.text.contains("brand change"));
    assert!(page.text.contains("href=\"/audit-log\""));
    // The merchant sees its subtree; the api_user gets the API's 403.
    let cookie = sign_in(&server, &merchant).await;
    assert_eq!(get(&server, "/audit-log", &cookie).await.status, 200);
    let cookie = sign_in(&server, &api_user).await;
    let page = get(&server, "/audit-log", &cookie).await;
    assert_eq!(page.status, 403);
    assert!(page.text.contains("insufficient_permissions"));
    assert!(!page.text.contains("href=\"/audit-log\""));
}

#[tokio::test]
async fn the_profile_rotates_the_webhook_secret_and_sets_the_settlement_account() {
    let server = Server::start(&[]);
    let admin = server.admin_key.clone();
    let (_, merchant) = server.create_user(&admin, "merchant", json!({})).await;
    let before = server.get("/api/v1/profile", &merchant).await;
    let old_secret = before.data()["webhook_secret"].as_str().unwrap().to_owned();
    let cookie = sign_in(&server, &merchant).await;
    let page = get(&server, "/profile", &cookie).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(!page.text.contains(&old_secret), "the secret is masked");
    assert!(page.text.contains(&old_secret[old_secret.len() - 4..]));

    // Rotate: the new secret is the API's, shown on the next page only.
    let csrf = csrf_of(&page.text);
    let r = post_form(
        &server,
        "/profile/webhook-secret",
        &cookie,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let after = server.get("/api/v1/profile", &merchant).await;
    let new_secret = after.data()["webhook_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);
    let shown = get(&server, "/profile", &cookie).await;
    assert!(shown.text.contains(&new_secret), "shown once");
    let again = get(&server, "/profile", &cookie).await;
    assert!(!again.text.contains(&new_secret), "and only once");

    // The settlement account: a bad IFSC is the API's invalid_request and
    // changes nothing; a good one is stored, shown masked.
    let csrf = csrf_of(&again.text);
    let bad = format!("csrf={csrf}&account_name=Chai+Point&account_number=123456789012&ifsc=bad");
    let r = post_form(&server, "/profile/settlement-account", &cookie, &bad).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("invalid_request"));
    let profile = server.get("/api/v1/profile", &merchant).await;
    assert_eq!(profile.data()["settlement_account"], json!(null));
    let good =
        format!("csrf={csrf}&account_name=Chai+Point&account_number=123456789012&ifsc=HDFC0001234");
    let r = post_form(&server, "/profile/settlement-account", &cookie, &good).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let profile = server.get("/api/v1/profile", &merchant).await;
    assert_eq!(
        profile.data()["settlement_account"],
        json!({ "name": "Chai Point", "account_number": "XXXXXXXX9012", "ifsc": "HDFC0001234" })
    );
    let page = get(&server, "/profile", &cookie).await;
    assert!(page.text.contains("XXXXXXXX9012") && !page.text.contains("123456789012"));

    // Without its CSRF token, a rotation changes nothing.
    let r = post_form(&server, "/profile/webhook-secret", &cookie, "").await;
    assert_eq!(r.status, 403);
    let still = server.get("/api/v1/profile", &merchant).await;
    assert_eq!(still.data()["webhook_secret"], json!(new_secret));
}

#[tokio::test]
async fn a_statement_csv_is_the_apis_answer() {
    let server = Server::start(&[]);
    let (_, merchant) = server
        .create_user(&server.admin_key, "merchant", json!({}))
        .await;
    let cookie = sign_in(&server, &merchant).await;
    // No UTC day has closed for a merchant made just now: the API's 404.
    let api = server
        .get("/api/v1/statements/2026-01-01?format=csv", &merchant)
        .await;
    let page = get(&server, "/statement.csv?date=2026-01-01", &cookie).await;
    assert_eq!(page.status, api.status, "{}", page.text);
    assert!(page.text.contains(api.code()), "{}", page.text);
    // Another merchant's statements: the API's refusal, not this one's.
    let (other, _) = server
        .create_user(&server.admin_key, "merchant", json!({}))
        .await;
    let page = get(
        &server,
        &format!("/statement.csv?date=2026-01-01&merchant_id={other}"),
        &cookie,
    )
    .await;
    assert_eq!(page.status, 403, "{}", page.text);
    let page = get(&server, "/statement.csv", &cookie).await;
    assert_eq!(page.status, 400);
    assert!(page.text.contains("missing_fields"));
}
