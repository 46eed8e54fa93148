//! `coexist provision`: checks a person's addresses are free everywhere,
//! creates the account at its home through the home's connector, records
//! the placement, and writes the person's stubs on every other system
//! through a plan restricted to the people provisioned.
//!
//! Order, so that a failure half-way leaves mail delivered and a rerun of
//! the same command completes the work: (1) every system is read and every
//! address checked before anything changes; (2) per person, the placement
//! is recorded (audited), then the account created (audited); the
//! placement is what tells a rerun that the account at its home is this
//! command's own, so it is not refused as taken but carried on with; (3)
//! every system is read again and one plan, restricted to the people's
//! addresses, is applied under its journal, gates and audit. Until (3)
//! completes, mail from the other systems reaches the home by the
//! catch-all relays or not at all, exactly as before the command ran.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use coexist_connector::{initial_password, NewAccount, Recipient, RecipientKind};

use super::{addresses_of, routes, ProvisionError, RouteResult};
use crate::engine::{
    restrict, ApplyReport, Engine, ProgressSink, PullReport, RunOptions, SourceHealth,
};
use crate::plan::{Action, Plan};
use crate::reconcile::{self, Staged};
use crate::store::{AuditRecord, RunStatus};

/// One person to provision: where, and the account to create.
#[derive(Debug, Clone)]
pub struct Person {
    /// The CSV line the person comes from, for messages.
    pub line: Option<usize>,
    /// The home system's id.
    pub home: String,
    pub account: NewAccount,
}

impl Person {
    /// The person's addresses, normalised: primary first.
    fn addresses(&self) -> Vec<String> {
        std::iter::once(&self.account.primary_address)
            .chain(self.account.aliases.iter())
            .cloned()
            .collect()
    }

    /// Names the person in a message (`line 4: ann@acmecorp.com`).
    fn named(&self) -> String {
        match self.line {
            Some(line) => format!("line {line}: {}", self.account.primary_address),
            None => self.account.primary_address.clone(),
        }
    }
}

/// How to provision.
#[derive(Clone)]
pub struct ProvisionOptions {
    /// The run's options (its actor; deletes stay under their threshold).
    pub run: RunOptions,
    /// Check and plan only: print the exact steps, change nothing.
    pub dry_run: bool,
    /// Append each initial password (`address,password`) to this file,
    /// created with mode 0600; without one, the passwords are in the
    /// report, shown once.
    pub password_file: Option<PathBuf>,
    /// Progress of the accounts created.
    pub progress: Arc<dyn ProgressSink>,
}

/// What became of one person.
#[derive(Debug, Serialize)]
pub struct Provisioned {
    pub address: String,
    pub home: String,
    /// `created`; `existed` (a rerun: the account was made by an earlier
    /// run of this command); `failed` (see `error`); with `--dry-run`
    /// `would_create` or `would_continue`.
    pub state: &'static str,
    /// Where the account is (a DN, a user id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locator: Option<String>,
    /// The initial password, shown this once (absent when written to the
    /// password file, or when the account existed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Where mail to the address goes now, from every system and from
    /// the internet.
    pub routes: Vec<RouteResult>,
}

/// What `provision` did.
#[derive(Debug, Serialize)]
pub struct ProvisionReport {
    pub dry_run: bool,
    /// The run in the history (absent for a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<i64>,
    pub people: Vec<Provisioned>,
    /// The plan of the people's stubs (with `--dry-run`: as it would be).
    pub plan: Plan,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply: Option<ApplyReport>,
    /// The password file written, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    #[serde(skip)]
    pub pulls: Vec<PullReport>,
}

impl ProvisionReport {
    /// The exit code (README): 4 when an account or an operation failed,
    /// or mail to a person does not reach the home from somewhere; 3 when
    /// a gate withheld some stubs; 8 when mail loops; else 0.
    pub fn exit_code(&self) -> i32 {
        let undelivered = self
            .people
            .iter()
            .filter(|p| p.state == "created" || p.state == "existed")
            .any(|p| p.routes.iter().any(|r| !r.delivered()));
        if self.plan.has_routing_loop() {
            crate::exit::ROUTING_LOOP
        } else if self.people.iter().any(|p| p.state == "failed") || undelivered {
            crate::exit::PARTIAL
        } else if let Some(apply) = &self.apply {
            apply.exit_code()
        } else {
            crate::exit::OK
        }
    }
}

