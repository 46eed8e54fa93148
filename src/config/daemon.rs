//! `[daemon]`: how `coexist daemon` runs the organisation: its schedules,
//! their time zone, the random delay, where the status endpoint listens and
//! the bearer token it asks of anyone not on loopback.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use coexist_connector::SecretRef;
use serde::Deserialize;
use toml::Spanned;

use super::{secret_beside, ConfigError, Locator};
use crate::daemon::schedule::{Schedule, Timing, DEFAULT_FULL_READ, DEFAULT_SYNC};

/// The default address of the status endpoint (loopback, the port
/// Prometheus' exporter list gives coexist's kind of exporter).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// `[daemon]`, checked; every key has a default.
#[derive(Debug, Clone, PartialEq)]
pub struct Daemon {
    /// The schedules and the random delay.
    pub timing: Timing,
    /// Where the status endpoint listens; `None`: not written, the
    /// default [`DEFAULT_LISTEN`].
    pub listen: Option<SocketAddr>,
    /// The bearer token the endpoint asks for (by reference); required
    /// when `listen` is not a loopback address.
    pub token: Option<SecretRef>,
    /// The lease of the run lock the daemon's runs take (default 120
    /// seconds): how long after a daemon on another host died its
    /// organisations are taken over.
    pub lock_lease: Duration,
}

impl Daemon {
    /// The settings without a `[daemon]` table.
    pub fn defaults() -> Result<Daemon, String> {
        Ok(Daemon {
            timing: Timing {
                sync: Schedule::parse(DEFAULT_SYNC)?,
                full_read: Schedule::parse(DEFAULT_FULL_READ)?,
                zone: chrono_tz::Tz::UTC,
                jitter: Duration::from_secs(30),
            },
            listen: None,
            token: None,
            lock_lease: crate::engine::lock::LEASE,
        })
    }
}

/// `[daemon]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    sync_schedule: Option<Spanned<String>>,
    full_read_schedule: Option<Spanned<String>>,
    time_zone: Option<Spanned<String>>,
    jitter_seconds: Option<Spanned<i64>>,
    listen: Option<Spanned<String>>,
    token: Option<Spanned<SecretRef>>,
    lock_lease_seconds: Option<Spanned<i64>>,
}

