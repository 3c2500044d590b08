#!/usr/bin/env bash
# Static checks of the iOS client (ios-client/) on machines without a Swift toolchain:
# every .swift file must parse with a real Swift grammar (tree-sitter-swift), ChatKit must import
# only Foundation (+ FoundationNetworking, Observation, Security), every fixture the Swift tests
# name must exist in fixtures/wire/ (and every client-facing fixture must be decoded by a test),
# and ios-client/project.yml must point at existing paths. See ios-client/tools/check_swift.py.
#
# Installs its Python dependencies once into a cached virtualenv ($CHAT_VENV, default
# ~/.cache/chat-venv). It does not compile or run Swift: that needs Xcode or a Swift toolchain
# (`swift build && swift test` in ios-client/ChatKit).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${CHAT_VENV:-$HOME/.cache/chat-venv}"
requirements=("tree-sitter==0.26.1" "tree-sitter-swift==0.7.4" "PyYAML>=6")

if ! "$venv/bin/python" -c 'import tree_sitter, tree_sitter_swift, yaml' 2>/dev/null; then
    echo "check-swift: installing tree-sitter + tree-sitter-swift into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
fi

exec "$venv/bin/python" "$repo/ios-client/tools/check_swift.py" --repo "$repo" "$@"
