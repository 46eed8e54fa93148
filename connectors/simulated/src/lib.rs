//! The `simulated` system: an in-memory directory seeded from a JSON file.
//!
//! The demo and the engine tests use it in place of a real LDAP server or
//! cloud tenant. It behaves like a well-mannered connector: it lists its
//! recipients and the stubs coexist wrote, and it carries out operations
//! idempotently.
//!
//! A seed file is a JSON object `{"recipients": [Recipient, …], "stubs":
//! [FoundStub, …]}`. When a **state file** is configured, every applied
//! operation is appended to it as one JSON line before the call returns, and
//! replayed on the next start, so the system outlives the process (the engine's
//! crash tests kill coexist half-way through an apply and start it again).
//! Faults can be injected for tests: a pull that stops part-way, a pull that
//! returns nothing, an operation that fails.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use coexist_connector::{
    Applied, Capacity, Connector, ConnectorError, FoundStub, NewAccount, Operation, Progress,
    Provisioned, Pull, PullMode, Recipient, RecipientKind,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub mod kind;
pub use kind::{SimulatedKind, KIND};

/// The configuration of a simulated system.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedConfig {
    /// The JSON seed file (recipients and stubs at start).
    pub seed: Option<PathBuf>,
    /// The journal of applied operations; without one the system lives in
    /// memory only.
    pub state: Option<PathBuf>,
    /// Test fault: the pull stops after this many recipients and reports
    /// itself incomplete.
    #[serde(default)]
    pub fail_pull_after: Option<usize>,
    /// Test fault: the pull returns nothing at all (a source that "suddenly
    /// returns nothing").
    #[serde(default)]
    pub pull_returns_nothing: bool,
    /// Test fault: the pull is an incremental read that removes every
    /// recipient (a delta gone wrong, e.g. after lost read rights).
    #[serde(default)]
    pub pull_removes_everything: bool,
    /// Test fault: operations on these addresses fail permanently.
    #[serde(default)]
    pub reject_addresses: Vec<String>,
    /// Test aid: each operation takes this long (so a test can kill coexist
    /// in the middle of an apply).
    #[serde(default)]
    pub apply_delay_ms: u64,
    /// Test aid: the system holds at most this many stubs (as Google holds
    /// at most 200,000 shared contacts); a create past it is refused.
    #[serde(default)]
    pub max_stubs: Option<u64>,
}

/// The content of a seed file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Seed {
    #[serde(default)]
    pub recipients: Vec<Recipient>,
    #[serde(default)]
    pub stubs: Vec<FoundStub>,
}

/// A simulated system could not be set up.
#[derive(Debug, Error)]
pub enum SimulatedError {
    #[error("cannot read the seed file {path}: {reason}")]
    Seed { path: String, reason: String },
    #[error("cannot read the state file {path}: {reason}")]
    State { path: String, reason: String },
}

/// One line of the state journal.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Event {
    Upsert {
        stub: Box<FoundStub>,
    },
    Remove {
        id: String,
    },
    /// An account `coexist provision` created.
    Account {
        recipient: Box<Recipient>,
    },
    /// An account `coexist deprovision` suspended.
    Suspend {
        anchor: String,
    },
    /// An account `coexist move` made forward its mail (no copy kept).
    Forward {
        anchor: String,
        to: String,
    },
    /// An account `coexist move --finish` retired: suspended, its forward
    /// and `addresses` taken off.
    Retire {
        anchor: String,
        addresses: Vec<String>,
    },
}

#[derive(Debug, Default)]
struct Directory {
    recipients: Vec<Recipient>,
    /// Stubs by object id.
    stubs: BTreeMap<String, FoundStub>,
    /// Object id of the stub carrying each anchor.
    by_anchor: BTreeMap<String, String>,
    next_id: u64,
}

impl Directory {
    /// Notes an object id this system gave out, so a new one never reuses it.
    fn saw_id(&mut self, id: &str) {
        if let Some(n) = id.rsplit('-').next().and_then(|n| n.parse::<u64>().ok()) {
            self.next_id = self.next_id.max(n + 1);
        }
    }

