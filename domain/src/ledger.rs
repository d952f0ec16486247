//! The double-entry ledger (SPEC §11). Every movement of money is a
//! `Transfer` of a positive amount from one `Account` (debited) to another
//! (credited). An account's balance is `credits_posted − debits_posted`, so
//! per currency the balances of all accounts always sum to exactly zero.
//!
//! The platform accounts (`platform:fees`, `rail:*`) are shared by every
//! merchant, but each merchant's wallet posts only its own share of them:
//! a `Wallet` keeps the debits and credits it posted to each of the seven
//! account kinds. The shares of one wallet sum to zero by themselves (every
//! transfer a wallet posts touches two of its shares), so the platform-wide
//! zero sum is a sum of zeros: it can be checked wallet by wallet,
//! incrementally, without a global lock on the hot path.
//!
//! `Wallet::post` is the only code that changes a balance. It asserts the
//! zero sum after every transfer; `Wallet::replay` and `audit` check a
//! wallet against its stored transfers.

use crate::{Currency, Money, Rejection, Timestamp, TransferId, UserId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The seven kinds of account. The two merchant kinds exist once per
/// merchant; the others once per platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// `merchant:<id>:available`: what the platform owes the merchant, spendable.
    Available,
    /// `merchant:<id>:held`: reserved for pending payouts, refunds, settlements.
    Held,
    /// `platform:fees`: fees earned.
    PlatformFees,
    /// `rail:payins`: collected from customers through the rail.
    RailPayins,
    /// `rail:payouts`: sent to beneficiaries.
    RailPayouts,
    /// `rail:refunds`: returned to customers.
    RailRefunds,
    /// `rail:settlements`: sent to merchants' own bank accounts.
    RailSettlements,
}

/// Whether an account's balance normally grows with debits (assets) or
/// with credits (liabilities, revenue).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normal {
    Debit,
    Credit,
}

impl Normal {
    pub fn as_str(self) -> &'static str {
        match self {
            Normal::Debit => "debit",
            Normal::Credit => "credit",
        }
    }
}

impl AccountKind {
    pub const ALL: [AccountKind; 7] = [
        AccountKind::Available,
        AccountKind::Held,
        AccountKind::PlatformFees,
        AccountKind::RailPayins,
        AccountKind::RailPayouts,
        AccountKind::RailRefunds,
        AccountKind::RailSettlements,
    ];

    /// Position in `ALL` (and in a wallet's shares).
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn is_merchant(self) -> bool {
        matches!(self, AccountKind::Available | AccountKind::Held)
    }

    pub fn normal(self) -> Normal {
        match self {
            AccountKind::RailPayins
            | AccountKind::RailPayouts
            | AccountKind::RailRefunds
            | AccountKind::RailSettlements => Normal::Debit,
            _ => Normal::Credit,
        }
    }

    /// The account id of a platform account; `None` for the merchant kinds.
    fn platform_name(self) -> Option<&'static str> {
        match self {
            AccountKind::PlatformFees => Some("platform:fees"),
            AccountKind::RailPayins => Some("rail:payins"),
            AccountKind::RailPayouts => Some("rail:payouts"),
            AccountKind::RailRefunds => Some("rail:refunds"),
            AccountKind::RailSettlements => Some("rail:settlements"),
            AccountKind::Available | AccountKind::Held => None,
        }
    }
}

/// An account id: a merchant account (kind + merchant) or a platform one.
/// Renders as SPEC §11 names it: `merchant:usr_…:available`, `rail:payins`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Account {
    kind: AccountKind,
    merchant: Option<UserId>,
}

impl Account {
    /// The account of `kind` as seen from `merchant`'s wallet: its own for
    /// the merchant kinds, the shared one otherwise.
    pub fn of(kind: AccountKind, merchant: UserId) -> Account {
        Account {
            kind,
            merchant: kind.is_merchant().then_some(merchant),
        }
    }

    /// A platform account; `None` for the merchant kinds.
    pub fn platform(kind: AccountKind) -> Option<Account> {
        (!kind.is_merchant()).then_some(Account {
            kind,
            merchant: None,
        })
    }

    pub fn kind(&self) -> AccountKind {
        self.kind
    }

    /// The merchant of a merchant account.
    pub fn merchant(&self) -> Option<UserId> {
        self.merchant
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.merchant) {
            (AccountKind::Available, Some(m)) => write!(f, "merchant:{m}:available"),
            (AccountKind::Held, Some(m)) => write!(f, "merchant:{m}:held"),
            (kind, _) => f.write_str(kind.platform_name().unwrap_or("?")),
        }
    }
}

