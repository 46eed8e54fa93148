//! Creating a person's account (`coexist provision`) from the `provision`
//! table of the connection:
//!
//! * OpenLDAP: an entry `uid=<local part>,<base>` with the configured
//!   object classes (default `inetOrgPerson` and `inetLocalMailRecipient`),
//!   `mail`, every address in the alias attribute (default
//!   `mailLocalAddress`), names, phones and title, the template's fixed
//!   attributes (`mailHost`, `mailRoutingAddress` of the seeds' servers),
//!   and its password set with the Password Modify operation (RFC 3062),
//!   so the server hashes it as it is configured to.
//! * Active Directory: an enabled user (`userAccountControl` 512)
//!   `CN=<display name>,<base>` with `sAMAccountName` (the local part, at
//!   most 20 characters), `userPrincipalName`, `mail`, `proxyAddresses`,
//!   its password in `unicodePwd` (AD accepts it only over an encrypted
//!   connection: LDAPS or StartTLS, which the connector's endpoint
//!   enforces) and `pwdLastSet` 0, so it must be changed at first login.
//!
//! The account is read back with the connector's own mapping, so the
//! recipient returned is what the next pull lists.

use std::collections::{BTreeMap, HashSet};

use coexist_connector::{ConnectorError, NewAccount, Provisioned};
use ldap3::{Ldap, Mod};
use serde::Deserialize;

use crate::config::Flavor;
use crate::entry::{derived_surname, Classified, Entry, Mapper};
use crate::error::{self, rc};
use crate::escape::dn_value;

/// The `provision` table of an LDAP or AD connection: where and how
/// accounts are made.
///
/// ```toml
/// [systems.connection.provision]
/// base = "ou=people,dc=acmecorp,dc=com"
/// object_classes = ["inetOrgPerson", "inetLocalMailRecipient"]
/// attributes = { mailHost = ["mail.acmecorp.com"] }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionTemplate {
    /// The entry (OpenLDAP) or OU (AD) new accounts are made under.
    pub base: String,
    /// The object classes of a new account. Default: `inetOrgPerson`,
    /// `inetLocalMailRecipient` (OpenLDAP); `top`, `person`,
    /// `organizationalPerson`, `user` (AD).
    #[serde(default)]
    pub object_classes: Option<Vec<String>>,
    /// The attribute listing the account's addresses. Default
    /// `mailLocalAddress` (every address, the primary included); with the
    /// qmail schema say `mailAlternateAddress` (the aliases only). On AD
    /// the addresses go to `proxyAddresses`, always.
    #[serde(default)]
    pub alias_attribute: Option<String>,
    /// Fixed attributes every new account gets (`mailHost`,
    /// `accountStatus`, `deliveryMode`…).
    #[serde(default)]
    pub attributes: BTreeMap<String, Vec<String>>,
    /// OpenLDAP: how `coexist deprovision` suspends an account, as
    /// attributes to set, chosen to match a `disabled_when` rule:
    /// `{ objectClass = ["shadowAccount"], shadowExpire = ["0"] }`,
    /// `{ pwdAccountLockedTime = ["000001010000Z"] }` (ppolicy), qmail's
    /// `{ accountStatus = ["disabled"] }`. Object classes are added, other
    /// attributes replaced. Without it, OpenLDAP accounts are not
    /// suspended. Active Directory needs none: bit 2 of
    /// `userAccountControl` is set.
    #[serde(default)]
    pub suspend: BTreeMap<String, Vec<String>>,
}

