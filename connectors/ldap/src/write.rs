//! Writing stubs: the attributes each stub schema gets, and create / update
//! (with rename) / delete, each idempotent and each checking coexist's
//! marker before touching an entry.

use std::collections::{BTreeMap, HashMap, HashSet};

use coexist_connector::{
    split_address, Applied, ConnectorError, FoundStub, Operation, RecipientKind, Route, Stub,
};
use ldap3::controls::{Control, PostRead, PostReadResp};
use ldap3::{Ldap, Mod, Scope};

use crate::config::StubSchema;
use crate::entry::{derived_surname, marker_values, Entry, Mapper};
use crate::error::{self, rc};
use crate::escape::{dn_value, filter_value, normalize_dn, split_rdn};
use crate::lookup::{read_entry, search_one, search_paged, Lookup};

/// What a stub looks like in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// The DN the stub belongs at.
    pub dn: String,
    /// The RDN attribute (its value changes by rename, not by modify).
    pub rdn_attribute: &'static str,
    pub object_classes: Vec<&'static str>,
    /// Every attribute the schema manages; an empty list means "absent".
    pub attributes: BTreeMap<String, Vec<String>>,
}

/// The attributes of an LDAP add of an entry of `object_classes`: its
/// `objectClass` values, then every attribute of `attributes` that has
/// values (an empty list means "absent", so it is left out).
pub(crate) fn add_attributes(
    object_classes: &[&str],
    attributes: &BTreeMap<String, Vec<String>>,
) -> Vec<(String, HashSet<String>)> {
    let mut add: Vec<(String, HashSet<String>)> = vec![(
        "objectClass".into(),
        object_classes.iter().map(|c| c.to_string()).collect(),
    )];
    for (name, values) in attributes {
        if !values.is_empty() {
            add.push((name.clone(), values.iter().cloned().collect()));
        }
    }
    add
}

/// The stubs found under the stub base: marker anchor → (DN, object id).
pub type StubIndex = HashMap<String, (String, String)>;

/// The longest `cn` Active Directory accepts.
const AD_CN_MAX: usize = 64;

/// The stub-writing side of the connector.
#[derive(Debug, Clone)]
pub struct Writer {
    pub system: String,
    pub stub_base: String,
    pub mapper: Mapper,
    pub timeout: std::time::Duration,
}

