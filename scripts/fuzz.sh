#!/usr/bin/env bash
# Fuzzes everything a member or a provider sends the broker, with libFuzzer (cargo fuzz):
# policies in Turtle and JSON-LD through the submission checks and the Wasm compiler, the Wasm
# runtime's JSON reader, providers' JSON and CSV through enforcement, dataset descriptions
# through the schema and the graph.
#
#   bash scripts/fuzz.sh [seconds per target] [target ...]
#
# Needs the nightly toolchain (rustup toolchain install nightly) and cargo-fuzz, which it
# installs if missing. The corpus starts from the project's own examples and grows in
# ~/.cache/broker-fuzz/corpus; a crash leaves its input in fuzz/artifacts/<target>/ and fails.
# A fixed crash's input goes to fuzz/regressions/<target>/, which every run replays.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(policy_turtle policy_jsonld runtime_json provider_data dataset_json)
rustup run nightly rustc --version >/dev/null 2>&1 || { echo "fuzz: needs the nightly toolchain (rustup toolchain install nightly)" >&2; exit 1; }
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/broker-fuzz-target}"
corpus_root="${FUZZ_CORPUS:-$HOME/.cache/broker-fuzz/corpus}"

seed() {
  local dir="$corpus_root/$1"; shift
  mkdir -p "$dir"
  for f in "$@"; do [ -f "$f" ] && cp -n "$f" "$dir/" 2>/dev/null || true; done
}
seed policy_turtle policies/examples/*.ttl
seed policy_jsonld policies/examples/*.jsonld
seed runtime_json policies/examples/input-*.json
seed dataset_json examples/datasets/*.json
# Inputs that once failed, kept so every run replays them first.
for d in fuzz/regressions/*/; do seed "$(basename "$d")" "$d"*; done
mkdir -p "$corpus_root/provider_data"
for f in examples/providers/*; do
  case "$f" in
    *.json) { printf '\0'; cat "$f"; } >"$corpus_root/provider_data/$(basename "$f")" ;;
    *.csv) { printf '\1'; cat "$f"; } >"$corpus_root/provider_data/$(basename "$f")" ;;
  esac
done

status=0
for t in "${targets[@]}"; do
  echo "fuzz: $t for ${secs}s"
  log=$(mktemp)
  # No sanitizer: the code under test has no `unsafe`; libFuzzer finds its panics, overflows
  # and hangs without one, at a fraction of the build time (RocksDB is not in these targets).
  if cargo +nightly fuzz run --sanitizer none --fuzz-dir fuzz "$t" "$corpus_root/$t" -- \
       -max_total_time="$secs" -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    echo "fuzz: $t: $runs executions, no crash"
  else
    status=1
    echo "fuzz: $t FAILED" >&2
    tail -n 60 "$log" >&2
  fi
  rm -f "$log"
done
exit $status
