#!/usr/bin/env bash
# The native stack: PostgreSQL, Redis, Kafka (KRaft), Cassandra (CQL stand-in for ScyllaDB), the
# S3 object store (versitygw), our services and nginx, all on loopback, without Docker. Used by the
# tests and CI.
#
#   deploy/stack.sh up [--cluster] [--infra-only] [--no-build] [--no-web]
#                                                    start what is not running yet, wait until ready
#                                                    (--no-web: serve web/dist as it is, never npm;
#                                                    --cluster: see "Cluster mode" below)
#   deploy/stack.sh down [--purge]                   stop what this script started (--purge: drop data)
#   deploy/stack.sh status                           each server: pid, port(s), up/down, log
#   deploy/stack.sh logs [name] [-f]                 tail a server's log (no name: list the logs)
#   deploy/stack.sh kill <name> [-9]                 stop one server (SIGTERM, or SIGKILL with -9)
#   deploy/stack.sh start <name>...                  start these servers, each ready before the next
#   deploy/stack.sh cut|heal <member>                cluster mode: cut a member's host off the
#                                                    network (it keeps running) / undo it
#
# Cluster mode (`up --cluster`, needs root): instead of the single Kafka and Cassandra, three
# Kafka brokers and three Cassandra nodes on hosts of their own (network namespaces,
# deploy/cluster/), members kafka-1..3 and cassandra-1..3; the services use them with
# replication factor 3 (Kafka min.insync.replicas 2, Cassandra LOCAL_QUORUM = 2 of 3). The mode
# is kept in run/mode until `down`, so kill/start/status know it; switching modes needs a
# `down` first. The clusters' state lives in run/cluster/. The cluster topology also runs
# gateway-3 and message-server-3.
#
# Names: postgres redis kafka cassandra objectstore apns api gateway-1 gateway-2 message-server-1
# message-server-2 notifier media nginx; spares gateway-4 and message-server-4, which only
# `start` runs (scaling out under traffic: a spare gateway joins nginx's upstream once ready and
# leaves it at `kill`)
# (the services and ports come from deploy/native/topology.conf, shared with docker-compose.yml;
# apns is the APNs stand-in, tools/apns-standin, with its control API on 127.0.0.1:18444;
# objectstore is the S3 API of versitygw on 127.0.0.1:19000, reached by clients through nginx's
# /chat-attachments/).
#
# Environment:
#   CHAT_STACK_DIR      state folder (default ~/.cache/chat-stack): run/ holds data, logs/, pids/,
#                       secrets/ of the current stack; jars/ the Maven downloads and bin/ the
#                       object store's binary built with Go (both kept across runs)
#   CARGO_TARGET_DIR    where the services are built (default ~/.cache/chat-target)
#   CHAT_STACK_TIMEOUT  seconds to wait for each server to be ready (default 180)
#   CHAT_REDIS_MAXMEMORY  Redis's memory bound, never evicting (default 1gb)
#   CHAT_CASSANDRA_TIMER_SLACK_NS  how late Cassandra's timed sleeps may end (default 250000:
#                       its idle request threads wake less often; deploy/lib/common.sh)
#   CHAT_STACK_BUILD_WEB=false   same as --no-web
#   CHAT_WS_CONNS_PER_ADDRESS    nginx's cap on concurrent WebSockets per client address
#                       (default 256; loopback is exempt)
#   CHAT__*             passed through to the services (the stack's own settings win)
set -euo pipefail
umask 022

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$SCRIPT_DIR")
TOPOLOGY=$SCRIPT_DIR/native/topology.conf
CLUSTER_SCRIPTS=$SCRIPT_DIR/cluster

STACK_DIR=${CHAT_STACK_DIR:-$HOME/.cache/chat-stack}
RUN_DIR=$STACK_DIR/run
LOG_DIR=$RUN_DIR/logs
PID_DIR=$RUN_DIR/pids
SECRETS_DIR=$RUN_DIR/secrets
MODE_FILE=$RUN_DIR/mode
CLUSTER=false
JAR_DIR=$STACK_DIR/jars
# Tools built once and kept across runs (down --purge too): versitygw-<version>.
TOOL_DIR=$STACK_DIR/bin
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/chat-target}
BIN_DIR=$CARGO_TARGET_DIR/release

WAIT_TIMEOUT=${CHAT_STACK_TIMEOUT:-180}
REDIS_MAXMEMORY=${CHAT_REDIS_MAXMEMORY:-1gb}
STOP_TIMEOUT=15        # services: SIGTERM, then SIGKILL after this many seconds
INFRA_STOP_TIMEOUT=40  # stores and broker get longer to shut down cleanly
MIGRATE_TIMEOUT=300

# Fixed ports of the native stack besides those in topology.conf.
CASSANDRA_STORAGE_PORT=17000
CASSANDRA_SSL_STORAGE_PORT=17001
CASSANDRA_JMX_PORT=17199

# The object store: Versity S3 Gateway (Apache-2.0), built from the Go module proxy once.
# docker-compose.yml runs the image of the same version (versity/versitygw:<version>).
VERSITYGW_VERSION=v1.8.0

# ---------------------------------------------------------------------------------------------
# output

# log, warn, die, usage, have, pid_alive, wait_gone, apt_get
LOG_TAG=stack
# shellcheck source=deploy/lib/common.sh
source "$SCRIPT_DIR/lib/common.sh"

# A server did not come up: name it, show the end of its log, stop.
fail_start() {
    local name=$1 reason=$2 logf
    logf=$(log_file "$name")
    printf '\n[stack %s] ERROR: %s failed to start: %s\n' "$(date +%H:%M:%S)" "$name" "$reason" >&2
    if [[ -f $logf ]]; then
        local errs
        errs=$(tail -c "+$((${LOG_OFFSET[$name]:-0} + 1))" "$logf" |
            grep -E -m 8 '^Error:|panicked|\bERROR\b|FATAL|Exception|[Cc]aused by' || true)
        [[ -n $errs ]] && printf '[stack] first error lines of this start:\n%s\n' "$(sed 's/^/    /' <<<"$errs")" >&2
        printf '[stack] last 40 lines of %s:\n' "$logf" >&2
        tail -n 40 "$logf" | sed 's/^/    /' >&2
    else
        printf '[stack] (no log at %s)\n' "$logf" >&2
    fi
    printf '[stack] servers that did start are left running: deploy/stack.sh status | down\n' >&2
    exit 1
}

