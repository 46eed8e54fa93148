#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Two promises of the command line, run as a user runs it (the real
//! binary against simulated systems on disk):
//!
//! - a command whose stdout is closed (`coexist sync | true`) stops
//!   writing without a panic, exits 1 with one line on stderr, records its
//!   run and gives the run lock back, so no other host waits out the lease;
//! - every relative path in the configuration file, the store's
//!   `sqlite:` path included, is relative to the folder of that file, not
//!   to the current directory.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use coexist::store::{LockHolder, Store};
use common::{people, Org, GOOGLE_AND_LDAP};

fn org() -> Org {
    Org::new(
        GOOGLE_AND_LDAP,
        &[
            ("google", people("g", "acmecorp.com", 3)),
            ("ldap", people("m", "acmecorp.com", 5)),
        ],
    )
}

/// Runs `coexist --config CONFIG ARGS` as `coexist ARGS | true` runs it:
/// stdout is a pipe whose reader has already exited, so the first write
/// fails with a broken pipe (no race with the reader).
fn with_stdout_closed(config: &Path, args: &[&str]) -> Output {
    let mut reader = Command::new("true")
        .stdin(Stdio::piped())
        .spawn()
        .expect("true starts");
    let pipe = reader.stdin.take().expect("the pipe into true");
    reader.wait().expect("true ends");
    Command::new(common::binary())
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(pipe))
        .output()
        .expect("coexist runs")
}

/// The command stopped writing as promised: no panic, exit 1 (an I/O
/// error, as `export-gal` has always said), and one line on stderr that
/// says stdout was closed.
fn assert_stopped_quietly(what: &str, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    assert_ne!(out.status.code(), Some(101), "{what}: {stderr}");
    assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
    let closed: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("stdout was closed"))
        .collect();
    assert_eq!(closed.len(), 1, "{what}: {stderr}");
}

/// Whether another host could take the store's run lock right now (it
/// would otherwise wait out the lease of the row left behind).
fn lock_is_free(org: &Org) -> bool {
    let config = coexist::config::Config::load(&org.config()).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::open(&config.store_url().unwrap()).await.unwrap();
        let elsewhere = LockHolder {
            pid: 1,
            host: "another-host.invalid".into(),
            command: "sync".into(),
            since: coexist::store::now(),
            expires_at: i64::MAX / 2,
        };
        let free = store.try_lock(&elsewhere).await.unwrap().is_none();
        if free {
            store.unlock(&elsewhere).await.unwrap();
        }
        store.close().await;
        free
    })
}

/// The runs `coexist runs --output json` lists, newest first.
fn runs(org: &Org) -> Vec<serde_json::Value> {
    let (code, runs) = org.json(&["runs"]);
    assert_eq!(code, 0, "{runs}");
    runs.as_array().cloned().unwrap_or_default()
}

#[test]
fn a_closed_stdout_ends_sync_without_a_panic_and_releases_the_lock() {
    let org = org();
    let out = with_stdout_closed(&org.config(), &["sync"]);
    assert_stopped_quietly("sync", &out);
    assert!(lock_is_free(&org), "the run lock was left behind");
    // The run itself completed and is recorded as such.
    let runs = runs(&org);
    assert_eq!(runs[0]["command"], "sync", "{runs:?}");
    assert_eq!(runs[0]["status"], "ok", "{runs:?}");
    assert_eq!(org.stubs("ldap").len(), 3);
    // The next sync starts at once and finds nothing left to do.
    let (code, second) = org.json(&["sync"]);
    assert_eq!(code, 0, "{second}");
    assert_eq!(second["apply"]["done"], 0, "{second}");
}

#[test]
fn a_closed_stdout_ends_a_json_sync_without_a_panic_and_releases_the_lock() {
    let org = org();
    let out = with_stdout_closed(&org.config(), &["--output", "json", "sync"]);
    assert_stopped_quietly("sync --output json", &out);
    assert!(lock_is_free(&org), "the run lock was left behind");
    assert_eq!(runs(&org)[0]["status"], "ok");
}

#[test]
fn a_closed_stdout_ends_plan_without_a_panic_and_releases_the_lock() {
    let org = org();
    let out = with_stdout_closed(&org.config(), &["plan"]);
    assert_stopped_quietly("plan", &out);
    assert!(lock_is_free(&org), "the run lock was left behind");
    let out = with_stdout_closed(&org.config(), &["--output", "json", "plan"]);
    assert_stopped_quietly("plan --output json", &out);
    assert!(lock_is_free(&org), "the run lock was left behind");
}

