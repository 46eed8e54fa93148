//! Atom / GData 3.0 documents of the Domain Shared Contacts API, read and
//! written with quick-xml.
//!
//! Element names follow
//! <https://developers.google.com/workspace/admin/domain-shared-contacts> (the
//! contact kind: `gd:name`, `gd:email`, `gd:phoneNumber`, `gd:organization`,
//! `gd:extendedProperty`) and the GData batch protocol (`batch:id`,
//! `batch:operation`, `batch:status`).

use std::io;

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::name::ResolveResult;
use quick_xml::{NsReader, Writer, XmlVersion};

use crate::state::{FakeContact, StoredContact};

pub(crate) const NS_ATOM: &str = "http://www.w3.org/2005/Atom";
pub(crate) const NS_GD: &str = "http://schemas.google.com/g/2005";
pub(crate) const NS_BATCH: &str = "http://schemas.google.com/gdata/batch";
pub(crate) const NS_GCONTACT: &str = "http://schemas.google.com/contact/2008";
pub(crate) const NS_OPENSEARCH: &str = "http://a9.com/-/spec/opensearch/1.1/";
pub(crate) const NS_APP: &str = "http://www.w3.org/2007/app";
pub(crate) const REL_WORK: &str = "http://schemas.google.com/g/2005#work";
const KIND_SCHEME: &str = "http://schemas.google.com/g/2005#kind";
const KIND_CONTACT: &str = "http://schemas.google.com/contact/2008#contact";
const ATOM_TYPE: &str = "application/atom+xml";
/// Deepest element nesting accepted in a request.
const MAX_DEPTH: usize = 32;

/// A parsed XML element with resolved namespaces.
#[derive(Debug, Default)]
pub(crate) struct Element {
    pub ns: String,
    pub name: String,
    /// (namespace, local name, value); namespace is empty for unprefixed attributes.
    pub attrs: Vec<(String, String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// An unprefixed attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attr_ns("", name)
    }

    pub fn attr_ns(&self, ns: &str, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, l, _)| n == ns && l == name)
            .map(|(_, _, v)| v.as_str())
    }

    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    fn child_text(&self, ns: &str, name: &str) -> String {
        self.child(ns, name)
            .map(|c| c.text.trim().to_owned())
            .unwrap_or_default()
    }
}

fn resolved(r: &ResolveResult<'_>) -> Result<String, String> {
    match r {
        ResolveResult::Bound(ns) => Ok(ns.0.to_owned()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(p) => Err(format!("Undeclared namespace prefix '{p}'")),
    }
}

fn build_element(
    reader: &NsReader<&[u8]>,
    ns: String,
    start: &quick_xml::events::BytesStart<'_>,
) -> Result<Element, String> {
    let mut el = Element {
        ns,
        name: start.local_name().as_ref().to_owned(),
        ..Element::default()
    };
    for attr in start.attributes() {
        let attr = attr.map_err(|e| format!("Parse error: {e}"))?;
        if attr.key.as_namespace_binding().is_some() {
            continue;
        }
        let (ans, local) = reader.resolver().resolve_attribute(attr.key);
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| format!("Parse error: {e}"))?;
        el.attrs.push((
            resolved(&ans)?,
            local.as_ref().to_owned(),
            value.into_owned(),
        ));
    }
    Ok(el)
}

/// Attaches a finished element to its parent; returns it when it is the root.
fn attach(stack: &mut [Element], el: Element) -> Option<Element> {
    match stack.last_mut() {
        Some(parent) => {
            parent.children.push(el);
            None
        }
        None => Some(el),
    }
}

