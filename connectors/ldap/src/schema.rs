//! The server's schema as far as stubs need it, for `coexist doctor`.
//!
//! A stub style writes certain object classes and attributes
//! ([`Writer::desired`]); a server whose schema lacks one of them refuses
//! every create. This module reads the server's subschema subentry (RFC 4512
//! 4.2: the root DSE's `subschemaSubentry`, `cn=Subschema` on OpenLDAP,
//! `CN=Aggregate,CN=Schema,CN=Configuration,…` on Active Directory and
//! Samba), parses just enough of its descriptions (the names of object
//! classes and attribute types, the superclasses and MUST/MAY lists of
//! classes, and the auxiliary classes of DIT content rules, through which AD
//! attaches `mailRecipient` to `contact`), and says, before anything is
//! written, whether the configured style fits and what to do when it does
//! not.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use coexist_connector::{Attributes, Finding, RecipientKind, Route, Stub};
use ldap3::{Ldap, Scope, SearchEntry};

use crate::config::StubSchema;
use crate::error::{self, rc};
use crate::write::Writer;

/// The name of the doctor check.
pub const CHECK: &str = "schema for stubs";

/// One RFC 4512 description (object class, attribute type or DIT content
/// rule), reduced to what the stub check uses. Names and OIDs are kept as
/// the server wrote them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Definition {
    /// The numeric OID (or, from lax servers, a descriptor).
    pub oid: String,
    /// `NAME 'x'` or `NAME ( 'x' 'y' )`.
    pub names: Vec<String>,
    /// `SUP`: superclasses, or the supertype of an attribute type.
    pub sup: Vec<String>,
    /// `MUST`: required attribute types.
    pub must: Vec<String>,
    /// `MAY`: allowed attribute types.
    pub may: Vec<String>,
    /// `AUX`: the auxiliary classes a DIT content rule allows.
    pub aux: Vec<String>,
}

impl Definition {
    /// The first name, else the OID: how the definition is shown.
    pub fn display_name(&self) -> &str {
        self.names.first().map_or(self.oid.as_str(), String::as_str)
    }
}

/// Why a description does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptionError {
    #[error("it does not start with `(`")]
    NoOpening,
    #[error("it has no OID after `(`")]
    NoOid,
    #[error("a quoted string is not closed")]
    UnclosedQuote,
    #[error("a `(` is not closed")]
    Unclosed,
    #[error("`{0}` has no value")]
    MissingValue(String),
    #[error("`{0}` stands where a keyword belongs")]
    Unexpected(String),
}

/// A lexical element of a description.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    Open,
    Close,
    Dollar,
    Quoted(&'a str),
    Word(&'a str),
}

impl Token<'_> {
    /// The token as written.
    fn text(&self) -> String {
        match self {
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::Dollar => "$".into(),
            Token::Quoted(q) => format!("'{q}'"),
            Token::Word(w) => w.to_string(),
        }
    }
}

/// Splits a description into tokens (RFC 4512 4.1: parentheses, `$`,
/// quoted strings and bare words separated by spaces).
fn tokens(text: &str) -> Result<Vec<Token<'_>>, DescriptionError> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        let Some(c) = rest.chars().next() else {
            return Ok(out);
        };
        match c {
            '(' => {
                out.push(Token::Open);
                rest = &rest[1..];
            }
            ')' => {
                out.push(Token::Close);
                rest = &rest[1..];
            }
            '$' => {
                out.push(Token::Dollar);
                rest = &rest[1..];
            }
            '\'' => {
                let body = &rest[1..];
                let end = body.find('\'').ok_or(DescriptionError::UnclosedQuote)?;
                out.push(Token::Quoted(&body[..end]));
                rest = &body[end + 1..];
            }
            _ => {
                let end = rest
                    .find(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '$' | '\''))
                    .unwrap_or(rest.len());
                out.push(Token::Word(&rest[..end]));
                rest = &rest[end..];
            }
        }
    }
}

/// Parses one RFC 4512 description (`objectClasses`, `attributeTypes`,
/// `dITContentRules` value): `( oid NAME … SUP … MUST … MAY … AUX … )`.
///
/// Keywords the check does not use (`DESC`, `SYNTAX`, `X-…`, flags such as
/// `AUXILIARY` or `SINGLE-VALUE`) are skipped with their values, so the
/// descriptions of every server parse, including Samba's `MUST (cn )` and
/// quoted `SYNTAX '1.3.6…'`.
pub fn parse_description(text: &str) -> Result<Definition, DescriptionError> {
    let tokens = tokens(text)?;
    let mut it = tokens.into_iter().peekable();
    if it.next() != Some(Token::Open) {
        return Err(DescriptionError::NoOpening);
    }
    let mut def = Definition {
        oid: match it.next() {
            Some(Token::Word(w) | Token::Quoted(w)) => w.to_string(),
            _ => return Err(DescriptionError::NoOid),
        },
        ..Definition::default()
    };
    loop {
        let keyword = match it.next() {
            None => return Err(DescriptionError::Unclosed),
            Some(Token::Close) => return Ok(def),
            Some(Token::Word(w)) => w,
            Some(other) => return Err(DescriptionError::Unexpected(other.text())),
        };
        let upper = keyword.to_ascii_uppercase();
        let slot = match upper.as_str() {
            "NAME" => Some(&mut def.names),
            "SUP" => Some(&mut def.sup),
            "MUST" => Some(&mut def.must),
            "MAY" => Some(&mut def.may),
            "AUX" => Some(&mut def.aux),
            _ => None,
        };
        // Keywords whose single value may be a bare word.
        let takes_word = slot.is_some()
            || matches!(
                upper.as_str(),
                "EQUALITY" | "ORDERING" | "SUBSTR" | "SYNTAX" | "USAGE" | "NOT" | "OC" | "FORM"
            );
        let mut values = Vec::new();
        match it.peek() {
            Some(Token::Open) => {
                it.next();
                loop {
                    match it.next() {
                        None => return Err(DescriptionError::Unclosed),
                        Some(Token::Close) => break,
                        Some(Token::Dollar) => {}
                        Some(Token::Word(w) | Token::Quoted(w)) => values.push(w.to_string()),
                        Some(Token::Open) => {
                            return Err(DescriptionError::Unexpected("(".into()));
                        }
                    }
                }
            }
            Some(Token::Quoted(q)) => {
                values.push(q.to_string());
                it.next();
            }
            Some(Token::Word(w)) if takes_word => {
                values.push(w.to_string());
                it.next();
            }
            // A flag (STRUCTURAL, SINGLE-VALUE, …) has no value.
            _ if !takes_word => {}
            _ => return Err(DescriptionError::MissingValue(keyword.to_string())),
        }
        if let Some(slot) = slot {
            slot.extend(values);
        }
    }
}