/// Creates `account` under `template.base`; see the module's text.
pub async fn provision(
    system: &str,
    ldap: &mut Ldap,
    mapper: &Mapper,
    template: &ProvisionTemplate,
    timeout: std::time::Duration,
    account: &NewAccount,
) -> Result<Provisioned, ConnectorError> {
    let refuse = |message: String| {
        ConnectorError::permanent(format!(
            "LDAP system `{system}`: cannot create {}: {message}",
            account.primary_address
        ))
    };
    let local = account.local_part();
    let display = account.display_name();
    let (dn, mut attributes) = match mapper.flavor {
        Flavor::Openldap => {
            let dn = format!("uid={},{}", dn_value(local), template.base);
            let mut a = base_attributes(account, &display, mapper);
            a.insert("uid".into(), vec![local.as_bytes().to_vec()]);
            let alias_attribute = template
                .alias_attribute
                .clone()
                .unwrap_or_else(|| "mailLocalAddress".into());
            let mut addresses: Vec<&String> = account.aliases.iter().collect();
            if alias_attribute.eq_ignore_ascii_case("mailLocalAddress") {
                addresses.insert(0, &account.primary_address);
            }
            if !addresses.is_empty() {
                a.insert(
                    alias_attribute,
                    addresses.iter().map(|s| s.as_bytes().to_vec()).collect(),
                );
            }
            let classes = template
                .object_classes
                .clone()
                .unwrap_or_else(|| vec!["inetOrgPerson".into(), "inetLocalMailRecipient".into()]);
            a.insert(
                "objectClass".into(),
                classes.into_iter().map(String::into_bytes).collect(),
            );
            (dn, a)
        }
        Flavor::ActiveDirectory => {
            let sam = account
                .extra
                .get("sAMAccountName")
                .map(String::as_str)
                .unwrap_or(local);
            if sam.chars().count() > 20 {
                return Err(refuse(format!(
                    "its sAMAccountName `{sam}` would be longer than the 20 characters Active Directory allows; give one with --attribute sAMAccountName=NAME"
                )));
            }
            let dn = format!("CN={},{}", dn_value(&display), template.base);
            let mut a = base_attributes(account, &display, mapper);
            a.insert("sAMAccountName".into(), vec![sam.as_bytes().to_vec()]);
            a.insert(
                "userPrincipalName".into(),
                vec![account.primary_address.as_bytes().to_vec()],
            );
            let proxies = std::iter::once(format!("SMTP:{}", account.primary_address))
                .chain(account.aliases.iter().map(|a| format!("smtp:{a}")))
                .map(String::into_bytes)
                .collect();
            a.insert("proxyAddresses".into(), proxies);
            let classes = template.object_classes.clone().unwrap_or_else(|| {
                ["top", "person", "organizationalPerson", "user"]
                    .map(String::from)
                    .to_vec()
            });
            a.insert(
                "objectClass".into(),
                classes.into_iter().map(String::into_bytes).collect(),
            );
            // Enabled (NORMAL_ACCOUNT), the password to change at first
            // login. AD refuses an enabled account without a password.
            a.insert("userAccountControl".into(), vec![b"512".to_vec()]);
            a.insert("pwdLastSet".into(), vec![b"0".to_vec()]);
            let Some(password) = &account.password else {
                return Err(refuse("Active Directory needs an initial password".into()));
            };
            let quoted: Vec<u8> = format!("\"{}\"", password.expose())
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect();
            a.insert("unicodePwd".into(), vec![quoted]);
            (dn, a)
        }
    };
    for (name, values) in &template.attributes {
        attributes.insert(
            name.clone(),
            values.iter().map(|v| v.as_bytes().to_vec()).collect(),
        );
    }
    for (name, value) in &account.extra {
        if !name.eq_ignore_ascii_case("sAMAccountName") || mapper.flavor == Flavor::Openldap {
            attributes.insert(name.clone(), vec![value.as_bytes().to_vec()]);
        }
    }
    let add: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = attributes
        .into_iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(name, values)| (name.into_bytes(), values.into_iter().collect()))
        .collect();
    error::request_sent();
    let result = ldap
        .with_timeout(timeout)
        .add(&dn, add)
        .await
        .map_err(|e| error::from_ldap(system, &format!("add {dn}"), e))?;
    let existed = match result.rc {
        rc::SUCCESS => false,
        rc::ENTRY_ALREADY_EXISTS => true,
        _ => {
            return Err(error::from_result(
                system,
                &format!("add the account {dn}"),
                &result,
            ))
        }
    };
    let entry = read(system, ldap, mapper, timeout, &dn).await?;
    let recipient = match entry.as_ref().map(|e| mapper.classify(e)) {
        Some(Classified::Recipient { recipient, .. }) => recipient,
        _ => {
            return Err(refuse(format!(
                "{dn} was {} but does not read back as a recipient with a mailbox (check the object classes and the user filter)",
                if existed { "there already" } else { "added" }
            )))
        }
    };
    let same = coexist_connector::normalize_address(&recipient.primary_address)
        .is_ok_and(|a| a == account.primary_address);
    if existed && !same {
        return Err(refuse(format!(
            "an entry {dn} exists already, for {}; coexist does not touch it",
            recipient.primary_address
        )));
    }
    if !existed && mapper.flavor == Flavor::Openldap {
        if let Some(password) = &account.password {
            let modify = ldap3::exop::PasswordModify {
                user_id: Some(&dn),
                old_pass: None,
                new_pass: Some(password.expose()),
            };
            error::request_sent();
            let done = ldap
                .with_timeout(timeout)
                .extended(modify)
                .await
                .map_err(|e| error::from_ldap(system, &format!("set the password of {dn}"), e))?;
            if done.1.rc != rc::SUCCESS {
                return Err(error::from_result(
                    system,
                    &format!("set the password of {dn} (the entry was made; set it by hand)"),
                    &done.1,
                ));
            }
        }
    }
    let mut notes = Vec::new();
    if existed {
        notes.push(format!(
            "{dn} existed already with this address: its password was not changed"
        ));
    }
    Ok(Provisioned {
        recipient,
        locator: dn,
        existed,
        notes,
    })
}