/// Where a person stands before anything is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Nothing anywhere holds the addresses.
    Free,
    /// Placed on the home by an earlier run, no account yet.
    Placed,
    /// Placed on the home, and the home holds the account.
    Created,
}

/// Provisions `people` (the caller holds the run lock).
pub async fn provision(
    engine: &Engine,
    people: Vec<Person>,
    options: &ProvisionOptions,
) -> Result<ProvisionReport, ProvisionError> {
    validate(engine, &people)?;
    if options.dry_run {
        return dry_run(engine, people, options).await;
    }
    let run = engine.store.start_run("provision").await?;
    let result = provision_in(engine, people, options, run).await;
    let (status, summary) = match &result {
        Ok(report) => (
            RunStatus::of_exit_code(report.exit_code()),
            serde_json::json!({
                "plan": report.plan.id,
                "summary": report.plan.summary,
                "people": report.people.len(),
                "created": report.people.iter().filter(|p| p.state == "created").count(),
                "failed": report.people.iter().filter(|p| p.state == "failed").count(),
            }),
        ),
        Err(ProvisionError::Taken(_) | ProvisionError::Unreadable(_)) => (
            RunStatus::Refused,
            serde_json::json!({ "error": result.as_ref().err().map(ToString::to_string) }),
        ),
        Err(error) => (
            RunStatus::Failed,
            serde_json::json!({ "error": error.to_string() }),
        ),
    };
    engine.store.finish_run(run, status, &summary).await?;
    result
}

async fn provision_in(
    engine: &Engine,
    people: Vec<Person>,
    options: &ProvisionOptions,
    run: i64,
) -> Result<ProvisionReport, ProvisionError> {
    let (staged, pulls) = read_and_settle(engine, &options.run, Some(run)).await?;
    let standings = check(engine, &staged, &people)?;
    let mut passwords = match &options.password_file {
        Some(path) => Some(PasswordFile::open(path)?),
        None => None,
    };

    let progress = options
        .progress
        .start("accounts", Some(people.len() as u64));
    let placements = engine.store.placements().await?;
    let mut done: Vec<Provisioned> = Vec::with_capacity(people.len());
    for (person, standing) in people.iter().zip(standings) {
        let mut outcome = Provisioned {
            address: person.account.primary_address.clone(),
            home: person.home.clone(),
            state: "existed",
            locator: None,
            initial_password: None,
            error: None,
            notes: Vec::new(),
            routes: Vec::new(),
        };
        if standing != Standing::Created {
            if placements.get(&person.account.primary_address) != Some(&person.home) {
                record_placement(engine, person, Some(run), &options.run.actor, true).await?;
            }
            match create(engine, person, run, &options.run.actor).await? {
                Ok((made, password)) => {
                    outcome.state = if made.existed { "existed" } else { "created" };
                    outcome.locator = Some(made.locator);
                    outcome.notes = made.notes;
                    if !made.existed {
                        match &mut passwords {
                            Some(file) => file.append(&outcome.address, &password)?,
                            None => outcome.initial_password = Some(password),
                        }
                    }
                }
                Err(error) => {
                    // Nothing was made: the placement goes, so the address
                    // is as it was before this command.
                    record_placement(engine, person, Some(run), &options.run.actor, false).await?;
                    outcome.state = "failed";
                    outcome.error = Some(error);
                }
            }
        }
        done.push(outcome);
        progress.advance(1);
    }
    drop(progress);

    // The new accounts are read, then one plan writes every stub they need.
    let mut pulls_after = engine.pull_with(&options.run).await?;
    let health = engine.health(&pulls_after);
    let staged = engine.staged().await?;
    let provisioned: BTreeSet<String> = people
        .iter()
        .zip(&done)
        .filter(|(_, outcome)| outcome.state != "failed")
        .flat_map(|(person, _)| person.addresses())
        .collect();
    let only = addresses_of(&staged, &provisioned);
    let (plan, _) = engine.plan_for(&health, &options.run, Some(&only)).await?;
    let apply = engine.apply(&plan, Some(run), &options.run).await?;
    let staged = engine.staged().await?;
    for outcome in done.iter_mut().filter(|o| o.state != "failed") {
        outcome.routes = routes(engine, &staged, &outcome.address);
    }
    let mut all_pulls = pulls;
    all_pulls.append(&mut pulls_after);
    Ok(ProvisionReport {
        dry_run: false,
        run: Some(run),
        people: done,
        plan,
        apply: Some(apply),
        password_file: options
            .password_file
            .as_ref()
            .map(|p| p.display().to_string()),
        pulls: all_pulls,
    })
}

