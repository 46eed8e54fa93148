//! coexist's Microsoft 365 connector.
//!
//! * **Reads** users and mail-enabled groups (members resolved, nested
//!   groups included) through Microsoft Graph v1.0 delta queries
//!   ([`graph`], [`recipients`]): a full read is a delta round started
//!   afresh, whose delta links become the cursor; later pulls continue from
//!   them ([`PullMode::Delta`](coexist_connector::PullMode::Delta)), and a
//!   link the service no longer knows (410, `syncStateNotFound`,
//!   `resyncRequired`) leads to a full read, said in the log. Which users
//!   hold a mailbox here is asked of Exchange Online (`Get-Recipient`),
//!   not guessed from `mail`.
//! * **Writes** coexist's stubs as Exchange Online mail contacts
//!   (`stub_style = "mail_contact"`, [`mail_contacts`]) through the
//!   Exchange admin REST transport ([`exchange`], the one module that
//!   speaks it), or as personal contacts in a folder of every user mailbox
//!   (`stub_style = "mailbox_contacts"`, [`mailbox_contacts`]) through Graph
//!   `$batch` ([`batch`]). Only objects carrying coexist's marker are ever
//!   changed. [`powershell_script`] writes the same operations as a
//!   PowerShell script for admins who run them themselves.
//! * **Authenticates** with client credentials, a secret or a certificate,
//!   one token per resource ([`auth`]); 429 with `Retry-After` honoured and
//!   5xx retried with backoff, under bounded concurrency ([`http`]).
//! * **Checks** (`coexist doctor`) both tokens, the app's permissions, the
//!   routing domain and the accepted domains ([`M365Connector`]'s doctor).

pub mod auth;
pub mod batch;
pub mod config;
pub mod exchange;
pub mod forward;
pub mod graph;
pub mod http;
pub mod kind;
pub mod mail_contacts;
pub mod mailbox_contacts;
pub mod powershell;
pub mod provision;
pub mod recipients;

mod doctor;
mod pull;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use coexist_connector::retry::{RateLimiter, RetryPolicy};
use coexist_connector::{
    Applied, Connector, ConnectorError, Finding, NewAccount, Operation, Progress, Provisioned,
    Pull, Recipient,
};
use tokio::sync::Mutex;
use tracing::Instrument;

pub use config::M365Config;
pub use kind::{M365Kind, KIND};
pub use powershell::powershell_script;
pub use provision::M365Provision;

use crate::auth::{Auth, Credential};
use crate::exchange::Exchange;
use crate::http::Http;
use crate::mail_contacts::ContactIndex;
use crate::mailbox_contacts::MailboxIndex;

/// A connection to one Microsoft 365 tenant.
///
/// Its work is spread over the crate's modules, each adding the methods of
/// one job: `pull` (reads), [`mail_contacts`] and [`mailbox_contacts`]
/// (the two stub styles, read and written), `doctor` (the checks). The
/// [`Connector`] implementation below only delegates to them.
pub struct M365Connector {
    system: String,
    config: M365Config,
    http: Arc<Http>,
    exchange: Exchange,
    /// coexist's mail contacts by anchor, from the last full read.
    contacts: Mutex<ContactIndex>,
    /// The user mailboxes and their coexist folder, from the last full
    /// read (or built before the first mailbox-contacts write).
    mailboxes: Mutex<Option<MailboxIndex>>,
    /// Set by a change Graph's delta does not report (a mailbox's
    /// forwarding, [`forward`]): the next pull reads in full.
    full_read_next: AtomicBool,
}

impl std::fmt::Debug for M365Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("M365Connector")
            .field("system", &self.system)
            .field("tenant_id", &self.config.tenant_id)
            .finish_non_exhaustive()
    }
}

/// The app's credential from the configuration, secrets read now.
fn credential(system: &str, config: &M365Config) -> Result<Credential, ConnectorError> {
    let read = |key: &str, secret: &coexist_connector::SecretRef| {
        secret
            .resolve()
            .map_err(|e| ConnectorError::authentication(format!("system {system}: `{key}`: {e}")))
    };
    match (
        &config.client_secret,
        &config.certificate,
        &config.private_key,
    ) {
        (Some(secret), _, _) => Ok(Credential::Secret(read("client_secret", secret)?)),
        (None, Some(certificate), Some(key)) => {
            let certificate = read("certificate", certificate)?;
            let key_pem = read("private_key", key)?;
            Credential::certificate(certificate.expose(), key_pem.expose()).map_err(|e| {
                let key = match e {
                    auth::CredentialError::BadCertificate(_) => "certificate",
                    auth::CredentialError::BadPrivateKey(_) => "private_key",
                };
                ConnectorError::authentication(format!("system {system}: `{key}`: {e}"))
            })
        }
        _ => Err(ConnectorError::authentication(format!(
            "system {system}: `client_secret`: the app needs a client secret, or a certificate \
             and its private key"
        ))),
    }
}

