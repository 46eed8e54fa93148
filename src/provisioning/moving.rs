//! `coexist move ADDRESS --to SYSTEM` (and `--from-csv`, and `--finish`):
//! a person's mailbox moved from its old home to another system,
//! make-before-break, so that mail to the person is delivered at every
//! instant.
//!
//! The steps, each a change of its own (a placement written, an account
//! made or changed, a restricted plan applied through the journal), each
//! found done by a rerun from what the systems and the store say:
//!
//! 1. **make**: the person is placed on the old home (explicitly, so the
//!    second mailbox is no conflict), the account is made on the target
//!    (as `provision` makes it, with the person's addresses and names),
//!    and a plan restricted to the person removes coexist's stub from the
//!    target (the target now holds the mailbox). Mail still goes to the
//!    old home from everywhere but the target, whose own users' mail is
//!    delivered into the new mailbox.
//! 2. **flip**: the placement becomes the target; the old account is made
//!    to forward to the person's address at the target's routing domain
//!    (`Connector::forward`), recorded in the audit log as coexist's
//!    (`"move_forward"`, with what the account forwarded to before); a
//!    plan restricted to the person retargets every other system's stub.
//!    The old account is then a forwarding entry coexist did not write as
//!    a stub, which the reconciler treats like any such entry (it takes
//!    part in the route and loop checks, and no stub of coexist's stands
//!    beside it).
//! 3. **finish** (`--finish`, once the admin has migrated the data): a
//!    plan made as if the old account no longer carried the person's
//!    addresses writes the ordinary stub at the old home (it routes where
//!    the forward routes), then the old account is retired
//!    (`Connector::retire`: suspended, coexist's forward, exactly the value
//!    it set, and the person's addresses taken off; its mail data stays;
//!    Google, which frees a user's primary address no other way, renames
//!    or deletes the user as its `provision` table's `retire` says),
//!    recorded as `"move_retired"`, and a last restricted plan settles the
//!    rest. An old home that refuses a stub carrying addresses an account
//!    still holds (`Connector::stub_beside_account`, Exchange Online) gets
//!    its stub from that last plan, after the retirement.
//!
//! Entries coexist did not make are never deleted nor changed, but for the
//! person's own old account, which the admin asked to move: a forwarding
//! entry elsewhere (a hand-made forwarder for the address) is left as it
//! is and named in the report; an old account that already forwards (a
//! forwarding entry, no mailbox) is no mailbox to move and is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use coexist_connector::{initial_password, NewAccount, Recipient};

use super::provision::{read_and_settle, PasswordFile};
use super::{addresses_of, normalised, preview_of, routes, ProvisionError, RouteResult};
use crate::engine::{ApplyReport, Engine, ProgressSink, RunOptions};
use crate::plan::Action;
use crate::reconcile::Staged;
use crate::store::{AuditRecord, RunStatus};

/// One person to move.
#[derive(Debug, Clone)]
pub struct Move {
    /// The CSV line the person comes from, for messages.
    pub line: Option<usize>,
    /// An address of the person (normalised by [`move_people`]).
    pub address: String,
    /// The system the person's mailbox moves to (unused by `--finish`).
    pub to: Option<String>,
}

impl Move {
    fn named(&self) -> String {
        match self.line {
            Some(line) => format!("line {line}: {}", self.address),
            None => self.address.clone(),
        }
    }
}

/// How to move.
#[derive(Clone)]
pub struct MoveOptions {
    /// The run's options (its actor).
    pub run: RunOptions,
    /// `--finish`: retire the old accounts of moves already flipped.
    pub finish: bool,
    /// Read and check only: print the steps, change nothing.
    pub dry_run: bool,
    /// Append the target accounts' initial passwords here (mode 0600).
    pub password_file: Option<PathBuf>,
    /// Progress of the people moved.
    pub progress: Arc<dyn ProgressSink>,
    /// Test aid (`--stop-after N`): stop before the change after the
    /// first N, as a crash between two changes would; a rerun goes on.
    pub stop_after: Option<usize>,
}