# render_template TEMPLATE KEY=VALUE...: print TEMPLATE with each {{KEY}} replaced by VALUE.
# The config files of the stores (deploy/<server>/*.template) and nginx's are rendered this way.
render_template() {
    local tpl=$1 text kv
    shift
    text=$(<"$tpl")
    for kv in "$@"; do
        # Quoted replacement: '&' in a value stays literal (bash 5.2 patsub_replacement).
        text=${text//"{{${kv%%=*}}}"/"${kv#*=}"}
    done
    if [[ $text =~ \{\{[A-Z_]+\}\} ]]; then die "$tpl: ${BASH_REMATCH[0]} was not filled in"; fi
    printf '%s\n' "$text"
}


# ---------------------------------------------------------------------------------------------
# topology (deploy/native/topology.conf)

declare -A INFRA_PORT=() SVC_BIN=() SVC_HTTP=() SVC_OPS=() SVC_ENV=()
# `extra` services: when they run (cluster | spare); the `service` ones have no entry.
declare -A SVC_WHEN=()
declare -A STANDIN_BIN=() STANDIN_PORT=() STANDIN_CONTROL=()
declare -a INFRA_NAMES=() SERVICES=() COMMON_ENV=() STANDINS=()
LB_NAME=nginx
LB_PORT=8080
# Every store/broker this script can run (start_<name>, <name>_ready), in the order of `status`.
INFRA_ORDER=(postgres redis kafka cassandra objectstore)

# A stand-in's state folder (its files are read by the services that use it).
standin_dir() { echo "$RUN_DIR/${STANDIN_BIN[$1]}"; }

subst() {
    local s=$1 n up
    s=${s//\{SECRETS\}/$SECRETS_DIR}
    s=${s//\{HOST\}/127.0.0.1}
    for n in "${STANDINS[@]}"; do
        up=${n^^}
        up=${up//-/_}
        s=${s//"{${up}_HOST}"/127.0.0.1}
        s=${s//"{${up}_DIR}"/"$(standin_dir "$n")"}
    done
    if [[ $s =~ \{[A-Z_]+\} ]]; then die "$TOPOLOGY: unknown placeholder ${BASH_REMATCH[0]}"; fi
    printf '%s' "$s"
}

load_topology() {
    [[ -f $TOPOLOGY ]] || die "missing $TOPOLOGY"
    local kind a b c d rest when
    local -a common=()
    while read -r kind a b c d rest; do
        when=''
        if [[ $kind == extra ]]; then
            # extra <when> <name> <binary> <http> <ops> [settings]: shift the fields by one.
            [[ $a == cluster || $a == spare ]] || die "$TOPOLOGY: extra: unknown <when> '$a'"
            when=$a
            read -r a b c d rest <<<"$b $c $d $rest"
            kind=service
        fi
        case $kind in
            '') continue ;;
            infra) INFRA_NAMES+=("$a"); INFRA_PORT[$a]=$b ;;
            common) common+=("$a") ;;
            service)
                [[ -n $when ]] && SVC_WHEN[$a]=$when
                SERVICES+=("$a")
                SVC_BIN[$a]=$b
                SVC_HTTP[$a]=$c
                SVC_OPS[$a]=$d
                SVC_ENV[$a]=$rest
                ;;
            standin)
                STANDINS+=("$a")
                STANDIN_PORT[$a]=$b
                STANDIN_CONTROL[$a]=$c
                STANDIN_BIN[$a]=$d
                ;;
            lb) LB_NAME=$a; LB_PORT=$b ;;
            *) die "$TOPOLOGY: unknown line kind '$kind'" ;;
        esac
    done < <(sed 's/#.*//' "$TOPOLOGY")
    # Placeholders after the whole file: a line may name a stand-in declared further down.
    local n
    for n in "${common[@]}"; do COMMON_ENV+=("$(subst "$n")"); done
    for n in "${SERVICES[@]}"; do SVC_ENV[$n]=$(subst "${SVC_ENV[$n]}"); done
    for n in "${INFRA_ORDER[@]}"; do
        [[ -n ${INFRA_PORT[$n]:-} ]] || die "$TOPOLOGY: no 'infra $n' line"
    done
}

is_service() { [[ -n ${SVC_BIN[$1]:-} ]]; }
is_infra() { [[ -n ${INFRA_PORT[$1]:-} ]]; }
is_standin() { [[ -n ${STANDIN_BIN[$1]:-} ]]; }
# In cluster mode Kafka and Cassandra are three members each, named kafka-1..3, cassandra-1..3.
is_clustered() { [[ $1 == kafka || $1 == cassandra ]]; }
is_member() { $CLUSTER && [[ $1 =~ ^(kafka|cassandra)-[123]$ ]]; }
is_spare() { [[ ${SVC_WHEN[$1]:-} == spare ]]; }
# The services `up` starts: the `service` lines, and in cluster mode the `extra cluster` ones.
up_services() {
    local n
    for n in "${SERVICES[@]}"; do
        case ${SVC_WHEN[$n]:-} in
            '') echo "$n" ;;
            cluster) $CLUSTER && echo "$n" ;;
        esac
    done
    return 0
}
# Every name of this mode: `up`'s services and the spares `start` may add.
all_names() {
    local n
    for n in "${INFRA_ORDER[@]}"; do
        if $CLUSTER && is_clustered "$n"; then printf '%s\n' "$n-1" "$n-2" "$n-3"; else echo "$n"; fi
    done
    printf '%s\n' "${STANDINS[@]}"
    up_services
    for n in "${SERVICES[@]}"; do is_spare "$n" && echo "$n"; done
    echo "$LB_NAME"
}
known_name() {
    local n
    while read -r n; do [[ $n == "$1" ]] && return 0; done < <(all_names)
    return 1
}

# ---------------------------------------------------------------------------------------------
# processes

log_file() {
    if is_member "$1"; then
        echo "$RUN_DIR/cluster/logs/$1.log"
        return
    fi
    case $1 in
        nginx) echo "$LOG_DIR/nginx-error.log" ;;
        *) echo "$LOG_DIR/$1.log" ;;
    esac
}

pg_data() { echo "$RUN_DIR/postgres/data"; }
objectstore_data() { echo "$RUN_DIR/objectstore/data"; }

pid_file() {
    case $1 in
        postgres) echo "$(pg_data)/postmaster.pid" ;;
        *) echo "$PID_DIR/$1.pid" ;;
    esac
}

# What the command line of a live server of ours contains (guards against recycled pids).
proc_marker() {
    case $1 in
        postgres) echo "$(pg_data)" ;;
        redis) echo "redis-server" ;;
        nginx) echo "nginx: master" ;;
        kafka | cassandra) echo "-Dchat.stack=$1" ;;
        objectstore) echo "posix $(objectstore_data)" ;;
        *) if is_standin "$1"; then echo "${STANDIN_BIN[$1]} --dir"; else echo "${SVC_BIN[$1]}"; fi ;;
    esac
}


port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Refuse to start a server on a port something else holds.
require_free_port() {
    local name=$1 port=$2
    if port_open "$port"; then
        printf '[stack] ERROR: cannot start %s: 127.0.0.1:%s is already taken by another process:\n' "$name" "$port" >&2
        ss -ltnpH "sport = :$port" 2>/dev/null | sed 's/^/    /' >&2 || true
        exit 1
    fi
}

declare -A START_AT=() LOG_OFFSET=()

# Run a command in the background, detached (own session), output appended to the server's log.
spawn() {
    local name=$1 logf
    shift
    logf=$(log_file "$name")
    printf '\n===== %s: deploy/stack.sh starts %s =====\n' "$(date -Is)" "$name" >>"$logf"
    LOG_OFFSET[$name]=$(stat -c %s "$logf")
    START_AT[$name]=$SECONDS
    # 9>&-: servers must not inherit the stack lock (lock_stack).
    setsid "$@" >>"$logf" 2>&1 </dev/null 9>&- &
    echo $! >"$(pid_file "$name")"
}

# Is the server alive while we wait for it? (Its pid file may lag a moment behind the start.)
still_starting() {
    local name=$1 waited=$2
    running_pid "$name" >/dev/null || ((waited < 4))
}

