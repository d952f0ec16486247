//! The audit log (SPEC §16) in storage: an entry is JSON under its id (they
//! are rare next to payments), with one index row per user whose subtree
//! holds its target, so a manager or merchant lists its own with one
//! prefix scan. An entry is only ever written inside the write set of the
//! change it records.

use crate::keys::{self, IndexTag};
use crate::{Space, StorageError, Store, WriteSet};
use domain::{AuditEntry, AuditId, UserId};

fn key(id: &AuditId) -> Vec<u8> {
    id.as_bytes().to_vec()
}

/// Most index rows one entry gets (the role tree is at most a few deep).
const SCOPE_MAX: usize = 8;

impl WriteSet {
    /// An audit entry, listed under every user in `scope` (the target user
    /// or the record's merchant, and their ancestors; duplicates skipped).
    pub fn audit_recorded(
        &mut self,
        entry: &AuditEntry,
        scope: &[UserId],
    ) -> Result<(), StorageError> {
        self.put(Space::Audit, key(&entry.id), entry)?;
        let mut seen: Vec<&UserId> = Vec::with_capacity(scope.len());
        for owner in scope.iter().take(SCOPE_MAX) {
            if seen.contains(&owner) {
                continue;
            }
            seen.push(owner);
            self.put_raw(
                Space::Index,
                keys::index(IndexTag::AuditByScope, owner, entry.id.as_bytes()),
                Vec::new(),
            );
        }
        Ok(())
    }
}

impl Store {
    pub fn audit_entry(&self, id: &AuditId) -> Result<Option<AuditEntry>, StorageError> {
        self.get(Space::Audit, &key(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Listing, StoreConfig, Window};
    use domain::{AuditAction, AuditContext};

    #[tokio::test]
    async fn an_entry_is_listed_for_its_scope_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let (merchant, manager, other) = (UserId::new(), UserId::new(), UserId::new());
        let entry = AuditContext::platform(Some("misuse")).entry(
            AuditAction::UserSuspended,
            merchant.to_string(),
            domain::audit_log::status_change("active", "suspended"),
        );
        let mut writes = WriteSet::new();
        writes
            .audit_recorded(&entry, &[merchant, manager, merchant])
            .unwrap();
        store.commit(writes).await.unwrap();
        assert_eq!(store.audit_entry(&entry.id).unwrap(), Some(entry.clone()));
        let window = Window {
            from_ms: None,
            to_ms: None,
            before: None,
            limit: 10,
            scan_max: 100,
        };
        let count = |listing| {
            let mut n = 0;
            store
                .list(listing, window, |_| {
                    n += 1;
                    Ok(true)
                })
                .unwrap();
            n
        };
        assert_eq!(count(Listing::Audit(None)), 1);
        assert_eq!(count(Listing::Audit(Some(manager))), 1);
        assert_eq!(count(Listing::Audit(Some(merchant))), 1);
        assert_eq!(count(Listing::Audit(Some(other))), 0);
        store.close();
    }
}