impl FromStr for Account {
    type Err = ();

    fn from_str(text: &str) -> Result<Account, ()> {
        if let Some(rest) = text.strip_prefix("merchant:") {
            let (id, side) = rest.rsplit_once(':').ok_or(())?;
            let kind = match side {
                "available" => AccountKind::Available,
                "held" => AccountKind::Held,
                _ => return Err(()),
            };
            return Ok(Account::of(kind, id.parse()?));
        }
        AccountKind::ALL
            .into_iter()
            .find(|k| k.platform_name() == Some(text))
            .and_then(Account::platform)
            .ok_or(())
    }
}

impl Serialize for Account {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Why money moved. Each kind fixes which two accounts it moves between.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferKind {
    PayinCredit,
    PayinFee,
    PayoutHold,
    PayoutSettle,
    PayoutFee,
    PayoutRelease,
    PayoutReverse,
    RefundHold,
    RefundSettle,
    RefundRelease,
    SettlementHold,
    SettlementSettle,
    SettlementRelease,
}

impl TransferKind {
    pub const ALL: [TransferKind; 13] = [
        TransferKind::PayinCredit,
        TransferKind::PayinFee,
        TransferKind::PayoutHold,
        TransferKind::PayoutSettle,
        TransferKind::PayoutFee,
        TransferKind::PayoutRelease,
        TransferKind::PayoutReverse,
        TransferKind::RefundHold,
        TransferKind::RefundSettle,
        TransferKind::RefundRelease,
        TransferKind::SettlementHold,
        TransferKind::SettlementSettle,
        TransferKind::SettlementRelease,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TransferKind::PayinCredit => "payin_credit",
            TransferKind::PayinFee => "payin_fee",
            TransferKind::PayoutHold => "payout_hold",
            TransferKind::PayoutSettle => "payout_settle",
            TransferKind::PayoutFee => "payout_fee",
            TransferKind::PayoutRelease => "payout_release",
            TransferKind::PayoutReverse => "payout_reverse",
            TransferKind::RefundHold => "refund_hold",
            TransferKind::RefundSettle => "refund_settle",
            TransferKind::RefundRelease => "refund_release",
            TransferKind::SettlementHold => "settlement_hold",
            TransferKind::SettlementSettle => "settlement_settle",
            TransferKind::SettlementRelease => "settlement_release",
        }
    }

    pub fn parse(text: &str) -> Option<TransferKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// (debited, credited), SPEC §11.
    pub fn accounts(self) -> (AccountKind, AccountKind) {
        use AccountKind::*;
        match self {
            TransferKind::PayinCredit => (RailPayins, Available),
            TransferKind::PayinFee => (RailPayins, PlatformFees),
            TransferKind::PayoutHold | TransferKind::RefundHold | TransferKind::SettlementHold => {
                (Available, Held)
            }
            TransferKind::PayoutSettle => (Held, RailPayouts),
            TransferKind::PayoutFee => (Held, PlatformFees),
            TransferKind::PayoutRelease
            | TransferKind::RefundRelease
            | TransferKind::SettlementRelease => (Held, Available),
            TransferKind::PayoutReverse => (RailPayouts, Available),
            TransferKind::RefundSettle => (Held, RailRefunds),
            TransferKind::SettlementSettle => (Held, RailSettlements),
        }
    }

    /// Whether a transfer of this kind touches one of the merchant's own
    /// accounts (and so appears in its ledger, with a `seq`).
    pub fn touches_merchant(self) -> bool {
        let (debit, credit) = self.accounts();
        debit.is_merchant() || credit.is_merchant()
    }
}

/// One immutable transfer, as posted by a merchant's wallet. `posting`
/// numbers every transfer the wallet posted (1..n); `seq` numbers those
/// that touch the merchant's own accounts (its ledger, SPEC §11), and is
/// 0 for the others (a pay-in's fee goes from the rail to the platform).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub id: TransferId,
    pub merchant_id: UserId,
    pub currency: Currency,
    pub posting: u64,
    pub seq: u64,
    pub kind: TransferKind,
    pub amount: Money,
    /// The `txn_`/`po_`/`rf_`/`st_` id of the record that caused it.
    pub reference: String,
    /// The merchant's balances right after this transfer.
    pub available_after: Money,
    pub held_after: Money,
    pub created_at: Timestamp,
}

impl Transfer {
    pub fn debit_account(&self) -> Account {
        Account::of(self.kind.accounts().0, self.merchant_id)
    }

    pub fn credit_account(&self) -> Account {
        Account::of(self.kind.accounts().1, self.merchant_id)
    }

