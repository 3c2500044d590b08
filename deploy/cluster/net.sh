#!/usr/bin/env bash
# The test hosts of the cluster topology: one network namespace per Kafka broker / Cassandra
# node, each with its own address on a Linux bridge in the root namespace, so that a host can be
# cut off from the network (not only killed) and healed again. No Docker, no containers: only
# `ip netns`, veth pairs and a bridge, all made and removed by this script.
#
#   deploy/cluster/net.sh up [host...]        make the bridge and the hosts (default: all of
#                                             HOSTS below); idempotent, repairs a partial up
#   deploy/cluster/net.sh down                remove every host and the bridge, even after a
#                                             partial up (processes still inside are stopped)
#   deploy/cluster/net.sh cut <host>          partition the host: unreachable both ways, its
#                                             processes keep running
#   deploy/cluster/net.sh heal <host>         undo `cut`
#   deploy/cluster/net.sh status              each host: namespace, address, link, reachable,
#                                             processes inside
#   deploy/cluster/net.sh exec <host> cmd...  run a command inside the host's namespace
#   deploy/cluster/net.sh hosts [prefix]      print "<host> <address>" of the table (for the
#                                             other scripts; prefix e.g. chat-kafka-)
#
# <host> is a namespace name (chat-kafka-2) or the same without "chat-" (kafka-2).
#
# The root namespace is 10.77.0.1 on the bridge; a process on the host (our services, kcat,
# chat-admin) reaches 10.77.0.x through the bridge's connected route, and the namespaces reach
# the host and each other over the bridge (layer 2). So nothing is routed: ip_forward stays as it
# is and this script changes no sysctl at all (the namespaces' own settings vanish with them).
#
# Environment:
#   CHAT_CLUSTER_DIR   state folder (default ~/.cache/chat-stack/cluster): the lock lives there
set -euo pipefail
umask 022

# ---------------------------------------------------------------------------------------------
# the test hosts: one line each, "<namespace> <address> <veth name on the bridge side>"
# (veth names are at most 15 characters; the namespace end is renamed eth0 inside the host).
# Kafka brokers are .11-.13, Cassandra nodes .21-.23 (their namespaces are made already, the
# nodes themselves come later).
HOSTS=(
    "chat-kafka-1      10.77.0.11  chatv-k1"
    "chat-kafka-2      10.77.0.12  chatv-k2"
    "chat-kafka-3      10.77.0.13  chatv-k3"
    "chat-cassandra-1  10.77.0.21  chatv-c1"
    "chat-cassandra-2  10.77.0.22  chatv-c2"
    "chat-cassandra-3  10.77.0.23  chatv-c3"
)
BRIDGE=chatbr0
BRIDGE_ADDR=10.77.0.1
PREFIX_LEN=24
SUBNET=10.77.0.0/24

STATE_DIR=${CHAT_CLUSTER_DIR:-$HOME/.cache/chat-stack/cluster}

# ---------------------------------------------------------------------------------------------
# output

# log, warn, die, usage, have, pid_alive, wait_gone, apt_get
LOG_TAG=cluster
# shellcheck source=deploy/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

# ---------------------------------------------------------------------------------------------
# the table

declare -A ADDR=() VETH=()
declare -a NAMES=()
for line in "${HOSTS[@]}"; do
    read -r ns addr veth <<<"$line"
    NAMES+=("$ns")
    ADDR[$ns]=$addr
    VETH[$ns]=$veth
done
unset line ns addr veth

# Resolve "kafka-2" / "chat-kafka-2" to the namespace name; fail on anything else.
host_name() {
    local h=$1
    [[ $h == chat-* ]] || h=chat-$h
    [[ -n ${ADDR[$h]:-} ]] || die "unknown host '$1' (known: ${NAMES[*]})"
    echo "$h"
}

ns_exists() { [[ -e /run/netns/$1 ]]; }
link_exists() { ip link show dev "$1" >/dev/null 2>&1; }
in_ns() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

# ---------------------------------------------------------------------------------------------
# prerequisites and locking

require_tools() {
    ((EUID == 0)) || die "network namespaces, veths and bridges need root (run with sudo)"
    local t
    for t in ip bridge flock timeout; do
        have "$t" || die "'$t' not found (apt-get install -y iproute2 coreutils util-linux)"
    done
}

