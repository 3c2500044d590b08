#!/usr/bin/env bash
# Proves the Kafka cluster topology works, then removes it:
#   1. net.sh up + kafka.sh up (timed: "formed in")
#   2. the topic `messages` (16 partitions, 3 replicas, min.insync.replicas 2) made by our own
#      chat-admin migrate --only kafka, checked with kcat (replicas, ISR) and TopicInfo.java (min ISR)
#   3. produce with acks=all and consume, from the host (root namespace) through the bridge
#   4. kill -9 the broker leading the most partitions: time until leadership has moved and until
#      acks=all writes succeed on every partition; produce and consume still work (2 of 3 in sync)
#   5. cut a second broker off the network: one of three left, so acks=all must fail on every
#      partition (the controller quorum is lost too); acks=1 to the last broker's partition is
#      still accepted
#   6. heal it: time until acks=all writes succeed again on every partition
#   7. start the killed broker: time until every partition has all 3 replicas in sync
#   8. consume everything: every write acked with acks=all is there
# and tears everything down (also on failure; CHAT_CLUSTER_KEEP=1 leaves it up to look at).
#
#   deploy/cluster/selftest.sh
#
# Needs root; refuses to run while a cluster network (bridge chatbr0) exists, since it removes
# what it made. State under $CHAT_CLUSTER_DIR (default ~/.cache/chat-stack/cluster), purged at
# the end. Writes only to 10.77.0.x, our own test hosts.
set -euo pipefail
umask 022

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NET=$SCRIPT_DIR/net.sh
KAFKA=$SCRIPT_DIR/kafka.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/chat-target}
CHAT_ADMIN=$CARGO_TARGET_DIR/release/chat-admin
JAR_DIR=${CHAT_STACK_DIR:-$HOME/.cache/chat-stack}/jars/kafka
TOPIC=messages
PARTITIONS=16

# shellcheck source=deploy/cluster/selftest-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/selftest-lib.sh"

# ---------------------------------------------------------------------------------------------
# set-up and tear-down

((EUID == 0)) || die "needs root (network namespaces)"
if ip link show dev chatbr0 >/dev/null 2>&1; then
    die "a cluster network is up already (bridge chatbr0); the selftest makes and removes its own: deploy/cluster/kafka.sh down && deploy/cluster/net.sh down"
fi
[[ -x $CHAT_ADMIN ]] || die "no $CHAT_ADMIN (cargo build --release -p chat-admin)"

teardown() {
    local rc=$?
    if [[ ${CHAT_CLUSTER_KEEP:-} == 1 ]]; then
        log "CHAT_CLUSTER_KEEP=1: leaving the cluster up (kafka.sh down --purge; net.sh down)"
        return
    fi
    log "tearing down"
    # A cut host first rejoins: the brokers' controlled shutdown needs a controller quorum.
    if [[ -n ${CUT:-} ]]; then "$NET" heal "kafka-$CUT" >/dev/null 2>&1 || true; fi
    "$KAFKA" down --purge || true
    "$NET" down || true
    exit "$rc"
}
trap teardown EXIT

# ---------------------------------------------------------------------------------------------
# helpers (kcat from the root namespace)

BOOTSTRAP=
declare -A BROKER_ADDR=()

# Metadata of the topic, via the given bootstrap list (default: all brokers).
topic_md() { timeout 15 kcat -L -b "${1:-$BOOTSTRAP}" -t "$TOPIC" -m 5 2>/dev/null || true; }

# "partition leader replicas isrs" per partition.
# (kcat: "    partition 0, leader 3, replicas: 3,1,2, isrs: 3,1,2")
partitions() {
    topic_md "${1:-}" | awk '/^ *partition [0-9]+, leader/ { sub(/,$/, "", $2); sub(/,$/, "", $4); sub(/,$/, "", $6); print $2, $4, $6, $8 }'
}

# Waits until every broker's own metadata shows all partitions of the topic. A KRaft broker
# applies the controller's records on its own time, so CreateTopics can return before it knows
# the topic: right after chat-admin migrate returned, one broker of three answered "unknown
# topic" in 2 of 12 tries (and the first check below then read an empty list).
wait_topic_on_every_broker() {
    local id n T
    T=$(now)
    for id in 1 2 3; do
        while n=$(partitions "${BROKER_ADDR[$id]}:9092" | wc -l) && ((n != PARTITIONS)); do
            [[ $(since "$T" | cut -d. -f1) -lt 30 ]] ||
                die "broker $id knows $n of the $PARTITIONS partitions of $TOPIC 30 s after chat-admin made it"
            sleep 0.1
        done
    done
}

