#!/usr/bin/env bash
# Put 20 records on 4 partition keys; all arrive, each key's in the order it was put.
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "$0")/../common.sh"
stream="$(output StreamName)"
records="["
for n in $(seq 1 20); do
  data="$(printf '{"n": %d}' "$n" | base64 | tr -d '\n')"
  records+="{\"PartitionKey\": \"key-$((n % 4))\", \"Data\": \"$data\"},"
done
records="${records%,}]"
# AWS CLI v2 decodes base64 blobs; v1 sends them as they are: pass raw text for v1
if aws --version 2>&1 | grep -q '^aws-cli/1'; then
  records="$(python3 -c 'import base64,json,sys; r=json.loads(sys.argv[1]); [x.update(Data=base64.b64decode(x["Data"]).decode()) for x in r]; print(json.dumps(r))' "$records")"
fi
aws kinesis put-records --stream-name "$stream" --records "$records" >/dev/null
check() {
  python3 - "$1" <<'PY'
import base64, json, sys
seen = {}
for line in filter(str.strip, sys.argv[1].splitlines()):
    for record in json.loads(line)["Records"]:
        n = json.loads(base64.b64decode(record["kinesis"]["data"]))["n"]
        seen.setdefault(record["kinesis"]["partitionKey"], []).append(n)
assert sorted(n for ns in seen.values() for n in ns) == list(range(1, 21)), seen
assert all(ns == sorted(ns) for ns in seen.values()), seen
PY
}
bodies=""
for _ in $(seq 1 20); do
  bodies+="$(observed 3 100)"$'\n'
  if check "$bodies" 2>/dev/null; then echo "ok: kinesis"; exit 0; fi
done
check "$bodies" || fail "records missing or out of order per key"
