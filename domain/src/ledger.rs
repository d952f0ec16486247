//! The wallet and its ledger. Every balance change is one `LedgerEntry`,
//! made by `Wallet::apply`, which is the only code that changes `available`
//! or `held`. Invariant (SPEC §5): for every wallet,
//! `available + held == Σ credits − Σ debits` over its ledger, and neither
//! balance is ever negative.

use crate::{Currency, Money, Rejection, Timestamp, UserId};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A completed pay-in: the net (gross − fee) is credited to `available`.
    PayinCredit,
    /// A new payout: amount + fee moves from `available` to `held`.
    PayoutHold,
    /// A rejected payout: the hold goes back from `held` to `available`.
    PayoutRelease,
    /// A processed payout: the hold leaves the wallet.
    PayoutSettle,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::PayinCredit => "payin_credit",
            EntryKind::PayoutHold => "payout_hold",
            EntryKind::PayoutRelease => "payout_release",
            EntryKind::PayoutSettle => "payout_settle",
        }
    }

    /// Signed effect of an entry of `amount` paise on the wallet's total
    /// (`available + held`): credits are positive, debits negative.
    pub fn total_effect(self, amount: Money) -> i128 {
        let amount = i128::from(amount.paise());
        match self {
            EntryKind::PayinCredit => amount,
            EntryKind::PayoutHold | EntryKind::PayoutRelease => 0,
            EntryKind::PayoutSettle => -amount,
        }
    }
}

/// One immutable ledger line. `amount` is the magnitude moved; `gross` and
/// `fee` record how a pay-in credit or payout hold was made up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub merchant_id: UserId,
    pub currency: Currency,
    pub seq: u64,
    pub kind: EntryKind,
    pub amount: Money,
    pub gross: Money,
    pub fee: Money,
    pub available_after: Money,
    pub held_after: Money,
    /// The `txn_…` or `po_…` id that caused the entry.
    pub reference: String,
    pub created_at: Timestamp,
}

/// A merchant's wallet in one currency, with running totals for reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wallet {
    pub merchant_id: UserId,
    pub currency: Currency,
    pub available: Money,
    pub held: Money,
    /// Sum of the amounts of pay-ins still pending (not part of the total).
    pub pending_payins: Money,
    /// Gross amount of completed pay-ins.
    pub total_payins: Money,
    /// Amount (without fees) of processed payouts.
    pub total_payouts: Money,
    /// Fees charged on completed pay-ins and processed payouts.
    pub total_fees: Money,
    /// Sequence number of the last ledger entry (0: none yet).
    pub last_seq: u64,
    pub updated_at: Timestamp,
}

/// What one balance change is, before it is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Movement {
    pub kind: EntryKind,
    pub amount: Money,
    pub gross: Money,
    pub fee: Money,
}

impl Wallet {
    pub fn new(merchant_id: UserId, currency: Currency, now: Timestamp) -> Wallet {
        Wallet {
            merchant_id,
            currency,
            available: Money::ZERO,
            held: Money::ZERO,
            pending_payins: Money::ZERO,
            total_payins: Money::ZERO,
            total_payouts: Money::ZERO,
            total_fees: Money::ZERO,
            last_seq: 0,
            updated_at: now,
        }
    }

    /// `available + held`, the quantity the ledger accounts for.
    pub fn total(&self) -> i128 {
        i128::from(self.available.paise()) + i128::from(self.held.paise())
    }

    /// Applies one movement and returns its ledger entry. Refuses (and changes
    /// nothing) when `available` cannot cover a hold; a release or settle that
    /// exceeds `held` means the caller's bookkeeping is broken, which is also
    /// refused without change so that the actor can fail loudly.
    pub fn apply(
        &mut self,
        movement: Movement,
        reference: String,
        now: Timestamp,
    ) -> Result<LedgerEntry, Rejection> {
        let before = self.total();
        let amount = movement.amount;
        let (available, held) = match movement.kind {
            EntryKind::PayinCredit => (self.available.checked_add(amount), Some(self.held)),
            EntryKind::PayoutHold => match self.available.checked_sub(amount) {
                None => return Err(Rejection::InsufficientBalance),
                Some(a) => (Some(a), self.held.checked_add(amount)),
            },
            EntryKind::PayoutRelease => (
                self.available.checked_add(amount),
                self.held.checked_sub(amount),
            ),
            EntryKind::PayoutSettle => (Some(self.available), self.held.checked_sub(amount)),
        };
        let (Some(available), Some(held)) = (available, held) else {
            return Err(Rejection::DatabaseError);
        };
        self.available = available;
        self.held = held;
        self.last_seq += 1;
        self.updated_at = now;
        assert_eq!(
            self.total(),
            before + movement.kind.total_effect(amount),
            "a movement changed the total by other than its ledger effect"
        );
        Ok(LedgerEntry {
            merchant_id: self.merchant_id,
            currency: self.currency,
            seq: self.last_seq,
            kind: movement.kind,
            amount,
            gross: movement.gross,
            fee: movement.fee,
            available_after: self.available,
            held_after: self.held,
            reference,
            created_at: now,
        })
    }
}

