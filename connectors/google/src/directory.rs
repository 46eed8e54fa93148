//! Reads of the Admin SDK Directory API v1: users, groups, members, domains
//! and domain aliases, and their mapping to coexist's [`Recipient`]s.
//!
//! Pages followed:
//! * `users.list` — <https://developers.google.com/admin-sdk/directory/reference/rest/v1/users/list>
//!   (`maxResults` ≤ 500) and the User resource
//!   <https://developers.google.com/admin-sdk/directory/reference/rest/v1/users>;
//! * `groups.list` / `members.list` — <https://developers.google.com/admin-sdk/directory/reference/rest/v1/groups/list>,
//!   <https://developers.google.com/admin-sdk/directory/reference/rest/v1/members/list>
//!   (`maxResults` ≤ 200);
//! * `domains.list` / `domainAliases.list` — <https://developers.google.com/admin-sdk/directory/reference/rest/v1/domains/list>,
//!   <https://developers.google.com/admin-sdk/directory/reference/rest/v1/domainAliases/list>;
//! * partial responses — <https://developers.google.com/admin-sdk/directory/v1/guides/performance#partial>.
//!
//! Only the fields coexist uses are requested (`fields=`) and modelled.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use coexist_connector::{Attributes, ConnectorError, Problem, Progress, Recipient, RecipientKind};
use reqwest::Url;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::http::{Http, Priority, Request};

/// The `fields` selector of `users.list`.
pub const USER_FIELDS: &str = "nextPageToken,users(id,primaryEmail,name(givenName,familyName,fullName),aliases,nonEditableAliases,suspended,archived,isMailboxSetup,phones(value,type,primary),organizations(name,title,department,primary),externalIds,etag)";
/// The `fields` selector of `groups.list`.
pub const GROUP_FIELDS: &str =
    "nextPageToken,groups(id,email,name,aliases,nonEditableAliases,etag)";
/// The `fields` selector of `members.list`.
pub const MEMBER_FIELDS: &str = "nextPageToken,members(email,type)";
/// The `fields` selector of `domains.list`.
pub const DOMAIN_FIELDS: &str = "domains(domainName,isPrimary,verified)";
/// The `fields` selector of `domainAliases.list`.
pub const DOMAIN_ALIAS_FIELDS: &str = "domainAliases(domainAliasName,parentDomainName,verified)";

/// A page of `users.list`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsersPage {
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// The User fields coexist reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub primary_email: Option<String>,
    #[serde(default)]
    pub name: Option<UserName>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub non_editable_aliases: Vec<String>,
    #[serde(default)]
    pub suspended: bool,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub is_mailbox_setup: Option<bool>,
    #[serde(default)]
    pub phones: Vec<UserPhone>,
    #[serde(default)]
    pub organizations: Vec<UserOrganization>,
    /// `externalIds` (typed `any` by the discovery document: a list of
    /// `{type, customType, value}` in practice); coexist's forward mark is
    /// the one of type [`FORWARD_MARK`].
    #[serde(default)]
    pub external_ids: Option<serde_json::Value>,
    #[serde(default)]
    pub etag: Option<String>,
}

/// The `customType` of the external id coexist gives a user whose Gmail it
/// made forward (`coexist move`): its value is the forwarding address, and
/// a read lists the user as a forwarding entry.
pub const FORWARD_MARK: &str = "coexist-forward";

