//! `docs/openapi.yaml` against the code:
//! - its operations are exactly the router's (`Route::ALL` and `spec()`),
//!   with no duplicates, and `router::route` sends each documented method and
//!   path (with a sample id) to the route of that template;
//! - `/api/v1` operations use the `X-API-KEY` scheme, the probes no security;
//! - every error code it names is a `domain::Rejection` code documented under
//!   the status `Rejection::status` gives it, every error response names its
//!   codes, and every `Rejection` code is documented (routing errors in
//!   `info.x-routing-error-codes`);
//! - each operation documents exactly the query parameters its route takes
//!   (`Route::query_params`: the server refuses any other).
//!
//! The YAML is read by a small line scanner made for this file's layout
//! (block mappings and sequences, flow lists on one line, block scalars), not
//! by a general YAML parser; anything it does not understand fails the test.

use domain::Rejection;
use hyper::Method;
use std::collections::{BTreeMap, BTreeSet};
use tijori::http::router::{route, Route};

const SPEC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml");

const OPERATION_KEYS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
/// Path Item fields that are not operations.
const PATH_ITEM_FIELDS: [&str; 5] = ["$ref", "summary", "description", "servers", "parameters"];

/// One mapping entry (`key: value`) or scalar sequence item (`- value`).
#[derive(Debug)]
struct Node {
    line: usize,
    /// Keys of the enclosing mapping entries, outermost first.
    parents: Vec<String>,
    /// `None` for a scalar sequence item.
    key: Option<String>,
    /// The inline value (unquoted if it was a quoted scalar); empty when the
    /// value is a nested block.
    value: String,
}

impl Node {
    fn at(&self, parents: &[&str]) -> bool {
        self.parents.len() == parents.len() && self.parents.iter().zip(parents).all(|(a, b)| a == b)
    }
}

fn spec_text() -> String {
    std::fs::read_to_string(SPEC_PATH).unwrap_or_else(|e| panic!("reading {SPEC_PATH}: {e}"))
}

/// Reads a quoted scalar at the start of `text`: its content and the rest.
fn quoted(text: &str, line: usize) -> (String, &str) {
    let quote = text.chars().next().unwrap();
    let mut out = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        if c == quote {
            if quote == '\'' && text[i + 1..].starts_with('\'') {
                chars.next();
                out.push('\'');
                continue;
            }
            return (out, &text[i + 1..]);
        }
        if c == '\\' && quote == '"' {
            let (_, escaped) = chars
                .next()
                .unwrap_or_else(|| panic!("line {line}: bad escape"));
            out.push(escaped);
            continue;
        }
        out.push(c);
    }
    panic!("line {line}: unterminated quoted scalar (multi-line scalars are not supported)");
}

/// A value: quoted scalars unquoted, comments dropped from plain ones.
fn scalar(text: &str, line: usize) -> String {
    let text = text.trim();
    if text.starts_with('"') || text.starts_with('\'') {
        let (value, rest) = quoted(text, line);
        let rest = rest.trim();
        assert!(
            rest.is_empty() || rest.starts_with('#'),
            "line {line}: text after a quoted scalar"
        );
        return value;
    }
    match text.find(" #") {
        Some(i) => text[..i].trim_end().to_owned(),
        None => text.to_owned(),
    }
}

/// Splits `key: value`; `None` when `content` is a bare scalar.
fn entry(content: &str, line: usize) -> Option<(String, String)> {
    if content.starts_with('"') || content.starts_with('\'') {
        let (key, rest) = quoted(content, line);
        let rest = rest.trim_start().strip_prefix(':')?;
        return Some((key, scalar(rest, line)));
    }
    let colon = content
        .char_indices()
        .find(|&(i, c)| c == ':' && content[i + 1..].chars().next().is_none_or(|n| n == ' '))?
        .0;
    Some((
        content[..colon].trim_end().to_owned(),
        scalar(&content[colon + 1..], line),
    ))
}

