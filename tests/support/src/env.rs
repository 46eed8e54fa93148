//! The settings of the test environment, and random names.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Where `deploy/testenv.sh up` writes the test servers' settings:
/// `$COEXIST_TESTENV_DIR/env`, `/tmp/coexist-testenv/env` when that
/// variable is not set (the script's own default).
pub fn env_file_path() -> PathBuf {
    let dir =
        std::env::var("COEXIST_TESTENV_DIR").unwrap_or_else(|_| "/tmp/coexist-testenv".into());
    PathBuf::from(dir).join("env")
}

/// The settings in the env file at [`env_file_path`], read once per
/// process: each `export NAME=value` line (a value may stand in single
/// quotes, which are removed), other lines ignored. Empty when there is no
/// such file: [`var`] then says what to do.
pub fn env_file() -> &'static HashMap<String, String> {
    static FILE: OnceLock<HashMap<String, String>> = OnceLock::new();
    FILE.get_or_init(|| {
        std::fs::read_to_string(env_file_path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(name, value)| (name.to_string(), unquote(value).to_string()))
            .collect()
    })
}

/// `value` without one pair of surrounding single or double quotes.
fn unquote(value: &str) -> &str {
    for quote in ['\'', '"'] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

/// The test environment's setting `name` (e.g. `COEXIST_TEST_SLAPD_URL`):
/// from the process environment (after `. /tmp/coexist-testenv/env`, as
/// `deploy/test.sh` does), else from the [`env_file`]; `None` when neither
/// has it. For settings a test can do without (a pid file to read CPU time
/// from); the others want [`var`].
pub fn try_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .or_else(|| env_file().get(name).cloned())
}

/// The test environment's setting `name`, as [`try_var`] finds it.
///
/// # Panics
///
/// When it is not set: the test servers are not running, and the test
/// fails saying to start them (`deploy/testenv.sh up`, or the README's test
/// command) rather than skipping.
pub fn var(name: &str) -> String {
    try_var(name).unwrap_or_else(|| {
        panic!(
            "{name} is not set: the test servers are not running. Run deploy/testenv.sh up, or the README test command"
        )
    })
}

/// Eight random lower-case ASCII letters: a name (a subtree, an account,
/// a file) no other test, run or process uses at the same time.
pub fn random() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..8)
        .map(|_| char::from(b'a' + rng.gen_range(0..26)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_lose_one_pair_of_quotes() {
        assert_eq!(unquote("ldap://127.0.0.1:3389"), "ldap://127.0.0.1:3389");
        assert_eq!(unquote("'a b'"), "a b");
        assert_eq!(unquote("\"a b\""), "a b");
        assert_eq!(unquote("'"), "'");
        assert_eq!(unquote("it's"), "it's");
    }

    #[test]
    fn random_names_are_eight_lower_case_letters() {
        let name = random();
        assert_eq!(name.len(), 8);
        assert!(name.bytes().all(|b| b.is_ascii_lowercase()), "{name}");
        assert_ne!(random(), random());
    }
}
