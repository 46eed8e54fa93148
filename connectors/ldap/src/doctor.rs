//! The checks of `coexist doctor` for an LDAP or AD system: connect and
//! bind, each base DN readable, the stub OU there (and how many stubs it
//! holds), on AD whether the bind account may create contacts in it, the
//! server's schema against the stub style ([`crate::schema`]), and which
//! incremental method pulls use with the rights the bind account has.

use coexist_connector::{ConnectorError, Finding};
use ldap3::{Ldap, Scope};

use crate::config::Flavor;
use crate::entry::Entry;
use crate::error::{self, rc};
use crate::read::Reader;
use crate::write::Writer;

/// The checks of `coexist doctor`.
pub async fn doctor(
    reader: &Reader,
    writer: &Writer,
    ldap: Result<Ldap, ConnectorError>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut ldap = match ldap {
        Ok(l) => {
            findings.push(Finding::new(
                "connect and bind",
                true,
                format!(
                    "bound to {} as {}",
                    reader.config.url, reader.config.bind_dn
                ),
            ));
            l
        }
        Err(e) => {
            findings.push(Finding::new("connect and bind", false, e.to_string()));
            return findings;
        }
    };
    for base in &reader.config.base_dns {
        let r = ldap
            .with_timeout(reader.timeout)
            .search(base, Scope::Base, "(objectClass=*)", vec!["1.1"])
            .await;
        let (ok, detail) = match r {
            Ok(r) if r.1.rc == rc::SUCCESS => (true, format!("{base} is readable")),
            Ok(r) => (
                false,
                error::from_result(&reader.system, &format!("read {base}"), &r.1).to_string(),
            ),
            Err(e) => (
                false,
                error::from_ldap(&reader.system, &format!("read {base}"), e).to_string(),
            ),
        };
        findings.push(Finding::new(format!("base DN {base}"), ok, detail));
    }
    let stub_ok = writer.stub_index(&mut ldap).await;
    findings.push(Finding::new(
        "stub OU",
        stub_ok.is_ok(),
        match stub_ok {
            Ok(i) => format!("{} exists and holds {} stubs", writer.stub_base, i.len()),
            Err(e) => e.to_string(),
        },
    ));
    // Before any write can fail on it: does the server's schema hold what
    // the stub style writes?
    findings.push(crate::schema::doctor_finding(writer, &mut ldap).await);
    if reader.config.flavor == Flavor::ActiveDirectory {
        findings.push(contact_rights(reader, writer, &mut ldap).await);
    }
    findings.push(match crate::sync::choose(reader, &mut ldap).await {
        Ok(chosen) => Finding::new("incremental reads", true, chosen.how),
        Err(e) => Finding::new("incremental reads", false, e.to_string()),
    });
    findings
}

/// Whether AD lets the bind account create contacts in the stub OU: the
/// server's own answer (`allowedChildClassesEffective`, which AD computes
/// from the OU's security descriptor for the bound account).
async fn contact_rights(reader: &Reader, writer: &Writer, ldap: &mut Ldap) -> Finding {
    let check = "rights on the stub OU".to_string();
    let base = &writer.stub_base;
    let read = ldap
        .with_timeout(reader.timeout)
        .search(
            base,
            Scope::Base,
            "(objectClass=*)",
            vec!["allowedChildClassesEffective"],
        )
        .await;
    let entry = match read {
        Ok(r) if r.1.rc == rc::SUCCESS => {
            r.0.into_iter()
                .next()
                .map(|e| Entry::from(ldap3::SearchEntry::construct(e)))
        }
        Ok(r) => {
            return Finding::new(
                check,
                false,
                error::from_result(&reader.system, &format!("read {base}"), &r.1).to_string(),
            )
        }
        Err(e) => {
            return Finding::new(
                check,
                false,
                error::from_ldap(&reader.system, &format!("read {base}"), e).to_string(),
            )
        }
    };
    let may_create = entry.is_some_and(|e| {
        e.values("allowedChildClassesEffective")
            .iter()
            .any(|c| c.eq_ignore_ascii_case("contact"))
    });
    Finding::new(
        check,
        may_create,
        if may_create {
            format!(
                "{} may create, change and delete contacts in {base}",
                reader.config.bind_dn
            )
        } else {
            format!(
                "{} may not create contacts in {base}, so no stub can be written: delegate control of the OU to it (Active Directory Users and Computers: the OU, Delegate Control, \"Create, delete, and manage\" contact objects), or with dsacls: dsacls \"{base}\" /I:T /G \"DOMAIN\\account:CCDC;contact\" and dsacls \"{base}\" /I:S /G \"DOMAIN\\account:GA;;contact\"",
                reader.config.bind_dn
            )
        },
    )
}
