//! The pull: a full read (a delta round started afresh for users and for
//! groups, whose delta links become the cursor) or a delta from the
//! cursor's links; which users hold a mailbox from Exchange; coexist's
//! stubs at full reads.
//!
//! * **Full read**: `/users/delta` and `/groups/delta` (with `members`, so
//!   the first round lists every group's direct members), Get-Recipient
//!   for the mailbox types, Get-MailContact and Get-Contact for the mail
//!   contacts, and, with `contact_folder`, the folder of each user mailbox.
//!   Members are resolved here, nested groups included.
//! * **Delta**: the pages of both delta links. Changed users are looked up
//!   in Exchange (Get-Recipient filtered on their ids, 50 a call); changed
//!   groups have their members read again in full
//!   (`transitiveMembers`, 20 groups a `$batch`); `@removed` objects, and
//!   objects that lost their last address, are `removed`. A link the
//!   service no longer knows (410 Gone, `syncStateNotFound`,
//!   `resyncRequired`) leads to a full read, said in the log. Stubs are
//!   read at full reads only: they change through coexist's own writes,
//!   and a stub changed or deleted by hand is found by the next full read
//!   (`coexist sync --full-read`, nightly). So is a nested group's change
//!   for the groups that contain it.
//! * A listing that fails part-way leaves the pull incomplete (nothing is
//!   deleted from it); refused credentials fail the pull with that one
//!   error; so does Exchange failing to say which users hold a mailbox
//!   (without it every mailbox would look gone).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use coexist_connector::{ConnectorError, Problem, Progress, Pull, PullMode, Recipient};
use serde::{Deserialize, Serialize};

use crate::batch::{self, Item};
use crate::exchange::{Cmdlet, RecipientRow, FORWARDING_PROPERTIES};
use crate::graph::{self, DirectoryObject, Group, Listing, Round, User};
use crate::recipients::{self, MailboxType};
use crate::M365Connector;

/// How the next pulls find changes, for the run's report.
pub const INCREMENTAL: &str = "Graph delta queries (/users/delta, /groups/delta): the service \
    reports changes and deletions (@removed); a changed group's members are read again in full; \
    coexist's contacts and nested groups' changes for the groups containing them are read at full \
    reads (sync --full-read)";

/// The recipient types whose users are read from Exchange.
const USER_TYPES: &str = "UserMailbox,SharedMailbox,RoomMailbox,EquipmentMailbox,MailUser";

/// Users looked up in one filtered Get-Recipient of a delta.
const IDS_PER_LOOKUP: usize = 50;

/// The cursor: the delta links of users and groups.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    format: u32,
    /// The tenant the links belong to (a cursor of another tenant is not
    /// used).
    tenant: String,
    users: String,
    groups: String,
}

const CURSOR_FORMAT: u32 = 1;

fn failure_problem(what: &str, error: &ConnectorError) -> Problem {
    Problem {
        object: what.to_string(),
        message: format!(
            "the listing stopped after its retries, so the read is incomplete and nothing will \
             be deleted in this run: {error}"
        ),
    }
}

