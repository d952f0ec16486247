//! Seeded random simulation of the money core against an independent model.
//!
//! Each seed drives `OPS_PER_SEED` (10,000) operations over 50 merchant
//! wallets through the public `WalletHandle` and a real fjall store: pay-in
//! creation and manual settlement, payouts (some beyond the balance, some to
//! the sandbox's rejected account), duplicate order / reference ids,
//! re-settlement of settled records, settlement to `pending` and through the
//! wrong merchant, and settlements to the merchant's bank (SPEC §14: a sweep
//! of `available` above a random reserve, or `insufficient_balance` when
//! less than 1.00 is above it; processed, failed, or re-settled and refused). The sandbox never settles anything (its delay is an hour),
//! so every outcome is decided here and the run is reproducible from its
//! seed, which every assertion message prints.
//!
//! The model is plain integers. After EVERY step the touched wallet is
//! checked: the ledger entries written since the last check are exactly the
//! ones the model expects, `available + held` equals the running ledger sum,
//! the stored wallet and the actor's wallet equal the model, and the touched
//! record's status in storage equals the model's (so a record makes at most
//! one terminal transition). At the end, money is conserved across all
//! wallets, every record and index listing matches, and every wallet passes
//! the full `domain::ledger::audit`.
//!
//! Refunds (SPEC §12) too: created on any pay-in (only a completed one's
//! rest may be refunded, at least 1.00 unless the whole rest, held from
//! `available`), settled `processed` or `failed` by hand, re-settled; the
//! model keeps each pay-in's `refunded_amount`.
//! The payout lifecycle (SPEC §13) too: payouts that ask to be queued,
//! the wallet's FIFO drained after every credit or release (modelled
//! here, head first, in the same write), cancels, reversals by hand and
//! batches of payouts (one write, each item answered on its own).
//!
//! Counts: 10,000 operations PER SEED, three seeds (one test each, so the
//! harness runs them in parallel); 2-3 s per seed, about 6 s for the file,
//! in a debug build on 2 cores.

use crate::common;

