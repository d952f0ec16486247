//! The double-entry ledger's views (SPEC §11): a merchant's ledger (the
//! transfers touching its two accounts, JSON pages or a CSV of the whole
//! selected range) and, for admins, every account's balance with the
//! per-currency totals, and every transfer.

use super::payments::db;
use super::{Ctx, LIST_SCAN_MAX};
use crate::http::error::{self, Body};
use domain::{
    Account, AccountKind, Currency, Money, PaymentId, PayoutId, Posted, Rejection, Role, Timestamp,
    Transfer, TransferId, TransferKind, UserId,
};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use std::fmt::Write as _;
use storage::Listing;

/// Most rows one CSV download may hold, and most transfers it may read to
/// find them (a `to` far in the past reads everything newer first). A
/// larger range is refused with a clear error, never cut silently: narrow
/// `from`/`to`.
const CSV_ROWS_MAX: usize = 200_000;
const CSV_SCAN_MAX: usize = 10 * CSV_ROWS_MAX;

/// `from`/`to` (inclusive, exclusive) on a transfer's time.
#[derive(Clone, Copy, Default)]
struct Window {
    from: Option<Timestamp>,
    to: Option<Timestamp>,
}

impl Window {
    fn parse(ctx: &Ctx<'_>) -> Result<Window, Rejection> {
        // `from` after `to` selects nothing (as for the other lists).
        Ok(Window {
            from: ctx.query.timestamp("from")?,
            to: ctx.query.timestamp("to")?,
        })
    }

    fn before_start(&self, at: Timestamp) -> bool {
        self.from.is_some_and(|f| at < f)
    }

    fn after_end(&self, at: Timestamp) -> bool {
        self.to.is_some_and(|t| at >= t)
    }
}

/// `GET /reports/ledger`: newest first; `cursor` is the posting number to
/// continue below. api_users see only the transfers of their own records.
pub fn merchant_ledger(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let caller = &ctx.caller;
    let directory = &ctx.app.directory;
    let merchant: UserId = caller.acting_merchant(directory, ctx.query.get("merchant_id"), true)?;
    let window = Window::parse(ctx)?;
    let csv = match ctx.query.get("format") {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(Rejection::InvalidRequest("format is json or csv".into())),
    };
    let page_limit = ctx.query.limit()?;
    let limit = if csv { CSV_ROWS_MAX } else { page_limit };
    // With format=csv a cursor narrows the range to the lines below it; the
    // CSV still holds all of that range.
    let before = match ctx.query.get("cursor") {
        None => u64::MAX,
        // A posting number: 1 to 19 digits (the documented pattern; no
        // sign, which `u64::from_str` would take).
        Some(c) if (1..=19).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()) => c
            .parse::<u64>()
            .map_err(|_| Rejection::InvalidRequest("cursor is not valid".into()))?,
        Some(_) => return Err(Rejection::InvalidRequest("cursor is not valid".into())),
    };
    let scan_max = if csv { CSV_SCAN_MAX } else { LIST_SCAN_MAX };
    let too_large = || {
        Rejection::InvalidRequest(format!(
            "the selected range is too large for one CSV ({CSV_ROWS_MAX} transfers, \
             {CSV_SCAN_MAX} read): narrow from/to"
        ))
    };
    let store = &ctx.app.store;
    let mut shown: Vec<Transfer> = Vec::new();
    let mut position = before;
    let mut scanned = 0;
    let next_cursor = 'scan: loop {
        let batch = store.ledger_newest(&merchant, position, 512).map_err(db)?;
        if batch.is_empty() {
            break 'scan None;
        }
        for transfer in batch {
            if scanned == scan_max {
                if csv {
                    return Err(too_large());
                }
                break 'scan Some(position.to_string());
            }
            scanned += 1;
            position = transfer.posting;
            if window.before_start(transfer.created_at) {
                break 'scan None;
            }
            let listed = transfer.seq > 0
                && !window.after_end(transfer.created_at)
                && (caller.role() != Role::ApiUser || created_by_caller(ctx, &transfer)?);
            if !listed {
                continue;
            }
            if shown.len() == limit {
                if csv {
                    return Err(too_large());
                }
                // One more listed transfer exists: the next page starts below the last shown.
                break 'scan shown.last().map(|t| t.posting.to_string());
            }
            shown.push(transfer);
        }
    };
    if csv {
        return Ok(ledger_csv(&shown));
    }
    let items: Vec<Value> = shown.iter().map(ledger_json).collect();
    Ok(error::page(&items, limit, next_cursor))
}

