//! Directory objects to coexist's [`Recipient`]s.
//!
//! * **Addresses**: every SMTP address of a recipient's `proxyAddresses`
//!   (`SMTP:` the primary, `smtp:` the others), the
//!   `…@<tenant>.mail.onmicrosoft.com` ones included, since the other
//!   systems route to the recipient's own routing-domain address as its
//!   home lists it; `mail` when `proxyAddresses` is empty. Other address
//!   types (`x500:`, `sip:`, `spo:`) are not mail addresses and are left out.
//! * **Mailbox**: what Exchange Online holds for the user decides, never a
//!   guess from `mail` ([`MailboxType`]): a user, shared, room or equipment
//!   mailbox is homed here; a mail user, or a user without an Exchange
//!   recipient (unlicensed, directory-only), is not (`mailbox = false`).
//! * **Enabled**: `accountEnabled`, except for shared, room and equipment
//!   mailboxes, whose sign-in Microsoft 365 blocks by design while they
//!   receive mail: they stay enabled (in the GAL).
//! * **Groups**: mail-enabled groups (distribution lists, mail-enabled
//!   security groups, Microsoft 365 groups) with the addresses of their
//!   members, nested groups replaced by their own members.
//! * **Nesting** ([`Nesting`]): which groups each group is a direct member
//!   of, so that a delta re-reads every group containing a changed one.
//! * **Mail contacts** coexist did not make: directory entries whose mail
//!   goes to their external address (`mailbox = false`, `forwards_to`),
//!   which the routing checks follow; they are never changed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use coexist_connector::{Attributes, Recipient, RecipientKind};
use serde::{Deserialize, Serialize};

use crate::exchange::MailContactRow;
use crate::graph::{Group, User};

/// What Exchange Online holds for a user (`RecipientTypeDetails`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxType {
    /// `UserMailbox`.
    User,
    /// `SharedMailbox`.
    Shared,
    /// `RoomMailbox` or `EquipmentMailbox`.
    Resource,
    /// `MailUser`: mail-enabled, its mailbox elsewhere; with the external
    /// address Exchange forwards to, when it gave one.
    MailUser(Option<String>),
    /// Another recipient type, kept as Exchange spelled it (not homed here).
    Other(String),
    /// A user mailbox forwarding every message to this address and keeping
    /// no copy (`ForwardingSmtpAddress`, `DeliverToMailboxAndForward`
    /// false; `coexist move`'s old mailbox): a forwarding entry, as an LDAP
    /// account with `mailRoutingAddress` is.
    Forwarding(String),
}

impl MailboxType {
    /// The type from `RecipientTypeDetails` (and the external address of a
    /// mail user).
    pub fn from_details(details: &str, external: Option<&str>) -> Self {
        match details {
            "UserMailbox" | "LinkedMailbox" => MailboxType::User,
            "SharedMailbox" => MailboxType::Shared,
            "RoomMailbox" | "EquipmentMailbox" => MailboxType::Resource,
            "MailUser" | "GuestMailUser" => MailboxType::MailUser(
                external
                    .map(strip_smtp)
                    .filter(|a| !a.is_empty())
                    .map(str::to_string),
            ),
            other => MailboxType::Other(other.to_string()),
        }
    }

    /// The type from a Get-Recipient row read with the forwarding
    /// properties: a user mailbox that forwards everything and keeps no
    /// copy is [`MailboxType::Forwarding`].
    pub fn from_row(
        details: &str,
        external: Option<&str>,
        forwarding: Option<&str>,
        deliver_and_forward: Option<bool>,
    ) -> Self {
        let forwarding = forwarding.map(strip_smtp).filter(|a| !a.is_empty());
        match (details, forwarding, deliver_and_forward) {
            ("UserMailbox", Some(to), Some(false) | None) => {
                MailboxType::Forwarding(to.to_string())
            }
            _ => MailboxType::from_details(details, external),
        }
    }

    /// Whether the mailbox is hosted in this tenant.
    pub fn is_mailbox(&self) -> bool {
        matches!(
            self,
            MailboxType::User | MailboxType::Shared | MailboxType::Resource
        )
    }
}

/// `SMTP:x` or `smtp:x` to `x`; other text as it is.
pub fn strip_smtp(address: &str) -> &str {
    let trimmed = address.trim();
    match trimmed.get(..5) {
        Some(prefix) if prefix.eq_ignore_ascii_case("smtp:") => trimmed[5..].trim(),
        _ => trimmed,
    }
}

