//! The writes: the engine's operations carried out as Domain Shared
//! Contacts writes, each until it is done or has failed for good.
//!
//! Pages followed:
//! * create, update and delete through the contact's own endpoints (POST
//!   to the feed; PUT or DELETE on the edit link, conditional on the etag
//!   with `If-Match`) —
//!   <https://developers.google.com/workspace/admin/domain-shared-contacts/create-contacts>,
//!   <https://developers.google.com/workspace/admin/domain-shared-contacts/update-contacts>,
//!   <https://developers.google.com/workspace/admin/domain-shared-contacts/delete-contacts>;
//! * batch operations, at most 100 a request, one `batch:status` per entry —
//!   <https://developers.google.com/workspace/admin/domain-shared-contacts/perform-batch-operations>,
//!   <https://developers.google.com/gdata/docs/batch>;
//! * version conflicts (409 / 412 when the etag no longer matches): the
//!   contact is read again and the write sent once more —
//!   <https://developers.google.com/gdata/docs/2.0/reference#ResourceVersioning>.
//!
//! An apply first resolves each operation against the
//! [contact index](crate::contact_index) (a create of an anchor that already
//! has a contact updates it; updates and deletes take the newest edit link
//! and etag), then sends them in rounds: transient failures of single
//! entries go again with backoff, a version conflict is resolved once by
//! reading the contact again, a contact deleted outside coexist is created
//! anew or its delete counts as done. After the first authentication error
//! nothing more is sent. The requests and the reading of their answers are
//! [`send`]'s; the documents are [`crate::contacts`]'.

mod send;

use std::sync::OnceLock;

use coexist_connector::{Applied, ConnectorError, Operation, Stub};

use crate::GoogleConnector;

/// What one operation does on Google, resolved against the index.
#[derive(Debug, Clone)]
enum Action {
    Insert,
    Update {
        id: String,
        edit_link: String,
        etag: Option<String>,
    },
    Delete {
        id: String,
        edit_link: String,
        etag: Option<String>,
    },
}

#[derive(Debug, Clone)]
struct Planned {
    action: Action,
    /// The stub written (create, update) or removed (delete).
    stub: Stub,
    /// The anchor the contact carries now (differs from `stub.anchor` when
    /// an update changes it).
    current_anchor: String,
    /// The operation was a create (a vanished contact is then inserted).
    from_create: bool,
    /// A version conflict was already resolved once.
    conflict_retried: bool,
}

impl Planned {
    fn describe(&self) -> String {
        let verb = match (&self.action, self.from_create) {
            (Action::Insert, _) => "creating",
            (Action::Update { .. }, true) => "creating (as an update of the existing contact)",
            (Action::Update { .. }, false) => "updating",
            (Action::Delete { .. }, _) => "deleting",
        };
        format!(
            "{verb} the shared contact for {} ({})",
            self.stub.primary_address, self.stub.anchor
        )
    }
}

/// The result of one attempt at one operation (short-lived: its size does
/// not matter).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Outcome {
    Done(Result<Applied, ConnectorError>),
    /// A transient failure of this operation alone: send it again later.
    Again(ConnectorError),
    /// 409 / 412: the contact changed since it was read.
    Conflict(String),
    /// 404: the contact is gone.
    Vanished,
}

/// The first authentication error of one apply: after it, nothing more is
/// sent to the system.
#[derive(Debug, Default)]
struct Stop(OnceLock<ConnectorError>);

impl Stop {
    fn error(&self) -> Option<ConnectorError> {
        self.0.get().cloned()
    }

    fn note_error(&self, error: &ConnectorError) {
        if error.is_authentication() {
            let _ = self.0.set(error.clone());
        }
    }

    fn note(&self, outcome: &Outcome) {
        if let Outcome::Done(Err(error)) = outcome {
            self.note_error(error);
        }
    }
}

impl GoogleConnector {
    /// Carries out one operation through the contact's own endpoints.
    pub(crate) async fn apply_one(&self, operation: &Operation) -> Result<Applied, ConnectorError> {
        if let Some(error) = self.http.tokens().failure() {
            return Err(error);
        }
        let planned = self.prepare(std::slice::from_ref(operation)).await?;
        self.run(planned, false).await.pop().unwrap_or_else(|| {
            Err(ConnectorError::retryable(
                "the operation was not carried out",
            ))
        })
    }

    /// Carries out operations through the batch endpoint; one result per
    /// operation, in order. After an authentication failure (now or earlier
    /// in the run) every operation fails with that error, unsent.
    pub(crate) async fn apply_batched(
        &self,
        operations: &[Operation],
    ) -> Vec<Result<Applied, ConnectorError>> {
        if let Some(error) = self.http.tokens().failure() {
            return operations.iter().map(|_| Err(error.clone())).collect();
        }
        let planned = match self.prepare(operations).await {
            Ok(planned) => planned,
            Err(error) => return operations.iter().map(|_| Err(error.clone())).collect(),
        };
        self.run(planned, true).await
    }

