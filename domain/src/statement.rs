//! Daily statements (SPEC §15): one per merchant per UTC day, from the day
//! of its first ledger transfer on, quiet days included, each chained to the
//! one before by `prev_hash`.
//!
//! A statement summarises the merchant's ledger (the transfers touching its
//! two accounts, those with a `seq`, SPEC §11) for one day: the balances of
//! its two accounts at the start and end of the day, the amount moved by
//! each transfer kind, how many transfers and which `seq`s. A pay-in's fee
//! (rail → platform) touches neither account and is not in it (the pay-in's
//! credit is already net of it). On a quiet day `transfer_count` is 0,
//! `totals` is empty, `first_seq` and `last_seq` are null, and the closing
//! balances equal the opening ones.
//!
//! `hash` is the hex SHA-256 of the canonical JSON of every field but
//! `hash`: keys sorted, no whitespace, amounts as strings with exactly two
//! decimals, integers as JSON integers, absent `seq`s as `null`. `totals`
//! holds only the kinds that moved money that day, so a kind added later
//! does not change the hash of an old statement.
//!
//! `Chain` computes statements from a wallet's transfers, oldest first. The
//! statement writer and the verifier both run it over the ledger: the one
//! stores what it computes, the other compares.

use crate::{Money, Timestamp, Transfer, TransferKind, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::fmt::Write as _;

const DAY_MS: i64 = 86_400_000;

/// A UTC calendar day, as days since 1970-01-01.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(i32);

impl Date {
    pub const fn from_days(days: i32) -> Date {
        Date(days)
    }

    pub const fn days(self) -> i32 {
        self.0
    }

    /// The UTC day `at` falls on.
    pub fn of(at: Timestamp) -> Date {
        let days = at.unix_ms().div_euclid(DAY_MS);
        Date(i32::try_from(days).unwrap_or(if days < 0 { i32::MIN } else { i32::MAX }))
    }

    /// Midnight (UTC) at the start of the day.
    pub fn start(self) -> Timestamp {
        Timestamp::from_unix_ms(i64::from(self.0).saturating_mul(DAY_MS))
    }

    /// The day after (saturating).
    pub fn next(self) -> Date {
        Date(self.0.saturating_add(1))
    }

    /// The day before (saturating).
    pub fn prev(self) -> Date {
        Date(self.0.saturating_sub(1))
    }

    /// Parses `YYYY-MM-DD` exactly (a real calendar day, years 0000-9999).
    pub fn parse(text: &str) -> Option<Date> {
        let b = text.as_bytes();
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !digits(0..4) {
            return None;
        }
        if !digits(5..7) || !digits(8..10) {
            return None;
        }
        let at = Timestamp::parse_rfc3339(&format!("{text}T00:00:00Z"))?;
        let date = Date::of(at);
        (date.to_string() == text).then_some(date)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.start().to_string();
        f.write_str(text.get(..10).unwrap_or("0000-00-00"))
    }
}

impl Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Date::parse(&text).ok_or_else(|| serde::de::Error::custom("expected YYYY-MM-DD"))
    }
}

/// `prev_hash` of a merchant's first statement.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// One merchant's statement for one UTC day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub merchant_id: UserId,
    pub date: Date,
    #[serde(with = "paise")]
    pub opening_available: Money,
    #[serde(with = "paise")]
    pub opening_held: Money,
    #[serde(with = "paise")]
    pub closing_available: Money,
    #[serde(with = "paise")]
    pub closing_held: Money,
    /// Amount moved by each kind that moved any, in `TransferKind::ALL` order.
    pub totals: Vec<(TransferKind, u64)>,
    pub transfer_count: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

mod paise {
    use crate::Money;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &Money, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(m.paise())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        u64::deserialize(d).map(Money::from_paise)
    }
}

