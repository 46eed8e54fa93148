//! The `coexist` command line.

mod progress;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::config::Config;
use crate::engine::lock::RunLock;
use crate::engine::{Engine, EngineError, ProgressSink, Quiet, RunOptions, SyncReport};
use crate::exit;
use crate::export::{export, Format};
use crate::plan::Plan;
use crate::reconcile::route::{trace, Origin, Outcome, StagedView};
use crate::reconcile::ConflictKind;
use crate::store::Store;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Sentences and tables for people.
    Text,
    /// One JSON document on stdout, for scripts.
    Json,
}

/// How logs are written (on stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// coexist keeps the directories of mail systems that share one email domain
/// in step: it reads every system, builds one global address list, and
/// writes into each system the forwarding entries and contacts ("stubs") that
/// make mail flow and address books complete.
///
/// Exit codes: 0 done; 1 unexpected failure; 2 bad command line or
/// configuration; 3 a safety gate withheld changes; 4 partly done (a system
/// unreadable or operations failed); 5 the saved plan is stale; 6 `plan
/// --detailed-exitcode` found changes; 7 another coexist run holds the
/// store (nothing was done); 8 mail loops: a routing entry (coexist's or one
/// it did not make) or the catch-all relays send an address round in
/// circles (the output names the entry; nothing is written for it).
#[derive(Debug, Parser)]
#[command(name = "coexist", version, about, long_about)]
pub struct Cli {
    /// The configuration file.
    #[arg(
        long,
        short,
        global = true,
        env = "COEXIST_CONFIG",
        default_value = "coexist.toml"
    )]
    pub config: PathBuf,
    /// Print results as text or as one JSON document.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More logging (-v info, -vv debug). RUST_LOG overrides.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pull every system, plan, and apply within the safety gates.
    Sync {
        /// Lift the delete thresholds for this run (an incomplete source still holds every delete).
        #[arg(long)]
        allow_deletes: bool,
        /// Read every system in full, ignoring the cursors of incremental
        /// reads; run it now and then (say nightly): a full read catches
        /// what a delta can miss, such as a member deleted from the
        /// directory while the groups listing it did not change.
        #[arg(long)]
        full_read: bool,
        /// Believe SYSTEM's read although it shrank past
        /// safety.max_shrink_percent or came back empty (the recipients
        /// really are gone); repeat for several systems. The deletes it
        /// brings still face the delete threshold (--allow-deletes).
        #[arg(long, value_name = "SYSTEM")]
        accept_shrink: Vec<String>,
    },
    /// Show what a sync would change, without changing anything.
    Plan {
        /// Write the plan to FILE, for `coexist apply FILE`.
        #[arg(long)]
        save: Option<PathBuf>,
        /// Plan from what is staged, without reading the systems first.
        #[arg(long)]
        no_pull: bool,
        /// Plan as if the delete thresholds were lifted.
        #[arg(long)]
        allow_deletes: bool,
        /// Read every system in full, ignoring the cursors of incremental reads.
        #[arg(long, conflicts_with = "no_pull")]
        full_read: bool,
        /// Believe SYSTEM's read although it shrank past
        /// safety.max_shrink_percent or came back empty; repeatable.
        #[arg(long, value_name = "SYSTEM", conflicts_with = "no_pull")]
        accept_shrink: Vec<String>,
        /// Exit with 6 when the plan has changes (0 when there are none).
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Apply exactly a saved plan; refused when the staged state changed since.
    Apply {
        /// The plan file written by `coexist plan --save`.
        file: PathBuf,
    },
    /// Validate the configuration without touching any system.
    CheckConfig,
    /// Create or upgrade the store's tables.
    Migrate,
    /// Show the history of runs.
    Runs {
        /// How many runs to show.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Write the GAL as LDIF, CSV, vCard or JSON.
    ExportGal {
        #[arg(long, value_enum, default_value_t = Format::Ldif)]
        format: Format,
        /// The LDIF base under which entries are written.
        #[arg(long)]
        base: Option<String>,
        /// Write to FILE instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Trace where a message from SYSTEM to ADDRESS goes with today's GAL, stubs and topology.
    Route {
        address: String,
        /// The system the sender is on, or `internet`.
        #[arg(long)]
        from: String,
    },
    /// Check credentials, routing domains and mail routing of every system.
    Doctor,
    /// Run the self-contained acmecorp demo (no configuration or credentials needed).
    Demo {
        /// Where to write the demo organisation, store and GAL (default: a new temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// A failure of a command, with the exit code it maps to.
struct Failure {
    code: i32,
    message: String,
}

impl<E: Into<anyhow_like::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        let error = error.into();
        Failure {
            code: error.code,
            message: error.message,
        }
    }
}

/// Error classification for the CLI.
mod anyhow_like {
    use crate::config::ConfigError;
    use crate::engine::EngineError;
    use crate::exit;
    use crate::store::StoreError;

    pub struct Error {
        pub code: i32,
        pub message: String,
    }

    impl From<ConfigError> for Error {
        fn from(e: ConfigError) -> Self {
            Error {
                code: exit::USAGE,
                message: e.to_string(),
            }
        }
    }
    impl From<StoreError> for Error {
        fn from(e: StoreError) -> Self {
            Error {
                code: exit::FAILURE,
                message: e.to_string(),
            }
        }
    }
    impl From<EngineError> for Error {
        fn from(e: EngineError) -> Self {
            let code = match e {
                EngineError::StalePlan { .. } => exit::STALE_PLAN,
                EngineError::NotASystem { .. } => exit::USAGE,
                EngineError::Busy { .. }
                | EngineError::LockLost
                | EngineError::Store(StoreError::Busy) => exit::BUSY,
                _ => exit::FAILURE,
            };
            Error {
                code,
                message: e.to_string(),
            }
        }
    }
    impl From<std::io::Error> for Error {
        fn from(e: std::io::Error) -> Self {
            Error {
                code: exit::FAILURE,
                message: e.to_string(),
            }
        }
    }
    impl From<serde_json::Error> for Error {
        fn from(e: serde_json::Error) -> Self {
            Error {
                code: exit::USAGE,
                message: format!("not a coexist plan: {e}"),
            }
        }
    }
}

/// Runs the command line; returns the exit code.
pub async fn run(cli: Cli) -> i32 {
    init_logging(&cli);
    let mut held = None;
    let outcome = dispatch(&cli, &mut held).await;
    if let Some(lock) = held {
        lock.release().await;
    }
    match outcome {
        Ok(code) => code,
        Err(failure) => {
            if cli.output == Output::Json {
                println!(
                    "{}",
                    serde_json::json!({ "error": failure.message, "exit_code": failure.code })
                );
            }
            eprintln!("coexist: {}", failure.message);
            failure.code
        }
    }
}

fn init_logging(cli: &Cli) {
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Colour only for a person at a terminal: a log file or journal gets
    // plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi_logs(std::io::stderr().is_terminal()))
        .with_writer(std::io::stderr);
    let _ = match cli.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Whether log lines carry ANSI colours: only on a terminal, and never
/// when `NO_COLOR` is set (<https://no-color.org>).
fn ansi_logs(stderr_is_terminal: bool) -> bool {
    stderr_is_terminal && std::env::var_os("NO_COLOR").is_none()
}

fn progress_sink(cli: &Cli) -> Arc<dyn ProgressSink> {
    if std::io::stderr().is_terminal() && cli.output == Output::Text {
        Arc::new(progress::Bars)
    } else {
        Arc::new(Quiet)
    }
}

async fn engine(cli: &Cli, config_path: &Path) -> Result<Engine, Failure> {
    let config = Config::load(config_path)?;
    let connectors = crate::connectors::connect_all(&config)?;
    let store = Store::open(&config.store_url()?).await?;
    Ok(Engine::new(config, store, connectors, progress_sink(cli)))
}

/// The engine for a command that changes the store, with the store's run
/// lock taken into `held` (released by [`run`] whatever the outcome).
async fn locked_engine(
    cli: &Cli,
    command: &str,
    held: &mut Option<RunLock>,
) -> Result<Engine, Failure> {
    let engine = engine(cli, &cli.config).await?;
    *held = Some(engine.lock(command).await?);
    Ok(engine)
}

fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("coexist: cannot encode the result: {e}"),
    }
}

fn actor(command: &str) -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("coexist {command} (by {user})")
}