/// A stable short hash (FNV-1a), used to keep long AD `cn`s unique.
fn short_hash(s: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// The AD `cn` of a stub: the primary address, shortened with a hash
/// when longer than AD allows.
pub fn ad_cn(primary: &str) -> String {
    if primary.chars().count() <= AD_CN_MAX {
        return primary.to_string();
    }
    let keep: String = primary.chars().take(AD_CN_MAX - 9).collect();
    format!("{keep}-{}", short_hash(primary))
}

impl Writer {
    /// The writer of `system`'s stubs.
    pub fn new(system: &str, config: &crate::config::LdapConfig) -> Self {
        Writer {
            system: system.to_string(),
            stub_base: config.stub_base.clone(),
            mapper: Mapper::new(config),
            timeout: std::time::Duration::from_secs(config.timeout_seconds),
        }
    }

    /// The attributes `stub` should have under this writer's schema.
    pub fn desired(&self, stub: &Stub) -> Result<Desired, ConnectorError> {
        let a = &stub.attributes;
        let primary = stub.primary_address.trim().to_string();
        if split_address(&primary).is_none() {
            return Err(ConnectorError::permanent(format!(
                "LDAP system `{}`: the stub of {} has no valid primary address `{primary}`",
                self.system, stub.anchor
            )));
        }
        let opt = |v: &Option<String>| -> Vec<String> {
            v.iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        if self.mapper.schema != StubSchema::AdContact {
            if let Some(bad) = std::iter::once(&primary)
                .chain(stub.aliases.iter())
                .find(|a| !a.is_ascii())
            {
                return Err(ConnectorError::permanent(format!(
                    "LDAP system `{}`: the address `{bad}` of {} is not ASCII; the LDAP mail attributes (IA5String) cannot hold it",
                    self.system, stub.anchor
                )));
            }
        }
        let mut aliases: Vec<String> = stub
            .aliases
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case(&primary))
            .collect();
        aliases.sort();
        aliases.dedup();
        let mut attrs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        attrs.insert(
            self.mapper.marker_attribute.clone(),
            marker_values(&stub.anchor, stub.kind),
        );
        attrs.insert("mail".into(), vec![primary.clone()]);
        attrs.insert("displayName".into(), opt(&a.display_name));
        attrs.insert("givenName".into(), opt(&a.given_name));
        attrs.insert("telephoneNumber".into(), opt(&a.business_phone));
        attrs.insert("mobile".into(), opt(&a.mobile_phone));
        attrs.insert("title".into(), opt(&a.title));
        match self.mapper.schema {
            StubSchema::InetLocalMailRecipient | StubSchema::Qmail => {
                let cn = a
                    .display_name
                    .clone()
                    .filter(|d| !d.trim().is_empty())
                    .or_else(|| {
                        let parts: Vec<&str> = [a.given_name.as_deref(), a.surname.as_deref()]
                            .into_iter()
                            .flatten()
                            .filter(|s| !s.trim().is_empty())
                            .collect();
                        (!parts.is_empty()).then(|| parts.join(" "))
                    })
                    .unwrap_or_else(|| primary.clone());
                attrs.insert("cn".into(), vec![cn.trim().to_string()]);
                let sn = a
                    .surname
                    .clone()
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or_else(|| derived_surname(a.display_name.as_deref(), &primary));
                attrs.insert("sn".into(), vec![sn.trim().to_string()]);
                attrs.insert("departmentNumber".into(), opt(&a.department));
                attrs.insert("o".into(), opt(&a.company));
                let (address, host) = match &stub.route {
                    Route::Address(x) => (vec![x.clone()], vec![]),
                    Route::Host(h) => (vec![], vec![h.clone()]),
                    Route::DomainRouting => (vec![], vec![]),
                };
                attrs.insert("mailHost".into(), host);
                if self.mapper.schema == StubSchema::InetLocalMailRecipient {
                    let mut local = vec![primary.clone()];
                    local.extend(aliases.iter().cloned());
                    attrs.insert("mailLocalAddress".into(), local);
                    attrs.insert("mailRoutingAddress".into(), address);
                } else {
                    attrs.insert("mailAlternateAddress".into(), aliases.clone());
                    let forwarding = !address.is_empty();
                    attrs.insert("mailForwardingAddress".into(), address);
                    attrs.insert(
                        "deliveryMode".into(),
                        if forwarding {
                            vec!["forwardonly".into()]
                        } else {
                            vec![]
                        },
                    );
                    attrs.insert("accountStatus".into(), vec!["active".into()]);
                }
                let dn = format!("mail={},{}", dn_value(&primary), self.stub_base);
                let mut classes = vec!["top", "person", "organizationalPerson", "inetOrgPerson"];
                classes.push(if self.mapper.schema == StubSchema::Qmail {
                    "qmailUser"
                } else {
                    "inetLocalMailRecipient"
                });
                Ok(Desired {
                    dn,
                    rdn_attribute: "mail",
                    object_classes: classes,
                    attributes: attrs,
                })
            }
            StubSchema::AdContact => {
                attrs.insert("sn".into(), opt(&a.surname));
                attrs.insert("department".into(), opt(&a.department));
                attrs.insert("company".into(), opt(&a.company));
                let mut proxies = vec![format!("SMTP:{primary}")];
                proxies.extend(aliases.iter().map(|x| format!("smtp:{x}")));
                attrs.insert("proxyAddresses".into(), proxies);
                let target = match &stub.route {
                    Route::Address(x) => vec![format!("SMTP:{x}")],
                    Route::DomainRouting => vec![],
                    Route::Host(h) => {
                        return Err(ConnectorError::permanent(format!(
                            "LDAP system `{}`: an AD contact routes by address (targetAddress), not by smart host `{h}`; give the home system a routing domain",
                            self.system
                        )))
                    }
                };
                attrs.insert("targetAddress".into(), target);
                let dn = format!("cn={},{}", dn_value(&ad_cn(&primary)), self.stub_base);
                Ok(Desired {
                    dn,
                    rdn_attribute: "cn",
                    object_classes: vec!["top", "person", "organizationalPerson", "contact"],
                    attributes: attrs,
                })
            }
        }
    }

    /// The modifications turning `current` into `desired` (only the
    /// attributes that differ; the RDN attribute is left to the rename).
    pub fn diff(&self, current: &Entry, desired: &Desired) -> Vec<Mod<String>> {
        let mut mods = Vec::new();
        for (name, want) in &desired.attributes {
            if name.eq_ignore_ascii_case(desired.rdn_attribute) && desired.rdn_attribute == "cn" {
                continue;
            }
            let have: HashSet<&str> = current.values(name).iter().map(String::as_str).collect();
            let want_set: HashSet<&str> = want.iter().map(String::as_str).collect();
            if have == want_set {
                continue;
            }
            if want.is_empty() {
                mods.push(Mod::Delete(name.clone(), HashSet::new()));
            } else {
                mods.push(Mod::Replace(name.clone(), want.iter().cloned().collect()));
            }
        }
        mods
    }

    /// The attributes read to compare a stub with what it should be.
    fn managed_attributes(&self, desired: &Desired) -> Vec<String> {
        let mut names: Vec<String> = desired.attributes.keys().cloned().collect();
        names.push("objectClass".into());
        names.push(self.mapper.attrs.anchor.clone());
        names
    }

    /// Reads the entry at `dn` (or `None` when there is none).
    async fn read(
        &self,
        ldap: &mut Ldap,
        dn: &str,
        attrs: &[String],
    ) -> Result<Option<Entry>, ConnectorError> {
        read_entry(ldap, self.timeout, &self.system, dn, attrs.to_vec()).await
    }

    /// Finds the stub that carries the marker of `anchor` under the stub base.
    pub async fn find_by_anchor(
        &self,
        ldap: &mut Ldap,
        anchor: &str,
        attrs: &[String],
    ) -> Result<Option<Entry>, ConnectorError> {
        let filter = format!(
            "({}={})",
            self.mapper.marker_attribute,
            filter_value(&coexist_connector::marker::marker_value(anchor))
        );
        let what = "look up a stub by its marker";
        match search_one(
            ldap,
            self.timeout,
            &self.system,
            what,
            &self.stub_base,
            Scope::Subtree,
            &filter,
            attrs.to_vec(),
        )
        .await?
        {
            Lookup::NoSuchBase => Err(self.missing_stub_base()),
            found => Ok(found.entry()),
        }
    }

    /// Every stub under the stub base: marker anchor → (DN, object id).
    pub async fn stub_index(&self, ldap: &mut Ldap) -> Result<StubIndex, ConnectorError> {
        let filter = format!("({}=coexist:*)", self.mapper.marker_attribute);
        let mut index = HashMap::new();
        let base_exists = search_paged(
            ldap,
            self.timeout,
            &self.system,
            "list the stubs",
            1000,
            &self.stub_base,
            &filter,
            vec![
                self.mapper.marker_attribute.clone(),
                self.mapper.attrs.anchor.clone(),
            ],
            |entry| {
                if let Some(anchor) = self.mapper.marker_anchor(&entry) {
                    let id = self.mapper.anchor(&entry).unwrap_or_default();
                    index.insert(anchor, (entry.dn.clone(), id));
                }
            },
        )
        .await?;
        if !base_exists {
            return Err(self.missing_stub_base());
        }
        Ok(index)
    }

    fn missing_stub_base(&self) -> ConnectorError {
        ConnectorError::permanent(format!(
            "LDAP system `{}`: the stub OU `{}` does not exist; create it (an organizationalUnit) or correct stub_base",
            self.system, self.stub_base
        ))
    }

    /// Turns a failed write result into an error with advice.
    fn write_error(&self, what: &str, dn: &str, result: &ldap3::LdapResult) -> ConnectorError {
        let detail = error::describe(result);
        let system = &self.system;
        match result.rc {
            rc::NO_SUCH_OBJECT => self.missing_stub_base(),
            rc::INSUFFICIENT_ACCESS => ConnectorError::permanent(format!(
                "LDAP system `{system}`: {what} {dn} refused, {detail}; grant the bind DN write access (add, modify, delete, rename) to `{}`",
                self.stub_base
            )),
            rc::UNDEFINED_ATTRIBUTE_TYPE | rc::OBJECT_CLASS_VIOLATION | rc::INVALID_ATTRIBUTE_SYNTAX => {
                // The server's own words (e.g. "objectClass: value #3 invalid
                // per syntax") rarely say which schema is missing: say it.
                let (needs, otherwise) = match self.mapper.schema {
                    StubSchema::InetLocalMailRecipient => (
                        "stub_schema \"inet_local_mail_recipient\" needs objectClass inetLocalMailRecipient and its attributes (OpenLDAP's misc.schema)",
                        "load misc.schema into the server, or on a qmail-ldap server set stub_schema = \"qmail\"",
                    ),
                    StubSchema::Qmail => (
                        "stub_schema \"qmail\" needs objectClass qmailUser and its attributes (qmail-ldap's qmail.schema)",
                        "load qmail.schema into the server, or set stub_schema = \"inet_local_mail_recipient\" if it has misc.schema",
                    ),
                    StubSchema::AdContact => (
                        "stub_schema \"ad_contact\" needs the attribute targetAddress on contact (the Exchange schema extension)",
                        "extend the schema as Exchange's schema preparation does",
                    ),
                };
                ConnectorError::permanent(format!(
                    "LDAP system `{system}`: {what} {dn} refused by the server's schema ({detail}): {needs}; {otherwise}"
                ))
            }
            _ => error::from_result(system, &format!("{what} {dn}"), result),
        }
    }

    /// Carries out one operation. `index` (anchor → DN of existing stubs)
    /// spares a lookup per create when the caller listed the stubs first.
    pub async fn apply(
        &self,
        ldap: &mut Ldap,
        operation: &Operation,
        index: Option<&StubIndex>,
    ) -> Result<Applied, ConnectorError> {
        match operation {
            Operation::Create { stub } => self.create(ldap, stub, index).await,
            Operation::Update {
                locator,
                before,
                after,
                ..
            } => self.update(ldap, locator, before, after).await,
            Operation::Delete { locator, stub, .. } => self.delete(ldap, locator, stub).await,
        }
    }

    async fn create(
        &self,
        ldap: &mut Ldap,
        stub: &Stub,
        index: Option<&StubIndex>,
    ) -> Result<Applied, ConnectorError> {
        let desired = self.desired(stub)?;
        let attrs = self.managed_attributes(&desired);
        let existing = match index {
            Some(index) => match index.get(&stub.anchor) {
                Some((dn, _)) => self.read(ldap, dn, &attrs).await?,
                None => None,
            },
            None => self.find_by_anchor(ldap, &stub.anchor, &attrs).await?,
        };
        if let Some(entry) = existing {
            tracing::debug!(dn = %entry.dn, "create of an existing stub: updating it");
            return self.converge(ldap, entry, stub, &desired).await;
        }
        let add = add_attributes(&desired.object_classes, &desired.attributes);
        let anchor_attr = self.mapper.attrs.anchor.clone();
        let handle = ldap.with_timeout(self.timeout);
        if index.is_none() {
            // One at a time: ask for the new entry's id with the add. In
            // bulk the caller lists the ids once afterwards instead.
            handle.with_controls(PostRead::new(vec![anchor_attr.as_str()]));
        }
        error::request_sent();
        let result = handle
            .add(&desired.dn, add)
            .await
            .map_err(|e| error::from_ldap(&self.system, &format!("add {}", desired.dn), e))?;
        match result.rc {
            rc::SUCCESS => {
                let id = post_read_anchor(&self.mapper, &result.ctrls);
                let id = match id {
                    Some(id) => id,
                    None if index.is_some() => String::new(),
                    None => self
                        .read(ldap, &desired.dn, &attrs)
                        .await?
                        .and_then(|e| self.mapper.anchor(&e))
                        .unwrap_or_default(),
                };
                Ok(found(id, desired.dn, stub))
            }
            rc::ENTRY_ALREADY_EXISTS => {
                let entry = self.read(ldap, &desired.dn, &attrs).await?;
                match entry {
                    Some(entry) if self.mapper.marker_anchor(&entry).as_deref() == Some(stub.anchor.as_str()) => {
                        self.converge(ldap, entry, stub, &desired).await
                    }
                    Some(entry) => Err(ConnectorError::permanent(format!(
                        "LDAP system `{}`: cannot create the stub of {} at {}: an entry is already there ({}); coexist does not touch it",
                        self.system,
                        stub.anchor,
                        desired.dn,
                        match self.mapper.marker_anchor(&entry) {
                            Some(other) => format!("the stub of {other}"),
                            None => "not made by coexist".into(),
                        }
                    ))),
                    None => Err(ConnectorError::retryable(format!(
                        "LDAP system `{}`: {} exists and vanished while creating it",
                        self.system, desired.dn
                    ))),
                }
            }
            _ => Err(self.write_error("add", &desired.dn, &result)),
        }
    }

    async fn update(
        &self,
        ldap: &mut Ldap,
        locator: &str,
        before: &Stub,
        after: &Stub,
    ) -> Result<Applied, ConnectorError> {
        let desired = self.desired(after)?;
        let attrs = self.managed_attributes(&desired);
        let entry = match self.read(ldap, locator, &attrs).await? {
            Some(e) => Some(e),
            None => self.find_by_anchor(ldap, &before.anchor, &attrs).await?,
        };
        let Some(entry) = entry else {
            tracing::info!(locator, "the stub to update is gone: creating it again");
            return self.create(ldap, after, None).await;
        };
        let marker = self.mapper.marker_anchor(&entry);
        if marker.as_deref() != Some(before.anchor.as_str())
            && marker.as_deref() != Some(after.anchor.as_str())
        {
            return Err(ConnectorError::permanent(format!(
                "LDAP system `{}`: refusing to update {}: it does not carry coexist's marker for {} in {}",
                self.system, entry.dn, before.anchor, self.mapper.marker_attribute
            )));
        }
        self.converge(ldap, entry, after, &desired).await
    }

    /// Renames `entry` where `desired` says, then modifies what differs.
    async fn converge(
        &self,
        ldap: &mut Ldap,
        mut entry: Entry,
        stub: &Stub,
        desired: &Desired,
    ) -> Result<Applied, ConnectorError> {
        let id = self.mapper.anchor(&entry).unwrap_or_default();
        if normalize_dn(&entry.dn) != normalize_dn(&desired.dn) {
            let (new_rdn, new_parent) = split_rdn(&desired.dn);
            let (_, old_parent) = split_rdn(&entry.dn);
            let superior = (normalize_dn(&new_parent) != normalize_dn(&old_parent))
                .then_some(new_parent.as_str());
            error::request_sent();
            let result = ldap
                .with_timeout(self.timeout)
                .modifydn(&entry.dn, &new_rdn, true, superior)
                .await
                .map_err(|e| error::from_ldap(&self.system, &format!("rename {}", entry.dn), e))?;
            if result.rc != rc::SUCCESS {
                return Err(self.write_error("rename", &entry.dn, &result));
            }
            let attrs = self.managed_attributes(desired);
            entry = self.read(ldap, &desired.dn, &attrs).await?.ok_or_else(|| {
                ConnectorError::retryable(format!(
                    "LDAP system `{}`: {} vanished right after its rename",
                    self.system, desired.dn
                ))
            })?;
        }
        let mods = self.diff(&entry, desired);
        if !mods.is_empty() {
            error::request_sent();
            let result = ldap
                .with_timeout(self.timeout)
                .modify(&entry.dn, mods)
                .await
                .map_err(|e| error::from_ldap(&self.system, &format!("modify {}", entry.dn), e))?;
            if result.rc != rc::SUCCESS {
                return Err(self.write_error("modify", &entry.dn, &result));
            }
        }
        Ok(found(id, entry.dn, stub))
    }

    async fn delete(
        &self,
        ldap: &mut Ldap,
        locator: &str,
        stub: &Stub,
    ) -> Result<Applied, ConnectorError> {
        let attrs = vec![
            self.mapper.marker_attribute.clone(),
            self.mapper.attrs.anchor.clone(),
        ];
        let entry = match self.read(ldap, locator, &attrs).await? {
            Some(e) => Some(e),
            None => self.find_by_anchor(ldap, &stub.anchor, &attrs).await?,
        };
        let Some(entry) = entry else {
            return Ok(Applied { found: None });
        };
        if self.mapper.marker_anchor(&entry).as_deref() != Some(stub.anchor.as_str()) {
            return Err(ConnectorError::permanent(format!(
                "LDAP system `{}`: refusing to delete {}: it does not carry coexist's marker for {} in {}",
                self.system, entry.dn, stub.anchor, self.mapper.marker_attribute
            )));
        }
        error::request_sent();
        let result = ldap
            .with_timeout(self.timeout)
            .delete(&entry.dn)
            .await
            .map_err(|e| error::from_ldap(&self.system, &format!("delete {}", entry.dn), e))?;
        match result.rc {
            rc::SUCCESS | rc::NO_SUCH_OBJECT => Ok(Applied { found: None }),
            _ => Err(self.write_error("delete", &entry.dn, &result)),
        }
    }
}

fn found(id: String, dn: String, stub: &Stub) -> Applied {
    Applied {
        found: Some(FoundStub {
            id,
            locator: dn,
            misplaced: false,
            stub: normalized_stub(stub),
        }),
    }
}

/// The stub as a later pull will read it back (aliases sorted, the
/// primary address not repeated among them).
fn normalized_stub(stub: &Stub) -> Stub {
    let mut s = stub.clone();
    s.aliases
        .retain(|a| !a.eq_ignore_ascii_case(&s.primary_address));
    s.aliases.sort();
    s.aliases.dedup();
    if s.kind == RecipientKind::Person {
        s.kind = RecipientKind::Person;
    }
    s
}

/// The anchor in a post-read response control, if the server sent one.
fn post_read_anchor(mapper: &Mapper, controls: &[Control]) -> Option<String> {
    for Control(_, raw) in controls {
        if raw.ctype == "1.3.6.1.1.13.2" && raw.val.is_some() {
            let resp: PostReadResp = raw.parse();
            let mut entry = Entry::new("");
            for (k, v) in &resp.attrs {
                let refs: Vec<&str> = v.iter().map(String::as_str).collect();
                entry = entry.with(k, &refs);
            }
            for (k, v) in &resp.bin_attrs {
                for b in v {
                    entry = entry.with_bin(k, b);
                }
            }
            return mapper.anchor(&entry);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Flavor, LdapConfig};
    use coexist_connector::{Attributes, SecretRef};

    fn writer(flavor: Flavor, schema: StubSchema) -> Writer {
        let mut config = LdapConfig::new(
            flavor,
            "ldap://x",
            "cn=a",
            SecretRef::Env { env: "X".into() },
            vec!["dc=x".into()],
            "ou=coexist,dc=x",
        );
        config.stub_schema = schema;
        Writer::new("mail", &config)
    }

    fn stub(route: Route) -> Stub {
        Stub {
            anchor: "google:42".into(),
            kind: RecipientKind::Person,
            primary_address: "zoe.smith@acmecorp.com".into(),
            aliases: vec!["zs@acmecorp.com".into()],
            route,
            attributes: Attributes {
                display_name: Some("Smith, Zoë".into()),
                given_name: Some("Zoë".into()),
                surname: None,
                business_phone: Some("+1 555 0100".into()),
                title: Some("Engineer".into()),
                department: Some("R&D".into()),
                ..Attributes::default()
            },
        }
    }

    fn get<'a>(d: &'a Desired, name: &str) -> &'a [String] {
        d.attributes.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    #[test]
    fn an_inet_local_mail_recipient_stub_routes_by_address_or_host() {
        let w = writer(Flavor::Openldap, StubSchema::InetLocalMailRecipient);
        let d = w
            .desired(&stub(Route::Address("zoe.smith@gapps.acmecorp.com".into())))
            .unwrap();
        assert_eq!(d.dn, "mail=zoe.smith@acmecorp.com,ou=coexist,dc=x");
        assert!(d.object_classes.contains(&"inetLocalMailRecipient"));
        assert_eq!(
            get(&d, "mailLocalAddress"),
            ["zoe.smith@acmecorp.com", "zs@acmecorp.com"]
        );
        assert_eq!(
            get(&d, "mailRoutingAddress"),
            ["zoe.smith@gapps.acmecorp.com"]
        );
        assert!(get(&d, "mailHost").is_empty());
        assert_eq!(get(&d, "cn"), ["Smith, Zoë"]);
        assert_eq!(get(&d, "sn"), ["Smith, Zoë"], "sn is mandatory: derived");
        assert_eq!(get(&d, "departmentNumber"), ["R&D"]);
        assert_eq!(get(&d, "description"), ["coexist:google:42"]);
        let h = w
            .desired(&stub(Route::Host("mx.gapps.example".into())))
            .unwrap();
        assert_eq!(get(&h, "mailHost"), ["mx.gapps.example"]);
        assert!(get(&h, "mailRoutingAddress").is_empty());
    }

    #[test]
    fn a_qmail_stub_forwards_only() {
        // The attributes the qmail mapping generates; tests/qmail.rs writes
        // them into a slapd with qmail-ldap's schema.
        let w = writer(Flavor::Openldap, StubSchema::Qmail);
        let d = w
            .desired(&stub(Route::Address("zoe@exchange.acmecorp.com".into())))
            .unwrap();
        assert!(d.object_classes.contains(&"qmailUser"));
        assert_eq!(
            get(&d, "mailForwardingAddress"),
            ["zoe@exchange.acmecorp.com"]
        );
        assert_eq!(get(&d, "deliveryMode"), ["forwardonly"]);
        assert_eq!(get(&d, "accountStatus"), ["active"]);
        assert_eq!(get(&d, "mailAlternateAddress"), ["zs@acmecorp.com"]);
        assert!(!d.attributes.contains_key("mailLocalAddress"));
        // and reads back as the same stub
        let mut e = Entry::new(&d.dn).with("entryUUID", &["u1"]);
        for (k, v) in &d.attributes {
            let refs: Vec<&str> = v.iter().map(String::as_str).collect();
            e = e.with(k, &refs);
        }
        match w.mapper.classify(&e) {
            crate::entry::Classified::Stub(s) => {
                assert_eq!(
                    s.stub,
                    normalized_stub(&stub(Route::Address("zoe@exchange.acmecorp.com".into())))
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_ad_contact_stub_has_proxy_and_target_addresses() {
        let w = writer(Flavor::ActiveDirectory, StubSchema::AdContact);
        let d = w
            .desired(&stub(Route::Address("zoe.smith@gapps.acmecorp.com".into())))
            .unwrap();
        assert_eq!(d.dn, "cn=zoe.smith@acmecorp.com,ou=coexist,dc=x");
        assert_eq!(
            get(&d, "proxyAddresses"),
            ["SMTP:zoe.smith@acmecorp.com", "smtp:zs@acmecorp.com"]
        );
        assert_eq!(
            get(&d, "targetAddress"),
            ["SMTP:zoe.smith@gapps.acmecorp.com"]
        );
        assert!(get(&d, "sn").is_empty(), "contacts need no sn");
        assert!(w.desired(&stub(Route::Host("mx".into()))).is_err());
    }

    #[test]
    fn long_ad_names_are_shortened_uniquely() {
        let long = format!("{}@acmecorp.com", "x".repeat(80));
        let cn = ad_cn(&long);
        assert_eq!(cn.chars().count(), 64);
        assert_ne!(cn, ad_cn(&format!("{}@acmecorp.com", "x".repeat(81))));
    }

    #[test]
    fn names_with_specials_make_escaped_dns() {
        let w = writer(Flavor::Openldap, StubSchema::InetLocalMailRecipient);
        let mut s = stub(Route::DomainRouting);
        s.primary_address = "#o'neil+tag,x@acmecorp.com".into();
        let d = w.desired(&s).unwrap();
        assert_eq!(
            d.dn,
            "mail=\\23o'neil\\2btag\\2cx@acmecorp.com,ou=coexist,dc=x"
        );
    }

    #[test]
    fn only_differing_attributes_are_modified() {
        let w = writer(Flavor::Openldap, StubSchema::InetLocalMailRecipient);
        let d = w
            .desired(&stub(Route::Address("zoe.smith@gapps.acmecorp.com".into())))
            .unwrap();
        let mut e = Entry::new(&d.dn);
        for (k, v) in &d.attributes {
            let refs: Vec<&str> = v.iter().map(String::as_str).collect();
            e = e.with(k, &refs);
        }
        assert!(w.diff(&e, &d).is_empty());
        let mut s2 = stub(Route::Address("zoe.smith@gapps.acmecorp.com".into()));
        s2.attributes.title = Some("Manager".into());
        s2.attributes.business_phone = None;
        let d2 = w.desired(&s2).unwrap();
        let mods = w.diff(&e, &d2);
        assert_eq!(mods.len(), 2, "{mods:?}");
    }
}