/// `12.30`: exactly two decimals, as the canonical form writes amounts.
pub fn two_decimals(paise: u64) -> String {
    format!("{}.{:02}", paise / 100, paise % 100)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// 64 hex digits back into 32 bytes.
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn json_str(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

impl Statement {
    /// The canonical JSON of every field but `hash` (see the module doc).
    /// Written by hand, keys in sorted order, so that nothing (a serde
    /// attribute, a map type) can change it by accident.
    pub fn canonical(&self) -> String {
        let seq = |s: Option<u64>| s.map_or_else(|| "null".to_owned(), |n| n.to_string());
        let mut totals: Vec<(&str, u64)> =
            self.totals.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        totals.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let totals = totals
            .iter()
            .map(|(k, v)| format!("{}:{}", json_str(k), json_str(&two_decimals(*v))))
            .collect::<Vec<_>>()
            .join(",");
        let money = |m: Money| json_str(&two_decimals(m.paise()));
        format!(
            "{{\"closing_available\":{},\"closing_held\":{},\"date\":{},\"first_seq\":{},\
             \"last_seq\":{},\"merchant_id\":{},\"opening_available\":{},\"opening_held\":{},\
             \"prev_hash\":{},\"totals\":{{{totals}}},\"transfer_count\":{}}}",
            money(self.closing_available),
            money(self.closing_held),
            json_str(&self.date.to_string()),
            seq(self.first_seq),
            seq(self.last_seq),
            json_str(&self.merchant_id.to_string()),
            money(self.opening_available),
            money(self.opening_held),
            json_str(&hex(&self.prev_hash)),
            self.transfer_count,
        )
    }

    /// SHA-256 of `canonical()`.
    pub fn compute_hash(&self) -> [u8; 32] {
        Sha256::digest(self.canonical().as_bytes()).into()
    }

    /// Whether `hash` is the hash of the rest.
    pub fn hash_ok(&self) -> bool {
        self.hash == self.compute_hash()
    }
}

/// Where a merchant's chain stands at the end of a day: everything needed to
/// go on from there without reading what came before. The statement writer
/// keeps it durably next to the statements it wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainPoint {
    pub merchant_id: UserId,
    /// The next day to write; `None` before the merchant's first transfer.
    pub next_date: Option<Date>,
    #[serde(with = "paise")]
    pub available: Money,
    #[serde(with = "paise")]
    pub held: Money,
    /// `seq` of the last ledger transfer counted.
    pub last_seq: u64,
    /// `posting` of the last transfer read (seq or not).
    pub last_posting: u64,
    /// Hash of the last statement (`GENESIS_HASH` before the first).
    pub prev_hash: [u8; 32],
}

impl ChainPoint {
    pub fn start(merchant_id: UserId) -> ChainPoint {
        ChainPoint {
            merchant_id,
            next_date: None,
            available: Money::ZERO,
            held: Money::ZERO,
            last_seq: 0,
            last_posting: 0,
            prev_hash: GENESIS_HASH,
        }
    }

    /// The last day written, if any.
    pub fn last_date(&self) -> Option<Date> {
        (self.prev_hash != GENESIS_HASH)
            .then_some(self.next_date.map(Date::prev))
            .flatten()
    }
}

/// A transfer the chain cannot take: the ledger is inconsistent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainError(pub String);

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A closed day's statement and the chain's point right after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    pub statement: Statement,
    pub point: ChainPoint,
}

/// The day in progress.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct DayTotals {
    totals: [u64; TransferKind::ALL.len()],
    count: u64,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    available: Money,
    held: Money,
}

/// Computes a merchant's statements from its transfers, oldest first
/// (by posting). Each transfer belongs to the UTC day of its `created_at`,
/// or to the day being built if that is later (a transfer made visible only
/// after its own day was closed is reported in the next open day).
#[derive(Clone, Debug)]
pub struct Chain {
    point: ChainPoint,
    day: DayTotals,
}

impl Chain {
    /// Goes on from `point` (a day boundary).
    pub fn resume(point: ChainPoint) -> Chain {
        let day = DayTotals {
            available: point.available,
            held: point.held,
            ..DayTotals::default()
        };
        Chain { point, day }
    }

    /// The point at the last boundary plus what has been read since:
    /// `last_posting` of everything fed (for reading on).
    pub fn last_posting(&self) -> u64 {
        self.point.last_posting
    }

    pub fn next_date(&self) -> Option<Date> {
        self.point.next_date
    }