    fn upsert(&mut self, stub: FoundStub) {
        self.saw_id(&stub.id);
        if let Some(old) = self.stubs.get(&stub.id) {
            if old.stub.anchor != stub.stub.anchor {
                self.by_anchor.remove(&old.stub.anchor);
            }
        }
        self.by_anchor
            .insert(stub.stub.anchor.clone(), stub.id.clone());
        self.stubs.insert(stub.id.clone(), stub);
    }

    fn remove(&mut self, id: &str) {
        self.saw_id(id);
        if let Some(old) = self.stubs.remove(id) {
            if self.by_anchor.get(&old.stub.anchor).map(String::as_str) == Some(id) {
                self.by_anchor.remove(&old.stub.anchor);
            }
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Upsert { stub } => self.upsert(*stub),
            Event::Remove { id } => self.remove(&id),
            Event::Account { recipient } => {
                self.recipients.retain(|r| r.anchor != recipient.anchor);
                self.recipients.push(*recipient);
            }
            Event::Suspend { anchor } => {
                for recipient in self.recipients.iter_mut().filter(|r| r.anchor == anchor) {
                    recipient.enabled = false;
                }
            }
            Event::Forward { anchor, to } => {
                for recipient in self.recipients.iter_mut().filter(|r| r.anchor == anchor) {
                    recipient.mailbox = false;
                    recipient.forwards_to = Some(to.clone());
                }
            }
            Event::Retire { anchor, addresses } => {
                let taken = |a: &String| addresses.iter().any(|t| t.eq_ignore_ascii_case(a));
                for recipient in self.recipients.iter_mut().filter(|r| r.anchor == anchor) {
                    recipient.enabled = false;
                    recipient.mailbox = true;
                    recipient.forwards_to = None;
                    recipient.aliases.retain(|a| !taken(a));
                    if taken(&recipient.primary_address) {
                        // The account keeps a name outside every domain of
                        // the organisation: it carries no address any more.
                        let local = recipient
                            .primary_address
                            .split_once('@')
                            .map_or(recipient.primary_address.clone(), |(l, _)| l.to_string());
                        recipient.primary_address = format!("{local}@retired.invalid");
                    }
                }
            }
        }
    }
}

/// A simulated system.
#[derive(Debug)]
pub struct SimulatedConnector {
    system: String,
    config: SimulatedConfig,
    directory: Mutex<Directory>,
}

impl SimulatedConnector {
    /// Loads the seed file and replays the state journal.
    pub fn new(system: &str, config: SimulatedConfig) -> Result<Self, SimulatedError> {
        let seed = match &config.seed {
            Some(path) => read_seed(path)?,
            None => Seed::default(),
        };
        Self::from_seed(system, config, seed)
    }

    /// A system holding `seed`, replaying the configured state journal.
    pub fn from_seed(
        system: &str,
        config: SimulatedConfig,
        seed: Seed,
    ) -> Result<Self, SimulatedError> {
        let mut directory = Directory {
            recipients: seed.recipients,
            ..Directory::default()
        };
        for stub in seed.stubs {
            directory.upsert(stub);
        }
        if let Some(path) = &config.state {
            replay(path, &mut directory)?;
        }
        // Ids are never reused, deleted ones included: after a delete, the
        // count of stubs + 1 would name a stub still held.
        directory.next_id = directory.next_id.max(1);
        Ok(SimulatedConnector {
            system: system.to_string(),
            config,
            directory: Mutex::new(directory),
        })
    }

