//! The trait every connector implements.

use async_trait::async_trait;
use serde::Serialize;

use crate::error::ConnectorError;
use crate::operation::{Applied, Operation};
use crate::provision::{NewAccount, Provisioned};
use crate::pull::Pull;
use crate::recipient::Recipient;

/// Receives progress of long pulls and applies (objects read, operations done).
pub trait Progress: Send + Sync {
    /// `n` more objects were read or operations carried out.
    fn advance(&self, n: u64);
}

/// A [`Progress`] that shows nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn advance(&self, _n: u64) {}
}

/// One check of `coexist doctor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was checked, in a few words.
    pub check: String,
    /// Whether it passed. A manual check does not fail: it is `true`.
    pub ok: bool,
    /// `true` when coexist cannot verify this itself (no API exposes the
    /// setting) and the admin has to look: `detail` says where and what.
    pub manual: bool,
    /// What was found, or what the admin must do.
    pub detail: String,
    /// The record looked at, for a check of a record (a DNS record:
    /// `acmecorp.com MX`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// What the record holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    /// What it should hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
}

impl Finding {
    /// A check that passed (`ok`) or failed.
    pub fn new(check: impl Into<String>, ok: bool, detail: impl Into<String>) -> Finding {
        Finding {
            check: check.into(),
            ok,
            manual: false,
            detail: detail.into(),
            record: None,
            found: None,
            expected: None,
        }
    }

    /// A check that passed.
    pub fn passed(check: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding::new(check, true, detail)
    }

    /// A check that failed.
    pub fn failed(check: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding::new(check, false, detail)
    }

    /// A manual check: for the admin to look at (it does not fail).
    pub fn manual(check: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding {
            manual: true,
            ..Finding::new(check, true, detail)
        }
    }

    /// This finding about `record`, which holds `found` and should hold
    /// `expected`.
    pub fn about(
        self,
        record: impl Into<String>,
        found: impl Into<String>,
        expected: impl Into<String>,
    ) -> Finding {
        Finding {
            record: Some(record.into()),
            found: Some(found.into()),
            expected: Some(expected.into()),
            ..self
        }
    }

    /// `ok`, `fail` or `look` (a manual check).
    pub fn status(&self) -> &'static str {
        match (self.ok, self.manual) {
            (_, true) => "look",
            (true, false) => "ok",
            (false, false) => "fail",
        }
    }
}

/// The most stubs a system can hold, where the system documents a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// How many stubs at most.
    pub stubs: u64,
    /// Where the limit comes from, in words an admin can check.
    pub source: String,
}

