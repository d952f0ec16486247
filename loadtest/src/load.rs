//! The load itself. Open loop: request `i` is due at `start + i / rate`;
//! the dispatcher sends every due request (waiting for a free slot when
//! `max_in_flight` are out, which makes it late) and latency runs from the
//! due time, so a stalled server cannot hide its stall (coordinated-omission
//! correction). Closed loop: `concurrency` workers each send their next
//! request when the last one is answered. Both stop by themselves at the end
//! of the window or after `max_requests`.

use crate::client::{Api, Failure, Resp};
use crate::config::{Mix, Op};
use crate::model::{Live, Payin, Payout};
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

/// One request, decided and (for payouts) with its funds reserved.
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
                    let spendable = s.spendable(Instant::now());
                    if spendable < fee + 100 {
                        continue;
                    }
                    let amount = rng.range(100, 200_000).min(spendable - fee);
                    s.reserved += amount + fee;
                    drop(s);
                    let expect_reject =
                        rng.below(100) < u64::from(self.plan.reject_account_percent);
                    let account = if expect_reject {
                        "000000000000"
                    } else {
                        "123456789012"
                    };
                    let reference_id = format!("ltp-{seq}");
                    let body = format!(
                        r#"{{"amount":"{}","currency":"INR","mode":"IMPS","reference_id":"{reference_id}","purpose":"tijori-loadtest","beneficiary":{{"name":"Ravi Kumar","account_number":"{account}","ifsc":"HDFC0000001"}}}}"#,
                        money::render(amount)
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
                        },
                        key_user,
                        body,
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

    fn op_of(planned: &Planned) -> Op {
        match planned {
            Planned::Payin { .. } => Op::Payin,
            Planned::Payout { .. } => Op::Payout,
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
                        s.payouts.push(payout);
                    }
                    Created::Unknown => s.uncertain_payouts.push(payout),
                    Created::No => {
                        s.reserved = s.reserved.saturating_sub(payout.amount + payout.fee);
                    }
                }
                drop(s);
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

/// The outcome and the HTTP status (None: no HTTP answer).
fn outcome_of(r: &Result<Resp, Failure>) -> (Outcome, Option<u16>) {
    match r {
        Ok(resp) if (200..300).contains(&resp.status) => (Outcome::Ok, Some(resp.status)),
        Ok(resp) => (Outcome::Error(resp.error_code()), Some(resp.status)),
        Err(f) => (Outcome::Error(f.code()), None),
    }
}
