#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `coexist daemon`, run as an admin runs it: the real binary on simulated
//! systems, its schedule every second, stopped with SIGTERM, reloaded with
//! SIGHUP, and (against the test environment's PostgreSQL) two daemons
//! sharing three organisations while one is killed with -9.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{people, Org, GOOGLE_AND_LDAP};

/// Every second, no random delay, the status endpoint on a free port.
const EVERY_SECOND: &str =
    "\n[daemon]\nsync_schedule = \"* * * * * *\"\njitter_seconds = 0\nlisten = \"127.0.0.1:0\"\n";

/// The acmecorp organisation whose mail server takes `delay_ms` per write.
fn slow_ldap(delay_ms: u64) -> String {
    GOOGLE_AND_LDAP.replace(
        "state = \"ldap-state.jsonl\"\n",
        &format!("state = \"ldap-state.jsonl\"\napply_delay_ms = {delay_ms}\n"),
    )
}

/// A daemon started in the background, its stderr (the log) in a file.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(args: &[&str], log: PathBuf) -> Daemon {
        let child = Command::new(common::binary())
            .args(["--log-format", "json"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    /// Waits at most `limit` for the daemon to exit; its exit code.
    fn wait(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The log lines, each one JSON object (the test fails on any other).
    fn lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"))
            })
            .collect()
    }

    /// Where its status endpoint listens (from the log).
    fn address(&self) -> String {
        wait_until(Duration::from_secs(30), "the daemon to start", || {
            !self.said("coexist daemon started").is_empty()
        });
        self.said("coexist daemon started")[0]["fields"]["listen"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// `METHOD path` on its status endpoint: the status code and the body.
    fn http(&self, method: &str, path: &str, headers: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.address()).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n{headers}\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// The log lines whose message is `message`.
    fn said(&self, message: &str) -> Vec<serde_json::Value> {
        self.lines()
            .into_iter()
            .filter(|l| l["fields"]["message"] == message)
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The organisation a log line is about (its `organisation` span).
fn organisation_of(line: &serde_json::Value) -> Option<String> {
    line["spans"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == "organisation")
        .and_then(|s| s["id"].as_str())
        .map(str::to_string)
}

/// Waits until `done` holds, failing after `limit` with `what`.
fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The runs of the organisation at `config`, newest first (`coexist runs`).
fn runs(config: &Path) -> Vec<serde_json::Value> {
    let out = common::coexist(config, &["--output", "json", "runs", "--limit", "1000"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
}

#[test]
fn the_daemon_syncs_on_its_schedule_and_exits_0_on_sigterm_with_the_lock_released() {
    let org = Org::new(
        &format!("{GOOGLE_AND_LDAP}{EVERY_SECOND}"),
        &[
            ("google", people("g", "acmecorp.com", 3)),
            ("ldap", people("m", "acmecorp.com", 4)),
        ],
    );
    let config = org.config();
    let mut daemon = Daemon::start(
        &["--config", config.to_str().unwrap(), "daemon"],
        org.path("daemon.log"),
    );
    wait_until(Duration::from_secs(30), "three runs", || {
        daemon.said("run ended").len() >= 3
    });
    // Each run is the engine's sync, recorded in the history.
    assert_eq!(org.stubs("ldap").len(), 3);
    assert_eq!(org.stubs("google").len(), 4);
    // A person added to Google reaches the mail server by the schedule alone.
    org.seed("google", people("g", "acmecorp.com", 4));
    wait_until(Duration::from_secs(30), "the new person's stub", || {
        org.stubs("ldap").len() == 4
    });
    // The status endpoint is mounted, and its metrics count the runs.
    assert_eq!(daemon.http("GET", "/healthz", "").0, 200);
    let (status, metrics) = daemon.http("GET", "/metrics", "");
    assert_eq!(status, 200);
    assert!(metrics.contains("organisation=\"default\""), "{metrics}");

    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(15)), Some(0));
    let history = runs(&config);
    assert!(history.len() >= 3, "{history:?}");
    assert!(
        history.iter().all(|r| r["status"] == "ok"),
        "every run ended, none is left running: {history:?}"
    );
    // The lock was released: a sync right after runs (exit 0, not 7).
    let out = org.run(&["sync"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Every run was logged with its organisation's span and its run id.
    let ended = daemon.said("run ended");
    assert!(ended
        .iter()
        .all(|l| organisation_of(l).as_deref() == Some("default")));
    assert!(
        ended.iter().all(|l| l["fields"]["run"].is_i64()),
        "{ended:?}"
    );
    assert!(!daemon.said("stopped").is_empty());
}

#[test]
fn sigterm_stops_a_run_between_chunks_records_it_and_the_next_run_completes_it() {
    // 300 creates on the mail server at 20 ms each: a run of six seconds
    // or more, applied 100 at a time.
    let org = Org::new(
        &format!("{}{EVERY_SECOND}", slow_ldap(20)),
        &[
            ("google", people("g", "acmecorp.com", 300)),
            ("ldap", people("m", "acmecorp.com", 1)),
        ],
    );
    let config = org.config();
    let mut daemon = Daemon::start(
        &["--config", config.to_str().unwrap(), "daemon"],
        org.path("daemon.log"),
    );
    wait_until(Duration::from_secs(30), "the first writes", || {
        !org.stubs("ldap").is_empty()
    });
    let stopping = Instant::now();
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(20)), Some(0));
    let stopped_in = stopping.elapsed();
    let written = org.stubs("ldap").len();
    assert!(
        written > 0 && written < 300,
        "the run stopped part-way: {written} of 300 written in {stopped_in:?}"
    );
    let history = runs(&config);
    assert_eq!(history[0]["status"], "interrupted", "{history:?}");
    assert!(
        history[0]["summary"]["error"]
            .as_str()
            .unwrap()
            .contains("stopped on request"),
        "{history:?}"
    );
    // The lock was released and the next sync completes the work.
    let out = org.run(&["sync"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(org.stubs("ldap").len(), 300);
}

#[test]
fn sighup_rereads_the_configuration_and_keeps_the_old_one_when_the_new_is_invalid() {
    // Once a year: no run while the test lasts.
    let yearly = "\n[daemon]\nsync_schedule = \"@yearly\"\njitter_seconds = 0\nlisten = \"127.0.0.1:0\"\ntoken = { file = \"token\" }\n";
    let org = Org::new(
        &format!("{GOOGLE_AND_LDAP}{yearly}"),
        &[
            ("google", people("g", "acmecorp.com", 2)),
            ("ldap", people("m", "acmecorp.com", 2)),
        ],
    );
    std::fs::write(org.path("token"), "s3cret\n").unwrap();
    let config = org.config();
    let mut daemon = Daemon::start(
        &["--config", config.to_str().unwrap(), "daemon"],
        org.path("daemon.log"),
    );
    // A run asked for over HTTP (the token required) runs now.
    assert_eq!(daemon.http("POST", "/api/sync", "").0, 401, "no token");
    let (status, body) = daemon.http("POST", "/api/sync", "Authorization: Bearer s3cret\r\n");
    assert!((200..300).contains(&status), "{status} {body}");
    wait_until(Duration::from_secs(30), "the run asked for", || {
        daemon.said("run ended").len() == 1
    });
    // An invalid file: the log says why, and the old configuration stays.
    org.set_config(&format!(
        "{GOOGLE_AND_LDAP}\n[daemon]\nsync_schedule = \"every second\"\n"
    ));
    daemon.signal("HUP");
    wait_until(Duration::from_secs(10), "the refusal in the log", || {
        daemon.lines().iter().any(|l| {
            l["level"] == "WARN"
                && l["fields"]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("daemon.sync_schedule"))
        })
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        daemon.said("run ended").len(),
        1,
        "the yearly schedule stays"
    );
    assert!(daemon.child.try_wait().unwrap().is_none(), "still running");
    // A valid file: its schedule takes over.
    org.set_config(&format!("{GOOGLE_AND_LDAP}{EVERY_SECOND}"));
    daemon.signal("HUP");
    wait_until(Duration::from_secs(30), "runs on the new schedule", || {
        daemon.said("run ended").len() >= 3
    });
    assert_eq!(org.stubs("ldap").len(), 2);
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(15)), Some(0));
}

#[test]
fn a_run_due_while_another_holds_the_store_is_skipped_and_counted() {
    // An admin's sync of 200 slow writes holds the lock for seconds.
    let org = Org::new(
        &format!("{}{EVERY_SECOND}", slow_ldap(20)),
        &[
            ("google", people("g", "acmecorp.com", 200)),
            ("ldap", people("m", "acmecorp.com", 1)),
        ],
    );
    let config = org.config();
    let admin = Command::new(common::binary())
        .arg("--config")
        .arg(&config)
        .arg("sync")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut admin = scopeguard(admin);
    wait_until(Duration::from_secs(30), "the admin's sync to write", || {
        !org.stubs("ldap").is_empty()
    });
    let mut daemon = Daemon::start(
        &["--config", config.to_str().unwrap(), "daemon"],
        org.path("daemon.log"),
    );
    wait_until(Duration::from_secs(30), "a skipped run", || {
        !daemon
            .said("skipped: another run holds this organisation's store")
            .is_empty()
    });
    assert_eq!(admin.0.wait().unwrap().code(), Some(0));
    // Once the admin's sync ended, the daemon's runs go ahead.
    wait_until(Duration::from_secs(30), "a run of the daemon", || {
        !daemon.said("run ended").is_empty()
    });
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(15)), Some(0));
    let skipped = daemon.said("skipped: another run holds this organisation's store");
    assert_eq!(skipped[0]["fields"]["holder_command"], "sync");
    // The history holds the admin's run and the daemon's, never two at once.
    let history = runs(&config);
    assert_no_overlap("default", &history);
}

/// A child killed when the test ends, whatever happens.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scopeguard(child: Child) -> Guard {
    Guard(child)
}

