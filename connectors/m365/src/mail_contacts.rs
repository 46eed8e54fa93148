//! Stubs as Exchange Online mail contacts (`stub_style = "mail_contact"`).
//!
//! A stub is a mail contact in the tenant's address list:
//! * `Name`: `coexist-<primary address>` (unique in the tenant and stable;
//!   longer than Exchange's 64 characters, its start and a digest of the
//!   whole), never changed afterwards;
//! * `ExternalEmailAddress`: the stub's route (`Route::Address`, the
//!   recipient's routing address at its home);
//! * `EmailAddresses`: `SMTP:<primary>`, `smtp:<alias>` for each other
//!   shared-domain address, and `smtp:<external address>`;
//! * `DisplayName`; `CustomAttribute1`: coexist's marker
//!   `coexist:<anchor>`; `CustomAttribute2`: the recipient kind
//!   (`person`, `group`, `shared_mailbox`, `resource`);
//! * through Set-Contact: `FirstName`, `LastName`, `Title`, `Department`,
//!   `Company`, `Phone`, `MobilePhone`.
//!
//! Exchange calls per operation (the minimum, and what coexist sends):
//! * **create**: 2 — New-MailContact (`Name`, `ExternalEmailAddress`,
//!   `DisplayName`; Exchange Online has no `-PrimarySmtpAddress`), then
//!   Set-MailContact (`EmailAddresses`, `CustomAttribute1`,
//!   `CustomAttribute2`); 3 when the stub has any name, title, department,
//!   company or phone, which only Set-Contact writes.
//! * **update**: 1 per cmdlet whose fields changed — Set-MailContact for
//!   addresses, route, display name, marker or kind; Set-Contact for the
//!   person attributes; so 1, or 2 when both kinds of field changed. Only
//!   the changed parameters are sent.
//! * **delete**: 1 — Remove-MailContact (a contact already gone is done).
//! * A full read lists all mail contacts with Get-MailContact and their
//!   person attributes with Get-Contact (one call each per 1,000 contacts);
//!   writes need no read first.
//!
//! Idempotence without a read: a create whose `Name` is taken finds that
//! contact (one Get-MailContact) and, when it carries coexist's marker for
//! the same anchor or no marker at all (a create stopped between its two
//! calls), completes it as an update; any other owner of the name is an
//! error, the contact left alone. After a full read in the same process a
//! create of an anchor that already has a contact updates it directly.

use std::collections::HashMap;

use coexist_connector::marker::{marker_value, parse_marker};
use coexist_connector::{
    Applied, Attributes, ConnectorError, FoundStub, Operation, Problem, RecipientKind, Route, Stub,
    StubField,
};
use futures::stream::{self, StreamExt};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::exchange::{Cmdlet, ContactRow, Failure, MailContactRow, ALREADY_EXISTS, NOT_FOUND};
use crate::recipients::strip_smtp;
use crate::M365Connector;

/// The prefix of the names coexist gives its mail contacts.
pub const NAME_PREFIX: &str = "coexist-";

/// The longest `Name` Exchange accepts.
const MAX_NAME: usize = 64;

/// The `Name` of the mail contact for a stub whose primary address is
/// `primary`.
pub fn contact_name(primary: &str) -> String {
    let full = format!("{NAME_PREFIX}{}", primary.trim().to_lowercase());
    if full.chars().count() <= MAX_NAME {
        return full;
    }
    let digest = hex::encode(Sha256::digest(full.as_bytes()));
    let head: String = full.chars().take(MAX_NAME - 17).collect();
    format!("{head}-{}", &digest[..16])
}

/// The kind's name in `CustomAttribute2`.
pub fn kind_name(kind: RecipientKind) -> &'static str {
    kind.as_str()
}

fn kind_from(value: Option<&str>) -> RecipientKind {
    match value.map(str::trim) {
        Some("group") => RecipientKind::Group,
        Some("shared_mailbox") => RecipientKind::SharedMailbox,
        Some("resource") => RecipientKind::Resource,
        _ => RecipientKind::Person,
    }
}

