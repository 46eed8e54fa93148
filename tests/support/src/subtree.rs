//! A test's own part of a directory server.

use crate::env::random;
use crate::server::TestServer;

/// A test's own subtree `ou=t-<random>` below its server's base, holding
/// `ou=people`, `ou=groups` and `ou=coexist` (the stub OU), so that tests
/// running at the same time on one server never see each other's entries.
///
/// Made with `ldapadd` when created; removed with everything in it
/// (`ldapdelete -r`) when dropped, even when the test fails.
#[derive(Debug)]
pub struct Subtree {
    pub server: TestServer,
    /// `ou=t-<random>,<base>`.
    pub dn: String,
    /// `ou=people,<dn>`: the people (and anything else) a test adds.
    pub people: String,
    /// `ou=groups,<dn>`.
    pub groups: String,
    /// `ou=coexist,<dn>`: where coexist writes its stubs.
    pub stubs: String,
}

impl Subtree {
    /// Makes a new subtree on `server`; panics when the server refuses it.
    pub fn new(server: TestServer) -> Subtree {
        let dn = format!("ou=t-{},{}", random(), server.base);
        let t = Subtree {
            people: format!("ou=people,{dn}"),
            groups: format!("ou=groups,{dn}"),
            stubs: format!("ou=coexist,{dn}"),
            dn,
            server,
        };
        let ldif: String = [&t.dn, &t.people, &t.groups, &t.stubs]
            .into_iter()
            .map(|ou| {
                let name = ou.split(',').next().unwrap_or_default();
                let name = name.trim_start_matches("ou=");
                format!(
                    "dn: {ou}\nobjectClass: top\nobjectClass: organizationalUnit\nou: {name}\n\n"
                )
            })
            .collect();
        t.server.ldapadd(&ldif);
        t
    }
}

impl Drop for Subtree {
    fn drop(&mut self) {
        let _ = self.server.tool("ldapdelete", &["-r", &self.dn], "");
    }
}
