//! The Domain Shared Contacts API (Atom / GData 3.0): coexist's stubs on
//! Google.
//!
//! Pages followed:
//! * the contacts feed and its paging (`start-index`, `max-results`) —
//!   <https://developers.google.com/workspace/admin/domain-shared-contacts/contacts-feed>,
//!   <https://developers.google.com/workspace/admin/domain-shared-contacts/retrieve-contacts>;
//! * create, update (through the entry's edit link, which carries its
//!   version) and delete —
//!   <https://developers.google.com/workspace/admin/domain-shared-contacts/create-contacts>,
//!   <https://developers.google.com/workspace/admin/domain-shared-contacts/update-contacts>,
//!   <https://developers.google.com/workspace/admin/domain-shared-contacts/delete-contacts>;
//! * batch operations (at most 100 a request) —
//!   <https://developers.google.com/workspace/admin/domain-shared-contacts/perform-batch-operations>
//!   and "Batch Processing in the Google Data Protocol"
//!   <https://developers.google.com/gdata/docs/batch>;
//! * the `gd:` kinds (`gd:name`, `gd:email`, `gd:phoneNumber`,
//!   `gd:organization`, `gd:extendedProperty`) —
//!   <https://developers.google.com/gdata/docs/2.0/elements>.
//!
//! A stub is a shared contact with coexist's marker in an extended property
//! (`<gd:extendedProperty name="coexist" value="coexist:<anchor>"/>`) and the
//! recipient kind in a second one (`coexist.kind`). Contacts without the
//! marker are never touched.

use coexist_connector::marker::{marker_value, parse_marker};
use coexist_connector::{Attributes, FoundStub, Problem, RecipientKind, Route, Stub};

use crate::xml::{self, escape, Element, ATOM, BATCH, GD, OPENSEARCH};

/// `rel` of a work e-mail, phone or organization.
pub const REL_WORK: &str = "http://schemas.google.com/g/2005#work";
/// `rel` of a further e-mail address.
pub const REL_OTHER: &str = "http://schemas.google.com/g/2005#other";
/// `rel` of a mobile phone.
pub const REL_MOBILE: &str = "http://schemas.google.com/g/2005#mobile";
/// The Atom category of a contact.
const KIND_SCHEME: &str = "http://schemas.google.com/g/2005#kind";
const KIND_CONTACT: &str = "http://schemas.google.com/contact/2008#contact";

/// One e-mail address of a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub address: String,
    pub rel: Option<String>,
    pub primary: bool,
}

/// The parts of a contact entry coexist reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactEntry {
    /// The contact id: the last segment of the entry's `atom:id`.
    pub id: String,
    /// The `rel="edit"` link (with the entry's version).
    pub edit_link: Option<String>,
    /// `gd:etag`.
    pub etag: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub full_name: Option<String>,
    pub emails: Vec<Email>,
    /// `(rel, number)`.
    pub phones: Vec<(Option<String>, String)>,
    pub org_name: Option<String>,
    pub org_title: Option<String>,
    pub org_department: Option<String>,
    /// `(name, value)` of every extended property.
    pub extended: Vec<(String, String)>,
}

impl ContactEntry {
    /// Reads an `atom:entry` element.
    pub fn from_element(entry: &Element) -> ContactEntry {
        let id = entry
            .child_text(ATOM, "id")
            .map(|id| last_segment(&id).to_string())
            .unwrap_or_default();
        let edit_link = entry
            .all(ATOM, "link")
            .find(|l| l.attr("rel") == Some("edit"))
            .and_then(|l| l.attr("href"))
            .map(str::to_string);
        let name = entry.first(GD, "name");
        let text_of =
            |parent: Option<&Element>, child: &str| parent.and_then(|p| p.child_text(GD, child));
        let organization = entry
            .all(GD, "organization")
            .find(|o| o.attr("primary") == Some("true"))
            .or_else(|| entry.first(GD, "organization"));
        ContactEntry {
            id,
            edit_link,
            etag: entry.attr_ns(GD, "etag").map(str::to_string),
            given_name: text_of(name, "givenName"),
            family_name: text_of(name, "familyName"),
            full_name: text_of(name, "fullName"),
            emails: entry
                .all(GD, "email")
                .filter_map(|e| {
                    let address = e.attr("address")?.trim();
                    (!address.is_empty()).then(|| Email {
                        address: address.to_string(),
                        rel: e.attr("rel").map(str::to_string),
                        primary: e.attr("primary") == Some("true"),
                    })
                })
                .collect(),
            phones: entry
                .all(GD, "phoneNumber")
                .filter_map(|p| {
                    let number = p.text.trim();
                    (!number.is_empty())
                        .then(|| (p.attr("rel").map(str::to_string), number.to_string()))
                })
                .collect(),
            org_name: text_of(organization, "orgName"),
            org_title: text_of(organization, "orgTitle"),
            org_department: text_of(organization, "orgDepartment"),
            extended: entry
                .all(GD, "extendedProperty")
                .filter_map(|p| Some((p.attr("name")?.to_string(), p.attr("value")?.to_string())))
                .collect(),
        }
    }

