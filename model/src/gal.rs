//! The unified global address list: what the reconciler decides and the
//! store keeps, the exports and the address-book server show.

use serde::{Deserialize, Serialize};

use crate::recipient::{Attributes, RecipientKind};

/// One entry of the unified global address list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GalEntry {
    /// `<home system>:<anchor of the home object>`; written in every stub's marker.
    pub anchor: String,
    pub kind: RecipientKind,
    /// The primary shared-domain address, normalised.
    pub primary_address: String,
    /// Every shared-domain address, normalised and sorted (primary included).
    pub addresses: Vec<String>,
    /// The system hosting the mailbox.
    pub home: String,
    /// Attributes merged by precedence.
    pub attributes: Attributes,
    /// For groups: member addresses, normalised and sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// The systems holding an object of this recipient (home included).
    pub systems: Vec<String>,
    /// The address the home lists for the recipient in the home's routing
    /// domain (normalised), where the other systems' stubs send its mail:
    /// Exchange Online answers at `acmecorp.mail.onmicrosoft.com` only under
    /// the proxy address it gave the mailbox (often `jdoe@…` for
    /// john.doe@acmecorp.com). `None` when the home lists none; then only a
    /// routing domain that is a blanket alias of the shared domain
    /// (`routing_domain_is_alias`) takes `local@<routing domain>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_address: Option<String>,
}

impl GalEntry {
    /// The addresses other than the primary.
    pub fn aliases(&self) -> impl Iterator<Item = &str> {
        self.addresses
            .iter()
            .map(String::as_str)
            .filter(move |a| *a != self.primary_address)
    }
}
