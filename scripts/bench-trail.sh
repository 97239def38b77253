#!/usr/bin/env bash
# Benchmark, run on purpose (not part of the tests): the broker's memory while its audit trail
# grows to a million decision records and the reports are asked for throughout. Reports are read
# from the tally, not the trail, so memory should stay flat (issue 18: within 50 MB from 10k to
# 1M records), and a report should cost the same at the end as at the start.
#
#   bash scripts/bench-trail.sh [records]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
target=${1:-1000000}
bench_setup loadgen
bench_demo 8643 --requests-per-second 1000000
bpid=$demo_pid
bench_unlimited_policy 8643
url=$(bench_url 8643)
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
printf '%10s %8s %12s\n' "$(records)" "$(rss_mib)" "$(report_ms)"
# A short first step (about 10,000 records), then steps of 20 s.
step=1
while :; do
  "$loadgen" "$url" --ca "$pki/ca/ca.crt" --cert "$pki/heidenheim-system.crt" --key "$pki/heidenheim-system.key" \
    --connections 16 --seconds "$step" >/dev/null
  step=20
  n=$(records)
  printf '%10s %8s %12s\n' "$n" "$(rss_mib)" "$(report_ms)"
  [ "$n" -ge "$target" ] && break
done
