//! The load itself. Open loop: request `i` is due at `start + i / rate`;
//! the dispatcher sends every due request (waiting for a free slot when
//! `max_in_flight` are out, which makes it late) and latency runs from the
//! due time, so a stalled server cannot hide its stall (coordinated-omission
//! correction). Closed loop: `concurrency` workers each send their next
//! request when the last one is answered. Both stop by themselves at the end
//! of the window or after `max_requests`.

use crate::client::{Api, Failure, Resp};
use crate::config::{Mix, Op};
use crate::model::{Cancel, Live, Payin, Payout, Refund};
use crate::money;
use crate::stats::{Outcome, Stats, LATE};
use crate::util::{lock, Rng};
use hyper::Method;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How early the open-loop dispatcher may send a request.
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// What the driver needs besides the client and the model.
#[derive(Clone, Debug)]
pub struct Plan {
    pub mix: Mix,
    pub fail_vpa_percent: u32,
    pub reject_account_percent: u32,
    /// Payouts to the sandbox's reversing account 000000000001.
    pub reverse_account_percent: u32,
    /// Payouts sent with queue_if_low_balance.
    pub queue_payout_percent: u32,
    /// Refunds sent with reason fail@sandbox.
    pub refund_fail_percent: u32,
    /// Most items of one batch (at least 2).
    pub batch_max_items: u32,
    /// Batches with one invalid item.
    pub batch_invalid_percent: u32,
    /// How long after its acknowledgement a pay-in's net counts as spendable.
    pub credit_after: Duration,
    pub seed: u64,
}

pub struct Driver {
    pub api: Api,
    pub live: Vec<Live>,
    pub stats: Arc<Stats>,
    pub plan: Plan,
    pub in_flight: AtomicU64,
    seq: AtomicU64,
}

/// Valid IFSCs (`^[A-Z]{4}0[A-Z0-9]{6}$`, SPEC §13) handed out in turn.
pub const IFSCS: [&str; 4] = ["HDFC0000001", "ICIC0001234", "SBIN0004567", "UTIB0ABC123"];

/// An IFSC the server must refuse (the fifth character is not 0).
pub const INVALID_IFSC: &str = "HDFC1000001";

/// The sandbox's rejecting and reversing accounts (SPEC §6, §13).
pub const REJECT_ACCOUNT: &str = "000000000000";
pub const REVERSE_ACCOUNT: &str = "000000000001";

/// A valid account number (12 digits, never one of the sandbox's magic ones).
pub fn account_number(seq: u64) -> String {
    format!("5{:011}", seq % 100_000_000_000)
}

/// One payout body (SPEC §4, §13), amount as a string.
pub fn payout_body(
    amount: u64,
    reference_id: &str,
    account: &str,
    ifsc: &str,
    queue_if_low_balance: bool,
) -> String {
    let queue = if queue_if_low_balance {
        r#","queue_if_low_balance":true"#
    } else {
        ""
    };
    format!(
        r#"{{"amount":"{}","currency":"INR","mode":"IMPS","reference_id":"{reference_id}","purpose":"tijori-loadtest","beneficiary":{{"name":"Ravi Kumar","account_number":"{account}","ifsc":"{ifsc}"}}{queue}}}"#,
        money::render(amount)
    )
}

/// One item of a batch.
enum BatchItem {
    /// Funds reserved; created unless the server refuses it.
    Valid(Payout),
    /// Sent with a malformed IFSC: must be refused (its reference_id).
    Invalid(String),
}

/// One request, decided and (for payouts and refunds) with its funds reserved.
enum Planned {
    Payin {
        m: usize,
        user: usize,
        payin: Payin,
        body: String,
    },
    Payout {
        m: usize,
        payout: Payout,
        key_user: usize,
        body: String,
    },
    Refund {
        m: usize,
        /// Index into the merchant's `refundable`.
        k: usize,
        user: usize,
        refund: Refund,
        body: String,
        idempotency_key: String,
    },
    Cancel {
        m: usize,
        /// Index into the merchant's `payouts`.
        index: usize,
        user: usize,
        path: String,
    },
    Batch {
        m: usize,
        user: usize,
        items: Vec<BatchItem>,
        body: String,
    },
    Read {
        op: Op,
        m: usize,
        user: usize,
        path: String,
    },
}

impl Driver {
    pub fn new(api: Api, live: Vec<Live>, stats: Arc<Stats>, plan: Plan) -> Driver {
        Driver {
            api,
            live,
            stats,
            plan,
            in_flight: AtomicU64::new(0),
            seq: AtomicU64::new(0),
        }
    }

    fn key(&self, m: usize, user: usize) -> &str {
        let merchant = &self.live[m].merchant;
        merchant
            .api_users
            .get(user)
            .map_or(merchant.key.as_str(), |u| u.key.as_str())
    }

    fn users(&self, m: usize) -> u64 {
        self.live[m].merchant.api_users.len().max(1) as u64
    }

