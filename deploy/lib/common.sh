# Helpers shared by deploy/stack.sh and deploy/cluster/*.sh (sourced, never run). The caller
# sets LOG_TAG (the tag of its progress lines: "stack", "cluster") before sourcing.
# shellcheck shell=bash

log() { printf '[%s %s] %s\n' "$LOG_TAG" "$(date +%H:%M:%S)" "$*"; }
warn() { printf '[%s %s] WARNING: %s\n' "$LOG_TAG" "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    printf '[%s %s] ERROR: %s\n' "$LOG_TAG" "$(date +%H:%M:%S)" "$*" >&2
    exit 1
}

# The running script's header comment, as its help ($0: the script, not this file).
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

have() { command -v "$1" >/dev/null 2>&1; }

# Cassandra's request threads (its shared executor pool) wait for work in 10 µs naps
# (`LockSupport.parkNanos`) for as long as work came in the last ~10 ms, so under light, steady
# load each such thread wakes thousands of times a second for nothing: on this project's 2-core
# machine at 50 msg/s, two threads woke 8,600 times a second each and Cassandra took 27-31 % of a
# core (docs/benchmarks.md, issue 14, eighth step). A thread's timer slack is how much later
# than asked a timed sleep may end (Linux's default: 50 µs); it is inherited by every thread a
# process starts and kept across exec. Work handed to a napping thread waits for its nap to end,
# so the slack is a latency too: 250 µs took Cassandra to 10 % at 50 msg/s and kept the median
# delivery time where it was; 1 ms saved a little more and cost ~1.5 ms of median.
CASSANDRA_TIMER_SLACK_NS=${CHAT_CASSANDRA_TIMER_SLACK_NS:-250000}

# "${TIMER_SLACK[@]}" NS CMD...: a command line that execs CMD with timer slack NS nanoseconds
# (where /proc/self/timerslack_ns exists, Linux 4.6 and later; elsewhere CMD runs as it is). A
# command line, not a function: setsid, nice and `ip netns exec` run it.
TIMER_SLACK=(sh -c '{ echo "$0" >/proc/self/timerslack_ns; } 2>/dev/null; exec "$@"')

# Alive and not a zombie (a dead server waits a moment for init to reap it). A zombie that is
# still multi-threaded (`ps` stat `Zl`) has not finished exiting: a JVM's main thread ends
# first, and another of its threads holds the process's ports for a moment longer, so a server
# started again at once would find them taken.
pid_alive() {
    local st
    kill -0 "$1" 2>/dev/null || return 1
    st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ -n $st && ($st != Z* || $st == *l*) ]]
}

# Print the pid of server $1 if it runs; fail otherwise. The caller defines `pid_file NAME` (the
# file holding the pid) and `proc_marker NAME` (what the live process's command line contains,
# so that a recycled pid is not taken for the server).
running_pid() {
    local f pid cmd
    f=$(pid_file "$1")
    [[ -s $f ]] || return 1
    pid=$(head -n 1 "$f" | tr -dc '0-9')
    [[ -n $pid ]] && pid_alive "$pid" || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *"$(proc_marker "$1")"* ]] || return 1
    echo "$pid"
}

# wait_gone PID SECONDS: fails if PID still runs after SECONDS.
wait_gone() {
    local pid=$1 timeout=$2 start=$SECONDS
    while pid_alive "$pid"; do
        ((SECONDS - start < timeout)) || return 1
        sleep 0.2
    done
}

apt_get() {
    local try
    for try in 1 2 3 4 5; do
        # DPkg::Lock::Timeout: wait for an apt/dpkg that is already running instead of failing.
        if DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 "$@"; then
            return 0
        fi
        warn "apt-get $1 failed (try $try/5); retrying in 15s (another apt may hold a lock)"
        sleep 15
    done
    die "apt-get $* failed"
}
