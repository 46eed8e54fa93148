//! Directory entries and how they become recipients and stubs.
//!
//! Everything here is pure: an [`Entry`] (as read) goes in, a
//! [`Classified`] comes out. Group members are resolved later, by
//! [`crate::read`], since that may need more reads.

use std::collections::BTreeMap;

use coexist_connector::marker::{marker_value, parse_marker};
use coexist_connector::{
    normalize_address, Attributes, FoundStub, Problem, Recipient, RecipientKind, Route, Stub,
};
use ldap3::SearchEntry;

use crate::config::{DisabledWhen, Flavor, LdapConfig, ResolvedAttributes, StubSchema};

/// Attribute values above this count make an entry "huge": it is reported
/// and skipped rather than loaded.
pub const MAX_VALUES: usize = 1000;

/// The prefix of the marker attribute's second value, which records a stub's
/// kind when it is not a person (`coexist-kind:group`).
pub const KIND_PREFIX: &str = "coexist-kind:";

/// An entry as read, attribute names folded to lower case.
///
/// Entries have a few dozen attributes at most, so they are kept in small
/// vectors and looked up by a case-insensitive scan, which is cheaper than
/// hashing for every lookup of a big pull.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub dn: String,
    attrs: Vec<(String, Vec<String>)>,
    bin: Vec<(String, Vec<Vec<u8>>)>,
}

impl From<SearchEntry> for Entry {
    fn from(e: SearchEntry) -> Self {
        let mut entry = Entry::new(e.dn);
        for (k, v) in e.attrs {
            entry.push_text(&k, v);
        }
        for (k, v) in e.bin_attrs {
            entry.push_bin(&k, v);
        }
        entry
    }
}

/// The values under `name` in `list` (any case), if present.
fn lookup<'a, T>(list: &'a [(String, Vec<T>)], name: &str) -> Option<&'a Vec<T>> {
    list.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Adds `values` under `name` to `list`, merging with a name already there.
fn push<T>(list: &mut Vec<(String, Vec<T>)>, name: &str, values: Vec<T>) {
    match list.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
        Some((_, v)) => v.extend(values),
        None => list.push((name.to_ascii_lowercase(), values)),
    }
}

impl Entry {
    /// An entry built by hand (tests, and the writer's view of a stub).
    pub fn new(dn: impl Into<String>) -> Self {
        Entry {
            dn: dn.into(),
            ..Entry::default()
        }
    }

    /// Adds values to attribute `name`.
    pub fn with(mut self, name: &str, values: &[&str]) -> Self {
        self.push_text(name, values.iter().map(|v| v.to_string()).collect());
        self
    }

    /// Adds the text values of attribute `name`, as read.
    pub fn push_text(&mut self, name: &str, values: Vec<String>) {
        push(&mut self.attrs, name, values);
    }

    /// Adds the binary values of attribute `name`, as read.
    pub fn push_bin(&mut self, name: &str, values: Vec<Vec<u8>>) {
        push(&mut self.bin, name, values);
    }

    /// Adds a binary value to attribute `name`.
    pub fn with_bin(mut self, name: &str, value: &[u8]) -> Self {
        self.push_bin(name, vec![value.to_vec()]);
        self
    }

    /// The string values of attribute `name` (any case; range-suffixed AD
    /// names such as `member;range=0-1499` are matched too).
    pub fn values(&self, name: &str) -> &[String] {
        if let Some(v) = lookup(&self.attrs, name) {
            return v;
        }
        self.attrs
            .iter()
            .find(|(k, _)| {
                let k = k.as_bytes();
                k.len() > name.len()
                    && k[..name.len()].eq_ignore_ascii_case(name.as_bytes())
                    && k[name.len()..].starts_with(b";range=")
            })
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[])
    }

    /// The first string value of attribute `name`, trimmed, if not empty.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.values(name)
            .iter()
            .map(|v| v.trim())
            .find(|v| !v.is_empty())
    }

    /// The raw bytes of attribute `name`'s first value, whether the library
    /// decoded it as text or kept it binary.
    pub fn first_bytes(&self, name: &str) -> Option<&[u8]> {
        if let Some(v) = lookup(&self.bin, name).and_then(|v| v.first()) {
            return Some(v);
        }
        lookup(&self.attrs, name)
            .and_then(|v| v.first())
            .map(|s| s.as_bytes())
    }

    /// Whether the entry has object class `class` (case-insensitive).
    pub fn has_class(&self, class: &str) -> bool {
        self.values("objectClass")
            .iter()
            .any(|c| c.eq_ignore_ascii_case(class))
    }

    /// The largest value count among the attributes (members excluded).
    fn largest_attribute(&self, except: &[String]) -> Option<(&str, usize)> {
        self.attrs
            .iter()
            .filter(|(_, v)| v.len() > MAX_VALUES)
            .filter(|(k, _)| {
                let base = k.split(';').next().unwrap_or(k);
                !except.iter().any(|e| e.eq_ignore_ascii_case(base))
            })
            .map(|(k, v)| (k.as_str(), v.len()))
            .max_by_key(|(_, n)| *n)
    }
}

/// An `objectGUID` (AD's little-endian byte order) as the canonical
/// lower-case GUID string.
pub fn guid_to_string(bytes: &[u8]) -> Option<String> {
    let array: [u8; 16] = bytes.try_into().ok()?;
    Some(uuid::Uuid::from_bytes_le(array).hyphenated().to_string())
}