    /// The value of the extended property `name`.
    pub fn extended_property(&self, name: &str) -> Option<&str> {
        self.extended
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The anchor in coexist's marker, if the contact carries it.
    pub fn anchor(&self, marker_property: &str) -> Option<&str> {
        self.extended_property(marker_property)
            .and_then(parse_marker)
    }

    /// The stub this contact holds, `None` when it does not carry coexist's
    /// marker (then it is not coexist's and is left alone).
    pub fn to_found_stub(&self, marker_property: &str) -> Option<Result<FoundStub, Problem>> {
        let anchor = self.anchor(marker_property)?;
        let object = format!("shared contact {}", self.id);
        let problem = |message: &str| {
            Some(Err(Problem {
                object: object.clone(),
                message: format!("{message}; coexist will leave it as it is"),
            }))
        };
        if self.id.is_empty() {
            return problem("the contact carries coexist's marker but has no id");
        }
        let Some(locator) = self.edit_link.clone() else {
            return problem("the contact carries coexist's marker but has no edit link");
        };
        let primary = self
            .emails
            .iter()
            .find(|e| e.primary)
            .or_else(|| self.emails.first());
        let Some(primary) = primary else {
            return problem("the contact carries coexist's marker but has no e-mail address");
        };
        let mut aliases: Vec<String> = self
            .emails
            .iter()
            .filter(|e| !std::ptr::eq(*e, primary))
            .map(|e| e.address.clone())
            .collect();
        aliases.sort();
        aliases.dedup();
        let phone = |rel: &str| {
            self.phones
                .iter()
                .find(|(r, _)| r.as_deref() == Some(rel))
                .map(|(_, n)| n.clone())
        };
        let kind = self
            .extended_property(&kind_property(marker_property))
            .and_then(kind_from_str)
            .unwrap_or(RecipientKind::Person);
        Some(Ok(FoundStub {
            id: self.id.clone(),
            locator,
            misplaced: false,
            stub: Stub {
                anchor: anchor.to_string(),
                kind,
                primary_address: primary.address.clone(),
                aliases,
                route: Route::DomainRouting,
                attributes: Attributes {
                    display_name: self.full_name.clone(),
                    given_name: self.given_name.clone(),
                    surname: self.family_name.clone(),
                    business_phone: phone(REL_WORK),
                    mobile_phone: phone(REL_MOBILE),
                    title: self.org_title.clone(),
                    department: self.org_department.clone(),
                    company: self.org_name.clone(),
                },
            },
        }))
    }
}

/// The name of the extended property holding the recipient kind.
pub fn kind_property(marker_property: &str) -> String {
    format!("{marker_property}.kind")
}

fn kind_from_str(value: &str) -> Option<RecipientKind> {
    [
        RecipientKind::Person,
        RecipientKind::Group,
        RecipientKind::SharedMailbox,
        RecipientKind::Resource,
    ]
    .into_iter()
    .find(|k| k.as_str() == value)
}

fn last_segment(url: &str) -> &str {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or(url)
}

/// A page of the contacts feed.
#[derive(Debug, Default)]
pub struct FeedPage {
    pub entries: Vec<ContactEntry>,
    /// `openSearch:totalResults`.
    pub total_results: Option<u64>,
    /// Whether the feed has a `rel="next"` link.
    pub has_next: bool,
}

/// Reads a page of the contacts feed.
pub fn parse_feed(document: &str) -> Result<FeedPage, xml::XmlError> {
    let root = xml::parse(document)?;
    if !root.is(ATOM, "feed") {
        return Err(xml::XmlError {
            position: 0,
            reason: format!("expected an Atom feed, found <{}>", root.name),
        });
    }
    let entries = root
        .all(ATOM, "entry")
        .map(ContactEntry::from_element)
        .collect();
    let total_results = root
        .child_text(OPENSEARCH, "totalResults")
        .and_then(|t| t.parse().ok());
    let has_next = root
        .all(ATOM, "link")
        .any(|l| l.attr("rel") == Some("next"));
    Ok(FeedPage {
        entries,
        total_results,
        has_next,
    })
}

/// Reads a single entry document (the answer to a create, update or get).
pub fn parse_entry(document: &str) -> Result<ContactEntry, xml::XmlError> {
    let root = xml::parse(document)?;
    if !root.is(ATOM, "entry") {
        return Err(xml::XmlError {
            position: 0,
            reason: format!("expected an Atom entry, found <{}>", root.name),
        });
    }
    Ok(ContactEntry::from_element(&root))
}

/// The namespace declarations of a stand-alone entry or a batch feed.
const NAMESPACES: &str = "xmlns=\"http://www.w3.org/2005/Atom\" \
     xmlns:gd=\"http://schemas.google.com/g/2005\" \
     xmlns:gContact=\"http://schemas.google.com/contact/2008\" \
     xmlns:batch=\"http://schemas.google.com/gdata/batch\"";

/// The most operations one batch request of the Domain Shared Contacts API
/// takes (<https://developers.google.com/workspace/admin/domain-shared-contacts/perform-batch-operations>).
pub const MAX_BATCH_OPERATIONS: usize = 100;

/// What a batch entry asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    Insert,
    Update,
    Delete,
}