impl M365Connector {
    /// Sets up the connector: checks the configuration and reads the
    /// credential (an unreadable or malformed one is an
    /// [`ConnectorError::Authentication`] error naming its setting). No
    /// request is made.
    pub fn new(system_id: &str, config: M365Config) -> Result<Self, ConnectorError> {
        config.check().map_err(|(_, message)| {
            ConnectorError::permanent(format!("system {system_id}: {message}"))
        })?;
        let credential = credential(system_id, &config)?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("coexist/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(config.request_timeout_secs.max(1)))
            .pool_max_idle_per_host(config.concurrency)
            .build()
            .map_err(|e| {
                ConnectorError::permanent(format!("system {system_id}: the HTTP client: {e}"))
            })?;
        let retry = RetryPolicy {
            max_attempts: config.max_attempts,
            base_delay: Duration::from_millis(config.retry_base_delay_ms),
            max_delay: Duration::from_millis(config.retry_max_delay_ms),
        };
        let auth = Auth::new(
            &config.client_id,
            &config.token_url(),
            credential,
            client.clone(),
            retry,
        );
        let http = Arc::new(Http::new(
            client,
            auth,
            RateLimiter::per_minute(config.requests_per_minute),
            config.concurrency,
            retry,
        ));
        let exchange = Exchange::new(&config.exchange_url())?;
        Ok(M365Connector {
            system: system_id.to_string(),
            config,
            http,
            exchange,
            contacts: Mutex::new(ContactIndex::default()),
            mailboxes: Mutex::new(None),
            full_read_next: AtomicBool::new(false),
        })
    }

    /// Graph's base URL (up to the version).
    fn graph_url(&self) -> &str {
        self.config.graph_url.trim_end_matches('/')
    }
}

#[async_trait]
impl Connector for M365Connector {
    fn system(&self) -> &str {
        &self.system
    }

    /// Reads users, groups and coexist's stubs: in full without a cursor
    /// (or when the delta links expired), else the changes since the
    /// cursor. A listing that fails part-way leaves the pull incomplete;
    /// refused credentials, or not knowing which users hold a mailbox
    /// (Exchange unreadable), fail it.
    async fn pull(
        &self,
        cursor: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<Pull, ConnectorError> {
        let span = tracing::info_span!("m365_pull", system = %self.system, tenant = %self.config.tenant_id);
        let cursor = if cursor.is_some() && self.full_read_next.swap(false, Ordering::SeqCst) {
            tracing::info!("a mailbox's forwarding changed in Exchange, which Graph's delta does not report: full read");
            None
        } else {
            cursor
        };
        self.read(cursor, progress).instrument(span).await
    }

    /// Carries out one operation (see [`mail_contacts`] for the Exchange
    /// calls each takes).
    async fn apply(&self, operation: &Operation) -> Result<Applied, ConnectorError> {
        let span = tracing::info_span!("m365_apply", system = %self.system, action = operation.action(), anchor = %operation.stub().anchor);
        self.apply_many(std::slice::from_ref(operation))
            .instrument(span)
            .await
            .pop()
            .unwrap_or_else(|| {
                Err(ConnectorError::retryable(
                    "the operation was not carried out",
                ))
            })
    }

    /// Carries out operations: mail contacts a few at a time (each its
    /// own cmdlets), mailbox contacts through `$batch`. After an
    /// authentication failure nothing more is sent: the operations left
    /// fail with that error.
    async fn apply_many(&self, operations: &[Operation]) -> Vec<Result<Applied, ConnectorError>> {
        let span = tracing::info_span!("m365_apply_many", system = %self.system, operations = operations.len());
        self.write(operations).instrument(span).await
    }

    /// Creates a licensed user and waits for its mailbox ([`provision`]).
    async fn provision(&self, account: &NewAccount) -> Result<Provisioned, ConnectorError> {
        let span = tracing::info_span!("m365_provision", system = %self.system, address = %account.primary_address);
        self.create_user(account).instrument(span).await
    }

    /// Disables the user's sign-in (`accountEnabled: false`).
    async fn suspend(&self, recipient: &Recipient) -> Result<(), ConnectorError> {
        let span = tracing::info_span!("m365_suspend", system = %self.system, address = %recipient.primary_address);
        self.suspend_user(recipient).instrument(span).await
    }

    /// Forwards the old mailbox of a person moved away to `to`
    /// (`Set-Mailbox -ForwardingSmtpAddress`, no copy kept; [`forward`]).
    async fn forward(&self, recipient: &Recipient, to: &str) -> Result<(), ConnectorError> {
        let span = tracing::info_span!("m365_forward", system = %self.system, address = %recipient.primary_address);
        self.forward_mailbox(recipient, to).instrument(span).await
    }

    /// Takes coexist's forward and the person's addresses off the old
    /// mailbox and disables its sign-in ([`forward`]).
    async fn retire(
        &self,
        recipient: &Recipient,
        addresses: &[String],
        forward: &str,
    ) -> Result<(), ConnectorError> {
        let span = tracing::info_span!("m365_retire", system = %self.system, address = %recipient.primary_address);
        self.retire_mailbox(recipient, addresses, forward)
            .instrument(span)
            .await
    }

    /// Exchange Online refuses a mail contact an address a mailbox holds:
    /// the old home's stub of a move follows the retirement.
    fn stub_beside_account(&self) -> bool {
        false
    }

    /// Checks both tokens, the app's permissions, the routing domain and
    /// the accepted domains.
    async fn doctor(&self) -> Vec<Finding> {
        let span = tracing::info_span!("m365_doctor", system = %self.system);
        self.checks().instrument(span).await
    }
}
