//! The kinds of system this build of coexist ships, registered once.
//!
//! Each connector crate describes its kinds ([`Kind`]): their name in the
//! configuration, the stub styles they can write, what they do with mail for
//! a disabled account, and how a connection table becomes a connector.
//! Adding a kind is a new crate plus one line in [`REGISTERED`].

use coexist_connector::Kind;

/// Every kind, in the order `--help` and error messages list them.
pub static REGISTERED: [&dyn Kind; 5] = [
    &coexist_ldap::LDAP,
    &coexist_ldap::ACTIVE_DIRECTORY,
    &coexist_google::KIND,
    &coexist_m365::KIND,
    &coexist_simulated::KIND,
];

/// The registered kind called `name`.
pub fn find(name: &str) -> Option<&'static dyn Kind> {
    REGISTERED.iter().copied().find(|k| k.name() == name)
}

/// The names of the registered kinds.
pub fn names() -> Vec<&'static str> {
    REGISTERED.iter().map(|k| k.name()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_name_and_a_default_stub_style() {
        let mut names = names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), REGISTERED.len(), "two kinds share a name");
        for kind in REGISTERED {
            assert!(
                !kind.stub_styles().is_empty(),
                "{} has no default style",
                kind.name()
            );
        }
    }
}
