//! The authoritative DNS server of the test environment (NSD, started by
//! `deploy/testenv.sh up dns` on loopback): one zone per shape of a split
//! domain's DNS, `<shape>.acmecorp.test`, each the Google + LDAP
//! organisation of google-coexistence.txt (MX on Google, routing domains
//! `gapps.<shape>` and `mithi.<shape>`, the mail server's smart host
//! `mail.<shape>`), and a stand-in `google.com` holding Google's SPF
//! includes. The zones are written by `dns_shape_zone` in
//! `deploy/testenv.sh`.

use crate::env::var;

/// The correct shape: every record right.
pub const CORRECT: &str = "correct";

/// The broken shapes, each wrong in one way: the shared domain's MX on the
/// mail server; SPF without the mail server; SPF over ten lookups; two SPF
/// records; no DKIM key for Google's selector; no DMARC record; the mail
/// server's routing domain without MX.
pub const BROKEN: [&str; 7] = [
    "mx-wrong",
    "spf-missing",
    "spf-too-many-lookups",
    "two-spf",
    "dkim-missing",
    "dmarc-absent",
    "routing-no-mx",
];

/// The server's address, `IP:PORT` (`COEXIST_TEST_DNS_NAMESERVER`).
pub fn nameserver() -> String {
    var("COEXIST_TEST_DNS_NAMESERVER")
}

/// The shared domain of `shape` (`correct.acmecorp.test`).
pub fn domain(shape: &str) -> String {
    format!("{shape}.{}", var("COEXIST_TEST_DNS_DOMAIN"))
}