# The broker leading the most partitions (of those given by `partitions` on stdin).
top_leader() { awk '$2 != "-1" { n[$2]++ } END { for (b in n) if (n[b] > best) { best = n[b]; id = b }; print id }'; }

# Leaders by broker, e.g. "1:6 2:5 3:5".
leader_counts() { awk '{ n[$2]++ } END { for (b in n) printf "%s:%d ", b, n[b] }' | sed 's/ $//'; }

bootstrap_without() {
    local id list=()
    for id in 1 2 3; do
        [[ " $* " == *" $id "* ]] || list+=("${BROKER_ADDR[$id]}:9092")
    done
    (
        IFS=,
        echo "${list[*]}"
    )
}

# produce PREFIX COUNT ACKS TIMEOUT_MS [bootstrap]: COUNT keyed records PREFIX-1..COUNT (spread
# over the partitions by key); prints how many failed, returns kcat's status.
produce() {
    local prefix=$1 count=$2 acks=$3 tmo=$4 servers=${5:-$BOOTSTRAP} out rc=0
    out=$(seq 1 "$count" | awk -v p="$prefix" '{ print p "-" $1 ":" p "-" $1 }' |
        timeout $((tmo / 1000 + 30)) kcat -P -b "$servers" -t "$TOPIC" -K: -X acks="$acks" \
            -X message.timeout.ms="$tmo" -X socket.connection.setup.timeout.ms=3000 2>&1) || rc=$?
    grep -c 'Delivery failed' <<<"$out" || true
    return "$rc"
}

# produce_each PREFIX TIMEOUT_MS [bootstrap]: one acks=all record to every partition, side by
# side; prints the partitions that failed (none: all written).
produce_each() {
    local prefix=$1 tmo=$2 servers=${3:-$BOOTSTRAP} p
    local -A pid=()
    for ((p = 0; p < PARTITIONS; p++)); do
        echo "$prefix-p$p:$prefix-p$p" | timeout $((tmo / 1000 + 30)) kcat -P -b "$servers" -t "$TOPIC" -p "$p" \
            -K: -X acks=all -X message.timeout.ms="$tmo" -X socket.connection.setup.timeout.ms=3000 \
            >/dev/null 2>&1 &
        pid[$p]=$!
    done
    local failed=()
    for ((p = 0; p < PARTITIONS; p++)); do wait "${pid[$p]}" || failed+=("$p"); done
    echo "${failed[*]}"
}

# All records of the topic, "key" per line (consumes every partition to its end).
consume_keys() {
    timeout 60 kcat -C -b "${1:-$BOOTSTRAP}" -t "$TOPIC" -o beginning -e -q -f '%k\n' 2>/dev/null
}

# ---------------------------------------------------------------------------------------------
# 1. form