/// `--dry-run`: reads and checks as the real run does, then plans the
/// stubs as if the accounts were made (anchors to be given by the home
/// shown as `account:ADDRESS`). Nothing is created or applied.
async fn dry_run(
    engine: &Engine,
    people: Vec<Person>,
    options: &ProvisionOptions,
) -> Result<ProvisionReport, ProvisionError> {
    let (mut staged, pulls) = read_and_settle(engine, &options.run, None).await?;
    let standings = check(engine, &staged, &people)?;
    let mut only = BTreeSet::new();
    let mut outcomes = Vec::new();
    for (person, standing) in people.iter().zip(standings) {
        only.extend(person.addresses());
        staged
            .placements
            .insert(person.account.primary_address.clone(), person.home.clone());
        if standing != Standing::Created {
            if let Some(system) = staged.systems.iter_mut().find(|s| s.id == person.home) {
                system.recipients.push(as_recipient(&person.account));
            }
        }
        outcomes.push(Provisioned {
            address: person.account.primary_address.clone(),
            home: person.home.clone(),
            state: if standing == Standing::Created {
                "would_continue"
            } else {
                "would_create"
            },
            locator: None,
            initial_password: None,
            error: None,
            notes: Vec::new(),
            routes: Vec::new(),
        });
    }
    let only = addresses_of(&staged, &only);
    let mut reconciliation = reconcile::reconcile(&staged, &engine.config.policy);
    restrict(&mut reconciliation, &only);
    let fingerprint = engine.fingerprint().await?;
    let plan = Plan::new(&reconciliation, &fingerprint, crate::store::now()).map_err(|source| {
        crate::engine::EngineError::Encode {
            what: "an operation of the plan",
            source,
        }
    })?;
    Ok(ProvisionReport {
        dry_run: true,
        run: None,
        people: outcomes,
        plan,
        apply: None,
        password_file: None,
        pulls,
    })
}

/// The recipient the home is expected to list once `account` is made.
fn as_recipient(account: &NewAccount) -> Recipient {
    let mut attributes = account.attributes.clone();
    attributes.display_name = Some(account.display_name());
    Recipient {
        anchor: format!("account:{}", account.primary_address),
        kind: RecipientKind::Person,
        primary_address: account.primary_address.clone(),
        aliases: account.aliases.clone(),
        mailbox: true,
        enabled: true,
        attributes,
        members: Vec::new(),
        forwards_to: None,
        extra: BTreeMap::new(),
        locator: None,
        etag: None,
    }
}

/// The homes are configured and no address is asked for twice.
fn validate(engine: &Engine, people: &[Person]) -> Result<(), ProvisionError> {
    if people.is_empty() {
        return Err(ProvisionError::Usage("no one to provision".into()));
    }
    let mut seen: BTreeMap<&str, String> = BTreeMap::new();
    for person in people {
        if engine.config.policy.system(&person.home).is_none() {
            return Err(ProvisionError::Usage(format!(
                "{}: --home {}: not a configured system (expected one of {})",
                person.named(),
                person.home,
                engine.config.system_ids().join(", ")
            )));
        }
        for address in
            std::iter::once(&person.account.primary_address).chain(person.account.aliases.iter())
        {
            if let Some(other) = seen.insert(address, person.named()) {
                return Err(ProvisionError::Usage(format!(
                    "{address} is asked for twice ({other} and {})",
                    person.named()
                )));
            }
        }
    }
    Ok(())
}

