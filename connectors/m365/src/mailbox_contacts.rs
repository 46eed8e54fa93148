//! Stubs as personal contacts in every user mailbox
//! (`stub_style = "mailbox_contacts"`), for tenants that want no objects
//! in their address list, as the commercial GAL-sync tools for Microsoft
//! 365 do.
//!
//! Each user mailbox (`RecipientTypeDetails` `UserMailbox`) gets a contact
//! folder named by `contact_folder` (created where missing), holding one
//! personal contact per stub
//! (<https://learn.microsoft.com/graph/api/contactfolder-post-contacts>):
//! `displayName`, `givenName`, `surname`, `emailAddresses` (the primary and
//! the first aliases: Outlook keeps three), `jobTitle`, `department`,
//! `companyName`, `businessPhones`, `mobilePhone`, and in `personalNotes`
//! coexist's marker on the first line (`coexist:<anchor>`), then
//! `kind: <kind>` and `aliases: <every alias>` (so a read gives back the
//! whole stub). Contacts without the marker are never touched.
//!
//! One stub is one found stub whatever the number of mailboxes
//! (`id` `mailbox:<anchor>`); when some mailbox lacks it or holds another
//! version (a new mailbox, an edit in Outlook), it is reported misplaced,
//! so the plan updates it, which writes it wherever it is missing or
//! different. Writes go through Graph `$batch` (20 requests a batch), each
//! inner answer honoured (an inner 429 is sent again after its
//! `Retry-After`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use coexist_connector::marker::{marker_value, parse_marker};
use coexist_connector::{
    Applied, Attributes, ConnectorError, FoundStub, Operation, RecipientKind, Route, Stub,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::batch::{self, Item};
use crate::exchange::{Cmdlet, RecipientRow};
use crate::M365Connector;

/// The contact properties coexist reads.
pub const CONTACT_SELECT: &str = "displayName,givenName,surname,emailAddresses,jobTitle,department,companyName,businessPhones,mobilePhone,personalNotes";

/// Outlook keeps at most three email addresses on a contact.
const MAX_EMAILS: usize = 3;

/// The found stub id of the personal contacts for `anchor`.
pub fn stub_id(anchor: &str) -> String {
    format!("mailbox:{anchor}")
}

/// A personal contact as Graph returns it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub surname: Option<String>,
    #[serde(default)]
    pub email_addresses: Option<Vec<EmailAddress>>,
    #[serde(default)]
    pub job_title: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub company_name: Option<String>,
    #[serde(default)]
    pub business_phones: Option<Vec<String>>,
    #[serde(default)]
    pub mobile_phone: Option<String>,
    #[serde(default)]
    pub personal_notes: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct EmailAddress {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Folder {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Listing<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(default, rename = "@odata.nextLink")]
    next_link: Option<String>,
}

fn text(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// `personalNotes` for a stub.
pub fn notes(stub: &Stub) -> String {
    format!(
        "{}\nkind: {}\naliases: {}\nWritten by coexist: changes made here are overwritten.",
        marker_value(&stub.anchor),
        stub.kind.as_str(),
        stub.aliases.join(", ")
    )
}

/// The Graph body of the personal contact for `stub`.
pub fn contact_body(stub: &Stub) -> Value {
    let a = &stub.attributes;
    let name = a
        .display_name
        .clone()
        .unwrap_or_else(|| stub.primary_address.clone());
    let emails: Vec<Value> = std::iter::once(&stub.primary_address)
        .chain(stub.aliases.iter())
        .take(MAX_EMAILS)
        .map(|address| json!({"name": name, "address": address}))
        .collect();
    json!({
        "displayName": a.display_name,
        "givenName": a.given_name,
        "surname": a.surname,
        "emailAddresses": emails,
        "jobTitle": a.title,
        "department": a.department,
        "companyName": a.company,
        "businessPhones": a.business_phone.iter().collect::<Vec<_>>(),
        "mobilePhone": a.mobile_phone,
        "personalNotes": notes(stub),
    })
}

/// The stub a personal contact holds; `None` without coexist's marker.
pub fn contact_stub(contact: &Contact) -> Option<Stub> {
    let notes = contact.personal_notes.as_deref()?;
    let mut lines = notes.lines();
    let anchor = parse_marker(lines.next()?.trim())?.to_string();
    let mut kind = RecipientKind::Person;
    let mut aliases: Vec<String> = Vec::new();
    for line in lines {
        if let Some(value) = line.strip_prefix("kind:") {
            kind = match value.trim() {
                "group" => RecipientKind::Group,
                "shared_mailbox" => RecipientKind::SharedMailbox,
                "resource" => RecipientKind::Resource,
                _ => RecipientKind::Person,
            };
        } else if let Some(value) = line.strip_prefix("aliases:") {
            aliases = value
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect();
        }
    }
    let primary = contact
        .email_addresses
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find_map(|e| text(&e.address))?;
    Some(Stub {
        anchor,
        kind,
        primary_address: primary,
        aliases,
        route: Route::DomainRouting,
        attributes: Attributes {
            display_name: text(&contact.display_name),
            given_name: text(&contact.given_name),
            surname: text(&contact.surname),
            business_phone: contact
                .business_phones
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|p| p.trim())
                .find(|p| !p.is_empty())
                .map(str::to_string),
            mobile_phone: text(&contact.mobile_phone),
            title: text(&contact.job_title),
            department: text(&contact.department),
            company: text(&contact.company_name),
        },
    })
}

/// One user mailbox and coexist's contacts in its folder.
#[derive(Debug, Clone, Default)]
pub struct Mailbox {
    /// The user's id.
    pub user: String,
    /// The folder's id, once found or made.
    pub folder: Option<String>,
    /// coexist's contacts by anchor: (contact id, stub).
    pub contacts: HashMap<String, Vec<(String, Stub)>>,
}

/// The user mailboxes and coexist's contacts in each.
#[derive(Debug, Clone, Default)]
pub struct MailboxIndex {
    pub mailboxes: Vec<Mailbox>,
}

impl MailboxIndex {
    /// One found stub per anchor, misplaced when some mailbox lacks it or
    /// holds another version.
    pub fn found_stubs(&self, folder: &str) -> Vec<FoundStub> {
        let mut by_anchor: BTreeMap<&str, Vec<&Stub>> = BTreeMap::new();
        let mut uneven: BTreeMap<&str, bool> = BTreeMap::new();
        for mailbox in &self.mailboxes {
            for (anchor, copies) in &mailbox.contacts {
                by_anchor
                    .entry(anchor)
                    .or_default()
                    .extend(copies.iter().map(|(_, s)| s));
                if copies.len() > 1 {
                    uneven.insert(anchor, true);
                }
            }
        }
        by_anchor
            .into_iter()
            .filter_map(|(anchor, copies)| {
                let first = copies.first()?;
                let misplaced = uneven.contains_key(anchor)
                    || copies.len() != self.mailboxes.len()
                    || copies.iter().any(|c| c != first);
                Some(FoundStub {
                    id: stub_id(anchor),
                    locator: format!(
                        "contact folder \"{folder}\" of {} mailbox{}",
                        copies.len(),
                        if copies.len() == 1 { "" } else { "es" }
                    ),
                    misplaced,
                    stub: (*first).clone(),
                })
            })
            .collect()
    }
}

/// `text` for a URL's query.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// What one inner request of a write does, for the bookkeeping after.
#[derive(Debug, Clone)]
enum Step {
    Post { mailbox: usize },
    Patch { mailbox: usize, contact: String },
    Delete { mailbox: usize, contact: String },
}

impl M365Connector {
    fn folder_name(&self) -> Result<&str, ConnectorError> {
        self.config
            .contact_folder
            .as_deref()
            .map(str::trim)
            .ok_or_else(|| {
                ConnectorError::permanent(
                    "mailbox contacts need `contact_folder` in the system's connection table (the \
                 name of the folder coexist keeps in each mailbox)",
                )
            })
    }

    /// The user mailboxes, asked of Exchange (for writes before any read).
    async fn user_mailboxes(&self) -> Result<Vec<String>, ConnectorError> {
        let cmdlet = Cmdlet::new("Get-Recipient")
            .with("RecipientTypeDetails", "UserMailbox")
            .with("ResultSize", "Unlimited");
        let rows: Vec<RecipientRow> = self
            .exchange
            .run_all(&self.http, &cmdlet)
            .await
            .map_err(|f| f.error)?;
        Ok(rows
            .into_iter()
            .filter_map(|r| r.external_directory_object_id)
            .collect())
    }

    /// Reads coexist's folder in each of `users`' mailboxes (folders found
    /// by name, contacts listed, in `$batch`es) into the index.
    pub(crate) async fn read_mailbox_contacts(
        &self,
        users: Vec<String>,
    ) -> Result<MailboxIndex, ConnectorError> {
        let folder = self.folder_name()?.to_string();
        let mut index = MailboxIndex {
            mailboxes: users
                .into_iter()
                .map(|user| Mailbox {
                    user,
                    ..Mailbox::default()
                })
                .collect(),
        };
        let filter = encode(&format!("displayName eq '{}'", folder.replace('\'', "''")));
        let items: Vec<Item> = index
            .mailboxes
            .iter()
            .map(|m| {
                Item::get(format!(
                    "/users/{}/contactFolders?$filter={filter}&$select=id,displayName",
                    m.user
                ))
            })
            .collect();
        let answers = batch::send(
            &self.http,
            self.graph_url(),
            items,
            "finding coexist's contact folders",
        )
        .await;
        for (mailbox, answer) in index.mailboxes.iter_mut().zip(answers) {
            let answer = answer?;
            if answer.status == 404 {
                continue; // No mailbox to read (yet).
            }
            if !answer.is_success() {
                return Err(
                    answer.error(&format!("finding the folder {folder} of {}", mailbox.user))
                );
            }
            let listing: Listing<Folder> = answer.json("a contact folder listing")?;
            mailbox.folder = listing.value.into_iter().next().map(|f| f.id);
        }
        let with_folder: Vec<usize> = (0..index.mailboxes.len())
            .filter(|&i| index.mailboxes[i].folder.is_some())
            .collect();
        let items: Vec<Item> = with_folder
            .iter()
            .map(|&i| {
                let m = &index.mailboxes[i];
                Item::get(format!(
                    "/users/{}/contactFolders/{}/contacts?$select={CONTACT_SELECT}&$top=1000",
                    m.user,
                    m.folder.as_deref().unwrap_or_default()
                ))
            })
            .collect();
        let answers = batch::send(
            &self.http,
            self.graph_url(),
            items,
            "reading coexist's personal contacts",
        )
        .await;
        for (&i, answer) in with_folder.iter().zip(answers) {
            let answer = answer?;
            let mailbox = &mut index.mailboxes[i];
            if !answer.is_success() {
                return Err(answer.error(&format!("reading the contacts of {}", mailbox.user)));
            }
            let mut listing: Listing<Contact> = answer.json("a contact listing")?;
            let mut contacts = std::mem::take(&mut listing.value);
            let mut next = listing.next_link.take();
            while let Some(link) = next.take() {
                let url = reqwest::Url::parse(&link).map_err(|e| {
                    ConnectorError::permanent(format!("the next link `{link}`: {e}"))
                })?;
                let request = crate::http::Request::get(crate::auth::Resource::Graph, url);
                let reply = self
                    .http
                    .execute(
                        &format!("reading the contacts of {}", mailbox.user),
                        &request,
                    )
                    .await?;
                let page: Listing<Contact> = reply.json("a contact listing")?;
                contacts.extend(page.value);
                next = page.next_link;
            }
            for contact in contacts {
                if let Some(stub) = contact_stub(&contact) {
                    mailbox
                        .contacts
                        .entry(stub.anchor.clone())
                        .or_default()
                        .push((contact.id.clone(), stub));
                }
            }
        }
        Ok(index)
    }

    /// Creates coexist's folder in the mailboxes that lack it.
    async fn make_folders(&self, index: &mut MailboxIndex) -> Result<(), ConnectorError> {
        let folder = self.folder_name()?.to_string();
        let missing: Vec<usize> = (0..index.mailboxes.len())
            .filter(|&i| index.mailboxes[i].folder.is_none())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let items: Vec<Item> = missing
            .iter()
            .map(|&i| {
                Item::with_body(
                    "POST",
                    format!("/users/{}/contactFolders", index.mailboxes[i].user),
                    json!({"displayName": folder}),
                )
            })
            .collect();
        let answers = batch::send(
            &self.http,
            self.graph_url(),
            items,
            "creating coexist's contact folders",
        )
        .await;
        for (&i, answer) in missing.iter().zip(answers) {
            let answer = answer?;
            let mailbox = &mut index.mailboxes[i];
            if answer.is_success() {
                let made: Folder = answer.json("a new contact folder")?;
                mailbox.folder = Some(made.id);
            } else if answer.status == 404 {
                tracing::warn!(user = %mailbox.user, "no mailbox to create the contact folder in; skipped");
            } else {
                return Err(
                    answer.error(&format!("creating the folder {folder} of {}", mailbox.user))
                );
            }
        }
        Ok(())
    }

    /// Carries out operations on personal contacts, all of them through
    /// `$batch`; one result per operation.
    pub(crate) async fn write_mailbox_contacts(
        &self,
        operations: &[&Operation],
    ) -> Vec<Result<Applied, ConnectorError>> {
        match self.write_personal(operations).await {
            Ok(results) => results,
            Err(error) => operations.iter().map(|_| Err(error.clone())).collect(),
        }
    }

    async fn write_personal(
        &self,
        operations: &[&Operation],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
        if let Some(error) = self.http.auth().failure() {
            return Err(error);
        }
        let folder = self.folder_name()?.to_string();
        let mut guard = self.mailboxes.lock().await;
        if guard.is_none() {
            let users = self.user_mailboxes().await?;
            *guard = Some(self.read_mailbox_contacts(users).await?);
        }
        let Some(index) = guard.as_mut() else {
            return Err(ConnectorError::retryable("the mailbox index is missing"));
        };
        if operations
            .iter()
            .any(|o| !matches!(o, Operation::Delete { .. }))
        {
            self.make_folders(index).await?;
        }
        let mut items: Vec<Item> = Vec::new();
        let mut steps: Vec<(usize, Step)> = Vec::new();
        for (n, operation) in operations.iter().enumerate() {
            let (lookup, desired) = match operation {
                Operation::Create { stub } => (stub.anchor.as_str(), Some(stub)),
                Operation::Update { before, after, .. } => (before.anchor.as_str(), Some(&**after)),
                Operation::Delete { stub, .. } => (stub.anchor.as_str(), None),
            };
            // One body for every mailbox the contact is written to.
            let body = desired.map(|stub| Arc::new(contact_body(stub)));
            for (m, mailbox) in index.mailboxes.iter().enumerate() {
                let Some(folder_id) = mailbox.folder.as_deref() else {
                    continue;
                };
                let base = format!(
                    "/users/{}/contactFolders/{folder_id}/contacts",
                    mailbox.user
                );
                let mut copies: Vec<(String, Stub)> =
                    mailbox.contacts.get(lookup).cloned().unwrap_or_default();
                if let Some(stub) = desired {
                    if lookup != stub.anchor {
                        copies.extend(
                            mailbox
                                .contacts
                                .get(&stub.anchor)
                                .cloned()
                                .unwrap_or_default(),
                        );
                    }
                }
                match desired.zip(body.as_ref()) {
                    Some((stub, body)) => {
                        let mut rest = copies.into_iter();
                        match rest.next() {
                            Some((_, held)) if held == *stub => {}
                            Some((id, _)) => {
                                items.push(Item::with_shared_body(
                                    "PATCH",
                                    format!("{base}/{id}"),
                                    Arc::clone(body),
                                ));
                                steps.push((
                                    n,
                                    Step::Patch {
                                        mailbox: m,
                                        contact: id,
                                    },
                                ));
                            }
                            None => {
                                items.push(Item::with_shared_body(
                                    "POST",
                                    base.clone(),
                                    Arc::clone(body),
                                ));
                                steps.push((n, Step::Post { mailbox: m }));
                            }
                        }
                        for (id, _) in rest {
                            items.push(Item::delete(format!("{base}/{id}")));
                            steps.push((
                                n,
                                Step::Delete {
                                    mailbox: m,
                                    contact: id,
                                },
                            ));
                        }
                    }
                    None => {
                        for (id, _) in copies {
                            items.push(Item::delete(format!("{base}/{id}")));
                            steps.push((
                                n,
                                Step::Delete {
                                    mailbox: m,
                                    contact: id,
                                },
                            ));
                        }
                    }
                }
            }
        }
        let answers = batch::send(
            &self.http,
            self.graph_url(),
            items,
            "writing coexist's personal contacts",
        )
        .await;
        let mut failures: Vec<Option<(ConnectorError, usize)>> =
            operations.iter().map(|_| None).collect();
        for ((n, step), answer) in steps.into_iter().zip(answers) {
            let stub = operations[n].stub();
            let outcome = match answer {
                Ok(answer) if answer.is_success() => Ok(answer),
                Ok(answer) if answer.status == 404 && matches!(step, Step::Delete { .. }) => {
                    Ok(answer)
                }
                Ok(answer) => Err(answer.error(&format!(
                    "writing the personal contact of {}",
                    stub.primary_address
                ))),
                Err(error) => Err(error),
            };
            match outcome {
                Ok(answer) => match step {
                    Step::Post { mailbox } => {
                        let made: Contact = answer.json("a new contact").unwrap_or_default();
                        let entry = index.mailboxes[mailbox]
                            .contacts
                            .entry(stub.anchor.clone())
                            .or_default();
                        entry.clear();
                        entry.push((made.id, stub.clone()));
                    }
                    Step::Patch { mailbox, contact } => {
                        let map = &mut index.mailboxes[mailbox].contacts;
                        for copies in map.values_mut() {
                            copies.retain(|(id, _)| *id != contact);
                        }
                        map.entry(stub.anchor.clone())
                            .or_default()
                            .insert(0, (contact, stub.clone()));
                    }
                    Step::Delete { mailbox, contact } => {
                        for copies in index.mailboxes[mailbox].contacts.values_mut() {
                            copies.retain(|(id, _)| *id != contact);
                        }
                    }
                },
                Err(error) => {
                    let slot = &mut failures[n];
                    match slot {
                        Some((_, count)) => *count += 1,
                        None => *slot = Some((error, 1)),
                    }
                }
            }
        }
        for mailbox in &mut index.mailboxes {
            mailbox.contacts.retain(|_, copies| !copies.is_empty());
        }
        let mailboxes = index.mailboxes.len();
        Ok(operations
            .iter()
            .zip(failures)
            .map(|(operation, failure)| match failure {
                Some((error, 1)) => Err(error),
                Some((error, count)) => {
                    Err(error.context(format!("{count} mailboxes failed; the first")))
                }
                None => Ok(match operation {
                    Operation::Delete { .. } => Applied { found: None },
                    _ => Applied {
                        found: Some(FoundStub {
                            id: stub_id(&operation.stub().anchor),
                            locator: format!(
                                "contact folder \"{folder}\" of {mailboxes} mailboxes"
                            ),
                            misplaced: false,
                            stub: operation.stub().clone(),
                        }),
                    },
                }),
            })
            .collect())
    }

    /// Keeps the index of a full read for the writes that follow.
    pub(crate) async fn keep_mailbox_index(&self, index: MailboxIndex) {
        *self.mailboxes.lock().await = Some(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stub() -> Stub {
        Stub {
            anchor: "google:7".into(),
            kind: RecipientKind::Person,
            primary_address: "ann@acmecorp.com".into(),
            aliases: vec![
                "a.lee@acmecorp.com".into(),
                "al@acmecorp.com".into(),
                "annie@acmecorp.com".into(),
            ],
            route: Route::DomainRouting,
            attributes: Attributes {
                display_name: Some("Ann Lee".into()),
                given_name: Some("Ann".into()),
                business_phone: Some("+1 555 0100".into()),
                ..Attributes::default()
            },
        }
    }

    #[test]
    fn a_personal_contact_reads_back_as_its_stub_with_every_alias() -> Result<(), serde_json::Error>
    {
        let stub = stub();
        let mut body = contact_body(&stub);
        assert_eq!(body["emailAddresses"].as_array().map(Vec::len), Some(3));
        body["id"] = json!("c1");
        let contact: Contact = serde_json::from_value(body)?;
        assert_eq!(contact_stub(&contact), Some(stub));
        Ok(())
    }

    #[test]
    fn contacts_without_the_marker_are_left_alone() {
        let contact = Contact {
            personal_notes: Some("met at the fair".into()),
            ..Contact::default()
        };
        assert!(contact_stub(&contact).is_none());
    }

    #[test]
    fn a_stub_missing_from_a_mailbox_is_misplaced_so_the_plan_writes_it_there() {
        let stub = stub();
        let with = Mailbox {
            user: "u1".into(),
            folder: Some("f1".into()),
            contacts: HashMap::from([(
                stub.anchor.clone(),
                vec![("c1".to_string(), stub.clone())],
            )]),
        };
        let without = Mailbox {
            user: "u2".into(),
            folder: None,
            contacts: HashMap::new(),
        };
        let index = MailboxIndex {
            mailboxes: vec![with.clone(), without],
        };
        let found = index.found_stubs("Colleagues");
        assert_eq!(found.len(), 1);
        assert!(found[0].misplaced);
        assert_eq!(found[0].id, "mailbox:google:7");
        let everywhere = MailboxIndex {
            mailboxes: vec![
                with.clone(),
                Mailbox {
                    user: "u3".into(),
                    ..with
                },
            ],
        };
        assert!(!everywhere.found_stubs("Colleagues")[0].misplaced);
    }
}
