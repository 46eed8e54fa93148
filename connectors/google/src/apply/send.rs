//! Sending planned operations to Google, and reading each answer into the
//! [`Outcome`] the apply loop acts on.
//!
//! Pages followed:
//! * the batch request (`POST <feed>/batch`, at most
//!   [`MAX_BATCH_OPERATIONS`] entries, each answered by its `batch:id` and
//!   `batch:status`; an interrupted batch leaves later entries unanswered) —
//!   <https://developers.google.com/workspace/admin/domain-shared-contacts/perform-batch-operations>,
//!   <https://developers.google.com/gdata/docs/batch>;
//! * the entry endpoints (POST to the feed, PUT / DELETE on the edit link
//!   with `If-Match`) —
//!   <https://developers.google.com/workspace/admin/domain-shared-contacts/create-contacts>,
//!   <https://developers.google.com/workspace/admin/domain-shared-contacts/update-contacts>,
//!   <https://developers.google.com/workspace/admin/domain-shared-contacts/delete-contacts>;
//! * the statuses (404 gone, 409 / 412 version conflict, 403 quota, 429,
//!   5xx) — <https://developers.google.com/gdata/docs/2.0/reference#HTTPStatusCodes>.
//!
//! A successful insert or update records the contact's new edit link and
//! etag in the contact index at once.

use std::collections::HashMap;

use coexist_connector::{Applied, ConnectorError, FoundStub};
use futures::stream::{self, StreamExt};
use reqwest::Method;

use super::{Action, Outcome, Planned, Stop};
use crate::contacts::{self, BatchEntry, BatchKind, ContactEntry, MAX_BATCH_OPERATIONS};
use crate::http::{self, Request};
use crate::{parse_url, GoogleConnector};

impl GoogleConnector {
    /// Sends pending operations in batches of at most 100, several batches
    /// at a time; once a batch failed authentication, the batches not yet
    /// sent fail with its error, unsent.
    pub(super) async fn send_batches(
        &self,
        planned: &[Planned],
        pending: &[usize],
        stop: &Stop,
    ) -> Vec<(usize, Outcome)> {
        let chunks: Vec<Vec<usize>> = pending
            .chunks(MAX_BATCH_OPERATIONS)
            .map(<[usize]>::to_vec)
            .collect();
        stream::iter(chunks)
            .map(|chunk| async move {
                if let Some(error) = stop.error() {
                    return chunk
                        .iter()
                        .map(|&i| (i, Outcome::Done(Err(error.clone()))))
                        .collect();
                }
                let outcomes = self.send_batch(planned, &chunk).await;
                for (_, outcome) in &outcomes {
                    stop.note(outcome);
                }
                outcomes
            })
            .buffer_unordered(self.config.concurrency)
            .flat_map(stream::iter)
            .collect()
            .await
    }

    async fn send_batch(&self, planned: &[Planned], chunk: &[usize]) -> Vec<(usize, Outcome)> {
        let marker = &self.config.marker_property;
        let entries: Vec<BatchEntry> = chunk
            .iter()
            .filter_map(|&i| planned.get(i).map(|p| (i, p)))
            .map(|(i, p)| match &p.action {
                Action::Insert => BatchEntry {
                    batch_id: i.to_string(),
                    kind: BatchKind::Insert,
                    edit_link: None,
                    etag: None,
                    body: Some(contacts::stub_body(&p.stub, marker)),
                },
                Action::Update {
                    edit_link, etag, ..
                } => BatchEntry {
                    batch_id: i.to_string(),
                    kind: BatchKind::Update,
                    edit_link: Some(edit_link.clone()),
                    etag: Some(etag.clone().unwrap_or_else(|| "*".to_string())),
                    body: Some(contacts::stub_body(&p.stub, marker)),
                },
                Action::Delete {
                    edit_link, etag, ..
                } => BatchEntry {
                    batch_id: i.to_string(),
                    kind: BatchKind::Delete,
                    edit_link: Some(edit_link.clone()),
                    etag: Some(etag.clone().unwrap_or_else(|| "*".to_string())),
                    body: None,
                },
            })
            .collect();
        let what = format!(
            "writing a batch of {} shared contact operations (the first: {})",
            entries.len(),
            chunk
                .first()
                .and_then(|&i| planned.get(i))
                .map(Planned::describe)
                .unwrap_or_default()
        );
        let request = Request::get(self.batch_url.clone())
            .gdata()
            .atom(Method::POST, contacts::batch_document(&entries));
        let reply = match self.http.execute(&what, &request).await {
            Ok(reply) => reply,
            Err(error) => {
                return chunk
                    .iter()
                    .map(|&i| (i, Outcome::Done(Err(error.clone()))))
                    .collect()
            }
        };
        let answers = match contacts::parse_batch(&String::from_utf8_lossy(&reply.body)) {
            Ok(answers) => answers,
            Err(e) => {
                let error = ConnectorError::permanent(format!(
                    "{what}: the answer is not a batch feed: {e}"
                ));
                return chunk
                    .iter()
                    .map(|&i| (i, Outcome::Done(Err(error.clone()))))
                    .collect();
            }
        };
        let mut by_id: HashMap<String, contacts::BatchResult> = answers
            .into_iter()
            .map(|answer| (answer.batch_id.clone(), answer))
            .collect();
        let mut outcomes = Vec::with_capacity(chunk.len());
        for &i in chunk {
            let Some(p) = planned.get(i) else { continue };
            let outcome = match by_id.remove(&i.to_string()) {
                Some(answer) => {
                    self.outcome(p, answer.code, &answer.reason, Some(&answer.entry))
                        .await
                }
                None => Outcome::Again(ConnectorError::retryable(format!(
                    "{}: the batch answer has no result for it (the batch was interrupted)",
                    p.describe()
                ))),
            };
            outcomes.push((i, outcome));
        }
        outcomes
    }

