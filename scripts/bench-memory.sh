#!/usr/bin/env bash
# Memory benchmark, run on purpose (not part of the tests): the broker's peak resident memory
# above idle while it takes a 16 MiB hosted upload, enforces a policy on it, and enforces a
# policy on a 16 MiB provider answer. The peak is the kernel's (VmHWM), reset before each step
# (/proc/PID/clear_refs), so each figure is that step alone.
#
#   bash scripts/bench-memory.sh [MiB]
#
# Builds the broker with the production profile (as deployed).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
mib=${1:-16}
bench_setup
"$broker" pki testbed --dir "$work/pki" >/dev/null
pki="$work/pki"
# Records of about 160 bytes, in JSON for the provider and CSV for the upload, just under the limit.
python3 - "$work" "$mib" <<'PY'
import json, sys
work, mib = sys.argv[1], int(sys.argv[2])
limit = mib * 1024 * 1024 - 4096
rows, size, i = [], 2, 0
while True:
    r = {"termin_id": f"A-{i:08d}", "name": f"Person Nummer {i}", "geburtsdatum": f"19{50 + i % 50}-0{1 + i % 9}-1{i % 10}",
         "bezirk": ["Innenstadt", "Unterkochen", "Wasseralfingen", "Hofen"][i % 4], "dienstleistung": "Personalausweis",
         "termin": f"2026-10-{1 + i % 28:02d}T10:00:00", "telefon": f"07361 {i:06d}"}
    s = len(json.dumps(r)) + 1
    if size + s > limit:
        break
    rows.append(r); size += s; i += 1
json.dump(rows, open(f"{work}/big.json", "w"))
with open(f"{work}/big.csv", "w") as f:
    f.write(",".join(rows[0].keys()) + "\n")
    for r in rows:
        f.write(",".join(str(v) for v in r.values()) + "\n")
print(f"{len(rows)} records", file=sys.stderr)
PY

cat >"$work/broker.toml" <<TOML
listen = "127.0.0.1:8743"
base_iri = "https://broker.kdr.example/"
[tls]
certificate = "pki/broker.crt"
private_key = "pki/broker.key"
client_ca = "pki/ca/ca.crt"
crl = "pki/ca/ca.crl"
[limits]
max_body_bytes = 65536
[[members]]
ags = "08136088"
organisation = "Stadt Aalen"
roles = ["system", "steward", "board"]
providers = ["https://127.0.0.1:9741"]
[[members]]
ags = "08135019"
organisation = "Stadt Heidenheim an der Brenz"
roles = ["system", "steward", "board"]
TOML
"$broker" example-provider --city aalen --listen 127.0.0.1:9741 --certificate "$pki/aalen-provider.crt" \
  --private-key "$pki/aalen-provider.key" --client-ca "$pki/ca/ca.crt" --crl "$pki/ca/ca.crl" \
  --resource "/big=application/json=$work/big.json" >"$work/provider.log" 2>&1 &
pids+=($!)
"$broker" serve --config "$work/broker.toml" >"$work/broker.log" 2>&1 &
bpid=$!
pids+=($bpid)
for _ in $(seq 1 100); do as aalen-system -o /dev/null https://127.0.0.1:8743/v1/whoami 2>/dev/null && break; sleep 0.2; done

base=https://127.0.0.1:8743/v1/datasets
dataset() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
d = json.load(open("examples/datasets/aalen-buergerbuero-termine.json"))
d["identifier"], d["distributions"] = sys.argv[1], [{"mediaType": sys.argv[2], "accessURL": sys.argv[3]}]
print(json.dumps(d))
PY
}
policy() {
  cat <<TTL
@prefix odrl: <http://www.w3.org/ns/odrl/2/> . @prefix dpv: <https://w3id.org/dpv#> . @prefix kdr: <https://w3id.org/kdr/odrl#> .
<urn:kdr:bench-$1> a odrl:Set ; odrl:permission [ odrl:target <https://broker.kdr.example/datasets/$1> ; odrl:action odrl:use ;
  odrl:constraint [ odrl:leftOperand odrl:purpose ; odrl:operator odrl:isA ; odrl:rightOperand dpv:ImprovePublicServices ] ;
  odrl:duty [ odrl:action kdr:minimise ; kdr:field "bezirk", "termin", "name" ] ,
            [ odrl:action kdr:pseudonymise ; kdr:field "name" ] ] .
TTL
}
for d in "bench-hosted text/csv hosted" "bench-api application/json https://127.0.0.1:9741/big"; do
  set -- $d
  dataset "$1" "$2" "$3" | as aalen-steward -o /dev/null -H 'Content-Type: application/json' --data-binary @- "$base"
  n=$(policy "$1" | as aalen-steward -H 'Content-Type: text/turtle' --data-binary @- "$base/$1/policy/versions" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
  as aalen-board -o /dev/null -X POST "$base/$1/policy/versions/$n/approve"
done

rss() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$bpid/status"; }
peak_of() {
  local what=$1; shift
  echo 5 >"/proc/$bpid/clear_refs"
  local idle; idle=$(rss VmRSS)
  "$@"
  local peak; peak=$(rss VmHWM)
  echo "$what: peak $(( (peak - idle) / 1024 )) MiB above $(( idle / 1024 )) MiB before it"
}
purpose="purpose=https://w3id.org/dpv%23ImprovePublicServices"
sleep 1
peak_of "upload of ${mib} MiB CSV (hosted)" as aalen-steward -o /dev/null -X PUT -H 'Content-Type: text/csv' --data-binary @"$work/big.csv" "$base/bench-hosted/hosted-data"
peak_of "release of the hosted ${mib} MiB (minimise, pseudonymise)" as heidenheim-system -o /dev/null "$base/bench-hosted/data?$purpose"
peak_of "release of a ${mib} MiB provider answer (JSON)" as heidenheim-system -o /dev/null "$base/bench-api/data?$purpose"
peak_of "the same as CSV" as heidenheim-system -o /dev/null -H 'Accept: text/csv' "$base/bench-api/data?$purpose"