/// No two runs of `organisation` overlap in time.
fn assert_no_overlap(organisation: &str, history: &[serde_json::Value]) {
    let time = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("{v}"))).unwrap()
    };
    let mut spans: Vec<_> = history
        .iter()
        .map(|r| {
            (
                time(&r["started_at"]),
                time(&r["finished_at"]),
                r["id"].clone(),
            )
        })
        .collect();
    spans.sort_by_key(|s| s.0);
    for pair in spans.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "{organisation}: run {} (until {}) overlaps run {} (from {})",
            pair[0].2,
            pair[0].1,
            pair[1].2,
            pair[1].0
        );
    }
}

/// One organisation of the shared PostgreSQL store: its configuration in
/// the daemons' folder, its simulated systems' seeds and states beside it.
struct Tenant {
    id: String,
    config: PathBuf,
    folder: PathBuf,
}

impl Tenant {
    fn new(folder: &Path, id: &str, postgres: &str) -> Tenant {
        let config = GOOGLE_AND_LDAP
            .replace(
                "[organisation]\n",
                &format!("[organisation]\nid = \"{id}\"\n"),
            )
            .replace("\"google.json\"", &format!("\"{id}-google.json\""))
            .replace(
                "\"google-state.jsonl\"",
                &format!("\"{id}-google-state.jsonl\""),
            )
            .replace("\"ldap.json\"", &format!("\"{id}-ldap.json\""))
            .replace(
                "state = \"ldap-state.jsonl\"\n",
                &format!("state = \"{id}-ldap-state.jsonl\"\napply_delay_ms = 15\n"),
            );
        let config = format!(
            "{config}\n[store]\nurl = \"{postgres}\"\n\n[daemon]\nsync_schedule = \"* * * * * *\"\njitter_seconds = 0\nlock_lease_seconds = 4\nlisten = \"127.0.0.1:0\"\n"
        );
        let path = folder.join(format!("{id}.toml"));
        std::fs::write(&path, config).unwrap();
        let tenant = Tenant {
            id: id.to_string(),
            config: path,
            folder: folder.to_path_buf(),
        };
        tenant.seed("ldap", 5);
        tenant.seed("google", 5);
        tenant
    }

