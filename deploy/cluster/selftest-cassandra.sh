#!/usr/bin/env bash
# Proves the Cassandra cluster topology works, then removes it:
#   1. cassandra.sh up, which makes the network for its three hosts (timed: "formed in")
#   2. the keyspace made by our own chat-admin migrate --only cassandra with replication factor 3,
#      checked (SimpleStrategy, replication_factor 3: what the code creates)
#   3. CqlProbe.java, one driver session for the whole test, from the host (root namespace)
#      through the bridge: 500 rows written and read back at QUORUM, 20 at LOCAL_QUORUM (the
#      services' default consistency)
#   4. kill -9 a node while the probe writes and reads a row at QUORUM every 50 ms: how long the
#      others take to mark it down, whether the quorum load noticed (longest gap, failures);
#      500 more rows at QUORUM on 2 of 3
#   5. cut a second node off the network: 1 of 3 left, so QUORUM writes must fail (before and
#      after the last node marks the cut one down), while ONE reads still work
#   6. heal it: time until QUORUM writes succeed again; 500 more
#   7. start the killed node on its data: time until every node sees all three Up/Normal
#   8. every row acked at QUORUM reads back at QUORUM
# and tears everything down (also on failure; CHAT_CLUSTER_KEEP=1 leaves it up to look at).
#
#   deploy/cluster/selftest-cassandra.sh
#
# Needs root; refuses to run while a cluster network (bridge chatbr0) exists, since it removes
# what it made (net.sh down removes the Kafka test hosts too). Builds chat-admin (cargo build
# --release --workspace --bins) only if $CARGO_TARGET_DIR/release/chat-admin is missing. State
# under $CHAT_CLUSTER_DIR (default ~/.cache/chat-stack/cluster), purged at the end. Writes only
# to 10.77.0.x, our own test hosts.
set -euo pipefail
umask 022

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)
NET=$SCRIPT_DIR/net.sh
CASS=$SCRIPT_DIR/cassandra.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/chat-target}
CHAT_ADMIN=$CARGO_TARGET_DIR/release/chat-admin
CLUSTER_DIR=${CHAT_CLUSTER_DIR:-$HOME/.cache/chat-stack/cluster}
JAR_DIR=${CHAT_STACK_DIR:-$HOME/.cache/chat-stack}/jars/cassandra
KEYSPACE=chat
# The nodes killed / cut (any two of three would do; the probe's contact list starts with 1).
VICTIM=1
CUT_NODE=2
LAST=3
PROBE_TIMEOUT=120

# shellcheck source=deploy/cluster/selftest-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/selftest-lib.sh"
# Epoch milliseconds for the probe, and milliseconds as seconds with a tenth.
now_ms() { date +%s%3N; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }

# The probe's pipes are fds 5 and 6 of this shell: no child may keep them (a node started by
# cassandra.sh would hold the probe's stdin open for its whole life).
net() { "$NET" "$@" 5>&- 6>&-; }
cass() { "$CASS" "$@" 5>&- 6>&-; }

# ---------------------------------------------------------------------------------------------
# set-up and tear-down

((EUID == 0)) || die "needs root (network namespaces)"
if ip link show dev chatbr0 >/dev/null 2>&1; then
    die "a cluster network is up already (bridge chatbr0); the selftest makes and removes its own: deploy/cluster/cassandra.sh down; deploy/cluster/kafka.sh down; deploy/cluster/net.sh down"
fi

WORK=$(mktemp -d)
PROBE_PID=
CUT=
START_ALL=$(now)