/// What became of one person.
#[derive(Debug, Serialize)]
pub struct Moved {
    pub address: String,
    /// The old home.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
    /// `moved` (flipped: mail goes to the target, the old account
    /// forwards; `--finish` retires it), `finished`, `failed` (see
    /// `error`), with `--dry-run` `would_move` or `would_finish`.
    pub state: &'static str,
    /// The changes this run made for the person, in order.
    pub steps: Vec<String>,
    /// The target account's initial password, shown this once (absent
    /// when written to the password file or made by an earlier run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the admin should know (entries coexist did not make).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Where mail to the address goes now, from every system and from the
    /// internet.
    pub routes: Vec<RouteResult>,
}

/// What `move` did.
#[derive(Debug, Serialize)]
pub struct MoveReport {
    pub dry_run: bool,
    pub finish: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<i64>,
    pub people: Vec<Moved>,
    /// The restricted plans applied (each step's).
    pub applied: Vec<ApplyReport>,
    /// Operations of those plans, in all.
    pub operations: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
}

impl MoveReport {
    /// The exit code: 8 when mail to a person loops, 4 when a person
    /// failed or mail to one does not reach a mailbox from somewhere, else
    /// the applies' worst, else 0.
    pub fn exit_code(&self) -> i32 {
        let people = self.people.iter().filter(|p| p.state != "failed");
        let mut looping = false;
        let mut undelivered = false;
        for person in people {
            looping |= person.routes.iter().any(|r| r.outcome == "looping");
            undelivered |= person.routes.iter().any(|r| !r.delivered());
        }
        if looping {
            crate::exit::ROUTING_LOOP
        } else if undelivered || self.people.iter().any(|p| p.state == "failed") {
            crate::exit::PARTIAL
        } else {
            self.applied
                .iter()
                .map(ApplyReport::exit_code)
                .max()
                .unwrap_or(crate::exit::OK)
        }
    }
}

/// Counts the changes of a run, for `--stop-after`.
struct Changes {
    done: usize,
    limit: Option<usize>,
}

impl Changes {
    /// Refuses the next change once the limit is reached.
    fn may(&self) -> Result<(), ProvisionError> {
        match self.limit {
            Some(limit) if self.done >= limit => Err(ProvisionError::Stopped(self.done)),
            _ => Ok(()),
        }
    }

    fn made(&mut self) {
        self.done += 1;
    }
}

/// What the audit log says of a person's move (the newest record).
#[derive(Debug, Clone)]
struct Record {
    /// The person's primary address, as the move recorded it.
    address: String,
    /// The old home.
    system: String,
    /// The target.
    to: String,
    /// The forward coexist set.
    forward: String,
    /// The old account's anchor.
    anchor: String,
    retired: bool,
}

fn records(rows: Vec<(String, String, serde_json::Value)>) -> BTreeMap<String, Record> {
    let mut out = BTreeMap::new();
    for (system, address, after) in rows {
        let text = |key: &str| after.get(key).and_then(|v| v.as_str()).map(str::to_string);
        let (to, retired) = match (text("move_forward"), text("move_retired")) {
            (Some(to), _) => (to, false),
            (None, Some(to)) => (to, true),
            (None, None) => continue,
        };
        out.insert(
            address.clone(),
            Record {
                address,
                system,
                to,
                forward: text("forward").unwrap_or_default(),
                anchor: text("anchor").unwrap_or_default(),
                retired,
            },
        );
    }
    out
}

/// The audit record of a change coexist made in `run` to the old
/// account of `standing` (its forward, its retirement): `before` and
/// `after` are what the account was and is.
fn old_account_audit(
    run: i64,
    actor: &str,
    standing: &Standing,
    before: serde_json::Value,
    after: serde_json::Value,
) -> AuditRecord {
    AuditRecord {
        at: crate::store::now(),
        run_id: Some(run),
        actor: actor.to_string(),
        system: standing.from.clone(),
        action: Action::Update,
        address: standing.primary.clone(),
        before: Some(before),
        after: Some(after),
    }
}

/// Where one person's move stands, from the systems and the audit log.
#[derive(Debug, Clone)]
struct Standing {
    /// The person's primary address (normalised), as the old account says.
    primary: String,
    /// Every shared address of the old account, normalised.
    addresses: Vec<String>,
    from: String,
    to: String,
    /// The old account as read.
    old: Recipient,
    /// The address the old account forwards to once flipped.
    forward: String,
    /// The target holds the person's mailbox.
    made: bool,
    /// The old account forwards to `forward` (as read).
    forwarding: bool,
    /// The audit log records coexist's forward.
    recorded: bool,
    /// The old account was retired (`--finish` done).
    retired: bool,
}

