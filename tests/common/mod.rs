//! Helpers shared by the integration tests: small organisations of
//! `simulated` systems written to a temporary folder, and a way to run the
//! real `coexist` binary against them.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Output;

use coexist_connector::{Attributes, Recipient, RecipientKind};
use coexist_simulated::Seed;

/// A person with a mailbox.
pub fn person(anchor: &str, address: &str) -> Recipient {
    let local = address.split('@').next().unwrap_or_default();
    Recipient {
        anchor: anchor.into(),
        kind: RecipientKind::Person,
        primary_address: address.into(),
        aliases: vec![],
        mailbox: true,
        enabled: true,
        attributes: Attributes {
            display_name: Some(local.to_string()),
            ..Attributes::default()
        },
        members: vec![],
        forwards_to: None,
        extra: Default::default(),
        locator: None,
        etag: None,
    }
}

/// `n` people `prefix0@domain` … on one system.
pub fn people(prefix: &str, domain: &str, n: usize) -> Vec<Recipient> {
    (0..n)
        .map(|i| person(&format!("{prefix}-{i}"), &format!("{prefix}{i}@{domain}")))
        .collect()
}

/// An organisation on disk: a configuration and seed files.
pub struct Org {
    pub dir: tempfile::TempDir,
    /// The environment variables every run of the binary gets.
    env: Vec<(String, String)>,
}

impl Org {
    /// Writes `config` (a coexist.toml) and the seeds (system id → recipients).
    pub fn new(config: &str, seeds: &[(&str, Vec<Recipient>)]) -> Org {
        let dir = tempfile::tempdir().expect("a temporary folder");
        std::fs::write(dir.path().join("coexist.toml"), config).expect("the configuration");
        let org = Org {
            dir,
            env: Vec::new(),
        };
        for (system, recipients) in seeds {
            org.seed(system, recipients.clone());
        }
        org
    }

    /// Replaces the seed of `system` (its recipients change).
    pub fn seed(&self, system: &str, recipients: Vec<Recipient>) {
        let seed = Seed {
            recipients,
            stubs: vec![],
        };
        std::fs::write(
            self.path(&format!("{system}.json")),
            serde_json::to_vec(&seed).expect("json"),
        )
        .expect("a seed");
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn config(&self) -> PathBuf {
        self.path("coexist.toml")
    }

    /// Rewrites the configuration.
    pub fn set_config(&self, config: &str) {
        std::fs::write(self.config(), config).expect("the configuration");
    }

    /// Sets the environment variable `name` to `value` for every run of the
    /// binary from now on (a password the configuration names with
    /// `{ env = "…" }`).
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.into(), value.into()));
    }

    /// `coexist --config <org>` with the organisation's environment, run in
    /// its folder (where relative paths such as `--password-file` land),
    /// for a test to add arguments and run or spawn.
    pub fn command(&self) -> std::process::Command {
        let mut command = std::process::Command::new(binary());
        command
            .current_dir(self.dir.path())
            .envs(self.env.iter().map(|(n, v)| (n.as_str(), v.as_str())))
            .arg("--config")
            .arg(self.config());
        command
    }

    /// Runs `coexist --config <org> ARGS`.
    pub fn run(&self, args: &[&str]) -> Output {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        coexist_with(&self.config(), &env, args)
    }

    /// Runs with `--output json` and parses stdout.
    pub fn json(&self, args: &[&str]) -> (i32, serde_json::Value) {
        json(|all| self.run(all), args)
    }

    /// `coexist sync`, which must succeed: its report.
    pub fn sync(&self) -> serde_json::Value {
        let (code, report) = self.json(&["sync"]);
        assert_eq!(code, 0, "{report:#}");
        report
    }

    /// Where mail to `address` from `from` (`internet` for outside mail)
    /// goes, as `coexist route`, which must succeed, says: its outcome.
    pub fn route(&self, from: &str, address: &str) -> serde_json::Value {
        let (code, traced) = self.json(&["route", address, "--from", from]);
        assert_eq!(code, 0, "{traced:#}");
        traced["outcome"].clone()
    }

    /// Writes the fake `google`'s service-account key where
    /// [`google_system`] names it.
    pub fn write_google_key(&self, google: &coexist_fake_google::FakeGoogle) {
        std::fs::write(
            self.path(GOOGLE_KEY_FILE),
            google.service_account_key_json(),
        )
        .expect("the key file");
    }

    /// The stubs a simulated system holds now (seed + state journal).
    pub fn stubs(&self, system: &str) -> Vec<coexist_connector::FoundStub> {
        let config = coexist_simulated::SimulatedConfig {
            seed: Some(self.path(&format!("{system}.json"))),
            state: Some(self.path(&format!("{system}-state.jsonl"))),
            ..Default::default()
        };
        coexist_simulated::SimulatedConnector::new(system, config)
            .expect("the simulated system")
            .stubs()
    }
}