T=$(now)
"$NET" up
"$KAFKA" up
note "cluster formed (network + format + 3 brokers registered) in $(since "$T")s"
BOOTSTRAP=$("$KAFKA" bootstrap)
while read -r ns addr; do BROKER_ADDR[${ns#chat-kafka-}]=$addr; done < <("$NET" hosts chat-kafka-)

# ---------------------------------------------------------------------------------------------
# 2. the topic, by chat-admin migrate --only kafka (the services' own code path: the topic's
# partitions, replication factor and min.insync.replicas come from the typed config).

T=$(now)
admin_out=$(env -u CHAT_CONFIG RUST_BACKTRACE=0 NO_COLOR=1 \
    CHAT__KAFKA__BROKERS="$BOOTSTRAP" CHAT__KAFKA__TOPIC="$TOPIC" CHAT__KAFKA__PARTITIONS="$PARTITIONS" \
    CHAT__KAFKA__REPLICATION_FACTOR=3 CHAT__KAFKA__MIN_INSYNC_REPLICAS=2 \
    "$CHAT_ADMIN" migrate --only kafka --timeout 60 2>&1) || {
    printf '%s\n' "$admin_out" | grep -v '^ ' | tail -n 20 >&2
    die "chat-admin migrate --only kafka failed"
}
ok "chat-admin migrate --only kafka: $(grep '^migrate: kafka done' <<<"$admin_out")"
note "topic made by chat-admin migrate in $(since "$T")s"
wait_topic_on_every_broker
note "every broker knows all $PARTITIONS partitions $(since "$T")s after chat-admin migrate started"
parts=$(partitions)
[[ $(grep -c . <<<"$parts") -eq $PARTITIONS ]] || die "topic has $(grep -c . <<<"$parts") partitions, not $PARTITIONS"
awk '{ if (split($3, a, ",") != 3 || split($4, b, ",") != 3) bad++ } END { exit bad > 0 }' <<<"$parts" ||
    die "not every partition has 3 replicas, all in sync: $parts"
info=$(java -cp "$JAR_DIR/*" "$SCRIPT_DIR/TopicInfo.java" "$BOOTSTRAP" "$TOPIC" 2>&1) || die "TopicInfo: $info"
[[ $info == "partitions=$PARTITIONS replication.factor=3 min.insync.replicas=2" ]] || die "topic settings: $info"
ok "topic $TOPIC: $info; leaders by broker $(leader_counts <<<"$parts"); all ISRs 3"

# ---------------------------------------------------------------------------------------------
# 3. produce / consume, all three up

T=$(now)
nfail=$(produce a 500 all 10000) || die "acks=all produce with 3 brokers: $nfail of 500 failed"
ok "500 records produced with acks=all in $(since "$T")s"
MUST=$(seq 1 500 | sed 's/^/a-/')
n=$(consume_keys | grep -c '^a-' || true)
[[ $n -eq 500 ]] || die "consumed $n of 500"
ok "500 records consumed"

# ---------------------------------------------------------------------------------------------
# 4. kill -9 the broker leading the most partitions

VICTIM=$(partitions | top_leader)
SURVIVORS=$(bootstrap_without "$VICTIM")
read -r CTL _ < <("$KAFKA" controller)
if [[ $CTL == "$VICTIM" ]]; then role="top leader, also the active controller"; else role="top leader; the active controller is $CTL"; fi
log "broker $VICTIM leads the most partitions ($(partitions | leader_counts)), $role: kill -9"
T=$(now)
"$KAFKA" kill "$VICTIM" -9
# Side by side: writes to every partition (librdkafka retries until the new leader takes them),
# and a metadata poll for the moment no partition names the dead broker as leader.
each_file=$(mktemp)
(
    f=$(produce_each k 60000 "$BOOTSTRAP")
    echo "$f $(since "$T")" >"$each_file"
) &
each_pid=$!
moved=
while [[ -z $moved ]]; do
    cur=$(partitions "$SURVIVORS")
    if [[ -n $cur ]] && ! awk -v v="$VICTIM" '$2 == v || $2 == "-1" { bad = 1 } END { exit !bad }' <<<"$cur"; then
        moved=$(since "$T")
    fi
    [[ $(since "$T" | cut -d. -f1) -lt 90 ]] || die "leadership did not move off broker $VICTIM in 90 s"
    [[ -n $moved ]] || sleep 0.25
done
wait "$each_pid" || true
read -r -a each <"$each_file"
rm -f "$each_file"
[[ ${#each[@]} -eq 1 ]] || die "acks=all writes to partitions ${each[*]:0:${#each[@]}-1} failed after the kill"
note "kill -9 of broker $VICTIM ($role): leadership moved in ${moved}s; acks=all writes to all $PARTITIONS partitions succeeded ${each[0]}s after the kill"
ok "leaders now $(partitions "$SURVIVORS" | leader_counts), ISRs $(partitions "$SURVIVORS" | awk '{ print split($4, a, ",") }' | sort | uniq -c | awk '{ printf "%sx%s ", $1, $2 }')"
T=$(now)
nfail=$(produce b 500 all 15000 "$SURVIVORS") || die "acks=all produce with 2 of 3: $nfail of 500 failed"
MUST+=$'\n'$(seq 1 500 | sed 's/^/b-/')
ok "500 records produced with acks=all on 2 of 3 brokers in $(since "$T")s"
n=$(consume_keys "$SURVIVORS" | grep -c -e '^a-' -e '^b-' || true)
[[ $n -eq 1000 ]] || die "consumed $n of 1000 with broker $VICTIM down"
ok "1000 records consumed with broker $VICTIM down"

# ---------------------------------------------------------------------------------------------
# 5. cut a second broker: 1 of 3 left

CUT=$(partitions "$SURVIVORS" | top_leader)
LAST=$(bootstrap_without "$VICTIM" "$CUT")
LAST_ID=$(for id in 1 2 3; do [[ $id == "$VICTIM" || $id == "$CUT" ]] || echo "$id"; done)
"$NET" cut "kafka-$CUT"
# One record per partition, each by its own kcat: its exit status says whether that record was
# acked (a kcat that gives up with "all brokers down" does not report each record it drops).
T=$(now)
f=$(produce_each c 15000)
[[ $(wc -w <<<"$f") -eq $PARTITIONS ]] || die "acks=all writes with 1 of 3 brokers reachable were acked on partitions: $(comm -23 <(seq 0 $((PARTITIONS - 1)) | sort) <(tr ' ' '\n' <<<"$f" | sort) | tr '\n' ' ')"
note "broker $VICTIM dead + broker $CUT cut: acks=all writes to all $PARTITIONS partitions failed (none acked; the last gave up after $(since "$T")s): 1 copy in reach < min ISR 2, and no controller quorum"
# The last broker still leads some partitions and accepts acks=1 writes there — exactly what
# acks=all is for: such a write lives on one host until the others are back.
p1=$(partitions "$LAST" | awk -v l="$LAST_ID" '$2 == l { print $1; exit }')
if [[ -n $p1 ]]; then
    if echo "one-1:one-1" | timeout 20 kcat -P -b "$LAST" -t "$TOPIC" -p "$p1" -K: -X acks=1 -X message.timeout.ms=5000 2>/dev/null; then
        ok "meanwhile an acks=1 write to partition $p1 (led by broker $LAST_ID) is accepted on one copy"
    else
        log "an acks=1 write to partition $p1 (led by broker $LAST_ID) failed too"
    fi
fi

# ---------------------------------------------------------------------------------------------
# 6. heal: 2 of 3 again

"$NET" heal "kafka-$CUT"
T=$(now)
while :; do
    f=$(produce_each h 3000 "$(bootstrap_without "$VICTIM")")
    [[ -z $f ]] && break
    [[ $(since "$T" | cut -d. -f1) -lt 120 ]] || die "acks=all writes still fail 120 s after heal (partitions $f)"
done
note "heal of broker $CUT: acks=all writes to all $PARTITIONS partitions succeed again $(since "$T")s after the heal"
nfail=$(produce d 500 all 15000 "$(bootstrap_without "$VICTIM")") || die "acks=all produce after heal: $nfail of 500 failed"
MUST+=$'\n'$(seq 1 500 | sed 's/^/d-/')
ok "500 records produced with acks=all after the heal"

# ---------------------------------------------------------------------------------------------
# 7. restart the killed broker

T=$(now)
"$KAFKA" start "$VICTIM"
rejoined=$(since "$T")
while :; do
    parts=$(partitions)
    if [[ $(wc -l <<<"$parts") -eq $PARTITIONS ]] &&
        awk '{ if (split($4, a, ",") != 3) bad++ } END { exit bad > 0 }' <<<"$parts"; then
        break
    fi
    [[ $(since "$T" | cut -d. -f1) -lt 180 ]] || die "not all partitions back to 3 in-sync replicas after 180 s"
    sleep 0.5
done
note "restart of broker $VICTIM: registered after ${rejoined}s, all partitions 3 replicas in sync after $(since "$T")s"

# ---------------------------------------------------------------------------------------------
# 8. nothing acked is lost

got=$(consume_keys | sort -u)
missing=$(comm -23 <(sort -u <<<"$MUST") <(printf '%s\n' "$got") | wc -l)
[[ $missing -eq 0 ]] || die "$missing acks=all records are missing after the faults"
ok "all $(wc -l <<<"$MUST") acks=all records of phases a/b/d consumed after the faults ($(wc -l <<<"$got") distinct keys in all)"
# A write that timed out is unknown, not lost: the last broker had appended some of them, and
# they became committed once the cut one caught up after the heal.
late=$(grep -c '^c-' <<<"$got" || true)
note "of the $PARTITIONS acks=all writes that failed during the cut, $late were committed after the heal anyway (a time-out means unknown, not lost)"
"$KAFKA" status
rss=$(for id in 1 2 3; do
    bpid=$(cat "${CHAT_CLUSTER_DIR:-$HOME/.cache/chat-stack/cluster}/pids/kafka-$id.pid" 2>/dev/null) || continue
    printf 'kafka-%s %sM, ' "$id" "$(($(ps -o rss= -p "$bpid" 2>/dev/null || echo 0) / 1024))"
done)
note "resident memory at the end: ${rss%, }"

printf '\n[cluster] SELFTEST PASSED\n'
for line in "${SUMMARY[@]}"; do printf '  - %s\n' "$line"; done
