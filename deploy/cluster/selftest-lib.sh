# shellcheck shell=bash
# What the cluster self-tests (selftest.sh, selftest-cassandra.sh) share: their output lines and
# timing. Sourced.

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() {
    printf '[cluster %s] SELFTEST FAILED: %s\n' "$(date +%H:%M:%S)" "$*" >&2
    exit 1
}
ok() { printf '[cluster %s] ok: %s\n' "$(date +%H:%M:%S)" "$*"; }

# Seconds with a tenth since $1 (a `date +%s.%N` stamp).
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# The measurements, printed again as a summary at the end.
declare -a SUMMARY=()
note() {
    SUMMARY+=("$*")
    log "$*"
}