# One net.sh at a time changes the topology (cut/heal from a test while an up repairs, ...).
lock_net() {
    mkdir -p "$STATE_DIR"
    exec 8>"$STATE_DIR/.net.lock"
    flock -w 60 8 || die "another deploy/cluster/net.sh holds $STATE_DIR/.net.lock"
}

# ---------------------------------------------------------------------------------------------
# up

# The subnet must be ours alone: an address or route of 10.77.0.0/24 on another interface
# would make our traffic leave by it (or shadow the bridge).
check_subnet_free() {
    local clash
    clash=$(ip -4 -o addr show | awk -v br="$BRIDGE" '$2 != br && $4 ~ /^10\.77\.0\./ { print $2, $4 }')
    [[ -z $clash ]] || die "10.77.0.x is already used by another interface: $clash"
    clash=$(ip -4 route show to match 10.77.0.11 | grep -v -e '^default' -e "dev $BRIDGE" || true)
    [[ -z $clash ]] || die "a route for $SUBNET exists outside $BRIDGE: $clash"
}

bridge_up() {
    if ! link_exists "$BRIDGE"; then
        # STP off and forward_delay 0: a port (re)joining — after `heal` — forwards at once
        # instead of spending 2 x 15 s in listening/learning.
        ip link add name "$BRIDGE" type bridge stp_state 0 forward_delay 0
        log "bridge $BRIDGE made"
    fi
    if ! ip -4 -o addr show dev "$BRIDGE" | grep -q " $BRIDGE_ADDR/$PREFIX_LEN "; then
        ip addr add "$BRIDGE_ADDR/$PREFIX_LEN" dev "$BRIDGE"
    fi
    ip link set dev "$BRIDGE" up
}

host_up() {
    local ns=$1 addr=${ADDR[$1]} veth=${VETH[$1]} peer=${VETH[$1]}-p
    ns_exists "$ns" || ip netns add "$ns"
    # The pair: "$veth" stays in the root namespace as a bridge port, its peer moves into the
    # namespace as eth0. A pair left half-made by an interrupted up is made anew.
    if ! in_ns "$ns" ip link show dev eth0 >/dev/null 2>&1; then
        link_exists "$veth" && ip link del dev "$veth"
        link_exists "$peer" && ip link del dev "$peer"
        ip link add name "$veth" type veth peer name "$peer"
        ip link set dev "$peer" netns "$ns"
        in_ns "$ns" ip link set dev "$peer" name eth0
    fi
    ip link set dev "$veth" master "$BRIDGE"
    # A host cut before (its mark is kept) stays cut: repairing the topology is not healing.
    if is_cut "$ns"; then ip link set dev "$veth" down; else ip link set dev "$veth" up; fi
    in_ns "$ns" ip link set dev lo up
    if ! in_ns "$ns" ip -4 -o addr show dev eth0 | grep -q " $addr/$PREFIX_LEN "; then
        in_ns "$ns" ip addr add "$addr/$PREFIX_LEN" dev eth0
    fi
    in_ns "$ns" ip link set dev eth0 up
    # The default route via the host: a process inside reaches 10.77.0.1 anyway (same subnet);
    # the route makes the answer to any other address of the host's come back through us too.
    in_ns "$ns" ip route replace default via "$BRIDGE_ADDR" dev eth0
}

# probe FROM-NS|root ADDR: is ADDR reachable? A TCP connect to port 1, where nothing listens:
# "connection refused" means the SYN got there and the RST came back (reachable both ways); a
# time-out or "no route to host" means it did not. Needs no listener and no ping.
probe() {
    local from=$1 addr=$2 out
    local try=(timeout 3 bash -c "exec 3<>/dev/tcp/$addr/1")
    if [[ $from == root ]]; then
        out=$("${try[@]}" 2>&1) && return 0
    else
        out=$(in_ns "$from" "${try[@]}" 2>&1) && return 0
    fi
    [[ $out == *"Connection refused"* ]]
}