# wait_ready NAME CHECK-COMMAND...: poll until the check passes, the process dies or time is up.
wait_ready() {
    local name=$1 start next=0 waited
    shift
    start=${START_AT[$name]:-$SECONDS}
    while ! "$@" >/dev/null 2>&1; do
        waited=$((SECONDS - start))
        still_starting "$name" "$waited" || fail_start "$name" "the process exited"
        ((waited < WAIT_TIMEOUT)) || fail_start "$name" "not ready after ${WAIT_TIMEOUT}s"
        if ((waited >= next)); then
            log "waiting for $name (${waited}s)..."
            next=$((waited + 5))
        fi
        sleep 0.5
    done
    log "$name is ready ($((SECONDS - start))s, pid $(running_pid "$name" || echo '?'), log: $(log_file "$name"))"
}

# Signal a server; SIGKILL hits its whole process group (workers, backends) when it leads one.
signal_server() {
    local pid=$1 sig=$2 pgid
    pgid=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ') || true
    if [[ $sig == KILL && $pgid == "$pid" ]]; then
        kill -KILL -- "-$pid" 2>/dev/null || true
    elif [[ $sig == KILL ]]; then
        # Not a group leader (postgres under pg_ctl): its direct children go too (backends).
        local kids
        kids=$(ps -o pid= --ppid "$pid" 2>/dev/null | tr -s ' \n' ' ') || true
        # shellcheck disable=SC2086
        kill -KILL "$pid" $kids 2>/dev/null || true
    else
        kill "-$sig" "$pid" 2>/dev/null || true
    fi
}

# stop_server NAME [TERM|KILL] [timeout]: stop one server of ours; SIGKILL if TERM is not enough.
stop_server() {
    local name=$1 sig=${2:-TERM} timeout=${3:-$STOP_TIMEOUT} pid
    if ! pid=$(running_pid "$name"); then
        log "$name is not running"
        [[ $name == postgres ]] || rm -f "$(pid_file "$name")"
        return 0
    fi
    log "stopping $name (pid $pid, SIG$sig)"
    if [[ $name == postgres && $sig == TERM ]]; then
        as_pg "$(pg_bin)/pg_ctl" -D "$(pg_data)" -m fast -w -t "$timeout" stop >/dev/null 2>&1 || true
    fi
    signal_server "$pid" "$sig"
    if ! wait_gone "$pid" "$timeout"; then
        warn "$name (pid $pid) still running after ${timeout}s: SIGKILL"
        signal_server "$pid" KILL
        wait_gone "$pid" 10 || warn "$name (pid $pid) did not die"
    fi
    if [[ $name == postgres ]]; then
        # postgres refuses to start while its old pid exists, even as a zombie not yet reaped.
        local _
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    else
        rm -f "$(pid_file "$name")"
    fi
}

# ---------------------------------------------------------------------------------------------
# prerequisites

pg_bin() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [[ -n $d && -x $d/initdb ]] || return 1
    echo "$d"
}

