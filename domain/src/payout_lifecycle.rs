//! The payout transitions of SPEC §13 beyond `Payout::settle`:
//! `queued → pending` (the wallet found room for it), `queued | pending →
//! cancelled`, and `processed → reversed`. Each is the only way to make
//! its change and refuses any other starting state, changing nothing.

use crate::{Payout, PayoutMode, PayoutStatus, Rejection, Timestamp};

impl PayoutMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PayoutMode::Imps => "IMPS",
            PayoutMode::Neft => "NEFT",
            PayoutMode::Rtgs => "RTGS",
            PayoutMode::Upi => "UPI",
        }
    }
}

fn refuse(from: PayoutStatus, to: PayoutStatus) -> Rejection {
    Rejection::InvalidStatusTransition {
        from: from.as_str(),
        to: to.as_str().to_owned(),
    }
}

impl Payout {
    /// A queued payout got its hold: it is pending from now on.
    pub fn activate(&mut self, now: Timestamp) -> Result<(), Rejection> {
        if self.status != PayoutStatus::Queued {
            return Err(refuse(self.status, PayoutStatus::Pending));
        }
        self.status = PayoutStatus::Pending;
        self.updated_at = now;
        Ok(())
    }

    /// Cancels a queued or pending payout. Returns the status it had (a
    /// pending one had a hold to release).
    pub fn cancel(
        &mut self,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<PayoutStatus, Rejection> {
        let was = self.status;
        if !matches!(was, PayoutStatus::Queued | PayoutStatus::Pending) {
            return Err(refuse(was, PayoutStatus::Cancelled));
        }
        self.status = PayoutStatus::Cancelled;
        self.reason = reason;
        self.updated_at = now;
        Ok(was)
    }

    /// A processed payout came back from the beneficiary's bank.
    pub fn reverse(&mut self, reason: Option<String>, now: Timestamp) -> Result<(), Rejection> {
        if self.status != PayoutStatus::Processed {
            return Err(refuse(self.status, PayoutStatus::Reversed));
        }
        self.status = PayoutStatus::Reversed;
        self.reason = reason;
        self.updated_at = now;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        Beneficiary, Currency, Money, Payout, PayoutId, PayoutMode, PayoutStatus, Timestamp, UserId,
    };

    fn payout(status: PayoutStatus) -> Payout {
        let now = Timestamp::from_unix_ms(1);
        Payout {
            id: PayoutId::new(),
            reference_id: None,
            merchant_id: UserId::new(),
            created_by: UserId::new(),
            amount: Money::from_paise(100),
            fee: Money::ZERO,
            currency: Currency::Inr,
            status,
            beneficiary: Beneficiary {
                name: "A".into(),
                account_number: "123456789".into(),
                ifsc: "HDFC0001234".into(),
                vpa: None,
            },
            mode: PayoutMode::Imps,
            purpose: None,
            reason: None,
            created_at: now,
            updated_at: now,
            processed_at: None,
            utr: None,
        }
    }

    const ALL: [PayoutStatus; 6] = [
        PayoutStatus::Pending,
        PayoutStatus::Processed,
        PayoutStatus::Rejected,
        PayoutStatus::Queued,
        PayoutStatus::Cancelled,
        PayoutStatus::Reversed,
    ];

    #[test]
    fn each_transition_starts_only_where_it_may() {
        let now = Timestamp::from_unix_ms(2);
        for from in ALL {
            let mut p = payout(from);
            let before = p.clone();
            let ok = p.activate(now).is_ok();
            assert_eq!(ok, from == PayoutStatus::Queued);
            if !ok {
                assert_eq!(p, before);
            }
            let mut p = payout(from);
            let ok = p.cancel(None, now).is_ok();
            assert_eq!(
                ok,
                matches!(from, PayoutStatus::Queued | PayoutStatus::Pending)
            );
            if !ok {
                assert_eq!(p.status, from);
            }
            let mut p = payout(from);
            assert_eq!(
                p.reverse(None, now).is_ok(),
                from == PayoutStatus::Processed
            );
        }
        for s in ALL {
            assert_eq!(PayoutStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn settle_is_the_rails_verdict_only() {
        let now = Timestamp::from_unix_ms(1_000);
        for to in [
            PayoutStatus::Pending,
            PayoutStatus::Queued,
            PayoutStatus::Cancelled,
            PayoutStatus::Reversed,
        ] {
            let mut p = payout(PayoutStatus::Pending);
            assert!(
                matches!(
                    p.settle(to, None, now),
                    Err(crate::Rejection::InvalidStatusTransition { .. })
                ),
                "pending → {to:?} through settle"
            );
            assert_eq!(p.status, PayoutStatus::Pending);
        }
        let mut p = payout(PayoutStatus::Pending);
        assert!(p.settle(PayoutStatus::Processed, None, now).is_ok());
        assert!(p.settle(PayoutStatus::Rejected, None, now).is_err());
    }
}
