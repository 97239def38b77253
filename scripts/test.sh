#!/usr/bin/env bash
# The whole check: formatting, clippy with warnings as errors, and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prereqs.sh
ensure_prereqs
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
