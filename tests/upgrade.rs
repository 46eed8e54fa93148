//! Formats that can change: a store and a saved plan written by the
//! previous version of coexist (commit cd1c7e6, before plans and exports
//! carried a format) are read by this one. The fixture in
//! `tests/fixtures/previous-version` was made with that version's binary:
//! a `sync` of two simulated systems, then a newcomer on ldap and
//! `plan --save plan.json`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// A copy of the fixture organisation in a temporary folder.
fn previous_version() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/previous-version");
    for entry in std::fs::read_dir(fixture).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn run(dir: &Path, args: &[&str]) -> (i32, Value, String) {
    let out = common::coexist(
        &dir.join("coexist.toml"),
        &[&["--output", "json"], args].concat(),
    );
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn plan_file(dir: &Path) -> PathBuf {
    dir.join("plan.json")
}

#[test]
fn a_plan_saved_by_the_previous_version_applies_to_its_store() {
    let org = previous_version();
    let plan = plan_file(org.path());
    let (code, report, stderr) = run(org.path(), &["apply", plan.to_str().unwrap()]);
    assert_eq!(code, 0, "{report} {stderr}");
    assert_eq!(report["done"], 1, "{report}");

    // The objects the previous version staged are not taken for changed
    // ones, and nothing is left to do.
    let (code, sync, stderr) = run(org.path(), &["sync"]);
    assert_eq!(code, 0, "{sync} {stderr}");
    for pull in sync["pulls"].as_array().unwrap() {
        assert_eq!(pull["staged"]["changed"], 0, "{pull}");
    }
    assert_eq!(sync["plan"]["summary"]["create"], 0, "{sync}");
    assert_eq!(sync["plan"]["format"], coexist::plan::FORMAT, "{sync}");
}

#[test]
fn a_plan_of_the_previous_version_is_still_stale_once_the_policy_changed() {
    let org = previous_version();
    let config = org.path().join("coexist.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("mithi.acmecorp.com", "mail.acmecorp.com"),
    )
    .unwrap();
    let plan = plan_file(org.path());
    let (code, _, stderr) = run(org.path(), &["apply", plan.to_str().unwrap()]);
    assert_eq!(code, 5, "{stderr}");
}

#[test]
fn a_plan_in_a_newer_format_is_refused_saying_so() {
    let org = previous_version();
    let plan = plan_file(org.path());
    let mut document: Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    document["format"] = Value::from(99);
    std::fs::write(&plan, document.to_string()).unwrap();
    let (code, _, stderr) = run(org.path(), &["apply", plan.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("format 99, written by a newer coexist"),
        "{stderr}"
    );
}
