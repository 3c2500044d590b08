#!/usr/bin/env bash
# CPU profiles and syscall counts of the running native stack under a benchmark load (#14):
# where a delivery's CPU goes in each process on its path.
#
#   scripts/profile.sh fanout            one channel of 5,000 members at 10 msg/s
#   scripts/profile.sh groups            500 channels of 10 at 200 msg/s
#   PROFILE_OUT=/tmp/p scripts/profile.sh fanout   (default: docs/bench/profiles)
#
# While chat-bench runs (bounded; it stops by itself), each of gateway-1, the message servers,
# nginx's workers and chat-bench is sampled by `perf record -e cpu-clock -g` (hardware counters
# do not work here) for PROFILE_SECS (15), then folded and drawn as a flame graph
# (<scenario>-<process>.svg, with inferno, installed once with cargo), and, in a second load
# step, the system calls of gateway-1 and of nginx's workers are counted for the same time
# with `perf stat` on the kernel's syscall tracepoints (counted in the kernel: exact and cheap,
# where strace's ptrace and perf trace's event stream slowed or dropped at these rates) into
# <scenario>-syscalls.txt beside chat-bench's deliveries per second. <scenario>-<process>-top.txt
# lists the functions with the most samples of their own (leaf frames) per process.
# Only loopback addresses.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:?usage: scripts/profile.sh fanout|groups}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/chat-target}
OUT=${PROFILE_OUT:-docs/bench/profiles}
SECS=${PROFILE_SECS:-15}
STACK_DIR=${CHAT_STACK_DIR:-$HOME/.cache/chat-stack}
BIN=$CARGO_TARGET_DIR/release/chat-bench
say() { printf '[profile %s] %s\n' "$(date +%T)" "$*"; }

case $scenario in
    fanout) bench_args=(fanout --rates 10 --step-secs $((SECS + 25))) ;;
    groups) bench_args=(groups --rates 200 --step-secs $((SECS + 25))) ;;
    *) echo "profile: unknown scenario $scenario (fanout or groups)" >&2; exit 2 ;;
esac
command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq linux-perf; }
if ! command -v inferno-flamegraph >/dev/null; then
    say "installing inferno (flame graphs) with cargo, once"
    cargo install --locked inferno >/dev/null
fi
[ -x "$BIN" ] || cargo build --release --workspace --bins
mkdir -p "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

pid_of() { cat "$STACK_DIR/run/pids/$1.pid"; }
nginx_workers() { pgrep -P "$(pid_of nginx)" -d, -f 'nginx: worker'; }
connections() {
    local n=0 p
    for p in 9101 9102; do
        n=$((n + $(curl -fsS "127.0.0.1:$p/metrics" | awk '$1 == "chat_connections" {print int($2)}')))
    done
    echo "$n"
}
# One load step per measurement. Returns once its 5,000 connections are open (the gateways'
# chat_connections; chat-bench's own output is buffered until it ends) and sending has run a
# few seconds; the step lasts SECS + 25 s, so it outlives the measurement.
load() {
    "$BIN" "${bench_args[@]}" --quiet --out-dir "$tmp" --name "$1" >"$tmp/$1.log" 2>&1 &
    bench=$!
    local deadline=$((SECONDS + 120))
    until (($(connections) >= 5000)); do
        kill -0 "$bench" 2>/dev/null || { cat "$tmp/$1.log" >&2; exit 1; }
        ((SECONDS < deadline)) || { echo "profile: the load did not connect" >&2; exit 1; }
        sleep 0.5
    done
    sleep 5
}

