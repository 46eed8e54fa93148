//! Binds passed through to a directory: a name that is none of the
//! configured accounts is checked by one of the organisation's LDAP or
//! Active Directory systems, so people bind to the address book with the
//! name and password they already have (`jdoe@acmecorp.com` on Active
//! Directory, their entry's DN on OpenLDAP).
//!
//! The server knows only the [`PasswordCheck`] trait; the binary
//! implements it with the system's connector, which binds to the directory
//! with the offered name and password over the system's own transport and
//! TLS rules (never in clear text unless that system allows it). The
//! password is not kept.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// What a directory said of a name and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The directory accepted them.
    Accepted,
    /// The directory refused them (invalid credentials, a disabled or
    /// locked account).
    Refused,
    /// The directory could not be asked; the words say why (logged, not
    /// sent to the client beyond "unavailable").
    Unavailable(String),
}

/// A directory that checks names and passwords.
pub trait PasswordCheck: fmt::Debug + Send + Sync + 'static {
    /// Whether `name` may bind with `password` (never empty).
    fn check<'a>(
        &'a self,
        name: &'a str,
        password: &'a str,
    ) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>;

    /// The directory's name, for logs (the system's name).
    fn directory(&self) -> &str;
}
