//! The data of coexist, and nothing else.
//!
//! Every part of coexist speaks these types: the connectors read systems
//! into a [`Pull`] of [`Recipient`]s and [`FoundStub`]s and carry out
//! [`Operation`]s; the store persists them and the [`Staged`] state; the
//! reconciler turns the staged state into the GAL ([`GalEntry`]) and a plan.
//! This crate depends on no I/O library, no async runtime: whatever uses it
//! can be pure (the reconciler is, by the compiler's check of its
//! dependencies).
//!
//! The words are those of `DESIGN.md`:
//!
//! * a [`Recipient`] is a mailbox (or directory entry) a system holds;
//! * a [`Stub`] is what coexist writes into a system for a recipient whose
//!   home is elsewhere, and it always carries coexist's [marker](marker);
//! * a [`Route`] says where a stub sends mail;
//! * addresses are joined by their [normalised](normalize_address) form.

pub mod address;
pub mod address_book;
pub mod gal;
pub mod marker;
pub mod operation;
pub mod pull;
pub mod recipient;
pub mod staged;
pub mod stub;
pub mod system;

pub use address::{normalize_address, split_address, AddressError};
pub use gal::GalEntry;
pub use operation::{Applied, Operation, StubField};
pub use pull::{Problem, Pull, PullMode};
pub use recipient::{Attributes, Recipient, RecipientKind};
pub use staged::{Staged, StagedSystem};
pub use stub::{FoundStub, Route, Stub};
pub use system::{DisabledMailboxes, StubStyle};
