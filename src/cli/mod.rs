//! The `coexist` command line. [`run`] sets up logging, hands the parsed
//! [`Cli`] to the command's module in `commands/`, releases the store's
//! run lock, and turns a [`failure::Failure`] into its message and exit
//! code. Commands write stdout only through `print` (`outln!`,
//! `print_json`): a closed stdout is an error like any other, never a
//! panic, so the lock is released and the run recorded whatever becomes
//! of the output. The grammar is in `args`, the mapping of errors to exit codes in
//! `failure`, the printing shared by commands in `print`, the progress
//! bars in `progress`; this module builds the engine the commands share.

mod args;
mod commands;
mod failure;
mod print;
mod progress;

use std::io::IsTerminal;
use std::sync::Arc;

pub use args::{Cli, Command, LogFormat, Output};
use failure::Failure;

use crate::config::Config;
use crate::engine::lock::RunLock;
use crate::engine::{Engine, EngineError, ProgressSink, Quiet, RunOptions};
use crate::store::Store;

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
                let document =
                    serde_json::json!({ "error": failure.message, "exit_code": failure.code });
                if let Err(error) = print::outln!("{document}") {
                    // Stdout is closed (perhaps the very failure): the
                    // message still reaches stderr below.
                    tracing::debug!(%error, "the error document was not written");
                }
            }
            print::err_line(format_args!("coexist: {}", failure.message));
            failure.code
        }
    }
}

/// Hands each command what it parsed; the commands that change the store
/// get an engine holding its run lock (in `held`, for [`run`] to release).
async fn dispatch(cli: &Cli, held: &mut Option<RunLock>) -> Result<i32, Failure> {
    let output = cli.output;
    match &cli.command {
        Command::Sync {
            allow_deletes,
            full_read,
            accept_shrink,
        } => {
            let engine = locked_engine(cli, "sync", held).await?;
            let options = run_options("sync", *allow_deletes, *full_read, accept_shrink);
            commands::sync::run(&engine, &options, output).await
        }
        Command::Plan {
            save,
            no_pull,
            allow_deletes,
            full_read,
            accept_shrink,
            detailed_exitcode,
            format,
        } => {
            let engine = locked_engine(cli, "plan", held).await?;
            let options = run_options("plan", *allow_deletes, *full_read, accept_shrink);
            commands::plan::run(
                &engine,
                &options,
                commands::plan::Printing {
                    no_pull: *no_pull,
                    save: save.as_deref(),
                    detailed_exitcode: *detailed_exitcode,
                    format: *format,
                },
                output,
            )
            .await
        }
        Command::Apply { file } => {
            let engine = locked_engine(cli, "apply", held).await?;
            let options = run_options("apply", false, false, &[]);
            commands::apply::run(&engine, file, &options, output).await
        }
        Command::CheckConfig => commands::check_config::run(&cli.config, output),
        Command::Migrate => commands::migrate::run(&cli.config, output).await,
        Command::Runs { limit } => commands::runs::run(&cli.config, *limit, output).await,
        Command::ExportGal { format, base, out } => {
            commands::export_gal::run(&cli.config, *format, base.as_deref(), out.as_deref()).await
        }
        Command::ServeGal => commands::serve_gal::run(&cli.config).await,
        Command::Place {
            address,
            system,
            clear,
            dry_run,
        } => {
            let engine = locked_engine(cli, "place", held).await?;
            let system = if *clear { None } else { system.as_deref() };
            commands::place::run(&engine, address, system, &actor("place"), *dry_run, output).await
        }
        Command::Provision {
            address,
            home,
            given_name,
            surname,
            display_name,
            alias,
            attribute,
            from_csv,
            password_file,
            dry_run,
        } => {
            let request = commands::provision::Request {
                address: address.as_deref(),
                home: home.as_deref(),
                given_name: given_name.as_deref(),
                surname: surname.as_deref(),
                display_name: display_name.as_deref(),
                aliases: alias,
                attributes: attribute,
                from_csv: from_csv.as_deref(),
            };
            let people = commands::provision::people(&request)?;
            let engine = locked_engine(cli, "provision", held).await?;
            let options = crate::provisioning::ProvisionOptions {
                run: run_options("provision", false, false, &[]),
                dry_run: *dry_run,
                password_file: password_file.clone(),
                progress: progress_sink(output),
            };
            commands::provision::run(&engine, people, &options, from_csv.is_some(), output).await
        }
        Command::Move {
            address,
            to,
            finish,
            from_csv,
            password_file,
            dry_run,
            stop_after,
        } => {
            let people =
                commands::moving::people(address.as_deref(), to.as_deref(), from_csv.as_deref())?;
            let engine = locked_engine(cli, "move", held).await?;
            let options = crate::provisioning::MoveOptions {
                run: run_options("move", false, false, &[]),
                finish: *finish,
                dry_run: *dry_run,
                password_file: password_file.clone(),
                progress: progress_sink(output),
                stop_after: *stop_after,
            };
            commands::moving::run(&engine, people, &options, output).await
        }
        Command::Deprovision {
            address,
            yes,
            dry_run,
        } => {
            commands::deprovision::confirm(address, *yes || *dry_run)?;
            let engine = locked_engine(cli, "deprovision", held).await?;
            let options = run_options("deprovision", false, false, &[]);
            commands::deprovision::run(&engine, address, &options, *dry_run, output).await
        }
        Command::Route { address, from } => {
            commands::route::run(&cli.config, address, from, output).await
        }
        Command::Doctor => commands::doctor::run(&engine(cli).await?, output).await,
        Command::Daemon {
            config_dir,
            stop_timeout,
            concurrent_runs,
        } => {
            commands::daemon::run(
                &cli.config,
                config_dir.as_deref(),
                std::time::Duration::from_secs(*stop_timeout),
                *concurrent_runs,
            )
            .await
        }
        Command::Demo { dir } => {
            commands::demo::run(dir.as_deref(), progress_sink(output), actor("demo"), output).await
        }
    }
}

