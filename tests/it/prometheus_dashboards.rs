//! Keeps `grafana/` in step with the code and proves it works against a real
//! Prometheus:
//!
//! - every PromQL expression of `grafana/dashboards/tijori.json` selects
//!   only metric names listed in `domain::metric_names::ALL` or `PROCESS`
//!   (histogram `_bucket`/`_sum`/`_count` series count as their histogram),
//!   and every such name is shown by at least one panel;
//! - the dashboard JSON passes structural checks written here (a subset of
//!   Grafana's dashboard schema: there is no official JSON Schema file to
//!   validate against offline), every selector is scoped by the `job` and
//!   `instance` variables, latency is shown by route and method and as a
//!   heatmap;
//! - `promtool check rules grafana/alerts.yml`, `promtool test rules
//!   grafana/alerts_test.yml` and `promtool check config
//!   grafana/prometheus.yml` pass; every alert has a firing and a quiet
//!   unit test and a `runbook_url` into `docs/runbooks.md`, which has its
//!   section;
//! - a server's gauges of settlements awaiting the rail follow pay-ins
//!   (pending with a long settle delay, 0 once settled), and the audit
//!   gauges follow `--ledger-audit-interval-ms` (read from /metrics);
//! - a real Prometheus (`/usr/bin/prometheus`, Debian package `prometheus`)
//!   scrapes a real Tijori started by the harness while traffic covers
//!   pay-ins, payouts (one rejected by the rail), a failed pay-in, 404s and
//!   401s, and webhooks (a failing attempt, a retry that succeeds, one
//!   delivery that exhausts its attempts); then every panel query, with
//!   `$__rate_interval` replaced by `30s` and `$job`/`$instance` by the
//!   target's, must return data through Prometheus' HTTP API, the alert
//!   rules must load and evaluate cleanly, and none may fire; the series
//!   registered at zero let `increase()` count the first burst, no success
//!   series appears only on first use, `promtool check metrics` passes on
//!   /metrics, and the fsync batch p50 is at least one write set.
//!
//! Without `/usr/bin/prometheus` (or `/usr/bin/promtool`) the tests needing
//! it print SKIPPED on stderr and pass, unless `TIJORI_REQUIRE_PROMETHEUS=1`
//! (set by `.ci/run`, which installs the package) makes them fail instead.

use crate::common::{self, Server};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";
/// What `$__rate_interval` becomes when a panel query is run here.
const RATE_INTERVAL: &str = "30s";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dashboard() -> Value {
    let path = repo().join("grafana/dashboards/tijori.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?} is not JSON: {e}"))
}

/// Every panel, rows' nested panels included.
fn all_panels(dashboard: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels is an array") {
        out.push(panel.clone());
        if let Some(nested) = panel["panels"].as_array() {
            out.extend(nested.iter().cloned());
        }
    }
    out
}

