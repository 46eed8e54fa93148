//! The fake tenant's data: directory objects with their change sequence (for
//! delta queries), group memberships and their changes, Exchange mail
//! contacts, mailbox contact folders, tokens, paging cursors, pending faults
//! and request counters, behind one mutex.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rand::Rng;
use serde_json::{Map, Value};

use crate::{Counters, Fault};

/// What Exchange Online holds for a user: the `RecipientTypeDetails` of its
/// recipient, or none (a directory-only account, such as an unlicensed user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RecipientType {
    /// A licensed user's mailbox (`UserMailbox`).
    #[default]
    UserMailbox,
    /// A shared mailbox (`SharedMailbox`, its account usually disabled).
    SharedMailbox,
    /// A room mailbox (`RoomMailbox`).
    RoomMailbox,
    /// An equipment mailbox (`EquipmentMailbox`).
    EquipmentMailbox,
    /// A mail user: mail-enabled, its mailbox elsewhere (`MailUser`).
    MailUser,
    /// No Exchange recipient at all.
    None,
}

impl RecipientType {
    /// `RecipientTypeDetails`, or `None` for no recipient.
    pub fn details(self) -> Option<&'static str> {
        match self {
            RecipientType::UserMailbox => Some("UserMailbox"),
            RecipientType::SharedMailbox => Some("SharedMailbox"),
            RecipientType::RoomMailbox => Some("RoomMailbox"),
            RecipientType::EquipmentMailbox => Some("EquipmentMailbox"),
            RecipientType::MailUser => Some("MailUser"),
            RecipientType::None => None,
        }
    }

    /// `RecipientType` (the coarse kind): `UserMailbox` or `MailUser`.
    pub fn recipient_type(self) -> Option<&'static str> {
        match self {
            RecipientType::MailUser => Some("MailUser"),
            RecipientType::None => None,
            _ => Some("UserMailbox"),
        }
    }

    /// Whether Exchange holds a mailbox for the user (Outlook REST works).
    pub fn has_mailbox(self) -> bool {
        !matches!(self, RecipientType::MailUser | RecipientType::None)
    }
}

/// A Microsoft Entra user, with what Exchange Online holds for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeUser {
    /// The object id (a GUID); generated when empty.
    pub id: String,
    /// `userPrincipalName`.
    pub user_principal_name: String,
    /// `mail` (the primary SMTP address); empty is null.
    pub mail: String,
    /// `mailNickname` (Exchange's `Alias`); the local part of `mail` (else of
    /// the UPN) when empty.
    pub mail_nickname: String,
    /// `proxyAddresses`, `SMTP:` for the primary, `smtp:` for the others. When
    /// empty and `mail` is set, `SMTP:{mail}`.
    pub proxy_addresses: Vec<String>,
    /// `displayName`.
    pub display_name: String,
    /// `givenName`.
    pub given_name: String,
    /// `surname`.
    pub surname: String,
    /// `jobTitle`.
    pub job_title: String,
    /// `department`.
    pub department: String,
    /// `companyName`.
    pub company_name: String,
    /// `businessPhones`.
    pub business_phones: Vec<String>,
    /// `mobilePhone`.
    pub mobile_phone: String,
    /// `officeLocation`.
    pub office_location: String,
    /// `accountEnabled` (true by default).
    pub account_enabled: bool,
    /// What Exchange Online holds for the user (a user mailbox by default).
    pub recipient_type: RecipientType,
}

impl Default for FakeUser {
    fn default() -> Self {
        FakeUser {
            id: String::new(),
            user_principal_name: String::new(),
            mail: String::new(),
            mail_nickname: String::new(),
            proxy_addresses: Vec::new(),
            display_name: String::new(),
            given_name: String::new(),
            surname: String::new(),
            job_title: String::new(),
            department: String::new(),
            company_name: String::new(),
            business_phones: Vec::new(),
            mobile_phone: String::new(),
            office_location: String::new(),
            account_enabled: true,
            recipient_type: RecipientType::UserMailbox,
        }
    }
}