    /// Whether it moves money to or from `account`.
    pub fn touches(&self, account: &Account) -> bool {
        self.debit_account() == *account || self.credit_account() == *account
    }
}

/// What one wallet posted to one account kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posted {
    pub debits: Money,
    pub credits: Money,
}

impl Posted {
    /// `credits − debits`.
    pub fn balance(&self) -> i128 {
        i128::from(self.credits.paise()) - i128::from(self.debits.paise())
    }
}

/// A merchant's wallet in one currency: its two accounts, its shares of
/// the platform accounts, and running totals for reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wallet {
    pub merchant_id: UserId,
    pub currency: Currency,
    /// Balance of `merchant:<id>:available`.
    pub available: Money,
    /// Balance of `merchant:<id>:held`.
    pub held: Money,
    /// What this wallet posted to each account kind (`AccountKind::index`).
    pub posted: [Posted; 7],
    /// Sum of the amounts of pay-ins still pending (no money has moved).
    pub pending_payins: Money,
    /// Gross amount of completed pay-ins.
    pub total_payins: Money,
    /// Amount (without fees) of processed payouts.
    pub total_payouts: Money,
    /// Fees charged on completed pay-ins and processed payouts.
    pub total_fees: Money,
    /// `seq` of the last transfer touching the merchant's accounts.
    pub last_seq: u64,
    /// `posting` of the last transfer this wallet posted.
    pub last_posting: u64,
    pub updated_at: Timestamp,
}

impl Wallet {
    pub fn new(merchant_id: UserId, currency: Currency, now: Timestamp) -> Wallet {
        Wallet {
            merchant_id,
            currency,
            available: Money::ZERO,
            held: Money::ZERO,
            posted: [Posted::default(); 7],
            pending_payins: Money::ZERO,
            total_payins: Money::ZERO,
            total_payouts: Money::ZERO,
            total_fees: Money::ZERO,
            last_seq: 0,
            last_posting: 0,
            updated_at: now,
        }
    }

    /// `available + held`.
    pub fn total(&self) -> i128 {
        i128::from(self.available.paise()) + i128::from(self.held.paise())
    }

    /// This wallet's share of `kind`'s balance.
    pub fn balance(&self, kind: AccountKind) -> i128 {
        self.posted[kind.index()].balance()
    }

    /// The sum of this wallet's shares of every account: always 0.
    pub fn zero_sum(&self) -> i128 {
        self.posted.iter().map(Posted::balance).sum()
    }

    /// Checks the wallet's own books: the shares sum to zero and the two
    /// merchant balances equal their accounts' postings.
    pub fn check(&self) -> Result<(), String> {
        if self.zero_sum() != 0 {
            return Err(format!("accounts sum to {} paise, not 0", self.zero_sum()));
        }
        let available = self.balance(AccountKind::Available);
        let held = self.balance(AccountKind::Held);
        if (available, held) != (self.available.paise().into(), self.held.paise().into()) {
            return Err(format!(
                "available/held {}/{} differ from their accounts {available}/{held}",
                self.available, self.held
            ));
        }
        Ok(())
    }

    /// Posts one transfer of `amount` (> 0) and returns it. Refuses, and
    /// changes nothing, when `available` cannot cover a debit of it
    /// (`insufficient_balance`); a debit that `held` cannot cover, or any
    /// overflow, means the caller's bookkeeping is broken (`database_error`).
    pub fn post(
        &mut self,
        kind: TransferKind,
        amount: Money,
        reference: String,
        now: Timestamp,
    ) -> Result<Transfer, Rejection> {
        if amount.is_zero() {
            return Err(Rejection::DatabaseError);
        }
        let mut next = self.clone();
        next.move_money(kind, amount)?;
        next.last_posting += 1;
        if kind.touches_merchant() {
            next.last_seq += 1;
        }
        next.updated_at = now;
        assert_eq!(next.zero_sum(), 0, "a transfer broke the zero sum");
        *self = next;
        // The transfer's time is its id's time, so time filters on ids
        // (the admin's listing) agree with `created_at`.
        let id = TransferId::new();
        let created_at = Timestamp::from_unix_ms(i64::try_from(id.unix_ms()).unwrap_or(i64::MAX));
        Ok(Transfer {
            id,
            merchant_id: self.merchant_id,
            currency: self.currency,
            posting: self.last_posting,
            seq: if kind.touches_merchant() {
                self.last_seq
            } else {
                0
            },
            kind,
            amount,
            reference,
            available_after: self.available,
            held_after: self.held,
            created_at,
        })
    }

