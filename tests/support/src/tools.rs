//! The programs tests run besides the servers, installed by
//! `deploy/testenv.sh up` (its `TOOL_PACKAGES`) and named in its env file.

use crate::env::var;

/// `promtool` of Debian's `prometheus` package
/// (`COEXIST_TEST_PROMTOOL`): checks the daemon's `/metrics`.
///
/// # Panics
///
/// When it is not set, as [`var`](crate::var) does: the test fails, it
/// never skips.
pub fn promtool() -> String {
    var("COEXIST_TEST_PROMTOOL")
}

/// Debian's `chromium` (`COEXIST_TEST_CHROMIUM`), run headless by the
/// status page's tests (`--headless --dump-dom`, `--screenshot`).
///
/// # Panics
///
/// When it is not set, as [`var`](crate::var) does.
pub fn chromium() -> String {
    var("COEXIST_TEST_CHROMIUM")
}