as_pg() {
    if ((EUID == 0)); then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

ensure_packages() {
    local missing=()
    pg_bin >/dev/null || missing+=(postgresql)
    { have redis-server && have redis-cli; } || missing+=(redis-server)
    have nginx || missing+=(nginx)
    have java || missing+=(openjdk-17-jre-headless)
    have mvn || missing+=(maven)
    have curl || missing+=(curl)
    ((${#missing[@]} == 0)) && return 0
    ((EUID == 0)) || die "missing: ${missing[*]}; run as root, or: sudo apt-get install -y ${missing[*]}"
    log "installing ${missing[*]} with apt-get (waits for a running apt/dpkg to finish)..."
    apt_get update -q
    apt_get install -y -q "${missing[@]}"
    # Not the system's clusters/services: we run our own instances on our own ports.
}

# Jars of Kafka / Cassandra from Maven Central, fetched once into $JAR_DIR/<name>.
ensure_jars() {
    local name=$1 pom=$SCRIPT_DIR/jars/$1/pom.xml dest=$JAR_DIR/$1 build=$JAR_DIR/.build-$1 sum
    sum=$(sha256sum <"$pom" | cut -d' ' -f1)
    if [[ -f $dest/.complete && $(cat "$dest/.complete") == "$sum" ]]; then
        return 0
    fi
    log "fetching $name jars from Maven Central into $dest (once; cached across runs)..."
    rm -rf "$dest" "$dest.tmp" "$build"
    mkdir -p "$build"
    cp "$pom" "$build/pom.xml"
    if ! mvn -B -q -Dstyle.color=never -f "$build/pom.xml" package -DoutputDirectory="$dest.tmp" >"$build/mvn.log" 2>&1; then
        printf '[stack] ERROR: fetching %s jars failed; last 40 lines of %s:\n' "$name" "$build/mvn.log" >&2
        tail -n 40 "$build/mvn.log" | sed 's/^/    /' >&2
        exit 1
    fi
    mv "$dest.tmp" "$dest"
    echo "$sum" >"$dest/.complete"
    log "$name jars: $(ls "$dest" | wc -l) files"
}

ensure_secrets() {
    mkdir -p "$SECRETS_DIR"
    chmod 700 "$SECRETS_DIR"
    local f
    for f in jwt_secret internal_token s3_secret_key; do
        if [[ ! -s $SECRETS_DIR/$f ]]; then
            (umask 077 && head -c 48 /dev/urandom | base64 -w0 >"$SECRETS_DIR/$f")
            log "generated $SECRETS_DIR/$f"
        fi
    done
    # The object store's access key id travels in presigned URLs (X-Amz-Credential=<id>/...):
    # upper-case hex, so nothing in it needs escaping or splits the credential scope.
    if [[ ! -s $SECRETS_DIR/s3_access_key ]]; then
        (umask 077 && od -An -tx1 -N10 /dev/urandom | tr -d ' \n' | tr a-f A-F >"$SECRETS_DIR/s3_access_key")
        log "generated $SECRETS_DIR/s3_access_key"
    fi
}

# versitygw from the Go module proxy, built once into $TOOL_DIR (kept across runs and purges).
ensure_versitygw() {
    local bin build logf start
    bin=$(versitygw_bin)
    [[ -x $bin ]] && return 0
    have go || die "Go is needed once to build the object store (versitygw $VERSITYGW_VERSION): install Go 1.21 or newer (https://go.dev/dl/), then run this again"
    build=$TOOL_DIR/.build-versitygw
    logf=$TOOL_DIR/versitygw-build.log
    rm -rf "$build"
    mkdir -p "$build"
    log "building the object store, versitygw $VERSITYGW_VERSION, with go install (once, about 2 minutes; cached in $TOOL_DIR)..."
    start=$SECONDS
    # -mod=mod: the module's own go.mod decides, whatever GOFLAGS says; -p 1, nice: one core
    # (the stack's JVMs, or a test run, keep the other).
    if ! GOFLAGS=-mod=mod GOBIN=$build nice -n 10 go install -p 1 \
        "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" >"$logf" 2>&1 9>&-; then
        printf '[stack] ERROR: building versitygw failed; last 40 lines of %s:\n' "$logf" >&2
        tail -n 40 "$logf" | sed 's/^/    /' >&2
        exit 1
    fi
    mv "$build/versitygw" "$bin"
    rm -rf "$build"
    log "versitygw $VERSITYGW_VERSION built in $((SECONDS - start))s: $bin"
}

versitygw_bin() { echo "$TOOL_DIR/versitygw-$VERSITYGW_VERSION"; }

# ---------------------------------------------------------------------------------------------
# PostgreSQL

pg_sock_dir() {
    local d=$RUN_DIR/postgres/sock
    # Unix socket paths are limited to ~107 bytes.
    if ((${#d} > 80)); then
        d=/tmp/chat-stack-pg-$(printf '%s' "$RUN_DIR" | sha256sum | cut -c1-12)
    fi
    echo "$d"
}

# The postgres user must reach its data dir: let it traverse the folders above (search bit only).
grant_pg_traverse() {
    ((EUID == 0)) || return 0
    local d=$1
    while [[ $d != / && -n $d ]]; do
        if ! runuser -u postgres -- test -x "$d" 2>/dev/null; then
            chmod o+x "$d"
            log "note: chmod o+x $d (so that the postgres user can reach its data dir)"
        fi
        d=$(dirname "$d")
    done
}

start_postgres() {
    local port=${INFRA_PORT[postgres]} bin data sock logf
    bin=$(pg_bin) || die "PostgreSQL binaries not found under /usr/lib/postgresql"
    data=$(pg_data)
    sock=$(pg_sock_dir)
    logf=$(log_file postgres)
    require_free_port postgres "$port"
    mkdir -p "$RUN_DIR/postgres" "$sock"
    touch "$logf"
    if ((EUID == 0)); then
        chown postgres:postgres "$RUN_DIR/postgres" "$sock" "$logf"
        grant_pg_traverse "$RUN_DIR/postgres"
    fi
    chmod 700 "$sock"
    if [[ ! -s $data/PG_VERSION ]]; then
        log "initdb $data"
        rm -rf "$data"
        as_pg "$bin/initdb" -D "$data" -U postgres -E UTF8 --locale=C.UTF-8 \
            --auth-local=trust --auth-host=scram-sha-256 >>"$logf" 2>&1 ||
            fail_start postgres "initdb failed"
        render_template "$SCRIPT_DIR/postgres/native.conf.template" PORT="$port" SOCKET_DIR="$sock" \
            >>"$data/postgresql.conf"
    fi
    # A postmaster.pid left by a killed server whose pid now belongs to an unrelated process would
    # block the start (postgres handles a dead pid itself, and checks for orphaned backends).
    local old _
    old=$(head -n 1 "$data/postmaster.pid" 2>/dev/null | tr -dc '0-9') || true
    if [[ -n $old ]]; then
        # a killed postmaster may linger a moment as a zombie
        for _ in $(seq 50); do kill -0 "$old" 2>/dev/null && ! pid_alive "$old" || break; sleep 0.1; done
    fi
    if [[ -n $old ]] && pid_alive "$old" && [[ $(tr '\0' ' ' <"/proc/$old/cmdline" 2>/dev/null) != *postgres* ]]; then
        rm -f "$data/postmaster.pid"
    fi
    printf '\n===== %s: deploy/stack.sh starts postgres =====\n' "$(date -Is)" >>"$logf"
    START_AT[postgres]=$SECONDS
    as_pg "$bin/pg_ctl" -D "$data" -l "$logf" -W start >/dev/null 2>>"$logf" 9>&- ||
        fail_start postgres "pg_ctl start failed"
}

pg_ready() { "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "${INFRA_PORT[postgres]}"; }

psql_admin() {
    as_pg "$(pg_bin)/psql" -h "$(pg_sock_dir)" -p "${INFRA_PORT[postgres]}" -U postgres -d postgres \
        -v ON_ERROR_STOP=1 -qAtX "$@"
}

# Role chat / password chat / database chat, idempotently.
setup_postgres() {
    psql_admin -c "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'chat') THEN
            CREATE ROLE chat LOGIN CREATEDB PASSWORD 'chat';
        END IF; END \$\$;" || fail_start postgres "creating role chat failed"
    if [[ $(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = 'chat'") != 1 ]]; then
        psql_admin -c "CREATE DATABASE chat OWNER chat" || fail_start postgres "creating database chat failed"
        log "created database chat (role chat)"
    fi
}

# ---------------------------------------------------------------------------------------------
# Redis

start_redis() {
    local port=${INFRA_PORT[redis]}
    require_free_port redis "$port"
    mkdir -p "$RUN_DIR/redis"
    spawn redis redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
        --daemonize no --logfile '' --dir "$RUN_DIR/redis" --maxclients 10000
}

redis_ready() { [[ $(redis-cli -h 127.0.0.1 -p "${INFRA_PORT[redis]}" ping 2>/dev/null) == PONG ]]; }

# A memory bound that never evicts: presence, membership epochs and send claims are what the
# delivery guarantees rest on, and an evicted presence or epoch key would silently break them.
# Past the bound writes fail loudly instead (sizing: docs/operations.md). Applied to a running
# Redis too, so an older stack gets it at the next `up`.
setup_redis() {
    local r=(redis-cli -h 127.0.0.1 -p "${INFRA_PORT[redis]}")
    "${r[@]}" CONFIG SET maxmemory "$REDIS_MAXMEMORY" >/dev/null
    "${r[@]}" CONFIG SET maxmemory-policy noeviction >/dev/null
}

# ---------------------------------------------------------------------------------------------
# Kafka (single combined broker + controller, KRaft)

start_kafka() {
    local port=${INFRA_PORT[kafka]} cport dir cp
    cport=$((port + 1))
    dir=$RUN_DIR/kafka
    cp="$JAR_DIR/kafka/*"
    require_free_port kafka "$port"
    require_free_port kafka "$cport"
    mkdir -p "$dir/data"
    render_template "$SCRIPT_DIR/kafka/server.properties.template" PORT="$port" CONTROLLER_PORT="$cport" \
        DIR="$dir" >"$dir/server.properties"
    cp "$SCRIPT_DIR/kafka/log4j2.properties" "$dir/log4j2.properties"
    if [[ ! -f $dir/data/meta.properties ]]; then
        if [[ ! -s $dir/cluster.id ]]; then
            # A Kafka cluster id: 16 random bytes, base64url without padding.
            head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$dir/cluster.id"
        fi
        log "formatting Kafka storage (cluster id $(cat "$dir/cluster.id"))"
        java -Xmx256m -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$cp" \
            kafka.tools.StorageTool format -t "$(cat "$dir/cluster.id")" -c "$dir/server.properties" \
            --ignore-formatted >>"$(log_file kafka)" 2>&1 || fail_start kafka "kafka-storage format failed"
    fi
    # The GC log, with UTC times, as Cassandra's (below): a broker's pauses hold every send's ack.
    # ZGC: G1's young pauses stopped the broker ~19 ms every ~2 s under load; ZGC's are under a
    # millisecond (ack p99 at 1,600 msg/s 68-123 against 120-186 ms; docs/benchmarks.md,
    # issue 14, nineteenth step).
    spawn kafka java -Xms256m -Xmx512m -XX:+UseZGC -Djava.awt.headless=true \
        "-Xlog:gc,gc+phases:file=$LOG_DIR/kafka-gc.log:utctime,uptime" \
        -Dchat.stack=kafka -Dlog4j2.configurationFile="$dir/log4j2.properties" \
        -cp "$cp" kafka.Kafka "$dir/server.properties"
}

kafka_ready() {
    # (not `tail | grep -q`: with pipefail, grep's early exit fails the pipe via SIGPIPE)
    port_open "${INFRA_PORT[kafka]}" &&
        grep -q 'Kafka Server started' < <(tail -c "+$((${LOG_OFFSET[kafka]:-0} + 1))" "$(log_file kafka)")
}

# ---------------------------------------------------------------------------------------------
# Cassandra (CQL stand-in for ScyllaDB)

start_cassandra() {
    local port=${INFRA_PORT[cassandra]} dir lib jamm
    dir=$RUN_DIR/cassandra
    lib=$JAR_DIR/cassandra
    jamm=$(ls "$lib"/jamm-*.jar 2>/dev/null | head -n 1)
    [[ -n $jamm ]] || die "no jamm jar in $lib"
    local p
    for p in "$port" "$CASSANDRA_STORAGE_PORT" "$CASSANDRA_SSL_STORAGE_PORT" "$CASSANDRA_JMX_PORT"; do
        require_free_port cassandra "$p"
    done
    mkdir -p "$dir"/{data,commitlog,saved_caches,hints,cdc_raw}
    render_template "$SCRIPT_DIR/cassandra/cassandra.yaml.template" PORT="$port" DIR="$dir" \
        STORAGE_PORT="$CASSANDRA_STORAGE_PORT" SSL_STORAGE_PORT="$CASSANDRA_SSL_STORAGE_PORT" >"$dir/cassandra.yaml"
    cp "$SCRIPT_DIR/cassandra/logback.xml" "$dir/logback.xml"
    # The GC log, with UTC times, lines Cassandra's pauses up with a benchmark's per-second
    # timeline (docs/benchmarks.md, issue 14, eleventh step).
    spawn cassandra "${TIMER_SLACK[@]}" "$CASSANDRA_TIMER_SLACK_NS" java -Xms768m -Xmx1g \
        -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -Djava.net.preferIPv4Stack=true \
        "-Xlog:gc:file=$LOG_DIR/cassandra-gc.log:utctime,uptime" \
        --add-exports java.base/jdk.internal.misc=ALL-UNNAMED \
        --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED \
        --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED \
        --add-exports java.sql/java.sql=ALL-UNNAMED --add-exports java.base/java.lang.ref=ALL-UNNAMED \
        --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED \
        --add-opens java.base/java.lang.module=ALL-UNNAMED --add-opens java.base/jdk.internal.loader=ALL-UNNAMED \
        --add-opens java.base/jdk.internal.ref=ALL-UNNAMED --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED \
        --add-opens java.base/jdk.internal.math=ALL-UNNAMED --add-opens java.base/jdk.internal.module=ALL-UNNAMED \
        --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED \
        --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED \
        --add-opens java.base/sun.nio.ch=ALL-UNNAMED --add-opens java.base/java.io=ALL-UNNAMED \
        --add-opens java.base/java.lang.reflect=ALL-UNNAMED --add-opens java.base/java.lang=ALL-UNNAMED \
        --add-opens java.base/java.util=ALL-UNNAMED --add-opens java.base/java.nio=ALL-UNNAMED \
        -Dio.netty.tryReflectionSetAccessible=true \
        -Djdk.attach.allowAttachSelf=true "-javaagent:$jamm" \
        -Dchat.stack=cassandra \
        "-Dcassandra.config=file://$dir/cassandra.yaml" \
        "-Dcassandra.storagedir=$dir" \
        -Dcassandra-foreground=yes \
        "-Dcassandra.logdir=$LOG_DIR" \
        "-Dlogback.configurationFile=$dir/logback.xml" \
        -Dcassandra.skip_wait_for_gossip_to_settle=0 \
        "-Dcassandra.jmx.local.port=$CASSANDRA_JMX_PORT" \
        -cp "$lib/*" org.apache.cassandra.service.CassandraDaemon
}

cassandra_ready() { port_open "${INFRA_PORT[cassandra]}"; }

# ---------------------------------------------------------------------------------------------
# the object store (versitygw, posix backend: buckets are folders, objects files)

# The value of a `common` setting of the topology, or $2.
common_setting() {
    local e
    for e in "${COMMON_ENV[@]}"; do
        [[ $e == "$1="* ]] && { echo "${e#*=}"; return 0; }
    done
    echo "$2"
}

start_objectstore() {
    local port=${INFRA_PORT[objectstore]} bin data
    ensure_versitygw
    ensure_secrets
    bin=$(versitygw_bin)
    data=$(objectstore_data)
    require_free_port objectstore "$port"
    # Content types live in user xattrs of the files: ext4/xfs/tmpfs have them.
    mkdir -p "$data"
    # The root keys go by environment, not argv (ps shows argv to everyone). The bucket is made
    # by `chat-admin migrate`. --quiet: no line per request (nginx's access log has them).
    spawn objectstore env \
        ROOT_ACCESS_KEY="$(<"$SECRETS_DIR/s3_access_key")" ROOT_SECRET_KEY="$(<"$SECRETS_DIR/s3_secret_key")" \
        "$bin" --port "127.0.0.1:$port" --region "$(common_setting CHAT__OBJECTS__REGION us-east-1)" \
        --health /health --keep-alive --quiet posix "$data"
}

objectstore_ready() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:${INFRA_PORT[objectstore]}/health"; }

# ---------------------------------------------------------------------------------------------
# cluster mode (deploy/cluster/)

# cluster_sh SCRIPT ARGS...: deploy/cluster/SCRIPT.sh on the stack's own cluster state.
cluster_sh() {
    CHAT_CLUSTER_DIR=$RUN_DIR/cluster CHAT_STACK_DIR=$STACK_DIR CHAT_CLUSTER_TIMEOUT=$WAIT_TIMEOUT \
        "$CLUSTER_SCRIPTS/$1.sh" "${@:2}" 9>&-
}

# The services' settings for the clusters, after topology.conf's (with env, the last one wins).
enter_cluster_mode() {
    $CLUSTER && return 0
    CLUSTER=true
    COMMON_ENV+=(
        "CHAT__KAFKA__BROKERS=$(cluster_sh kafka bootstrap)"
        CHAT__KAFKA__REPLICATION_FACTOR=3
        CHAT__KAFKA__MIN_INSYNC_REPLICAS=2
        "CHAT__CASSANDRA__NODES=$(cluster_sh cassandra contact)"
        CHAT__CASSANDRA__REPLICATION_FACTOR=3
    )
}

load_mode() {
    [[ -f $MODE_FILE && $(<"$MODE_FILE") == cluster ]] && enter_cluster_mode
    return 0
}

# Is anything of a stack running (either mode)? Then its mode can't change under it.
stack_running() {
    local n
    for n in "${INFRA_ORDER[@]}" "${STANDINS[@]}" "${SERVICES[@]}" "$LB_NAME"; do
        running_pid "$n" >/dev/null && return 0
    done
    ip link show dev chatbr0 >/dev/null 2>&1
}

# set_mode single|cluster: the mode `up` asked for; refused while a stack of the other one runs.
set_mode() {
    local want=$1 have=single
    $CLUSTER && have=cluster
    if [[ $want != "$have" ]]; then
        if stack_running; then
            die "the stack runs in $have mode: deploy/stack.sh down first (then up$([[ $want == cluster ]] && echo ' --cluster'))"
        fi
        [[ $want == cluster ]] && { ((EUID == 0)) || die "up --cluster needs root (network namespaces)"; }
    fi
    echo "$want" >"$MODE_FILE"
    [[ $want == cluster ]] && enter_cluster_mode
    return 0
}

# kafka-2 -> "kafka 2"
member_script() { echo "${1%-*} ${1##*-}"; }

# ---------------------------------------------------------------------------------------------
# infra dispatch

start_infra() {
    local name=$1 pid
    if pid=$(running_pid "$name"); then
        log "$name already running (pid $pid)"
        START_AT[$name]=$SECONDS
        return 0
    fi
    log "starting $name (log: $(log_file "$name"))"
    "start_$name"
}

wait_infra() {
    local name=$1
    case $name in
        postgres) wait_ready postgres pg_ready && setup_postgres ;;
        redis) wait_ready redis redis_ready && setup_redis ;;
        kafka) wait_ready kafka kafka_ready ;;
        cassandra) wait_ready cassandra cassandra_ready ;;
        objectstore) wait_ready objectstore objectstore_ready ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# our services

build_services() {
    log "building services: cargo build --release --workspace --bins (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$REPO" && cargo build --release --workspace --bins) 9>&- || die "cargo build failed (see above)"
}

service_env() {
    local name=$1
    local -a own
    read -r -a own <<<"${SVC_ENV[$name]}"
    printf '%s\n' "${COMMON_ENV[@]}" "${own[@]}"
}

run_migrate() {
    local bin=$BIN_DIR/chat-admin logf=$LOG_DIR/migrate.log
    [[ -x $bin ]] || die "$bin not found: build first (deploy/stack.sh up without --no-build)"
    log "running chat-admin migrate (log: $logf)"
    printf '\n===== %s: deploy/stack.sh runs chat-admin migrate =====\n' "$(date -Is)" >>"$logf"
    local start=$SECONDS
    if ! env RUST_LIB_BACKTRACE="${RUST_LIB_BACKTRACE:-0}" "${COMMON_ENV[@]}" timeout "$MIGRATE_TIMEOUT" "$bin" migrate >>"$logf" 2>&1; then
        printf '[stack] ERROR: chat-admin migrate failed; last 40 lines of %s:\n' "$logf" >&2
        tail -n 40 "$logf" | sed 's/^/    /' >&2
        exit 1
    fi
    log "migrate done ($((SECONDS - start))s)"
}

start_service() {
    local name=$1 bin pid port
    bin=$BIN_DIR/${SVC_BIN[$name]}
    if pid=$(running_pid "$name"); then
        # A process running another binary than the one just built (rebuilt since, or from
        # another build directory) would test old code: replace it.
        if [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$(readlink -f "$bin")" ]]; then
            log "$name already running (pid $pid)"
            START_AT[$name]=$SECONDS
            return 0
        fi
        log "$name runs another build than $bin: restarting it"
        stop_server "$name"
    fi
    [[ -x $bin ]] || die "$bin not found: build first (deploy/stack.sh up)"
    [[ -s $SECRETS_DIR/jwt_secret && -s $SECRETS_DIR/s3_access_key ]] || ensure_secrets
    for port in "${SVC_HTTP[$name]}" "${SVC_OPS[$name]}"; do
        [[ $port == - ]] || require_free_port "$name" "$port"
    done
    local -a envs
    mapfile -t envs < <(service_env "$name")
    log "starting $name (log: $(log_file "$name"))"
    # anyhow errors without a backtrace unless asked for (panics still get RUST_BACKTRACE's).
    spawn "$name" env RUST_LIB_BACKTRACE="${RUST_LIB_BACKTRACE:-0}" "${envs[@]}" "$bin"
}

service_ready() {
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:${SVC_OPS[$1]}/readyz"
}

wait_service() { wait_ready "$1" service_ready "$1"; }

# ---------------------------------------------------------------------------------------------
# stand-ins of outside services (topology.conf `standin` lines), e.g. the APNs stand-in

start_standin() {
    local name=$1 bin pid port
    bin=$BIN_DIR/${STANDIN_BIN[$name]}
    if pid=$(running_pid "$name"); then
        if [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$(readlink -f "$bin")" ]]; then
            log "$name already running (pid $pid)"
            START_AT[$name]=$SECONDS
            return 0
        fi
        log "$name runs another build than $bin: restarting it"
        stop_server "$name"
    fi
    [[ -x $bin ]] || die "$bin not found: build first (deploy/stack.sh up)"
    for port in "${STANDIN_PORT[$name]}" "${STANDIN_CONTROL[$name]}"; do
        require_free_port "$name" "$port"
    done
    log "starting $name (state: $(standin_dir "$name"), log: $(log_file "$name"))"
    spawn "$name" env RUST_LIB_BACKTRACE="${RUST_LIB_BACKTRACE:-0}" "$bin" \
        --dir "$(standin_dir "$name")" \
        --listen "127.0.0.1:${STANDIN_PORT[$name]}" \
        --control "127.0.0.1:${STANDIN_CONTROL[$name]}" \
        --hostnames 127.0.0.1,localhost
}

# /healthz answers 200 once the stand-in's own endpoint listens.
standin_ready() {
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:${STANDIN_CONTROL[$1]}/healthz"
}

wait_standin() { wait_ready "$1" standin_ready "$1"; }

# ---------------------------------------------------------------------------------------------
# web client + nginx

WEB_ROOT=
BUILD_WEB=${CHAT_STACK_BUILD_WEB:-true}

prepare_web() {
    local web=$REPO/web dist=$REPO/web/dist logf=$LOG_DIR/web-build.log
    if $BUILD_WEB && [[ -f $web/package.json ]] && have npm; then
        local stale=
        if [[ ! -f $dist/index.html ]]; then
            stale=yes
        elif [[ -n $(find "$web" \( -path "$web/node_modules" -o -path "$dist" \) -prune -o \
            -type f -newer "$dist/index.html" -print -quit) ]]; then
            stale=yes
        fi
        if [[ -n $stale ]]; then
            log "building the web client (log: $logf)"
            printf '\n===== %s: deploy/stack.sh builds web/ =====\n' "$(date -Is)" >>"$logf"
            local ci=true
            if [[ -d $web/node_modules && -f $web/node_modules/.package-lock.json &&
                ! $web/package-lock.json -nt $web/node_modules/.package-lock.json &&
                ! $web/package.json -nt $web/node_modules/.package-lock.json ]]; then
                ci=false # dependencies are installed and current
            fi
            if ! (cd "$web" && { ! $ci || npm ci --no-audit --no-fund; } && npm run build) >>"$logf" 2>&1; then
                warn "web client build failed; serving what is there. Last 40 lines of $logf:"
                tail -n 40 "$logf" | sed 's/^/    /' >&2
            fi
        fi
    fi
    if [[ -f $dist/index.html ]]; then
        WEB_ROOT=$dist
    else
        WEB_ROOT=$RUN_DIR/nginx/placeholder
        mkdir -p "$WEB_ROOT"
        cp "$SCRIPT_DIR/nginx/placeholder.html" "$WEB_ROOT/index.html"
    fi
}

render_nginx_conf() {
    local out=$1 api_servers='' gw_servers='' s user_line='' mime=/etc/nginx/mime.types
    local -a serving
    # A spare is in the upstream while it runs: `start` adds it once ready, `kill` takes it out.
    mapfile -t serving < <(up_services)
    for s in "${SERVICES[@]}"; do
        is_spare "$s" && running_pid "$s" >/dev/null && serving+=("$s")
    done
    for s in "${serving[@]}"; do
        case ${SVC_BIN[$s]} in
            chat-api) api_servers+="        server 127.0.0.1:${SVC_HTTP[$s]} max_fails=1 fail_timeout=5s;"$'\n' ;;
            chat-gateway) gw_servers+="        server 127.0.0.1:${SVC_HTTP[$s]} max_fails=0;"$'\n' ;;
        esac
    done
    # Workers run as the invoking user (root on our machines) so they can read the run dir.
    ((EUID == 0)) && user_line='user root;'
    [[ -f $mime ]] || { mime=$RUN_DIR/nginx/mime.types && printf 'types {\n text/html html;\n text/css css;\n application/javascript js mjs;\n application/json json;\n image/svg+xml svg;\n image/png png;\n}\n' >"$mime"; }
    render_template "$SCRIPT_DIR/nginx/native.conf.template" USER_DIRECTIVE="$user_line" \
        PID_FILE="$(pid_file nginx)" LOG_DIR="$LOG_DIR" RUN_DIR="$RUN_DIR/nginx" MIME_TYPES="$mime" \
        API_SERVERS="${api_servers%$'\n'}" GATEWAY_SERVERS="${gw_servers%$'\n'}" \
        OBJECTSTORE_SERVERS="        server 127.0.0.1:${INFRA_PORT[objectstore]};" \
        LISTEN="127.0.0.1:$LB_PORT" WEB_ROOT="$WEB_ROOT" ROUTES="$SCRIPT_DIR/nginx/routes.conf" \
        WS_CONNS_PER_ADDRESS="${CHAT_WS_CONNS_PER_ADDRESS:-256}" >"$out"
}

# A spare gateway joins nginx's upstream once it is ready and leaves it once stopped (a fixed
# one stays in it: nginx skips a gateway that refuses). A reload drops no connection; the web
# client is served as it is.
nginx_follow_spare() {
    is_spare "$1" && [[ ${SVC_BIN[$1]} == chat-gateway ]] && running_pid nginx >/dev/null || return 0
    BUILD_WEB=false
    start_nginx
}

# The workers of nginx (master $1) that take new connections, sorted; one of an older config
# renames itself "nginx: worker process is shutting down" as it stops accepting.
accepting_workers() { pgrep -P "$1" -x -f 'nginx: worker process' | sort || true; }

# `nginx -s reload` only signals the master: until none of the workers that accepted before it
# ($2) does, a new connection may still meet the old config (e.g. a gateway's upstream).
wait_reloaded() {
    local master=$1 before=$2 now deadline=$((SECONDS + WAIT_TIMEOUT))
    while :; do
        now=$(accepting_workers "$master")
        if [[ -n $now && -z $(comm -12 <(echo "$before") <(echo "$now")) ]]; then return 0; fi
        ((SECONDS < deadline)) || fail_start nginx "the reload did not take effect in ${WAIT_TIMEOUT}s"
        sleep 0.1
    done
}

nginx_ready() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$LB_PORT/lb-health"; }

start_nginx() {
    local pid dir=$RUN_DIR/nginx conf logf
    conf=$dir/nginx.conf
    logf=$(log_file nginx)
    if pid=$(running_pid nginx); then
        log "nginx already running (pid $pid)"
        START_AT[nginx]=$SECONDS
        # Pick up a newly built web client or a changed template: reload if the config changed.
        prepare_web
        render_nginx_conf "$conf.new"
        if cmp -s "$conf" "$conf.new"; then
            rm -f "$conf.new"
        else
            mv "$conf.new" "$conf"
            nginx -t -q -c "$conf" -p "$dir/" -e "$logf" >>"$logf" 2>&1 || fail_start nginx "invalid config $conf"
            local before
            before=$(accepting_workers "$pid")
            nginx -s reload -c "$conf" -p "$dir/" -e "$logf" >>"$logf" 2>&1 9>&- || fail_start nginx "reload failed"
            wait_reloaded "$pid" "$before"
            log "nginx config changed: reloaded (web root: $WEB_ROOT)"
        fi
        return 0
    fi
    require_free_port nginx "$LB_PORT"
    mkdir -p "$dir"/tmp/{client_body,proxy,fastcgi,uwsgi,scgi}
    prepare_web
    render_nginx_conf "$conf"
    log "starting nginx on 127.0.0.1:$LB_PORT (config: $conf, logs: $LOG_DIR/nginx-{error,access}.log, web root: $WEB_ROOT)"
    printf '\n===== %s: deploy/stack.sh starts nginx =====\n' "$(date -Is)" >>"$logf"
    START_AT[nginx]=$SECONDS
    nginx -t -q -c "$conf" -p "$dir/" -e "$logf" >>"$logf" 2>&1 || fail_start nginx "invalid config $conf"
    nginx -c "$conf" -p "$dir/" -e "$logf" >>"$logf" 2>&1 9>&- || fail_start nginx "nginx exited"
}

# ---------------------------------------------------------------------------------------------
# commands

prepare_dirs() {
    mkdir -p "$RUN_DIR" "$LOG_DIR" "$PID_DIR" "$JAR_DIR"
    # Many connections per service (load tests): raise the soft fd limit as far as allowed.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true
}

lock_stack() {
    mkdir -p "$STACK_DIR"
    exec 9>"$STACK_DIR/.stack.lock"
    if ! flock -n 9; then
        log "another deploy/stack.sh is running (lock $STACK_DIR/.stack.lock): waiting for it (up to 15 min)..."
        flock -w 900 9 || die "another deploy/stack.sh still holds $STACK_DIR/.stack.lock"
    fi
}

cmd_up() {
    local infra_only=false build=true mode=single arg
    for arg in "$@"; do
        case $arg in
            --cluster) mode=cluster ;;
            --infra-only) infra_only=true ;;
            --no-build) build=false ;;
            --no-web) BUILD_WEB=false ;;
            *) die "up: unknown option $arg" ;;
        esac
    done
    lock_stack
    local t0=$SECONDS
    prepare_dirs
    set_mode "$mode"
    log "stack dir: $STACK_DIR (logs: $LOG_DIR; $mode mode)"
    ensure_packages
    ensure_jars kafka
    ensure_jars cassandra
    ensure_versitygw
    ensure_secrets

    # The JVMs start slowly: launch everything, then wait for each.
    local n kafka_up='' cassandra_up=''
    local -a single=(cassandra kafka redis postgres objectstore)
    if $CLUSTER; then
        single=(redis postgres objectstore)
        # Each makes the part of the network it needs (net.sh takes a lock for its changes).
        cluster_sh kafka up &
        kafka_up=$!
        cluster_sh cassandra up &
        cassandra_up=$!
    fi
    for n in "${single[@]}"; do start_infra "$n"; done
    for n in postgres redis kafka cassandra objectstore; do
        [[ " ${single[*]} " == *" $n "* ]] && wait_infra "$n"
    done
    if $CLUSTER; then
        wait "$kafka_up" || die "the Kafka cluster did not come up (its lines above; deploy/stack.sh status)"
        wait "$cassandra_up" || die "the Cassandra cluster did not come up (its lines above; deploy/stack.sh status)"
    fi
    log "infrastructure ready ($((SECONDS - t0))s)"

    if ! $infra_only; then
        $build && build_services
        # Stand-ins first: services read their files (a CA, a key) at start.
        for n in "${STANDINS[@]}"; do start_standin "$n"; done
        run_migrate
        for n in "${STANDINS[@]}"; do wait_standin "$n"; done
        local -a services
        mapfile -t services < <(up_services)
        for n in "${services[@]}"; do start_service "$n"; done
        for n in "${services[@]}"; do wait_service "$n"; done
    fi
    start_nginx
    wait_ready nginx nginx_ready
    log "stack up in $((SECONDS - t0))s: http://127.0.0.1:$LB_PORT/ (api /api/, websocket /ws)"
    $infra_only && log "(--infra-only: services not started)"
    return 0
}

cmd_down() {
    local purge=false arg
    for arg in "$@"; do
        case $arg in
            --purge) purge=true ;;
            *) die "down: unknown option $arg" ;;
        esac
    done
    lock_stack
    local n pid
    local -A pids=()
    # Services first, all at once: SIGTERM, up to STOP_TIMEOUT s, then SIGKILL.
    for n in "${SERVICES[@]}"; do
        if pid=$(running_pid "$n"); then
            log "stopping $n (pid $pid)"
            signal_server "$pid" TERM
            pids[$n]=$pid
        else
            rm -f "$(pid_file "$n")"
        fi
    done
    local start=$SECONDS
    for n in "${!pids[@]}"; do
        if ! wait_gone "${pids[$n]}" $((STOP_TIMEOUT - (SECONDS - start))); then
            warn "$n (pid ${pids[$n]}) still running after ${STOP_TIMEOUT}s: SIGKILL"
            signal_server "${pids[$n]}" KILL
            wait_gone "${pids[$n]}" 10 || warn "$n did not die"
        fi
        rm -f "$(pid_file "$n")"
    done
    for n in "${STANDINS[@]}"; do stop_server "$n" TERM "$STOP_TIMEOUT"; done
    stop_server nginx TERM "$STOP_TIMEOUT"
    for n in objectstore cassandra kafka redis postgres; do
        stop_server "$n" TERM "$INFRA_STOP_TIMEOUT"
    done
    if $CLUSTER; then
        local -a opt=()
        $purge && opt=(--purge)
        cluster_sh kafka down "${opt[@]}" &
        local kafka_down=$!
        cluster_sh cassandra down "${opt[@]}" || warn "the Cassandra cluster did not stop cleanly"
        wait "$kafka_down" || warn "the Kafka cluster did not stop cleanly"
        cluster_sh net down
    fi
    rm -f "$MODE_FILE"
    if $purge; then
        log "purging $RUN_DIR (data, logs, secrets; the caches $JAR_DIR and $TOOL_DIR stay)"
        rm -rf "$RUN_DIR" "/tmp/chat-stack-pg-$(printf '%s' "$RUN_DIR" | sha256sum | cut -c1-12)"
    fi
    log "stack down"
}