/// (panel title, refId, expr) of every query of the dashboard.
fn queries(dashboard: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for panel in all_panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("?").to_owned();
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push((
                title.clone(),
                target["refId"].as_str().unwrap_or("?").to_owned(),
                target["expr"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
    out
}

/// Prints to the real stderr (not the test harness' captured output), so a
/// skip is visible in a plain `cargo test` run.
fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// Whether a test that needs `binary` may run; if not, says why (or fails
/// when `TIJORI_REQUIRE_PROMETHEUS=1`).
fn have(binary: &str, test: &str) -> bool {
    if Path::new(binary).exists() {
        return true;
    }
    assert!(
        std::env::var("TIJORI_REQUIRE_PROMETHEUS").as_deref() != Ok("1"),
        "{test}: {binary} is not installed, and TIJORI_REQUIRE_PROMETHEUS=1 requires it \
         (Debian: apt-get install -y prometheus)"
    );
    say(&format!(
        "SKIPPED {test}: {binary} is not installed (Debian: apt-get install -y prometheus; .ci/run installs it)"
    ));
    false
}

// ---------------------------------------------------------------------------
// PromQL: which metric names an expression selects
// ---------------------------------------------------------------------------

/// The metric names a PromQL expression selects: every identifier that is
/// not a function or aggregation (followed by `(`), a keyword, a label name
/// (inside `{…}` or the `(…)` after `by`/`without`/`on`/`ignoring`/
/// `group_left`/`group_right`), a duration (inside `[…]` or after
/// `offset`), a number or a string. A lexer, not a parser, which is enough
/// for the expressions a dashboard holds.
fn metric_names_in(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let n = chars.len();
    let mut out = Vec::new();
    let mut i = 0;
    // Skips a quoted string starting at `i`; returns the index after it.
    let skip_string = |mut i: usize| -> usize {
        let quote = chars[i];
        i += 1;
        while i < n && chars[i] != quote {
            if chars[i] == '\\' && quote != '`' {
                i += 1;
            }
            i += 1;
        }
        i + 1
    };
    // Skips from an opening bracket to just after its closing one.
    let skip_group = |mut i: usize, open: char, close: char| -> usize {
        let mut depth = 0;
        while i < n {
            match chars[i] {
                '"' | '\'' | '`' => {
                    i = skip_string(i);
                    continue;
                }
                c if c == open => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        n
    };
    let next_non_space = |mut i: usize| -> usize {
        while i < n && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    while i < n {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(i);
        } else if c == '{' {
            i = skip_group(i, '{', '}');
        } else if c == '[' {
            i = skip_group(i, '[', ']');
        } else if c == '#' {
            while i < n && chars[i] != '\n' {
                i += 1;
            }
        } else if c.is_ascii_digit() || (c == '.' && i + 1 < n && chars[i + 1].is_ascii_digit()) {
            // A number or a duration: 0.99, 1e-9, 0x1f, 5m.
            while i < n
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || ((chars[i] == '-' || chars[i] == '+') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < n && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let after = next_non_space(i);
            let lower = word.to_ascii_lowercase();
            match lower.as_str() {
                "by" | "without" | "on" | "ignoring" | "group_left" | "group_right" => {
                    if after < n && chars[after] == '(' {
                        i = skip_group(after, '(', ')');
                    }
                }
                "offset" => {
                    // The duration that follows.
                    i = after;
                    while i < n && (chars[i].is_ascii_alphanumeric() || chars[i] == '-') {
                        i += 1;
                    }
                }
                "and" | "or" | "unless" | "bool" | "inf" | "nan" => {}
                _ if after < n && chars[after] == '(' => {} // a function
                // An aggregation with its grouping first: `sum by (le) (…)`.
                _ if ["by", "without"].iter().any(|k| {
                    let end = after + k.len();
                    end <= n
                        && chars[after..end]
                            .iter()
                            .collect::<String>()
                            .eq_ignore_ascii_case(k)
                        && chars
                            .get(end)
                            .is_none_or(|c| !c.is_ascii_alphanumeric() && *c != '_')
                }) => {}
                _ => out.push(word),
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Every metric name the server exports: Tijori's and the process ones.
fn exported() -> impl Iterator<Item = &'static str> {
    let names = domain::metric_names::ALL
        .iter()
        .chain(domain::metric_names::PROCESS);
    names.copied()
}

/// The exported name a selected series belongs to: itself, or the
/// histogram whose `_bucket`/`_sum`/`_count` series it is.
fn known_name(name: &str) -> Option<&'static str> {
    if let Some(known) = exported().find(|n| *n == name) {
        return Some(known);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        exported().find(|n| *n == base)
    })
}

#[test]
fn the_promql_lexer_finds_metric_names_and_nothing_else() {
    assert_eq!(
        metric_names_in(
            r#"histogram_quantile(0.99, sum by (le, route) (rate(tijori_http_request_duration_seconds_bucket{route!="/metrics",le=~"0.5|1"}[5m] offset 1h)))"#
        ),
        ["tijori_http_request_duration_seconds_bucket"]
    );
    assert_eq!(
        metric_names_in(
            r#"(sum(rate(a_total{status=~"5.."}[$__rate_interval])) or vector(0)) / clamp_min(sum without (instance) (b), 1e-9) > bool 0.5 and on (job) group_left (version) up"#
        ),
        ["a_total", "b", "up"]
    );
    assert_eq!(
        metric_names_in("time() - max(x_seconds) unless ignoring(code) y or count without (a) (z)"),
        ["x_seconds", "y", "z"]
    );
    assert_eq!(
        known_name("tijori_storage_fsync_batch_size_bucket"),
        Some("tijori_storage_fsync_batch_size")
    );
    assert_eq!(
        known_name("tijori_http_requests_total"),
        Some("tijori_http_requests_total")
    );
    assert_eq!(known_name("tijori_http_requests"), None);
    assert_eq!(
        known_name("process_cpu_seconds_total"),
        Some("process_cpu_seconds_total")
    );
    assert_eq!(known_name("tijori_process_cpu_seconds_total"), None);
    assert_eq!(known_name("go_goroutines"), None);
}

// ---------------------------------------------------------------------------
// (a) the dashboard and the code name the same metrics
// ---------------------------------------------------------------------------

#[test]
fn dashboard_uses_exactly_the_metrics_the_code_exports() {
    let dashboard = dashboard();
    let mut unknown = Vec::new();
    let mut used = BTreeSet::new();
    let all_queries = queries(&dashboard);
    assert!(!all_queries.is_empty(), "the dashboard has no queries");
    for (title, ref_id, expr) in &all_queries {
        let names = metric_names_in(expr);
        assert!(
            !names.is_empty() || expr.contains("time()"),
            "panel {title:?} query {ref_id} selects no metric: {expr}"
        );
        assert!(
            !expr.contains("__name__"),
            "panel {title:?} query {ref_id} selects by __name__, which this test cannot check: {expr}"
        );
        for name in names {
            match known_name(&name) {
                Some(known) => {
                    used.insert(known);
                }
                None => unknown.push(format!("{title:?}/{ref_id}: {name}")),
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "dashboard queries select metrics that domain::metric_names::ALL/PROCESS do not list:\n{}",
        unknown.join("\n")
    );
    let unused: Vec<&str> = exported().filter(|n| !used.contains(n)).collect();
    assert!(
        unused.is_empty(),
        "metrics in domain::metric_names::ALL/PROCESS that no dashboard panel shows: {unused:?}"
    );
}

// ---------------------------------------------------------------------------
// (b) structural checks of the dashboard JSON
// ---------------------------------------------------------------------------

/// A structural SUBSET of Grafana's dashboard schema (there is no official
/// JSON Schema file reachable offline; Grafana's own schema lives in CUE in
/// its source tree): the top-level fields Grafana needs to import the file,
/// the `datasource` template variable, unique panel ids, a 24-column grid
/// with no overlaps, known panel types, and Prometheus targets with a
/// `refId` and an `expr` on every data panel.
#[test]
fn dashboard_json_is_structurally_valid() {
    let d = dashboard();
    let mut problems: Vec<String> = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };

    // Top level.
    let obj = d.as_object().expect("the dashboard is a JSON object");
    for field in [
        "title",
        "uid",
        "schemaVersion",
        "panels",
        "templating",
        "time",
        "refresh",
        "tags",
        "editable",
        "annotations",
        "timezone",
        "version",
        "graphTooltip",
    ] {
        check(
            obj.contains_key(field),
            format!("top-level {field} missing"),
        );
    }
    check(
        d["title"].as_str().is_some_and(|t| !t.is_empty()),
        "title must be a non-empty string".into(),
    );
    check(
        d["uid"] == "tijori",
        format!("uid is {}, not tijori", d["uid"]),
    );
    check(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 39),
        format!(
            "schemaVersion {} is not an integer >= 39",
            d["schemaVersion"]
        ),
    );
    check(d["panels"].is_array(), "panels must be an array".into());
    check(d["tags"].is_array(), "tags must be an array".into());
    check(
        d["editable"].is_boolean(),
        "editable must be a boolean".into(),
    );
    check(d["version"].is_u64(), "version must be an integer".into());
    check(
        d["graphTooltip"].as_u64().is_some_and(|v| v <= 2),
        "graphTooltip must be 0, 1 or 2".into(),
    );
    check(
        d["time"]["from"].is_string() && d["time"]["to"].is_string(),
        "time needs from and to".into(),
    );
    check(
        d["annotations"]["list"].is_array(),
        "annotations.list must be an array".into(),
    );
    check(
        d["id"].is_null(),
        "id must be null in a provisioned file (Grafana assigns it)".into(),
    );

    // The datasource variable.
    let variables = d["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let datasource = variables.iter().find(|v| v["name"] == "datasource");
    check(
        datasource.is_some_and(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
        "templating.list needs a variable named datasource of type datasource, query prometheus"
            .into(),
    );
    for (name, query) in [
        ("job", "label_values(tijori_build_info, job)"),
        (
            "instance",
            r#"label_values(tijori_build_info{job=~"$job"}, instance)"#,
        ),
    ] {
        let variable = variables.iter().find(|v| v["name"] == name);
        check(
            variable.is_some_and(|v| {
                v["type"] == "query"
                    && v["definition"] == query
                    && v["query"]["query"] == query
                    && v["includeAll"] == true
                    && v["allValue"] == ".*"
                    && v["datasource"] == json!({ "type": "prometheus", "uid": "${datasource}" })
            }),
            format!("templating.list needs a query variable {name}: {query}, with All (.*)"),
        );
    }
    let mut names = BTreeSet::new();
    for v in &variables {
        let name = v["name"].as_str().unwrap_or("");
        check(!name.is_empty(), "a template variable has no name".into());
        check(
            names.insert(name.to_owned()),
            format!("variable {name} twice"),
        );
        check(
            v["type"].is_string(),
            format!("variable {name} has no type"),
        );
    }

    // Panels.
    let panels = all_panels(&d);
    check(!panels.is_empty(), "no panels".into());
    let kinds = [
        "timeseries",
        "stat",
        "gauge",
        "bargauge",
        "table",
        "row",
        "text",
        "heatmap",
    ];
    let expected_ds = json!({ "type": "prometheus", "uid": "${datasource}" });
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(String, u64, u64, u64, u64)> = Vec::new();
    for p in &panels {
        let title = p["title"].as_str().unwrap_or("").to_owned();
        let kind = p["type"].as_str().unwrap_or("");
        check(!title.is_empty(), format!("a {kind} panel has no title"));
        check(
            kinds.contains(&kind),
            format!("{title:?}: type {kind:?} not allowed"),
        );
        match p["id"].as_u64() {
            Some(id) if id > 0 => check(ids.insert(id), format!("{title:?}: id {id} used twice")),
            _ => check(false, format!("{title:?}: id must be a positive integer")),
        }
        let pos = &p["gridPos"];
        let field = |f: &str| pos[f].as_u64();
        match (field("x"), field("y"), field("w"), field("h")) {
            (Some(x), Some(y), Some(w), Some(h)) => {
                check(w >= 1 && h >= 1, format!("{title:?}: empty gridPos"));
                check(
                    x + w <= 24,
                    format!("{title:?}: x {x} + w {w} > 24 columns"),
                );
                if kind == "row" {
                    check(w == 24 && h == 1, format!("{title:?}: a row is 24×1"));
                }
                boxes.push((title.clone(), x, y, w, h));
            }
            _ => check(
                false,
                format!("{title:?}: gridPos needs integer x, y, w, h"),
            ),
        }
        if kind == "row" {
            check(
                p["collapsed"].is_boolean(),
                format!("{title:?}: row needs collapsed"),
            );
            continue;
        }
        if kind == "text" {
            continue;
        }
        check(
            p["datasource"] == expected_ds,
            format!("{title:?}: datasource must be {expected_ds}"),
        );
        check(
            p["fieldConfig"]["defaults"].is_object(),
            format!("{title:?}: fieldConfig.defaults missing"),
        );
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        check(!targets.is_empty(), format!("{title:?}: no targets"));
        let mut refs = BTreeSet::new();
        for t in &targets {
            let ref_id = t["refId"].as_str().unwrap_or("");
            check(
                !ref_id.is_empty(),
                format!("{title:?}: a target has no refId"),
            );
            check(
                refs.insert(ref_id.to_owned()),
                format!("{title:?}: refId {ref_id} twice"),
            );
            let expr = t["expr"].as_str().unwrap_or("");
            check(
                !expr.trim().is_empty(),
                format!("{title:?}/{ref_id}: no expr"),
            );
            check(
                t.get("datasource").is_none() || t["datasource"] == expected_ds,
                format!("{title:?}/{ref_id}: target datasource differs from the panel's"),
            );
            // The only variables an expression may use, and every range is
            // `$__rate_interval`.
            let rest = expr
                .replace("$__rate_interval", "")
                .replace(r#"job=~"$job""#, "")
                .replace(r#"instance=~"$instance""#, "");
            check(
                !rest.contains('$'),
                format!("{title:?}/{ref_id}: a variable other than $__rate_interval, $job, $instance: {expr}"),
            );
            // Every selector is scoped to the chosen job and instance.
            let selectors = metric_names_in(expr).len();
            check(
                expr.matches(r#"{job=~"$job",instance=~"$instance""#).count() == selectors,
                format!("{title:?}/{ref_id}: {selectors} selectors, not all start with {{job=~\"$job\",instance=~\"$instance\": {expr}"),
            );
            let mut s = expr;
            while let Some(open) = s.find('[') {
                let close = s[open..].find(']').map_or(s.len(), |c| open + c);
                check(
                    &s[open..=close.min(s.len() - 1)] == "[$__rate_interval]",
                    format!("{title:?}/{ref_id}: range other than [$__rate_interval]: {expr}"),
                );
                s = &s[(close + 1).min(s.len())..];
            }
        }
        if let Some(steps) = p["fieldConfig"]["defaults"]["thresholds"]["steps"].as_array() {
            check(
                steps.first().is_some_and(|s| s["value"].is_null()),
                format!("{title:?}: the first threshold step must have value null"),
            );
        }
    }
    for (i, a) in boxes.iter().enumerate() {
        for b in &boxes[i + 1..] {
            let apart =
                a.1 + a.3 <= b.1 || b.1 + b.3 <= a.1 || a.2 + a.4 <= b.2 || b.2 + b.4 <= a.2;
            check(apart, format!("panels {:?} and {:?} overlap", a.0, b.0));
        }
    }

    // The ledger audit verdict is a stat going red at 0 and green at 1.
    let audit = panels.iter().find(|p| {
        p["targets"].as_array().into_iter().flatten().any(|t| {
            t["expr"]
                .as_str()
                .unwrap_or("")
                .contains("tijori_ledger_audit_ok")
        })
    });
    match audit {
        Some(p) => {
            check(
                p["type"] == "stat",
                "the ledger audit ok panel must be a stat".into(),
            );
            let steps = p["fieldConfig"]["defaults"]["thresholds"]["steps"].clone();
            check(
                steps[0]["color"] == "red"
                    && steps[0]["value"].is_null()
                    && steps[1]["color"] == "green"
                    && steps[1]["value"] == 1,
                format!("ledger audit thresholds must be red below 1, green at 1: {steps}"),
            );
        }
        None => check(false, "no panel shows tijori_ledger_audit_ok".into()),
    }

    // HTTP latency by route and method, and as a heatmap.
    let exprs: Vec<(String, String)> = panels
        .iter()
        .flat_map(|p| {
            let kind = p["type"].as_str().unwrap_or("").to_owned();
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |t| (kind.clone(), t["expr"].as_str().unwrap_or("").to_owned()))
        })
        .collect();
    for q in ["0.5", "0.95", "0.99"] {
        check(
            exprs.iter().any(|(_, e)| {
                e.starts_with(&format!("histogram_quantile({q}, sum by (le, route, method) (rate(tijori_http_request_duration_seconds_bucket"))
            }),
            format!("no panel shows the HTTP latency p{q} by route and method"),
        );
    }
    check(
        panels.iter().any(|p| {
            p["type"] == "heatmap"
                && p["targets"].as_array().into_iter().flatten().any(|t| {
                    t["format"] == "heatmap"
                        && t["expr"].as_str().is_some_and(|e| {
                            e.starts_with(
                                "sum by (le) (rate(tijori_http_request_duration_seconds_bucket",
                            )
                        })
                })
        }),
        "no heatmap panel of tijori_http_request_duration_seconds_bucket by le".into(),
    );

    assert!(
        problems.is_empty(),
        "grafana/dashboards/tijori.json:\n{}",
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------
// promtool
// ---------------------------------------------------------------------------

fn promtool(args: &[&str]) {
    let out = Command::new(PROMTOOL)
        .args(args)
        .current_dir(repo())
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_and_prometheus_config_pass_promtool() {
    if !have(PROMTOOL, "alert_rules_and_prometheus_config_pass_promtool") {
        return;
    }
    promtool(&["check", "rules", "grafana/alerts.yml"]);
    promtool(&["test", "rules", "grafana/alerts_test.yml"]);
    promtool(&["check", "config", "grafana/prometheus.yml"]);
    // Every alert of alerts.yml has a unit test that expects it to fire.
    let rules = std::fs::read_to_string(repo().join("grafana/alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(repo().join("grafana/alerts_test.yml")).unwrap();
    for alert in alert_names(&rules) {
        // The line after `alertname: X` is `exp_alerts: []` or `exp_alerts:`
        // followed by the expected alerts.
        let expects = |case: &str| {
            case.strip_prefix(&alert)
                .filter(|rest| rest.starts_with('\n'))
                .and_then(|rest| rest.lines().nth(1).map(str::trim).map(str::to_owned))
        };
        let cases: Vec<String> = tests
            .split("alertname: ")
            .skip(1)
            .filter_map(expects)
            .collect();
        let firing = cases.iter().any(|l| l == "exp_alerts:");
        let quiet = cases.iter().any(|l| l == "exp_alerts: []");
        assert!(
            firing && quiet,
            "alert {alert} needs a firing and a not-firing test"
        );
    }
}

#[test]
fn every_alert_has_a_runbook() {
    let rules = std::fs::read_to_string(repo().join("grafana/alerts.yml")).unwrap();
    let runbooks = std::fs::read_to_string(repo().join("docs/runbooks.md")).unwrap();
    let alerts = alert_names(&rules);
    assert!(alerts.len() >= 15, "{alerts:?}");
    // Each alert's block, up to the next alert.
    let blocks: Vec<&str> = rules.split("- alert:").skip(1).collect();
    assert_eq!(blocks.len(), alerts.len());
    for (alert, block) in alerts.iter().zip(&blocks) {
        let anchor = alert.to_ascii_lowercase();
        assert!(
            block.contains(&format!(
                "\n          runbook_url: docs/runbooks.md#{anchor}\n"
            )),
            "{alert} has no runbook_url annotation docs/runbooks.md#{anchor}"
        );
        // GitHub's anchor of a heading `## TijoriDown` is `tijoridown`.
        let section = runbooks
            .split(&format!("\n## {alert}\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("docs/runbooks.md has no section ## {alert}"));
        let section = section.split("\n## ").next().unwrap_or("");
        for part in ["**Means:**", "**Check:**", "**Do:**"] {
            assert!(section.contains(part), "runbook {alert} lacks {part}");
        }
    }
    let sections = runbooks.lines().filter(|l| l.starts_with("## ")).count();
    assert_eq!(
        sections,
        alerts.len(),
        "a runbook for an alert that does not exist"
    );
    // The alerts this issue asked for exist.
    for alert in [
        "TijoriDown",
        "TijoriTargetMissing",
        "TijoriErrorBudgetBurnFast",
        "TijoriErrorBudgetBurnSlow",
        "TijoriSettlementsStuck",
        "TijoriDiskFreeLow",
        "TijoriWalletRestarts",
        "TijoriLedgerAuditDisabled",
        "TijoriLedgerAuditStale",
    ] {
        assert!(alerts.iter().any(|a| a == alert), "no alert {alert}");
    }
}

/// The `- alert: Name` entries of a rules file.
fn alert_names(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------
// (c) a real Prometheus scraping a real Tijori
// ---------------------------------------------------------------------------

/// `GET /metrics` of a server, as text.
async fn metrics_text(server: &Server) -> String {
    let (status, body) = http_get(&format!("{}/metrics", server.base)).await.unwrap();
    assert_eq!(status, 200);
    String::from_utf8_lossy(&body).into_owned()
}

/// The value of one series (`name` or `name{labels}` as rendered) in an
/// exposition, if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `promtool check metrics` on an exposition: no error and no lint finding.
fn promtool_check_metrics(text: &str) {
    if !have(PROMTOOL, "promtool check metrics") {
        return;
    }
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics on /metrics:\n{said}"
    );
}

/// Without Prometheus: the gauges of settlements awaiting the rail follow
/// pay-ins, and the audit gauges follow `--ledger-audit-interval-ms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlement_and_audit_gauges_follow_the_server() {
    let slow = Server::start(&["--settle-delay-ms", "3000"]);
    let unaudited = Server::start(&["--ledger-audit-interval-ms", "0"]);
    let (_, merchant) = slow
        .create_user(&slow.admin_key, "merchant", json!({}))
        .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let body = common::payin_body(&format!("GAUGE-{i}"), json!(100));
        ids.push(create(&slow, "/api/v1/payments", &merchant, body).await);
    }
    let created = Instant::now();
    let text = metrics_text(&slow).await;
    assert_eq!(
        sample(&text, "tijori_settlements_pending"),
        Some(3.0),
        "{text}"
    );
    let age = sample(&text, "tijori_settlements_oldest_pending_age_seconds").unwrap();
    assert!(
        age > 0.0 && age <= created.elapsed().as_secs_f64() + 5.0,
        "oldest pending age {age}"
    );
    assert_eq!(sample(&text, "tijori_ledger_audit_enabled"), Some(1.0));
    assert_eq!(
        sample(&text, "tijori_ledger_audit_interval_seconds"),
        Some(30.0)
    );
    assert!(sample(&text, "tijori_ledger_audit_last_run_timestamp_seconds").is_some());
    assert!(sample(&text, "tijori_data_dir_filesystem_free_bytes").unwrap() > 0.0);
    for id in &ids {
        let path = format!("/api/v1/payments/{id}");
        assert_eq!(settled(&slow, &merchant, &path).await, "completed");
    }
    eventually(Duration::from_secs(5), "no pending settlement", || async {
        let text = metrics_text(&slow).await;
        sample(&text, "tijori_settlements_pending") == Some(0.0)
            && sample(&text, "tijori_settlements_oldest_pending_age_seconds") == Some(0.0)
    })
    .await;

    let text = metrics_text(&unaudited).await;
    assert_eq!(sample(&text, "tijori_ledger_audit_enabled"), Some(0.0));
    assert_eq!(
        sample(&text, "tijori_ledger_audit_interval_seconds"),
        Some(0.0)
    );
    // No verdict and no run to show: not a stale "OK".
    assert_eq!(sample(&text, "tijori_ledger_audit_ok"), None, "{text}");
    assert_eq!(
        sample(&text, "tijori_ledger_audit_last_run_timestamp_seconds"),
        None
    );
}

/// A Prometheus child process, killed when dropped.
struct Prometheus {
    child: Child,
    base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus on a free loopback port, scraping `target` every
    /// second and evaluating `grafana/alerts.yml` every second.
    async fn start(target: &str) -> Prometheus {
        let mut last_log = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let config = dir.path().join("prometheus.yml");
            let rules = repo().join("grafana/alerts.yml");
            std::fs::write(
                &config,
                format!(
                    "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                     rule_files:\n  - {rules:?}\n\
                     scrape_configs:\n  - job_name: tijori\n    metrics_path: /metrics\n    \
                     static_configs:\n      - targets: [\"{target}\"]\n"
                ),
            )
            .unwrap();
            let log = dir.path().join("prometheus.log");
            let log_file = std::fs::File::create(&log).unwrap();
            let child = Command::new(PROMETHEUS)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .spawn()
                .expect("prometheus starts");
            let mut prometheus = Prometheus {
                child,
                base: format!("http://127.0.0.1:{port}"),
                log,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if prometheus.child.try_wait().unwrap().is_some() {
                    break; // exited: the port was taken meanwhile, or a bad config
                }
                if let Ok((200, _)) = http_get(&format!("{}/-/ready", prometheus.base)).await {
                    return prometheus;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            last_log = std::fs::read_to_string(&prometheus.log).unwrap_or_default();
        }
        panic!("prometheus did not become ready; its log:\n{last_log}");
    }

    /// Runs an instant query; the `data.result` array.
    async fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let url = format!("{}/api/v1/query?query={}", self.base, urlencode(promql));
        let (status, body) = http_get(&url).await?;
        let json: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        if status != 200 || json["status"] != "success" {
            return Err(format!("HTTP {status}: {json}"));
        }
        Ok(json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The single value of an instant query (the sum over its series).
    async fn value(&self, promql: &str) -> f64 {
        self.query(promql)
            .await
            .unwrap_or_else(|e| panic!("{promql}: {e}"))
            .iter()
            .filter_map(|s| s["value"][1].as_str()?.parse::<f64>().ok())
            .sum()
    }

    async fn api(&self, path: &str) -> Value {
        let (status, body) = http_get(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

async fn http_get(url: &str) -> Result<(u16, Bytes), String> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let request = Request::builder()
        .method(Method::GET)
        .uri(url)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .map_err(|_| format!("{url}: no answer in 10 s"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// A webhook receiver on 127.0.0.1:0: `/flaky` answers 500 to the first
/// attempt of each event and 200 afterwards, `/down` always 500, anything
/// else 200. Records (path, status answered).
struct Receiver {
    port: u16,
    hits: Arc<Mutex<Vec<(String, u16)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
        let shared = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let hits = shared.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let hits = hits.clone();
                        let seen = seen.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            let id = req
                                .headers()
                                .get("x-webhook-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned();
                            let _ = req.into_body().collect().await;
                            let nth = {
                                let mut seen = seen.lock().unwrap();
                                let n = seen.entry(format!("{path} {id}")).or_insert(0);
                                *n += 1;
                                *n
                            };
                            let status = match path.as_str() {
                                "/flaky" if nth == 1 => 500,
                                "/down" => 500,
                                _ => 200,
                            };
                            hits.lock().unwrap().push((path, status));
                            Ok::<_, std::convert::Infallible>(
                                Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from_static(b"ok")))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { port, hits, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn count(&self, path: &str, status: u16) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, s)| p == path && *s == status)
            .count()
    }
}

async fn create(server: &Server, path: &str, key: &str, body: Value) -> String {
    let r = server.post(path, key, body).await;
    assert_eq!(r.status, 201, "POST {path}: {}", r.text);
    r.data()["id"].as_str().unwrap().to_owned()
}

async fn settled(server: &Server, key: &str, path: &str) -> String {
    let r = server
        .wait_for(path, key, Duration::from_secs(15), |r| {
            r.status == 200 && r.data()["status"] != "pending"
        })
        .await;
    r.data()["status"].as_str().unwrap().to_owned()
}

/// Polls until `f` is true; panics with `what` after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !f().await {
        assert!(
            Instant::now() < deadline,
            "{what} not reached within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_returns_data_from_a_real_prometheus() {
    if !have(
        PROMETHEUS,
        "every_panel_query_returns_data_from_a_real_prometheus",
    ) {
        return;
    }
    tokio::time::timeout(Duration::from_secs(60), scrape_and_query())
        .await
        .expect("the Prometheus test finishes within 60 s");
}

async fn scrape_and_query() {
    let started = Instant::now();
    let rx = Receiver::start().await;
    let server = Server::start(&[
        "--webhook-allow-private",
        "--webhook-retry-base-ms",
        "20",
        "--webhook-max-attempts",
        "2",
    ]);
    let target = server.base.trim_start_matches("http://").to_owned();
    let prometheus = Prometheus::start(&target).await;
    // Scraped once before the traffic, so its counters rise in Prometheus.
    eventually(Duration::from_secs(15), "a first scrape", || async {
        prometheus.value(r#"up{job="tijori"}"#).await == 1.0
    })
    .await;
    let before = metrics_text(&server).await;

    // Traffic.
    let admin = server.admin_key.clone();
    let (_, flaky) = server
        .create_user(
            &admin,
            "merchant",
            json!({ "webhook_url": rx.url("/flaky") }),
        )
        .await;
    let (_, down) = server
        .create_user(
            &admin,
            "merchant",
            json!({ "webhook_url": rx.url("/down") }),
        )
        .await;
    let mut payins = Vec::new();
    for i in 0..3 {
        let body = common::payin_body(&format!("PROM-{i}"), json!(1000));
        payins.push(create(&server, "/api/v1/payments", &flaky, body).await);
    }
    let failing = json!({ "order_id": "PROM-FAIL", "amount": 50, "payer": "Jane Smith", "payer_vpa": "fail@sandbox" });
    let failed_payin = create(&server, "/api/v1/payments", &flaky, failing).await;
    let down_payin = create(
        &server,
        "/api/v1/payments",
        &down,
        common::payin_body("PROM-DOWN", json!(10)),
    )
    .await;
    for id in &payins {
        let path = format!("/api/v1/payments/{id}");
        assert_eq!(settled(&server, &flaky, &path).await, "completed");
    }
    let path = format!("/api/v1/payments/{failed_payin}");
    assert_eq!(settled(&server, &flaky, &path).await, "failed");
    let path = format!("/api/v1/payments/{down_payin}");
    assert_eq!(settled(&server, &down, &path).await, "completed");
    let payout = create(
        &server,
        "/api/v1/payouts",
        &flaky,
        common::payout_body(json!(100)),
    )
    .await;
    let rejected_body = json!({ "amount": 100, "beneficiary": { "name": "Ravi Kumar", "account_number": "000000000000", "ifsc": "HDFC0000001" } });
    let rejected = create(&server, "/api/v1/payouts", &flaky, rejected_body).await;
    let path = format!("/api/v1/payouts/{payout}");
    assert_eq!(settled(&server, &flaky, &path).await, "processed");
    let path = format!("/api/v1/payouts/{rejected}");
    assert_eq!(settled(&server, &flaky, &path).await, "rejected");
    let r = server.get("/api/v1/no-such-thing", &flaky).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = server
        .request(Method::GET, "/api/v1/balance", None, None)
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
    let r = server.get("/api/v1/balance", "tjk_not_a_key").await;
    assert_eq!(r.status, 401, "{}", r.text);
    let r = server.get("/api/v1/balance", &flaky).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Webhooks: a failed first attempt then a delivery at /flaky, and a
    // delivery that spends both attempts at /down.
    eventually(Duration::from_secs(15), "webhook deliveries", || async {
        rx.count("/flaky", 500) >= 1 && rx.count("/flaky", 200) >= 1 && rx.count("/down", 500) >= 2
    })
    .await;
    let traffic_done = started.elapsed();

    // Prometheus has scraped the result of all of that.
    let expectations = [
        "tijori_payins_created_total",
        r#"tijori_payins_settled_total{outcome="completed"}"#,
        r#"tijori_payins_settled_total{outcome="failed"}"#,
        r#"tijori_payouts_settled_total{outcome="processed"}"#,
        r#"tijori_payouts_settled_total{outcome="rejected"}"#,
        r#"tijori_payin_amount_paise_total{stage="completed"}"#,
        r#"tijori_webhook_deliveries_total{result="delivered"}"#,
        r#"tijori_webhook_deliveries_total{result="failed_attempt"}"#,
        r#"tijori_webhook_deliveries_total{result="exhausted"}"#,
        r#"tijori_http_rejections_total{code="not_found"}"#,
        r#"tijori_http_rejections_total{code="invalid_api_key"}"#,
        r#"tijori_http_requests_total{status="401"}"#,
        "tijori_webhook_delivery_delay_seconds_count",
        "tijori_wallet_call_duration_seconds_count",
        "tijori_storage_fsync_batch_size_count",
    ];
    eventually(
        Duration::from_secs(15),
        "prometheus scraping the traffic",
        || async {
            for e in expectations {
                if prometheus.value(e).await <= 0.0 {
                    return false;
                }
            }
            true
        },
    )
    .await;
    // Money in paise, as created: 3 × ₹1000 + ₹50 + ₹10 of pay-ins.
    assert_eq!(
        prometheus
            .value(r#"tijori_payin_amount_paise_total{stage="created"}"#)
            .await,
        306_000.0
    );
    assert_eq!(
        prometheus
            .value(r#"tijori_payout_amount_paise_total{stage="rejected"}"#)
            .await,
        10_000.0
    );
    assert!(prometheus.value("tijori_wallets_active").await >= 2.0);
    // The audit runs at start, then every 30 s.
    let age = prometheus
        .value("time() - tijori_ledger_audit_last_run_timestamp_seconds")
        .await;
    assert!((0.0..60.0).contains(&age), "last audit {age} s ago");
    assert_eq!(prometheus.value("tijori_ledger_audit_ok").await, 1.0);

    // The series registered at zero: `increase()` counts the first burst
    // (two users and five pay-ins created after the first scrape); a series
    // appearing at its first value would show no increase.
    for (selector, at_least) in [
        (
            r#"tijori_http_requests_total{route="/api/v1/users",method="POST",status="201"}"#,
            2.0,
        ),
        (
            r#"tijori_http_requests_total{route="/api/v1/payments",method="POST",status="201"}"#,
            5.0,
        ),
        (
            r#"tijori_http_requests_total{route="/api/v1/balance",method="GET",status="401"}"#,
            2.0,
        ),
    ] {
        let increase = prometheus.value(&format!("increase({selector}[5m])")).await;
        assert!(
            increase >= at_least,
            "increase({selector}[5m]) = {increase}, want >= {at_least}"
        );
    }
    // No success series appeared on first use: each was registered at start.
    let text = metrics_text(&server).await;
    let series = |text: &str| -> BTreeSet<String> {
        text.lines()
            .filter(|l| l.starts_with("tijori_http_requests_total{"))
            .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s.to_owned()))
            .collect()
    };
    let (at_start, now) = (series(&before), series(&text));
    assert!(at_start.len() >= 200, "{} series at start", at_start.len());
    let late: Vec<&String> = now
        .iter()
        .filter(|s| s.contains(r#"status="2"#) && !s.contains(r#"method="HEAD""#))
        .filter(|s| !at_start.contains(*s))
        .collect();
    assert!(
        late.is_empty(),
        "success series not registered at start: {late:?}"
    );
    // promtool finds nothing to say about the exposition.
    promtool_check_metrics(&text);

    // The fsync batch histogram: at least one write set per fsync, so its
    // quantiles are >= 1 (with le="1" as the first bucket it read 0.5-0.76).
    let batch_p50 = prometheus
        .value("histogram_quantile(0.5, sum by (le) (increase(tijori_storage_fsync_batch_size_bucket[5m])))")
        .await;
    let batch_mean = prometheus
        .value("sum(increase(tijori_storage_fsync_batch_size_sum[5m])) / sum(increase(tijori_storage_fsync_batch_size_count[5m]))")
        .await;
    assert!(
        (1.0..=1.5).contains(&batch_p50),
        "fsync batch p50 {batch_p50}"
    );
    assert!(batch_mean >= 1.0, "fsync batch mean {batch_mean}");
    say(&format!(
        "prometheus_dashboards: fsync batch p50 {batch_p50:.3}, mean {batch_mean:.3} write sets"
    ));

    // The new gauges, as Prometheus has them.
    eventually(Duration::from_secs(10), "a data dir size", || async {
        prometheus.value("tijori_data_dir_size_bytes").await > 0.0
    })
    .await;
    let free = prometheus
        .value("tijori_data_dir_filesystem_free_bytes")
        .await;
    let size = prometheus
        .value("tijori_data_dir_filesystem_size_bytes")
        .await;
    assert!(free > 0.0 && size >= free, "free {free} of {size}");
    assert_eq!(prometheus.value("tijori_ledger_audit_enabled").await, 1.0);
    assert_eq!(
        prometheus
            .value("tijori_ledger_audit_interval_seconds")
            .await,
        30.0
    );
    assert_eq!(
        prometheus
            .value("tijori_storage_commit_queue_capacity")
            .await,
        8192.0
    );
    assert_eq!(
        prometheus.value("tijori_wallet_inflight_limit").await,
        1024.0
    );
    assert!(prometheus.value("tijori_runtime_workers").await >= 1.0);
    let busy = prometheus.value("tijori_runtime_busy_ratio").await;
    assert!((0.0..=1.0).contains(&busy), "busy ratio {busy}");
    assert!(prometheus.value("process_resident_memory_bytes").await > 1e6);
    assert!(prometheus.value("process_open_fds").await >= 3.0);

    // Every exported name is in /metrics, and `_bucket` is only asked of histograms.
    let types: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.strip_prefix("# TYPE ")?.split_whitespace();
            Some((parts.next()?, parts.next()?))
        })
        .collect();
    for name in exported() {
        assert!(
            types.contains_key(name),
            "{name} is not in Tijori's /metrics output"
        );
    }
    let d = dashboard();
    for (title, ref_id, expr) in queries(&d) {
        for name in metric_names_in(&expr) {
            if let Some(base) = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
            {
                assert_eq!(
                    types.get(base).copied(),
                    Some("histogram"),
                    "{title:?}/{ref_id}: {name} is not a histogram series"
                );
            }
        }
    }

    // Every panel query returns data.
    let all = queries(&d);
    let mut empty: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        empty.clear();
        for (title, ref_id, expr) in &all {
            let promql = expr
                .replace("$__rate_interval", RATE_INTERVAL)
                .replace("$job", "tijori")
                .replace("$instance", &target);
            match prometheus.query(&promql).await {
                Ok(result) if !result.is_empty() => {}
                Ok(_) => empty.push(format!("{title:?}/{ref_id}: no data: {promql}")),
                Err(e) => empty.push(format!("{title:?}/{ref_id}: {e}: {promql}")),
            }
        }
        if empty.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        empty.is_empty(),
        "{} of {} panel queries failed:\n{}\nprometheus log:\n{}",
        empty.len(),
        all.len(),
        empty.join("\n"),
        prometheus.log()
    );

    // The alert rules loaded, evaluate without errors, select known metrics
    // (or `up`), and none fires against this healthy server.
    let rules_file = std::fs::read_to_string(repo().join("grafana/alerts.yml")).unwrap();
    let expected: BTreeSet<String> = alert_names(&rules_file).into_iter().collect();
    assert!(
        expected.len() >= 15,
        "alerts.yml has too few alerts: {expected:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let loaded = loop {
        let rules = prometheus.api("/api/v1/rules").await;
        let mut loaded = BTreeMap::new();
        for group in rules["data"]["groups"].as_array().into_iter().flatten() {
            for rule in group["rules"].as_array().into_iter().flatten() {
                loaded.insert(rule["name"].as_str().unwrap_or("").to_owned(), rule.clone());
            }
        }
        let healthy = loaded.values().all(|r| r["health"] == "ok");
        if (loaded.len() == expected.len() && healthy) || Instant::now() >= deadline {
            assert!(
                healthy,
                "alert rules do not evaluate cleanly: {:#?}",
                loaded
                    .values()
                    .map(|r| (&r["name"], &r["health"], &r["lastError"]))
                    .collect::<Vec<_>>()
            );
            break loaded;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        loaded.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "the rules Prometheus loaded differ from grafana/alerts.yml"
    );
    for (name, rule) in &loaded {
        assert!(expected.contains(name), "unexpected rule {name}");
        assert_eq!(rule["type"], "alerting", "{name}");
        for metric in metric_names_in(rule["query"].as_str().unwrap()) {
            assert!(
                metric == "up" || known_name(&metric).is_some(),
                "alert {name} selects {metric}, which domain::metric_names::ALL does not list"
            );
        }
    }
    let alerts = prometheus.api("/api/v1/alerts").await;
    let firing: Vec<&Value> = alerts["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["state"] == "firing")
        .collect();
    assert!(
        firing.is_empty(),
        "alerts fire against a healthy server: {firing:?}"
    );

    say(&format!(
        "prometheus_dashboards: {} panel queries returned data; start-up and traffic took {:?}, the whole test {:?}",
        all.len(),
        traffic_done,
        started.elapsed()
    ));
}