/// `[daemon]` checked: cron expressions, an IANA time zone, a delay from 0
/// to an hour, an IP address and port, a token when the address is not
/// loopback, a lease from 2 seconds to a day.
pub(super) fn daemon(
    at: &Locator<'_>,
    folder: &Path,
    raw: Option<RawDaemon>,
) -> Result<Daemon, ConfigError> {
    let mut out = Daemon::defaults().map_err(|message| at.nowhere("daemon", message))?;
    let Some(raw) = raw else {
        return Ok(out);
    };
    let schedule = |written: &Spanned<String>, key: &str| {
        Schedule::parse(written.get_ref()).map_err(|message| at.at(written, key, message))
    };
    if let Some(written) = &raw.sync_schedule {
        out.timing.sync = schedule(written, "daemon.sync_schedule")?;
    }
    if let Some(written) = &raw.full_read_schedule {
        out.timing.full_read = schedule(written, "daemon.full_read_schedule")?;
    }
    if let Some(written) = &raw.time_zone {
        out.timing.zone = written.get_ref().trim().parse().map_err(|_| {
            at.at(
                written,
                "daemon.time_zone",
                format!(
                    "`{}` is not a time zone: expected an IANA name, like \"Europe/Paris\" or \"UTC\"",
                    written.get_ref()
                ),
            )
        })?;
    }
    let seconds = |written: &Spanned<i64>, key: &str, range: std::ops::RangeInclusive<i64>| {
        if range.contains(written.get_ref()) {
            Ok(Duration::from_secs(
                u64::try_from(*written.get_ref()).unwrap_or_default(),
            ))
        } else {
            Err(at.at(
                written,
                key,
                format!(
                    "expected a whole number of seconds from {} to {}",
                    range.start(),
                    range.end()
                ),
            ))
        }
    };
    if let Some(written) = &raw.jitter_seconds {
        out.timing.jitter = seconds(written, "daemon.jitter_seconds", 0..=3600)?;
    }
    if let Some(written) = &raw.lock_lease_seconds {
        out.lock_lease = seconds(written, "daemon.lock_lease_seconds", 2..=86_400)?;
    }
    if let Some(written) = &raw.listen {
        let address: SocketAddr = written.get_ref().trim().parse().map_err(|_| {
            at.at(
                written,
                "daemon.listen",
                format!(
                    "`{}` is not an address to listen on: expected an IP address and port, like \"{DEFAULT_LISTEN}\" or \"[::]:9464\"",
                    written.get_ref()
                ),
            )
        })?;
        if !address.ip().is_loopback() && raw.token.is_none() {
            return Err(at.at(
                written,
                "daemon.listen",
                format!(
                    "{address} is reachable from other hosts: add token = {{ env = \"NAME\" }} (or {{ file = \"PATH\" }}), the bearer token clients must send"
                ),
            ));
        }
        out.listen = Some(address);
    }
    out.token = raw
        .token
        .map(|token| secret_beside(folder, token.into_inner()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    const ORGANISATION: &str = r#"[organisation]
id = "acmecorp"
shared_domains = ["acmecorp.com"]

[[systems]]
id = "ldap"
kind = "simulated"
routing_domain = "mithi.acmecorp.com"
"#;

    fn parse(extra: &str) -> Result<Config, String> {
        Config::parse(
            Path::new("/etc/coexist/acmecorp.toml"),
            &format!("{ORGANISATION}{extra}"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn without_a_daemon_table_the_defaults_hold() {
        let config = parse("").unwrap();
        let daemon = &config.daemon;
        assert_eq!(daemon.timing.sync.text, "*/15 * * * *");
        assert_eq!(daemon.timing.full_read.text, "30 2 * * *");
        assert_eq!(daemon.timing.zone, chrono_tz::Tz::UTC);
        assert_eq!(daemon.timing.jitter.as_secs(), 30);
        assert_eq!(daemon.listen, None);
        assert_eq!(daemon.lock_lease.as_secs(), 120);
        assert_eq!(config.organisation_id.as_deref(), Some("acmecorp"));
    }

    #[test]
    fn every_key_is_read() {
        let config = parse(
            r#"
[daemon]
sync_schedule = "*/5 * * * *"
full_read_schedule = "0 0 3 * * Sun"
time_zone = "Europe/Paris"
jitter_seconds = 0
listen = "0.0.0.0:9464"
token = { file = "token" }
lock_lease_seconds = 20
"#,
        )
        .unwrap();
        let daemon = &config.daemon;
        assert_eq!(daemon.timing.sync.text, "*/5 * * * *");
        assert_eq!(daemon.timing.zone, chrono_tz::Europe::Paris);
        assert_eq!(daemon.timing.jitter.as_secs(), 0);
        assert_eq!(daemon.listen, "0.0.0.0:9464".parse().ok());
        assert_eq!(
            daemon.token,
            Some(coexist_connector::SecretRef::File {
                file: "/etc/coexist/token".into()
            })
        );
        assert_eq!(daemon.lock_lease.as_secs(), 20);
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        assert_eq!(
            parse("\n[daemon]\nsync_schedule = \"every 15 minutes\"\n").unwrap_err(),
            "/etc/coexist/acmecorp.toml:11: daemon.sync_schedule: `every 15 minutes` is not a cron expression: expected five fields (minute hour day-of-month month day-of-week, like \"*/15 * * * *\"), six with a leading seconds field, or @hourly/@daily/@weekly"
        );
        let error = parse("\n[daemon]\ntime_zone = \"Mars/Olympus\"\n").unwrap_err();
        assert!(
            error.starts_with("/etc/coexist/acmecorp.toml:11: daemon.time_zone: `Mars/Olympus` is not a time zone"),
            "{error}"
        );
        let error = parse("\n[daemon]\njitter_seconds = -1\n").unwrap_err();
        assert!(
            error.starts_with("/etc/coexist/acmecorp.toml:11: daemon.jitter_seconds: expected"),
            "{error}"
        );
        let error = parse("\n[daemon]\nschedule = \"* * * * *\"\n").unwrap_err();
        assert!(error.contains("unknown field `schedule`"), "{error}");
    }

    #[test]
    fn an_endpoint_reachable_from_other_hosts_needs_a_token() {
        let error = parse("\n[daemon]\nlisten = \"0.0.0.0:9464\"\n").unwrap_err();
        assert!(
            error.starts_with("/etc/coexist/acmecorp.toml:11: daemon.listen: 0.0.0.0:9464 is reachable from other hosts: add token ="),
            "{error}"
        );
        assert!(parse("\n[daemon]\nlisten = \"[::1]:9464\"\n").is_ok());
        let error = parse("\n[daemon]\nlisten = \"localhost\"\n").unwrap_err();
        assert!(
            error.contains("daemon.listen: `localhost` is not an address"),
            "{error}"
        );
    }

    #[test]
    fn an_organisation_id_names_a_schema_so_it_is_plain() {
        let text = ORGANISATION.replace("\"acmecorp\"", "\"Acme Corp\"");
        let error = Config::parse(Path::new("a.toml"), &text)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("a.toml:2: organisation.id: `Acme Corp` is not an organisation id"),
            "{error}"
        );
    }

    #[test]
    fn on_postgresql_each_organisation_has_its_own_schema() {
        let config = parse("\n[store]\nurl = \"postgres://coexist@db/coexist\"\n").unwrap();
        assert_eq!(
            config.store_url().unwrap(),
            "postgres://coexist@db/coexist?options%5Bsearch_path%5D=coexist_acmecorp"
        );
        let config =
            parse("\n[store]\nurl = \"postgres://coexist@db/coexist?sslmode=require\"\n").unwrap();
        assert_eq!(
            config.store_url().unwrap(),
            "postgres://coexist@db/coexist?sslmode=require&options%5Bsearch_path%5D=coexist_acmecorp"
        );
        // SQLite: one file per organisation already.
        let config = parse("\n[store]\nurl = \"sqlite:/var/lib/coexist/acme.db\"\n").unwrap();
        assert_eq!(
            config.store_url().unwrap(),
            "sqlite:/var/lib/coexist/acme.db"
        );
    }
}