/// The SMTP addresses of `proxyAddresses` (primary first), or `mail`
/// alone; `None` when there is none.
pub fn addresses(mail: Option<&str>, proxy_addresses: &[String]) -> Option<(String, Vec<String>)> {
    let mut primary: Option<String> = None;
    let mut others: Vec<String> = Vec::new();
    for entry in proxy_addresses {
        let entry = entry.trim();
        let Some(prefix) = entry.get(..5) else {
            continue;
        };
        if !prefix.eq_ignore_ascii_case("smtp:") {
            continue;
        }
        let address = entry[5..].trim();
        if address.is_empty() {
            continue;
        }
        if prefix == "SMTP:" && primary.is_none() {
            primary = Some(address.to_string());
        } else {
            others.push(address.to_string());
        }
    }
    let mail = mail.map(str::trim).filter(|m| !m.is_empty());
    let primary = match (primary, mail) {
        (Some(p), _) => p,
        (None, Some(m)) => m.to_string(),
        (None, None) if !others.is_empty() => others.remove(0),
        (None, None) => return None,
    };
    let mut seen: HashSet<String> = HashSet::from([primary.to_lowercase()]);
    let mut aliases: Vec<String> = others
        .into_iter()
        .filter(|a| seen.insert(a.to_lowercase()))
        .collect();
    aliases.sort_by_key(|a| a.to_lowercase());
    Some((primary, aliases))
}

fn text(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// A user as a recipient, or `None` when it has no mail address (not a
/// recipient at all). `mailbox` is what Exchange holds for it (`None`: no
/// recipient).
pub fn user_to_recipient(user: &User, mailbox: Option<&MailboxType>) -> Option<Recipient> {
    let (primary, aliases) = addresses(user.mail.as_deref(), &user.proxy_addresses)?;
    let (kind, is_mailbox, always_enabled, forwards_to) = match mailbox {
        Some(MailboxType::User) => (RecipientKind::Person, true, false, None),
        Some(MailboxType::Shared) => (RecipientKind::SharedMailbox, true, true, None),
        Some(MailboxType::Resource) => (RecipientKind::Resource, true, true, None),
        Some(MailboxType::MailUser(external)) => {
            (RecipientKind::Person, false, false, external.clone())
        }
        Some(MailboxType::Forwarding(to)) => {
            (RecipientKind::Person, false, false, Some(to.clone()))
        }
        Some(MailboxType::Other(_)) | None => (RecipientKind::Person, false, false, None),
    };
    let mut extra = BTreeMap::new();
    if let Some(office) = text(&user.office_location) {
        extra.insert("office_location".to_string(), office);
    }
    Some(Recipient {
        anchor: user.id.clone(),
        kind,
        primary_address: primary,
        aliases,
        mailbox: is_mailbox,
        enabled: always_enabled || user.account_enabled.unwrap_or(true),
        attributes: Attributes {
            display_name: text(&user.display_name),
            given_name: text(&user.given_name),
            surname: text(&user.surname),
            business_phone: user
                .business_phones
                .iter()
                .map(|p| p.trim())
                .find(|p| !p.is_empty())
                .map(str::to_string),
            mobile_phone: text(&user.mobile_phone),
            title: text(&user.job_title),
            department: text(&user.department),
            company: text(&user.company_name),
        },
        members: Vec::new(),
        forwards_to,
        extra,
        locator: text(&user.user_principal_name),
        etag: None,
    })
}

/// A mail-enabled group as a recipient, with `members` (already resolved
/// addresses); `None` for a group Exchange does not deliver to.
pub fn group_to_recipient(group: &Group, members: Vec<String>) -> Option<Recipient> {
    if !group.is_mail_enabled() {
        return None;
    }
    let (primary, aliases) = addresses(group.mail.as_deref(), &group.proxy_addresses)?;
    Some(Recipient {
        anchor: group.id.clone(),
        kind: RecipientKind::Group,
        locator: Some(primary.clone()),
        primary_address: primary,
        aliases,
        mailbox: true,
        enabled: true,
        attributes: Attributes {
            display_name: text(&group.display_name),
            ..Attributes::default()
        },
        members,
        forwards_to: None,
        extra: BTreeMap::new(),
        etag: None,
    })
}

/// A mail contact coexist did not make, as a directory entry forwarding to
/// its external address.
pub fn contact_to_recipient(row: &MailContactRow) -> Option<Recipient> {
    let anchor = text(&row.guid)?;
    let external = row
        .external_email_address
        .as_deref()
        .map(strip_smtp)
        .filter(|a| !a.is_empty())
        .map(str::to_string);
    let (primary, aliases) = addresses(external.as_deref(), &row.email_addresses)?;
    Some(Recipient {
        anchor,
        kind: RecipientKind::Person,
        locator: text(&row.name),
        primary_address: primary,
        aliases,
        mailbox: false,
        enabled: true,
        attributes: Attributes {
            display_name: text(&row.display_name),
            ..Attributes::default()
        },
        members: Vec::new(),
        forwards_to: external,
        extra: BTreeMap::new(),
        etag: None,
    })
}

/// Resolves group members from each group's direct members (ids): users
/// by their primary address, nested groups by their own members,
/// recursively (each group once, cycles cut). `addresses` maps a user id
/// to its primary address (users without one are left out).
pub fn resolve_members(
    direct: &HashMap<String, BTreeSet<String>>,
    addresses: &HashMap<String, String>,
) -> HashMap<String, Vec<String>> {
    let mut resolved = HashMap::with_capacity(direct.len());
    for group in direct.keys() {
        let mut out: BTreeSet<String> = BTreeSet::new();
        let mut visited: HashSet<&str> = HashSet::from([group.as_str()]);
        let mut stack: Vec<&str> = vec![group.as_str()];
        while let Some(current) = stack.pop() {
            let Some(members) = direct.get(current) else {
                continue;
            };
            for member in members {
                if direct.contains_key(member) {
                    if visited.insert(member.as_str()) {
                        stack.push(member.as_str());
                    }
                } else if let Some(address) = addresses.get(member) {
                    out.insert(address.clone());
                }
            }
        }
        resolved.insert(group.clone(), out.into_iter().collect());
    }
    resolved
}

/// Which groups contain which: for each group that is a direct member of
/// other groups, those groups (by id). Groups without mail are kept too,
/// since a group without mail may stand between two groups with mail. Kept
/// in the pull's cursor, so that a delta re-reads the members of every
/// group containing a changed one (Graph's delta reports only the group
/// whose direct members changed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Nesting {
    parents: BTreeMap<String, BTreeSet<String>>,
}