say "$scenario: load for the CPU profiles"
load perf
declare -A targets=(
    [gateway]=$(pid_of gateway-1)
    # Both: the fan-out channel's partition is one server's (which one depends on the group).
    [message-server]="$(pid_of message-server-1),$(pid_of message-server-2)"
    [nginx]=$(nginx_workers)
    [client]=$bench
)
perf_pids=()
for name in "${!targets[@]}"; do
    # One perf session per process: a session given nginx's two workers at once (-p a,b) came
    # back empty when started beside the others.
    for pid in ${targets[$name]//,/ }; do
        perf record -e cpu-clock -F 499 -g -p "$pid" -o "$tmp/$name-$pid.data" \
            -- sleep "$SECS" >"$tmp/$name-$pid.err" 2>&1 &
        perf_pids+=($!)
    done
done
wait "${perf_pids[@]}"
wait "$bench" || true
for name in "${!targets[@]}"; do
    for pid in ${targets[$name]//,/ }; do
        perf script -i "$tmp/$name-$pid.data" 2>/dev/null | inferno-collapse-perf || true
    done >"$tmp/$name.folded"
    [ -s "$tmp/$name.folded" ] || { say "no samples of $name (pids ${targets[$name]}): $(cat "$tmp/$name"-*.err)"; continue; }
    inferno-flamegraph --title "$scenario: $name (cpu-clock, ${SECS} s)" \
        <"$tmp/$name.folded" >"$OUT/$scenario-$name.svg"
    # Own samples (the frame a sample was taken in) and samples on the stack (the frame or
    # anything it called), each summed over every stack, as shares of all samples.
    {
        echo "# $scenario: $name, share of ${SECS} s of cpu-clock samples"
        echo "## own (leaf frames)"
        awk '{w = $NF; $NF = ""; n = split($0, f, ";"); leaf = f[n]; sub(/ +$/, "", leaf);
              own[leaf] += w; total += w}
             END {for (l in own) printf "%6.2f%%  %s\n", 100 * own[l] / total, l}' \
            "$tmp/$name.folded" | sort -rn | awk 'NR <= 30'
        echo "## on the stack (frames and what they called)"
        awk '{w = $NF; $NF = ""; n = split($0, f, ";"); delete seen;
              for (i = 1; i <= n; i++) { g = f[i]; sub(/ +$/, "", g);
                  if (!(g in seen)) { seen[g] = 1; on[g] += w } }
              total += w}
             END {for (g in on) printf "%6.2f%%  %s\n", 100 * on[g] / total, g}' \
            "$tmp/$name.folded" | sort -rn | awk 'NR <= 60'
    } >"$OUT/$scenario-$name-top.txt"
    say "$OUT/$scenario-$name.svg, $OUT/$scenario-$name-top.txt"
done

say "$scenario: load for the syscall counts"
calls=(read write writev readv recvfrom sendto sendmsg recvmsg epoll_wait epoll_pwait epoll_ctl
    futex poll sched_yield)
events=$(printf 'syscalls:sys_enter_%s,' "${calls[@]}")
load syscalls
for name in gateway nginx; do
    pids=$([ "$name" = gateway ] && pid_of gateway-1 || nginx_workers)
    perf stat -x, -e "${events%,}" -p "$pids" -o "$tmp/$name.stat" -- sleep "$SECS" >/dev/null 2>&1
done
wait "$bench" || true
{
    echo "# $scenario: system calls over ${SECS} s (perf stat on syscalls:sys_enter_*), gateway-1,"
    echo "# then nginx's workers. chat-bench's step: rate, secs, sent/s, acked/s, deliveries/s (all"
    echo "# connections; gateway-1 holds about half of them), latency percentiles:"
    grep -E '^ +[0-9]+ +[0-9.]+ ' "$tmp/syscalls.log" | head -3 || true
    for name in gateway nginx; do
        echo
        echo "## $name: calls, per second"
        awk -F, -v secs="$SECS" '$3 ~ /^syscalls:/ && $1 > 0 {
            sub(/^syscalls:sys_enter_/, "", $3); printf "%-12s %9d %8.0f\n", $3, $1, $1 / secs}' \
            "$tmp/$name.stat" | sort -k2 -nr
    done
} >"$OUT/$scenario-syscalls.txt"
say "$OUT/$scenario-syscalls.txt"
