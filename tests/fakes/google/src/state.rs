//! The fake's data: users, groups, members, domains, shared contacts, tokens,
//! pending faults and request counts, behind one mutex.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rand::Rng;

use crate::{Fault, RequestCounts};

/// A Google Workspace user as the fake stores it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FakeUser {
    /// Google's unique id (21 digits); generated when empty.
    pub id: String,
    /// The primary email address.
    pub primary_email: String,
    /// `name.givenName`.
    pub given_name: String,
    /// `name.familyName`.
    pub family_name: String,
    /// `name.fullName`; "given family" when empty.
    pub full_name: String,
    /// Editable aliases (`aliases[]`).
    pub aliases: Vec<String>,
    /// Aliases outside the primary domain (`nonEditableAliases[]`).
    pub non_editable_aliases: Vec<String>,
    /// `suspended`.
    pub suspended: bool,
    /// `archived`.
    pub archived: bool,
    /// `isMailboxSetup` (true by default).
    pub is_mailbox_setup: bool,
    /// `phones[]` as (type, value), e.g. ("work", "+1 555 0100").
    pub phones: Vec<(String, String)>,
    /// `organizations[0].title`.
    pub title: String,
    /// `organizations[0].department`.
    pub department: String,
    /// `organizations[0].name`.
    pub organization: String,
    /// `orgUnitPath` ("/" by default).
    pub org_unit_path: String,
    /// `changePasswordAtNextLogin` (set by users.insert).
    pub change_password_at_next_login: bool,
    /// `externalIds[]` as (type, or customType for `custom`, value).
    pub external_ids: Vec<(String, String)>,
    /// Gmail: the forwarding addresses created
    /// (users.settings.forwardingAddresses.create).
    pub forwarding_addresses: Vec<String>,
    /// Gmail: automatic forwarding (users.settings.updateAutoForwarding),
    /// when enabled: (address, disposition).
    pub auto_forwarding: Option<(String, String)>,
}

impl Default for FakeUser {
    fn default() -> Self {
        FakeUser {
            id: String::new(),
            primary_email: String::new(),
            given_name: String::new(),
            family_name: String::new(),
            full_name: String::new(),
            aliases: Vec::new(),
            non_editable_aliases: Vec::new(),
            suspended: false,
            archived: false,
            is_mailbox_setup: true,
            phones: Vec::new(),
            title: String::new(),
            department: String::new(),
            organization: String::new(),
            org_unit_path: "/".to_owned(),
            change_password_at_next_login: false,
            external_ids: Vec::new(),
            forwarding_addresses: Vec::new(),
            auto_forwarding: None,
        }
    }
}

/// A Google group as the fake stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FakeGroup {
    /// Google's unique id; generated when empty.
    pub id: String,
    /// The group's email address.
    pub email: String,
    /// The display name.
    pub name: String,
    /// Editable aliases.
    pub aliases: Vec<String>,
}

/// The type of a group member (`type` on the Member resource).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MemberType {
    /// `USER`.
    #[default]
    User,
    /// `GROUP`.
    Group,
    /// `CUSTOMER`: every user of the customer.
    Customer,
}

impl MemberType {
    pub(crate) fn as_api(self) -> &'static str {
        match self {
            MemberType::User => "USER",
            MemberType::Group => "GROUP",
            MemberType::Customer => "CUSTOMER",
        }
    }
}

/// A Domain Shared Contact as the fake stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FakeContact {
    /// The contact id (last segment of its atom:id); generated when empty.
    pub id: String,
    /// The entry's `gd:etag` (with its double quotes, as Google sends it).
    pub etag: String,
    /// `gd:name/gd:givenName`.
    pub given_name: String,
    /// `gd:name/gd:familyName`.
    pub family_name: String,
    /// `gd:name/gd:fullName`.
    pub full_name: String,
    /// `gd:email` as (address, primary).
    pub emails: Vec<(String, bool)>,
    /// `gd:phoneNumber` as (rel, number).
    pub phones: Vec<(String, String)>,
    /// `gd:organization/gd:orgName`.
    pub org_name: String,
    /// `gd:organization/gd:orgTitle`.
    pub org_title: String,
    /// `gd:organization/gd:orgDepartment`.
    pub org_department: String,
    /// `gd:extendedProperty` as (name, value).
    pub extended_properties: Vec<(String, String)>,
}

