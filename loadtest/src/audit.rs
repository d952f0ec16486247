//! The money audit. `observe` reads what the server holds through the API
//! (after waiting, bounded, for settlement and for the last webhooks);
//! `audit` is pure: it compares that with the harness's `Model` and lists
//! every `Problem`. The rules:
//!
//! - every acknowledged (201) pay-in and payout exists, on its merchant,
//!   with the amount sent and the fee the harness computed (bps half-up;
//!   the flat payout fee), and a terminal status the sandbox allows:
//!   fail@sandbox → `failed`, account 000000000000 → `rejected`, otherwise
//!   `completed`/`processed` (or `failed` too when the server runs a
//!   pay-in failure rate);
//! - a request that got no answer may exist (then it is audited like an
//!   acknowledged one) or not; anything else on the merchant is unexpected;
//! - payouts (SPEC §13) end in a status their requests allow: the rail's
//!   (`processed`, `rejected` for 000000000000, `reversed` for
//!   000000000001), `cancelled` after an acknowledged cancel, either after
//!   an unanswered one, never `cancelled` after a refused (409) one;
//!   `queued` only when the sweep after the load was turned off and the
//!   payout asked for it; processed ones carry a `utr`; a batch item sent
//!   invalid never exists;
//! - refunds (SPEC §12): each acknowledged one read back by
//!   `GET /refunds/:id` with its pay-in, amount, reason and `processed`
//!   (`failed` for fail@sandbox); each pay-in's `refunded_amount` is the
//!   sum of its refunds that did not fail, and never above its amount;
//! - each balance field equals the model: the model's amounts, with the
//!   statuses the server reports (missing records are reported and left
//!   out, so one loss is one problem);
//! - the merchant's ledger (SPEC §11: the transfers touching its two
//!   accounts) has `seq` 1..n without gaps; each line moves `available` /
//!   `held` by its amount (credit +, debit −; a line between the two
//!   accounts leaves their sum alone), its `available_after`/`held_after`
//!   are those running balances, the last one is the balance, and the
//!   lines are exactly the transfers the records imply (kind, accounts,
//!   amount; SPEC §11 by final status: refund_hold + refund_settle |
//!   refund_release; payout_hold + payout_settle + payout_fee (fee > 0)
//!   [+ payout_reverse]; payout_hold + payout_release for rejected and
//!   cancelled, nothing for one cancelled while still queued);
//! - the books (admin `GET /ledger/accounts`): every currency's total is
//!   exactly 0, each account's balance is credits − debits posted, each
//!   merchant's two account balances are what its `GET /balance` shows, and
//!   what the merchant's ledger debits and credits to them is what the
//!   accounts have posted;
//! - with the webhook sink: signatures verify, and every settled record
//!   (pay-in, payout, refund) has an event for each status it must have
//!   announced (a reversed payout: processed and reversed), with its amount,
//!   and none for a status it never had.

use crate::client::Api;
use crate::model::{Cancel, Model, Payin, Payout, Refund};
use crate::money;
use crate::sink::{Sink, SinkLog};
use hyper::Method;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenPayment {
    pub id: String,
    pub order_id: String,
    pub merchant_id: String,
    pub amount: Option<u64>,
    pub fee: Option<u64>,
    pub net_amount: Option<u64>,
    pub status: String,
    /// `refunded_amount` (SPEC §12); None when absent or unreadable.
    pub refunded_amount: Option<u64>,
    /// The record has a `refunded_amount` field at all.
    pub has_refunded_amount: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenPayout {
    pub id: String,
    pub reference_id: String,
    pub merchant_id: String,
    pub amount: Option<u64>,
    pub fee: Option<u64>,
    pub status: String,
    /// The bank reference of a processed payout (SPEC §13).
    pub utr: Option<String>,
}

/// A refund (SPEC §12) as the server shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenRefund {
    pub id: String,
    pub payment_id: String,
    pub merchant_id: String,
    pub amount: Option<u64>,
    pub status: String,
    pub reason: String,
}

/// What the sweep after the load did with the payouts still `queued`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Queued payouts of the harness the sweep asked to cancel.
    pub found: u64,
    pub cancelled: u64,
    /// Answered other than 2xx (the payout left the queue first).
    pub refused: u64,
    pub unknown: u64,
}

/// `GET /balance`, in paise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeenBalance {
    pub available: Option<u64>,
    pub held: Option<u64>,
    pub pending_payins: Option<u64>,
    pub total_payins: Option<u64>,
    pub total_payouts: Option<u64>,
    pub total_fees: Option<u64>,
}

/// One line of a merchant's ledger (`GET /reports/ledger`): a transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenEntry {
    /// `tr_…`.
    pub id: String,
    pub seq: u64,
    pub kind: String,
    pub debit_account: String,
    pub credit_account: String,
    pub amount: Option<u64>,
    pub available_after: Option<u64>,
    pub held_after: Option<u64>,
    pub reference: String,
}

/// One account of the books (admin `GET /ledger/accounts`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenAccount {
    pub account: String,
    pub currency: String,
    /// `debit` or `credit`.
    pub normal: String,
    pub debits_posted: Option<u64>,
    pub credits_posted: Option<u64>,
    /// Signed paise (the `rail:` accounts are negative).
    pub balance: Option<i128>,
    /// The balance exactly as the server wrote it, for reports.
    pub balance_text: String,
}

/// One currency's sum of all account balances, which must be exactly 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenTotal {
    pub currency: String,
    pub balance: Option<i128>,
    pub balance_text: String,
}

/// What the admin `GET /ledger/accounts` showed after the run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeenBooks {
    pub accounts: Vec<SeenAccount>,
    pub totals: Vec<SeenTotal>,
    /// The read failed (the books then cannot be audited).
    pub fetch_error: Option<String>,
}

/// What the server holds for one merchant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeenMerchant {
    pub payments: Vec<SeenPayment>,
    pub payouts: Vec<SeenPayout>,
    /// `GET /refunds` (all of the merchant's).
    pub refunds: Vec<SeenRefund>,
    /// `GET /refunds/:id` of each acknowledged refund (a 404 is left out).
    pub refund_lookups: Vec<SeenRefund>,
    pub balance: SeenBalance,
    pub ledger: Vec<SeenEntry>,
    /// Reads that failed (the merchant then cannot be audited).
    pub fetch_errors: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Observed {
    /// Aligned with `Model::merchants`.
    pub merchants: Vec<SeenMerchant>,
    /// The books, read with the admin key after the merchants.
    pub books: SeenBooks,
    /// Settlement finished (no pending pay-ins, nothing held) in time.
    pub settled: bool,
    pub settle_wait: Duration,
    /// The payouts cancelled because they were still queued after the load.
    pub swept: Sweep,
    pub webhooks: Option<SinkLog>,
    pub webhook_wait: Duration,
}

/// One disagreement between the model and the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    Fetch {
        merchant: usize,
        error: String,
    },
    MissingPayment {
        merchant: usize,
        id: String,
    },
    PaymentField {
        id: String,
        field: &'static str,
        expected: String,
        actual: String,
    },
    PaymentStatus {
        id: String,
        expected: &'static str,
        actual: String,
    },
    UnexpectedPayment {
        merchant: usize,
        id: String,
        order_id: String,
    },
    MissingPayout {
        merchant: usize,
        id: String,
    },
    PayoutField {
        id: String,
        field: &'static str,
        expected: String,
        actual: String,
    },
    /// The final status is not one the operations allow (`expected`
    /// lists those, "a or b").
    PayoutStatus {
        id: String,
        expected: String,
        actual: String,
    },
    UnexpectedPayout {
        merchant: usize,
        id: String,
        reference_id: String,
    },
    /// A batch item sent with an invalid beneficiary exists on the server.
    InvalidPayoutAccepted {
        merchant: usize,
        id: String,
        reference_id: String,
    },
    /// An acknowledged refund that `GET /refunds/:id` does not find.
    MissingRefund {
        merchant: usize,
        id: String,
    },
    RefundField {
        id: String,
        field: &'static str,
        expected: String,
        actual: String,
    },
    RefundStatus {
        id: String,
        expected: &'static str,
        actual: String,
    },
    /// A refund on the merchant that the harness never sent (or whose
    /// unanswered request does not match it).
    UnexpectedRefund {
        merchant: usize,
        id: String,
        payment_id: String,
    },
    /// A pay-in's `refunded_amount` is not the sum of its refunds that did
    /// not fail.
    RefundedAmount {
        payment_id: String,
        expected: String,
        actual: String,
    },
    /// A pay-in's refunds that did not fail add up to more than its amount.
    RefundsExceedPayment {
        payment_id: String,
        refunded: String,
        amount: String,
    },
    Balance {
        merchant: usize,
        field: &'static str,
        expected: i128,
        actual: Option<u64>,
    },
    Ledger {
        merchant: usize,
        detail: String,
    },
    /// A currency's accounts do not sum to exactly 0 (`balance` as the
    /// server wrote it).
    LedgerTotal {
        currency: String,
        balance: String,
    },
    /// The books as a whole could not be read or are incomplete.
    LedgerAccounts {
        detail: String,
    },
    /// One account of the books is inconsistent in itself or with the
    /// merchant ledger that posts to it.
    LedgerAccount {
        account: String,
        detail: String,
    },
    /// A merchant account's balance in the books differs from `GET /balance`.
    AccountBalance {
        merchant: usize,
        account: String,
        field: &'static str,
        books: String,
        balance: Option<u64>,
    },
    WebhookSignature {
        event_id: String,
    },
    WebhookLost {
        id: String,
        status: String,
    },
    WebhookMismatch {
        id: String,
        detail: String,
    },
}

impl Problem {
    /// A short label for counting problems by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::Fetch { .. } => "fetch",
            Problem::MissingPayment { .. } => "missing_payment",
            Problem::PaymentField { .. } => "payment_field",
            Problem::PaymentStatus { .. } => "payment_status",
            Problem::UnexpectedPayment { .. } => "unexpected_payment",
            Problem::MissingPayout { .. } => "missing_payout",
            Problem::PayoutField { .. } => "payout_field",
            Problem::PayoutStatus { .. } => "payout_status",
            Problem::UnexpectedPayout { .. } => "unexpected_payout",
            Problem::InvalidPayoutAccepted { .. } => "invalid_payout_accepted",
            Problem::MissingRefund { .. } => "missing_refund",
            Problem::RefundField { .. } => "refund_field",
            Problem::RefundStatus { .. } => "refund_status",
            Problem::UnexpectedRefund { .. } => "unexpected_refund",
            Problem::RefundedAmount { .. } => "refunded_amount",
            Problem::RefundsExceedPayment { .. } => "refunds_exceed_payment",
            Problem::Balance { .. } => "balance",
            Problem::Ledger { .. } => "ledger",
            Problem::LedgerTotal { .. } => "ledger_total",
            Problem::LedgerAccounts { .. } => "ledger_accounts",
            Problem::LedgerAccount { .. } => "ledger_account",
            Problem::AccountBalance { .. } => "account_balance",
            Problem::WebhookSignature { .. } => "webhook_signature",
            Problem::WebhookLost { .. } => "webhook_lost",
            Problem::WebhookMismatch { .. } => "webhook_mismatch",
        }
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "none".into(), money::render)
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Fetch { merchant, error } => write!(f, "merchant #{merchant}: could not read: {error}"),
            Problem::MissingPayment { merchant, id } => {
                write!(f, "merchant #{merchant}: acknowledged pay-in {id} is not on the server")
            }
            Problem::PaymentField { id, field, expected, actual } => {
                write!(f, "pay-in {id}: {field} is {actual}, expected {expected}")
            }
            Problem::PaymentStatus { id, expected, actual } => {
                write!(f, "pay-in {id}: status {actual}, expected {expected}")
            }
            Problem::UnexpectedPayment { merchant, id, order_id } => write!(
                f,
                "merchant #{merchant}: pay-in {id} (order {order_id}) was never acknowledged or sent"
            ),
            Problem::MissingPayout { merchant, id } => {
                write!(f, "merchant #{merchant}: acknowledged payout {id} is not on the server")
            }
            Problem::PayoutField { id, field, expected, actual } => {
                write!(f, "payout {id}: {field} is {actual}, expected {expected}")
            }
            Problem::PayoutStatus { id, expected, actual } => {
                write!(f, "payout {id}: status {actual}, expected {expected}")
            }
            Problem::UnexpectedPayout { merchant, id, reference_id } => write!(
                f,
                "merchant #{merchant}: payout {id} (reference {reference_id}) was never acknowledged or sent"
            ),
            Problem::InvalidPayoutAccepted { merchant, id, reference_id } => write!(
                f,
                "merchant #{merchant}: payout {id} (reference {reference_id}) exists, but its batch item had an invalid IFSC and must have been refused"
            ),
            Problem::MissingRefund { merchant, id } => {
                write!(f, "merchant #{merchant}: acknowledged refund {id} is not on the server")
            }
            Problem::RefundField { id, field, expected, actual } => {
                write!(f, "refund {id}: {field} is {actual}, expected {expected}")
            }
            Problem::RefundStatus { id, expected, actual } => {
                write!(f, "refund {id}: status {actual}, expected {expected}")
            }
            Problem::UnexpectedRefund { merchant, id, payment_id } => write!(
                f,
                "merchant #{merchant}: refund {id} (of {payment_id}) was never acknowledged or sent"
            ),
            Problem::RefundedAmount { payment_id, expected, actual } => write!(
                f,
                "pay-in {payment_id}: refunded_amount is {actual}, its refunds that did not fail add up to {expected}"
            ),
            Problem::RefundsExceedPayment { payment_id, refunded, amount } => write!(
                f,
                "pay-in {payment_id}: refunds that did not fail add up to {refunded}, more than its amount {amount}"
            ),
            Problem::Balance { merchant, field, expected, actual } => write!(
                f,
                "merchant #{merchant}: balance {field} is {}, the model says {}",
                opt(*actual),
                money::render_signed(*expected)
            ),
            Problem::Ledger { merchant, detail } => write!(f, "merchant #{merchant}: ledger: {detail}"),
            Problem::LedgerTotal { currency, balance } => write!(
                f,
                "books: the {currency} accounts sum to {balance}, they must sum to exactly 0"
            ),
            Problem::LedgerAccounts { detail } => write!(f, "books: {detail}"),
            Problem::LedgerAccount { account, detail } => {
                write!(f, "books: account {account}: {detail}")
            }
            Problem::AccountBalance {
                merchant,
                account,
                field,
                books,
                balance,
            } => write!(
                f,
                "merchant #{merchant}: account {account} has balance {books} in the books, GET /balance says {field} {}",
                opt(*balance)
            ),
            Problem::WebhookSignature { event_id } => {
                write!(f, "webhook {event_id}: signature did not verify")
            }
            Problem::WebhookLost { id, status } => {
                write!(f, "{id} ({status}): no webhook event arrived")
            }
            Problem::WebhookMismatch { id, detail } => write!(f, "webhook for {id}: {detail}"),
        }
    }
}