ports_of() {
    local n=$1
    if is_infra "$n"; then
        case $n in
            kafka) echo "${INFRA_PORT[kafka]},$((INFRA_PORT[kafka] + 1))" ;;
            cassandra) echo "${INFRA_PORT[cassandra]},$CASSANDRA_STORAGE_PORT" ;;
            *) echo "${INFRA_PORT[$n]}" ;;
        esac
    elif is_service "$n"; then
        if [[ ${SVC_HTTP[$n]} == - ]]; then echo "ops ${SVC_OPS[$n]}"; else echo "${SVC_HTTP[$n]} ops ${SVC_OPS[$n]}"; fi
    elif is_standin "$n"; then
        echo "${STANDIN_PORT[$n]} ctl ${STANDIN_CONTROL[$n]}"
    else
        echo "$LB_PORT"
    fi
}

main_port() {
    local n=$1
    if is_infra "$n"; then
        echo "${INFRA_PORT[$n]}"
    elif is_service "$n"; then
        echo "${SVC_OPS[$n]}"
    elif is_standin "$n"; then
        echo "${STANDIN_CONTROL[$n]}"
    else
        echo "$LB_PORT"
    fi
}

cmd_status() {
    local n pid state
    printf '%-18s %-8s %-16s %-6s %s\n' NAME PID PORTS STATE LOG
    while read -r n; do
        is_member "$n" && continue # the clusters' own status follows
        if pid=$(running_pid "$n"); then
            if port_open "$(main_port "$n")"; then state=up; else state=start; fi
        else
            pid=-
            state=down
        fi
        printf '%-18s %-8s %-16s %-6s %s\n' "$n" "$pid" "$(ports_of "$n")" "$state" "$(log_file "$n")"
    done < <(all_names)
    printf '(stack dir %s; state "start" = process alive, port not open yet)\n' "$STACK_DIR"
    if $CLUSTER; then
        echo
        cluster_sh kafka status || true
        echo
        cluster_sh cassandra status || true
    fi
}

