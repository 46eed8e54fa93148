//! The run lock: one command at a time changes a store.
//!
//! `sync`, `plan` and `apply` take it before they pull, plan or apply, so two
//! runs (a timer's and an admin's) never interleave their staging and their
//! journals. The lock is a row of the store with a lease the holder renews
//! while it works; a holder that died is recognised at once on the same host
//! (its process is gone) and anywhere once its lease lapses, so a `kill -9`
//! never blocks the next run for long.
//!
//! Whoever takes the lock closes the runs of the history still recorded as
//! running: only a holder of the lock runs, so those runs died (their
//! holder's lock was taken over, or lapsed). They are closed as
//! `interrupted`, with the time they were found dead; what they left in
//! the journal is settled by the next `sync` (`Engine::settle_interrupted`).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::warn;

use crate::store::{now, LockHolder, RunStatus, Store};

use super::{Engine, EngineError};

/// How long a lease runs without renewal.
pub const LEASE: Duration = Duration::from_secs(120);

/// The held run lock. Release it with [`RunLock::release`]; if the process
/// dies instead, the next run takes the lock over (see the module docs).
pub struct RunLock {
    store: Store,
    me: LockHolder,
    renewer: JoinHandle<()>,
}

impl RunLock {
    /// Gives the lock back.
    pub async fn release(self) {
        self.renewer.abort();
        if let Err(error) = self.store.unlock(&self.me).await {
            warn!(%error, "the run lock could not be released; the next run takes it over");
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

impl Engine {
    /// Takes the run lock for `command`, or says who holds it.
    pub async fn lock(&self, command: &str) -> Result<RunLock, EngineError> {
        let me = LockHolder {
            pid: i64::from(std::process::id()),
            host: host_name(),
            command: command.to_string(),
            since: now(),
            expires_at: unix_now() + seconds(self.lease),
        };
        let mut taken_over = None;
        let holder = match self.store.try_lock(&me).await? {
            None => None,
            Some(other) => match holder_is_gone(&other, &me.host) {
                Some(why) => {
                    if self.store.take_over_lock(&other, &me).await? {
                        warn!(
                            pid = other.pid,
                            host = %other.host,
                            command = %other.command,
                            since = %other.since,
                            "took over the run lock of a run that is gone ({why}); this run completes its work"
                        );
                        taken_over = Some((other, why));
                        None
                    } else {
                        // Somebody else took it over first.
                        self.store.try_lock(&me).await?
                    }
                }
                None => Some(other),
            },
        };
        if let Some(holder) = holder {
            return Err(EngineError::Busy { holder });
        }
        // Closing the dead runs is bookkeeping: a failure is told, and the
        // run goes on (the next one closes them).
        if let Err(error) = self.close_dead_runs(&me, taken_over.as_ref()).await {
            warn!(%error, "the runs that died could not be closed in the history");
        }
        self.lock_lost.store(false, Ordering::SeqCst);
        let renewer = {
            let store = self.store.clone();
            let me = me.clone();
            let lost = self.lock_lost.clone();
            let lease = seconds(self.lease);
            // Renewed every quarter of the lease: three renewals may fail
            // before others may take the lock.
            let renew_every = self.lease / 4;
            tokio::spawn(async move {
                let mut renewed = unix_now();
                loop {
                    tokio::time::sleep(renew_every).await;
                    match store.renew_lock(&me, unix_now() + lease).await {
                        Ok(true) => renewed = unix_now(),
                        Ok(false) => {
                            warn!("the run lock was taken over by another run; this run stops before its next changes");
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(error) => {
                            warn!(%error, "the run lock could not be renewed");
                            if unix_now() - renewed >= lease {
                                // Others may take it now: stop changing things.
                                lost.store(true, Ordering::SeqCst);
                                return;
                            }
                        }
                    }
                }
            })
        };
        Ok(RunLock {
            store: self.store.clone(),
            me,
            renewer,
        })
    }
}

impl Engine {
    /// Closes the runs the history still records as running, as
    /// `interrupted`: `me` holds the run lock, so none of them runs (see
    /// the module docs). `taken_over` is the dead holder whose lock `me`
    /// took over, and why it was found gone.
    async fn close_dead_runs(
        &self,
        me: &LockHolder,
        taken_over: Option<&(LockHolder, &'static str)>,
    ) -> Result<(), EngineError> {
        let found = match taken_over {
            Some((gone, why)) => format!(
                "found dead at {} by `{}` (pid {} on {}), which took over the run lock of `{}` (pid {} on {}: {why})",
                now(),
                me.command,
                me.pid,
                me.host,
                gone.command,
                gone.pid,
                gone.host
            ),
            None => format!(
                "found dead at {} by `{}` (pid {} on {}), which found the run lock free",
                now(),
                me.command,
                me.pid,
                me.host
            ),
        };
        for run in self.store.runs_in_progress().await? {
            let summary = serde_json::json!({
                "error": format!(
                    "interrupted: the run ended before it finished (killed, crashed or stopped); {found}; the next sync completes its work"
                ),
            });
            if self
                .store
                .close_run(run.id, RunStatus::Interrupted, &summary)
                .await?
            {
                warn!(
                    run = run.id,
                    command = %run.command,
                    started = %run.started_at,
                    "a run that died before it finished is closed as interrupted"
                );
            }
        }
        Ok(())
    }
}

/// Why `holder` no longer runs, if it does not: its lease lapsed, or it was
/// a process of this host that is gone.
fn holder_is_gone(holder: &LockHolder, this_host: &str) -> Option<&'static str> {
    if holder.expires_at < unix_now() {
        return Some("its lease lapsed");
    }
    if holder.host == this_host && !process_alive(holder.pid) {
        return Some("its process is gone");
    }
    None
}

/// Whether process `pid` of this host runs. Where `/proc` cannot tell
/// (absent, or hiding other users' processes), every process is taken to
/// run and the lease decides.
fn process_alive(pid: i64) -> bool {
    let proc = Path::new("/proc");
    // No /proc, or one mounted with hidepid (pid 1 invisible): it cannot
    // tell, so the lease decides.
    if !proc.join("self").exists() || !proc.join("1").exists() {
        return true;
    }
    proc.join(pid.to_string()).exists()
}

/// This host's name, as the lock records it.
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| {
            std::fs::read_to_string(path)
                .ok()
                .map(|name| name.trim().to_string())
                .filter(|name| !name.is_empty())
        })
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".to_string())
}

fn seconds(lease: Duration) -> i64 {
    i64::try_from(lease.as_secs()).unwrap_or(i64::MAX)
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(pid: i64, host: &str, expires_in: i64) -> LockHolder {
        LockHolder {
            pid,
            host: host.into(),
            command: "sync".into(),
            since: now(),
            expires_at: unix_now() + expires_in,
        }
    }

    #[test]
    fn a_live_holder_on_this_host_with_a_lease_is_not_gone() {
        let me = i64::from(std::process::id());
        assert_eq!(holder_is_gone(&holder(me, "here", 60), "here"), None);
    }

    #[test]
    fn a_holder_whose_process_ended_on_this_host_is_gone() {
        // pid_max on Linux is at most 2^22: this pid never runs.
        let dead = 4_194_304 + 17;
        assert_eq!(
            holder_is_gone(&holder(dead, "here", 60), "here"),
            Some("its process is gone")
        );
    }

    #[test]
    fn a_holder_on_another_host_is_gone_only_when_its_lease_lapsed() {
        let dead = 4_194_304 + 17;
        assert_eq!(holder_is_gone(&holder(dead, "there", 60), "here"), None);
        assert_eq!(
            holder_is_gone(&holder(dead, "there", -1), "here"),
            Some("its lease lapsed")
        );
    }
}
