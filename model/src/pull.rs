//! Pull results: what a connector read from its system.

use serde::{Deserialize, Serialize};

use crate::recipient::Recipient;
use crate::stub::FoundStub;

/// Whether a pull is the whole system or the changes since a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullMode {
    /// Every recipient and stub of the system; what is not listed is gone.
    Full,
    /// Only what changed since the cursor given to the pull; `removed` lists
    /// what disappeared.
    Delta,
}

/// An object the connector read but could not use, skipped with a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The object as the system names it: a DN, a user id, an address.
    pub object: String,
    /// A sentence an admin can act on.
    pub message: String,
}

/// The result of reading one system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pull {
    pub mode: PullMode,
    /// Recipients read (all of them for a full pull, the changed ones for a delta).
    pub recipients: Vec<Recipient>,
    /// coexist's stubs found, told apart by the marker.
    pub stubs: Vec<FoundStub>,
    /// For a delta: the ids of recipients and stubs that disappeared.
    #[serde(default)]
    pub removed: Vec<String>,
    /// Where the next pull resumes (delta link, DirSync cookie, sync cookie).
    pub cursor: Option<String>,
    /// `false` when the read stopped part-way (a page failed, a limit was hit):
    /// the engine then deletes nothing anywhere in this run.
    pub complete: bool,
    /// Objects skipped because they were malformed.
    #[serde(default)]
    pub problems: Vec<Problem>,
    /// How the next pulls find changes (the incremental method, why it was
    /// chosen, how it sees deletions), in words for the run's report; `None`
    /// when the connector has one way only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<String>,
}

impl Pull {
    /// A complete full pull of the given objects, with no cursor.
    pub fn full(recipients: Vec<Recipient>, stubs: Vec<FoundStub>) -> Self {
        Pull {
            mode: PullMode::Full,
            recipients,
            stubs,
            removed: Vec::new(),
            cursor: None,
            complete: true,
            problems: Vec::new(),
            incremental: None,
        }
    }
}
