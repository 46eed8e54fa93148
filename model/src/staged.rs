//! The staged state: what every system held at its last good read, as the
//! store keeps it and the reconciler reads it.

use std::collections::BTreeMap;

use crate::recipient::Recipient;
use crate::stub::FoundStub;

/// What one system holds, as staged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StagedSystem {
    pub id: String,
    pub recipients: Vec<Recipient>,
    pub stubs: Vec<FoundStub>,
}

/// Everything staged: the input of the reconciler.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Staged {
    pub systems: Vec<StagedSystem>,
    /// Explicit homes (from provisioning): normalised address → system id.
    pub placements: BTreeMap<String, String>,
}

impl Staged {
    /// The staged system `id`.
    pub fn system(&self, id: &str) -> Option<&StagedSystem> {
        self.systems.iter().find(|s| s.id == id)
    }
}
