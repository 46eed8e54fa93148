//! A small namespace-aware element tree over `quick-xml`, enough to read
//! Atom / GData documents without caring which prefixes the server chose.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::{NsReader, XmlVersion};
use thiserror::Error;

/// The Atom namespace (RFC 4287).
pub const ATOM: &str = "http://www.w3.org/2005/Atom";
/// The Google Data namespace (`gd:`).
pub const GD: &str = "http://schemas.google.com/g/2005";
/// The GData batch namespace (`batch:`).
pub const BATCH: &str = "http://schemas.google.com/gdata/batch";
/// The OpenSearch namespace (`openSearch:totalResults`).
pub const OPENSEARCH: &str = "http://a9.com/-/spec/opensearch/1.1/";
/// The contacts namespace (`gContact:`).
pub const GCONTACT: &str = "http://schemas.google.com/contact/2008";

/// An XML document could not be read.
#[derive(Debug, Error)]
#[error("malformed XML at byte {position}: {reason}")]
pub struct XmlError {
    pub position: u64,
    pub reason: String,
}

/// One attribute with its namespace (empty for unprefixed attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub ns: String,
    pub name: String,
    pub value: String,
}

/// One element with its namespace, attributes, child elements and text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub ns: String,
    pub name: String,
    pub attributes: Vec<Attribute>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    /// Whether this element is `{ns}name`.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// The children named `{ns}name`.
    pub fn all<'a>(&'a self, ns: &'a str, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    /// The first child named `{ns}name`.
    pub fn first(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    /// The unprefixed attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.ns.is_empty() && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// The attribute `{ns}name`.
    pub fn attr_ns(&self, ns: &str, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.ns == ns && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// The trimmed text of the first child `{ns}name`, if not empty.
    pub fn child_text(&self, ns: &str, name: &str) -> Option<String> {
        self.first(ns, name)
            .map(|c| c.text.trim().to_string())
            .filter(|t| !t.is_empty())
    }
}

fn namespace_of(result: &ResolveResult<'_>) -> String {
    match result {
        ResolveResult::Bound(ns) => ns.into_inner().to_string(),
        _ => String::new(),
    }
}

fn element_of(reader: &NsReader<&[u8]>, start: &BytesStart<'_>) -> Result<Element, XmlError> {
    let error = |reason: String| XmlError {
        position: reader.buffer_position(),
        reason,
    };
    let (ns, local) = reader.resolver().resolve_element(start.name());
    let mut element = Element {
        ns: namespace_of(&ns),
        name: local.into_inner().to_string(),
        ..Element::default()
    };
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| error(e.to_string()))?;
        if attribute.key.as_namespace_binding().is_some() {
            continue;
        }
        let (ns, local) = reader.resolver().resolve_attribute(attribute.key);
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| error(e.to_string()))?;
        element.attributes.push(Attribute {
            ns: namespace_of(&ns),
            name: local.into_inner().to_string(),
            value: value.into_owned(),
        });
    }
    Ok(element)
}

/// Parses a document into its root element.
pub fn parse(document: &str) -> Result<Element, XmlError> {
    let mut reader = NsReader::from_str(document);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(|e| XmlError {
            position: reader.buffer_position(),
            reason: e.to_string(),
        })?;
        match event {
            Event::Start(start) => {
                let element = element_of(&reader, &start)?;
                stack.push(element);
            }
            Event::Empty(start) => {
                let element = element_of(&reader, &start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::End(_) => {
                let Some(element) = stack.pop() else {
                    return Err(XmlError {
                        position: reader.buffer_position(),
                        reason: "an end tag without a start tag".to_string(),
                    });
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::Text(text) => {
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&text.xml10_content());
                }
            }
            Event::CData(data) => {
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&data.xml10_content());
                }
            }
            Event::GeneralRef(reference) => {
                let Some(current) = stack.last_mut() else {
                    continue;
                };
                let resolved = reference.resolve_char_ref().map_err(|e| XmlError {
                    position: reader.buffer_position(),
                    reason: e.to_string(),
                })?;
                match resolved {
                    Some(c) => current.text.push(c),
                    None => {
                        let name = reference.xml10_content();
                        match quick_xml::escape::resolve_xml_entity(&name) {
                            Some(value) => current.text.push_str(value),
                            None => {
                                return Err(XmlError {
                                    position: reader.buffer_position(),
                                    reason: format!("unknown entity &{name};"),
                                })
                            }
                        }
                    }
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(XmlError {
            position: reader.buffer_position(),
            reason: "the document ends inside an element".to_string(),
        });
    }
    root.ok_or(XmlError {
        position: 0,
        reason: "the document has no root element".to_string(),
    })
}

/// Escapes text and attribute values.
pub fn escape(value: &str) -> String {
    quick_xml::escape::escape(value).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_resolved_whatever_the_prefixes() -> Result<(), XmlError> {
        let a = parse(
            r#"<feed xmlns="http://www.w3.org/2005/Atom" xmlns:gd="http://schemas.google.com/g/2005">
                 <entry gd:etag="&quot;x&quot;"><gd:email address="a@b.c"/></entry></feed>"#,
        )?;
        let b = parse(
            r#"<atom:feed xmlns:atom="http://www.w3.org/2005/Atom" xmlns:g="http://schemas.google.com/g/2005">
                 <atom:entry g:etag='"x"'><g:email address='a@b.c'/></atom:entry></atom:feed>"#,
        )?;
        for root in [a, b] {
            assert!(root.is(ATOM, "feed"));
            let entry = root.first(ATOM, "entry");
            assert_eq!(entry.and_then(|e| e.attr_ns(GD, "etag")), Some("\"x\""));
            assert_eq!(
                entry
                    .and_then(|e| e.first(GD, "email"))
                    .and_then(|e| e.attr("address")),
                Some("a@b.c")
            );
        }
        Ok(())
    }

    #[test]
    fn entities_in_text_are_resolved() -> Result<(), XmlError> {
        let root = parse("<a>R&amp;D &#233;quipe &lt;1&gt;</a>")?;
        assert_eq!(root.text, "R&D équipe <1>");
        Ok(())
    }

    #[test]
    fn broken_documents_are_errors() {
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a>").is_err());
        assert!(parse("").is_err());
    }
}