/// A Microsoft Entra group (security group, distribution list, mail-enabled
/// security group or Microsoft 365 group).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FakeGroup {
    /// The object id (a GUID); generated when empty.
    pub id: String,
    /// `displayName`.
    pub display_name: String,
    /// `description`.
    pub description: String,
    /// `mail`; empty is null.
    pub mail: String,
    /// `mailNickname`; the local part of `mail` when empty.
    pub mail_nickname: String,
    /// `mailEnabled`.
    pub mail_enabled: bool,
    /// `securityEnabled`.
    pub security_enabled: bool,
    /// `groupTypes`, e.g. `["Unified"]` for a Microsoft 365 group.
    pub group_types: Vec<String>,
    /// `proxyAddresses`; `SMTP:{mail}` when empty and `mail` is set.
    pub proxy_addresses: Vec<String>,
}

impl FakeGroup {
    fn is_unified(&self) -> bool {
        self.group_types
            .iter()
            .any(|t| t.eq_ignore_ascii_case("Unified"))
    }

    /// Exchange's `RecipientTypeDetails` for the group, when it is mail-enabled.
    pub(crate) fn recipient_details(&self) -> Option<&'static str> {
        if !self.mail_enabled || self.mail.is_empty() {
            None
        } else if self.is_unified() {
            Some("GroupMailbox")
        } else if self.security_enabled {
            Some("MailUniversalSecurityGroup")
        } else {
            Some("MailUniversalDistributionGroup")
        }
    }
}

/// An Exchange Online mail contact (a GAL entry for an address elsewhere).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FakeMailContact {
    /// `Guid`; generated when empty.
    pub guid: String,
    /// `Name` (unique among the tenant's contacts).
    pub name: String,
    /// `Alias`; derived from `name` when empty.
    pub alias: String,
    /// `DisplayName`; `name` when empty.
    pub display_name: String,
    /// `ExternalEmailAddress`, as Exchange shows it: `SMTP:someone@elsewhere`.
    pub external_email_address: String,
    /// `EmailAddresses` (`SMTP:` primary, `smtp:` others); `SMTP:` + the
    /// external address when empty.
    pub email_addresses: Vec<String>,
    /// `CustomAttribute1` (coexist's marker lives here).
    pub custom_attribute1: String,
    /// `CustomAttribute2` (coexist keeps the stub's recipient kind here).
    pub custom_attribute2: String,
    /// `HiddenFromAddressListsEnabled`.
    pub hidden_from_address_lists_enabled: bool,
    /// `FirstName` (Get-Contact / Set-Contact).
    pub first_name: String,
    /// `LastName`.
    pub last_name: String,
    /// `Title`.
    pub title: String,
    /// `Department`.
    pub department: String,
    /// `Company`.
    pub company: String,
    /// `Phone`.
    pub phone: String,
    /// `MobilePhone`.
    pub mobile_phone: String,
}

impl FakeMailContact {
    /// `PrimarySmtpAddress`: the `SMTP:` entry of `email_addresses`.
    pub fn primary_smtp_address(&self) -> String {
        self.email_addresses
            .iter()
            .find_map(|a| a.strip_prefix("SMTP:"))
            .or_else(|| self.email_addresses.iter().find_map(|a| strip_smtp(a)))
            .unwrap_or("")
            .to_owned()
    }
}

/// A personal contact in a mailbox's contact folder (Outlook contact).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FakePersonalContact {
    /// The contact's id.
    pub id: String,
    /// The id of its contact folder.
    pub folder_id: String,
    /// `displayName`.
    pub display_name: String,
    /// `givenName`.
    pub given_name: String,
    /// `surname`.
    pub surname: String,
    /// `emailAddresses` as (name, address).
    pub email_addresses: Vec<(String, String)>,
    /// `jobTitle`.
    pub job_title: String,
    /// `department`.
    pub department: String,
    /// `companyName`.
    pub company_name: String,
    /// `businessPhones`.
    pub business_phones: Vec<String>,
    /// `mobilePhone`.
    pub mobile_phone: String,
    /// Every property as stored (JSON), for what the fields above leave out.
    pub properties: Value,
}

/// `smtp:x` or `SMTP:x` to `x`.
pub(crate) fn strip_smtp(address: &str) -> Option<&str> {
    address
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("smtp:"))
        .and_then(|_| address.get(5..))
}

/// Lower-cased address without its prefix.
pub(crate) fn address_key(address: &str) -> String {
    strip_smtp(address)
        .unwrap_or(address)
        .trim()
        .to_ascii_lowercase()
}