impl BatchKind {
    fn as_str(self) -> &'static str {
        match self {
            BatchKind::Insert => "insert",
            BatchKind::Update => "update",
            BatchKind::Delete => "delete",
        }
    }
}

/// The XML elements of a stub's content (everything inside `<entry>` but
/// the Atom id, links and batch elements).
pub fn stub_body(stub: &Stub, marker_property: &str) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str(&format!(
        "<category scheme=\"{KIND_SCHEME}\" term=\"{KIND_CONTACT}\"/>"
    ));
    let a = &stub.attributes;
    if a.given_name.is_some() || a.surname.is_some() || a.display_name.is_some() {
        out.push_str("<gd:name>");
        for (tag, value) in [
            ("givenName", &a.given_name),
            ("familyName", &a.surname),
            ("fullName", &a.display_name),
        ] {
            if let Some(value) = value {
                out.push_str(&format!("<gd:{tag}>{}</gd:{tag}>", escape(value)));
            }
        }
        out.push_str("</gd:name>");
    }
    out.push_str(&format!(
        "<gd:email rel=\"{REL_WORK}\" address=\"{}\" primary=\"true\"/>",
        escape(&stub.primary_address)
    ));
    for alias in &stub.aliases {
        if alias.eq_ignore_ascii_case(&stub.primary_address) {
            continue;
        }
        out.push_str(&format!(
            "<gd:email rel=\"{REL_OTHER}\" address=\"{}\"/>",
            escape(alias)
        ));
    }
    for (rel, value) in [(REL_WORK, &a.business_phone), (REL_MOBILE, &a.mobile_phone)] {
        if let Some(value) = value {
            out.push_str(&format!(
                "<gd:phoneNumber rel=\"{rel}\">{}</gd:phoneNumber>",
                escape(value)
            ));
        }
    }
    if a.company.is_some() || a.title.is_some() || a.department.is_some() {
        out.push_str(&format!(
            "<gd:organization rel=\"{REL_WORK}\" primary=\"true\">"
        ));
        for (tag, value) in [
            ("orgName", &a.company),
            ("orgTitle", &a.title),
            ("orgDepartment", &a.department),
        ] {
            if let Some(value) = value {
                out.push_str(&format!("<gd:{tag}>{}</gd:{tag}>", escape(value)));
            }
        }
        out.push_str("</gd:organization>");
    }
    out.push_str(&format!(
        "<gd:extendedProperty name=\"{}\" value=\"{}\"/>",
        escape(marker_property),
        escape(&marker_value(&stub.anchor))
    ));
    out.push_str(&format!(
        "<gd:extendedProperty name=\"{}\" value=\"{}\"/>",
        escape(&kind_property(marker_property)),
        stub.kind.as_str()
    ));
    out
}