    /// Reads the feed into the index first when no pull did in this
    /// process: a create of an anchor that already has a contact must update
    /// it, and updates and deletes need the contacts' etags.
    async fn prepare(&self, operations: &[Operation]) -> Result<Vec<Planned>, ConnectorError> {
        if !operations.is_empty() {
            self.ensure_index().await.map_err(|error| {
                error.context(
                    "reading the shared contacts before writing (to find coexist's existing contacts) failed",
                )
            })?;
        }
        Ok(self.plan(operations).await)
    }

    /// Resolves operations against the index: a create of an anchor that
    /// already has a contact becomes an update of that contact.
    async fn plan(&self, operations: &[Operation]) -> Vec<Planned> {
        let index = self.index.lock().await;
        let known = |id: &str, locator: &str| match index.version(id) {
            Some((edit_link, etag)) => (edit_link.clone(), etag.clone()),
            None => (locator.to_string(), None),
        };
        operations
            .iter()
            .map(|operation| match operation {
                Operation::Create { stub } => {
                    let action = match index.contact_of(&stub.anchor) {
                        Some((id, (edit_link, etag))) => Action::Update {
                            id: id.clone(),
                            edit_link: edit_link.clone(),
                            etag: etag.clone(),
                        },
                        None => Action::Insert,
                    };
                    Planned {
                        action,
                        stub: stub.clone(),
                        current_anchor: stub.anchor.clone(),
                        from_create: true,
                        conflict_retried: false,
                    }
                }
                Operation::Update {
                    id,
                    locator,
                    before,
                    after,
                    ..
                } => {
                    let (edit_link, etag) = known(id, locator);
                    Planned {
                        action: Action::Update {
                            id: id.clone(),
                            edit_link,
                            etag,
                        },
                        stub: (**after).clone(),
                        current_anchor: before.anchor.clone(),
                        from_create: false,
                        conflict_retried: false,
                    }
                }
                Operation::Delete { id, locator, stub } => {
                    let (edit_link, etag) = known(id, locator);
                    Planned {
                        action: Action::Delete {
                            id: id.clone(),
                            edit_link,
                            etag,
                        },
                        stub: stub.clone(),
                        current_anchor: stub.anchor.clone(),
                        from_create: false,
                        conflict_retried: false,
                    }
                }
            })
            .collect()
    }

