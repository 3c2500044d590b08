#!/usr/bin/env bash
# Checks docker-compose.yml against the native topology (deploy/native/topology.conf) with the
# Compose Specification's own loader (compose-go, a Go module). Runs without Docker.
#   deploy/compose/check.sh [-compose FILE] [-topology FILE]
# Needs Go; modules come from the Go module proxy once, then from the module cache.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
command -v go >/dev/null || { echo "compose-check: go is not installed" >&2; exit 1; }
bin=${XDG_CACHE_HOME:-$HOME/.cache}/chat-compose-check/compose-check
mkdir -p "$(dirname "$bin")"
(cd "$here" && go build -mod=readonly -o "$bin" .)
exec "$bin" -repo "$repo" "$@"
