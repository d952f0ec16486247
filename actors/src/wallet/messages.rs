//! Messages of the wallet actor. Every command answers through an
//! `RpcReplyPort` with the business result and, when it wrote anything, the
//! ticket of its write: the handle waits for durability, the actor does not.

use domain::{
    Beneficiary, Currency, Money, Payment, PaymentId, PaymentStatus, Payout, PayoutId, PayoutMode,
    PayoutStatus, Refund, RefundId, RefundStatus, Rejection, UserId, Wallet,
};
use ractor::RpcReplyPort;
use storage::{PendingId, StorageError, Ticket};

/// An `Idempotency-Key` and a digest of the request body it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: String,
    /// A short digest of each top-level body field (see
    /// `IdempotencyRecord::fields`), to name the fields of a conflict.
    pub fields: Vec<(String, String)>,
}

/// A validated pay-in request (amount and currency already parsed).
#[derive(Clone, Debug)]
pub struct NewPayin {
    pub order_id: String,
    pub amount: Money,
    pub currency: Currency,
    pub payer: String,
    pub payer_email: Option<String>,
    pub payer_phone: Option<String>,
    pub payer_vpa: Option<String>,
    pub description: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub created_by: UserId,
    pub idempotency: Option<Idempotency>,
}

/// A validated payout request.
#[derive(Clone, Debug)]
pub struct NewPayout {
    pub amount: Money,
    pub currency: Currency,
    pub beneficiary: Beneficiary,
    pub mode: PayoutMode,
    pub reference_id: Option<String>,
    pub purpose: Option<String>,
    pub created_by: UserId,
    pub idempotency: Option<Idempotency>,
    /// Queue it (status `queued`, no hold) when `available` cannot cover
    /// it, instead of failing with `insufficient_balance` (SPEC §13).
    pub queue_if_low_balance: bool,
}

/// A validated refund request: `amount` `None` refunds the whole rest.
#[derive(Clone, Debug)]
pub struct NewRefund {
    pub payment_id: PaymentId,
    pub amount: Option<Money>,
    pub reason: Option<String>,
    pub created_by: UserId,
    pub idempotency: Option<Idempotency>,
}

/// A result plus, when something was written, the write's ticket.
pub struct Reply<T> {
    pub result: Result<T, Rejection>,
    pub ticket: Option<Ticket>,
    /// True when an Idempotency-Key replayed an earlier response.
    pub replayed: bool,
}

impl<T> Reply<T> {
    pub(crate) fn rejected(rejection: Rejection) -> Reply<T> {
        Reply {
            result: Err(rejection),
            ticket: None,
            replayed: false,
        }
    }
}

/// The answer to a batch of payouts: one result per item, in order, and
/// the ticket of the one write that holds every accepted item.
pub struct BatchReply {
    pub results: Vec<Result<Payout, Rejection>>,
    pub ticket: Option<Ticket>,
}

/// Who decides how a pending record settles.
pub enum Outcome<S> {
    /// The rail's verdict: the sandbox's rules applied to the record, which
    /// the wallet holds (so the rail reads nothing itself). The settlement
    /// takes the record out of the rail's due queue in the same write.
    Rail(PendingId),
    /// A status given by hand (the admin's manual settlement): who set it,
    /// why (`reason`) and through which request. The settle's write set
    /// carries its audit entry (SPEC §16).
    Given(S, domain::AuditContext),
}

pub enum WalletMsg {
    CreatePayin(Box<NewPayin>, RpcReplyPort<Reply<Payment>>),
    SettlePayin {
        id: PaymentId,
        outcome: Outcome<PaymentStatus>,
        reply: RpcReplyPort<Reply<Payment>>,
    },
    CreatePayout(Box<NewPayout>, RpcReplyPort<Reply<Payout>>),
    SettlePayout {
        id: PayoutId,
        outcome: Outcome<PayoutStatus>,
        reply: RpcReplyPort<Reply<Payout>>,
    },
    /// Sweeps `available` above the merchant's reserve into a settlement.
    CreateSettlement(RpcReplyPort<Reply<domain::Settlement>>),
    SettleSettlement {
        id: domain::SettlementId,
        outcome: Outcome<domain::SettlementStatus>,
        reply: RpcReplyPort<Reply<domain::Settlement>>,
    },
    CreateRefund(Box<NewRefund>, RpcReplyPort<Reply<Refund>>),
    SettleRefund {
        id: RefundId,
        outcome: Outcome<RefundStatus>,
        reply: RpcReplyPort<Reply<Refund>>,
    },
    /// Cancels a queued or pending payout (SPEC §13).
    CancelPayout {
        id: PayoutId,
        reason: Option<String>,
        /// Set when the admin cancels by hand through the status route:
        /// then the write carries a `payout.status_set` audit entry.
        audit: Option<Box<domain::AuditContext>>,
        reply: RpcReplyPort<Reply<Payout>>,
    },
    /// Reverses a processed payout: by the rail (its reversal row) or by hand.
    ReversePayout {
        id: PayoutId,
        outcome: Outcome<PayoutStatus>,
        reply: RpcReplyPort<Reply<Payout>>,
    },
    /// A queued payout's time to live ran out (its expiry row fell due).
    ExpireQueuedPayout {
        id: PayoutId,
        due: PendingId,
        reply: RpcReplyPort<Reply<Payout>>,
    },
    /// Several payouts in ONE write set; each item answered on its own.
    CreatePayouts(Vec<NewPayout>, RpcReplyPort<BatchReply>),
    /// The wallet, and a ticket to wait on before showing it when it
    /// includes writes that are not durable yet (SPEC §19).
    Balance(RpcReplyPort<(Wallet, Result<Option<Ticket>, StorageError>)>),
    /// Re-read the merchant's fee schedule after it changed in storage.
    ReloadSettings(RpcReplyPort<Result<(), Rejection>>),
    /// Periodic: passivate when idle for long enough.
    IdleCheck,
    /// Fault injection for supervision tests: the handler panics.
    #[doc(hidden)]
    Crash,
}