/// Counts of what the audit looked at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    pub payins: u64,
    pub payouts: u64,
    pub refunds: u64,
    /// Payouts the harness asked to cancel (during the load or after it).
    pub cancels: u64,
    /// Unanswered requests found on the server (and audited).
    pub adopted: u64,
    /// Unanswered requests not on the server (nothing happened).
    pub absent: u64,
    pub statuses: BTreeMap<String, u64>,
    pub ledger_entries: u64,
    /// Accounts of the books looked at.
    pub ledger_accounts: u64,
    pub merchants: u64,
}

#[derive(Clone, Debug)]
pub struct AuditReport {
    pub problems: Vec<Problem>,
    pub checked: Checked,
    pub settled: bool,
}

impl AuditReport {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn by_kind(&self) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        for p in &self.problems {
            *out.entry(p.kind()).or_insert(0) += 1;
        }
        out
    }
}

/// Running expectation of one merchant's balance, in signed paise.
#[derive(Default)]
struct Expect {
    available: i128,
    held: i128,
    pending_payins: i128,
    total_payins: i128,
    total_payouts: i128,
    total_fees: i128,
    /// Processed refunds: SPEC §12 does not say whether `total_payins`
    /// counts them off, so the total is accepted with or without them.
    refunded: i128,
    /// Reversed payouts' amounts: likewise for `total_payouts`.
    reversed: i128,
}

fn field(expected: u64, actual: Option<u64>) -> Option<(String, String)> {
    (actual != Some(expected)).then(|| (money::render(expected), opt(actual)))
}

/// Compares the server's state with the model. Pure: no I/O.
pub fn audit(model: &Model, observed: &Observed) -> AuditReport {
    let mut problems = Vec::new();
    let mut checked = Checked::default();
    for (i, mm) in model.merchants.iter().enumerate() {
        let Some(seen) = observed.merchants.get(i) else {
            problems.push(Problem::Fetch {
                merchant: i,
                error: "not observed".into(),
            });
            continue;
        };
        if !seen.fetch_errors.is_empty() {
            problems.extend(seen.fetch_errors.iter().map(|e| Problem::Fetch {
                merchant: i,
                error: e.clone(),
            }));
            continue;
        }
        checked.merchants += 1;
        let mut cx = Cx {
            merchant_id: &mm.id,
            failures_allowed: model.payin_failures_allowed,
            v2: model.v2,
            queued_may_remain: model.queued_may_remain,
            expect: Expect::default(),
            checked: &mut checked,
            problems: &mut problems,
        };
        let payments: HashMap<&str, &SeenPayment> =
            seen.payments.iter().map(|p| (p.id.as_str(), p)).collect();
        let by_order: HashMap<&str, &SeenPayment> = seen
            .payments
            .iter()
            .map(|p| (p.order_id.as_str(), p))
            .collect();
        let mut accounted: HashSet<&str> = HashSet::new();
        for p in &mm.payins {
            cx.checked.payins += 1;
            match payments.get(p.id.as_str()) {
                None => cx.problems.push(Problem::MissingPayment {
                    merchant: i,
                    id: p.id.clone(),
                }),
                Some(s) => {
                    accounted.insert(s.id.as_str());
                    check_payin(&mut cx, p, s);
                }
            }
        }
        for p in &mm.uncertain_payins {
            match by_order.get(p.order_id.as_str()) {
                Some(s) if !accounted.contains(s.id.as_str()) => {
                    cx.checked.adopted += 1;
                    accounted.insert(s.id.as_str());
                    check_payin(&mut cx, p, s);
                }
                _ => cx.checked.absent += 1,
            }
        }
        for s in &seen.payments {
            if !accounted.contains(s.id.as_str()) {
                cx.problems.push(Problem::UnexpectedPayment {
                    merchant: i,
                    id: s.id.clone(),
                    order_id: s.order_id.clone(),
                });
            }
        }

        let payouts: HashMap<&str, &SeenPayout> =
            seen.payouts.iter().map(|p| (p.id.as_str(), p)).collect();
        let by_reference: HashMap<&str, &SeenPayout> = seen
            .payouts
            .iter()
            .map(|p| (p.reference_id.as_str(), p))
            .collect();
        let mut accounted: HashSet<&str> = HashSet::new();
        for p in &mm.payouts {
            cx.checked.payouts += 1;
            match payouts.get(p.id.as_str()) {
                None => cx.problems.push(Problem::MissingPayout {
                    merchant: i,
                    id: p.id.clone(),
                }),
                Some(s) => {
                    accounted.insert(s.id.as_str());
                    check_payout(&mut cx, p, s);
                }
            }
        }
        for p in &mm.uncertain_payouts {
            match by_reference.get(p.reference_id.as_str()) {
                Some(s) if !accounted.contains(s.id.as_str()) => {
                    cx.checked.adopted += 1;
                    accounted.insert(s.id.as_str());
                    check_payout(&mut cx, p, s);
                }
                _ => cx.checked.absent += 1,
            }
        }
        let invalid: HashSet<&str> = mm.invalid_payouts.iter().map(String::as_str).collect();
        for s in &seen.payouts {
            if invalid.contains(s.reference_id.as_str()) {
                cx.problems.push(Problem::InvalidPayoutAccepted {
                    merchant: i,
                    id: s.id.clone(),
                    reference_id: s.reference_id.clone(),
                });
            } else if !accounted.contains(s.id.as_str()) {
                cx.problems.push(Problem::UnexpectedPayout {
                    merchant: i,
                    id: s.id.clone(),
                    reference_id: s.reference_id.clone(),
                });
            }
        }
        audit_refunds(&mut cx, i, mm, seen);

        let expect = cx.expect;
        let b = &seen.balance;
        for (name, expected, or_else, actual) in [
            ("available", expect.available, 0, b.available),
            ("held", expect.held, 0, b.held),
            ("pending_payins", expect.pending_payins, 0, b.pending_payins),
            (
                "total_payins",
                expect.total_payins,
                expect.refunded,
                b.total_payins,
            ),
            (
                "total_payouts",
                expect.total_payouts,
                expect.reversed,
                b.total_payouts,
            ),
            ("total_fees", expect.total_fees, 0, b.total_fees),
        ] {
            // `or_else`: an amount the total may also leave out.
            let actual_i = actual.map(i128::from);
            if actual_i != Some(expected) && actual_i != Some(expected - or_else) {
                problems.push(Problem::Balance {
                    merchant: i,
                    field: name,
                    expected,
                    actual,
                });
            }
        }
        checked.ledger_entries += seen.ledger.len() as u64;
        // Payouts answered `pending` were held at once: cancelled, they
        // must show the hold and its release (a queued one may not).
        let held_at_once: HashSet<&str> = mm
            .payouts
            .iter()
            .filter(|p| p.created_status == "pending")
            .map(|p| p.id.as_str())
            .collect();
        audit_ledger(i, &mm.id, seen, &held_at_once, &mut problems);
    }
    audit_books(model, observed, &mut checked, &mut problems);
    if model.webhooks_expected {
        match &observed.webhooks {
            Some(log) => audit_webhooks(model, observed, log, &mut problems),
            None => problems.push(Problem::WebhookMismatch {
                id: "-".into(),
                detail: "webhooks were expected but no sink log was taken".into(),
            }),
        }
    }
    AuditReport {
        problems,
        checked,
        settled: observed.settled,
    }
}

/// The per-merchant audit context.
struct Cx<'a> {
    merchant_id: &'a str,
    failures_allowed: bool,
    /// SPEC §12–13 are expected of the server.
    v2: bool,
    queued_may_remain: bool,
    expect: Expect,
    checked: &'a mut Checked,
    problems: &'a mut Vec<Problem>,
}

fn check_payin(cx: &mut Cx<'_>, p: &Payin, s: &SeenPayment) {
    let mut wrong = |field: &'static str, expected: String, actual: String| {
        cx.problems.push(Problem::PaymentField {
            id: s.id.clone(),
            field,
            expected,
            actual,
        })
    };
    if s.merchant_id != cx.merchant_id {
        wrong(
            "merchant_id",
            cx.merchant_id.to_owned(),
            s.merchant_id.clone(),
        );
    }
    if s.order_id != p.order_id {
        wrong("order_id", p.order_id.clone(), s.order_id.clone());
    }
    if let Some((e, a)) = field(p.amount, s.amount) {
        wrong("amount", e, a);
    }
    if let Some((e, a)) = field(p.fee, s.fee) {
        wrong("fee", e, a);
    }
    // The server's own arithmetic: net = amount − fee of its record.
    let net = s.amount.zip(s.fee).and_then(|(a, f)| a.checked_sub(f));
    if net.is_none() || s.net_amount != net {
        wrong("net_amount", opt(net), opt(s.net_amount));
    }
    *cx.checked
        .statuses
        .entry(format!("payin_{}", s.status))
        .or_insert(0) += 1;
    let amount = i128::from(p.amount);
    let fee = i128::from(p.fee);
    let status_problem = |expected: &'static str| Problem::PaymentStatus {
        id: s.id.clone(),
        expected,
        actual: s.status.clone(),
    };
    match s.status.as_str() {
        "completed" => {
            if p.expect_fail {
                cx.problems.push(status_problem("failed"));
            }
            cx.expect.available += amount - fee;
            cx.expect.total_payins += amount;
            cx.expect.total_fees += fee;
        }
        "failed" => {
            if !p.expect_fail && !cx.failures_allowed {
                cx.problems.push(status_problem("completed"));
            }
        }
        "pending" => {
            cx.problems.push(status_problem(if p.expect_fail {
                "failed"
            } else {
                "completed"
            }));
            cx.expect.pending_payins += amount;
        }
        _ => cx.problems.push(status_problem("completed or failed")),
    }
}

fn check_payout(cx: &mut Cx<'_>, p: &Payout, s: &SeenPayout) {
    let mut wrong = |field: &'static str, expected: String, actual: String| {
        cx.problems.push(Problem::PayoutField {
            id: s.id.clone(),
            field,
            expected,
            actual,
        })
    };
    if s.merchant_id != cx.merchant_id {
        wrong(
            "merchant_id",
            cx.merchant_id.to_owned(),
            s.merchant_id.clone(),
        );
    }
    if s.reference_id != p.reference_id {
        wrong(
            "reference_id",
            p.reference_id.clone(),
            s.reference_id.clone(),
        );
    }
    if let Some((e, a)) = field(p.amount, s.amount) {
        wrong("amount", e, a);
    }
    if let Some((e, a)) = field(p.fee, s.fee) {
        wrong("fee", e, a);
    }
    if !p.created_status.is_empty() {
        let allowed: &[&str] = if p.queue_if_low_balance {
            &["pending", "queued"]
        } else {
            &["pending"]
        };
        if !allowed.contains(&p.created_status.as_str()) {
            wrong(
                "status on creation",
                allowed.join(" or "),
                p.created_status.clone(),
            );
        }
    }
    if cx.v2
        && matches!(s.status.as_str(), "processed" | "reversed")
        && s.utr.as_deref().is_none_or(str::is_empty)
    {
        wrong("utr", "a bank reference".into(), "none".into());
    }
    *cx.checked
        .statuses
        .entry(format!("payout_{}", s.status))
        .or_insert(0) += 1;
    if p.cancel != Cancel::NotSent {
        cx.checked.cancels += 1;
    }
    let amount = i128::from(p.amount);
    let fee = i128::from(p.fee);
    let allowed = p.allowed_statuses(cx.queued_may_remain);
    if !allowed.contains(&s.status.as_str()) {
        cx.problems.push(Problem::PayoutStatus {
            id: s.id.clone(),
            expected: allowed.join(" or "),
            actual: s.status.clone(),
        });
    }
    // The money, by the status the server reports (SPEC §11).
    match s.status.as_str() {
        "processed" => {
            cx.expect.available -= amount + fee;
            cx.expect.total_payouts += amount;
            cx.expect.total_fees += fee;
        }
        "reversed" => {
            // The amount came back; the fee stays earned.
            cx.expect.available -= fee;
            cx.expect.total_payouts += amount;
            cx.expect.reversed += amount;
            cx.expect.total_fees += fee;
        }
        "pending" => {
            cx.expect.available -= amount + fee;
            cx.expect.held += amount + fee;
        }
        // rejected, cancelled: held and given back, or never held (queued).
        _ => {}
    }
}