/// The `objectGUID` bytes of a canonical GUID string (for filters).
pub fn guid_to_bytes(guid: &str) -> Option<[u8; 16]> {
    uuid::Uuid::parse_str(guid).ok().map(|u| u.to_bytes_le())
}

/// An RFC 4533 entryUUID (16 bytes, network order) as its text form.
pub fn uuid_to_string(bytes: &[u8]) -> Option<String> {
    let array: [u8; 16] = bytes.try_into().ok()?;
    Some(uuid::Uuid::from_bytes(array).hyphenated().to_string())
}

/// What an entry turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Classified {
    /// A recipient, with the member DNs still to resolve (groups).
    Recipient {
        recipient: Recipient,
        member_dns: Vec<String>,
        /// Problems with parts of the entry (an invalid alias) that did not
        /// stop it from being read.
        warnings: Vec<Problem>,
    },
    /// One of coexist's stubs.
    Stub(FoundStub),
    /// An entry of an address book of coexist's (it carries the book's
    /// marker, [`coexist_connector::address_book`]): never a recipient, a
    /// stub or a foreign entry of the system; its own connector reads it.
    AddressBookEntry,
    /// A malformed entry, skipped.
    Problem(Problem),
}

/// The addresses in `proxyAddresses`: the `SMTP:` primary and the `smtp:`
/// secondaries; other address types (X500:, SIP:, X400:) are ignored.
pub fn parse_proxy_addresses(values: &[String]) -> (Option<String>, Vec<String>) {
    let mut primary = None;
    let mut secondary = Vec::new();
    for v in values {
        let v = v.trim();
        if let Some(a) = v.strip_prefix("SMTP:") {
            if primary.is_none() {
                primary = Some(a.trim().to_string());
            } else {
                secondary.push(a.trim().to_string());
            }
        } else if v.len() > 5 && v[..5].eq_ignore_ascii_case("smtp:") {
            secondary.push(v[5..].trim().to_string());
        }
    }
    (primary, secondary)
}

/// The normalised form of an address (see [`normalize_address`]), with a
/// fast path for the common plain-ASCII case that needs no IDNA work.
pub fn normalize(address: &str) -> Option<String> {
    let a = address.trim();
    if a.is_ascii() {
        if let Some(at) = a.rfind('@') {
            let (local, domain) = (&a[..at], &a[at + 1..]);
            let plain_domain = domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
                && !domain.starts_with("xn--")
                && !domain.contains(".xn--")
                && domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            let plain_local =
                !local.is_empty() && local.bytes().all(|b| b.is_ascii_graphic() && b != b'@');
            if plain_domain && plain_local {
                return Some(a.to_ascii_lowercase());
            }
        }
    }
    normalize_address(a).ok()
}

/// Strips an `SMTP:` / `smtp:` prefix (as in `targetAddress`).
pub fn strip_smtp(value: &str) -> &str {
    let v = value.trim();
    if v.len() > 5 && v[..5].eq_ignore_ascii_case("smtp:") {
        v[5..].trim()
    } else {
        v
    }
}

/// The context in which entries are classified.
#[derive(Debug, Clone)]
pub struct Mapper {
    pub flavor: Flavor,
    pub schema: StubSchema,
    pub attrs: ResolvedAttributes,
    pub marker_attribute: String,
    pub extra_attributes: Vec<String>,
    /// The rules that make an account disabled (`disabled_when`).
    pub disabled_when: Vec<DisabledWhen>,
    /// The exceptions to those rules (`disabled_unless`).
    pub disabled_unless: Vec<DisabledWhen>,
}

impl Mapper {
    pub fn new(config: &LdapConfig) -> Self {
        Mapper {
            flavor: config.flavor,
            schema: config.stub_schema,
            attrs: config.attributes(),
            marker_attribute: config.marker_attribute.clone(),
            extra_attributes: config.extra_attributes.clone(),
            disabled_when: config.disabled_when.clone(),
            disabled_unless: config.disabled_unless.clone(),
        }
    }

