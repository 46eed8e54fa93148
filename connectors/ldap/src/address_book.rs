//! The address book of an LDAP or AD system (`[systems.address_book]`): a
//! copy of the GAL kept as entries under one OU, for the clients already
//! pointed at the corporate directory. A system of its own
//! ([`coexist_connector::address_book`]): its pull reads the entries under
//! the OU carrying the book's marker (`coexist-gal:<anchor>` in the marker
//! attribute) and nothing else; its operations write them there.
//!
//! The entries are address-book entries, never routing entries: OpenLDAP
//! `inetOrgPerson` (`mail=<address>,<base>`) and AD `contact`
//! (`cn=<address>,<base>`) with the GAL's attributes (cn, sn, givenName,
//! displayName, mail, telephoneNumber, mobile, title, department, company)
//! and no `mailRoutingAddress`, `mailHost`, `mailLocalAddress`,
//! `proxyAddresses` or `targetAddress`. The system's own reads skip every
//! entry carrying the book's marker ([`crate::entry::Mapper::classify`]),
//! so they are never read as recipients, stubs or foreign entries; an
//! entry without it (one made by hand in the OU) is never updated or
//! deleted.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use coexist_connector::address_book::{book_marker_value, parse_book_marker};
use coexist_connector::{
    split_address, Applied, Attributes, Connector, ConnectorError, FoundStub, Operation, Progress,
    Pull, RecipientKind, Route, Stub,
};
use ldap3::{Ldap, Mod, Scope};

use crate::config::{Flavor, LdapConfig};
use crate::endpoint::{Endpoint, Reused};
use crate::entry::{derived_surname, guid_to_string, Entry, KIND_PREFIX};
use crate::error::{self, rc};
use crate::escape::{dn_value, filter_value, normalize_dn, split_rdn};
use crate::lookup::{read_entry, search_one, search_paged, Lookup};
use crate::write::{ad_cn, add_attributes};

/// The connector of one system's address book.
pub struct AddressBook {
    /// Its id: `<system>.address_book`.
    id: String,
    /// The OU the entries are kept in (it must exist).
    base: String,
    flavor: Flavor,
    marker_attribute: String,
    page_size: i32,
    timeout: std::time::Duration,
    endpoint: Endpoint,
    conn: Reused,
}

impl std::fmt::Debug for AddressBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressBook")
            .field("id", &self.id)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// An entry as the address book should hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Desired {
    dn: String,
    object_classes: Vec<&'static str>,
    /// Every attribute managed; an empty list means "absent".
    attributes: BTreeMap<String, Vec<String>>,
}

impl AddressBook {
    /// The address book `id` of the system configured by `config` (reached
    /// through `endpoint`), kept under `base`.
    pub fn new(
        id: &str,
        base: &str,
        config: &LdapConfig,
        endpoint: Endpoint,
    ) -> Result<Self, ConnectorError> {
        let base = base.trim();
        if !base.contains('=') {
            return Err(ConnectorError::permanent(format!(
                "address book `{id}`: the base `{base}` is not a distinguished name"
            )));
        }
        let stub_base = normalize_dn(&config.stub_base);
        let normalized = normalize_dn(base);
        let under = |a: &str, b: &str| a == b || a.ends_with(&format!(",{b}"));
        if under(&normalized, &stub_base) || under(&stub_base, &normalized) {
            return Err(ConnectorError::permanent(format!(
                "address book `{id}`: the base `{base}` overlaps the stub base `{}`; keep the address book in an OU of its own",
                config.stub_base
            )));
        }
        Ok(AddressBook {
            id: id.to_string(),
            base: base.to_string(),
            flavor: config.flavor,
            marker_attribute: config.marker_attribute.clone(),
            page_size: i32::try_from(config.page_size.clamp(1, 1000)).unwrap_or(1000),
            timeout: std::time::Duration::from_secs(config.timeout_seconds),
            endpoint,
            conn: Reused::default(),
        })
    }