/// The refunds of one merchant: each acknowledged one read back by id
/// with its amount, pay-in and a terminal status the sandbox allows;
/// unanswered ones adopted when the server has them; nothing else; and
/// each pay-in's `refunded_amount` the sum of its refunds that did not
/// fail, never above its amount.
fn audit_refunds(cx: &mut Cx<'_>, i: usize, mm: &crate::model::MerchantModel, seen: &SeenMerchant) {
    let lookups: HashMap<&str, &SeenRefund> = seen
        .refund_lookups
        .iter()
        .map(|r| (r.id.as_str(), r))
        .collect();
    let listed: HashMap<&str, &SeenRefund> =
        seen.refunds.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut accounted: HashSet<&str> = HashSet::new();
    for r in &mm.refunds {
        cx.checked.refunds += 1;
        match lookups.get(r.id.as_str()) {
            None => cx.problems.push(Problem::MissingRefund {
                merchant: i,
                id: r.id.clone(),
            }),
            Some(s) => {
                accounted.insert(s.id.as_str());
                if !listed.contains_key(r.id.as_str()) {
                    cx.problems.push(Problem::RefundField {
                        id: r.id.clone(),
                        field: "listing",
                        expected: "in GET /refunds".into(),
                        actual: "absent".into(),
                    });
                }
                check_refund(cx, r, s);
            }
        }
    }
    for r in &mm.uncertain_refunds {
        let found = seen.refunds.iter().find(|s| {
            !accounted.contains(s.id.as_str())
                && s.payment_id == r.payment_id
                && s.reason == r.reason
                && s.amount == Some(r.amount)
        });
        match found {
            Some(s) => {
                cx.checked.adopted += 1;
                accounted.insert(s.id.as_str());
                check_refund(cx, r, s);
            }
            None => cx.checked.absent += 1,
        }
    }
    for s in &seen.refunds {
        if !accounted.contains(s.id.as_str()) {
            cx.problems.push(Problem::UnexpectedRefund {
                merchant: i,
                id: s.id.clone(),
                payment_id: s.payment_id.clone(),
            });
        }
    }
    // Each pay-in's refunded_amount, from the server's own refunds.
    let mut refunded: HashMap<&str, u64> = HashMap::new();
    for s in &seen.refunds {
        if s.status != "failed" {
            let sum = refunded.entry(s.payment_id.as_str()).or_insert(0);
            *sum = sum.saturating_add(s.amount.unwrap_or(0));
        }
    }
    for p in &seen.payments {
        let sum = refunded.get(p.id.as_str()).copied().unwrap_or(0);
        let shown = if p.has_refunded_amount {
            opt(p.refunded_amount)
        } else {
            "absent".into()
        };
        // A v2 server shows it on every completed pay-in (SPEC §12).
        let fine = if p.has_refunded_amount {
            p.refunded_amount == Some(sum)
        } else {
            sum == 0 && !(cx.v2 && p.status == "completed")
        };
        if !fine {
            cx.problems.push(Problem::RefundedAmount {
                payment_id: p.id.clone(),
                expected: money::render(sum),
                actual: shown,
            });
        }
        if p.amount.is_some_and(|a| sum > a) {
            cx.problems.push(Problem::RefundsExceedPayment {
                payment_id: p.id.clone(),
                refunded: money::render(sum),
                amount: opt(p.amount),
            });
        }
    }
}

fn check_refund(cx: &mut Cx<'_>, r: &Refund, s: &SeenRefund) {
    let mut wrong = |field: &'static str, expected: String, actual: String| {
        cx.problems.push(Problem::RefundField {
            id: s.id.clone(),
            field,
            expected,
            actual,
        })
    };
    if s.merchant_id != cx.merchant_id {
        wrong(
            "merchant_id",
            cx.merchant_id.to_owned(),
            s.merchant_id.clone(),
        );
    }
    if s.payment_id != r.payment_id {
        wrong("payment_id", r.payment_id.clone(), s.payment_id.clone());
    }
    if let Some((e, a)) = field(r.amount, s.amount) {
        wrong("amount", e, a);
    }
    if s.reason != r.reason {
        wrong("reason", r.reason.clone(), s.reason.clone());
    }
    *cx.checked
        .statuses
        .entry(format!("refund_{}", s.status))
        .or_insert(0) += 1;
    let amount = i128::from(r.amount);
    let expected = if r.expect_fail { "failed" } else { "processed" };
    if s.status != expected {
        cx.problems.push(Problem::RefundStatus {
            id: s.id.clone(),
            expected,
            actual: s.status.clone(),
        });
    }
    match s.status.as_str() {
        "processed" => {
            cx.expect.available -= amount;
            cx.expect.refunded += amount;
        }
        "pending" => {
            cx.expect.available -= amount;
            cx.expect.held += amount;
        }
        _ => {}
    }
}

/// Every transfer kind of SPEC §11.
const TRANSFER_KINDS: [&str; 13] = [
    "payin_credit",
    "payin_fee",
    "payout_hold",
    "payout_settle",
    "payout_fee",
    "payout_release",
    "payout_reverse",
    "refund_hold",
    "refund_settle",
    "refund_release",
    "settlement_hold",
    "settlement_settle",
    "settlement_release",
];

fn available_account(merchant_id: &str) -> String {
    format!("merchant:{merchant_id}:available")
}

fn held_account(merchant_id: &str) -> String {
    format!("merchant:{merchant_id}:held")
}

/// A transfer as the audit compares them: amount, debit, credit.
type Leg = (u64, String, String);