    /// Carries out planned operations, through batches or one request each,
    /// until each is done: transient failures of single entries are sent
    /// again (with backoff, up to `max_attempts` rounds), a version conflict
    /// is resolved once by reading the contact again. After the first
    /// authentication error nothing more is sent: every operation not yet
    /// sent fails with that error.
    async fn run(
        &self,
        mut planned: Vec<Planned>,
        batched: bool,
    ) -> Vec<Result<Applied, ConnectorError>> {
        let mut results: Vec<Option<Result<Applied, ConnectorError>>> =
            planned.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..planned.len()).collect();
        let policy = self.http.retry_policy();
        let mut round = 1u32;
        let stop = Stop::default();
        while !pending.is_empty() {
            if let Some(error) = stop.error() {
                for i in pending {
                    results[i] = Some(Err(error.clone()));
                }
                break;
            }
            let outcomes = if batched {
                self.send_batches(&planned, &pending, &stop).await
            } else {
                let mut outcomes = Vec::with_capacity(pending.len());
                for &i in &pending {
                    let outcome = match stop.error() {
                        Some(error) => Outcome::Done(Err(error)),
                        None => self.send_one(&planned[i]).await,
                    };
                    stop.note(&outcome);
                    outcomes.push((i, outcome));
                }
                outcomes
            };
            let mut now = Vec::new();
            let mut later = Vec::new();
            let mut last_error = None;
            for (i, outcome) in outcomes {
                match outcome {
                    Outcome::Done(result) => {
                        self.note(&planned[i], &result).await;
                        results[i] = Some(result);
                    }
                    Outcome::Again(error) => {
                        later.push((i, error.clone()));
                        last_error = Some(error);
                    }
                    Outcome::Conflict(detail) => match stop.error() {
                        Some(error) => results[i] = Some(Err(error)),
                        None => match self.resolve_conflict(&mut planned[i], &detail).await {
                            Ok(()) => now.push(i),
                            Err(error) => {
                                stop.note_error(&error);
                                results[i] = Some(Err(error));
                            }
                        },
                    },
                    Outcome::Vanished => {
                        let p = &mut planned[i];
                        match p.action {
                            Action::Delete { ref id, .. } => {
                                let id = id.clone();
                                self.index.lock().await.forget(&id);
                                results[i] = Some(Ok(Applied { found: None }));
                            }
                            Action::Update { ref id, .. } if p.from_create => {
                                // The indexed contact is gone: create it anew.
                                let id = id.clone();
                                self.index.lock().await.forget(&id);
                                p.action = Action::Insert;
                                p.from_create = false;
                                now.push(i);
                            }
                            _ => {
                                results[i] = Some(Err(ConnectorError::permanent(format!(
                                    "{}: the contact no longer exists (deleted outside coexist); the next sync creates it again",
                                    p.describe()
                                ))));
                            }
                        }
                    }
                }
            }
            if !later.is_empty() {
                let wait = last_error
                    .as_ref()
                    .filter(|_| stop.error().is_none())
                    .and_then(|error| policy.delay_after(round, error));
                match wait {
                    Some(wait) => {
                        tracing::warn!(
                            operations = later.len(),
                            wait_ms = wait.as_millis() as u64,
                            "shared contact operations failed transiently; sending them again"
                        );
                        tokio::time::sleep(wait).await;
                        round += 1;
                        now.extend(later.iter().map(|(i, _)| *i));
                    }
                    None => {
                        for (i, error) in later {
                            results[i] = Some(Err(error));
                        }
                    }
                }
            }
            pending = now;
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(ConnectorError::retryable(
                        "the operation was not carried out (internal bookkeeping error)",
                    ))
                })
            })
            .collect()
    }

    /// Reads the contact again after a version conflict and takes its new
    /// edit link and etag, once; refuses when the contact no longer carries
    /// coexist's marker for the anchor.
    async fn resolve_conflict(
        &self,
        planned: &mut Planned,
        detail: &str,
    ) -> Result<(), ConnectorError> {
        let what = planned.describe();
        if planned.conflict_retried {
            return Err(ConnectorError::retryable(format!(
                "{what}: the contact keeps changing under coexist ({detail}); retry later"
            )));
        }
        planned.conflict_retried = true;
        let id = match &planned.action {
            Action::Update { id, .. } | Action::Delete { id, .. } => id.clone(),
            Action::Insert => {
                return Err(ConnectorError::permanent(format!("{what}: {detail}")));
            }
        };
        tracing::debug!(contact = %id, "version conflict; reading the contact again");
        let fresh = self.get_contact(&id).await?;
        let Some(fresh) = fresh else {
            // Gone: a delete is done, an update of a created stub inserts.
            return match planned.action {
                Action::Delete { .. } | Action::Update { .. } => {
                    let mut index = self.index.lock().await;
                    index.forget(&id);
                    drop(index);
                    if planned.from_create {
                        planned.action = Action::Insert;
                        planned.from_create = false;
                        Ok(())
                    } else if matches!(planned.action, Action::Delete { .. }) {
                        // Sent again, the delete meets a 404: success.
                        Ok(())
                    } else {
                        Err(ConnectorError::permanent(format!(
                            "{what}: the contact no longer exists (deleted outside coexist); the next sync creates it again"
                        )))
                    }
                }
                Action::Insert => Ok(()),
            };
        };
        if fresh.anchor(&self.config.marker_property) != Some(planned.current_anchor.as_str()) {
            return Err(ConnectorError::permanent(format!(
                "{what}: contact {id} no longer carries coexist's marker for {}; it is left alone",
                planned.current_anchor
            )));
        }
        let Some(edit_link) = fresh.edit_link.clone() else {
            return Err(ConnectorError::permanent(format!(
                "{what}: contact {id} read again has no edit link"
            )));
        };
        match &mut planned.action {
            Action::Update {
                edit_link: link,
                etag,
                ..
            }
            | Action::Delete {
                edit_link: link,
                etag,
                ..
            } => {
                *link = edit_link;
                *etag = fresh.etag.clone();
            }
            Action::Insert => {}
        }
        Ok(())
    }

    /// Keeps the index in step with a finished operation.
    async fn note(&self, planned: &Planned, result: &Result<Applied, ConnectorError>) {
        let Ok(applied) = result else { return };
        let mut index = self.index.lock().await;
        match (&planned.action, &applied.found) {
            (Action::Delete { id, .. }, _) => index.forget(id),
            (_, Some(found)) => {
                if planned.current_anchor != planned.stub.anchor {
                    index.forget_anchor(&planned.current_anchor);
                }
                // The etag travels in `locator`'s version; the etag itself
                // was stored by `found_from`.
                let etag = index.version(&found.id).and_then(|(_, e)| e.clone());
                index.record(&planned.stub.anchor, &found.id, &found.locator, etag);
            }
            _ => {}
        }
    }
}