/// Reads every system (in full when an earlier run was interrupted while
/// applying, settling its journal as `sync` does); refuses when a system
/// could not be read. Returns the staged state and the reads.
pub(super) async fn read_and_settle(
    engine: &Engine,
    options: &RunOptions,
    run: Option<i64>,
) -> Result<(Staged, Vec<PullReport>), ProvisionError> {
    let resumed = engine.interrupted().await?;
    let mut options = options.clone();
    if !resumed.is_empty() {
        options.full_read = true;
    }
    let pulls = engine.pull_with(&options).await?;
    let unreadable: Vec<String> = pulls
        .iter()
        .filter_map(|p| match &p.health {
            SourceHealth::Failed(error) => {
                Some(format!("{} could not be read ({error})", p.system))
            }
            SourceHealth::Incomplete(error) => {
                Some(format!("{} was read only in part ({error})", p.system))
            }
            _ => None,
        })
        .collect();
    if !unreadable.is_empty() {
        return Err(ProvisionError::Unreadable(format!(
            "whether the addresses are free is not known: {}",
            unreadable.join("; ")
        )));
    }
    if run.is_some() {
        engine
            .settle_interrupted(&resumed, &pulls, run, &options)
            .await?;
    }
    Ok((engine.staged().await?, pulls))
}

/// Where each person stands, or every reason an address is not free.
fn check(
    engine: &Engine,
    staged: &Staged,
    people: &[Person],
) -> Result<Vec<Standing>, ProvisionError> {
    let reconciliation = reconcile::reconcile(staged, &engine.config.policy);
    let mut taken = Vec::new();
    let mut standings = Vec::with_capacity(people.len());
    for person in people {
        let addresses: BTreeSet<String> = person.addresses().into_iter().collect();
        let primary = &person.account.primary_address;
        let home = person.home.as_str();
        let placed_here = staged.placements.get(primary).map(String::as_str) == Some(home);
        let mut reasons = Vec::new();
        let mut created = false;
        for (address, system) in &staged.placements {
            if addresses.contains(address) && (system != home || address != primary) {
                reasons.push(format!("{address} is placed on {system}"));
            }
        }
        for system in &staged.systems {
            for recipient in &system.recipients {
                let held: Vec<String> = std::iter::once(&recipient.primary_address)
                    .chain(recipient.aliases.iter())
                    .filter_map(|a| coexist_connector::normalize_address(a).ok())
                    .filter(|a| addresses.contains(a))
                    .collect();
                let Some(address) = held.first() else {
                    continue;
                };
                let ours = placed_here
                    && system.id == home
                    && recipient.mailbox
                    && coexist_connector::normalize_address(&recipient.primary_address)
                        .is_ok_and(|a| &a == primary);
                if ours {
                    created = true;
                    continue;
                }
                let what = if recipient.mailbox {
                    "a mailbox"
                } else {
                    "an entry"
                };
                reasons.push(format!(
                    "{address} is {what} on {} ({})",
                    system.id,
                    recipient.locator.as_deref().unwrap_or(&recipient.anchor)
                ));
            }
            for found in &system.stubs {
                let stub = &found.stub;
                let held = std::iter::once(&stub.primary_address)
                    .chain(stub.aliases.iter())
                    .filter_map(|a| coexist_connector::normalize_address(a).ok())
                    .find(|a| addresses.contains(a));
                let Some(address) = held else {
                    continue;
                };
                // A stub an earlier run of this command wrote for the
                // person (its anchor names the home) is the person's own.
                if placed_here && stub.anchor.starts_with(&format!("{home}:")) {
                    continue;
                }
                reasons.push(format!(
                    "{address} is routed by coexist's stub on {} for a recipient homed on {}",
                    system.id,
                    stub.anchor.split(':').next().unwrap_or("another system")
                ));
            }
        }
        if !placed_here {
            for entry in &reconciliation.gal {
                if let Some(address) = entry.addresses.iter().find(|a| addresses.contains(*a)) {
                    reasons.push(format!(
                        "{address} belongs to {} in the GAL (homed on {})",
                        entry.primary_address, entry.home
                    ));
                }
            }
            for conflict in &reconciliation.conflicts {
                if conflict.addresses.iter().any(|a| addresses.contains(a)) {
                    reasons.push(conflict.message.clone());
                }
            }
        }
        reasons.dedup();
        if reasons.is_empty() {
            standings.push(match (placed_here, created) {
                (_, true) => Standing::Created,
                (true, false) => Standing::Placed,
                (false, false) => Standing::Free,
            });
        } else {
            let prefix = person
                .line
                .map(|l| format!("line {l}: "))
                .unwrap_or_default();
            taken.extend(reasons.into_iter().map(|r| format!("{prefix}{r}")));
        }
    }
    if taken.is_empty() {
        Ok(standings)
    } else {
        Err(ProvisionError::Taken(taken))
    }
}

