#!/bin/sh
# An idle `coexist daemon` serving many organisations: its resident memory
# and CPU between runs (issue 12's targets: under 50 MB and under 1% of a
# core with 50 organisations).
#
#   deploy/bench-daemon.sh [ORGANISATIONS] [SECONDS]     (default 50 and 30)
#   COEXIST_BIN=target/release/coexist deploy/bench-daemon.sh   (no build)
#
# Each organisation is the demo's acmecorp (1000 people and 7 groups on
# three simulated systems), its store a schema of the test PostgreSQL when
# COEXIST_TEST_POSTGRES_URL is set (deploy/testenv.sh's env file is read if
# present), else a SQLite file each. The daemon (release build) serves them
# all with the default schedule (every 15 minutes); each organisation is
# synced once at start (POST /api/sync: its first sync, 2014 stubs written),
# and once every run has ended and 65 s more have passed (time for
# khugepaged, which would fill the allocator's huge pages while the daemon
# idles, were they allowed: the binary's mimalloc is built without them),
# resident memory and CPU time are read from /proc over SECONDS. Prints the
# figures and exits 1 when a target is missed.
#
# Measured 2026-12-03 (2 cores, PostgreSQL): 24.2 MB resident between runs
# (76-87 MB before mimalloc's no_thp), 0.000 % of a core; peak 59.9 MB.
set -eu

ORGANISATIONS=${1:-50}
SECONDS_IDLE=${2:-30}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ENV_FILE=${COEXIST_TESTENV_ENV:-/tmp/coexist-testenv/env}
if [ -z "${COEXIST_TEST_POSTGRES_URL:-}" ] && [ -r "$ENV_FILE" ]; then
    set -a; . "$ENV_FILE"; set +a
fi
POSTGRES=${COEXIST_TEST_POSTGRES_URL:-}
# As deploy/systemd/coexist-daemon.service and deploy/Containerfile run it:
# mimalloc gives freed memory back at once (without it, memory freed by a
# run stays with the process until the allocator is next busy).
export MIMALLOC_PURGE_DELAY=${MIMALLOC_PURGE_DELAY:-0}

cd "$ROOT"
# COEXIST_BIN: a binary already built (else the release build, built now).
if [ -n "${COEXIST_BIN:-}" ]; then
    BIN=$COEXIST_BIN
else
    cargo build --release --locked --bin coexist >&2
    BIN=$ROOT/target/release/coexist
fi

WORK=$(mktemp -d)
DAEMON_PID=
PREFIX=bench$(date +%s)_$$
cleanup() {
    if [ -n "$DAEMON_PID" ]; then kill "$DAEMON_PID" 2>/dev/null || true; wait "$DAEMON_PID" 2>/dev/null || true; fi
    if [ -n "$POSTGRES" ] && command -v psql >/dev/null; then
        i=1
        while [ "$i" -le "$ORGANISATIONS" ]; do
            psql -q "$POSTGRES" -c "DROP SCHEMA IF EXISTS coexist_${PREFIX}_$i CASCADE" >/dev/null 2>&1 || true
            i=$((i + 1))
        done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# The demo's seeds, written once and shared read-only by every organisation.
"$BIN" demo --dir "$WORK/demo" >/dev/null
mkdir -p "$WORK/organisations"
printf 'bench-token\n' > "$WORK/organisations/token"
i=1
while [ "$i" -le "$ORGANISATIONS" ]; do
    id=${PREFIX}_$i
    if [ -n "$POSTGRES" ]; then store="url = \"$POSTGRES\""; else store="url = \"sqlite:$id.db\""; fi
    sed -e "s|^\[organisation\]|[organisation]\nid = \"$id\"|" \
        -e "s|seed = \"\(.*\)\.json\"|seed = \"$WORK/demo/\1.json\"|" \
        -e "s|state = \"\(.*\)-state.jsonl\"|state = \"$id-\1-state.jsonl\"|" \
        "$WORK/demo/coexist.toml" > "$WORK/organisations/$id.toml"
    printf '\n[store]\n%s\n\n[daemon]\nlisten = "127.0.0.1:0"\ntoken = { file = "token" }\n' "$store" \
        >> "$WORK/organisations/$id.toml"
    i=$((i + 1))
done

"$BIN" --log-format json daemon --config-dir "$WORK/organisations" 2> "$WORK/daemon.log" &
DAEMON_PID=$!
address=
for _ in $(seq 1 600); do
    address=$(grep -o '"listen":"[^"]*"' "$WORK/daemon.log" | head -n 1 | cut -d'"' -f4 || true)
    [ -n "$address" ] && break
    kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$WORK/daemon.log" >&2; exit 1; }
    sleep 0.2
done
[ -n "$address" ] || { echo "the daemon did not start" >&2; exit 1; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$DAEMON_PID/status"; }
hwm_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$DAEMON_PID/status"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$DAEMON_PID/stat"; }
started_kb=$(rss_kb)

# Every organisation's first sync, asked for over HTTP.
i=1
while [ "$i" -le "$ORGANISATIONS" ]; do
    curl -fsS -o /dev/null -X POST -H "Authorization: Bearer bench-token" \
        "http://$address/api/sync?organisation=${PREFIX}_$i"
    i=$((i + 1))
done
start=$(date +%s)
while [ "$(grep -c '"message":"run ended"' "$WORK/daemon.log" || true)" -lt "$ORGANISATIONS" ]; do
    kill -0 "$DAEMON_PID" 2>/dev/null || { tail -n 20 "$WORK/daemon.log" >&2; exit 1; }
    [ $(( $(date +%s) - start )) -lt 900 ] || { echo "the first syncs did not end within 15 minutes" >&2; exit 1; }
    sleep 1
done
runs_took=$(( $(date +%s) - start ))
failed=$(grep -c '"level":"WARN".*"message":"run failed"' "$WORK/daemon.log" || true)

# Idle: long enough for khugepaged to have scanned the process.
sleep "${IDLE_WAIT:-65}"
hz=$(getconf CLK_TCK)
before=$(ticks)
sleep "$SECONDS_IDLE"
after=$(ticks)
idle_kb=$(rss_kb)
peak_kb=$(hwm_kb)
cpu=$(awk -v t=$((after - before)) -v hz="$hz" -v s="$SECONDS_IDLE" 'BEGIN { printf "%.3f", 100 * t / hz / s }')
rss_mb=$(awk -v k="$idle_kb" 'BEGIN { printf "%.1f", k / 1024 }')

echo "coexist daemon (MIMALLOC_PURGE_DELAY=$MIMALLOC_PURGE_DELAY), $ORGANISATIONS organisations of 1007 recipients each ($( [ -n "$POSTGRES" ] && echo PostgreSQL, a schema each || echo SQLite, a file each ))"
echo "  resident at start:                $(awk -v k="$started_kb" 'BEGIN { printf "%.1f MB", k / 1024 }')"
echo "  first syncs (every organisation): ${runs_took} s, $failed failed"
echo "  peak resident (during the syncs): $(awk -v k="$peak_kb" 'BEGIN { printf "%.1f MB", k / 1024 }')"
echo "  resident between runs:            $rss_mb MB (target < 50 MB)"
echo "  CPU between runs:                 $cpu % of a core over ${SECONDS_IDLE} s (target < 1%)"
ok=$(awk -v m="$rss_mb" -v c="$cpu" 'BEGIN { print (m < 50 && c < 1) ? "yes" : "no" }')
[ "$ok" = yes ] && [ "$failed" = 0 ]
