#!/usr/bin/env bash
# What the metrics cost, run on purpose (not part of the tests): the brokered request of
# bench-exchange.sh against a broker without the admin listener, then against one with it (its
# requests counted and timed, /metrics scraped during the load), each round beside nginx as
# the yardstick that takes the machine's drift out. The cost is how much the broker/nginx ratio
# falls with metrics (goal of issue 21: under 2 %).
#
#   bash scripts/bench-metrics.sh [connections] [seconds] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
conns=${1:-16}
secs=${2:-15}
rounds=${3:-3}
command -v nginx >/dev/null || { echo "bench-metrics: needs nginx (apt-get install -y nginx-light)" >&2; exit 1; }
bench_setup loadgen
load() { "$loadgen" "$1" --ca "$pki/ca/ca.crt" --cert "$pki/heidenheim-system.crt" --key "$pki/heidenheim-system.key" --connections "$conns" --seconds "$secs"; }

# `variant LABEL`: the demo as the environment configures it, rounds beside nginx.
variant() {
  local label=$1
  rm -rf "$work/demo"
  bench_demo 8543 --requests-per-second 1000000
  bench_unlimited_policy 8543
  [ -f "$work/nginx.pid" ] || bench_nginx 9543
  for round in $(seq 1 "$rounds"); do
    if [ "$label" = metrics ]; then
      (sleep "$(( secs / 2 ))"; curl -sS http://127.0.0.1:9464/metrics >"$work/scrape-$round.txt") &
    fi
    brokered=$(load "$(bench_url 8543)")
    proxy=$(load 'https://127.0.0.1:9543/')
    echo "$label round $round broker: $brokered"
    echo "$label $brokered $proxy" >>"$work/runs"
  done
  kill "$demo_pid"
  wait "$demo_pid" 2>/dev/null || true
}

: >"$work/runs"
variant plain
BROKER__ADMIN__LISTEN=127.0.0.1:9464 variant metrics
echo "scraped during the load (last round):"
grep -E '^kdr_http_requests_total\{route="/v1/datasets/\{id\}/data"|^kdr_decisions_total|^kdr_audit_write_seconds_(count|sum)|^kdr_audit_batch_records_(count|sum)' "$work/scrape-$rounds.txt" || true
python3 - "$work/runs" <<'PY'
import json, statistics, sys
ratios = {}
for line in open(sys.argv[1]):
    label, b, n = line.split(maxsplit=2)
    b, n = json.loads(b), json.loads(n)
    ratios.setdefault(label, []).append(b["rps"] / n["rps"])
    print(f"{label}: broker {b['rps']:.0f} req/s (p99 {b['p99_ms']:.2f} ms), nginx {n['rps']:.0f} req/s, ratio {b['rps'] / n['rps']:.3f}")
plain, metrics = statistics.median(ratios["plain"]), statistics.median(ratios["metrics"])
print(f"median broker/nginx ratio: without metrics {plain:.3f}, with metrics {metrics:.3f}; "
      f"cost of metrics {100 * (1 - metrics / plain):.1f} %")
PY