/// The server's schema: object classes, attribute types and DIT content
/// rules, looked up by any of their names or their OID (case-insensitive).
#[derive(Debug, Clone, Default)]
pub struct Schema {
    classes: Vec<Definition>,
    attributes: Vec<Definition>,
    rules: Vec<Definition>,
    class_index: HashMap<String, usize>,
    attribute_index: HashMap<String, usize>,
    rule_index: HashMap<String, usize>,
    /// Descriptions that did not parse: how many, and the first with why.
    pub unparsed: usize,
    pub first_unparsed: Option<String>,
}

impl Schema {
    /// The schema of the values of `objectClasses`, `attributeTypes` and
    /// `dITContentRules`. Descriptions that do not parse are counted and
    /// left out.
    pub fn from_descriptions(
        object_classes: &[String],
        attribute_types: &[String],
        content_rules: &[String],
    ) -> Schema {
        let mut schema = Schema::default();
        let mut parse = |values: &[String]| -> Vec<Definition> {
            let mut defs = Vec::with_capacity(values.len());
            for v in values {
                match parse_description(v) {
                    Ok(d) => defs.push(d),
                    Err(e) => {
                        schema.unparsed += 1;
                        if schema.first_unparsed.is_none() {
                            schema.first_unparsed = Some(format!("`{}`: {e}", v.trim()));
                        }
                    }
                }
            }
            defs
        };
        let classes = parse(object_classes);
        let attributes = parse(attribute_types);
        let rules = parse(content_rules);
        schema.class_index = index(&classes);
        schema.attribute_index = index(&attributes);
        schema.rule_index = index(&rules);
        schema.classes = classes;
        schema.attributes = attributes;
        schema.rules = rules;
        schema
    }

    /// The object class named `name` (or with that OID).
    pub fn class(&self, name: &str) -> Option<&Definition> {
        lookup(&self.classes, &self.class_index, name)
    }

    /// The attribute type named `name` (or with that OID).
    pub fn attribute(&self, name: &str) -> Option<&Definition> {
        lookup(&self.attributes, &self.attribute_index, name)
    }

    /// How many object classes and attribute types the schema holds.
    pub fn size(&self) -> (usize, usize) {
        (self.classes.len(), self.attributes.len())
    }

    /// The key an attribute type is known by in an allowed set: its OID
    /// when the schema defines it, else the name as written.
    fn attribute_key(&self, name: &str) -> String {
        self.attribute(name)
            .map_or_else(|| name.to_ascii_lowercase(), |d| d.oid.to_ascii_lowercase())
    }

    /// The attribute types (keys of [`Schema::attribute_key`]) an entry of
    /// `classes` may hold: the MUST and MAY of the classes and their
    /// superclasses, and of the DIT content rules of those classes with
    /// the auxiliary classes the rules name (AD attaches `mailRecipient` to
    /// `contact` that way).
    fn allowed(&self, classes: &[&str]) -> HashSet<String> {
        let mut allowed = HashSet::new();
        let mut seen = HashSet::new();
        let mut work: Vec<String> = classes.iter().map(|c| c.to_string()).collect();
        while let Some(name) = work.pop() {
            let Some(class) = self.class(&name) else {
                continue;
            };
            if !seen.insert(class.oid.to_ascii_lowercase()) {
                continue;
            }
            for a in class.must.iter().chain(&class.may) {
                allowed.insert(self.attribute_key(a));
            }
            work.extend(class.sup.iter().cloned());
            let rule = lookup(&self.rules, &self.rule_index, &class.oid)
                .or_else(|| class.names.iter().find_map(|n| self.rule(n)));
            if let Some(rule) = rule {
                for a in rule.must.iter().chain(&rule.may) {
                    allowed.insert(self.attribute_key(a));
                }
                work.extend(rule.aux.iter().cloned());
            }
        }
        allowed
    }

    /// The DIT content rule of the structural class `name`.
    fn rule(&self, name: &str) -> Option<&Definition> {
        lookup(&self.rules, &self.rule_index, name)
    }

    /// Whether `attribute` is in `allowed`, itself or through one of its
    /// supertypes.
    fn is_allowed(&self, allowed: &HashSet<String>, attribute: &str) -> bool {
        let mut name = attribute.to_string();
        // Supertype chains are short; the bound guards against a loop.
        for _ in 0..16 {
            if allowed.contains(&self.attribute_key(&name)) {
                return true;
            }
            match self.attribute(&name).and_then(|d| d.sup.first()) {
                Some(sup) => name = sup.clone(),
                None => return false,
            }
        }
        false
    }
}