    /// Takes the next transfer. Days before its day are closed first
    /// (pushed to `out`, quiet ones included).
    pub fn feed(&mut self, t: &Transfer, out: &mut Vec<Closed>) -> Result<(), ChainError> {
        let err =
            |why: String| ChainError(format!("transfer {} (posting {}): {why}", t.id, t.posting));
        if t.merchant_id != self.point.merchant_id {
            return Err(err("belongs to another merchant".into()));
        }
        if Some(t.posting) != self.point.last_posting.checked_add(1) {
            return Err(err(format!("follows posting {}", self.point.last_posting)));
        }
        if t.seq == 0 {
            if t.kind.touches_merchant() {
                return Err(err("touches the merchant's accounts without a seq".into()));
            }
            self.point.last_posting = t.posting;
            return Ok(());
        }
        if Some(t.seq) != self.point.last_seq.checked_add(1) {
            return Err(err(format!(
                "has seq {} after {}",
                t.seq, self.point.last_seq
            )));
        }
        let own_day = Date::of(t.created_at);
        let day = match self.point.next_date {
            None => {
                self.point.next_date = Some(own_day);
                own_day
            }
            Some(open) => open.max(own_day),
        };
        self.close_before(day, usize::MAX, out);
        // Apply the transfer to the two merchant balances.
        let (debit, credit) = t.kind.accounts();
        let (mut available, mut held) = (self.day.available, self.day.held);
        let broken = || err("does not apply to the balances".into());
        for (account, add) in [(debit, false), (credit, true)] {
            let slot = match account {
                crate::AccountKind::Available => &mut available,
                crate::AccountKind::Held => &mut held,
                _ => continue,
            };
            *slot = if add {
                slot.checked_add(t.amount)
            } else {
                slot.checked_sub(t.amount)
            }
            .ok_or_else(broken)?;
        }
        if (available, held) != (t.available_after, t.held_after) {
            return Err(err(format!(
                "says available/held {}/{} after it, the ledger gives {available}/{held}",
                t.available_after, t.held_after
            )));
        }
        let index = TransferKind::ALL
            .iter()
            .position(|k| *k == t.kind)
            .ok_or_else(broken)?;
        let total = &mut self.day.totals[index];
        *total = total.checked_add(t.amount.paise()).ok_or_else(broken)?;
        self.day.count += 1;
        self.day.first_seq.get_or_insert(t.seq);
        self.day.last_seq = Some(t.seq);
        self.day.available = available;
        self.day.held = held;
        self.point.last_seq = t.seq;
        self.point.last_posting = t.posting;
        Ok(())
    }

    /// Closes every day before `day` (at most `max` of them), pushing
    /// their statements to `out`. Nothing happens before the first transfer.
    pub fn close_before(&mut self, day: Date, max: usize, out: &mut Vec<Closed>) {
        let mut closed = 0;
        while let Some(open) = self.point.next_date {
            if open >= day || closed == max {
                break;
            }
            out.push(self.close_day(open));
            closed += 1;
        }
    }

