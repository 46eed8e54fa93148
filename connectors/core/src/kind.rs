//! A kind of system, described by its connector crate.
//!
//! Everything coexist needs to know of a kind before it talks to a system —
//! its name in the configuration, the stub styles it can write (and its
//! default), what it does with mail for a disabled account, and how its
//! `[systems.connection]` table becomes a [`Connector`] — lives with the
//! kind's connector crate, behind [`Kind`]. The binary registers the kinds
//! it ships in one list; adding a kind is a new crate plus one line there.
//! (How many stubs a system can hold is asked of the connector itself:
//! [`Connector::capacity`].)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use thiserror::Error;

use coexist_model::{DisabledMailboxes, Operation, StubStyle};

use crate::connector::{Connector, Finding};
use crate::secret::SecretRef;

/// What setting up one configured system is given.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// The system's id.
    pub system: &'a str,
    /// Its `[systems.connection]` table, as written.
    pub connection: &'a toml::Table,
    /// The folder relative paths in the table are resolved against (the
    /// configuration file's).
    pub base: &'a Path,
    /// The system's routing domain, from its `[[systems]]` table.
    pub routing_domain: Option<&'a str>,
}

impl Setup<'_> {
    /// The connection table as the kind's settings type. An unknown or
    /// misspelt key is a [`SetupError`] naming that key (so the
    /// configuration error can name its line).
    pub fn settings<T: DeserializeOwned>(&self, table: toml::Table) -> Result<T, SetupError> {
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| {
                let message = e.message().trim().to_string();
                let key = message
                    .strip_prefix("unknown field `")
                    .and_then(|rest| rest.split_once('`'))
                    .map(|(key, _)| key.to_string());
                SetupError { key, message }
            })
    }

    /// `path` resolved against the configuration file's folder.
    pub fn path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base.join(path)
        }
    }

    /// A secret reference with a relative file resolved like [`Self::path`].
    pub fn secret(&self, secret: SecretRef) -> SecretRef {
        match secret {
            SecretRef::File { file } => SecretRef::File {
                file: self.path(Path::new(&file)).display().to_string(),
            },
            other => other,
        }
    }
}

/// Why a system's connection settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct SetupError {
    /// The key of the connection table to blame, when one is.
    pub key: Option<String>,
    /// What is wrong and what is expected, in words.
    pub message: String,
}

impl SetupError {
    /// An error about the table as a whole.
    pub fn new(message: impl Into<String>) -> Self {
        SetupError {
            key: None,
            message: message.into(),
        }
    }

    /// An error about one key.
    pub fn at(key: impl Into<String>, message: impl Into<String>) -> Self {
        SetupError {
            key: Some(key.into()),
            message: message.into(),
        }
    }
}