/// Checks a wallet against its full ledger: the running sum, the sequence
/// numbers and the after-balances of the last entry. Used by tests, recovery
/// and the periodic audit. Returns a description of the first disagreement.
pub fn audit<'a>(
    wallet: &Wallet,
    entries: impl IntoIterator<Item = &'a LedgerEntry>,
) -> Result<(), String> {
    let mut sum: i128 = 0;
    let mut last: Option<&LedgerEntry> = None;
    for (i, entry) in entries.into_iter().enumerate() {
        let expected_seq = i as u64 + 1;
        if entry.seq != expected_seq {
            return Err(format!(
                "entry {i} has seq {} (want {expected_seq})",
                entry.seq
            ));
        }
        sum += entry.kind.total_effect(entry.amount);
        let after =
            i128::from(entry.available_after.paise()) + i128::from(entry.held_after.paise());
        if after != sum {
            return Err(format!(
                "entry {} after-balances {after} != running sum {sum}",
                entry.seq
            ));
        }
        last = Some(entry);
    }
    if sum != wallet.total() {
        return Err(format!(
            "wallet total {} != ledger sum {sum}",
            wallet.total()
        ));
    }
    let last_seq = last.map_or(0, |e| e.seq);
    if last_seq != wallet.last_seq {
        return Err(format!(
            "wallet last_seq {} != ledger {last_seq}",
            wallet.last_seq
        ));
    }
    if let Some(e) = last {
        if (e.available_after, e.held_after) != (wallet.available, wallet.held) {
            return Err("last entry's balances differ from the wallet".to_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(kind: EntryKind, paise: u64) -> Movement {
        let amount = Money::from_paise(paise);
        Movement {
            kind,
            amount,
            gross: amount,
            fee: Money::ZERO,
        }
    }

    #[test]
    fn hold_release_settle_keep_the_books() {
        let now = Timestamp::from_unix_ms(0);
        let mut w = Wallet::new(UserId::new(), Currency::Inr, now);
        let mut entries = Vec::new();
        entries.push(
            w.apply(mv(EntryKind::PayinCredit, 10_000), "txn_a".into(), now)
                .unwrap(),
        );
        entries.push(
            w.apply(mv(EntryKind::PayoutHold, 4_000), "po_a".into(), now)
                .unwrap(),
        );
        assert_eq!((w.available.paise(), w.held.paise()), (6_000, 4_000));
        entries.push(
            w.apply(mv(EntryKind::PayoutRelease, 4_000), "po_a".into(), now)
                .unwrap(),
        );
        entries.push(
            w.apply(mv(EntryKind::PayoutHold, 10_000), "po_b".into(), now)
                .unwrap(),
        );
        entries.push(
            w.apply(mv(EntryKind::PayoutSettle, 10_000), "po_b".into(), now)
                .unwrap(),
        );
        assert_eq!(w.total(), 0);
        assert_eq!(audit(&w, &entries), Ok(()));
    }

    #[test]
    fn refusals_change_nothing() {
        let now = Timestamp::from_unix_ms(0);
        let mut w = Wallet::new(UserId::new(), Currency::Inr, now);
        w.apply(mv(EntryKind::PayinCredit, 100), "txn_a".into(), now)
            .unwrap();
        let before = w.clone();
        assert_eq!(
            w.apply(mv(EntryKind::PayoutHold, 101), "po".into(), now),
            Err(Rejection::InsufficientBalance)
        );
        assert_eq!(
            w.apply(mv(EntryKind::PayoutSettle, 1), "po".into(), now),
            Err(Rejection::DatabaseError)
        );
        assert_eq!(w, before);
    }

    #[test]
    fn audit_finds_tampering() {
        let now = Timestamp::from_unix_ms(0);
        let mut w = Wallet::new(UserId::new(), Currency::Inr, now);
        let mut entries = vec![w
            .apply(mv(EntryKind::PayinCredit, 500), "t".into(), now)
            .unwrap()];
        entries[0].amount = Money::from_paise(499);
        assert!(audit(&w, &entries).is_err());
        entries[0].amount = Money::from_paise(500);
        w.available = Money::from_paise(501);
        assert!(audit(&w, &entries).is_err());
    }
}
