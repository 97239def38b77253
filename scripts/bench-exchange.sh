#!/usr/bin/env bash
# Load benchmark, run on purpose (not part of the tests): brokered requests per second and
# p50/p99 latency for a small permitted request, beside nginx doing only mutual TLS and
# reverse-proxying the same provider, in one run, with the same load generator.
#
#   bash scripts/bench-exchange.sh [connections] [seconds] [rounds]
#
# Needs nginx (as root: apt-get install -y nginx-light). Builds the broker with the production
# profile, as it is deployed (link-time optimised; nginx is an optimised build too), and the load
# generator, the same instrument for both servers, with the same profile (one build of the
# dependencies, about as long as the first test build); later runs relink, which with link-time
# optimisation takes several minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
conns=${1:-16}
secs=${2:-15}
rounds=${3:-3}
command -v nginx >/dev/null || { echo "bench-exchange: needs nginx (apt-get install -y nginx-light)" >&2; exit 1; }
# BROKER_BIN measures another build (say, the main a change started from) with the same script;
# DEMO_ARGS replaces the demo's extra arguments (an older broker does not know them).
bench_setup loadgen
# The demo's members may make 1000 requests a second each; the load generator is one member.
# shellcheck disable=SC2086
bench_demo 8543 ${DEMO_ARGS---requests-per-second 1000000}
bench_unlimited_policy 8543

bench_nginx 9543

load() { "$loadgen" "$1" --ca "$pki/ca/ca.crt" --cert "$pki/heidenheim-system.crt" --key "$pki/heidenheim-system.key" --connections "$conns" --seconds "$secs"; }
# Rounds of one broker run then one nginx run: on a shared (virtual) machine the speed drifts
# between minutes, so each ratio compares neighbours in time, and the median ratio is the figure.
: >"$work/runs"
for round in $(seq 1 "$rounds"); do
  brokered=$(load "$(bench_url 8543)")
  proxy=$(load 'https://127.0.0.1:9543/')
  echo "round $round broker: $brokered"
  echo "round $round nginx:  $proxy"
  echo "$brokered $proxy" >>"$work/runs"
done
python3 - "$work/runs" <<'PY'
import json, statistics, sys
pairs = [[json.loads(x) for x in line.split()] for line in open(sys.argv[1])]
for b, n in pairs:
    print(f"broker/nginx throughput ratio: {b['rps'] / n['rps']:.2f} "
          f"(broker {b['rps']:.0f} req/s, p50 {b['p50_ms']:.2f} ms, p99 {b['p99_ms']:.2f} ms; "
          f"nginx {n['rps']:.0f} req/s, p50 {n['p50_ms']:.2f} ms, p99 {n['p99_ms']:.2f} ms)")
ratios = [b['rps'] / n['rps'] for b, n in pairs]
print(f"median ratio over {len(ratios)} rounds: {statistics.median(ratios):.2f} "
      f"(min {min(ratios):.2f}, max {max(ratios):.2f})")
PY
