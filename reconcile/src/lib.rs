//! The reconciler: staged objects in, GAL and plan out. **No I/O.**
//!
//! [`reconcile`] joins the recipients of every system into the GAL
//! ([`gal`]), finds the conflicts that must stop coexist from writing, and
//! computes for each system the stubs it should hold and the operations that
//! turn the stubs it holds into those ([`diff`]). Everything it needs is in
//! its arguments; everything it decides is in its result.

pub mod address_book;
pub mod diff;
pub mod foreign;
pub mod gal;
pub mod policy;
pub mod route;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use coexist_model::Operation;
pub use coexist_model::{GalEntry, Staged, StagedSystem};

pub use policy::{
    DisabledMailboxes, HomeAttribute, Policy, StubStyle, SystemPolicy, UnknownRecipient,
};

/// What kind of conflict stops coexist from writing for a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// The same address is a mailbox in two systems.
    MailboxInTwoSystems,
    /// One address is claimed by two different recipients.
    AddressClaimedTwice,
    /// A placement (or the home attribute) names a system that does not hold
    /// the mailbox.
    PlacementContradictsMailbox,
    /// Mail would go round in circles.
    RoutingLoop,
}

/// A problem coexist will not resolve by itself. The recipients concerned
/// get no new stubs anywhere until an admin resolves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    pub kind: ConflictKind,
    /// The addresses concerned.
    pub addresses: Vec<String>,
    /// The systems concerned.
    pub systems: Vec<String>,
    /// A sentence an admin can act on.
    pub message: String,
}

/// Something worth telling that stops nothing else: an object skipped
/// because it is malformed, an entry coexist did not make and leaves alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub system: String,
    pub object: String,
    pub message: String,
}

/// Why an operation is needed. Kept as a word, not a sentence, so a plan of
/// hundreds of thousands of operations stays small; [`PlannedOperation::describe`]
/// says it in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The recipient is homed elsewhere and this system has no stub for it.
    HomedElsewhere,
    /// The recipient's stub differs from the GAL.
    Changed,
    /// A second stub for the same recipient.
    SecondStub,
    /// The recipient is now homed on this very system.
    NowHomedHere,
    /// The recipient is no longer in the GAL.
    LeftTheGal,
    /// An entry coexist did not make now carries the stub's addresses in
    /// this system: two routing entries for one address are ambiguous.
    CoveredHere,
    /// This system now holds a mailbox for an address of the stub while
    /// the recipient is in conflict (moved before the old home let go).
    MailboxHere,
    /// The stub was found outside where the configuration keeps stubs (the
    /// stub base changed): the update moves it there.
    Misplaced,
    /// The recipient is in the GAL and the address book (an id of
    /// [`coexist_model::address_book`]) has no entry for it.
    InTheGal,
}

/// One operation of a plan, on one system, with the reason for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedOperation {
    pub system: String,
    /// Boxed: a plan holds hundreds of thousands of these, and moving a
    /// small handle is cheaper than moving the stub.
    pub operation: Box<Operation>,
    pub reason: Reason,
}

impl PlannedOperation {
    /// Why this change is needed, in words.
    pub fn describe(&self) -> String {
        let stub = self.operation.stub();
        let address = &stub.primary_address;
        let system = &self.system;
        match self.reason {
            Reason::HomedElsewhere => {
                let home = stub.anchor.split(':').next().unwrap_or("another system");
                format!("{address} is homed on {home}; {system} needs a stub")
            }
            Reason::Changed => {
                let fields: Vec<&str> = match &*self.operation {
                    Operation::Update { changed, .. } => {
                        changed.iter().map(|f| diff::field_name(*f)).collect()
                    }
                    _ => Vec::new(),
                };
                format!("{address} changed: {}", fields.join(", "))
            }
            Reason::SecondStub => format!("{address} has a second stub on {system}"),
            Reason::NowHomedHere => format!("{address} is now homed on {system}"),
            Reason::LeftTheGal => format!("{address} is no longer in the GAL"),
            Reason::CoveredHere => format!(
                "{address} is carried on {system} by an entry coexist did not make; its stub there would make the address ambiguous"
            ),
            Reason::Misplaced => {
                let at = match &*self.operation {
                    Operation::Update { locator, .. } => format!(" ({locator})"),
                    _ => String::new(),
                };
                format!("{address}'s stub on {system} is outside the stub base{at}; it moves there")
            }
            Reason::InTheGal => {
                format!("{address} is in the GAL; the address book {system} lists it")
            }
            Reason::MailboxHere => format!(
                "{system} now holds a mailbox for {address}; its stub there would make the address ambiguous (the conflict stays reported)"
            ),
        }
    }
}

/// The result of reconciling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// The GAL, sorted by primary address.
    pub gal: Vec<GalEntry>,
    pub conflicts: Vec<Conflict>,
    pub notices: Vec<Notice>,
    /// The operations, per system in configuration order, creates before
    /// updates before deletes.
    pub operations: Vec<PlannedOperation>,
    /// Desired stubs per system (what each system should hold).
    pub desired_stubs: BTreeMap<String, usize>,
    /// Recipients left out of the GAL because their account is disabled.
    pub disabled: usize,
}

/// Reconciles `staged` under `policy`.
pub fn reconcile(staged: &Staged, policy: &Policy) -> Reconciliation {
    let joined = gal::build(staged, policy);
    let mut conflicts = joined.conflicts;
    let mut notices = joined.notices;
    let mut gal = joined.gal;
    let mut held = joined.held;
    let routes = diff::check_routes(policy, &mut conflicts, &mut notices);
    let checked = foreign::check(
        policy,
        &gal,
        &joined.clusters,
        &routes,
        &mut conflicts,
        &mut notices,
    );
    if !checked.looping.is_empty() {
        // A recipient whose mail loops is held like any conflicted one.
        let looping: rustc_hash::FxHashSet<&str> =
            checked.looping.iter().map(String::as_str).collect();
        gal.retain(|entry| {
            let keep = !looping.contains(entry.anchor.as_str());
            if !keep {
                held.extend(entry.addresses.iter().cloned());
            }
            keep
        });
    }
    let planned = diff::plan(&diff::Inputs {
        staged,
        policy,
        gal: &gal,
        index: &joined.index,
        mailboxes: &joined.mailboxes,
        held: &held,
        looping: &routes,
        decisions: &checked.decisions,
    });
    Reconciliation {
        gal,
        conflicts,
        notices,
        operations: planned.operations,
        desired_stubs: planned.desired,
        disabled: joined.disabled,
    }
}

#[cfg(test)]
mod tests;