/// Parses a document into its root element.
pub(crate) fn parse_document(xml: &str) -> Result<Element, String> {
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    loop {
        let (ns, event) = match reader.read_resolved_event() {
            Ok((r, e)) => (resolved(&r), e),
            Err(e) => return Err(format!("Parse error: {e}")),
        };
        match event {
            Event::Start(start) => {
                let el = build_element(&reader, ns?, &start)?;
                if stack.len() >= MAX_DEPTH {
                    return Err("Parse error: elements nested too deeply".to_owned());
                }
                stack.push(el);
            }
            Event::Empty(start) => {
                let el = build_element(&reader, ns?, &start)?;
                if let Some(root) = attach(&mut stack, el) {
                    return Ok(root);
                }
            }
            Event::End(_) => {
                let Some(el) = stack.pop() else {
                    return Err("Parse error: unbalanced end tag".to_owned());
                };
                if let Some(root) = attach(&mut stack, el) {
                    return Ok(root);
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let text = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => quick_xml::escape::resolve_predefined_entity(&r)
                        .map(str::to_owned)
                        .ok_or_else(|| format!("Parse error: unknown entity &{};", &*r))?,
                    Err(e) => return Err(format!("Parse error: {e}")),
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text);
                }
            }
            Event::Eof => return Err("Parse error: premature end of document".to_owned()),
            Event::DocType(_) => return Err("Parse error: DOCTYPE is not allowed".to_owned()),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
}

/// What a request entry says about a contact.
#[derive(Debug, Default)]
pub(crate) struct EntryInput {
    /// The contact's data (id and etag left empty).
    pub contact: FakeContact,
    /// The `rel` (or `label`) of each email, in order.
    pub email_rels: Vec<String>,
    /// The entry's `gd:etag` attribute.
    pub etag: Option<String>,
}

/// The batch and identity parts of a request entry.
#[derive(Debug, Default)]
pub(crate) struct EntryMeta {
    /// The contact id named by `<id>`, or by the edit link.
    pub id: Option<String>,
    /// The version carried by the edit link, if any.
    pub edit_version: Option<u64>,
    pub batch_id: Option<String>,
    pub batch_op: Option<String>,
}

/// Splits a contact URL (`…/contacts/{domain}/{projection}/{id}[/{version}]`
/// or an atom id `…/contacts/{domain}/base/{id}`) into id and version.
pub(crate) fn id_from_url(url: &str) -> Option<(String, Option<u64>)> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let segs: Vec<&str> = path.split('/').collect();
    let at = segs.iter().rposition(|s| *s == "contacts")?;
    let id = segs.get(at + 3).filter(|s| !s.is_empty())?;
    let version = segs.get(at + 4).and_then(|v| v.parse().ok());
    Some(((*id).to_owned(), version))
}

pub(crate) fn read_meta(e: &Element) -> EntryMeta {
    let mut meta = EntryMeta::default();
    if let Some(id) = e.child(NS_ATOM, "id") {
        let text = id.text.trim();
        meta.id = id_from_url(text).map(|(i, _)| i).or_else(|| {
            (!text.is_empty()).then(|| text.rsplit('/').next().unwrap_or(text).to_owned())
        });
    }
    for link in e.children_named(NS_ATOM, "link") {
        if link.attr("rel") == Some("edit") {
            if let Some((id, version)) = link.attr("href").and_then(id_from_url) {
                if meta.id.is_none() {
                    meta.id = Some(id);
                }
                meta.edit_version = version;
            }
        }
    }
    meta.batch_id = e.child(NS_BATCH, "id").map(|b| b.text.trim().to_owned());
    meta.batch_op = e
        .child(NS_BATCH, "operation")
        .and_then(|o| o.attr("type"))
        .map(str::to_owned);
    meta
}

/// Reads the contact data of an `atom:entry`, refusing what Google refuses.
pub(crate) fn read_entry(e: &Element) -> Result<EntryInput, String> {
    if !e.is(NS_ATOM, "entry") {
        return Err(format!(
            "Expected an Atom entry element, found {{{}}}{}",
            e.ns, e.name
        ));
    }
    let mut input = EntryInput {
        etag: e.attr_ns(NS_GD, "etag").map(str::to_owned),
        ..EntryInput::default()
    };
    let c = &mut input.contact;
    if let Some(name) = e.child(NS_GD, "name") {
        c.given_name = name.child_text(NS_GD, "givenName");
        c.family_name = name.child_text(NS_GD, "familyName");
        c.full_name = name.child_text(NS_GD, "fullName");
    }
    for email in e.children_named(NS_GD, "email") {
        let Some(address) = email.attr("address") else {
            return Err("Missing attribute: 'address' in element 'gd:email'".to_owned());
        };
        let address = address.trim();
        if !address.contains('@') || address.starts_with('@') || address.ends_with('@') {
            return Err(format!(
                "Invalid value for attribute: 'address' ('{address}') in element 'gd:email'"
            ));
        }
        let rel = email
            .attr("rel")
            .or_else(|| email.attr("label"))
            .unwrap_or(REL_WORK);
        c.emails
            .push((address.to_owned(), email.attr("primary") == Some("true")));
        input.email_rels.push(rel.to_owned());
    }
    for phone in e.children_named(NS_GD, "phoneNumber") {
        let number = phone.text.trim();
        if number.is_empty() {
            return Err("Missing text content in element 'gd:phoneNumber'".to_owned());
        }
        let rel = phone
            .attr("rel")
            .or_else(|| phone.attr("label"))
            .unwrap_or(REL_WORK);
        c.phones.push((rel.to_owned(), number.to_owned()));
    }
    if let Some(org) = e.child(NS_GD, "organization") {
        c.org_name = org.child_text(NS_GD, "orgName");
        c.org_title = org.child_text(NS_GD, "orgTitle");
        c.org_department = org.child_text(NS_GD, "orgDepartment");
    }
    for prop in e.children_named(NS_GD, "extendedProperty") {
        let Some(name) = prop.attr("name") else {
            return Err("Missing attribute: 'name' in element 'gd:extendedProperty'".to_owned());
        };
        c.extended_properties
            .push((name.to_owned(), prop.attr("value").unwrap_or("").to_owned()));
    }
    Ok(input)
}

