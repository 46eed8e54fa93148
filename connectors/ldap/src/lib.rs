//! coexist's connector for LDAP directories: the OpenLDAP (or qmail-ldap,
//! Postfix/Dovecot) directory behind a mail server, and Active Directory.
//!
//! It reads recipients (people, contacts, groups with their members
//! resolved) and coexist's own stubs, incrementally where the server allows
//! it (RFC 4533 content sync or `modifyTimestamp` on OpenLDAP; DirSync or
//! `uSNChanged` on AD), and writes stubs: forwarding entries
//! (`inetLocalMailRecipient` or qmail-ldap) or AD mail contacts. It decides
//! nothing: what to write comes from the engine's plan.
//!
//! Every stub carries coexist's marker (`coexist:<anchor>`) in the
//! configured marker attribute (default `description`, which both
//! `inetOrgPerson` and the AD `contact` class allow); an entry without the
//! marker is never updated or deleted.

pub mod ad_controls;
pub mod address_book;
pub mod config;
pub mod cursor;
mod doctor;
pub mod endpoint;
pub mod entry;
pub mod error;
pub mod escape;
pub mod forward;
pub mod kind;
mod lookup;
pub mod provision;
pub mod read;
pub mod referral;
pub mod schema;
mod sync;
pub mod wire;
pub mod write;

use std::sync::Arc;

use async_trait::async_trait;
use coexist_connector::{
    Applied, Connector, ConnectorError, Finding, NewAccount, Operation, Progress, Provisioned,
    Pull, Recipient,
};
use futures::stream::{self, StreamExt};
use tracing::Instrument;

pub use config::{AttributeMap, DisabledWhen, Flavor, Incremental, LdapConfig, StubSchema};
pub use endpoint::Endpoint;
pub use kind::{LdapKind, ACTIVE_DIRECTORY, LDAP};

/// How many operations `apply_many` keeps in flight on one connection.
const WRITE_CONCURRENCY: usize = 32;

type ApplyFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Applied, ConnectorError>> + Send + 'a>,
>;

/// A connection to one LDAP or AD system.
pub struct LdapConnector {
    system: String,
    config: LdapConfig,
    /// How the server is reached (shared with the reader).
    endpoint: Endpoint,
    reader: read::Reader,
    writer: write::Writer,
    conn: endpoint::Reused,
}

impl std::fmt::Debug for LdapConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapConnector")
            .field("system", &self.system)
            .field("config", &self.config)
            .finish()
    }
}