/// Every name and the OID of each definition (lower case) → its position.
fn index(defs: &[Definition]) -> HashMap<String, usize> {
    let mut map = HashMap::new();
    for (i, d) in defs.iter().enumerate() {
        for key in std::iter::once(&d.oid).chain(&d.names) {
            map.entry(key.to_ascii_lowercase()).or_insert(i);
        }
    }
    map
}

/// The definition `name` (a name or OID, any case) stands for.
fn lookup<'a>(
    defs: &'a [Definition],
    index: &HashMap<String, usize>,
    name: &str,
) -> Option<&'a Definition> {
    index
        .get(&name.trim().to_ascii_lowercase())
        .and_then(|&i| defs.get(i))
}

/// What the configured stub style writes, as the schema check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needs {
    /// The configured stub style.
    pub style: StubSchema,
    /// The object classes of a stub.
    pub classes: Vec<String>,
    /// The attributes a stub may carry (the marker attribute included).
    pub attributes: Vec<String>,
    /// The configured marker attribute.
    pub marker: String,
}

impl Needs {
    /// What `writer`'s stubs hold, taken from [`Writer::desired`] itself so
    /// the check follows the writing code.
    pub fn of(writer: &Writer) -> Needs {
        let sample = Stub {
            anchor: "doctor:schema".into(),
            kind: RecipientKind::Person,
            primary_address: "doctor@example.com".into(),
            aliases: vec!["alias@example.com".into()],
            route: Route::Address("doctor@example.net".into()),
            attributes: Attributes::default(),
        };
        let (classes, attributes) = match writer.desired(&sample) {
            Ok(d) => {
                let mut attributes: Vec<String> = d.attributes.keys().cloned().collect();
                // The RDN attribute (AD's `cn`) is written by the add itself.
                if !attributes
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(d.rdn_attribute))
                {
                    attributes.push(d.rdn_attribute.to_string());
                }
                (
                    d.object_classes.iter().map(|c| c.to_string()).collect(),
                    attributes,
                )
            }
            // `desired` refuses only bad stubs; the sample is a good one.
            // Should that ever change, check at least the style's own part.
            Err(_) => (
                style_classes(writer.mapper.schema)
                    .iter()
                    .map(|c| c.to_string())
                    .collect(),
                style_attributes(writer.mapper.schema)
                    .iter()
                    .map(|c| c.to_string())
                    .chain(std::iter::once(writer.mapper.marker_attribute.clone()))
                    .collect(),
            ),
        };
        Needs {
            style: writer.mapper.schema,
            classes,
            attributes,
            marker: writer.mapper.marker_attribute.clone(),
        }
    }
}

/// The classes that make a style what it is (not the person classes every
/// directory has).
fn style_classes(style: StubSchema) -> &'static [&'static str] {
    match style {
        StubSchema::InetLocalMailRecipient => &["inetLocalMailRecipient"],
        StubSchema::Qmail => &["qmailUser"],
        StubSchema::AdContact => &["contact"],
    }
}

/// The attributes that come with a style's own schema.
fn style_attributes(style: StubSchema) -> &'static [&'static str] {
    match style {
        StubSchema::InetLocalMailRecipient => {
            &["mailLocalAddress", "mailRoutingAddress", "mailHost"]
        }
        StubSchema::Qmail => &[
            "mailAlternateAddress",
            "mailForwardingAddress",
            "deliveryMode",
            "accountStatus",
            "mailHost",
        ],
        StubSchema::AdContact => &["targetAddress", "proxyAddresses"],
    }
}

/// The style's name in the configuration.
fn style_key(style: StubSchema) -> &'static str {
    match style {
        StubSchema::InetLocalMailRecipient => "inet_local_mail_recipient",
        StubSchema::Qmail => "qmail",
        StubSchema::AdContact => "ad_contact",
    }
}

fn contains(list: &[&str], name: &str) -> bool {
    list.iter().any(|x| x.eq_ignore_ascii_case(name))
}