impl M365Connector {
    /// Reads the tenant: a delta from `cursor` where it can, else in full.
    pub(crate) async fn read(
        &self,
        cursor: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<Pull, ConnectorError> {
        if let Some(error) = self.http.auth().failure() {
            return Err(error);
        }
        let parsed = cursor.and_then(|text| match serde_json::from_str::<Cursor>(text) {
            Ok(c) if c.format == CURSOR_FORMAT && c.tenant == self.config.tenant_id => Some(c),
            _ => {
                tracing::info!("the cursor is not one of this tenant's delta links: full read");
                None
            }
        });
        if let Some(cursor) = parsed {
            // `None`: the links expired, said in the log; a full read follows.
            if let Some(pull) = self.read_delta(&cursor, progress).await? {
                return Ok(pull);
            }
        }
        self.read_full(progress).await
    }

    /// Which users hold what in Exchange (all of them, or those `ids`).
    pub(crate) async fn mailbox_types(
        &self,
        ids: Option<&[String]>,
    ) -> Result<HashMap<String, MailboxType>, ConnectorError> {
        let rows: Vec<RecipientRow> = match ids {
            None => {
                let cmdlet = Cmdlet::new("Get-Recipient")
                    .with("RecipientTypeDetails", USER_TYPES)
                    .with("Properties", FORWARDING_PROPERTIES.to_vec())
                    .with("ResultSize", "Unlimited");
                self.exchange
                    .run_all(&self.http, &cmdlet)
                    .await
                    .map_err(|f| f.error)?
            }
            Some(ids) => {
                let mut rows = Vec::new();
                for chunk in ids.chunks(IDS_PER_LOOKUP) {
                    let filter = chunk
                        .iter()
                        .map(|id| {
                            format!("ExternalDirectoryObjectId -eq '{}'", id.replace('\'', "''"))
                        })
                        .collect::<Vec<_>>()
                        .join(" -or ");
                    let cmdlet = Cmdlet::new("Get-Recipient")
                        .with("RecipientTypeDetails", USER_TYPES)
                        .with("Properties", FORWARDING_PROPERTIES.to_vec())
                        .with("Filter", filter)
                        .with("ResultSize", "Unlimited");
                    rows.extend(
                        self.exchange
                            .run_all::<RecipientRow>(&self.http, &cmdlet)
                            .await
                            .map_err(|f| f.error)?,
                    );
                }
                rows
            }
        };
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let id = row.external_directory_object_id?;
                let details = row.recipient_type_details?;
                Some((
                    id,
                    MailboxType::from_row(
                        &details,
                        row.external_email_address.as_deref(),
                        row.forwarding_smtp_address.as_deref(),
                        row.deliver_to_mailbox_and_forward,
                    ),
                ))
            })
            .collect())
    }

    async fn read_full(&self, progress: &dyn Progress) -> Result<Pull, ConnectorError> {
        let started = Instant::now();
        let base = self.graph_url();
        let top = self.config.page_size;
        let users_url = graph::users_delta_url(base, top)?;
        let groups_url = graph::groups_delta_url(base, top)?;
        let (users, groups, types, contacts) = tokio::join!(
            graph::read_pages::<User>(&self.http, users_url, "reading users", progress, false),
            graph::read_pages::<Group>(&self.http, groups_url, "reading groups", progress, false),
            self.mailbox_types(None),
            self.read_mail_contacts(),
        );
        let (Round::Read(users), Round::Read(groups)) = (users, groups) else {
            return Err(ConnectorError::retryable(
                "the service said a fresh delta round expired",
            ));
        };
        // One error for refused credentials, whichever read met them first.
        let failures = [users.failure.as_ref(), groups.failure.as_ref()];
        if let Some(error) = failures
            .into_iter()
            .flatten()
            .find(|e| e.is_authentication())
        {
            return Err(error.clone());
        }
        for error in [types.as_ref().err(), contacts.as_ref().err()]
            .into_iter()
            .flatten()
        {
            if error.is_authentication() {
                return Err(error.clone());
            }
        }
        let types = types.map_err(|e| {
            e.context(
                "Exchange could not say which users hold a mailbox, so the tenant was not read",
            )
        })?;
        if users.items.is_empty() && groups.items.is_empty() {
            if let Some(error) = users.failure.as_ref().or(groups.failure.as_ref()) {
                return Err(error.clone());
            }
        }
        let mut problems = Vec::new();
        let mut complete = true;
        for (what, listing_failure) in [
            ("Microsoft 365 users", users.failure.as_ref()),
            ("Microsoft 365 groups", groups.failure.as_ref()),
        ] {
            if let Some(error) = listing_failure {
                complete = false;
                problems.push(failure_problem(what, error));
            }
        }
        let mut recipients = Vec::with_capacity(users.items.len() + groups.items.len());
        let mut primaries: HashMap<String, String> = HashMap::with_capacity(users.items.len());
        let mut user_mailboxes = Vec::new();
        for user in users.items.iter().filter(|u| u.removed.is_none()) {
            let kind = types.get(&user.id);
            if kind == Some(&MailboxType::User) {
                user_mailboxes.push(user.id.clone());
            }
            if let Some(recipient) = recipients::user_to_recipient(user, kind) {
                primaries.insert(user.id.clone(), recipient.primary_address.clone());
                recipients.push(recipient);
            }
        }
        let (group_recipients, group_primaries) = groups_with_members(&groups.items, &primaries);
        primaries.extend(group_primaries);
        recipients.extend(group_recipients);
        let mut stubs = Vec::new();
        match contacts {
            Ok((found, others, contact_problems)) => {
                stubs.extend(found);
                recipients.extend(others.iter().filter_map(recipients::contact_to_recipient));
                problems.extend(contact_problems);
            }
            Err(error) => {
                complete = false;
                problems.push(failure_problem("Exchange Online mail contacts", &error));
            }
        }
        if let Some(folder) = self.config.contact_folder.as_deref() {
            match self.read_mailbox_contacts(user_mailboxes).await {
                Ok(index) => {
                    stubs.extend(index.found_stubs(folder.trim()));
                    self.keep_mailbox_index(index).await;
                }
                Err(error) if error.is_authentication() => return Err(error),
                Err(error) => {
                    complete = false;
                    problems.push(failure_problem("coexist's personal contacts", &error));
                }
            }
        }
        let cursor = match (&users.delta_link, &groups.delta_link) {
            (Some(users), Some(groups)) if complete => serde_json::to_string(&Cursor {
                format: CURSOR_FORMAT,
                tenant: self.config.tenant_id.clone(),
                users: users.clone(),
                groups: groups.clone(),
            })
            .ok(),
            _ => None,
        };
        tracing::info!(
            users = users.items.len(),
            groups = groups.items.len(),
            recipients = recipients.len(),
            stubs = stubs.len(),
            complete,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "pulled Microsoft 365 in full"
        );
        Ok(Pull {
            mode: PullMode::Full,
            recipients,
            stubs,
            removed: Vec::new(),
            cursor,
            complete,
            problems,
            incremental: Some(INCREMENTAL.to_string()),
        })
    }

    /// The changes since `cursor`; `None` when a delta link expired (a full
    /// read is needed).
    async fn read_delta(
        &self,
        cursor: &Cursor,
        progress: &dyn Progress,
    ) -> Result<Option<Pull>, ConnectorError> {
        let started = Instant::now();
        let parse = |link: &str| {
            reqwest::Url::parse(link)
                .map_err(|e| ConnectorError::permanent(format!("the delta link {link}: {e}")))
        };
        let (users, groups) = tokio::join!(
            graph::read_pages::<User>(
                &self.http,
                parse(&cursor.users)?,
                "reading changed users",
                progress,
                true
            ),
            graph::read_pages::<Group>(
                &self.http,
                parse(&cursor.groups)?,
                "reading changed groups",
                progress,
                true
            ),
        );
        let (users, groups): (Listing<User>, Listing<Group>) = match (users, groups) {
            (Round::Read(users), Round::Read(groups)) => (users, groups),
            (Round::Expired(why), _) | (_, Round::Expired(why)) => {
                tracing::warn!(reason = %why, "the delta link expired: full read");
                return Ok(None);
            }
        };
        for failure in [users.failure.as_ref(), groups.failure.as_ref()]
            .into_iter()
            .flatten()
        {
            if failure.is_authentication() {
                return Err(failure.clone());
            }
        }
        let mut problems = Vec::new();
        let mut complete = true;
        for (what, failure) in [
            ("changed Microsoft 365 users", users.failure.as_ref()),
            ("changed Microsoft 365 groups", groups.failure.as_ref()),
        ] {
            if let Some(error) = failure {
                complete = false;
                problems.push(failure_problem(what, error));
            }
        }
        let mut removed: Vec<String> = Vec::new();
        let changed: Vec<&User> = users.items.iter().filter(|u| u.removed.is_none()).collect();
        removed.extend(
            users
                .items
                .iter()
                .filter(|u| u.removed.is_some())
                .map(|u| u.id.clone()),
        );
        let ids: Vec<String> = changed.iter().map(|u| u.id.clone()).collect();
        let types = if ids.is_empty() {
            HashMap::new()
        } else {
            self.mailbox_types(Some(&ids)).await.map_err(|e| {
                e.context("Exchange could not say which changed users hold a mailbox")
            })?
        };
        let mut recipients: Vec<Recipient> = Vec::new();
        for user in changed {
            match recipients::user_to_recipient(user, types.get(&user.id)) {
                Some(recipient) => recipients.push(recipient),
                None => removed.push(user.id.clone()),
            }
        }
        // A group may appear on several pages: its first appearance holds
        // its properties.
        let mut latest: HashMap<&str, &Group> = HashMap::new();
        let mut order: Vec<&str> = Vec::new();
        for group in &groups.items {
            if latest.insert(group.id.as_str(), group).is_none() {
                order.push(group.id.as_str());
            }
        }
        let mut mail_groups: Vec<&Group> = Vec::new();
        for id in order {
            let Some(group) = latest.get(id) else {
                continue;
            };
            if group.removed.is_some() || !group.is_mail_enabled() {
                removed.push(group.id.clone());
            } else {
                mail_groups.push(group);
            }
        }
        let (members, member_failure) = self.transitive_members(&mail_groups).await;
        if let Some(error) = member_failure {
            if error.is_authentication() {
                return Err(error);
            }
            complete = false;
            problems.push(failure_problem(
                "members of changed Microsoft 365 groups",
                &error,
            ));
        }
        for group in mail_groups {
            let Some(list) = members.get(&group.id) else {
                continue; // Its members could not be read: left as staged.
            };
            if let Some(recipient) = recipients::group_to_recipient(group, list.clone()) {
                recipients.push(recipient);
            }
        }
        let returned: HashSet<&str> = recipients.iter().map(|r| r.anchor.as_str()).collect();
        removed.retain(|id| !returned.contains(id.as_str()));
        removed.sort();
        removed.dedup();
        let next = match (&users.delta_link, &groups.delta_link) {
            (Some(u), Some(g)) if complete => Some(Cursor {
                format: CURSOR_FORMAT,
                tenant: self.config.tenant_id.clone(),
                users: u.clone(),
                groups: g.clone(),
            }),
            // An incomplete delta is read again from the same links.
            _ => Some(Cursor {
                format: CURSOR_FORMAT,
                tenant: cursor.tenant.clone(),
                users: cursor.users.clone(),
                groups: cursor.groups.clone(),
            }),
        };
        tracing::info!(
            changed = recipients.len(),
            removed = removed.len(),
            complete,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "pulled Microsoft 365 changes"
        );
        Ok(Some(Pull {
            mode: PullMode::Delta,
            recipients,
            stubs: Vec::new(),
            removed,
            cursor: next.and_then(|c| serde_json::to_string(&c).ok()),
            complete,
            problems,
            incremental: Some(INCREMENTAL.to_string()),
        }))
    }

    /// The resolved member addresses of `groups`, read with
    /// `transitiveMembers` (20 groups a `$batch`, further pages one by
    /// one); the failure that left some out, if any.
    async fn transitive_members(
        &self,
        groups: &[&Group],
    ) -> (HashMap<String, Vec<String>>, Option<ConnectorError>) {
        let mut out = HashMap::new();
        let mut failure = None;
        if groups.is_empty() {
            return (out, None);
        }
        let top = self.config.page_size;
        let items: Vec<Item> = groups
            .iter()
            .map(|g| {
                Item::get(format!(
                    "/groups/{}/transitiveMembers?$select={}&$top={top}",
                    g.id,
                    graph::MEMBER_SELECT
                ))
            })
            .collect();
        let answers = batch::send(
            &self.http,
            self.graph_url(),
            items,
            "reading members of changed groups",
        )
        .await;
        for (group, answer) in groups.iter().zip(answers) {
            let what = format!("reading the members of {}", group.id);
            let first = match answer {
                Ok(a) if a.is_success() => a.json::<graph::Page<DirectoryObject>>(&what),
                Ok(a) => Err(a.error(&what)),
                Err(e) => Err(e),
            };
            let mut page = match first {
                Ok(page) => page,
                Err(error) => {
                    failure.get_or_insert(error);
                    continue;
                }
            };
            let mut objects = std::mem::take(&mut page.value);
            if let Some(link) = page.next_link.take() {
                match reqwest::Url::parse(&link) {
                    Ok(url) => match graph::read_pages::<DirectoryObject>(
                        &self.http,
                        url,
                        &what,
                        &coexist_connector::NoProgress,
                        false,
                    )
                    .await
                    {
                        Round::Read(rest) => {
                            objects.extend(rest.items);
                            if let Some(error) = rest.failure {
                                failure.get_or_insert(error);
                                continue;
                            }
                        }
                        Round::Expired(why) => {
                            failure.get_or_insert(ConnectorError::retryable(why));
                            continue;
                        }
                    },
                    Err(e) => {
                        failure.get_or_insert(ConnectorError::permanent(format!(
                            "{what}: the next link {link}: {e}"
                        )));
                        continue;
                    }
                }
            }
            let addresses: BTreeSet<String> = objects
                .iter()
                .filter(|o| !o.is_group())
                .filter_map(|o| o.mail.as_deref().map(str::trim).filter(|m| !m.is_empty()))
                .map(str::to_string)
                .collect();
            out.insert(group.id.clone(), addresses.into_iter().collect());
        }
        (out, failure)
    }
}