impl User {
    /// The address coexist made this user's Gmail forward to, if it did.
    pub fn coexist_forward(&self) -> Option<String> {
        self.external_ids
            .as_ref()?
            .as_array()?
            .iter()
            .find(|id| {
                id.get("type").and_then(serde_json::Value::as_str) == Some("custom")
                    && id.get("customType").and_then(serde_json::Value::as_str)
                        == Some(FORWARD_MARK)
            })
            .and_then(|id| id.get("value")?.as_str())
            .map(str::to_string)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserName {
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub family_name: Option<String>,
    #[serde(default)]
    pub full_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct UserPhone {
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub primary: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct UserOrganization {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub primary: bool,
}

/// A page of `groups.list`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupsPage {
    #[serde(default)]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// The Group fields coexist reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub non_editable_aliases: Vec<String>,
    #[serde(default)]
    pub etag: Option<String>,
}

/// A page of `members.list`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembersPage {
    #[serde(default)]
    pub members: Vec<Member>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// The Member fields coexist reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Member {
    #[serde(default)]
    pub email: Option<String>,
    /// `USER`, `GROUP`, `CUSTOMER` or `EXTERNAL`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// The answer of `domains.list`.
#[derive(Debug, Deserialize)]
pub struct DomainsList {
    #[serde(default)]
    pub domains: Vec<Domain>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Domain {
    pub domain_name: String,
    #[serde(default)]
    pub is_primary: bool,
    #[serde(default)]
    pub verified: bool,
}

/// The answer of `domainAliases.list`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainAliasesList {
    #[serde(default)]
    pub domain_aliases: Vec<DomainAlias>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainAlias {
    pub domain_alias_name: String,
    #[serde(default)]
    pub parent_domain_name: Option<String>,
    #[serde(default)]
    pub verified: bool,
}

/// What a paged listing read, and why it stopped early if it did.
#[derive(Debug)]
pub struct Listing<T> {
    pub items: Vec<T>,
    /// The failure that stopped the listing (after retries).
    pub failure: Option<ConnectorError>,
    /// Pages read.
    pub pages: u32,
}

/// Where the Directory API lives and how it is paged.
#[derive(Debug, Clone)]
pub struct Directory {
    pub base: Url,
    pub customer: String,
    pub page_size_users: u32,
    pub page_size_groups: u32,
}

fn non_empty(value: Option<&String>) -> Option<String> {
    value
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

impl Directory {
    pub(crate) fn url(&self, segments: &[&str]) -> Result<Url, ConnectorError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| {
                ConnectorError::permanent(format!(
                    "the directory URL {} cannot take a path",
                    self.base
                ))
            })?
            .pop_if_empty()
            .extend(segments);
        // Compact JSON: Google pretty-prints by default.
        url.query_pairs_mut().append_pair("prettyPrint", "false");
        Ok(url)
    }

    async fn get_json<T: DeserializeOwned>(
        http: &Http,
        what: &str,
        request: Request,
    ) -> Result<T, ConnectorError> {
        let reply = http.execute(what, &request).await?;
        serde_json::from_slice(&reply.body).map_err(|e| {
            ConnectorError::permanent(format!(
                "{what}: the answer is not the documented JSON: {e}"
            ))
        })
    }

    /// Follows `nextPageToken` until the last page or the first failure.
    async fn paged<P, T>(
        http: &Http,
        what: &str,
        priority: Priority,
        mut page_url: impl FnMut(Option<&str>) -> Result<Url, ConnectorError>,
        mut split: impl FnMut(P) -> (Vec<T>, Option<String>),
        progress: &dyn Progress,
    ) -> Listing<T>
    where
        P: DeserializeOwned,
    {
        let mut listing = Listing {
            items: Vec::new(),
            failure: None,
            pages: 0,
        };
        let mut token: Option<String> = None;
        loop {
            let page_what = format!("{what} page {}", listing.pages + 1);
            let page = match page_url(token.as_deref()) {
                Ok(url) => {
                    let mut request = Request::get(url);
                    request.priority = priority;
                    Self::get_json::<P>(http, &page_what, request).await
                }
                Err(e) => Err(e),
            };
            let page = match page {
                Ok(page) => page,
                Err(error) => {
                    listing.failure = Some(error);
                    return listing;
                }
            };
            listing.pages += 1;
            let (items, next) = split(page);
            progress.advance(items.len() as u64);
            listing.items.extend(items);
            match next.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => return listing,
            }
        }
    }

    /// Lists every user of the customer.
    pub async fn list_users(&self, http: &Http, progress: &dyn Progress) -> Listing<User> {
        let max = self.page_size_users.to_string();
        Self::paged(
            http,
            "listing users",
            Priority::Chain,
            |token| {
                let mut url = self.url(&["users"])?;
                {
                    let mut query = url.query_pairs_mut();
                    query
                        .append_pair("customer", &self.customer)
                        .append_pair("maxResults", &max)
                        .append_pair("fields", USER_FIELDS);
                    if let Some(token) = token {
                        query.append_pair("pageToken", token);
                    }
                }
                Ok(url)
            },
            |page: UsersPage| (page.users, page.next_page_token),
            progress,
        )
        .await
    }

    /// Lists every group of the customer.
    pub async fn list_groups(&self, http: &Http, progress: &dyn Progress) -> Listing<Group> {
        let max = self.page_size_groups.to_string();
        Self::paged(
            http,
            "listing groups",
            Priority::Chain,
            |token| {
                let mut url = self.url(&["groups"])?;
                {
                    let mut query = url.query_pairs_mut();
                    query
                        .append_pair("customer", &self.customer)
                        .append_pair("maxResults", &max)
                        .append_pair("fields", GROUP_FIELDS);
                    if let Some(token) = token {
                        query.append_pair("pageToken", token);
                    }
                }
                Ok(url)
            },
            |page: GroupsPage| (page.groups, page.next_page_token),
            progress,
        )
        .await
    }

    /// Lists the direct members of the group `key` (its id or address).
    pub async fn list_members(&self, http: &Http, key: &str, label: &str) -> Listing<Member> {
        let max = self.page_size_groups.to_string();
        let what = format!("listing members of group {label}");
        Self::paged(
            http,
            &what,
            Priority::Bulk,
            |token| {
                let mut url = self.url(&["groups", key, "members"])?;
                {
                    let mut query = url.query_pairs_mut();
                    query
                        .append_pair("maxResults", &max)
                        .append_pair("fields", MEMBER_FIELDS);
                    if let Some(token) = token {
                        query.append_pair("pageToken", token);
                    }
                }
                Ok(url)
            },
            |page: MembersPage| (page.members, page.next_page_token),
            &coexist_connector::NoProgress,
        )
        .await
    }

    /// Lists the customer's domains.
    pub async fn list_domains(&self, http: &Http) -> Result<Vec<Domain>, ConnectorError> {
        let mut url = self.url(&["customer", &self.customer, "domains"])?;
        url.query_pairs_mut().append_pair("fields", DOMAIN_FIELDS);
        let list: DomainsList = Self::get_json(http, "listing domains", Request::get(url)).await?;
        Ok(list.domains)
    }

    /// Lists the customer's domain aliases.
    pub async fn list_domain_aliases(
        &self,
        http: &Http,
    ) -> Result<Vec<DomainAlias>, ConnectorError> {
        let mut url = self.url(&["customer", &self.customer, "domainaliases"])?;
        url.query_pairs_mut()
            .append_pair("fields", DOMAIN_ALIAS_FIELDS);
        let list: DomainAliasesList =
            Self::get_json(http, "listing domain aliases", Request::get(url)).await?;
        Ok(list.domain_aliases)
    }

    /// Reads one user page of size one: proves the credentials can read the
    /// directory.
    pub async fn probe_users(&self, http: &Http) -> Result<usize, ConnectorError> {
        let mut url = self.url(&["users"])?;
        url.query_pairs_mut()
            .append_pair("customer", &self.customer)
            .append_pair("maxResults", "1")
            .append_pair("fields", "users(primaryEmail)");
        let page: UsersPage = Self::get_json(http, "reading one user", Request::get(url)).await?;
        Ok(page.users.len())
    }
}

/// Picks the value of the phone of `kind`, preferring the primary one.
fn phone_of(phones: &[UserPhone], kind: &str) -> Option<String> {
    let mut matching = phones
        .iter()
        .filter(|p| p.kind.as_deref() == Some(kind) && non_empty(p.value.as_ref()).is_some());
    let first = matching.clone().next();
    matching
        .find(|p| p.primary)
        .or(first)
        .and_then(|p| non_empty(p.value.as_ref()))
}

/// Maps a user to a recipient; `Err` names what makes it unusable.
pub fn user_to_recipient(user: &User) -> Result<Recipient, Problem> {
    let object = user
        .primary_email
        .clone()
        .or_else(|| user.id.clone())
        .unwrap_or_else(|| "(a user without id or address)".to_string());
    let Some(id) = non_empty(user.id.as_ref()) else {
        return Err(Problem {
            object,
            message: "the user has no id; it was skipped".to_string(),
        });
    };
    let Some(primary) = non_empty(user.primary_email.as_ref()) else {
        return Err(Problem {
            object,
            message: "the user has no primaryEmail; it was skipped".to_string(),
        });
    };
    let name = user.name.clone().unwrap_or_default();
    let organization = user
        .organizations
        .iter()
        .find(|o| o.primary)
        .or_else(|| user.organizations.first());
    let attributes = Attributes {
        display_name: non_empty(name.full_name.as_ref()),
        given_name: non_empty(name.given_name.as_ref()),
        surname: non_empty(name.family_name.as_ref()),
        business_phone: phone_of(&user.phones, "work"),
        mobile_phone: phone_of(&user.phones, "mobile"),
        title: organization.and_then(|o| non_empty(o.title.as_ref())),
        department: organization.and_then(|o| non_empty(o.department.as_ref())),
        company: organization.and_then(|o| non_empty(o.name.as_ref())),
    };
    Ok(Recipient {
        // Admins know users by their primary address, not their id.
        locator: Some(primary.clone()),
        anchor: id,
        kind: RecipientKind::Person,
        aliases: addresses_besides(&primary, &user.aliases, &user.non_editable_aliases),
        primary_address: primary,
        mailbox: user.is_mailbox_setup.unwrap_or(true) && user.coexist_forward().is_none(),
        enabled: !user.suspended && !user.archived,
        attributes,
        members: Vec::new(),
        forwards_to: user.coexist_forward(),
        extra: BTreeMap::new(),
        etag: user.etag.clone(),
    })
}

/// The aliases, without duplicates or the primary address, in Google's order.
fn addresses_besides(primary: &str, aliases: &[String], more: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    seen.insert(primary.to_lowercase());
    aliases
        .iter()
        .chain(more)
        .map(|a| a.trim())
        .filter(|a| !a.is_empty() && seen.insert(a.to_lowercase()))
        .map(str::to_string)
        .collect()
}

/// A group with its direct members, as listed.
#[derive(Debug, Clone)]
pub struct ListedGroup {
    pub group: Group,
    pub members: Vec<Member>,
    /// The members listing failed part-way.
    pub members_complete: bool,
}

/// Maps groups to recipients, resolving nested groups to the addresses of
/// their members (transitively; cycles are tolerated). A member group that
/// is not among `groups` (another customer's) is kept as an address.
pub fn groups_to_recipients(groups: &[ListedGroup]) -> (Vec<Recipient>, Vec<Problem>) {
    let by_address: HashMap<String, usize> = groups
        .iter()
        .enumerate()
        .filter_map(|(i, g)| g.group.email.as_ref().map(|e| (e.to_lowercase(), i)))
        .collect();
    let by_id: HashMap<&str, usize> = groups
        .iter()
        .enumerate()
        .filter_map(|(i, g)| g.group.id.as_deref().map(|id| (id, i)))
        .collect();
    let mut recipients = Vec::with_capacity(groups.len());
    let mut problems = Vec::new();
    for (index, listed) in groups.iter().enumerate() {
        let group = &listed.group;
        let object = group
            .email
            .clone()
            .or_else(|| group.id.clone())
            .unwrap_or_else(|| "(a group without id or address)".to_string());
        let (Some(id), Some(primary)) = (
            non_empty(group.id.as_ref()),
            non_empty(group.email.as_ref()),
        ) else {
            problems.push(Problem {
                object,
                message: "the group has no id or no email; it was skipped".to_string(),
            });
            continue;
        };
        let members = resolve_members(index, groups, &by_address, &by_id);
        let etag = group_etag(group.etag.as_deref(), &members);
        recipients.push(Recipient {
            locator: Some(primary.clone()),
            anchor: id,
            kind: RecipientKind::Group,
            aliases: addresses_besides(&primary, &group.aliases, &group.non_editable_aliases),
            primary_address: primary,
            mailbox: true,
            enabled: true,
            attributes: Attributes {
                display_name: non_empty(group.name.as_ref()),
                ..Attributes::default()
            },
            members,
            forwards_to: None,
            extra: BTreeMap::new(),
            etag: Some(etag),
        });
    }
    (recipients, problems)
}

/// The member addresses of group `start`, nested groups replaced by their
/// own members, sorted and without duplicates.
fn resolve_members(
    start: usize,
    groups: &[ListedGroup],
    by_address: &HashMap<String, usize>,
    by_id: &HashMap<&str, usize>,
) -> Vec<String> {
    let mut addresses = BTreeSet::new();
    let mut visited = BTreeSet::from([start]);
    let mut stack = vec![start];
    while let Some(current) = stack.pop() {
        let Some(listed) = groups.get(current) else {
            continue;
        };
        for member in &listed.members {
            let Some(email) = member
                .email
                .as_deref()
                .map(str::trim)
                .filter(|e| !e.is_empty())
            else {
                continue; // CUSTOMER members have no address.
            };
            let nested = if member.kind.as_deref() == Some("GROUP") {
                by_address
                    .get(&email.to_lowercase())
                    .or_else(|| by_id.get(email))
                    .copied()
            } else {
                None
            };
            match nested {
                Some(group) => {
                    if visited.insert(group) {
                        stack.push(group);
                    }
                }
                None => {
                    addresses.insert(email.to_lowercase());
                }
            }
        }
    }
    addresses.into_iter().collect()
}

/// A group's etag changes when its own properties change, not when its
/// membership does; the recipient's etag covers both.
fn group_etag(etag: Option<&str>, members: &[String]) -> String {
    let mut hasher = Sha256::new();
    for member in members {
        hasher.update(member.as_bytes());
        hasher.update(b"\n");
    }
    let digest = hex::encode(hasher.finalize());
    format!("{}#{}", etag.unwrap_or(""), &digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(json: serde_json::Value) -> User {
        serde_json::from_value(json).unwrap_or_default()
    }

    #[test]
    fn a_user_maps_to_a_person_with_all_its_addresses_and_attributes() {
        let recipient = user_to_recipient(&user(serde_json::json!({
            "id": "1001", "primaryEmail": "alice@acmecorp.com", "etag": "\"e1\"",
            "name": {"givenName": "Alice", "familyName": "Smith", "fullName": "Alice Smith"},
            "aliases": ["a.smith@acmecorp.com"], "nonEditableAliases": ["alice@acmecorp.com.test-google-a.com"],
            "phones": [{"value": "+1 555 0100", "type": "work"}, {"value": "+1 555 0199", "type": "mobile"},
                       {"value": "+1 555 0101", "type": "work", "primary": true}],
            "organizations": [{"name": "Other", "title": "x"},
                              {"name": "Acme Corp", "title": "Engineer", "department": "R&D", "primary": true}]
        })));
        let Ok(recipient) = recipient else {
            panic!("{recipient:?}")
        };
        assert_eq!(recipient.anchor, "1001");
        assert_eq!(recipient.kind, RecipientKind::Person);
        assert_eq!(recipient.primary_address, "alice@acmecorp.com");
        assert_eq!(
            recipient.aliases,
            [
                "a.smith@acmecorp.com",
                "alice@acmecorp.com.test-google-a.com"
            ]
        );
        assert!(recipient.mailbox && recipient.enabled);
        assert_eq!(recipient.etag.as_deref(), Some("\"e1\""));
        let a = &recipient.attributes;
        assert_eq!(a.display_name.as_deref(), Some("Alice Smith"));
        assert_eq!(a.given_name.as_deref(), Some("Alice"));
        assert_eq!(a.surname.as_deref(), Some("Smith"));
        assert_eq!(a.business_phone.as_deref(), Some("+1 555 0101"));
        assert_eq!(a.mobile_phone.as_deref(), Some("+1 555 0199"));
        assert_eq!(a.title.as_deref(), Some("Engineer"));
        assert_eq!(a.department.as_deref(), Some("R&D"));
        assert_eq!(a.company.as_deref(), Some("Acme Corp"));
    }

    #[test]
    fn suspended_archived_and_mailboxless_users_say_so() {
        let base = serde_json::json!({"id": "1", "primaryEmail": "b@acmecorp.com"});
        let mut suspended = base.clone();
        suspended["suspended"] = true.into();
        let mut archived = base.clone();
        archived["archived"] = true.into();
        let mut no_mailbox = base.clone();
        no_mailbox["isMailboxSetup"] = false.into();
        assert!(user_to_recipient(&user(base)).is_ok_and(|r| r.enabled && r.mailbox));
        // Google bounces mail to a suspended user: its mailbox stays.
        assert!(user_to_recipient(&user(suspended)).is_ok_and(|r| !r.enabled && r.mailbox));
        assert!(user_to_recipient(&user(archived)).is_ok_and(|r| !r.enabled));
        assert!(user_to_recipient(&user(no_mailbox)).is_ok_and(|r| !r.mailbox && r.enabled));
    }

    #[test]
    fn a_user_without_an_address_is_a_problem_not_a_recipient() {
        let problem = user_to_recipient(&user(serde_json::json!({"id": "7"})));
        assert!(problem.is_err_and(|p| p.object == "7"));
    }

    fn listed(id: &str, email: &str, members: &[(&str, &str)]) -> ListedGroup {
        ListedGroup {
            group: Group {
                id: Some(id.into()),
                email: Some(email.into()),
                etag: Some(format!("\"{id}\"")),
                ..Group::default()
            },
            members: members
                .iter()
                .map(|(email, kind)| Member {
                    email: Some((*email).into()),
                    kind: Some((*kind).into()),
                })
                .collect(),
            members_complete: true,
        }
    }

    #[test]
    fn nested_groups_resolve_to_their_members_and_cycles_end() {
        let groups = [
            listed(
                "g1",
                "all@acmecorp.com",
                &[
                    ("sales@acmecorp.com", "GROUP"),
                    ("ceo@acmecorp.com", "USER"),
                ],
            ),
            listed(
                "g2",
                "sales@acmecorp.com",
                &[("bob@acmecorp.com", "USER"), ("all@acmecorp.com", "GROUP")],
            ),
            listed(
                "g3",
                "partners@acmecorp.com",
                &[
                    ("list@other.example", "GROUP"),
                    ("x@ext.example", "EXTERNAL"),
                ],
            ),
        ];
        let (recipients, problems) = groups_to_recipients(&groups);
        assert!(problems.is_empty());
        assert_eq!(
            recipients[0].members,
            ["bob@acmecorp.com", "ceo@acmecorp.com"]
        );
        assert_eq!(
            recipients[1].members,
            ["bob@acmecorp.com", "ceo@acmecorp.com"]
        );
        assert_eq!(
            recipients[2].members,
            ["list@other.example", "x@ext.example"]
        );
        assert!(recipients
            .iter()
            .all(|r| r.kind == RecipientKind::Group && r.mailbox));
    }

    #[test]
    fn a_membership_change_changes_the_group_etag() {
        let before =
            groups_to_recipients(&[listed("g", "g@acmecorp.com", &[("a@acmecorp.com", "USER")])]).0;
        let after =
            groups_to_recipients(&[listed("g", "g@acmecorp.com", &[("b@acmecorp.com", "USER")])]).0;
        assert_ne!(before[0].etag, after[0].etag);
        let again =
            groups_to_recipients(&[listed("g", "g@acmecorp.com", &[("a@acmecorp.com", "USER")])]).0;
        assert_eq!(before[0].etag, again[0].etag);
    }
}
