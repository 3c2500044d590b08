# shellcheck shell=bash
# Shared by kafka.sh and cassandra.sh (sourced, after deploy/lib/common.sh): waiting for members
# to start, stopping them, and reporting one that failed to start. The caller defines pid_file,
# log_file, running_pid, lock_cluster, LOG_OFFSET, START_AT, STOP_TIMEOUT, WAIT_TIMEOUT, IDS and:
#   MEMBER          kafka | cassandra: members are named "$MEMBER-<id>", the script "$MEMBER.sh"
#   MEMBERS         what they are called in messages (brokers, nodes)
#   ERROR_LINES     extended regex of the log lines worth showing when a start fails
#   member_id ARG   the id (1, 2, 3) of a member named on the command line
#   DEPLOY_DIR, STACK_DIR, JAR_DIR  for ensure_jars
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

# await_started START UP CHECK ID...: wait until `CHECK <id>` succeeds for every ID (started at
# SECONDS=START, all at once; UP members were running already), with a progress line every 5 s.
# A member whose process exited, or one not started after WAIT_TIMEOUT, fails the start.
await_started() {
    local start=$1 up=$2 check=$3 id next=0 waited
    shift 3
    local -a left
    local -A ready=()
    while :; do
        waited=$((SECONDS - start))
        left=()
        for id in "$@"; do
            [[ -n ${ready[$id]:-} ]] && continue
            if "$check" "$id"; then
                ready[$id]=1
                log "$MEMBER-$id is up (${waited}s, pid $(running_pid "$id" || echo '?'))"
                continue
            fi
            if ! running_pid "$id" >/dev/null && ((SECONDS - START_AT[$id] > 4)); then
                fail_start "$id" "the process exited"
            fi
            left+=("$MEMBER-$id")
        done
        ((${#left[@]} == 0)) && return 0
        ((waited < WAIT_TIMEOUT)) || fail_start "${left[0]#"$MEMBER"-}" "not up after ${WAIT_TIMEOUT}s"
        if ((waited >= next)); then
            log "forming: $((up + ${#ready[@]}))/${#IDS[@]} up, waiting for ${left[*]} (${waited}s)..."
            next=$((waited + 5))
        fi
        sleep 0.5
    done
}

# await_member ID START WHAT CHECK: wait until `CHECK <id>` succeeds for the one member started
# at SECONDS=START ("waiting for kafka-2 to WHAT"); fails the start as await_started does.
await_member() {
    local id=$1 start=$2 what=$3 check=$4 next=0 waited
    while ! "$check" "$id"; do
        waited=$((SECONDS - start))
        if ! running_pid "$id" >/dev/null && ((waited > 4)); then fail_start "$id" "the process exited"; fi
        ((waited < WAIT_TIMEOUT)) || fail_start "$id" "did not $what within ${WAIT_TIMEOUT}s"
        if ((waited >= next)); then
            log "waiting for $MEMBER-$id to $what (${waited}s)..."
            next=$((waited + 5))
        fi
        sleep 0.5
    done
}

# down [--purge]: stop every member at once (one by one, each would wait on the ones still up:
# Kafka's last controllers for a quorum the first ones took away; Cassandra's drains take
# seconds each), each with STOP_TIMEOUT for its clean shutdown; --purge: drop DATA_DIR and logs.
down_members() {
    local data=$1 purge=false id p pids=()
    [[ ${2:-} == --purge ]] && purge=true
    lock_cluster
    for id in "${IDS[@]}"; do
        stop_member "$id" TERM &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || true; done
    if $purge; then
        rm -rf "$data" "$LOG_DIR/$MEMBER"-*.log
        log "${MEMBER^} data and logs removed ($data)"
    fi
    log "${MEMBER^} cluster down"
}

# kill <n> [-9]: stop one member (SIGTERM: its clean shutdown; -9: a crash).
kill_member() {
    (($# >= 1)) || die "usage: $MEMBER.sh kill <n> [-9]"
    local id sig=TERM
    id=$(member_id "$1")
    [[ ${2:-} == -9 || ${2:-} == -KILL ]] && sig=KILL
    lock_cluster
    stop_member "$id" "$sig"
}

# The native stack's jars of $MEMBER (same pom, same folder JAR_DIR, same completeness mark as
# deploy/stack.sh's ensure_jars), so the single server and the cluster run the same release.
ensure_jars() {
    local pom=$DEPLOY_DIR/jars/$MEMBER/pom.xml build=$STACK_DIR/jars/.build-$MEMBER sum
    sum=$(sha256sum <"$pom" | cut -d' ' -f1)
    if [[ -f $JAR_DIR/.complete && $(cat "$JAR_DIR/.complete") == "$sum" ]]; then
        return 0
    fi
    # deploy/stack.sh may be fetching them right now: take its lock for the fetch.
    mkdir -p "$STACK_DIR"
    exec 9>"$STACK_DIR/.stack.lock"
    log "waiting for the native stack's lock to fetch the ${MEMBER^} jars..."
    flock -w 900 9 || die "deploy/stack.sh holds $STACK_DIR/.stack.lock"
    if [[ ! -f $JAR_DIR/.complete || $(cat "$JAR_DIR/.complete") != "$sum" ]]; then
        log "fetching ${MEMBER^} jars from Maven Central into $JAR_DIR (once; shared with deploy/stack.sh)..."
        rm -rf "$JAR_DIR" "$JAR_DIR.tmp" "$build"
        mkdir -p "$build"
        cp "$pom" "$build/pom.xml"
        if ! mvn -B -q -Dstyle.color=never -f "$build/pom.xml" package -DoutputDirectory="$JAR_DIR.tmp" >"$build/mvn.log" 2>&1; then
            tail -n 40 "$build/mvn.log" | sed 's/^/    /' >&2
            die "fetching the ${MEMBER^} jars failed (log: $build/mvn.log)"
        fi
        mv "$JAR_DIR.tmp" "$JAR_DIR"
        echo "$sum" >"$JAR_DIR/.complete"
    fi
    exec 9>&-
}