/// The merchant's ledger against the balance and the server's own records.
fn audit_ledger(
    i: usize,
    merchant_id: &str,
    seen: &SeenMerchant,
    held_at_once: &HashSet<&str>,
    problems: &mut Vec<Problem>,
) {
    let mut problem = |detail: String| {
        problems.push(Problem::Ledger {
            merchant: i,
            detail,
        })
    };
    let available_acct = available_account(merchant_id);
    let held_acct = held_account(merchant_id);
    let mut entries: Vec<&SeenEntry> = seen.ledger.iter().collect();
    entries.sort_by_key(|e| e.seq);
    for (n, e) in entries.iter().enumerate() {
        if e.seq != n as u64 + 1 {
            problem(format!(
                "line {n} ({}) has seq {} (want {}: seq runs 1..n without gaps)",
                e.id,
                e.seq,
                n + 1
            ));
            break;
        }
    }
    // Running balances of the two accounts, line by line.
    let (mut available, mut held): (i128, i128) = (0, 0);
    let mut actual: BTreeMap<(String, String), Vec<Leg>> = BTreeMap::new();
    for e in &entries {
        let Some(amount) = e.amount else {
            problem(format!("seq {} ({}) has no readable amount", e.seq, e.id));
            continue;
        };
        if !TRANSFER_KINDS.contains(&e.kind.as_str()) {
            problem(format!(
                "seq {} ({}) has unknown kind {}",
                e.seq, e.id, e.kind
            ));
        }
        if e.debit_account == e.credit_account {
            problem(format!(
                "seq {} ({}) debits and credits the same account {}",
                e.seq, e.id, e.debit_account
            ));
        }
        let signed = i128::from(amount);
        let mut touched = false;
        for (account, sign) in [(&e.debit_account, -1), (&e.credit_account, 1)] {
            if *account == available_acct {
                available += sign * signed;
                touched = true;
            } else if *account == held_acct {
                held += sign * signed;
                touched = true;
            }
        }
        if !touched {
            problem(format!(
                "seq {} ({} {}) touches neither of the merchant's accounts: {} → {}",
                e.seq, e.id, e.kind, e.debit_account, e.credit_account
            ));
        }
        let after = (
            e.available_after.map(i128::from),
            e.held_after.map(i128::from),
        );
        if after != (Some(available), Some(held)) {
            problem(format!(
                "seq {} ({} {}): available_after {} held_after {}, but the lines so far add up to {} / {}",
                e.seq,
                e.id,
                e.kind,
                opt(e.available_after),
                opt(e.held_after),
                money::render_signed(available),
                money::render_signed(held)
            ));
        }
        actual
            .entry((e.reference.clone(), e.kind.clone()))
            .or_default()
            .push((amount, e.debit_account.clone(), e.credit_account.clone()));
    }
    let b = &seen.balance;
    if (b.available.map(i128::from), b.held.map(i128::from)) != (Some(available), Some(held)) {
        problem(format!(
            "the balance is available {} held {}, but the lines add up to {} / {}",
            opt(b.available),
            opt(b.held),
            money::render_signed(available),
            money::render_signed(held)
        ));
    }
    if let Some(last) = entries.last() {
        if (last.available_after, last.held_after) != (b.available, b.held) {
            problem(format!(
                "last line (seq {}) ends at available {} held {}, the balance says {} / {}",
                last.seq,
                opt(last.available_after),
                opt(last.held_after),
                opt(b.available),
                opt(b.held)
            ));
        }
    }
    // The transfers the server's own records imply (SPEC §11). The pay-in
    // fee goes rail:payins → platform:fees: not on the merchant's ledger.
    let mut wanted: BTreeMap<(String, String), Vec<Leg>> = BTreeMap::new();
    let mut want = |reference: &str, kind: &str, amount: Option<u64>, debit: &str, credit: &str| {
        wanted
            .entry((reference.to_owned(), kind.to_owned()))
            .or_default()
            .push((
                amount.unwrap_or(u64::MAX),
                debit.to_owned(),
                credit.to_owned(),
            ));
    };
    for p in &seen.payments {
        if p.status == "completed" {
            want(
                &p.id,
                "payin_credit",
                p.net_amount,
                "rail:payins",
                &available_acct,
            );
        }
    }
    for p in &seen.payouts {
        let hold = p.amount.zip(p.fee).and_then(|(a, f)| a.checked_add(f));
        // A cancelled payout was held (and released) unless it was
        // cancelled while still queued: one answered `pending` surely was,
        // otherwise the lines tell.
        let was_held = match p.status.as_str() {
            "queued" => false,
            "cancelled" => {
                held_at_once.contains(p.id.as_str())
                    || actual.contains_key(&(p.id.clone(), "payout_hold".to_owned()))
            }
            _ => true,
        };
        if was_held {
            want(&p.id, "payout_hold", hold, &available_acct, &held_acct);
        }
        match p.status.as_str() {
            "processed" | "reversed" => {
                want(&p.id, "payout_settle", p.amount, &held_acct, "rail:payouts");
                if p.fee != Some(0) {
                    want(&p.id, "payout_fee", p.fee, &held_acct, "platform:fees");
                }
                if p.status == "reversed" {
                    want(
                        &p.id,
                        "payout_reverse",
                        p.amount,
                        "rail:payouts",
                        &available_acct,
                    );
                }
            }
            "rejected" => want(&p.id, "payout_release", hold, &held_acct, &available_acct),
            "cancelled" if was_held => {
                want(&p.id, "payout_release", hold, &held_acct, &available_acct)
            }
            _ => {}
        }
    }
    for r in &seen.refunds {
        want(&r.id, "refund_hold", r.amount, &available_acct, &held_acct);
        match r.status.as_str() {
            "processed" => want(&r.id, "refund_settle", r.amount, &held_acct, "rail:refunds"),
            "failed" => want(
                &r.id,
                "refund_release",
                r.amount,
                &held_acct,
                &available_acct,
            ),
            _ => {}
        }
    }
    let mut differences = 0;
    for key in wanted
        .keys()
        .chain(actual.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let mut w = wanted.get(key).cloned().unwrap_or_default();
        let mut a = actual.get(key).cloned().unwrap_or_default();
        w.sort();
        a.sort();
        if w != a {
            differences += 1;
            if differences <= 10 {
                let show = |v: &[Leg]| {
                    v.iter()
                        .map(|(amount, debit, credit)| {
                            format!("{} {debit} → {credit}", money::render(*amount))
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                problem(format!(
                    "{} {}: lines [{}], the records imply [{}]",
                    key.0,
                    key.1,
                    show(&a),
                    show(&w)
                ));
            }
        }
    }
    if differences > 10 {
        problem(format!("… and {} more line differences", differences - 10));
    }
}

/// The normal side SPEC §11 gives an account: the `rail:` assets are
/// debit-normal, the merchants' liabilities and the fee revenue credit-normal.
fn normal_side(account: &str) -> &'static str {
    if account.starts_with("rail:") {
        "debit"
    } else {
        "credit"
    }
}

/// The books (admin `GET /ledger/accounts`): totals exactly 0, each account
/// consistent in itself, and each audited merchant's two accounts equal to
/// its `GET /balance` and to what its ledger posted.
fn audit_books(
    model: &Model,
    observed: &Observed,
    checked: &mut Checked,
    problems: &mut Vec<Problem>,
) {
    let books = &observed.books;
    if let Some(error) = &books.fetch_error {
        problems.push(Problem::LedgerAccounts {
            detail: format!("could not read GET /ledger/accounts: {error}"),
        });
        return;
    }
    checked.ledger_accounts += books.accounts.len() as u64;
    if books.totals.is_empty() {
        problems.push(Problem::LedgerAccounts {
            detail: "GET /ledger/accounts lists no totals".into(),
        });
    }
    for t in &books.totals {
        if t.balance != Some(0) {
            problems.push(Problem::LedgerTotal {
                currency: t.currency.clone(),
                balance: t.balance_text.clone(),
            });
        }
    }
    let mut by_name: HashMap<&str, &SeenAccount> = HashMap::new();
    for a in &books.accounts {
        let mut wrong = |detail: String| {
            problems.push(Problem::LedgerAccount {
                account: a.account.clone(),
                detail,
            })
        };
        if by_name.insert(a.account.as_str(), a).is_some() {
            wrong("listed more than once".into());
        }
        if a.normal != normal_side(&a.account) {
            wrong(format!(
                "normal side is {:?}, SPEC §11 says {}",
                a.normal,
                normal_side(&a.account)
            ));
        }
        let posted = a
            .debits_posted
            .zip(a.credits_posted)
            .map(|(d, c)| i128::from(c) - i128::from(d));
        if a.balance.is_none() || a.balance != posted {
            wrong(format!(
                "balance {} is not credits_posted − debits_posted ({})",
                a.balance_text,
                posted.map_or_else(|| "unreadable".into(), money::render_signed)
            ));
        }
        if !books.totals.iter().any(|t| t.currency == a.currency) {
            wrong(format!("currency {:?} has no total", a.currency));
        }
    }
    for (i, mm) in model.merchants.iter().enumerate() {
        let Some(seen) = observed.merchants.get(i) else {
            continue;
        };
        if !seen.fetch_errors.is_empty() {
            continue;
        }
        for (field, account, shown) in [
            (
                "available",
                available_account(&mm.id),
                seen.balance.available,
            ),
            ("held", held_account(&mm.id), seen.balance.held),
        ] {
            // A merchant whose wallet never moved money may be left out:
            // then its account is empty, and everything else must say so.
            let empty;
            let a = match by_name.get(account.as_str()) {
                Some(a) => *a,
                None => {
                    empty = SeenAccount {
                        account: account.clone(),
                        currency: "INR".into(),
                        normal: "credit".into(),
                        debits_posted: Some(0),
                        credits_posted: Some(0),
                        balance: Some(0),
                        balance_text: "0 (not listed)".into(),
                    };
                    &empty
                }
            };
            if a.balance.is_none() || a.balance != shown.map(i128::from) {
                problems.push(Problem::AccountBalance {
                    merchant: i,
                    account: account.clone(),
                    field,
                    books: a.balance_text.clone(),
                    balance: shown,
                });
            }
            // What the merchant's ledger moved through the account.
            let (mut debits, mut credits) = (0u64, 0u64);
            for e in &seen.ledger {
                let amount = e.amount.unwrap_or(0);
                if e.debit_account == account {
                    debits = debits.saturating_add(amount);
                }
                if e.credit_account == account {
                    credits = credits.saturating_add(amount);
                }
            }
            for (side, posted, lines) in [
                ("debits_posted", a.debits_posted, debits),
                ("credits_posted", a.credits_posted, credits),
            ] {
                if posted != Some(lines) {
                    problems.push(Problem::LedgerAccount {
                        account: account.clone(),
                        detail: format!(
                            "{side} is {}, the merchant's ledger lines add up to {}",
                            opt(posted),
                            money::render(lines)
                        ),
                    });
                }
            }
        }
    }
}

/// The kinds of record that have events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Record {
    Payment,
    Payout,
    Refund,
}

impl Record {
    /// For a record with final `status`: the statuses it must have had
    /// an event for, and those its events may carry (the statuses on its
    /// way there that have events: SPEC §7, §12, §13).
    fn events(self, status: &str) -> (Vec<&'static str>, Vec<&'static str>) {
        match (self, status) {
            (Record::Payment, "completed") => (vec!["completed"], vec!["completed"]),
            (Record::Payment, "failed") => (vec!["failed"], vec!["failed"]),
            (Record::Payout, "processed") => (vec!["processed"], vec!["queued", "processed"]),
            (Record::Payout, "rejected") => (vec!["rejected"], vec!["queued", "rejected"]),
            (Record::Payout, "cancelled") => (vec!["cancelled"], vec!["queued", "cancelled"]),
            (Record::Payout, "reversed") => (
                vec!["processed", "reversed"],
                vec!["queued", "processed", "reversed"],
            ),
            (Record::Payout, _) => (Vec::new(), vec!["queued"]),
            (Record::Refund, "processed") => (vec!["processed"], vec!["processed"]),
            (Record::Refund, "failed") => (vec!["failed"], vec!["failed"]),
            _ => (Vec::new(), Vec::new()),
        }
    }
}

fn audit_webhooks(model: &Model, observed: &Observed, log: &SinkLog, problems: &mut Vec<Problem>) {
    for event_id in &log.bad_signatures {
        problems.push(Problem::WebhookSignature {
            event_id: event_id.clone(),
        });
    }
    let mut known: HashSet<&str> = HashSet::new();
    for (i, seen) in observed
        .merchants
        .iter()
        .enumerate()
        .take(model.merchants.len())
    {
        let records = seen
            .payments
            .iter()
            .map(|p| (p.id.as_str(), p.status.as_str(), p.amount, Record::Payment))
            .chain(
                seen.payouts
                    .iter()
                    .map(|p| (p.id.as_str(), p.status.as_str(), p.amount, Record::Payout)),
            )
            .chain(
                seen.refunds
                    .iter()
                    .map(|r| (r.id.as_str(), r.status.as_str(), r.amount, Record::Refund)),
            );
        for (id, status, amount, record) in records {
            known.insert(id);
            let (required, allowed) = record.events(status);
            let events = log.records.get(id).map_or(&[][..], Vec::as_slice);
            for want in &required {
                if !events.iter().any(|e| e.status == *want) {
                    problems.push(Problem::WebhookLost {
                        id: id.to_owned(),
                        status: (*want).to_owned(),
                    });
                }
            }
            for e in events {
                let mut mismatch = |detail: String| {
                    problems.push(Problem::WebhookMismatch {
                        id: id.to_owned(),
                        detail,
                    })
                };
                if !allowed.contains(&e.status.as_str()) {
                    mismatch(format!(
                        "event {} says {}, the record {status}",
                        e.event_id, e.status
                    ));
                }
                if e.amount != amount {
                    mismatch(format!(
                        "event {} amount {}, the record {}",
                        e.event_id,
                        opt(e.amount),
                        opt(amount)
                    ));
                }
                if e.merchant_index != i {
                    mismatch(format!(
                        "event {} went to merchant #{}'s URL, not #{i}'s",
                        e.event_id, e.merchant_index
                    ));
                }
            }
        }
    }
    for id in log.records.keys() {
        if !known.contains(id.as_str()) {
            problems.push(Problem::WebhookMismatch {
                id: id.clone(),
                detail: "event for a record the server does not list".into(),
            });
        }
    }
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_owned()
}

fn seen_payment(v: &Value) -> SeenPayment {
    SeenPayment {
        id: s(&v["id"]),
        order_id: s(&v["order_id"]),
        merchant_id: s(&v["merchant_id"]),
        amount: money::value_paise(&v["amount"]),
        fee: money::value_paise(&v["fee"]),
        net_amount: money::value_paise(&v["net_amount"]),
        status: s(&v["status"]),
        refunded_amount: money::value_paise(&v["refunded_amount"]),
        has_refunded_amount: v.get("refunded_amount").is_some_and(|r| !r.is_null()),
    }
}

fn seen_payout(v: &Value) -> SeenPayout {
    SeenPayout {
        id: s(&v["id"]),
        reference_id: s(&v["reference_id"]),
        merchant_id: s(&v["merchant_id"]),
        amount: money::value_paise(&v["amount"]),
        fee: money::value_paise(&v["fee"]),
        status: s(&v["status"]),
        utr: v["utr"].as_str().map(str::to_owned),
    }
}

pub fn seen_refund(v: &Value) -> SeenRefund {
    SeenRefund {
        id: s(&v["id"]),
        payment_id: s(&v["payment_id"]),
        merchant_id: s(&v["merchant_id"]),
        amount: money::value_paise(&v["amount"]),
        status: s(&v["status"]),
        reason: s(&v["reason"]),
    }
}

/// A zero amount renders as `0`; `parse_paise` reads it as 0.
fn seen_balance(v: &Value) -> SeenBalance {
    SeenBalance {
        available: money::value_paise(&v["available"]),
        held: money::value_paise(&v["held"]),
        pending_payins: money::value_paise(&v["pending_payins"]),
        total_payins: money::value_paise(&v["total_payins"]),
        total_payouts: money::value_paise(&v["total_payouts"]),
        total_fees: money::value_paise(&v["total_fees"]),
    }
}

fn seen_entry(v: &Value) -> SeenEntry {
    SeenEntry {
        id: s(&v["id"]),
        seq: v["seq"].as_u64().unwrap_or(0),
        kind: s(&v["kind"]),
        debit_account: s(&v["debit_account"]),
        credit_account: s(&v["credit_account"]),
        amount: money::value_paise(&v["amount"]),
        available_after: money::value_paise(&v["available_after"]),
        held_after: money::value_paise(&v["held_after"]),
        reference: s(&v["reference"]),
    }
}

/// The admin `GET /ledger/accounts` data: balances are signed and read by
/// their exact text.
pub fn seen_books(data: &Value) -> SeenBooks {
    let accounts = data["accounts"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|a| SeenAccount {
                    account: s(&a["account"]),
                    currency: s(&a["currency"]),
                    normal: s(&a["normal"]),
                    debits_posted: money::value_paise(&a["debits_posted"]),
                    credits_posted: money::value_paise(&a["credits_posted"]),
                    balance: money::value_signed_paise(&a["balance"]),
                    balance_text: money::value_text(&a["balance"]),
                })
                .collect()
        })
        .unwrap_or_default();
    let totals = data["totals"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|t| SeenTotal {
                    currency: s(&t["currency"]),
                    balance: money::value_signed_paise(&t["balance"]),
                    balance_text: money::value_text(&t["balance"]),
                })
                .collect()
        })
        .unwrap_or_default();
    SeenBooks {
        accounts,
        totals,
        fetch_error: None,
    }
}

/// Reads the books with the admin key.
async fn read_books(api: &Api, admin_key: &str, within: Duration) -> SeenBooks {
    let call = api.expect(Method::GET, "/api/v1/ledger/accounts", admin_key, None, 200);
    let error = match tokio::time::timeout(within, call).await {
        Ok(Ok(data)) => return seen_books(&data),
        Ok(Err(e)) => e,
        Err(_) => format!("not read within {} s", within.as_secs()),
    };
    SeenBooks {
        fetch_error: Some(error),
        ..SeenBooks::default()
    }
}

/// Polls every merchant's balance until nothing is pending or held, or
/// `within` passes (strictly: one attempt per merchant and pass, each cut
/// at the deadline, so a server that stops answering cannot stall it).
/// What the wait after the load is doing, for the progress line.
#[derive(Debug, Default)]
pub struct Waiting {
    /// 0 not started, 1 settlement, 2 reading for the audit, 3 webhooks, 4 done.
    pub phase: AtomicU8,
    pub merchants: AtomicU64,
    /// Merchants with pending pay-ins or held payouts at the last look.
    pub unsettled: AtomicU64,
    /// Settled records whose webhook is awaited, and those that have one.
    pub webhooks_expected: AtomicU64,
    pub webhooks_seen: AtomicU64,
}

