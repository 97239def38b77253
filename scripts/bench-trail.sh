#!/usr/bin/env bash
# Benchmark, run on purpose (not part of the tests): the broker's memory while its audit trail
# grows to a million decision records and the reports are asked for throughout. Reports are read
# from the tally, not the trail, so memory should stay flat (issue 18: within 50 MB from 10k to
# 1M records), and a report should cost the same at the end as at the start.
#
#   bash scripts/bench-trail.sh [records]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prereqs.sh
ensure_prereqs
target=${1:-1000000}
cargo build --profile production -q -p broker --bin broker --example loadgen
broker="$CARGO_TARGET_DIR/production/broker"
loadgen="$CARGO_TARGET_DIR/production/examples/loadgen"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
"$broker" demo --dir "$work/demo" --listen 127.0.0.1:8643 --requests-per-second 1000000 >"$work/demo.log" 2>&1 &
bpid=$!
pids+=($bpid)
for _ in $(seq 1 120); do grep -q "Two cross-city" "$work/demo.log" && break; sleep 0.5; done
pki="$work/demo/pki"
as() { local who=$1; shift; curl -sS --cacert "$pki/ca/ca.crt" --cert "$pki/$who.crt" --key "$pki/$who.key" "$@"; }
sed 's/"100"\^\^xsd:integer/"1000000000"^^xsd:integer/' policies/examples/aalen-buergerbuero-termine.ttl >"$work/policy.ttl"
versions=https://127.0.0.1:8643/v1/datasets/aalen-buergerbuero-termine/policy/versions
n=$(as aalen-steward -X POST -H 'Content-Type: text/turtle' --data-binary @"$work/policy.ttl" "$versions" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
as aalen-board -X POST "$versions/$n/approve" >/dev/null
url='https://127.0.0.1:8643/v1/datasets/aalen-buergerbuero-termine/data?purpose=https://w3id.org/dpv%23ImprovePublicServices'
records() { grep -c '"type":"decision"' "$work/demo/data/audit.jsonl" 2>/dev/null || echo 0; }
rss_mib() { awk '$1 == "VmRSS:" { printf "%d", $2 / 1024 }' "/proc/$bpid/status"; }
report_ms() {
  local start end
  start=$(date +%s%N)
  as aalen-board -o /dev/null "https://127.0.0.1:8643/v1/reports/usage?bucket=month"
  as aalen-board -o /dev/null "https://127.0.0.1:8643/v1/reports/processing"
  curl -sS -o /dev/null --cacert "$pki/ca/ca.crt" https://127.0.0.1:8644/transparency
  end=$(date +%s%N)
  echo $(( (end - start) / 1000000 ))
}
printf '%10s %8s %12s\n' records "RSS MiB" "reports ms"
while :; do
  "$loadgen" "$url" --ca "$pki/ca/ca.crt" --cert "$pki/heidenheim-system.crt" --key "$pki/heidenheim-system.key" \
    --connections 16 --seconds 20 >/dev/null
  n=$(records)
  printf '%10s %8s %12s\n' "$n" "$(rss_mib)" "$(report_ms)"
  [ "$n" -ge "$target" ] && break
done
