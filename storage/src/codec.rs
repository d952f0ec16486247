//! The binary codec of the records written on every money movement: the
//! wallet (on every command) and its transfers (on every settlement). A
//! value is a version byte, then fixed-width little-endian fields; strings
//! carry a u32 length. Smaller and cheaper than JSON, and independent of
//! the REST wire shapes (which the HTTP layer writes explicitly).

use crate::StorageError;
use domain::{
    Currency, Money, Posted, Timestamp, Transfer, TransferId, TransferKind, UserId, Wallet,
};

/// A record with a binary form.
pub(crate) trait Codec: Sized {
    /// Bumped whenever the layout changes; a value of another version is
    /// refused as a codec error.
    const VERSION: u8;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(r: &mut Reader<'_>) -> Result<Self, StorageError>;
}

pub(crate) fn to_bytes<T: Codec>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.push(T::VERSION);
    value.encode(&mut out);
    out
}

pub(crate) fn from_bytes<T: Codec>(bytes: &[u8]) -> Result<T, StorageError> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.u8()?;
    if version != T::VERSION {
        return Err(StorageError::Codec(format!(
            "record version {version}, this build reads {}",
            T::VERSION
        )));
    }
    let value = T::decode(&mut r)?;
    if r.at != bytes.len() {
        return Err(StorageError::Codec("trailing bytes after a record".into()));
    }
    Ok(value)
}

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], StorageError> {
        let end = self.at + N;
        let chunk = self
            .bytes
            .get(self.at..end)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or_else(|| StorageError::Codec("record cut short".into()))?;
        self.at = end;
        Ok(chunk)
    }

    fn u8(&mut self) -> Result<u8, StorageError> {
        Ok(self.take::<1>()?[0])
    }

    fn u64(&mut self) -> Result<u64, StorageError> {
        self.take().map(u64::from_le_bytes)
    }

    fn money(&mut self) -> Result<Money, StorageError> {
        self.u64().map(Money::from_paise)
    }

    fn time(&mut self) -> Result<Timestamp, StorageError> {
        self.take()
            .map(|b| Timestamp::from_unix_ms(i64::from_le_bytes(b)))
    }

    fn user(&mut self) -> Result<UserId, StorageError> {
        self.take().map(UserId::from_bytes)
    }

    fn currency(&mut self) -> Result<Currency, StorageError> {
        match self.u8()? {
            0 => Ok(Currency::Inr),
            other => Err(StorageError::Codec(format!("unknown currency {other}"))),
        }
    }

    fn string(&mut self) -> Result<String, StorageError> {
        let len = usize::try_from(u32::from_le_bytes(self.take()?))
            .map_err(|_| StorageError::Codec("string length".into()))?;
        let end = self
            .at
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| StorageError::Codec("record cut short".into()))?;
        let text = std::str::from_utf8(&self.bytes[self.at..end])
            .map_err(|_| StorageError::Codec("string is not UTF-8".into()))?;
        self.at = end;
        Ok(text.to_owned())
    }
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_money(out: &mut Vec<u8>, m: Money) {
    put_u64(out, m.paise());
}

fn put_time(out: &mut Vec<u8>, t: Timestamp) {
    out.extend_from_slice(&t.unix_ms().to_le_bytes());
}

fn put_currency(out: &mut Vec<u8>, c: Currency) {
    out.push(match c {
        Currency::Inr => 0,
    });
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    // References are ids (a few dozen bytes); u32 covers any string.
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..len as usize]);
}

impl Codec for Wallet {
    const VERSION: u8 = 1;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.merchant_id.as_bytes());
        put_currency(out, self.currency);
        put_money(out, self.available);
        put_money(out, self.held);
        for posted in &self.posted {
            put_money(out, posted.debits);
            put_money(out, posted.credits);
        }
        for m in [
            self.pending_payins,
            self.total_payins,
            self.total_payouts,
            self.total_fees,
        ] {
            put_money(out, m);
        }
        put_u64(out, self.last_seq);
        put_u64(out, self.last_posting);
        put_time(out, self.updated_at);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Wallet, StorageError> {
        let merchant_id = r.user()?;
        let currency = r.currency()?;
        let available = r.money()?;
        let held = r.money()?;
        let mut posted = [Posted::default(); 7];
        for p in &mut posted {
            p.debits = r.money()?;
            p.credits = r.money()?;
        }
        Ok(Wallet {
            merchant_id,
            currency,
            available,
            held,
            posted,
            pending_payins: r.money()?,
            total_payins: r.money()?,
            total_payouts: r.money()?,
            total_fees: r.money()?,
            last_seq: r.u64()?,
            last_posting: r.u64()?,
            updated_at: r.time()?,
        })
    }
}

impl Codec for Transfer {
    const VERSION: u8 = 1;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(self.merchant_id.as_bytes());
        put_currency(out, self.currency);
        put_u64(out, self.posting);
        put_u64(out, self.seq);
        let kind = TransferKind::ALL
            .iter()
            .position(|k| *k == self.kind)
            .unwrap_or(usize::MAX);
        out.push(u8::try_from(kind).unwrap_or(u8::MAX));
        put_money(out, self.amount);
        put_string(out, &self.reference);
        put_money(out, self.available_after);
        put_money(out, self.held_after);
        put_time(out, self.created_at);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Transfer, StorageError> {
        let id = TransferId::from_bytes(r.take()?);
        let merchant_id = r.user()?;
        let currency = r.currency()?;
        let posting = r.u64()?;
        let seq = r.u64()?;
        let kind = *TransferKind::ALL
            .get(usize::from(r.u8()?))
            .ok_or_else(|| StorageError::Codec("unknown transfer kind".into()))?;
        Ok(Transfer {
            id,
            merchant_id,
            currency,
            posting,
            seq,
            kind,
            amount: r.money()?,
            reference: r.string()?,
            available_after: r.money()?,
            held_after: r.money()?,
            created_at: r.time()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wallets_and_transfers_round_trip_and_refuse_damage() {
        let now = Timestamp::from_unix_ms(1_764_000_000_123);
        let mut wallet = Wallet::new(UserId::new(), Currency::Inr, now);
        let credit = wallet
            .post(
                TransferKind::PayinCredit,
                Money::from_paise(9_800),
                "txn_x".into(),
                now,
            )
            .unwrap();
        let fee = wallet
            .post(
                TransferKind::PayinFee,
                Money::from_paise(200),
                "txn_x".into(),
                now,
            )
            .unwrap();
        wallet.pending_payins = Money::from_paise(5);
        wallet.total_fees = Money::from_paise(200);
        let bytes = to_bytes(&wallet);
        assert_eq!(from_bytes::<Wallet>(&bytes).unwrap(), wallet);
        for t in [credit, fee] {
            let bytes = to_bytes(&t);
            assert_eq!(from_bytes::<Transfer>(&bytes).unwrap(), t);
            for cut in 0..bytes.len() {
                assert!(from_bytes::<Transfer>(&bytes[..cut]).is_err());
            }
        }
        for cut in 0..bytes.len() {
            assert!(from_bytes::<Wallet>(&bytes[..cut]).is_err());
        }
        let mut newer = bytes.clone();
        newer[0] = 2;
        assert!(from_bytes::<Wallet>(&newer).is_err());
        let mut longer = bytes;
        longer.push(0);
        assert!(from_bytes::<Wallet>(&longer).is_err());
    }
}
