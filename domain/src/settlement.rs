//! Settlements to a merchant's own bank account (SPEC §14): the account a
//! merchant settles to, its validation, and the `Settlement` record with
//! its one terminal transition. A settlement sweeps `available` above the
//! merchant's reserve into `held` when created (`settlement_hold`), and
//! then either leaves the wallet (`settlement_settle`, `processed`, with a
//! UTR) or comes back (`settlement_release`, `failed`).

use crate::{
    Currency, EventId, EventPayload, EventType, Money, Rejection, SettlementId, Timestamp, UserId,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The account number the sandbox rail always fails settlements to.
pub const SANDBOX_FAIL_ACCOUNT: &str = "000000000000";

/// Most characters of an account holder's name.
pub const ACCOUNT_NAME_MAX: usize = 200;

/// The least a settlement moves: a sweep of less leaves the money where it is.
pub const SETTLEMENT_MIN: Money = Money::from_paise(100);

/// A merchant's own bank account, where its settlements go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementAccount {
    pub name: String,
    pub account_number: String,
    pub ifsc: String,
}

impl SettlementAccount {
    /// Checks the account as a bank would take it: IFSC
    /// `^[A-Z]{4}0[A-Z0-9]{6}$`, account number 9–18 digits, a name that is
    /// not blank and at most `ACCOUNT_NAME_MAX` characters. The error names
    /// every bad field (`details.fields` of `invalid_request`).
    pub fn validate(&self) -> Result<(), Vec<&'static str>> {
        let mut bad = Vec::new();
        let name = self.name.trim();
        if name.is_empty()
            || self.name.chars().count() > ACCOUNT_NAME_MAX
            || self.name.chars().any(char::is_control)
        {
            bad.push("settlement_account.name");
        }
        // The same rules as a payout's beneficiary.
        if !crate::beneficiary::account_number_ok(&self.account_number) {
            bad.push("settlement_account.account_number");
        }
        if !crate::beneficiary::ifsc_ok(&self.ifsc) {
            bad.push("settlement_account.ifsc");
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad)
        }
    }

    /// The account number as shown to API callers: all but the last 4 masked.
    pub fn masked_account(&self) -> String {
        crate::beneficiary::mask_account(&self.account_number)
    }

    /// The account as callers see it (masked number).
    pub fn view(&self) -> Value {
        json!({
            "name": self.name, "account_number": self.masked_account(), "ifsc": self.ifsc,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettlementStatus {
    Pending,
    Processed,
    Failed,
}

impl SettlementStatus {
    pub const ALL: [SettlementStatus; 3] = [
        SettlementStatus::Pending,
        SettlementStatus::Processed,
        SettlementStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SettlementStatus::Pending => "pending",
            SettlementStatus::Processed => "processed",
            SettlementStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<SettlementStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A settlement of a merchant's balance to its bank account. While
/// `pending`, `amount` is held in the wallet.
///
/// It covers the merchant's ledger from the transfer after the previous
/// settlement's hold up to its own hold: `first_seq..=last_seq` in the
/// merchant's ledger numbering, `first_posting..=last_posting` in its
/// wallet's (which also counts the transfers that do not touch the
/// merchant's accounts, such as pay-in fees).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    pub id: SettlementId,
    pub merchant_id: UserId,
    pub amount: Money,
    pub currency: Currency,
    pub status: SettlementStatus,
    /// The bank's reference, once processed.
    pub utr: Option<String>,
    /// Why it failed (the rail's words, or the reason given by hand).
    pub failure_reason: Option<String>,
    /// The reason given with a manual status change, kept as given.
    pub reason: Option<String>,
    /// The account it was sent to, as it was when the settlement was made.
    pub settlement_account: SettlementAccount,
    pub first_seq: u64,
    pub last_seq: u64,
    pub first_posting: u64,
    pub last_posting: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub processed_at: Option<Timestamp>,
}

impl Settlement {
    /// The one terminal transition. `to` must be `Processed` or `Failed`;
    /// `manual` is the reason given by hand, if it was.
    pub fn settle(
        &mut self,
        to: SettlementStatus,
        failure: Option<String>,
        manual: Option<String>,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        crate::records::leave_pending(
            self.status,
            to,
            SettlementStatus::Pending,
            &[SettlementStatus::Processed, SettlementStatus::Failed],
            SettlementStatus::as_str,
        )?;
        self.status = to;
        self.updated_at = now;
        match to {
            SettlementStatus::Processed => {
                self.processed_at = Some(now);
                self.utr = Some(sandbox_utr(&self.id));
            }
            _ => {
                self.failure_reason = failure
                    .or_else(|| manual.clone())
                    .or_else(|| Some("settlement failed".to_owned()));
            }
        }
        self.reason = manual;
        Ok(())
    }

    /// The webhook payload of `settlement.processed` / `settlement.failed`.
    pub fn event_payload(&self, id: EventId, event: EventType, now: Timestamp) -> EventPayload {
        EventPayload::of(&json!({
            "id": id, "event": event.as_str(), "settlement_id": self.id,
            "merchant_id": self.merchant_id, "amount": self.amount, "currency": self.currency,
            "status": self.status.as_str(), "utr": self.utr,
            "failure_reason": self.failure_reason, "reason": self.reason,
            "account_number": self.settlement_account.masked_account(),
            "timestamp": now,
        }))
    }
}

/// The sandbox rail's verdict on a settlement: accounts `000000000000` fail.
pub fn sandbox_outcome(account: &SettlementAccount) -> (SettlementStatus, Option<String>) {
    if account.account_number == SANDBOX_FAIL_ACCOUNT {
        return (
            SettlementStatus::Failed,
            Some("settlement account is invalid".into()),
        );
    }
    (SettlementStatus::Processed, None)
}

/// A deterministic bank reference for a settlement: `TJST` and 12 digits
/// from a fixed hash of its id (the same id always gets the same UTR).
pub fn sandbox_utr(id: &SettlementId) -> String {
    let hash = id.as_bytes().iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("TJST{:012}", hash % 1_000_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(number: &str, ifsc: &str) -> SettlementAccount {
        SettlementAccount {
            name: "Acme Traders".into(),
            account_number: number.into(),
            ifsc: ifsc.into(),
        }
    }

    #[test]
    fn accounts_are_checked_like_a_bank_would() {
        assert!(account("123456789012", "HDFC0001234").validate().is_ok());
        assert!(account("123456789", "SBIN0ABC123").validate().is_ok());
        assert_eq!(
            account("12", "bad").validate(),
            Err(vec![
                "settlement_account.account_number",
                "settlement_account.ifsc"
            ])
        );
        for ifsc in ["HDFC1001234", "hdfc0001234", "HDFC000123", "HDF00001234"] {
            assert!(account("123456789012", ifsc).validate().is_err(), "{ifsc}");
        }
        for number in ["12345678", "1234567890123456789", "12345678901a"] {
            assert!(account(number, "HDFC0001234").validate().is_err());
        }
        let mut blank = account("123456789012", "HDFC0001234");
        blank.name = "  ".into();
        assert_eq!(blank.validate(), Err(vec!["settlement_account.name"]));
        assert_eq!(
            account("123456789012", "HDFC0001234").masked_account(),
            "XXXXXXXX9012"
        );
    }

    fn settlement() -> Settlement {
        let now = Timestamp::from_unix_ms(1);
        Settlement {
            id: SettlementId::new(),
            merchant_id: UserId::new(),
            amount: Money::from_paise(10_000),
            currency: Currency::Inr,
            status: SettlementStatus::Pending,
            utr: None,
            failure_reason: None,
            reason: None,
            settlement_account: account("123456789012", "HDFC0001234"),
            first_seq: 1,
            last_seq: 2,
            first_posting: 1,
            last_posting: 3,
            created_at: now,
            updated_at: now,
            processed_at: None,
        }
    }

    #[test]
    fn one_terminal_transition_with_a_utr_or_a_reason() {
        let mut s = settlement();
        assert!(s
            .settle(SettlementStatus::Pending, None, None, Timestamp::now())
            .is_err());
        s.settle(SettlementStatus::Processed, None, None, Timestamp::now())
            .unwrap();
        let utr = s.utr.clone().unwrap();
        assert!(utr.starts_with("TJST") && utr.len() == 16);
        assert_eq!(utr, sandbox_utr(&s.id));
        let before = s.clone();
        assert!(s
            .settle(SettlementStatus::Failed, None, None, Timestamp::now())
            .is_err());
        assert_eq!(s, before);

        let mut f = settlement();
        f.settle(
            SettlementStatus::Failed,
            None,
            Some("bank returned it".into()),
            Timestamp::now(),
        )
        .unwrap();
        assert_eq!(f.failure_reason.as_deref(), Some("bank returned it"));
        assert_eq!(f.reason.as_deref(), Some("bank returned it"));
        assert!(f.utr.is_none());
    }

    #[test]
    fn the_sandbox_fails_the_magic_account() {
        let good = account("123456789012", "HDFC0001234");
        let bad = account(SANDBOX_FAIL_ACCOUNT, "HDFC0001234");
        assert_eq!(sandbox_outcome(&good).0, SettlementStatus::Processed);
        assert_eq!(sandbox_outcome(&bad).0, SettlementStatus::Failed);
    }
}