fn scan(text: &str) -> Vec<Node> {
    let mut nodes = Vec::new();
    // (column of the key, key) of the open mapping entries.
    let mut stack: Vec<(usize, String)> = Vec::new();
    // Inside a block scalar: lines indented deeper than this column belong to it.
    let mut block_scalar: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        assert!(!raw.contains('\t'), "line {line}: tab character");
        let trimmed = raw.trim_start();
        let mut column = raw.len() - trimmed.len();
        if let Some(block) = block_scalar {
            if trimmed.is_empty() || column > block {
                continue;
            }
            block_scalar = None;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut content = trimmed;
        let is_item = if let Some(rest) = trimmed.strip_prefix("- ") {
            column += 2;
            content = rest.trim_start();
            true
        } else {
            assert!(trimmed != "-", "line {line}: empty sequence item");
            false
        };
        while stack.last().is_some_and(|(c, _)| *c >= column) {
            stack.pop();
        }
        let parents: Vec<String> = stack.iter().map(|(_, k)| k.clone()).collect();
        match entry(content, line) {
            Some((key, value)) => {
                if matches!(value.as_str(), "|" | "|-" | "|+" | ">" | ">-" | ">+") {
                    block_scalar = Some(column);
                }
                stack.push((column, key.clone()));
                nodes.push(Node {
                    line,
                    parents,
                    key: Some(key),
                    value,
                });
            }
            None => {
                assert!(
                    is_item,
                    "line {line}: neither `key: value` nor `- item` (multi-line scalars are not supported): {raw}"
                );
                nodes.push(Node {
                    line,
                    parents,
                    key: None,
                    value: scalar(content, line),
                });
            }
        }
    }
    nodes
}

/// The items of a one-line flow list `[a, b]`.
fn flow_list(value: &str, line: usize) -> Vec<String> {
    let inner = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or_else(|| panic!("line {line}: expected a one-line `[a, b]` list, got {value:?}"));
    inner
        .split(',')
        .map(|item| scalar(item, line))
        .filter(|item| !item.is_empty())
        .collect()
}

/// Every documented (METHOD, path) with its line, in file order.
fn documented_operations(nodes: &[Node]) -> Vec<(String, String, usize)> {
    let roots = nodes
        .iter()
        .filter(|n| n.at(&[]) && n.key.as_deref() == Some("paths"))
        .count();
    assert_eq!(roots, 1, "expected one top-level `paths:`");
    let mut paths = BTreeMap::new();
    let mut operations = Vec::new();
    for node in nodes {
        let Some(key) = node.key.as_deref() else {
            continue;
        };
        if node.at(&["paths"]) {
            assert!(key.starts_with('/'), "line {}: path {key:?}", node.line);
            if let Some(first) = paths.insert(key.to_owned(), node.line) {
                panic!("line {}: path {key} already at line {first}", node.line);
            }
        } else if node.parents.len() == 2 && node.parents[0] == "paths" {
            if OPERATION_KEYS.contains(&key) {
                operations.push((key.to_uppercase(), node.parents[1].clone(), node.line));
            } else {
                assert!(
                    PATH_ITEM_FIELDS.contains(&key) || key.starts_with("x-"),
                    "line {}: {key:?} under {} is neither an HTTP method nor a Path Item field",
                    node.line,
                    node.parents[1]
                );
            }
        }
    }
    assert!(!operations.is_empty(), "no operations found under `paths:`");
    operations
}

fn router_operations() -> BTreeSet<(String, String)> {
    let mut set = BTreeSet::new();
    for r in Route::ALL {
        let (method, template) = r.spec();
        assert!(
            set.insert((method.as_str().to_owned(), template.to_owned())),
            "Route::ALL has {method} {template} twice"
        );
    }
    set
}

/// `template` with each `{param}` replaced by a well-formed id of the kind
/// the path is about.
fn sample_path(template: &str) -> (String, Option<String>) {
    let id = if template.starts_with("/api/v1/payments/") {
        "txn_019d5c3e8a7b7c2d9e1f203142536475"
    } else if template.starts_with("/api/v1/payouts/") {
        "po_019d5c3e8a7b7c2d9e1f203142536475"
    } else {
        "usr_019d5c3e8a7b7c2d9e1f203142536475"
    };
    let mut used = None;
    let path: Vec<&str> = template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                assert!(used.is_none(), "{template}: more than one path parameter");
                used = Some(id.to_owned());
                id
            } else {
                segment
            }
        })
        .collect();
    (path.join("/"), used)
}