/// The mail-enabled groups as recipients, members resolved from the
/// direct members the first delta round listed (a group may come on
/// several pages, its members spread over them); and the groups' primary
/// addresses by id.
fn groups_with_members(
    groups: &[Group],
    users: &HashMap<String, String>,
) -> (Vec<Recipient>, HashMap<String, String>) {
    let mut direct: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut latest: HashMap<&str, &Group> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for group in groups.iter().filter(|g| g.removed.is_none()) {
        let members = direct.entry(group.id.clone()).or_default();
        for member in group.members_delta.as_deref().unwrap_or_default() {
            if member.removed.is_none() {
                members.insert(member.id.clone());
            } else {
                members.remove(&member.id);
            }
        }
        // Later pages may carry a group again with only more members: its
        // properties are those of its first appearance.
        if !latest.contains_key(group.id.as_str()) {
            latest.insert(group.id.as_str(), group);
            order.push(group.id.as_str());
        }
    }
    let resolved = recipients::resolve_members(&direct, users);
    let mut out = Vec::new();
    let mut primaries = HashMap::new();
    for id in order {
        let Some(group) = latest.get(id) else {
            continue;
        };
        let members = resolved.get(id).cloned().unwrap_or_default();
        if let Some(recipient) = recipients::group_to_recipient(group, members) {
            primaries.insert(group.id.clone(), recipient.primary_address.clone());
            out.push(recipient);
        }
    }
    (out, primaries)
}
