//! Listings in terms of records, not keyspaces: which records (`Listing`,
//! with a `Scope` for pay-ins and payouts) and which page of them
//! (`Window`). The index each one reads is this crate's business.

use crate::keys::IndexTag;
use crate::{Page, Space, StorageError, Store};
use domain::{PaymentId, UserId};

/// Whose pay-ins or payouts a listing covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everyone's (the admin's view).
    All,
    /// One merchant's.
    Merchant(UserId),
    /// Those one user created (an api_user's own).
    CreatedBy(UserId),
    /// Those of a manager's merchants.
    Team(UserId),
}

/// Which records to list, newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listing {
    Payments(Scope),
    Payouts(Scope),
    /// Every user, or those below one user in the role tree.
    Users(Option<UserId>),
    /// Every webhook event, or those addressed to one recipient.
    Events(Option<UserId>),
    /// Every ledger transfer.
    Transfers,
    /// Settlements (`CreatedBy` lists nothing: nobody creates them but
    /// the platform; callers map an api_user to its merchant).
    Settlements(Scope),
    Refunds(Scope),
    /// The refunds of one pay-in.
    RefundsOfPayment(PaymentId),
    /// Every audit entry, or those in one user's subtree (SPEC §16).
    Audit(Option<UserId>),
}

/// One page's bounds: ids created in `[from_ms, to_ms)`, strictly older
/// than `before` (the cursor), at most `limit` kept, at most `scan_max`
/// looked at.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub before: Option<[u8; 16]>,
    pub limit: usize,
    pub scan_max: usize,
}

/// Where a listing's ids come from: one owner's index rows, or every key of
/// a space keyed by id.
enum Source {
    Index(IndexTag, UserId),
    Space(Space),
}

impl Listing {
    fn source(self) -> Source {
        use Listing::*;
        use Scope::*;
        match self {
            Payments(All) => Source::Space(Space::Payments),
            Payments(Merchant(m)) => Source::Index(IndexTag::PaymentsByMerchant, m),
            Payments(CreatedBy(u)) => Source::Index(IndexTag::PaymentsByCreator, u),
            Payments(Team(t)) => Source::Index(IndexTag::PaymentsByTeam, t),
            Payouts(All) => Source::Space(Space::Payouts),
            Payouts(Merchant(m)) => Source::Index(IndexTag::PayoutsByMerchant, m),
            Payouts(CreatedBy(u)) => Source::Index(IndexTag::PayoutsByCreator, u),
            Payouts(Team(t)) => Source::Index(IndexTag::PayoutsByTeam, t),
            Users(None) => Source::Space(Space::Users),
            Users(Some(ancestor)) => Source::Index(IndexTag::UsersByAncestor, ancestor),
            Events(None) => Source::Space(Space::Outbox),
            Events(Some(recipient)) => Source::Index(IndexTag::EventsByRecipient, recipient),
            Transfers => Source::Space(Space::Transfers),
            Settlements(All) => Source::Space(Space::Settlements),
            Settlements(Merchant(m) | CreatedBy(m)) => {
                Source::Index(IndexTag::SettlementsByMerchant, m)
            }
            Settlements(Team(t)) => Source::Index(IndexTag::SettlementsByTeam, t),
            Refunds(All) => Source::Space(Space::Refunds),
            Refunds(Merchant(m)) => Source::Index(IndexTag::RefundsByMerchant, m),
            Refunds(CreatedBy(u)) => Source::Index(IndexTag::RefundsByCreator, u),
            Refunds(Team(t)) => Source::Index(IndexTag::RefundsByTeam, t),
            Audit(None) => Source::Space(Space::Audit),
            Audit(Some(owner)) => Source::Index(IndexTag::AuditByScope, owner),
            // An index row's owner is 16 bytes: here, the pay-in's id.
            RefundsOfPayment(p) => Source::Index(
                IndexTag::RefundsByPayment,
                UserId::from_bytes(*p.as_bytes()),
            ),
        }
    }
}

impl Store {
    /// The ids of one page of `listing`, newest first. `keep` sees each id
    /// (and typically loads and filters its record) and decides whether it
    /// counts toward `window.limit`. `Page::next` is the cursor to continue
    /// from, if anything may remain.
    pub fn list(
        &self,
        listing: Listing,
        window: Window,
        keep: impl FnMut(&[u8; 16]) -> Result<bool, StorageError>,
    ) -> Result<Page, StorageError> {
        let Window {
            from_ms,
            to_ms,
            before,
            limit,
            scan_max,
        } = window;
        match listing.source() {
            Source::Index(tag, owner) => {
                self.list_index(tag, &owner, from_ms, to_ms, before, limit, scan_max, keep)
            }
            Source::Space(space) => {
                self.list_all(space, from_ms, to_ms, before, limit, scan_max, keep)
            }
        }
    }
}