teardown() {
    local rc=$?
    if [[ -n $PROBE_PID ]]; then
        kill "$PROBE_PID" 2>/dev/null || true
        wait "$PROBE_PID" 2>/dev/null || true
    fi
    exec 5>&- 6>&-
    if ((rc != 0)) && [[ -s $WORK/probe.err ]]; then
        printf '[cluster] CqlProbe stderr:\n' >&2
        tail -n 20 "$WORK/probe.err" | sed 's/^/    /' >&2
    fi
    rm -rf "$WORK"
    if [[ ${CHAT_CLUSTER_KEEP:-} == 1 ]]; then
        log "CHAT_CLUSTER_KEEP=1: leaving the cluster up (cassandra.sh down --purge; net.sh down)"
        exit "$rc"
    fi
    log "tearing down"
    if [[ -n $CUT ]]; then net heal "cassandra-$CUT" >/dev/null 2>&1 || true; fi
    cass down --purge || true
    # net.sh down removes every test host; leave them if Kafka brokers were started meanwhile.
    if compgen -G "$CLUSTER_DIR/pids/kafka-*.pid" >/dev/null; then
        log "Kafka brokers have pid files: leaving the network up (kafka.sh down; net.sh down)"
    else
        net down || true
    fi
    log "whole selftest took $(since "$START_ALL")s"
    exit "$rc"
}
trap teardown EXIT

# chat-admin: built only if missing, and then not next to another cargo (two builds of the
# workspace on 2 cores would both crawl, and fight over the target folder's lock anyway).
if [[ ! -x $CHAT_ADMIN ]]; then
    log "no $CHAT_ADMIN: building the workspace's binaries"
    waited=$SECONDS
    next=0
    while pgrep -x cargo >/dev/null; do
        ((SECONDS - waited < 3600)) || die "another cargo still runs after an hour"
        if ((SECONDS - waited >= next)); then
            log "waiting for the running cargo (pid $(pgrep -x cargo | tr '\n' ' ')) to finish..."
            next=$((SECONDS - waited + 60))
        fi
        sleep 1
    done
    (cd "$REPO_DIR" && nice -n 10 cargo build --release --workspace --bins 5>&- 6>&-) || die "cargo build failed"
    [[ -x $CHAT_ADMIN ]] || die "cargo build made no $CHAT_ADMIN"
fi

# ---------------------------------------------------------------------------------------------
# helpers

# Value of key=value in a probe answer.
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }

# probe CMD...: one command to the probe; prints its answer, fails on "error ..." or silence.
# Always called as r=$(probe ...): should the probe be gone, the SIGPIPE ends that subshell
# only, and the failed assignment ends the test through its teardown.
probe() {
    local reply
    printf '%s\n' "$*" >&5
    read -r -t "$PROBE_TIMEOUT" -u 6 reply || die "CqlProbe did not answer '$*' within ${PROBE_TIMEOUT}s"
    [[ $reply == ok* ]] || die "CqlProbe '$*': $reply"
    printf '%s\n' "$reply"
}

node_log() { echo "$CLUSTER_DIR/logs/cassandra-$1.log"; }
log_size() { stat -c %s "$(node_log "$1")"; }

