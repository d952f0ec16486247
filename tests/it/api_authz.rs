//! The authorization matrix of SPEC §3–§4, checked cell by cell against the
//! real server binary over loopback.
//!
//! The world: the bootstrap admin; managers `mgrA` and `mgrB`; merchants
//! `mA1`, `mA2` (team A, created by `mgrA`) and `mB1`, `mB2` (team B);
//! two api_users under each of them (`uA1a`, `uA1b`, ... — those of `mA2`
//! and `mB2` created by the manager on the merchant's behalf); merchant `mD`
//! directly under the admin, with its api_user `uD`. Every merchant is funded
//! with a pay-in the admin settles by hand; then every merchant and api_user
//! creates a pay-in and a payout, each manager a pay-in on behalf of its
//! first merchant, the admin a pay-in and a payout for `mD`; the admin also
//! settles one of `uA1a`'s pay-ins (so an api_user has webhook events). The
//! sandbox
//! rail is slowed to an hour, so nothing settles on its own: the test keeps
//! an exact model of every user, record, wallet and ledger entry, and every
//! list, balance, summary and ledger answer is compared with it whole
//! (webhook event logs with the admin's view of every event's recipients).
//!
//! The callers are `admin`, `mgrA`, `mA1` and `uA1a`. A record's relation to
//! the caller (see `World::relation`):
//!
//! | caller   | own                                  | same team                                     | other team                 |
//! |----------|--------------------------------------|-----------------------------------------------|----------------------------|
//! | admin    | created by the admin (on `mD`)       | on `mD`'s wallet (a merchant with no manager) | teams A and B              |
//! | mgrA     | on its merchants' wallets, created by itself or the merchant | on its merchants' wallets, created by their api_users (or the admin) | team B, `mD` |
//! | mA1      | on its own wallet (its api_users' included) | on `mA2`'s wallet                      | team B, `mD`               |
//! | uA1a     | created by itself                    | its sibling's, its merchant's, `mA2`'s team   | team B, `mD`               |
//!
//! A webhook event's relation is that of its nearest recipient (the caller
//! itself: own; a user of the caller's team or wallet: same team).
//!
//! Each cell names a target of that relation: a record (by id, or its
//! merchant as `merchant_id`, or its `order_id`), a merchant (`REL_MERCHANT`),
//! users (`REL_USERS`) or webhook events, and the table `MATRIX` says what must happen:
//! `DATA` (2xx with the target's data), `HIDE` (2xx, the target is absent),
//! `IGNR` (2xx about the caller's own scope: a target named in a body field
//! the caller's role does not take is ignored, never honoured), `F403`
//! (`insufficient_permissions`), `N404` (`not_found`) or `B400`
//! (`invalid_request`: a query parameter the route does not take). Refusals are also
//! proven to have changed nothing (the record, user, key or secret is read
//! again). A failure names the cell: route, role, relation, target,
//! expected and got. A second test checks the fields a caller may not set.

use crate::common::{Resp, Server};
use hyper::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fmt;
use std::time::Instant;
use tijori::http::router::Route;

// ---------------------------------------------------------------- the table

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Admin,
    Manager,
    Merchant,
    ApiUser,
}

const ROLES: [Role; 4] = [Role::Admin, Role::Manager, Role::Merchant, Role::ApiUser];

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Merchant => "merchant",
            Role::ApiUser => "api_user",
        }
    }

    /// The member who plays this role in the matrix.
    fn caller(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "mgrA",
            Role::Merchant => "mA1",
            Role::ApiUser => "uA1a",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rel {
    Own,
    Team,
    Other,
}

const RELS: [Rel; 3] = [Rel::Own, Rel::Team, Rel::Other];

impl Rel {
    fn as_str(self) -> &'static str {
        match self {
            Rel::Own => "own",
            Rel::Team => "same team",
            Rel::Other => "other team",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Data,
    Hidden,
    Ignored,
    Forbidden,
    NotFound,
    Invalid,
}

const DATA: Want = Want::Data;
const HIDE: Want = Want::Hidden;
const IGNR: Want = Want::Ignored;
const F403: Want = Want::Forbidden;
const N404: Want = Want::NotFound;
const B400: Want = Want::Invalid;

impl fmt::Display for Want {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Want::Data => "allowed, with the target's data",
            Want::Hidden => "allowed, without the target",
            Want::Ignored => "allowed, about the caller's own scope (target ignored)",
            Want::Forbidden => "403 insufficient_permissions",
            Want::NotFound => "404 not_found",
            Want::Invalid => "400 invalid_request",
        })
    }
}

/// How a route is called in a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    /// The route itself: by id for `{id}` routes; creations name the
    /// target merchant (`merchant_id`, or `parent_id` for users); profile
    /// routes name the target user in `?user_id=` (own: no parameter).
    Plain,
    /// A listing or aggregate without filters.
    All,
    /// `?merchant_id=` of the target merchant.
    ByMerchant,
    /// `?merchant_id=&order_id=` of the target pay-in.
    ByOrder,
}

impl Probe {
    fn as_str(self) -> &'static str {
        match self {
            Probe::Plain => "",
            Probe::All => " (no filter)",
            Probe::ByMerchant => " ?merchant_id=",
            Probe::ByOrder => " ?merchant_id=&order_id=",
        }
    }
}

struct Row {
    route: Route,
    probe: Probe,
    /// `[admin, manager, merchant, api_user]` × `[own, same team, other team]`.
    want: [[Want; 3]; 4],
}

const fn row(route: Route, probe: Probe, want: [[Want; 3]; 4]) -> Row {
    Row { route, probe, want }
}

use Probe::{All, ByMerchant, ByOrder, Plain};

/// SPEC §3–§4, cell by cell. Open cells, decided as `src/http/auth.rs`
/// implements them (each a reasonable reading of SPEC, none shows another
/// merchant's data):
/// - `merchant_id` (SPEC §17): a merchant or api_user naming another
///   merchant is refused with `F403` everywhere (never silently its own);
///   a manager naming a merchant outside its team gets `N404`, also for
///   creations and the ledger; a record outside its team read by id is `N404`.
/// - Users endpoints answer `N404` for users outside the caller's subtree and
///   `F403` to api_users, who may use none of them (SPEC §4 "who").
/// - Profile routes act on the caller only and take no query parameters: a
///   `?user_id=` naming another user is `B400` (SPEC §17) and changes nothing.
/// - POST /payments/:id/status and /payouts/:id/status: `F403` to every
///   non-admin whatever the record (the role check comes first).
/// - Webhook events (SPEC §4 "merchant, api_user, admin"): a manager is
///   `F403`; merchants and api_users see and redeliver only the events
///   addressed to them (another's event by id is `N404`); an event's
///   relation is its nearest recipient's. Replay acts on the caller's own
///   events; naming another user in its body is ignored.
#[rustfmt::skip]
const MATRIX: &[Row] = &[
    //                                                 admin               manager             merchant            api_user
    //                                                 own   team  other   own   team  other   own   team  other   own   team  other
    row(Route::Balance,              ByMerchant, [[DATA, DATA, DATA], [DATA, DATA, N404], [DATA, F403, F403], [DATA, F403, F403]]),
    row(Route::Balance,              All,        [[DATA, DATA, DATA], [DATA, DATA, HIDE], [DATA, HIDE, HIDE], [DATA, HIDE, HIDE]]),
    row(Route::PaymentsCreate,       Plain,      [[DATA, DATA, DATA], [DATA, DATA, N404], [DATA, F403, F403], [DATA, F403, F403]]),
    row(Route::PaymentsList,         All,        [[DATA, DATA, DATA], [DATA, DATA, HIDE], [DATA, HIDE, HIDE], [DATA, HIDE, HIDE]]),
    row(Route::PaymentsList,         ByMerchant, [[DATA, DATA, DATA], [DATA, DATA, N404], [DATA, F403, F403], [DATA, F403, F403]]),
    row(Route::PaymentsList,         ByOrder,    [[DATA, DATA, DATA], [DATA, DATA, N404], [DATA, F403, F403], [DATA, HIDE, F403]]),
    row(Route::PaymentGet,           Plain,      [[DATA, DATA, DATA], [DATA, DATA, N404], [DATA, N404, N404], [DATA, N404, N404]]),
    row(Route::PaymentStatus,        Plain,      [[DATA, DATA, DATA], [F403, F403, F403], [F403, F403, F403], [F403, F403, F403]]),
    row(Route::PayoutsCreate,        Plain,      [[DATA, DATA, DATA], [F403, F403, F403], [DATA, F403, F403], [DATA, F403, F403]]),
    row(Route::PayoutsList,          All,        [[DATA, DATA, DATA], [DATA, DATA, HIDE], [DATA, HIDE, HIDE], [DATA, HIDE, HIDE]]),
    row(Route::PayoutsList,          ByMerchant, [[DATA, DATA, DATA], [DATA, DATA, N404], [DATA, F403, F403], [DATA, F403, F403]]),
    row(Route::PayoutGet,            Plain,      [[DATA, DATA, DATA], [DATA, DATA, N404], [DATA, N404, N404], [DATA, N404, N404]]),
    row(Route::PayoutStatus,         Plain,      [[DATA, DATA, DATA], [F403, F403, F403], [F403, F403, F403], [F403, F403, F403]]),
    // Cancel: whoever may create payouts for the merchant and sees the payout.
    row(Route::PayoutCancel,         Plain,      [[DATA, DATA, DATA], [F403, F403, N404], [DATA, N404, N404], [DATA, N404, N404]]),
    // A batch answers 200; the cell is the one item's status.
    row(Route::PayoutsBatch,         Plain,      [[DATA, DATA, DATA], [F403, F403, F403], [DATA, F403, F403], [DATA, F403, F403]]),
    row(Route::ProfileGet,           Plain,      [[DATA, B400, B400], [DATA, B400, B400], [DATA, B400, B400], [DATA, B400, B400]]),
    row(Route::ProfilePatch,         Plain,      [[DATA, B400, B400], [DATA, B400, B400], [DATA, B400, B400], [DATA, B400, B400]]),
    row(Route::ProfileApiKey,        Plain,      [[DATA, B400, B400], [DATA, B400, B400], [DATA, B400, B400], [DATA, B400, B400]]),
    row(Route::ProfileWebhookSecret, Plain,      [[F403, B400, B400], [F403, B400, B400], [DATA, B400, B400], [DATA, B400, B400]]),
    row(Route::UsersList,            All,        [[DATA, DATA, DATA], [DATA, DATA, HIDE], [DATA, HIDE, HIDE], [F403, F403, F403]]),
    row(Route::UsersCreate,          Plain,      [[DATA, DATA, DATA], [DATA, DATA, F403], [DATA, F403, F403], [F403, F403, F403]]),
    row(Route::UserGet,              Plain,      [[DATA, DATA, DATA], [DATA, DATA, N404], [DATA, N404, N404], [F403, F403, F403]]),
    row(Route::UserPatch,            Plain,      [[DATA, DATA, DATA], [DATA, DATA, N404], [DATA, N404, N404], [F403, F403, F403]]),
    row(Route::UserApiKey,           Plain,      [[DATA, DATA, DATA], [DATA, DATA, N404], [DATA, N404, N404], [F403, F403, F403]]),
    row(Route::ReportSummary,        All,        [[DATA, DATA, DATA], [DATA, DATA, HIDE], [DATA, HIDE, HIDE], [DATA, HIDE, HIDE]]),
    row(Route::ReportSummary,        ByMerchant, [[DATA, DATA, DATA], [DATA, DATA, N404], [DATA, F403, F403], [DATA, F403, F403]]),
    row(Route::ReportLedger,         ByMerchant, [[DATA, DATA, DATA], [DATA, DATA, N404], [DATA, F403, F403], [DATA, F403, F403]]),
    row(Route::LedgerAccounts,       ByMerchant, [[DATA, DATA, DATA], [F403, F403, F403], [F403, F403, F403], [F403, F403, F403]]),
    row(Route::LedgerTransfers,      ByMerchant, [[DATA, DATA, DATA], [F403, F403, F403], [F403, F403, F403], [F403, F403, F403]]),
    row(Route::WebhookEvents,        All,        [[DATA, DATA, DATA], [F403, F403, F403], [DATA, HIDE, HIDE], [DATA, HIDE, HIDE]]),
    row(Route::WebhookRedeliver,     Plain,      [[DATA, DATA, DATA], [F403, F403, F403], [DATA, N404, N404], [DATA, N404, N404]]),
    row(Route::WebhookReplay,        Plain,      [[DATA, IGNR, IGNR], [F403, F403, F403], [DATA, IGNR, IGNR], [DATA, IGNR, IGNR]]),
    row(Route::AdminBackup,          Plain,      [[DATA, DATA, DATA], [F403, F403, F403], [F403, F403, F403], [F403, F403, F403]]),
    row(Route::SettlementsCreate,    Plain,      [[B400, B400, B400], [F403, F403, F403], [F403, F403, F403], [F403, F403, F403]]),
    row(Route::SettlementsList,      ByMerchant, [[DATA, DATA, DATA], [DATA, DATA, N404], [DATA, F403, F403], [DATA, F403, F403]]),
    row(Route::SettlementGet,        Plain,      [[N404, N404, N404], [N404, N404, N404], [N404, N404, N404], [N404, N404, N404]]),
    row(Route::SettlementStatus,     Plain,      [[N404, N404, N404], [F403, F403, F403], [F403, F403, F403], [F403, F403, F403]]),
    row(Route::StatementsList,       ByMerchant, [[DATA, DATA, DATA], [DATA, DATA, N404], [DATA, F403, F403], [DATA, F403, F403]]),
    // The audit log (SPEC §16): the target merchant's subtree; api_users none.
    row(Route::AuditLog,             ByMerchant, [[DATA, DATA, DATA], [DATA, DATA, N404], [DATA, F403, F403], [F403, F403, F403]]),
    row(Route::StatementsVerify,     ByMerchant, [[DATA, DATA, DATA], [DATA, DATA, N404], [DATA, F403, F403], [DATA, F403, F403]]),
    // No UTC day has closed in this world: an allowed caller is told the
    // day's statement does not exist; the others are refused as for the list.
    row(Route::StatementGet,         ByMerchant, [[N404, N404, N404], [N404, N404, N404], [N404, F403, F403], [N404, F403, F403]]),
    // Refunds have their pay-in's scope; these rows run last (they complete pay-ins and move money).
    row(Route::RefundsCreate,        Plain,      [[DATA, DATA, DATA], [DATA, DATA, N404], [DATA, N404, N404], [DATA, N404, N404]]),
    row(Route::RefundsList,          All,        [[DATA, DATA, DATA], [DATA, DATA, HIDE], [DATA, HIDE, HIDE], [DATA, HIDE, HIDE]]),
    row(Route::RefundsList,          ByMerchant, [[DATA, DATA, DATA], [DATA, DATA, N404], [DATA, F403, F403], [DATA, F403, F403]]),
    row(Route::RefundGet,            Plain,      [[DATA, DATA, DATA], [DATA, DATA, N404], [DATA, N404, N404], [DATA, N404, N404]]),
    row(Route::RefundStatus,         Plain,      [[DATA, DATA, DATA], [F403, F403, F403], [F403, F403, F403], [F403, F403, F403]]),
];

