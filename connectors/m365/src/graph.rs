//! Microsoft Graph v1.0: the typed models of what coexist reads and the
//! paged listings.
//!
//! Pages followed:
//! * users and their delta — <https://learn.microsoft.com/graph/api/user-delta>,
//!   <https://learn.microsoft.com/graph/delta-query-users>;
//! * groups and their delta, with `members@delta` —
//!   <https://learn.microsoft.com/graph/api/group-delta>,
//!   <https://learn.microsoft.com/graph/delta-query-groups>;
//! * transitive members — <https://learn.microsoft.com/graph/api/group-list-transitivemembers>;
//! * domains — <https://learn.microsoft.com/graph/api/domain-list>;
//! * paging — <https://learn.microsoft.com/graph/paging> (`$top` ≤ 999,
//!   `@odata.nextLink` followed as given).
//!
//! Only the properties coexist uses are selected (`$select`) and modelled;
//! the names are the CSDL's (`shared/specs/msgraph-v1.0.csdl`).

use coexist_connector::{ConnectorError, Progress};
use reqwest::Url;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::auth::Resource;
use crate::http::{Http, Request};

/// The user properties coexist reads.
pub const USER_SELECT: &str = "id,userPrincipalName,mail,proxyAddresses,displayName,givenName,surname,jobTitle,department,companyName,businessPhones,mobilePhone,officeLocation,accountEnabled";
/// The group properties coexist reads (`members` brings `members@delta`
/// on a delta query).
pub const GROUP_SELECT: &str =
    "id,displayName,mail,mailEnabled,securityEnabled,groupTypes,proxyAddresses,members";
/// The same properties without `members`, for reading one group
/// (<https://learn.microsoft.com/graph/api/group-get>).
pub const GROUP_PROPERTIES: &str =
    "id,displayName,mail,mailEnabled,securityEnabled,groupTypes,proxyAddresses";
/// The member properties coexist reads from `transitiveMembers`.
pub const MEMBER_SELECT: &str = "id,mail";

/// `null` read as the type's default (Graph writes `null` for unset
/// collections and strings alike).
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// One page of a collection or of a delta round.
#[derive(Debug, Deserialize)]
pub struct Page<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    #[serde(default, rename = "@odata.nextLink")]
    pub next_link: Option<String>,
    #[serde(default, rename = "@odata.deltaLink")]
    pub delta_link: Option<String>,
}

/// `@removed` of a delta item.
#[derive(Debug, Clone, Deserialize)]
pub struct Removed {
    #[serde(default)]
    pub reason: Option<String>,
}

/// The user properties coexist reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub user_principal_name: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub proxy_addresses: Vec<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub surname: Option<String>,
    #[serde(default)]
    pub job_title: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub company_name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub business_phones: Vec<String>,
    #[serde(default)]
    pub mobile_phone: Option<String>,
    #[serde(default)]
    pub office_location: Option<String>,
    #[serde(default)]
    pub account_enabled: Option<bool>,
    #[serde(default, rename = "@removed")]
    pub removed: Option<Removed>,
}

/// A member reference of `members@delta`.
#[derive(Debug, Clone, Deserialize)]
pub struct MemberRef {
    #[serde(default, rename = "@odata.type")]
    pub odata_type: Option<String>,
    pub id: String,
    #[serde(default, rename = "@removed")]
    pub removed: Option<Removed>,
}

impl MemberRef {
    /// Whether the member is a group (a group nested in the one listing it).
    pub fn is_group(&self) -> bool {
        self.odata_type.as_deref() == Some(GROUP_TYPE)
    }
}

/// The `@odata.type` of a group.
const GROUP_TYPE: &str = "#microsoft.graph.group";

/// The group properties coexist reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub mail_enabled: Option<bool>,
    #[serde(default)]
    pub security_enabled: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub group_types: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub proxy_addresses: Vec<String>,
    /// On a delta: the members added (and, on an incremental round,
    /// removed) since the previous round; absent when none changed.
    #[serde(default, rename = "members@delta")]
    pub members_delta: Option<Vec<MemberRef>>,
    #[serde(default, rename = "@removed")]
    pub removed: Option<Removed>,
}

impl Group {
    /// A Microsoft 365 group (`groupTypes` holds `Unified`).
    pub fn is_unified(&self) -> bool {
        self.group_types
            .iter()
            .any(|t| t.eq_ignore_ascii_case("Unified"))
    }

    /// Whether Exchange delivers mail to the group: mail-enabled with an
    /// address (distribution lists, mail-enabled security groups,
    /// Microsoft 365 groups).
    pub fn is_mail_enabled(&self) -> bool {
        self.mail_enabled.unwrap_or(false)
            && self.mail.as_deref().is_some_and(|m| !m.trim().is_empty())
    }
}

/// A member read from `transitiveMembers`.
#[derive(Debug, Clone, Deserialize)]
pub struct DirectoryObject {
    #[serde(default, rename = "@odata.type")]
    pub odata_type: Option<String>,
    pub id: String,
    #[serde(default)]
    pub mail: Option<String>,
}

impl DirectoryObject {
    /// Whether the object is a group (its own members are listed beside it).
    pub fn is_group(&self) -> bool {
        self.odata_type.as_deref() == Some(GROUP_TYPE)
    }
}

/// A domain of the tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Domain {
    pub id: String,
    #[serde(default)]
    pub is_verified: bool,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default)]
    pub is_initial: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub supported_services: Vec<String>,
}

