//! Graph JSON batching (<https://learn.microsoft.com/graph/json-batching>):
//! up to 20 requests in one `POST {graph}/$batch`, each answered with its
//! own status inside a 200. Each inner answer is honoured: a 429 (or 503)
//! is sent again in a later batch after the longest `Retry-After` the
//! throttled answers named, a 5xx after a backoff, within the retry
//! policy's attempts; other statuses are handed back to the caller.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use coexist_connector::{requests, ConnectorError};
use futures::stream::{self, StreamExt};
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::auth::Resource;
use crate::http::{status_error, Http, Request};

/// The most requests one batch holds.
pub const MAX_BATCH: usize = 20;

/// One inner request.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub id: String,
    pub method: &'static str,
    /// Relative to the version root: `/users/{id}/contactFolders`.
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// Shared: the same contact is written to every mailbox.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "shared_body"
    )]
    pub body: Option<Arc<Value>>,
}

fn shared_body<S: serde::Serializer>(body: &Option<Arc<Value>>, to: S) -> Result<S::Ok, S::Error> {
    body.as_deref().serialize(to)
}

impl Item {
    pub fn get(url: String) -> Self {
        Item {
            id: String::new(),
            method: "GET",
            url,
            headers: None,
            body: None,
        }
    }

    pub fn delete(url: String) -> Self {
        Item {
            method: "DELETE",
            ..Item::get(url)
        }
    }

    /// A request with a JSON body (`POST`, `PATCH`).
    pub fn with_body(method: &'static str, url: String, body: Value) -> Self {
        Item::with_shared_body(method, url, Arc::new(body))
    }

    /// A request with a JSON body shared with other requests.
    pub fn with_shared_body(method: &'static str, url: String, body: Arc<Value>) -> Self {
        Item {
            id: String::new(),
            method,
            url,
            headers: Some(BTreeMap::from([(
                "Content-Type".to_string(),
                "application/json".to_string(),
            )])),
            body: Some(body),
        }
    }
}

/// One inner answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Answer {
    #[serde(default)]
    pub id: String,
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Kept as the text Graph sent and decoded once, straight into the
    /// type the caller wants (a batch of created contacts decoded into
    /// `Value`s first cost more CPU than the network wait it fills).
    #[serde(default)]
    pub body: Option<Box<RawValue>>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn retry_after(&self) -> Option<Duration> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Retry-After"))
            .and_then(|(_, v)| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
    }

    /// The inner answer as the error it means.
    pub fn error(&self, what: &str) -> ConnectorError {
        let body = self
            .body
            .as_ref()
            .map(|b| b.get().as_bytes())
            .unwrap_or_default();
        let status =
            reqwest::StatusCode::from_u16(self.status).unwrap_or(reqwest::StatusCode::BAD_GATEWAY);
        status_error(what, status, self.retry_after(), body)
    }

    /// The body as `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, ConnectorError> {
        let text = self.body.as_ref().map(|b| b.get()).unwrap_or("null");
        serde_json::from_str(text).map_err(|e| {
            ConnectorError::permanent(format!(
                "{what}: HTTP {}: the answer is not what Graph documents: {e}",
                self.status
            ))
        })
    }
}

#[derive(Serialize)]
struct BatchBody<'a> {
    requests: Vec<Numbered<'a>>,
}

/// An item as one batch sends it: with its index as its id, borrowed
/// (the bodies are not copied for each batch).
#[derive(Serialize)]
struct Numbered<'a> {
    id: String,
    method: &'static str,
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a Value>,
}

#[derive(Deserialize)]
struct BatchAnswer {
    #[serde(default)]
    responses: Vec<Answer>,
}