/// Where the fake's contacts live.
pub(crate) struct Urls {
    pub base: String,
    pub domain: String,
    pub projection: String,
}

impl Urls {
    pub fn atom_id(&self, id: &str) -> String {
        format!(
            "http://www.google.com/m8/feeds/contacts/{}/base/{id}",
            self.domain
        )
    }

    pub fn feed(&self) -> String {
        format!(
            "{}/m8/feeds/contacts/{}/{}",
            self.base, self.domain, self.projection
        )
    }

    fn self_link(&self, id: &str) -> String {
        format!("{}/{id}", self.feed())
    }

    fn edit_link(&self, id: &str, version: u64) -> String {
        format!("{}/{id}/{version}", self.feed())
    }

    fn thin(&self) -> bool {
        self.projection == "thin"
    }
}

type W = Writer<Vec<u8>>;

fn text_el(w: &mut W, name: &str, text: &str) -> io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(text))?;
    Ok(())
}

/// The contact's data elements (what the 2 KB limit applies to).
fn write_data(w: &mut W, c: &FakeContact, rels: &[String], thin: bool) -> io::Result<()> {
    if !(c.given_name.is_empty() && c.family_name.is_empty() && c.full_name.is_empty()) {
        w.create_element("gd:name").write_inner_content(|w| {
            for (tag, v) in [
                ("gd:givenName", &c.given_name),
                ("gd:familyName", &c.family_name),
                ("gd:fullName", &c.full_name),
            ] {
                if !v.is_empty() {
                    text_el(w, tag, v)?;
                }
            }
            Ok(())
        })?;
    }
    for (i, (address, primary)) in c.emails.iter().enumerate() {
        let rel = rels.get(i).map(String::as_str).unwrap_or(REL_WORK);
        let mut el = w
            .create_element("gd:email")
            .with_attribute(("rel", rel))
            .with_attribute(("address", address.as_str()));
        if *primary {
            el = el.with_attribute(("primary", "true"));
        }
        el.write_empty()?;
    }
    for (rel, number) in &c.phones {
        w.create_element("gd:phoneNumber")
            .with_attribute(("rel", rel.as_str()))
            .write_text_content(BytesText::new(number))?;
    }
    if !(c.org_name.is_empty() && c.org_title.is_empty() && c.org_department.is_empty()) {
        w.create_element("gd:organization")
            .with_attribute(("rel", REL_WORK))
            .with_attribute(("primary", "true"))
            .write_inner_content(|w| {
                for (tag, v) in [
                    ("gd:orgName", &c.org_name),
                    ("gd:orgTitle", &c.org_title),
                    ("gd:orgDepartment", &c.org_department),
                ] {
                    if !v.is_empty() {
                        text_el(w, tag, v)?;
                    }
                }
                Ok(())
            })?;
    }
    if !thin {
        for (name, value) in &c.extended_properties {
            w.create_element("gd:extendedProperty")
                .with_attribute(("name", name.as_str()))
                .with_attribute(("value", value.as_str()))
                .write_empty()?;
        }
    }
    Ok(())
}

/// The size of a contact as the 2 KB per-contact limit counts it: its data
/// elements, serialised.
pub(crate) fn contact_size(c: &FakeContact, rels: &[String]) -> usize {
    let mut w = Writer::new(Vec::new());
    match write_data(&mut w, c, rels, false) {
        Ok(()) => w.into_inner().len(),
        Err(_) => usize::MAX,
    }
}

/// The outcome of one batch operation.
pub(crate) struct BatchStatus {
    pub id: Option<String>,
    pub op: String,
    pub code: u16,
    pub reason: String,
}