    async fn ldap(&self) -> Result<Ldap, ConnectorError> {
        self.conn.get(&self.endpoint).await
    }

    async fn forget_connection(&self, error: &ConnectorError) {
        self.conn.forget_after(error).await
    }

    fn anchor_attribute(&self) -> &'static str {
        match self.flavor {
            Flavor::Openldap => "entryUUID",
            Flavor::ActiveDirectory => "objectGUID",
        }
    }

    /// The attributes read of an entry.
    fn read_attributes(&self) -> Vec<String> {
        let mut names: Vec<String> = [
            "objectClass",
            self.anchor_attribute(),
            "mail",
            "cn",
            "sn",
            "givenName",
            "displayName",
            "telephoneNumber",
            "mobile",
            "title",
        ]
        .map(String::from)
        .to_vec();
        names.push(self.marker_attribute.clone());
        names.extend(
            match self.flavor {
                Flavor::Openldap => ["ou", "o"],
                Flavor::ActiveDirectory => ["department", "company"],
            }
            .map(String::from),
        );
        names
    }

    fn missing_base(&self) -> ConnectorError {
        ConnectorError::permanent(format!(
            "address book `{}`: the OU `{}` does not exist; create it (an organizationalUnit) or correct [systems.address_book] base",
            self.id, self.base
        ))
    }

    /// The id of an entry (entryUUID / objectGUID) as text.
    fn id_of(&self, entry: &Entry) -> String {
        match self.flavor {
            Flavor::Openldap => entry
                .first("entryUUID")
                .map(str::to_ascii_lowercase)
                .unwrap_or_default(),
            Flavor::ActiveDirectory => entry
                .first_bytes("objectGUID")
                .and_then(guid_to_string)
                .unwrap_or_default(),
        }
    }

    /// The anchor in an entry's book marker.
    fn marker(&self, entry: &Entry) -> Option<String> {
        entry
            .values(&self.marker_attribute)
            .iter()
            .find_map(|v| parse_book_marker(v.trim()).map(str::to_string))
    }

    /// An entry of the book read back as the entry the plan compares.
    fn found(&self, entry: &Entry) -> Option<FoundStub> {
        let anchor = self.marker(entry)?;
        let primary = entry.first("mail")?.to_string();
        let kind = entry
            .values(&self.marker_attribute)
            .iter()
            .find_map(|v| v.trim().strip_prefix(KIND_PREFIX))
            .map_or(RecipientKind::Person, kind_named);
        let get = |name: &str| entry.first(name).map(str::to_string);
        let display_name = get("displayName");
        let mut surname = get("sn");
        if self.flavor == Flavor::Openldap
            && surname == Some(derived_surname(display_name.as_deref(), &primary))
        {
            // Written because `person` must have one; not a surname.
            surname = None;
        }
        let (department, company) = match self.flavor {
            Flavor::Openldap => (get("ou"), get("o")),
            Flavor::ActiveDirectory => (get("department"), get("company")),
        };
        Some(FoundStub {
            id: self.id_of(entry),
            locator: entry.dn.clone(),
            misplaced: false,
            stub: Stub {
                anchor,
                kind,
                primary_address: primary,
                aliases: Vec::new(),
                route: Route::DomainRouting,
                attributes: Attributes {
                    display_name,
                    given_name: get("givenName"),
                    surname,
                    business_phone: get("telephoneNumber"),
                    mobile_phone: get("mobile"),
                    title: get("title"),
                    department,
                    company,
                },
            },
        })
    }

    /// What the book should hold for `stub` (its primary address only: an
    /// address book lists people, it routes none of their addresses).
    fn desired(&self, stub: &Stub) -> Result<Desired, ConnectorError> {
        let primary = stub.primary_address.trim().to_string();
        if split_address(&primary).is_none() {
            return Err(ConnectorError::permanent(format!(
                "address book `{}`: the entry of {} has no valid address `{primary}`",
                self.id, stub.anchor
            )));
        }
        let a = &stub.attributes;
        let opt = |v: &Option<String>| -> Vec<String> {
            v.iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let mut marker = vec![book_marker_value(&stub.anchor)];
        if stub.kind != RecipientKind::Person {
            marker.push(format!("{KIND_PREFIX}{}", stub.kind.as_str()));
        }
        let mut attrs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        attrs.insert(self.marker_attribute.clone(), marker);
        attrs.insert("mail".into(), vec![primary.clone()]);
        attrs.insert("displayName".into(), opt(&a.display_name));
        attrs.insert("givenName".into(), opt(&a.given_name));
        attrs.insert("telephoneNumber".into(), opt(&a.business_phone));
        attrs.insert("mobile".into(), opt(&a.mobile_phone));
        attrs.insert("title".into(), opt(&a.title));
        Ok(match self.flavor {
            Flavor::Openldap => {
                let cn = a
                    .display_name
                    .as_deref()
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .unwrap_or(&primary)
                    .to_string();
                attrs.insert("cn".into(), vec![cn]);
                let sn = opt(&a.surname)
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| derived_surname(a.display_name.as_deref(), &primary));
                attrs.insert("sn".into(), vec![sn.trim().to_string()]);
                attrs.insert("ou".into(), opt(&a.department));
                attrs.insert("o".into(), opt(&a.company));
                Desired {
                    dn: format!("mail={},{}", dn_value(&primary), self.base),
                    object_classes: vec!["top", "person", "organizationalPerson", "inetOrgPerson"],
                    attributes: attrs,
                }
            }
            Flavor::ActiveDirectory => {
                attrs.insert("sn".into(), opt(&a.surname));
                attrs.insert("department".into(), opt(&a.department));
                attrs.insert("company".into(), opt(&a.company));
                Desired {
                    dn: format!("cn={},{}", dn_value(&ad_cn(&primary)), self.base),
                    object_classes: vec!["top", "person", "organizationalPerson", "contact"],
                    attributes: attrs,
                }
            }
        })
    }

    /// Reads the entry at `dn`, `None` when there is none.
    async fn read(&self, ldap: &mut Ldap, dn: &str) -> Result<Option<Entry>, ConnectorError> {
        read_entry(ldap, self.timeout, &self.id, dn, self.read_attributes()).await
    }

    /// The entry carrying the book marker of `anchor`, if any.
    async fn find(&self, ldap: &mut Ldap, anchor: &str) -> Result<Option<Entry>, ConnectorError> {
        let filter = format!(
            "({}={})",
            self.marker_attribute,
            filter_value(&book_marker_value(anchor))
        );
        match search_one(
            ldap,
            self.timeout,
            &self.id,
            "look up an entry by its marker",
            &self.base,
            Scope::Subtree,
            &filter,
            self.read_attributes(),
        )
        .await?
        {
            Lookup::NoSuchBase => Err(self.missing_base()),
            found => Ok(found.entry()),
        }
    }

    /// The entry `locator` names, else the one carrying `anchor`'s marker;
    /// refused when it is there but not the book's entry of `anchor`.
    async fn locate(
        &self,
        ldap: &mut Ldap,
        locator: &str,
        anchors: &[&str],
    ) -> Result<Option<Entry>, ConnectorError> {
        let entry = match self.read(ldap, locator).await? {
            Some(entry) => Some(entry),
            None => match anchors.first() {
                Some(anchor) => self.find(ldap, anchor).await?,
                None => None,
            },
        };
        match entry {
            Some(entry)
                if self
                    .marker(&entry)
                    .is_some_and(|m| anchors.contains(&m.as_str())) =>
            {
                Ok(Some(entry))
            }
            Some(entry) => Err(ConnectorError::permanent(format!(
                "address book `{}`: refusing to change {}: it does not carry the address book's marker for {} in {}",
                self.id,
                entry.dn,
                anchors.first().copied().unwrap_or_default(),
                self.marker_attribute
            ))),
            None => Ok(None),
        }
    }

    async fn create(&self, ldap: &mut Ldap, stub: &Stub) -> Result<Applied, ConnectorError> {
        let desired = self.desired(stub)?;
        if let Some(entry) = self.find(ldap, &stub.anchor).await? {
            return self.converge(ldap, entry, stub, &desired).await;
        }
        let add = add_attributes(&desired.object_classes, &desired.attributes);
        error::request_sent();
        let result = ldap
            .with_timeout(self.timeout)
            .add(&desired.dn, add)
            .await
            .map_err(|e| error::from_ldap(&self.id, &format!("add {}", desired.dn), e))?;
        match result.rc {
            rc::SUCCESS => {
                let entry = self.read(ldap, &desired.dn).await?;
                let id = entry.as_ref().map(|e| self.id_of(e)).unwrap_or_default();
                Ok(applied(id, desired.dn, stub))
            }
            rc::ENTRY_ALREADY_EXISTS => match self.read(ldap, &desired.dn).await? {
                Some(entry) if self.marker(&entry).as_deref() == Some(stub.anchor.as_str()) => {
                    self.converge(ldap, entry, stub, &desired).await
                }
                Some(_) => Err(ConnectorError::permanent(format!(
                    "address book `{}`: cannot add the entry of {} at {}: an entry coexist did not make for it is there; coexist leaves it alone",
                    self.id, stub.anchor, desired.dn
                ))),
                None => Err(ConnectorError::retryable(format!(
                    "address book `{}`: {} exists and vanished while adding it",
                    self.id, desired.dn
                ))),
            },
            rc::NO_SUCH_OBJECT => Err(self.missing_base()),
            _ => Err(error::from_result(
                &self.id,
                &format!("add {}", desired.dn),
                &result,
            )),
        }
    }

    /// Renames `entry` where `desired` says, then changes what differs.
    async fn converge(
        &self,
        ldap: &mut Ldap,
        mut entry: Entry,
        stub: &Stub,
        desired: &Desired,
    ) -> Result<Applied, ConnectorError> {
        let id = self.id_of(&entry);
        if normalize_dn(&entry.dn) != normalize_dn(&desired.dn) {
            let (new_rdn, _) = split_rdn(&desired.dn);
            error::request_sent();
            let outcome = ldap
                .with_timeout(self.timeout)
                .modifydn(&entry.dn, &new_rdn, true, None)
                .await;
            error::change_done(&self.id, &format!("rename {}", entry.dn), outcome)?;
            entry = self.read(ldap, &desired.dn).await?.ok_or_else(|| {
                ConnectorError::retryable(format!(
                    "address book `{}`: {} vanished right after its rename",
                    self.id, desired.dn
                ))
            })?;
        }
        let (rdn, _) = split_rdn(&desired.dn);
        let rdn_attribute = rdn.split('=').next().unwrap_or_default().to_string();
        let mut mods = Vec::new();
        for (name, want) in &desired.attributes {
            if name.eq_ignore_ascii_case(&rdn_attribute) {
                continue;
            }
            let have: HashSet<&str> = entry.values(name).iter().map(String::as_str).collect();
            let want_set: HashSet<&str> = want.iter().map(String::as_str).collect();
            if have == want_set {
                continue;
            }
            mods.push(if want.is_empty() {
                Mod::Delete(name.clone(), HashSet::new())
            } else {
                Mod::Replace(name.clone(), want.iter().cloned().collect())
            });
        }
        if !mods.is_empty() {
            error::request_sent();
            let outcome = ldap
                .with_timeout(self.timeout)
                .modify(&entry.dn, mods)
                .await;
            error::change_done(&self.id, &format!("modify {}", entry.dn), outcome)?;
        }
        Ok(applied(id, entry.dn, stub))
    }

    async fn run(&self, ldap: &mut Ldap, operation: &Operation) -> Result<Applied, ConnectorError> {
        match operation {
            Operation::Create { stub } => self.create(ldap, stub).await,
            Operation::Update {
                locator,
                before,
                after,
                ..
            } => {
                let desired = self.desired(after)?;
                let anchors = [after.anchor.as_str(), before.anchor.as_str()];
                match self.locate(ldap, locator, &anchors).await? {
                    Some(entry) => self.converge(ldap, entry, after, &desired).await,
                    None => self.create(ldap, after).await,
                }
            }
            Operation::Delete { locator, stub, .. } => {
                let Some(entry) = self.locate(ldap, locator, &[stub.anchor.as_str()]).await? else {
                    return Ok(Applied { found: None });
                };
                error::request_sent();
                let result = ldap
                    .with_timeout(self.timeout)
                    .delete(&entry.dn)
                    .await
                    .map_err(|e| error::from_ldap(&self.id, &format!("delete {}", entry.dn), e))?;
                match result.rc {
                    rc::SUCCESS | rc::NO_SUCH_OBJECT => Ok(Applied { found: None }),
                    _ => Err(error::from_result(
                        &self.id,
                        &format!("delete {}", entry.dn),
                        &result,
                    )),
                }
            }
        }
    }
}