    fn close_day(&mut self, date: Date) -> Closed {
        let day = std::mem::take(&mut self.day);
        let totals = TransferKind::ALL
            .iter()
            .zip(day.totals)
            .filter(|(_, v)| *v > 0)
            .map(|(k, v)| (*k, v))
            .collect();
        let mut statement = Statement {
            merchant_id: self.point.merchant_id,
            date,
            opening_available: self.point.available,
            opening_held: self.point.held,
            closing_available: day.available,
            closing_held: day.held,
            totals,
            transfer_count: day.count,
            first_seq: day.first_seq,
            last_seq: day.last_seq,
            prev_hash: self.point.prev_hash,
            hash: GENESIS_HASH,
        };
        statement.hash = statement.compute_hash();
        self.point.next_date = Some(date.next());
        self.point.available = day.available;
        self.point.held = day.held;
        self.point.prev_hash = statement.hash;
        self.day = DayTotals {
            available: day.available,
            held: day.held,
            ..DayTotals::default()
        };
        Closed {
            statement,
            point: self.point.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Currency, TransferId, Wallet};

    fn fixed() -> Statement {
        Statement {
            merchant_id: "usr_0190f3a27c4e7a018b2c0123456789ab".parse().unwrap(),
            date: Date::parse("2026-11-30").unwrap(),
            opening_available: Money::from_paise(100_000),
            opening_held: Money::ZERO,
            closing_available: Money::from_paise(148_050),
            closing_held: Money::from_paise(1_000),
            totals: vec![
                (TransferKind::PayinCredit, 49_050),
                (TransferKind::PayoutHold, 1_000),
            ],
            transfer_count: 3,
            first_seq: Some(7),
            last_seq: Some(9),
            prev_hash: GENESIS_HASH,
            hash: GENESIS_HASH,
        }
    }

    #[test]
    fn canonical_form_is_pinned() {
        let s = fixed();
        let canonical = s.canonical();
        assert_eq!(
            canonical,
            format!(
                "{{\"closing_available\":\"1480.50\",\"closing_held\":\"10.00\",\
                 \"date\":\"2026-11-30\",\"first_seq\":7,\"last_seq\":9,\
                 \"merchant_id\":\"{}\",\"opening_available\":\"1000.00\",\
                 \"opening_held\":\"0.00\",\"prev_hash\":\"{}\",\
                 \"totals\":{{\"payin_credit\":\"490.50\",\"payout_hold\":\"10.00\"}},\
                 \"transfer_count\":3}}",
                s.merchant_id,
                "0".repeat(64)
            )
        );
        // The canonical form is what serde_json writes for the same object
        // with sorted keys (its default map is a BTreeMap) and no spaces.
        let value: serde_json::Value = serde_json::from_str(&canonical).unwrap();
        assert_eq!(serde_json::to_string(&value).unwrap(), canonical);
        // Computed once outside Rust: `printf '%s' '<the text above>' |
        // sha256sum`, and the same from the wire form reordered with
        // `jq -cS 'del(.hash)' | tr -d '\n' | sha256sum`. Any change to the
        // form changes it.
        assert_eq!(
            hex(&s.compute_hash()),
            "7c3ab53fb683521a178a26b5ad2a96b7dd628a33d9435d9749a22dadca8f7e7d"
        );
    }

    #[test]
    fn quiet_day_has_null_seqs_and_empty_totals() {
        let mut s = fixed();
        s.totals.clear();
        s.transfer_count = 0;
        s.first_seq = None;
        s.last_seq = None;
        let c = s.canonical();
        assert!(c.contains("\"first_seq\":null,\"last_seq\":null"), "{c}");
        assert!(c.contains("\"totals\":{},"), "{c}");
    }

    #[test]
    fn hash_covers_every_field() {
        let base = fixed();
        let h = base.compute_hash();
        let mut changes: Vec<Statement> = Vec::new();
        let mut s = base.clone();
        s.closing_available = Money::from_paise(148_051);
        changes.push(s);
        let mut s = base.clone();
        s.date = s.date.next();
        changes.push(s);
        let mut s = base.clone();
        s.prev_hash[31] = 1;
        changes.push(s);
        let mut s = base.clone();
        s.totals[0].1 += 1;
        changes.push(s);
        let mut s = base.clone();
        s.transfer_count = 4;
        changes.push(s);
        let mut s = base.clone();
        s.last_seq = None;
        changes.push(s);
        for changed in changes {
            assert_ne!(changed.compute_hash(), h, "{}", changed.canonical());
        }
        let mut s = base.clone();
        s.hash = [9; 32];
        assert_eq!(s.compute_hash(), h, "hash itself is not hashed");
    }

    #[test]
    fn dates_parse_and_render() {
        assert_eq!(Date::parse("1970-01-01"), Some(Date::from_days(0)));
        assert_eq!(Date::parse("1969-12-31"), Some(Date::from_days(-1)));
        assert_eq!(
            Date::parse("0001-01-01").map(|d| d.to_string()).as_deref(),
            Some("0001-01-01")
        );
        let d = Date::parse("2024-02-29").unwrap();
        assert_eq!(d.to_string(), "2024-02-29");
        assert_eq!(d.next().to_string(), "2024-03-01");
        for bad in [
            "",
            "2025-02-29",
            "2026-1-01",
            "2026-01-01T",
            "+026-01-01",
            "2026/01/01",
            "2026-00-10",
        ] {
            assert_eq!(Date::parse(bad), None, "{bad}");
        }
        let at = Timestamp::parse_rfc3339("2026-11-30T23:59:59.999Z").unwrap();
        assert_eq!(Date::of(at).to_string(), "2026-11-30");
        assert_eq!(Date::of(at.plus_ms(1)).to_string(), "2026-12-01");
        assert_eq!(two_decimals(5), "0.05");
        assert_eq!(two_decimals(123_450), "1234.50");
        assert_eq!(parse_hash(&hex(&[0xab; 32])), Some([0xab; 32]));
        assert_eq!(parse_hash("ab"), None);
    }

    /// A transfer as a wallet posts it, dated `at`.
    fn post(w: &mut Wallet, kind: TransferKind, paise: u64, at: &str) -> Transfer {
        let mut t = w
            .post(
                kind,
                Money::from_paise(paise),
                "ref".into(),
                Timestamp::from_unix_ms(0),
            )
            .unwrap();
        t.created_at = Timestamp::parse_rfc3339(at).unwrap();
        t.id = TransferId::new();
        t
    }

    #[test]
    fn chain_covers_quiet_days_links_and_balances() {
        let m = UserId::new();
        let mut w = Wallet::new(m, Currency::Inr, Timestamp::from_unix_ms(0));
        let transfers = vec![
            post(
                &mut w,
                TransferKind::PayinCredit,
                9_800,
                "2026-11-28T10:00:00Z",
            ),
            post(&mut w, TransferKind::PayinFee, 200, "2026-11-28T10:00:00Z"),
            post(
                &mut w,
                TransferKind::PayoutHold,
                1_100,
                "2026-11-28T23:59:59.999Z",
            ),
            post(
                &mut w,
                TransferKind::PayoutSettle,
                1_000,
                "2026-12-01T00:00:00Z",
            ),
            post(&mut w, TransferKind::PayoutFee, 100, "2026-12-01T01:00:00Z"),
        ];
        let mut chain = Chain::resume(ChainPoint::start(m));
        let mut out = Vec::new();
        for t in &transfers {
            chain.feed(t, &mut out).unwrap();
        }
        // 11-28 closed when the 12-01 transfer came, with the quiet 29th and 30th.
        assert_eq!(out.len(), 3);
        chain.close_before(Date::parse("2026-12-02").unwrap(), usize::MAX, &mut out);
        let days: Vec<String> = out.iter().map(|c| c.statement.date.to_string()).collect();
        assert_eq!(
            days,
            ["2026-11-28", "2026-11-29", "2026-11-30", "2026-12-01"]
        );
        let first = &out[0].statement;
        assert_eq!(first.prev_hash, GENESIS_HASH);
        assert_eq!(
            (first.first_seq, first.last_seq, first.transfer_count),
            (Some(1), Some(2), 2)
        );
        assert_eq!(
            first.totals,
            [
                (TransferKind::PayinCredit, 9_800),
                (TransferKind::PayoutHold, 1_100)
            ]
        );
        assert_eq!(
            (first.closing_available.paise(), first.closing_held.paise()),
            (8_700, 1_100)
        );
        let quiet = &out[1].statement;
        assert_eq!(
            (quiet.first_seq, quiet.last_seq, quiet.transfer_count),
            (None, None, 0)
        );
        assert!(quiet.totals.is_empty());
        assert_eq!(quiet.opening_available, quiet.closing_available);
        for pair in out.windows(2) {
            let (a, b) = (&pair[0].statement, &pair[1].statement);
            assert_eq!(b.prev_hash, a.hash);
            assert_eq!(
                (b.opening_available, b.opening_held),
                (a.closing_available, a.closing_held)
            );
            assert!(a.hash_ok() && b.hash_ok());
        }
        let last = &out[3].statement;
        assert_eq!((last.first_seq, last.last_seq), (Some(3), Some(4)));
        assert_eq!(
            (last.closing_available.paise(), last.closing_held.paise()),
            (8_700, 0)
        );
        // The point after the 28th: resuming from it gives the same rest.
        let mut resumed = Chain::resume(out[0].point.clone());
        let mut again = Vec::new();
        for t in transfers
            .iter()
            .filter(|t| t.posting > out[0].point.last_posting)
        {
            resumed.feed(t, &mut again).unwrap();
        }
        resumed.close_before(Date::parse("2026-12-02").unwrap(), usize::MAX, &mut again);
        assert_eq!(again, out[1..]);
    }

    #[test]
    fn chain_refuses_gaps_and_altered_amounts() {
        let m = UserId::new();
        let mut w = Wallet::new(m, Currency::Inr, Timestamp::from_unix_ms(0));
        let a = post(
            &mut w,
            TransferKind::PayinCredit,
            500,
            "2026-11-28T10:00:00Z",
        );
        let b = post(
            &mut w,
            TransferKind::PayoutHold,
            200,
            "2026-11-28T11:00:00Z",
        );
        let mut out = Vec::new();
        let mut chain = Chain::resume(ChainPoint::start(m));
        assert!(chain.feed(&b, &mut out).is_err(), "a gap");
        let mut altered = a.clone();
        altered.amount = Money::from_paise(499);
        assert!(chain.feed(&altered, &mut out).is_err());
        chain.feed(&a, &mut out).unwrap();
        chain.feed(&b, &mut out).unwrap();
    }
}
