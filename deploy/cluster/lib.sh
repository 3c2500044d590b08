# shellcheck shell=bash
# Shared by kafka.sh and cassandra.sh (sourced, after deploy/lib/common.sh): stopping a member
# of a cluster and reporting one that failed to start. The caller defines pid_file, log_file,
# running_pid, LOG_OFFSET, STOP_TIMEOUT and:
#   MEMBER          kafka | cassandra: members are named "$MEMBER-<id>", the script "$MEMBER.sh"
#   MEMBERS         what they are called in messages (brokers, nodes)
#   ERROR_LINES     extended regex of the log lines worth showing when a start fails
# and optionally after_stop PID (run once the process is gone).

# A member did not come up: its first error lines and the end of its log, then stop.
fail_start() {
    local id=$1 reason=$2 logf errs
    logf=$(log_file "$id")
    printf '\n[cluster %s] ERROR: %s-%s failed to start: %s\n' "$(date +%H:%M:%S)" "$MEMBER" "$id" "$reason" >&2
    errs=$(tail -c "+$((${LOG_OFFSET[$id]:-0} + 1))" "$logf" | grep -E -m 8 "$ERROR_LINES" || true)
    if [[ -n $errs ]]; then
        printf '[cluster] first error lines of this start:\n' >&2
        printf '    %s\n' "${errs//$'\n'/$'\n'    }" >&2
    fi
    printf '[cluster] last 30 lines of %s:\n' "$logf" >&2
    tail -n 30 "$logf" | sed 's/^/    /' >&2
    printf '[cluster] %s that did start are left running: deploy/cluster/%s.sh status | down\n' "$MEMBERS" "$MEMBER" >&2
    exit 1
}

# stop_member ID [TERM|KILL]: TERM is the member's own clean shutdown; KILL is a crash (the whole
# process group, as a power cut would take it). SIGKILL anyway after STOP_TIMEOUT.
stop_member() {
    local id=$1 sig=${2:-TERM} pid
    if ! pid=$(running_pid "$id"); then
        log "$MEMBER-$id is not running"
        rm -f "$(pid_file "$id")"
        return 0
    fi
    log "stopping $MEMBER-$id (pid $pid, SIG$sig)"
    if [[ $sig == KILL ]]; then
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    else
        kill -TERM "$pid" 2>/dev/null || true
    fi
    if ! wait_gone "$pid" "$STOP_TIMEOUT"; then
        warn "$MEMBER-$id (pid $pid) still running after ${STOP_TIMEOUT}s: SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || warn "$MEMBER-$id (pid $pid) did not die"
    fi
    if declare -F after_stop >/dev/null; then after_stop "$pid"; fi
    rm -f "$(pid_file "$id")"
}