    /// The stubs the system holds now.
    pub fn stubs(&self) -> Vec<FoundStub> {
        self.lock()
            .map(|d| d.stubs.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Replaces the system's recipients (tests: a source changes).
    pub fn set_recipients(&self, recipients: Vec<Recipient>) {
        if let Ok(mut d) = self.lock() {
            d.recipients = recipients;
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Directory>, ConnectorError> {
        self.directory
            .lock()
            .map_err(|_| ConnectorError::permanent("the simulated directory is poisoned"))
    }

    fn record(&self, event: &Event) -> Result<(), ConnectorError> {
        let Some(path) = &self.config.state else {
            return Ok(());
        };
        let line = serde_json::to_string(event)
            .map_err(|e| ConnectorError::permanent(format!("cannot encode a state event: {e}")))?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                ConnectorError::retryable(format!("cannot write {}: {e}", path.display()))
            })?;
        // One write of the whole line: a kill -9 cannot leave the JSON
        // without its newline (two writes could), and the leading newline
        // ends any line an earlier crash did cut short, so this event never
        // joins it (replay skips the blank lines).
        file.write_all(format!("\n{line}\n").as_bytes())
            .map_err(|e| ConnectorError::retryable(format!("cannot write {}: {e}", path.display())))
    }

    /// The faults configured for a change (`doing`: `create`, `change`) of
    /// the account `address`: waits `apply_delay_ms`, then refuses an
    /// address of `reject_addresses`, as operations on it are refused.
    async fn account_fault(&self, address: &str, doing: &str) -> Result<(), ConnectorError> {
        if self.config.apply_delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(self.config.apply_delay_ms)).await;
        }
        if self
            .config
            .reject_addresses
            .iter()
            .any(|a| a.eq_ignore_ascii_case(address))
        {
            return Err(ConnectorError::permanent(format!(
                "{} refused to {doing} {address} (simulated fault)",
                self.system
            )));
        }
        Ok(())
    }

    /// A change of an account (`move`): delayed and refused as configured,
    /// journalled, then made.
    async fn account_change(
        &self,
        recipient: &Recipient,
        event: Event,
    ) -> Result<(), ConnectorError> {
        self.account_fault(&recipient.primary_address, "change")
            .await?;
        let mut directory = self.lock()?;
        if !directory
            .recipients
            .iter()
            .any(|r| r.anchor == recipient.anchor)
        {
            return Err(ConnectorError::permanent(format!(
                "{} holds no account {}",
                self.system, recipient.anchor
            )));
        }
        self.record(&event)?;
        directory.apply(event);
        Ok(())
    }

    fn rejected(&self, operation: &Operation) -> bool {
        let stub = operation.stub();
        self.config
            .reject_addresses
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&stub.primary_address))
    }
}