impl Nesting {
    /// The nesting of `direct` (each group's direct members by id): a
    /// member is a group when it is a key of `direct` or is in `groups`
    /// (members Graph typed as groups).
    pub fn from_direct(
        direct: &HashMap<String, BTreeSet<String>>,
        groups: &HashSet<String>,
    ) -> Self {
        let mut nesting = Nesting::default();
        for (parent, members) in direct {
            for member in members {
                if direct.contains_key(member) || groups.contains(member) {
                    nesting.add(parent, member);
                }
            }
        }
        nesting
    }

    /// `child` became a direct member of `parent`.
    pub fn add(&mut self, parent: &str, child: &str) {
        if parent != child {
            self.parents
                .entry(child.to_string())
                .or_default()
                .insert(parent.to_string());
        }
    }

    /// `child` is no longer a direct member of `parent` (nothing when it
    /// was not one, or is no group).
    pub fn remove(&mut self, parent: &str, child: &str) {
        if let Some(parents) = self.parents.get_mut(child) {
            parents.remove(parent);
            if parents.is_empty() {
                self.parents.remove(child);
            }
        }
    }

    /// A deleted group: neither a member of a group nor containing one.
    pub fn forget(&mut self, group: &str) {
        self.parents.remove(group);
        self.parents.retain(|_, parents| {
            parents.remove(group);
            !parents.is_empty()
        });
    }