/// Records (`place`) or removes the person's placement on its home, with
/// its audit record.
async fn record_placement(
    engine: &Engine,
    person: &Person,
    run: Option<i64>,
    actor: &str,
    place: bool,
) -> Result<(), ProvisionError> {
    let placement = serde_json::json!({ "placement": person.home });
    let audit = AuditRecord {
        at: crate::store::now(),
        run_id: run,
        actor: actor.to_string(),
        system: person.home.clone(),
        action: if place {
            Action::Create
        } else {
            Action::Delete
        },
        address: person.account.primary_address.clone(),
        before: (!place).then(|| placement.clone()),
        after: place.then_some(placement),
    };
    engine
        .store
        .write_placement(
            &person.account.primary_address,
            place.then_some(person.home.as_str()),
            &audit,
        )
        .await?;
    Ok(())
}

/// Creates the person's account at its home with a new initial password,
/// audited. The outer error stops the command (the store failed); the
/// inner one is the home's refusal, reported for this person.
async fn create(
    engine: &Engine,
    person: &Person,
    run: i64,
    actor: &str,
) -> Result<Result<(coexist_connector::Provisioned, String), String>, ProvisionError> {
    let Some(connector) = engine.connector(&person.home) else {
        return Ok(Err(format!("{} is not configured", person.home)));
    };
    let password = initial_password(20);
    let mut account = person.account.clone();
    account.password = Some(password.clone());
    let made = match connector.provision(&account).await {
        Ok(made) => made,
        Err(error) => return Ok(Err(error.to_string())),
    };
    if !made.existed {
        engine
            .store
            .audit(&AuditRecord {
                at: crate::store::now(),
                run_id: Some(run),
                actor: actor.to_string(),
                system: person.home.clone(),
                action: Action::Create,
                address: person.account.primary_address.clone(),
                before: None,
                after: Some(serde_json::json!({
                    "account": made.locator,
                    "anchor": made.recipient.anchor,
                    "aliases": person.account.aliases,
                })),
            })
            .await?;
    }
    Ok(Ok((made, password.expose().to_string())))
}

/// The file the initial passwords are appended to: mode 0600 from its
/// creation, refused when anyone but its owner may read it.
pub(super) struct PasswordFile {
    path: PathBuf,
    file: std::fs::File,
}

impl PasswordFile {
    pub(super) fn open(path: &Path) -> Result<PasswordFile, ProvisionError> {
        let failed = |source| ProvisionError::PasswordFile {
            path: path.display().to_string(),
            source,
        };
        let mut open = std::fs::OpenOptions::new();
        open.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            open.mode(0o600);
            let file = open.open(path).map_err(failed)?;
            let mode = file.metadata().map_err(failed)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(failed(std::io::Error::other(format!(
                    "others may read it (mode {:o}); make it 0600 or name a new file",
                    mode & 0o777
                ))));
            }
            Ok(PasswordFile {
                path: path.to_path_buf(),
                file,
            })
        }
        #[cfg(not(unix))]
        {
            let file = open.open(path).map_err(failed)?;
            Ok(PasswordFile {
                path: path.to_path_buf(),
                file,
            })
        }
    }

    /// Appends `address,password` and makes sure it is on disk before
    /// the next account is made.
    pub(super) fn append(&mut self, address: &str, password: &str) -> Result<(), ProvisionError> {
        let failed = |source| ProvisionError::PasswordFile {
            path: self.path.display().to_string(),
            source,
        };
        self.file
            .write_all(format!("{address},{password}\n").as_bytes())
            .map_err(failed)?;
        self.file.sync_data().map_err(failed)
    }
}
