//! Who is calling (CONTRACT §3): the answer [`crate::auth::Authenticator`] gives for a bearer
//! token, and what [`crate::cache::ReadCache`] keeps for it. Below both, so neither imports the
//! other for it.

use domain::PublisherId;

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The operator: may do everything.
    Admin,
    /// A publisher API key: acts for its own publisher alone.
    Publisher {
        publisher: PublisherId,
        key_id: String,
    },
}

impl Principal {
    /// Whether this principal may act for `publisher`.
    pub fn may_act_for(&self, publisher: &PublisherId) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Publisher { publisher: own, .. } => own == publisher,
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin)
    }
}
