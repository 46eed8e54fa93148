#!/usr/bin/env bash
# The one command that runs every test of coexist (README.md, .ci/run).
#
# 1. Checks formatting and lints (cargo fmt --check, cargo clippy -D warnings).
# 2. Installs (Debian packages) and starts the real servers the tests talk
#    to, on loopback: OpenLDAP slapd, a Samba AD domain controller,
#    PostgreSQL and an authoritative DNS server, NSD (deploy/testenv.sh).
# 3. Builds once and runs every test of the workspace against them. A test
#    that needs a server fails when the server is missing: none skips.
#
# Extra arguments go to `cargo test` (e.g. deploy/test.sh -p coexist-ldap).
set -euo pipefail
cd "$(dirname "$0")/.."

# The workspace's rules hold on every landing: formatting, and clippy with
# the deny lints (no unwrap/expect/panic/todo outside tests) as errors.
echo "== Checking formatting (cargo fmt --check)" >&2
cargo fmt --all --check
echo "== Linting (cargo clippy --workspace --all-targets -- -D warnings)" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== Starting the test servers (deploy/testenv.sh up)" >&2
deploy/testenv.sh up
# shellcheck disable=SC1091
. "${COEXIST_TESTENV_DIR:-/tmp/coexist-testenv}/env"

echo "== Running every test (cargo test --workspace)" >&2
# Two cores: keep parallel test binaries from fighting over shared servers.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}"
exec cargo test --workspace --locked "$@"