    /// Every group containing one of `groups`, directly or through other
    /// groups (each once, cycles cut), `groups` themselves left out unless
    /// one contains another.
    pub fn ancestors<'a>(&self, groups: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        let mut found: BTreeSet<String> = BTreeSet::new();
        let mut stack: Vec<&str> = groups.into_iter().collect();
        while let Some(current) = stack.pop() {
            for parent in self.parents.get(current).into_iter().flatten() {
                if found.insert(parent.clone()) {
                    stack.push(parent.as_str());
                }
            }
        }
        found
    }

    /// How many direct group-in-group memberships are kept.
    pub fn len(&self) -> usize {
        self.parents.values().map(BTreeSet::len).sum()
    }

    /// Whether no group is a member of another.
    pub fn is_empty(&self) -> bool {
        self.parents.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_smtp_address_is_kept_and_other_address_types_are_not() {
        let (primary, aliases) = addresses(
            Some("ann@acmecorp.com"),
            &[
                "smtp:ann@acmecorp.mail.onmicrosoft.com".into(),
                "SMTP:Ann@acmecorp.com".into(),
                "x500:/o=ExchangeLabs/cn=ann".into(),
                "SIP:ann@acmecorp.com".into(),
                "smtp:a.lee@acmecorp.com".into(),
            ],
        )
        .unwrap_or_default();
        assert_eq!(primary, "Ann@acmecorp.com");
        assert_eq!(
            aliases,
            ["a.lee@acmecorp.com", "ann@acmecorp.mail.onmicrosoft.com"]
        );
    }

    #[test]
    fn a_user_without_any_address_is_no_recipient() {
        assert!(addresses(None, &[]).is_none());
        let user = User {
            id: "u".into(),
            ..User::default()
        };
        assert!(user_to_recipient(&user, Some(&MailboxType::User)).is_none());
    }

    #[test]
    fn exchange_decides_the_mailbox_and_shared_mailboxes_stay_enabled() {
        let user = User {
            id: "u".into(),
            mail: Some("info@acmecorp.com".into()),
            account_enabled: Some(false),
            ..User::default()
        };
        let shared = user_to_recipient(&user, Some(&MailboxType::Shared));
        assert!(shared
            .as_ref()
            .is_some_and(|r| r.mailbox && r.enabled && r.kind == RecipientKind::SharedMailbox));
        let mail_user = user_to_recipient(
            &user,
            Some(&MailboxType::from_details(
                "MailUser",
                Some("SMTP:info@elsewhere.com"),
            )),
        );
        assert!(mail_user.as_ref().is_some_and(|r| !r.mailbox && !r.enabled));
        assert_eq!(
            mail_user.and_then(|r| r.forwards_to).as_deref(),
            Some("info@elsewhere.com")
        );
        assert!(user_to_recipient(&user, None).is_some_and(|r| !r.mailbox));
    }

    #[test]
    fn the_nesting_gives_every_group_containing_a_changed_one_and_forgets_deleted_groups() {
        let direct = HashMap::from([
            (
                "company".to_string(),
                BTreeSet::from(["all".to_string(), "u1".to_string()]),
            ),
            ("all".to_string(), BTreeSet::from(["sales".to_string()])),
            ("sales".to_string(), BTreeSet::from(["company".to_string()])),
        ]);
        let mut nesting = Nesting::from_direct(&direct, &HashSet::new());
        assert_eq!(nesting.len(), 3, "u1 is no group");
        assert_eq!(
            nesting.ancestors(["sales"]),
            BTreeSet::from(["all".into(), "company".into(), "sales".into()]),
            "a cycle ends, and holds the group itself"
        );
        nesting.remove("sales", "company");
        assert_eq!(
            nesting.ancestors(["sales"]),
            BTreeSet::from(["all".into(), "company".into()])
        );
        nesting.forget("all");
        assert!(nesting.ancestors(["sales"]).is_empty());
        assert!(nesting.is_empty());
        nesting.add("team", "team");
        assert!(nesting.is_empty(), "a group is no member of itself");
    }

    #[test]
    fn nested_groups_are_resolved_to_their_members_and_cycles_end() {
        let direct = HashMap::from([
            (
                "all".to_string(),
                BTreeSet::from(["sales".to_string(), "u1".to_string()]),
            ),
            (
                "sales".to_string(),
                BTreeSet::from(["u2".to_string(), "all".to_string()]),
            ),
        ]);
        let addresses = HashMap::from([
            ("u1".to_string(), "ann@acmecorp.com".to_string()),
            ("u2".to_string(), "bob@acmecorp.com".to_string()),
        ]);
        let resolved = resolve_members(&direct, &addresses);
        assert_eq!(
            resolved.get("all").map(Vec::as_slice),
            Some(
                [
                    "ann@acmecorp.com".to_string(),
                    "bob@acmecorp.com".to_string()
                ]
                .as_slice()
            )
        );
        assert_eq!(resolved.get("sales").map(Vec::len), Some(2));
    }
}