/// The target merchant of each (role, relation): `merchant_id` of
/// balances, creations, filters and the ledger; `parent_id` of new users.
const REL_MERCHANT: [[&str; 3]; 4] = [
    ["mD", "mD", "mB1"],
    ["mA1", "mA2", "mB1"],
    ["mA1", "mA2", "mB1"],
    ["mA1", "mA2", "mB1"],
];

/// The target users of each (role, relation) for the users endpoints (the
/// first also for the profile routes' `?user_id=`).
const REL_USERS: [[&[&str]; 3]; 4] = [
    [
        &["mD", "mgrA", "mgrB"],
        &["uD"],
        &["mA1", "mB2", "uA2a", "uB1a"],
    ],
    [
        &["mA1", "mA2"],
        &["uA1a", "uA2b"],
        &["mgrB", "mB1", "uB1a", "mD", "uD"],
    ],
    [
        &["uA1a", "uA1b"],
        &["mgrA", "mA2", "uA2a"],
        &["mB1", "uB1a", "mD", "uD"],
    ],
    [&["uA1a"], &["uA1b", "mA1"], &["uB1a", "mB1"]],
];

/// Whose record is the single target of a cell (status changes, order
/// lookups): one creator per (role, relation), pending records first.
const PRIMARY_CREATOR: [[&str; 3]; 4] = [
    ["admin", "uD", "uB1a"],
    ["mA1", "uA2b", "uB1a"],
    ["uA1a", "uA2a", "mB1"],
    ["uA1a", "uA1b", "uB1a"],
];

// ---------------------------------------------------------------- the model

struct Member {
    label: String,
    id: String,
    key: String,
    role: Role,
    parent: Option<String>,
    name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Payin,
    Payout,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Payin => "payments",
            Kind::Payout => "payouts",
        }
    }
}

struct Rec {
    kind: Kind,
    id: String,
    merchant: String,
    creator: String,
    paise: i64,
    /// `order_id` of a pay-in, `reference_id` of a payout.
    order: String,
    status: String,
}

/// A webhook event: its recipients (labels) and payload.
struct Ev {
    id: String,
    recipients: Vec<String>,
    payload: Value,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Wallet {
    available: i64,
    held: i64,
    pending_payins: i64,
    total_payins: i64,
    total_payouts: i64,
    total_fees: i64,
}

impl Wallet {
    fn from_json(v: &Value) -> Result<Wallet, String> {
        let field = |name: &str| paise(&v[name]).ok_or_else(|| format!("{name} is {}", v[name]));
        Ok(Wallet {
            available: field("available")?,
            held: field("held")?,
            pending_payins: field("pending_payins")?,
            total_payins: field("total_payins")?,
            total_payouts: field("total_payouts")?,
            total_fees: field("total_fees")?,
        })
    }

    fn add(self, o: Wallet) -> Wallet {
        Wallet {
            available: self.available + o.available,
            held: self.held + o.held,
            pending_payins: self.pending_payins + o.pending_payins,
            total_payins: self.total_payins + o.total_payins,
            total_payouts: self.total_payouts + o.total_payouts,
            total_fees: self.total_fees + o.total_fees,
        }
    }
}

/// Exact paise of a money value (JSON number or string), sign included.
fn paise(v: &Value) -> Option<i64> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest.to_owned()),
        None => (false, text),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((&digits, ""));
    if frac.len() > 2 || whole.is_empty() {
        return None;
    }
    let value = whole.parse::<i64>().ok()? * 100 + format!("{frac:0<2}").parse::<i64>().ok()?;
    Some(if negative { -value } else { value })
}

fn money(p: i64) -> String {
    format!("{}.{:02}", p / 100, p % 100)
}

fn short(text: &str) -> String {
    if text.len() <= 300 {
        text.to_owned()
    } else {
        let mut end = 300;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &text[..end])
    }
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// Checks the status and envelope of `r` against `want` (`ok` is the
/// success status of the route); refusals must carry no data.
fn outcome(r: &Resp, want: Want, ok: u16) -> Result<(), String> {
    let got = r.status.as_u16();
    let fine = match want {
        Want::Forbidden => got == 403 && r.code() == "insufficient_permissions",
        Want::NotFound => got == 404 && r.code() == "not_found",
        Want::Invalid => got == 400 && r.code() == "invalid_request",
        _ => got == ok && r.json["success"] == true,
    };
    ensure!(
        fine,
        "expected {want} ({}), got {got} {}",
        match want {
            Want::Forbidden | Want::NotFound | Want::Invalid => "an error envelope".to_owned(),
            _ => format!("HTTP {ok}"),
        },
        short(&r.text)
    );
    if matches!(want, Want::Forbidden | Want::NotFound | Want::Invalid) {
        ensure!(
            r.json.get("data").is_none() && r.json["success"] == false,
            "a refusal carries data: {}",
            short(&r.text)
        );
    }
    Ok(())
}

struct World {
    server: Server,
    members: Vec<Member>,
    recs: Vec<Rec>,
    seq: u32,
    requests: usize,
}

impl World {
    fn member(&self, label: &str) -> &Member {
        self.members
            .iter()
            .find(|m| m.label == label)
            .unwrap_or_else(|| panic!("no member {label}"))
    }

    fn member_mut(&mut self, label: &str) -> &mut Member {
        self.members
            .iter_mut()
            .find(|m| m.label == label)
            .unwrap_or_else(|| panic!("no member {label}"))
    }

    fn id(&self, label: &str) -> String {
        self.member(label).id.clone()
    }

    fn key(&self, label: &str) -> String {
        self.member(label).key.clone()
    }

    fn role(&self, label: &str) -> Role {
        self.member(label).role
    }