/// Whether `address` (bare or `SMTP:`-prefixed) is the address whose
/// [`address_key`] is `key`, without allocating: the fake compares every
/// recipient's addresses on each write, as Exchange's uniqueness check does.
pub(crate) fn is_address(address: &str, key: &str) -> bool {
    strip_smtp(address)
        .unwrap_or(address)
        .trim()
        .eq_ignore_ascii_case(key)
}

pub(crate) fn local_part(address: &str) -> &str {
    address.split('@').next().unwrap_or(address)
}

/// A random GUID, as Microsoft writes them.
pub(crate) fn new_guid() -> String {
    let mut rng = rand::thread_rng();
    let a: u32 = rng.gen();
    let b: u16 = rng.gen();
    let c: u16 = rng.gen::<u16>() & 0x0fff;
    let d: u16 = (rng.gen::<u16>() & 0x3fff) | 0x8000;
    let e: u64 = rng.gen::<u64>() & 0xffff_ffff_ffff;
    format!("{a:08x}-{b:04x}-4{c:03x}-{d:04x}-{e:012x}")
}

/// A deterministic GUID for synthetic data.
pub(crate) fn synthetic_guid(kind: u16, n: u64) -> String {
    format!("{kind:08x}-0000-4000-8000-{n:012x}")
}

pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `2024-05-01T10:00:00Z` (and `…T10:00:00` without `Z` for `innerError.date`).
pub(crate) fn rfc3339_now(with_z: bool) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let text = time::OffsetDateTime::now_utc()
        .format(&fmt)
        .unwrap_or_else(|_| "1970-01-01T00:00:00".to_owned());
    if with_z {
        format!("{text}Z")
    } else {
        text
    }
}

/// A directory object the fake knows, alive or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjKind {
    User,
    Group,
}

impl ObjKind {
    pub fn odata_type(self) -> &'static str {
        match self {
            ObjKind::User => "#microsoft.graph.user",
            ObjKind::Group => "#microsoft.graph.group",
        }
    }
}

pub(crate) struct StoredUser {
    pub user: FakeUser,
    pub seq: u64,
}

pub(crate) struct StoredGroup {
    pub group: FakeGroup,
    pub seq: u64,
    /// Direct members (user and group ids), in the order they were added.
    pub members: Vec<String>,
}

/// A deleted user or group, for `@removed` in delta answers.
pub(crate) struct Tombstone {
    pub kind: ObjKind,
    pub seq: u64,
    /// `changed` (soft-deleted, restorable) or `deleted` (gone for good).
    pub reason: &'static str,
}

/// A change of a group's direct members.
#[derive(Clone)]
pub(crate) struct MemberEvent {
    pub seq: u64,
    pub group: String,
    pub member: String,
    pub added: bool,
}

/// A contact folder of a mailbox, with its contacts (JSON as stored).
pub(crate) struct Folder {
    pub id: String,
    pub display_name: String,
    pub parent_folder_id: String,
    pub contacts: BTreeMap<String, Map<String, Value>>,
}

/// A domain of the tenant, as Graph lists it and Exchange accepts it.
#[derive(Debug, Clone)]
pub(crate) struct DomainRec {
    pub name: String,
    pub verified: bool,
    pub is_default: bool,
    pub is_initial: bool,
    /// Exchange's `DomainType`: `Authoritative` or `InternalRelay`.
    pub accepted_type: String,
}

/// Which audience a token was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    Graph,
    Exchange,
}

pub(crate) struct TokenInfo {
    pub audience: Audience,
    pub roles: Vec<String>,
    pub expires_at: Instant,
}

/// What a Graph collection request lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Collection {
    Users,
    Groups,
    Members(String),
    TransitiveMembers(String),
}

/// One delta round: the changes in `(since, until]` (or everything, `initial`).
#[derive(Clone)]
pub(crate) struct DeltaRound {
    pub until: u64,
    pub initial: bool,
    /// Net member changes per group in the round (incremental rounds).
    pub member_changes: Arc<HashMap<String, Vec<(String, bool)>>>,
    /// [`State::delta_generation`] when the round's state was issued.
    pub generation: u64,
}

/// A paging cursor (`$skiptoken`).
#[derive(Clone)]
pub(crate) struct Cursor {
    pub collection: Collection,
    pub select: Option<Vec<String>>,
    pub page_size: usize,
    /// The ids of the whole listing, fixed at its first page.
    pub ids: Arc<Vec<String>>,
    pub offset: usize,
    pub delta: Option<DeltaRound>,
    /// The query of the first page (other than `$skiptoken`), for the next link.
    pub query: String,
}