/// `a, b and c`.
fn join(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Checks `schema` against what the stub style writes: `Ok` with what was
/// found, or `Err` naming what is missing and what to do.
pub fn check(schema: &Schema, needs: &Needs) -> Result<String, String> {
    let style = needs.style;
    let own_classes = style_classes(style);
    let own_attributes = style_attributes(style);
    let missing_classes: Vec<String> = needs
        .classes
        .iter()
        .filter(|c| schema.class(c).is_none())
        .cloned()
        .collect();
    let missing_attributes: Vec<String> = needs
        .attributes
        .iter()
        .filter(|a| !a.eq_ignore_ascii_case(&needs.marker) && schema.attribute(a).is_none())
        .cloned()
        .collect();
    let marker_defined = schema.attribute(&needs.marker).is_some();
    let class_refs: Vec<&str> = needs.classes.iter().map(String::as_str).collect();
    let allowed = schema.allowed(&class_refs);
    // Whether the classes allow an attribute is only worth saying when the
    // classes are all there (a missing class explains the rest).
    let not_allowed: Vec<String> = if missing_classes.is_empty() {
        needs
            .attributes
            .iter()
            .filter(|a| !a.eq_ignore_ascii_case(&needs.marker))
            .filter(|a| schema.attribute(a).is_some() && !schema.is_allowed(&allowed, a))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let marker_allowed = marker_defined && schema.is_allowed(&allowed, &needs.marker);
    let classes_text = join(&needs.classes);

    let mut problems: Vec<String> = Vec::new();
    if !missing_classes.is_empty() || !missing_attributes.is_empty() {
        let mut lacks = Vec::new();
        if !missing_classes.is_empty() {
            let word = if missing_classes.len() == 1 {
                "objectClass"
            } else {
                "the object classes"
            };
            lacks.push(format!("{word} {}", join(&missing_classes)));
        }
        if !missing_attributes.is_empty() {
            let word = if missing_attributes.len() == 1 {
                "the attribute type"
            } else {
                "the attribute types"
            };
            lacks.push(format!("{word} {}", join(&missing_attributes)));
        }
        problems.push(format!(
            "stub_schema \"{}\" writes stubs with objectClass {classes_text}, but the server's schema lacks {}",
            style_key(style),
            lacks.join(" and ")
        ));
    }
    let own_missing = missing_classes.iter().any(|c| contains(own_classes, c))
        || missing_attributes
            .iter()
            .any(|a| contains(own_attributes, a));
    let base_missing = missing_classes.iter().any(|c| !contains(own_classes, c))
        || missing_attributes
            .iter()
            .any(|a| !contains(own_attributes, a));
    if own_missing {
        problems.push(style_advice(schema, style, &missing_attributes));
    }
    if base_missing {
        problems.push(match style {
            StubSchema::AdContact => "the other classes and attributes are in every Active Directory schema: is this really Active Directory (check flavor and url)?".to_string(),
            _ => "load the standard person schemas into the server (core.schema, cosine.schema and inetorgperson.schema: top, person, organizationalPerson, inetOrgPerson)".to_string(),
        });
    }
    if !not_allowed.is_empty() {
        let targets = not_allowed
            .iter()
            .any(|a| a.eq_ignore_ascii_case("targetAddress"));
        let mut text = format!(
            "the server defines {} but objectClass {classes_text} do not allow {} on this server (its schema differs from the standard one)",
            join(&not_allowed),
            if not_allowed.len() == 1 { "it" } else { "them" }
        );
        if targets {
            text.push_str("; allow targetAddress on contact as Exchange's schema preparation does (it adds targetAddress to mailRecipient, the auxiliary class of contact)");
        } else {
            text.push_str("; add them to the classes' MAY lists, or choose another stub_schema");
        }
        problems.push(text);
    }
    if !marker_defined {
        problems.push(format!(
            "marker_attribute `{}` is not an attribute type of this server: set marker_attribute to an attribute the stub's classes allow (the default, description, is one)",
            needs.marker
        ));
    } else if !marker_allowed && missing_classes.is_empty() {
        problems.push(format!(
            "marker_attribute `{}` is defined, but objectClass {classes_text} do not allow it, so no stub could carry coexist's marker: set marker_attribute to one they allow, such as description",
            needs.marker
        ));
    }
    if problems.is_empty() {
        let attrs: Vec<String> = needs
            .attributes
            .iter()
            .map(|a| {
                schema
                    .attribute(a)
                    .map_or(a.as_str(), Definition::display_name)
                    .to_string()
            })
            .collect();
        let classes: Vec<String> = needs
            .classes
            .iter()
            .map(|c| {
                schema
                    .class(c)
                    .map_or(c.as_str(), Definition::display_name)
                    .to_string()
            })
            .collect();
        return Ok(format!(
            "stub_schema \"{}\": the server defines objectClass {} and the attribute types {}, all allowed on a stub (marker_attribute {} included)",
            style_key(style),
            join(&classes),
            join(&attrs),
            needs.marker
        ));
    }
    let mut detail = problems.join("; ");
    if schema.unparsed > 0 {
        detail.push_str(&format!(
            " ({} description(s) of the server's schema could not be parsed and were left out, the first {}; what is reported missing may be among them)",
            schema.unparsed,
            schema.first_unparsed.as_deref().unwrap_or("")
        ));
    }
    Err(detail)
}

/// What to do when the style's own class or attributes are missing.
fn style_advice(schema: &Schema, style: StubSchema, missing_attributes: &[String]) -> String {
    match style {
        StubSchema::InetLocalMailRecipient => {
            let mut text = "inetLocalMailRecipient, mailLocalAddress, mailRoutingAddress and mailHost come with OpenLDAP's misc.schema: load misc.schema into the server".to_string();
            if schema.class("qmailUser").is_some() {
                text.push_str(
                    ", or set stub_schema = \"qmail\": this server has qmail-ldap's qmailUser",
                );
            } else {
                text.push_str(", or set stub_schema = \"qmail\" on a qmail-ldap server");
            }
            text
        }
        StubSchema::Qmail => {
            let mut text = "qmailUser, mailAlternateAddress, mailForwardingAddress, deliveryMode and accountStatus come with qmail-ldap's qmail.schema: load qmail.schema into the server".to_string();
            if schema.class("inetLocalMailRecipient").is_some() {
                text.push_str(", or set stub_schema = \"inet_local_mail_recipient\": this server has inetLocalMailRecipient (misc.schema)");
            }
            text
        }
        StubSchema::AdContact => {
            let mut parts = Vec::new();
            if missing_attributes
                .iter()
                .any(|a| a.eq_ignore_ascii_case("targetAddress"))
            {
                parts.push("extend the schema with Exchange's targetAddress (Exchange schema preparation, `Setup.exe /PrepareSchema`; on Samba AD, add the attribute targetAddress and allow it on contact as that preparation does)");
            }
            if missing_attributes
                .iter()
                .any(|a| a.eq_ignore_ascii_case("proxyAddresses"))
            {
                parts.push("proxyAddresses is in every Active Directory schema: is this really Active Directory (check flavor and url)?");
            }
            if parts.is_empty() {
                parts.push("the class contact is in every Active Directory schema: is this really Active Directory (check flavor and url)?");
            }
            parts.join("; ")
        }
    }
}

/// Why the server's schema could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaReadError {
    /// Neither the root DSE nor the stub OU names a subschema subentry.
    #[error("neither the root DSE nor {stub_base} shows a subschemaSubentry to the bind DN{why}")]
    NoSubentry {
        stub_base: String,
        /// ` (…)`: what the failed reads said, if any failed.
        why: String,
    },
    /// The search of the subentry failed.
    #[error("reading the subschema entry {dn} failed: {detail}")]
    Search { dn: String, detail: String },
    /// The entry was read, but without the descriptions.
    #[error("the bind DN can read {dn} but is shown no objectClasses or attributeTypes in it")]
    Hidden { dn: String },
}

impl SchemaReadError {
    /// The subentry DN, when known.
    fn dn(&self) -> Option<&str> {
        match self {
            SchemaReadError::NoSubentry { .. } => None,
            SchemaReadError::Search { dn, .. } | SchemaReadError::Hidden { dn } => Some(dn),
        }
    }
}

/// The subschema subentry's DN: the root DSE's `subschemaSubentry`, else
/// that of the stub OU (RFC 4512 4.2: every entry names its own).
async fn subentry_dn(
    ldap: &mut Ldap,
    timeout: Duration,
    stub_base: &str,
) -> Result<String, SchemaReadError> {
    let mut failures = Vec::new();
    for base in ["", stub_base] {
        let what = if base.is_empty() {
            "the root DSE".to_string()
        } else {
            base.to_string()
        };
        let result = match ldap
            .with_timeout(timeout)
            .search(
                base,
                Scope::Base,
                "(objectClass=*)",
                vec!["subschemaSubentry"],
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("reading {what}: {e}"));
                continue;
            }
        };
        if result.1.rc != rc::SUCCESS {
            failures.push(format!("reading {what}: {}", error::describe(&result.1)));
        }
        let dn = result
            .0
            .into_iter()
            .filter(|e| !e.is_ref())
            .map(SearchEntry::construct)
            .find_map(|e| {
                e.attrs
                    .into_iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("subschemaSubentry"))
                    .and_then(|(_, v)| v.into_iter().map(|s| s.trim().to_string()).next())
            })
            .filter(|dn| !dn.is_empty());
        if let Some(dn) = dn {
            return Ok(dn);
        }
    }
    Err(SchemaReadError::NoSubentry {
        stub_base: stub_base.to_string(),
        why: if failures.is_empty() {
            String::new()
        } else {
            format!(" ({})", failures.join("; "))
        },
    })
}

