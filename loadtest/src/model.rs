//! The harness's model of what the server acknowledged. During the run each
//! merchant's live state sits behind its own mutex (records, money reserved
//! for payouts, recent ids for lookups); afterwards it is frozen into a
//! plain `Model`, which is what the audit compares the server against.

use crate::money;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A pay-in the server answered 201 to (or, in `uncertain`, one that got no
/// answer at all and may or may not exist).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payin {
    /// `txn_…`; empty for an uncertain one.
    pub id: String,
    pub order_id: String,
    pub amount: u64,
    /// The fee the harness computes from the merchant's bps (half-up).
    pub fee: u64,
    /// Sent with payer_vpa fail@sandbox: must end `failed`.
    pub expect_fail: bool,
}

/// A payout the server answered 201 to (or an uncertain one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payout {
    /// `po_…`; empty for an uncertain one.
    pub id: String,
    pub reference_id: String,
    pub amount: u64,
    /// The merchant's flat payout fee.
    pub fee: u64,
    /// Sent to account 000000000000: must end `rejected`.
    pub expect_reject: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiUser {
    pub id: String,
    pub key: String,
}

/// One merchant as set up, and everything acknowledged on its wallet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerchantModel {
    pub index: usize,
    pub id: String,
    /// The merchant's own key (the audit reads with it).
    pub key: String,
    pub payin_fee_bps: u32,
    /// Paise.
    pub payout_fee: u64,
    pub webhook_secret: String,
    pub api_users: Vec<ApiUser>,
    pub payins: Vec<Payin>,
    pub payouts: Vec<Payout>,
    pub uncertain_payins: Vec<Payin>,
    pub uncertain_payouts: Vec<Payout>,
}

impl MerchantModel {
    pub fn payin_fee(&self, amount: u64) -> u64 {
        money::bps_half_up(amount, self.payin_fee_bps)
    }
}

/// The frozen model the audit checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    pub merchants: Vec<MerchantModel>,
    /// The server may fail pay-ins without fail@sandbox (it runs a failure rate).
    pub payin_failures_allowed: bool,
    /// The webhook sink was on: every settled record must have its event.
    pub webhooks_expected: bool,
}

impl Model {
    pub fn acknowledged_payins(&self) -> usize {
        self.merchants.iter().map(|m| m.payins.len()).sum()
    }

    pub fn acknowledged_payouts(&self) -> usize {
        self.merchants.iter().map(|m| m.payouts.len()).sum()
    }
}

/// Live, per-merchant state during the run.
pub struct Live {
    pub merchant: MerchantModel,
    pub state: Mutex<LiveState>,
}

#[derive(Default)]
pub struct LiveState {
    pub payins: Vec<Payin>,
    pub payouts: Vec<Payout>,
    pub uncertain_payins: Vec<Payin>,
    pub uncertain_payouts: Vec<Payout>,
    /// Net of pay-ins that must have settled by now (lower bound of credits).
    pub credited: u64,
    /// Pay-in nets that will count as credited once their instant passes.
    pub maturing: VecDeque<(Instant, u64)>,
    /// Amount + fee of every payout sent (not given back on rejection:
    /// the estimate of what can be paid out stays a lower bound).
    pub reserved: u64,
    /// Recent pay-in ids per api_user (a user may only read its own).
    pub recent: Vec<VecDeque<String>>,
}

impl LiveState {
    /// What a payout may take without risking `insufficient_balance`.
    pub fn spendable(&mut self, now: Instant) -> u64 {
        while let Some(&(at, net)) = self.maturing.front() {
            if at > now {
                break;
            }
            self.credited = self.credited.saturating_add(net);
            self.maturing.pop_front();
        }
        self.credited.saturating_sub(self.reserved)
    }

    pub fn remember(&mut self, user: usize, id: String) {
        if let Some(ring) = self.recent.get_mut(user) {
            if ring.len() == 16 {
                ring.pop_front();
            }
            ring.push_back(id);
        }
    }
}

impl Live {
    pub fn new(merchant: MerchantModel) -> Live {
        let users = merchant.api_users.len().max(1);
        Live {
            merchant,
            state: Mutex::new(LiveState {
                recent: vec![VecDeque::new(); users],
                ..LiveState::default()
            }),
        }
    }

    /// Records an acknowledged pay-in; its net becomes spendable after `settle`.
    pub fn payin_acknowledged(&self, user: usize, payin: Payin, settle: Duration) {
        let mut s = crate::util::lock(&self.state);
        if !payin.expect_fail {
            let net = payin.amount.saturating_sub(payin.fee);
            s.maturing.push_back((Instant::now() + settle, net));
        }
        s.remember(user, payin.id.clone());
        s.payins.push(payin);
    }

    pub fn freeze(&self) -> MerchantModel {
        let s = crate::util::lock(&self.state);
        MerchantModel {
            payins: s.payins.clone(),
            payouts: s.payouts.clone(),
            uncertain_payins: s.uncertain_payins.clone(),
            uncertain_payouts: s.uncertain_payouts.clone(),
            ..self.merchant.clone()
        }
    }
}
