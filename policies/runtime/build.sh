#!/usr/bin/env bash
# Rebuilds the committed policy runtime (kdr-policy-runtime.wasm) from src/ and records the
# source hash that the test `runtime_wasm_matches_its_source` checks.
# Needs: rustup target add wasm32-unknown-unknown
set -euo pipefail
cd "$(dirname "$0")"
here=$(pwd)
export CARGO_TARGET_DIR="${RUNTIME_TARGET_DIR:-$here/target}"
# --import-memory: opa-wasm creates the memory from the module's `env.memory` import.
# A 64 KiB stack: the runtime recurses only in the JSON parser, which caps nesting depth.
# --remap-path-prefix: the same bytes wherever the checkout lives.
export RUSTFLAGS="-C link-arg=--import-memory -C link-arg=-zstack-size=65536 --remap-path-prefix=$here=runtime"
cargo build --release --locked --target wasm32-unknown-unknown
cp "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/kdr_policy_runtime.wasm" kdr-policy-runtime.wasm
{
  echo "source $(./source-hash.sh)"
  echo "wasm $(sha256sum kdr-policy-runtime.wasm | cut -d' ' -f1)"
  echo "rustc $(rustc --version)"
} > kdr-policy-runtime.wasm.sha256
cat kdr-policy-runtime.wasm.sha256