    /// `n` people on `system`, written whole at once (a read never sees
    /// half a file).
    fn seed(&self, system: &str, n: usize) {
        let seed = coexist_simulated::Seed {
            recipients: people(&format!("{}{system}", self.id), "acmecorp.com", n),
            stubs: vec![],
        };
        let path = self.folder.join(format!("{}-{system}.json", self.id));
        let partial = path.with_extension("partial");
        std::fs::write(&partial, serde_json::to_vec(&seed).unwrap()).unwrap();
        std::fs::rename(partial, path).unwrap();
    }

    fn stubs(&self, system: &str) -> usize {
        let config = coexist_simulated::SimulatedConfig {
            seed: Some(self.folder.join(format!("{}-{system}.json", self.id))),
            state: Some(
                self.folder
                    .join(format!("{}-{system}-state.jsonl", self.id)),
            ),
            ..Default::default()
        };
        coexist_simulated::SimulatedConnector::new(system, config)
            .unwrap()
            .stubs()
            .len()
    }
}

#[test]
fn two_daemons_share_three_organisations_on_postgresql_and_survive_a_kill_9() {
    let postgres = coexist_testenv::postgres_url();
    let folder = tempfile::tempdir().unwrap();
    let prefix = coexist_testenv::random();
    let tenants: Vec<Tenant> = ["a", "b", "c"]
        .iter()
        .map(|n| Tenant::new(folder.path(), &format!("t{prefix}_{n}"), &postgres))
        .collect();
    let logs = tempfile::tempdir().unwrap();
    let dir = folder.path().to_str().unwrap();
    let mut first = Daemon::start(
        &["daemon", "--config-dir", dir],
        logs.path().join("first.log"),
    );
    let mut second = Daemon::start(
        &["daemon", "--config-dir", dir],
        logs.path().join("second.log"),
    );

    // People join every organisation's Google side while both daemons run;
    // the first daemon is killed with -9 part-way.
    let mut google = 5;
    let mut killed_at = None;
    for round in 0..12 {
        google += 10;
        for tenant in &tenants {
            tenant.seed("google", google);
        }
        std::thread::sleep(Duration::from_millis(700));
        if round == 5 {
            // Killed once it has done some of the work (its runs are in
            // the log), likely in the middle of another.
            wait_until(Duration::from_secs(60), "a run of the first daemon", || {
                !first.said("run ended").is_empty()
            });
            first.child.kill().unwrap();
            first.child.wait().unwrap();
            killed_at = Some(chrono::Utc::now());
        }
    }
    let killed_at = killed_at.unwrap();
    // Nothing is lost: every organisation's mail server gets every
    // Google person, and Google every mail-server person.
    for tenant in &tenants {
        wait_until(
            Duration::from_secs(60),
            &format!("{}: every stub", tenant.id),
            || tenant.stubs("ldap") == google && tenant.stubs("google") == 5,
        );
    }
    second.signal("TERM");
    assert_eq!(second.wait(Duration::from_secs(20)), Some(0));

    // Both daemons worked; the first's organisations were taken over.
    let ran = |daemon: &Daemon| -> Vec<String> {
        daemon
            .said("run ended")
            .iter()
            .filter_map(organisation_of)
            .collect()
    };
    assert!(
        !ran(&first).is_empty(),
        "the first daemon ran before it was killed"
    );
    let after_kill: Vec<String> = second
        .said("run ended")
        .iter()
        .filter(|l| {
            chrono::DateTime::parse_from_rfc3339(l["timestamp"].as_str().unwrap()).unwrap()
                > killed_at
        })
        .filter_map(organisation_of)
        .collect();
    for tenant in &tenants {
        assert!(
            after_kill.contains(&tenant.id),
            "{} kept being synced after the kill: {after_kill:?}",
            tenant.id
        );
        // Never two runs of one organisation at once; none left running.
        let history = runs(&tenant.config);
        assert!(history.len() >= 3, "{}: {history:?}", tenant.id);
        assert!(
            history
                .iter()
                .all(|r| r["status"] == "ok" || r["status"] == "interrupted"),
            "{}: {history:?}",
            tenant.id
        );
        assert_no_overlap(&tenant.id, &history);
    }
    // The killed daemon's runs, if it was in some, are closed as interrupted
    // by whoever took its lock over.
    let interrupted: usize = tenants
        .iter()
        .map(|t| {
            runs(&t.config)
                .iter()
                .filter(|r| r["status"] == "interrupted")
                .count()
        })
        .sum();
    assert!(
        interrupted <= tenants.len(),
        "only the killed daemon's runs: {interrupted}"
    );
    drop_schemas(&postgres, &tenants);
}