impl Waiting {
    /// The line for `elapsed` into the wait (None before it and after it).
    pub fn line(&self, elapsed: Duration, limits: &Limits) -> Option<String> {
        let at = format!("[wait {:>3} s]", elapsed.as_secs());
        let merchants = self.merchants.load(Ordering::Relaxed);
        match self.phase.load(Ordering::Relaxed) {
            1 => Some(format!(
                "{at} settlement: {} of {merchants} merchants still have pending pay-ins or held payouts (gives up after {} s)",
                self.unsettled.load(Ordering::Relaxed),
                limits.settle.as_secs()
            )),
            2 => Some(format!(
                "{at} reading the records, balances and ledgers of {merchants} merchants and the books for the audit (gives up after {} s)",
                limits.read.as_secs()
            )),
            3 => Some(format!(
                "{at} webhooks: {} of {} settled records have their event at the sink (gives up after {} s)",
                self.webhooks_seen.load(Ordering::Relaxed),
                self.webhooks_expected.load(Ordering::Relaxed),
                limits.webhooks.as_secs()
            )),
            _ => None,
        }
    }
}

pub async fn wait_for_settlement(
    api: &Api,
    model: &Model,
    within: Duration,
    waiting: &Waiting,
) -> bool {
    let deadline = Instant::now() + within;
    let mut done = vec![false; model.merchants.len()];
    waiting
        .unsettled
        .store(model.merchants.len() as u64, Ordering::Relaxed);
    loop {
        for (i, m) in model.merchants.iter().enumerate() {
            if done[i] {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let call = api.call(Method::GET, "/api/v1/balance", Some(&m.key), None, None);
            if let Ok(Ok(r)) = tokio::time::timeout(left, call).await {
                if r.status == 200 {
                    let b = seen_balance(&r.json()["data"]);
                    done[i] = b.pending_payins == Some(0) && b.held == Some(0);
                }
            }
        }
        let unsettled = done.iter().filter(|d| !**d).count() as u64;
        waiting.unsettled.store(unsettled, Ordering::Relaxed);
        if unsettled == 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads one merchant's records, balance and ledger with its own key;
/// with `refund_ids` (SPEC §12 servers), its refunds too, and each of
/// those ids by `GET /refunds/:id`.
async fn read_merchant(api: &Api, key: &str, refund_ids: Option<Vec<String>>) -> SeenMerchant {
    let mut seen = SeenMerchant::default();
    if let Some(ids) = refund_ids {
        match api.list_all("/api/v1/refunds?limit=500", key, 10_000).await {
            Ok(items) => seen.refunds = items.iter().map(seen_refund).collect(),
            Err(e) => seen.fetch_errors.push(e),
        }
        for id in ids {
            match get_record(api, &format!("/api/v1/refunds/{id}"), key).await {
                Ok(Some(v)) => seen.refund_lookups.push(seen_refund(&v)),
                Ok(None) => {}
                Err(e) => seen.fetch_errors.push(e),
            }
        }
    }
    match api
        .list_all("/api/v1/payments?limit=500", key, 10_000)
        .await
    {
        Ok(items) => seen.payments = items.iter().map(seen_payment).collect(),
        Err(e) => seen.fetch_errors.push(e),
    }
    match api.list_all("/api/v1/payouts?limit=500", key, 10_000).await {
        Ok(items) => seen.payouts = items.iter().map(seen_payout).collect(),
        Err(e) => seen.fetch_errors.push(e),
    }
    match api
        .expect(Method::GET, "/api/v1/balance", key, None, 200)
        .await
    {
        Ok(b) => seen.balance = seen_balance(&b),
        Err(e) => seen.fetch_errors.push(e),
    }
    match api
        .list_all("/api/v1/reports/ledger?limit=500", key, 10_000)
        .await
    {
        Ok(items) => seen.ledger = items.iter().map(seen_entry).collect(),
        Err(e) => seen.fetch_errors.push(e),
    }
    seen
}

/// `GET` one record: Some(data), None on a 404, or the error (after the
/// client's retries of 429/503 and transport failures).
async fn get_record(api: &Api, path: &str, key: &str) -> Result<Option<Value>, String> {
    let mut last = String::new();
    for attempt in 0..8u64 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
        }
        match api.call(Method::GET, path, Some(key), None, None).await {
            Ok(r) if r.status == 200 => return Ok(Some(r.json()["data"].clone())),
            Ok(r) if r.status == 404 => return Ok(None),
            Ok(r) if r.status == 429 || r.status == 503 => {
                last = r.error_code();
                tokio::time::sleep(Duration::from_secs(r.retry_after.unwrap_or(1).min(5))).await;
            }
            Ok(r) => {
                return Err(format!(
                    "GET {path}: {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ))
            }
            Err(f) => last = f.code(),
        }
    }
    Err(format!("GET {path}: gave up after retries ({last})"))
}

/// After the load, cancels every payout still `queued` (SPEC §13) that the
/// model knows (acknowledged, or unanswered and found by reference_id),
/// with the key that created it, and records each answer in the model:
/// then every payout ends terminal. Bounded by `deadline`.
pub async fn cancel_queued(api: &Api, model: &mut Model, deadline: Instant) -> Sweep {
    let mut sweep = Sweep::default();
    for mm in &mut model.merchants {
        if !mm
            .payouts
            .iter()
            .chain(&mm.uncertain_payouts)
            .any(|p| p.queue_if_low_balance)
        {
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let listing = api.list_all("/api/v1/payouts?status=queued&limit=500", &mm.key, 1_000);
        let Ok(Ok(queued)) = tokio::time::timeout(left, listing).await else {
            // Not listed: the audit then finds them queued and says so.
            continue;
        };
        for q in queued.iter().map(seen_payout) {
            if q.status != "queued" {
                continue;
            }
            let payout = match mm.payouts.iter_mut().find(|p| p.id == q.id) {
                Some(p) => Some(p),
                None => mm
                    .uncertain_payouts
                    .iter_mut()
                    .find(|p| p.reference_id == q.reference_id),
            };
            let Some(payout) = payout else {
                // Not the harness's: the audit names it.
                continue;
            };
            if matches!(payout.cancel, Cancel::Cancelled | Cancel::Refused) {
                // Queued after a cancel was answered: a server bug the
                // audit must see, not one to sweep away.
                continue;
            }
            sweep.found += 1;
            let key = mm
                .api_users
                .get(payout.user)
                .map_or_else(|| mm.key.clone(), |u| u.key.clone());
            let left = deadline.saturating_duration_since(Instant::now());
            let path = format!("/api/v1/payouts/{}/cancel", q.id);
            let call = api.call(Method::POST, &path, Some(&key), Some("{}".into()), None);
            payout.cancel = match tokio::time::timeout(left, call).await {
                Ok(Ok(r)) if (200..300).contains(&r.status) => {
                    sweep.cancelled += 1;
                    Cancel::Cancelled
                }
                Ok(Ok(_)) => {
                    sweep.refused += 1;
                    // A cancel the load sent without an answer may still
                    // have been applied: keep it unknown then.
                    if payout.cancel == Cancel::Unknown {
                        Cancel::Unknown
                    } else {
                        Cancel::Refused
                    }
                }
                _ => {
                    sweep.unknown += 1;
                    Cancel::Unknown
                }
            };
        }
    }
    sweep
}

/// Polls the payouts sent to the reversing account until none of them is
/// still `processed` (the sandbox reverses it one settle delay later) or
/// `deadline` passes.
async fn wait_for_reversals(api: &Api, model: &Model, deadline: Instant) -> bool {
    let mut waiting: Vec<(String, String)> = model
        .merchants
        .iter()
        .flat_map(|m| {
            m.payouts
                .iter()
                .filter(|p| p.expect_reverse && p.cancel != Cancel::Cancelled)
                .map(|p| (m.key.clone(), p.id.clone()))
        })
        .collect();
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for (key, id) in waiting {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let path = format!("/api/v1/payouts/{id}");
            let call = get_record(api, &path, &key);
            if let Ok(Ok(Some(v))) = tokio::time::timeout(left, call).await {
                if matches!(v["status"].as_str(), Some("processed" | "pending")) {
                    still.push((key, id));
                }
            }
        }
        waiting = still;
        if waiting.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    true
}

/// How long the wait after the load may take, per step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// For settlement (no pending pay-ins, nothing held).
    pub settle: Duration,
    /// For reading every merchant, and again for the books.
    pub read: Duration,
    /// For the webhooks of every settled record.
    pub webhooks: Duration,
}

/// Waits for settlement, reads every merchant (within `limits.read` in
/// all; a merchant not read by then is a `Fetch` problem), then the books
/// with `admin_key` (within `limits.read` again), then waits for the
/// webhooks of every settled record (bounded) and takes the sink's log.
/// `waiting` tells the progress line where it is.
pub async fn observe(
    api: &Api,
    model: &mut Model,
    admin_key: &str,
    sink: Option<&Sink>,
    limits: Limits,
    waiting: &Waiting,
) -> Observed {
    let Limits {
        settle: settle_within,
        read: read_within,
        webhooks: webhooks_within,
    } = limits;
    let started = Instant::now();
    waiting
        .merchants
        .store(model.merchants.len() as u64, Ordering::Relaxed);
    waiting.phase.store(1, Ordering::Relaxed);
    let deadline = started + settle_within;
    let mut settled = wait_for_settlement(api, model, settle_within, waiting).await;
    let mut swept = Sweep::default();
    if !model.queued_may_remain && model.any_queueable() {
        swept = cancel_queued(api, model, deadline).await;
        if swept.refused > 0 || swept.unknown > 0 {
            // Some left the queue meanwhile: let them settle too.
            let left = deadline.saturating_duration_since(Instant::now());
            settled = wait_for_settlement(api, model, left, waiting).await;
        }
    }
    if settled
        && model
            .merchants
            .iter()
            .any(|m| m.payouts.iter().any(|p| p.expect_reverse))
    {
        settled = wait_for_reversals(api, model, deadline).await;
    }
    let settle_wait = started.elapsed();
    waiting.phase.store(2, Ordering::Relaxed);
    let gate = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for m in &model.merchants {
        let (api, key, gate) = (api.clone(), m.key.clone(), gate.clone());
        let refund_ids = model
            .v2
            .then(|| m.refunds.iter().map(|r| r.id.clone()).collect());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            read_merchant(&api, &key, refund_ids).await
        }));
    }
    let read_deadline = Instant::now() + read_within;
    let mut merchants = Vec::with_capacity(tasks.len());
    for mut t in tasks {
        let left = read_deadline.saturating_duration_since(Instant::now());
        let seen = match tokio::time::timeout(left, &mut t).await {
            Ok(Ok(seen)) => seen,
            Ok(Err(e)) => SeenMerchant {
                fetch_errors: vec![e.to_string()],
                ..SeenMerchant::default()
            },
            Err(_) => {
                t.abort();
                SeenMerchant {
                    fetch_errors: vec![format!(
                        "not read within {} s (the server is not answering in time)",
                        read_within.as_secs()
                    )],
                    ..SeenMerchant::default()
                }
            }
        };
        merchants.push(seen);
    }
    let books = read_books(api, admin_key, read_within).await;
    let started = Instant::now();
    let webhooks = match sink {
        None => None,
        Some(sink) => {
            // Each record and the statuses it must have an event for.
            let terminal: Vec<(String, Vec<&'static str>)> = merchants
                .iter()
                .flat_map(|m| {
                    let payments = m
                        .payments
                        .iter()
                        .map(|p| (p.id.clone(), Record::Payment.events(&p.status).0));
                    let payouts = m
                        .payouts
                        .iter()
                        .map(|p| (p.id.clone(), Record::Payout.events(&p.status).0));
                    let refunds = m
                        .refunds
                        .iter()
                        .map(|r| (r.id.clone(), Record::Refund.events(&r.status).0));
                    payments.chain(payouts).chain(refunds)
                })
                .filter(|(_, statuses)| !statuses.is_empty())
                .collect();
            let deadline = Instant::now() + webhooks_within;
            waiting
                .webhooks_expected
                .store(terminal.len() as u64, Ordering::Relaxed);
            waiting.phase.store(3, Ordering::Relaxed);
            loop {
                let seen = sink.count_with_events(&terminal);
                waiting.webhooks_seen.store(seen as u64, Ordering::Relaxed);
                if seen >= terminal.len() || Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // A moment for duplicates still in flight to show up.
            tokio::time::sleep(Duration::from_millis(200)).await;
            Some(sink.snapshot())
        }
    };
    waiting.phase.store(4, Ordering::Relaxed);
    Observed {
        merchants,
        books,
        settled,
        settle_wait,
        swept,
        webhooks,
        webhook_wait: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MerchantModel;

    const AVAILABLE: &str = "merchant:usr_m:available";
    const HELD: &str = "merchant:usr_m:held";

    fn payment(id: &str, order: &str, amount: u64, fee: u64, status: &str) -> SeenPayment {
        SeenPayment {
            id: id.into(),
            order_id: order.into(),
            merchant_id: "usr_m".into(),
            amount: Some(amount),
            fee: Some(fee),
            net_amount: Some(amount - fee),
            status: status.into(),
            refunded_amount: None,
            has_refunded_amount: false,
        }
    }

    /// A ledger line `debit → credit`, with the balances after it.
    fn line(
        seq: u64,
        kind: &str,
        (debit, credit): (&str, &str),
        amount: u64,
        (available, held): (u64, u64),
        r: &str,
    ) -> SeenEntry {
        SeenEntry {
            id: format!("tr_{seq}"),
            seq,
            kind: kind.into(),
            debit_account: debit.into(),
            credit_account: credit.into(),
            amount: Some(amount),
            available_after: Some(available),
            held_after: Some(held),
            reference: r.into(),
        }
    }

    fn account(name: &str, debits: u64, credits: u64) -> SeenAccount {
        let balance = i128::from(credits) - i128::from(debits);
        SeenAccount {
            account: name.into(),
            currency: "INR".into(),
            normal: normal_side(name).into(),
            debits_posted: Some(debits),
            credits_posted: Some(credits),
            balance: Some(balance),
            balance_text: money::render_signed(balance),
        }
    }

    fn total(paise: i128) -> SeenTotal {
        SeenTotal {
            currency: "INR".into(),
            balance: Some(paise),
            balance_text: money::render_signed(paise),
        }
    }

    /// One merchant (150 bps, payout fee 5.00): an acknowledged pay-in of
    /// 100.00 (fee 1.50), an unanswered one of 10.00 that the server does
    /// have, and a processed payout of 20.00; the books to match.
    fn world() -> (Model, Observed) {
        let payin = |id: &str, order: &str, amount| Payin {
            id: id.into(),
            order_id: order.into(),
            amount,
            fee: crate::money::bps_half_up(amount, 150),
            expect_fail: false,
        };
        let model = Model {
            merchants: vec![MerchantModel {
                index: 0,
                id: "usr_m".into(),
                key: "k".into(),
                payin_fee_bps: 150,
                payout_fee: 500,
                webhook_secret: String::new(),
                api_users: Vec::new(),
                payins: vec![payin("txn_a", "o1", 10_000)],
                payouts: vec![Payout {
                    id: "po_a".into(),
                    reference_id: "r1".into(),
                    amount: 2_000,
                    fee: 500,
                    created_status: "pending".into(),
                    ..Payout::default()
                }],
                uncertain_payins: vec![payin("", "o2", 1_000)],
                uncertain_payouts: Vec::new(),
                refunds: Vec::new(),
                uncertain_refunds: Vec::new(),
                invalid_payouts: Vec::new(),
            }],
            payin_failures_allowed: false,
            webhooks_expected: false,
            v2: false,
            queued_may_remain: false,
        };
        // available = 98.50 + 9.85 − 25.00 = 83.35
        let seen = SeenMerchant {
            payments: vec![
                payment("txn_a", "o1", 10_000, 150, "completed"),
                payment("txn_b", "o2", 1_000, 15, "completed"),
            ],
            payouts: vec![SeenPayout {
                id: "po_a".into(),
                reference_id: "r1".into(),
                merchant_id: "usr_m".into(),
                amount: Some(2_000),
                fee: Some(500),
                status: "processed".into(),
                utr: None,
            }],
            refunds: Vec::new(),
            refund_lookups: Vec::new(),
            balance: SeenBalance {
                available: Some(8_335),
                held: Some(0),
                pending_payins: Some(0),
                total_payins: Some(11_000),
                total_payouts: Some(2_000),
                total_fees: Some(665),
            },
            ledger: vec![
                line(
                    1,
                    "payin_credit",
                    ("rail:payins", AVAILABLE),
                    9_850,
                    (9_850, 0),
                    "txn_a",
                ),
                line(
                    2,
                    "payout_hold",
                    (AVAILABLE, HELD),
                    2_500,
                    (7_350, 2_500),
                    "po_a",
                ),
                line(
                    3,
                    "payin_credit",
                    ("rail:payins", AVAILABLE),
                    985,
                    (8_335, 2_500),
                    "txn_b",
                ),
                line(
                    4,
                    "payout_settle",
                    (HELD, "rail:payouts"),
                    2_000,
                    (8_335, 500),
                    "po_a",
                ),
                line(
                    5,
                    "payout_fee",
                    (HELD, "platform:fees"),
                    500,
                    (8_335, 0),
                    "po_a",
                ),
            ],
            fetch_errors: Vec::new(),
        };
        let books = SeenBooks {
            accounts: vec![
                account(AVAILABLE, 2_500, 10_835),
                account(HELD, 2_500, 2_500),
                account("platform:fees", 0, 665),
                account("rail:payins", 11_000, 0),
                account("rail:payouts", 0, 2_000),
                account("rail:refunds", 0, 0),
                account("rail:settlements", 0, 0),
            ],
            totals: vec![total(0)],
            fetch_error: None,
        };
        let observed = Observed {
            merchants: vec![seen],
            books,
            settled: true,
            settle_wait: Duration::ZERO,
            swept: Sweep::default(),
            webhooks: None,
            webhook_wait: Duration::ZERO,
        };
        (model, observed)
    }

    fn books_account<'a>(observed: &'a mut Observed, name: &str) -> &'a mut SeenAccount {
        observed
            .books
            .accounts
            .iter_mut()
            .find(|a| a.account == name)
            .unwrap_or_else(|| panic!("no account {name}"))
    }

    #[test]
    fn a_consistent_world_is_clean_and_adopts_the_unanswered_payin() {
        let (model, observed) = world();
        let report = audit(&model, &observed);
        assert_eq!(report.problems, Vec::new());
        assert_eq!((report.checked.adopted, report.checked.absent), (1, 0));
        assert_eq!(report.checked.ledger_entries, 5);
        assert_eq!(report.checked.ledger_accounts, 7);
    }

    #[test]
    fn phantoms_wrong_statuses_and_ledger_gaps_are_named() {
        let (model, mut observed) = world();
        let seen = &mut observed.merchants[0];
        seen.payments.push(payment("txn_x", "o9", 500, 8, "failed"));
        seen.payouts[0].status = "rejected".into();
        seen.ledger.remove(2);
        let problems = audit(&model, &observed).problems;
        let kinds: Vec<_> = problems.iter().map(Problem::kind).collect();
        // The phantom pay-in; the payout's status; balance fields that now
        // disagree with the model (the payout no longer debits); the ledger
        // gap, its running balances and its missing/extra lines; the books'
        // available account, credited more than the ledger shows.
        assert!(kinds.contains(&"unexpected_payment"), "{kinds:?}");
        assert!(kinds.contains(&"payout_status"), "{kinds:?}");
        assert!(kinds.contains(&"balance"), "{kinds:?}");
        assert!(kinds.contains(&"ledger"), "{kinds:?}");
        assert!(kinds.contains(&"ledger_account"), "{kinds:?}");
        assert!(!kinds.contains(&"missing_payment"), "{kinds:?}");
        assert!(
            problems.iter().any(|p| matches!(p,
                Problem::Ledger { merchant: 0, detail } if detail.contains("has seq 4 (want 3")
            )),
            "{problems:?}"
        );
    }

    #[test]
    fn a_nonzero_total_is_named_exactly() {
        // A fee credited to platform:fees with no debit anywhere: each
        // account is consistent in itself, only the total shows it.
        let (model, mut observed) = world();
        *books_account(&mut observed, "platform:fees") = account("platform:fees", 0, 666);
        observed.books.totals = vec![total(1)];
        assert_eq!(
            audit(&model, &observed).problems,
            vec![Problem::LedgerTotal {
                currency: "INR".into(),
                balance: "0.01".into(),
            }]
        );
        // No totals at all is not a clean books either.
        observed.books.totals.clear();
        let kinds: Vec<_> = audit(&model, &observed)
            .problems
            .iter()
            .map(Problem::kind)
            .collect();
        assert!(kinds.contains(&"ledger_accounts"), "{kinds:?}");
    }

    #[test]
    fn books_that_disagree_with_the_balance_are_named() {
        // The books' available account one paisa short (and the total -0.01).
        let (model, mut observed) = world();
        *books_account(&mut observed, AVAILABLE) = account(AVAILABLE, 2_500, 10_834);
        observed.books.totals = vec![total(-1)];
        assert_eq!(
            audit(&model, &observed).problems,
            vec![
                Problem::LedgerTotal {
                    currency: "INR".into(),
                    balance: "-0.01".into(),
                },
                Problem::AccountBalance {
                    merchant: 0,
                    account: AVAILABLE.into(),
                    field: "available",
                    books: "83.34".into(),
                    balance: Some(8_335),
                },
                Problem::LedgerAccount {
                    account: AVAILABLE.into(),
                    detail:
                        "credits_posted is 108.34, the merchant's ledger lines add up to 108.35"
                            .into(),
                },
            ]
        );
        // A balance that is not credits − debits, a wrong normal side.
        let (model, mut observed) = world();
        let payins = books_account(&mut observed, "rail:payins");
        payins.normal = "credit".into();
        payins.debits_posted = Some(10_999);
        let kinds: Vec<_> = audit(&model, &observed)
            .problems
            .iter()
            .map(Problem::kind)
            .collect();
        assert_eq!(kinds, ["ledger_account", "ledger_account"]);
        // The merchant's accounts not listed: read as empty, which its
        // balance and ledger contradict.
        let (model, mut observed) = world();
        observed
            .books
            .accounts
            .retain(|a| !a.account.starts_with("merchant:"));
        let problems = audit(&model, &observed).problems;
        assert!(
            problems.contains(&Problem::AccountBalance {
                merchant: 0,
                account: AVAILABLE.into(),
                field: "available",
                books: "0 (not listed)".into(),
                balance: Some(8_335),
            }),
            "{problems:?}"
        );
        // The books could not be read.
        let (model, mut observed) = world();
        observed.books = SeenBooks {
            fetch_error: Some("GET /api/v1/ledger/accounts: 403".into()),
            ..SeenBooks::default()
        };
        let kinds: Vec<_> = audit(&model, &observed)
            .problems
            .iter()
            .map(Problem::kind)
            .collect();
        assert_eq!(kinds, ["ledger_accounts"]);
    }

    #[test]
    fn lines_on_the_wrong_accounts_are_named() {
        // The payout's fee credited back to the merchant's available
        // account instead of platform:fees: available+held and the running
        // balances break, and the line is not the one the records imply.
        let (model, mut observed) = world();
        let ledger = &mut observed.merchants[0].ledger;
        ledger[4].credit_account = AVAILABLE.into();
        let problems = audit(&model, &observed).problems;
        assert!(
            problems.iter().any(|p| matches!(p,
                Problem::Ledger { merchant: 0, detail }
                    if detail.starts_with("po_a payout_fee: lines [5.00 merchant:usr_m:held → merchant:usr_m:available]")
            )),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| matches!(p,
                Problem::Ledger { merchant: 0, detail }
                    if detail.starts_with("seq 5 (tr_5 payout_fee): available_after 83.35")
            )),
            "{problems:?}"
        );
        // The pay-in fee on the merchant's ledger: it touches neither account.
        let (model, mut observed) = world();
        observed.merchants[0].ledger.push(line(
            6,
            "payin_fee",
            ("rail:payins", "platform:fees"),
            150,
            (8_335, 0),
            "txn_a",
        ));
        let problems = audit(&model, &observed).problems;
        assert!(
            problems.iter().any(|p| matches!(p,
                Problem::Ledger { merchant: 0, detail } if detail.contains("touches neither")
            )),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| matches!(p,
                Problem::Ledger { merchant: 0, detail } if detail.starts_with("txn_a payin_fee: lines [1.50")
            )),
            "{problems:?}"
        );
    }

    #[test]
    fn books_are_read_by_exact_text() {
        let data: Value = serde_json::from_str(
            r#"{"accounts": [{"account": "rail:payins", "currency": "INR", "normal": "debit",
                "debits_posted": 110.5, "credits_posted": 0, "balance": -110.5}],
                "totals": [{"currency": "INR", "balance": 0}, {"currency": "USD", "balance": 0.001}]}"#,
        )
        .unwrap_or(Value::Null);
        let books = seen_books(&data);
        assert_eq!(books.accounts[0].balance, Some(-11_050));
        assert_eq!(books.accounts[0].debits_posted, Some(11_050));
        assert_eq!(books.totals[0].balance, Some(0));
        // Not a paisa amount: unreadable, and so not zero.
        assert_eq!(books.totals[1].balance, None);
        assert_eq!(books.totals[1].balance_text, "0.001");
    }
}