    /// Picks the next operation; `Err(op)` when it has to be skipped.
    fn plan(&self, rng: &mut Rng) -> Result<Planned, Op> {
        let op = self.plan.mix.pick(rng.below(self.plan.mix.total()));
        let merchants = self.live.len() as u64;
        let m = rng.below(merchants) as usize;
        let user = rng.below(self.users(m)) as usize;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        match op {
            Op::Payin => {
                let amount = rng.range(100, 500_000);
                let expect_fail = rng.below(100) < u64::from(self.plan.fail_vpa_percent);
                let order_id = format!("lt-{seq}");
                let fee = self.live[m].merchant.payin_fee(amount);
                let amount_json = if seq % 2 == 0 {
                    format!("\"{}\"", money::render(amount))
                } else {
                    money::render(amount)
                };
                let vpa = if expect_fail {
                    "fail@sandbox".to_owned()
                } else {
                    format!("payer{}@upi", seq % 1_000)
                };
                let body = format!(
                    r#"{{"order_id":"{order_id}","amount":{amount_json},"currency":"INR","payer":"Load Tester","payer_vpa":"{vpa}","description":"tijori-loadtest"}}"#
                );
                Ok(Planned::Payin {
                    m,
                    user,
                    payin: Payin {
                        id: String::new(),
                        order_id,
                        amount,
                        fee,
                        expect_fail,
                    },
                    body,
                })
            }
            Op::Payout => {
                let queue = rng.below(100) < u64::from(self.plan.queue_payout_percent);
                // Try a few merchants for one with modelled funds.
                for attempt in 0..4u64 {
                    let m = if attempt == 0 {
                        m
                    } else {
                        rng.below(merchants) as usize
                    };
                    let live = &self.live[m];
                    let fee = live.merchant.payout_fee;
                    let mut s = lock(&live.state);
                    let now = Instant::now();
                    let spendable = s.spendable(now);
                    let amount = if queue {
                        // More than the model knows is there (so that it
                        // may queue), never more than the acknowledged
                        // pay-ins will bring (so that it is paid out in the
                        // end instead of blocking the queue).
                        let room = s.eventually_spendable(now);
                        if room < fee + 100 {
                            continue;
                        }
                        let hi = (room - fee).min(1_000_000);
                        let lo = (spendable.saturating_sub(fee) + 1).clamp(100, hi);
                        rng.range(lo, hi)
                    } else {
                        if spendable < fee + 100 {
                            continue;
                        }
                        rng.range(100, 200_000).min(spendable - fee)
                    };
                    s.reserved += amount + fee;
                    drop(s);
                    let (expect_reject, expect_reverse, account) = self.payout_account(rng, seq);
                    let reference_id = format!("ltp-{seq}");
                    let body = payout_body(
                        amount,
                        &reference_id,
                        &account,
                        IFSCS[(seq % 4) as usize],
                        queue,
                    );
                    let key_user = rng.below(self.users(m)) as usize;
                    return Ok(Planned::Payout {
                        m,
                        payout: Payout {
                            id: String::new(),
                            reference_id,
                            amount,
                            fee,
                            expect_reject,
                            expect_reverse,
                            queue_if_low_balance: queue,
                            user: key_user,
                            ..Payout::default()
                        },
                        key_user,
                        body,
                    });
                }
                Err(op)
            }
            Op::Refund => self.plan_refund(rng, m, seq).ok_or(op),
            Op::Cancel => {
                let mut s = lock(&self.live[m].state);
                for _ in 0..4 {
                    if s.cancellable.is_empty() {
                        break;
                    }
                    let pos = rng.below(s.cancellable.len() as u64) as usize;
                    let Some(index) = s.cancellable.remove(pos) else {
                        break;
                    };
                    let Some(p) = s.payouts.get_mut(index) else {
                        continue;
                    };
                    // Only a payout last known pending or queued.
                    if p.cancel != Cancel::NotSent
                        || !matches!(p.created_status.as_str(), "pending" | "queued")
                    {
                        continue;
                    }
                    p.cancel = Cancel::InFlight;
                    return Ok(Planned::Cancel {
                        m,
                        index,
                        user: p.user,
                        path: format!("/api/v1/payouts/{}/cancel", p.id),
                    });
                }
                Err(op)
            }
            Op::BatchPayouts => {
                for attempt in 0..4u64 {
                    let m = if attempt == 0 {
                        m
                    } else {
                        rng.below(merchants) as usize
                    };
                    let live = &self.live[m];
                    let fee = live.merchant.payout_fee;
                    let wanted = rng.range(2, u64::from(self.plan.batch_max_items.max(2)));
                    let invalid = rng.below(100) < u64::from(self.plan.batch_invalid_percent);
                    let key_user = rng.below(self.users(m)) as usize;
                    let mut items = Vec::new();
                    let mut bodies = Vec::new();
                    let mut s = lock(&live.state);
                    let spendable = s.spendable(Instant::now());
                    let mut left = spendable;
                    for i in 0..wanted {
                        let reference_id = format!("ltb-{seq}-{i}");
                        if invalid && i == 0 {
                            bodies.push(payout_body(
                                100,
                                &reference_id,
                                &account_number(seq),
                                INVALID_IFSC,
                                false,
                            ));
                            items.push(BatchItem::Invalid(reference_id));
                            continue;
                        }
                        if left < fee + 100 {
                            break;
                        }
                        let amount = rng.range(100, 100_000).min(left - fee);
                        left -= amount + fee;
                        let (expect_reject, expect_reverse, account) =
                            self.payout_account(rng, seq.wrapping_add(i));
                        bodies.push(payout_body(
                            amount,
                            &reference_id,
                            &account,
                            IFSCS[((seq + i) % 4) as usize],
                            false,
                        ));
                        items.push(BatchItem::Valid(Payout {
                            id: String::new(),
                            reference_id,
                            amount,
                            fee,
                            expect_reject,
                            expect_reverse,
                            user: key_user,
                            batch: true,
                            ..Payout::default()
                        }));
                    }
                    if !items.iter().any(|i| matches!(i, BatchItem::Valid(_))) {
                        continue;
                    }
                    s.reserved += spendable - left;
                    drop(s);
                    // The invalid item somewhere in the batch, not always first.
                    let at = rng.below(items.len() as u64) as usize;
                    items.swap(0, at);
                    bodies.swap(0, at);
                    return Ok(Planned::Batch {
                        m,
                        user: key_user,
                        items,
                        body: format!(r#"{{"payouts":[{}]}}"#, bodies.join(",")),
                    });
                }
                Err(op)
            }
            Op::Balance => Ok(Planned::Read {
                op,
                m,
                user,
                path: "/api/v1/balance".into(),
            }),
            Op::List => Ok(Planned::Read {
                op,
                m,
                user,
                path: "/api/v1/payments?limit=20".into(),
            }),
            Op::Get => {
                let s = lock(&self.live[m].state);
                let ring = s.recent.get(user).ok_or(op)?;
                let id = ring
                    .get(rng.below(ring.len() as u64) as usize)
                    .ok_or(op)?
                    .clone();
                Ok(Planned::Read {
                    op,
                    m,
                    user,
                    path: format!("/api/v1/payments/{id}"),
                })
            }
        }
    }

    /// The beneficiary account of a payout: the sandbox's rejecting one,
    /// its reversing one, or a valid ordinary one; (reject, reverse, account).
    fn payout_account(&self, rng: &mut Rng, seq: u64) -> (bool, bool, String) {
        let r = rng.below(100);
        let reject = u64::from(self.plan.reject_account_percent);
        let reverse = reject + u64::from(self.plan.reverse_account_percent);
        if r < reject {
            (true, false, REJECT_ACCOUNT.to_owned())
        } else if r < reverse {
            (false, true, REVERSE_ACCOUNT.to_owned())
        } else {
            (false, false, account_number(seq))
        }
    }

    /// A refund of a pay-in the model counts as completed, within what is
    /// left of it and what the wallet can spend, held in the model at once.
    /// Partial refunds leave 0 or at least 1.00; a first refund may leave
    /// `amount` out (the whole rest: the amount).
    fn plan_refund(&self, rng: &mut Rng, m: usize, seq: u64) -> Option<Planned> {
        let expect_fail = rng.below(100) < u64::from(self.plan.refund_fail_percent);
        let full = rng.below(100) < 30;
        let merchants = self.live.len() as u64;
        for attempt in 0..4u64 {
            let m = if attempt == 0 {
                m
            } else {
                rng.below(merchants) as usize
            };
            let mut s = lock(&self.live[m].state);
            let now = Instant::now();
            let spendable = s.spendable(now);
            let matured = s.refundable.partition_point(|r| r.mature_at <= now);
            if spendable < 100 || matured == 0 {
                continue;
            }
            for _ in 0..4 {
                let k = rng.below(matured as u64) as usize;
                let r = &s.refundable[k];
                let rest = r.remaining();
                if rest == 0 {
                    continue;
                }
                let (amount, amount_sent) = if full && r.refunds == 0 && rest <= spendable {
                    (rest, false)
                } else if rest >= 200 && spendable >= 100 {
                    (rng.range(100, (rest - 100).min(spendable).max(100)), true)
                } else if rest <= spendable && (rest >= 100 || !r.unsure) {
                    // The whole rest (below 1.00 only when the server's
                    // rest is surely the model's: no failed or unanswered
                    // refund of it).
                    (rest, true)
                } else {
                    continue;
                };
                if amount > rest || amount > spendable {
                    continue;
                }
                let user = r.user;
                let payment_id = r.payment_id.clone();
                let r = &mut s.refundable[k];
                r.planned += amount;
                r.refunds += 1;
                r.unsure |= expect_fail;
                s.reserved += amount;
                drop(s);
                let idempotency_key = format!("lt-rf-{seq}");
                let reason = if expect_fail {
                    "fail@sandbox".to_owned()
                } else {
                    format!("tijori-loadtest {idempotency_key}")
                };
                let body = if amount_sent {
                    format!(
                        r#"{{"amount":"{}","reason":"{reason}"}}"#,
                        money::render(amount)
                    )
                } else {
                    format!(r#"{{"reason":"{reason}"}}"#)
                };
                return Some(Planned::Refund {
                    m,
                    k,
                    user,
                    refund: Refund {
                        id: String::new(),
                        payment_id,
                        amount,
                        amount_sent,
                        reason,
                        expect_fail,
                    },
                    body,
                    idempotency_key,
                });
            }
        }
        None
    }

    fn op_of(planned: &Planned) -> Op {
        match planned {
            Planned::Payin { .. } => Op::Payin,
            Planned::Payout { .. } => Op::Payout,
            Planned::Refund { .. } => Op::Refund,
            Planned::Cancel { .. } => Op::Cancel,
            Planned::Batch { .. } => Op::BatchPayouts,
            Planned::Read { op, .. } => *op,
        }
    }

    /// Sends one planned request, updates the model, records the latency
    /// from `scheduled`.
    async fn execute(&self, planned: Planned, scheduled: Instant) {
        let op = Self::op_of(&planned);
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let sent = Instant::now();
        let outcome = match planned {
            Planned::Payin {
                m,
                user,
                mut payin,
                body,
            } => {
                let key = self.key(m, user);
                let r = self
                    .api
                    .call(
                        Method::POST,
                        "/api/v1/payments",
                        Some(key),
                        Some(body),
                        Some(&payin.order_id),
                    )
                    .await;
                let live = &self.live[m];
                match created_id(&r) {
                    Created::Yes(id) => {
                        payin.id = id;
                        live.payin_acknowledged(user, payin, self.plan.credit_after);
                    }
                    Created::Unknown => lock(&live.state).uncertain_payins.push(payin),
                    Created::No => {}
                }
                outcome_of(&r)
            }
            Planned::Payout {
                m,
                mut payout,
                key_user,
                body,
            } => {
                let key = self.key(m, key_user);
                let r = self
                    .api
                    .call(
                        Method::POST,
                        "/api/v1/payouts",
                        Some(key),
                        Some(body),
                        Some(&payout.reference_id),
                    )
                    .await;
                let mut s = lock(&self.live[m].state);
                match created_id(&r) {
                    Created::Yes(id) => {
                        payout.id = id;
                        payout.created_status = created_status(&r);
                        self.stats.note(Op::Payout, &payout.created_status);
                        s.payout_acknowledged(payout);
                    }
                    Created::Unknown => s.uncertain_payouts.push(payout),
                    Created::No => {
                        s.reserved = s.reserved.saturating_sub(payout.amount + payout.fee);
                    }
                }
                drop(s);
                outcome_of(&r)
            }
            Planned::Refund {
                m,
                k,
                user,
                mut refund,
                body,
                idempotency_key,
            } => {
                let key = self.key(m, user);
                let path = format!("/api/v1/payments/{}/refunds", refund.payment_id);
                let r = self
                    .api
                    .call(
                        Method::POST,
                        &path,
                        Some(key),
                        Some(body),
                        Some(&idempotency_key),
                    )
                    .await;
                let mut s = lock(&self.live[m].state);
                match created_id(&r) {
                    Created::Yes(id) => {
                        refund.id = id;
                        self.stats.note(Op::Refund, &created_status(&r));
                        s.refunds.push(refund);
                    }
                    Created::Unknown => {
                        if let Some(p) = s.refundable.get_mut(k) {
                            p.unsure = true;
                        }
                        s.uncertain_refunds.push(refund);
                    }
                    Created::No => {
                        let code = r.as_ref().map(Resp::error_code).unwrap_or_default();
                        self.stats.note(Op::Refund, &code);
                        s.reserved = s.reserved.saturating_sub(refund.amount);
                        if let Some(p) = s.refundable.get_mut(k) {
                            p.planned = p.planned.saturating_sub(refund.amount);
                            if code == "invalid_status_transition" {
                                // Not completed after all (the server's
                                // failure rate): never refund it again.
                                p.planned = p.amount;
                            }
                        }
                    }
                }
                drop(s);
                outcome_of(&r)
            }
            Planned::Cancel {
                m,
                index,
                user,
                path,
            } => {
                let key = self.key(m, user);
                let r = self
                    .api
                    .call(Method::POST, &path, Some(key), Some("{}".into()), None)
                    .await;
                let (cancel, note) = cancel_outcome(&r);
                self.stats.note(Op::Cancel, &note);
                if let Some(p) = lock(&self.live[m].state).payouts.get_mut(index) {
                    p.cancel = cancel;
                }
                outcome_of(&r)
            }
            Planned::Batch {
                m,
                user,
                items,
                body,
            } => {
                let key = self.key(m, user);
                let r = self
                    .api
                    .call(
                        Method::POST,
                        "/api/v1/payouts/batch",
                        Some(key),
                        Some(body),
                        None,
                    )
                    .await;
                self.batch_answered(m, items, &r);
                outcome_of(&r)
            }
            Planned::Read { m, user, path, .. } => {
                let key = self.key(m, user);
                let r = self
                    .api
                    .call(Method::GET, &path, Some(key), None, None)
                    .await;
                outcome_of(&r)
            }
        };
        self.stats
            .record(op, scheduled, sent, outcome.1, &outcome.0);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Open loop at `rate` per second from `start` until `end`.
    pub async fn open_loop(
        self: Arc<Self>,
        start: Instant,
        end: Instant,
        rate: u32,
        max_in_flight: usize,
        max_requests: Option<u64>,
    ) {
        let slots = Arc::new(Semaphore::new(max_in_flight));
        let rate = u128::from(rate.max(1));
        let mut i: u64 = 0;
        loop {
            if max_requests.is_some_and(|max| self.stats.sent.load(Ordering::Relaxed) >= max) {
                break;
            }
            let offset = Duration::from_nanos(
                u64::try_from(u128::from(i) * 1_000_000_000 / rate).unwrap_or(u64::MAX),
            );
            let scheduled = start + offset;
            if scheduled >= end {
                // The schedule ran to the end of the window.
                self.stats.mark_load_end(end);
                break;
            }
            // Tokio's timer rounds up to the next millisecond: wake up to
            // 1 ms early so that requests are not all sent late by the timer.
            let wake = scheduled.checked_sub(TIMER_SLACK).unwrap_or(scheduled);
            if wake > Instant::now() {
                tokio::time::sleep_until(wake.into()).await;
            }
            let permit = match slots.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    tokio::select! {
                        p = slots.clone().acquire_owned() => match p {
                            Ok(p) => p,
                            Err(_) => break,
                        },
                        () = tokio::time::sleep_until(end.into()) => {
                            // Every slot from here to the end could not be sent.
                            let total = u64::try_from(
                                end.saturating_duration_since(start).as_nanos() * rate / 1_000_000_000,
                            )
                            .unwrap_or(u64::MAX);
                            self.stats.missed.fetch_add(total.saturating_sub(i), Ordering::Relaxed);
                            break;
                        }
                    }
                }
            };
            if Instant::now().saturating_duration_since(scheduled) > LATE {
                self.stats.late.fetch_add(1, Ordering::Relaxed);
            }
            let mut rng = Rng::new(self.plan.seed ^ i.wrapping_mul(0x2545_F491_4F6C_DD1D));
            i += 1;
            match self.plan(&mut rng) {
                Ok(planned) => {
                    // Sent in the window (a skipped operation is not).
                    if self.stats.is_measured(scheduled) {
                        self.stats
                            .scheduled_measured
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    let driver = self.clone();
                    tokio::spawn(async move {
                        driver.execute(planned, scheduled).await;
                        drop(permit);
                    });
                }
                Err(op) => {
                    self.stats.skipped[op.index()].fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // Cut short (--max-requests, or the slots never freed): now.
        self.stats.mark_load_end(Instant::now().min(end));
        // Wait for everything in flight (each request has its own timeout).
        let _ = tokio::time::timeout(
            Duration::from_secs(120),
            slots.acquire_many(u32::try_from(max_in_flight).unwrap_or(u32::MAX)),
        )
        .await;
    }

    /// Closed loop: `concurrency` workers until `end`.
    pub async fn closed_loop(
        self: Arc<Self>,
        end: Instant,
        concurrency: usize,
        max_requests: Option<u64>,
    ) {
        let mut workers = Vec::with_capacity(concurrency);
        for w in 0..concurrency {
            let driver = self.clone();
            workers.push(tokio::spawn(async move {
                let mut rng = Rng::new(driver.plan.seed ^ (w as u64 + 1).wrapping_mul(0x9E37_79B9));
                while Instant::now() < end {
                    if max_requests
                        .is_some_and(|max| driver.stats.sent.load(Ordering::Relaxed) >= max)
                    {
                        break;
                    }
                    match driver.plan(&mut rng) {
                        Ok(planned) => {
                            let now = Instant::now();
                            if driver.stats.is_measured(now) {
                                driver
                                    .stats
                                    .scheduled_measured
                                    .fetch_add(1, Ordering::Relaxed);
                            }
                            driver.execute(planned, now).await;
                        }
                        Err(op) => {
                            driver.stats.skipped[op.index()].fetch_add(1, Ordering::Relaxed);
                            tokio::task::yield_now().await;
                        }
                    }
                }
            }));
        }
        for w in workers {
            let _ = w.await;
        }
        self.stats.mark_load_end(Instant::now().min(end));
    }
}

enum Created {
    Yes(String),
    /// No HTTP answer, or a 201 without an id: the server may have it.
    Unknown,
    No,
}

fn created_id(r: &Result<Resp, Failure>) -> Created {
    match r {
        Ok(resp) if resp.status == 201 => match resp.json()["data"]["id"].as_str() {
            Some(id) => Created::Yes(id.to_owned()),
            None => Created::Unknown,
        },
        Ok(_) => Created::No,
        Err(_) => Created::Unknown,
    }
}

/// `data.status` of an answer (empty without one).
fn created_status(r: &Result<Resp, Failure>) -> String {
    match r {
        Ok(resp) => resp.json()["data"]["status"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        Err(_) => String::new(),
    }
}

/// What a cancel's answer means for the model, and its outcome label.
fn cancel_outcome(r: &Result<Resp, Failure>) -> (Cancel, String) {
    match r {
        Ok(resp) if (200..300).contains(&resp.status) => {
            let status = resp.json()["data"]["status"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            (Cancel::Cancelled, status)
        }
        Ok(resp) => (Cancel::Refused, resp.error_code()),
        Err(f) => (Cancel::Unknown, f.code()),
    }
}

/// What each item of a batch became: (index of the item, outcome).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemResult {
    /// 201 with this payout id and status.
    Created(String, String),
    /// A 4xx: nothing created (its error code).
    Refused(String),
    /// No answer for this item (or none at all): it may exist.
    Unknown,
}

/// Reads a `POST /payouts/batch` answer (SPEC §13) for `n` items.
pub fn batch_results(r: &Result<Resp, Failure>, n: usize) -> Vec<ItemResult> {
    let resp = match r {
        Ok(resp) if resp.status == 200 => resp,
        Ok(resp) => {
            return vec![ItemResult::Refused(resp.error_code()); n];
        }
        _ => return vec![ItemResult::Unknown; n],
    };
    let mut out = vec![ItemResult::Unknown; n];
    let data = resp.json();
    for item in data["data"]["results"].as_array().into_iter().flatten() {
        let Some(index) = item["index"].as_u64().map(|i| i as usize) else {
            continue;
        };
        let Some(slot) = out.get_mut(index) else {
            continue;
        };
        let status = item["status"].as_u64().unwrap_or(0);
        *slot = match status {
            201 => match item["payout"]["id"].as_str() {
                Some(id) => ItemResult::Created(
                    id.to_owned(),
                    item["payout"]["status"].as_str().unwrap_or("").to_owned(),
                ),
                None => ItemResult::Unknown,
            },
            400..=499 => ItemResult::Refused(
                item["error"]["code"]
                    .as_str()
                    .map_or_else(|| format!("http_{status}"), str::to_owned),
            ),
            _ => ItemResult::Unknown,
        };
    }
    out
}

impl Driver {
    /// Puts each item of an answered (or unanswered) batch in the model.
    fn batch_answered(&self, m: usize, items: Vec<BatchItem>, r: &Result<Resp, Failure>) {
        let results = batch_results(r, items.len());
        let mut s = lock(&self.live[m].state);
        for (item, result) in items.into_iter().zip(results) {
            match (item, result) {
                (BatchItem::Valid(mut payout), ItemResult::Created(id, status)) => {
                    self.stats.note(Op::BatchPayouts, "item_201");
                    payout.id = id;
                    payout.created_status = status;
                    s.payout_acknowledged(payout);
                }
                (BatchItem::Valid(payout), ItemResult::Refused(code)) => {
                    self.stats.note(Op::BatchPayouts, &format!("item_{code}"));
                    s.reserved = s.reserved.saturating_sub(payout.amount + payout.fee);
                }
                (BatchItem::Valid(payout), ItemResult::Unknown) => {
                    self.stats.note(Op::BatchPayouts, "item_unanswered");
                    s.uncertain_payouts.push(payout);
                }
                (BatchItem::Invalid(reference), result) => {
                    self.stats.note(
                        Op::BatchPayouts,
                        match &result {
                            ItemResult::Created(..) => "invalid_item_accepted",
                            ItemResult::Refused(_) => "invalid_item_refused",
                            ItemResult::Unknown => "invalid_item_unanswered",
                        },
                    );
                    // Whatever the answer said, the audit checks that the
                    // server holds no payout with this reference_id.
                    s.invalid_payouts.push(reference);
                }
            }
        }
    }
}

/// The outcome and the HTTP status (None: no HTTP answer).
fn outcome_of(r: &Result<Resp, Failure>) -> (Outcome, Option<u16>) {
    match r {
        Ok(resp) if (200..300).contains(&resp.status) => (Outcome::Ok, Some(resp.status)),
        Ok(resp) => (Outcome::Error(resp.error_code()), Some(resp.status)),
        Err(f) => (Outcome::Error(f.code()), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_mix;
    use crate::model::{ApiUser, MerchantModel};
    use serde_json::Value;
    use std::collections::{HashMap, HashSet};

    fn ifsc_valid(ifsc: &str) -> bool {
        let b = ifsc.as_bytes();
        b.len() == 11
            && b[..4].iter().all(u8::is_ascii_uppercase)
            && b[4] == b'0'
            && b[5..]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    }

    fn account_valid(account: &str) -> bool {
        (9..=18).contains(&account.len()) && account.bytes().all(|b| b.is_ascii_digit())
    }

    #[test]
    fn beneficiaries_are_valid_and_the_invalid_one_is_not() {
        for ifsc in IFSCS {
            assert!(ifsc_valid(ifsc), "{ifsc}");
        }
        assert!(!ifsc_valid(INVALID_IFSC));
        for seq in [0, 1, 99_999_999_999, u64::MAX] {
            let a = account_number(seq);
            assert!(account_valid(&a), "{a}");
            assert!(a != REJECT_ACCOUNT && a != REVERSE_ACCOUNT);
        }
        assert!(account_valid(REJECT_ACCOUNT) && account_valid(REVERSE_ACCOUNT));
        let body: Value =
            serde_json::from_str(&payout_body(12_345, "r-1", "500000000001", IFSCS[3], true))
                .unwrap_or(Value::Null);
        assert_eq!(body["amount"], "123.45");
        assert_eq!(body["reference_id"], "r-1");
        assert_eq!(body["queue_if_low_balance"], true);
        assert_eq!(body["beneficiary"]["ifsc"], "UTIB0ABC123");
        assert_eq!(body["beneficiary"]["account_number"], "500000000001");
        let plain: Value =
            serde_json::from_str(&payout_body(100, "r-2", "500000000001", IFSCS[0], false))
                .unwrap_or(Value::Null);
        assert!(plain.get("queue_if_low_balance").is_none(), "{plain}");
    }

    fn driver(mix: &str) -> Driver {
        let merchant = MerchantModel {
            payin_fee_bps: 150,
            payout_fee: 500,
            api_users: (0..2)
                .map(|u| ApiUser {
                    id: format!("usr_u{u}"),
                    key: format!("key{u}"),
                })
                .collect(),
            ..MerchantModel::new(0, "usr_m".into(), "k".into())
        };
        let live = Live::new(merchant);
        for n in 0..20u64 {
            let amount = 50 + n * 7_001;
            live.payin_acknowledged(
                (n % 2) as usize,
                Payin {
                    id: format!("txn_{n}"),
                    order_id: format!("o{n}"),
                    amount,
                    fee: money::bps_half_up(amount, 150),
                    expect_fail: false,
                },
                Duration::ZERO,
            );
        }
        let start = Instant::now();
        Driver::new(
            Api::new("http://127.0.0.1:9", Duration::from_millis(10), 1),
            vec![live],
            Arc::new(Stats::new(start, Duration::ZERO)),
            Plan {
                mix: parse_mix(mix).unwrap_or(Mix([1; crate::config::OPS])),
                fail_vpa_percent: 5,
                reject_account_percent: 10,
                reverse_account_percent: 5,
                queue_payout_percent: 40,
                refund_fail_percent: 20,
                batch_max_items: 5,
                batch_invalid_percent: 50,
                credit_after: Duration::ZERO,
                seed: 7,
            },
        )
    }

    /// Plans many operations (acknowledging every payout at once) and
    /// checks what was planned against what the model allows.
    #[test]
    fn planning_stays_within_the_model() {
        let d = driver("payin=3,payout=3,refund=4,cancel=2,batch_payouts=2");
        let mut rng = Rng::new(3);
        let (mut refunds, mut payouts, mut cancels, mut batches) = (0, 0, 0, 0);
        let mut planned_refunds: HashMap<String, u64> = HashMap::new();
        let mut reserved = 0u64;
        let mut cancelled: HashSet<String> = HashSet::new();
        let mut references: HashSet<String> = HashSet::new();
        let mut queued_flags = 0;
        for n in 0..3_000u64 {
            let Ok(planned) = d.plan(&mut rng) else {
                continue;
            };
            let live = &d.live[0];
            match planned {
                Planned::Refund {
                    refund,
                    body,
                    idempotency_key,
                    ..
                } => {
                    refunds += 1;
                    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    assert_eq!(v["reason"], refund.reason.as_str(), "{body}");
                    assert_eq!(refund.expect_fail, refund.reason == "fail@sandbox");
                    if refund.amount_sent {
                        assert_eq!(
                            money::value_paise(&v["amount"]),
                            Some(refund.amount),
                            "{body}"
                        );
                    } else {
                        assert!(v.get("amount").is_none(), "{body}");
                    }
                    assert!(idempotency_key.starts_with("lt-rf-"));
                    *planned_refunds.entry(refund.payment_id).or_insert(0) += refund.amount;
                    reserved += refund.amount;
                }
                Planned::Payout {
                    mut payout, body, ..
                } => {
                    payouts += 1;
                    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    assert!(ifsc_valid(v["beneficiary"]["ifsc"].as_str().unwrap_or("")));
                    let account = v["beneficiary"]["account_number"].as_str().unwrap_or("");
                    assert!(account_valid(account), "{body}");
                    assert_eq!(account == REJECT_ACCOUNT, payout.expect_reject);
                    assert_eq!(account == REVERSE_ACCOUNT, payout.expect_reverse);
                    assert_eq!(
                        v["queue_if_low_balance"] == true,
                        payout.queue_if_low_balance
                    );
                    queued_flags += u32::from(payout.queue_if_low_balance);
                    assert!(references.insert(payout.reference_id.clone()));
                    reserved += payout.amount + payout.fee;
                    payout.id = format!("po_{n}");
                    payout.created_status = "pending".into();
                    lock(&live.state).payout_acknowledged(payout);
                }
                Planned::Batch { items, body, .. } => {
                    batches += 1;
                    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    let sent = v["payouts"].as_array().cloned().unwrap_or_default();
                    assert_eq!(sent.len(), items.len(), "{body}");
                    assert!((2..=5).contains(&items.len()) || items.len() == 1, "{body}");
                    for (item, json) in items.iter().zip(&sent) {
                        let ifsc = json["beneficiary"]["ifsc"].as_str().unwrap_or("");
                        let reference = json["reference_id"].as_str().unwrap_or("");
                        assert!(references.insert(reference.to_owned()), "{reference}");
                        match item {
                            BatchItem::Valid(p) => {
                                assert!(ifsc_valid(ifsc));
                                assert_eq!(p.reference_id, reference);
                                assert!(!p.queue_if_low_balance && p.batch);
                                reserved += p.amount + p.fee;
                            }
                            BatchItem::Invalid(r) => {
                                assert!(!ifsc_valid(ifsc));
                                assert_eq!(r, reference);
                            }
                        }
                    }
                }
                Planned::Cancel { index, path, .. } => {
                    cancels += 1;
                    let s = lock(&live.state);
                    let p = &s.payouts[index];
                    assert_eq!(p.cancel, Cancel::InFlight);
                    assert_eq!(path, format!("/api/v1/payouts/{}/cancel", p.id));
                    assert!(cancelled.insert(p.id.clone()), "cancelled twice: {}", p.id);
                }
                Planned::Payin {
                    user, mut payin, ..
                } => {
                    payin.id = format!("txn_n{n}");
                    live.payin_acknowledged(user, payin, Duration::ZERO);
                }
                Planned::Read { .. } => {}
            }
        }
        let counts = (refunds, payouts, cancels, batches, queued_flags);
        assert!(
            refunds > 100 && payouts > 100 && cancels > 50 && batches > 50 && queued_flags > 20,
            "{counts:?}"
        );
        let mut s = lock(&d.live[0].state);
        // Every planned paisa reserved; never more than the pay-ins bring.
        assert_eq!(s.reserved, reserved);
        let now = Instant::now();
        let _ = s.spendable(now);
        assert!(s.reserved <= s.credited + s.maturing_total);
        // No pay-in refunded beyond its amount.
        for r in &s.refundable {
            let planned = planned_refunds.get(&r.payment_id).copied().unwrap_or(0);
            assert_eq!(planned, r.planned);
            assert!(r.planned <= r.amount, "{r:?}");
        }
        assert!(s.refundable.iter().any(|r| r.remaining() == 0));
    }

    #[test]
    fn batch_answers_are_read_per_item() {
        let resp = |status: u16, body: &str| -> Result<Resp, Failure> {
            Ok(Resp {
                status,
                body: bytes::Bytes::from(body.to_owned()),
                retry_after: None,
            })
        };
        let ok = resp(
            200,
            r#"{"success": true, "data": {"results": [
                {"index": 0, "status": 201, "payout": {"id": "po_1", "status": "pending"}},
                {"index": 2, "status": 400, "error": {"code": "invalid_request"}},
                {"index": 9, "status": 201, "payout": {"id": "po_9"}}]}}"#,
        );
        assert_eq!(
            batch_results(&ok, 3),
            vec![
                ItemResult::Created("po_1".into(), "pending".into()),
                ItemResult::Unknown,
                ItemResult::Refused("invalid_request".into()),
            ]
        );
        let whole = resp(
            400,
            r#"{"success": false, "error": {"code": "invalid_request"}}"#,
        );
        assert_eq!(
            batch_results(&whole, 2),
            vec![ItemResult::Refused("invalid_request".into()); 2]
        );
        assert_eq!(
            batch_results(&Err(Failure::Timeout), 1),
            vec![ItemResult::Unknown]
        );
        let (cancel, label) = cancel_outcome(&resp(
            409,
            r#"{"success": false, "error": {"code": "invalid_status_transition"}}"#,
        ));
        assert_eq!(
            (cancel, label.as_str()),
            (Cancel::Refused, "invalid_status_transition")
        );
        let (cancel, label) = cancel_outcome(&resp(
            200,
            r#"{"success": true, "data": {"status": "cancelled"}}"#,
        ));
        assert_eq!((cancel, label.as_str()), (Cancel::Cancelled, "cancelled"));
        assert_eq!(cancel_outcome(&Err(Failure::Timeout)).0, Cancel::Unknown);
    }
}

/// The driver's requests and its reading of the answers, against a fake
/// server on loopback that answers like SPEC §12–13 (without moving money).
#[cfg(test)]
mod fake_server_tests {
    use super::*;
    use crate::config::parse_mix;
    use crate::model::{ApiUser, MerchantModel};
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;
    use serde_json::{json, Value};
    use std::collections::{BTreeMap, HashMap};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Fake {
        n: u64,
        /// po id → (status, reference_id).
        payouts: BTreeMap<String, (String, String)>,
        /// txn id → the key that created it.
        payins: HashMap<String, String>,
        /// (payment id, key) of each refund.
        refunds: Vec<(String, String)>,
        cancels: u64,
    }

    fn reply(status: u16, body: Value) -> Response<Full<bytes::Bytes>> {
        let mut r = Response::new(Full::new(bytes::Bytes::from(body.to_string())));
        *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
        r
    }

    fn error(status: u16, code: &str) -> Response<Full<bytes::Bytes>> {
        reply(status, json!({"success": false, "error": {"code": code}}))
    }

    fn payout_item(fake: &mut Fake, item: &Value) -> Result<Value, &'static str> {
        let ifsc = item["beneficiary"]["ifsc"].as_str().unwrap_or("");
        if ifsc.len() != 11 || ifsc.as_bytes()[4] != b'0' {
            return Err("invalid_request");
        }
        fake.n += 1;
        let id = format!("po_{}", fake.n);
        let status = if item["queue_if_low_balance"] == true && fake.n % 2 == 0 {
            "queued"
        } else {
            "pending"
        };
        let reference = item["reference_id"].as_str().unwrap_or("").to_owned();
        fake.payouts
            .insert(id.clone(), (status.to_owned(), reference.clone()));
        Ok(json!({"id": id, "status": status, "reference_id": reference}))
    }

    async fn handle(fake: &Mutex<Fake>, req: Request<Incoming>) -> Response<Full<bytes::Bytes>> {
        let method = req.method().clone();
        let uri = req.uri().clone();
        let key = req
            .headers()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut f = lock(fake);
        let path = uri.path();
        let parts: Vec<&str> = path.split('/').collect();
        match (method.as_str(), parts.as_slice()) {
            ("POST", ["", "api", "v1", "payments"]) => {
                f.n += 1;
                let id = format!("txn_{}", f.n);
                f.payins.insert(id.clone(), key);
                reply(201, json!({"data": {"id": id, "status": "pending"}}))
            }
            ("POST", ["", "api", "v1", "payments", payment, "refunds"]) => {
                f.n += 1;
                f.refunds.push(((*payment).to_owned(), key));
                let id = format!("rf_{}", f.n);
                reply(201, json!({"data": {"id": id, "status": "pending"}}))
            }
            ("POST", ["", "api", "v1", "payouts"]) => match payout_item(&mut f, &body) {
                Ok(p) => reply(201, json!({ "data": p })),
                Err(code) => error(400, code),
            },
            ("POST", ["", "api", "v1", "payouts", "batch"]) => {
                let items = body["payouts"].as_array().cloned().unwrap_or_default();
                let results: Vec<Value> = items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| match payout_item(&mut f, item) {
                        Ok(p) => json!({"index": index, "status": 201, "payout": p}),
                        Err(code) => {
                            json!({"index": index, "status": 400, "error": {"code": code}})
                        }
                    })
                    .collect();
                reply(200, json!({"data": {"results": results}}))
            }
            ("POST", ["", "api", "v1", "payouts", id, "cancel"]) => {
                f.cancels += 1;
                let odd = f.cancels % 2 == 1;
                match f.payouts.get_mut(*id) {
                    Some((status, _)) if odd && matches!(status.as_str(), "pending" | "queued") => {
                        *status = "cancelled".into();
                        reply(200, json!({"data": {"id": id, "status": "cancelled"}}))
                    }
                    Some((status, _)) => {
                        // The rail got there first.
                        if status != "cancelled" {
                            *status = "processed".into();
                        }
                        error(409, "invalid_status_transition")
                    }
                    None => error(404, "not_found"),
                }
            }
            ("GET", ["", "api", "v1", "payouts"])
                if uri.query() == Some("status=queued&limit=500") =>
            {
                let queued: Vec<Value> = f
                    .payouts
                    .iter()
                    .filter(|(_, (s, _))| s == "queued")
                    .map(|(id, (s, r))| json!({"id": id, "status": s, "reference_id": r}))
                    .collect();
                reply(
                    200,
                    json!({"data": queued, "pagination": {"next_cursor": null}}),
                )
            }
            ("GET", _) => reply(200, json!({"data": {}})),
            _ => error(404, "not_found"),
        }
    }

    async fn start(fake: Arc<Mutex<Fake>>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let fake = fake.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let fake = fake.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(&fake, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_driver_reads_every_answer_into_the_model() {
        let fake = Arc::new(Mutex::new(Fake::default()));
        let base = start(fake.clone()).await;
        let api = Api::new(&base, Duration::from_secs(5), 8);
        let merchant = MerchantModel {
            payout_fee: 500,
            api_users: (0..2)
                .map(|u| ApiUser {
                    id: format!("usr_u{u}"),
                    key: format!("key{u}"),
                })
                .collect(),
            ..MerchantModel::new(0, "usr_m".into(), "k".into())
        };
        let start_at = Instant::now();
        let stats = Arc::new(Stats::new(start_at, Duration::ZERO));
        let driver = Arc::new(Driver::new(
            api.clone(),
            vec![Live::new(merchant)],
            stats.clone(),
            Plan {
                mix: parse_mix("payin=4,payout=2,refund=2,cancel=2,batch_payouts=1")
                    .unwrap_or(Mix([1; crate::config::OPS])),
                fail_vpa_percent: 0,
                reject_account_percent: 10,
                reverse_account_percent: 10,
                queue_payout_percent: 50,
                refund_fail_percent: 30,
                batch_max_items: 4,
                batch_invalid_percent: 50,
                credit_after: Duration::ZERO,
                seed: 11,
            },
        ));
        driver
            .clone()
            .closed_loop(Instant::now() + Duration::from_secs(5), 4, Some(600))
            .await;
        let mut model = crate::model::Model {
            merchants: driver.live.iter().map(Live::freeze).collect(),
            payin_failures_allowed: false,
            webhooks_expected: false,
            v2: true,
            queued_may_remain: false,
        };
        let still_queued = {
            let m = &model.merchants[0];
            let f = lock(&fake);
            // Refunds: each acknowledged, of a known pay-in, by its creator's key.
            assert!(m.refunds.len() > 10, "{}", m.refunds.len());
            let keys = |user: usize| m.api_users.get(user).map_or("k", |u| u.key.as_str());
            for r in &m.refunds {
                assert!(r.id.starts_with("rf_"), "{r:?}");
                let payin = m.payins.iter().find(|p| p.id == r.payment_id);
                assert!(payin.is_some(), "{r:?}");
            }
            for (payment, key) in &f.refunds {
                assert_eq!(f.payins.get(payment), Some(key), "refund of {payment}");
            }
            assert!(m.uncertain_refunds.is_empty() && m.uncertain_payouts.is_empty());
            // Payouts and batch items, with the status of their 201.
            assert!(m.payouts.iter().any(|p| p.batch) && m.payouts.iter().any(|p| !p.batch));
            for p in &m.payouts {
                let (status, reference) = &f.payouts[&p.id];
                assert_eq!(reference, &p.reference_id);
                if p.cancel == Cancel::NotSent {
                    assert_eq!(status, &p.created_status, "{p:?}");
                }
                assert!(p.created_status == "pending" || p.queue_if_low_balance);
                assert!(keys(p.user).starts_with('k'));
            }
            assert!(m.payouts.iter().any(|p| p.created_status == "queued"));
            // The refused batch items are remembered and were never created.
            assert!(!m.invalid_payouts.is_empty());
            for r in &m.invalid_payouts {
                assert!(
                    f.payouts.values().all(|(_, reference)| reference != r),
                    "{r}"
                );
            }
            // Cancels: what the model holds is what the server did.
            let cancelled = m
                .payouts
                .iter()
                .filter(|p| p.cancel == Cancel::Cancelled)
                .count();
            let refused = m
                .payouts
                .iter()
                .filter(|p| p.cancel == Cancel::Refused)
                .count();
            assert!(cancelled > 0 && refused > 0, "{cancelled} {refused}");
            for p in &m.payouts {
                let server = f.payouts[&p.id].0.as_str();
                match p.cancel {
                    Cancel::Cancelled => assert_eq!(server, "cancelled"),
                    Cancel::Refused => assert_ne!(server, "cancelled"),
                    Cancel::NotSent => {}
                    other => panic!("{other:?} after the load: {p:?}"),
                }
            }
            let outcomes = lock(&stats.outcomes).clone();
            for label in [
                "payout:queued",
                "payout:pending",
                "refund:pending",
                "cancel:cancelled",
                "cancel:invalid_status_transition",
                "batch_payouts:item_201",
                "batch_payouts:invalid_item_refused",
            ] {
                assert!(outcomes.contains_key(label), "{label}: {outcomes:?}");
            }
            let still_queued = f.payouts.values().filter(|(s, _)| s == "queued").count() as u64;
            assert!(still_queued > 0);
            still_queued
        };
        // The sweep cancels every queued payout (the fake refuses every
        // second cancel) and the model follows.
        let sweep =
            crate::audit::cancel_queued(&api, &mut model, Instant::now() + Duration::from_secs(5))
                .await;
        assert_eq!(sweep.found, still_queued);
        assert_eq!(sweep.cancelled + sweep.refused, still_queued);
        let f = lock(&fake);
        for p in &model.merchants[0].payouts {
            let server = f.payouts[&p.id].0.as_str();
            assert_ne!(server, "queued");
            match p.cancel {
                Cancel::Cancelled => assert_eq!(server, "cancelled"),
                Cancel::Refused => assert_ne!(server, "cancelled"),
                _ => {}
            }
        }
    }
}
