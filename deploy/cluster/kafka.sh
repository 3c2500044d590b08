#!/usr/bin/env bash
# Three Kafka servers (KRaft, combined broker + controller, static 3-voter quorum), each on its
# own test host made by deploy/cluster/net.sh: chat-kafka-N at 10.77.0.1N, PLAINTEXT on :9092,
# CONTROLLER on :9093. Topics default to 3 replicas with min.insync.replicas 2.
#
#   deploy/cluster/kafka.sh up                 make the network if needed, format the storage
#                                              once, start what is not running, wait until all
#                                              three are up and a metadata request sees them
#   deploy/cluster/kafka.sh down [--purge]     stop the three (--purge: drop data and logs)
#   deploy/cluster/kafka.sh kill <n> [-9]      stop broker n (SIGTERM: controlled shutdown;
#                                              -9: SIGKILL, a crash)
#   deploy/cluster/kafka.sh start <n>          start broker n, wait until the cluster sees it
#   deploy/cluster/kafka.sh status             each broker: pid, address, network, log; what a
#                                              metadata request sees (brokers, partition leaders,
#                                              under-replicated and offline partitions)
#   deploy/cluster/kafka.sh bootstrap          print the bootstrap list (for CHAT__KAFKA__BROKERS)
#   deploy/cluster/kafka.sh controller         print "<id> <epoch>" of the active KRaft controller
#                                              (from the brokers' logs; "- -" if none known)
#
# <n> is 1, 2, 3 (or kafka-2, chat-kafka-2). Progress lines: "[cluster HH:MM:SS] ...".
#
# Uses the Kafka jars deploy/stack.sh downloads ($CHAT_STACK_DIR/jars/kafka, from
# deploy/jars/kafka/pom.xml; fetched here the same way if missing) and kcat for the metadata
# checks (installed with apt-get if missing).
#
# Environment:
#   CHAT_CLUSTER_DIR        state folder (default ~/.cache/chat-stack/cluster): kafka/<n>/ holds
#                           each broker's config and data, logs/ and pids/ the rest
#   CHAT_STACK_DIR          the native stack's folder, for its jars (default ~/.cache/chat-stack)
#   CHAT_CLUSTER_TIMEOUT    seconds to wait for the cluster to form / a broker to rejoin (180)
#   CHAT_CLUSTER_KAFKA_HEAP JVM heap flags of each broker (default "-Xms256m -Xmx512m")
#   CHAT_CLUSTER_NICE       niceness of the brokers (default 10: they share 2 cores with the rest)
set -euo pipefail
umask 022

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEPLOY_DIR=$(dirname "$SCRIPT_DIR")
NET=$SCRIPT_DIR/net.sh

CLUSTER_DIR=${CHAT_CLUSTER_DIR:-$HOME/.cache/chat-stack/cluster}
KAFKA_DIR=$CLUSTER_DIR/kafka
LOG_DIR=$CLUSTER_DIR/logs
PID_DIR=$CLUSTER_DIR/pids
STACK_DIR=${CHAT_STACK_DIR:-$HOME/.cache/chat-stack}
JAR_DIR=$STACK_DIR/jars/kafka

WAIT_TIMEOUT=${CHAT_CLUSTER_TIMEOUT:-180}
read -r -a HEAP <<<"${CHAT_CLUSTER_KAFKA_HEAP:--Xms256m -Xmx512m}"
NICE=${CHAT_CLUSTER_NICE:-10}
STOP_TIMEOUT=30
PORT=9092
CONTROLLER_PORT=9093

# ---------------------------------------------------------------------------------------------
# output

# log, warn, die, usage, have, pid_alive, wait_gone, apt_get
LOG_TAG=cluster
# shellcheck source=deploy/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# fail_start, stop_member
MEMBER=kafka
MEMBERS=brokers
ERROR_LINES='\bERROR\b|FATAL|Exception|[Cc]aused by'
# shellcheck source=deploy/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---------------------------------------------------------------------------------------------
# the brokers: read from net.sh's host table (chat-kafka-N -> node id N)