/// Everything the handlers share.
pub(crate) struct Shared {
    pub base_url: String,
    pub domain: String,
    pub customer_id: String,
    pub admin: String,
    pub spec: crate::spec::Spec,
    /// `kind` values looked up once (they are on every user of a page).
    pub kinds: Kinds,
    pub keys: crate::auth::Keys,
    pub latency_micros: AtomicU64,
    pub state: Mutex<State>,
}

/// The `kind` of the hot resources, from the discovery document.
pub(crate) struct Kinds {
    pub user: String,
    pub users: String,
}

impl Kinds {
    pub fn from_spec(spec: &crate::spec::Spec) -> Kinds {
        Kinds {
            user: spec.kind("User"),
            users: spec.kind("Users"),
        }
    }
}

impl Shared {
    /// Adds one to a request counter.
    pub fn count(&self, f: impl FnOnce(&mut RequestCounts)) {
        f(&mut self.state.lock().counts);
    }

    /// Whether `customer` names this customer.
    pub fn is_my_customer(&self, customer: &str) -> bool {
        customer == "my_customer" || customer == self.customer_id
    }
}

pub(crate) struct StoredUser {
    pub user: FakeUser,
    pub etag: String,
    /// `creationTime`, formatted once.
    pub creation_time: Arc<str>,
}

pub(crate) struct StoredGroup {
    pub group: FakeGroup,
    pub etag: String,
}

#[derive(Clone)]
pub(crate) struct MemberRec {
    pub email: String,
    pub kind: MemberType,
    pub role: String,
    /// The id shown for members outside the directory (and customers).
    pub id: String,
}

pub(crate) struct StoredContact {
    pub contact: FakeContact,
    pub email_rels: Vec<String>,
    pub version: u64,
    pub updated_ms: u64,
    pub deleted: bool,
}

pub(crate) struct TokenInfo {
    pub scopes: Vec<String>,
    /// The user the token acts as (the JWT's `sub`).
    pub subject: String,
    pub expires_at: Instant,
}

#[derive(Clone, Copy)]
pub(crate) struct ListingFault {
    pub pages: usize,
    pub persistent: bool,
}

pub(crate) struct State {
    pub users: BTreeMap<String, StoredUser>,
    pub deleted_users: BTreeMap<String, StoredUser>,
    /// Lower-cased primary emails and aliases to user ids.
    pub user_index: HashMap<String, String>,
    pub groups: BTreeMap<String, StoredGroup>,
    /// Lower-cased emails and aliases to group ids.
    pub group_index: HashMap<String, String>,
    /// Group id to its direct members, in the order they were added.
    pub members: HashMap<String, Vec<MemberRec>>,
    /// (domain, creation ms), primary domain excluded.
    pub secondary_domains: Vec<(String, u64)>,
    /// (alias, parent, creation ms).
    pub domain_aliases: Vec<(String, String, u64)>,
    pub contacts: BTreeMap<String, StoredContact>,
    /// Contacts not deleted.
    live_contacts: usize,
    pub max_contacts: usize,
    pub tokens: HashMap<String, TokenInfo>,
    pub token_lifetime: Duration,
    pub faults: VecDeque<Fault>,
    pub token_faults: VecDeque<Fault>,
    /// [`crate::FakeGoogle::revoke_delegation`] was called.
    pub delegation_revoked: bool,
    pub listing_fault: Option<ListingFault>,
    pub retry_after_secs: u64,
    pub counts: RequestCounts,
    pub created_ms: u64,
    next_seq: u64,
    last_contact_ms: u64,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// RFC 3339 with milliseconds, UTC, as Google writes times.
pub(crate) fn rfc3339_ms(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_owned())
}

pub(crate) fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// A Directory etag: a quoted opaque string that changes with the content.
pub(crate) fn directory_etag<T: Hash + ?Sized>(value: &T) -> String {
    let h = hash_of(value);
    format!(
        "\"{h:016x}{:016x}/{:08x}\"",
        h.rotate_left(17) ^ 0x5bd1_e995,
        h >> 32
    )
}

