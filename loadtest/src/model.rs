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

/// What became of the harness's `POST /payouts/:id/cancel` of a payout
/// (at most one per payout, during the load or in the sweep after it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cancel {
    /// Never asked.
    #[default]
    NotSent,
    /// Sent, no answer yet (only during the load).
    InFlight,
    /// 200: the payout must end `cancelled`.
    Cancelled,
    /// Any other HTTP answer (409 `invalid_status_transition` when the
    /// rail got there first): nothing changed, the payout must not end
    /// `cancelled` by it.
    Refused,
    /// No HTTP answer: it may or may not have been cancelled.
    Unknown,
}

/// A payout the server answered 201 to (or an uncertain one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Payout {
    /// `po_…`; empty for an uncertain one.
    pub id: String,
    pub reference_id: String,
    pub amount: u64,
    /// The merchant's flat payout fee.
    pub fee: u64,
    /// Sent to account 000000000000: must end `rejected`.
    pub expect_reject: bool,
    /// Sent to account 000000000001: processed, then `reversed` by the
    /// sandbox (SPEC §13).
    pub expect_reverse: bool,
    /// Sent with `queue_if_low_balance: true`: may have been `queued`.
    pub queue_if_low_balance: bool,
    /// The status of the 201 (`pending` or `queued`; empty when unknown).
    pub created_status: String,
    /// The api_user whose key created it (cancels use the same key).
    pub user: usize,
    /// Sent as an item of `POST /payouts/batch`.
    pub batch: bool,
    pub cancel: Cancel,
}

impl Payout {
    /// The status the sandbox settles it to, cancels aside.
    pub fn rail_status(&self) -> &'static str {
        if self.expect_reject {
            "rejected"
        } else if self.expect_reverse {
            "reversed"
        } else {
            "processed"
        }
    }

    /// The final statuses the harness's requests allow, in the audit's
    /// words: the rail's end; `cancelled` instead after an acknowledged
    /// cancel (only), or as well after an unanswered one; `queued` as well
    /// when `queued_may_remain` (queue_if_low_balance, no sweep after the
    /// load) and no cancel was acknowledged.
    pub fn allowed_statuses(&self, queued_may_remain: bool) -> Vec<&'static str> {
        let mut allowed = match self.cancel {
            Cancel::Cancelled => vec!["cancelled"],
            Cancel::Unknown | Cancel::InFlight => vec![self.rail_status(), "cancelled"],
            Cancel::NotSent | Cancel::Refused => vec![self.rail_status()],
        };
        if queued_may_remain && self.queue_if_low_balance && self.cancel != Cancel::Cancelled {
            allowed.push("queued");
        }
        allowed
    }
}

/// A refund (SPEC §12) the server answered 201 to (or an uncertain one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refund {
    /// `rf_…`; empty for an uncertain one.
    pub id: String,
    /// The pay-in's `txn_…`.
    pub payment_id: String,
    /// Paise: what was sent, or (`amount_sent` false) the whole rest of
    /// the pay-in, which the request left the server to fill in.
    pub amount: u64,
    pub amount_sent: bool,
    /// `fail@sandbox` (must end `failed`) or a text unique to the refund.
    pub reason: String,
    pub expect_fail: bool,
}

/// A pay-in the model expects completed, with what the harness has
/// planned to refund of it (never more than its amount in all: failed
/// refunds are not given back, so the plan stays within what is left).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refundable {
    pub payment_id: String,
    /// The api_user who created it (only it, or the merchant, sees it).
    pub user: usize,
    pub amount: u64,
    pub planned: u64,
    /// When the model counts it as completed.
    pub mature_at: Instant,
    /// Refunds planned on it so far.
    pub refunds: u32,
    /// A refund of it may fail or went unanswered: the server's rest may
    /// then be more than the model's.
    pub unsure: bool,
}

impl Refundable {
    pub fn remaining(&self) -> u64 {
        self.amount.saturating_sub(self.planned)
    }
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
    pub refunds: Vec<Refund>,
    pub uncertain_refunds: Vec<Refund>,
    /// reference_ids of batch items sent invalid on purpose (each must
    /// have been refused: none may exist on the server).
    pub invalid_payouts: Vec<String>,
}