    /// The member with user id `id`, for messages and the model.
    fn label_of(&self, id: &Value) -> String {
        self.members
            .iter()
            .find(|m| *id == m.id.as_str())
            .map_or_else(|| format!("<unknown {id}>"), |m| m.label.clone())
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}-{}", self.seq)
    }

    /// The wallet a member transacts on.
    fn merchant_of(&self, label: &str) -> Option<String> {
        let m = self.member(label);
        match m.role {
            Role::Merchant => Some(m.label.clone()),
            Role::ApiUser => m.parent.clone(),
            _ => None,
        }
    }

    /// A merchant's manager, if its parent is one.
    fn manager_of(&self, merchant: &str) -> Option<String> {
        self.member(merchant)
            .parent
            .clone()
            .filter(|p| self.role(p) == Role::Manager)
    }

    /// Whether `ancestor` is strictly above `label` in the tree.
    fn is_below(&self, ancestor: &str, label: &str) -> bool {
        let mut current = self.member(label).parent.clone();
        while let Some(p) = current {
            if p == ancestor {
                return true;
            }
            current = self.member(&p).parent.clone();
        }
        false
    }

    fn merchants(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.role == Role::Merchant)
            .map(|m| m.label.clone())
            .collect()
    }

    // SPEC §3 "scope of reads", written independently of the server.

    fn sees(&self, caller: &str, rec: &Rec) -> bool {
        match self.role(caller) {
            Role::Admin => true,
            Role::Manager => self.manager_of(&rec.merchant).as_deref() == Some(caller),
            Role::Merchant => rec.merchant == caller,
            Role::ApiUser => rec.creator == caller,
        }
    }

    /// The wallets a caller's balance covers.
    fn wallets_seen(&self, caller: &str) -> Vec<String> {
        match self.role(caller) {
            Role::Admin => self.merchants(),
            Role::Manager => self
                .merchants()
                .into_iter()
                .filter(|m| self.manager_of(m).as_deref() == Some(caller))
                .collect(),
            Role::Merchant | Role::ApiUser => self.merchant_of(caller).into_iter().collect(),
        }
    }

    /// The users a caller may list, view and manage (SPEC §3–§4).
    fn manages(&self, caller: &str, target: &str) -> bool {
        match self.role(caller) {
            Role::Admin => true,
            Role::Manager | Role::Merchant => self.is_below(caller, target),
            Role::ApiUser => false,
        }
    }

    /// The relation of a record to a caller (the module comment's table).
    fn relation(&self, caller: &str, rec: &Rec) -> Rel {
        let team = |m: &str| self.manager_of(m);
        let same_team = |a: &str, b: &str| team(a).is_some() && team(a) == team(b);
        match self.role(caller) {
            Role::Admin if rec.creator == caller => Rel::Own,
            Role::Admin if team(&rec.merchant).is_none() => Rel::Team,
            Role::Admin => Rel::Other,
            Role::Manager if team(&rec.merchant).as_deref() != Some(caller) => Rel::Other,
            Role::Manager if rec.creator == caller || rec.creator == rec.merchant => Rel::Own,
            Role::Manager => Rel::Team,
            Role::Merchant if rec.merchant == caller => Rel::Own,
            Role::Merchant if same_team(&rec.merchant, caller) => Rel::Team,
            Role::Merchant => Rel::Other,
            Role::ApiUser => {
                let mine = self.merchant_of(caller).unwrap();
                if rec.creator == caller {
                    Rel::Own
                } else if rec.merchant == mine || same_team(&rec.merchant, &mine) {
                    Rel::Team
                } else {
                    Rel::Other
                }
            }
        }
    }

    fn targets(&self, caller: &str, rel: Rel, kind: Kind) -> Vec<usize> {
        (0..self.recs.len())
            .filter(|&i| self.recs[i].kind == kind && self.relation(caller, &self.recs[i]) == rel)
            .collect()
    }

    /// The single target record of a cell: `PRIMARY_CREATOR`'s, pending first.
    fn primary(&self, role: Role, rel: Rel, kind: Kind) -> usize {
        let creator = PRIMARY_CREATOR[role as usize][rel as usize];
        let candidates: Vec<usize> = self
            .targets(role.caller(), rel, kind)
            .into_iter()
            .filter(|&i| self.recs[i].creator == creator)
            .collect();
        candidates
            .iter()
            .copied()
            .find(|&i| self.recs[i].status == "pending")
            .or_else(|| candidates.first().copied())
            .unwrap_or_else(|| panic!("no {kind:?} by {creator} for {role:?}/{rel:?}"))
    }

    fn describe(&self, i: usize) -> String {
        let r = &self.recs[i];
        format!(
            "{:?} {} (by {} on {}'s wallet)",
            r.kind, r.id, r.creator, r.merchant
        )
    }

    fn wallet(&self, merchant: &str) -> Wallet {
        let mut w = Wallet::default();
        for r in self.recs.iter().filter(|r| r.merchant == merchant) {
            match (r.kind, r.status.as_str()) {
                (Kind::Payin, "pending") => w.pending_payins += r.paise,
                (Kind::Payin, "completed") => {
                    w.available += r.paise;
                    w.total_payins += r.paise;
                }
                (Kind::Payout, "pending") => {
                    w.available -= r.paise;
                    w.held += r.paise;
                }
                (Kind::Payout, "processed") => {
                    w.available -= r.paise;
                    w.total_payouts += r.paise;
                }
                _ => {}
            }
        }
        w
    }

    /// The ledger entries of a wallet as (kind, reference, amount), sorted;
    /// only those of `creator`'s records when given.
    fn ledger(&self, merchant: &str, creator: Option<&str>) -> Vec<(String, String, i64)> {
        let mut out = Vec::new();
        for r in self
            .recs
            .iter()
            .filter(|r| r.merchant == merchant && creator.is_none_or(|c| r.creator == c))
        {
            let mut push = |kind: &str| out.push((kind.to_owned(), r.id.clone(), r.paise));
            match (r.kind, r.status.as_str()) {
                (Kind::Payin, "completed") => push("payin_credit"),
                (Kind::Payout, status) => {
                    push("payout_hold");
                    match status {
                        "processed" => push("payout_settle"),
                        "rejected" | "cancelled" => push("payout_release"),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        out.sort();
        out
    }

    fn check_wallet(&self, data: &Value, merchant: &str) -> Result<(), String> {
        ensure!(
            data["merchant_id"] == self.id(merchant).as_str(),
            "balance is of {} , expected {merchant}'s",
            self.label_of(&data["merchant_id"])
        );
        ensure!(data["currency"] == "INR", "currency {}", data["currency"]);
        let got = Wallet::from_json(data)?;
        let want = self.wallet(merchant);
        ensure!(
            got == want,
            "wallet of {merchant}: got {got:?}, model {want:?}"
        );
        Ok(())
    }

    fn check_record(&self, data: &Value, i: usize) -> Result<(), String> {
        let r = &self.recs[i];
        let order_field = match r.kind {
            Kind::Payin => "order_id",
            Kind::Payout => "reference_id",
        };
        ensure!(
            data["id"] == r.id.as_str(),
            "id {} is not {}",
            data["id"],
            r.id
        );
        ensure!(
            data["merchant_id"] == self.id(&r.merchant).as_str(),
            "{}: merchant_id is {}'s, expected {}'s",
            r.id,
            self.label_of(&data["merchant_id"]),
            r.merchant
        );
        ensure!(
            data["created_by"] == self.id(&r.creator).as_str(),
            "{}: created_by is {}, expected {}",
            r.id,
            self.label_of(&data["created_by"]),
            r.creator
        );
        ensure!(
            paise(&data["amount"]) == Some(r.paise),
            "{}: amount {} is not {}",
            r.id,
            data["amount"],
            money(r.paise)
        );
        ensure!(
            data["status"] == r.status.as_str(),
            "{}: status {} is not {}",
            r.id,
            data["status"],
            r.status
        );
        ensure!(
            data[order_field] == r.order.as_str(),
            "{}: {order_field} {} is not {}",
            r.id,
            data[order_field],
            r.order
        );
        Ok(())
    }

    /// A listing answer against the model: exactly `expected`, each item as
    /// stored; nothing outside the caller's scope.
    fn check_listing(&self, data: &Value, expected: &[usize]) -> Result<Vec<String>, String> {
        let items = data.as_array().ok_or("data is not a list")?;
        let got: Vec<String> = items
            .iter()
            .map(|v| v["id"].as_str().unwrap_or("?").to_owned())
            .collect();
        let want: BTreeSet<&str> = expected.iter().map(|&i| self.recs[i].id.as_str()).collect();
        let leaked: Vec<String> = items
            .iter()
            .filter(|v| !want.contains(v["id"].as_str().unwrap_or("?")))
            .map(|v| {
                format!(
                    "{} (merchant {}, created_by {})",
                    v["id"],
                    self.label_of(&v["merchant_id"]),
                    self.label_of(&v["created_by"])
                )
            })
            .collect();
        ensure!(
            leaked.is_empty(),
            "listed outside the expected scope: {leaked:?}"
        );
        let missing: Vec<String> = expected
            .iter()
            .filter(|&&i| !got.contains(&self.recs[i].id))
            .map(|&i| self.describe(i))
            .collect();
        ensure!(missing.is_empty(), "missing from the listing: {missing:?}");
        ensure!(
            got.len() == want.len(),
            "duplicates in the listing: {got:?}"
        );
        for v in items {
            let i = self
                .recs
                .iter()
                .position(|r| v["id"] == r.id.as_str())
                .ok_or("an unknown record")?;
            self.check_record(v, i)?;
        }
        Ok(got)
    }

    fn check_summary(&self, data: &Value, recs: &[usize]) -> Result<(), String> {
        let groups = [
            (Kind::Payin, "payins", ["pending", "completed", "failed"]),
            (
                Kind::Payout,
                "payouts",
                ["pending", "processed", "rejected"],
            ),
        ];
        for (kind, key, statuses) in groups {
            for status in statuses {
                let chosen: Vec<&Rec> = recs
                    .iter()
                    .map(|&i| &self.recs[i])
                    .filter(|r| r.kind == kind && r.status == status)
                    .collect();
                let count = chosen.len() as u64;
                let sum: i64 = chosen.iter().map(|r| r.paise).sum();
                let cell = &data[key][status];
                ensure!(
                    cell["count"].as_u64() == Some(count) && paise(&cell["amount"]) == Some(sum),
                    "{key}.{status} is {cell}, model count {count} amount {}",
                    money(sum)
                );
            }
        }
        let sum = |kind: Kind, status: &str| -> i64 {
            recs.iter()
                .map(|&i| &self.recs[i])
                .filter(|r| r.kind == kind && r.status == status)
                .map(|r| r.paise)
                .sum()
        };
        let net = sum(Kind::Payin, "completed") - sum(Kind::Payout, "processed");
        ensure!(
            paise(&data["net"]) == Some(net),
            "net {} is not {net} paise",
            data["net"]
        );
        ensure!(
            paise(&data["fees"]["total"]) == Some(0),
            "fees {}",
            data["fees"]
        );
        ensure!(
            data["truncated"] == false,
            "truncated {}",
            data["truncated"]
        );
        Ok(())
    }

    fn check_ledger(
        &self,
        data: &Value,
        merchant: &str,
        creator: Option<&str>,
    ) -> Result<(), String> {
        let items = data.as_array().ok_or("ledger data is not a list")?;
        let id = self.id(merchant);
        let mut got = Vec::new();
        for e in items {
            ensure!(
                e["merchant_id"] == id.as_str(),
                "a ledger entry of {}, expected {merchant}'s: {e}",
                self.label_of(&e["merchant_id"])
            );
            got.push((
                e["kind"].as_str().unwrap_or("?").to_owned(),
                e["reference"].as_str().unwrap_or("?").to_owned(),
                paise(&e["amount"]).unwrap_or(i64::MIN),
            ));
        }
        got.sort();
        let want = self.ledger(merchant, creator);
        ensure!(
            got == want,
            "ledger of {merchant} (creator {creator:?}): got {got:?}, model {want:?}"
        );
        Ok(())
    }

    fn check_profile(&self, data: &Value, caller: &str, text: &str) -> Result<(), String> {
        let m = self.member(caller);
        ensure!(
            data["id"] == m.id.as_str(),
            "profile of {}, expected {caller}'s",
            self.label_of(&data["id"])
        );
        ensure!(data["role"] == m.role.as_str(), "role {}", data["role"]);
        ensure!(data["name"] == m.name.as_str(), "name {}", data["name"]);
        ensure!(
            data["webhook_secret"]
                .as_str()
                .is_some_and(|s| s.starts_with("whsec_")),
            "webhook_secret {}",
            data["webhook_secret"]
        );
        ensure!(!text.contains("api_key"), "a profile carries a key");
        if let Some(own) = self.merchant_of(caller) {
            ensure!(
                data["merchant_settings"]["merchant_id"] == self.id(&own).as_str(),
                "merchant_settings {}",
                data["merchant_settings"]
            );
        }
        Ok(())
    }

    fn check_user(&self, data: &Value, label: &str) -> Result<(), String> {
        let m = self.member(label);
        ensure!(
            data["id"] == m.id.as_str(),
            "user {}, expected {label}",
            self.label_of(&data["id"])
        );
        ensure!(
            data["role"] == m.role.as_str(),
            "{label}: role {}",
            data["role"]
        );
        ensure!(
            data["name"] == m.name.as_str(),
            "{label}: name {}",
            data["name"]
        );
        let parent = m.parent.as_ref().map(|p| self.id(p));
        ensure!(
            data["parent_id"].as_str() == parent.as_deref(),
            "{label}: parent_id {}",
            data["parent_id"]
        );
        let merchant = self.merchant_of(label).map(|p| self.id(&p));
        ensure!(
            data["merchant_id"].as_str() == merchant.as_deref(),
            "{label}: merchant_id {}",
            data["merchant_id"]
        );
        ensure!(data.get("api_key").is_none(), "{label}: carries a key");
        Ok(())
    }

    /// The relation of a user to a caller, for webhook recipients.
    fn user_rel(&self, caller: &str, user: &str) -> Rel {
        if user == caller {
            return Rel::Own;
        }
        // A user's team: its manager (a manager is its own team).
        let team = |u: &str| match self.role(u) {
            Role::Manager => Some(u.to_owned()),
            _ => self.merchant_of(u).and_then(|m| self.manager_of(&m)),
        };
        let unit = |u: &str| self.merchant_of(u);
        let near = match self.role(caller) {
            Role::Admin => unit(user).is_some() && team(user).is_none(),
            _ => {
                (team(user).is_some() && team(user) == team(caller))
                    || (unit(user).is_some() && unit(user) == unit(caller))
            }
        };
        if near {
            Rel::Team
        } else {
            Rel::Other
        }
    }

    /// An event's relation to a caller: its nearest recipient's.
    fn event_rel(&self, caller: &str, ev: &Ev) -> Rel {
        ev.recipients
            .iter()
            .map(|r| self.user_rel(caller, r))
            .min()
            .unwrap_or(Rel::Other)
    }

    /// SPEC §7 recipients, written independently: a payment or payout
    /// event concerns a record the caller may read; a user event, a user
    /// whose parent is the caller.
    fn event_in_scope(&self, caller: &str, payload: &Value) -> bool {
        let record = ["transaction_id", "payout_id"]
            .iter()
            .find_map(|f| payload[*f].as_str())
            .and_then(|id| self.recs.iter().find(|r| r.id == id));
        match (record, payload["user_id"].as_str()) {
            (Some(rec), _) => self.sees(caller, rec),
            (None, Some(_)) => {
                let user = self.label_of(&payload["user_id"]);
                // Security events (SPEC §16) also go to the user itself.
                let security = [
                    "api_key.regenerated",
                    "webhook_secret.rotated",
                    "user.reactivated",
                    "user.role_changed",
                ]
                .iter()
                .any(|e| payload["event"] == *e);
                (security && user == caller)
                    || self
                        .members
                        .iter()
                        .any(|m| m.label == user && m.parent.as_deref() == Some(caller))
            }
            _ => false,
        }
    }

    /// Every webhook event with its recipients, as the admin sees them.
    async fn events(&mut self) -> Vec<Ev> {
        let r = self
            .call(
                "admin",
                Method::GET,
                "/api/v1/webhooks/events?limit=500",
                None,
            )
            .await;
        assert_eq!(r.status, 200, "admin lists events: {}", r.text);
        assert_eq!(r.json["pagination"]["has_more"], false, "over 500 events");
        let items = r.data().as_array().cloned().unwrap_or_default();
        items
            .iter()
            .map(|e| Ev {
                id: e["id"].as_str().unwrap_or("?").to_owned(),
                recipients: e["deliveries"]
                    .as_array()
                    .map(|ds| ds.iter().map(|d| self.label_of(&d["recipient"])).collect())
                    .unwrap_or_default(),
                payload: e["payload"].clone(),
            })
            .collect()
    }

    /// A caller's event listing: exactly the events addressed to it (all,
    /// for the admin), each in its scope, without others' deliveries.
    fn check_events(
        &self,
        data: &Value,
        caller: &str,
        events: &[Ev],
        targets: &[usize],
        want: Want,
    ) -> Result<(), String> {
        let admin = self.role(caller) == Role::Admin;
        let items = data.as_array().ok_or("data is not a list")?;
        let got: BTreeSet<&str> = items
            .iter()
            .map(|e| e["id"].as_str().unwrap_or("?"))
            .collect();
        let expected: BTreeSet<&str> = events
            .iter()
            .filter(|e| admin || e.recipients.iter().any(|r| r == caller))
            .map(|e| e.id.as_str())
            .collect();
        let leaked: Vec<String> = got
            .difference(&expected)
            .map(|id| {
                let to = events.iter().find(|e| e.id == *id).map(|e| &e.recipients);
                format!("{id} (to {to:?})")
            })
            .collect();
        ensure!(
            leaked.is_empty(),
            "listed events not addressed to the caller: {leaked:?}"
        );
        let missing: Vec<String> = expected
            .difference(&got)
            .map(|id| {
                let e = events.iter().find(|e| e.id == *id);
                let what = e.map(|e| (e.payload["event"].clone(), &e.recipients));
                format!("{id} {what:?}")
            })
            .collect();
        ensure!(missing.is_empty(), "missing events: {missing:?}");
        ensure!(got.len() == items.len(), "duplicate events");
        for e in items.iter().filter(|_| !admin) {
            ensure!(
                e.get("deliveries").is_none(),
                "a non-admin sees every delivery: {e}"
            );
            ensure!(
                self.event_in_scope(caller, &e["payload"]),
                "an event outside the caller's scope: {}",
                e["payload"]
            );
        }
        for &i in targets {
            let listed = got.contains(events[i].id.as_str());
            ensure!(
                listed == (want == Want::Data),
                "event {} to {:?} listed: {listed}",
                events[i].id,
                events[i].recipients
            );
        }
        Ok(())
    }

    // HTTP, counted.

    async fn call(&mut self, who: &str, method: Method, path: &str, body: Option<Value>) -> Resp {
        let key = self.key(who);
        self.call_key(&key, method, path, body).await
    }

    async fn call_key(
        &mut self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        self.requests += 1;
        self.server
            .request(method, path, Some(key), body.as_ref())
            .await
    }

    /// A user as the admin sees it, without `last_used_at` (bookkeeping
    /// that any use of the user's key moves, refused requests included).
    async fn admin_user(&mut self, label: &str) -> Value {
        let path = format!("/api/v1/users/{}", self.id(label));
        let r = self.call("admin", Method::GET, &path, None).await;
        assert_eq!(r.status, 200, "admin reads {label}: {}", r.text);
        let mut user = r.data().clone();
        if let Some(u) = user.as_object_mut() {
            u.remove("last_used_at");
        }
        user
    }

    /// A record's status as the admin sees it.
    async fn admin_status(&mut self, i: usize) -> String {
        let path = format!("/api/v1/{}/{}", self.recs[i].kind.path(), self.recs[i].id);
        let r = self.call("admin", Method::GET, &path, None).await;
        assert_eq!(r.status, 200, "admin reads {path}: {}", r.text);
        r.data()["status"].as_str().unwrap_or("?").to_owned()
    }

    /// Creates a user as `creator` (setup: must succeed).
    async fn add_user(&mut self, creator: &str, label: &str, role: Role, parent: Option<&str>) {
        let mut body = json!({ "name": label, "role": role.as_str() });
        if role == Role::ApiUser {
            // SPEC §7: an api_user gets its own events only if it set a URL.
            body["webhook_url"] = json!("http://127.0.0.1:9/hook");
        }
        if let Some(p) = parent {
            body["parent_id"] = json!(self.id(p));
        }
        let r = self
            .call(creator, Method::POST, "/api/v1/users", Some(body))
            .await;
        assert_eq!(r.status, 201, "{creator} creates {label}: {}", r.text);
        let parent = parent.unwrap_or(creator).to_owned();
        let user = &r.data()["user"];
        assert_eq!(user["parent_id"], self.id(&parent).as_str(), "{label}");
        assert_eq!(user["role"], role.as_str(), "{label}");
        self.members.push(Member {
            label: label.to_owned(),
            id: user["id"].as_str().unwrap().to_owned(),
            key: r.data()["api_key"].as_str().unwrap().to_owned(),
            role,
            parent: Some(parent),
            name: label.to_owned(),
        });
    }

    /// Sends a pay-in (`Kind::Payin`) or payout as `who`, naming
    /// `merchant_id` when given; returns the answer, its order/reference id
    /// and amount. A 201 is added to the model as the server recorded it.
    async fn create(
        &mut self,
        kind: Kind,
        who: &str,
        merchant: Option<&str>,
        amount: Option<i64>,
    ) -> (Resp, String, i64) {
        let n = i64::from(self.seq) + 1;
        let (order, p) = match kind {
            Kind::Payin => (self.fresh("ORD"), amount.unwrap_or(100_000 + n * 101)),
            Kind::Payout => (self.fresh("REF"), amount.unwrap_or(1_000 + n * 7)),
        };
        let mut body = match kind {
            Kind::Payin => json!({ "order_id": order, "amount": money(p), "payer": "Jane Smith" }),
            Kind::Payout => json!({
                "amount": money(p), "reference_id": order,
                "beneficiary": { "name": "Ravi Kumar", "account_number": "123456789012", "ifsc": "HDFC0000001" },
            }),
        };
        if let Some(m) = merchant {
            body["merchant_id"] = json!(self.id(m));
        }
        let path = format!("/api/v1/{}", kind.path());
        let r = self.call(who, Method::POST, &path, Some(body)).await;
        if r.status == 201 {
            let d = r.data();
            let rec = Rec {
                kind,
                id: d["id"].as_str().unwrap().to_owned(),
                merchant: self.label_of(&d["merchant_id"]),
                creator: self.label_of(&d["created_by"]),
                paise: p,
                order: order.clone(),
                status: d["status"].as_str().unwrap_or("?").to_owned(),
            };
            self.recs.push(rec);
        }
        (r, order, p)
    }

    /// The admin's manual settlement of record `i` (updates the model).
    async fn settle(&mut self, who: &str, i: usize, to: &str) -> Resp {
        let path = format!(
            "/api/v1/{}/{}/status",
            self.recs[i].kind.path(),
            self.recs[i].id
        );
        let body = json!({ "status": to, "reason": "manual reconciliation (authz matrix)" });
        let r = self.call(who, Method::POST, &path, Some(body)).await;
        if r.status == 200 {
            self.recs[i].status = r.data()["status"].as_str().unwrap_or("?").to_owned();
        }
        r
    }
}

// ---------------------------------------------------------------- the world

/// Nothing settles by itself; api_users may point their webhooks at a
/// loopback port (their deliveries fail, which the matrix does not mind).
const SLOW_RAIL: [&str; 3] = ["--settle-delay-ms", "3600000", "--webhook-allow-private"];

/// A server on the slow rail, its bootstrap admin, and the users of `tree`
/// as (creator, label, role, parent when not the creator).
async fn start_world(tree: &[(&str, &str, Role, Option<&str>)]) -> World {
    let server = Server::start(&SLOW_RAIL);
    let admin_key = server.admin_key.clone();
    let me = server.get("/api/v1/profile", &admin_key).await;
    assert_eq!(me.status, 200, "{}", me.text);
    let mut w = World {
        members: vec![Member {
            label: "admin".into(),
            id: me.data()["id"].as_str().unwrap().to_owned(),
            key: admin_key,
            role: Role::Admin,
            parent: None,
            name: me.data()["name"].as_str().unwrap().to_owned(),
        }],
        server,
        recs: Vec::new(),
        seq: 0,
        requests: 1,
    };
    for &(creator, label, role, parent) in tree {
        w.add_user(creator, label, role, parent).await;
    }
    w
}

async fn build_world() -> World {
    let mut w = start_world(&[
        ("admin", "mgrA", Role::Manager, None),
        ("admin", "mgrB", Role::Manager, None),
        ("admin", "mD", Role::Merchant, None),
        ("mgrA", "mA1", Role::Merchant, None),
        ("mgrA", "mA2", Role::Merchant, None),
        ("mgrB", "mB1", Role::Merchant, None),
        ("mgrB", "mB2", Role::Merchant, None),
        ("mA1", "uA1a", Role::ApiUser, None),
        ("mA1", "uA1b", Role::ApiUser, None),
        ("mgrA", "uA2a", Role::ApiUser, Some("mA2")),
        ("mgrA", "uA2b", Role::ApiUser, Some("mA2")),
        ("mB1", "uB1a", Role::ApiUser, None),
        ("mB1", "uB1b", Role::ApiUser, None),
        ("mgrB", "uB2a", Role::ApiUser, Some("mB2")),
        ("mgrB", "uB2b", Role::ApiUser, Some("mB2")),
        ("mD", "uD", Role::ApiUser, None),
    ])
    .await;
    // Funding: each merchant's pay-in of 50,000.00, settled by the admin.
    for m in w.merchants() {
        let (r, _, _) = w.create(Kind::Payin, &m, None, Some(5_000_000)).await;
        assert_eq!(r.status, 201, "{m} funding: {}", r.text);
        let i = w.recs.len() - 1;
        let r = w.settle("admin", i, "completed").await;
        assert_eq!(r.status, 200, "settling {m}'s funding: {}", r.text);
        assert_eq!(r.data()["status"], "completed");
    }
    // Every merchant and api_user: a pay-in and a payout on its own wallet.
    let transactors: Vec<String> = w
        .members
        .iter()
        .filter(|m| matches!(m.role, Role::Merchant | Role::ApiUser))
        .map(|m| m.label.clone())
        .collect();
    for who in &transactors {
        for kind in [Kind::Payin, Kind::Payout] {
            let (r, _, _) = w.create(kind, who, None, None).await;
            assert_eq!(r.status, 201, "{who} creates a {kind:?}: {}", r.text);
            let own = w.merchant_of(who).unwrap();
            assert_eq!(w.recs.last().unwrap().merchant, own, "{who}'s {kind:?}");
            assert_eq!(&w.recs.last().unwrap().creator, who);
        }
    }
    // Webhook events for an api_user: the admin settles one of uA1a's pay-ins.
    let (r, _, _) = w.create(Kind::Payin, "uA1a", None, None).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let i = w.recs.len() - 1;
    let r = w.settle("admin", i, "completed").await;
    assert_eq!(r.status, 200, "settling uA1a's pay-in: {}", r.text);
    // On behalf: each manager a pay-in for its first merchant, the admin a
    // pay-in and a payout for mD.
    for (who, merchant) in [("mgrA", "mA1"), ("mgrB", "mB1")] {
        let (r, _, _) = w.create(Kind::Payin, who, Some(merchant), None).await;
        assert_eq!(r.status, 201, "{who} on behalf of {merchant}: {}", r.text);
        assert_eq!(w.recs.last().unwrap().merchant, merchant);
    }
    for kind in [Kind::Payin, Kind::Payout] {
        let (r, _, _) = w.create(kind, "admin", Some("mD"), None).await;
        assert_eq!(r.status, 201, "admin on behalf of mD: {}", r.text);
        assert_eq!(w.recs.last().unwrap().merchant, "mD");
    }
    w
}

// ---------------------------------------------------------------- the cells

/// Runs one cell; returns the number of checks made and the failures.
async fn run_cell(w: &mut World, row: &Row, role: Role, rel: Rel) -> (usize, Vec<String>) {
    let want = row.want[role as usize][rel as usize];
    let caller = role.caller();
    let (method, template) = row.route.spec();
    let cell = format!(
        "[{:?}: {method} {template}{}] role={} ({caller}) relation={}",
        row.route,
        row.probe.as_str(),
        role.as_str(),
        rel.as_str()
    );
    let m = REL_MERCHANT[role as usize][rel as usize];
    let users = REL_USERS[role as usize][rel as usize];
    let own_merchant = w.merchant_of(caller);
    let mut results: Vec<(String, Result<(), String>)> = Vec::new();

    match (row.route, row.probe) {
        (Route::Balance, ByMerchant) => {
            let path = format!("{template}?merchant_id={}", w.id(m));
            let r = w.call(caller, method, &path, None).await;
            let res = outcome(&r, want, 200).and_then(|()| match want {
                Want::Data => w.check_wallet(r.data(), m),
                Want::Ignored => w.check_wallet(r.data(), own_merchant.as_deref().unwrap()),
                _ => Ok(()),
            });
            results.push((format!("{m}'s wallet"), res));
        }
        (Route::Balance, All) => {
            let seen = w.wallets_seen(caller);
            let r = w.call(caller, method, template, None).await;
            let res = consistent(want, seen.iter().any(|s| s == m), "the wallet in scope")
                .and_then(|()| outcome(&r, want, 200))
                .and_then(|()| match role {
                    Role::Admin | Role::Manager => {
                        let d = r.data();
                        ensure!(
                            d["merchant_id"].is_null(),
                            "aggregate names {}",
                            d["merchant_id"]
                        );
                        ensure!(
                            d["merchants"].as_u64() == Some(seen.len() as u64),
                            "aggregate of {} merchants, scope has {seen:?}",
                            d["merchants"]
                        );
                        let got = Wallet::from_json(d)?;
                        let sum = seen
                            .iter()
                            .fold(Wallet::default(), |a, s| a.add(w.wallet(s)));
                        ensure!(got == sum, "aggregate {got:?}, model of {seen:?} {sum:?}");
                        Ok(())
                    }
                    _ => w.check_wallet(r.data(), own_merchant.as_deref().unwrap()),
                });
            results.push((format!("{m}'s wallet in the aggregate"), res));
        }
        (Route::PaymentsCreate | Route::PayoutsCreate, Plain) => {
            let kind = if row.route == Route::PaymentsCreate {
                Kind::Payin
            } else {
                Kind::Payout
            };
            let before = w.recs.len();
            let (r, order, _) = w.create(kind, caller, Some(m), None).await;
            let mut res = outcome(&r, want, 201).and_then(|()| match want {
                Want::Data | Want::Ignored => {
                    let on = if want == Want::Data {
                        m.to_owned()
                    } else {
                        own_merchant.clone().unwrap()
                    };
                    ensure!(w.recs.len() == before + 1, "not recorded");
                    let rec = &w.recs[before];
                    ensure!(
                        rec.merchant == on && rec.creator == caller && rec.status == "pending",
                        "created on {}'s wallet by {} ({}), expected on {on}'s by {caller}",
                        rec.merchant,
                        rec.creator,
                        rec.status
                    );
                    w.check_record(r.data(), before)
                }
                _ => Ok(()),
            });
            // Never on the named merchant's wallet unless allowed there.
            if res.is_ok() && want != Want::Data {
                res = absent_on(w, kind, m, &order).await;
            }
            results.push((format!("{kind:?} on {m}'s wallet"), res));
        }
        (Route::PaymentsList | Route::PayoutsList, probe) => {
            let kind = if row.route == Route::PaymentsList {
                Kind::Payin
            } else {
                Kind::Payout
            };
            let (path, filter, targets) = match probe {
                All => (
                    format!("{template}?limit=500"),
                    None,
                    w.targets(caller, rel, kind),
                ),
                ByMerchant => (
                    format!("{template}?limit=500&merchant_id={}", w.id(m)),
                    Some(m.to_owned()),
                    w.targets(caller, rel, kind)
                        .into_iter()
                        .filter(|&i| w.recs[i].merchant == m)
                        .collect(),
                ),
                _ => {
                    let p = w.primary(role, rel, kind);
                    let rec = &w.recs[p];
                    (
                        format!(
                            "{template}?limit=500&merchant_id={}&order_id={}",
                            w.id(&rec.merchant),
                            rec.order
                        ),
                        Some(rec.merchant.clone()),
                        vec![p],
                    )
                }
            };
            let only = (probe == ByOrder).then(|| targets[0]);
            let r = w.call(caller, method, &path, None).await;
            let res = nonempty(&targets)
                .and_then(|()| outcome(&r, want, 200))
                .and_then(|()| {
                    if r.status != 200 {
                        return Ok(());
                    }
                    let expected: Vec<usize> = (0..w.recs.len())
                        .filter(|&i| {
                            let rec = &w.recs[i];
                            rec.kind == kind
                                && w.sees(caller, rec)
                                && filter.as_ref().is_none_or(|f| rec.merchant == *f)
                                && only.is_none_or(|o| o == i)
                        })
                        .collect();
                    let got = w.check_listing(r.data(), &expected)?;
                    presence(w, want, &targets, &got)
                });
            results.push((format!("{} {kind:?} records", targets.len()), res));
        }
        (Route::PaymentGet | Route::PayoutGet, Plain) => {
            let kind = if row.route == Route::PaymentGet {
                Kind::Payin
            } else {
                Kind::Payout
            };
            let targets = w.targets(caller, rel, kind);
            results.push(("targets".into(), nonempty(&targets)));
            for i in targets {
                let path = template.replace("{id}", &w.recs[i].id);
                let r = w.call(caller, method.clone(), &path, None).await;
                let res = outcome(&r, want, 200).and_then(|()| match want {
                    Want::Data => w.check_record(r.data(), i),
                    _ => Ok(()),
                });
                results.push((w.describe(i), res));
            }
        }
        (Route::PaymentStatus | Route::PayoutStatus, Plain) => {
            let kind = if row.route == Route::PaymentStatus {
                Kind::Payin
            } else {
                Kind::Payout
            };
            let i = w.primary(role, rel, kind);
            let before = w.recs[i].status.clone();
            let to = match (kind, rel) {
                (Kind::Payin, Rel::Team) => "failed",
                (Kind::Payin, _) => "completed",
                (Kind::Payout, Rel::Team) => "rejected",
                (Kind::Payout, _) => "processed",
            };
            let r = w.settle(caller, i, to).await;
            let mut res = outcome(&r, want, 200).and_then(|()| match want {
                Want::Data => {
                    ensure!(
                        before == "pending",
                        "TEST SETUP: the target was not pending"
                    );
                    ensure!(r.data()["status"] == to, "status {}", r.data()["status"]);
                    w.check_record(r.data(), i)
                }
                _ => Ok(()),
            });
            if res.is_ok() && want != Want::Data {
                let now = w.admin_status(i).await;
                res = if now == before {
                    Ok(())
                } else {
                    Err(format!("refused, yet the status moved {before} -> {now}"))
                };
            }
            results.push((w.describe(i), res));
        }
        (
            Route::ProfileGet
            | Route::ProfilePatch
            | Route::ProfileApiKey
            | Route::ProfileWebhookSecret,
            Plain,
        ) => {
            let target = if rel == Rel::Own { caller } else { users[0] };
            let query = if rel == Rel::Own {
                String::new()
            } else {
                format!("?user_id={}&merchant_id={}", w.id(target), w.id(m))
            };
            let path = format!("{template}{query}");
            let res = profile_cell(w, row.route, want, caller, target, method, &path).await;
            results.push((format!("user {target}"), res));
        }
        (Route::UsersList, All) => {
            let r = w
                .call(caller, method, &format!("{template}?limit=500"), None)
                .await;
            let res = outcome(&r, want, 200).and_then(|()| {
                if r.status != 200 {
                    return Ok(());
                }
                let items = r.data().as_array().ok_or("data is not a list")?;
                let got: BTreeSet<String> = items.iter().map(|u| w.label_of(&u["id"])).collect();
                let expected: BTreeSet<String> = w
                    .members
                    .iter()
                    .filter(|u| w.manages(caller, &u.label))
                    .map(|u| u.label.clone())
                    .collect();
                let leaked: Vec<&String> = got.difference(&expected).collect();
                ensure!(
                    leaked.is_empty(),
                    "listed outside the caller's subtree: {leaked:?}"
                );
                let missing: Vec<&String> = expected.difference(&got).collect();
                ensure!(missing.is_empty(), "missing from the listing: {missing:?}");
                ensure!(got.len() == items.len(), "duplicates in the listing");
                for u in items {
                    w.check_user(u, &w.label_of(&u["id"]))?;
                }
                for t in users {
                    ensure!(
                        got.contains(*t) == (want == Want::Data),
                        "{t} listed: {}",
                        got.contains(*t)
                    );
                }
                Ok(())
            });
            results.push((format!("users {users:?}"), res));
        }
        (Route::UsersCreate, Plain) => {
            let name = w.fresh("new-api-user");
            let body = json!({ "name": name, "role": "api_user", "parent_id": w.id(m) });
            let r = w.call(caller, method, template, Some(body)).await;
            let mut res = outcome(&r, want, 201);
            if res.is_ok() && r.status == 201 {
                let user = r.data()["user"].clone();
                let key = r.data()["api_key"].as_str().unwrap_or("").to_owned();
                w.members.push(Member {
                    label: name.clone(),
                    id: user["id"].as_str().unwrap_or("?").to_owned(),
                    key: key.clone(),
                    role: Role::ApiUser,
                    parent: Some(m.to_owned()),
                    name: name.clone(),
                });
                res = w.check_user(&user, &name);
                if res.is_ok() {
                    let p = w.call_key(&key, Method::GET, "/api/v1/profile", None).await;
                    res = outcome(&p, Want::Data, 200)
                        .and_then(|()| w.check_profile(p.data(), &name, &p.text));
                }
            } else if res.is_ok() {
                let all = w
                    .call("admin", Method::GET, "/api/v1/users?limit=500", None)
                    .await;
                let made = all
                    .data()
                    .as_array()
                    .is_some_and(|a| a.iter().any(|u| u["name"] == name.as_str()));
                if made {
                    res = Err(format!("refused, yet user {name} exists"));
                }
            }
            results.push((format!("an api_user under {m}"), res));
        }
        (Route::UserGet | Route::UserPatch | Route::UserApiKey, Plain) => {
            for &t in users {
                let res = user_cell(w, row.route, want, caller, t, method.clone(), template).await;
                results.push((format!("user {t}"), res));
            }
        }
        (Route::ReportSummary, probe) => {
            let (path, filter) = match probe {
                ByMerchant => (format!("{template}?merchant_id={}", w.id(m)), Some(m)),
                _ => (template.to_owned(), None),
            };
            let targets: Vec<usize> = [Kind::Payin, Kind::Payout]
                .into_iter()
                .flat_map(|k| w.targets(caller, rel, k))
                .filter(|&i| filter.is_none_or(|f| w.recs[i].merchant == f))
                .collect();
            let visible: Vec<usize> = (0..w.recs.len())
                .filter(|&i| {
                    w.sees(caller, &w.recs[i]) && filter.is_none_or(|f| w.recs[i].merchant == f)
                })
                .collect();
            let counted = targets.iter().all(|t| visible.contains(t));
            let none = targets.iter().all(|t| !visible.contains(t));
            let r = w.call(caller, method, &path, None).await;
            let res = nonempty(&targets)
                .and_then(|()| match want {
                    Want::Data => consistent(want, counted, "every target counted"),
                    Want::Hidden => consistent(want, !none, "a target counted"),
                    _ => Ok(()),
                })
                .and_then(|()| outcome(&r, want, 200))
                .and_then(|()| match r.status.as_u16() {
                    200 => w.check_summary(r.data(), &visible),
                    _ => Ok(()),
                });
            results.push((format!("{} records", targets.len()), res));
        }
        (Route::ReportLedger, ByMerchant) => {
            let path = format!("{template}?limit=500&merchant_id={}", w.id(m));
            let r = w.call(caller, method, &path, None).await;
            let creator = (role == Role::ApiUser).then_some(caller);
            let res = outcome(&r, want, 200).and_then(|()| match want {
                Want::Data => w.check_ledger(r.data(), m, creator),
                Want::Ignored => {
                    w.check_ledger(r.data(), own_merchant.as_deref().unwrap(), creator)
                }
                _ => Ok(()),
            });
            results.push((format!("{m}'s ledger"), res));
        }
        // Admin only (SPEC §11): the target merchant's accounts are listed,
        // and its transfers found by account.
        (Route::LedgerAccounts | Route::LedgerTransfers, ByMerchant) => {
            let account = format!("merchant:{}:available", w.id(m));
            let path = match row.route {
                Route::LedgerAccounts => template.to_owned(),
                _ => format!("{template}?limit=500&account={account}"),
            };
            let r = w.call(caller, method, &path, None).await;
            let res = outcome(&r, want, 200).and_then(|()| {
                if r.status != 200 {
                    return Ok(());
                }
                let items = match row.route {
                    Route::LedgerAccounts => r.data()["accounts"].clone(),
                    _ => r.data().clone(),
                };
                let found = items.as_array().is_some_and(|a| {
                    a.iter().any(|x| {
                        x["account"] == account.as_str()
                            || x["credit_account"] == account.as_str()
                            || x["debit_account"] == account.as_str()
                    })
                });
                ensure!(found, "{account} not in {path}: {}", r.text);
                Ok(())
            });
            results.push((format!("{m}'s accounts"), res));
        }
        // Statements (SPEC §15): the target merchant's, by `merchant_id`.
        (Route::StatementsList | Route::StatementsVerify | Route::StatementGet, ByMerchant) => {
            let path = format!(
                "{}?merchant_id={}",
                template.replace("{id}", "2026-11-30"),
                w.id(m)
            );
            let r = w.call(caller, method, &path, None).await;
            let res = outcome(&r, want, 200).and_then(|()| {
                if r.status != 200 {
                    return Ok(());
                }
                match row.route {
                    Route::StatementsList => {
                        ensure!(r.data().is_array(), "not a list: {}", r.text)
                    }
                    _ => ensure!(r.data()["ok"] == true, "verdict: {}", r.text),
                }
                Ok(())
            });
            results.push((format!("{m}'s statements"), res));
        }
        // The audit log: the target merchant's entries (its creation, the
        // manual settlement of its funding pay-in), and only its subtree's.
        (Route::AuditLog, ByMerchant) => {
            let id = w.id(m);
            let path = format!("{template}?limit=500&merchant_id={id}");
            let r = w.call(caller, method, &path, None).await;
            let res = outcome(&r, want, 200).and_then(|()| {
                if r.status != 200 {
                    return Ok(());
                }
                let items = r.data().as_array().cloned().unwrap_or_default();
                let actions = |target: &str| -> Vec<String> {
                    items
                        .iter()
                        .filter(|e| e["target_id"] == target)
                        .map(|e| e["action"].as_str().unwrap_or("").to_owned())
                        .collect()
                };
                ensure!(
                    actions(&id).contains(&"user.created".to_owned()),
                    "{m}'s creation not in {path}: {}",
                    r.text
                );
                ensure!(
                    items.iter().any(|e| e["action"] == "payment.status_set"),
                    "{m}'s manual settlement not in {path}: {}",
                    r.text
                );
                // Nothing about a merchant outside that subtree.
                let others: Vec<String> = w
                    .merchants()
                    .into_iter()
                    .filter(|o| o.as_str() != m)
                    .map(|o| w.id(&o))
                    .collect();
                ensure!(
                    items
                        .iter()
                        .all(|e| !others.iter().any(|o| e["target_id"] == o.as_str())),
                    "another merchant's entry in {path}: {}",
                    r.text
                );
                Ok(())
            });
            results.push((format!("{m}'s audit log"), res));
        }
        (Route::WebhookEvents, All) => {
            let events = w.events().await;
            let targets: Vec<usize> = (0..events.len())
                .filter(|&i| w.event_rel(caller, &events[i]) == rel)
                .collect();
            let r = w
                .call(caller, method, &format!("{template}?limit=500"), None)
                .await;
            let res = nonempty(&targets)
                .and_then(|()| outcome(&r, want, 200))
                .and_then(|()| {
                    if r.status != 200 {
                        return Ok(());
                    }
                    w.check_events(r.data(), caller, &events, &targets, want)
                });
            results.push((format!("{} events", targets.len()), res));
        }
        (Route::WebhookRedeliver, Plain) => {
            let events = w.events().await;
            let targets: Vec<usize> = (0..events.len())
                .filter(|&i| w.event_rel(caller, &events[i]) == rel)
                .take(5)
                .collect();
            results.push(("targets".into(), nonempty(&targets)));
            for i in targets {
                let ev = &events[i];
                let path = template.replace("{id}", &ev.id);
                let r = w.call(caller, method.clone(), &path, None).await;
                let res = outcome(&r, want, 202).and_then(|()| {
                    if want != Want::Data {
                        return Ok(());
                    }
                    let d = r.data();
                    ensure!(d["id"] == ev.id.as_str(), "redelivered {}", d["id"]);
                    ensure!(d["payload"] == ev.payload, "payload {}", d["payload"]);
                    ensure!(
                        role == Role::Admin || d.get("deliveries").is_none(),
                        "a non-admin sees every delivery: {d}"
                    );
                    Ok(())
                });
                results.push((format!("event {} to {:?}", ev.id, ev.recipients), res));
            }
        }
        // Admin only; the relation does not matter (the whole store is
        // copied). A refusal writes no directory.
        (Route::AdminBackup, Plain) => {
            let dir = tempfile::tempdir().map_err(|e| e.to_string());
            let res = match dir {
                Err(e) => Err(e),
                Ok(dir) => {
                    let to = dir.path().join("backup");
                    let body = json!({ "to": to.display().to_string() });
                    let r = w.call(caller, method, template, Some(body)).await;
                    outcome(&r, want, 200).and_then(|()| {
                        if want == Want::Data {
                            ensure!(
                                r.data()["to"] == to.display().to_string().as_str(),
                                "backup written to {}",
                                r.data()["to"]
                            );
                            ensure!(to.join("TIJORI_BACKUP").is_file(), "no manifest in {to:?}");
                        } else {
                            ensure!(!to.exists(), "a refused backup wrote {to:?}");
                        }
                        Ok(())
                    })
                }
            };
            results.push(("the store".into(), res));
        }
        (Route::WebhookReplay, Plain) => {
            let events = w.events().await;
            let addressed = events
                .iter()
                .filter(|e| role == Role::Admin || e.recipients.iter().any(|r| r == caller))
                .count() as u64;
            let body = match rel {
                Rel::Own => json!({}),
                _ => json!({ "recipient": w.id(users[0]), "user_id": w.id(users[0]) }),
            };
            let r = w.call(caller, method, template, Some(body)).await;
            let res = outcome(&r, want, 202).and_then(|()| {
                if r.status != 202 {
                    return Ok(());
                }
                let n = r.data()["replayed"].as_u64().ok_or("no replayed count")?;
                ensure!(
                    n <= addressed,
                    "replayed {n} events, the caller has only {addressed}"
                );
                Ok(())
            });
            results.push((format!("the events of {}", users[0]), res));
        }
        // Settlements (SPEC §14) without moving money, so the model of every
        // wallet stays exact: no merchant of the world has a settlement
        // account (an admin's on-demand settlement is `invalid_request`, after
        // the role check), and the probes by id name a settlement that does
        // not exist (tests/it/settlements.rs covers scopes on real ones).
        (Route::SettlementsCreate, Plain) => {
            let body = json!({ "merchant_id": w.id(m) });
            let r = w.call(caller, method, template, Some(body)).await;
            results.push((format!("{m}'s settlement"), outcome(&r, want, 201)));
        }
        (Route::SettlementsList, ByMerchant) => {
            let merchant = w.id(m);
            let path = format!("{template}?merchant_id={merchant}");
            let r = w.call(caller, method, &path, None).await;
            let res = outcome(&r, want, 200).and_then(|()| {
                let items = r.data().as_array().cloned().unwrap_or_default();
                ensure!(
                    r.status != 200 || items.iter().all(|s| s["merchant_id"] == merchant.as_str()),
                    "another merchant's settlements: {}",
                    r.text
                );
                Ok(())
            });
            results.push((format!("{m}'s settlements"), res));
        }
        (Route::SettlementGet | Route::SettlementStatus, Plain) => {
            let path = template.replace("{id}", "st_00000000000070008000000000000000");
            let body =
                (method == Method::POST).then(|| json!({ "status": "failed", "reason": "probe" }));
            let r = w.call(caller, method, &path, body).await;
            results.push(("an unknown settlement".into(), outcome(&r, want, 200)));
        }
        (
            Route::RefundsCreate | Route::RefundsList | Route::RefundGet | Route::RefundStatus,
            probe,
        ) => {
            let (target, res) = refund_cell(w, row.route, probe, role, rel, want, m).await;
            results.push((target, res));
        }
        (Route::PayoutCancel, Plain) => {
            // A fresh pending payout with the primary's creator and wallet
            // (so the same relation to the caller), then the caller cancels it.
            let p = w.primary(role, rel, Kind::Payout);
            let (creator, merchant) = (w.recs[p].creator.clone(), w.recs[p].merchant.clone());
            let (made, _, _) = w
                .create(Kind::Payout, &creator, Some(&merchant), None)
                .await;
            assert_eq!(
                made.status, 201,
                "TEST SETUP: {creator} pays out: {}",
                made.text
            );
            let i = w.recs.len() - 1;
            let path = template.replace("{id}", &w.recs[i].id);
            let r = w.call(caller, method, &path, Some(json!({}))).await;
            let mut res = outcome(&r, want, 200).and_then(|()| match want {
                Want::Data => {
                    ensure!(
                        r.data()["status"] == "cancelled",
                        "status {}",
                        r.data()["status"]
                    );
                    w.recs[i].status = "cancelled".to_owned();
                    w.check_record(r.data(), i)
                }
                _ => Ok(()),
            });
            if res.is_ok() && want != Want::Data {
                let now = w.admin_status(i).await;
                res = if now == "pending" {
                    Ok(())
                } else {
                    Err(format!("refused, yet the status moved to {now}"))
                };
            }
            results.push((w.describe(i), res));
        }
        (Route::PayoutsBatch, Plain) => {
            let order = w.fresh("BREF");
            let item = json!({
                "amount": money(1_000), "reference_id": order, "merchant_id": w.id(m),
                "beneficiary": { "name": "Ravi Kumar", "account_number": "123456789012", "ifsc": "HDFC0000001" },
            });
            let r = w
                .call(caller, method, template, Some(json!({ "payouts": [item] })))
                .await;
            let result = &r.data()["results"][0];
            let status = result["status"].as_u64().unwrap_or(0);
            let res = if r.status != 200 {
                Err(format!(
                    "the batch answered {}: {}",
                    r.status,
                    short(&r.text)
                ))
            } else {
                match want {
                    Want::Data => {
                        let d = &result["payout"];
                        if status == 201 {
                            w.recs.push(Rec {
                                kind: Kind::Payout,
                                id: d["id"].as_str().unwrap_or("?").to_owned(),
                                merchant: w.label_of(&d["merchant_id"]),
                                creator: w.label_of(&d["created_by"]),
                                paise: 1_000,
                                order: order.clone(),
                                status: d["status"].as_str().unwrap_or("?").to_owned(),
                            });
                            let i = w.recs.len() - 1;
                            let rec = &w.recs[i];
                            if rec.merchant == m && rec.creator == caller {
                                w.check_record(d, i)
                            } else {
                                Err(format!(
                                    "made on {}'s wallet by {}",
                                    rec.merchant, rec.creator
                                ))
                            }
                        } else {
                            Err(format!("item answered {status}: {}", short(&r.text)))
                        }
                    }
                    _ => {
                        let code = result["error"]["code"].as_str().unwrap_or("");
                        let fine = match want {
                            Want::Forbidden => status == 403 && code == "insufficient_permissions",
                            Want::NotFound => status == 404 && code == "not_found",
                            _ => false,
                        };
                        if fine {
                            absent_on(w, Kind::Payout, m, &order).await
                        } else {
                            Err(format!("expected {want}, item got {status} {code}"))
                        }
                    }
                }
            };
            results.push((format!("a batch item on {m}'s wallet"), res));
        }
        (route, probe) => panic!("no probe for {route:?} {probe:?}"),
    }

    let checks = results.len();
    let failures = results
        .into_iter()
        .filter_map(|(target, res)| {
            res.err()
                .map(|e| format!("{cell}, target {target}: expected {want}; {e}"))
        })
        .collect();
    (checks, failures)
}

/// The table and the test's own scope model must agree on a cell.
fn consistent(want: Want, in_scope: bool, what: &str) -> Result<(), String> {
    let expects = matches!(want, Want::Data);
    ensure!(
        expects == in_scope,
        "TEST TABLE: the cell says {want} but the scope model says {what}: {in_scope}"
    );
    Ok(())
}

fn nonempty(targets: &[usize]) -> Result<(), String> {
    ensure!(
        !targets.is_empty(),
        "TEST SETUP: the cell has no target record"
    );
    Ok(())
}

/// `Data`: every target listed; `Hidden`: none.
fn presence(w: &World, want: Want, targets: &[usize], got: &[String]) -> Result<(), String> {
    for &i in targets {
        let listed = got.contains(&w.recs[i].id);
        ensure!(
            listed == (want == Want::Data),
            "{} listed: {listed}",
            w.describe(i)
        );
    }
    Ok(())
}

/// After a refused (or redirected) creation: nothing with `order` exists
/// on `merchant`'s wallet.
async fn absent_on(w: &mut World, kind: Kind, merchant: &str, order: &str) -> Result<(), String> {
    let path = format!(
        "/api/v1/{}?limit=500&merchant_id={}",
        kind.path(),
        w.id(merchant)
    );
    let r = w.call("admin", Method::GET, &path, None).await;
    ensure!(r.status == 200, "admin listing: {}", r.text);
    let field = match kind {
        Kind::Payin => "order_id",
        Kind::Payout => "reference_id",
    };
    let found = r
        .data()
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v[field] == order));
    ensure!(!found, "{order} was created on {merchant}'s wallet");
    Ok(())
}

async fn profile_cell(
    w: &mut World,
    route: Route,
    want: Want,
    caller: &str,
    target: &str,
    method: Method,
    path: &str,
) -> Result<(), String> {
    let other = (target != caller).then_some(target);
    if want == Want::Invalid {
        let before = w.call(caller, Method::GET, "/api/v1/profile", None).await;
        let target_before = w.admin_user(target).await;
        let body = (route == Route::ProfilePatch).then(|| json!({ "name": "Changed" }));
        let r = w.call(caller, method, path, body).await;
        outcome(&r, want, 400)?;
        let after = w.call(caller, Method::GET, "/api/v1/profile", None).await;
        ensure!(
            after.status == 200,
            "the caller's key stopped working: {}",
            after.text
        );
        ensure!(
            after.data() == before.data(),
            "the caller's profile changed"
        );
        let target_after = w.admin_user(target).await;
        ensure!(target_after == target_before, "{target} changed");
        return Ok(());
    }
    match route {
        Route::ProfileGet => {
            let r = w.call(caller, method, path, None).await;
            outcome(&r, want, 200)?;
            w.check_profile(r.data(), caller, &r.text)
        }
        Route::ProfilePatch => {
            let name = w.fresh(&format!("{caller}-renamed"));
            let target_before = match other {
                Some(t) => Some(w.admin_user(t).await),
                None => None,
            };
            let r = w
                .call(caller, method, path, Some(json!({ "name": name })))
                .await;
            outcome(&r, want, 200)?;
            w.member_mut(caller).name = name;
            w.check_profile(r.data(), caller, &r.text)?;
            if let (Some(t), Some(before)) = (other, target_before) {
                let after = w.admin_user(t).await;
                ensure!(after == before, "{t} changed: {before} -> {after}");
            }
            Ok(())
        }
        Route::ProfileApiKey => {
            let old = w.key(caller);
            let r = w.call(caller, method, path, None).await;
            outcome(&r, want, 200)?;
            let key = r.data()["api_key"].as_str().unwrap_or("").to_owned();
            ensure!(
                key.starts_with("tjk_") && key != old,
                "api_key {}",
                r.data()["api_key"]
            );
            ensure!(
                r.data()["user"]["id"] == w.id(caller).as_str(),
                "regenerated the key of {}",
                w.label_of(&r.data()["user"]["id"])
            );
            w.member_mut(caller).key = key.clone();
            let stale = w.call_key(&old, Method::GET, "/api/v1/profile", None).await;
            ensure!(
                stale.status == 401 && stale.code() == "invalid_api_key",
                "the old key still answers {}",
                stale.status
            );
            let fresh = w.call(caller, Method::GET, "/api/v1/profile", None).await;
            outcome(&fresh, Want::Data, 200)?;
            w.check_profile(fresh.data(), caller, &fresh.text)?;
            if let Some(t) = other {
                let p = w.call(t, Method::GET, "/api/v1/profile", None).await;
                ensure!(p.status == 200, "{t}'s key stopped working: {}", p.text);
                w.check_profile(p.data(), t, &p.text)?;
            }
            Ok(())
        }
        _ => {
            let secret_of = |r: &Resp| r.data()["webhook_secret"].as_str().unwrap_or("").to_owned();
            let mine = w.call(caller, Method::GET, "/api/v1/profile", None).await;
            let mine = secret_of(&mine);
            let theirs = match other {
                Some(t) => {
                    let p = w.call(t, Method::GET, "/api/v1/profile", None).await;
                    Some(secret_of(&p))
                }
                None => None,
            };
            let r = w.call(caller, method, path, None).await;
            outcome(&r, want, 200)?;
            let now = w.call(caller, Method::GET, "/api/v1/profile", None).await;
            let now = secret_of(&now);
            if r.status == 200 {
                w.check_profile(r.data(), caller, &r.text)?;
                ensure!(
                    now != mine && r.data()["webhook_secret"] == now.as_str(),
                    "the secret did not rotate"
                );
            } else {
                ensure!(now == mine, "refused, yet the secret rotated");
            }
            if let (Some(t), Some(before)) = (other, theirs) {
                let p = w.call(t, Method::GET, "/api/v1/profile", None).await;
                ensure!(secret_of(&p) == before, "{t}'s secret rotated");
            }
            Ok(())
        }
    }
}

async fn user_cell(
    w: &mut World,
    route: Route,
    want: Want,
    caller: &str,
    target: &str,
    method: Method,
    template: &str,
) -> Result<(), String> {
    let path = template.replace("{id}", &w.id(target));
    match route {
        Route::UserGet => {
            let r = w.call(caller, method, &path, None).await;
            outcome(&r, want, 200)?;
            match want {
                Want::Data => w.check_user(r.data(), target),
                _ => Ok(()),
            }
        }
        Route::UserPatch => {
            let name = w.fresh(&format!("{target}-by-{caller}"));
            let before = w.admin_user(target).await;
            let r = w
                .call(caller, method, &path, Some(json!({ "name": name })))
                .await;
            outcome(&r, want, 200)?;
            let after = w.admin_user(target).await;
            if want == Want::Data {
                w.member_mut(target).name = name;
                w.check_user(r.data(), target)?;
                w.check_user(&after, target)
            } else {
                ensure!(after == before, "refused, yet {target} changed: {after}");
                Ok(())
            }
        }
        _ => {
            let old = w.key(target);
            let r = w.call(caller, method, &path, None).await;
            outcome(&r, want, 200)?;
            if want == Want::Data {
                let key = r.data()["api_key"].as_str().unwrap_or("").to_owned();
                ensure!(key.starts_with("tjk_") && key != old, "api_key {key:?}");
                w.check_user(&r.data()["user"], target)?;
                w.member_mut(target).key = key;
                let stale = w.call_key(&old, Method::GET, "/api/v1/profile", None).await;
                ensure!(
                    stale.status == 401,
                    "the old key still answers {}",
                    stale.status
                );
            }
            let p = w.call(target, Method::GET, "/api/v1/profile", None).await;
            ensure!(p.status == 200, "{target}'s current key fails: {}", p.text);
            w.check_profile(p.data(), target, &p.text)
        }
    }
}

// ---------------------------------------------------------------- the tests

#[tokio::test]
async fn authorization_matrix_cell_by_cell() {
    // Every /api/v1 route has a row, and only those.
    for route in Route::ALL {
        let rows = MATRIX.iter().filter(|r| r.route == route).count();
        assert_eq!(
            rows > 0,
            route.is_api(),
            "{route:?}: {rows} rows in the matrix"
        );
    }
    let started = Instant::now();
    let mut w = build_world().await;
    let setup_requests = w.requests;
    let mut cells = 0;
    let mut checks = 0;
    let mut failures = Vec::new();
    for row in MATRIX {
        for role in ROLES {
            for rel in RELS {
                let (n, f) = run_cell(&mut w, row, role, rel).await;
                cells += 1;
                checks += n;
                failures.extend(f);
            }
        }
    }
    // Open cells outside the table: the users endpoints never address the
    // caller itself (that is /profile's job), so a manager's or merchant's
    // own id is 404 there; the admin sees every user, itself included.
    for who in ["mgrA", "mA1"] {
        let path = format!("/api/v1/users/{}", w.id(who));
        let r = w.call(who, Method::GET, &path, None).await;
        checks += 1;
        if let Err(e) = outcome(&r, Want::NotFound, 200) {
            failures.push(format!("[UserGet on itself] {who}: {e}"));
        }
    }
    let path = format!("/api/v1/users/{}", w.id("admin"));
    let r = w.call("admin", Method::GET, &path, None).await;
    checks += 1;
    if let Err(e) = outcome(&r, Want::Data, 200).and_then(|()| w.check_user(r.data(), "admin")) {
        failures.push(format!("[UserGet on itself] admin: {e}"));
    }
    println!(
        "authz matrix: {} rows x 4 roles x 3 relations = {cells} cells, {checks} checks, \
         {} requests ({setup_requests} to build the world), {:.1?}",
        MATRIX.len(),
        w.requests,
        started.elapsed()
    );
    assert_eq!(cells, MATRIX.len() * 12);
    assert!(
        failures.is_empty(),
        "{} of {checks} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn refusal_code(status: u16) -> &'static str {
    if status == 403 {
        "insufficient_permissions"
    } else {
        "invalid_request"
    }
}

/// Fields a caller may not set are refused (403, or 400 where nobody may
/// change them through that route) and never applied: the user is read
/// again, whole, and must be unchanged. Positive controls show the same
/// fields do change for callers allowed to set them.
#[tokio::test]
async fn fields_a_caller_may_not_set_are_refused_and_never_applied() {
    let mut w = start_world(&[
        ("admin", "mgrA", Role::Manager, None),
        ("admin", "mgrB", Role::Manager, None),
        ("mgrA", "mA1", Role::Merchant, None),
        ("mgrB", "mB1", Role::Merchant, None),
        ("mA1", "uA1a", Role::ApiUser, None),
        ("mA1", "uA1b", Role::ApiUser, None),
    ])
    .await;
    let mut failures = Vec::new();

    // PATCH /users/:id that must be refused: (caller, target, status, body);
    // 403 insufficient_permissions for a field the caller's role may not
    // set, 400 invalid_request for one nobody may change.
    let mb1 = w.id("mB1");
    let mgrb = w.id("mgrB");
    let ua1b = w.id("uA1b");
    #[rustfmt::skip]
    let refused_patches: Vec<(&str, &str, u16, Value)> = vec![
        ("mA1",  "uA1a", 403, json!({ "role": "merchant" })),
        ("mA1",  "uA1a", 403, json!({ "name": "x", "role": "merchant" })),
        ("mgrA", "mA1",  403, json!({ "role": "manager" })),
        ("mgrA", "mA1",  403, json!({ "name": "x", "role": "admin" })),
        ("mA1",  "uA1a", 403, json!({ "payin_fee_bps": 100 })),
        ("mA1",  "uA1a", 403, json!({ "payout_fee": 5 })),
        ("mA1",  "uA1a", 403, json!({ "rate_limit_per_min": 10 })),
        ("mA1",  "uA1a", 403, json!({ "name": "x", "rate_limit_per_min": 10 })),
        ("mgrA", "mA1",  403, json!({ "rate_limit_per_min": 10 })),
        ("mgrA", "mA1",  403, json!({ "payin_fee_bps": 5, "rate_limit_per_min": 9 })),
        ("mgrA", "mA1",  400, json!({ "parent_id": mgrb })),
        ("mA1",  "uA1a", 400, json!({ "parent_id": ua1b })),
        ("mA1",  "uA1a", 400, json!({ "merchant_id": mb1 })),
    ];
    for (caller, target, status, body) in refused_patches {
        let code = refusal_code(status);
        let before = w.admin_user(target).await;
        let path = format!("/api/v1/users/{}", w.id(target));
        let r = w
            .call(caller, Method::PATCH, &path, Some(body.clone()))
            .await;
        let after = w.admin_user(target).await;
        if r.status != status || r.code() != code || after != before {
            failures.push(format!(
                "[PATCH /users/{target} as {caller} {body}] expected {status} {code} and no change; \
                 got {} {}; before {before}; after {after}",
                r.status,
                short(&r.text)
            ));
        }
    }

    // PATCH /profile: no role may change these through its profile.
    let forbidden_profile: [(&str, Value); 9] = [
        ("role", json!("admin")),
        ("status", json!("active")),
        ("status", json!("suspended")),
        ("payin_fee_bps", json!(1)),
        ("payout_fee", json!(1)),
        ("rate_limit_per_min", json!(100_000)),
        ("merchant_id", json!(mb1)),
        ("parent_id", json!(mgrb)),
        ("email", json!("x@example.com")),
    ];
    for who in ["admin", "mgrA", "mA1", "uA1a"] {
        for (field, value) in &forbidden_profile {
            let mut body = json!({ "name": "renamed through profile" });
            body[*field] = value.clone();
            let before = w.admin_user(who).await;
            let r = w
                .call(who, Method::PATCH, "/api/v1/profile", Some(body.clone()))
                .await;
            let after = w.admin_user(who).await;
            if r.status != 400 || r.code() != "invalid_request" || after != before {
                failures.push(format!(
                    "[PATCH /profile as {who} {body}] expected 400 invalid_request and no change; \
                     got {} {}; before {before}; after {after}",
                    r.status,
                    short(&r.text)
                ));
            }
        }
    }

    // POST /users that must be refused, and must create nobody.
    #[rustfmt::skip]
    let refused_creations: Vec<(&str, Value)> = vec![
        ("mA1",  json!({ "role": "api_user", "payin_fee_bps": 10 })),
        ("mA1",  json!({ "role": "api_user", "payout_fee": 3 })),
        ("mA1",  json!({ "role": "api_user", "rate_limit_per_min": 5 })),
        ("mgrA", json!({ "role": "merchant", "rate_limit_per_min": 5 })),
        ("mA1",  json!({ "role": "merchant" })),
        ("mA1",  json!({ "role": "manager" })),
        ("mA1",  json!({ "role": "admin" })),
        ("mgrA", json!({ "role": "manager" })),
        ("mgrA", json!({ "role": "admin" })),
        ("uA1a", json!({ "role": "api_user" })),
        ("mgrA", json!({ "role": "merchant", "parent_id": mgrb })),
        ("mgrA", json!({ "role": "api_user", "parent_id": mb1 })),
        ("mA1",  json!({ "role": "api_user", "parent_id": mb1 })),
    ];
    for (caller, mut body) in refused_creations {
        let name = w.fresh("refused");
        body["name"] = json!(name);
        let r = w
            .call(caller, Method::POST, "/api/v1/users", Some(body.clone()))
            .await;
        let all = w
            .call("admin", Method::GET, "/api/v1/users?limit=500", None)
            .await;
        let made = all
            .data()
            .as_array()
            .is_some_and(|a| a.iter().any(|u| u["name"] == name.as_str()));
        if r.status != 403 || r.code() != "insufficient_permissions" || made {
            failures.push(format!(
                "[POST /users as {caller} {body}] expected 403 insufficient_permissions and no user; \
                 got {} {}; created: {made}",
                r.status,
                short(&r.text)
            ));
        }
    }

    // Positive controls: the same fields change for callers allowed to.
    #[rustfmt::skip]
    let allowed: Vec<(&str, &str, Value)> = vec![
        ("mgrA",  "mA1",  json!({ "payin_fee_bps": 150, "payout_fee": 2 })),
        ("admin", "mA1",  json!({ "rate_limit_per_min": 1234 })),
        ("mA1",   "uA1b", json!({ "name": "renamed by its merchant" })),
        ("mgrA",  "uA1b", json!({ "name": "renamed by its manager" })),
    ];
    for (caller, target, body) in allowed {
        let path = format!("/api/v1/users/{}", w.id(target));
        let r = w
            .call(caller, Method::PATCH, &path, Some(body.clone()))
            .await;
        let after = w.admin_user(target).await;
        let applied =
            body.as_object().unwrap().iter().all(|(k, v)| {
                after[k] == *v || paise(&after[k]).is_some_and(|p| Some(p) == paise(v))
            });
        if r.status != 200 || !applied {
            failures.push(format!(
                "[PATCH /users/{target} as {caller} {body}] expected 200 and applied; got {} {}; after {after}",
                r.status,
                short(&r.text)
            ));
        }
    }
    let r = w
        .call(
            "mgrA",
            Method::POST,
            "/api/v1/users",
            Some(json!({ "name": "fee merchant", "role": "merchant", "payin_fee_bps": 25 })),
        )
        .await;
    if r.status != 201 || r.data()["user"]["payin_fee_bps"] != 25 {
        failures.push(format!(
            "[POST /users as mgrA with payin_fee_bps] expected 201 with the fee; got {} {}",
            r.status,
            short(&r.text)
        ));
    }
    // Suspend and reactivate: a merchant may, on its own api_user.
    let path = format!("/api/v1/users/{}", w.id("uA1b"));
    for (status, code) in [("suspended", 403), ("active", 200)] {
        let r = w
            .call(
                "mA1",
                Method::PATCH,
                &path,
                Some(json!({ "status": status })),
            )
            .await;
        let p = w.call("uA1b", Method::GET, "/api/v1/profile", None).await;
        let code_ok = code == 200 || p.code() == "account_suspended";
        if r.status != 200 || r.data()["status"] != status || p.status != code || !code_ok {
            failures.push(format!(
                "[PATCH /users/uA1b status {status} as mA1] got {} {}; the key then answers {} {}",
                r.status,
                short(&r.text),
                p.status,
                short(&p.text)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} field checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------- refunds

/// A refund (SPEC §12) has the scope of its pay-in: same merchant, and made
/// by the pay-in's creator it has the same creator. A cell's target refund
/// is made that way on the cell's target pay-in, which the admin completes
/// first (setup).
impl World {
    /// The cell's target pay-in, completed.
    async fn refundable_payin(&mut self, role: Role, rel: Rel) -> Option<usize> {
        let creator = PRIMARY_CREATOR[role as usize][rel as usize];
        let targets = self.targets(role.caller(), rel, Kind::Payin);
        let mut order: Vec<usize> = targets
            .iter()
            .copied()
            .filter(|&i| self.recs[i].creator == creator)
            .collect();
        order.extend(targets);
        let pick = order
            .iter()
            .copied()
            .find(|&i| self.recs[i].status == "completed")
            .or_else(|| {
                order
                    .iter()
                    .copied()
                    .find(|&i| self.recs[i].status == "pending")
            })?;
        if self.recs[pick].status == "pending" {
            let r = self.settle("admin", pick, "completed").await;
            if r.status != 200 {
                return None;
            }
        }
        Some(pick)
    }

    /// A new pending refund of 1.00 of pay-in `i`, made by its creator.
    async fn refund_by_creator(&mut self, i: usize) -> Result<String, String> {
        let creator = self.recs[i].creator.clone();
        let path = format!("/api/v1/payments/{}/refunds", self.recs[i].id);
        let body = json!({ "amount": "1", "reason": "authz matrix" });
        let r = self.call(&creator, Method::POST, &path, Some(body)).await;
        ensure!(
            r.status == 201,
            "TEST SETUP: {creator} refunds {}: {}",
            self.recs[i].id,
            short(&r.text)
        );
        Ok(r.data()["id"].as_str().unwrap_or("?").to_owned())
    }

    /// A record as the admin sees it (`payments/…` or `refunds/…`).
    async fn admin_get(&mut self, path: &str) -> Value {
        let r = self.call("admin", Method::GET, path, None).await;
        assert_eq!(r.status, 200, "admin reads {path}: {}", r.text);
        r.data().clone()
    }
}

async fn refund_cell(
    w: &mut World,
    route: Route,
    probe: Probe,
    role: Role,
    rel: Rel,
    want: Want,
    m: &str,
) -> (String, Result<(), String>) {
    let caller = role.caller();
    let Some(i) = w.refundable_payin(role, rel).await else {
        return (
            "a pay-in".into(),
            Err("TEST SETUP: no pay-in to refund".into()),
        );
    };
    let target = format!("refund of {}", w.describe(i));
    let payment_path = format!("/api/v1/payments/{}", w.recs[i].id);
    let res: Result<(), String> = match route {
        Route::RefundsCreate => {
            let before = w.admin_get(&payment_path).await["refunded_amount"].clone();
            let path = format!("{payment_path}/refunds");
            let body = json!({ "amount": "1" });
            let r = w.call(caller, Method::POST, &path, Some(body)).await;
            let after = w.admin_get(&payment_path).await["refunded_amount"].clone();
            outcome(&r, want, 201).and_then(|()| {
                if want == Want::Data {
                    ensure!(
                        r.data()["payment_id"] == w.recs[i].id.as_str()
                            && r.data()["created_by"] == w.id(caller).as_str(),
                        "refund {}",
                        short(&r.text)
                    );
                    ensure!(after != before, "refunded_amount stayed {before}");
                } else {
                    ensure!(
                        after == before,
                        "a refused refund moved refunded_amount {before} -> {after}"
                    );
                }
                Ok(())
            })
        }
        Route::RefundGet => match w.refund_by_creator(i).await {
            Err(e) => Err(e),
            Ok(id) => {
                let path = format!("/api/v1/refunds/{id}");
                let r = w.call(caller, Method::GET, &path, None).await;
                outcome(&r, want, 200).and_then(|()| {
                    ensure!(
                        want != Want::Data || r.data()["id"] == id.as_str(),
                        "got {}",
                        short(&r.text)
                    );
                    Ok(())
                })
            }
        },
        Route::RefundStatus => match w.refund_by_creator(i).await {
            Err(e) => Err(e),
            Ok(id) => {
                let path = format!("/api/v1/refunds/{id}/status");
                let body = json!({ "status": "processed", "reason": "authz matrix" });
                let r = w.call(caller, Method::POST, &path, Some(body)).await;
                let now = w.admin_get(&format!("/api/v1/refunds/{id}")).await;
                outcome(&r, want, 200).and_then(|()| {
                    let expect = if want == Want::Data {
                        "processed"
                    } else {
                        "pending"
                    };
                    ensure!(now["status"] == expect, "refund is {}", now["status"]);
                    Ok(())
                })
            }
        },
        _ => match w.refund_by_creator(i).await {
            Err(e) => Err(e),
            Ok(id) => {
                let path = match probe {
                    ByMerchant => format!("/api/v1/refunds?limit=500&merchant_id={}", w.id(m)),
                    _ => "/api/v1/refunds?limit=500".to_owned(),
                };
                let r = w.call(caller, Method::GET, &path, None).await;
                outcome(&r, want, 200).and_then(|()| {
                    if r.status != 200 {
                        return Ok(());
                    }
                    let items = r.data().as_array().ok_or("data is not a list")?;
                    for v in items {
                        let rec = Rec {
                            kind: Kind::Payin,
                            id: v["id"].as_str().unwrap_or("?").to_owned(),
                            merchant: w.label_of(&v["merchant_id"]),
                            creator: w.label_of(&v["created_by"]),
                            paise: 0,
                            order: String::new(),
                            status: String::new(),
                        };
                        let on_filter = probe != ByMerchant || rec.merchant == m;
                        ensure!(
                            w.sees(caller, &rec) && on_filter,
                            "listed outside the scope: {} (merchant {}, created_by {})",
                            rec.id,
                            rec.merchant,
                            rec.creator
                        );
                    }
                    let listed = items.iter().any(|v| v["id"] == id.as_str());
                    let expect =
                        want == Want::Data && (probe != ByMerchant || w.recs[i].merchant == m);
                    ensure!(listed == expect, "{id} listed: {listed}");
                    Ok(())
                })
            }
        },
    };
    (target, res)
}