/// Drops the tenants' schemas from the shared test database.
fn drop_schemas(postgres: &str, tenants: &[Tenant]) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let pool = sqlx::PgPool::connect(postgres).await.unwrap();
        for tenant in tenants {
            sqlx::query(&format!("DROP SCHEMA coexist_{} CASCADE", tenant.id))
                .execute(&pool)
                .await
                .unwrap();
        }
    });
}

#[test]
fn an_organisation_with_a_gal_server_table_is_served_as_an_address_book_kept_current() {
    let org = Org::new(
        &format!(
            "{GOOGLE_AND_LDAP}{EVERY_SECOND}\n[gal_server]\nlisten = \"127.0.0.1:0\"\nanonymous = true\nrefresh_seconds = 1\n"
        ),
        &[
            ("google", people("g", "acmecorp.com", 3)),
            ("ldap", people("m", "acmecorp.com", 4)),
        ],
    );
    let config = org.config();
    let mut daemon = Daemon::start(
        &["--config", config.to_str().unwrap(), "daemon"],
        org.path("daemon.log"),
    );
    wait_until(Duration::from_secs(30), "the address book", || {
        !daemon
            .said("serving the GAL as an LDAP address book")
            .is_empty()
    });
    let serving = &daemon.said("serving the GAL as an LDAP address book")[0]["fields"];
    let url = serving["urls"].as_str().unwrap().to_string();
    let base = serving["base"].as_str().unwrap().to_string();
    let search = |filter: &str| -> String {
        let out = Command::new("ldapsearch")
            .args([
                "-x",
                "-LLL",
                "-o",
                "nettimeout=5",
                "-H",
                &url,
                "-b",
                &base,
                filter,
                "mail",
            ])
            .output()
            .unwrap_or_else(|e| panic!("ldapsearch (deploy/testenv.sh installs it): {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The daemon's own runs compute the GAL; the address book follows.
    wait_until(Duration::from_secs(30), "g0 in the address book", || {
        search("(mail=g0@acmecorp.com)").contains("mail: g0@acmecorp.com")
    });
    org.seed("google", people("g", "acmecorp.com", 4));
    wait_until(
        Duration::from_secs(30),
        "the new person in the address book",
        || search("(mail=g3@acmecorp.com)").contains("mail: g3@acmecorp.com"),
    );

    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(15)), Some(0));
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the address book stopped with the daemon"
    );
}