fn read_seed(path: &Path) -> Result<Seed, SimulatedError> {
    let text = std::fs::read_to_string(path).map_err(|e| SimulatedError::Seed {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| SimulatedError::Seed {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn replay(path: &Path, directory: &mut Directory) -> Result<(), SimulatedError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(SimulatedError::State {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
        }
    };
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| SimulatedError::State {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(&line) {
            Ok(event) => directory.apply(event),
            // A line cut short by a crash is the last one: what it
            // described never completed, so it is ignored.
            Err(e) => {
                tracing::warn!(line = n + 1, error = %e, "ignoring an unreadable state line in {}", path.display())
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Connector for SimulatedConnector {
    fn system(&self) -> &str {
        &self.system
    }

    async fn pull(
        &self,
        _cursor: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<Pull, ConnectorError> {
        // A read is one request to the simulated system.
        coexist_connector::requests::request_sent(false);
        let directory = self.lock()?;
        if self.config.pull_returns_nothing {
            return Ok(Pull::full(Vec::new(), Vec::new()));
        }
        if self.config.pull_removes_everything {
            let mut pull = Pull::full(Vec::new(), Vec::new());
            pull.mode = PullMode::Delta;
            pull.removed = directory
                .recipients
                .iter()
                .map(|r| r.anchor.clone())
                .collect();
            pull.cursor = Some("simulated".into());
            return Ok(pull);
        }
        let mut recipients = directory.recipients.clone();
        let mut complete = true;
        if let Some(limit) = self.config.fail_pull_after {
            if recipients.len() > limit {
                recipients.truncate(limit);
                complete = false;
            }
        }
        progress.advance(recipients.len() as u64);
        let mut pull = Pull::full(recipients, directory.stubs.values().cloned().collect());
        pull.mode = PullMode::Full;
        pull.complete = complete;
        if !complete {
            pull.problems.push(coexist_connector::Problem {
                object: self.system.clone(),
                message: "the listing failed part-way (simulated fault)".into(),
            });
        }
        Ok(pull)
    }

    /// Adds a person with a mailbox (anchor `account:<primary address>`),
    /// journalled in the state file like a stub. An address in
    /// `reject_addresses` is refused, as operations on it are.
    async fn provision(&self, account: &NewAccount) -> Result<Provisioned, ConnectorError> {
        self.account_fault(&account.primary_address, "create")
            .await?;
        let mut directory = self.lock()?;
        if let Some(existing) = directory.recipients.iter().find(|r| {
            r.mailbox
                && r.primary_address
                    .eq_ignore_ascii_case(&account.primary_address)
        }) {
            return Ok(Provisioned {
                locator: format!("sim://{}/{}", self.system, existing.anchor),
                recipient: existing.clone(),
                existed: true,
                notes: Vec::new(),
            });
        }
        let anchor = format!("account:{}", account.primary_address);
        let mut attributes = account.attributes.clone();
        attributes.display_name = Some(account.display_name());
        let recipient = Recipient {
            anchor: anchor.clone(),
            kind: RecipientKind::Person,
            primary_address: account.primary_address.clone(),
            aliases: account.aliases.clone(),
            mailbox: true,
            enabled: true,
            attributes,
            members: Vec::new(),
            forwards_to: None,
            extra: account.extra.clone(),
            locator: Some(format!("sim://{}/{anchor}", self.system)),
            etag: None,
        };
        let event = Event::Account {
            recipient: Box::new(recipient.clone()),
        };
        self.record(&event)?;
        directory.apply(event);
        Ok(Provisioned {
            locator: format!("sim://{}/{anchor}", self.system),
            recipient,
            existed: false,
            notes: Vec::new(),
        })
    }

    /// Marks the recipient disabled, journalled in the state file.
    async fn suspend(&self, recipient: &Recipient) -> Result<(), ConnectorError> {
        let mut directory = self.lock()?;
        if !directory
            .recipients
            .iter()
            .any(|r| r.anchor == recipient.anchor)
        {
            return Err(ConnectorError::permanent(format!(
                "{} holds no account {} to suspend",
                self.system, recipient.anchor
            )));
        }
        let event = Event::Suspend {
            anchor: recipient.anchor.clone(),
        };
        self.record(&event)?;
        directory.apply(event);
        Ok(())
    }

    /// Turns the account into a forwarding entry, journalled.
    async fn forward(&self, recipient: &Recipient, to: &str) -> Result<(), ConnectorError> {
        self.account_change(
            recipient,
            Event::Forward {
                anchor: recipient.anchor.clone(),
                to: to.to_string(),
            },
        )
        .await
    }

    /// Suspends the account and takes its forward and `addresses` off,
    /// journalled.
    async fn retire(
        &self,
        recipient: &Recipient,
        addresses: &[String],
        _forward: &str,
    ) -> Result<(), ConnectorError> {
        self.account_change(
            recipient,
            Event::Retire {
                anchor: recipient.anchor.clone(),
                addresses: addresses.to_vec(),
            },
        )
        .await
    }

    fn capacity(&self) -> Option<Capacity> {
        self.config.max_stubs.map(|stubs| Capacity {
            stubs,
            source: format!(
                "{} holds at most {stubs} stubs (simulated limit)",
                self.system
            ),
        })
    }

    async fn apply(&self, operation: &Operation) -> Result<Applied, ConnectorError> {
        // Each operation is one request to the simulated system.
        coexist_connector::requests::request_sent(false);
        if self.config.apply_delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(self.config.apply_delay_ms)).await;
        }
        if self.rejected(operation) {
            return Err(ConnectorError::permanent(format!(
                "{} refused {} (simulated fault)",
                self.system,
                operation.stub().primary_address
            )));
        }
        let mut directory = self.lock()?;
        match operation {
            Operation::Create { stub } => {
                // Idempotent: a stub with this anchor already there is updated.
                let id = match directory.by_anchor.get(&stub.anchor) {
                    Some(id) => id.clone(),
                    None if self
                        .config
                        .max_stubs
                        .is_some_and(|max| directory.stubs.len() as u64 >= max) =>
                    {
                        return Err(ConnectorError::permanent(format!(
                            "{} is full: it holds its maximum of stubs (simulated limit)",
                            self.system
                        )));
                    }
                    None => {
                        let id = format!("{}-{}", self.system, directory.next_id);
                        directory.next_id += 1;
                        id
                    }
                };
                let found = FoundStub {
                    locator: format!("sim://{}/{id}", self.system),
                    misplaced: false,
                    id,
                    stub: stub.clone(),
                };
                self.record(&Event::Upsert {
                    stub: Box::new(found.clone()),
                })?;
                directory.upsert(found.clone());
                Ok(Applied { found: Some(found) })
            }
            Operation::Update { id, after, .. } => {
                let found = FoundStub {
                    locator: format!("sim://{}/{id}", self.system),
                    misplaced: false,
                    id: id.clone(),
                    stub: (**after).clone(),
                };
                self.record(&Event::Upsert {
                    stub: Box::new(found.clone()),
                })?;
                directory.upsert(found.clone());
                Ok(Applied { found: Some(found) })
            }
            Operation::Delete { id, .. } => {
                if directory.stubs.contains_key(id) {
                    self.record(&Event::Remove { id: id.clone() })?;
                    directory.remove(id);
                }
                Ok(Applied { found: None })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coexist_connector::{NoProgress, Route, Stub};

    fn stub(anchor: &str, address: &str) -> Stub {
        Stub {
            anchor: anchor.into(),
            kind: RecipientKind::Person,
            primary_address: address.into(),
            aliases: vec![],
            route: Route::Address(address.replace("acmecorp.com", "gapps.acmecorp.com")),
            attributes: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_forward_and_a_retirement_are_journalled_and_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let config = SimulatedConfig {
            state: Some(dir.path().join("state.jsonl")),
            ..SimulatedConfig::default()
        };
        let mut ann = Recipient::mailbox("m1", RecipientKind::Person, "ann@acmecorp.com");
        ann.aliases = vec!["a@acmecorp.com".into(), "ann@old.example".into()];
        let seed = Seed {
            recipients: vec![ann.clone()],
            stubs: vec![],
        };
        let system = SimulatedConnector::from_seed("ldap", config.clone(), seed.clone()).unwrap();
        system
            .forward(&ann, "ann@gapps.acmecorp.com")
            .await
            .unwrap();
        let read = |system: &SimulatedConnector| {
            let directory = system.lock().unwrap();
            directory.recipients[0].clone()
        };
        let forwarding =
            read(&SimulatedConnector::from_seed("ldap", config.clone(), seed.clone()).unwrap());
        assert!(!forwarding.mailbox);
        assert_eq!(
            forwarding.forwards_to.as_deref(),
            Some("ann@gapps.acmecorp.com")
        );

        let addresses = ["ann@acmecorp.com".to_string(), "a@acmecorp.com".to_string()];
        system
            .retire(&ann, &addresses, "ann@gapps.acmecorp.com")
            .await
            .unwrap();
        let retired = read(&SimulatedConnector::from_seed("ldap", config, seed).unwrap());
        assert!(!retired.enabled);
        assert!(retired.forwards_to.is_none());
        assert_eq!(retired.primary_address, "ann@retired.invalid");
        assert_eq!(retired.aliases, ["ann@old.example"], "other addresses stay");
        assert_eq!(retired.anchor, "m1", "the account stays");
    }

    #[tokio::test]
    async fn creating_twice_keeps_one_stub() {
        let system =
            SimulatedConnector::from_seed("ldap", SimulatedConfig::default(), Seed::default())
                .unwrap();
        let op = Operation::Create {
            stub: stub("google:1", "ann@acmecorp.com"),
        };
        system.apply(&op).await.unwrap();
        system.apply(&op).await.unwrap();
        assert_eq!(system.stubs().len(), 1);
    }

    #[tokio::test]
    async fn deleting_a_missing_stub_succeeds() {
        let system =
            SimulatedConnector::from_seed("ldap", SimulatedConfig::default(), Seed::default())
                .unwrap();
        let op = Operation::Delete {
            id: "nope".into(),
            locator: "sim://ldap/nope".into(),
            stub: stub("google:1", "ann@acmecorp.com"),
        };
        assert!(system.apply(&op).await.is_ok());
    }

    #[tokio::test]
    async fn the_state_file_outlives_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let config = SimulatedConfig {
            state: Some(dir.path().join("state.jsonl")),
            ..Default::default()
        };
        let first = SimulatedConnector::from_seed("ldap", config.clone(), Seed::default()).unwrap();
        first
            .apply(&Operation::Create {
                stub: stub("google:1", "ann@acmecorp.com"),
            })
            .await
            .unwrap();
        first
            .apply(&Operation::Create {
                stub: stub("google:2", "bob@acmecorp.com"),
            })
            .await
            .unwrap();
        let gone = first
            .stubs()
            .into_iter()
            .find(|s| s.stub.anchor == "google:1")
            .unwrap();
        first
            .apply(&Operation::Delete {
                id: gone.id.clone(),
                locator: gone.locator.clone(),
                stub: gone.stub.clone(),
            })
            .await
            .unwrap();
        drop(first);
        // A crash can cut the last line short; it is ignored.
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join("state.jsonl"))
            .unwrap();
        write!(file, "{{\"event\":\"ups").unwrap();

        let second =
            SimulatedConnector::from_seed("ldap", config.clone(), Seed::default()).unwrap();
        let pull = second.pull(None, &NoProgress).await.unwrap();
        let anchors: Vec<_> = pull.stubs.iter().map(|s| s.stub.anchor.as_str()).collect();
        assert_eq!(anchors, ["google:2"]);

        // What is written after the cut line is not lost by joining it.
        second
            .apply(&Operation::Create {
                stub: stub("google:3", "cy@acmecorp.com"),
            })
            .await
            .unwrap();
        drop(second);
        let third = SimulatedConnector::from_seed("ldap", config, Seed::default()).unwrap();
        let pull = third.pull(None, &NoProgress).await.unwrap();
        let mut anchors: Vec<_> = pull.stubs.iter().map(|s| s.stub.anchor.as_str()).collect();
        anchors.sort_unstable();
        assert_eq!(anchors, ["google:2", "google:3"]);
    }

    #[tokio::test]
    async fn an_injected_partial_pull_is_marked_incomplete() {
        let recipients = (0..5)
            .map(|i| Recipient {
                anchor: format!("u{i}"),
                kind: RecipientKind::Person,
                primary_address: format!("u{i}@acmecorp.com"),
                aliases: vec![],
                mailbox: true,
                enabled: true,
                attributes: Default::default(),
                members: vec![],
                forwards_to: None,
                extra: Default::default(),
                locator: None,
                etag: None,
            })
            .collect();
        let config = SimulatedConfig {
            fail_pull_after: Some(2),
            ..Default::default()
        };
        let system = SimulatedConnector::from_seed(
            "ldap",
            config,
            Seed {
                recipients,
                stubs: vec![],
            },
        )
        .unwrap();
        let pull = system.pull(None, &NoProgress).await.unwrap();
        assert!(!pull.complete);
        assert_eq!(pull.recipients.len(), 2);
    }

    #[tokio::test]
    async fn a_provisioned_account_is_read_back_and_outlives_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let config = SimulatedConfig {
            state: Some(dir.path().join("state.jsonl")),
            ..Default::default()
        };
        let account = NewAccount {
            primary_address: "ann@acmecorp.com".into(),
            aliases: vec!["a.smith@acmecorp.com".into()],
            attributes: coexist_connector::Attributes {
                given_name: Some("Ann".into()),
                surname: Some("Smith".into()),
                ..Default::default()
            },
            extra: Default::default(),
            password: None,
        };
        let first = SimulatedConnector::from_seed("ldap", config.clone(), Seed::default()).unwrap();
        let made = first.provision(&account).await.unwrap();
        assert!(!made.existed);
        assert_eq!(
            made.recipient.attributes.display_name.as_deref(),
            Some("Ann Smith")
        );
        assert!(
            first.provision(&account).await.unwrap().existed,
            "twice is once"
        );
        drop(first);

        let second = SimulatedConnector::from_seed("ldap", config, Seed::default()).unwrap();
        let pull = second.pull(None, &NoProgress).await.unwrap();
        assert_eq!(pull.recipients.len(), 1);
        assert!(pull.recipients[0].mailbox);
        assert_eq!(pull.recipients[0].aliases, ["a.smith@acmecorp.com"]);
    }
}
