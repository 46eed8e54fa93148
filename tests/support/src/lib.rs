//! The test environment of coexist's integration tests and benchmarks, in
//! one place (package `coexist-testenv`, test support only, never
//! published):
//!
//! * [`var`], [`try_var`], [`env_file`]: the settings of the real test
//!   servers that `deploy/testenv.sh up` starts on loopback (slapd, a second
//!   slapd shaped like qmail-ldap, Samba AD, PostgreSQL) and writes to
//!   `${COEXIST_TESTENV_DIR:-/tmp/coexist-testenv}/env`;
//! * [`TestServer`]: one directory server's settings
//!   ([`TestServer::slapd`], [`slapd_plain`](TestServer::slapd_plain),
//!   [`slapd_qmail`](TestServer::slapd_qmail),
//!   [`samba`](TestServer::samba)) and the ldap-utils programs run against
//!   it as its admin (`ldapadd`, `ldapmodify`, `ldapdelete`, `ldapsearch`,
//!   parsed by [`parse_ldif`]); [`slapd_config`] for slapd's `cn=config`;
//!   [`postgres_url`] for the PostgreSQL server;
//! * [`Subtree`]: a test's own subtree `ou=t-<random>` on a server, removed
//!   when the test ends, and [`random`] for names no other test uses;
//! * [`acmecorp`]: the acmecorp organisation of google-coexistence.txt as
//!   coexist.toml text, whole or in pieces;
//! * [`dns`]: the authoritative DNS server (NSD) and its zones, one per
//!   shape of a split domain's DNS, correct or broken;
//! * [`promtool`], [`chromium`]: the test programs `deploy/testenv.sh up`
//!   installs beside the servers.
//!
//! A missing setting fails the test with a message saying to run
//! `deploy/testenv.sh up`: tests that need a server never skip silently.
//!
//! The crate depends on no coexist crate, so any crate's tests can use it
//! (connector-specific helpers stay with their connector's tests).

// Test support: a test environment that is missing or broken must stop the
// test at once with a message saying what to do, so this crate unwraps and
// panics where product code may not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod acmecorp;
pub mod dns;
mod env;
mod ldif;
mod server;
mod subtree;
mod tools;

pub use env::{env_file, env_file_path, random, try_var, var};
pub use ldif::{parse_ldif, LdifEntry};
pub use server::{postgres_url, slapd_config, Directory, TestServer};
pub use subtree::{Password, Subtree};
pub use tools::{chromium, promtool};