cmd_logs() {
    local name=${1:-} follow=false
    [[ ${2:-} == -f ]] && follow=true
    if [[ -z $name ]]; then
        ls -l "$LOG_DIR" 2>/dev/null || echo "no logs yet ($LOG_DIR)"
        return 0
    fi
    local f
    if known_name "$name"; then f=$(log_file "$name"); else f=$LOG_DIR/$name.log; fi
    [[ -f $f ]] || die "no log $f"
    if $follow; then tail -n 200 -F "$f"; else tail -n 200 "$f"; fi
}

cmd_kill() {
    local name=${1:-} sig=TERM
    known_name "$name" || die "kill: unknown name '$name' (one of: $(all_names | tr '\n' ' '))"
    case ${2:-} in
        -9 | -KILL | KILL) sig=KILL ;;
        '' | -15 | -TERM | TERM) sig=TERM ;;
        *) die "kill: unknown signal ${2}" ;;
    esac
    lock_stack
    if is_member "$name"; then
        local -a sig_opt=()
        [[ $sig == KILL ]] && sig_opt=(-9)
        local script id
        read -r script id <<<"$(member_script "$name")"
        cluster_sh "$script" kill "$id" "${sig_opt[@]}"
        return
    fi
    local timeout=$STOP_TIMEOUT
    is_infra "$name" && timeout=$INFRA_STOP_TIMEOUT
    stop_server "$name" "$sig" "$timeout"
    nginx_follow_spare "$name"
}