fn created_by_caller(ctx: &Ctx<'_>, transfer: &Transfer) -> Result<bool, Rejection> {
    let me = ctx.caller.id();
    let store = &ctx.app.store;
    if let Ok(id) = transfer.reference.parse::<PaymentId>() {
        return Ok(store
            .payment(&id)
            .map_err(db)?
            .is_some_and(|p| p.created_by == me));
    }
    if let Ok(id) = transfer.reference.parse::<PayoutId>() {
        return Ok(store
            .payout(&id)
            .map_err(db)?
            .is_some_and(|p| p.created_by == me));
    }
    if let Ok(id) = transfer.reference.parse::<domain::RefundId>() {
        return Ok(store
            .refund(&id)
            .map_err(db)?
            .is_some_and(|r| r.created_by == me));
    }
    Ok(false)
}

/// A merchant's ledger line: the transfer, its `seq` and the balances after.
fn ledger_json(t: &Transfer) -> Value {
    json!({
        "id": t.id, "seq": t.seq, "merchant_id": t.merchant_id, "kind": t.kind.as_str(),
        "debit_account": t.debit_account(), "credit_account": t.credit_account(),
        "amount": t.amount, "currency": t.currency, "reference": t.reference,
        "available_after": t.available_after, "held_after": t.held_after,
        "created_at": t.created_at,
    })
}

fn ledger_csv(transfers: &[Transfer]) -> Response<Body> {
    let mut out = String::from(
        "seq,created_at,id,kind,debit_account,credit_account,amount,currency,available_after,held_after,reference\n",
    );
    for t in transfers {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{}",
            t.seq,
            t.created_at,
            t.id,
            t.kind.as_str(),
            t.debit_account(),
            t.credit_account(),
            t.amount,
            t.currency.as_str(),
            t.available_after,
            t.held_after,
            t.reference
        );
    }
    let mut response = error::text(StatusCode::OK, "text/csv; charset=utf-8", out);
    response.headers_mut().insert(
        "content-disposition",
        hyper::header::HeaderValue::from_static("attachment; filename=\"ledger.csv\""),
    );
    response
}

fn admin_only(ctx: &Ctx<'_>) -> Result<(), Rejection> {
    if ctx.caller.role() == Role::Admin {
        Ok(())
    } else {
        Err(Rejection::InsufficientPermissions)
    }
}

fn signed_money(paise: i128) -> Value {
    let magnitude = Money::from_paise(u64::try_from(paise.unsigned_abs()).unwrap_or(u64::MAX));
    if paise < 0 {
        // `-` followed by the exact decimal; parsed back as a JSON number.
        format!("-{magnitude}")
            .parse::<serde_json::Number>()
            .map_or(Value::Null, Value::Number)
    } else {
        json!(magnitude)
    }
}

fn account_json(account: &Account, currency: Currency, posted: &Posted) -> Value {
    json!({
        "account": account, "currency": currency,
        "normal": account.kind().normal().as_str(),
        "debits_posted": posted.debits, "credits_posted": posted.credits,
        "balance": signed_money(posted.balance()),
    })
}

