#!/usr/bin/env bash
# Builds the broker and starts the demo data space (Aalen and Heidenheim) on https://127.0.0.1:8443.
# Extra arguments go to `broker demo` (e.g. --dir DIR --listen ADDR).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prereqs.sh
ensure_prereqs
cargo build -p broker --bin broker
exec "$CARGO_TARGET_DIR/debug/broker" demo "$@"
