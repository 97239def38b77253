# Sourced by the benchmark scripts: the production build, a scratch directory that is removed
# with every process the script started, and the demo data space with a policy that lets the
# load generator's requests through (the example policy's monthly count limit of 100 raised).

source scripts/prereqs.sh

# Builds the broker (and, with `loadgen`, the load generator) with the production profile, as
# deployed, and sets $broker, $loadgen, $work and the cleanup.
bench_setup() {
  ensure_prereqs
  # BENCH_NO_BUILD=1 measures the binaries as they are (BROKER_BIN, and the load generator
  # already built): comparing builds of two commits without relinking between the runs.
  if [ -n "${BENCH_NO_BUILD:-}" ]; then
    :
  elif [ "${1:-}" = loadgen ]; then
    cargo build --profile production -q -p broker --bin broker --example loadgen
  else
    cargo build --profile production -q -p broker --bin broker
  fi
  broker="${BROKER_BIN:-$CARGO_TARGET_DIR/production/broker}"
  loadgen="$CARGO_TARGET_DIR/production/examples/loadgen"
  work=$(mktemp -d)
  pids=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}

# `as WHO curl-args…`: a request with the demo certificate WHO.
as() {
  local who=$1
  shift
  curl -sS --cacert "$pki/ca/ca.crt" --cert "$pki/$who.crt" --key "$pki/$who.key" "$@"
}

# `bench_demo PORT [demo arguments…]`: the demo data space with its broker on PORT (the public
# transparency listener on PORT+1, Aalen's provider on 9441), ready; sets $pki and $demo_pid.
bench_demo() {
  local port=$1
  shift
  "$broker" demo --dir "$work/demo" --listen "127.0.0.1:$port" "$@" >"$work/demo.log" 2>&1 &
  demo_pid=$!
  pids+=("$demo_pid")
  for _ in $(seq 1 120); do grep -q "Two cross-city" "$work/demo.log" && break; sleep 0.5; done
  grep -q "Two cross-city" "$work/demo.log" || { cat "$work/demo.log"; exit 1; }
  pki="$work/demo/pki"
}

# `bench_unlimited_policy PORT`: a version of the appointments' policy without a practical count
# limit, submitted by Aalen's steward and approved by Aalen's board member (four eyes).
bench_unlimited_policy() {
  local versions="https://127.0.0.1:$1/v1/datasets/aalen-buergerbuero-termine/policy/versions" n
  sed 's/"100"\^\^xsd:integer/"1000000000"^^xsd:integer/' policies/examples/aalen-buergerbuero-termine.ttl >"$work/policy.ttl"
  n=$(as aalen-steward -X POST -H 'Content-Type: text/turtle' --data-binary @"$work/policy.ttl" "$versions" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
  as aalen-board -X POST "$versions/$n/approve" >/dev/null
}

# The permitted request every load benchmark makes, as Heidenheim's system.
bench_url() {
  echo "https://127.0.0.1:$1/v1/datasets/aalen-buergerbuero-termine/data?purpose=https://w3id.org/dpv%23ImprovePublicServices"
}

# `bench_nginx PORT`: nginx doing only what the broker's transport does — mutual TLS with the
# same CA and server certificate, reverse-proxying the same provider over mutual TLS with the
# broker's client certificate, upstream connections kept alive — on PORT.
bench_nginx() {
  cat >"$work/nginx.conf" <<NGINX
  worker_processes 2;
  pid $work/nginx.pid;
  error_log $work/nginx-error.log warn;
  events { worker_connections 1024; }
  http {
    access_log off;
    upstream aalen { server 127.0.0.1:9441; keepalive 32; }
    server {
      listen 127.0.0.1:$1 ssl;
      ssl_protocols TLSv1.2 TLSv1.3;
      ssl_ciphers ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256;
      ssl_certificate $pki/broker.crt;
      ssl_certificate_key $pki/broker.key;
      ssl_client_certificate $pki/ca/ca.crt;
      ssl_verify_client on;
      location / {
        proxy_pass https://aalen/appointments;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_ssl_certificate $pki/broker.crt;
        proxy_ssl_certificate_key $pki/broker.key;
        proxy_ssl_trusted_certificate $pki/ca/ca.crt;
        proxy_ssl_verify on;
        proxy_ssl_name localhost;
        proxy_ssl_session_reuse on;
      }
    }
  }
NGINX
  nginx -c "$work/nginx.conf" -p "$work" -e "$work/nginx-error.log"
}
