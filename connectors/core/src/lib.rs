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
//! Connectors share the [`retry`] policy and the client-side [`retry::RateLimiter`].

pub mod address;
pub mod connector;
pub mod error;
pub mod marker;
pub mod operation;
pub mod pull;
pub mod recipient;
pub mod retry;
pub mod secret;
pub mod stub;

pub use address::{normalize_address, split_address, AddressError};
pub use connector::{Capacity, Connector, Finding, NoProgress, Progress};
pub use error::{Cause, ConnectorError};
pub use operation::{Applied, Operation, StubField};
pub use pull::{Problem, Pull, PullMode};
pub use recipient::{Attributes, Recipient, RecipientKind};
pub use secret::{Secret, SecretError, SecretRef};
pub use stub::{FoundStub, Route, Stub};
