//! Stubs: what coexist writes into a system for a recipient homed elsewhere.

use serde::{Deserialize, Serialize};

use crate::recipient::{Attributes, RecipientKind};

/// Where a stub sends mail for its recipient.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "via", content = "to")]
pub enum Route {
    /// Forward to `local@<home routing domain>` (`mailRoutingAddress`,
    /// `targetAddress`, Exchange Online's external address).
    Address(String),
    /// Relay the original address to the home's smart host (`mailHost`).
    Host(String),
    /// The stub only lists the recipient; the system's own domain routing
    /// (Google's catch-all / split delivery) carries the mail.
    DomainRouting,
}

impl Route {
    /// The address or host the stub routes to, if it names one.
    pub fn target(&self) -> Option<&str> {
        match self {
            Route::Address(a) => Some(a),
            Route::Host(h) => Some(h),
            Route::DomainRouting => None,
        }
    }
}

/// The content of a stub: what the GAL wants a system to hold for one
/// recipient homed elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stub {
    /// The recipient's GAL anchor (`<home system>:<object anchor>`), written in
    /// coexist's marker.
    pub anchor: String,
    pub kind: RecipientKind,
    /// The shared-domain primary address.
    pub primary_address: String,
    /// The other shared-domain addresses, sorted.
    #[serde(default)]
    pub aliases: Vec<String>,
    pub route: Route,
    #[serde(default)]
    pub attributes: Attributes,
}

/// A stub as found in a system by a pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundStub {
    /// The system's immutable identifier of the stub object (entryUUID,
    /// objectGUID, contact id).
    pub id: String,
    /// Where the connector finds the object again: a DN, an edit link.
    pub locator: String,
    /// Found outside where the configuration keeps stubs now (the stub base
    /// changed, or an admin moved it): the plan moves it there (an update,
    /// reason `Misplaced`) or deletes it, never writes a second stub beside it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub misplaced: bool,
    pub stub: Stub,
}
