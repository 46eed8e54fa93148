//! The connector contract of coexist.
//!
//! Every kind of system (LDAP mail server, Active Directory, Google Workspace,
//! Microsoft 365, the in-memory `simulated` system) is reached through one
//! [`Connector`]. A connector *talks to its system and decides nothing*: it
//! reads the system's recipients and the stubs coexist wrote earlier into a
//! [`Pull`], and it carries out the [`Operation`]s the engine planned.
//!
//! The words used here are those of `DESIGN.md`:
//!
//! * a [`Recipient`] is a mailbox (or directory entry) a system holds;
//! * a [`Stub`] is what coexist writes into a system for a recipient whose
//!   [home](Recipient::mailbox) is elsewhere, and it always carries coexist's
//!   [marker](marker);
//! * a [`Route`] says where a stub sends mail.
//!
//! The data (recipients, stubs, operations, pulls) lives in the data-only
//! `coexist-model` crate and is re-exported here; this crate adds what only
//! talking to systems needs: the async trait, errors, secrets, and the
//! retry and rate-limit policy.
//!
//! Connectors share the [`retry`] policy and the client-side [`retry::RateLimiter`].

pub mod connector;
pub mod error;
pub mod kind;
pub mod provision;
pub mod requests;
pub mod retry;
pub mod secret;

// The data the contract speaks, from the data-only model crate: connectors
// name it through this crate as before.
pub use coexist_model::{address, address_book, marker, operation, pull, recipient, stub};
pub use coexist_model::{
    normalize_address, split_address, AddressError, Applied, Attributes, DisabledMailboxes,
    FoundStub, Operation, Problem, Pull, PullMode, Recipient, RecipientKind, Route, Stub,
    StubField, StubStyle,
};

pub use connector::{Capacity, Connector, Finding, NoProgress, Progress};
pub use error::{Cause, ConnectorError};
pub use kind::{Kind, Place, Setup, SetupError};
pub use provision::{initial_password, NewAccount, Provisioned};
pub use requests::{RequestCounter, RequestCounts};
pub use secret::{Secret, SecretError, SecretRef};
