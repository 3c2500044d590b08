#!/usr/bin/env bash
# Every test of the project, on a fresh Debian/Ubuntu machine or a warm one:
#   1. static checks (rustfmt, clippy -D warnings) and unit tests (cargo test --lib/--bins, wire
#      fixtures);
#   2. the native stack (deploy/stack.sh up: installs and starts PostgreSQL, Redis, Kafka,
#      Cassandra, the object store, nginx and our services);
#   3. end-to-end tests through nginx (tests/), the web client's unit and browser tests, the
#      compose-file check, the Helm chart check (scripts/helm-check.sh), the three-broker Kafka
#      cluster's and the three-node Cassandra cluster's self-tests (deploy/cluster/selftest*.sh)
#      and the Swift checks;
#   4. the same end-to-end accounting on the stack in cluster mode (deploy/stack.sh up --cluster):
#      a Kafka broker and a Cassandra node killed and cut off mid-stream (tests/e2e/cluster.rs);
#   5. the stack is stopped again (unless KEEP_STACK=1).
# Compiled artefacts live in $CARGO_TARGET_DIR (default ~/.cache/chat-target), downloads in
# ~/.cache/chat-stack, so later runs are fast.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chat-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==== %s (%s)\n' "$*" "$(date +%T)"; }
started=$(date +%s)

stop_stack() {
  if [ "${KEEP_STACK:-0}" != 1 ]; then
    step "stopping the stack"
    deploy/stack.sh down || true
  fi
}

step "rustfmt"
cargo fmt --all -- --check

step "unused dependencies (cargo machete)"
command -v cargo-machete >/dev/null || cargo install --locked cargo-machete
cargo machete

step "clippy (-D warnings)"
cargo clippy --release --workspace --all-targets -- -D warnings

# Every cargo command names the whole workspace, so features unify the same way each time and
# the dependency tree is compiled once.
step "build (services and every test target)"
cargo build --release --workspace --bins
cargo test --release --workspace --no-run

step "unit tests"
cargo test --release --workspace --lib --bins
cargo test --release --workspace --test fixtures

step "fuzzing (cargo-fuzz on stable: client frames, REST bodies, history cursors; 30 s each)"
# Installs cargo-fuzz once (~/.cargo/bin); builds in $CARGO_TARGET_DIR/fuzz.
scripts/fuzz.sh

step "native stack"
trap stop_stack EXIT
deploy/stack.sh up
# tests/e2e/stack.rs asks the running Cassandra which memtables it made with the JDK's `jcmd`;
# the stack itself needs only a Java runtime, so a fresh machine may have no JDK yet.
if ! command -v jcmd >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless
fi

step "end-to-end tests (through nginx)"
cargo test --release --workspace --test conversation --test rest --test hardening_api --test credentials \
    --test resume --test directory --test read_state --test events --test devices --test objectstore \
    --test notify --test attachments --test media --test stack
# Push notifications against the APNs stand-in: latency, token renewal (changes the stand-in for
# everyone) and a kill -9 of the notifier (none skipped, repeats only of requests on the wire).
cargo test --release --workspace --test notify_faults -- --test-threads=1 --nocapture
# The OpenAPI document against the live API (schemathesis, every check, a fixed number of
# examples per operation; installs itself into ~/.cache/chat-venv once).
scripts/schemathesis.sh
# Floods and hoarding: rate limits, pacing, connection caps, 1009 (prints what it measured).
cargo test --release --workspace --test abuse -- --nocapture
# Typing indicators and presence (prints typing latency and the presence expiry after a gateway's
# kill -9; that test restarts the gateway it kills).
cargo test --release --workspace --test ephemeral -- --test-threads=1 --nocapture

step "delivery under failure (kills and restarts real processes, one test at a time)"
cargo test --release --workspace --test delivery -- --test-threads=1 --nocapture
# Redis loses its data, then every channel goes quiet: all acked messages still arrive live.
cargo test --release --workspace --test quiet -- --nocapture

step "benchmark tool smoke run (chat-bench smoke, a few seconds)"
"$CARGO_TARGET_DIR/release/chat-bench" smoke
# 100 clients chatting beside a flooding and a connection-hoarding user: nothing may be lost;
# the latency comparison is reported here and judged by the full benchmark (docs/benchmarks.md).
"$CARGO_TARGET_DIR/release/chat-bench" abuse --rounds 1 --secs 5 --latency-report-only
# The fan-out and groups floors (a bare broadcast or relay server through an nginx of its own):
# still run, and their client checks every frame and every ack.
"$CARGO_TARGET_DIR/release/chat-bench" floor --connections 200 --rates 50 --step-secs 2 \
    --out-dir "${TMPDIR:-/tmp}/chat-bench-floor-check"
"$CARGO_TARGET_DIR/release/chat-bench" floor --connections 200 --members 10 --rates 200 --step-secs 2 \
    --out-dir "${TMPDIR:-/tmp}/chat-bench-floor-check"

step "compose file check"
deploy/compose/check.sh

step "Helm chart: lint, render and check every object against the Kubernetes API schemas"
# helm (built once with Go) and kubernetes-validate (PyPI) are cached in ~/.cache/chat-tools.
scripts/helm-check.sh

step "Kafka cluster: three KRaft brokers on hosts of their own (network namespaces), killed, cut off, healed"
# deploy/cluster/: the bridge and namespaces, the brokers, the topic by chat-admin migrate
# --only kafka; acks=all keeps working with one broker killed, fails with a second cut off,
# recovers when healed; nothing acked is lost (prints formation and failover times). Removes
# everything it made.
deploy/cluster/selftest.sh

step "Cassandra cluster: three nodes on hosts of their own (network namespaces), killed, cut off, healed"
# deploy/cluster/cassandra.sh: three nodes, keyspace by chat-admin migrate --only cassandra with
# replication factor 3; QUORUM reads and writes keep working with one node killed, fail with a
# second cut off, recover when healed; every row acked at QUORUM reads back (prints formation,
# detection and recovery times, ~3.5 min). After the Kafka step: it makes the network itself.
deploy/cluster/selftest-cassandra.sh

step "iOS client: ChatKit built (warnings as errors) and tested by Swift, static checks"
# A real Swift 6 compiler (scripts/swift.sh: native, or a cached Debian trixie root it makes
# once, about 2 minutes).
scripts/check-swift.sh

step "iOS client: the Swift client (chatkit-cli) with a Rust client through nginx, a gateway killed"
cargo test --release --workspace --test swift_client -- --test-threads=1 --nocapture

step "web client: unit and browser tests"
# The browser test drives Debian's Chromium; a fresh machine does not have it yet.
if ! command -v chromium >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
(cd web && npm ci --no-audit --no-fund && npm test && npm run e2e)

step "the whole system on the clusters: a Kafka broker and a Cassandra node killed, cut off, healed"
# deploy/stack.sh up --cluster: the same services on three Kafka brokers and three Cassandra
# nodes (replication factor 3, 2 of 3 needed); a crowd streams while one member is killed -9 or
# cut off from the network; nothing acked may be lost, duplicated or reordered (prints how long
# deliveries were held up). Last: the stack switches modes here, and the trap stops it.
deploy/stack.sh down
deploy/stack.sh up --cluster --no-build --no-web
cargo test --release --workspace --test cluster -- --test-threads=1 --nocapture

step "all tests passed in $(( $(date +%s) - started ))s"
