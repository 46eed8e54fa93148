//! `coexist daemon`: serves the organisations of `--config` or
//! `--config-dir` on their schedules (`crate::daemon`) until SIGTERM or
//! SIGINT; SIGHUP reloads the configuration. Tells systemd when it is ready
//! and when it stops (sd_notify, when `NOTIFY_SOCKET` is set).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tracing::info;

use crate::cli::failure::Failure;
use crate::daemon::{self, Daemon, DaemonError, LogOnly, Source};
use crate::exit;

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
) -> Result<i32, Failure> {
    let source = match config_dir {
        Some(folder) => Source::Folder(folder.to_path_buf()),
        None => Source::File(config.to_path_buf()),
    };
    let loaded = daemon::load(&source)?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut daemon = Daemon::start(source, loaded, Arc::new(LogOnly)).await?;
    let ids: Vec<String> = daemon.organisations().into_iter().map(|o| o.id).collect();
    info!(organisations = ?ids, "coexist daemon started");
    notify("READY=1");
    loop {
        tokio::select! {
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