impl MerchantModel {
    /// A merchant as set up, before any traffic.
    pub fn new(index: usize, id: String, key: String) -> MerchantModel {
        MerchantModel {
            index,
            id,
            key,
            payin_fee_bps: 0,
            payout_fee: 0,
            webhook_secret: String::new(),
            api_users: Vec::new(),
            payins: Vec::new(),
            payouts: Vec::new(),
            uncertain_payins: Vec::new(),
            uncertain_payouts: Vec::new(),
            refunds: Vec::new(),
            uncertain_refunds: Vec::new(),
            invalid_payouts: Vec::new(),
        }
    }

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
    /// The server has SPEC §12–13 (refunds are read and audited,
    /// processed payouts carry a `utr`).
    pub v2: bool,
    /// Payouts sent with queue_if_low_balance may still be `queued` at the
    /// audit (no sweep cancelled them after the load).
    pub queued_may_remain: bool,
}

impl Model {
    pub fn acknowledged_payins(&self) -> usize {
        self.merchants.iter().map(|m| m.payins.len()).sum()
    }

    pub fn acknowledged_payouts(&self) -> usize {
        self.merchants.iter().map(|m| m.payouts.len()).sum()
    }

    pub fn acknowledged_refunds(&self) -> usize {
        self.merchants.iter().map(|m| m.refunds.len()).sum()
    }

    /// Some payout may have been queued (the sweep and its reads are
    /// needed only then).
    pub fn any_queueable(&self) -> bool {
        self.merchants.iter().any(|m| {
            m.payouts
                .iter()
                .chain(&m.uncertain_payouts)
                .any(|p| p.queue_if_low_balance)
        })
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
    pub refunds: Vec<Refund>,
    pub uncertain_refunds: Vec<Refund>,
    pub invalid_payouts: Vec<String>,
    /// Net of pay-ins that must have settled by now (lower bound of credits).
    pub credited: u64,
    /// Pay-in nets that will count as credited once their instant passes.
    pub maturing: VecDeque<(Instant, u64)>,
    /// The sum of `maturing`.
    pub maturing_total: u64,
    /// Amount + fee of every payout sent, and every refund (not given back
    /// on rejection, cancellation or failure: the estimate of what can be
    /// paid out stays a lower bound). A payout that may be queued is
    /// reserved too: it takes its money first when the credits come.
    pub reserved: u64,
    /// Recent pay-in ids per api_user (a user may only read its own).
    pub recent: Vec<VecDeque<String>>,
    /// Pay-ins that will count as completed, in order of `mature_at`.
    pub refundable: Vec<Refundable>,
    /// Indices into `payouts` of recent ones the harness may cancel.
    pub cancellable: VecDeque<usize>,
}

impl LiveState {
    /// What a payout may take without risking `insufficient_balance`.
    pub fn spendable(&mut self, now: Instant) -> u64 {
        while let Some(&(at, net)) = self.maturing.front() {
            if at > now {
                break;
            }
            self.credited = self.credited.saturating_add(net);
            self.maturing_total = self.maturing_total.saturating_sub(net);
            self.maturing.pop_front();
        }
        self.credited.saturating_sub(self.reserved)
    }

    /// What will be spendable once every acknowledged pay-in has
    /// completed (the most a payout that may queue should take, so that
    /// it is paid out in the end rather than block the queue).
    pub fn eventually_spendable(&mut self, now: Instant) -> u64 {
        let _ = self.spendable(now);
        self.credited
            .saturating_add(self.maturing_total)
            .saturating_sub(self.reserved)
    }

