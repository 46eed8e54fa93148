//! `coexist doctor` for a Google system: the checks that tell an admin what
//! to fix before the first sync.
//!
//! * **Credentials and scopes**: an access token for the impersonated admin
//!   proves the key and its domain-wide delegation ("Delegating domain-wide
//!   authority to the service account",
//!   <https://developers.google.com/identity/protocols/oauth2/service-account>);
//!   the finding names the scopes to grant ([`crate::auth::SCOPES`]).
//! * **Reads**: one user of the Directory API and one page of the shared
//!   contacts feed.
//! * **Routing domain**: the system's `routing_domain` must be a verified
//!   domain alias (or a domain) of the customer, read with `domainAliases.list`
//!   and `domains.list`
//!   (<https://developers.google.com/admin-sdk/directory/reference/rest/v1/domainAliases/list>,
//!   <https://developers.google.com/admin-sdk/directory/reference/rest/v1/domains/list>).
//! * **Gmail routing** (manual): the catch-all / split-delivery route for
//!   people not on Google is a Gmail "Default routing" setting
//!   (<https://support.google.com/a/answer/2368153>) that no API exposes, so
//!   the finding explains what to check by hand.

use coexist_connector::Finding;

use crate::{auth, GoogleConnector};

impl GoogleConnector {
    /// Checks the credentials and scopes, the reads, the routing domain, and
    /// explains the Gmail routing no API exposes. Without a token only the
    /// credentials finding and the manual one are given.
    pub(crate) async fn checks(&self) -> Vec<Finding> {
        let mut findings = Vec::new();
        let token = self.http.tokens().token().await;
        findings.push(Finding::new(
            "Google service account credentials",
            token.is_ok(),
            match &token {
                Ok(_) => format!(
                    "an access token was obtained for {} with the scopes {}",
                    self.config.admin,
                    auth::SCOPES.join(" ")
                ),
                Err(error) => format!(
                    "{error}. In the Admin console (Security > Access and data control > API \
                     controls > Domain-wide delegation) the service account's client id must \
                     be granted the scopes {}",
                    auth::SCOPES.join(",")
                ),
            },
        ));
        if token.is_err() {
            findings.push(self.manual_routing_finding());
            return findings;
        }
        let users = self.directory.probe_users(&self.http).await;
        findings.push(Finding::new(
            "Directory API: users and groups readable",
            users.is_ok(),
            match users {
                Ok(_) => format!("users of customer {} can be listed", self.config.customer),
                Err(error) => error.to_string(),
            },
        ));
        let feed = self.contacts_page(1, 1).await;
        findings.push(Finding::new(
            "Shared Contacts API: the domain's feed readable",
            feed.is_ok(),
            match feed {
                Ok(_) => format!("the shared contacts of {} can be read", self.config.domain),
                Err(error) => error.to_string(),
            },
        ));
        findings.push(self.routing_finding().await);
        findings.push(self.manual_routing_finding());
        findings
    }

    /// Whether the routing domain is configured, and a verified domain
    /// alias or a domain of the customer.
    async fn routing_finding(&self) -> Finding {
        let check = "routing domain".to_string();
        let Some(routing) = self
            .config
            .routing_domain
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
        else {
            return Finding::new(
                check,
                false,
                format!(
                    "no routing_domain is configured for system {}: add the domain alias that \
                     delivers straight to Google (for example gapps.{}), which the other \
                     systems forward Google's mailboxes to",
                    self.system, self.config.domain
                ),
            );
        };
        let aliases = self.directory.list_domain_aliases(&self.http).await;
        let domains = self.directory.list_domains(&self.http).await;
        let wanted = routing.to_lowercase();
        match (&aliases, &domains) {
            (Ok(aliases), _)
                if aliases
                    .iter()
                    .any(|a| a.domain_alias_name.to_lowercase() == wanted) =>
            {
                let verified = aliases
                    .iter()
                    .any(|a| a.domain_alias_name.to_lowercase() == wanted && a.verified);
                Finding::new(
                    check,
                    verified,
                    if verified {
                        format!("{routing} is a verified domain alias of the customer")
                    } else {
                        format!(
                            "{routing} is a domain alias of the customer but is not verified yet: \
                             verify it in the Admin console (Account > Domains > Manage domains) \
                             before Google accepts mail for it"
                        )
                    },
                )
            }
            (_, Ok(domains))
                if domains
                    .iter()
                    .any(|d| d.domain_name.to_lowercase() == wanted) =>
            {
                Finding::new(
                    check,
                    true,
                    format!("{routing} is a domain of the customer"),
                )
            }
            (Err(error), _) | (_, Err(error)) => Finding::new(
                check,
                false,
                format!("the domains could not be read: {error}"),
            ),
            _ => Finding::new(
                check,
                false,
                format!(
                    "{routing} is neither a domain nor a domain alias of the customer: add it in \
                     the Admin console (Account > Domains > Manage domains > Add a domain, as a \
                     domain alias of {}) and add its MX records, so mail the other systems \
                     forward to local@{routing} reaches Google",
                    self.config.domain
                ),
            ),
        }
    }

    /// What to check by hand in Gmail's Default routing (always `ok`,
    /// marked `manual`).
    fn manual_routing_finding(&self) -> Finding {
        let routing = self
            .config
            .routing_domain
            .clone()
            .unwrap_or_else(|| format!("gapps.{}", self.config.domain));
        Finding::manual(
            "Gmail routing for people not on Google (manual check)",
            format!(
                "MANUAL CHECK — no Google API exposes this setting, so coexist cannot verify it. \
                 In the Google Admin console open Apps > Google Workspace > Gmail > Routing, \
                 section Default routing, and make sure a setting for \"Unknown mailbox \
                 accounts\" (the catch-all) changes the route to the other mail system's host, \
                 so mail for {domain} addresses without a Google mailbox — the people coexist \
                 lists as shared contacts — is delivered there. (Split delivery, routing all \
                 mail for those recipients to the other host, works too.) The other system must \
                 in turn forward mail for Google's people to local@{routing}.",
                domain = self.config.domain
            ),
        )
    }
}