cmd_up() {
    require_tools
    lock_net
    local -a want=() bad=()
    local h ns
    if (($# == 0)); then want=("${NAMES[@]}"); else for h in "$@"; do want+=("$(host_name "$h")"); done; fi
    check_subnet_free
    bridge_up
    for ns in "${want[@]}"; do
        host_up "$ns"
        log "host $ns is up at ${ADDR[$ns]} (veth ${VETH[$ns]} on $BRIDGE)"
    done
    # Prove the paths the cluster needs: host -> each test host, and test host -> test host
    # (a host firewall with br_netfilter, e.g. Docker's FORWARD DROP, would block the latter).
    for ns in "${want[@]}"; do
        if is_cut "$ns"; then
            log "host $ns stays cut (deploy/cluster/net.sh heal ${ns#chat-})"
            continue
        fi
        probe root "${ADDR[$ns]}" || bad+=("host->$ns")
        probe "$ns" "$BRIDGE_ADDR" || bad+=("$ns->host")
    done
    if ((${#want[@]} > 1)) && ! is_cut "${want[0]}" && ! is_cut "${want[1]}"; then
        probe "${want[0]}" "${ADDR[${want[1]}]}" || bad+=("${want[0]}->${want[1]}")
    fi
    ((${#bad[@]} == 0)) || die "no connectivity: ${bad[*]} (a firewall on bridged traffic? sysctl net.bridge.bridge-nf-call-iptables is $(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo n/a))"
    log "network up: $BRIDGE $BRIDGE_ADDR/$PREFIX_LEN, ${#want[@]} hosts, all reachable"
}

# ---------------------------------------------------------------------------------------------
# down

# Processes still inside a namespace keep it (and its veth) alive after `ip netns del`: stop
# them first. They are ours by construction (only our scripts start processes in chat-*
# namespaces), and they are stopped by pid.
stop_ns_processes() {
    local ns=$1 pids pid _
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ') || true
    [[ -n ${pids// /} ]] || return 0
    warn "processes still running in $ns: $pids; SIGTERM (use deploy/cluster/kafka.sh down first)"
    for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 100); do
        pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ') || true
        [[ -n ${pids// /} ]] || return 0
        sleep 0.2
    done
    warn "still running in $ns after 20s: $pids; SIGKILL"
    for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
    sleep 0.5
}

cmd_down() {
    require_tools
    lock_net
    local ns veth _
    for ns in "${NAMES[@]}"; do
        veth=${VETH[$ns]}
        if ns_exists "$ns"; then
            stop_ns_processes "$ns"
            # Deleting the namespace deletes its veth end, and with it the pair — but the
            # kernel does it asynchronously: give it a moment before deleting by hand.
            ip netns del "$ns"
            for _ in $(seq 20); do
                link_exists "$veth" || break
                sleep 0.1
            done
            log "host $ns removed"
        fi
        # A pair made but not yet moved (interrupted up) is still in the root namespace.
        # (Errors ignored: the kernel may remove it between the test and the delete.)
        if link_exists "$veth"; then ip link del dev "$veth" 2>/dev/null || true; fi
        if link_exists "$veth-p"; then ip link del dev "$veth-p" 2>/dev/null || true; fi
        ! link_exists "$veth" || die "could not remove $veth"
    done
    if link_exists "$BRIDGE"; then
        ip link del dev "$BRIDGE"
        log "bridge $BRIDGE removed"
    fi
    rm -rf "$STATE_DIR/net"
    log "network down"
}

# ---------------------------------------------------------------------------------------------
# cut / heal
#
# How a host is cut: its veth's bridge end is set down. Why this and not a firewall rule:
#  - It is silent, like a pulled cable or a dead switch port: frames to the host are dropped by
#    the bridge (the port is disabled), frames from it are dropped by its own eth0, which has
#    lost its carrier. No RST, no ICMP: an established TCP connection hangs and retransmits
#    until its own time-outs fire; a new connection gets no answer (once the ARP entry has
#    expired, the kernel says "no route to host" after ~3 s, exactly as for a vanished host
#    on a real LAN segment).
#  - It is symmetric: nothing gets through in either direction. A DROP rule on OUTPUT would
#    instead fail the cut host's own sends at once with EPERM (netfilter reports local drops to
#    the sender), which no real partition does; a rule on INPUT alone lets its requests reach
#    the others (a leader would still see a cut follower's fetches).
#  - It needs no nftables/iptables (not installed here, and a host firewall may own them), and
#    it cannot be left half-applied: heal sets the port up and the bridge forwards at once (STP
#    off). The processes inside are not touched: they keep their sockets and in-memory state,
#    so on heal they resume, as after a real partition.

# Whether a host is cut is kept as a mark in the state folder, not read off the link: a link
# that is down because an up was interrupted is not a cut, and `up` must not heal a cut host.
cut_mark() { echo "$STATE_DIR/net/cut-$1"; }
is_cut() { [[ -e $(cut_mark "$1") ]]; }
link_is_up() { ip -o link show dev "$1" 2>/dev/null | grep -q '[<,]UP[,>]'; }

cmd_cut() {
    (($# == 1)) || die "usage: net.sh cut <host>"
    require_tools
    lock_net
    local ns
    ns=$(host_name "$1")
    { ns_exists "$ns" && link_exists "${VETH[$ns]}"; } || die "host $ns is not up (deploy/cluster/net.sh up)"
    mkdir -p "$STATE_DIR/net"
    if is_cut "$ns" && ! link_is_up "${VETH[$ns]}"; then
        log "host $ns is already cut"
        return 0
    fi
    : >"$(cut_mark "$ns")"
    ip link set dev "${VETH[$ns]}" down
    log "host $ns (${ADDR[$ns]}) cut off the network (its processes keep running)"
}

cmd_heal() {
    (($# == 1)) || die "usage: net.sh heal <host>"
    require_tools
    lock_net
    local ns
    ns=$(host_name "$1")
    { ns_exists "$ns" && link_exists "${VETH[$ns]}"; } || die "host $ns is not up (deploy/cluster/net.sh up)"
    if ! is_cut "$ns" && link_is_up "${VETH[$ns]}"; then
        log "host $ns is not cut"
        return 0
    fi
    ip link set dev "${VETH[$ns]}" up
    rm -f "$(cut_mark "$ns")"
    # The namespace's eth0 regains its carrier with the pair; its routes come back by themselves.
    local _
    for _ in $(seq 50); do
        probe root "${ADDR[$ns]}" && break
        sleep 0.1
    done
    if probe root "${ADDR[$ns]}"; then
        log "host $ns (${ADDR[$ns]}) healed: reachable again"
    else
        warn "host $ns healed, but ${ADDR[$ns]} does not answer yet"
    fi
}

# ---------------------------------------------------------------------------------------------
# status / exec / hosts

cmd_status() {
    ((EUID == 0)) || die "needs root"
    if link_exists "$BRIDGE"; then
        log "bridge $BRIDGE: $(ip -4 -o addr show dev "$BRIDGE" | awk '{ print $4 }' | head -n 1)"
    else
        log "bridge $BRIDGE: absent"
    fi
    local ns state reach pids
    printf '%-18s %-12s %-6s %-11s %s\n' HOST ADDRESS LINK REACHABLE PROCESSES
    for ns in "${NAMES[@]}"; do
        if ! ns_exists "$ns"; then
            printf '%-18s %-12s %-6s %-11s %s\n' "$ns" "${ADDR[$ns]}" absent - -
            continue
        fi
        if ! link_exists "${VETH[$ns]}"; then
            state=broken
        elif is_cut "$ns"; then
            state="cut"
        elif link_is_up "${VETH[$ns]}"; then
            state=up
        else
            state=down
        fi
        reach=no
        [[ $state == up ]] && probe root "${ADDR[$ns]}" && reach=yes
        pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
        printf '%-18s %-12s %-6s %-11s %s\n' "$ns" "${ADDR[$ns]}" "$state" "$reach" "${pids:--}"
    done
}

cmd_exec() {
    (($# >= 2)) || die "usage: net.sh exec <host> cmd..."
    local ns
    ns=$(host_name "$1")
    shift
    ns_exists "$ns" || die "host $ns is not up (deploy/cluster/net.sh up)"
    exec ip netns exec "$ns" "$@"
}

cmd_hosts() {
    local ns
    for ns in "${NAMES[@]}"; do
        [[ $ns == "${1:-}"* ]] && printf '%s %s\n' "$ns" "${ADDR[$ns]}"
    done
    return 0
}

main() {
    local cmd=${1:-}
    (($#)) && shift
    case $cmd in
        up) cmd_up "$@" ;;
        down) cmd_down ;;
        cut) cmd_cut "$@" ;;
        heal) cmd_heal "$@" ;;
        status) cmd_status ;;
        exec) cmd_exec "$@" ;;
        hosts) cmd_hosts "$@" ;;
        -h | --help | help) usage ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