/// `GET /ledger/accounts` (admin): every merchant's two accounts, the
/// platform accounts (the sum of every wallet's share), and per currency
/// the total of all balances, which the books require to be 0.
pub fn accounts(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    admin_only(ctx)?;
    let currency = Currency::Inr;
    let mut platform: [Posted; 7] = [Posted::default(); 7];
    let mut listed = Vec::new();
    let mut total: i128 = 0;
    let sum = |a: Money, b: Money| a.checked_add(b).ok_or(Rejection::DatabaseError);
    for merchant in ctx.app.directory.merchants() {
        let Some(wallet) = ctx.app.store.wallet(&merchant, currency).map_err(db)? else {
            continue;
        };
        for kind in AccountKind::ALL {
            let posted = wallet.posted[kind.index()];
            total += posted.balance();
            if kind.is_merchant() {
                listed.push(account_json(
                    &Account::of(kind, merchant),
                    currency,
                    &posted,
                ));
            } else {
                let p = &mut platform[kind.index()];
                p.debits = sum(p.debits, posted.debits)?;
                p.credits = sum(p.credits, posted.credits)?;
            }
        }
    }
    for kind in AccountKind::ALL {
        if let Some(account) = Account::platform(kind) {
            listed.push(account_json(&account, currency, &platform[kind.index()]));
        }
    }
    if total != 0 {
        tracing::error!(total, "ledger accounts do not sum to zero");
    }
    let body = json!({
        "accounts": listed,
        "totals": [{ "currency": currency, "balance": signed_money(total) }],
    });
    Ok(error::ok(StatusCode::OK, &body))
}

/// Filters of `GET /ledger/transfers`.
struct TransferFilters {
    account: Option<Account>,
    kind: Option<TransferKind>,
    reference: Option<String>,
    merchant: Option<UserId>,
}

impl TransferFilters {
    fn keeps(&self, t: &Transfer) -> bool {
        self.account.is_none_or(|a| t.touches(&a))
            && self.kind.is_none_or(|k| t.kind == k)
            && self.reference.as_deref().is_none_or(|r| t.reference == r)
            && self.merchant.is_none_or(|m| t.merchant_id == m)
    }
}

/// `GET /ledger/transfers` (admin): every transfer, newest first, with
/// filters `account`, `kind`, `reference`, `merchant_id`, `from`, `to`;
/// cursor pages.
pub fn transfers(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    admin_only(ctx)?;
    let window = Window::parse(ctx)?;
    let q = &ctx.query;
    let filters = TransferFilters {
        account: q
            .get("account")
            .map(|a| {
                a.parse::<Account>().map_err(|()| {
                    Rejection::InvalidRequest("account is not a ledger account".into())
                })
            })
            .transpose()?,
        kind: q
            .get("kind")
            .map(|k| {
                TransferKind::parse(k)
                    .ok_or_else(|| Rejection::InvalidRequest("kind is not a transfer kind".into()))
            })
            .transpose()?,
        reference: q.get("reference").map(str::to_owned),
        merchant: ctx
            .caller
            .merchant_filter(&ctx.app.directory, q.get("merchant_id"))?,
    };
    let limit = q.limit()?;
    let before = super::cursor::<TransferId>(q, |id| *id.as_bytes())?;
    let store = &ctx.app.store;
    let mut found = Vec::new();
    let page_window = storage::Window {
        from_ms: window.from.map(Timestamp::unix_ms),
        to_ms: window.to.map(Timestamp::unix_ms),
        before,
        limit,
        scan_max: LIST_SCAN_MAX,
    };
    let page = store
        .list(Listing::Transfers, page_window, |id| {
            let Some(t) = store.transfer(&TransferId::from_bytes(*id))? else {
                return Ok(false);
            };
            let keep = filters.keeps(&t);
            if keep {
                found.push(t);
            }
            Ok(keep)
        })
        .map_err(db)?;
    let items: Vec<Value> = found.iter().map(transfer_json).collect();
    let next = page.next.map(|id| TransferId::from_bytes(id).to_string());
    Ok(error::page(&items, limit, next))
}

/// A transfer as admins see it, with the merchant balances after it for
/// each merchant account it touched.
fn transfer_json(t: &Transfer) -> Value {
    let mut after = serde_json::Map::new();
    for account in [t.debit_account(), t.credit_account()] {
        let balance = match account.kind() {
            AccountKind::Available => t.available_after,
            AccountKind::Held => t.held_after,
            _ => continue,
        };
        after.insert(account.to_string(), json!(balance));
    }
    json!({
        "id": t.id, "debit_account": t.debit_account(), "credit_account": t.credit_account(),
        "amount": t.amount, "currency": t.currency, "kind": t.kind.as_str(),
        "reference": t.reference, "merchant_id": t.merchant_id,
        "seq": if t.seq > 0 { json!(t.seq) } else { Value::Null },
        "balances_after": after, "created_at": t.created_at,
    })
}