fn write_batch(w: &mut W, b: &BatchStatus) -> io::Result<()> {
    if let Some(id) = &b.id {
        text_el(w, "batch:id", id)?;
    }
    w.create_element("batch:operation")
        .with_attribute(("type", b.op.as_str()))
        .write_empty()?;
    w.create_element("batch:status")
        .with_attribute(("code", b.code.to_string().as_str()))
        .with_attribute(("reason", b.reason.as_str()))
        .write_empty()?;
    Ok(())
}

const ROOT_NS: [(&str, &str); 4] = [
    ("xmlns", NS_ATOM),
    ("xmlns:gd", NS_GD),
    ("xmlns:gContact", NS_GCONTACT),
    ("xmlns:batch", NS_BATCH),
];

fn write_entry(
    w: &mut W,
    urls: &Urls,
    sc: &StoredContact,
    root: bool,
    batch: Option<&BatchStatus>,
) -> io::Result<()> {
    let c = &sc.contact;
    let mut el = w.create_element("entry");
    if root {
        el = el.with_attributes(ROOT_NS);
    }
    if !sc.deleted {
        el = el.with_attribute(("gd:etag", c.etag.as_str()));
    }
    el.write_inner_content(|w| {
        text_el(w, "id", &urls.atom_id(&c.id))?;
        let updated = crate::state::rfc3339_ms(sc.updated_ms);
        text_el(w, "updated", &updated)?;
        w.create_element("app:edited")
            .with_attribute(("xmlns:app", NS_APP))
            .write_text_content(BytesText::new(&updated))?;
        w.create_element("category")
            .with_attribute(("scheme", KIND_SCHEME))
            .with_attribute(("term", KIND_CONTACT))
            .write_empty()?;
        if sc.deleted {
            w.create_element("gd:deleted").write_empty()?;
        } else {
            w.create_element("title")
                .write_text_content(BytesText::new(&c.full_name))?;
            w.create_element("link")
                .with_attribute(("rel", "self"))
                .with_attribute(("type", ATOM_TYPE))
                .with_attribute(("href", urls.self_link(&c.id).as_str()))
                .write_empty()?;
            w.create_element("link")
                .with_attribute(("rel", "edit"))
                .with_attribute(("type", ATOM_TYPE))
                .with_attribute(("href", urls.edit_link(&c.id, sc.version).as_str()))
                .write_empty()?;
            write_data(w, c, &sc.email_rels, urls.thin())?;
        }
        if let Some(b) = batch {
            write_batch(w, b)?;
        }
        Ok(())
    })?;
    Ok(())
}

fn finish(w: W) -> String {
    String::from_utf8(w.into_inner()).unwrap_or_default()
}

fn declaration(w: &mut W) -> io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
}

/// A single entry document (GET / POST / PUT answers).
pub(crate) fn entry_document(urls: &Urls, sc: &StoredContact) -> String {
    let mut w = Writer::new(Vec::new());
    let ok = declaration(&mut w).and_then(|()| write_entry(&mut w, urls, sc, true, None));
    if ok.is_err() {
        return String::new();
    }
    finish(w)
}

/// One entry of a feed or of a batch answer (written inside the feed).
pub(crate) fn entry_fragment(
    urls: &Urls,
    sc: &StoredContact,
    status: Option<&BatchStatus>,
) -> String {
    let mut w = Writer::new(Vec::new());
    if write_entry(&mut w, urls, sc, false, status).is_err() {
        return String::new();
    }
    finish(w)
}

/// A batch operation's entry without contact data: a failure (title
/// "Error") or a deletion (title "Deleted").
pub(crate) fn batch_status_fragment(
    urls: &Urls,
    id: Option<&str>,
    title: &str,
    status: &BatchStatus,
) -> String {
    let mut w = Writer::new(Vec::new());
    let r = w.create_element("entry").write_inner_content(|w| {
        let id_text = id.map(|i| urls.atom_id(i)).unwrap_or_default();
        text_el(w, "id", &id_text)?;
        text_el(
            w,
            "updated",
            &crate::state::rfc3339_ms(crate::state::now_ms()),
        )?;
        text_el(w, "title", title)?;
        write_batch(w, status)
    });
    if r.is_err() {
        return String::new();
    }
    finish(w)
}

/// What a feed page holds.
pub(crate) struct FeedHead {
    pub title: String,
    pub id: String,
    pub self_href: String,
    pub next_href: Option<String>,
    pub total: Option<usize>,
    pub start_index: Option<usize>,
    pub items_per_page: Option<usize>,
}