# start <name>...: each in the order given (a name after the first was once ignored silently).
cmd_start() {
    local name
    [[ $# -gt 0 ]] || die "start: name what to start (one or more of: $(all_names | tr '\n' ' '))"
    for name in "$@"; do
        known_name "$name" || die "start: unknown name '$name' (one of: $(all_names | tr '\n' ' '))"
    done
    lock_stack
    prepare_dirs
    for name in "$@"; do
        start_one "$name"
    done
}

start_one() {
    local name=$1
    if is_member "$name"; then
        local script id
        read -r script id <<<"$(member_script "$name")"
        cluster_sh "$script" start "$id"
    elif is_infra "$name"; then
        [[ $name == kafka || $name == cassandra ]] && ensure_jars "$name"
        start_infra "$name"
        wait_infra "$name"
    elif is_service "$name"; then
        start_service "$name"
        wait_service "$name"
        nginx_follow_spare "$name"
    elif is_standin "$name"; then
        start_standin "$name"
        wait_standin "$name"
    else
        start_nginx
        wait_ready nginx nginx_ready
    fi
}

# cut|heal <member>: the member's host loses / gets back its network; the process runs on.
cmd_cut_heal() {
    local what=$1 name=${2:-}
    $CLUSTER || die "$what: only in cluster mode (deploy/stack.sh up --cluster)"
    is_member "$name" || die "$what: name a member: kafka-1..3 or cassandra-1..3"
    cluster_sh net "$what" "$name"
}

main() {
    load_topology
    load_mode
    local cmd=${1:-}
    [[ $# -gt 0 ]] && shift
    case $cmd in
        up) cmd_up "$@" ;;
        down) cmd_down "$@" ;;
        status) cmd_status ;;
        logs) cmd_logs "$@" ;;
        kill) cmd_kill "$@" ;;
        start) cmd_start "$@" ;;
        cut | heal) cmd_cut_heal "$cmd" "$@" ;;
        -h | --help | help) usage ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