/// What a paged read returned, and why it stopped early if it did.
#[derive(Debug)]
pub struct Listing<T> {
    pub items: Vec<T>,
    /// The delta link of the last page (delta rounds).
    pub delta_link: Option<String>,
    /// The failure that stopped the read (after its retries).
    pub failure: Option<ConnectorError>,
    /// Pages read.
    pub pages: u32,
}

/// How a delta round started from a delta link ended.
#[derive(Debug)]
pub enum Round<T> {
    /// The round's pages (possibly stopped by a failure).
    Read(Listing<T>),
    /// The service no longer knows the delta link (410 Gone,
    /// `syncStateNotFound`, `resyncRequired`): a full read is needed.
    Expired(String),
}

/// The Graph error codes that mean "start the delta again".
const RESYNC_CODES: [&str; 3] = ["syncStateNotFound", "resyncRequired", "syncStateInvalid"];

/// Graph's base URL with a path and query appended.
pub fn url(base: &str, path_and_query: &str) -> Result<Url, ConnectorError> {
    let text = format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path_and_query.trim_start_matches('/')
    );
    Url::parse(&text).map_err(|e| ConnectorError::permanent(format!("the URL {text}: {e}")))
}

/// The first page of the users' delta round.
pub fn users_delta_url(base: &str, top: u32) -> Result<Url, ConnectorError> {
    url(
        base,
        &format!("users/delta?$select={USER_SELECT}&$top={top}"),
    )
}

/// The first page of the groups' delta round.
pub fn groups_delta_url(base: &str, top: u32) -> Result<Url, ConnectorError> {
    url(
        base,
        &format!("groups/delta?$select={GROUP_SELECT}&$top={top}"),
    )
}

/// The first page of a group's transitive members.
pub fn transitive_members_url(base: &str, group: &str, top: u32) -> Result<Url, ConnectorError> {
    url(
        base,
        &format!("groups/{group}/transitiveMembers?$select={MEMBER_SELECT}&$top={top}"),
    )
}

/// Reads every page from `first`, following `@odata.nextLink` until a page
/// has none (or has a delta link). A page that fails after its retries
/// stops the read: the items read so far and the failure are returned.
/// With `expire`, an answer meaning the delta link is gone ends the round
/// as [`Round::Expired`].
pub async fn read_pages<T: DeserializeOwned>(
    http: &Http,
    first: Url,
    label: &str,
    progress: &dyn Progress,
    expire: bool,
) -> Round<T> {
    let mut listing = Listing {
        items: Vec::new(),
        delta_link: None,
        failure: None,
        pages: 0,
    };
    let mut next = Some(first);
    while let Some(url) = next.take() {
        let what = format!("{label} page {}", listing.pages + 1);
        let request = Request::get(Resource::Graph, url).accepting(if expire {
            &[400, 404, 410]
        } else {
            &[]
        });
        let reply = match http.execute(&what, &request).await {
            Ok(reply) => reply,
            Err(error) => {
                listing.failure = Some(error);
                break;
            }
        };
        if !reply.status.is_success() {
            let detail = crate::http::parse_error(&reply.body);
            let code = detail.as_ref().map(|d| d.code.clone()).unwrap_or_default();
            if reply.status.as_u16() == 410 || RESYNC_CODES.contains(&code.as_str()) {
                return Round::Expired(format!(
                    "{what}: HTTP {}: {}",
                    reply.status,
                    crate::http::error_message(&reply.body)
                ));
            }
            listing.failure = Some(crate::http::status_error(
                &what,
                reply.status,
                crate::http::retry_after(&reply.headers),
                &reply.body,
            ));
            break;
        }
        let page: Page<T> = match reply.json(&what) {
            Ok(page) => page,
            Err(error) => {
                listing.failure = Some(error);
                break;
            }
        };
        listing.pages += 1;
        progress.advance(page.value.len() as u64);
        listing.items.extend(page.value);
        if let Some(link) = page.delta_link {
            listing.delta_link = Some(link);
            break;
        }
        if let Some(link) = page.next_link {
            match Url::parse(&link) {
                Ok(url) => next = Some(url),
                Err(e) => {
                    listing.failure = Some(ConnectorError::permanent(format!(
                        "{what}: the next link `{link}` is not a URL: {e}"
                    )));
                }
            }
        }
    }
    Round::Read(listing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_read_as_empty_and_removed_items_are_recognised() -> Result<(), serde_json::Error> {
        let page: Page<User> = serde_json::from_str(
            r#"{"value":[
                {"id":"1","mail":null,"proxyAddresses":null,"businessPhones":null},
                {"id":"2","@removed":{"reason":"deleted"}}
            ],"@odata.deltaLink":"https://graph/users/delta?$deltatoken=x"}"#,
        )?;
        assert_eq!(page.value.len(), 2);
        assert!(page.value[0].proxy_addresses.is_empty());
        assert!(page.value[1].removed.is_some());
        assert!(page.delta_link.is_some());
        Ok(())
    }

    #[test]
    fn groups_deliver_mail_only_when_mail_enabled_with_an_address() -> Result<(), serde_json::Error>
    {
        let group: Group = serde_json::from_str(
            r##"{"id":"g","mail":"all@acmecorp.com","mailEnabled":true,"groupTypes":["Unified"],
                "members@delta":[{"@odata.type":"#microsoft.graph.user","id":"u1"}]}"##,
        )?;
        assert!(group.is_mail_enabled() && group.is_unified());
        assert_eq!(group.members_delta.map(|m| m.len()), Some(1));
        let security: Group =
            serde_json::from_str(r#"{"id":"s","mail":null,"mailEnabled":false}"#)?;
        assert!(!security.is_mail_enabled());
        Ok(())
    }
}
