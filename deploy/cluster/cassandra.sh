#!/usr/bin/env bash
# Three Cassandra nodes (5.0, the native stack's CQL stand-in for ScyllaDB), each on its own test
# host made by deploy/cluster/net.sh: chat-cassandra-N at 10.77.0.2N, CQL on :9042, storage
# (gossip, replication) on :7000, JMX on 127.0.0.1:7199 inside the host's namespace. One
# datacenter dc1 (rack1), every node a seed, one fixed token per node.
#
#   deploy/cluster/cassandra.sh up                 make the network if needed, start what is not
#                                                  running (side by side), wait until every node
#                                                  sees all three Up/Normal and each CQL port answers
#   deploy/cluster/cassandra.sh down [--purge]     stop the three (--purge: drop data and logs)
#   deploy/cluster/cassandra.sh kill <n> [-9]      stop node n (SIGTERM: the node drains in its
#                                                  shutdown hook; -9: SIGKILL, a crash)
#   deploy/cluster/cassandra.sh start <n>          start node n on its data, wait until it and
#                                                  the other reachable nodes see each other UN
#   deploy/cluster/cassandra.sh status             each node: pid, address, state, RSS, log; the
#                                                  ring as a live node sees it
#   deploy/cluster/cassandra.sh contact            print the contact points (CHAT__CASSANDRA__NODES)
#   deploy/cluster/cassandra.sh nodetool <n> args  nodetool against node n (run inside its host)
#
# <n> is 1, 2, 3 (or cassandra-2, chat-cassandra-2). Progress lines: "[cluster HH:MM:SS] ...".
#
# Uses the Cassandra jars deploy/stack.sh downloads ($CHAT_STACK_DIR/jars/cassandra, from
# deploy/jars/cassandra/pom.xml; fetched here the same way if missing).
#
# Environment:
#   CHAT_CLUSTER_DIR             state folder (default ~/.cache/chat-stack/cluster): cassandra/<n>/
#                                holds each node's config and data, logs/ and pids/ the rest
#   CHAT_STACK_DIR               the native stack's folder, for its jars (default ~/.cache/chat-stack)
#   CHAT_CLUSTER_TIMEOUT         seconds to wait for the cluster to form / a node to rejoin (180)
#   CHAT_CLUSTER_CASSANDRA_HEAP  JVM heap flags of each node (default "-Xms512m -Xmx768m")
#   CHAT_CLUSTER_NICE            niceness of the nodes (default 10: they share 2 cores with the rest)
#   CHAT_CASSANDRA_TIMER_SLACK_NS  how late the nodes' timed sleeps may end (default 250000;
#                                deploy/lib/common.sh)
set -euo pipefail
umask 022

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEPLOY_DIR=$(dirname "$SCRIPT_DIR")
NET=$SCRIPT_DIR/net.sh

CLUSTER_DIR=${CHAT_CLUSTER_DIR:-$HOME/.cache/chat-stack/cluster}
CASS_DIR=$CLUSTER_DIR/cassandra
LOG_DIR=$CLUSTER_DIR/logs
PID_DIR=$CLUSTER_DIR/pids
STACK_DIR=${CHAT_STACK_DIR:-$HOME/.cache/chat-stack}
JAR_DIR=$STACK_DIR/jars/cassandra

WAIT_TIMEOUT=${CHAT_CLUSTER_TIMEOUT:-180}
read -r -a HEAP <<<"${CHAT_CLUSTER_CASSANDRA_HEAP:--Xms512m -Xmx768m}"
NICE=${CHAT_CLUSTER_NICE:-10}
# The shutdown hook drains (flushes every table); on 2 busy cores that takes a few seconds.
STOP_TIMEOUT=60
PORT=9042
STORAGE_PORT=7000
SSL_STORAGE_PORT=7001
JMX_PORT=7199
DC=dc1
RACK=rack1

# Java 17 module access Cassandra 5 needs (its conf/jvm17-server.options; deploy/stack.sh's
# start_cassandra passes the same), for the nodes and for nodetool alike.
JAVA17_ACCESS=(
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
    --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
    --add-exports java.sql/java.sql=ALL-UNNAMED --add-exports java.base/java.lang.ref=ALL-UNNAMED
    --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
    --add-opens java.base/java.lang.module=ALL-UNNAMED --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
    --add-opens java.base/jdk.internal.math=ALL-UNNAMED --add-opens java.base/jdk.internal.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED --add-opens java.base/java.io=ALL-UNNAMED
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED --add-opens java.base/java.lang=ALL-UNNAMED
    --add-opens java.base/java.util=ALL-UNNAMED --add-opens java.base/java.nio=ALL-UNNAMED
)