async fn dispatch(cli: &Cli, held: &mut Option<RunLock>) -> Result<i32, Failure> {
    match &cli.command {
        Command::Sync {
            allow_deletes,
            full_read,
            accept_shrink,
        } => {
            let engine = locked_engine(cli, "sync", held).await?;
            let report = engine
                .sync(&RunOptions {
                    allow_deletes: *allow_deletes,
                    actor: actor("sync"),
                    full_read: *full_read,
                    accept_shrink: accept_shrink.clone(),
                })
                .await?;
            if cli.output == Output::Json {
                print_json(&report);
            } else {
                print_sync(&report);
            }
            Ok(report.exit_code())
        }
        Command::Plan {
            save,
            no_pull,
            allow_deletes,
            full_read,
            accept_shrink,
            detailed_exitcode,
        } => {
            let engine = locked_engine(cli, "plan", held).await?;
            let options = RunOptions {
                allow_deletes: *allow_deletes,
                actor: actor("plan"),
                full_read: *full_read,
                accept_shrink: accept_shrink.clone(),
            };
            let pulls = if *no_pull {
                Vec::new()
            } else {
                engine.pull_with(&options).await?
            };
            let health = engine.health(&pulls);
            let (plan, _) = engine.plan(&health, &options).await?;
            if let Some(path) = save {
                std::fs::write(path, serde_json::to_vec_pretty(&plan)?)?;
            }
            if cli.output == Output::Json {
                print_json(&plan);
            } else {
                print_plan(&plan);
                if let Some(path) = save {
                    println!(
                        "\nPlan {} saved to {}; apply it with: coexist apply {}",
                        plan.id,
                        path.display(),
                        path.display()
                    );
                }
            }
            Ok(crate::engine::plan_exit_code(
                &pulls,
                &plan,
                *detailed_exitcode,
            ))
        }
        Command::Apply { file } => {
            let engine = locked_engine(cli, "apply", held).await?;
            let text = std::fs::read_to_string(file)?;
            let plan: Plan = serde_json::from_str(&text)?;
            let run = engine.store.start_run("apply").await?;
            let report = engine
                .apply(
                    &plan,
                    Some(run),
                    &RunOptions {
                        actor: actor("apply"),
                        ..RunOptions::default()
                    },
                )
                .await;
            let report = match report {
                Ok(report) => report,
                Err(error) => {
                    // The refusal is what the admin must see, even if the
                    // history cannot record it.
                    if let Err(store) = engine
                        .store
                        .finish_run(
                            run,
                            "refused",
                            &serde_json::json!({ "error": error.to_string() }),
                        )
                        .await
                    {
                        tracing::warn!(%store, "the refused apply could not be recorded in the history");
                    }
                    return Err(error.into());
                }
            };
            // A saved plan with a loop in it says so as `sync` and `plan` do.
            let code = if plan.has_routing_loop() {
                exit::ROUTING_LOOP
            } else {
                report.exit_code()
            };
            engine
                .store
                .finish_run(
                    run,
                    match code {
                        exit::OK => "ok",
                        exit::ROUTING_LOOP => "routing_loop",
                        _ => "partial",
                    },
                    &serde_json::to_value(&report)?,
                )
                .await?;
            if cli.output == Output::Json {
                print_json(&report);
            } else {
                println!(
                    "Applied plan {}: {} done, {} already done before, {} failed, {} withheld.",
                    report.plan,
                    report.done,
                    report.skipped_already_done,
                    report.failed,
                    report.withheld
                );
                for failure in &report.failures {
                    println!("  failed: {failure}");
                }
            }
            Ok(code)
        }
        Command::CheckConfig => {
            let config = Config::load(&cli.config)?;
            crate::connectors::connect_all(&config)?;
            // A secret's environment variable may be set only where the
            // service runs (systemd's EnvironmentFile): say so, fail nothing.
            let unset: Vec<String> = config
                .unset_env()
                .into_iter()
                .map(|(key, name)| {
                    format!("{key} refers to the environment variable {name}, which is not set here; a run from this shell would fail to read it")
                })
                .collect();
            let store = config.store_description();
            if cli.output == Output::Json {
                print_json(&serde_json::json!({
                    "ok": true,
                    "systems": config.system_ids(),
                    "store": store,
                    "warnings": unset,
                }));
            } else {
                println!(
                    "{}: OK ({} systems: {}; store: {store})",
                    cli.config.display(),
                    config.systems.len(),
                    config.system_ids().join(", ")
                );
                for warning in &unset {
                    println!("warning: {warning}");
                }
            }
            Ok(exit::OK)
        }
        Command::Migrate => {
            let config = Config::load(&cli.config)?;
            let url = config.store_url()?;
            Store::open(&url).await?;
            if cli.output == Output::Json {
                print_json(&serde_json::json!({ "ok": true, "store": crate::store::redact(&url) }));
            } else {
                println!("The store at {} is up to date.", crate::store::redact(&url));
            }
            Ok(exit::OK)
        }
        Command::Runs { limit } => {
            let config = Config::load(&cli.config)?;
            let store = Store::open(&config.store_url()?).await?;
            let runs = store.runs(*limit).await?;
            if cli.output == Output::Json {
                print_json(&runs);
            } else {
                println!(
                    "{:>5}  {:<8} {:<26} {:<9} summary",
                    "run", "command", "started", "status"
                );
                for run in runs {
                    let summary = run
                        .summary
                        .as_ref()
                        .map(
                            |s| match (s.get("done"), s.get("withheld"), s.get("error")) {
                                (_, _, Some(error)) => format!("error: {error}"),
                                (Some(done), Some(withheld), _) => {
                                    format!("{done} operations done, {withheld} withheld")
                                }
                                _ => s.to_string(),
                            },
                        )
                        .unwrap_or_default();
                    println!(
                        "{:>5}  {:<8} {:<26} {:<9} {summary}",
                        run.id, run.command, run.started_at, run.status
                    );
                }
            }
            Ok(exit::OK)
        }
        Command::ExportGal { format, base, out } => {
            let config = Config::load(&cli.config)?;
            let store = Store::open(&config.store_url()?).await?;
            let gal = store.load_gal().await?;
            let base = base.clone().unwrap_or_else(|| default_base(&config));
            let text = export(&gal, *format, &base);
            match out {
                Some(path) => {
                    std::fs::write(path, text)?;
                    eprintln!("Wrote {} GAL entries to {}", gal.len(), path.display());
                }
                None => {
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(text.as_bytes())?;
                }
            }
            Ok(exit::OK)
        }
        Command::Route { address, from } => {
            let config = Config::load(&cli.config)?;
            let store = Store::open(&config.store_url()?).await?;
            let origin = if from == "internet" {
                Origin::Internet
            } else if config.policy.system(from).is_some() {
                Origin::System(from.clone())
            } else {
                return Err(Failure {
                    code: exit::USAGE,
                    message: format!(
                        "--from {from}: not a configured system (expected internet or one of {})",
                        config.system_ids().join(", ")
                    ),
                });
            };
            let staged = store.load_staged(&config.system_ids()).await?;
            let traced = trace(&config.policy, &StagedView::new(&staged), &origin, address);
            if cli.output == Output::Json {
                print_json(&traced);
            } else {
                for (n, hop) in traced.hops.iter().enumerate() {
                    println!(
                        "{:>2}. {:<12} {:<36} {}",
                        n + 1,
                        hop.system,
                        hop.address,
                        hop.action
                    );
                }
                match &traced.outcome {
                    Outcome::Delivered { system, hops } => {
                        println!("Delivered to a mailbox on {system} after {hops} hop(s).")
                    }
                    Outcome::External { domain, hops } => {
                        println!("Leaves the organisation for {domain} after {hops} hop(s).")
                    }
                    Outcome::Bounced { system, reason } => {
                        println!("Bounced by {system}: {reason}.")
                    }
                    Outcome::Looping { cycle } => println!("Loops: {}.", cycle.join(" → ")),
                }
            }
            Ok(match traced.outcome {
                Outcome::Delivered { .. } | Outcome::External { .. } => exit::OK,
                _ => exit::PARTIAL,
            })
        }
        Command::Doctor => {
            let engine = engine(cli, &cli.config).await?;
            let mut findings = Vec::new();
            let mut conflicts = Vec::new();
            let mut notices = Vec::new();
            crate::reconcile::diff::check_routes(
                &engine.config.policy,
                &mut conflicts,
                &mut notices,
            );
            // The entries as the last sync staged them, coexist's and those
            // it did not make: every one takes part in the loop check.
            let staged = engine.staged().await?;
            let entries = crate::reconcile::reconcile(&staged, &engine.config.policy);
            let entry_loops = entries
                .conflicts
                .into_iter()
                .filter(|c| c.kind == ConflictKind::RoutingLoop && !c.addresses.is_empty());
            let routing = conflicts.into_iter().chain(entry_loops).map(|c| c.message);
            for message in routing.chain(notices.into_iter().map(|n| n.message)) {
                findings.push(coexist_connector::Finding {
                    check: "mail routing".into(),
                    ok: false,
                    manual: false,
                    detail: message,
                });
            }
            for system in &engine.config.systems {
                match crate::connectors::connect(&engine.config, system) {
                    Ok(connector) => {
                        for mut finding in connector.doctor().await {
                            finding.check = format!("{}: {}", system.id, finding.check);
                            findings.push(finding);
                        }
                    }
                    Err(error) => findings.push(coexist_connector::Finding {
                        check: format!("{}: connector set-up", system.id),
                        ok: false,
                        manual: false,
                        detail: error.to_string(),
                    }),
                }
            }
            let ok = findings.iter().all(|f| f.ok);
            if cli.output == Output::Json {
                print_json(&serde_json::json!({ "ok": ok, "findings": findings }));
            } else {
                if findings.is_empty() {
                    println!("Nothing to report: every system reaches every other.");
                }
                for finding in &findings {
                    println!(
                        "[{}] {}: {}",
                        match (finding.ok, finding.manual) {
                            (_, true) => "LOOK",
                            (true, false) => " ok ",
                            (false, false) => "FAIL",
                        },
                        finding.check,
                        finding.detail
                    );
                }
            }
            Ok(if ok { exit::OK } else { exit::PARTIAL })
        }
        Command::Demo { dir } => demo(cli, dir.clone()).await,
    }
}