/// Suspends the account at `dn`; see [`ProvisionTemplate::suspend`].
pub async fn suspend(
    system: &str,
    ldap: &mut Ldap,
    mapper: &Mapper,
    template: &ProvisionTemplate,
    timeout: std::time::Duration,
    dn: &str,
) -> Result<(), ConnectorError> {
    let handle = ldap.clone();
    let modify = |mods: Vec<Mod<String>>, what: &'static str| {
        let mut ldap = handle.clone();
        async move {
            error::request_sent();
            let result = ldap
                .with_timeout(timeout)
                .modify(dn, mods)
                .await
                .map_err(|e| error::from_ldap(system, &format!("{what} {dn}"), e))?;
            Ok::<_, ConnectorError>(result)
        }
    };
    match mapper.flavor {
        Flavor::ActiveDirectory => {
            let entry = read(system, ldap, mapper, timeout, dn).await?;
            let control = entry
                .as_ref()
                .and_then(|e| e.first("userAccountControl"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ConnectorError::permanent(format!(
                        "LDAP system `{system}`: {dn} has no userAccountControl to suspend"
                    ))
                })?;
            let disabled = (control | 2).to_string();
            let result = modify(
                vec![Mod::Replace(
                    "userAccountControl".to_string(),
                    HashSet::from([disabled]),
                )],
                "disable",
            )
            .await?;
            if result.rc != rc::SUCCESS {
                return Err(error::from_result(
                    system,
                    &format!("disable {dn}"),
                    &result,
                ));
            }
        }
        Flavor::Openldap => {
            if template.suspend.is_empty() {
                return Err(ConnectorError::permanent(format!(
                    "LDAP system `{system}`: cannot suspend {dn}: its `provision` table has no `suspend` (the attributes that disable an account here)"
                )));
            }
            for (name, values) in &template.suspend {
                let values: HashSet<String> = values.iter().cloned().collect();
                let (mods, what) = if name.eq_ignore_ascii_case("objectClass") {
                    (
                        vec![Mod::Add(name.clone(), values)],
                        "add the object classes of",
                    )
                } else {
                    (vec![Mod::Replace(name.clone(), values)], "suspend")
                };
                let result = modify(mods, what).await?;
                // An object class the entry has already is fine.
                if result.rc != rc::SUCCESS && result.rc != 20 {
                    return Err(error::from_result(system, &format!("{what} {dn}"), &result));
                }
            }
        }
    }
    Ok(())
}

/// The attributes both flavors give a person: mail, names, phones, title.
fn base_attributes(
    account: &NewAccount,
    display: &str,
    mapper: &Mapper,
) -> BTreeMap<String, Vec<Vec<u8>>> {
    let a = &account.attributes;
    let mut out: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut put = |name: &str, value: Option<&str>| {
        if let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) {
            out.insert(name.to_string(), vec![value.as_bytes().to_vec()]);
        }
    };
    let names = &mapper.attrs;
    put(&names.mail, Some(&account.primary_address));
    put("cn", Some(display));
    put(&names.display_name, Some(display));
    let surname = a
        .surname
        .clone()
        .unwrap_or_else(|| derived_surname(Some(display), &account.primary_address));
    put(&names.surname, Some(&surname));
    put(&names.given_name, a.given_name.as_deref());
    put(&names.business_phone, a.business_phone.as_deref());
    put(&names.mobile_phone, a.mobile_phone.as_deref());
    put(&names.title, a.title.as_deref());
    put(&names.department, a.department.as_deref());
    put(&names.company, a.company.as_deref());
    out
}

/// The entry at `dn` with every attribute the mapping reads.
pub(crate) async fn read(
    system: &str,
    ldap: &mut Ldap,
    mapper: &Mapper,
    timeout: std::time::Duration,
    dn: &str,
) -> Result<Option<Entry>, ConnectorError> {
    crate::lookup::read_entry(ldap, timeout, system, dn, mapper.read_attributes()).await
}