fn init_logging(cli: &Cli) {
    // A daemon tells what it does (each run starts and ends) by default.
    let daemon = matches!(cli.command, Command::Daemon { .. });
    let level = match cli.verbose {
        0 if daemon => "info",
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

/// Progress bars for a person reading text at a terminal; nothing otherwise.
fn progress_sink(output: Output) -> Arc<dyn ProgressSink> {
    if std::io::stderr().is_terminal() && output == Output::Text {
        Arc::new(progress::Bars)
    } else {
        Arc::new(Quiet)
    }
}

/// The engine over the configured systems and store.
async fn engine(cli: &Cli) -> Result<Engine, Failure> {
    let config = Config::load(&cli.config)?;
    let connectors = crate::connectors::connect_all(&config)?;
    let store = Store::open(&config.store_url()?).await?;
    Ok(Engine::new(
        config,
        store,
        connectors,
        progress_sink(cli.output),
    ))
}

/// The engine for a command that changes the store, with the store's run
/// lock taken into `held` (released by [`run`] whatever the outcome).
async fn locked_engine(
    cli: &Cli,
    command: &str,
    held: &mut Option<RunLock>,
) -> Result<Engine, Failure> {
    let engine = engine(cli).await?;
    *held = Some(engine.lock(command).await?);
    Ok(engine)
}

/// The options of a run of `command`, recorded as done by the user.
fn run_options(
    command: &str,
    allow_deletes: bool,
    full_read: bool,
    accept_shrink: &[String],
) -> RunOptions {
    RunOptions {
        allow_deletes,
        actor: actor(command),
        full_read,
        accept_shrink: accept_shrink.to_vec(),
    }
}

/// Who a run is recorded as done by: the command and the user.
fn actor(command: &str) -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("coexist {command} (by {user})")
}

/// Whether an engine error is a stale plan (for tests of the CLI).
pub fn is_stale(error: &EngineError) -> bool {
    matches!(error, EngineError::StalePlan { .. })
}
