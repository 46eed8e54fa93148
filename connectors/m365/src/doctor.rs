//! `coexist doctor` for a Microsoft 365 system.
//!
//! * **Tokens**: one for Microsoft Graph and one for Exchange Online, each
//!   proving the app's credential.
//! * **Permissions**: a read of one user and one group through Graph
//!   (`User.Read.All`, `Group.Read.All`), `Get-Recipient -ResultSize 1`
//!   through Exchange (`Exchange.ManageAsApp` and an Exchange role such as
//!   Mail Recipients assigned to the app), and with `contact_folder` a read
//!   of one mailbox's contact folders (`Contacts.ReadWrite`).
//! * **Routing domain**: a verified domain of the tenant (`GET /domains`),
//!   and an accepted domain of Exchange.
//! * **Accepted domains** (`Get-AcceptedDomain`): each with its type, since
//!   the shared domain must be InternalRelay where the tenant relays
//!   unknown recipients (the kind's manual checks say where the topology
//!   wants that).

use coexist_connector::Finding;
use serde_json::Value;

use crate::auth::Resource;
use crate::exchange::{AcceptedDomainRow, Cmdlet, RecipientRow};
use crate::graph::{self, Domain, Page};
use crate::http::Request;
use crate::M365Connector;

/// The application permissions coexist needs, in the words of the Entra
/// admin center.
pub const GRAPH_PERMISSIONS: &str =
    "User.Read.All, Group.Read.All, Domain.Read.All (and Contacts.ReadWrite for mailbox_contacts)";

impl M365Connector {
    pub(crate) async fn checks(&self) -> Vec<Finding> {
        let mut findings = Vec::new();
        let graph_token = self.http.auth().token(Resource::Graph).await;
        findings.push(Finding::new(
            "Microsoft Graph token",
            graph_token.is_ok(),
            match &graph_token {
                Ok(_) => format!(
                    "the app {} obtained a token for Microsoft Graph in tenant {}",
                    self.config.client_id, self.config.tenant_id
                ),
                Err(error) => format!(
                    "{error}. In the Entra admin center (App registrations > the app > \
                     Certificates & secrets) check the client secret or certificate"
                ),
            },
        ));
        if graph_token.is_err() {
            return findings;
        }
        let exchange_token = self.http.auth().token(Resource::Exchange).await;
        findings.push(Finding::new(
            "Exchange Online token",
            exchange_token.is_ok(),
            match &exchange_token {
                Ok(_) => "the app obtained a token for Exchange Online".to_string(),
                Err(error) => error.to_string(),
            },
        ));
        findings.push(self.graph_reads().await);
        if exchange_token.is_ok() {
            findings.push(self.exchange_reads().await);
        }
        if self.config.contact_folder.is_some() && exchange_token.is_ok() {
            findings.push(self.contact_folders().await);
        }
        let domains = self.domains().await;
        findings.push(self.routing_finding(&domains));
        if exchange_token.is_ok() {
            findings.push(self.accepted_domains().await);
        }
        findings
    }

    async fn graph_get(
        &self,
        path: &str,
        what: &str,
    ) -> Result<Value, coexist_connector::ConnectorError> {
        let url = graph::url(self.graph_url(), path)?;
        let reply = self
            .http
            .execute(what, &Request::get(Resource::Graph, url))
            .await?;
        reply.json(what)
    }

    async fn graph_reads(&self) -> Finding {
        let check = "Microsoft Graph: users and groups readable";
        let users = self
            .graph_get("users?$top=1&$select=id", "reading one user")
            .await;
        let groups = self
            .graph_get("groups?$top=1&$select=id", "reading one group")
            .await;
        match (users, groups) {
            (Ok(_), Ok(_)) => Finding::passed(check, "the app can read users and groups"),
            (Err(error), _) | (_, Err(error)) => Finding::failed(
                check,
                format!(
                    "{error}. Grant the app the application permissions {GRAPH_PERMISSIONS} \
                     (API permissions > Add a permission > Microsoft Graph > Application \
                     permissions), then Grant admin consent"
                ),
            ),
        }
    }

    async fn exchange_reads(&self) -> Finding {
        let check = "Exchange Online: recipients readable";
        let cmdlet = Cmdlet::new("Get-Recipient").with("ResultSize", 1);
        match self.exchange.run::<RecipientRow>(&self.http, &cmdlet).await {
            Ok(_) => Finding::passed(
                check,
                "Get-Recipient works: the app may run Exchange cmdlets (Exchange.ManageAsApp)",
            ),
            Err(failure) => Finding::failed(
                check,
                format!(
                    "{}. Grant the app the application permission Exchange.ManageAsApp (API \
                     permissions > APIs my organization uses > Office 365 Exchange Online), and \
                     assign its service principal the Exchange role Mail Recipients (or the \
                     Recipient Management role group); or run the plan's cmdlets yourself: \
                     `coexist plan --format powershell`",
                    failure.error
                ),
            ),
        }
    }

