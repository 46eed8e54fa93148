//! The pull cursor: which incremental method the last pull used and where
//! it left off. It is JSON, opaque to the engine:
//!
//! ```json
//! {"v":1,"scope":"…fingerprint…","method":"syncrepl","cookies":{"dc=acmecorp,dc=com":"…base64…"}}
//! ```
//!
//! `scope` fingerprints the base DNs, filters and attribute names, so a
//! configuration change leads to a full read instead of a delta of the
//! wrong things.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::config::LdapConfig;

/// How the next pull finds the changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Method {
    /// RFC 4533 content sync, refreshOnly: one cookie per search base.
    Syncrepl { cookies: BTreeMap<String, String> },
    /// No syncprov: `modifyTimestamp >= since`, and the anchors seen last
    /// time, compared with a presence read to find deletions.
    ModifyTimestamp { since: String, ids: Vec<String> },
    /// AD DirSync: the cookie of the naming context.
    Dirsync { cookie: String },
    /// AD without the DirSync right: `uSNChanged` above `usn` on the DC
    /// whose `invocationId` is `invocation_id`, and the anchors seen last
    /// time, compared with a listing of the anchors to find deletions that
    /// the bind account cannot see as tombstones (it needs read access to
    /// `CN=Deleted Objects` for those). A cursor written before the anchors
    /// were kept (`ids` missing) leads to a full read.
    Usn {
        invocation_id: String,
        usn: u64,
        #[serde(default)]
        ids: Option<Vec<String>>,
    },
}

/// The cursor of a pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub v: u32,
    pub scope: String,
    #[serde(flatten)]
    pub method: Method,
    /// The stub base of the configuration that wrote the cursor: after
    /// `stub_base` changes, the next (full) read looks there for the stubs
    /// coexist left behind.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stub_base: String,
    /// Earlier stub bases that still held coexist's stubs at the last full
    /// read (a move that failed): looked at again by the next full read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_stub_bases: Vec<String>,
    /// Why the full read chose the method, in words: each delta's report
    /// says it again (the rights of the bind account do not change between
    /// full reads as far as coexist can tell).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub how: String,
}

impl Cursor {
    pub fn new(config: &LdapConfig, method: Method) -> Self {
        Cursor {
            v: 1,
            scope: fingerprint(config),
            method,
            stub_base: config.stub_base.clone(),
            earlier_stub_bases: Vec::new(),
            how: String::new(),
        }
    }

    /// The stub bases other than `config`'s where the cursor `text` says
    /// coexist's stubs may still be: the stub base it was written with, and
    /// those it carried. Read from any cursor of ours, whatever
    /// configuration wrote it.
    pub fn earlier_stub_bases(text: &str, config: &LdapConfig) -> Vec<String> {
        let Ok(c) = serde_json::from_str::<Earlier>(text) else {
            return Vec::new();
        };
        let current = crate::escape::normalize_dn(&config.stub_base);
        let mut bases: Vec<String> = Vec::new();
        for base in c
            .earlier_stub_bases
            .into_iter()
            .chain(std::iter::once(c.stub_base))
        {
            let normal = crate::escape::normalize_dn(&base);
            if !base.trim().is_empty()
                && normal != current
                && !bases
                    .iter()
                    .any(|b| crate::escape::normalize_dn(b) == normal)
            {
                bases.push(base);
            }
        }
        bases
    }

    pub fn encode(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }

    /// Parses a cursor, `None` when it is not ours, of another version, or
    /// of another configuration.
    pub fn decode(text: &str, config: &LdapConfig) -> Option<Self> {
        let c: Cursor = serde_json::from_str(text).ok()?;
        (c.v == 1 && c.scope == fingerprint(config)).then_some(c)
    }
}

/// What [`Cursor::earlier_stub_bases`] reads of a cursor.
#[derive(Deserialize)]
struct Earlier {
    #[serde(default)]
    stub_base: String,
    #[serde(default)]
    earlier_stub_bases: Vec<String>,
}

/// A short digest of what a pull reads.
pub fn fingerprint(config: &LdapConfig) -> String {
    let text = format!(
        "{:?}|{}|{}|{}|{}|{:?}|{:?}|{:?}|{:?}|{:?}",
        config.base_dns,
        config.effective_user_filter(),
        config.effective_group_filter(),
        config.stub_base,
        config.marker_attribute,
        config.attributes(),
        config.extra_attributes,
        config.flavor,
        config.disabled_when,
        config.disabled_unless,
    );
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Flavor;
    use coexist_connector::SecretRef;

    fn config() -> LdapConfig {
        LdapConfig::new(
            Flavor::Openldap,
            "ldap://x",
            "cn=a",
            SecretRef::Env { env: "X".into() },
            vec!["dc=x".into()],
            "ou=c,dc=x",
        )
    }

    #[test]
    fn a_cursor_round_trips_and_names_its_method() {
        let c = Cursor::new(
            &config(),
            Method::Syncrepl {
                cookies: BTreeMap::from([("dc=x".to_string(), b64(b"rid=000,csn=1"))]),
            },
        );
        let text = c.encode().unwrap();
        assert!(text.contains("\"method\":\"syncrepl\""), "{text}");
        assert_eq!(Cursor::decode(&text, &config()), Some(c));
    }

    #[test]
    fn a_cursor_of_another_configuration_or_garbage_is_refused() {
        let c = Cursor::new(
            &config(),
            Method::Dirsync {
                cookie: "AA==".into(),
            },
        );
        let mut other = config();
        other.base_dns = vec!["dc=y".into()];
        assert_eq!(Cursor::decode(&c.encode().unwrap(), &other), None);
        assert_eq!(Cursor::decode("not json", &config()), None);
        assert_eq!(Cursor::decode("{\"v\":9}", &config()), None);
    }

    #[test]
    fn a_cursor_names_the_stub_bases_that_may_still_hold_stubs_after_a_change() {
        let mut c = Cursor::new(
            &config(),
            Method::Dirsync {
                cookie: "AA==".into(),
            },
        );
        c.earlier_stub_bases = vec!["ou=older,dc=x".into()];
        let text = c.encode().unwrap();
        let mut moved = config();
        moved.stub_base = "ou=new,dc=x".into();
        assert_eq!(
            Cursor::earlier_stub_bases(&text, &moved),
            ["ou=older,dc=x", "ou=c,dc=x"]
        );
        // Back to the old stub base: only the other one is earlier.
        assert_eq!(
            Cursor::earlier_stub_bases(&text, &config()),
            ["ou=older,dc=x"]
        );
        assert!(Cursor::earlier_stub_bases("not json", &moved).is_empty());
    }
}