    /// The attributes every read asks for.
    pub fn read_attributes(&self) -> Vec<String> {
        let a = &self.attrs;
        let mut names: Vec<String> = vec![
            "objectClass".into(),
            a.anchor.clone(),
            a.mail.clone(),
            a.display_name.clone(),
            "cn".into(),
            a.given_name.clone(),
            a.surname.clone(),
            a.business_phone.clone(),
            a.mobile_phone.clone(),
            a.title.clone(),
            a.department.clone(),
            a.company.clone(),
            self.marker_attribute.clone(),
        ];
        names.extend(a.aliases.iter().cloned());
        names.extend(a.members.iter().cloned());
        names.extend(self.extra_attributes.iter().cloned());
        // Operational attributes (pwdAccountLockedTime) come only when named.
        names.extend(
            self.disabled_when
                .iter()
                .chain(&self.disabled_unless)
                .map(|rule| rule.attribute().to_string()),
        );
        match self.flavor {
            Flavor::Openldap => names.extend(
                [
                    "ou",
                    "entryCSN",
                    "modifyTimestamp",
                    "mailRoutingAddress",
                    "mailHost",
                    "mailLocalAddress",
                    "mailForwardingAddress",
                    "mailAlternateAddress",
                    "deliveryMode",
                ]
                .map(String::from),
            ),
            Flavor::ActiveDirectory => names.extend(
                [
                    "proxyAddresses",
                    "targetAddress",
                    "uSNChanged",
                    "department",
                    "company",
                ]
                .map(String::from),
            ),
        }
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.to_ascii_lowercase()));
        names
    }

    /// The entry's anchor (entryUUID / objectGUID), as text.
    pub fn anchor(&self, entry: &Entry) -> Option<String> {
        let name = &self.attrs.anchor;
        if name.eq_ignore_ascii_case("objectGUID") {
            return entry.first_bytes(name).and_then(guid_to_string);
        }
        entry.first(name).map(|s| s.to_ascii_lowercase())
    }

    /// The anchor in the entry's marker, if it carries one.
    pub fn marker_anchor(&self, entry: &Entry) -> Option<String> {
        entry
            .values(&self.marker_attribute)
            .iter()
            .find_map(|v| parse_marker(v.trim()).map(str::to_string))
    }

    /// Classifies one entry.
    pub fn classify(&self, entry: &Entry) -> Classified {
        let problem = |message: String| {
            Classified::Problem(Problem {
                object: entry.dn.clone(),
                message,
            })
        };
        if entry
            .values(&self.marker_attribute)
            .iter()
            .any(|v| coexist_connector::address_book::parse_book_marker(v.trim()).is_some())
        {
            return Classified::AddressBookEntry;
        }
        let Some(anchor) = self.anchor(entry) else {
            return problem(format!(
                "the entry has no {} (the anchor coexist keys it on); skipped",
                self.attrs.anchor
            ));
        };
        if let Some(marker) = self.marker_anchor(entry) {
            return match self.stub(entry, anchor, marker) {
                Ok(stub) => Classified::Stub(stub),
                Err(message) => problem(message),
            };
        }
        if let Some((name, n)) = entry.largest_attribute(&self.attrs.members) {
            if n > MAX_VALUES {
                return problem(format!(
                    "attribute {name} has {n} values (more than {MAX_VALUES}); the entry is skipped, clean it up"
                ));
            }
        }
        self.recipient(entry, anchor)
    }

    fn recipient(&self, entry: &Entry, anchor: String) -> Classified {
        let problem = |message: String| {
            Classified::Problem(Problem {
                object: entry.dn.clone(),
                message,
            })
        };
        let a = &self.attrs;
        let mut warnings = Vec::new();
        let mut addresses: Vec<String> = Vec::new();
        let mut primary: Option<String> = None;
        for alias_attr in &a.aliases {
            if alias_attr.eq_ignore_ascii_case("proxyAddresses") {
                let (p, s) = parse_proxy_addresses(entry.values(alias_attr));
                if primary.is_none() {
                    primary = p;
                }
                addresses.extend(s);
            } else {
                addresses.extend(
                    entry
                        .values(alias_attr)
                        .iter()
                        .map(|v| v.trim().to_string()),
                );
            }
        }
        let mails: Vec<String> = entry
            .values(&a.mail)
            .iter()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        let primary = match (primary, mails.first()) {
            (Some(p), _) => {
                addresses.extend(mails.iter().cloned());
                p
            }
            (None, Some(m)) => {
                addresses.extend(mails.iter().skip(1).cloned());
                m.clone()
            }
            // An entry known by its alias addresses alone (an OpenLDAP
            // alias or list with mailLocalAddress and no mail): the first
            // valid one is its primary, the others its aliases.
            (None, None) => match addresses.iter().position(|v| normalize(v).is_some()) {
                Some(first) => addresses.remove(first),
                None => {
                    return problem(format!(
                        "the entry has no {} and no address in {} (no primary address); skipped",
                        a.mail,
                        a.aliases.join(", ")
                    ))
                }
            },
        };
        let Some(primary_norm) = normalize(&primary) else {
            return problem(format!(
                "the primary address `{primary}` is not a valid email address; skipped"
            ));
        };
        let mut seen = rustc_hash::FxHashSet::default();
        seen.insert(primary_norm);
        let mut aliases = Vec::new();
        for addr in addresses {
            if addr.is_empty() {
                continue;
            }
            match normalize(&addr) {
                Some(n) => {
                    if seen.insert(n) {
                        aliases.push(addr);
                    }
                }
                None => warnings.push(Problem {
                    object: entry.dn.clone(),
                    message: format!("the address `{addr}` is not valid and was ignored"),
                }),
            }
        }
        let is_group = entry.has_class("group")
            || entry.has_class("groupOfNames")
            || entry.has_class("groupOfUniqueNames");
        let kind = if is_group {
            RecipientKind::Group
        } else {
            RecipientKind::Person
        };
        let (mailbox, forwards_to) = self.delivery(entry);
        let now = unix_now();
        let enabled = !self
            .disabled_when
            .iter()
            .any(|rule| disables(rule, entry, now))
            || self
                .disabled_unless
                .iter()
                .any(|rule| disables(rule, entry, now));
        let attributes = self.attributes(entry);
        let mut member_dns = Vec::new();
        if is_group {
            for m in &a.members {
                member_dns.extend(entry.values(m).iter().cloned());
            }
        }
        let mut extra = BTreeMap::new();
        for name in &self.extra_attributes {
            if let Some(v) = entry.first(name) {
                extra.insert(name.clone(), v.to_string());
            }
        }
        let etag = match self.flavor {
            Flavor::Openldap => entry.first("entryCSN").map(str::to_string),
            Flavor::ActiveDirectory => entry.first("uSNChanged").map(str::to_string),
        };
        Classified::Recipient {
            recipient: Recipient {
                anchor,
                kind,
                primary_address: primary,
                aliases,
                mailbox,
                enabled,
                attributes,
                members: Vec::new(),
                forwards_to,
                extra,
                locator: Some(entry.dn.clone()),
                etag,
            },
            member_dns,
            warnings,
        }
    }

    /// Whether the entry holds a mailbox here, and where it forwards if not.
    fn delivery(&self, entry: &Entry) -> (bool, Option<String>) {
        match self.flavor {
            Flavor::ActiveDirectory => {
                let target = entry
                    .first("targetAddress")
                    .map(|t| strip_smtp(t).to_string());
                if entry.has_class("contact") {
                    let to = target.or_else(|| entry.first(&self.attrs.mail).map(str::to_string));
                    (false, to)
                } else if let Some(t) = target {
                    (false, Some(t))
                } else {
                    (true, None)
                }
            }
            Flavor::Openldap => {
                if let Some(r) = entry.first("mailRoutingAddress") {
                    return (false, Some(r.to_string()));
                }
                // qmail-ldap: `forwardonly`, and since 20030901 `nolocal`
                // (older alias `nombox`), turn local delivery off.
                let forwardonly = entry.values("deliveryMode").iter().any(|m| {
                    let m = m.trim();
                    ["forwardonly", "nolocal", "nombox"]
                        .iter()
                        .any(|f| m.eq_ignore_ascii_case(f))
                });
                match entry.first("mailForwardingAddress") {
                    Some(f) if forwardonly => (false, Some(f.to_string())),
                    _ => (true, None),
                }
            }
        }
    }

    fn attributes(&self, entry: &Entry) -> Attributes {
        let a = &self.attrs;
        let get = |name: &str| entry.first(name).map(str::to_string);
        let display_name = get(&a.display_name).or_else(|| match self.flavor {
            Flavor::Openldap => get("cn"),
            Flavor::ActiveDirectory => None,
        });
        let department = get(&a.department).or_else(|| match self.flavor {
            Flavor::Openldap if a.department.eq_ignore_ascii_case("departmentNumber") => get("ou"),
            _ => None,
        });
        Attributes {
            display_name,
            given_name: get(&a.given_name),
            surname: get(&a.surname),
            business_phone: get(&a.business_phone),
            mobile_phone: get(&a.mobile_phone),
            title: get(&a.title),
            department,
            company: get(&a.company),
        }
    }

    /// Reads one of coexist's stubs back.
    fn stub(&self, entry: &Entry, id: String, anchor: String) -> Result<FoundStub, String> {
        let kind = entry
            .values(&self.marker_attribute)
            .iter()
            .find_map(|v| v.trim().strip_prefix(KIND_PREFIX))
            .map(|k| match k {
                "group" => RecipientKind::Group,
                "shared_mailbox" => RecipientKind::SharedMailbox,
                "resource" => RecipientKind::Resource,
                _ => RecipientKind::Person,
            })
            .unwrap_or(RecipientKind::Person);
        let primary = entry
            .first("mail")
            .map(str::to_string)
            .ok_or_else(|| "a coexist stub without mail; it will be rewritten".to_string())?;
        let primary_norm = normalize_address(&primary).ok();
        let mut aliases: Vec<String> = match self.schema {
            StubSchema::InetLocalMailRecipient => entry.values("mailLocalAddress").to_vec(),
            StubSchema::Qmail => entry.values("mailAlternateAddress").to_vec(),
            StubSchema::AdContact => parse_proxy_addresses(entry.values("proxyAddresses")).1,
        };
        aliases.retain(|a| normalize_address(a).ok() != primary_norm || primary_norm.is_none());
        aliases.sort();
        aliases.dedup();
        let route = match self.schema {
            StubSchema::InetLocalMailRecipient => {
                if let Some(r) = entry.first("mailRoutingAddress") {
                    Route::Address(r.to_string())
                } else if let Some(h) = entry.first("mailHost") {
                    Route::Host(h.to_string())
                } else {
                    Route::DomainRouting
                }
            }
            StubSchema::Qmail => {
                if let Some(r) = entry.first("mailForwardingAddress") {
                    Route::Address(r.to_string())
                } else if let Some(h) = entry.first("mailHost") {
                    Route::Host(h.to_string())
                } else {
                    Route::DomainRouting
                }
            }
            StubSchema::AdContact => match entry.first("targetAddress") {
                Some(t) => Route::Address(strip_smtp(t).to_string()),
                None => Route::DomainRouting,
            },
        };
        let get = |name: &str| entry.first(name).map(str::to_string);
        let display_name = get("displayName");
        let given_name = get("givenName");
        let mut surname = get("sn");
        if self.schema != StubSchema::AdContact
            && surname.is_some()
            && surname == Some(derived_surname(display_name.as_deref(), &primary))
        {
            // The writer filled the mandatory `sn` in; it was not a surname.
            surname = None;
        }
        let attributes = Attributes {
            display_name,
            given_name,
            surname,
            business_phone: get("telephoneNumber"),
            mobile_phone: get("mobile"),
            title: get("title"),
            department: match self.schema {
                StubSchema::AdContact => get("department"),
                _ => get("departmentNumber"),
            },
            company: match self.schema {
                StubSchema::AdContact => get("company"),
                _ => get("o"),
            },
        };
        Ok(FoundStub {
            id,
            locator: entry.dn.clone(),
            misplaced: false,
            stub: Stub {
                anchor,
                kind,
                primary_address: primary,
                aliases,
                route,
                attributes,
            },
        })
    }
}