    /// Carries out one operation through the entry endpoints.
    pub(super) async fn send_one(&self, planned: &Planned) -> Outcome {
        let what = planned.describe();
        let marker = &self.config.marker_property;
        let request = match &planned.action {
            Action::Insert => Request::get(self.feed_url.clone()).gdata().atom(
                Method::POST,
                contacts::entry_document(&planned.stub, marker, None),
            ),
            Action::Update {
                edit_link, etag, ..
            } => {
                let url = match parse_url("the edit link", edit_link) {
                    Ok(url) => url,
                    Err(error) => return Outcome::Done(Err(error)),
                };
                Request::get(url)
                    .gdata()
                    .header("If-Match", etag.clone().unwrap_or_else(|| "*".to_string()))
                    .atom(
                        Method::PUT,
                        contacts::entry_document(&planned.stub, marker, etag.as_deref()),
                    )
                    .accepting(&[404, 409, 412])
            }
            Action::Delete {
                edit_link, etag, ..
            } => {
                let url = match parse_url("the edit link", edit_link) {
                    Ok(url) => url,
                    Err(error) => return Outcome::Done(Err(error)),
                };
                let mut request = Request::get(url)
                    .gdata()
                    .header("If-Match", etag.clone().unwrap_or_else(|| "*".to_string()))
                    .accepting(&[404, 409, 412]);
                request.method = Method::DELETE;
                request
            }
        };
        let reply = match self.http.execute(&what, &request).await {
            Ok(reply) => reply,
            Err(error) => return Outcome::Done(Err(error)),
        };
        let code = reply.status.as_u16();
        let entry = if reply.status.is_success() && !reply.body.is_empty() {
            match contacts::parse_entry(&String::from_utf8_lossy(&reply.body)) {
                Ok(entry) => Some(entry),
                Err(_) if matches!(planned.action, Action::Delete { .. }) => None,
                Err(e) => {
                    return Outcome::Done(Err(ConnectorError::permanent(format!(
                        "{what}: the answer is not an Atom entry: {e}"
                    ))))
                }
            }
        } else {
            None
        };
        let reason = if reply.status.is_success() {
            String::new()
        } else {
            http::error_message(&reply.body)
        };
        self.outcome(planned, code, &reason, entry.as_ref()).await
    }

    /// Maps the status of one operation (an HTTP status, or a batch
    /// entry's `batch:status`) to its outcome.
    async fn outcome(
        &self,
        planned: &Planned,
        code: u16,
        reason: &str,
        entry: Option<&ContactEntry>,
    ) -> Outcome {
        let what = planned.describe();
        match code {
            200..=299 => match (&planned.action, entry) {
                (Action::Delete { .. }, _) => Outcome::Done(Ok(Applied { found: None })),
                (_, Some(entry)) => self.found_from(planned, entry).await,
                (_, None) => self.found_from(planned, &ContactEntry::default()).await,
            },
            404 => Outcome::Vanished,
            409 | 412 => Outcome::Conflict(format!("HTTP {code} {reason}")),
            429 => Outcome::Again(ConnectorError::throttled(
                None,
                format!("{what}: HTTP {code} {reason}"),
            )),
            403 if {
                let reason = reason.to_lowercase();
                reason.contains("rate limit")
                    || reason.contains("ratelimit")
                    || reason.contains("quota")
            } =>
            {
                Outcome::Again(ConnectorError::throttled(
                    None,
                    format!("{what}: HTTP {code} {reason}"),
                ))
            }
            500..=599 => Outcome::Again(ConnectorError::retryable(format!(
                "{what}: HTTP {code} {reason}"
            ))),
            _ => Outcome::Done(Err(ConnectorError::permanent(format!(
                "{what}: Google refused it: HTTP {code} {reason}"
            )))),
        }
    }

    /// The `Applied` of a successful insert or update, from the answer.
    async fn found_from(&self, planned: &Planned, entry: &ContactEntry) -> Outcome {
        let (id, edit_link) = match &planned.action {
            Action::Update { id, edit_link, .. } => (
                if entry.id.is_empty() {
                    id.clone()
                } else {
                    entry.id.clone()
                },
                entry.edit_link.clone().unwrap_or_else(|| edit_link.clone()),
            ),
            _ => match entry.edit_link.clone() {
                Some(link) if !entry.id.is_empty() => (entry.id.clone(), link),
                _ => {
                    return Outcome::Done(Err(ConnectorError::permanent(format!(
                        "{}: Google's answer names no contact id or edit link",
                        planned.describe()
                    ))))
                }
            },
        };
        self.index
            .lock()
            .await
            .set_version(&id, &edit_link, entry.etag.clone());
        Outcome::Done(Ok(Applied {
            found: Some(FoundStub {
                id,
                locator: edit_link,
                misplaced: false,
                stub: planned.stub.clone(),
            }),
        }))
    }
}