#[test]
fn a_closed_stdout_ends_every_reading_command_without_a_panic() {
    let org = org();
    let (code, report) = org.json(&["sync"]);
    assert_eq!(code, 0, "{report}");
    let commands: &[&[&str]] = &[
        &["doctor"],
        &["runs"],
        &["route", "g0@acmecorp.com", "--from", "internet"],
        &["check-config"],
        &["migrate"],
        &["export-gal", "--format", "ldif"],
        &["--output", "json", "doctor"],
        &["--output", "json", "runs"],
        &[
            "--output",
            "json",
            "route",
            "m0@acmecorp.com",
            "--from",
            "google",
        ],
        &["--output", "json", "check-config"],
    ];
    for args in commands {
        let out = with_stdout_closed(&org.config(), args);
        assert_stopped_quietly(&args.join(" "), &out);
    }
    assert!(lock_is_free(&org), "the run lock was left behind");
}

#[test]
fn a_closed_stdout_ends_apply_without_a_panic_and_releases_the_lock() {
    let org = org();
    let saved = org.path("plan.json");
    let out = common::coexist(&org.config(), &["plan", "--save", saved.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = with_stdout_closed(&org.config(), &["apply", saved.to_str().unwrap()]);
    assert_stopped_quietly("apply", &out);
    assert!(lock_is_free(&org), "the run lock was left behind");
    assert_eq!(runs(&org)[0]["command"], "apply");
    assert_eq!(org.stubs("google").len(), 5);
}

#[test]
fn a_failure_with_stdout_closed_still_says_why_on_stderr() {
    let org = org();
    // Route from a system that does not exist: exit 2, and in JSON mode
    // the error document cannot reach the closed stdout.
    let out = with_stdout_closed(
        &org.config(),
        &[
            "--output",
            "json",
            "route",
            "g0@acmecorp.com",
            "--from",
            "exchange",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--from exchange"), "{stderr}");
}

/// The acmecorp organisation with `store` as its `[store]` table.
fn org_with_store(url: &str) -> Org {
    let config = format!("{GOOGLE_AND_LDAP}\n[store]\nurl = \"{url}\"\n");
    Org::new(
        &config,
        &[
            ("google", people("g", "acmecorp.com", 2)),
            ("ldap", people("m", "acmecorp.com", 2)),
        ],
    )
}

/// Runs `coexist --config CONFIG ARGS` from the folder `cwd`.
fn run_in(cwd: &Path, config: &Path, args: &[&str]) -> Output {
    Command::new(common::binary())
        .current_dir(cwd)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("coexist runs")
}

#[test]
fn a_relative_sqlite_store_path_is_relative_to_the_configuration_file() {
    for url in [
        "sqlite:state/coexist.db",
        "sqlite://state/coexist.db",
        "sqlite:./state/coexist.db",
    ] {
        let org = org_with_store(url);
        let elsewhere = tempfile::tempdir().unwrap();
        let out = run_in(elsewhere.path(), &org.config(), &["sync"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            org.path("state/coexist.db").is_file(),
            "{url}: no store beside the configuration file"
        );
        assert!(
            !elsewhere.path().join("state").exists(),
            "{url}: a store in the current directory"
        );
        // The next run, from yet another folder, finds the same store.
        let other = tempfile::tempdir().unwrap();
        let out = run_in(other.path(), &org.config(), &["--output", "json", "runs"]);
        let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(runs.as_array().map(Vec::len), Some(1), "{url}: {runs}");
        // check-config says where the store is: beside the configuration.
        let out = run_in(other.path(), &org.config(), &["check-config"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let beside = org.path("state/coexist.db");
        assert!(text.contains(&*beside.to_string_lossy()), "{url}: {text}");
    }
}

#[test]
fn a_relative_sqlite_store_path_with_a_query_is_relative_to_the_configuration_file() {
    let org = org_with_store("sqlite:store.db?mode=rwc");
    let elsewhere = tempfile::tempdir().unwrap();
    let out = run_in(elsewhere.path(), &org.config(), &["sync"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(org.path("store.db").is_file());
    assert!(!elsewhere.path().join("store.db").exists());
}

#[test]
fn a_configuration_named_relatively_finds_its_store_beside_it() {
    // `--config conf/coexist.toml` from the parent folder: the store is
    // conf/state/coexist.db, as the seeds are conf/google.json.
    let org = org_with_store("sqlite:state/coexist.db");
    let parent = org.dir.path().parent().unwrap();
    let name = org.dir.path().file_name().unwrap();
    let config = Path::new(name).join("coexist.toml");
    let out = run_in(parent, &config, &["sync"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(org.path("state/coexist.db").is_file());
}