fn shared_addresses(engine: &Engine, recipient: &Recipient) -> Vec<String> {
    recipient
        .addresses()
        .filter_map(|a| coexist_connector::normalize_address(a).ok())
        .filter(|a| {
            coexist_connector::split_address(a)
                .is_some_and(|(_, d)| engine.config.policy.is_shared(d))
        })
        .collect()
}

fn carries(recipient: &Recipient, address: &str) -> bool {
    recipient
        .addresses()
        .any(|a| coexist_connector::normalize_address(a).is_ok_and(|a| a == address))
}

/// The address at `to`'s routing domain the old account forwards to.
fn forward_address(engine: &Engine, primary: &str, to: &str) -> Result<String, ProvisionError> {
    let system = engine.config.policy.system(to).ok_or_else(|| {
        ProvisionError::Usage(format!(
            "--to {to}: not a configured system (expected one of {})",
            engine.config.system_ids().join(", ")
        ))
    })?;
    let domain = system.routing_domain.as_deref().ok_or_else(|| {
        ProvisionError::Usage(format!(
            "{to} has no routing_domain: the old home could not forward to it"
        ))
    })?;
    let local = primary.split_once('@').map_or(primary, |(l, _)| l);
    Ok(format!("{local}@{domain}"))
}

/// Finds where `person`'s move stands.
fn locate(
    engine: &Engine,
    staged: &Staged,
    records: &BTreeMap<String, Record>,
    person: &Move,
    finish: bool,
) -> Result<Standing, String> {
    let address = &person.address;
    // Through the audit log: a move flipped (or finished) by coexist.
    let record = staged
        .systems
        .iter()
        .flat_map(|s| s.recipients.iter())
        .filter(|r| carries(r, address))
        .find_map(|r| {
            coexist_connector::normalize_address(&r.primary_address)
                .ok()
                .and_then(|p| records.get(&p))
        })
        .or_else(|| records.get(address));
    let to = match (&person.to, record) {
        (Some(to), _) => to.clone(),
        (None, Some(record)) => record.to.clone(),
        (None, None) => return Err(format!("{address}: no move of it to finish")),
    };
    let record = record.filter(|r| r.to == to);
    if engine.config.policy.system(&to).is_none() {
        return Err(format!(
            "--to {to}: not a configured system (expected one of {})",
            engine.config.system_ids().join(", ")
        ));
    }
    let holders = |system: &str| -> Vec<&Recipient> {
        staged
            .systems
            .iter()
            .filter(|s| s.id == system)
            .flat_map(|s| s.recipients.iter())
            .filter(|r| carries(r, address))
            .collect()
    };
    let at_target = holders(&to).into_iter().find(|r| r.mailbox);
    let (from, old) = match record {
        Some(record) => {
            let found = staged
                .systems
                .iter()
                .filter(|s| s.id == record.system)
                .flat_map(|s| s.recipients.iter())
                .find(|r| r.anchor == record.anchor);
            let old = match (found, at_target) {
                (Some(old), _) => old.clone(),
                // Retired, the old account carries no address and is no
                // recipient any more: the person's addresses are the new
                // account's.
                (None, Some(new)) if record.retired => {
                    let mut old = new.clone();
                    old.anchor = record.anchor.clone();
                    old.locator = None;
                    old.enabled = false;
                    old
                }
                _ => {
                    return Err(format!(
                        "{address}: the old account {} on {} was not found",
                        record.anchor, record.system
                    ))
                }
            };
            (record.system.clone(), old)
        }
        None => {
            let mut candidates = Vec::new();
            for system in staged.systems.iter().filter(|s| s.id != to) {
                for recipient in system.recipients.iter().filter(|r| carries(r, address)) {
                    let primary = coexist_connector::normalize_address(&recipient.primary_address)
                        .unwrap_or_else(|_| address.clone());
                    let forward = forward_address(engine, &primary, &to).unwrap_or_default();
                    let forwarding = recipient.forwards_to.as_deref().is_some_and(|f| {
                        coexist_connector::normalize_address(f).is_ok_and(|f| f == forward)
                    });
                    if (recipient.mailbox && recipient.enabled)
                        || (!recipient.mailbox && forwarding)
                    {
                        candidates.push((system.id.clone(), recipient.clone()));
                    }
                }
            }
            match candidates.len() {
                1 => candidates.remove(0),
                0 if at_target.is_some() => {
                    return Err(format!(
                        "{address}: its mailbox is on {to} already, and no move of it by coexist is recorded"
                    ))
                }
                0 => return Err(format!("{address}: no system holds a mailbox for it")),
                _ => {
                    let systems: Vec<String> = candidates.into_iter().map(|(s, _)| s).collect();
                    return Err(format!(
                        "{address}: a mailbox for it is on {}; place it (`coexist place`) on the one it moves from, then move it",
                        systems.join(" and ")
                    ));
                }
            }
        }
    };
    if finish && record.is_none() {
        return Err(format!(
            "{address}: no move of it is flipped yet (run `coexist move {address} --to SYSTEM` first)"
        ));
    }
    let mut addresses = shared_addresses(engine, &old);
    // An old account renamed by its retirement (Google's `retire =
    // "rename"`, under way or done) carries a name of its own, no address
    // of the person's.
    if let (Some(record), Ok(own)) = (
        record,
        coexist_connector::normalize_address(&old.primary_address),
    ) {
        if own != record.address {
            addresses.retain(|a| *a != own);
        }
    }
    // A retired old account that stays a recipient (Exchange Online keeps
    // the mailbox with the tenant's own addresses) carries none of the
    // person's: they are the new account's.
    if addresses.is_empty() && record.is_some_and(|r| r.retired) {
        if let Some(new) = at_target {
            addresses = shared_addresses(engine, new);
        }
    }
    let primary = match record {
        Some(record) if addresses.contains(&record.address) => record.address.clone(),
        _ => coexist_connector::normalize_address(&old.primary_address)
            .ok()
            .filter(|p| addresses.contains(p))
            .unwrap_or_else(|| address.clone()),
    };
    let forward = match record {
        Some(record) => record.forward.clone(),
        None => forward_address(engine, &primary, &to).map_err(|e| e.to_string())?,
    };
    let forwarding = !old.mailbox
        && old
            .forwards_to
            .as_deref()
            .is_some_and(|f| coexist_connector::normalize_address(f).is_ok_and(|f| f == forward));
    Ok(Standing {
        primary,
        addresses,
        to,
        made: at_target.is_some(),
        forwarding,
        recorded: record.is_some_and(|r| !r.retired),
        retired: record.is_some_and(|r| r.retired),
        forward,
        from,
        old,
    })
}