#[test]
fn documented_operations_are_the_routers() {
    let nodes = scan(&spec_text());
    let documented = documented_operations(&nodes);

    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (method, path, line) in &documented {
        if let Some(first) = seen.insert((method.clone(), path.clone()), *line) {
            panic!("line {line}: {method} {path} is documented twice (first at line {first})");
        }
    }
    let documented_set: BTreeSet<(String, String)> = seen.into_keys().collect();
    let routed = router_operations();
    let undocumented: Vec<_> = routed.difference(&documented_set).collect();
    let unrouted: Vec<_> = documented_set.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "router and docs/openapi.yaml disagree.\n  routed but not documented: {undocumented:?}\n  documented but not routed: {unrouted:?}"
    );

    for (method, template, line) in &documented {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let (path, id) = sample_path(template);
        let matched = route(&m, &path).unwrap_or_else(|r| {
            panic!("line {line}: {method} {path} (documented as {template}) is not routed: {r}")
        });
        let (routed_method, routed_template) = matched.route.spec();
        assert_eq!(
            (routed_method.as_str(), routed_template),
            (method.as_str(), template.as_str()),
            "line {line}: {method} {path} is routed to {:?}",
            matched.route
        );
        assert_eq!(
            matched.id.map(str::to_owned),
            id,
            "line {line}: {method} {path}: path parameter"
        );
    }
}

#[test]
fn probes_are_open_and_api_routes_need_the_key() {
    let nodes = scan(&spec_text());
    let global = nodes
        .iter()
        .filter(|n| n.at(&["security"]) && n.key.as_deref() == Some("ApiKeyAuth"))
        .count();
    assert_eq!(global, 1, "top-level `security: [ApiKeyAuth: []]` expected");
    let scheme = |field: &str| {
        nodes
            .iter()
            .find(|n| {
                n.at(&["components", "securitySchemes", "ApiKeyAuth"])
                    && n.key.as_deref() == Some(field)
            })
            .map(|n| n.value.clone())
    };
    assert_eq!(scheme("type").as_deref(), Some("apiKey"));
    assert_eq!(scheme("in").as_deref(), Some("header"));
    assert_eq!(scheme("name").as_deref(), Some("X-API-KEY"));

    for r in Route::ALL {
        let (method, template) = r.spec();
        let method = method.as_str().to_lowercase();
        let security: Vec<&Node> = nodes
            .iter()
            .filter(|n| {
                n.at(&["paths", template, method.as_str()]) && n.key.as_deref() == Some("security")
            })
            .collect();
        let open = security.iter().any(|n| n.value == "[]");
        assert_eq!(
            open,
            !r.is_api(),
            "{method} {template}: `security: []` must be set exactly on the routes outside /api/v1"
        );
        assert!(
            security.iter().all(|n| n.value == "[]"),
            "{method} {template}: only `security: []` overrides are expected"
        );
    }
}

/// Position of each variant; the match is exhaustive, so a new `Rejection`
/// variant does not compile until it is handled here and in `every_rejection`.
fn variant(r: &Rejection) -> usize {
    match r {
        Rejection::MissingFields(_) => 0,
        // `invalid_request` naming its fields: the same code.
        Rejection::InvalidRequest(_) | Rejection::InvalidFields { .. } => 1,
        Rejection::InvalidAmount(_) => 2,
        Rejection::UnsupportedCurrency => 3,
        Rejection::InvalidApiKey => 4,
        Rejection::AccountSuspended => 5,
        Rejection::InsufficientPermissions => 6,
        Rejection::NotFound => 7,
        Rejection::MethodNotAllowed => 8,
        Rejection::DuplicateOrderId => 9,
        Rejection::IdempotencyConflict { .. } => 10,
        Rejection::InsufficientBalance => 11,
        Rejection::PayloadTooLarge => 12,
        Rejection::RateLimitExceeded { .. } => 13,
        Rejection::InvalidStatusTransition { .. } => 14,
        Rejection::ServiceUnavailable => 15,
        Rejection::DatabaseError => 16,
        Rejection::BackupInProgress => 17,
        Rejection::RefundExceedsPayment => 18,
    }
}