fn key(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

impl State {
    pub fn new(token_lifetime: Duration) -> State {
        State {
            users: BTreeMap::new(),
            deleted_users: BTreeMap::new(),
            user_index: HashMap::new(),
            groups: BTreeMap::new(),
            group_index: HashMap::new(),
            members: HashMap::new(),
            secondary_domains: Vec::new(),
            domain_aliases: Vec::new(),
            contacts: BTreeMap::new(),
            live_contacts: 0,
            max_contacts: 200_000,
            tokens: HashMap::new(),
            token_lifetime,
            faults: VecDeque::new(),
            token_faults: VecDeque::new(),
            delegation_revoked: false,
            listing_fault: None,
            retry_after_secs: 1,
            counts: RequestCounts::default(),
            created_ms: now_ms(),
            next_seq: 1,
            last_contact_ms: 0,
        }
    }

    fn next_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// Issues a token; returns it and its lifetime in seconds.
    pub fn issue_token(&mut self, scopes: Vec<String>, subject: String) -> (String, u64) {
        let mut rng = rand::thread_rng();
        let token = format!(
            "ya29.fake-{:016x}{:016x}",
            rng.gen::<u64>(),
            rng.gen::<u64>()
        );
        let lifetime = self.token_lifetime;
        self.tokens.insert(
            token.clone(),
            TokenInfo {
                scopes,
                subject,
                expires_at: Instant::now() + lifetime,
            },
        );
        (token, lifetime.as_secs())
    }

    // ----- users -----

    fn user_id_for(&mut self, user: &FakeUser) -> String {
        if !user.id.is_empty() {
            return user.id.clone();
        }
        if let Some(id) = self.user_index.get(&key(&user.primary_email)) {
            return id.clone();
        }
        let seq = self.next_seq();
        format!("{}", 110_000_000_000_000_000_000u128 + u128::from(seq))
    }

    fn unindex_user(&mut self, id: &str) {
        if let Some(old) = self.users.get(id) {
            let mut keys = vec![key(&old.user.primary_email)];
            keys.extend(old.user.aliases.iter().map(|a| key(a)));
            keys.extend(old.user.non_editable_aliases.iter().map(|a| key(a)));
            for k in keys {
                if self.user_index.get(&k).map(String::as_str) == Some(id) {
                    self.user_index.remove(&k);
                }
            }
        }
    }

    fn store_user(&mut self, mut user: FakeUser, creation_time: Arc<str>) {
        if user.full_name.is_empty() {
            user.full_name = format!("{} {}", user.given_name, user.family_name)
                .trim()
                .to_owned();
        }
        if user.org_unit_path.is_empty() {
            user.org_unit_path = "/".to_owned();
        }
        let id = user.id.clone();
        self.unindex_user(&id);
        self.user_index.insert(key(&user.primary_email), id.clone());
        for a in user.aliases.iter().chain(&user.non_editable_aliases) {
            self.user_index.insert(key(a), id.clone());
        }
        let etag = directory_etag(&user);
        self.users.insert(
            id,
            StoredUser {
                user,
                etag,
                creation_time,
            },
        );
    }

    pub fn add_user(&mut self, mut user: FakeUser) {
        user.id = self.user_id_for(&user);
        // Replacing by primary email under another id: drop the old record.
        if let Some(old_id) = self.user_index.get(&key(&user.primary_email)).cloned() {
            if old_id != user.id {
                self.unindex_user(&old_id);
                self.users.remove(&old_id);
            }
        }
        self.deleted_users.remove(&user.id);
        let creation = self
            .users
            .get(&user.id)
            .map(|u| u.creation_time.clone())
            .unwrap_or_else(|| Arc::from(rfc3339_ms(now_ms())));
        self.store_user(user, creation);
    }

    pub fn find_user_id(&self, user_key: &str) -> Option<String> {
        if self.users.contains_key(user_key) {
            return Some(user_key.to_owned());
        }
        self.user_index.get(&key(user_key)).cloned()
    }

    pub fn update_user(&mut self, primary_email: &str, f: impl FnOnce(&mut FakeUser)) {
        let Some(id) = self.find_user_id(primary_email) else {
            return;
        };
        let Some(stored) = self.users.get(&id) else {
            return;
        };
        let mut user = stored.user.clone();
        let creation = stored.creation_time.clone();
        f(&mut user);
        user.id = id; // the id is immutable
        self.store_user(user, creation);
    }

    pub fn remove_user(&mut self, primary_email: &str) {
        let Some(id) = self.find_user_id(primary_email) else {
            return;
        };
        self.unindex_user(&id);
        if let Some(stored) = self.users.remove(&id) {
            let email = key(&stored.user.primary_email);
            for list in self.members.values_mut() {
                list.retain(|m| !(m.kind == MemberType::User && key(&m.email) == email));
            }
            self.deleted_users.insert(id, stored);
        }
    }

    // ----- groups -----

    fn store_group(&mut self, group: FakeGroup) {
        let id = group.id.clone();
        if let Some(old) = self.groups.get(&id) {
            let mut keys = vec![key(&old.group.email)];
            keys.extend(old.group.aliases.iter().map(|a| key(a)));
            for k in keys {
                if self.group_index.get(&k) == Some(&id) {
                    self.group_index.remove(&k);
                }
            }
        }
        self.group_index.insert(key(&group.email), id.clone());
        for a in &group.aliases {
            self.group_index.insert(key(a), id.clone());
        }
        let etag = directory_etag(&group);
        self.groups.insert(id, StoredGroup { group, etag });
    }

    pub fn add_group(&mut self, mut group: FakeGroup) {
        if group.id.is_empty() {
            group.id = match self.group_index.get(&key(&group.email)) {
                Some(id) => id.clone(),
                None => {
                    let seq = self.next_seq();
                    format!("0{:016x}", 0x1a2b_0000_0000_0000u64 + seq)
                }
            };
        }
        self.store_group(group);
    }

    pub fn find_group_id(&self, group_key: &str) -> Option<String> {
        if self.groups.contains_key(group_key) {
            return Some(group_key.to_owned());
        }
        self.group_index.get(&key(group_key)).cloned()
    }

    /// Refreshes a group's etag (its member count changed).
    fn touch_group(&mut self, id: &str) {
        let count = self.members.get(id).map(Vec::len).unwrap_or(0);
        if let Some(g) = self.groups.get_mut(id) {
            g.etag = directory_etag(&(&g.group, count));
        }
    }

    pub fn add_member(
        &mut self,
        group_email: &str,
        member_email: &str,
        kind: MemberType,
        role: &str,
        customer_id: &str,
    ) {
        let Some(gid) = self.find_group_id(group_email) else {
            return;
        };
        let (email, id) = match kind {
            MemberType::Customer => (String::new(), customer_id.to_owned()),
            _ => (
                member_email.trim().to_owned(),
                format!("1{:020}", hash_of(&key(member_email))),
            ),
        };
        let list = self.members.entry(gid.clone()).or_default();
        list.retain(|m| !(m.kind == kind && key(&m.email) == key(&email)));
        list.push(MemberRec {
            email,
            kind,
            role: role.to_ascii_uppercase(),
            id,
        });
        self.touch_group(&gid);
    }

    pub fn remove_member(&mut self, group_email: &str, member_email: &str) {
        let Some(gid) = self.find_group_id(group_email) else {
            return;
        };
        if let Some(list) = self.members.get_mut(&gid) {
            list.retain(|m| key(&m.email) != key(member_email));
        }
        self.touch_group(&gid);
    }

    // ----- domains -----

    pub fn add_domain_alias(&mut self, alias: &str, parent: &str) {
        let alias = key(alias);
        if !self.domain_aliases.iter().any(|(a, _, _)| *a == alias) {
            self.domain_aliases
                .push((alias, parent.to_owned(), now_ms()));
        }
    }

    pub fn add_domain(&mut self, domain: &str) {
        let domain = key(domain);
        if !self.secondary_domains.iter().any(|(d, _)| *d == domain) {
            self.secondary_domains.push((domain, now_ms()));
        }
    }

    // ----- contacts -----

    /// A strictly increasing modification time, so `updated-min` is exact.
    pub fn contact_clock(&mut self) -> u64 {
        let now = now_ms().max(self.last_contact_ms + 1);
        self.last_contact_ms = now;
        now
    }

    pub fn new_contact_id(&mut self) -> String {
        loop {
            let seq = self.next_seq();
            let id = format!("{:016x}", 0x0c0e_0000_0000_0000u64 + seq);
            if !self.contacts.contains_key(&id) {
                return id;
            }
        }
    }

    pub fn live_contact_count(&self) -> usize {
        self.live_contacts
    }

    /// Stores a contact (new or changed): bumps its version, etag and updated time.
    pub fn put_contact(&mut self, mut contact: FakeContact, email_rels: Vec<String>) -> String {
        if contact.id.is_empty() {
            contact.id = self.new_contact_id();
        }
        let (version, was_live) = self
            .contacts
            .get(&contact.id)
            .map(|c| (c.version + 1, !c.deleted))
            .unwrap_or((1, false));
        if !was_live {
            self.live_contacts += 1;
        }
        let updated_ms = self.contact_clock();
        contact.etag = String::new();
        let h = hash_of(&(&contact, version, updated_ms));
        contact.etag = format!("\"Q{h:016x}{:04x}.\"", version & 0xffff);
        let id = contact.id.clone();
        self.contacts.insert(
            id.clone(),
            StoredContact {
                contact,
                email_rels,
                version,
                updated_ms,
                deleted: false,
            },
        );
        id
    }

    pub fn delete_contact(&mut self, id: &str) {
        let ms = self.contact_clock();
        if let Some(c) = self.contacts.get_mut(id) {
            if !c.deleted {
                self.live_contacts = self.live_contacts.saturating_sub(1);
            }
            c.deleted = true;
            c.version += 1;
            c.updated_ms = ms;
        }
    }

    pub fn add_contact(&mut self, contact: FakeContact) -> String {
        let rels = vec![crate::atom::REL_WORK.to_owned(); contact.emails.len()];
        self.put_contact(contact, rels)
    }

    pub fn live_contacts(&self) -> Vec<FakeContact> {
        self.contacts
            .values()
            .filter(|c| !c.deleted)
            .map(|c| c.contact.clone())
            .collect()
    }

    // ----- bulk -----

    pub fn seed_synthetic(
        &mut self,
        domain: &str,
        users: usize,
        groups: usize,
        members_per_group: usize,
    ) {
        let now: Arc<str> = Arc::from(rfc3339_ms(now_ms()));
        for i in 0..users {
            let user = FakeUser {
                id: format!("{}", 100_000_000_000_000_000_000u128 + i as u128),
                primary_email: format!("user{i}@{domain}"),
                given_name: format!("Given{i}"),
                family_name: format!("Family{i}"),
                full_name: format!("Given{i} Family{i}"),
                aliases: if i % 10 == 0 {
                    vec![format!("alias{i}@{domain}")]
                } else {
                    Vec::new()
                },
                phones: vec![("work".to_owned(), format!("+1 555 {:07}", i % 10_000_000))],
                title: "Engineer".to_owned(),
                department: format!("Dept{}", i % 20),
                organization: "Acme Corp".to_owned(),
                ..FakeUser::default()
            };
            self.store_user(user, now.clone());
        }
        for g in 0..groups {
            let group = FakeGroup {
                id: format!("0{:016x}", 0x5e3d_0000_0000_0000u64 + g as u64),
                email: format!("group{g}@{domain}"),
                name: format!("Group {g}"),
                aliases: Vec::new(),
            };
            let gid = group.id.clone();
            self.store_group(group);
            if users > 0 {
                let list: Vec<MemberRec> = (0..members_per_group)
                    .map(|k| {
                        let u = (g * members_per_group + k) % users;
                        MemberRec {
                            email: format!("user{u}@{domain}"),
                            kind: MemberType::User,
                            role: "MEMBER".to_owned(),
                            id: format!("{}", 100_000_000_000_000_000_000u128 + u as u128),
                        }
                    })
                    .collect();
                self.members.insert(gid.clone(), list);
            }
            self.touch_group(&gid);
        }
    }
}
