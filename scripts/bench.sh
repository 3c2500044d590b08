#!/usr/bin/env bash
# Run the benchmark scenarios of docs/benchmarks.md against the running native stack
# (deploy/stack.sh up) and write their results (JSON + SVG plots) to docs/bench/.
#
#   scripts/bench.sh                      every scenario, with the documented settings
#   scripts/bench.sh groups fanout        only these
#   scripts/bench.sh groups -- --rates 500,1000 --step-secs 10   extra flags for chat-bench
#   BENCH_OUT=/tmp/b scripts/bench.sh     results elsewhere
#
# Scenarios: warmup smoke baseline idle idle-nginx groups fanout history history-light
# history-quiet. `warmup` (2 x 15 s of groups traffic, results in a temporary folder) gets the
# JVMs (Kafka, Cassandra) past their compilation after a restart. Each run is bounded in time and
# stops by itself; only loopback addresses are used. The first run registers the
# benchmark users (argon2 on the API: a few minutes for 5,000); later runs reuse them from
# ~/.cache/chat-bench.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/chat-target}
OUT=${BENCH_OUT:-docs/bench}
BIN=$CARGO_TARGET_DIR/release/chat-bench

scenarios=()
extra=()
while (($#)); do
    if [[ $1 == -- ]]; then
        shift
        extra=("$@")
        break
    fi
    scenarios+=("$1")
    shift
done
((${#scenarios[@]})) || scenarios=(warmup smoke baseline idle idle-nginx groups fanout history history-light history-quiet abuse)

# Whole workspace, release profile: the one build every test and tool shares.
cargo build --release --workspace

if ! deploy/stack.sh status | awk '$1 == "nginx" && $4 == "up" {found=1} END {exit !found}'; then
    echo "bench: the native stack is not running (deploy/stack.sh up)" >&2
    exit 1
fi

run() {
    local name=$1
    shift
    echo
    echo "=== $name: chat-bench $* ${extra[*]}"
    timeout --kill-after=10 600 "$BIN" "$@" "${extra[@]}"
}

# Restart processes of the stack so they start from a clean memory baseline.
fresh() {
    local n
    for n in "$@"; do
        deploy/stack.sh kill "$n" >/dev/null && deploy/stack.sh start "$n" >/dev/null || return 1
    done
}

status=0
for s in "${scenarios[@]}"; do
    case $s in
        smoke) run smoke smoke || status=1 ;;
        baseline) run baseline baseline --out-dir "$OUT" || status=1 ;;
        warmup) run warmup groups --out-dir "${TMPDIR:-/tmp}/chat-bench-warmup" --rates 200,400 --step-secs 15 || status=1 ;;
        # The idle scenarios restart what they measure: an allocator keeps freed memory, so a
        # process that already served connections would show too little RSS per connection.
        idle) fresh gateway-1 && run idle idle --out-dir "$OUT" --connections 19900 --target direct || status=1 ;;
        idle-nginx) fresh gateway-1 gateway-2 nginx && run idle-nginx idle --out-dir "$OUT" --name idle-nginx --connections 19500 --target nginx || status=1 ;;
        groups) run groups groups --out-dir "$OUT" || status=1 ;;
        fanout) run fanout fanout --out-dir "$OUT" || status=1 ;;
        history) run history history --out-dir "$OUT" || status=1 ;;
        history-light) run history-light history --out-dir "$OUT" --name history-light --load-rate 100 || status=1 ;;
        history-quiet) run history-quiet history --out-dir "$OUT" --name history-quiet --load-rate 0 || status=1 ;;
        abuse) run abuse abuse || status=1 ;;
        *)
            echo "bench: unknown scenario $s" >&2
            status=2
            ;;
    esac
    # Let the stack settle between scenarios (closed sockets, Kafka and Cassandra catching up).
    sleep 5
done
exit $status
