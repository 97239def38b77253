#!/usr/bin/env bash
# What the metrics cost, run on purpose (not part of the tests): the brokered request of
# bench-exchange.sh against a broker without the admin listener, then against one with it (its
# requests counted and timed, /metrics scraped during the load), each round beside nginx as
# the yardstick that takes the machine's drift out. The cost is how much the broker/nginx ratio
# falls with metrics (goal of issue 21: under 2 %). On a machine whose rounds drift by more than
# that, the ratios cannot show it: the script then measures what the metrics add to a request
# in-process (examples/metrics_bench.rs, the member listener's routes and wrapper) and sets that
# beside the broker's CPU time a request measured here.
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
[ -n "${BENCH_NO_BUILD:-}" ] || cargo build --profile production -q -p broker --example metrics_bench
load() { "$loadgen" "$1" --ca "$pki/ca/ca.crt" --cert "$pki/heidenheim-system.crt" --key "$pki/heidenheim-system.key" --connections "$conns" --seconds "$secs"; }

# `variant LABEL ROUND`: the demo as the environment configures it, one round beside nginx. The
# two variants take turns round by round, so that the machine's drift falls on both alike.
variant() {
  local label=$1 round=$2
  rm -rf "$work/demo"
  bench_demo 8543 --requests-per-second 1000000
  bench_unlimited_policy 8543
  # Each demo has a PKI and a provider of its own: nginx is started again beside it.
  if [ -f "$work/nginx.pid" ]; then
    kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -f "$work/nginx.pid" ] || break; sleep 0.1; done
    rm -f "$work/nginx.pid"
  fi
  bench_nginx 9543
  {
    if [ "$label" = metrics ]; then
      (sleep "$(( secs / 2 ))"; curl -sS http://127.0.0.1:9464/metrics >"$work/scrape-$round.txt") &
    fi
    # The broker's CPU time over the round (user + system clock ticks): a cost per request that
    # a noisy neighbour taking the cores away does not move the way it moves throughput.
    cpu0=$(awk '{print $14 + $15}' "/proc/$demo_pid/stat")
    brokered=$(load "$(bench_url 8543)")
    cpu1=$(awk '{print $14 + $15}' "/proc/$demo_pid/stat")
    proxy=$(load 'https://127.0.0.1:9543/')
    echo "$label round $round broker: $brokered"
    echo "$label $(( cpu1 - cpu0 )) $brokered $proxy" >>"$work/runs"
  }
  kill "$demo_pid"
  wait "$demo_pid" 2>/dev/null || true
}

: >"$work/runs"
for round in $(seq 1 "$rounds"); do
  variant plain "$round"
  BROKER__ADMIN__LISTEN=127.0.0.1:9464 variant metrics "$round"
done
echo "scraped during the load (last round):"
grep -E '^kdr_http_requests_total\{route="/v1/datasets/\{id\}/data"|^kdr_decisions_total|^kdr_audit_write_seconds_(count|sum)|^kdr_audit_batch_records_(count|sum)' "$work/scrape-$rounds.txt" || true
echo "the metrics alone, in-process (examples/metrics_bench.rs):"
# METRICS_BENCH_BIN: another build of it (a debug build's broker code is unoptimised: it
# overstates what the metrics add, an upper bound).
"${METRICS_BENCH_BIN:-$CARGO_TARGET_DIR/production/examples/metrics_bench}" | tee "$work/alone.json"
python3 - "$work/runs" "$work/alone.json" <<'PY'
import json, statistics, sys
import os
tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
ratios, cpu = {}, {}
for line in open(sys.argv[1]):
    label, ticks, rest = line.split(maxsplit=2)
    b, n = json.JSONDecoder().raw_decode(rest)[0], json.loads(rest[json.JSONDecoder().raw_decode(rest)[1]:])
    ratios.setdefault(label, []).append(b["rps"] / n["rps"])
    per_request = int(ticks) * tick_ms * 1000 / max(b["ok"], 1)
    cpu.setdefault(label, []).append(per_request)
    print(f"{label}: broker {b['rps']:.0f} req/s (p99 {b['p99_ms']:.2f} ms), nginx {n['rps']:.0f} req/s, "
          f"ratio {b['rps'] / n['rps']:.3f}; broker CPU {per_request:.1f} µs a request")
plain, metrics = statistics.median(ratios["plain"]), statistics.median(ratios["metrics"])
print(f"median broker/nginx ratio: without metrics {plain:.3f}, with metrics {metrics:.3f}; "
      f"cost of metrics {100 * (1 - metrics / plain):.1f} %")
plain, metrics = statistics.median(cpu["plain"]), statistics.median(cpu["metrics"])
print(f"median broker CPU a request: without metrics {plain:.1f} µs, with metrics {metrics:.1f} µs; "
      f"cost of metrics {100 * (metrics / plain - 1):.1f} %")
alone = json.load(open(sys.argv[2]))
print(f"the metrics add {alone['added_ns']:.0f} ns to a request in-process ({alone['without_ns']:.0f} -> "
      f"{alone['with_ns']:.0f} ns); beside the {plain:.1f} µs of CPU a brokered request takes without "
      f"them: {100 * alone['added_ns'] / 1000 / plain:.2f} %")
PY
