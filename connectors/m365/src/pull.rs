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
//!   groups have their members read again in full (`transitiveMembers`,
//!   20 requests a `$batch`), and so have the groups containing a group
//!   whose members changed or one deleted, directly or through others,
//!   with their properties (`GET /groups/{id}`, in the same batches):
//!   Graph reports only the group whose direct members changed (a member
//!   deleted from the tenant included,
//!   <https://learn.microsoft.com/graph/delta-query-groups>), so the
//!   cursor keeps which groups contain which ([`Nesting`]: from the
//!   full read's direct members, then each delta's `members@delta`).
//!   `@removed` objects, and objects that lost their last address, are
//!   `removed`. A link the service no longer knows (410 Gone,
//!   `syncStateNotFound`, `resyncRequired`) leads to a full read, said in
//!   the log; so does a cursor of format 1, written before the nesting was
//!   kept. Stubs are read at full reads only: they change through
//!   coexist's own writes, and a stub changed or deleted by hand is found
//!   by the next full read (`coexist sync --full-read`, nightly). So is a
//!   member's changed address for the groups listing it: the user changes,
//!   its groups do not.
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
use crate::recipients::{self, MailboxType, Nesting};
use crate::M365Connector;

/// How the next pulls find changes, for the run's report.
pub const INCREMENTAL: &str = "Graph delta queries (/users/delta, /groups/delta): the service \
    reports changes and deletions (@removed); a changed group's members are read again in full, \
    and so are those of every group containing it (directly or through other groups); \
    coexist's contacts, and a member's changed address for the groups listing it, are read at \
    full reads (sync --full-read)";

/// The recipient types whose users are read from Exchange.
const USER_TYPES: &str = "UserMailbox,SharedMailbox,RoomMailbox,EquipmentMailbox,MailUser";

/// Users looked up in one filtered Get-Recipient of a delta.
const IDS_PER_LOOKUP: usize = 50;

/// The cursor: the delta links of users and groups, and which groups
/// contain which as of those links.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cursor {
    format: u32,
    /// The tenant the links belong to (a cursor of another tenant is not
    /// used).
    tenant: String,
    users: String,
    groups: String,
    /// Absent from cursors of format 1, which are read in full once.
    #[serde(default)]
    nesting: Nesting,
}