    /// The balance effect of a transfer, on `self` (which may be left
    /// half-changed on error: callers work on a copy).
    fn move_money(&mut self, kind: TransferKind, amount: Money) -> Result<(), Rejection> {
        let (debit, credit) = kind.accounts();
        let broken = Rejection::DatabaseError;
        match debit {
            AccountKind::Available => {
                self.available = self
                    .available
                    .checked_sub(amount)
                    .ok_or(Rejection::InsufficientBalance)?
            }
            AccountKind::Held => self.held = self.held.checked_sub(amount).ok_or(broken.clone())?,
            _ => {}
        }
        match credit {
            AccountKind::Available => {
                self.available = self.available.checked_add(amount).ok_or(broken.clone())?
            }
            AccountKind::Held => self.held = self.held.checked_add(amount).ok_or(broken.clone())?,
            _ => {}
        }
        let d = &mut self.posted[debit.index()];
        d.debits = d.debits.checked_add(amount).ok_or(broken.clone())?;
        let c = &mut self.posted[credit.index()];
        c.credits = c.credits.checked_add(amount).ok_or(broken)?;
        Ok(())
    }

    /// Replays a stored transfer onto this wallet's balances and postings
    /// (not its report totals), checking its numbering and after-balances.
    /// Used by audits, which rebuild a wallet from its transfers.
    pub fn replay(&mut self, t: &Transfer) -> Result<(), String> {
        if t.merchant_id != self.merchant_id {
            return Err(format!("transfer {} belongs to {}", t.id, t.merchant_id));
        }
        if t.posting != self.last_posting + 1 {
            return Err(format!(
                "posting {} follows {} (a gap or a repeat)",
                t.posting, self.last_posting
            ));
        }
        let want_seq = if t.kind.touches_merchant() {
            self.last_seq + 1
        } else {
            0
        };
        if t.seq != want_seq {
            return Err(format!(
                "transfer {} has seq {} (want {want_seq})",
                t.id, t.seq
            ));
        }
        if t.amount.is_zero() {
            return Err(format!("transfer {} moves nothing", t.id));
        }
        self.move_money(t.kind, t.amount)
            .map_err(|r| format!("transfer {} cannot apply: {}", t.id, r.code()))?;
        self.last_posting = t.posting;
        if t.kind.touches_merchant() {
            self.last_seq = t.seq;
        }
        if (t.available_after, t.held_after) != (self.available, self.held) {
            return Err(format!(
                "transfer {} says available/held {}/{} after it, the replay {}/{}",
                t.id, t.available_after, t.held_after, self.available, self.held
            ));
        }
        if self.zero_sum() != 0 {
            return Err(format!("transfer {} breaks the zero sum", t.id));
        }
        Ok(())
    }

    /// Whether two wallets agree on everything the ledger determines.
    pub fn same_books(&self, other: &Wallet) -> bool {
        (
            self.available,
            self.held,
            self.posted,
            self.last_seq,
            self.last_posting,
        ) == (
            other.available,
            other.held,
            other.posted,
            other.last_seq,
            other.last_posting,
        )
    }
}