use actors::WalletHandle;
use domain::{
    AccountKind, Currency, Money, PaymentId, PaymentStatus, PayoutId, PayoutStatus, RefundId,
    RefundStatus, Rejection, SettlementId, SettlementStatus, Transfer, TransferKind, UserId,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;
use storage::keys::{IndexTag, UniqueKind};
use storage::{Durability, Store};

const WALLETS: usize = 50;
const OPS_PER_SEED: usize = 10_000;
/// The sandbox's magic values (SPEC §6); harmless here, since the sandbox
/// never gets to settle, but they must not change what a manual settlement does.
const FAIL_VPA: &str = "fail@sandbox";
const REJECT_ACCOUNT: &str = "000000000000";
const AMOUNT_MAX: u64 = 100_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulation_seed_1() {
    simulate(0x5EED_0001).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulation_seed_2() {
    simulate(0xDEC0_DE02).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulation_seed_3() {
    simulate(0x7131_0203).await;
}

struct PayinModel {
    id: PaymentId,
    order_id: String,
    amount: u64,
    fee: u64,
    status: PaymentStatus,
    /// Sum of its refunds that have not failed.
    refunded: u64,
}

struct RefundModel {
    id: RefundId,
    /// Index of its pay-in in the wallet's `payins`.
    payin: usize,
    amount: u64,
    status: RefundStatus,
}

struct PayoutModel {
    id: PayoutId,
    reference: Option<String>,
    amount: u64,
    fee: u64,
    status: PayoutStatus,
}

impl PayoutModel {
    fn hold(&self) -> u64 {
        self.amount + self.fee
    }
}

/// A settlement (SPEC §14): `amount` held while pending.
struct SettlementModel {
    id: SettlementId,
    amount: u64,
    status: SettlementStatus,
}

/// A transfer the model expects the next operation to post.
#[derive(Debug, PartialEq, Eq)]
struct Expected {
    kind: TransferKind,
    amount: u64,
    reference: String,
}

impl Expected {
    /// The expected transfer, or none for a zero amount (nothing moves).
    fn of(kind: TransferKind, amount: u64, reference: &impl ToString) -> Option<Expected> {
        (amount > 0).then(|| Expected {
            kind,
            amount,
            reference: reference.to_string(),
        })
    }
}

fn expected_of(t: &Transfer) -> Expected {
    Expected {
        kind: t.kind,
        amount: t.amount.paise(),
        reference: t.reference.clone(),
    }
}

/// SPEC §11's table, written out again here (independently of the domain
/// code): which account each kind debits and credits.
fn spec_accounts(kind: TransferKind) -> (AccountKind, AccountKind) {
    use AccountKind::*;
    match kind {
        TransferKind::PayinCredit => (RailPayins, Available),
        TransferKind::PayinFee => (RailPayins, PlatformFees),
        TransferKind::PayoutHold => (Available, Held),
        TransferKind::PayoutSettle => (Held, RailPayouts),
        TransferKind::PayoutFee => (Held, PlatformFees),
        TransferKind::PayoutRelease => (Held, Available),
        TransferKind::SettlementHold => (Available, Held),
        TransferKind::SettlementSettle => (Held, RailSettlements),
        TransferKind::SettlementRelease => (Held, Available),
        TransferKind::RefundHold => (Available, Held),
        TransferKind::RefundSettle => (Held, RailRefunds),
        TransferKind::RefundRelease => (Held, Available),
        TransferKind::PayoutReverse => (RailPayouts, Available),
    }
}

struct WalletModel {
    merchant: UserId,
    payin_fee_bps: u32,
    payout_fee: u64,
    available: u64,
    held: u64,
    pending_payins: u64,
    total_payins: u64,
    total_payouts: u64,
    total_fees: u64,
    last_seq: u64,
    /// Whether anything was written for this wallet yet (a refused payout
    /// on a fresh wallet writes nothing).
    exists: bool,
    payins: Vec<PayinModel>,
    payouts: Vec<PayoutModel>,
    /// What settlements leave in `available`.
    reserve: u64,
    settlements: Vec<SettlementModel>,
    refunds: Vec<RefundModel>,
    /// Incremental ledger check: transfers up to `checked_posting` were
    /// read and posted to `accounts` (balances by `AccountKind::index`).
    checked_posting: u64,
    checked_seq: u64,
    accounts: [i128; 7],
    next_ref: u64,
    /// Indexes (into `payouts`) of the queued payouts, oldest first.
    queue: VecDeque<usize>,
}

impl WalletModel {
    fn numbers(&self) -> [u64; 7] {
        [
            self.available,
            self.held,
            self.pending_payins,
            self.total_payins,
            self.total_payouts,
            self.total_fees,
            self.last_seq,
        ]
    }

    fn pending_payin_indexes(&self) -> Vec<usize> {
        (0..self.payins.len())
            .filter(|&i| self.payins[i].status == PaymentStatus::Pending)
            .collect()
    }

    fn pending_settlement_indexes(&self) -> Vec<usize> {
        (0..self.settlements.len())
            .filter(|&i| self.settlements[i].status == SettlementStatus::Pending)
            .collect()
    }

    fn pending_payout_indexes(&self) -> Vec<usize> {
        (0..self.payouts.len())
            .filter(|&i| self.payouts[i].status == PayoutStatus::Pending)
            .collect()
    }

    fn payout_indexes(&self, status: PayoutStatus) -> Vec<usize> {
        (0..self.payouts.len())
            .filter(|&i| self.payouts[i].status == status)
            .collect()
    }

    /// After a credit or release: queued payouts leave the head of the
    /// queue for as long as `available` covers them, each with its hold,
    /// in the same write (after that write's own transfers).
    fn drain(&mut self, expected: &mut Vec<Expected>) -> usize {
        let mut moved = 0;
        while let Some(&i) = self.queue.front() {
            let hold = self.payouts[i].hold();
            if hold > self.available {
                break;
            }
            self.queue.pop_front();
            self.available -= hold;
            self.held += hold;
            self.last_seq += 1;
            self.payouts[i].status = PayoutStatus::Pending;
            expected.extend(Expected::of(
                TransferKind::PayoutHold,
                hold,
                &self.payouts[i].id,
            ));
            moved += 1;
        }
        moved
    }
}

/// Which record an operation touched, to compare its status with storage.
enum Touched {
    Nothing,
    Payin(usize),
    Payout(usize),
    Settlement(usize),
    Refund(usize),
}

struct Sim {
    seed: u64,
    step: usize,
    rng: SmallRng,
    store: Store,
    wallets: WalletHandle,
    models: Vec<WalletModel>,
    /// Outcome counters, to prove the run exercised each path.
    seen: [usize; 20],
    /// A second wallet the last operation went through, to check as well.
    also_touched: Option<usize>,
}

const SEEN_NAMES: [&str; 20] = [
    "payin created",
    "payin settled",
    "payout created",
    "payout refused for balance",
    "payout settled",
    "duplicate refused",
    "re-settle refused",
    "misdirected settle refused",
    "settlement created",
    "settlement refused: nothing above the reserve",
    "settlement settled (or re-settle refused)",
    "refund created",
    "refund refused",
    "refund settled",
    "payout queued",
    "queued payout paid out",
    "payout cancelled",
    "cancel refused",
    "payout reversed",
    "batch",
];

/// Unwraps a storage or handle result, naming the seed and step on failure.
fn ok<T, E: std::fmt::Display>(result: Result<T, E>, ctx: &str) -> T {
    result.unwrap_or_else(|e| panic!("{ctx}: {e}"))
}

/// Unwraps a record that must exist, naming the seed and step on failure.
fn must_exist<T>(record: Option<T>, ctx: &str, what: &dyn std::fmt::Display) -> T {
    record.unwrap_or_else(|| panic!("{ctx}: {what} is missing from storage"))
}

fn pick<T: Copy>(rng: &mut SmallRng, items: &[T]) -> Option<T> {
    if items.is_empty() {
        None
    } else {
        Some(items[rng.random_range(0..items.len())])
    }
}

impl Sim {
    fn ctx(&self) -> String {
        format!("seed {:#x}, step {}", self.seed, self.step)
    }

    async fn create_payin(&mut self, w: usize) -> (Touched, Vec<Expected>) {
        let ctx = self.ctx();
        let amount = self.rng.random_range(100..=500_000u64);
        let vpa = match self.rng.random_range(0..10) {
            0 => Some(FAIL_VPA.to_owned()),
            1..=5 => Some("payer@upi".to_owned()),
            _ => None,
        };
        let m = &mut self.models[w];
        m.next_ref += 1;
        let order_id = format!("order-{}", m.next_ref);
        let mut new = common::payin(order_id.clone(), amount, m.merchant);
        new.payer_vpa = vpa;
        let created = self
            .wallets
            .create_payin(m.merchant, new)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: pay-in refused: {e}"));
        let p = created.record;
        let fee = common::payin_fee(amount, m.payin_fee_bps);
        assert!(!created.replayed, "{ctx}: fresh pay-in replayed");
        assert_eq!(p.status, PaymentStatus::Pending, "{ctx}");
        assert_eq!(p.merchant_id, m.merchant, "{ctx}");
        assert_eq!(p.order_id, order_id, "{ctx}");
        assert_eq!(
            (p.amount.paise(), p.fee.paise(), p.net_amount.paise()),
            (amount, fee, amount - fee),
            "{ctx}: pay-in amount, fee, net"
        );
        m.pending_payins += amount;
        m.exists = true;
        m.payins.push(PayinModel {
            id: p.id,
            order_id,
            amount,
            fee,
            status: PaymentStatus::Pending,
            refunded: 0,
        });
        self.seen[0] += 1;
        (Touched::Payin(m.payins.len() - 1), Vec::new())
    }

    async fn settle_payin(&mut self, w: usize) -> (Touched, Vec<Expected>) {
        let Some(i) = pick(&mut self.rng, &self.models[w].pending_payin_indexes()) else {
            return self.create_payin(w).await;
        };
        let ctx = self.ctx();
        let to = if self.rng.random_bool(0.75) {
            PaymentStatus::Completed
        } else {
            PaymentStatus::Failed
        };
        let m = &mut self.models[w];
        let id = m.payins[i].id;
        let settled = self
            .wallets
            .settle_payin(m.merchant, id, to, Some("simulated".into()))
            .await
            .unwrap_or_else(|e| panic!("{ctx}: settling pending pay-in {id} refused: {e}"));
        assert_eq!(settled.id, id, "{ctx}");
        assert_eq!(settled.status, to, "{ctx}");
        let p = &mut m.payins[i];
        p.status = to;
        m.pending_payins -= p.amount;
        let mut expected = Vec::new();
        if to == PaymentStatus::Completed {
            assert!(settled.completed_at.is_some(), "{ctx}: no completed_at");
            let net = p.amount - p.fee;
            m.available += net;
            m.total_payins += p.amount;
            m.total_fees += p.fee;
            // The credit touches the merchant's ledger; the fee does not.
            m.last_seq += u64::from(net > 0);
            expected.extend(Expected::of(TransferKind::PayinCredit, net, &id));
            expected.extend(Expected::of(TransferKind::PayinFee, p.fee, &id));
            self.seen[15] += m.drain(&mut expected);
        } else {
            assert!(settled.failure_reason.is_some(), "{ctx}: no failure_reason");
            assert!(
                settled.completed_at.is_none(),
                "{ctx}: failed but completed_at"
            );
        }
        self.seen[1] += 1;
        (Touched::Payin(i), expected)
    }

    /// A payout whose amount is sometimes beyond the balance, sometimes
    /// exactly the balance; the model alone decides whether it is refused.
    async fn create_payout(&mut self, w: usize) -> (Touched, Vec<Expected>) {
        let ctx = self.ctx();
        let (available, fee) = (self.models[w].available, self.models[w].payout_fee);
        let amount = match self.rng.random_range(0..10) {
            // Beyond the balance by a little or a lot.
            0..=1 => {
                (available + 1).saturating_sub(fee).max(100) + self.rng.random_range(0..5_000u64)
            }
            // Exactly all of it, when that is a valid amount.
            2 if available >= fee + 100 => available - fee,
            _ => self.rng.random_range(100..=available.clamp(100, 300_000)),
        }
        .min(AMOUNT_MAX);
        let account = if self.rng.random_bool(0.1) {
            REJECT_ACCOUNT
        } else {
            "123456789012"
        };
        let m = &mut self.models[w];
        let reference = if self.rng.random_bool(0.5) {
            m.next_ref += 1;
            Some(format!("ref-{}", m.next_ref))
        } else {
            None
        };
        let mut new = common::payout(amount, account, m.merchant);
        new.reference_id = reference.clone();
        new.queue_if_low_balance = self.rng.random_bool(0.3);
        let queue = new.queue_if_low_balance;
        let result = self.wallets.create_payout(m.merchant, new).await;
        let hold = amount + fee;
        if queue && (hold > available || !m.queue.is_empty()) {
            let created = result.unwrap_or_else(|e| panic!("{ctx}: queued payout refused: {e}"));
            let po = created.record;
            assert_eq!(po.status, PayoutStatus::Queued, "{ctx}");
            m.exists = true;
            m.payouts.push(PayoutModel {
                id: po.id,
                reference,
                amount,
                fee,
                status: PayoutStatus::Queued,
            });
            m.queue.push_back(m.payouts.len() - 1);
            self.seen[14] += 1;
            return (Touched::Payout(m.payouts.len() - 1), Vec::new());
        }
        if hold > available {
            assert_eq!(
                result.as_ref().map(|c| c.record.id).unwrap_err(),
                &Rejection::InsufficientBalance,
                "{ctx}: payout of {amount}+{fee} with {available} available"
            );
            if let Some(reference) = &reference {
                assert_eq!(
                    ok(
                        self.store
                            .unique(&m.merchant, UniqueKind::ReferenceId, reference),
                        &ctx
                    ),
                    None,
                    "{ctx}: a refused payout took its reference id"
                );
            }
            self.seen[3] += 1;
            return (Touched::Nothing, Vec::new());
        }
        let created = result.unwrap_or_else(|e| {
            panic!("{ctx}: payout of {amount}+{fee} with {available} available refused: {e}")
        });
        let po = created.record;
        assert_eq!(po.status, PayoutStatus::Pending, "{ctx}");
        assert_eq!((po.amount.paise(), po.fee.paise()), (amount, fee), "{ctx}");
        assert_eq!(po.reference_id, reference, "{ctx}");
        m.available -= hold;
        m.held += hold;
        m.last_seq += 1;
        m.exists = true;
        m.payouts.push(PayoutModel {
            id: po.id,
            reference,
            amount,
            fee,
            status: PayoutStatus::Pending,
        });
        self.seen[2] += 1;
        let expected: Vec<Expected> = Expected::of(TransferKind::PayoutHold, hold, &po.id)
            .into_iter()
            .collect();
        (Touched::Payout(m.payouts.len() - 1), expected)
    }

    async fn settle_payout(&mut self, w: usize) -> (Touched, Vec<Expected>) {
        let Some(i) = pick(&mut self.rng, &self.models[w].pending_payout_indexes()) else {
            return self.create_payout(w).await;
        };
        let ctx = self.ctx();
        let to = if self.rng.random_bool(0.7) {
            PayoutStatus::Processed
        } else {
            PayoutStatus::Rejected
        };
        let m = &mut self.models[w];
        let id = m.payouts[i].id;
        let settled = self
            .wallets
            .settle_payout(m.merchant, id, to, Some("simulated".into()))
            .await
            .unwrap_or_else(|e| panic!("{ctx}: settling pending payout {id} refused: {e}"));
        assert_eq!((settled.id, settled.status), (id, to), "{ctx}");
        let po = &mut m.payouts[i];
        po.status = to;
        let hold = po.hold();
        m.held -= hold;
        let expected: Vec<Expected> = if to == PayoutStatus::Processed {
            assert!(settled.processed_at.is_some(), "{ctx}: no processed_at");
            m.total_payouts += po.amount;
            m.total_fees += po.fee;
            m.last_seq += 1 + u64::from(po.fee > 0);
            [
                Expected::of(TransferKind::PayoutSettle, po.amount, &id),
                Expected::of(TransferKind::PayoutFee, po.fee, &id),
            ]
            .into_iter()
            .flatten()
            .collect()
        } else {
            assert!(
                settled.processed_at.is_none(),
                "{ctx}: rejected but processed_at"
            );
            m.available += hold;
            m.last_seq += 1;
            let mut expected: Vec<Expected> = Expected::of(TransferKind::PayoutRelease, hold, &id)
                .into_iter()
                .collect();
            self.seen[15] += m.drain(&mut expected);
            expected
        };
        self.seen[4] += 1;
        (Touched::Payout(i), expected)
    }

    /// Re-uses an order id (pay-in) or a reference id (payout) of the same
    /// merchant, whatever state its record is in: always `duplicate_order_id`.
    async fn duplicate(&mut self, w: usize) -> (Touched, Vec<Expected>) {
        let ctx = self.ctx();
        let use_payin = self.rng.random_bool(0.5);
        let amount = self.rng.random_range(100..=10_000u64);
        let m = &self.models[w];
        let referenced: Vec<usize> = (0..m.payouts.len())
            .filter(|&i| m.payouts[i].reference.is_some())
            .collect();
        if use_payin || referenced.is_empty() {
            let Some(i) = pick(&mut self.rng, &(0..m.payins.len()).collect::<Vec<_>>()) else {
                return self.create_payin(w).await;
            };
            let new = common::payin(m.payins[i].order_id.clone(), amount, m.merchant);
            let result = self.wallets.create_payin(m.merchant, new).await;
            assert_eq!(
                result.map(|c| c.record.id).unwrap_err(),
                Rejection::DuplicateOrderId,
                "{ctx}: re-used order id {}",
                m.payins[i].order_id
            );
            self.seen[5] += 1;
            return (Touched::Payin(i), Vec::new());
        }
        let i = pick(&mut self.rng, &referenced).unwrap();
        let mut new = common::payout(amount, "123456789012", m.merchant);
        new.reference_id = m.payouts[i].reference.clone();
        let result = self.wallets.create_payout(m.merchant, new).await;
        assert_eq!(
            result.map(|c| c.record.id).unwrap_err(),
            Rejection::DuplicateOrderId,
            "{ctx}: re-used reference id {:?}",
            m.payouts[i].reference
        );
        self.seen[5] += 1;
        (Touched::Payout(i), Vec::new())
    }

    /// Settles an already settled record again, to any status: always
    /// `invalid_status_transition`, and the stored record does not change.
    async fn resettle(&mut self, w: usize) -> (Touched, Vec<Expected>) {
        let ctx = self.ctx();
        let m = &self.models[w];
        let settled_payins: Vec<usize> = (0..m.payins.len())
            .filter(|&i| m.payins[i].status != PaymentStatus::Pending)
            .collect();
        let settled_payouts: Vec<usize> = (0..m.payouts.len())
            .filter(|&i| m.payouts[i].status != PayoutStatus::Pending)
            .collect();
        let reason = Some("again".to_owned());
        if self.rng.random_bool(0.5) || settled_payouts.is_empty() {
            let Some(i) = pick(&mut self.rng, &settled_payins) else {
                return self.settle_payin(w).await;
            };
            let to = [
                PaymentStatus::Pending,
                PaymentStatus::Completed,
                PaymentStatus::Failed,
            ][self.rng.random_range(0..3)];
            let p = &m.payins[i];
            let before = ok(self.store.payment(&p.id), &ctx);
            let result = self
                .wallets
                .settle_payin(m.merchant, p.id, to, reason)
                .await;
            assert_eq!(
                result.map(|p| p.status).unwrap_err(),
                Rejection::InvalidStatusTransition {
                    from: p.status.as_str(),
                    to: to.as_str().to_owned()
                },
                "{ctx}: re-settling pay-in {}",
                p.id
            );
            assert_eq!(
                ok(self.store.payment(&p.id), &ctx),
                before,
                "{ctx}: a refused re-settlement changed pay-in {}",
                p.id
            );
            self.seen[6] += 1;
            return (Touched::Payin(i), Vec::new());
        }
        let i = pick(&mut self.rng, &settled_payouts).unwrap();
        let to = [
            PayoutStatus::Pending,
            PayoutStatus::Processed,
            PayoutStatus::Rejected,
        ][self.rng.random_range(0..3)];
        let po = &m.payouts[i];
        let before = ok(self.store.payout(&po.id), &ctx);
        let result = self
            .wallets
            .settle_payout(m.merchant, po.id, to, reason)
            .await;
        assert_eq!(
            result.map(|p| p.status).unwrap_err(),
            Rejection::InvalidStatusTransition {
                from: po.status.as_str(),
                to: to.as_str().to_owned()
            },
            "{ctx}: re-settling payout {}",
            po.id
        );
        assert_eq!(
            ok(self.store.payout(&po.id), &ctx),
            before,
            "{ctx}: a refused re-settlement changed payout {}",
            po.id
        );
        self.seen[6] += 1;
        (Touched::Payout(i), Vec::new())
    }

    /// A pending record settled to `pending` (invalid transition), or
    /// settled through another merchant's wallet (not found): both refused,
    /// and the record stays pending.
    async fn misdirected(&mut self, w: usize, other: usize) -> (Touched, Vec<Expected>) {
        let ctx = self.ctx();
        let pending = self.models[w].pending_payin_indexes();
        let Some(i) = pick(&mut self.rng, &pending) else {
            return self.create_payin(w).await;
        };
        let id = self.models[w].payins[i].id;
        let (through, to, want) = if self.rng.random_bool(0.5) || other == w {
            (
                self.models[w].merchant,
                PaymentStatus::Pending,
                Rejection::InvalidStatusTransition {
                    from: "pending",
                    to: "pending".to_owned(),
                },
            )
        } else {
            (
                self.models[other].merchant,
                PaymentStatus::Completed,
                Rejection::NotFound,
            )
        };
        if through != self.models[w].merchant {
            self.also_touched = Some(other);
        }
        let result = self.wallets.settle_payin(through, id, to, None).await;
        assert_eq!(
            result.map(|p| p.status).unwrap_err(),
            want,
            "{ctx}: misdirected settlement of {id}"
        );
        self.seen[7] += 1;
        (Touched::Payin(i), Vec::new())
    }

    /// Sweeps `available` above the reserve: a pending settlement of all of
    /// it held at once, or `insufficient_balance` (nothing written) when
    /// less than 1.00 is above the reserve.
    async fn create_settlement(&mut self, w: usize) -> (Touched, Vec<Expected>) {
        let ctx = self.ctx();
        let m = &mut self.models[w];
        let result = self.wallets.create_settlement(m.merchant).await;
        let sweep = m.available.saturating_sub(m.reserve);
        if sweep < 100 {
            assert_eq!(
                result.map(|s| s.id).unwrap_err(),
                Rejection::InsufficientBalance,
                "{ctx}: settlement with {} available over a reserve of {}",
                m.available,
                m.reserve
            );
            self.seen[9] += 1;
            return (Touched::Nothing, Vec::new());
        }
        let s = result.unwrap_or_else(|e| {
            panic!(
                "{ctx}: settlement of {sweep} above a reserve of {} refused: {e}",
                m.reserve
            )
        });
        assert_eq!(
            (s.status, s.amount.paise(), s.merchant_id),
            (SettlementStatus::Pending, sweep, m.merchant),
            "{ctx}: new settlement"
        );
        m.available -= sweep;
        m.held += sweep;
        m.last_seq += 1;
        m.exists = true;
        assert_eq!(s.last_seq, m.last_seq, "{ctx}: coverage ends at its hold");
        m.settlements.push(SettlementModel {
            id: s.id,
            amount: sweep,
            status: SettlementStatus::Pending,
        });
        self.seen[8] += 1;
        let expected = Expected::of(TransferKind::SettlementHold, sweep, &s.id)
            .into_iter()
            .collect();
        (Touched::Settlement(m.settlements.len() - 1), expected)
    }

    /// Settles a pending settlement (processed or failed), or re-settles a
    /// settled one (refused, nothing changes).
    async fn settle_settlement(&mut self, w: usize) -> (Touched, Vec<Expected>) {
        let ctx = self.ctx();
        let pending = self.models[w].pending_settlement_indexes();
        let settled: Vec<usize> = (0..self.models[w].settlements.len())
            .filter(|i| !pending.contains(i))
            .collect();
        let to = if self.rng.random_bool(0.7) {
            SettlementStatus::Processed
        } else {
            SettlementStatus::Failed
        };
        if self.rng.random_bool(0.2) {
            if let Some(i) = pick(&mut self.rng, &settled) {
                let m = &self.models[w];
                let st = &m.settlements[i];
                let before = ok(self.store.settlement(&st.id), &ctx);
                let result = self
                    .wallets
                    .settle_settlement(m.merchant, st.id, to, Some("again".into()))
                    .await;
                assert_eq!(
                    result.map(|s| s.status).unwrap_err(),
                    Rejection::InvalidStatusTransition {
                        from: st.status.as_str(),
                        to: to.as_str().to_owned()
                    },
                    "{ctx}: re-settling settlement {}",
                    st.id
                );
                assert_eq!(ok(self.store.settlement(&st.id), &ctx), before, "{ctx}");
                self.seen[10] += 1;
                return (Touched::Settlement(i), Vec::new());
            }
        }
        let Some(i) = pick(&mut self.rng, &pending) else {
            return self.create_settlement(w).await;
        };
        let m = &mut self.models[w];
        let st = &mut m.settlements[i];
        let settled = self
            .wallets
            .settle_settlement(m.merchant, st.id, to, Some("simulated".into()))
            .await
            .unwrap_or_else(|e| {
                panic!("{ctx}: settling pending settlement {} refused: {e}", st.id)
            });
        assert_eq!((settled.id, settled.status), (st.id, to), "{ctx}");
        assert_eq!(settled.reason.as_deref(), Some("simulated"), "{ctx}");
        assert_eq!(
            settled.utr.is_some(),
            to == SettlementStatus::Processed,
            "{ctx}"
        );
        st.status = to;
        m.held -= st.amount;
        m.last_seq += 1;
        let kind = if to == SettlementStatus::Processed {
            TransferKind::SettlementSettle
        } else {
            m.available += st.amount;
            TransferKind::SettlementRelease
        };
        self.seen[10] += 1;
        let mut expected: Vec<Expected> =
            Expected::of(kind, st.amount, &st.id).into_iter().collect();
        // Like every settle of the wallet, it tries the payout queue (SPEC §13).
        self.seen[15] += m.drain(&mut expected);
        (Touched::Settlement(i), expected)
    }

    /// Cancels a pending or queued payout (its hold back, the queue tried),
    /// or tries to cancel one in another state (refused, nothing moves).
    async fn cancel(&mut self, w: usize) -> (Touched, Vec<Expected>) {
        let ctx = self.ctx();
        let m = &self.models[w];
        let mut open = m.payout_indexes(PayoutStatus::Pending);
        open.extend(m.queue.iter().copied());
        let closed: Vec<usize> = (0..m.payouts.len())
            .filter(|&i| {
                !matches!(
                    m.payouts[i].status,
                    PayoutStatus::Pending | PayoutStatus::Queued
                )
            })
            .collect();
        if self.rng.random_bool(0.2) && !closed.is_empty() {
            let i = pick(&mut self.rng, &closed).unwrap();
            let po = &m.payouts[i];
            let result = self.wallets.cancel_payout(m.merchant, po.id, None).await;
            assert_eq!(
                result.map(|p| p.status).unwrap_err(),
                Rejection::InvalidStatusTransition {
                    from: po.status.as_str(),
                    to: "cancelled".to_owned()
                },
                "{ctx}: cancelling {} payout {}",
                po.status.as_str(),
                po.id
            );
            self.seen[17] += 1;
            return (Touched::Payout(i), Vec::new());
        }
        let Some(i) = pick(&mut self.rng, &open) else {
            return self.create_payout(w).await;
        };
        let m = &mut self.models[w];
        let id = m.payouts[i].id;
        let cancelled = self
            .wallets
            .cancel_payout(m.merchant, id, Some("simulated".into()))
            .await
            .unwrap_or_else(|e| panic!("{ctx}: cancelling payout {id} refused: {e}"));
        assert_eq!(cancelled.status, PayoutStatus::Cancelled, "{ctx}");
        let mut expected = Vec::new();
        if m.payouts[i].status == PayoutStatus::Pending {
            let hold = m.payouts[i].hold();
            m.held -= hold;
            m.available += hold;
            m.last_seq += 1;
            expected.extend(Expected::of(TransferKind::PayoutRelease, hold, &id));
        } else {
            m.queue.retain(|&q| q != i);
        }
        m.payouts[i].status = PayoutStatus::Cancelled;
        self.seen[15] += m.drain(&mut expected);
        self.seen[16] += 1;
        (Touched::Payout(i), expected)
    }

    /// Reverses a processed payout by hand: its amount back to available
    /// (the fee stays earned), the queue tried.
    async fn reverse(&mut self, w: usize) -> (Touched, Vec<Expected>) {
        let ctx = self.ctx();
        let Some(i) = pick(
            &mut self.rng,
            &self.models[w].payout_indexes(PayoutStatus::Processed),
        ) else {
            return self.settle_payout(w).await;
        };
        let m = &mut self.models[w];
        let id = m.payouts[i].id;
        let reversed = self
            .wallets
            .reverse_payout(m.merchant, id, Some("simulated".into()))
            .await
            .unwrap_or_else(|e| panic!("{ctx}: reversing payout {id} refused: {e}"));
        assert_eq!(reversed.status, PayoutStatus::Reversed, "{ctx}");
        let amount = m.payouts[i].amount;
        m.payouts[i].status = PayoutStatus::Reversed;
        m.available += amount;
        m.total_payouts -= amount;
        m.last_seq += 1;
        let mut expected: Vec<Expected> = Expected::of(TransferKind::PayoutReverse, amount, &id)
            .into_iter()
            .collect();
        self.seen[15] += m.drain(&mut expected);
        self.seen[18] += 1;
        (Touched::Payout(i), expected)
    }

    /// A batch of 1-8 payouts (some queued, some over the balance, some
    /// re-using a reference id, also within the batch): one write, each
    /// item as the model says given the items before it.
    async fn batch(&mut self, w: usize) -> (Touched, Vec<Expected>) {
        let ctx = self.ctx();
        let n = self.rng.random_range(1..=8usize);
        let mut items = Vec::with_capacity(n);
        let mut plans = Vec::with_capacity(n);
        for _ in 0..n {
            let m = &mut self.models[w];
            let available = m.available;
            let amount = match self.rng.random_range(0..4) {
                0 => available + self.rng.random_range(100..10_000u64),
                _ => self.rng.random_range(100..=available.clamp(100, 50_000)),
            }
            .min(AMOUNT_MAX);
            let reference = match self.rng.random_range(0..10) {
                0 => m
                    .payouts
                    .iter()
                    .rev()
                    .find_map(|p| p.reference.clone())
                    .unwrap_or_else(|| "ref-batch-dup".to_owned()),
                1 => "ref-batch-dup".to_owned(),
                _ => {
                    m.next_ref += 1;
                    format!("ref-{}", m.next_ref)
                }
            };
            let mut new = common::payout(amount, "123456789012", m.merchant);
            new.reference_id = Some(reference.clone());
            new.queue_if_low_balance = self.rng.random_bool(0.3);
            plans.push((amount, reference, new.queue_if_low_balance));
            items.push(new);
        }
        let merchant = self.models[w].merchant;
        let results = ok(self.wallets.create_payouts(merchant, items).await, &ctx);
        assert_eq!(results.len(), n, "{ctx}: one result per item");
        let m = &mut self.models[w];
        let mut expected = Vec::new();
        let mut touched = Touched::Nothing;
        for ((amount, reference, queue), result) in plans.into_iter().zip(results) {
            let hold = amount + m.payout_fee;
            let taken = m
                .payouts
                .iter()
                .any(|p| p.reference.as_deref() == Some(reference.as_str()));
            let want = if taken {
                Err(Rejection::DuplicateOrderId)
            } else if queue && (hold > m.available || !m.queue.is_empty()) {
                Ok(PayoutStatus::Queued)
            } else if hold > m.available {
                Err(Rejection::InsufficientBalance)
            } else {
                Ok(PayoutStatus::Pending)
            };
            assert_eq!(
                result.as_ref().map(|p| p.status).map_err(Clone::clone),
                want,
                "{ctx}: batch item {reference} of {amount}+{}",
                m.payout_fee
            );
            let Ok(po) = result else { continue };
            m.exists = true;
            m.payouts.push(PayoutModel {
                id: po.id,
                reference: Some(reference),
                amount,
                fee: m.payout_fee,
                status: po.status,
            });
            let i = m.payouts.len() - 1;
            touched = Touched::Payout(i);
            if po.status == PayoutStatus::Queued {
                m.queue.push_back(i);
            } else {
                m.available -= hold;
                m.held += hold;
                m.last_seq += 1;
                expected.extend(Expected::of(TransferKind::PayoutHold, hold, &po.id));
            }
        }
        self.seen[19] += 1;
        (touched, expected)
    }

    /// The per-step check of one wallet: new ledger entries, running sum,
    /// stored and live wallet against the model, the touched record.
    async fn check(&mut self, w: usize, touched: &Touched, expected: &[Expected]) {
        let ctx = self.ctx();
        let m = &mut self.models[w];
        let transfers = ok(
            self.store
                .ledger(&m.merchant, m.checked_posting + 1, usize::MAX),
            &ctx,
        );
        let got: Vec<Expected> = transfers.iter().map(expected_of).collect();
        assert_eq!(got, expected, "{ctx}: new transfers of {}", m.merchant);
        for t in &transfers {
            assert_eq!(t.posting, m.checked_posting + 1, "{ctx}: posting gap");
            assert_eq!(t.merchant_id, m.merchant, "{ctx}");
            m.checked_posting = t.posting;
            let (debit, credit) = spec_accounts(t.kind);
            if debit.is_merchant() || credit.is_merchant() {
                assert_eq!(t.seq, m.checked_seq + 1, "{ctx}: ledger seq gap");
                m.checked_seq = t.seq;
            } else {
                assert_eq!(t.seq, 0, "{ctx}: {:?} has a merchant seq", t.kind);
            }
            let amount = i128::from(t.amount.paise());
            assert!(amount > 0, "{ctx}: a transfer of nothing");
            m.accounts[debit.index()] -= amount;
            m.accounts[credit.index()] += amount;
            assert_eq!(m.accounts.iter().sum::<i128>(), 0, "{ctx}: zero sum");
            let (available, held) = (
                m.accounts[AccountKind::Available.index()],
                m.accounts[AccountKind::Held.index()],
            );
            assert!(available >= 0 && held >= 0, "{ctx}: a negative balance");
            assert_eq!(
                (
                    i128::from(t.available_after.paise()),
                    i128::from(t.held_after.paise())
                ),
                (available, held),
                "{ctx}: transfer {} after-balances",
                t.id
            );
        }
        let stored = ok(self.store.wallet(&m.merchant, Currency::Inr), &ctx);
        assert_eq!(stored.is_some(), m.exists, "{ctx}: wallet row existence");
        let live = ok(self.wallets.balance(m.merchant).await, &ctx);
        if let Some(stored) = &stored {
            assert_eq!(&live, stored, "{ctx}: actor's wallet differs from storage");
        }
        assert_eq!(
            common::numbers(&live),
            m.numbers(),
            "{ctx}: wallet of {} against the model \
             [available, held, pending_payins, total_payins, total_payouts, total_fees, last_seq]",
            m.merchant
        );
        // Every account's balance (the wallet's share of the platform
        // accounts included) against the transfers read back.
        for kind in AccountKind::ALL {
            assert_eq!(
                live.balance(kind),
                m.accounts[kind.index()],
                "{ctx}: {kind:?} of {} against its transfers",
                m.merchant
            );
        }
        assert_eq!(live.zero_sum(), 0, "{ctx}: the wallet's accounts sum");
        assert_eq!(live.last_posting, m.checked_posting, "{ctx}: last_posting");
        match *touched {
            Touched::Nothing => {}
            Touched::Payin(i) => {
                let p = &m.payins[i];
                let stored = must_exist(ok(self.store.payment(&p.id), &ctx), &ctx, &p.id);
                assert_eq!(stored.status, p.status, "{ctx}: status of {}", p.id);
            }
            Touched::Payout(i) => {
                let po = &m.payouts[i];
                let stored = must_exist(ok(self.store.payout(&po.id), &ctx), &ctx, &po.id);
                assert_eq!(stored.status, po.status, "{ctx}: status of {}", po.id);
            }
            Touched::Settlement(i) => {
                let st = &m.settlements[i];
                let stored = must_exist(ok(self.store.settlement(&st.id), &ctx), &ctx, &st.id);
                assert_eq!(stored.status, st.status, "{ctx}: status of {}", st.id);
            }
            Touched::Refund(i) => {
                let r = &m.refunds[i];
                let stored = must_exist(ok(self.store.refund(&r.id), &ctx), &ctx, &r.id);
                assert_eq!(stored.status, r.status, "{ctx}: status of {}", r.id);
                let p = &m.payins[r.payin];
                let payment = must_exist(ok(self.store.payment(&p.id), &ctx), &ctx, &p.id);
                assert_eq!(
                    payment.refunded_amount.paise(),
                    p.refunded,
                    "{ctx}: refunded_amount of {}",
                    p.id
                );
            }
        }
    }

    /// End of run: every record, every listing, conservation, full audits.
    fn final_checks(&self) {
        let ctx = format!("seed {:#x}, final", self.seed);
        let (mut stored_total, mut expected_total) = (0i128, 0i128);
        for m in &self.models {
            for p in &m.payins {
                let stored = must_exist(ok(self.store.payment(&p.id), &ctx), &ctx, &p.id);
                assert_eq!(
                    (stored.status, stored.amount.paise(), stored.fee.paise()),
                    (p.status, p.amount, p.fee),
                    "{ctx}: pay-in {}",
                    p.id
                );
                assert_eq!(
                    stored.refunded_amount.paise(),
                    p.refunded,
                    "{ctx}: refunded_amount of {}",
                    p.id
                );
                if p.status == PaymentStatus::Completed {
                    expected_total += i128::from(p.amount - p.fee);
                }
            }
            for po in &m.payouts {
                let stored = must_exist(ok(self.store.payout(&po.id), &ctx), &ctx, &po.id);
                assert_eq!(
                    (stored.status, stored.amount.paise(), stored.fee.paise()),
                    (po.status, po.amount, po.fee),
                    "{ctx}: payout {}",
                    po.id
                );
                match po.status {
                    PayoutStatus::Processed => expected_total -= i128::from(po.hold()),
                    // The amount came back; the fee stays earned.
                    PayoutStatus::Reversed => expected_total -= i128::from(po.fee),
                    _ => {}
                }
            }
            for st in &m.settlements {
                let stored = must_exist(ok(self.store.settlement(&st.id), &ctx), &ctx, &st.id);
                assert_eq!(
                    (stored.status, stored.amount.paise()),
                    (st.status, st.amount),
                    "{ctx}: settlement {}",
                    st.id
                );
                if st.status == SettlementStatus::Processed {
                    expected_total -= i128::from(st.amount);
                }
            }
            let settlements =
                common::index_ids(&self.store, IndexTag::SettlementsByMerchant, &m.merchant);
            assert_eq!(
                settlements.len(),
                m.settlements.len(),
                "{ctx}: settlement listing"
            );
            for r in &m.refunds {
                let stored = must_exist(ok(self.store.refund(&r.id), &ctx), &ctx, &r.id);
                assert_eq!(
                    (stored.status, stored.amount.paise(), stored.payment_id),
                    (r.status, r.amount, m.payins[r.payin].id),
                    "{ctx}: refund {}",
                    r.id
                );
                if r.status == RefundStatus::Processed {
                    expected_total -= i128::from(r.amount);
                }
            }
            let refunds = common::index_ids(&self.store, IndexTag::RefundsByMerchant, &m.merchant);
            assert_eq!(refunds.len(), m.refunds.len(), "{ctx}: refund listing");
            let payments =
                common::index_ids(&self.store, IndexTag::PaymentsByMerchant, &m.merchant);
            assert_eq!(payments.len(), m.payins.len(), "{ctx}: pay-in listing");
            let payouts = common::index_ids(&self.store, IndexTag::PayoutsByMerchant, &m.merchant);
            assert_eq!(payouts.len(), m.payouts.len(), "{ctx}: payout listing");
            // The durable FIFO is the model's queue, in order.
            let queued: Vec<PayoutId> = ok(self.store.queued_payouts(&m.merchant, 100_000), &ctx)
                .into_iter()
                .map(|p| p.id)
                .collect();
            let want: Vec<PayoutId> = m.queue.iter().map(|&i| m.payouts[i].id).collect();
            assert_eq!(queued, want, "{ctx}: the stored queue of {}", m.merchant);
            if m.exists {
                let wallet = must_exist(
                    ok(self.store.wallet(&m.merchant, Currency::Inr), &ctx),
                    &ctx,
                    &m.merchant,
                );
                let entries = ok(self.store.ledger(&m.merchant, 1, usize::MAX), &ctx);
                if let Err(e) = domain::ledger::audit(&wallet, &entries) {
                    panic!("{ctx}: ledger audit of {}: {e}", m.merchant);
                }
                assert_eq!(common::numbers(&wallet), m.numbers(), "{ctx}");
                stored_total += wallet.total();
            } else {
                assert!(
                    m.payins.is_empty() && m.payouts.is_empty() && m.refunds.is_empty(),
                    "{ctx}"
                );
            }
        }
        assert_eq!(
            stored_total, expected_total,
            "{ctx}: Σ(available + held) != Σ completed net − Σ processed (amount + fee) − Σ processed refunds"
        );
        for (name, count) in SEEN_NAMES.iter().zip(self.seen) {
            assert!(count > 0, "{ctx}: the run never saw '{name}'");
        }
    }
}

/// Refunds: the model alone decides each outcome.
impl Sim {
    async fn create_refund(&mut self, w: usize) -> (Touched, Vec<Expected>) {
        let ctx = self.ctx();
        let m = &self.models[w];
        let refundable: Vec<usize> = (0..m.payins.len())
            .filter(|&i| {
                m.payins[i].status == PaymentStatus::Completed
                    && m.payins[i].refunded < m.payins[i].amount
            })
            .collect();
        let any: Vec<usize> = (0..m.payins.len()).collect();
        let chosen = if self.rng.random_bool(0.8) && !refundable.is_empty() {
            pick(&mut self.rng, &refundable)
        } else {
            pick(&mut self.rng, &any)
        };
        let Some(i) = chosen else {
            return self.create_payin(w).await;
        };
        let p = &m.payins[i];
        let rest = p.amount - p.refunded;
        let requested = match self.rng.random_range(0..10) {
            0..=1 => None,
            2 => Some(rest + self.rng.random_range(1..=5_000u64)),
            3 if rest > 100 => Some(self.rng.random_range(1..100u64)),
            _ if rest >= 100 => Some(self.rng.random_range(100..=rest)),
            _ => Some(rest.max(1)),
        };
        let reason = self.rng.random_bool(0.1).then(|| "fail@sandbox".to_owned());
        // Some refunds carry an Idempotency-Key, replayed below once created.
        let idempotency = self.rng.random_bool(0.2).then(|| actors::Idempotency {
            key: format!("refund-{}", self.step),
            fingerprint: "first".to_owned(),
            fields: Vec::new(),
        });
        let new = actors::NewRefund {
            payment_id: p.id,
            amount: requested.map(Money::from_paise),
            reason,
            created_by: m.merchant,
            idempotency: idempotency.clone(),
        };
        let result = self.wallets.create_refund(m.merchant, new.clone()).await;
        let amount = requested.unwrap_or(rest);
        let want = if p.status != PaymentStatus::Completed {
            Some(Rejection::InvalidStatusTransition {
                from: p.status.as_str(),
                to: "refunded".to_owned(),
            })
        } else if rest == 0 || amount > rest {
            Some(Rejection::RefundExceedsPayment)
        } else if amount < 100 && amount != rest {
            Some(Rejection::InvalidAmount(
                "a partial refund must be at least 1.00".to_owned(),
            ))
        } else if amount > m.available {
            Some(Rejection::InsufficientBalance)
        } else {
            None
        };
        if let Some(want) = want {
            assert_eq!(
                result.map(|c| c.record.id).unwrap_err(),
                want,
                "{ctx}: refund of {amount} of pay-in {} (rest {rest}, available {})",
                p.id,
                m.available
            );
            self.seen[12] += 1;
            return (Touched::Payin(i), Vec::new());
        }
        let created = result.unwrap_or_else(|e| {
            panic!(
                "{ctx}: refund of {amount} (rest {rest}) of pay-in {} refused: {e}",
                p.id
            )
        });
        let r = created.record;
        assert_eq!(
            (r.status, r.amount.paise(), r.payment_id, r.merchant_id),
            (RefundStatus::Pending, amount, p.id, m.merchant),
            "{ctx}: new refund"
        );
        if let Some(idem) = idempotency {
            // The same key and body: the first answer again, nothing moves
            // (the per-step check sees only the one hold); another body: refused.
            let again = ok(
                self.wallets.create_refund(m.merchant, new.clone()).await,
                &ctx,
            );
            assert!(again.replayed, "{ctx}: a repeated key was not replayed");
            assert_eq!(again.record, r, "{ctx}: the replay differs");
            let mut other = new;
            other.idempotency = Some(actors::Idempotency {
                fingerprint: "second".to_owned(),
                ..idem
            });
            let refused = self
                .wallets
                .create_refund(m.merchant, other)
                .await
                .map(|c| c.record.id)
                .unwrap_err();
            assert!(
                matches!(refused, Rejection::IdempotencyConflict { .. }),
                "{ctx}: a key re-used with another body: {refused:?}"
            );
        }
        let m = &mut self.models[w];
        m.available -= amount;
        m.held += amount;
        m.last_seq += 1;
        m.payins[i].refunded += amount;
        m.refunds.push(RefundModel {
            id: r.id,
            payin: i,
            amount,
            status: RefundStatus::Pending,
        });
        self.seen[11] += 1;
        let expected = Expected::of(TransferKind::RefundHold, amount, &r.id)
            .into_iter()
            .collect();
        (Touched::Refund(m.refunds.len() - 1), expected)
    }

    async fn settle_refund(&mut self, w: usize) -> (Touched, Vec<Expected>) {
        let ctx = self.ctx();
        let m = &self.models[w];
        let pending: Vec<usize> = (0..m.refunds.len())
            .filter(|&i| m.refunds[i].status == RefundStatus::Pending)
            .collect();
        let settled: Vec<usize> = (0..m.refunds.len())
            .filter(|&i| m.refunds[i].status != RefundStatus::Pending)
            .collect();
        let to = if self.rng.random_bool(0.7) {
            RefundStatus::Processed
        } else {
            RefundStatus::Failed
        };
        if self.rng.random_bool(0.15) && !settled.is_empty() || pending.is_empty() {
            // A second settlement: refused, nothing moves.
            let Some(i) = pick(&mut self.rng, &settled) else {
                return self.create_refund(w).await;
            };
            let r = &m.refunds[i];
            let result = self
                .wallets
                .settle_refund(m.merchant, r.id, to, Some("again".into()))
                .await;
            assert_eq!(
                result.map(|r| r.status).unwrap_err(),
                Rejection::InvalidStatusTransition {
                    from: r.status.as_str(),
                    to: to.as_str().to_owned()
                },
                "{ctx}: re-settling refund {}",
                r.id
            );
            self.seen[6] += 1;
            return (Touched::Refund(i), Vec::new());
        }
        let i = pick(&mut self.rng, &pending).unwrap();
        let id = m.refunds[i].id;
        let done = self
            .wallets
            .settle_refund(m.merchant, id, to, Some("simulated".into()))
            .await
            .unwrap_or_else(|e| panic!("{ctx}: settling pending refund {id} refused: {e}"));
        assert_eq!((done.id, done.status), (id, to), "{ctx}");
        let m = &mut self.models[w];
        let r = &mut m.refunds[i];
        r.status = to;
        let amount = r.amount;
        m.held -= amount;
        m.last_seq += 1;
        let kind = if to == RefundStatus::Processed {
            assert!(done.processed_at.is_some(), "{ctx}: no processed_at");
            TransferKind::RefundSettle
        } else {
            assert!(done.failure_reason.is_some(), "{ctx}: no failure_reason");
            m.available += amount;
            m.payins[r.payin].refunded -= amount;
            TransferKind::RefundRelease
        };
        self.seen[13] += 1;
        let mut expected: Vec<Expected> = Expected::of(kind, amount, &id).into_iter().collect();
        // Like every settle of the wallet, it tries the payout queue (SPEC §13).
        self.seen[15] += m.drain(&mut expected);
        (Touched::Refund(i), expected)
    }
}

async fn simulate(seed: u64) {
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), Durability::Buffered);
    // The sandbox would settle in an hour: all settlement is ours.
    let core = common::start(&store, common::config(3_600_000)).await;
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut models = Vec::with_capacity(WALLETS);
    for _ in 0..WALLETS {
        let payin_fee_bps = rng.random_range(0..=500u32);
        let payout_fee = rng.random_range(0..=2_000u64);
        let merchant = common::merchant(&store, payin_fee_bps, payout_fee).await;
        let reserve = match rng.random_range(0..3) {
            0 => 0,
            _ => rng.random_range(0..=200_000u64),
        };
        common::set_settlement_terms(&store, merchant, "123456789012", reserve).await;
        models.push(WalletModel {
            merchant,
            payin_fee_bps,
            payout_fee,
            available: 0,
            held: 0,
            pending_payins: 0,
            total_payins: 0,
            total_payouts: 0,
            total_fees: 0,
            last_seq: 0,
            exists: false,
            payins: Vec::new(),
            payouts: Vec::new(),
            reserve,
            settlements: Vec::new(),
            refunds: Vec::new(),
            checked_posting: 0,
            checked_seq: 0,
            accounts: [0; 7],
            next_ref: 0,
            queue: VecDeque::new(),
        });
    }
    let mut sim = Sim {
        seed,
        step: 0,
        rng,
        store: store.clone(),
        wallets: core.wallets().clone(),
        models,
        seen: [0; 20],
        also_touched: None,
    };
    for step in 0..OPS_PER_SEED {
        sim.step = step;
        let w = sim.rng.random_range(0..WALLETS);
        let other = sim.rng.random_range(0..WALLETS);
        let (touched, expected) = match sim.rng.random_range(0..132) {
            0..=29 => sim.create_payin(w).await,
            30..=49 => sim.settle_payin(w).await,
            50..=71 => sim.create_payout(w).await,
            72..=85 => sim.settle_payout(w).await,
            86..=90 => sim.duplicate(w).await,
            91..=96 => sim.resettle(w).await,
            97..=99 => sim.misdirected(w, other).await,
            100..=104 => sim.create_settlement(w).await,
            105..=109 => sim.settle_settlement(w).await,
            110..=115 => sim.create_refund(w).await,
            116..=121 => sim.settle_refund(w).await,
            122..=125 => sim.cancel(w).await,
            126..=128 => sim.reverse(w).await,
            _ => sim.batch(w).await,
        };
        sim.check(w, &touched, &expected).await;
        if let Some(other) = sim.also_touched.take() {
            // A misdirected settlement went through `other`: it must be untouched.
            sim.check(other, &Touched::Nothing, &[]).await;
        }
    }
    sim.final_checks();
    core.shutdown().await;
    store.close();
    eprintln!(
        "seed {seed:#x}: {OPS_PER_SEED} operations over {WALLETS} wallets in {:?}; {:?}",
        started.elapsed(),
        SEEN_NAMES.iter().zip(sim.seen).collect::<Vec<_>>()
    );
}

#[test]
fn fee_rounds_half_up_like_money() {
    // The model's fee arithmetic must agree with the domain's on the
    // rounding boundary, or every pay-in check above would be moot.
    for (amount, bps) in [
        (20u64, 250u32),
        (10, 250),
        (500_000, 199),
        (199, 25),
        (1, 5_000),
    ] {
        assert_eq!(
            common::payin_fee(amount, bps),
            Money::from_paise(amount).bps_half_up(bps).paise(),
            "{amount} paise at {bps} bps"
        );
    }
}