/// 2: with [`Cursor::nesting`]. 1: the delta links alone.
const CURSOR_FORMAT: u32 = 2;

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
            Ok(c) if c.format == 1 && c.tenant == self.config.tenant_id => {
                tracing::info!(
                    "the cursor (format 1) does not say which groups contain which, so a delta \
                     could not reach the groups containing a changed one: full read, once"
                );
                None
            }
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
        let (group_recipients, group_primaries, nesting) =
            groups_with_members(&groups.items, &primaries);
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
                nesting: nesting.clone(),
            })
            .ok(),
            _ => None,
        };
        tracing::info!(
            users = users.items.len(),
            groups = groups.items.len(),
            nested = nesting.len(),
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
        // its properties, its member changes are spread over them all.
        let mut nesting = cursor.nesting.clone();
        let mut latest: HashMap<&str, &Group> = HashMap::new();
        let mut order: Vec<&str> = Vec::new();
        // The groups whose direct members changed (a change of properties
        // alone changes no other group's members).
        let mut members_changed: BTreeSet<&str> = BTreeSet::new();
        for group in &groups.items {
            if !latest.contains_key(group.id.as_str()) {
                latest.insert(group.id.as_str(), group);
                order.push(group.id.as_str());
            }
            let changes = group.members_delta.as_deref().unwrap_or_default();
            if !changes.is_empty() {
                members_changed.insert(group.id.as_str());
            }
            for member in changes {
                if member.removed.is_some() {
                    nesting.remove(&group.id, &member.id);
                } else if member.is_group() {
                    nesting.add(&group.id, &member.id);
                }
            }
        }
        let mut mail_groups: Vec<&Group> = Vec::new();
        let mut gone: Vec<&str> = Vec::new();
        for id in &order {
            let Some(group) = latest.get(id) else {
                continue;
            };
            if group.removed.is_some() {
                gone.push(id);
                removed.push(group.id.clone());
            } else if !group.is_mail_enabled() {
                removed.push(group.id.clone());
            } else {
                mail_groups.push(group);
            }
        }
        // The groups containing a group whose members changed, or one
        // deleted (as the previous round knew it), are read again: their
        // members changed too. The changed groups themselves are read
        // anyway.
        let mut containing = cursor.nesting.ancestors(gone.iter().copied());
        for id in &gone {
            nesting.forget(id);
        }
        containing.extend(nesting.ancestors(members_changed.iter().copied()));
        containing.retain(|id| !latest.contains_key(id.as_str()));
        let containing: Vec<String> = containing.into_iter().collect();
        let reread = self.reread_groups(&mail_groups, &containing).await;
        if let Some(error) = reread.failure {
            if error.is_authentication() {
                return Err(error);
            }
            complete = false;
            problems.push(failure_problem(
                "members of changed Microsoft 365 groups and of the groups containing them",
                &error,
            ));
        }
        for group in mail_groups {
            let Some(list) = reread.members.get(&group.id) else {
                continue; // Its members could not be read: left as staged.
            };
            if let Some(recipient) = recipients::group_to_recipient(group, list.clone()) {
                recipients.push(recipient);
            }
        }
        // A containing group without mail is no recipient, and was none
        // at the previous round: had it lost its mail since, it would be
        // on the delta's pages itself.
        recipients.extend(
            reread
                .containing
                .into_iter()
                .filter_map(|(group, list)| recipients::group_to_recipient(&group, list)),
        );
        let returned: HashSet<&str> = recipients.iter().map(|r| r.anchor.as_str()).collect();
        removed.retain(|id| !returned.contains(id.as_str()));
        removed.sort();
        removed.dedup();
        let next = match (&users.delta_link, &groups.delta_link) {
            (Some(u), Some(g)) if complete => Cursor {
                format: CURSOR_FORMAT,
                tenant: self.config.tenant_id.clone(),
                users: u.clone(),
                groups: g.clone(),
                nesting,
            },
            // An incomplete delta is read again from the same links, with
            // the nesting as of those links.
            _ => cursor.clone(),
        };
        tracing::info!(
            changed = recipients.len(),
            containing = containing.len(),
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
            cursor: serde_json::to_string(&next).ok(),
            complete,
            problems,
            incremental: Some(INCREMENTAL.to_string()),
        }))
    }

    /// What a delta reads again of the groups: the members of `changed`,
    /// the properties and members of `containing` (the groups containing
    /// a changed or deleted one), `transitiveMembers` and `GET
    /// /groups/{id}` in batches of 20 (further member pages one by one).
    async fn reread_groups(&self, changed: &[&Group], containing: &[String]) -> Reread {
        let mut reread = Reread::default();
        if changed.is_empty() && containing.is_empty() {
            return reread;
        }
        let top = self.config.page_size;
        let members = |id: &str| {
            Item::get(format!(
                "/groups/{id}/transitiveMembers?$select={}&$top={top}",
                graph::MEMBER_SELECT
            ))
        };
        let mut items: Vec<Item> = changed.iter().map(|g| members(&g.id)).collect();
        for id in containing {
            items.push(Item::get(format!(
                "/groups/{id}?$select={}",
                graph::GROUP_PROPERTIES
            )));
            items.push(members(id));
        }
        let mut answers = batch::send(
            &self.http,
            self.graph_url(),
            items,
            "reading the members of changed groups and of the groups containing them",
        )
        .await
        .into_iter();
        for group in changed {
            let Some(answer) = answers.next() else {
                break;
            };
            match self.member_addresses(&group.id, answer).await {
                Ok(list) => {
                    reread.members.insert(group.id.clone(), list);
                }
                Err(error) => {
                    reread.failure.get_or_insert(error);
                }
            }
        }
        for id in containing {
            let (Some(properties), Some(members)) = (answers.next(), answers.next()) else {
                break;
            };
            // A group deleted since the delta's pages were read: the next
            // delta reports it.
            let deleted = |answer: &Result<batch::Answer, ConnectorError>| {
                answer.as_ref().is_ok_and(|a| a.status == 404)
            };
            if deleted(&properties) || deleted(&members) {
                tracing::debug!(group = %id, "a group containing a changed one is gone");
                continue;
            }
            let what = format!("reading the group {id}, which contains a changed group");
            let group = match properties {
                Ok(a) if a.is_success() => a.json::<Group>(&what),
                Ok(a) => Err(a.error(&what)),
                Err(e) => Err(e),
            };
            let read = match group {
                Ok(group) => self
                    .member_addresses(id, members)
                    .await
                    .map(|list| (group, list)),
                Err(error) => Err(error),
            };
            match read {
                Ok(read) => reread.containing.push(read),
                Err(error) => {
                    reread.failure.get_or_insert(error);
                }
            }
        }
        reread
    }

    /// The addresses of a group's members (users and contacts with mail;
    /// nested groups are listed by `transitiveMembers` beside their own
    /// members), from the batch's `answer` for its first page and the
    /// further pages read here.
    async fn member_addresses(
        &self,
        group: &str,
        answer: Result<batch::Answer, ConnectorError>,
    ) -> Result<Vec<String>, ConnectorError> {
        let what = format!("reading the members of {group}");
        let mut page = match answer {
            Ok(a) if a.is_success() => a.json::<graph::Page<DirectoryObject>>(&what)?,
            Ok(a) => return Err(a.error(&what)),
            Err(e) => return Err(e),
        };
        let mut objects = std::mem::take(&mut page.value);
        if let Some(link) = page.next_link.take() {
            let url = reqwest::Url::parse(&link).map_err(|e| {
                ConnectorError::permanent(format!("{what}: the next link {link}: {e}"))
            })?;
            match graph::read_pages::<DirectoryObject>(
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
                        return Err(error);
                    }
                }
                Round::Expired(why) => return Err(ConnectorError::retryable(why)),
            }
        }
        let addresses: BTreeSet<String> = objects
            .iter()
            .filter(|o| !o.is_group())
            .filter_map(|o| o.mail.as_deref().map(str::trim).filter(|m| !m.is_empty()))
            .map(str::to_string)
            .collect();
        Ok(addresses.into_iter().collect())
    }
}

