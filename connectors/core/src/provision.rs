//! Creating an account at its home system (`coexist provision`): what the
//! engine asks a connector to create, and what the connector says it made.
//!
//! The engine decides that an account is to be made, where, and with which
//! addresses; the connector only turns a [`NewAccount`] into its system's
//! object from the template in its connection table, and reports the
//! [`Recipient`] as its next read will list it.

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::{Attributes, Recipient};

/// An account to create at its home system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAccount {
    /// The shared-domain primary address (normalised).
    pub primary_address: String,
    /// The other addresses (normalised, sorted).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Names, phones, title, department (`given_name` and `surname` are
    /// what most systems require).
    #[serde(default)]
    pub attributes: Attributes,
    /// Further attributes named on the command line or in the CSV file,
    /// for the kind's template (for Google `org_unit`); a connector
    /// refuses the names it does not know rather than dropping them.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
    /// The initial password, to be changed at first login. Never
    /// serialised: it is not stored, only set on the account and shown
    /// once to the admin.
    #[serde(skip)]
    pub password: Option<Secret>,
}

impl NewAccount {
    /// The local part of the primary address (`ann` of `ann@acmecorp.com`).
    pub fn local_part(&self) -> &str {
        self.primary_address
            .split_once('@')
            .map_or(self.primary_address.as_str(), |(local, _)| local)
    }

    /// The display name: the one given, else the given name and surname,
    /// else the local part.
    pub fn display_name(&self) -> String {
        if let Some(name) = &self.attributes.display_name {
            return name.clone();
        }
        let names: Vec<&str> = [&self.attributes.given_name, &self.attributes.surname]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        if names.is_empty() {
            self.local_part().to_string()
        } else {
            names.join(" ")
        }
    }
}

/// What a connector made for a [`NewAccount`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provisioned {
    /// The account as the system's next read lists it (anchor, mailbox).
    pub recipient: Recipient,
    /// Where the account was made (a DN, a user id), for the admin.
    pub locator: String,
    /// `true` when the account existed already with this address (a rerun
    /// after a crash): nothing new was made.
    #[serde(default)]
    pub existed: bool,
    /// What the admin should know: a mailbox that appears asynchronously,
    /// a password the system will ask to change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// A random initial password of `length` characters (at least 16), with
/// upper and lower case letters, digits and punctuation (what Active
/// Directory's and Google's complexity rules ask), from the operating
/// system's random source.
pub fn initial_password(length: usize) -> Secret {
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGITS: &[u8] = b"23456789";
    const PUNCTUATION: &[u8] = b"-_.:+=#%";
    let length = length.max(16);
    let mut rng = rand::rngs::OsRng;
    let all: Vec<u8> = [LOWER, UPPER, DIGITS, PUNCTUATION].concat();
    let mut chars: Vec<u8> = [LOWER, UPPER, DIGITS, PUNCTUATION]
        .iter()
        .map(|set| set[rng.gen_range(0..set.len())])
        .collect();
    while chars.len() < length {
        chars.push(all[rng.gen_range(0..all.len())]);
    }
    // Shuffle, so the four guaranteed classes are not always first.
    for i in (1..chars.len()).rev() {
        chars.swap(i, rng.gen_range(0..=i));
    }
    Secret::new(chars.into_iter().map(char::from).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_initial_password_has_every_class_and_differs_each_time() {
        let first = initial_password(20);
        let second = initial_password(20);
        assert_eq!(first.expose().len(), 20);
        assert_ne!(first.expose(), second.expose());
        let p = first.expose();
        assert!(p.chars().any(|c| c.is_ascii_lowercase()));
        assert!(p.chars().any(|c| c.is_ascii_uppercase()));
        assert!(p.chars().any(|c| c.is_ascii_digit()));
        assert!(p.chars().any(|c| !c.is_ascii_alphanumeric()));
        assert_eq!(
            initial_password(4).expose().len(),
            16,
            "never shorter than 16"
        );
    }

    #[test]
    fn the_password_is_never_serialised() {
        let account = NewAccount {
            primary_address: "ann@acmecorp.com".into(),
            aliases: vec![],
            attributes: Attributes::default(),
            extra: BTreeMap::new(),
            password: Some(Secret::new("s3cret-Value")),
        };
        let json = serde_json::to_string(&account).unwrap_or_default();
        assert!(!json.contains("s3cret"), "{json}");
        assert!(format!("{account:?}").contains("[redacted]"));
    }
}
