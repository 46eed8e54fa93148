//! `coexist daemon`: serves the organisations of `--config` or
//! `--config-dir` on their schedules (`crate::daemon`) until SIGTERM or
//! SIGINT; SIGHUP reloads the configuration. Serves the status endpoints
//! (`crate::status`: /healthz, /readyz, /metrics, the status page, /api/)
//! on `[daemon] listen`, recording every run in their metrics. Tells
//! systemd when it is ready and when it stops (sd_notify, when
//! `NOTIFY_SOCKET` is set).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::cli::failure::Failure;
use crate::daemon::{self, Daemon, DaemonError, Observer, Organisation, RunOutcome, Source};
use crate::exit;
use crate::status::{self, StatusState, SyncRequest};

/// Records the daemon's runs in the status endpoints' metrics and keeps
/// their list of organisations current.
struct Status(Arc<StatusState>);

impl Observer for Status {
    fn run_ended(&self, organisation: &str, outcome: &RunOutcome) {
        self.0.run_ended(organisation);
        let metrics = self.0.metrics();
        match outcome {
            RunOutcome::Done { report, .. } => {
                metrics.record_run(organisation, report, &report.phases)
            }
            RunOutcome::Skipped => metrics.record_skipped(organisation),
            RunOutcome::Failed { exit_code, .. } => {
                metrics.record_failed_run(organisation, *exit_code)
            }
        }
    }

    fn organisations(&self, organisations: &[Organisation]) {
        self.0.set_organisations(
            organisations
                .iter()
                .map(|o| status::Organisation {
                    id: o.id.clone(),
                    config: o.config.clone(),
                    store: o.store.clone(),
                })
                .collect(),
        );
    }
}

impl From<DaemonError> for Failure {
    fn from(error: DaemonError) -> Self {
        match error {
            DaemonError::Store { .. } => Failure {
                code: exit::FAILURE,
                message: error.to_string(),
            },
            _ => Failure::usage(error.to_string()),
        }
    }
}

pub async fn run(
    config: &Path,
    config_dir: Option<&Path>,
    stop_timeout: Duration,
    concurrent_runs: usize,
) -> Result<i32, Failure> {
    let source = match config_dir {
        Some(folder) => Source::Folder(folder.to_path_buf()),
        None => Source::File(config.to_path_buf()),
    };
    let loaded = daemon::load(&source)?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;

    // The endpoint's address and token come from the files (they agree).
    let first: Vec<&crate::config::Config> = loaded.values().map(|c| c.as_ref()).collect();
    let (listen, token) = daemon::endpoint_of(&first);
    let token = match token {
        Some(secret) => Some(
            secret
                .resolve()
                .map_err(|e| Failure::usage(format!("daemon.token: {e}")))?
                .expose()
                .to_string(),
        ),
        None => None,
    };
    let (sync_now, mut requests) = mpsc::channel::<SyncRequest>(16);
    let state = Arc::new(
        StatusState::new(Vec::new(), token, sync_now)
            .with_token_for_reads(!listen.ip().is_loopback()),
    );
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Failure {
            code: exit::FAILURE,
            message: format!("cannot listen on {listen} (daemon.listen): {e}"),
        })?;
    // Port 0 takes a free port: the log says which.
    let listen = listener.local_addr().unwrap_or(listen);
    let router = status::router(state.clone());
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            warn!(%error, "the status endpoint stopped");
        }
    });

    // The address book of each organisation with a `[gal_server]` table,
    // served as `coexist serve-gal` serves it, for as long as the daemon
    // runs (it re-reads the GAL after every run; a SIGHUP does not move it).
    let mut address_books = Vec::new();
    for organisation in loaded.values().filter(|c| c.gal_server.is_some()) {
        let serving = crate::cli::commands::serve_gal::start(organisation).await?;
        info!(
            file = %organisation.path.display(),
            entries = serving.entries,
            urls = %serving.urls,
            base = %serving.base,
            "serving the GAL as an LDAP address book"
        );
        address_books.push(serving);
    }
    let mut daemon =
        Daemon::start(source, loaded, Arc::new(Status(state)), concurrent_runs).await?;
    let ids: Vec<String> = daemon.organisations().into_iter().map(|o| o.id).collect();
    info!(organisations = ?ids, %listen, "coexist daemon started");
    notify("READY=1");
    loop {
        tokio::select! {
            Some(request) = requests.recv() => {
                if daemon.sync_now(&request.organisation) {
                    info!(organisation = %request.organisation, "a run was asked for (POST /api/sync)");
                } else {
                    warn!(organisation = %request.organisation, "a run was asked for an organisation this daemon does not serve");
                }
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => {
                notify("RELOADING=1");
                info!("SIGHUP: reading the configuration again");
                let served = daemon.reload().await;
                info!(organisations = served, "configuration read again");
                notify("READY=1");
            }
        }
    }
    notify("STOPPING=1");
    drop(address_books);
    daemon.shutdown(stop_timeout).await;
    Ok(exit::OK)
}

/// Tells systemd `state` (`READY=1`, `STOPPING=1`) when it asked to be
/// told (`Type=notify` sets `NOTIFY_SOCKET`); does nothing otherwise. A
/// message that cannot be sent is logged, never fatal.
fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(error) = send_notification(&path, state) {
        tracing::warn!(%error, state, "systemd could not be told the daemon's state");
    }
}

fn send_notification(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixDatagram;
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_bytes();
    #[cfg(target_os = "linux")]
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(state.as_bytes(), &address)?;
        return Ok(());
    }
    socket.send_to(state.as_bytes(), Path::new(path))?;
    Ok(())
}
