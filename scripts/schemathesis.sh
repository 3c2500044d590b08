#!/usr/bin/env bash
# schemathesis (property-based tests generated from the OpenAPI document) against the live REST
# API through nginx, with every check: responses must be documented (status, headers, body
# schema, content type), requests valid by the document accepted, invalid ones refused with a
# 4xx, no 5xx. Needs the stack up (deploy/stack.sh up). Bounded: a fixed number of examples per
# operation and a deterministic seed, so a run takes 1 to 1.5 minutes and repeats itself; any
# failure makes it exit non-zero.
#   CHAT_URL      base URL (default http://127.0.0.1:8080)
#   CHAT_VENV     virtualenv schemathesis is installed into (default ~/.cache/chat-venv)
#   ST_EXAMPLES   examples per operation (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
url="${CHAT_URL:-http://127.0.0.1:8080}"
venv="${CHAT_VENV:-$HOME/.cache/chat-venv}"
version=4.32.5

if ! "$venv/bin/st" --version 2>/dev/null | grep -qF "$version"; then
  if [ ! -x "$venv/bin/python" ]; then
    # A fresh Debian/Ubuntu may lack the venv module.
    python3 -m venv "$venv" 2>/dev/null || {
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
      python3 -m venv "$venv"
    }
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$version"
fi

# A user of our own for the authenticated paths (registrations from this machine are not
# throttled per address).
user="st_$(date +%s)_$$"
token=$(curl -sf -X POST "$url/api/v1/auth/register" -H 'content-type: application/json' \
  -d "{\"username\":\"${user:0:32}\",\"password\":\"schemathesis-pass\"}" |
  "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

report=$(mktemp -d)
trap 'rm -rf "$report"' EXIT
# Run inside the scratch directory: schemathesis keeps its replay data in ./.schemathesis.
cd "$report"
"$venv/bin/st" run "$url/api/v1/openapi.json" \
  --checks all \
  --max-examples "${ST_EXAMPLES:-100}" \
  --generation-deterministic \
  --request-timeout 10 \
  --workers 1 \
  --no-color \
  -H "Authorization: Bearer $token"