#[cfg(test)]
mod waiting_tests {
    use super::*;

    #[test]
    fn the_wait_line_follows_the_phase() {
        let w = Waiting::default();
        let limits = Limits {
            settle: Duration::from_secs(120),
            read: Duration::from_secs(300),
            webhooks: Duration::from_secs(60),
        };
        let at = Duration::from_millis(3_200);
        assert_eq!(w.line(at, &limits), None);
        w.merchants.store(8, Ordering::Relaxed);
        w.unsettled.store(2, Ordering::Relaxed);
        w.phase.store(1, Ordering::Relaxed);
        assert_eq!(
            w.line(at, &limits).as_deref(),
            Some("[wait   3 s] settlement: 2 of 8 merchants still have pending pay-ins or held payouts (gives up after 120 s)")
        );
        w.phase.store(2, Ordering::Relaxed);
        assert!(w
            .line(at, &limits)
            .is_some_and(|l| l.contains("of 8 merchants") && l.contains("300 s")));
        w.webhooks_expected.store(1_300, Ordering::Relaxed);
        w.webhooks_seen.store(1_234, Ordering::Relaxed);
        w.phase.store(3, Ordering::Relaxed);
        assert_eq!(
            w.line(at, &limits).as_deref(),
            Some("[wait   3 s] webhooks: 1234 of 1300 settled records have their event at the sink (gives up after 60 s)")
        );
        w.phase.store(4, Ordering::Relaxed);
        assert_eq!(w.line(at, &limits), None);
    }
}

