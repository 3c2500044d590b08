#!/usr/bin/env bash
# cargo-fuzz (libFuzzer) targets of fuzz/, each run for a bounded time; a crash (panic, failed
# assertion, timeout, out of memory) makes this exit non-zero and leaves the input in
# fuzz/artifacts/<target>/ (reproduce: cargo fuzz run --sanitizer none <target> <file>).
#   client_frame    client WebSocket frames: parse, the gateway's checks of a send, round trip
#   rest_body       REST request bodies; the OpenAPI patterns agree with the API's checks
#   history_cursor  history query parameters (before, after, limit)
# Stable Rust: no sanitizer (`--sanitizer none` needs no -Z flag; the code has no unsafe, so a
# crash is a panic, which libFuzzer catches as an abort), debug assertions on (-a: overflow
# checks). Each target starts from the committed seeds (fuzz/seeds/<target>) plus what earlier
# runs found (kept in the build dir).
#   FUZZ_SECONDS   seconds per target (default 30)
#   FUZZ_TARGETS   which targets (default: all three)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chat-target}/fuzz"
seconds="${FUZZ_SECONDS:-30}"
targets="${FUZZ_TARGETS:-client_frame rest_body history_cursor}"
version=0.13.2

if ! cargo fuzz --version 2>/dev/null | grep -qF "$version"; then
  cargo install --locked --version "$version" cargo-fuzz
fi

flags=(--sanitizer none --release --debug-assertions)
cargo fuzz build "${flags[@]}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in $targets; do
  corpus="$CARGO_TARGET_DIR/corpus/$t"
  mkdir -p "$corpus"
  echo "== fuzzing $t for ${seconds}s"
  if ! cargo fuzz run "${flags[@]}" "$t" "$corpus" "seeds/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz target $t crashed; the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
done
echo "fuzzing: no crash in $(wc -w <<<"$targets") targets (${seconds}s each)"