/// The three description attributes read from the subentry.
const DESCRIPTION_ATTRIBUTES: [&str; 3] = ["objectClasses", "attributeTypes", "dITContentRules"];

/// Reads the server's schema from its subschema subentry. Active
/// Directory hands out big multi-valued attributes in ranges
/// (`attributeTypes;range=0-1499`): the rest is asked for until the last
/// range (`…-*`) has come.
pub async fn read(
    system: &str,
    ldap: &mut Ldap,
    timeout: Duration,
    stub_base: &str,
) -> Result<Schema, SchemaReadError> {
    let dn = subentry_dn(ldap, timeout, stub_base).await?;
    let mut values: HashMap<&str, Vec<String>> = HashMap::new();
    let mut wanted: Vec<String> = DESCRIPTION_ATTRIBUTES
        .iter()
        .map(|a| a.to_string())
        .collect();
    // Each round fetches the next range of the attributes still ranged;
    // the bound guards against a server that never ends its ranges.
    for _round in 0..1000 {
        if wanted.is_empty() {
            break;
        }
        let result = ldap
            .with_timeout(timeout)
            .search(&dn, Scope::Base, "(objectClass=subschema)", wanted.clone())
            .await
            .map_err(|e| SchemaReadError::Search {
                dn: dn.clone(),
                detail: error::from_ldap(system, "read the schema", e).to_string(),
            })?;
        if result.1.rc != rc::SUCCESS {
            return Err(SchemaReadError::Search {
                dn: dn.clone(),
                detail: error::describe(&result.1),
            });
        }
        let Some(entry) = result
            .0
            .into_iter()
            .find(|e| !e.is_ref())
            .map(SearchEntry::construct)
        else {
            return Err(SchemaReadError::Search {
                dn: dn.clone(),
                detail: "the server returned no entry (access controls hide it)".into(),
            });
        };
        let mut next = Vec::new();
        for (key, vals) in entry.attrs {
            let (name, range) = match key.split_once(';') {
                Some((n, opts)) => (
                    n,
                    opts.strip_prefix("range=")
                        .or_else(|| opts.strip_prefix("Range=")),
                ),
                None => (key.as_str(), None),
            };
            let Some(canonical) = DESCRIPTION_ATTRIBUTES
                .iter()
                .find(|a| a.eq_ignore_ascii_case(name))
            else {
                continue;
            };
            values.entry(canonical).or_default().extend(vals);
            if let Some((_, high)) = range.and_then(|r| r.split_once('-')) {
                if let Ok(high) = high.parse::<u64>() {
                    next.push(format!("{canonical};range={}-*", high + 1));
                }
            }
        }
        wanted = next;
    }
    let get = |name: &str| values.get(name).cloned().unwrap_or_default();
    let (classes, attributes) = (get("objectClasses"), get("attributeTypes"));
    if classes.is_empty() || attributes.is_empty() {
        return Err(SchemaReadError::Hidden { dn });
    }
    Ok(Schema::from_descriptions(
        &classes,
        &attributes,
        &get("dITContentRules"),
    ))
}

