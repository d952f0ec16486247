//! The vocabulary of Tijori: money, ids, time, roles, rejections and the
//! records with their state machines. Pure values and rules: no I/O, no tokio,
//! no storage, no HTTP, so that every rule here can be tested exhaustively.

pub mod api_key;
pub mod audit_log;
pub mod beneficiary;
pub mod ids;
pub mod ledger;
pub mod metric_names;
pub mod money;
pub mod payout_lifecycle;
pub mod records;
pub mod refund;
pub mod rejection;
pub mod role;
pub mod secret;
pub mod settlement;
pub mod statement;
pub mod time;

pub use audit_log::{AuditAction, AuditContext, AuditEntry};
pub use ids::{AuditId, EventId, PaymentId, PayoutId, RefundId, SettlementId, TransferId, UserId};
pub use ledger::{Account, AccountKind, Posted, Transfer, TransferKind, Wallet};
pub use money::{Currency, Money};
pub use records::{
    Beneficiary, Delivery, DeliveryStatus, EventPayload, EventType, OutboxEvent, Payment,
    PaymentStatus, Payout, PayoutMode, PayoutStatus, User, UserStatus,
};
pub use refund::{Refund, RefundStatus};
pub use rejection::Rejection;
pub use role::Role;
pub use secret::Secret;
pub use settlement::{Settlement, SettlementAccount, SettlementStatus};
pub use time::Timestamp;

#[cfg(test)]
mod parsers_prop;
