#!/usr/bin/env bash
# Put then update an item; the function sees INSERT then MODIFY, with the old and new images.
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "$0")/../common.sh"
table="$(output TableName)"
aws dynamodb put-item --table-name "$table" --item '{"id": {"S": "1"}, "status": {"S": "new"}}'  >/dev/null
aws dynamodb update-item --table-name "$table" --key '{"id": {"S": "1"}}' --update-expression "SET #s = :s" \
  --expression-attribute-names '{"#s": "status"}' --expression-attribute-values '{":s": {"S": "paid"}}'
bodies="$(observed 60 2)"
python3 - "$bodies" <<'PY' || fail "expected INSERT then MODIFY with both images"
import json, sys
records = [r for line in filter(str.strip, sys.argv[1].splitlines()) for r in json.loads(line)["Records"]]
assert [r["eventName"] for r in records][:2] == ["INSERT", "MODIFY"], records
assert records[1]["dynamodb"]["OldImage"]["status"] == {"S": "new"}
assert records[1]["dynamodb"]["NewImage"]["status"] == {"S": "paid"}
PY
echo "ok: dynamodb-streams"