/// The groups a delta read again.
#[derive(Default)]
struct Reread {
    /// The changed groups' member addresses, by id (a group whose members
    /// could not be read is missing).
    members: HashMap<String, Vec<String>>,
    /// The groups containing a changed one, with their member addresses.
    containing: Vec<(Group, Vec<String>)>,
    /// The failure that left some out, if any.
    failure: Option<ConnectorError>,
}

/// The mail-enabled groups as recipients, members resolved from the
/// direct members the first delta round listed (a group may come on
/// several pages, its members spread over them); the groups' primary
/// addresses by id; which groups contain which.
fn groups_with_members(
    groups: &[Group],
    users: &HashMap<String, String>,
) -> (Vec<Recipient>, HashMap<String, String>, Nesting) {
    let mut direct: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut typed_groups: HashSet<String> = HashSet::new();
    let mut latest: HashMap<&str, &Group> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for group in groups.iter().filter(|g| g.removed.is_none()) {
        let members = direct.entry(group.id.clone()).or_default();
        for member in group.members_delta.as_deref().unwrap_or_default() {
            if member.removed.is_none() {
                members.insert(member.id.clone());
                if member.is_group() {
                    typed_groups.insert(member.id.clone());
                }
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
    let nesting = Nesting::from_direct(&direct, &typed_groups);
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
    (out, primaries, nesting)
}