/// Every `Rejection` code with its HTTP status.
fn every_rejection() -> BTreeMap<&'static str, u16> {
    let all = [
        Rejection::MissingFields(vec!["amount".into()]),
        Rejection::InvalidRequest("x".into()),
        Rejection::InvalidAmount("x".into()),
        Rejection::UnsupportedCurrency,
        Rejection::InvalidApiKey,
        Rejection::AccountSuspended,
        Rejection::InsufficientPermissions,
        Rejection::NotFound,
        Rejection::MethodNotAllowed,
        Rejection::DuplicateOrderId,
        Rejection::IdempotencyConflict { fields: vec![] },
        Rejection::InsufficientBalance,
        Rejection::PayloadTooLarge,
        Rejection::RateLimitExceeded {
            retry_after_secs: 1,
        },
        Rejection::InvalidStatusTransition {
            from: "completed",
            to: "failed".into(),
        },
        Rejection::ServiceUnavailable,
        Rejection::DatabaseError,
        Rejection::BackupInProgress,
        Rejection::RefundExceedsPayment,
    ];
    let mut variants: Vec<usize> = all.iter().map(variant).collect();
    variants.sort_unstable();
    variants.dedup();
    assert_eq!(
        variants,
        (0..all.len()).collect::<Vec<_>>(),
        "every_rejection must list each variant once"
    );
    let codes: BTreeMap<&'static str, u16> = all.iter().map(|r| (r.code(), r.status())).collect();
    assert_eq!(codes.len(), all.len(), "Rejection codes are not unique");
    codes
}

#[test]
fn error_codes_are_the_rejections() {
    let codes = every_rejection();
    let nodes = scan(&spec_text());
    let known = |code: &str, line: usize| -> u16 {
        *codes
            .get(code)
            .unwrap_or_else(|| panic!("line {line}: `{code}` is not a domain::Rejection code"))
    };

    // The ErrorCode schema's enum is exactly the Rejection codes.
    let enum_items: Vec<&Node> = nodes
        .iter()
        .filter(|n| n.at(&["components", "schemas", "ErrorCode", "enum"]) && n.key.is_none())
        .collect();
    let mut enumerated = BTreeSet::new();
    for item in &enum_items {
        known(&item.value, item.line);
        assert!(
            enumerated.insert(item.value.as_str()),
            "line {}: `{}` twice in ErrorCode",
            item.line,
            item.value
        );
    }
    let all: BTreeSet<&str> = codes.keys().copied().collect();
    assert_eq!(
        enumerated, all,
        "components.schemas.ErrorCode.enum vs domain::Rejection codes"
    );

    // `x-error-codes` of reusable responses, by name.
    let mut reusable: BTreeMap<String, (Vec<String>, usize)> = BTreeMap::new();
    // Codes attached to some response, and (status, codes, line) to check.
    let mut attached = BTreeSet::new();
    let mut under_status: Vec<(u16, Vec<String>, usize)> = Vec::new();
    let mut refs: Vec<(u16, String, usize)> = Vec::new();
    // (path, method, status) of error responses that name their codes.
    let mut named: BTreeSet<(String, String, String)> = BTreeSet::new();
    for node in &nodes {
        let Some(key) = node.key.as_deref() else {
            continue;
        };
        let p = &node.parents;
        let in_response = p.len() == 5 && p[0] == "paths" && p[3] == "responses" && p[4].len() == 3;
        if key == "x-error-codes" {
            let list = flow_list(&node.value, node.line);
            assert!(!list.is_empty(), "line {}: empty x-error-codes", node.line);
            for code in &list {
                known(code, node.line);
                attached.insert(code.clone());
            }
            if in_response {
                let status = p[4].parse().unwrap();
                under_status.push((status, list, node.line));
                named.insert((p[1].clone(), p[2].clone(), p[4].clone()));
            } else if p.len() == 3 && p[0] == "components" && p[1] == "responses" {
                reusable.insert(p[2].clone(), (list, node.line));
            } else {
                panic!(
                    "line {}: x-error-codes must be in a response (under paths or components.responses)",
                    node.line
                );
            }
        } else if key == "$ref" && in_response {
            let name = node
                .value
                .strip_prefix("#/components/responses/")
                .unwrap_or_else(|| panic!("line {}: response $ref {}", node.line, node.value));
            refs.push((p[4].parse().unwrap(), name.to_owned(), node.line));
            named.insert((p[1].clone(), p[2].clone(), p[4].clone()));
        } else if key == "code" && !node.value.is_empty() {
            // An example's `code: …`.
            known(&node.value, node.line);
        }
    }

    for (status, list, line) in &under_status {
        for code in list {
            assert_eq!(
                known(code, *line),
                *status,
                "line {line}: `{code}` is listed under {status}"
            );
        }
    }
    for (status, name, line) in &refs {
        let (list, _) = reusable.get(name).unwrap_or_else(|| {
            panic!("line {line}: components.responses.{name} has no x-error-codes")
        });
        for code in list {
            assert_eq!(
                known(code, *line),
                *status,
                "line {line}: {name} (`{code}`) is used for {status}"
            );
        }
    }

    // Every error response of every operation says which codes it carries.
    for node in &nodes {
        let p = &node.parents;
        if p.len() == 4 && p[0] == "paths" && p[3] == "responses" {
            let status = node.key.clone().unwrap_or_default();
            if status.starts_with('4') || status.starts_with('5') {
                assert!(
                    named.contains(&(p[1].clone(), p[2].clone(), status.clone())),
                    "line {}: {} {} {status} names no error codes (x-error-codes or a components.responses $ref)",
                    node.line,
                    p[2],
                    p[1]
                );
            }
        }
    }

    // Routing errors belong to no operation: `info.x-routing-error-codes`.
    for node in &nodes {
        if node.at(&["info"]) && node.key.as_deref() == Some("x-routing-error-codes") {
            for code in flow_list(&node.value, node.line) {
                known(&code, node.line);
                attached.insert(code);
            }
        }
    }

    let unattached: Vec<_> = all
        .iter()
        .filter(|code| !attached.contains(**code))
        .collect();
    assert!(
        unattached.is_empty(),
        "Rejection codes no response documents: {unattached:?}"
    );
}