    /// Remembers an acknowledged payout as one the harness may cancel.
    pub fn payout_acknowledged(&mut self, payout: Payout) {
        if self.cancellable.len() == 32 {
            self.cancellable.pop_front();
        }
        self.cancellable.push_back(self.payouts.len());
        self.payouts.push(payout);
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
            let at = Instant::now() + settle;
            s.maturing.push_back((at, net));
            s.maturing_total = s.maturing_total.saturating_add(net);
            s.refundable.push(Refundable {
                payment_id: payin.id.clone(),
                user,
                amount: payin.amount,
                planned: 0,
                mature_at: at,
                refunds: 0,
                unsure: false,
            });
        }
        s.remember(user, payin.id.clone());
        s.payins.push(payin);
    }

    pub fn freeze(&self) -> MerchantModel {
        let s = crate::util::lock(&self.state);
        let unanswered = |mut p: Payout| {
            if p.cancel == Cancel::InFlight {
                p.cancel = Cancel::Unknown;
            }
            p
        };
        MerchantModel {
            payins: s.payins.clone(),
            payouts: s.payouts.iter().cloned().map(unanswered).collect(),
            uncertain_payins: s.uncertain_payins.clone(),
            uncertain_payouts: s
                .uncertain_payouts
                .iter()
                .cloned()
                .map(unanswered)
                .collect(),
            refunds: s.refunds.clone(),
            uncertain_refunds: s.uncertain_refunds.clone(),
            invalid_payouts: s.invalid_payouts.clone(),
            ..self.merchant.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_final_statuses_follow_the_requests() {
        let plain = Payout::default();
        assert_eq!(plain.allowed_statuses(true), ["processed"]);
        let rejected = Payout {
            expect_reject: true,
            ..Payout::default()
        };
        assert_eq!(rejected.allowed_statuses(false), ["rejected"]);
        let reversed = Payout {
            expect_reverse: true,
            cancel: Cancel::Refused,
            ..Payout::default()
        };
        assert_eq!(reversed.allowed_statuses(false), ["reversed"]);
        let cancelled = Payout {
            queue_if_low_balance: true,
            cancel: Cancel::Cancelled,
            ..Payout::default()
        };
        assert_eq!(cancelled.allowed_statuses(true), ["cancelled"]);
        let unsure = Payout {
            queue_if_low_balance: true,
            cancel: Cancel::Unknown,
            ..Payout::default()
        };
        assert_eq!(unsure.allowed_statuses(false), ["processed", "cancelled"]);
        assert_eq!(
            unsure.allowed_statuses(true),
            ["processed", "cancelled", "queued"]
        );
    }

    #[test]
    fn the_model_tracks_refundable_payins_and_future_credits() {
        let live = Live::new(MerchantModel::new(0, "usr_m".into(), "k".into()));
        let payin = |id: &str, amount, expect_fail| Payin {
            id: id.into(),
            order_id: format!("o-{id}"),
            amount,
            fee: 10,
            expect_fail,
        };
        live.payin_acknowledged(0, payin("txn_a", 1_000, false), Duration::ZERO);
        live.payin_acknowledged(0, payin("txn_b", 5_000, true), Duration::ZERO);
        live.payin_acknowledged(0, payin("txn_c", 2_000, false), Duration::from_secs(3_600));
        let mut s = crate::util::lock(&live.state);
        let now = Instant::now();
        assert_eq!(s.spendable(now), 990);
        assert_eq!(s.eventually_spendable(now), 990 + 1_990);
        s.reserved = 1_500;
        assert_eq!(s.spendable(now), 0);
        assert_eq!(s.eventually_spendable(now), 1_480);
        // Only pay-ins expected to complete can be refunded.
        let ids: Vec<&str> = s.refundable.iter().map(|r| r.payment_id.as_str()).collect();
        assert_eq!(ids, ["txn_a", "txn_c"]);
        assert_eq!(s.refundable[0].remaining(), 1_000);
        // A cancel in flight when the load stopped is unanswered.
        s.payout_acknowledged(Payout {
            id: "po_a".into(),
            cancel: Cancel::InFlight,
            ..Payout::default()
        });
        assert_eq!(s.cancellable, [0]);
        drop(s);
        assert_eq!(live.freeze().payouts[0].cancel, Cancel::Unknown);
    }
}
