#!/usr/bin/env bash
# The whole check: formatting, clippy with warnings as errors, and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prereqs.sh
ensure_prereqs
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The browser tests (tests/integration/browser.rs) start Chromium, which takes the CPU that the
# timing-sensitive tests (hostile load, 200 concurrent requests) measure on two cores: they run
# on their own, after the rest.
cargo test --workspace --locked -- --skip browser:: 2>&1 | tee "$log"
cargo test --workspace --locked --test integration -- browser:: 2>&1 | tee -a "$log"
# One closing line over all test binaries.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
# The served OpenAPI document: valid, and schemathesis finds nothing against the demo.
bash scripts/api-check.sh
# A short fuzzing run of everything a member or a provider sends (longer: scripts/fuzz.sh).
# cargo-fuzz needs the nightly toolchain; without one the run is skipped and says so.
if rustup run nightly rustc --version >/dev/null 2>&1; then
  bash scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
else
  echo "fuzz: SKIPPED, no nightly toolchain (rustup toolchain install nightly)" >&2
fi
