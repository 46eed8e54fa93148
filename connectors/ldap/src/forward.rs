//! The old account of a person moved away (`coexist move`): made to
//! forward its mail to the new home, then, with `--finish`, retired.
//!
//! * OpenLDAP: the forward is `mailRoutingAddress` (the object class
//!   `inetLocalMailRecipient` added where the entry lacks it), which
//!   Postfix and Sendmail's LDAP routing follow instead of delivering
//!   locally; with `stub_schema = "qmail"`, or on a server without that
//!   object class, qmail-ldap's `mailForwardingAddress` with
//!   `deliveryMode: forwardonly` added to the entry's delivery modes. Both read
//!   back as a forwarding entry.
//! * Active Directory: `targetAddress` (`SMTP:` and the address), which
//!   makes the user a mail user whose mail goes there.
//!
//! Retiring takes off, in one modify (atomic, so no read ever sees the
//! account a mailbox again), exactly the forward coexist set and the
//! person's addresses (from `mail`, the alias attributes and, on AD,
//! `proxyAddresses`), and suspends the account (AD: bit 2 of
//! `userAccountControl`; OpenLDAP: the `suspend` attributes of the
//! `provision` table, when it has some). Nothing else of the entry is
//! changed, and it is not deleted: its mail data stays.

use std::collections::HashSet;

use coexist_connector::{normalize_address, ConnectorError};
use ldap3::{Ldap, LdapResult, Mod};

use crate::config::{Flavor, StubSchema};
use crate::entry::{strip_smtp, Entry, Mapper};
use crate::error::{self, rc};
use crate::provision::{read, ProvisionTemplate};

async fn modify(
    system: &str,
    ldap: &mut Ldap,
    timeout: std::time::Duration,
    dn: &str,
    mods: Vec<Mod<String>>,
    what: &str,
) -> Result<LdapResult, ConnectorError> {
    error::request_sent();
    ldap.with_timeout(timeout)
        .modify(dn, mods)
        .await
        .map_err(|e| error::from_ldap(system, &format!("{what} {dn}"), e))
}

fn refused(system: &str, dn: &str, what: &str, result: &LdapResult) -> ConnectorError {
    error::from_result(system, &format!("{what} {dn}"), result)
}

async fn entry(
    system: &str,
    ldap: &mut Ldap,
    mapper: &Mapper,
    timeout: std::time::Duration,
    dn: &str,
) -> Result<Entry, ConnectorError> {
    read(system, ldap, mapper, timeout, dn)
        .await?
        .ok_or_else(|| {
            ConnectorError::permanent(format!("LDAP system `{system}`: {dn} is not there"))
        })
}

/// Makes the account at `dn` forward all its mail to `to`.
pub async fn forward(
    system: &str,
    ldap: &mut Ldap,
    mapper: &Mapper,
    timeout: std::time::Duration,
    dn: &str,
    to: &str,
) -> Result<(), ConnectorError> {
    let what = "set the forward of";
    match mapper.flavor {
        Flavor::ActiveDirectory => {
            let mods = vec![Mod::Replace(
                "targetAddress".to_string(),
                HashSet::from([format!("SMTP:{to}")]),
            )];
            let result = modify(system, ldap, timeout, dn, mods, what).await?;
            if result.rc != rc::SUCCESS {
                return Err(refused(system, dn, what, &result));
            }
        }
        Flavor::Openldap if mapper.schema == StubSchema::Qmail => {
            qmail_forward(system, ldap, timeout, dn, to).await?;
        }
        Flavor::Openldap => {
            let found = entry(system, ldap, mapper, timeout, dn).await?;
            let mut mods = Vec::new();
            if !found.has_class("inetLocalMailRecipient") {
                mods.push(Mod::Add(
                    "objectClass".to_string(),
                    HashSet::from(["inetLocalMailRecipient".to_string()]),
                ));
            }
            mods.push(Mod::Replace(
                "mailRoutingAddress".to_string(),
                HashSet::from([to.to_string()]),
            ));
            let result = modify(system, ldap, timeout, dn, mods, what).await?;
            match result.rc {
                rc::SUCCESS => {}
                // No inetLocalMailRecipient here: qmail-ldap's forward.
                rc::UNDEFINED_ATTRIBUTE_TYPE
                | rc::OBJECT_CLASS_VIOLATION
                | rc::INVALID_ATTRIBUTE_SYNTAX => {
                    qmail_forward(system, ldap, timeout, dn, to).await?;
                }
                _ => return Err(refused(system, dn, what, &result)),
            }
        }
    }
    Ok(())
}

