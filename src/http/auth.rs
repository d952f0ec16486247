//! Who is calling and what they may see. Authentication is a hash lookup in
//! the directory's in-memory index; scope rules (SPEC §3) are here, in one
//! place, for every handler to use.

use actors::Directory;
use domain::{Rejection, Role, User, UserId};
use std::sync::Arc;

/// The authenticated caller of an `/api/v1` request.
#[derive(Clone)]
pub struct Caller {
    pub user: Arc<User>,
}

/// Checks `X-API-KEY`: unknown → `invalid_api_key`; the user or an
/// ancestor suspended → `account_suspended`.
pub fn authenticate(directory: &Directory, key: Option<&str>) -> Result<Caller, Rejection> {
    // A key of the wrong shape or checksum is refused before any lookup
    // (keys issued before checksums keep working).
    let key = key
        .filter(|k| domain::api_key::may_be_valid(k))
        .ok_or(Rejection::InvalidApiKey)?;
    let user = directory
        .authenticate(key)
        .ok_or(Rejection::InvalidApiKey)?;
    if directory.is_blocked(&user) {
        return Err(Rejection::AccountSuspended);
    }
    // `last_used_at`: in memory now, written at most once a minute per user.
    directory.touch(&user);
    Ok(Caller { user })
}

impl Caller {
    pub fn id(&self) -> UserId {
        self.user.id
    }

    pub fn role(&self) -> Role {
        self.user.role
    }

    /// Refuses unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), Rejection> {
        if roles.contains(&self.user.role) {
            Ok(())
        } else {
            Err(Rejection::InsufficientPermissions)
        }
    }

    /// Whether the caller may read a record of `merchant`'s wallet created
    /// by `created_by`.
    pub fn can_see(&self, directory: &Directory, merchant: &UserId, created_by: &UserId) -> bool {
        match self.user.role {
            Role::Admin => true,
            Role::Manager => self.manages(directory, merchant),
            Role::Merchant => *merchant == self.user.id,
            Role::ApiUser => *created_by == self.user.id,
        }
    }

    /// Whether `merchant` is a merchant whose parent is this manager.
    pub fn manages(&self, directory: &Directory, merchant: &UserId) -> bool {
        directory
            .get(merchant)
            .is_some_and(|m| m.role == Role::Merchant && m.parent_id == Some(self.user.id))
    }

    /// The wallet a money-moving request acts on: the caller's own for
    /// merchants and api_users; for admins (and managers, where `allow_manager`)
    /// the `merchant_id` they name, which must be a merchant in their scope.
    /// A `merchant_id` is checked as `merchant_filter` checks it, whoever names it.
    pub fn acting_merchant(
        &self,
        directory: &Directory,
        merchant_id: Option<&str>,
        allow_manager: bool,
    ) -> Result<UserId, Rejection> {
        if self.user.role == Role::Manager && !allow_manager {
            return Err(Rejection::InsufficientPermissions);
        }
        let named = self.merchant_filter(directory, merchant_id)?;
        match self.user.role {
            Role::Merchant => Ok(self.user.id),
            Role::ApiUser => self
                .user
                .merchant_id
                .ok_or(Rejection::InsufficientPermissions),
            Role::Admin | Role::Manager => {
                named.ok_or_else(|| Rejection::MissingFields(vec!["merchant_id".into()]))
            }
        }
    }

    /// A `merchant_id` the caller names (SPEC §17): admins may name any
    /// merchant and managers a merchant whose parent they are, anything
    /// else is `not_found` (whether it exists does not leak); merchants may
    /// name only themselves and api_users only their merchant, another is
    /// `insufficient_permissions` (never silently their own).
    pub fn merchant_filter(
        &self,
        directory: &Directory,
        merchant_id: Option<&str>,
    ) -> Result<Option<UserId>, Rejection> {
        let Some(text) = merchant_id else {
            return Ok(None);
        };
        let id: UserId = text
            .parse()
            .map_err(|()| Rejection::InvalidRequest("merchant_id is not a user id".into()))?;
        let allowed = match self.user.role {
            Role::Admin => directory.get(&id).is_some_and(|m| m.role == Role::Merchant),
            Role::Manager => self.manages(directory, &id),
            Role::Merchant => id == self.user.id,
            Role::ApiUser => Some(id) == self.user.merchant_id,
        };
        match (allowed, self.user.role) {
            (true, _) => Ok(Some(id)),
            (false, Role::Admin | Role::Manager) => Err(Rejection::NotFound),
            (false, Role::Merchant | Role::ApiUser) => Err(Rejection::InsufficientPermissions),
        }
    }

    /// Whether the caller may see and manage `target` (a user): admins
    /// everyone; managers and merchants their own subtree (not themselves,
    /// which is `/profile`'s job); api_users nobody.
    pub fn can_manage_user(&self, directory: &Directory, target: &User) -> bool {
        match self.user.role {
            Role::Admin => true,
            Role::Manager | Role::Merchant => {
                target.id != self.user.id && directory.is_within(&self.user.id, &target.id)
            }
            Role::ApiUser => false,
        }
    }
}
