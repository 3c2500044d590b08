#!/usr/bin/env bash
# The iOS client's package (ios-client/ChatKit: ChatKit, ChatAppCore, chatkit-cli) compiled and
# tested by a real Swift compiler, Swift 6 language mode, warnings treated as errors; then the
# static checks a compiler does not make (ios-client/tools/check_swift.py: the SwiftUI views'
# syntax, which only Xcode compiles, the import policy, fixtures no test decodes, project.yml).
#
# The toolchain comes from scripts/swift.sh: a native one, or a Debian trixie root it provisions
# once under ~/.cache/chat-swift. Python dependencies of the static checks go into a cached
# virtualenv ($CHAT_VENV, default ~/.cache/chat-venv).
#
#   scripts/check-swift.sh            build, test, static checks
#   SWIFT_JOBS=1 scripts/check-swift.sh
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
package=ios-client/ChatKit
jobs="${SWIFT_JOBS:-2}"
strict=(-Xswiftc -warnings-as-errors)

started=$(date +%s)
scripts/swift.sh --provision
echo "check-swift: toolchain ready ($(( $(date +%s) - started ))s)"

started=$(date +%s)
scripts/swift.sh swift-build -j "$jobs" --package-path "$package" "${strict[@]}" 2>&1 \
    | grep -v '^\[[0-9]*/[0-9]*\]' || true
# grep swallows swift-build's status: build again (a no-op when the first one worked) for it.
scripts/swift.sh swift-build -j "$jobs" --package-path "$package" "${strict[@]}" >/dev/null
echo "check-swift: build ($(( $(date +%s) - started ))s)"

started=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! scripts/swift.sh swift-test -j "$jobs" --package-path "$package" "${strict[@]}" >"$log" 2>&1; then
    grep -v '^\[[0-9]*/[0-9]*\]' "$log" | grep -v ' passed (' | tail -n 80
    # The failed assertions, which the tail above may have scrolled past.
    grep -E 'error: |failed \(' "$log" | head -n 40 >&2 || true
    echo "check-swift: swift-test failed" >&2
    exit 1
fi
summary=$(grep -E "Executed [0-9]+ tests" "$log" | tail -n 1 | sed 's/^[[:space:]]*//')
echo "check-swift: swift-test: ${summary:-no summary?} ($(( $(date +%s) - started ))s)"

venv="${CHAT_VENV:-$HOME/.cache/chat-venv}"
requirements=("tree-sitter==0.26.1" "tree-sitter-swift==0.7.4" "PyYAML>=6")
if ! "$venv/bin/python" -c 'import tree_sitter, tree_sitter_swift, yaml' 2>/dev/null; then
    echo "check-swift: installing tree-sitter + tree-sitter-swift into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
fi
"$venv/bin/python" "$repo/ios-client/tools/check_swift.py" --repo "$repo" "$@"