/// A connection to one system.
///
/// Connectors decide nothing: they read and they write what they are told.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The system's id from the configuration.
    fn system(&self) -> &str;

    /// Reads the system. With `cursor` (from the previous pull) a connector
    /// that supports it returns a [`crate::PullMode::Delta`]; a cursor the
    /// system no longer accepts must lead to a full read, not an error.
    async fn pull(
        &self,
        cursor: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<Pull, ConnectorError>;

    /// Carries out one operation. Operations are idempotent (see [`Operation`]).
    async fn apply(&self, operation: &Operation) -> Result<Applied, ConnectorError>;

    /// Carries out several operations, returning one result per operation in
    /// order. Connectors with a batch API override this; one failed entry
    /// must not fail or repeat the others.
    async fn apply_many(&self, operations: &[Operation]) -> Vec<Result<Applied, ConnectorError>> {
        let mut results = Vec::with_capacity(operations.len());
        for operation in operations {
            results.push(self.apply(operation).await);
        }
        results
    }

    /// The most stubs the system can hold, when it documents a limit (the
    /// engine holds back the creates that would pass it). Default: none.
    fn capacity(&self) -> Option<Capacity> {
        None
    }

    /// Creates `account` in this system, its home (`coexist provision`),
    /// from the template of the connection table, and sets its initial
    /// password. Creating an account that exists already with this
    /// primary address succeeds and says so ([`Provisioned::existed`]).
    /// Default: refused, this kind of system cannot create accounts.
    async fn provision(&self, account: &NewAccount) -> Result<Provisioned, ConnectorError> {
        Err(ConnectorError::permanent(format!(
            "{} cannot create {}: coexist does not create accounts in this kind of system; create it by hand and run `coexist place`",
            self.system(),
            account.primary_address
        )))
    }

    /// Whether `name` may bind to this directory with `password` (never
    /// empty): `Ok(false)` when the system refuses them (`coexist
    /// serve-gal` passes address-book binds through to a directory so).
    /// Default: an error, this kind of system checks no passwords for
    /// coexist.
    async fn check_password(&self, name: &str, password: &str) -> Result<bool, ConnectorError> {
        let _ = (name, password);
        Err(ConnectorError::permanent(format!(
            "{} cannot check passwords: only LDAP and Active Directory systems can take address-book binds",
            self.system()
        )))
    }

    /// Suspends (disables) `recipient`'s account in this system, its home
    /// (`coexist deprovision`): the account and its mail stay, it no longer
    /// signs in, and a read lists it disabled. Suspending a suspended
    /// account succeeds. Default: refused, this kind of system cannot.
    async fn suspend(&self, recipient: &Recipient) -> Result<(), ConnectorError> {
        Err(ConnectorError::permanent(format!(
            "{} cannot suspend {}: coexist does not suspend accounts in this kind of system; disable it by hand (the next sync removes its stubs)",
            self.system(),
            recipient.primary_address
        )))
    }

    /// Makes `recipient`'s account in this system, the person's old home
    /// during `coexist move`, forward all its mail to `to` (an address at
    /// the new home's routing domain) and keep no copy, so that a read
    /// lists it as a forwarding entry (`mailbox` false, `forwards_to`
    /// `to`). Setting the forward it has already succeeds. Default:
    /// refused, coexist cannot set forwarding in this kind of system.
    async fn forward(&self, recipient: &Recipient, to: &str) -> Result<(), ConnectorError> {
        Err(ConnectorError::permanent(format!(
            "{} cannot forward {} to {to}: coexist does not set forwarding in this kind of system (nor read it); set it by hand, then place the person on the new home (`coexist place`)",
            self.system(),
            recipient.primary_address
        )))
    }

    /// Retires `recipient`'s account in this system once its person has
    /// moved away (`coexist move --finish`): the account is suspended,
    /// the forward coexist set (`forward`, exactly that value) is removed,
    /// and `addresses` are taken off it, so that an ordinary stub of
    /// coexist's can carry them. The account and its mail data stay,
    /// unless the system's configuration says to delete the account
    /// (Google's `retire = "delete"`). Retiring a retired account
    /// succeeds. Default: refused.
    async fn retire(
        &self,
        recipient: &Recipient,
        addresses: &[String],
        forward: &str,
    ) -> Result<(), ConnectorError> {
        let _ = (addresses, forward);
        Err(ConnectorError::permanent(format!(
            "{} cannot retire {}: coexist does not change accounts in this kind of system; suspend it and remove its addresses by hand",
            self.system(),
            recipient.primary_address
        )))
    }

    /// Whether coexist's stub may carry addresses an account of this
    /// system still holds (`coexist move --finish` writes the old home's
    /// stub before retiring the old account when it may). Exchange Online
    /// refuses an address two recipients would hold: there the stub
    /// follows the retirement. Default: it may.
    fn stub_beside_account(&self) -> bool {
        true
    }

    /// Checks credentials, routing domains and the settings no API exposes
    /// (`coexist doctor`). The default reports nothing.
    async fn doctor(&self) -> Vec<Finding> {
        Vec::new()
    }

    /// The connector of an address book of this system under `base` (a
    /// copy of the GAL as entries there, `[systems.address_book]`; see
    /// `coexist_model::address_book`), a system of its own named `id`: its
    /// pulls read the entries under `base` carrying the book's marker and
    /// nothing else, and its operations write them there without any
    /// routing attribute. Default: refused, this kind of system keeps no
    /// address book.
    fn address_book(
        &self,
        id: &str,
        base: &str,
    ) -> Result<std::sync::Arc<dyn Connector>, ConnectorError> {
        let _ = (id, base);
        Err(ConnectorError::permanent(format!(
            "{} cannot keep an address book: only LDAP and Active Directory systems can",
            self.system()
        )))
    }
}