/// qmail-ldap's forward: `mailForwardingAddress` and `deliveryMode:
/// forwardonly` (no local copy).
async fn qmail_forward(
    system: &str,
    ldap: &mut Ldap,
    timeout: std::time::Duration,
    dn: &str,
    to: &str,
) -> Result<(), ConnectorError> {
    let what = "set the forward of";
    let forward = || {
        Mod::Replace(
            "mailForwardingAddress".to_string(),
            HashSet::from([to.to_string()]),
        )
    };
    // forwardonly added to the entry's delivery modes (the others kept);
    // when it is there already, the forward alone.
    let mods = vec![
        forward(),
        Mod::Add(
            "deliveryMode".to_string(),
            HashSet::from(["forwardonly".to_string()]),
        ),
    ];
    let mut result = modify(system, ldap, timeout, dn, mods, what).await?;
    if result.rc == rc::ATTRIBUTE_OR_VALUE_EXISTS {
        result = modify(system, ldap, timeout, dn, vec![forward()], what).await?;
    }
    if result.rc != rc::SUCCESS {
        return Err(refused(system, dn, what, &result));
    }
    Ok(())
}

/// The values of `attribute` on `found` that are one of `addresses`
/// (after `SMTP:` is stripped, normalised), as the entry spells them.
fn matching(found: &Entry, attribute: &str, addresses: &[String]) -> HashSet<String> {
    found
        .values(attribute)
        .iter()
        .filter(|v| normalize_address(strip_smtp(v)).is_ok_and(|a| addresses.contains(&a)))
        .cloned()
        .collect()
}

/// Retires the account at `dn`: see the module's text.
#[allow(clippy::too_many_arguments)]
pub async fn retire(
    system: &str,
    ldap: &mut Ldap,
    mapper: &Mapper,
    template: Option<&ProvisionTemplate>,
    timeout: std::time::Duration,
    dn: &str,
    addresses: &[String],
    forward: &str,
) -> Result<(), ConnectorError> {
    let found = entry(system, ldap, mapper, timeout, dn).await?;
    let mut mods: Vec<Mod<String>> = Vec::new();
    let forward_attributes: &[&str] = match mapper.flavor {
        Flavor::ActiveDirectory => &["targetAddress"],
        Flavor::Openldap => &["mailRoutingAddress", "mailForwardingAddress"],
    };
    for attribute in forward_attributes {
        let set = matching(&found, attribute, &[forward.to_string()]);
        if !set.is_empty() {
            mods.push(Mod::Delete((*attribute).to_string(), set));
        }
    }
    if mapper.flavor == Flavor::Openldap
        && found
            .values("deliveryMode")
            .iter()
            .any(|m| m.eq_ignore_ascii_case("forwardonly"))
        && !matching(&found, "mailForwardingAddress", &[forward.to_string()]).is_empty()
    {
        let set: HashSet<String> = found
            .values("deliveryMode")
            .iter()
            .filter(|m| m.eq_ignore_ascii_case("forwardonly"))
            .cloned()
            .collect();
        mods.push(Mod::Delete("deliveryMode".to_string(), set));
    }
    let mut address_attributes: Vec<String> = vec![mapper.attrs.mail.clone()];
    address_attributes.extend(mapper.attrs.aliases.iter().cloned());
    if mapper.flavor == Flavor::ActiveDirectory {
        address_attributes.push("proxyAddresses".to_string());
    }
    address_attributes.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    for attribute in &address_attributes {
        let set = matching(&found, attribute, addresses);
        if !set.is_empty() {
            mods.push(Mod::Delete(attribute.clone(), set));
        }
    }
    match mapper.flavor {
        Flavor::ActiveDirectory => {
            if let Some(control) = found
                .first("userAccountControl")
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                if control & 2 == 0 {
                    mods.push(Mod::Replace(
                        "userAccountControl".to_string(),
                        HashSet::from([(control | 2).to_string()]),
                    ));
                }
            }
        }
        Flavor::Openldap => {
            for (name, values) in template.map(|t| &t.suspend).into_iter().flatten() {
                let values: HashSet<String> = values.iter().cloned().collect();
                if name.eq_ignore_ascii_case("objectClass") {
                    let missing: HashSet<String> =
                        values.into_iter().filter(|c| !found.has_class(c)).collect();
                    if !missing.is_empty() {
                        mods.push(Mod::Add(name.clone(), missing));
                    }
                } else {
                    mods.push(Mod::Replace(name.clone(), values));
                }
            }
        }
    }
    if mods.is_empty() {
        return Ok(());
    }
    let what = "retire";
    let result = modify(system, ldap, timeout, dn, mods, what).await?;
    if result.rc != rc::SUCCESS {
        return Err(refused(system, dn, what, &result));
    }
    Ok(())
}
