//! The checks of `coexist doctor` for an LDAP or AD system: connect and
//! bind, each base DN readable, the stub OU there (and how many stubs it
//! holds), and the server's schema against the stub style
//! ([`crate::schema`]).

use coexist_connector::{ConnectorError, Finding};
use ldap3::{Ldap, Scope};

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
            findings.push(Finding {
                check: "connect and bind".into(),
                ok: true,
                manual: false,
                detail: format!(
                    "bound to {} as {}",
                    reader.config.url, reader.config.bind_dn
                ),
            });
            l
        }
        Err(e) => {
            findings.push(Finding {
                check: "connect and bind".into(),
                ok: false,
                manual: false,
                detail: e.to_string(),
            });
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
        findings.push(Finding {
            check: format!("base DN {base}"),
            ok,
            manual: false,
            detail,
        });
    }
    let stub_ok = writer.stub_index(&mut ldap).await;
    findings.push(Finding {
        check: "stub OU".into(),
        ok: stub_ok.is_ok(),
        manual: false,
        detail: match stub_ok {
            Ok(i) => format!("{} exists and holds {} stubs", writer.stub_base, i.len()),
            Err(e) => e.to_string(),
        },
    });
    // Before any write can fail on it: does the server's schema hold what
    // the stub style writes?
    findings.push(crate::schema::doctor_finding(writer, &mut ldap).await);
    findings
}