/// The doctor's finding on whether the server's schema holds what the
/// configured stub style writes. Never fails: an unreadable schema is a
/// failed finding saying so.
pub async fn doctor_finding(writer: &Writer, ldap: &mut Ldap) -> Finding {
    let needs = Needs::of(writer);
    let failed = |detail: String| Finding::new(CHECK, false, detail);
    let schema = match read(&writer.system, ldap, writer.timeout, &writer.stub_base).await {
        Ok(s) => s,
        Err(e) => {
            let access = match e.dn() {
                Some(dn) if dn.eq_ignore_ascii_case("cn=Subschema") => format!(
                    "grant the bind DN read access to {dn} (OpenLDAP: `access to dn.base=\"cn=Subschema\" by users read`)"
                ),
                Some(dn) => format!("grant the bind DN read access to {dn}"),
                None => "grant the bind DN read access to the root DSE and its subschemaSubentry".to_string(),
            };
            return failed(format!(
                "cannot read the server's schema: {e}; {access}, then run doctor again. Until then coexist cannot tell whether the server holds what stub_schema \"{}\" writes (objectClass {})",
                style_key(needs.style),
                join(&needs.classes)
            ));
        }
    };
    match check(&schema, &needs) {
        Ok(detail) => Finding::new(CHECK, true, detail),
        Err(detail) => failed(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_parse_with_one_or_many_names_and_lists() {
        let d = parse_description(
            "( 2.16.840.1.113730.3.2.147 NAME 'inetLocalMailRecipient' DESC 'Internet local mail recipient' SUP top AUXILIARY MAY ( mailLocalAddress $ mailHost $ mailRoutingAddress ) )",
        )
        .unwrap();
        assert_eq!(d.oid, "2.16.840.1.113730.3.2.147");
        assert_eq!(d.names, ["inetLocalMailRecipient"]);
        assert_eq!(d.sup, ["top"]);
        assert!(d.must.is_empty());
        assert_eq!(
            d.may,
            ["mailLocalAddress", "mailHost", "mailRoutingAddress"]
        );

        let cn = parse_description(
            "( 2.5.4.3 NAME ( 'cn' 'commonName' ) DESC 'RFC4519: common name(s) for which the entity is known by' SUP name )",
        )
        .unwrap();
        assert_eq!(cn.names, ["cn", "commonName"]);
        assert_eq!(cn.sup, ["name"]);

        let person = parse_description(
            "( 2.5.6.6 NAME 'person' DESC 'RFC2256: a person' SUP top STRUCTURAL MUST ( sn $ cn ) MAY ( userPassword $ telephoneNumber $ seeAlso $ description ) )",
        )
        .unwrap();
        assert_eq!(person.must, ["sn", "cn"]);
        assert_eq!(person.may.len(), 4);
        // A single MUST without parentheses.
        let q = parse_description(
            "( 1.3.6.1.4.1.7914.1.2.2.1 NAME 'qmailUser' DESC 'QMail-LDAP User' SUP top AUXILIARY MUST mail MAY ( uid $ mailHost ) )",
        )
        .unwrap();
        assert_eq!(q.must, ["mail"]);
        assert_eq!(q.may, ["uid", "mailHost"]);
    }

    #[test]
    fn samba_and_openldap_attribute_types_parse() {
        // Samba: `MUST (cn )`, quoted SYNTAX.
        let contact = parse_description(
            "( 1.2.840.113556.1.5.15 NAME 'contact' SUP organizationalPerson STRUCTURAL MUST (cn ) MAY (msDS-SourceObjectDN $ targetAddress $ notes ) )",
        )
        .unwrap();
        assert_eq!(contact.must, ["cn"]);
        assert_eq!(
            contact.may,
            ["msDS-SourceObjectDN", "targetAddress", "notes"]
        );
        let target = parse_description(
            "( 1.2.840.113556.1.2.352 NAME 'targetAddress' SYNTAX '1.3.6.1.4.1.1466.115.121.1.15' SINGLE-VALUE )",
        )
        .unwrap();
        assert_eq!(target.names, ["targetAddress"]);
        // OpenLDAP: SYNTAX with a length, flags, X- extensions with lists.
        let mail = parse_description(
            "( 0.9.2342.19200300.100.1.3 NAME ( 'mail' 'rfc822Mailbox' ) DESC 'RFC1274: RFC822 Mailbox' EQUALITY caseIgnoreIA5Match SUBSTR caseIgnoreIA5SubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.26{256} X-ORIGIN ( 'RFC 1274' 'x' ) X-ORDERED 'VALUES' )",
        )
        .unwrap();
        assert_eq!(mail.names, ["mail", "rfc822Mailbox"]);
        assert!(mail.sup.is_empty());
        // A DIT content rule.
        let rule = parse_description(
            "( 1.2.840.113556.1.5.15 NAME 'contact' AUX ( mailRecipient ) MUST (cn ) MAY (targetAddress $ secretary ) )",
        )
        .unwrap();
        assert_eq!(rule.aux, ["mailRecipient"]);
        // No space before the closing parenthesis, and none after the opening.
        let tight = parse_description("(1.2.3 NAME 'x' MAY (a $ b))").unwrap();
        assert_eq!(tight.oid, "1.2.3");
        assert_eq!(tight.may, ["a", "b"]);
    }

    #[test]
    fn bad_descriptions_are_errors_not_panics() {
        assert_eq!(
            parse_description("2.5.6.6 NAME 'person'"),
            Err(DescriptionError::NoOpening)
        );
        assert_eq!(parse_description("( )"), Err(DescriptionError::NoOid));
        assert_eq!(
            parse_description("( 2.5.6.6 NAME 'person"),
            Err(DescriptionError::UnclosedQuote)
        );
        assert_eq!(
            parse_description("( 2.5.6.6 NAME 'person' MAY ( a $ b )"),
            Err(DescriptionError::Unclosed)
        );
        assert_eq!(
            parse_description("( 2.5.6.6 NAME )"),
            Err(DescriptionError::MissingValue("NAME".into()))
        );
        assert!(parse_description("").is_err());
        assert_eq!(
            parse_description("( 1.2 'stray' )"),
            Err(DescriptionError::Unexpected("'stray'".into()))
        );
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// A small OpenLDAP-like schema: core + inetOrgPerson (+ misc, + qmail).
    fn openldap(misc: bool, qmail: bool) -> Schema {
        let mut classes = strings(&[
            "( 2.5.6.0 NAME 'top' ABSTRACT MUST objectClass )",
            "( 2.5.6.6 NAME 'person' SUP top STRUCTURAL MUST ( sn $ cn ) MAY ( telephoneNumber $ description ) )",
            "( 2.5.6.7 NAME 'organizationalPerson' SUP person STRUCTURAL MAY ( title $ ou ) )",
            "( 2.16.840.1.113730.3.2.2 NAME 'inetOrgPerson' SUP organizationalPerson STRUCTURAL MAY ( departmentNumber $ displayName $ givenName $ mail $ mobile $ o $ uid ) )",
        ]);
        let mut attributes = strings(&[
            "( 2.5.4.0 NAME 'objectClass' )",
            "( 2.5.4.41 NAME 'name' )",
            "( 2.5.4.3 NAME ( 'cn' 'commonName' ) SUP name )",
            "( 2.5.4.4 NAME ( 'sn' 'surname' ) SUP name )",
            "( 2.5.4.20 NAME 'telephoneNumber' )",
            "( 2.5.4.13 NAME 'description' )",
            "( 2.5.4.12 NAME 'title' SUP name )",
            "( 2.5.4.11 NAME ( 'ou' 'organizationalUnitName' ) SUP name )",
            "( 2.16.840.1.113730.3.1.2 NAME 'departmentNumber' )",
            "( 2.16.840.1.113730.3.1.241 NAME 'displayName' )",
            "( 2.5.4.42 NAME ( 'givenName' 'gn' ) SUP name )",
            "( 0.9.2342.19200300.100.1.3 NAME ( 'mail' 'rfc822Mailbox' ) )",
            "( 0.9.2342.19200300.100.1.41 NAME ( 'mobile' 'mobileTelephoneNumber' ) )",
            "( 2.5.4.10 NAME ( 'o' 'organizationName' ) SUP name )",
            "( 2.5.4.35 NAME 'userPassword' )",
            "( 1.1.1 NAME 'uid' )",
            "( 1.1.2 NAME 'nickName' SUP displayName )",
        ]);
        if misc {
            classes.push("( 2.16.840.1.113730.3.2.147 NAME 'inetLocalMailRecipient' SUP top AUXILIARY MAY ( mailLocalAddress $ mailHost $ mailRoutingAddress ) )".into());
            attributes.extend(strings(&[
                "( 2.16.840.1.113730.3.1.13 NAME 'mailLocalAddress' )",
                "( 2.16.840.1.113730.3.1.18 NAME 'mailHost' )",
                "( 2.16.840.1.113730.3.1.47 NAME 'mailRoutingAddress' )",
            ]));
        }
        if qmail {
            classes.push("( 1.3.6.1.4.1.7914.1.2.2.1 NAME 'qmailUser' SUP top AUXILIARY MUST mail MAY ( uid $ mailAlternateAddress $ mailHost $ mailForwardingAddress $ deliveryMode $ accountStatus ) )".into());
            attributes.extend(strings(&[
                "( 1.3.6.1.4.1.7914.1.2.1.3 NAME 'mailAlternateAddress' )",
                "( 1.3.6.1.4.1.7914.1.2.1.7 NAME 'mailForwardingAddress' )",
                "( 1.3.6.1.4.1.7914.1.2.1.10 NAME 'deliveryMode' )",
                "( 1.3.6.1.4.1.7914.1.2.1.11 NAME 'accountStatus' )",
            ]));
            if !misc {
                attributes.push("( 2.16.840.1.113730.3.1.18 NAME 'mailHost' )".into());
            }
        }
        Schema::from_descriptions(&classes, &attributes, &[])
    }

    fn needs(style: StubSchema, marker: &str) -> Needs {
        let mut config = crate::config::LdapConfig::new(
            match style {
                StubSchema::AdContact => crate::config::Flavor::ActiveDirectory,
                _ => crate::config::Flavor::Openldap,
            },
            "ldap://h",
            "cn=a",
            coexist_connector::SecretRef::Env { env: "X".into() },
            vec!["dc=x".into()],
            "ou=c,dc=x",
        );
        config.stub_schema = style;
        config.marker_attribute = marker.into();
        Needs::of(&Writer::new("s", &config))
    }

    #[test]
    fn needs_follow_what_the_writer_writes() {
        let n = needs(StubSchema::InetLocalMailRecipient, "description");
        assert!(n.classes.iter().any(|c| c == "inetLocalMailRecipient"));
        for a in [
            "mailLocalAddress",
            "mailRoutingAddress",
            "mailHost",
            "description",
            "mail",
        ] {
            assert!(n.attributes.iter().any(|x| x == a), "{a}: {n:?}");
        }
        let q = needs(StubSchema::Qmail, "description");
        assert!(q.classes.iter().any(|c| c == "qmailUser"));
        assert!(q.attributes.iter().any(|x| x == "mailForwardingAddress"));
        let ad = needs(StubSchema::AdContact, "description");
        assert!(ad.classes.iter().any(|c| c == "contact"));
        assert!(ad.attributes.iter().any(|x| x == "targetAddress"));
        assert!(ad.attributes.iter().any(|x| x == "proxyAddresses"));
    }

    #[test]
    fn the_check_names_what_is_missing_and_what_to_do() {
        // The check against a server with misc.schema (like the main test
        // slapd) and against a qmail-ldap server without it.
        let on_misc = |style, marker| check(&openldap(true, false), &needs(style, marker));
        let on_qmail = |style, marker| check(&openldap(false, true), &needs(style, marker));
        let ok = on_misc(StubSchema::InetLocalMailRecipient, "description").unwrap();
        assert!(
            ok.contains("inetLocalMailRecipient") && ok.contains("mailRoutingAddress"),
            "{ok}"
        );

        let no_qmail = on_misc(StubSchema::Qmail, "description").unwrap_err();
        assert!(
            no_qmail.contains("qmailUser") && no_qmail.contains("qmail.schema"),
            "{no_qmail}"
        );
        assert!(
            no_qmail.contains("stub_schema = \"inet_local_mail_recipient\""),
            "{no_qmail}"
        );

        let no_misc = on_qmail(StubSchema::InetLocalMailRecipient, "description").unwrap_err();
        assert!(
            no_misc.contains("inetLocalMailRecipient") && no_misc.contains("misc.schema"),
            "{no_misc}"
        );
        assert!(
            no_misc.contains("this server has qmail-ldap's qmailUser"),
            "{no_misc}"
        );
        assert!(!no_misc.contains("inetorgperson.schema"), "{no_misc}");

        on_qmail(StubSchema::Qmail, "description").unwrap();

        let unknown_marker =
            on_misc(StubSchema::InetLocalMailRecipient, "coexistMarker").unwrap_err();
        assert!(
            unknown_marker.contains("marker_attribute `coexistMarker` is not an attribute type"),
            "{unknown_marker}"
        );
        // Defined, but no stub class allows it.
        let not_allowed = on_misc(StubSchema::InetLocalMailRecipient, "userPassword").unwrap_err();
        assert!(not_allowed.contains("do not allow it"), "{not_allowed}");
        // A subtype of an allowed attribute type is allowed (nickName under
        // displayName).
        let sub = on_misc(StubSchema::InetLocalMailRecipient, "nickName").unwrap();
        assert!(sub.contains("marker_attribute nickName"), "{sub}");
    }

    #[test]
    fn ad_contacts_are_allowed_through_content_rules() {
        let classes = strings(&[
            "( 2.5.6.0 NAME 'top' ABSTRACT MUST (objectClass ) MAY (description $ displayName $ proxyAddresses ) )",
            "( 2.5.6.6 NAME 'person' SUP top STRUCTURAL MUST (cn ) MAY (telephoneNumber $ sn ) )",
            "( 2.5.6.7 NAME 'organizationalPerson' SUP person STRUCTURAL MAY (title $ mobile $ givenName $ mail $ department $ company ) )",
            "( 1.2.840.113556.1.5.15 NAME 'contact' SUP organizationalPerson STRUCTURAL MUST (cn ) MAY (notes ) )",
            "( 1.2.840.113556.1.3.46 NAME 'mailRecipient' SUP top AUXILIARY MUST (cn ) MAY (targetAddress ) )",
        ]);
        let mut attributes: Vec<String> = [
            "objectClass",
            "description",
            "displayName",
            "proxyAddresses",
            "cn",
            "telephoneNumber",
            "sn",
            "title",
            "mobile",
            "givenName",
            "mail",
            "department",
            "company",
            "notes",
        ]
        .iter()
        .enumerate()
        .map(|(i, n)| format!("( 1.2.{i} NAME '{n}' )"))
        .collect();
        let no_exchange = Schema::from_descriptions(&classes, &attributes, &[]);
        let err = check(&no_exchange, &needs(StubSchema::AdContact, "description")).unwrap_err();
        assert!(
            err.contains("targetAddress") && err.contains("Exchange"),
            "{err}"
        );
        attributes.push("( 1.2.840.113556.1.2.352 NAME 'targetAddress' SYNTAX '1.3.6.1.4.1.1466.115.121.1.15' SINGLE-VALUE )".into());
        // Defined, but contact reaches mailRecipient only through the rule.
        let no_rule = Schema::from_descriptions(&classes, &attributes, &[]);
        let err = check(&no_rule, &needs(StubSchema::AdContact, "description")).unwrap_err();
        assert!(err.contains("do not allow"), "{err}");
        let rules = strings(&["( 1.2.840.113556.1.5.15 NAME 'contact' AUX ( mailRecipient ) )"]);
        let full = Schema::from_descriptions(&classes, &attributes, &rules);
        let ok = check(&full, &needs(StubSchema::AdContact, "description")).unwrap();
        assert!(
            ok.contains("contact") && ok.contains("targetAddress"),
            "{ok}"
        );
    }

    #[test]
    fn unparsable_descriptions_are_counted_and_mentioned() {
        let schema =
            Schema::from_descriptions(&strings(&["( 2.5.6.0 NAME 'top'", "nonsense"]), &[], &[]);
        assert_eq!(schema.unparsed, 2);
        let err = check(&schema, &needs(StubSchema::Qmail, "description")).unwrap_err();
        assert!(err.contains("could not be parsed"), "{err}");
    }
}