/// A kind of system (`kind = "…"` in the configuration), as its connector
/// crate describes it.
pub trait Kind: Send + Sync + 'static {
    /// The name in the configuration (`google`, `ldap`, …).
    fn name(&self) -> &'static str;

    /// The stub styles systems of this kind can write; the first is the
    /// default when the configuration names none.
    fn stub_styles(&self) -> &'static [StubStyle];

    /// Why this kind cannot write `style` (one it does not list), in words
    /// an admin can act on.
    fn why_not(&self, style: StubStyle) -> String {
        let allowed: Vec<String> = self
            .stub_styles()
            .iter()
            .enumerate()
            .map(|(n, s)| {
                if n == 0 {
                    format!("\"{}\" (the default)", s.name())
                } else {
                    format!("\"{}\"", s.name())
                }
            })
            .collect();
        format!(
            "a {} system cannot write {} stubs; expected {}",
            self.name(),
            style.name(),
            allowed.join(" or ")
        )
    }

    /// What systems of this kind do with mail for a disabled account's
    /// mailbox, unless the configuration says otherwise.
    fn disabled_mailboxes(&self) -> DisabledMailboxes;

    /// Whether a system of this kind answers at `local@<routing domain>`
    /// for every shared-domain address of each mailbox (its routing domain
    /// is a blanket alias: Google's domain aliases, an LDAP mail server's
    /// virtual domain), unless the configuration says otherwise
    /// (`routing_domain_is_alias`). Default: yes. A kind that answers there
    /// only at the addresses each mailbox lists (Exchange Online's
    /// `…mail.onmicrosoft.com` proxy addresses) says no, and stubs then
    /// route to the address the recipient's home lists.
    fn routing_domain_is_alias(&self) -> bool {
        true
    }

    /// The connector of one configured system. Settings are checked here,
    /// so a bad one is a configuration error; nothing is contacted.
    fn connect(&self, setup: &Setup<'_>) -> Result<Arc<dyn Connector>, SetupError>;

    /// `operations` of the system `system` as a PowerShell script an admin
    /// can review and run in place of coexist (`coexist plan --format
    /// powershell`), for kinds whose admins may not grant coexist the right
    /// to write; `None` for kinds that have no such script.
    fn powershell(&self, system: &str, operations: &[Operation]) -> Option<String> {
        let _ = (system, operations);
        None
    }

    /// What an admin must check by hand in a system of this kind for mail
    /// to flow where the organisation's topology says (settings no API the
    /// connector uses shows), as `manual` findings for `coexist doctor`.
    /// Default: none.
    fn manual_checks(&self, place: &Place<'_>) -> Vec<Finding> {
        let _ = place;
        Vec::new()
    }

    /// What a system of this kind publishes or needs in DNS by default
    /// (its provider's MX hosts, SPF includes, DKIM selectors), which
    /// `coexist doctor` checks the domains against; the configuration's
    /// `[systems.dns]` overrides each. Default: nothing known.
    fn dns_defaults(&self, system: &DnsPlace<'_>) -> DnsDefaults {
        let _ = system;
        DnsDefaults::default()
    }
}

/// What [`Kind::dns_defaults`] is told of one system, from the
/// configuration.
#[derive(Debug, Clone, Copy)]
pub struct DnsPlace<'a> {
    /// The system's id.
    pub system: &'a str,
    /// Its routing domain, if it has one.
    pub routing_domain: Option<&'a str>,
    /// Its smart host (`smart_host` of its `[[systems]]` table), if any:
    /// the host an on-premises mail server receives and sends mail on.
    pub smart_host: Option<&'a str>,
    /// Its `[systems.connection]` table, as written.
    pub connection: &'a toml::Table,
}

/// A kind's DNS defaults for one system (each list may be empty: not
/// known, the admin sets it in `[systems.dns]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsDefaults {
    /// The hosts the system receives mail on: its routing domain's MX, and
    /// the shared domains' MX when it is the MX system, point at them
    /// (`aspmx.l.google.com`; a leading `*.` matches any name under the
    /// rest, `*.mail.protection.outlook.com`).
    pub mx_hosts: Vec<String>,
    /// The SPF includes its provider publishes for the mail it sends
    /// (`_spf.google.com`).
    pub spf_includes: Vec<String>,
    /// The relays it sends from, as addresses, networks or host names (an
    /// on-premises smart host): the shared domains' SPF must authorise them.
    pub spf_relays: Vec<String>,
    /// The DKIM selectors it signs with (`google` for
    /// `google._domainkey.<domain>`).
    pub dkim_selectors: Vec<String>,
    /// Where `autodiscover.<shared domain>` should point for its mail
    /// clients, where it needs that (Microsoft 365:
    /// `autodiscover.outlook.com`).
    pub autodiscover: Option<String>,
}

/// A system's place in the organisation's mail flow, from the
/// configuration: what [`Kind::manual_checks`] explains against.
#[derive(Debug, Clone)]
pub struct Place<'a> {
    /// The system's id.
    pub system: &'a str,
    /// Its routing domain, if it has one: the other systems forward mail
    /// for its people to `local@<routing domain>`.
    pub routing_domain: Option<&'a str>,
    /// The domains every system shares (`acmecorp.com`).
    pub shared_domains: &'a [String],
    /// Whether the shared domains' MX points at this system.
    pub receives_from_the_internet: bool,
    /// The system it relays mail for shared-domain addresses it does not
    /// hold to (its catch-all, Exchange's internal relay), with that
    /// system's routing domain.
    pub relays_unknown_to: Option<(&'a str, Option<&'a str>)>,
    /// Every other system, with its routing domain.
    pub others: Vec<(&'a str, Option<&'a str>)>,
}