fn kind_named(name: &str) -> RecipientKind {
    match name {
        "group" => RecipientKind::Group,
        "shared_mailbox" => RecipientKind::SharedMailbox,
        "resource" => RecipientKind::Resource,
        _ => RecipientKind::Person,
    }
}

/// What an operation leaves: the entry as the next pull reads it.
fn applied(id: String, dn: String, stub: &Stub) -> Applied {
    let mut stub = stub.clone();
    stub.aliases.clear();
    stub.route = Route::DomainRouting;
    Applied {
        found: Some(FoundStub {
            id,
            locator: dn,
            misplaced: false,
            stub,
        }),
    }
}

#[async_trait]
impl Connector for AddressBook {
    fn system(&self) -> &str {
        &self.id
    }

    /// Every entry under the base carrying the book's marker (a full read
    /// each time: an address book is as large as the GAL at most).
    async fn pull(
        &self,
        _cursor: Option<&str>,
        _progress: &dyn Progress,
    ) -> Result<Pull, ConnectorError> {
        let mut ldap = self.ldap().await?;
        let filter = format!(
            "({}={}*)",
            self.marker_attribute,
            filter_value(coexist_connector::address_book::BOOK_MARKER_PREFIX)
        );
        let read = async {
            let mut found = Vec::new();
            let mut problems = Vec::new();
            let base_exists = search_paged(
                &mut ldap,
                self.timeout,
                &self.id,
                "read the address book",
                self.page_size,
                &self.base,
                &filter,
                self.read_attributes(),
                |entry| match self.found(&entry) {
                    Some(f) => found.push(f),
                    None => problems.push(coexist_connector::Problem {
                        object: entry.dn.clone(),
                        message:
                            "an address-book entry of coexist's without mail; it is written again"
                                .into(),
                    }),
                },
            )
            .await?;
            if !base_exists {
                return Err(self.missing_base());
            }
            let mut pull = Pull::full(Vec::new(), found);
            pull.problems = problems;
            Ok(pull)
        };
        let result = read.await;
        if let Err(e) = &result {
            self.forget_connection(e).await;
        }
        result
    }