/// A delta link's state (`$deltatoken`).
#[derive(Clone)]
pub(crate) struct DeltaLink {
    pub collection: Collection,
    pub select: Option<Vec<String>>,
    pub page_size: usize,
    pub since: u64,
    pub generation: u64,
}

/// Everything the handlers share.
pub(crate) struct Shared {
    pub base_url: String,
    pub tenant_id: String,
    pub tenant_domain: String,
    pub domain: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub keys: crate::auth::Keys,
    pub graph_roles: Vec<String>,
    pub exchange_roles: Vec<String>,
    pub latency_micros: AtomicU64,
    pub state: Mutex<State>,
}

impl Shared {
    /// Adds to the request counters.
    pub fn count(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut self.state.lock().counters);
    }

    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.base_url)
    }

    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.base_url, self.tenant_id)
    }

    pub fn exchange_url(&self) -> String {
        format!("{}/adminapi/beta/{}", self.base_url, self.tenant_id)
    }
}

pub(crate) struct State {
    pub users: BTreeMap<String, StoredUser>,
    /// Lower-cased UPN to id.
    pub upn_index: HashMap<String, String>,
    pub groups: BTreeMap<String, StoredGroup>,
    /// Deleted users and groups by id.
    pub tombstones: HashMap<String, Tombstone>,
    /// Member changes, in sequence order.
    pub member_events: Vec<MemberEvent>,
    /// The last change's sequence number.
    pub seq: u64,
    pub mail_contacts: BTreeMap<String, FakeMailContact>,
    /// The mail contacts' lower-cased names and their addresses
    /// ([`address_key`]), to their Guid: Exchange refuses a name or an
    /// address already used, and the fake checks that on every write
    /// without scanning every contact. Kept by [`State::put_contact`] and
    /// [`State::take_contact`], the only ways contacts change.
    contact_names: HashMap<String, String>,
    contact_addresses: HashMap<String, String>,
    /// Mailbox contact folders per user id.
    pub folders: HashMap<String, Vec<Folder>>,
    pub domains: Vec<DomainRec>,
    pub tokens: HashMap<String, TokenInfo>,
    pub token_lifetime: Duration,
    pub cursors: HashMap<String, Cursor>,
    pub delta_links: HashMap<String, DeltaLink>,
    pub delta_generation: u64,
    /// Exchange paging: token to (cmdlet input, offset).
    pub exchange_cursors: HashMap<String, (Value, usize)>,
    pub faults: VecDeque<Fault>,
    pub batch_faults: VecDeque<Fault>,
    pub exchange_faults: VecDeque<Fault>,
    pub token_faults: VecDeque<Fault>,
    pub retry_after_secs: u64,
    pub counters: Counters,
    /// The users created through Graph and their licenses.
    pub provisioned: crate::users::Provisioned,
}