/// A feed document: the head, then the given entries (already serialised).
pub(crate) fn feed_document(urls: &Urls, head: &FeedHead, entries: &[String]) -> String {
    let mut w = Writer::new(Vec::new());
    let r = declaration(&mut w).and_then(|()| {
        w.create_element("feed")
            .with_attributes(ROOT_NS)
            .with_attribute(("xmlns:openSearch", NS_OPENSEARCH))
            .write_inner_content(|w| {
                text_el(w, "id", &head.id)?;
                text_el(
                    w,
                    "updated",
                    &crate::state::rfc3339_ms(crate::state::now_ms()),
                )?;
                w.create_element("category")
                    .with_attribute(("scheme", KIND_SCHEME))
                    .with_attribute(("term", KIND_CONTACT))
                    .write_empty()?;
                w.create_element("title")
                    .with_attribute(("type", "text"))
                    .write_text_content(BytesText::new(&head.title))?;
                let feed = urls.feed();
                let batch = format!("{feed}/batch");
                for (rel, href) in [
                    ("http://schemas.google.com/g/2005#feed", feed.as_str()),
                    ("http://schemas.google.com/g/2005#post", feed.as_str()),
                    ("http://schemas.google.com/g/2005#batch", batch.as_str()),
                    ("self", head.self_href.as_str()),
                ] {
                    w.create_element("link")
                        .with_attribute(("rel", rel))
                        .with_attribute(("type", ATOM_TYPE))
                        .with_attribute(("href", href))
                        .write_empty()?;
                }
                if let Some(next) = &head.next_href {
                    w.create_element("link")
                        .with_attribute(("rel", "next"))
                        .with_attribute(("type", ATOM_TYPE))
                        .with_attribute(("href", next.as_str()))
                        .write_empty()?;
                }
                w.create_element("author").write_inner_content(|w| {
                    text_el(w, "name", &urls.domain)?;
                    text_el(w, "email", &urls.domain)
                })?;
                w.create_element("generator")
                    .with_attribute(("version", "1.0"))
                    .with_attribute(("uri", "http://www.google.com/m8/feeds"))
                    .write_text_content(BytesText::new("Contacts"))?;
                for (tag, v) in [
                    ("openSearch:totalResults", head.total),
                    ("openSearch:startIndex", head.start_index),
                    ("openSearch:itemsPerPage", head.items_per_page),
                ] {
                    if let Some(v) = v {
                        text_el(w, tag, &v.to_string())?;
                    }
                }
                for e in entries {
                    w.get_mut().extend_from_slice(e.as_bytes());
                }
                Ok(())
            })?;
        Ok(())
    });
    if r.is_err() {
        return String::new();
    }
    finish(w)
}

/// A GData error document.
pub(crate) fn errors_document(domain: &str, code: &str, reason: &str) -> String {
    let mut w = Writer::new(Vec::new());
    let r = declaration(&mut w).and_then(|()| {
        w.create_element("errors")
            .with_attribute(("xmlns", NS_GD))
            .write_inner_content(|w| {
                w.create_element("error").write_inner_content(|w| {
                    text_el(w, "domain", domain)?;
                    text_el(w, "code", code)?;
                    text_el(w, "internalReason", reason)
                })?;
                Ok(())
            })?;
        Ok(())
    });
    if r.is_err() {
        return String::new();
    }
    finish(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefixed_and_default_namespaces() {
        let xml = "<?xml version='1.0'?><atom:entry xmlns:atom='http://www.w3.org/2005/Atom' \
                   xmlns:gd='http://schemas.google.com/g/2005'><gd:name><gd:fullName>A &amp; B&#33;</gd:fullName></gd:name>\
                   <gd:email address='a@b.c' primary='true' rel='http://schemas.google.com/g/2005#home'/></atom:entry>";
        let root = parse_document(xml).unwrap();
        let input = read_entry(&root).unwrap();
        assert_eq!(input.contact.full_name, "A & B!");
        assert_eq!(input.contact.emails, vec![("a@b.c".to_owned(), true)]);
        assert_eq!(
            input.email_rels,
            vec!["http://schemas.google.com/g/2005#home".to_owned()]
        );
    }

    #[test]
    fn ids_come_from_urls() {
        assert_eq!(
            id_from_url("http://h/m8/feeds/contacts/acme.com/full/abc/12"),
            Some(("abc".to_owned(), Some(12)))
        );
        assert_eq!(
            id_from_url("http://www.google.com/m8/feeds/contacts/acme.com/base/abc"),
            Some(("abc".to_owned(), None))
        );
    }
}