/// The SPEC §12–13 checks over a synthetic world with refunds, queued,
/// cancelled and reversed payouts, and a refused batch item.
#[cfg(test)]
mod v2_tests {
    use super::*;
    use crate::model::MerchantModel;
    use crate::sink::Delivered;

    const AV: &str = "merchant:usr_m:available";
    const HELD: &str = "merchant:usr_m:held";

    fn payment(id: &str, amount: u64, fee: u64, refunded: u64) -> SeenPayment {
        SeenPayment {
            id: id.into(),
            order_id: format!("o-{id}"),
            merchant_id: "usr_m".into(),
            amount: Some(amount),
            fee: Some(fee),
            net_amount: Some(amount - fee),
            status: "completed".into(),
            refunded_amount: Some(refunded),
            has_refunded_amount: true,
        }
    }

    fn payout(id: &str, amount: u64, status: &str) -> SeenPayout {
        SeenPayout {
            id: id.into(),
            reference_id: format!("ref-{id}"),
            merchant_id: "usr_m".into(),
            amount: Some(amount),
            fee: Some(500),
            status: status.into(),
            utr: matches!(status, "processed" | "reversed").then(|| format!("UTR{id}")),
        }
    }

    fn refund(id: &str, payment_id: &str, amount: u64, status: &str, reason: &str) -> SeenRefund {
        SeenRefund {
            id: id.into(),
            payment_id: payment_id.into(),
            merchant_id: "usr_m".into(),
            amount: Some(amount),
            status: status.into(),
            reason: reason.into(),
        }
    }

    /// Ledger lines with running balances: (kind, debit → credit, amount, reference).
    fn ledger(lines: &[(&str, &str, &str, u64, &str)]) -> Vec<SeenEntry> {
        let (mut available, mut held) = (0i128, 0i128);
        lines
            .iter()
            .enumerate()
            .map(|(n, (kind, debit, credit, amount, r))| {
                for (account, sign) in [(debit, -1), (credit, 1)] {
                    if *account == AV {
                        available += sign * i128::from(*amount);
                    } else if *account == HELD {
                        held += sign * i128::from(*amount);
                    }
                }
                SeenEntry {
                    id: format!("tr_{}", n + 1),
                    seq: n as u64 + 1,
                    kind: (*kind).into(),
                    debit_account: (*debit).into(),
                    credit_account: (*credit).into(),
                    amount: Some(*amount),
                    available_after: u64::try_from(available).ok(),
                    held_after: u64::try_from(held).ok(),
                    reference: (*r).into(),
                }
            })
            .collect()
    }

    /// The books of these lines plus transfers off the merchant's ledger.
    fn books(entries: &[SeenEntry], extra: &[(&str, &str, u64)]) -> SeenBooks {
        let mut posted: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let legs = entries
            .iter()
            .map(|e| {
                (
                    e.debit_account.as_str(),
                    e.credit_account.as_str(),
                    e.amount.unwrap_or(0),
                )
            })
            .chain(extra.iter().copied());
        for (debit, credit, amount) in legs {
            posted.entry(debit.into()).or_default().0 += amount;
            posted.entry(credit.into()).or_default().1 += amount;
        }
        let mut sum = 0;
        let accounts = posted
            .into_iter()
            .map(|(account, (debits, credits))| {
                let balance = i128::from(credits) - i128::from(debits);
                sum += balance;
                SeenAccount {
                    normal: normal_side(&account).into(),
                    account,
                    currency: "INR".into(),
                    debits_posted: Some(debits),
                    credits_posted: Some(credits),
                    balance: Some(balance),
                    balance_text: money::render_signed(balance),
                }
            })
            .collect();
        SeenBooks {
            accounts,
            totals: vec![SeenTotal {
                currency: "INR".into(),
                balance: Some(sum),
                balance_text: money::render_signed(sum),
            }],
            fetch_error: None,
        }
    }

    fn model_payout(id: &str, amount: u64, created: &str, edit: impl Fn(&mut Payout)) -> Payout {
        let mut p = Payout {
            id: id.into(),
            reference_id: format!("ref-{id}"),
            amount,
            fee: 500,
            created_status: created.into(),
            ..Payout::default()
        };
        edit(&mut p);
        p
    }

    /// One merchant (150 bps, payout fee 5.00): pay-ins txn_a 100.00 and
    /// txn_c 50.00; refunds rf_a 30.00 (processed), rf_b 10.00
    /// (fail@sandbox, failed), rf_c the whole of txn_c (amount left out,
    /// processed); payouts po_a processed, po_q queued then cancelled by
    /// the harness (no transfers), po_p pending then cancelled (held and
    /// released), po_r reversed, po_x whose cancel came too late
    /// (processed); one invalid batch item the server refused.
    fn world() -> (Model, Observed) {
        let payin = |id: &str, amount| Payin {
            id: id.into(),
            order_id: format!("o-{id}"),
            amount,
            fee: money::bps_half_up(amount, 150),
            expect_fail: false,
        };
        let model_refund = |id: &str, payment: &str, amount, reason: &str| Refund {
            id: id.into(),
            payment_id: payment.into(),
            amount,
            amount_sent: id != "rf_c",
            reason: reason.into(),
            expect_fail: reason == "fail@sandbox",
        };
        let mm = MerchantModel {
            payin_fee_bps: 150,
            payout_fee: 500,
            payins: vec![payin("txn_a", 10_000), payin("txn_c", 5_000)],
            refunds: vec![
                model_refund("rf_a", "txn_a", 3_000, "lt rf-a"),
                model_refund("rf_b", "txn_a", 1_000, "fail@sandbox"),
                model_refund("rf_c", "txn_c", 5_000, "lt rf-c"),
            ],
            payouts: vec![
                model_payout("po_a", 2_000, "pending", |_| {}),
                model_payout("po_q", 1_000, "queued", |p| {
                    p.queue_if_low_balance = true;
                    p.cancel = Cancel::Cancelled;
                }),
                model_payout("po_p", 500, "pending", |p| p.cancel = Cancel::Cancelled),
                model_payout("po_r", 800, "pending", |p| p.expect_reverse = true),
                model_payout("po_x", 400, "pending", |p| {
                    p.batch = true;
                    p.cancel = Cancel::Refused;
                }),
            ],
            invalid_payouts: vec!["ltb-1-0".into()],
            ..MerchantModel::new(0, "usr_m".into(), "k".into())
        };
        let model = Model {
            merchants: vec![mm],
            payin_failures_allowed: false,
            webhooks_expected: false,
            v2: true,
            queued_may_remain: false,
        };
        let lines = ledger(&[
            ("payin_credit", "rail:payins", AV, 9_850, "txn_a"),
            ("payin_credit", "rail:payins", AV, 4_925, "txn_c"),
            ("refund_hold", AV, HELD, 3_000, "rf_a"),
            ("refund_hold", AV, HELD, 1_000, "rf_b"),
            ("refund_hold", AV, HELD, 5_000, "rf_c"),
            ("refund_settle", HELD, "rail:refunds", 3_000, "rf_a"),
            ("refund_release", HELD, AV, 1_000, "rf_b"),
            ("refund_settle", HELD, "rail:refunds", 5_000, "rf_c"),
            ("payout_hold", AV, HELD, 2_500, "po_a"),
            ("payout_settle", HELD, "rail:payouts", 2_000, "po_a"),
            ("payout_fee", HELD, "platform:fees", 500, "po_a"),
            ("payout_hold", AV, HELD, 1_000, "po_p"),
            ("payout_release", HELD, AV, 1_000, "po_p"),
            ("payout_hold", AV, HELD, 1_300, "po_r"),
            ("payout_settle", HELD, "rail:payouts", 800, "po_r"),
            ("payout_fee", HELD, "platform:fees", 500, "po_r"),
            ("payout_reverse", "rail:payouts", AV, 800, "po_r"),
            ("payout_hold", AV, HELD, 900, "po_x"),
            ("payout_settle", HELD, "rail:payouts", 400, "po_x"),
            ("payout_fee", HELD, "platform:fees", 500, "po_x"),
        ]);
        let refunds = vec![
            refund("rf_a", "txn_a", 3_000, "processed", "lt rf-a"),
            refund("rf_b", "txn_a", 1_000, "failed", "fail@sandbox"),
            refund("rf_c", "txn_c", 5_000, "processed", "lt rf-c"),
        ];
        let seen = SeenMerchant {
            payments: vec![
                payment("txn_a", 10_000, 150, 3_000),
                payment("txn_c", 5_000, 75, 5_000),
            ],
            payouts: vec![
                payout("po_a", 2_000, "processed"),
                payout("po_q", 1_000, "cancelled"),
                payout("po_p", 500, "cancelled"),
                payout("po_r", 800, "reversed"),
                payout("po_x", 400, "processed"),
            ],
            refund_lookups: refunds.clone(),
            refunds,
            // 147.75 in; refunds 80.00; payouts 25.00, 5.00 (reversed:
            // the fee only), 9.00.
            balance: SeenBalance {
                available: Some(2_875),
                held: Some(0),
                pending_payins: Some(0),
                total_payins: Some(15_000),
                total_payouts: Some(3_200),
                total_fees: Some(1_725),
            },
            ..SeenMerchant::default()
        };
        let books = books(
            &lines,
            &[
                ("rail:payins", "platform:fees", 150),
                ("rail:payins", "platform:fees", 75),
            ],
        );
        let observed = Observed {
            merchants: vec![SeenMerchant {
                ledger: lines,
                fetch_errors: Vec::new(),
                ..seen
            }],
            books,
            settled: true,
            settle_wait: Duration::ZERO,
            swept: Sweep::default(),
            webhooks: None,
            webhook_wait: Duration::ZERO,
        };
        (model, observed)
    }

