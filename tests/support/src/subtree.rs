//! A test's own part of a directory server.

use crate::env::random;
use crate::server::{Directory, TestServer};

/// Where a system's `[systems.connection]` takes the server's password
/// from (see [`Subtree::system_toml`]).
#[derive(Debug, Clone, Copy)]
pub enum Password<'a> {
    /// `password = { env = "NAME" }`: the variable the test sets when it
    /// runs the binary.
    Env(&'a str),
    /// `password = { file = "PATH" }`: a file the test writes (relative
    /// paths are beside the configuration).
    File(&'a str),
}

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

    /// The `[[systems]]` table of a system `id` reading this subtree's
    /// server: kind `ldap` (slapd) or `active_directory` (Samba), the
    /// routing domain `routing_domain`, stub style `routing_address`,
    /// `keys` (whole lines, such as `unknown_recipient = "reject"\n`) added
    /// to the system's own table, and a `[systems.connection]` reaching the
    /// server with StartTLS as its admin, `password` for the password,
    /// people read below `base_dn` (the subtree's `people`, or the whole
    /// subtree `dn`) and stubs written in `stubs`. Ends with the connection
    /// table, so that a caller may append `[systems.connection.provision]`
    /// or `[systems.address_book]`.
    pub fn system_toml(
        &self,
        id: &str,
        routing_domain: &str,
        password: Password<'_>,
        base_dn: &str,
        keys: &str,
    ) -> String {
        let kind = match self.server.directory {
            Directory::OpenLdap => "ldap",
            Directory::ActiveDirectory => "active_directory",
        };
        let password = match password {
            Password::Env(name) => format!("{{ env = \"{name}\" }}"),
            Password::File(path) => format!("{{ file = \"{path}\" }}"),
        };
        format!(
            r#"[[systems]]
id = "{id}"
kind = "{kind}"
routing_domain = "{routing_domain}"
stub_style = "routing_address"
{keys}[systems.connection]
url = "{url}"
starttls = true
ca_file = "{ca}"
bind_dn = "{bind_dn}"
password = {password}
base_dns = ["{base_dn}"]
stub_base = "{stubs}"
"#,
            url = self.server.url,
            ca = self.server.ca_file,
            bind_dn = self.server.bind_dn,
            stubs = self.stubs,
        )
    }
}

impl Drop for Subtree {
    fn drop(&mut self) {
        let _ = self.server.tool("ldapdelete", &["-r", &self.dn], "");
    }
}