fn key(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

impl State {
    pub fn new(token_lifetime: Duration) -> State {
        State {
            users: BTreeMap::new(),
            upn_index: HashMap::new(),
            groups: BTreeMap::new(),
            tombstones: HashMap::new(),
            member_events: Vec::new(),
            seq: 0,
            mail_contacts: BTreeMap::new(),
            contact_names: HashMap::new(),
            contact_addresses: HashMap::new(),
            folders: HashMap::new(),
            domains: Vec::new(),
            tokens: HashMap::new(),
            token_lifetime,
            cursors: HashMap::new(),
            delta_links: HashMap::new(),
            delta_generation: 0,
            exchange_cursors: HashMap::new(),
            faults: VecDeque::new(),
            batch_faults: VecDeque::new(),
            exchange_faults: VecDeque::new(),
            token_faults: VecDeque::new(),
            retry_after_secs: 1,
            counters: Counters::default(),
            provisioned: crate::users::Provisioned::default(),
        }
    }

    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// A random opaque token for links.
    pub fn opaque_token() -> String {
        let mut rng = rand::thread_rng();
        format!("{:016x}{:016x}", rng.gen::<u64>(), rng.gen::<u64>())
    }

    // ----- users -----

    fn normalise_user(user: &mut FakeUser) {
        if user.mail_nickname.is_empty() {
            let source = if user.mail.is_empty() {
                &user.user_principal_name
            } else {
                &user.mail
            };
            user.mail_nickname = local_part(source).to_owned();
        }
        if user.proxy_addresses.is_empty() && !user.mail.is_empty() {
            user.proxy_addresses = vec![format!("SMTP:{}", user.mail)];
        }
    }

    /// The id of a user named by id or UPN.
    pub fn user_id(&self, id_or_upn: &str) -> Option<String> {
        if self.users.contains_key(id_or_upn) {
            return Some(id_or_upn.to_owned());
        }
        self.upn_index.get(&key(id_or_upn)).cloned()
    }

    pub fn add_user(&mut self, mut user: FakeUser) -> String {
        if user.id.is_empty() {
            user.id = self
                .upn_index
                .get(&key(&user.user_principal_name))
                .cloned()
                .unwrap_or_else(new_guid);
        }
        Self::normalise_user(&mut user);
        let id = user.id.clone();
        if let Some(old) = self.users.get(&id) {
            let old_upn = key(&old.user.user_principal_name);
            self.upn_index.remove(&old_upn);
        }
        self.tombstones.remove(&id);
        self.upn_index
            .insert(key(&user.user_principal_name), id.clone());
        let seq = self.next_seq();
        self.users.insert(id.clone(), StoredUser { user, seq });
        id
    }

    pub fn update_user(&mut self, id: &str, f: impl FnOnce(&mut FakeUser)) -> bool {
        let Some(mut user) = self.users.get(id).map(|s| s.user.clone()) else {
            return false;
        };
        f(&mut user);
        user.id = id.to_owned();
        self.add_user(user);
        true
    }

    /// Deletes a user: `soft` keeps it restorable (`@removed` reason
    /// `changed`), else it is gone (`deleted`). Its memberships end.
    pub fn remove_user(&mut self, id: &str, soft: bool) -> bool {
        let Some(stored) = self.users.remove(id) else {
            if !soft {
                if let Some(t) = self.tombstones.get_mut(id) {
                    t.reason = "deleted";
                    return true;
                }
            }
            return false;
        };
        self.upn_index
            .remove(&key(&stored.user.user_principal_name));
        self.folders.remove(id);
        self.drop_memberships_of(id);
        let seq = self.next_seq();
        self.tombstones.insert(
            id.to_owned(),
            Tombstone {
                kind: ObjKind::User,
                seq,
                reason: if soft { "changed" } else { "deleted" },
            },
        );
        true
    }

    fn drop_memberships_of(&mut self, member: &str) {
        let groups: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.members.iter().any(|m| m == member))
            .map(|(id, _)| id.clone())
            .collect();
        for g in groups {
            self.remove_member(&g, member);
        }
    }

    // ----- groups -----

    pub fn add_group(&mut self, mut group: FakeGroup) -> String {
        if group.id.is_empty() {
            group.id = new_guid();
        }
        if group.mail_nickname.is_empty() && !group.mail.is_empty() {
            group.mail_nickname = local_part(&group.mail).to_owned();
        }
        if group.proxy_addresses.is_empty() && !group.mail.is_empty() {
            group.proxy_addresses = vec![format!("SMTP:{}", group.mail)];
        }
        let id = group.id.clone();
        self.tombstones.remove(&id);
        let seq = self.next_seq();
        let members = self
            .groups
            .remove(&id)
            .map(|g| g.members)
            .unwrap_or_default();
        self.groups.insert(
            id.clone(),
            StoredGroup {
                group,
                seq,
                members,
            },
        );
        id
    }

    pub fn update_group(&mut self, id: &str, f: impl FnOnce(&mut FakeGroup)) -> bool {
        let Some(mut group) = self.groups.get(id).map(|s| s.group.clone()) else {
            return false;
        };
        f(&mut group);
        group.id = id.to_owned();
        self.add_group(group);
        true
    }

    /// Deletes a group: Microsoft 365 groups are soft-deleted (`changed`),
    /// other groups are gone (`deleted`), as in Microsoft Entra.
    pub fn remove_group(&mut self, id: &str) -> bool {
        let Some(stored) = self.groups.remove(id) else {
            return false;
        };
        self.drop_memberships_of(id);
        let seq = self.next_seq();
        self.tombstones.insert(
            id.to_owned(),
            Tombstone {
                kind: ObjKind::Group,
                seq,
                reason: if stored.group.is_unified() {
                    "changed"
                } else {
                    "deleted"
                },
            },
        );
        true
    }

    pub fn kind_of(&self, id: &str) -> Option<ObjKind> {
        if self.users.contains_key(id) {
            Some(ObjKind::User)
        } else if self.groups.contains_key(id) {
            Some(ObjKind::Group)
        } else {
            self.tombstones.get(id).map(|t| t.kind)
        }
    }

    pub fn add_member(&mut self, group: &str, member: &str) -> bool {
        if self.kind_of(member).is_none() || member == group {
            return false;
        }
        let Some(g) = self.groups.get(group) else {
            return false;
        };
        if g.members.iter().any(|m| m == member) {
            return true;
        }
        let seq = self.next_seq();
        if let Some(g) = self.groups.get_mut(group) {
            g.members.push(member.to_owned());
        }
        self.member_events.push(MemberEvent {
            seq,
            group: group.to_owned(),
            member: member.to_owned(),
            added: true,
        });
        true
    }

    pub fn remove_member(&mut self, group: &str, member: &str) -> bool {
        let Some(g) = self.groups.get(group) else {
            return false;
        };
        if !g.members.iter().any(|m| m == member) {
            return false;
        }
        let seq = self.next_seq();
        if let Some(g) = self.groups.get_mut(group) {
            g.members.retain(|m| m != member);
        }
        self.member_events.push(MemberEvent {
            seq,
            group: group.to_owned(),
            member: member.to_owned(),
            added: false,
        });
        true
    }

    /// Net member changes per group with a sequence in `(since, until]`.
    pub fn member_changes(&self, since: u64, until: u64) -> HashMap<String, Vec<(String, bool)>> {
        let start = self.member_events.partition_point(|e| e.seq <= since);
        let mut out: HashMap<String, Vec<(String, bool)>> = HashMap::new();
        for e in self.member_events[start..]
            .iter()
            .take_while(|e| e.seq <= until)
        {
            let list = out.entry(e.group.clone()).or_default();
            if let Some(slot) = list.iter_mut().find(|(m, _)| *m == e.member) {
                slot.1 = e.added;
            } else {
                list.push((e.member.clone(), e.added));
            }
        }
        out
    }

    /// Every user and group reachable through a group's members, nested groups
    /// included (each once, in the order found).
    pub fn transitive_members(&self, group: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        seen.insert(group.to_owned());
        let mut queue = VecDeque::from([group.to_owned()]);
        while let Some(g) = queue.pop_front() {
            let Some(stored) = self.groups.get(&g) else {
                continue;
            };
            for m in &stored.members {
                if seen.insert(m.clone()) {
                    out.push(m.clone());
                    if self.groups.contains_key(m) {
                        queue.push_back(m.clone());
                    }
                }
            }
        }
        out
    }

    // ----- Exchange -----

    /// Which recipient holds an address (lower-cased, no prefix), as
    /// (kind, name) for error messages; `except` is the contact being changed.
    pub fn address_owner(&self, address: &str, except: Option<&str>) -> Option<String> {
        let want = address_key(address);
        for s in self.users.values() {
            let u = &s.user;
            if u.recipient_type.details().is_none() {
                continue;
            }
            if is_address(&u.mail, &want) || u.proxy_addresses.iter().any(|p| is_address(p, &want))
            {
                return Some(u.id.clone());
            }
        }
        for s in self.groups.values() {
            let g = &s.group;
            if g.recipient_details().is_none() {
                continue;
            }
            if is_address(&g.mail, &want) || g.proxy_addresses.iter().any(|p| is_address(p, &want))
            {
                return Some(g.id.clone());
            }
        }
        self.contact_addresses
            .get(&want)
            .filter(|guid| Some(guid.as_str()) != except)
            .and_then(|guid| self.mail_contacts.get(guid))
            .map(|c| c.name.clone())
    }

    pub fn add_mail_contact(&mut self, mut contact: FakeMailContact) -> String {
        if contact.guid.is_empty() {
            contact.guid = new_guid();
        }
        if contact.display_name.is_empty() {
            contact.display_name = contact.name.clone();
        }
        if contact.alias.is_empty() {
            contact.alias = alias_from(&contact.name);
        }
        if !contact.external_email_address.is_empty()
            && strip_smtp(&contact.external_email_address).is_none()
        {
            contact.external_email_address = format!("SMTP:{}", contact.external_email_address);
        }
        if contact.email_addresses.is_empty() && !contact.external_email_address.is_empty() {
            let ext = strip_smtp(&contact.external_email_address)
                .unwrap_or("")
                .to_owned();
            contact.email_addresses = vec![format!("SMTP:{ext}")];
        }
        let guid = contact.guid.clone();
        self.put_contact(contact);
        guid
    }

    /// Stores `contact` (new, or replacing the one with its Guid), keeping
    /// the name and address indexes.
    pub fn put_contact(&mut self, contact: FakeMailContact) {
        let guid = contact.guid.clone();
        self.take_contact(&guid);
        self.contact_names.insert(key(&contact.name), guid.clone());
        for address in &contact.email_addresses {
            self.contact_addresses
                .insert(address_key(address), guid.clone());
        }
        self.mail_contacts.insert(guid, contact);
    }

    /// Removes the contact with `guid`, keeping the indexes.
    pub fn take_contact(&mut self, guid: &str) -> Option<FakeMailContact> {
        let contact = self.mail_contacts.remove(guid)?;
        if self
            .contact_names
            .get(&key(&contact.name))
            .map(String::as_str)
            == Some(guid)
        {
            self.contact_names.remove(&key(&contact.name));
        }
        for address in &contact.email_addresses {
            let k = address_key(address);
            if self.contact_addresses.get(&k).map(String::as_str) == Some(guid) {
                self.contact_addresses.remove(&k);
            }
        }
        Some(contact)
    }

    /// The Guid of the mail contact named `name` (any case).
    pub fn contact_named(&self, name: &str) -> Option<&str> {
        self.contact_names.get(&key(name)).map(String::as_str)
    }

    /// Finds a mail contact by Guid, Name, Alias, an address or its
    /// distinguished name (what Exchange's `-Identity` accepts).
    pub fn find_contact(&self, identity: &str) -> Vec<String> {
        let want = identity.trim();
        // The common case first: coexist names its contacts by Guid.
        if let Some(c) = self.mail_contacts.get(want) {
            return vec![c.guid.clone()];
        }
        let addr = address_key(want);
        let by_dn = want.len() > 3 && want[..3].eq_ignore_ascii_case("CN=");
        self.mail_contacts
            .values()
            .filter(|c| {
                c.guid.eq_ignore_ascii_case(want)
                    || c.name.eq_ignore_ascii_case(want)
                    || c.alias.eq_ignore_ascii_case(want)
                    || (by_dn && distinguished_name(&c.name).eq_ignore_ascii_case(want))
                    || c.email_addresses.iter().any(|a| is_address(a, &addr))
                    || is_address(&c.external_email_address, &addr)
            })
            .map(|c| c.guid.clone())
            .collect()
    }
}

