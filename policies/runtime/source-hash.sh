#!/usr/bin/env bash
# The runtime's source hash: SHA-256 over "<path>\n<sha256 of file>\n" for every input of the
# build, in byte order of path. The Rust test computes the same (policy-compiler, wasm.rs).
set -euo pipefail
cd "$(dirname "$0")"
for f in $(ls Cargo.toml Cargo.lock build.sh src/*.rs | LC_ALL=C sort); do
  printf '%s\n%s\n' "$f" "$(sha256sum "$f" | cut -d' ' -f1)"
done | sha256sum | cut -d' ' -f1