#[test]
fn documented_query_parameters_are_the_routes() {
    let nodes = scan(&spec_text());
    // components.parameters: name -> (`name`, `in`).
    let mut components: BTreeMap<String, (String, String)> = BTreeMap::new();
    for node in &nodes {
        let p = &node.parents;
        if p.len() == 3 && p[0] == "components" && p[1] == "parameters" {
            let entry = components.entry(p[2].clone()).or_default();
            match node.key.as_deref() {
                Some("name") => entry.0 = node.value.clone(),
                Some("in") => entry.1 = node.value.clone(),
                _ => {}
            }
        }
    }
    for r in Route::ALL {
        let (method, template) = r.spec();
        let method = method.as_str().to_lowercase();
        let mut documented = Vec::new();
        for node in &nodes {
            if !node.at(&["paths", template, method.as_str(), "parameters"]) {
                continue;
            }
            assert_eq!(
                node.key.as_deref(),
                Some("$ref"),
                "line {}: {method} {template}: parameters are `- $ref: \"#/components/parameters/…\"`",
                node.line
            );
            let name = node
                .value
                .strip_prefix("#/components/parameters/")
                .unwrap_or_else(|| panic!("line {}: parameter $ref {}", node.line, node.value));
            let (param, location) = components
                .get(name)
                .unwrap_or_else(|| panic!("line {}: no components.parameters.{name}", node.line));
            if location == "query" {
                documented.push(param.clone());
            }
        }
        let mut expected: Vec<String> = r.query_params().iter().map(|p| (*p).to_owned()).collect();
        documented.sort();
        expected.sort();
        assert_eq!(
            documented, expected,
            "{method} {template}: documented query parameters vs Route::query_params"
        );
    }
}

#[test]
fn scanner_reads_this_layout() {
    let text = "a:\n  b: |\n    not: a key\n  c: [x, 'y', \"z\"] # note\n  d:\n    - item\n    - k: v\n      k2: v2\n  \"q\": '1'\n";
    let nodes = scan(text);
    let read: Vec<(String, Option<&str>, &str)> = nodes
        .iter()
        .map(|n| (n.parents.join("."), n.key.as_deref(), n.value.as_str()))
        .collect();
    let expected = [
        ("", Some("a"), ""),
        ("a", Some("b"), "|"),
        ("a", Some("c"), "[x, 'y', \"z\"]"),
        ("a", Some("d"), ""),
        ("a.d", None, "item"),
        ("a.d", Some("k"), "v"),
        ("a.d", Some("k2"), "v2"),
        ("a", Some("q"), "1"),
    ];
    let expected: Vec<(String, Option<&str>, &str)> = expected
        .iter()
        .map(|&(p, k, v)| (p.to_owned(), k, v))
        .collect();
    assert_eq!(read, expected);
    assert_eq!(flow_list(&nodes[2].value, 0), ["x", "y", "z"]);
    assert_eq!(
        sample_path("/api/v1/payouts/{id}/status"),
        (
            "/api/v1/payouts/po_019d5c3e8a7b7c2d9e1f203142536475/status".to_owned(),
            Some("po_019d5c3e8a7b7c2d9e1f203142536475".to_owned())
        )
    );
}
