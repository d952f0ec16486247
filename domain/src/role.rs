//! The four roles and the rules of the user tree: who may be whose parent and
//! who may create whom. Scope checks on records build on these in the HTTP
//! layer; the table itself lives here so that it is tested once, exhaustively.

use crate::Rejection;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Manager,
    Merchant,
    ApiUser,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Manager, Role::Merchant, Role::ApiUser];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Merchant => "merchant",
            Role::ApiUser => "api_user",
        }
    }

    pub fn parse(text: &str) -> Result<Role, Rejection> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| Rejection::InvalidRequest(format!("unknown role '{text}'")))
    }

    /// Whether a user of role `parent` may be the parent of a user of `self`.
    /// The first admin has no parent; later admins hang under an admin.
    pub fn may_have_parent(self, parent: Role) -> bool {
        matches!(
            (self, parent),
            (Role::Admin, Role::Admin)
                | (Role::Manager, Role::Admin)
                | (Role::Merchant, Role::Admin | Role::Manager)
                | (Role::ApiUser, Role::Merchant)
        )
    }

    /// Whether a caller of role `self` may create users of role `child`
    /// (somewhere within its own subtree).
    pub fn may_create(self, child: Role) -> bool {
        match self {
            Role::Admin => true,
            Role::Manager => matches!(child, Role::Merchant | Role::ApiUser),
            Role::Merchant => child == Role::ApiUser,
            Role::ApiUser => false,
        }
    }

    /// Whether this role owns a wallet (a merchant) or transacts on one.
    pub fn transacts(self) -> bool {
        matches!(self, Role::Merchant | Role::ApiUser)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_table_is_a_tree_downwards() {
        use Role::*;
        let allowed = [
            (Admin, Admin),
            (Manager, Admin),
            (Merchant, Admin),
            (Merchant, Manager),
            (ApiUser, Merchant),
        ];
        for child in Role::ALL {
            for parent in Role::ALL {
                assert_eq!(
                    child.may_have_parent(parent),
                    allowed.contains(&(child, parent)),
                    "{child:?} under {parent:?}"
                );
            }
        }
    }

    #[test]
    fn creation_table() {
        use Role::*;
        for child in Role::ALL {
            assert!(Admin.may_create(child));
            assert!(!ApiUser.may_create(child));
            assert_eq!(Merchant.may_create(child), child == ApiUser);
            assert_eq!(
                Manager.may_create(child),
                matches!(child, Merchant | ApiUser)
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{}\"", role.as_str()));
        }
        assert!(Role::parse("root").is_err());
    }
}