/// Seconds since 1970-01-01 UTC, now.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Whether `rule` makes `entry` a disabled account at `now` (seconds since
/// 1970-01-01 UTC). See [`DisabledWhen`] for what each rule means.
pub fn disables(rule: &DisabledWhen, entry: &Entry, now: i64) -> bool {
    let values = entry.values(rule.attribute());
    let mut values = values.iter().map(|v| v.trim()).filter(|v| !v.is_empty());
    match rule {
        DisabledWhen::Equals { values: wanted, .. } => {
            values.any(|v| wanted.iter().any(|w| w.trim().eq_ignore_ascii_case(v)))
        }
        DisabledWhen::Present { .. } => values.next().is_some(),
        DisabledWhen::DayPassed { .. } => values.any(|v| {
            v.parse::<i64>()
                .is_ok_and(|day| day >= 0 && day <= now.div_euclid(86_400))
        }),
        DisabledWhen::TimePassed { .. } => {
            values.any(|v| generalized_time_seconds(v).is_none_or(|at| at <= now))
        }
        DisabledWhen::BitsSet { mask, .. } => values.any(|v| {
            // userAccountControl is a signed 32-bit integer on the wire.
            v.parse::<i64>()
                .is_ok_and(|n| u64::from_ne_bytes(n.to_ne_bytes()) & mask != 0)
        }),
    }
}