/// A stand-alone entry document for a create (POST to the feed) or an
/// update (PUT to the edit link).
pub fn entry_document(stub: &Stub, marker_property: &str, etag: Option<&str>) -> String {
    let etag = etag
        .map(|e| format!(" gd:etag=\"{}\"", escape(e)))
        .unwrap_or_default();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><entry {NAMESPACES}{etag}>{}</entry>",
        stub_body(stub, marker_property)
    )
}

/// One operation of a batch request.
#[derive(Debug, Clone)]
pub struct BatchEntry {
    /// `batch:id`, echoed in the answer.
    pub batch_id: String,
    pub kind: BatchKind,
    /// The edit link of the contact updated or deleted.
    pub edit_link: Option<String>,
    pub etag: Option<String>,
    /// The content written by an insert or update.
    pub body: Option<String>,
}

/// A batch feed document (POST to `…/full/batch`).
pub fn batch_document(entries: &[BatchEntry]) -> String {
    let mut out = String::with_capacity(entries.len() * 1200 + 256);
    out.push_str(&format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><feed {NAMESPACES}>"
    ));
    out.push_str(&format!(
        "<category scheme=\"{KIND_SCHEME}\" term=\"{KIND_CONTACT}\"/>"
    ));
    for entry in entries {
        match &entry.etag {
            Some(etag) => out.push_str(&format!("<entry gd:etag=\"{}\">", escape(etag))),
            None => out.push_str("<entry>"),
        }
        out.push_str(&format!(
            "<batch:id>{}</batch:id><batch:operation type=\"{}\"/>",
            escape(&entry.batch_id),
            entry.kind.as_str()
        ));
        if let Some(link) = &entry.edit_link {
            out.push_str(&format!(
                "<id>{0}</id><link rel=\"edit\" type=\"application/atom+xml\" href=\"{0}\"/>",
                escape(link)
            ));
        }
        if let Some(body) = &entry.body {
            out.push_str(body);
        }
        out.push_str("</entry>");
    }
    out.push_str("</feed>");
    out
}

/// The result of one batch operation.
#[derive(Debug, Clone)]
pub struct BatchResult {
    pub batch_id: String,
    /// `batch:status/@code`.
    pub code: u16,
    /// `batch:status/@reason` and its text.
    pub reason: String,
    /// The entry as it is after an insert or update.
    pub entry: ContactEntry,
}