/// Sends `items` in batches of [`MAX_BATCH`], one result per item in
/// order: the inner answer (any status but a transient one), or the
/// error that stopped it (the batch request itself failed, or the item
/// stayed throttled through every attempt). `what` names the work in logs.
pub async fn send(
    http: &Arc<Http>,
    graph_url: &str,
    items: Vec<Item>,
    what: &str,
) -> Vec<Result<Answer, ConnectorError>> {
    let endpoint = match Url::parse(&format!("{}/$batch", graph_url.trim_end_matches('/'))) {
        Ok(url) => url,
        Err(e) => {
            let error = ConnectorError::permanent(format!("the $batch URL: {e}"));
            return items.iter().map(|_| Err(error.clone())).collect();
        }
    };
    let policy = http.retry_policy();
    let mut results: Vec<Option<Result<Answer, ConnectorError>>> =
        items.iter().map(|_| None).collect();
    let items = Arc::new(items);
    let what_owned: Arc<str> = Arc::from(what);
    let mut pending: Vec<usize> = (0..items.len()).collect();
    let mut round = 1u32;
    while !pending.is_empty() {
        let chunks: Vec<Vec<usize>> = pending.chunks(MAX_BATCH).map(<[usize]>::to_vec).collect();
        // Each batch is built, sent and read on a task of its own, so that
        // building and reading (JSON of 20 requests and answers) runs on
        // every worker thread. Twice as many tasks as request slots: the
        // client's semaphore keeps `concurrency` requests in flight, and
        // the other tasks build their batch before a slot frees and read
        // their answer after giving theirs back, off the slots' time.
        let sent: Vec<Vec<(usize, Outcome)>> = stream::iter(chunks)
            .map(|chunk| {
                let (http, endpoint, items, what) = (
                    Arc::clone(http),
                    endpoint.clone(),
                    Arc::clone(&items),
                    Arc::clone(&what_owned),
                );
                let indices = chunk.clone();
                // The run's request counter is task-local: the batch's
                // task counts into it too.
                let counter = requests::current();
                let task = tokio::spawn(async move {
                    let sending = send_chunk(&http, &endpoint, &items, &chunk, &what);
                    match counter {
                        Some(counter) => requests::counting(counter, sending).await,
                        None => sending.await,
                    }
                });
                async move {
                    task.await.unwrap_or_else(|e| {
                        let error = ConnectorError::retryable(format!(
                            "the task sending a $batch ended early: {e}"
                        ));
                        indices
                            .into_iter()
                            .map(|i| (i, Outcome::Done(Err(error.clone()))))
                            .collect()
                    })
                }
            })
            .buffer_unordered(http.concurrency() * 2)
            .collect()
            .await;
        let mut again: Vec<(usize, ConnectorError)> = Vec::new();
        for (i, outcome) in sent.into_iter().flatten() {
            match outcome {
                Outcome::Done(result) => results[i] = Some(result),
                Outcome::Again(error) => again.push((i, error)),
            }
        }
        if again.is_empty() {
            break;
        }
        // Wait as long as the most demanding answer asked (or a backoff).
        let wait = again
            .iter()
            .filter_map(|(_, error)| policy.delay_after(round, error))
            .max();
        match wait {
            Some(wait) if http.auth().failure().is_none() => {
                tracing::warn!(
                    requests = again.len(),
                    wait_ms = wait.as_millis() as u64,
                    "{what}: inner requests were throttled or failed; sending them again"
                );
                tokio::time::sleep(wait).await;
                round += 1;
                pending = again.into_iter().map(|(i, _)| i).collect();
            }
            _ => {
                for (i, error) in again {
                    results[i] = Some(Err(error));
                }
                break;
            }
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(ConnectorError::retryable(
                    "the request was not sent (internal bookkeeping error)",
                ))
            })
        })
        .collect()
}

/// What became of one inner request in one round.
enum Outcome {
    Done(Result<Answer, ConnectorError>),
    /// Throttled or a server error: send it again in a later round.
    Again(ConnectorError),
}

/// Sends the items at `chunk` (at most [`MAX_BATCH`]) as one batch.
async fn send_chunk(
    http: &Http,
    endpoint: &Url,
    items: &[Item],
    chunk: &[usize],
    what: &str,
) -> Vec<(usize, Outcome)> {
    let fail_all = |error: ConnectorError| {
        chunk
            .iter()
            .map(|&i| (i, Outcome::Done(Err(error.clone()))))
            .collect::<Vec<_>>()
    };
    if let Some(error) = http.auth().failure() {
        return fail_all(error);
    }
    let requests: Vec<Numbered<'_>> = chunk
        .iter()
        .map(|&i| Numbered {
            id: i.to_string(),
            method: items[i].method,
            url: &items[i].url,
            headers: items[i].headers.as_ref(),
            body: items[i].body.as_deref(),
        })
        .collect();
    let label = format!("{what}: $batch of {}", requests.len());
    let request = match Request::json(
        Resource::Graph,
        Method::POST,
        endpoint.clone(),
        &BatchBody { requests },
    ) {
        Ok(request) => request,
        Err(error) => return fail_all(error),
    };
    let answer = match http.execute(&label, &request).await {
        Ok(reply) => reply.json::<BatchAnswer>(&label),
        Err(error) => Err(error),
    };
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => return fail_all(error),
    };
    let mut by_id: BTreeMap<String, Answer> = answer
        .responses
        .into_iter()
        .map(|a| (a.id.clone(), a))
        .collect();
    chunk
        .iter()
        .map(|&i| {
            let outcome = match by_id.remove(&i.to_string()) {
                None => Outcome::Again(ConnectorError::retryable(format!(
                    "{label}: request {i} got no answer"
                ))),
                Some(inner) if inner.status == 429 || inner.status >= 500 => Outcome::Again(
                    inner.error(&format!("{what} ({} {})", items[i].method, items[i].url)),
                ),
                Some(inner) => Outcome::Done(Ok(inner)),
            };
            (i, outcome)
        })
        .collect()
}