    async fn apply(&self, operation: &Operation) -> Result<Applied, ConnectorError> {
        let mut ldap = self.ldap().await?;
        let result = self.run(&mut ldap, operation).await;
        if let Err(e) = &result {
            tracing::warn!(book = %self.id, error = %e, "address-book operation failed");
            self.forget_connection(e).await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coexist_connector::SecretRef;

    /// A system of `dc=x,dc=com` on a port nothing listens on, its stubs in
    /// `ou=stubs,dc=x,dc=com`.
    fn config(flavor: Flavor) -> LdapConfig {
        LdapConfig::new(
            flavor,
            "ldap://127.0.0.1:1",
            "cn=admin,dc=x,dc=com",
            SecretRef::Env {
                env: "UNUSED".into(),
            },
            vec!["dc=x,dc=com".into()],
            "ou=stubs,dc=x,dc=com",
        )
    }

    fn book(flavor: Flavor) -> AddressBook {
        let config = config(flavor);
        let endpoint = Endpoint::new("ldap", &config);
        AddressBook::new("ldap.address_book", "ou=gal,dc=x,dc=com", &config, endpoint).unwrap()
    }

    fn stub(kind: RecipientKind) -> Stub {
        Stub {
            anchor: "google:42".into(),
            kind,
            primary_address: "ann@x.com".into(),
            aliases: Vec::new(),
            route: Route::DomainRouting,
            attributes: Attributes {
                display_name: Some("Ann Lee".into()),
                given_name: Some("Ann".into()),
                department: Some("Sales".into()),
                ..Attributes::default()
            },
        }
    }

    /// The entry `desired` as a read returns it.
    fn entry_of(desired: &Desired) -> Entry {
        let mut entry = Entry::new(&desired.dn).with("entryUUID", &["u-1"]);
        for (name, values) in &desired.attributes {
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            if !refs.is_empty() {
                entry = entry.with(name, &refs);
            }
        }
        entry
    }

    #[test]
    fn entries_carry_gal_attributes_the_book_marker_and_no_routing_attribute() {
        for flavor in [Flavor::Openldap, Flavor::ActiveDirectory] {
            let book = book(flavor);
            let desired = book.desired(&stub(RecipientKind::Group)).unwrap();
            assert!(
                desired.dn.ends_with(",ou=gal,dc=x,dc=com"),
                "{}",
                desired.dn
            );
            for routing in [
                "mailRoutingAddress",
                "mailHost",
                "mailLocalAddress",
                "mailForwardingAddress",
                "proxyAddresses",
                "targetAddress",
            ] {
                assert!(!desired.attributes.contains_key(routing), "{routing}");
                assert!(!desired.object_classes.contains(&"inetLocalMailRecipient"));
            }
            assert_eq!(
                desired.attributes["description"],
                ["coexist-gal:google:42", "coexist-kind:group"]
            );
            assert_eq!(desired.attributes["mail"], ["ann@x.com"]);
        }
    }

    #[test]
    fn an_entry_reads_back_as_written_and_only_with_the_book_marker() {
        for flavor in [Flavor::Openldap, Flavor::ActiveDirectory] {
            let book = book(flavor);
            let want = stub(RecipientKind::Person);
            let desired = book.desired(&want).unwrap();
            let found = book.found(&entry_of(&desired)).unwrap();
            assert_eq!(found.stub, want, "{flavor:?}");
            let hand_made = Entry::new("cn=Bob,ou=gal,dc=x,dc=com")
                .with("mail", &["bob@x.com"])
                .with("description", &["coexist:google:7"]);
            assert!(book.found(&hand_made).is_none());
        }
    }

    #[test]
    fn a_base_overlapping_the_stub_base_is_refused() {
        let config = config(Flavor::Openldap);
        for base in [
            "ou=stubs,dc=x,dc=com",
            "ou=gal,ou=stubs,dc=x,dc=com",
            "dc=x,dc=com",
            "gal",
        ] {
            let endpoint = Endpoint::new("ldap", &config);
            let e = AddressBook::new("ldap.address_book", base, &config, endpoint).unwrap_err();
            assert!(e.to_string().contains(base.trim()), "{e}");
        }
    }
}
