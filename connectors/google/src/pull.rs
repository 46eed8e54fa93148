//! The pull: the customer's users and groups (members resolved) from the
//! Admin SDK Directory API, and coexist's stubs from the shared contacts
//! feed, read concurrently into one [`Pull`].
//!
//! Pages followed:
//! * `users.list`, `groups.list`, `members.list` —
//!   <https://developers.google.com/admin-sdk/directory/reference/rest/v1/users/list>,
//!   <https://developers.google.com/admin-sdk/directory/reference/rest/v1/groups/list>,
//!   <https://developers.google.com/admin-sdk/directory/reference/rest/v1/members/list>
//!   (the requests themselves and the mapping to recipients are
//!   [`crate::directory`]'s);
//! * the shared contacts feed —
//!   <https://developers.google.com/workspace/admin/domain-shared-contacts/retrieve-contacts>
//!   (read by [`crate::feed`], mapped to stubs by [`crate::contacts`]).
//!
//! The Directory API has no delta query, so every pull is
//! [`PullMode::Full`]: each recipient carries its etag so the engine skips
//! unchanged ones. A listing that fails after its retries leaves the pull
//! incomplete (`complete = false`, with a problem naming it), so nothing is
//! deleted from a partial read; the pull fails only when the credentials
//! were refused or nothing at all could be read. The contacts read also
//! fill the [contact index](crate::contact_index) the writes use.

use std::time::Instant;

use coexist_connector::{ConnectorError, Problem, Progress, Pull, PullMode};
use futures::stream::{self, StreamExt};

use crate::directory::{self, ListedGroup};
use crate::GoogleConnector;

impl GoogleConnector {
    /// Reads users, groups (members resolved) and coexist's shared contacts
    /// into a full pull; see the module documentation for when it is
    /// incomplete rather than an error.
    pub(crate) async fn read_all(&self, progress: &dyn Progress) -> Result<Pull, ConnectorError> {
        let started = Instant::now();
        let (users, groups, contacts) = tokio::join!(
            self.directory.list_users(&self.http, progress),
            self.read_groups(progress),
            self.read_contacts(progress),
        );
        let (groups, groups_failure, mut problems) = groups;
        let failures: Vec<(&str, &ConnectorError)> = [
            ("users", users.failure.as_ref()),
            ("groups", groups_failure.as_ref()),
            ("shared contacts", contacts.failure.as_ref()),
        ]
        .into_iter()
        .filter_map(|(what, failure)| failure.map(|f| (what, f)))
        .collect();
        if let Some((_, error)) = failures
            .iter()
            .find(|(_, e)| matches!(e, ConnectorError::Authentication { .. }))
        {
            return Err((*error).clone());
        }
        if failures.len() == 3
            && users.items.is_empty()
            && groups.is_empty()
            && contacts.items.is_empty()
        {
            if let Some((_, error)) = failures.first() {
                return Err((*error).clone());
            }
        }
        let mut recipients = Vec::with_capacity(users.items.len() + groups.len());
        for user in &users.items {
            match directory::user_to_recipient(user) {
                Ok(recipient) => recipients.push(recipient),
                Err(problem) => problems.push(problem),
            }
        }
        let members_complete = groups.iter().all(|g| g.members_complete);
        let (group_recipients, group_problems) = directory::groups_to_recipients(&groups);
        recipients.extend(group_recipients);
        problems.extend(group_problems);
        let mut stubs = Vec::new();
        for entry in &contacts.items {
            match entry.to_found_stub(&self.config.marker_property) {
                Some(Ok(stub)) => stubs.push(stub),
                Some(Err(problem)) => problems.push(problem),
                None => {}
            }
        }
        self.load_index(&contacts.items, contacts.failure.is_none())
            .await;
        for (what, error) in &failures {
            problems.push(Problem {
                object: format!("Google {what} of {}", self.config.domain),
                message: format!(
                    "the listing stopped after its retries, so the read is incomplete and \
                     nothing will be deleted in this run: {error}"
                ),
            });
        }
        let complete = failures.is_empty() && members_complete;
        tracing::info!(
            users = users.items.len(),
            groups = groups.len(),
            stubs = stubs.len(),
            complete,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "pulled Google"
        );
        Ok(Pull {
            mode: PullMode::Full,
            recipients,
            stubs,
            removed: Vec::new(),
            cursor: None,
            complete,
            problems,
            incremental: None,
        })
    }

    /// Lists the groups, then the members of each (at most `concurrency`
    /// groups at a time).
    async fn read_groups(
        &self,
        progress: &dyn Progress,
    ) -> (Vec<ListedGroup>, Option<ConnectorError>, Vec<Problem>) {
        let listing = self.directory.list_groups(&self.http, progress).await;
        let listed: Vec<(ListedGroup, Option<ConnectorError>)> = stream::iter(listing.items)
            .map(|group| async move {
                let Some(key) = group.id.clone().or_else(|| group.email.clone()) else {
                    let listed = ListedGroup {
                        group,
                        members: Vec::new(),
                        members_complete: true,
                    };
                    return (listed, None);
                };
                let label = group.email.clone().unwrap_or_else(|| key.clone());
                let members = self.directory.list_members(&self.http, &key, &label).await;
                if let Some(error) = &members.failure {
                    tracing::warn!(%error, group = %label, "a member listing failed");
                }
                let listed = ListedGroup {
                    group,
                    members: members.items,
                    members_complete: members.failure.is_none(),
                };
                (listed, members.failure)
            })
            // Leave room for the users and contacts listings, whose pages
            // are sequential.
            .buffered(self.config.concurrency.saturating_sub(2).max(1))
            .collect()
            .await;
        let mut problems = Vec::new();
        let mut groups = Vec::with_capacity(listed.len());
        for (group, failure) in listed {
            if let Some(error) = failure {
                problems.push(Problem {
                    object: group
                        .group
                        .email
                        .clone()
                        .unwrap_or_else(|| "a group".to_string()),
                    message: format!(
                        "its members could not all be read, so the read is incomplete: {error}"
                    ),
                });
            }
            groups.push(group);
        }
        (groups, listing.failure, problems)
    }
}
