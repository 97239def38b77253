#!/usr/bin/env bash
# The served OpenAPI document against the running demo: openapi-spec-validator on the document,
# then schemathesis with all its checks and phases (configuration: tests/api/schemathesis.toml),
# as a steward of Heidenheim. Both come from PyPI, pinned (a new release must not change what
# passes) and installed if missing. Fails on any
# finding. Run by scripts/test.sh after the tests (it needs the debug broker they built).
#
#   bash scripts/api-check.sh [examples per operation]
#
# Each run draws new test cases (the seed is in the log), except under CI=true, where one fixed
# seed makes the check repeatable; API_CHECK_SEED=N replays a run.
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-30}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/broker-target}"
broker="$CARGO_TARGET_DIR/debug/broker"
[ -x "$broker" ] || cargo build -q -p broker --bin broker
python3 -c 'import schemathesis, openapi_spec_validator' 2>/dev/null && [ "$(schemathesis --version)" = "schemathesis, version 4.32.5" ] \
  || python3 -m pip install -q --disable-pip-version-check "openapi-spec-validator==0.9.0" "schemathesis==4.32.5" >&2
work=$(mktemp -d)
demo_pid=
cleanup() {
  [ -n "$demo_pid" ] && kill "$demo_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
"$broker" demo --dir "$work/demo" --listen 127.0.0.1:0 >"$work/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 1 120); do grep -q "Two cross-city" "$work/demo.log" && break; sleep 0.5; done
grep -q "Two cross-city" "$work/demo.log" || { cat "$work/demo.log"; exit 1; }
addr=$(grep -o 'running on https://[0-9.:]*' "$work/demo.log" | head -1 | sed 's|running on https://||')
pki="$work/demo/pki"
curl -sS --fail --cacert "$pki/ca/ca.crt" --cert "$pki/heidenheim-steward.crt" --key "$pki/heidenheim-steward.key" \
  "https://$addr/v1/openapi.json" >"$work/openapi.json"
python3 - "$work/openapi.json" <<'PY'
import json, sys
from openapi_spec_validator import validate
validate(json.load(open(sys.argv[1])))
print("api-check: the OpenAPI document is valid (openapi-spec-validator)")
PY
seed_args=()
if [ -n "${API_CHECK_SEED:-}" ]; then
  seed_args=(--seed "$API_CHECK_SEED")
elif [ "${CI:-}" = "true" ]; then
  seed_args=(--seed 20261202)
fi
if schemathesis --config-file tests/api/schemathesis.toml run "$work/openapi.json" --url "https://$addr" \
     --request-cert "$pki/heidenheim-steward.crt" --request-cert-key "$pki/heidenheim-steward.key" \
     --tls-verify "$pki/ca/ca.crt" --checks all -n "$examples" --workers 1 "${seed_args[@]}" >"$work/schemathesis.log" 2>&1; then
  echo "api-check: schemathesis: $(grep -Eo '[0-9]+ generated' "$work/schemathesis.log" | head -1) test cases, no failure"
else
  cat "$work/schemathesis.log"
  echo "api-check: schemathesis found failures" >&2
  exit 1
fi