declare -A ADDR=()
declare -a IDS=()
while read -r ns addr; do
    id=${ns#chat-kafka-}
    [[ $id =~ ^[0-9]+$ ]] || die "net.sh: unexpected Kafka host name $ns"
    IDS+=("$id")
    ADDR[$id]=$addr
done < <("$NET" hosts chat-kafka-)
unset ns addr id
((${#IDS[@]} >= 1)) || die "net.sh lists no chat-kafka-* host"

member_id() {
    local n=${1#chat-}
    n=${n#kafka-}
    [[ -n ${ADDR[$n]:-} ]] || die "unknown broker '$1' (known: ${IDS[*]})"
    echo "$n"
}

ns_of() { echo "chat-kafka-$1"; }
name_of() { echo "kafka-$1"; }
broker_dir() { echo "$KAFKA_DIR/$1"; }
log_file() { echo "$LOG_DIR/kafka-$1.log"; }
pid_file() { echo "$PID_DIR/kafka-$1.pid"; }
proc_marker() { echo "-Dchat.cluster=kafka-$1"; }

bootstrap() {
    local id list=()
    for id in "${IDS[@]}"; do list+=("${ADDR[$id]}:$PORT"); done
    (
        IFS=,
        echo "${list[*]}"
    )
}

voters() {
    local id list=()
    for id in "${IDS[@]}"; do list+=("$id@${ADDR[$id]}:$CONTROLLER_PORT"); done
    (
        IFS=,
        echo "${list[*]}"
    )
}

# From the root namespace, through the bridge (a cut host's port does not answer).
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# ---------------------------------------------------------------------------------------------
# processes


# ---------------------------------------------------------------------------------------------
# prerequisites


ensure_packages() {
    local missing=()
    have java || missing+=(openjdk-17-jre-headless)
    have kcat || missing+=(kcat)
    have mvn || [[ -f $JAR_DIR/.complete ]] || missing+=(maven)
    ((${#missing[@]} == 0)) && return 0
    ((EUID == 0)) || die "missing: ${missing[*]}; run as root, or: sudo apt-get install -y ${missing[*]}"
    mkdir -p "$LOG_DIR"
    log "installing ${missing[*]} with apt-get (log: $LOG_DIR/apt.log)..."
    apt_get update -q
    apt_get install -y -q "${missing[@]}"
    log "installed ${missing[*]}"
}

# One kafka.sh at a time starts or stops brokers (a fault test's kill next to an up).
lock_cluster() {
    mkdir -p "$CLUSTER_DIR"
    exec 7>"$CLUSTER_DIR/.kafka.lock"
    flock -w 600 7 || die "another deploy/cluster/kafka.sh holds $CLUSTER_DIR/.kafka.lock"
}

# render_template TEMPLATE KEY=VALUE...: as in deploy/stack.sh.
render_template() {
    local tpl=$1 text kv
    shift
    text=$(<"$tpl")
    for kv in "$@"; do
        text=${text//"{{${kv%%=*}}}"/"${kv#*=}"}
    done
    if [[ $text =~ \{\{[A-Z_]+\}\} ]]; then die "$tpl: ${BASH_REMATCH[0]} was not filled in"; fi
    printf '%s\n' "$text"
}

# ---------------------------------------------------------------------------------------------
# metadata (kcat, from the root namespace)

# kcat -L against the bootstrap list: librdkafka asks whichever broker answers first, so a dead
# or cut one is skipped once the others have answered.
metadata() {
    timeout 15 kcat -L -b "$(bootstrap)" -m 5 -X socket.connection.setup.timeout.ms=3000 2>/dev/null
}

# Ids of the brokers a metadata request sees (registered and not fenced), sorted, one per line.
seen_brokers() { metadata | sed -n 's/^ *broker \([0-9]*\) at .*/\1/p' | sort -n; }

# ---------------------------------------------------------------------------------------------
# start / stop one broker

declare -A LOG_OFFSET=() START_AT=()

format_storage() {
    local id=$1 dir
    dir=$(broker_dir "$id")
    [[ -f $dir/data/meta.properties ]] && return 0
    java -Xmx256m -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$JAR_DIR/*" \
        kafka.tools.StorageTool format -t "$(cat "$KAFKA_DIR/cluster.id")" -c "$dir/server.properties" \
        --ignore-formatted >>"$(log_file "$id")" 2>&1
}

prepare_broker() {
    local id=$1 dir
    dir=$(broker_dir "$id")
    mkdir -p "$dir/data" "$LOG_DIR" "$PID_DIR"
    render_template "$SCRIPT_DIR/kafka.properties.template" NODE_ID="$id" ADDR="${ADDR[$id]}" \
        PORT="$PORT" CONTROLLER_PORT="$CONTROLLER_PORT" VOTERS="$(voters)" DIR="$dir" >"$dir/server.properties"
    cp "$DEPLOY_DIR/kafka/log4j2.properties" "$dir/log4j2.properties"
}

spawn_broker() {
    local id=$1 dir ns logf
    dir=$(broker_dir "$id")
    ns=$(ns_of "$id")
    logf=$(log_file "$id")
    [[ -e /run/netns/$ns ]] || die "host $ns does not exist (deploy/cluster/net.sh up)"
    if port_open "${ADDR[$id]}" "$PORT"; then
        die "${ADDR[$id]}:$PORT is already taken by a process this script did not start (net.sh status)"
    fi
    printf '\n===== %s: deploy/cluster/kafka.sh starts kafka-%s =====\n' "$(date -Is)" "$id" >>"$logf"
    LOG_OFFSET[$id]=$(stat -c %s "$logf")
    START_AT[$id]=$SECONDS
    # `ip netns exec` execs java in the namespace (as do setsid and nice): $! is java's pid.
    # Own session, so a SIGKILL can take the process group; 7>&- 9>&-: no lock is inherited.
    # ZGC, as the single-host stack's broker (deploy/stack.sh says why).
    setsid nice -n "$NICE" ip netns exec "$ns" java "${HEAP[@]}" -XX:+UseZGC \
        -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true "$(proc_marker "$id")" \
        -Dlog4j2.configurationFile="$dir/log4j2.properties" \
        -cp "$JAR_DIR/*" kafka.Kafka "$dir/server.properties" >>"$logf" 2>&1 </dev/null 7>&- 9>&- &
    echo $! >"$(pid_file "$id")"
}

# The broker has finished its start (this start's log says so) and its port answers.
broker_started() {
    local id=$1
    port_open "${ADDR[$id]}" "$PORT" &&
        grep -q 'Kafka Server started' < <(tail -c "+$((${LOG_OFFSET[$id]:-0} + 1))" "$(log_file "$id")")
}

# ... and a metadata request lists it (the controllers registered and unfenced it).
broker_registered() { broker_started "$1" && grep -qx "$1" < <(seen_brokers); }

# ---------------------------------------------------------------------------------------------
# commands

cmd_up() {
    ((EUID == 0)) || die "needs root (network namespaces)"
    ensure_packages
    ensure_jars
    lock_cluster
    "$NET" up "${IDS[@]/#/kafka-}"
    local start=$SECONDS id pending=() running=()
    mkdir -p "$KAFKA_DIR" "$LOG_DIR" "$PID_DIR"
    if [[ ! -s $KAFKA_DIR/cluster.id ]]; then
        # A Kafka cluster id: 16 random bytes, base64url without padding; shared by all three.
        head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$KAFKA_DIR/cluster.id"
    fi
    for id in "${IDS[@]}"; do
        prepare_broker "$id"
        if running_pid "$id" >/dev/null; then running+=("$id"); else pending+=("$id"); fi
    done
    ((${#running[@]} == 0)) || log "already running: ${running[*]/#/kafka-}"
    # Format the new ones side by side (a JVM each, ~2-4 s).
    local fpids=() f=()
    for id in "${pending[@]}"; do
        [[ -f $(broker_dir "$id")/data/meta.properties ]] && continue
        f+=("$id")
        format_storage "$id" &
        fpids+=($!)
    done
    if ((${#f[@]})); then
        log "formatting storage of ${f[*]/#/kafka-} (cluster id $(cat "$KAFKA_DIR/cluster.id"))"
        local i
        for i in "${!fpids[@]}"; do
            wait "${fpids[$i]}" || fail_start "${f[$i]}" "kafka-storage format failed"
        done
    fi
    for id in "${pending[@]}"; do
        spawn_broker "$id"
        log "kafka-$id starting in $(ns_of "$id") at ${ADDR[$id]}:$PORT (pid $(cat "$(pid_file "$id")"), log $(log_file "$id"))"
    done
    # The servers wait for each other: a broker finishes its start only once the controller
    # quorum (2 of 3) has elected a leader, so all three start at once and are waited for together.
    await_started "$start" "${#running[@]}" broker_started "${pending[@]}"
    # Up is not yet registered: wait until a metadata request lists every broker (the
    # controllers have registered and unfenced each one).
    local seen next=0 waited
    while :; do
        waited=$((SECONDS - start))
        seen=$(seen_brokers | tr '\n' ' ')
        [[ $(wc -w <<<"$seen") -eq ${#IDS[@]} ]] && break
        ((waited < WAIT_TIMEOUT)) || die "a metadata request sees brokers [${seen% }] only, after ${WAIT_TIMEOUT}s"
        if ((waited >= next)); then
            log "waiting for metadata to list all brokers (sees [${seen% }], ${waited}s)..."
            next=$((waited + 5))
        fi
        sleep 0.5
    done
    log "Kafka cluster formed in $((SECONDS - start))s: brokers [${seen% }] at $(bootstrap)"
}

cmd_down() { down_members "$KAFKA_DIR" "$@"; }

cmd_start() {
    (($# == 1)) || die "usage: kafka.sh start <n>"
    ((EUID == 0)) || die "needs root (network namespaces)"
    local id start=$SECONDS
    id=$(member_id "$1")
    ensure_packages
    ensure_jars
    lock_cluster
    if running_pid "$id" >/dev/null; then
        log "kafka-$id is already running (pid $(running_pid "$id"))"
        return 0
    fi
    [[ -s $KAFKA_DIR/cluster.id ]] || die "no cluster yet (deploy/cluster/kafka.sh up)"
    prepare_broker "$id"
    if [[ ! -f $(broker_dir "$id")/data/meta.properties ]]; then
        log "formatting storage of kafka-$id"
        format_storage "$id" || fail_start "$id" "kafka-storage format failed"
    fi
    spawn_broker "$id"
    log "kafka-$id starting in $(ns_of "$id") at ${ADDR[$id]}:$PORT (pid $(cat "$(pid_file "$id")"))"
    await_member "$id" "$start" rejoin broker_registered
    log "kafka-$id rejoined in $((SECONDS - start))s (pid $(running_pid "$id"))"
}

# The active KRaft controller as the live brokers' logs tell it: each one's last transition
# (to Leader: itself; to FollowerState: its leader=...) and the highest epoch wins. Prints
# "<id> <epoch>", or "- -" when no log says; while the quorum is lost this is the last one known.
active_controller() {
    local id line epoch lead best=- best_epoch=-1
    for id in "${IDS[@]}"; do
        running_pid "$id" >/dev/null || continue
        line=$(grep -E 'Completed transition to (Leader|FollowerState)\(' "$(log_file "$id")" 2>/dev/null | tail -n 1) || continue
        [[ $line =~ [\ \(]epoch=([0-9]+) ]] || continue
        epoch=${BASH_REMATCH[1]}
        if [[ $line == *"transition to Leader("* ]]; then
            lead=$id
        elif [[ $line =~ [\ \(]leader=([0-9]+) ]]; then
            lead=${BASH_REMATCH[1]}
        else
            continue
        fi
        if ((epoch > best_epoch)); then
            best_epoch=$epoch
            best=$lead
        fi
    done
    [[ $best == - ]] && best_epoch=-
    echo "$best $best_epoch"
}

# Per topic: partitions, leaders per broker, under-replicated (ISR < replicas), offline (no leader).
summarize_topics() {
    awk '
        /^ *topic "/ { t = $2; gsub(/"/, "", t); topics[t] = 1 }
        /^ *partition [0-9]+, leader/ {
            leader = $4; sub(/,/, "", leader)
            reps = $6; sub(/,$/, "", reps); isrs = $8
            parts[t]++
            if (leader == "-1") offline[t]++; else lead[t, leader]++
            if (split(isrs, a, ",") < split(reps, b, ",")) under[t]++
            ids[leader] = 1
        }
        END {
            for (t in topics) {
                s = ""
                for (i in ids) if (i != "-1" && (t, i) in lead) s = s " " i ":" lead[t, i]
                printf "  %-20s %3d partitions, leaders by broker:%s, under-replicated %d, offline %d\n",
                    t, parts[t], s, under[t] + 0, offline[t] + 0
            }
        }'
}

cmd_status() {
    local id pid state rss md ctl
    local -A cut=()
    while read -r h _ st _; do [[ $st == cut ]] && cut[$h]=1; done < <("$NET" status 2>/dev/null | tail -n +3)
    printf '%-8s %-16s %-8s %-10s %-8s %s\n' BROKER ADDRESS PID STATE RSS LOG
    for id in "${IDS[@]}"; do
        rss=-
        if pid=$(running_pid "$id"); then
            # (a cut host's port does not answer from here: that is the cut, not the broker)
            if [[ -n ${cut[$(ns_of "$id")]:-} ]]; then
                state="cut"
            elif port_open "${ADDR[$id]}" "$PORT"; then
                state=up
            else
                state=silent
            fi
            rss="$(($(ps -o rss= -p "$pid" 2>/dev/null || echo 0) / 1024))M"
        else
            pid=-
            state=down
            [[ -n ${cut[$(ns_of "$id")]:-} ]] && state=down,cut
        fi
        printf '%-8s %-16s %-8s %-10s %-8s %s\n' "kafka-$id" "${ADDR[$id]}:$PORT" "$pid" "$state" "$rss" "$(log_file "$id")"
    done
    read -r ctl _ < <(active_controller)
    log "active controller (per the brokers' logs): $ctl"
    if ! have kcat; then
        log "kcat is missing: no metadata view (deploy/cluster/kafka.sh up installs it)"
        return 0
    fi
    md=$(metadata) || true
    if [[ -z $md ]]; then
        log "metadata: no broker answers"
        return 0
    fi
    log "metadata: brokers [$(sed -n 's/^ *broker \([0-9]*\) at .*/\1/p' <<<"$md" | sort -n | tr '\n' ' ' | sed 's/ $//')]"
    summarize_topics <<<"$md"
}

main() {
    local cmd=${1:-}
    (($#)) && shift
    case $cmd in
        up) cmd_up ;;
        down) cmd_down "$@" ;;
        kill) kill_member "$@" ;;
        start) cmd_start "$@" ;;
        status) cmd_status ;;
        bootstrap) bootstrap ;;
        controller) active_controller ;;
        -h | --help | help) usage ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
