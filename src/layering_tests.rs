//! The boundaries ARCHITECTURE.md states, checked: what each crate may
//! depend on, and what the store may import. (Purity of the reconciler is
//! the compiler's to check once its crate depends on nothing that does
//! I/O; these tests keep it that way.)

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The names of the `[dependencies]` of the crate at `dir`.
fn dependencies(dir: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join(dir).join("Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    manifest
        .get("dependencies")
        .and_then(|d| d.as_table())
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[test]
fn the_model_is_data_only() {
    assert_eq!(dependencies("model"), ["idna", "serde", "thiserror"]);
}

#[test]
fn the_reconciler_depends_on_the_model_and_nothing_that_does_io() {
    assert_eq!(
        dependencies("reconcile"),
        ["coexist-model", "rustc-hash", "serde"]
    );
}

#[test]
fn no_connector_depends_on_another_or_on_the_binary() {
    let ours = |dir: &str| -> Vec<String> {
        dependencies(dir)
            .into_iter()
            .filter(|d| d.starts_with("coexist"))
            .collect()
    };
    for dir in ["connectors/ldap", "connectors/simulated"] {
        assert_eq!(ours(dir), ["coexist-connector"], "{dir}");
    }
    // The cloud connectors share the HTTP plumbing, which is no connector.
    for dir in ["connectors/google", "connectors/m365"] {
        assert_eq!(ours(dir), ["coexist-connector", "coexist-http"], "{dir}");
    }
    assert_eq!(ours("connectors/http"), ["coexist-connector"]);
    assert_eq!(ours("connectors/core"), ["coexist-model"]);
}

#[test]
fn the_store_imports_neither_the_reconciler_nor_a_connector() {
    for file in rust_files(&root().join("src/store")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for forbidden in [
            "crate::reconcile",
            "coexist_reconcile",
            "crate::engine",
            "coexist_ldap",
            "coexist_google",
            "coexist_m365",
            "coexist_simulated",
        ] {
            assert!(
                !text.contains(forbidden),
                "{} mentions {forbidden}",
                file.display()
            );
        }
    }
}

#[test]
fn the_test_environment_crate_is_test_support_only() {
    // Product code never depends on it; it depends on no coexist crate, so
    // that every crate's tests can use it.
    for dir in [
        ".",
        "model",
        "reconcile",
        "connectors/core",
        "connectors/simulated",
        "connectors/ldap",
        "connectors/google",
        "connectors/m365",
    ] {
        assert!(
            !dependencies(dir).iter().any(|d| d == "coexist-testenv"),
            "{dir} depends on the test environment crate"
        );
    }
    let ours: Vec<String> = dependencies("tests/support")
        .into_iter()
        .filter(|d| d.starts_with("coexist"))
        .collect();
    assert!(ours.is_empty(), "{ours:?}");
}