    fn kinds(problems: &[Problem]) -> Vec<&'static str> {
        problems.iter().map(Problem::kind).collect()
    }

    fn seen(observed: &mut Observed) -> &mut SeenMerchant {
        &mut observed.merchants[0]
    }

    fn seen_payout<'a>(observed: &'a mut Observed, id: &str) -> &'a mut SeenPayout {
        seen(observed)
            .payouts
            .iter_mut()
            .find(|p| p.id == id)
            .unwrap_or_else(|| panic!("no payout {id}"))
    }

    /// A payout's status, with a UTR when processed.
    fn set_status(observed: &mut Observed, id: &str, status: &str) {
        let p = seen_payout(observed, id);
        p.status = status.into();
        p.utr = matches!(status, "processed" | "reversed").then(|| format!("UTR{id}"));
    }

    /// The refund, in the listing and as read by id.
    fn edit_refund(observed: &mut Observed, id: &str, edit: impl Fn(&mut SeenRefund)) {
        let m = seen(observed);
        for r in m.refunds.iter_mut().chain(m.refund_lookups.iter_mut()) {
            if r.id == id {
                edit(r);
            }
        }
    }

    #[test]
    fn a_consistent_world_with_refunds_cancels_and_reversals_is_clean() {
        let (model, observed) = world();
        let report = audit(&model, &observed);
        assert_eq!(report.problems, Vec::new());
        let c = &report.checked;
        assert_eq!((c.refunds, c.payouts, c.cancels), (3, 5, 3));
        assert_eq!(c.ledger_entries, 20);
        for (status, n) in [
            ("refund_processed", 2),
            ("refund_failed", 1),
            ("payout_processed", 2),
            ("payout_cancelled", 2),
            ("payout_reversed", 1),
        ] {
            assert_eq!(c.statuses.get(status), Some(&n), "{status}: {c:?}");
        }
        // total_payins and total_payouts may leave out the refunded and
        // reversed amounts (SPEC §12–13 do not say): both readings pass,
        // nothing else does.
        let (model, mut observed) = world();
        seen(&mut observed).balance.total_payins = Some(15_000 - 8_000);
        seen(&mut observed).balance.total_payouts = Some(3_200 - 800);
        assert_eq!(audit(&model, &observed).problems, Vec::new());
        seen(&mut observed).balance.total_payins = Some(15_000 - 8_001);
        assert_eq!(
            audit(&model, &observed).problems,
            vec![Problem::Balance {
                merchant: 0,
                field: "total_payins",
                expected: 15_000,
                actual: Some(6_999),
            }]
        );
        // An unanswered refund the server has is adopted and audited.
        let (mut model, observed) = world();
        let mut rf_c = model.merchants[0].refunds.remove(2);
        rf_c.id.clear();
        model.merchants[0].uncertain_refunds.push(rf_c);
        let report = audit(&model, &observed);
        assert_eq!(report.problems, Vec::new());
        assert_eq!((report.checked.adopted, report.checked.refunds), (1, 2));
    }

    #[test]
    fn each_refund_inconsistency_is_named() {
        // The server's record has another amount.
        let (model, mut observed) = world();
        edit_refund(&mut observed, "rf_a", |r| r.amount = Some(3_100));
        let problems = audit(&model, &observed).problems;
        assert!(
            problems.contains(&Problem::RefundField {
                id: "rf_a".into(),
                field: "amount",
                expected: "30.00".into(),
                actual: "31.00".into(),
            }),
            "{problems:?}"
        );
        // Another pay-in, another reason.
        let (model, mut observed) = world();
        edit_refund(&mut observed, "rf_c", |r| r.reason = "other".into());
        assert_eq!(
            audit(&model, &observed).problems,
            vec![Problem::RefundField {
                id: "rf_c".into(),
                field: "reason",
                expected: "lt rf-c".into(),
                actual: "other".into(),
            }]
        );
        // fail@sandbox processed: the status, and the money it took.
        let (model, mut observed) = world();
        edit_refund(&mut observed, "rf_b", |r| r.status = "processed".into());
        let problems = audit(&model, &observed).problems;
        assert_eq!(
            problems[0],
            Problem::RefundStatus {
                id: "rf_b".into(),
                expected: "failed",
                actual: "processed".into(),
            }
        );
        assert!(
            kinds(&problems).contains(&"refunded_amount"),
            "{problems:?}"
        );
        assert!(kinds(&problems).contains(&"ledger"), "{problems:?}");
        // Still pending at the audit.
        let (model, mut observed) = world();
        edit_refund(&mut observed, "rf_a", |r| r.status = "pending".into());
        assert!(audit(&model, &observed)
            .problems
            .contains(&Problem::RefundStatus {
                id: "rf_a".into(),
                expected: "processed",
                actual: "pending".into(),
            }));
        // refunded_amount counting the failed refund: exactly that.
        let (model, mut observed) = world();
        seen(&mut observed).payments[0].refunded_amount = Some(4_000);
        assert_eq!(
            audit(&model, &observed).problems,
            vec![Problem::RefundedAmount {
                payment_id: "txn_a".into(),
                expected: "30.00".into(),
                actual: "40.00".into(),
            }]
        );
        // A v2 server must show refunded_amount.
        let (model, mut observed) = world();
        seen(&mut observed).payments[1].has_refunded_amount = false;
        seen(&mut observed).payments[1].refunded_amount = None;
        assert_eq!(
            audit(&model, &observed).problems,
            vec![Problem::RefundedAmount {
                payment_id: "txn_c".into(),
                expected: "50.00".into(),
                actual: "absent".into(),
            }]
        );
        // Acknowledged, but GET /refunds/:id does not find it (nor the list).
        let (model, mut observed) = world();
        let m = seen(&mut observed);
        m.refunds.retain(|r| r.id != "rf_a");
        m.refund_lookups.retain(|r| r.id != "rf_a");
        let problems = audit(&model, &observed).problems;
        assert_eq!(
            problems[0],
            Problem::MissingRefund {
                merchant: 0,
                id: "rf_a".into(),
            }
        );
        // Found by id but not listed.
        let (model, mut observed) = world();
        seen(&mut observed).refunds.retain(|r| r.id != "rf_c");
        let problems = audit(&model, &observed).problems;
        assert_eq!(
            problems[0],
            Problem::RefundField {
                id: "rf_c".into(),
                field: "listing",
                expected: "in GET /refunds".into(),
                actual: "absent".into(),
            }
        );
        // A refund nobody sent, taking txn_a past its amount.
        let (model, mut observed) = world();
        let m = seen(&mut observed);
        m.refunds
            .push(refund("rf_z", "txn_a", 8_000, "processed", "lt rf-z"));
        m.payments[0].refunded_amount = Some(11_000);
        let problems = audit(&model, &observed).problems;
        assert!(
            problems.contains(&Problem::UnexpectedRefund {
                merchant: 0,
                id: "rf_z".into(),
                payment_id: "txn_a".into(),
            }),
            "{problems:?}"
        );
        assert!(
            problems.contains(&Problem::RefundsExceedPayment {
                payment_id: "txn_a".into(),
                refunded: "110.00".into(),
                amount: "100.00".into(),
            }),
            "{problems:?}"
        );
        // Its transfers are not on the ledger: the ledger says so too.
        assert!(
            problems.iter().any(|p| matches!(p,
                Problem::Ledger { detail, .. } if detail.starts_with("rf_z refund_hold: lines []")
            )),
            "{problems:?}"
        );
    }

    #[test]
    fn each_payout_lifecycle_inconsistency_is_named() {
        let status = |id: &str, expected: &str, actual: &str| Problem::PayoutStatus {
            id: id.into(),
            expected: expected.into(),
            actual: actual.into(),
        };
        // The cancel was acknowledged, yet the payout was paid out.
        let (model, mut observed) = world();
        set_status(&mut observed, "po_q", "processed");
        let problems = audit(&model, &observed).problems;
        assert_eq!(problems[0], status("po_q", "cancelled", "processed"));
        // The cancel was refused (409), yet the payout is cancelled.
        let (model, mut observed) = world();
        set_status(&mut observed, "po_x", "cancelled");
        let problems = audit(&model, &observed).problems;
        assert_eq!(problems[0], status("po_x", "processed", "cancelled"));
        // Sent to the reversing account but never reversed.
        let (model, mut observed) = world();
        set_status(&mut observed, "po_r", "processed");
        let problems = audit(&model, &observed).problems;
        assert_eq!(problems[0], status("po_r", "reversed", "processed"));
        // Reversed without its payout_reverse line.
        let (model, mut observed) = world();
        let lines: Vec<_> = seen(&mut observed)
            .ledger
            .iter()
            .filter(|e| e.kind != "payout_reverse")
            .map(|e| {
                (
                    e.kind.clone(),
                    e.debit_account.clone(),
                    e.credit_account.clone(),
                    e.amount.unwrap_or(0),
                    e.reference.clone(),
                )
            })
            .collect();
        let lines: Vec<(&str, &str, &str, u64, &str)> = lines
            .iter()
            .map(|(k, d, c, a, r)| (k.as_str(), d.as_str(), c.as_str(), *a, r.as_str()))
            .collect();
        seen(&mut observed).ledger = ledger(&lines);
        let problems = audit(&model, &observed).problems;
        assert!(
            problems.iter().any(|p| matches!(p,
                Problem::Ledger { detail, .. }
                    if detail == "po_r payout_reverse: lines [], the records imply [8.00 rail:payouts → merchant:usr_m:available]"
            )),
            "{problems:?}"
        );
        // Still queued after the sweep; legal when queued payouts may
        // remain (no sweep) and the payout asked to be queued.
        let (mut model, mut observed) = world();
        model.merchants[0].payouts[1].cancel = Cancel::NotSent;
        set_status(&mut observed, "po_q", "queued");
        assert_eq!(
            audit(&model, &observed).problems,
            vec![status("po_q", "processed", "queued")]
        );
        model.queued_may_remain = true;
        assert_eq!(audit(&model, &observed).problems, Vec::new());
        // Answered `pending`, then cancelled: the hold and its release
        // must be on the ledger.
        let (model, mut observed) = world();
        let m = seen(&mut observed);
        m.ledger.retain(|e| e.reference != "po_p");
        for (n, e) in m.ledger.iter_mut().enumerate() {
            e.seq = n as u64 + 1;
        }
        let problems = audit(&model, &observed).problems;
        assert!(
            problems.iter().any(|p| matches!(p,
                Problem::Ledger { detail, .. }
                    if detail == "po_p payout_hold: lines [], the records imply [10.00 merchant:usr_m:available → merchant:usr_m:held]"
            )),
            "{problems:?}"
        );
        // A queued-then-cancelled payout held but never released.
        let (model, mut observed) = world();
        let m = seen(&mut observed);
        let mut hold = m.ledger[0].clone();
        hold.seq = 21;
        hold.id = "tr_21".into();
        hold.kind = "payout_hold".into();
        hold.debit_account = AV.into();
        hold.credit_account = HELD.into();
        hold.amount = Some(1_500);
        hold.reference = "po_q".into();
        hold.available_after = Some(1_375);
        hold.held_after = Some(1_500);
        m.ledger.push(hold);
        let problems = audit(&model, &observed).problems;
        assert!(
            problems.iter().any(|p| matches!(p,
                Problem::Ledger { detail, .. } if detail.starts_with("po_q payout_release: lines []")
            )),
            "{problems:?}"
        );
        // Processed without a bank reference.
        let (model, mut observed) = world();
        seen_payout(&mut observed, "po_a").utr = None;
        assert_eq!(
            audit(&model, &observed).problems,
            vec![Problem::PayoutField {
                id: "po_a".into(),
                field: "utr",
                expected: "a bank reference".into(),
                actual: "none".into(),
            }]
        );
        // Queued although it did not ask to be.
        let (mut model, observed) = world();
        model.merchants[0].payouts[0].created_status = "queued".into();
        assert_eq!(
            audit(&model, &observed).problems,
            vec![Problem::PayoutField {
                id: "po_a".into(),
                field: "status on creation",
                expected: "pending".into(),
                actual: "queued".into(),
            }]
        );
        // The invalid batch item exists after all.
        let (model, mut observed) = world();
        let mut accepted = payout("po_bad", 100, "rejected");
        accepted.reference_id = "ltb-1-0".into();
        seen(&mut observed).payouts.push(accepted);
        let problems = audit(&model, &observed).problems;
        assert_eq!(
            problems[0],
            Problem::InvalidPayoutAccepted {
                merchant: 0,
                id: "po_bad".into(),
                reference_id: "ltb-1-0".into(),
            }
        );
    }

    fn delivered(event: &str, status: &str, amount: u64) -> Delivered {
        Delivered {
            event_id: format!("evt_{event}_{amount}"),
            event: event.into(),
            status: status.into(),
            amount: Some(amount),
            merchant_index: 0,
        }
    }

    /// Every event the world's records had on their way.
    fn sink_log() -> SinkLog {
        let mut records: HashMap<String, Vec<Delivered>> = HashMap::new();
        let mut add = |id: &str, e: Delivered| records.entry(id.into()).or_default().push(e);
        add("txn_a", delivered("payment.completed", "completed", 10_000));
        add("txn_c", delivered("payment.completed", "completed", 5_000));
        add("rf_a", delivered("refund.processed", "processed", 3_000));
        add("rf_b", delivered("refund.failed", "failed", 1_000));
        add("rf_c", delivered("refund.processed", "processed", 5_000));
        add("po_a", delivered("payout.processed", "processed", 2_000));
        add("po_q", delivered("payout.queued", "queued", 1_000));
        add("po_q", delivered("payout.cancelled", "cancelled", 1_000));
        add("po_p", delivered("payout.cancelled", "cancelled", 500));
        add("po_r", delivered("payout.processed", "processed", 800));
        add("po_r", delivered("payout.reversed", "reversed", 800));
        add("po_x", delivered("payout.processed", "processed", 400));
        SinkLog {
            received: 12,
            by_event_id: HashMap::new(),
            records,
            bad_signatures: Vec::new(),
            other_events: 0,
            delay_ms: crate::stats::histogram(1_000, 2),
        }
    }

    #[test]
    fn webhooks_follow_each_records_way() {
        let (mut model, mut observed) = world();
        model.webhooks_expected = true;
        observed.webhooks = Some(sink_log());
        assert_eq!(audit(&model, &observed).problems, Vec::new());
        // A reversed payout needs both its events.
        let mut lost = observed.clone();
        if let Some(log) = lost.webhooks.as_mut() {
            if let Some(events) = log.records.get_mut("po_r") {
                events.retain(|e| e.status != "reversed");
            }
        }
        assert_eq!(
            audit(&model, &lost).problems,
            vec![Problem::WebhookLost {
                id: "po_r".into(),
                status: "reversed".into(),
            }]
        );
        // A cancelled payout has no business with payout.processed.
        let mut wrong = observed.clone();
        if let Some(log) = wrong.webhooks.as_mut() {
            log.records
                .entry("po_p".into())
                .or_default()
                .push(delivered("payout.processed", "processed", 500));
        }
        assert_eq!(
            audit(&model, &wrong).problems,
            vec![Problem::WebhookMismatch {
                id: "po_p".into(),
                detail: "event evt_payout.processed_500 says processed, the record cancelled"
                    .into(),
            }]
        );
        // A refund's event lost.
        let mut no_refund = observed.clone();
        if let Some(log) = no_refund.webhooks.as_mut() {
            log.records.remove("rf_b");
        }
        assert_eq!(
            audit(&model, &no_refund).problems,
            vec![Problem::WebhookLost {
                id: "rf_b".into(),
                status: "failed".into(),
            }]
        );
    }
}
