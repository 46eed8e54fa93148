//! The acmecorp organisation of google-coexistence.txt as coexist.toml
//! text: acmecorp.com shared by Google Workspace (the MX, routing domain
//! gapps.acmecorp.com, whose catch-all relays unknown users to the mail
//! server) and an LDAP mail server (routing domain mithi.acmecorp.com,
//! forwarding Google users to gapps.acmecorp.com).
//!
//! [`GOOGLE_AND_LDAP`] is the whole organisation on `simulated` systems.
//! Tests that put a real system on one side (the fake Google, a real slapd)
//! write that system's table and take the rest from here with [`config`].
//!
//! `coexist demo`'s configuration (`coexist::demo::CONFIG`) is the same
//! organisation as product code shows it, with comments and a smart host on
//! the mail server; it stays with the demo.

/// Defines a `&'static str` literal macro and a constant holding it, so that
/// the constants can be joined with `concat!` at compile time.
macro_rules! text {
    ($(#[$doc:meta])* $macro:ident, $name:ident, $text:literal) => {
        macro_rules! $macro {
            () => {
                $text
            };
        }
        $(#[$doc])*
        pub const $name: &str = $text;
    };
}

text!(
    /// The `[organisation]` (acmecorp.com shared) and `[topology]` (MX on
    /// `google`) tables.
    organisation,
    ORGANISATION,
    r#"[organisation]
shared_domains = ["acmecorp.com"]

[topology]
mx = "google"
"#
);

text!(
    /// The `google` system, `simulated`: routing domain gapps.acmecorp.com,
    /// shared contacts (`domain_routing`), unknown recipients relayed to
    /// `ldap`; seed `google.json`, state `google-state.jsonl`.
    google_simulated,
    GOOGLE_SIMULATED,
    r#"[[systems]]
id = "google"
kind = "simulated"
routing_domain = "gapps.acmecorp.com"
stub_style = "domain_routing"
unknown_recipient = { relay = "ldap" }
[systems.connection]
seed = "google.json"
state = "google-state.jsonl"
"#
);

text!(
    /// The `ldap` mail server, `simulated`: routing domain
    /// mithi.acmecorp.com, forwarding entries (`routing_address`); seed
    /// `ldap.json`, state `ldap-state.jsonl`.
    ldap_simulated,
    LDAP_SIMULATED,
    r#"[[systems]]
id = "ldap"
kind = "simulated"
routing_domain = "mithi.acmecorp.com"
stub_style = "routing_address"
[systems.connection]
seed = "ldap.json"
state = "ldap-state.jsonl"
"#
);

/// The whole organisation on `simulated` systems: [`ORGANISATION`],
/// [`GOOGLE_SIMULATED`] (`systems[0]`), [`LDAP_SIMULATED`] (`systems[1]`),
/// after a blank first line. Tests name its lines (`coexist.toml:13` is
/// Google's `unknown_recipient`): change it only with them.
pub const GOOGLE_AND_LDAP: &str = concat!(
    "\n",
    organisation!(),
    "\n",
    google_simulated!(),
    "\n",
    ldap_simulated!()
);

/// [`ORGANISATION`] with the tables of the `google` system (`systems[0]`)
/// and the `ldap` mail server (`systems[1]`), each a `[[systems]]` table
/// ending in a newline ([`GOOGLE_SIMULATED`], [`LDAP_SIMULATED`] or a
/// test's own), a blank line between them.
pub fn config(google: &str, ldap: &str) -> String {
    format!("{ORGANISATION}\n{google}\n{ldap}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_organisation_is_the_pieces_joined() {
        assert_eq!(
            GOOGLE_AND_LDAP,
            format!("\n{}", config(GOOGLE_SIMULATED, LDAP_SIMULATED))
        );
        let line = GOOGLE_AND_LDAP
            .lines()
            .position(|l| l.starts_with("unknown_recipient"))
            .map(|n| n + 1);
        assert_eq!(line, Some(13));
    }
}