/// Exchange's alias from a name: letters, digits and `!#$%&'*+-/=?^_`{|}~.`,
/// other characters dropped.
pub(crate) fn alias_from(name: &str) -> String {
    let alias: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(*c))
        .collect();
    let alias = alias.trim_matches('.').to_owned();
    if alias.is_empty() {
        "MailContact".to_owned()
    } else {
        alias
    }
}

/// The distinguished name Exchange Online shows for a recipient.
pub(crate) fn distinguished_name(name: &str) -> String {
    format!(
        "CN={},OU=fake.onmicrosoft.com,OU=Microsoft Exchange Hosted Organizations,DC=FAKPR01A001,DC=PROD,DC=OUTLOOK,DC=COM",
        name.replace(',', "\\,")
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn member_changes_net_out_within_a_round() {
        let mut st = State::new(Duration::from_secs(60));
        let u = st.add_user(FakeUser {
            user_principal_name: "a@x".into(),
            ..FakeUser::default()
        });
        let g = st.add_group(FakeGroup::default());
        let since = st.seq;
        st.add_member(&g, &u);
        st.remove_member(&g, &u);
        let changes = st.member_changes(since, st.seq);
        assert_eq!(changes[&g], vec![(u.clone(), false)]);
        st.add_member(&g, &u);
        assert_eq!(st.member_changes(since, st.seq)[&g], vec![(u, true)]);
    }

    #[test]
    fn aliases_keep_only_what_exchange_allows() {
        assert_eq!(alias_from("Ann Lee (ext)"), "AnnLeeext");
        assert_eq!(alias_from("  "), "MailContact");
    }
}
