//! Daily statements (SPEC §15) in the `Statements` space: each merchant's
//! statements by day, and the point its chain has reached (written in the
//! same write set as the statements it follows, so the two always agree).

use crate::{keys, Space, StorageError, Store, WriteSet};
use domain::statement::{ChainPoint, Date, Statement};
use domain::{Transfer, UserId};

impl WriteSet {
    /// Closed days' statements of one merchant, oldest first, and where its
    /// chain stands after the last of them.
    pub fn statements_written(
        &mut self,
        statements: &[Statement],
        point: &ChainPoint,
    ) -> Result<(), StorageError> {
        for s in statements {
            self.put(
                Space::Statements,
                keys::statement(&s.merchant_id, s.date.days()),
                s,
            )?;
        }
        self.put(
            Space::Statements,
            keys::statement_point(&point.merchant_id),
            point,
        )
    }
}

impl Store {
    /// Where a merchant's statement chain stands; `None` before its first
    /// statement is written.
    pub fn statement_point(&self, merchant: &UserId) -> Result<Option<ChainPoint>, StorageError> {
        self.get(Space::Statements, &keys::statement_point(merchant))
    }

    /// A merchant's statement of one day.
    pub fn statement(
        &self,
        merchant: &UserId,
        date: Date,
    ) -> Result<Option<Statement>, StorageError> {
        self.get(Space::Statements, &keys::statement(merchant, date.days()))
    }

    /// A merchant's statements of the days in `[from, to]`, oldest first,
    /// at most `limit`.
    pub fn statements(
        &self,
        merchant: &UserId,
        from: Date,
        to: Date,
        limit: usize,
    ) -> Result<Vec<Statement>, StorageError> {
        if from > to {
            return Ok(Vec::new());
        }
        let start = keys::statement(merchant, from.days());
        let end = keys::statement(merchant, to.days());
        self.space(Space::Statements)
            .range(start..=end)
            .take(limit)
            .map(|guard| {
                let bytes = guard.value().map_err(StorageError::from)?;
                serde_json::from_slice(&bytes).map_err(StorageError::from)
            })
            .collect()
    }

    /// A merchant's statements of the days in `[from, before)`, newest
    /// first, at most `limit`.
    pub fn statements_newest(
        &self,
        merchant: &UserId,
        from: Date,
        before: Date,
        limit: usize,
    ) -> Result<Vec<Statement>, StorageError> {
        if from >= before {
            return Ok(Vec::new());
        }
        let start = keys::statement(merchant, from.days());
        let end = keys::statement(merchant, before.days());
        self.space(Space::Statements)
            .range(start..end)
            .rev()
            .take(limit)
            .map(|guard| {
                let bytes = guard.value().map_err(StorageError::from)?;
                serde_json::from_slice(&bytes).map_err(StorageError::from)
            })
            .collect()
    }

    /// TESTS ONLY: rewrites a stored statement in place (without touching
    /// its hash or the chain point), as an attacker with the disk would.
    #[doc(hidden)]
    pub async fn tamper_statement_for_tests(
        &self,
        merchant: &UserId,
        date: Date,
        change: impl FnOnce(&mut Statement),
    ) -> Result<bool, StorageError> {
        let Some(mut statement) = self.statement(merchant, date)? else {
            return Ok(false);
        };
        change(&mut statement);
        let mut writes = WriteSet::new();
        writes.put(
            Space::Statements,
            keys::statement(merchant, date.days()),
            &statement,
        )?;
        self.commit(writes).await?;
        Ok(true)
    }

    /// TESTS ONLY: rewrites one stored ledger row (a transfer) in place.
    #[doc(hidden)]
    pub async fn tamper_transfer_for_tests(
        &self,
        merchant: &UserId,
        posting: u64,
        change: impl FnOnce(&mut Transfer),
    ) -> Result<bool, StorageError> {
        let Some(mut transfer) = self.ledger(merchant, posting, 1)?.pop() else {
            return Ok(false);
        };
        if transfer.posting != posting {
            return Ok(false);
        }
        change(&mut transfer);
        let mut writes = WriteSet::new();
        writes.put_transfer(&transfer);
        self.commit(writes).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use crate::keys;
    use domain::UserId;

    #[test]
    fn statement_keys_sort_by_day() {
        let m = UserId::new();
        assert!(keys::statement(&m, -1) < keys::statement(&m, 0));
        assert!(keys::statement(&m, 255) < keys::statement(&m, 256));
        assert!(keys::statement(&m, 20_000) < keys::statement(&m, i32::MAX));
        assert_ne!(keys::statement_point(&m)[0], keys::statement(&m, 0)[0]);
    }
}