/// Reads a batch answer. An entry without `batch:status` (an interrupted
/// batch) is left out: its operation did not run.
pub fn parse_batch(document: &str) -> Result<Vec<BatchResult>, xml::XmlError> {
    let root = xml::parse(document)?;
    if !root.is(ATOM, "feed") {
        return Err(xml::XmlError {
            position: 0,
            reason: format!("expected an Atom feed, found <{}>", root.name),
        });
    }
    Ok(root
        .all(ATOM, "entry")
        .filter_map(|entry| {
            let batch_id = entry.child_text(BATCH, "id")?;
            let status = entry.first(BATCH, "status")?;
            let code = status.attr("code")?.trim().parse().ok()?;
            let mut reason = status.attr("reason").unwrap_or_default().to_string();
            let detail = status.text.trim();
            if !detail.is_empty() {
                reason.push_str(": ");
                reason.push_str(detail);
            }
            Some(BatchResult {
                batch_id,
                code,
                reason,
                entry: ContactEntry::from_element(entry),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stub() -> Stub {
        Stub {
            anchor: "ldap:0f3c".into(),
            kind: RecipientKind::Group,
            primary_address: "sales@acmecorp.com".into(),
            aliases: vec![
                "team-sales@acmecorp.com".into(),
                "vente@acmecorp.com".into(),
            ],
            route: Route::DomainRouting,
            attributes: Attributes {
                display_name: Some("Sales & Marketing".into()),
                given_name: Some("Sales".into()),
                surname: Some("<Team>".into()),
                business_phone: Some("+1 555 0100".into()),
                mobile_phone: Some("+1 555 0199".into()),
                title: Some("Team".into()),
                department: Some("R&D".into()),
                company: Some("Acme \"Corp\"".into()),
            },
        }
    }

    fn as_feed_entry(stub: &Stub) -> String {
        format!(
            "<feed {NAMESPACES}><entry gd:etag=\"&quot;Q1&quot;\">\
             <id>http://www.google.com/m8/feeds/contacts/acmecorp.com/base/c42</id>\
             <link rel=\"self\" href=\"https://x/full/c42\"/>\
             <link rel=\"edit\" href=\"https://x/full/c42/1700\"/>{}</entry></feed>",
            stub_body(stub, "coexist")
        )
    }

    #[test]
    fn a_stub_written_as_a_contact_reads_back_as_the_same_stub() -> Result<(), xml::XmlError> {
        let page = parse_feed(&as_feed_entry(&stub()))?;
        let found = page.entries[0].to_found_stub("coexist");
        let Some(Ok(found)) = found else {
            panic!("{found:?}")
        };
        assert_eq!(found.id, "c42");
        assert_eq!(found.locator, "https://x/full/c42/1700");
        assert_eq!(found.stub, stub());
        assert_eq!(page.entries[0].etag.as_deref(), Some("\"Q1\""));
        Ok(())
    }

    #[test]
    fn contacts_without_the_marker_are_not_stubs() -> Result<(), xml::XmlError> {
        let page = parse_feed(&format!(
            "<feed {NAMESPACES}><entry><id>x/base/c1</id><link rel=\"edit\" href=\"e\"/>\
             <gd:email address=\"vendor@example.com\" primary=\"true\"/>\
             <gd:extendedProperty name=\"coexist\" value=\"someone-else\"/></entry>\
             <entry><id>x/base/c2</id><gd:email address=\"v2@example.com\"/></entry></feed>"
        ))?;
        assert!(page
            .entries
            .iter()
            .all(|e| e.to_found_stub("coexist").is_none()));
        Ok(())
    }

    #[test]
    fn a_marked_contact_without_an_address_is_a_problem() -> Result<(), xml::XmlError> {
        let page = parse_feed(&format!(
            "<feed {NAMESPACES}><entry><id>x/base/c9</id><link rel=\"edit\" href=\"e\"/>\
             <gd:extendedProperty name=\"coexist\" value=\"coexist:ldap:1\"/></entry></feed>"
        ))?;
        assert!(matches!(
            page.entries[0].to_found_stub("coexist"),
            Some(Err(Problem { .. }))
        ));
        Ok(())
    }

    #[test]
    fn batch_answers_are_matched_by_batch_id() -> Result<(), xml::XmlError> {
        let answer = format!(
            "<feed {NAMESPACES}>\
             <entry><batch:id>0</batch:id><batch:status code=\"201\" reason=\"Created\"/>\
               <id>x/base/n1</id><link rel=\"edit\" href=\"https://x/full/n1/1\"/></entry>\
             <entry><batch:id>1</batch:id><batch:status code=\"400\" reason=\"Bad Request\">Invalid address</batch:status></entry>\
             </feed>"
        );
        let results = parse_batch(&answer)?;
        assert_eq!(results.len(), 2);
        assert_eq!((results[0].batch_id.as_str(), results[0].code), ("0", 201));
        assert_eq!(results[0].entry.id, "n1");
        assert_eq!(results[1].code, 400);
        assert_eq!(results[1].reason, "Bad Request: Invalid address");
        Ok(())
    }

    #[test]
    fn a_batch_document_lists_each_operation_with_its_id() -> Result<(), xml::XmlError> {
        let document = batch_document(&[
            BatchEntry {
                batch_id: "0".into(),
                kind: BatchKind::Insert,
                edit_link: None,
                etag: None,
                body: Some(stub_body(&stub(), "coexist")),
            },
            BatchEntry {
                batch_id: "1".into(),
                kind: BatchKind::Delete,
                edit_link: Some("https://x/full/c1/5".into()),
                etag: Some("\"e\"".into()),
                body: None,
            },
        ]);
        let root = xml::parse(&document)?;
        let entries: Vec<_> = root.all(ATOM, "entry").collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[1]
                .first(BATCH, "operation")
                .and_then(|o| o.attr("type")),
            Some("delete")
        );
        assert_eq!(
            entries[1].child_text(ATOM, "id").as_deref(),
            Some("https://x/full/c1/5")
        );
        Ok(())
    }
}
