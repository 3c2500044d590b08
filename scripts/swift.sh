#!/usr/bin/env bash
# Runs a Swift toolchain command (swift-build, swift-test, or any program such as a built
# executable) on this checkout.
#
#   scripts/swift.sh swift-build --package-path ios-client/ChatKit
#   scripts/swift.sh swift-test  --package-path ios-client/ChatKit
#   scripts/swift.sh ios-client/ChatKit/.build/debug/chatkit-cli --help
#   scripts/swift.sh --provision          # only make sure the toolchain is there
#
# Where a native toolchain exists (macOS, Linux with Swift installed) the command runs directly;
# `swift-build` falls back to `swift build` when only the driver is on PATH.
#
# Otherwise (our Debian 12 machines) it uses Swift 6.0.3 as packaged by Debian 13 ("trixie"): a
# minimal trixie root under $CHAT_SWIFT_CACHE (default ~/.cache/chat-swift) made once with
# debootstrap plus `swiftlang libcurl4-openssl-dev` (a few minutes, ~450 MB download, ~2.5 GB on
# disk). Each run happens in a private mount namespace (unshare): /proc, /dev and the checkout are
# mounted into the root there, at the checkout's own path so file names in diagnostics match, and
# the kernel drops those mounts when the command exits, however it exits. So two runs at once do
# not share or unmount each other's mounts; provisioning itself is serialised with flock and is
# finished only when its marker file exists, so an interrupted attempt is resumed (apt) or
# redone (debootstrap) by the next run. Build products stay in the package's .build (git-ignored).
#
# Needs root for the chroot path (CI runs as root; no stdin is read).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${CHAT_SWIFT_CACHE:-$HOME/.cache/chat-swift}"
root="$cache/trixie"
ready="$cache/ready"            # written last: the root is complete
bootstrapped="$cache/bootstrapped" # debootstrap finished (apt may still be missing)
suite="${CHAT_SWIFT_SUITE:-trixie}"
mirror="${CHAT_SWIFT_MIRROR:-http://deb.debian.org/debian}"
packages=(swiftlang libcurl4-openssl-dev)

say() { printf 'swift.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

usage() {
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[ $# -ge 1 ] || usage

# --- native toolchain -------------------------------------------------------------------------
native() {
    [ "${CHAT_SWIFT_FORCE_CHROOT:-0}" = 1 ] && return 1
    local cmd="$1"
    case "$cmd" in
        swift-*)
            if command -v "$cmd" >/dev/null 2>&1 && "$cmd" --version >/dev/null 2>&1; then
                return 0
            fi
            command -v swift >/dev/null 2>&1 && swift --version >/dev/null 2>&1
            ;;
        *) return 1 ;;
    esac
}

if [ "$1" != --provision ] && native "$1"; then
    cmd="$1"
    shift
    if command -v "$cmd" >/dev/null 2>&1; then
        exec "$cmd" "$@"
    fi
    exec swift "${cmd#swift-}" "$@"
fi

# --- provisioning -------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "no Swift toolchain on PATH, and provisioning one in a chroot needs root"
mkdir -p "$cache"

provision() {
    local started
    started=$(date +%s)
    if ! command -v debootstrap >/dev/null 2>&1; then
        say "installing debootstrap (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap </dev/null >/dev/null
    fi
    if [ ! -e "$bootstrapped" ]; then
        if [ -e "$root" ]; then
            say "removing a half-made $root from an interrupted attempt"
            # --one-file-system: never descend into something still mounted in there.
            rm -rf --one-file-system "$root"
        fi
        say "debootstrap --variant=minbase $suite into $root (about 2 minutes)"
        # In a private mount namespace, so the mounts debootstrap makes inside the root vanish
        # with it even if it is killed.
        unshare --mount --propagation private \
            debootstrap --variant=minbase "$suite" "$root" "$mirror" </dev/null \
            > "$cache/debootstrap.log" 2>&1 \
            || { tail -n 20 "$cache/debootstrap.log" >&2; die "debootstrap failed (log: $cache/debootstrap.log)"; }
        touch "$bootstrapped"
        say "debootstrap done after $(( $(date +%s) - started ))s"
    fi
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    say "installing ${packages[*]} in the root (about 2 minutes, ~450 MB)"
    # apt-get is idempotent: after an interrupted attempt this resumes where it stopped.
    in_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        > "$cache/apt.log" 2>&1 \
        || { tail -n 20 "$cache/apt.log" >&2; die "apt-get update in the root failed"; }
    in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Dpkg::Use-Pty=0 "${packages[@]}" >> "$cache/apt.log" 2>&1 \
        || { tail -n 20 "$cache/apt.log" >&2; die "apt-get install in the root failed (log: $cache/apt.log)"; }
    in_root apt-get clean
    in_root env PATH="/usr/libexec/swift/bin:/usr/sbin:/usr/bin:/sbin:/bin" swift-build --version >&2 \
        || die "swift-build does not run in the root"
    touch "$ready"
    say "Swift toolchain ready in $root after $(( $(date +%s) - started ))s"
}

# Runs a command inside the root, in a private mount namespace with /proc, /dev and the checkout
# mounted. The namespace dies with the command, which takes the mounts with it; the trap below
# also unmounts explicitly, for tools that look.
in_root() {
    local cwd="/"
    case "$PWD/" in "$repo"/*) cwd="$PWD" ;; esac
    unshare --mount --propagation private bash -c '
        set -euo pipefail
        root="$1"; repo="$2"; cwd="$3"; shift 3
        cleanup() { umount -R "$root$repo" 2>/dev/null || true; umount "$root/dev" 2>/dev/null || true; umount "$root/proc" 2>/dev/null || true; }
        trap cleanup EXIT
        mount -t proc proc "$root/proc"
        mount --rbind /dev "$root/dev"
        mkdir -p "$root$repo"
        mount --rbind "$repo" "$root$repo"
        # The checkout may be a git worktree whose .git points at another directory.
        if [ -f "$repo/.git" ]; then
            gitdir=$(sed -n "s/^gitdir: //p" "$repo/.git")
            common=$(cd "$repo" && git rev-parse --git-common-dir 2>/dev/null || true)
            for d in "$gitdir" "$common"; do
                case "$d" in /*) [ -d "$d" ] && mkdir -p "$root$d" && mount --rbind "$d" "$root$d" ;; esac
            done
        fi
        env_args=(HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}"
                  PATH=/usr/libexec/swift/bin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
        while IFS= read -r line; do env_args+=("$line"); done < <(env | grep -E "^(CHAT_|CI=|NO_COLOR=)" || true)
        chroot "$root" /usr/bin/env -i "${env_args[@]}" bash -c "cd \"\$1\" && shift && exec \"\$@\"" _ "$cwd" "$@"
    ' _ "$root" "$repo" "$cwd" "$@"
}

if [ ! -e "$ready" ]; then
    exec 9>"$cache/provision.lock"
    if ! flock -n 9; then
        say "waiting for another run that is provisioning the toolchain"
        flock 9
    fi
    [ -e "$ready" ] || provision
    exec 9>&-
fi

[ "$1" = --provision ] && exit 0
in_root "$@"