    async fn contact_folders(&self) -> Finding {
        let check = "Microsoft Graph: mailbox contact folders writable";
        let cmdlet = Cmdlet::new("Get-Recipient")
            .with("RecipientTypeDetails", "UserMailbox")
            .with("ResultSize", 1);
        let first = match self.exchange.run::<RecipientRow>(&self.http, &cmdlet).await {
            Ok(rows) => rows
                .into_iter()
                .find_map(|r| r.external_directory_object_id),
            Err(failure) => return Finding::failed(check, failure.error.to_string()),
        };
        let Some(user) = first else {
            return Finding::passed(check, "the tenant has no user mailbox yet");
        };
        match self
            .graph_get(
                &format!("users/{user}/contactFolders?$top=1"),
                "reading a mailbox's contact folders",
            )
            .await
        {
            Ok(_) => Finding::passed(
                check,
                "the app can read the contact folders of a mailbox (Contacts.ReadWrite)",
            ),
            Err(error) => Finding::failed(
                check,
                format!(
                    "{error}. mailbox_contacts needs the application permission \
                     Contacts.ReadWrite (and no application access policy keeping the app out of \
                     the mailboxes)"
                ),
            ),
        }
    }

    async fn domains(&self) -> Result<Vec<Domain>, String> {
        let url = graph::url(self.graph_url(), "domains").map_err(|e| e.to_string())?;
        let reply = self
            .http
            .execute(
                "listing the tenant's domains",
                &Request::get(Resource::Graph, url),
            )
            .await
            .map_err(|e| e.to_string())?;
        let page: Page<Domain> = reply
            .json("listing the tenant's domains")
            .map_err(|e| e.to_string())?;
        Ok(page.value)
    }

    fn routing_finding(&self, domains: &Result<Vec<Domain>, String>) -> Finding {
        let check = "routing domain";
        let Some(routing) = self
            .config
            .routing_domain
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
        else {
            return Finding::failed(
                check,
                format!(
                    "no routing_domain is configured for system {}: add the tenant's \
                     <tenant>.mail.onmicrosoft.com domain, which every mailbox answers at and the \
                     other systems forward this tenant's people to",
                    self.system
                ),
            );
        };
        let domains = match domains {
            Ok(domains) => domains,
            Err(error) => {
                return Finding::failed(
                    check,
                    format!("the tenant's domains could not be read (Domain.Read.All): {error}"),
                )
            }
        };
        let listed: Vec<String> = domains
            .iter()
            .map(|d| {
                format!(
                    "{}{}",
                    d.id,
                    if d.is_verified { "" } else { " (unverified)" }
                )
            })
            .collect();
        match domains.iter().find(|d| d.id.eq_ignore_ascii_case(routing)) {
            Some(domain) if domain.is_verified => Finding::passed(
                check,
                format!("{routing} is a verified domain of the tenant"),
            )
            .about(format!("{routing} domain"), "verified", "verified"),
            Some(_) => Finding::failed(
                check,
                format!(
                    "{routing} is a domain of the tenant but is not verified: verify it \
                     (Microsoft 365 admin center > Settings > Domains) before Exchange accepts \
                     mail for it"
                ),
            )
            .about(format!("{routing} domain"), "unverified", "verified"),
            None => Finding::failed(
                check,
                format!(
                    "{routing} is not a domain of the tenant (it has {}): use the tenant's own \
                     <tenant>.mail.onmicrosoft.com domain, or add and verify {routing}",
                    listed.join(", ")
                ),
            )
            .about(format!("{routing} domain"), "absent", "verified"),
        }
    }

    async fn accepted_domains(&self) -> Finding {
        let check = "Exchange Online: accepted domains";
        let cmdlet = Cmdlet::new("Get-AcceptedDomain");
        let rows = match self
            .exchange
            .run_all::<AcceptedDomainRow>(&self.http, &cmdlet)
            .await
        {
            Ok(rows) => rows,
            Err(failure) => return Finding::failed(check, failure.error.to_string()),
        };
        let listed: Vec<String> = rows
            .iter()
            .filter_map(|r| {
                Some(format!(
                    "{} {}",
                    r.domain()?,
                    r.domain_type.as_deref().unwrap_or("(type unknown)")
                ))
            })
            .collect();
        let routing = self.config.routing_domain.as_deref().map(str::trim);
        let accepted = routing.map(|routing| {
            rows.iter()
                .any(|r| r.domain().is_some_and(|d| d.eq_ignore_ascii_case(routing)))
        });
        let summary = format!(
            "{}. A shared domain that this tenant relays for recipients it does not hold must be \
             InternalRelay (Authoritative rejects them as unknown); see the manual checks for \
             what the topology wants",
            listed.join(", ")
        );
        match (routing, accepted) {
            (Some(routing), Some(false)) => Finding::failed(
                check,
                format!("{routing} is not an accepted domain, so Exchange refuses mail to it: {summary}"),
            ),
            _ => Finding::passed(check, summary),
        }
    }
}