impl LdapConnector {
    /// A connector for `system` (its id in the configuration). Checks the
    /// configuration; connects on first use.
    pub fn new(system: &str, config: LdapConfig) -> Result<Self, ConnectorError> {
        config.validate().map_err(|e| {
            ConnectorError::permanent(format!("LDAP system `{system}`: bad configuration: {e}"))
        })?;
        if config.insecure_skip_verify {
            tracing::warn!(
                system,
                "insecure_skip_verify is on: TLS certificates are not checked"
            );
        }
        let endpoint = Endpoint::new(system, &config);
        endpoint.check().map_err(|e| {
            ConnectorError::permanent(format!("LDAP system `{system}`: bad configuration: {e}"))
        })?;
        let reader = read::Reader::with_endpoint(system, &config, endpoint.clone());
        let writer = write::Writer::new(system, &config);
        Ok(LdapConnector {
            system: system.to_string(),
            config,
            endpoint,
            reader,
            writer,
            conn: endpoint::Reused::default(),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &LdapConfig {
        &self.config
    }

    /// A bound connection, reused while it stays open.
    async fn ldap(&self) -> Result<ldap3::Ldap, ConnectorError> {
        self.conn.get(&self.endpoint).await
    }

    /// Forgets the cached connection after a connection-level failure.
    async fn forget_connection(&self, error: &ConnectorError) {
        self.conn.forget_after(error).await
    }
}

#[async_trait]
impl Connector for LdapConnector {
    fn system(&self) -> &str {
        &self.system
    }

    async fn pull(
        &self,
        cursor: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<Pull, ConnectorError> {
        let span = tracing::info_span!("ldap_pull", system = %self.system, flavor = ?self.config.flavor, delta = cursor.is_some());
        async {
            let mut ldap = self.ldap().await?;
            let result = sync::pull(&self.reader, &mut ldap, cursor, progress).await;
            match &result {
                Ok(p) => tracing::info!(
                    mode = ?p.mode,
                    recipients = p.recipients.len(),
                    stubs = p.stubs.len(),
                    removed = p.removed.len(),
                    problems = p.problems.len(),
                    complete = p.complete,
                    "pulled"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "pull failed");
                    self.forget_connection(e).await;
                }
            }
            result
        }
        .instrument(span)
        .await
    }

    /// A bind as `name` with `password` on a connection of its own, made
    /// as the connector's are (same transport, TLS and cleartext rules).
    async fn check_password(&self, name: &str, password: &str) -> Result<bool, ConnectorError> {
        let span = tracing::info_span!("ldap_check_password", system = %self.system);
        self.endpoint
            .check_password(name, password)
            .instrument(span)
            .await
    }

    fn address_book(&self, id: &str, base: &str) -> Result<Arc<dyn Connector>, ConnectorError> {
        Ok(Arc::new(address_book::AddressBook::new(
            id,
            base,
            &self.config,
            self.endpoint.clone(),
        )?))
    }

    async fn apply(&self, operation: &Operation) -> Result<Applied, ConnectorError> {
        let span = tracing::info_span!("ldap_apply", system = %self.system, action = operation.action(), anchor = %operation.stub().anchor);
        async {
            let mut ldap = self.ldap().await?;
            let result = self.writer.apply(&mut ldap, operation, None).await;
            if let Err(e) = &result {
                tracing::warn!(error = %e, "operation failed");
                self.forget_connection(e).await;
            }
            result
        }
        .instrument(span)
        .await
    }

    /// Runs the operations concurrently on one connection (the server
    /// works on several at once), after one listing of the existing stubs
    /// so creates need no lookup each. Results come back in order.
    async fn apply_many(&self, operations: &[Operation]) -> Vec<Result<Applied, ConnectorError>> {
        let span = tracing::info_span!("ldap_apply_many", system = %self.system, operations = operations.len());
        async {
            let ldap = match self.ldap().await {
                Ok(l) => l,
                Err(e) => return operations.iter().map(|_| Err(e.clone())).collect(),
            };
            let creates = operations
                .iter()
                .filter(|o| matches!(o, Operation::Create { .. }))
                .count();
            let index: Option<Arc<write::StubIndex>> = if creates > 1 {
                let mut l = ldap.clone();
                match self.writer.stub_index(&mut l).await {
                    Ok(i) => Some(Arc::new(i)),
                    Err(e) => return operations.iter().map(|_| Err(e.clone())).collect(),
                }
            } else {
                None
            };
            let mut futures: Vec<ApplyFuture<'_>> = Vec::with_capacity(operations.len());
            for op in operations {
                let mut l = ldap.clone();
                let index = index.clone();
                let writer = &self.writer;
                futures.push(Box::pin(async move {
                    writer.apply(&mut l, op, index.as_deref()).await
                }));
            }
            let mut results: Vec<Result<Applied, ConnectorError>> = stream::iter(futures)
                .buffered(WRITE_CONCURRENCY)
                .collect()
                .await;
            // Creates in bulk learn their ids from one listing afterwards.
            let unknown = results.iter().any(|r| {
                matches!(r, Ok(Applied { found: Some(f) }) if f.id.is_empty())
            });
            if unknown {
                let mut l = ldap.clone();
                match self.writer.stub_index(&mut l).await {
                    Ok(after) => {
                        for r in results.iter_mut() {
                            if let Ok(Applied { found: Some(f) }) = r {
                                if f.id.is_empty() {
                                    if let Some((_, id)) = after.get(&f.stub.anchor) {
                                        f.id = id.clone();
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not list the new stubs' ids; the next pull reads them"),
                }
            }
            if let Some(e) = results.iter().find_map(|r| r.as_ref().err()) {
                self.forget_connection(e).await;
            }
            results
        }
        .instrument(span)
        .await
    }

    /// Creates the account from the `provision` table (see
    /// [`provision::provision`]); refused when the table is missing.
    async fn provision(&self, account: &NewAccount) -> Result<Provisioned, ConnectorError> {
        let Some(template) = &self.config.provision else {
            return Err(ConnectorError::permanent(format!(
                "LDAP system `{}`: cannot create {}: its connection has no `provision` table (where and how to create accounts)",
                self.system, account.primary_address
            )));
        };
        let span = tracing::info_span!("ldap_provision", system = %self.system, address = %account.primary_address);
        async {
            let mut ldap = self.ldap().await?;
            let result = provision::provision(
                &self.system,
                &mut ldap,
                &self.writer.mapper,
                template,
                self.writer.timeout,
                account,
            )
            .await;
            if let Err(e) = &result {
                tracing::warn!(error = %e, "the account was not created");
                self.forget_connection(e).await;
            }
            result
        }
        .instrument(span)
        .await
    }

    /// Suspends the account at the recipient's DN (AD: bit 2 of
    /// `userAccountControl`; OpenLDAP: the `suspend` attributes of the
    /// `provision` table).
    async fn suspend(&self, recipient: &Recipient) -> Result<(), ConnectorError> {
        let refuse = |why: &str| {
            ConnectorError::permanent(format!(
                "LDAP system `{}`: cannot suspend {}: {why}",
                self.system, recipient.primary_address
            ))
        };
        let Some(template) = &self.config.provision else {
            return Err(refuse("its connection has no `provision` table"));
        };
        let Some(dn) = &recipient.locator else {
            return Err(refuse("the recipient was read without its DN"));
        };
        let mut ldap = self.ldap().await?;
        let result = provision::suspend(
            &self.system,
            &mut ldap,
            &self.writer.mapper,
            template,
            self.writer.timeout,
            dn,
        )
        .await;
        if let Err(e) = &result {
            self.forget_connection(e).await;
        }
        result
    }

    /// Makes the old account forward to `to` (OpenLDAP:
    /// `mailRoutingAddress`, qmail-ldap: `mailForwardingAddress`; AD:
    /// `targetAddress`), see [`forward::forward`].
    async fn forward(&self, recipient: &Recipient, to: &str) -> Result<(), ConnectorError> {
        let Some(dn) = &recipient.locator else {
            return Err(ConnectorError::permanent(format!(
                "LDAP system `{}`: cannot forward {}: the recipient was read without its DN",
                self.system, recipient.primary_address
            )));
        };
        let mut ldap = self.ldap().await?;
        let result = forward::forward(
            &self.system,
            &mut ldap,
            &self.writer.mapper,
            self.writer.timeout,
            dn,
            to,
        )
        .await;
        if let Err(e) = &result {
            self.forget_connection(e).await;
        }
        result
    }

    /// Retires the old account, see [`forward::retire`].
    async fn retire(
        &self,
        recipient: &Recipient,
        addresses: &[String],
        forward: &str,
    ) -> Result<(), ConnectorError> {
        let Some(dn) = &recipient.locator else {
            return Err(ConnectorError::permanent(format!(
                "LDAP system `{}`: cannot retire {}: the recipient was read without its DN",
                self.system, recipient.primary_address
            )));
        };
        let mut ldap = self.ldap().await?;
        let result = forward::retire(
            &self.system,
            &mut ldap,
            &self.writer.mapper,
            self.config.provision.as_ref(),
            self.writer.timeout,
            dn,
            addresses,
            forward,
        )
        .await;
        if let Err(e) = &result {
            self.forget_connection(e).await;
        }
        result
    }

    async fn doctor(&self) -> Vec<Finding> {
        doctor::doctor(&self.reader, &self.writer, self.ldap().await).await
    }
}