fn default_base(config: &Config) -> String {
    let domain = config
        .policy
        .shared_domains
        .first()
        .cloned()
        .unwrap_or_default();
    let dcs: Vec<String> = domain.split('.').map(|p| format!("dc={p}")).collect();
    format!("ou=gal,{}", dcs.join(","))
}

fn print_plan(plan: &Plan) {
    let s = &plan.summary;
    println!(
        "Plan {}: {} to create, {} to update, {} to delete, {} withheld; {} conflicts; GAL of {} recipients.",
        plan.id, s.create, s.update, s.delete, s.withheld, s.conflicts, s.gal
    );
    for (system, counts) in &s.by_system {
        println!(
            "  {system}: {} create, {} update, {} delete",
            counts.create, counts.update, counts.delete
        );
    }
    const SHOWN: usize = 20;
    for step in plan.operations.iter().take(SHOWN) {
        println!(
            "  {}{:<6} {:<8} {:<36} {}",
            if step.withheld { "(withheld) " } else { "" },
            step.action,
            step.system,
            step.address,
            step.reason
        );
    }
    if plan.operations.len() > SHOWN {
        println!(
            "  … and {} more (use --output json to see them all)",
            plan.operations.len() - SHOWN
        );
    }
    for conflict in &plan.conflicts {
        println!("Conflict: {}", conflict.message);
    }
    // Notices (entries skipped by a read, entries coexist did not make):
    // the first few, the rest in JSON.
    for notice in plan.notices.iter().take(SHOWN) {
        println!(
            "Notice ({}: {}): {}",
            notice.system, notice.object, notice.message
        );
    }
    if plan.notices.len() > SHOWN {
        println!(
            "  … and {} more notices (use --output json to see them all)",
            plan.notices.len() - SHOWN
        );
    }
    for gate in &plan.gates {
        println!("Safety gate ({}): {}", gate.gate, gate.message);
    }
}