/// Moves `people` (or, with `--finish`, finishes their moves). The caller
/// holds the run lock.
pub async fn move_people(
    engine: &Engine,
    mut people: Vec<Move>,
    options: &MoveOptions,
) -> Result<MoveReport, ProvisionError> {
    if people.is_empty() {
        return Err(ProvisionError::Usage("no one to move".into()));
    }
    let mut seen = BTreeSet::new();
    for person in &mut people {
        person.address = normalised(&person.address)?;
        if !seen.insert(person.address.clone()) {
            return Err(ProvisionError::Usage(format!(
                "{} is asked for twice",
                person.named()
            )));
        }
        if !options.finish && person.to.is_none() {
            return Err(ProvisionError::Usage(format!(
                "{}: no --to (nor a `to` column)",
                person.named()
            )));
        }
    }
    if options.dry_run {
        return dry_run(engine, &people, options).await;
    }
    let run = engine.store.start_run("move").await?;
    let result = move_in(engine, &people, options, run).await;
    let (status, summary) = match &result {
        Ok(report) => (
            RunStatus::of_exit_code(report.exit_code()),
            serde_json::json!({
                "finish": report.finish,
                "people": report.people.len(),
                "failed": report.people.iter().filter(|p| p.state == "failed").count(),
                "operations": report.operations,
            }),
        ),
        Err(ProvisionError::Stopped(_)) => (
            RunStatus::Interrupted,
            serde_json::json!({ "error": result.as_ref().err().map(ToString::to_string) }),
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

/// Every person's standing, or the reasons some cannot be moved (nothing
/// is changed then).
fn standings(
    engine: &Engine,
    staged: &Staged,
    records: &BTreeMap<String, Record>,
    people: &[Move],
    finish: bool,
) -> Result<Vec<Standing>, ProvisionError> {
    let mut out = Vec::with_capacity(people.len());
    let mut refused = Vec::new();
    for person in people {
        match locate(engine, staged, records, person, finish) {
            Ok(standing) => out.push(standing),
            Err(reason) => refused.push(match person.line {
                Some(line) => format!("line {line}: {reason}"),
                None => reason,
            }),
        }
    }
    if refused.is_empty() {
        Ok(out)
    } else {
        Err(ProvisionError::Taken(refused))
    }
}

/// What the admin should know of entries coexist did not make for the
/// person's addresses (left alone).
fn notes(staged: &Staged, standing: &Standing) -> Vec<String> {
    let mut notes = Vec::new();
    for system in &staged.systems {
        for recipient in &system.recipients {
            if recipient.anchor == standing.old.anchor && system.id == standing.from {
                continue;
            }
            if recipient.mailbox || !standing.addresses.iter().any(|a| carries(recipient, a)) {
                continue;
            }
            notes.push(format!(
                "{}'s entry {} forwards to {}: coexist did not make it and leaves it as it is (mail through it still reaches {} by the old home's forward, later its stub); point it at {} by hand to save a hop",
                system.id,
                recipient.name(),
                recipient.forwards_to.as_deref().unwrap_or("nowhere"),
                standing.to,
                standing.forward
            ));
        }
    }
    notes
}

async fn move_in(
    engine: &Engine,
    people: &[Move],
    options: &MoveOptions,
    run: i64,
) -> Result<MoveReport, ProvisionError> {
    let mut changes = Changes {
        done: 0,
        limit: options.stop_after,
    };
    let (staged, _) = read_and_settle(engine, &options.run, Some(run)).await?;
    let records = records(engine.store.move_records().await?);
    let standings = standings(engine, &staged, &records, people, options.finish)?;
    let mut report = MoveReport {
        dry_run: false,
        finish: options.finish,
        run: Some(run),
        people: standings
            .iter()
            .map(|s| Moved {
                address: s.primary.clone(),
                from: Some(s.from.clone()),
                to: s.to.clone(),
                state: if s.retired { "finished" } else { "moved" },
                steps: Vec::new(),
                initial_password: None,
                error: None,
                notes: notes(&staged, s),
                routes: Vec::new(),
            })
            .collect(),
        applied: Vec::new(),
        operations: 0,
        password_file: options
            .password_file
            .as_ref()
            .map(|p| p.display().to_string()),
    };
    let progress = options.progress.start("people", Some(people.len() as u64));
    if options.finish {
        finish(
            engine,
            &staged,
            &standings,
            &mut report,
            &mut changes,
            options,
            run,
        )
        .await?;
    } else {
        make(engine, &standings, &mut report, &mut changes, options, run).await?;
        flip(engine, &standings, &mut report, &mut changes, options, run).await?;
    }
    progress.advance(people.len() as u64);
    drop(progress);
    let staged = engine.staged().await?;
    for moved in report.people.iter_mut().filter(|m| m.state != "failed") {
        moved.routes = routes(engine, &staged, &moved.address);
    }
    Ok(report)
}

/// The placement of `address` on `system` (or none), audited.
async fn place_on(
    engine: &Engine,
    address: &str,
    system: &str,
    before: Option<&String>,
    run: i64,
    actor: &str,
) -> Result<(), ProvisionError> {
    let json = |s: &str| serde_json::json!({ "placement": s });
    let audit = AuditRecord {
        at: crate::store::now(),
        run_id: Some(run),
        actor: actor.to_string(),
        system: system.to_string(),
        action: if before.is_some() {
            Action::Update
        } else {
            Action::Create
        },
        address: address.to_string(),
        before: before.map(|b| json(b)),
        after: Some(json(system)),
    };
    engine
        .store
        .write_placement(address, Some(system), &audit)
        .await?;
    Ok(())
}

/// Reads every system again, plans for the people's addresses and applies
/// the plan (one change when it has operations). With `allow_deletes` the
/// delete threshold is lifted: step 1's plan removes the target's stubs
/// of the people moved, which is what the move replaces them with
/// mailboxes for (every other gate holds).
async fn settle(
    engine: &Engine,
    addresses: &BTreeSet<String>,
    report: &mut MoveReport,
    changes: &mut Changes,
    options: &MoveOptions,
    run: i64,
    allow_deletes: bool,
) -> Result<(), ProvisionError> {
    let mut run_options = options.run.clone();
    run_options.allow_deletes |= allow_deletes;
    let pulls = engine.pull_with(&run_options).await?;
    let health = engine.health(&pulls);
    let staged = engine.staged().await?;
    let only = addresses_of(&staged, addresses);
    let (plan, _) = engine.plan_for(&health, &run_options, Some(&only)).await?;
    if plan.runnable().next().is_none() {
        return Ok(());
    }
    changes.may()?;
    let applied = engine.apply(&plan, Some(run), &run_options).await?;
    report.operations += plan.runnable().count();
    report.applied.push(applied);
    changes.made();
    Ok(())
}

/// Step 1: the old home placed, the account made on the target, the
/// target's stub removed.
async fn make(
    engine: &Engine,
    standings: &[Standing],
    report: &mut MoveReport,
    changes: &mut Changes,
    options: &MoveOptions,
    run: i64,
) -> Result<(), ProvisionError> {
    let mut passwords = match &options.password_file {
        Some(path) => Some(PasswordFile::open(path)?),
        None => None,
    };
    let placements = engine.store.placements().await?;
    let actor = &options.run.actor;
    for (standing, moved) in standings.iter().zip(report.people.iter_mut()) {
        if standing.made || standing.recorded || standing.retired {
            continue;
        }
        let placed = placements.get(&standing.primary);
        if placed.is_none() {
            changes.may()?;
            place_on(engine, &standing.primary, &standing.from, None, run, actor).await?;
            changes.made();
            moved
                .steps
                .push(format!("placed on {} (the old home)", standing.from));
        }
        let Some(connector) = engine.connector(&standing.to) else {
            continue;
        };
        let password = initial_password(20);
        let account = NewAccount {
            primary_address: standing.primary.clone(),
            aliases: standing
                .addresses
                .iter()
                .filter(|a| **a != standing.primary)
                .cloned()
                .collect(),
            attributes: standing.old.attributes.clone(),
            extra: BTreeMap::new(),
            password: Some(password.clone()),
        };
        changes.may()?;
        match connector.provision(&account).await {
            Ok(made) => {
                changes.made();
                if !made.existed {
                    engine
                        .store
                        .audit(&AuditRecord {
                            at: crate::store::now(),
                            run_id: Some(run),
                            actor: actor.clone(),
                            system: standing.to.clone(),
                            action: Action::Create,
                            address: standing.primary.clone(),
                            before: None,
                            after: Some(serde_json::json!({
                                "account": made.locator,
                                "anchor": made.recipient.anchor,
                                "aliases": account.aliases,
                                "moved_from": standing.from,
                            })),
                        })
                        .await?;
                    match &mut passwords {
                        Some(file) => file.append(&standing.primary, password.expose())?,
                        None => moved.initial_password = Some(password.expose().to_string()),
                    }
                }
                moved.notes.extend(made.notes);
                moved.steps.push(format!(
                    "account made on {} ({})",
                    standing.to, made.locator
                ));
            }
            Err(error) => {
                moved.state = "failed";
                moved.error = Some(format!("{} did not make the account: {error}", standing.to));
            }
        }
    }
    let addresses: BTreeSet<String> = standings
        .iter()
        .zip(&report.people)
        .filter(|(_, m)| m.state != "failed")
        .flat_map(|(s, _)| s.addresses.iter().cloned())
        .collect();
    if !addresses.is_empty() {
        settle(engine, &addresses, report, changes, options, run, true).await?;
    }
    Ok(())
}

/// Step 2: the placement on the target, the old account's forward,
/// every stub retargeted.
async fn flip(
    engine: &Engine,
    standings: &[Standing],
    report: &mut MoveReport,
    changes: &mut Changes,
    options: &MoveOptions,
    run: i64,
) -> Result<(), ProvisionError> {
    let placements = engine.store.placements().await?;
    let actor = &options.run.actor;
    let mut flipped = BTreeSet::new();
    for (standing, moved) in standings.iter().zip(report.people.iter_mut()) {
        if moved.state == "failed" || standing.retired {
            continue;
        }
        let placed = placements.get(&standing.primary);
        if placed != Some(&standing.to) {
            changes.may()?;
            place_on(engine, &standing.primary, &standing.to, placed, run, actor).await?;
            changes.made();
            moved.steps.push(format!("placed on {}", standing.to));
        }
        if !standing.recorded {
            let Some(connector) = engine.connector(&standing.from) else {
                continue;
            };
            if !standing.forwarding {
                changes.may()?;
                if let Err(error) = connector.forward(&standing.old, &standing.forward).await {
                    // Without the forward the old mailbox would keep what
                    // reaches it: the placement goes back to the old home,
                    // where every stub still routes (step 1 stays done).
                    place_on(
                        engine,
                        &standing.primary,
                        &standing.from,
                        Some(&standing.to),
                        run,
                        actor,
                    )
                    .await?;
                    moved.state = "failed";
                    moved.error = Some(format!(
                        "{} did not forward the old account: {error}; the person stays placed on {} (the account on {} is made), where mail is delivered",
                        standing.from, standing.from, standing.to
                    ));
                    continue;
                }
                changes.made();
            }
            let before = serde_json::json!({
                "account": standing.old.locator,
                "forwards_to": standing.old.forwards_to,
            });
            let after = serde_json::json!({
                "account": standing.old.locator,
                "anchor": standing.old.anchor,
                "forward": standing.forward,
                "move_forward": standing.to,
            });
            engine
                .store
                .audit(&old_account_audit(run, actor, standing, before, after))
                .await?;
            moved.steps.push(format!(
                "the old account on {} forwards to {}",
                standing.from, standing.forward
            ));
        }
        flipped.extend(standing.addresses.iter().cloned());
    }
    if !flipped.is_empty() {
        settle(engine, &flipped, report, changes, options, run, false).await?;
    }
    Ok(())
}

/// Step 3 (`--finish`): the stub at the old home, the old account retired.
async fn finish(
    engine: &Engine,
    staged: &Staged,
    standings: &[Standing],
    report: &mut MoveReport,
    changes: &mut Changes,
    options: &MoveOptions,
    run: i64,
) -> Result<(), ProvisionError> {
    let actor = &options.run.actor;
    let mut left: Vec<(&Standing, usize)> = Vec::new();
    for (i, standing) in standings.iter().enumerate() {
        report.people[i].state = "finished";
        if !standing.retired {
            left.push((standing, i));
        }
    }
    // The stubs at the old homes first, from a plan made as if the old
    // accounts no longer carried the addresses: each routes where the
    // forward beside it routes, so mail is delivered whichever the old
    // home's server finds.
    let stub_held = |standing: &Standing| {
        staged
            .systems
            .iter()
            .filter(|s| s.id == standing.from)
            .flat_map(|s| s.stubs.iter())
            .any(|f| {
                std::iter::once(&f.stub.primary_address)
                    .chain(f.stub.aliases.iter())
                    .any(|a| standing.addresses.contains(a))
            })
    };
    // Where the old home refuses a stub beside the account (Exchange
    // Online: one address, one recipient), the stub follows the
    // retirement, in the last plan; mail reaching the old home in between
    // is an unknown recipient there, relayed by its catch-all.
    let beside = |standing: &Standing| {
        engine
            .connector(&standing.from)
            .is_some_and(|c| c.stub_beside_account())
    };
    let need_stub: Vec<&Standing> = left
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| !stub_held(s) && beside(s))
        .collect();
    if !need_stub.is_empty() {
        let mut after = staged.clone();
        for standing in &need_stub {
            for system in after.systems.iter_mut().filter(|s| s.id == standing.from) {
                system
                    .recipients
                    .retain(|r| r.anchor != standing.old.anchor);
            }
        }
        let only: BTreeSet<String> = need_stub
            .iter()
            .flat_map(|s| s.addresses.iter().cloned())
            .collect();
        let mut plan = preview_of(engine, &after, &only).await?;
        // Only the old homes' stubs: the rest waits for the plan made
        // from the systems once the accounts are retired.
        let homes: BTreeSet<&str> = need_stub.iter().map(|s| s.from.as_str()).collect();
        plan.operations
            .retain(|step| homes.contains(step.system.as_str()) && step.action == Action::Create);
        if plan.runnable().next().is_some() {
            changes.may()?;
            let applied = engine.apply(&plan, Some(run), &options.run).await?;
            report.operations += plan.runnable().count();
            report.applied.push(applied);
            changes.made();
        }
    }
    for (standing, i) in left {
        let moved = &mut report.people[i];
        if beside(standing) {
            moved
                .steps
                .push(format!("stub of coexist's on {}", standing.from));
        }
        let Some(connector) = engine.connector(&standing.from) else {
            continue;
        };
        changes.may()?;
        if let Err(error) = connector
            .retire(&standing.old, &standing.addresses, &standing.forward)
            .await
        {
            moved.state = "failed";
            moved.error = Some(format!(
                "{} did not retire the old account: {error}; it still forwards to {}",
                standing.from, standing.forward
            ));
            continue;
        }
        changes.made();
        let before = serde_json::json!({
            "account": standing.old.locator,
            "forwards_to": standing.forward,
            "addresses": standing.addresses,
            "enabled": standing.old.enabled,
        });
        let after = serde_json::json!({
            "account": standing.old.locator,
            "anchor": standing.old.anchor,
            "forward": standing.forward,
            "move_retired": standing.to,
            "enabled": false,
        });
        engine
            .store
            .audit(&old_account_audit(run, actor, standing, before, after))
            .await?;
        moved.steps.push(format!(
            "the old account on {} retired (its forward and the person's addresses taken off and the account suspended, or the account deleted where the system's `retire` says so)",
            standing.from
        ));
        if !beside(standing) {
            moved.steps.push(format!(
                "stub of coexist's on {} (once the account no longer holds the addresses)",
                standing.from
            ));
        }
    }
    let addresses: BTreeSet<String> = standings
        .iter()
        .flat_map(|s| s.addresses.iter().cloned())
        .collect();
    settle(engine, &addresses, report, changes, options, run, false).await
}

/// `--dry-run`: where each person stands and the steps a run would take.
async fn dry_run(
    engine: &Engine,
    people: &[Move],
    options: &MoveOptions,
) -> Result<MoveReport, ProvisionError> {
    let (staged, _) = read_and_settle(engine, &options.run, None).await?;
    let records = records(engine.store.move_records().await?);
    let standings = standings(engine, &staged, &records, people, options.finish)?;
    let placements = engine.store.placements().await?;
    let mut out = Vec::new();
    for standing in &standings {
        let mut steps = Vec::new();
        if options.finish {
            if !standing.retired {
                let beside = engine
                    .connector(&standing.from)
                    .is_some_and(|c| c.stub_beside_account());
                if beside {
                    steps.push(format!("stub of coexist's on {}", standing.from));
                }
                steps.push(format!(
                    "the old account on {} retired (its forward to {} and the person's addresses taken off and the account suspended, or the account deleted where the system's `retire` says so)",
                    standing.from, standing.forward
                ));
                if !beside {
                    steps.push(format!(
                        "stub of coexist's on {} (once the account no longer holds the addresses)",
                        standing.from
                    ));
                }
            }
        } else {
            if !standing.made && !standing.recorded && !standing.retired {
                if !placements.contains_key(&standing.primary) {
                    steps.push(format!("placed on {} (the old home)", standing.from));
                }
                steps.push(format!("account made on {}", standing.to));
                steps.push(format!("the stub on {} removed", standing.to));
            }
            if placements.get(&standing.primary) != Some(&standing.to) {
                steps.push(format!("placed on {}", standing.to));
            }
            if !standing.recorded && !standing.retired {
                steps.push(format!(
                    "the old account on {} forwards to {}",
                    standing.from, standing.forward
                ));
            }
            steps.push(format!(
                "every other system's stub routes to {}",
                standing.forward
            ));
        }
        out.push(Moved {
            address: standing.primary.clone(),
            from: Some(standing.from.clone()),
            to: standing.to.clone(),
            state: if options.finish {
                "would_finish"
            } else {
                "would_move"
            },
            steps,
            initial_password: None,
            error: None,
            notes: notes(&staged, standing),
            routes: routes(engine, &staged, &standing.primary),
        });
    }
    Ok(MoveReport {
        dry_run: true,
        finish: options.finish,
        run: None,
        people: out,
        applied: Vec::new(),
        operations: 0,
        password_file: None,
    })
}