# wait_gossip WHAT STATE ADDR TIMEOUT VIEWER=OFFSET...: until each viewer's log, after its
# offset, says "InetAddress /ADDR:7000 is now STATE" (the failure detector's verdict, logged
# the moment it is reached).
wait_gossip() {
    local what=$1 state=$2 addr=$3 tmo=$4 start=$SECONDS v id off
    shift 4
    for v in "$@"; do
        id=${v%%=*}
        off=${v#*=}
        # (not `tail | grep -q`: with pipefail, grep's early exit can fail the pipe by SIGPIPE)
        until grep -q "InetAddress /$addr:7000 is now $state" < <(tail -c "+$((off + 1))" "$(node_log "$id")"); do
            ((SECONDS - start < tmo)) || die "$what: cassandra-$id does not say $addr is $state after ${tmo}s"
            sleep 0.2
        done
    done
}

declare -A ADDR=()
while read -r ns addr; do ADDR[${ns#chat-cassandra-}]=$addr; done < <("$NET" hosts chat-cassandra-)

# ---------------------------------------------------------------------------------------------
# 1. form

T=$(now)
cass up
note "cluster formed (network + 3 nodes started side by side + every node sees all three UN) in $(since "$T")s"
CONTACT=$("$CASS" contact)

# ---------------------------------------------------------------------------------------------
# 2. the keyspace, by chat-admin migrate --only cassandra (the services' own code path)

T=$(now)
admin_out=$(env -u CHAT_CONFIG RUST_BACKTRACE=0 NO_COLOR=1 \
    CHAT__CASSANDRA__NODES="$CONTACT" CHAT__CASSANDRA__KEYSPACE="$KEYSPACE" CHAT__CASSANDRA__REPLICATION_FACTOR=3 \
    "$CHAT_ADMIN" migrate --only cassandra --timeout 120 2>&1) || {
    printf '%s\n' "$admin_out" | grep -v '^ ' | tail -n 20 >&2
    die "chat-admin migrate --only cassandra failed"
}
ok "chat-admin migrate --only cassandra: $(grep '^migrate: cassandra done' <<<"$admin_out")"
note "keyspace and tables made by chat-admin migrate in $(since "$T")s"

# ---------------------------------------------------------------------------------------------
# 3. the probe; rows at QUORUM and LOCAL_QUORUM

T=$(now)
mkfifo "$WORK/probe.in" "$WORK/probe.out"
java -Xmx256m -cp "$JAR_DIR/*" "$SCRIPT_DIR/CqlProbe.java" "$CONTACT" "$KEYSPACE" \
    <"$WORK/probe.in" >"$WORK/probe.out" 2>"$WORK/probe.err" &
PROBE_PID=$!
# (in this order: the probe opens its stdin first, then its stdout)
exec 5>"$WORK/probe.in" 6<"$WORK/probe.out"
read -r -t "$PROBE_TIMEOUT" -u 6 reply || die "CqlProbe did not start within ${PROBE_TIMEOUT}s"
[[ $reply == ok* ]] || die "CqlProbe: $reply"
ok "CqlProbe connected ($reply) in $(since "$T")s"

r=$(probe replication)
[[ $r == "ok class=SimpleStrategy replication_factor=3" ]] || die "keyspace $KEYSPACE replication: $r"
ok "keyspace $KEYSPACE: ${r#ok }"
r=$(probe table)

r=$(probe write a 500 QUORUM)
[[ $(field acked "$r") == 500 ]] || die "QUORUM writes with 3 nodes: $r"
ok "500 rows written at QUORUM in $(field ms "$r") ms"
r=$(probe read a 500 QUORUM)
[[ $(field found "$r") == 500 ]] || die "QUORUM reads with 3 nodes: $r"
ok "500 rows read back at QUORUM in $(field ms "$r") ms"
r=$(probe write l 20 LOCAL_QUORUM)
[[ $(field acked "$r") == 20 ]] || die "LOCAL_QUORUM writes: $r"
r=$(probe read l 20 LOCAL_QUORUM)
[[ $(field found "$r") == 20 ]] || die "LOCAL_QUORUM reads: $r"
ok "20 rows written and read back at LOCAL_QUORUM (the services' default; one datacenter dc1)"

# ---------------------------------------------------------------------------------------------
# 4. kill -9 one node under a QUORUM load

r=$(probe load k QUORUM)
offs=()
for id in 1 2 3; do [[ $id == "$VICTIM" ]] || offs+=("$id=$(log_size "$id")"); done
T=$(now)
T_MS=$(now_ms)
cass kill "$VICTIM" -9
wait_gossip "kill -9" DOWN "${ADDR[$VICTIM]}" 90 "${offs[@]}"
down_after=$(since "$T")
r=$(probe loadstop "$T_MS")
[[ $(field first_ok_ms "$r") != -1 ]] || die "no QUORUM write succeeded after the kill: $r"
note "kill -9 of cassandra-$VICTIM: the other two mark it DOWN after ${down_after}s; QUORUM load meanwhile (one client, write + read every 50 ms): $(field writes "$r") writes / $(field failed "$r") failed, $(field reads "$r") reads / $(field read_failed "$r") failed, first write started after the kill acked after $(field first_ok_ms "$r") ms, longest time without an acked write $(field max_gap_ms "$r") ms (errors: $(field errors "$r"))"
r=$(probe write b 500 QUORUM)
[[ $(field acked "$r") == 500 ]] || die "QUORUM writes on 2 of 3: $r"
r2=$(probe read b 500 QUORUM)
[[ $(field found "$r2") == 500 ]] || die "QUORUM reads on 2 of 3: $r2"
ok "500 more rows written ($(field ms "$r") ms) and read back ($(field ms "$r2") ms) at QUORUM on 2 of 3"

# ---------------------------------------------------------------------------------------------
# 5. cut a second node: 1 of 3 left

off=$(log_size "$LAST")
CUT=$CUT_NODE
net cut "cassandra-$CUT"
T=$(now)
r=$(probe write c 16 QUORUM)
[[ $(field acked "$r") == 0 ]] || die "QUORUM writes with 1 of 3 reachable were acked: $r"
note "cassandra-$VICTIM dead + cassandra-$CUT cut, before cassandra-$LAST marks it down: all 16 QUORUM writes failed in $(field ms "$r") ms ($(field errors "$r"))"
r=$(probe read a 100 ONE)
[[ $(field failed "$r") == 0 ]] || die "ONE reads with 1 of 3 reachable: $r"
note "meanwhile 100 reads at ONE: all answered in $(field ms "$r") ms, $(field found "$r") rows found"
wait_gossip cut DOWN "${ADDR[$CUT]}" 90 "$LAST=$off"
note "cassandra-$LAST marks the cut cassandra-$CUT DOWN $(since "$T")s after the cut"
r=$(probe write e 16 QUORUM)
[[ $(field acked "$r") == 0 ]] || die "QUORUM writes with 1 of 3 known alive were acked: $r"
r2=$(probe read a 100 ONE)
[[ $(field failed "$r2") == 0 ]] || die "ONE reads with 1 of 3 known alive: $r2"
note "after that: all 16 QUORUM writes failed in $(field ms "$r") ms ($(field errors "$r")); 100 reads at ONE answered in $(field ms "$r2") ms"

# ---------------------------------------------------------------------------------------------
# 6. heal: 2 of 3 again

r=$(probe load h QUORUM)
off=$(log_size "$LAST")
T=$(now)
T_MS=$(now_ms)
net heal "cassandra-$CUT"
CUT=
r=$(probe loadwait "$T_MS" 120)
healed=$(secs "$(field after_ms "$r")")
wait_gossip heal UP "${ADDR[$CUT_NODE]}" 120 "$LAST=$off"
up_after=$(since "$T")
r=$(probe loadstop "$T_MS")
note "heal of cassandra-$CUT_NODE: QUORUM writes succeed again ${healed}s after the heal (cassandra-$LAST logs it UP by ${up_after}s; load: $(field writes "$r") writes, $(field failed "$r") failed)"
r=$(probe write d 500 QUORUM)
[[ $(field acked "$r") == 500 ]] || die "QUORUM writes after the heal: $r"
ok "500 more rows written at QUORUM after the heal"

# ---------------------------------------------------------------------------------------------
# 7. restart the killed node on its data

T=$(now)
cass start "$VICTIM"
note "restart of cassandra-$VICTIM: all three see each other UN $(since "$T")s after the start"

# ---------------------------------------------------------------------------------------------
# 8. nothing acked is lost

T=$(now)
r=$(probe verify QUORUM)
[[ $(field lost "$r") == 0 && $(field unreadable "$r") == 0 ]] || die "after the faults: $r"
note "all $(field acked "$r") rows acked at QUORUM read back at QUORUM, 0 lost (in $(since "$T")s); of $(field failed_writes "$r") writes that failed, $(field failed_present "$r") exist anyway (a time-out means unknown, not lost)"
cass status
rss=$(for id in 1 2 3; do
    npid=$(cat "$CLUSTER_DIR/pids/cassandra-$id.pid" 2>/dev/null) || continue
    printf 'cassandra-%s %sM, ' "$id" "$(($(ps -o rss= -p "$npid" 2>/dev/null || echo 0) / 1024))"
done)
note "resident memory at the end: ${rss%, }"

printf '\n[cluster] SELFTEST PASSED\n'
for line in "${SUMMARY[@]}"; do printf '  - %s\n' "$line"; done