fn print_sync(report: &SyncReport) {
    if !report.resumed.is_empty() {
        println!("An earlier run was interrupted while applying; this run completed its work.");
    }
    for pull in &report.pulls {
        match &pull.error {
            Some(error) => println!("Pulled {}: FAILED: {error}", pull.system),
            None => println!(
                "Pulled {} ({}): {} recipients, {} stubs; {} new, {} changed, {} gone.",
                pull.system,
                pull.mode,
                pull.recipients,
                pull.stubs,
                pull.staged.added,
                pull.staged.changed,
                pull.staged.removed
            ),
        }
        for problem in &pull.problems {
            println!("  skipped {}: {}", problem.object, problem.message);
        }
    }
    print_plan(&report.plan);
    println!(
        "Applied: {} done, {} failed, {} withheld.",
        report.apply.done, report.apply.failed, report.apply.withheld
    );
    for failure in &report.apply.failures {
        println!("  failed: {failure}");
    }
}

/// The demo's closing document.
#[derive(Debug, Serialize)]
struct DemoReport {
    dir: String,
    recipients: u64,
    operations_first_run: u64,
    operations_second_run: u64,
    conflicts: u64,
    stubs_by_system: std::collections::BTreeMap<String, u64>,
    gal_ldif: String,
}

async fn demo(cli: &Cli, dir: Option<PathBuf>) -> Result<i32, Failure> {
    let dir = match dir {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("coexist-demo-{}", std::process::id())),
    };
    crate::demo::write(&dir)?;
    let config_path = dir.join("coexist.toml");
    let text = cli.output == Output::Text;
    if text {
        println!("coexist demo: acmecorp.com, 1000 people: 100 on Google Workspace (gapps.acmecorp.com), 900 on an LDAP mail server.");
        println!(
            "Organisation, configuration and store in {}\n",
            dir.display()
        );
    }
    let engine = engine(cli, &config_path).await?;
    let options = RunOptions {
        actor: actor("demo"),
        ..RunOptions::default()
    };

    let first = engine.sync(&options).await?;
    let ops = |r: &SyncReport| r.apply.done + r.apply.failed + r.apply.withheld;
    if text {
        println!("First sync:");
        for pull in &first.pulls {
            println!(
                "  read {:<6} {:>4} recipients, {:>4} stubs",
                pull.system, pull.recipients, pull.stubs
            );
        }
        println!(
            "  GAL: {} recipients, {} conflicts",
            first.plan.summary.gal, first.plan.summary.conflicts
        );
        for (system, counts) in &first.plan.summary.by_system {
            println!("  wrote {:>4} stubs into {system}", counts.create);
        }
    }
    let second = engine.sync(&options).await?;
    if text {
        println!(
            "\nSecond sync: {} operations (nothing left to change).",
            ops(&second)
        );
    }
    let staged = engine.staged().await?;
    let stubs_by_system = staged
        .systems
        .iter()
        .map(|s| (s.id.clone(), s.stubs.len() as u64))
        .collect();
    let gal = engine.store.load_gal().await?;
    let ldif_path = dir.join("gal.ldif");
    std::fs::write(
        &ldif_path,
        export(&gal, Format::Ldif, &default_base(&engine.config)),
    )?;

    // One flow each way, as the seed describes it.
    let view = StagedView::new(&staged);
    let google_user = gal
        .iter()
        .find(|e| e.home == "google")
        .map(|e| e.primary_address.clone())
        .unwrap_or_default();
    let ldap_user = gal
        .iter()
        .find(|e| e.home == "ldap")
        .map(|e| e.primary_address.clone())
        .unwrap_or_default();
    let report = DemoReport {
        dir: dir.display().to_string(),
        recipients: gal.len() as u64,
        operations_first_run: ops(&first),
        operations_second_run: ops(&second),
        conflicts: first.plan.summary.conflicts,
        stubs_by_system,
        gal_ldif: ldif_path.display().to_string(),
    };
    if text {
        println!("\nStubs held now:");
        for (system, count) in &report.stubs_by_system {
            println!("  {system:<6} {count}");
        }
        for (from, to) in [("ldap", &google_user), ("google", &ldap_user)] {
            let traced = trace(
                &engine.config.policy,
                &view,
                &Origin::System(from.into()),
                to,
            );
            let path: Vec<String> = traced
                .hops
                .iter()
                .map(|h| format!("{} ({})", h.system, h.action))
                .collect();
            println!("\nMail from {from} to {to}: {}", path.join(" → "));
        }
        println!("\nGAL written as LDIF: {}", ldif_path.display());
        println!(
            "Look around: coexist --config {} plan   (or route, export-gal, runs)",
            config_path.display()
        );
    } else {
        print_json(&report);
    }
    Ok(
        if report.operations_second_run == 0 && second.exit_code() == exit::OK {
            exit::OK
        } else {
            exit::PARTIAL
        },
    )
}

/// Whether an engine error is a stale plan (for tests of the CLI).
pub fn is_stale(error: &EngineError) -> bool {
    matches!(error, EngineError::StalePlan { .. })
}