/// `EmailAddresses` for a stub: the primary, the aliases and the external
/// address.
pub fn email_addresses(stub: &Stub) -> Vec<String> {
    let mut list = vec![format!("SMTP:{}", stub.primary_address)];
    for alias in &stub.aliases {
        if !alias.eq_ignore_ascii_case(&stub.primary_address) {
            list.push(format!("smtp:{alias}"));
        }
    }
    if let Some(external) = external(stub) {
        if !list
            .iter()
            .any(|a| strip_smtp(a).eq_ignore_ascii_case(external))
        {
            list.push(format!("smtp:{external}"));
        }
    }
    list
}

/// The address a stub routes to.
fn external(stub: &Stub) -> Option<&str> {
    match &stub.route {
        Route::Address(address) => Some(address.as_str()),
        Route::Host(_) | Route::DomainRouting => None,
    }
}

fn text(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// A mail contact as the stub it holds: `None` when it carries no marker
/// of coexist's.
pub fn to_found_stub(
    row: &MailContactRow,
    person: Option<&ContactRow>,
) -> Option<Result<FoundStub, Problem>> {
    let anchor = parse_marker(row.custom_attribute1.as_deref()?.trim())?.to_string();
    let name = text(&row.name).unwrap_or_default();
    let object = if name.is_empty() {
        anchor.clone()
    } else {
        name.clone()
    };
    let Some(guid) = text(&row.guid) else {
        return Some(Err(Problem {
            object,
            message: "coexist's mail contact has no Guid; it was skipped".into(),
        }));
    };
    let external = row
        .external_email_address
        .as_deref()
        .map(strip_smtp)
        .filter(|a| !a.is_empty())
        .map(str::to_string);
    let Some(external) = external else {
        return Some(Err(Problem {
            object,
            message: "coexist's mail contact has no ExternalEmailAddress; it was skipped".into(),
        }));
    };
    let mut primary = None;
    let mut aliases = Vec::new();
    for entry in &row.email_addresses {
        let entry = entry.trim();
        let Some(prefix) = entry.get(..5) else {
            continue;
        };
        if !prefix.eq_ignore_ascii_case("smtp:") {
            continue;
        }
        let address = entry[5..].trim().to_string();
        if prefix == "SMTP:" && primary.is_none() {
            primary = Some(address);
        } else if !address.eq_ignore_ascii_case(&external) {
            aliases.push(address);
        }
    }
    let Some(primary) = primary else {
        return Some(Err(Problem {
            object,
            message: "coexist's mail contact has no primary SMTP address; it was skipped".into(),
        }));
    };
    aliases.retain(|a| !a.eq_ignore_ascii_case(&primary));
    aliases.sort_by_key(|a| a.to_lowercase());
    let display_name = text(&row.display_name).filter(|d| *d != name);
    let person = person.cloned().unwrap_or_default();
    Some(Ok(FoundStub {
        id: guid,
        locator: object,
        misplaced: false,
        stub: Stub {
            anchor,
            kind: kind_from(row.custom_attribute2.as_deref()),
            primary_address: primary,
            aliases,
            route: Route::Address(external),
            attributes: Attributes {
                display_name,
                given_name: text(&person.first_name),
                surname: text(&person.last_name),
                business_phone: text(&person.phone),
                mobile_phone: text(&person.mobile_phone),
                title: text(&person.title),
                department: text(&person.department),
                company: text(&person.company),
            },
        },
    }))
}

/// coexist's mail contacts by anchor (Guid and Name), from a full read.
#[derive(Debug, Default)]
pub struct ContactIndex {
    by_anchor: HashMap<String, (String, String, Stub)>,
}

impl ContactIndex {
    /// Replaces the index with the stubs of a full read.
    pub fn load(&mut self, stubs: &[FoundStub]) {
        self.by_anchor = stubs
            .iter()
            .map(|f| {
                (
                    f.stub.anchor.clone(),
                    (f.id.clone(), f.locator.clone(), f.stub.clone()),
                )
            })
            .collect();
    }

    fn get(&self, anchor: &str) -> Option<&(String, String, Stub)> {
        self.by_anchor.get(anchor)
    }
}

/// The Set-MailContact fields.
const MAIL_FIELDS: [StubField; 6] = [
    StubField::Anchor,
    StubField::Kind,
    StubField::PrimaryAddress,
    StubField::Aliases,
    StubField::Route,
    StubField::DisplayName,
];

/// The Set-Contact fields.
const PERSON_FIELDS: [StubField; 7] = [
    StubField::GivenName,
    StubField::Surname,
    StubField::Title,
    StubField::Department,
    StubField::Company,
    StubField::BusinessPhone,
    StubField::MobilePhone,
];

/// Set-MailContact for `changed` fields of `stub` (of the contact
/// `guid` named `name`); `None` when none of them is its.
pub fn set_mail_contact(
    guid: &str,
    name: &str,
    stub: &Stub,
    changed: &[StubField],
) -> Option<Cmdlet> {
    if !changed.iter().any(|f| MAIL_FIELDS.contains(f)) {
        return None;
    }
    let mut cmdlet = Cmdlet::new("Set-MailContact").with("Identity", guid);
    if changed.iter().any(|f| {
        matches!(
            f,
            StubField::PrimaryAddress | StubField::Aliases | StubField::Route
        )
    }) {
        cmdlet = cmdlet.with("EmailAddresses", email_addresses(stub));
    }
    if changed.contains(&StubField::Route) {
        if let Some(external) = external(stub) {
            cmdlet = cmdlet.with("ExternalEmailAddress", external);
        }
    }
    if changed.contains(&StubField::DisplayName) {
        cmdlet = cmdlet.with("DisplayName", display_name(stub, name));
    }
    if changed.contains(&StubField::Anchor) {
        cmdlet = cmdlet.with("CustomAttribute1", marker_value(&stub.anchor));
    }
    if changed.contains(&StubField::Kind) {
        cmdlet = cmdlet.with("CustomAttribute2", kind_name(stub.kind));
    }
    Some(cmdlet)
}

/// Set-Contact for `changed` fields of `stub`; `None` when none of them is
/// its. A value the stub lacks is cleared (`$null`).
pub fn set_contact(guid: &str, stub: &Stub, changed: &[StubField]) -> Option<Cmdlet> {
    let a = &stub.attributes;
    let fields: Vec<(&str, &Option<String>)> = PERSON_FIELDS
        .iter()
        .filter(|f| changed.contains(f))
        .map(|f| match f {
            StubField::GivenName => ("FirstName", &a.given_name),
            StubField::Surname => ("LastName", &a.surname),
            StubField::Title => ("Title", &a.title),
            StubField::Department => ("Department", &a.department),
            StubField::Company => ("Company", &a.company),
            StubField::BusinessPhone => ("Phone", &a.business_phone),
            _ => ("MobilePhone", &a.mobile_phone),
        })
        .collect();
    if fields.is_empty() {
        return None;
    }
    let mut cmdlet = Cmdlet::new("Set-Contact").with("Identity", guid);
    for (name, value) in fields {
        cmdlet = cmdlet.with(
            name,
            value
                .as_ref()
                .map_or(Value::Null, |v| Value::String(v.clone())),
        );
    }
    Some(cmdlet)
}

/// The display name written for `stub` (the contact's name when the GAL
/// has none, which a read takes back as none).
fn display_name(stub: &Stub, name: &str) -> String {
    stub.attributes
        .display_name
        .clone()
        .unwrap_or_else(|| name.to_string())
}

/// The fields a create writes beyond New-MailContact: every mail field,
/// and the person attributes the stub has.
fn create_fields(stub: &Stub) -> Vec<StubField> {
    let a = &stub.attributes;
    let mut fields = vec![
        StubField::Anchor,
        StubField::Kind,
        StubField::PrimaryAddress,
        StubField::Aliases,
    ];
    for (field, value) in [
        (StubField::GivenName, &a.given_name),
        (StubField::Surname, &a.surname),
        (StubField::Title, &a.title),
        (StubField::Department, &a.department),
        (StubField::Company, &a.company),
        (StubField::BusinessPhone, &a.business_phone),
        (StubField::MobilePhone, &a.mobile_phone),
    ] {
        if value.is_some() {
            fields.push(field);
        }
    }
    fields
}

fn found(guid: &str, name: &str, stub: &Stub) -> Applied {
    Applied {
        found: Some(FoundStub {
            id: guid.to_string(),
            locator: name.to_string(),
            misplaced: false,
            stub: stub.clone(),
        }),
    }
}

impl M365Connector {
    /// Reads every mail contact and its person attributes: coexist's as
    /// found stubs (and into the index), the others as recipients
    /// forwarding to their external address.
    pub(crate) async fn read_mail_contacts(
        &self,
    ) -> Result<(Vec<FoundStub>, Vec<MailContactRow>, Vec<Problem>), ConnectorError> {
        let contacts = Cmdlet::new("Get-MailContact").with("ResultSize", "Unlimited");
        let people = Cmdlet::new("Get-Contact")
            .with("RecipientTypeDetails", "MailContact")
            .with("ResultSize", "Unlimited");
        let (rows, people) = tokio::join!(
            self.exchange
                .run_all::<MailContactRow>(&self.http, &contacts),
            self.exchange.run_all::<ContactRow>(&self.http, &people),
        );
        let rows = rows.map_err(|f| f.error)?;
        let people = people.map_err(|f| f.error)?;
        let by_guid: HashMap<&str, &ContactRow> = people
            .iter()
            .filter_map(|p| p.guid.as_deref().map(|g| (g, p)))
            .collect();
        let mut stubs = Vec::new();
        let mut problems = Vec::new();
        let mut others = Vec::new();
        for row in rows {
            let person = row.guid.as_deref().and_then(|g| by_guid.get(g).copied());
            match to_found_stub(&row, person) {
                Some(Ok(stub)) => stubs.push(stub),
                Some(Err(problem)) => problems.push(problem),
                None => {
                    let name = row.name.as_deref().unwrap_or_default();
                    if name.starts_with(NAME_PREFIX) {
                        problems.push(Problem {
                            object: name.to_string(),
                            message: "a mail contact coexist began to create but did not mark \
                                      (the run stopped between its two calls); the next create \
                                      of that recipient completes it"
                                .into(),
                        });
                    } else {
                        others.push(row);
                    }
                }
            }
        }
        self.contacts.lock().await.load(&stubs);
        Ok((stubs, others, problems))
    }

    /// Carries out operations, mail contacts and mailbox contacts each
    /// their own way; one result per operation, in order.
    pub(crate) async fn write(
        &self,
        operations: &[Operation],
    ) -> Vec<Result<Applied, ConnectorError>> {
        let mut results: Vec<Option<Result<Applied, ConnectorError>>> =
            operations.iter().map(|_| None).collect();
        let (personal, mail): (Vec<usize>, Vec<usize>) = (0..operations.len())
            .partition(|&i| operations[i].stub().route == Route::DomainRouting);
        if !personal.is_empty() {
            let ops: Vec<&Operation> = personal.iter().map(|&i| &operations[i]).collect();
            for (i, result) in personal.iter().zip(self.write_mailbox_contacts(&ops).await) {
                results[*i] = Some(result);
            }
        }
        let done: Vec<(usize, Result<Applied, ConnectorError>)> = stream::iter(mail)
            .map(|i| async move {
                let result = match self.http.auth().failure() {
                    Some(error) => Err(error),
                    None => self.write_mail_contact(&operations[i]).await,
                };
                (i, result)
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        for (i, result) in done {
            results[i] = Some(result);
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(ConnectorError::retryable(
                        "the operation was not carried out (internal bookkeeping error)",
                    ))
                })
            })
            .collect()
    }

    /// One operation on a mail contact.
    async fn write_mail_contact(&self, operation: &Operation) -> Result<Applied, ConnectorError> {
        if let Route::Host(host) = &operation.stub().route {
            return Err(ConnectorError::permanent(format!(
                "a mail contact routes to an address, not to the host {host}: this system's \
                 stub_style must be \"mail_contact\" or \"mailbox_contacts\""
            )));
        }
        match operation {
            Operation::Create { stub } => self.create(stub).await,
            Operation::Update {
                id,
                locator,
                before,
                after,
                changed,
            } => {
                // An update that names no field (a stub to rewrite as it
                // is) writes every field.
                let changed = if changed.is_empty() {
                    let mut all = StubField::changed(before, after);
                    all.extend(MAIL_FIELDS);
                    all.extend(PERSON_FIELDS);
                    all.sort();
                    all.dedup();
                    all
                } else {
                    changed.clone()
                };
                self.update(id, locator, after, &changed).await
            }
            Operation::Delete { id, locator, stub } => self.delete(id, locator, stub).await,
        }
    }

    async fn create(&self, stub: &Stub) -> Result<Applied, ConnectorError> {
        let known = self.contacts.lock().await.get(&stub.anchor).cloned();
        if let Some((guid, name, before)) = known {
            let changed = StubField::changed(&before, stub);
            return self.update(&guid, &name, stub, &changed).await;
        }
        let Some(target) = external(stub) else {
            return Err(ConnectorError::permanent(format!(
                "{}: a mail contact needs an address to route to",
                stub.primary_address
            )));
        };
        let name = contact_name(&stub.primary_address);
        let new = Cmdlet::new("New-MailContact")
            .with("Name", name.as_str())
            .with("ExternalEmailAddress", target)
            .with("DisplayName", display_name(stub, &name));
        let (guid, fields) = match self.exchange.run::<MailContactRow>(&self.http, &new).await {
            Ok(rows) => {
                let guid = rows.into_iter().find_map(|r| r.guid).ok_or_else(|| {
                    ConnectorError::permanent(format!(
                        "New-MailContact {name}: Exchange returned no contact"
                    ))
                })?;
                (guid, create_fields(stub))
            }
            Err(failure) if failure.is(ALREADY_EXISTS) => {
                let guid = self.adopt(&name, stub).await?;
                // Whatever it holds is rewritten.
                let mut fields = create_fields(stub);
                fields.extend([StubField::Route, StubField::DisplayName]);
                fields.extend(PERSON_FIELDS);
                fields.sort();
                fields.dedup();
                (guid, fields)
            }
            Err(failure) => {
                return Err(failure.error.context(format!(
                    "creating the mail contact for {}",
                    stub.primary_address
                )))
            }
        };
        self.set(&guid, &name, stub, &fields).await?;
        Ok(found(&guid, &name, stub))
    }

    /// The contact already named `name`: its Guid when it is coexist's for
    /// `stub`'s anchor, or unmarked (a create stopped half-way); an error
    /// for anything else.
    async fn adopt(&self, name: &str, stub: &Stub) -> Result<String, ConnectorError> {
        let get = Cmdlet::new("Get-MailContact").with("Identity", name);
        let rows = self
            .exchange
            .run::<MailContactRow>(&self.http, &get)
            .await
            .map_err(|f| {
                f.error.context(format!(
                    "the name {name} is taken; reading that contact failed"
                ))
            })?;
        let row = rows.into_iter().next().ok_or_else(|| {
            ConnectorError::permanent(format!(
                "the name {name} is taken by an object that is not a mail contact; it is left alone"
            ))
        })?;
        let marker = row
            .custom_attribute1
            .as_deref()
            .map(str::trim)
            .unwrap_or("");
        let ours = marker.is_empty() || parse_marker(marker) == Some(stub.anchor.as_str());
        match (ours, row.guid) {
            (true, Some(guid)) => {
                tracing::info!(contact = %name, "completing coexist's mail contact found under its name");
                Ok(guid)
            }
            _ => Err(ConnectorError::permanent(format!(
                "the mail contact {name} exists and carries another marker ({marker}); it is left alone"
            ))),
        }
    }

    /// Set-MailContact and Set-Contact for `fields`, each only when needed.
    async fn set(
        &self,
        guid: &str,
        name: &str,
        stub: &Stub,
        fields: &[StubField],
    ) -> Result<(), ConnectorError> {
        let what = |cmdlet: &str| format!("{cmdlet} for {} ({name})", stub.primary_address);
        if let Some(cmdlet) = set_mail_contact(guid, name, stub, fields) {
            self.exchange
                .run::<Value>(&self.http, &cmdlet)
                .await
                .map_err(|f| self.gone(f, &what("Set-MailContact")))?;
        }
        if let Some(cmdlet) = set_contact(guid, stub, fields) {
            self.exchange
                .run::<Value>(&self.http, &cmdlet)
                .await
                .map_err(|f| self.gone(f, &what("Set-Contact")))?;
        }
        Ok(())
    }

    fn gone(&self, failure: Failure, what: &str) -> ConnectorError {
        if failure.is(NOT_FOUND) {
            ConnectorError::permanent(format!(
                "{what}: the mail contact no longer exists (deleted outside coexist); the next \
                 sync creates it again"
            ))
        } else {
            failure.error.context(what)
        }
    }

    async fn update(
        &self,
        guid: &str,
        name: &str,
        stub: &Stub,
        changed: &[StubField],
    ) -> Result<Applied, ConnectorError> {
        self.set(guid, name, stub, changed).await?;
        Ok(found(guid, name, stub))
    }

    async fn delete(&self, guid: &str, name: &str, stub: &Stub) -> Result<Applied, ConnectorError> {
        let remove = Cmdlet::new("Remove-MailContact").with("Identity", guid);
        match self.exchange.run::<Value>(&self.http, &remove).await {
            Ok(_) => Ok(Applied { found: None }),
            Err(failure) if failure.is(NOT_FOUND) => {
                tracing::debug!(contact = %name, "already gone");
                Ok(Applied { found: None })
            }
            Err(failure) => Err(failure.error.context(format!(
                "removing the mail contact for {} ({name})",
                stub.primary_address
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stub() -> Stub {
        Stub {
            anchor: "ldap:42".into(),
            kind: RecipientKind::Group,
            primary_address: "sales@acmecorp.com".into(),
            aliases: vec!["vente@acmecorp.com".into()],
            route: Route::Address("sales@mithi.acmecorp.com".into()),
            attributes: Attributes {
                display_name: Some("Sales".into()),
                title: Some("Team".into()),
                ..Attributes::default()
            },
        }
    }

    #[test]
    fn names_are_stable_unique_and_within_exchanges_limit() {
        assert_eq!(contact_name("Ann@AcmeCorp.com"), "coexist-ann@acmecorp.com");
        let long = format!("{}@acmecorp.com", "x".repeat(80));
        let name = contact_name(&long);
        assert_eq!(name.chars().count(), 64);
        assert_eq!(name, contact_name(&long));
        assert_ne!(
            name,
            contact_name(&format!("{}y@acmecorp.com", "x".repeat(80)))
        );
    }

    #[test]
    fn a_contact_reads_back_as_the_stub_written() {
        let stub = stub();
        let row = MailContactRow {
            guid: Some("g1".into()),
            name: Some(contact_name(&stub.primary_address)),
            display_name: Some("Sales".into()),
            external_email_address: Some("SMTP:sales@mithi.acmecorp.com".into()),
            email_addresses: email_addresses(&stub),
            custom_attribute1: Some(marker_value(&stub.anchor)),
            custom_attribute2: Some("group".into()),
        };
        let person = ContactRow {
            guid: Some("g1".into()),
            title: Some("Team".into()),
            first_name: Some(String::new()),
            ..ContactRow::default()
        };
        let found = to_found_stub(&row, Some(&person));
        assert_eq!(found.and_then(Result::ok).map(|f| f.stub), Some(stub));
    }

    #[test]
    fn contacts_without_the_marker_are_not_stubs() {
        let row = MailContactRow {
            guid: Some("g".into()),
            custom_attribute1: Some("someone else's".into()),
            ..MailContactRow::default()
        };
        assert!(to_found_stub(&row, None).is_none());
    }

    #[test]
    fn an_update_sends_only_the_cmdlets_and_parameters_that_changed() {
        let stub = stub();
        assert!(set_mail_contact("g", "n", &stub, &[StubField::Title]).is_none());
        let person = set_contact("g", &stub, &[StubField::Title, StubField::Company]);
        let mut keys: Vec<String> = person
            .map(|c| c.parameters.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        assert_eq!(keys, ["Company", "Identity", "Title"]);
        let mail = set_mail_contact("g", "n", &stub, &[StubField::Route]);
        let mut keys: Vec<String> = mail
            .map(|c| c.parameters.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        assert_eq!(keys, ["EmailAddresses", "ExternalEmailAddress", "Identity"]);
        assert!(set_contact("g", &stub, &[StubField::Aliases]).is_none());
    }
}