# ---------------------------------------------------------------------------------------------
# output

# log, warn, die, usage, have, pid_alive, wait_gone, apt_get
LOG_TAG=cluster
# shellcheck source=deploy/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# fail_start, stop_member
MEMBER=cassandra
MEMBERS=nodes
ERROR_LINES='^ERROR|Exception|[Cc]aused by'
# shellcheck source=deploy/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---------------------------------------------------------------------------------------------
# the nodes: read from net.sh's host table (chat-cassandra-N -> node N)

declare -A ADDR=() TOKEN=()
declare -a IDS=()
while read -r ns addr; do
    id=${ns#chat-cassandra-}
    [[ $id =~ ^[0-9]+$ ]] || die "net.sh: unexpected Cassandra host name $ns"
    IDS+=("$id")
    ADDR[$id]=$addr
done < <("$NET" hosts chat-cassandra-)
unset ns addr id
((${#IDS[@]} >= 1)) || die "net.sh lists no chat-cassandra-* host"

# One token per node, evenly spaced over Murmur3's range [-2^63, 2^63): node i (0-based) gets
# -2^63 + i * 2^64/n. Added step by step, so no intermediate leaves bash's 64-bit integers.
token_step=$(((9223372036854775807 / ${#IDS[@]}) * 2))
token=$((-9223372036854775807 - 1))
for id in "${IDS[@]}"; do
    TOKEN[$id]=$token
    token=$((token + token_step))
done
unset token token_step id

member_id() {
    local n=${1#chat-}
    n=${n#cassandra-}
    [[ -n ${ADDR[$n]:-} ]] || die "unknown node '$1' (known: ${IDS[*]})"
    echo "$n"
}

ns_of() { echo "chat-cassandra-$1"; }
node_dir() { echo "$CASS_DIR/$1"; }
log_file() { echo "$LOG_DIR/cassandra-$1.log"; }
pid_file() { echo "$PID_DIR/cassandra-$1.pid"; }
proc_marker() { echo "-Dchat.cluster=cassandra-$1"; }

joined() {
    local IFS=,
    echo "$*"
}

contact() {
    local id list=()
    for id in "${IDS[@]}"; do list+=("${ADDR[$id]}:$PORT"); done
    joined "${list[@]}"
}

seeds() {
    local id list=()
    for id in "${IDS[@]}"; do list+=("${ADDR[$id]}:$STORAGE_PORT"); done
    joined "${list[@]}"
}

# From the root namespace, through the bridge (a cut host's port does not answer).
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# Hosts cut by net.sh (its status marks them "cut").
declare -A CUT=()
read_cuts() {
    local h st
    CUT=()
    while read -r h _ st _; do [[ $st == cut ]] && CUT[$h]=1; done < <("$NET" status 2>/dev/null | tail -n +3)
    return 0
}
is_cut() { [[ -n ${CUT[$(ns_of "$1")]:-} ]]; }

# ---------------------------------------------------------------------------------------------
# processes


# ---------------------------------------------------------------------------------------------
# prerequisites

ensure_packages() {
    local missing=()
    have java || missing+=(openjdk-17-jre-headless)
    have mvn || [[ -f $JAR_DIR/.complete ]] || missing+=(maven)
    ((${#missing[@]} == 0)) && return 0
    ((EUID == 0)) || die "missing: ${missing[*]}; run as root, or: sudo apt-get install -y ${missing[*]}"
    log "installing ${missing[*]} with apt-get..."
    apt_get update -q
    apt_get install -y -q "${missing[@]}"
    log "installed ${missing[*]}"
}

# One cassandra.sh at a time starts or stops nodes (a fault test's kill next to an up).
lock_cluster() {
    mkdir -p "$CLUSTER_DIR"
    exec 7>"$CLUSTER_DIR/.cassandra.lock"
    flock -w 600 7 || die "another deploy/cluster/cassandra.sh holds $CLUSTER_DIR/.cassandra.lock"
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
# nodetool (over JMX, which each node binds to 127.0.0.1 inside its own namespace: so it runs
# there, and answers for a cut host too)

# Logback switched off for nodetool (without a config file it logs DEBUG to stdout).
tools_logback() {
    local f=$CASS_DIR/logback-tools.xml
    [[ -f $f ]] || { mkdir -p "$CASS_DIR" && echo '<configuration><root level="OFF"/></configuration>' >"$f"; }
    echo "$f"
}

nodetool_at() {
    local id=$1 lb
    shift
    lb=$(tools_logback)
    # A short-lived client JVM (a `status` takes ~3 s here): small heap, C1 only. user.home:
    # nodetool keeps its history in ~/.cassandra; ours stays in the cluster's folder.
    timeout 60 ip netns exec "$(ns_of "$id")" java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        "${JAVA17_ACCESS[@]}" -Duser.home="$CASS_DIR" -Dlogback.configurationFile="$lb" \
        -cp "$JAR_DIR/*" org.apache.cassandra.tools.NodeTool -h 127.0.0.1 -p "$JMX_PORT" "$@"
}

# "<status><state> <address>" of every node in node $1's view of the ring, e.g. "UN 10.77.0.21".
ring_view() { nodetool_at "$1" status 2>/dev/null | awk '/^[UD][NLJM] / { print $1, $2 }'; }

# ring_ok VIEWER ID...: does node VIEWER see every given node Up and Normal?
ring_ok() {
    local viewer=$1 view id
    shift
    view=$(ring_view "$viewer") || return 1
    for id in "$@"; do grep -qx "UN ${ADDR[$id]}" <<<"$view" || return 1; done
}

# wait_ring WHAT START ID...: until every given node sees every given node UN (each view asked
# side by side: one nodetool JVM per node and round); progress every 5 s, fail after the timeout.
wait_ring() {
    local what=$1 start=$2 next=0 waited id bad
    shift 2
    local -a ids=("$@")
    local -A pid=()
    while :; do
        waited=$((SECONDS - start))
        for id in "${ids[@]}"; do
            ring_ok "$id" "${ids[@]}" &
            pid[$id]=$!
        done
        bad=()
        for id in "${ids[@]}"; do wait "${pid[$id]}" || bad+=("cassandra-$id"); done
        ((${#bad[@]} == 0)) && return 0
        ((waited < WAIT_TIMEOUT)) || die "$what: ${bad[*]} do not see [${ids[*]/#/cassandra-}] all UN after ${WAIT_TIMEOUT}s (deploy/cluster/cassandra.sh status)"
        if ((waited >= next)); then
            log "$what: waiting until ${bad[*]} see [${ids[*]/#/cassandra-}] all Up/Normal (${waited}s)..."
            next=$((waited + 5))
        fi
        sleep 0.5
    done
}

# ---------------------------------------------------------------------------------------------
# start / stop one node

declare -A LOG_OFFSET=() START_AT=()

prepare_node() {
    local id=$1 dir
    dir=$(node_dir "$id")
    mkdir -p "$dir"/{data,commitlog,saved_caches,hints,cdc_raw} "$LOG_DIR" "$PID_DIR"
    render_template "$SCRIPT_DIR/cassandra.yaml.template" NODE_ID="$id" ADDR="${ADDR[$id]}" \
        TOKEN="${TOKEN[$id]}" SEEDS="$(seeds)" PORT="$PORT" STORAGE_PORT="$STORAGE_PORT" \
        SSL_STORAGE_PORT="$SSL_STORAGE_PORT" DIR="$dir" >"$dir/cassandra.yaml"
    printf '# written by deploy/cluster/cassandra.sh (GossipingPropertyFileSnitch)\ndc=%s\nrack=%s\n' \
        "$DC" "$RACK" >"$dir/cassandra-rackdc.properties"
    cp "$DEPLOY_DIR/cassandra/logback.xml" "$dir/logback.xml"
}

spawn_node() {
    local id=$1 dir ns logf jamm
    dir=$(node_dir "$id")
    ns=$(ns_of "$id")
    logf=$(log_file "$id")
    [[ -e /run/netns/$ns ]] || die "host $ns does not exist (deploy/cluster/net.sh up)"
    if port_open "${ADDR[$id]}" "$PORT"; then
        die "${ADDR[$id]}:$PORT is already taken by a process this script did not start (net.sh status)"
    fi
    jamm=$(find "$JAR_DIR" -maxdepth 1 -name 'jamm-*.jar' | head -n 1)
    [[ -n $jamm ]] || die "no jamm jar in $JAR_DIR"
    printf '\n===== %s: deploy/cluster/cassandra.sh starts cassandra-%s =====\n' "$(date -Is)" "$id" >>"$logf"
    LOG_OFFSET[$id]=$(stat -c %s "$logf")
    START_AT[$id]=$SECONDS
    # The JVM flags are deploy/stack.sh's start_cassandra's, with the cluster's heap and marker.
    # skip_wait_for_gossip_to_settle=0: CQL opens without the settle wait (at least 8 s: 5 s,
    # then three quiet 1-s polls); `up` and `start` wait for the ring instead.
    # `ip netns exec` execs java in the namespace (as do setsid, nice and TIMER_SLACK's sh): $! is
    # java's pid.
    # Own session, so a SIGKILL can take the process group; 7>&- 9>&-: no lock is inherited.
    setsid nice -n "$NICE" ip netns exec "$ns" "${TIMER_SLACK[@]}" "$CASSANDRA_TIMER_SLACK_NS" java "${HEAP[@]}" \
        -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -Djava.net.preferIPv4Stack=true \
        "${JAVA17_ACCESS[@]}" \
        -Dio.netty.tryReflectionSetAccessible=true \
        -Djdk.attach.allowAttachSelf=true "-javaagent:$jamm" \
        "$(proc_marker "$id")" \
        "-Dcassandra.config=file://$dir/cassandra.yaml" \
        "-Dcassandra-rackdc.properties=file://$dir/cassandra-rackdc.properties" \
        "-Dcassandra.storagedir=$dir" \
        -Dcassandra-foreground=yes \
        "-Dcassandra.logdir=$LOG_DIR" \
        "-Dlogback.configurationFile=$dir/logback.xml" \
        -Dcassandra.skip_wait_for_gossip_to_settle=0 \
        "-Dcassandra.jmx.local.port=$JMX_PORT" \
        -cp "$JAR_DIR/*" org.apache.cassandra.service.CassandraDaemon >>"$logf" 2>&1 </dev/null 7>&- 9>&- &
    echo $! >"$(pid_file "$id")"
}

# The node has finished its start (this start's log says so) and its CQL port answers.
node_started() {
    local id=$1
    port_open "${ADDR[$id]}" "$PORT" &&
        grep -q 'CassandraDaemon - Startup complete' < <(tail -c "+$((${LOG_OFFSET[$id]:-0} + 1))" "$(log_file "$id")")
}

# Cassandra's shutdown hook drains on SIGTERM: it announces the shutdown by gossip (the others
# mark it down at once instead of after the failure detector's ~10 s), stops accepting requests
# and flushes every memtable, so the restart replays no commit log. After a stop, the JVM's
# threads must be gone before the next start (see wait_threads_gone).
after_stop() {
    wait_threads_gone "$1" 10 || warn "pid $1: threads still exiting after 10s"
}

# wait_threads_gone PID SECONDS: after a SIGKILL the main thread is a zombie at once, while the
# JVM's other threads still exit and its sockets stay open; a start right away would find the
# CQL port taken. Done when the process is reaped or its zombie is its only thread.
wait_threads_gone() {
    local jvm=$1 timeout=$2 start=$SECONDS threads
    while [[ -e /proc/$jvm ]]; do
        threads=$(awk '/^Threads:/ { print $2 }' "/proc/$jvm/status" 2>/dev/null) || return 0
        [[ -z $threads || $threads -le 1 ]] && return 0
        ((SECONDS - start < timeout)) || return 1
        sleep 0.1
    done
}

# ---------------------------------------------------------------------------------------------
# commands

cmd_up() {
    ((EUID == 0)) || die "needs root (network namespaces)"
    ensure_packages
    ensure_jars
    lock_cluster
    "$NET" up "${IDS[@]/#/cassandra-}"
    local start=$SECONDS id pending=() running=()
    for id in "${IDS[@]}"; do
        prepare_node "$id"
        if running_pid "$id" >/dev/null; then running+=("$id"); else pending+=("$id"); fi
    done
    ((${#running[@]} == 0)) || log "already running: ${running[*]/#/cassandra-}"
    # All at once, also on a fresh cluster: every node is a seed with its own initial_token and
    # auto_bootstrap off, so none streams from the others or waits for them to have joined (a
    # bootstrapping node would need the ring formed, and would join one at a time).
    for id in "${pending[@]}"; do
        spawn_node "$id"
        log "cassandra-$id starting in $(ns_of "$id") at ${ADDR[$id]}:$PORT (pid $(cat "$(pid_file "$id")"), log $(log_file "$id"))"
    done
    await_started "$start" "${#running[@]}" node_started "${pending[@]}"
    # Up is not yet a ring: wait until each node's gossip has every node Up and Normal.
    wait_ring forming "$start" "${IDS[@]}"
    log "Cassandra cluster formed in $((SECONDS - start))s: every node sees [${IDS[*]/#/cassandra-}] UN; CQL at $(contact)"
}

cmd_down() { down_members "$CASS_DIR" "$@"; }

cmd_start() {
    (($# == 1)) || die "usage: cassandra.sh start <n>"
    ((EUID == 0)) || die "needs root (network namespaces)"
    local id start=$SECONDS other peers=()
    id=$(member_id "$1")
    ensure_packages
    ensure_jars
    lock_cluster
    if running_pid "$id" >/dev/null; then
        log "cassandra-$id is already running (pid $(running_pid "$id"))"
        return 0
    fi
    [[ -d $(node_dir "$id")/data ]] || log "cassandra-$id has no data yet: it starts empty (no bootstrap)"
    prepare_node "$id"
    spawn_node "$id"
    log "cassandra-$id starting in $(ns_of "$id") at ${ADDR[$id]}:$PORT (pid $(cat "$(pid_file "$id")"))"
    await_member "$id" "$start" start node_started
    read_cuts
    if is_cut "$id"; then
        log "cassandra-$id is up after $((SECONDS - start))s; its host is cut, so no ring to wait for (net.sh heal)"
        return 0
    fi
    log "cassandra-$id is up after $((SECONDS - start))s; waiting for the ring"
    # The ring among the nodes that can see each other: running and not cut.
    for other in "${IDS[@]}"; do
        if running_pid "$other" >/dev/null && ! is_cut "$other"; then peers+=("$other"); fi
    done
    wait_ring "cassandra-$id rejoining" "$start" "${peers[@]}"
    log "cassandra-$id rejoined in $((SECONDS - start))s: [${peers[*]/#/cassandra-}] see each other UN"
}

cmd_status() {
    local id pid state rss viewer='' fallback=''
    read_cuts
    printf '%-12s %-16s %-8s %-10s %-8s %s\n' NODE ADDRESS PID STATE RSS LOG
    for id in "${IDS[@]}"; do
        rss=-
        if pid=$(running_pid "$id"); then
            # (a cut host's port does not answer from here: that is the cut, not the node)
            if is_cut "$id"; then
                state="cut"
            elif port_open "${ADDR[$id]}" "$PORT"; then
                state=up
                [[ -n $viewer ]] || viewer=$id
            else
                state=silent
            fi
            [[ -n $fallback ]] || fallback=$id
            rss="$(($(ps -o rss= -p "$pid" 2>/dev/null || echo 0) / 1024))M"
        else
            pid=-
            state=down
            is_cut "$id" && state=down,cut
        fi
        printf '%-12s %-16s %-8s %-10s %-8s %s\n' "cassandra-$id" "${ADDR[$id]}:$PORT" "$pid" "$state" "$rss" "$(log_file "$id")"
    done
    # No node answers from here: a cut (or starting) node's view is still worth seeing.
    viewer=${viewer:-$fallback}
    if [[ -z $viewer ]]; then
        log "ring: no node is running"
        return 0
    fi
    log "ring as cassandra-$viewer sees it (nodetool status):"
    nodetool_at "$viewer" status 2>&1 | sed -n '/^Datacenter/,$p' | sed 's/^/    /' || true
}

cmd_nodetool() {
    (($# >= 2)) || die "usage: cassandra.sh nodetool <n> args..."
    ((EUID == 0)) || die "needs root (network namespaces)"
    local id
    id=$(member_id "$1")
    shift
    nodetool_at "$id" "$@"
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
        contact) contact ;;
        nodetool) cmd_nodetool "$@" ;;
        -h | --help | help) usage ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