/// Waits, polling every `poll`, until `reached()` holds while `child` (a
/// `coexist` run) still runs, then kills it (-9) and reaps it. Panics with
/// `never` when `within` has passed since `started` first, and when the
/// child ends before the kill.
pub fn kill_when(
    child: &mut std::process::Child,
    started: std::time::Instant,
    within: std::time::Duration,
    poll: std::time::Duration,
    never: &str,
    mut reached: impl FnMut() -> bool,
) {
    while !reached() {
        assert!(started.elapsed() < within, "{never}");
        assert!(
            child.try_wait().unwrap().is_none(),
            "it ended before the kill"
        );
        std::thread::sleep(poll);
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The path of the built binary.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_coexist"))
}

/// Runs the binary with a configuration.
pub fn coexist(config: &Path, args: &[&str]) -> Output {
    coexist_with(config, &[], args)
}

/// Runs the binary with a configuration and the environment variables
/// `env` set (such as the password a configuration names with
/// `{ env = "…" }`).
pub fn coexist_with(config: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    std::process::Command::new(binary())
        .envs(env.iter().copied())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("coexist runs")
}

/// Runs `run` with `--output json` before `args` and parses its stdout:
/// the exit code and the JSON. Panics, showing stdout and stderr, when
/// stdout is no JSON.
pub fn json(run: impl FnOnce(&[&str]) -> Output, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = run(&all);
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "coexist {args:?} printed no JSON ({e}):\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), value)
}

/// The acmecorp topology of google-coexistence.txt, on simulated systems
/// (kept in the test environment crate, beside its pieces).
pub const GOOGLE_AND_LDAP: &str = coexist_testenv::acmecorp::GOOGLE_AND_LDAP;

/// acmecorp's Google (the MX) and LDAP mail server ([`GOOGLE_AND_LDAP`]),
/// and a third system (`mail2`, routing domain mail2.acmecorp.com,
/// forwarding entries).
pub fn three_systems() -> String {
    format!(
        r#"{GOOGLE_AND_LDAP}
[[systems]]
id = "mail2"
kind = "simulated"
routing_domain = "mail2.acmecorp.com"
stub_style = "routing_address"
[systems.connection]
seed = "mail2.json"
state = "mail2-state.jsonl"
"#
    )
}

/// The operations a report's plan holds as `(system, action, address)`,
/// sorted.
pub fn operations(report: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut ops: Vec<_> = report["plan"]["operations"]
        .as_array()
        .unwrap_or_else(|| panic!("a plan: {report:#}"))
        .iter()
        .map(|op| {
            (
                op["system"].as_str().unwrap().to_string(),
                op["action"].as_str().unwrap().to_string(),
                op["address"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    ops.sort();
    ops
}

/// A report (of `sync`) whose plan holds no operation and no conflict.
pub fn assert_nothing_planned(report: &serde_json::Value) {
    assert_eq!(
        report["plan"]["operations"].as_array().unwrap().len(),
        0,
        "{report}"
    );
    assert!(
        report["plan"]["conflicts"].as_array().unwrap().is_empty(),
        "{report}"
    );
}

/// One operation as [`operations`] lists it.
pub fn op(system: &str, action: &str, address: &str) -> (String, String, String) {
    (system.into(), action.into(), address.into())
}

/// A fake server (the fake Google, the fake Microsoft 365) on a runtime of
/// its own, so that it keeps answering while the test thread waits for the
/// `coexist` subprocess.
pub struct Served<T> {
    // Dropped first: the server task is aborted while its runtime still runs.
    pub fake: T,
    _runtime: tokio::runtime::Runtime,
}

impl<T> Served<T> {
    /// Runs `start` (the fake's `start(options)`) on a new runtime of two
    /// worker threads, which then serves the fake until it is dropped.
    pub fn start<E: std::fmt::Debug>(
        start: impl std::future::Future<Output = Result<T, E>>,
    ) -> Served<T> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let fake = runtime.block_on(start).unwrap();
        Served {
            fake,
            _runtime: runtime,
        }
    }
}

impl<T> std::ops::Deref for Served<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.fake
    }
}

/// A simulated cloud system `cloud` (routing domain
/// acmecorp.mail.onmicrosoft.com, forwarding entries) seeded from
/// `cloud.json`, beside a directory on a real server.
pub const SIMULATED_CLOUD: &str = r#"[[systems]]
id = "cloud"
kind = "simulated"
routing_domain = "acmecorp.mail.onmicrosoft.com"
stub_style = "routing_address"
[systems.connection]
seed = "cloud.json"
state = "cloud-state.jsonl"
"#;

/// The fake Google without latency, served beside the test.
pub fn fake_google() -> Served<coexist_fake_google::FakeGoogle> {
    Served::start(coexist_fake_google::FakeGoogle::start(
        coexist_fake_google::FakeOptions {
            latency: std::time::Duration::ZERO,
            ..Default::default()
        },
    ))
}

/// The file, beside coexist.toml, of the fake Google's service-account key
/// that [`google_system`] names.
pub const GOOGLE_KEY_FILE: &str = "google-key.json";

/// The `[[systems]]` table of acmecorp's Google on the fake `google`:
/// routing domain gapps.acmecorp.com, unknown recipients relayed to
/// `ldap`, the key in [`GOOGLE_KEY_FILE`], fast (a high request budget,
/// short backoff). Ends inside `[systems.connection]`, so that a caller
/// may add connection keys or `[systems.connection.provision]`.
pub fn google_system(google: &coexist_fake_google::FakeGoogle) -> String {
    format!(
        r#"[[systems]]
id = "google"
kind = "google"
routing_domain = "gapps.acmecorp.com"
unknown_recipient = {{ relay = "ldap" }}
[systems.connection]
domain = "acmecorp.com"
admin = "admin@acmecorp.com"
service_account_key = {{ file = "{GOOGLE_KEY_FILE}" }}
directory_url = "{directory}"
contacts_url = "{contacts}"
requests_per_minute = 100000
retry_base_delay_ms = 5
retry_max_delay_ms = 50
"#,
        directory = google.directory_url(),
        contacts = google.contacts_url(),
    )
}