/// A GeneralizedTime (RFC 4517 3.3.13: `YYYYMMDDHH[MM[SS]][.f](Z|±HH[MM])`)
/// as seconds since 1970-01-01 UTC (negative before); `None` when it is not
/// one.
pub fn generalized_time_seconds(text: &str) -> Option<i64> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits < 10 || digits % 2 != 0 || digits > 14 {
        return None;
    }
    let num = |from: usize, len: usize| t.get(from..from + len)?.parse::<i64>().ok();
    let (year, month, day, hour) = (num(0, 4)?, num(4, 2)?, num(6, 2)?, num(8, 2)?);
    let minute = if digits >= 12 { num(10, 2)? } else { 0 };
    let second = if digits >= 14 { num(12, 2)? } else { 0 };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &t[digits..];
    if let Some(fraction) = rest.strip_prefix(['.', ',']) {
        let n = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &fraction[n..];
    }
    let offset = match rest.as_bytes().first() {
        Some(b'Z') if rest.len() == 1 => 0,
        Some(sign @ (b'+' | b'-')) => {
            let hhmm = &rest[1..];
            if !(hhmm.len() == 2 || hhmm.len() == 4) || !hhmm.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let h: i64 = hhmm[..2].parse().ok()?;
            let m: i64 = if hhmm.len() == 4 {
                hhmm[2..].parse().ok()?
            } else {
                0
            };
            let minutes = h * 60 + m;
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// The `sn` written on an inetOrgPerson stub whose recipient has no
/// surname (`sn` is mandatory): the display name, else the local part.
pub fn derived_surname(display_name: Option<&str>, primary: &str) -> String {
    match display_name {
        Some(d) if !d.trim().is_empty() => d.trim().to_string(),
        _ => primary.split('@').next().unwrap_or(primary).to_string(),
    }
}

/// The marker attribute's values for a stub of `anchor` and `kind`.
pub fn marker_values(anchor: &str, kind: RecipientKind) -> Vec<String> {
    let mut v = vec![marker_value(anchor)];
    if kind != RecipientKind::Person {
        v.push(format!("{KIND_PREFIX}{}", kind.as_str()));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use coexist_connector::SecretRef;

    fn mapper(flavor: Flavor) -> Mapper {
        let config = LdapConfig::new(
            flavor,
            "ldap://x",
            "cn=a",
            SecretRef::Env { env: "X".into() },
            vec!["dc=x".into()],
            "ou=c,dc=x",
        );
        let mut m = Mapper::new(&config);
        m.extra_attributes = vec!["extensionAttribute1".into()];
        m
    }

    fn recipient(c: Classified) -> (Recipient, Vec<String>) {
        match c {
            Classified::Recipient {
                recipient,
                member_dns,
                ..
            } => (recipient, member_dns),
            other => panic!("not a recipient: {other:?}"),
        }
    }

    #[test]
    fn the_fast_address_path_agrees_with_the_contract() {
        for a in [
            "Alice@AcmeCorp.com",
            "a.b+c@x.y",
            "bob@exämple.com",
            "x@xn--exmple-cua.com",
            "nobody",
            "a b@x.com",
            "@x.com",
            "x@localhost",
            "x@-a.com",
        ] {
            assert_eq!(normalize(a), normalize_address(a).ok(), "{a}");
        }
    }

    #[test]
    fn object_guids_read_as_canonical_guid_strings() {
        // The GUID 01020304-0506-0708-090a-0b0c0d0e0f10 as AD stores it.
        let bytes = [4, 3, 2, 1, 6, 5, 8, 7, 9, 10, 11, 12, 13, 14, 15, 16];
        assert_eq!(
            guid_to_string(&bytes).as_deref(),
            Some("01020304-0506-0708-090a-0b0c0d0e0f10")
        );
        assert_eq!(
            guid_to_bytes("01020304-0506-0708-090a-0b0c0d0e0f10"),
            Some(bytes)
        );
        assert_eq!(guid_to_string(&[1, 2, 3]), None);
    }

    #[test]
    fn proxy_addresses_give_the_primary_and_secondaries_and_ignore_other_types() {
        let values: Vec<String> = [
            "smtp:alias@acmecorp.com",
            "SMTP:Alice@AcmeCorp.com",
            "X500:/o=Org/cn=alice",
            "SIP:alice@acmecorp.com",
            "smtp:a.smith@acmecorp.com",
        ]
        .map(String::from)
        .to_vec();
        let (p, s) = parse_proxy_addresses(&values);
        assert_eq!(p.as_deref(), Some("Alice@AcmeCorp.com"));
        assert_eq!(s, vec!["alias@acmecorp.com", "a.smith@acmecorp.com"]);
    }

    #[test]
    fn an_ad_user_reads_with_proxy_addresses_disabled_flag_and_extra_attributes() {
        let guid = [4, 3, 2, 1, 6, 5, 8, 7, 9, 10, 11, 12, 13, 14, 15, 16];
        let e = Entry::new("CN=Alice,OU=People,DC=ad")
            .with(
                "objectClass",
                &["top", "person", "organizationalPerson", "user"],
            )
            .with_bin("objectGUID", &guid)
            .with("mail", &["alice@acmecorp.com"])
            .with(
                "proxyAddresses",
                &[
                    "SMTP:alice@acmecorp.com",
                    "smtp:al@acmecorp.com",
                    "X500:/o=x",
                ],
            )
            .with("userAccountControl", &["514"])
            .with("displayName", &["Alice Smith"])
            .with("department", &["Sales"])
            .with("extensionAttribute1", &["google"])
            .with("uSNChanged", &["4711"]);
        let (r, _) = recipient(mapper(Flavor::ActiveDirectory).classify(&e));
        assert_eq!(r.anchor, "01020304-0506-0708-090a-0b0c0d0e0f10");
        assert_eq!(r.primary_address, "alice@acmecorp.com");
        assert_eq!(r.aliases, vec!["al@acmecorp.com"]);
        assert!(!r.enabled, "userAccountControl bit 0x2 means disabled");
        assert!(r.mailbox);
        assert_eq!(r.attributes.department.as_deref(), Some("Sales"));
        assert_eq!(
            r.extra.get("extensionAttribute1").map(String::as_str),
            Some("google")
        );
        assert_eq!(r.etag.as_deref(), Some("4711"));
    }

    #[test]
    fn forwarding_only_entries_are_not_mailboxes() {
        let m = mapper(Flavor::Openldap);
        let routed = Entry::new("uid=b,dc=x")
            .with("objectClass", &["inetOrgPerson", "inetLocalMailRecipient"])
            .with("entryUUID", &["AAAA-1"])
            .with("mail", &["bob@acmecorp.com"])
            .with("mailRoutingAddress", &["bob@gapps.acmecorp.com"]);
        let (r, _) = recipient(m.classify(&routed));
        assert!(!r.mailbox);
        assert_eq!(r.forwards_to.as_deref(), Some("bob@gapps.acmecorp.com"));
        assert_eq!(r.anchor, "aaaa-1");
        let qmail = Entry::new("uid=c,dc=x")
            .with("objectClass", &["inetOrgPerson", "qmailUser"])
            .with("entryUUID", &["c"])
            .with("mail", &["carol@acmecorp.com"])
            .with("mailForwardingAddress", &["carol@elsewhere.com"])
            .with("deliveryMode", &["forwardonly"])
            .with("accountStatus", &["disabled"]);
        let (r, _) = recipient(m.classify(&qmail));
        assert!(!r.mailbox);
        assert!(!r.enabled, "qmail accountStatus disabled");
        // qmail-ldap 20030901 and later: `nolocal` turns the mailbox off;
        // a forwarding address alone keeps a copy in it.
        let forwarding = || {
            Entry::new("uid=e,dc=x")
                .with("objectClass", &["inetOrgPerson", "qmailUser"])
                .with("entryUUID", &["e"])
                .with("mail", &["erin@acmecorp.com"])
                .with("mailMessageStore", &["/var/qmail/maildirs/erin/"])
                .with("mailForwardingAddress", &["erin@elsewhere.com"])
        };
        let nolocal = forwarding().with("deliveryMode", &["noLocal", "noprogram"]);
        let (r, _) = recipient(m.classify(&nolocal));
        assert!(!r.mailbox, "deliveryMode nolocal");
        assert_eq!(r.forwards_to.as_deref(), Some("erin@elsewhere.com"));
        let (r, _) = recipient(m.classify(&forwarding()));
        assert!(r.mailbox && r.forwards_to.is_none(), "a forwarded copy");
        let contact = Entry::new("CN=D,DC=ad")
            .with("objectClass", &["contact"])
            .with_bin("objectGUID", &[7; 16])
            .with("mail", &["dave@acmecorp.com"])
            .with("targetAddress", &["SMTP:dave@cloud.acmecorp.com"]);
        let (r, _) = recipient(mapper(Flavor::ActiveDirectory).classify(&contact));
        assert!(!r.mailbox);
        assert_eq!(r.forwards_to.as_deref(), Some("dave@cloud.acmecorp.com"));
    }

    #[test]
    fn bad_entries_become_problems_naming_the_dn() {
        let m = mapper(Flavor::Openldap);
        let no_mail = Entry::new("uid=n,dc=x")
            .with("objectClass", &["inetOrgPerson"])
            .with("entryUUID", &["n"]);
        let bad_mail = no_mail.clone().with("mail", &["not-an-address"]);
        let mut huge = no_mail.clone().with("mail", &["h@acmecorp.com"]);
        let many: Vec<String> = (0..1001).map(|i| format!("a{i}@acmecorp.com")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        huge = huge.with("mailLocalAddress", &refs);
        for (e, needle) in [
            (no_mail, "no mail"),
            (bad_mail, "not a valid"),
            (huge, "1001 values"),
        ] {
            match m.classify(&e) {
                Classified::Problem(p) => {
                    assert_eq!(p.object, "uid=n,dc=x");
                    assert!(p.message.contains(needle), "{}", p.message);
                }
                other => panic!("expected a problem: {other:?}"),
            }
        }
    }

    #[test]
    fn address_book_entries_are_neither_recipients_nor_stubs() {
        for flavor in [Flavor::Openldap, Flavor::ActiveDirectory] {
            let m = mapper(flavor);
            let entry = Entry::new("mail=ann@acmecorp.com,ou=gal,dc=acmecorp,dc=com")
                .with(
                    "objectClass",
                    &["top", "person", "inetOrgPerson", "contact"],
                )
                .with("entryUUID", &["u-1"])
                .with_bin("objectGUID", &[7u8; 16])
                .with("mail", &["ann@acmecorp.com"])
                .with("cn", &["Ann"])
                .with("description", &["coexist-gal:google:42"]);
            assert!(
                matches!(m.classify(&entry), Classified::AddressBookEntry),
                "{flavor:?}"
            );
        }
    }

    #[test]
    fn marked_entries_read_as_stubs_never_as_recipients() {
        let m = mapper(Flavor::Openldap);
        let e = Entry::new("mail=eve@acmecorp.com,ou=c,dc=x")
            .with("objectClass", &["inetOrgPerson", "inetLocalMailRecipient"])
            .with("entryUUID", &["e1"])
            .with("mail", &["eve@acmecorp.com"])
            .with("mailLocalAddress", &["eve@acmecorp.com", "e@acmecorp.com"])
            .with("mailRoutingAddress", &["eve@gapps.acmecorp.com"])
            .with("cn", &["eve"])
            .with("sn", &["eve"])
            .with("description", &["coexist:google:123", "coexist-kind:group"]);
        match m.classify(&e) {
            Classified::Stub(s) => {
                assert_eq!(s.id, "e1");
                assert_eq!(s.stub.anchor, "google:123");
                assert_eq!(s.stub.kind, RecipientKind::Group);
                assert_eq!(s.stub.aliases, vec!["e@acmecorp.com"]);
                assert_eq!(
                    s.stub.route,
                    Route::Address("eve@gapps.acmecorp.com".into())
                );
                assert_eq!(
                    s.stub.attributes.surname, None,
                    "derived sn is not a surname"
                );
            }
            other => panic!("expected a stub: {other:?}"),
        }
    }

    /// An OpenLDAP person with `extra` attributes, for the tests of what
    /// disables an account.
    fn openldap_person(extra: &[(&str, &[&str])]) -> Entry {
        let mut e = Entry::new("uid=p,ou=people,dc=x")
            .with("objectClass", &["inetOrgPerson", "inetLocalMailRecipient"])
            .with("entryUUID", &["p"])
            .with("mail", &["p@acmecorp.com"]);
        for (name, values) in extra {
            e = e.with(name, values);
        }
        e
    }

    fn enabled(m: &Mapper, extra: &[(&str, &[&str])]) -> bool {
        recipient(m.classify(&openldap_person(extra))).0.enabled
    }

    #[test]
    fn an_expired_shadow_account_is_disabled_from_its_expiry_day_on() {
        let m = mapper(Flavor::Openldap);
        let today = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            / 86_400)
            .to_string();
        assert!(!enabled(&m, &[("shadowExpire", &["1"])]), "1970-01-02");
        assert!(!enabled(&m, &[("shadowExpire", &["0"])]), "1970-01-01");
        assert!(
            !enabled(&m, &[("shadowExpire", &[today.as_str()])]),
            "today"
        );
        assert!(enabled(&m, &[("shadowExpire", &["99999"])]), "in 2243");
        assert!(enabled(&m, &[("shadowExpire", &["-1"])]), "-1: never");
        assert!(enabled(&m, &[]), "no shadowExpire: never");
        assert!(
            enabled(&m, &[("shadowExpire", &["soon"])]),
            "not a day count: not taken for expired"
        );
    }

    #[test]
    fn a_ppolicy_lock_disables_an_account_once_its_time_has_come() {
        let m = mapper(Flavor::Openldap);
        let locked = |v: &str| !enabled(&m, &[("pwdAccountLockedTime", &[v])]);
        assert!(locked("000001010000Z"), "ppolicy's locked for ever");
        assert!(locked("20200101120000Z"), "locked since 2020");
        assert!(locked("20200101120000.5+0200"), "with fraction and offset");
        assert!(locked("garbage"), "any other value: locked");
        assert!(
            !locked("29991231235959Z"),
            "a lock set for a time still to come is not a lock yet"
        );
        assert!(enabled(&m, &[]), "no pwdAccountLockedTime: not locked");
    }

    #[test]
    fn generalized_times_read_as_seconds_since_1970() {
        assert_eq!(generalized_time_seconds("19700101000000Z"), Some(0));
        assert_eq!(generalized_time_seconds("197001020000Z"), Some(86_400));
        assert_eq!(generalized_time_seconds("1970010101Z"), Some(3600));
        assert_eq!(
            generalized_time_seconds("20240229123456Z"),
            Some(1_709_210_096)
        );
        assert_eq!(
            generalized_time_seconds("20240229143456.123+0200"),
            Some(1_709_210_096)
        );
        assert_eq!(
            generalized_time_seconds("20240229113456-01"),
            Some(1_709_210_096)
        );
        assert!(generalized_time_seconds("000001010000Z").is_some_and(|s| s < 0));
        for bad in [
            "",
            "2024",
            "20241301000000Z",
            "20240101000000",
            "20240101000000Zx",
            "x",
        ] {
            assert_eq!(generalized_time_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn ns_account_lock_true_disables_an_account() {
        let m = mapper(Flavor::Openldap);
        assert!(!enabled(&m, &[("nsAccountLock", &["true"])]));
        assert!(!enabled(&m, &[("nsAccountLock", &["TRUE"])]));
        assert!(enabled(&m, &[("nsAccountLock", &["false"])]));
    }

    #[test]
    fn qmail_account_status_disabled_or_deleted_disables_an_account() {
        let m = mapper(Flavor::Openldap);
        assert!(!enabled(&m, &[("accountStatus", &["disabled"])]));
        assert!(!enabled(&m, &[("accountStatus", &["Deleted"])]));
        assert!(enabled(&m, &[("accountStatus", &["active"])]));
        assert!(
            enabled(&m, &[("accountStatus", &["noaccess"])]),
            "noaccess: no POP/IMAP, mail still delivered"
        );
    }

    #[test]
    fn the_attributes_of_every_disabling_rule_are_read() {
        let names = mapper(Flavor::Openldap).read_attributes();
        for wanted in [
            "shadowExpire",
            "pwdAccountLockedTime",
            "nsAccountLock",
            "accountStatus",
        ] {
            assert!(names.iter().any(|n| n == wanted), "{wanted}: {names:?}");
        }
        let ad = mapper(Flavor::ActiveDirectory).read_attributes();
        assert!(ad.iter().any(|n| n == "userAccountControl"), "{ad:?}");
    }

    #[test]
    fn an_entry_with_mail_local_address_but_no_mail_takes_the_first_as_primary() {
        let m = mapper(Flavor::Openldap);
        let alias = Entry::new("uid=info,dc=x")
            .with("objectClass", &["inetOrgPerson", "inetLocalMailRecipient"])
            .with("entryUUID", &["i"])
            .with(
                "mailLocalAddress",
                &["info@acmecorp.com", "contact@acmecorp.com"],
            )
            .with("mailRoutingAddress", &["support@gapps.acmecorp.com"]);
        let (r, _) = recipient(m.classify(&alias));
        assert_eq!(r.primary_address, "info@acmecorp.com");
        assert_eq!(r.aliases, vec!["contact@acmecorp.com"]);
        assert_eq!(r.locator.as_deref(), Some("uid=info,dc=x"));
        let group = Entry::new("cn=staff,dc=x")
            .with("objectClass", &["groupOfNames", "inetLocalMailRecipient"])
            .with("entryUUID", &["s"])
            .with(
                "mailLocalAddress",
                &["not an address", "staff@acmecorp.com"],
            )
            .with("member", &["uid=a,dc=x"]);
        let (r, members) = recipient(m.classify(&group));
        assert_eq!(r.kind, RecipientKind::Group);
        assert_eq!(
            r.primary_address, "staff@acmecorp.com",
            "the first valid address"
        );
        assert!(r.aliases.is_empty(), "{:?}", r.aliases);
        assert_eq!(members, vec!["uid=a,dc=x"]);
    }

    #[test]
    fn group_members_are_collected_for_resolution() {
        let m = mapper(Flavor::Openldap);
        let e = Entry::new("cn=g,dc=x")
            .with("objectClass", &["groupOfNames"])
            .with("entryUUID", &["g"])
            .with("mail", &["g@acmecorp.com"])
            .with("member", &["uid=a,dc=x", "cn=h,dc=x"]);
        let (r, members) = recipient(m.classify(&e));
        assert_eq!(r.kind, RecipientKind::Group);
        assert_eq!(members, vec!["uid=a,dc=x", "cn=h,dc=x"]);
    }
}