/// Checks a wallet against all the transfers it posted, oldest first: the
/// numbering, every after-balance, the zero sum, and the final balances and
/// postings. Returns a description of the first disagreement.
pub fn audit<'a>(
    wallet: &Wallet,
    transfers: impl IntoIterator<Item = &'a Transfer>,
) -> Result<(), String> {
    wallet.check()?;
    let mut replayed = Wallet::new(wallet.merchant_id, wallet.currency, wallet.updated_at);
    for t in transfers {
        replayed.replay(t)?;
    }
    if !replayed.same_books(wallet) {
        return Err(format!(
            "wallet (available {}, held {}, seq {}, posting {}) differs from its transfers \
             (available {}, held {}, seq {}, posting {})",
            wallet.available,
            wallet.held,
            wallet.last_seq,
            wallet.last_posting,
            replayed.available,
            replayed.held,
            replayed.last_seq,
            replayed.last_posting
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_unix_ms(0)
    }

    fn post(w: &mut Wallet, kind: TransferKind, paise: u64, log: &mut Vec<Transfer>) {
        log.push(
            w.post(kind, Money::from_paise(paise), "ref".into(), now())
                .unwrap(),
        );
    }

    #[test]
    fn every_kind_keeps_the_zero_sum_and_the_books() {
        let mut w = Wallet::new(UserId::new(), Currency::Inr, now());
        let mut log = Vec::new();
        post(&mut w, TransferKind::PayinCredit, 9_800, &mut log);
        post(&mut w, TransferKind::PayinFee, 200, &mut log);
        post(&mut w, TransferKind::PayoutHold, 4_100, &mut log);
        post(&mut w, TransferKind::PayoutSettle, 4_000, &mut log);
        post(&mut w, TransferKind::PayoutFee, 100, &mut log);
        post(&mut w, TransferKind::PayoutReverse, 4_000, &mut log);
        post(&mut w, TransferKind::RefundHold, 1_000, &mut log);
        post(&mut w, TransferKind::RefundSettle, 1_000, &mut log);
        post(&mut w, TransferKind::SettlementHold, 500, &mut log);
        post(&mut w, TransferKind::SettlementRelease, 500, &mut log);
        post(&mut w, TransferKind::SettlementHold, 500, &mut log);
        post(&mut w, TransferKind::SettlementSettle, 500, &mut log);
        assert_eq!(w.zero_sum(), 0);
        assert_eq!(w.available.paise(), 9_800 - 4_100 + 4_000 - 1_000 - 500);
        assert_eq!(w.held.paise(), 0);
        assert_eq!(w.balance(AccountKind::PlatformFees), 300);
        assert_eq!(w.balance(AccountKind::RailPayins), -10_000);
        assert_eq!(w.balance(AccountKind::RailPayouts), 0);
        // The pay-in fee touches no merchant account: no seq.
        assert_eq!(log[1].seq, 0);
        assert_eq!(w.last_seq, 11);
        assert_eq!(w.last_posting, 12);
        assert_eq!(audit(&w, &log), Ok(()));
    }

    #[test]
    fn refusals_change_nothing() {
        let mut w = Wallet::new(UserId::new(), Currency::Inr, now());
        let mut log = Vec::new();
        post(&mut w, TransferKind::PayinCredit, 100, &mut log);
        let before = w.clone();
        let hold = w.post(
            TransferKind::PayoutHold,
            Money::from_paise(101),
            "po".into(),
            now(),
        );
        assert_eq!(hold, Err(Rejection::InsufficientBalance));
        let settle = w.post(
            TransferKind::PayoutSettle,
            Money::from_paise(1),
            "po".into(),
            now(),
        );
        assert_eq!(settle, Err(Rejection::DatabaseError));
        let nothing = w.post(TransferKind::PayinCredit, Money::ZERO, "t".into(), now());
        assert_eq!(nothing, Err(Rejection::DatabaseError));
        assert_eq!(w, before);
    }

    #[test]
    fn audit_finds_tampering_gaps_and_drift() {
        let mut w = Wallet::new(UserId::new(), Currency::Inr, now());
        let mut log = Vec::new();
        post(&mut w, TransferKind::PayinCredit, 500, &mut log);
        post(&mut w, TransferKind::PayoutHold, 200, &mut log);
        let mut altered = log.clone();
        altered[0].amount = Money::from_paise(499);
        assert!(audit(&w, &altered).is_err());
        assert!(audit(&w, &log[1..]).is_err(), "a missing first transfer");
        let mut drifted = w.clone();
        drifted.available = Money::from_paise(301);
        assert!(audit(&drifted, &log).is_err());
        let mut skewed = w.clone();
        skewed.posted[AccountKind::PlatformFees.index()].credits = Money::from_paise(1);
        assert!(audit(&skewed, &log).is_err(), "zero sum broken");
        assert_eq!(audit(&w, &log), Ok(()));
    }

    #[test]
    fn accounts_render_and_parse() {
        let m = UserId::new();
        for kind in AccountKind::ALL {
            let account = Account::of(kind, m);
            let text = account.to_string();
            assert_eq!(text.parse::<Account>(), Ok(account), "{text}");
        }
        assert_eq!(
            Account::of(AccountKind::Held, m).to_string(),
            format!("merchant:{m}:held")
        );
        assert_eq!(
            Account::of(AccountKind::RailPayins, m).to_string(),
            "rail:payins"
        );
        for bad in [
            "",
            "rail:",
            "merchant:usr_x:available",
            "merchant::held",
            "platform:fee",
        ] {
            assert!(bad.parse::<Account>().is_err(), "{bad}");
        }
        assert_eq!(AccountKind::RailPayouts.normal(), Normal::Debit);
        assert_eq!(AccountKind::Held.normal(), Normal::Credit);
    }

    #[test]
    fn kinds_round_trip_and_match_spec_accounts() {
        for kind in TransferKind::ALL {
            assert_eq!(TransferKind::parse(kind.as_str()), Some(kind));
            let (d, c) = kind.accounts();
            assert_ne!(d, c);
        }
        assert!(!TransferKind::PayinFee.touches_merchant());
        assert!(TransferKind::PayoutFee.touches_merchant());
    }
}
