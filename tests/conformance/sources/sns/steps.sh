#!/usr/bin/env bash
# Publish two messages; only the one the filter policy accepts reaches the function, in SNS's event shape.
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "$0")/../common.sh"
topic="$(output TopicArn)"
aws sns publish --topic-arn "$topic" --message "wanted" --message-attributes '{"kind": {"DataType": "String", "StringValue": "order"}}' >/dev/null
aws sns publish --topic-arn "$topic" --message "filtered" --message-attributes '{"kind": {"DataType": "String", "StringValue": "refund"}}' >/dev/null
bodies="$(observed 12 2)"
grep -q '"EventSource": "aws:sns"' <<<"$bodies" || fail "no SNS event arrived"
grep -q '"Message": "wanted"' <<<"$bodies" || fail "the matching message did not arrive"
if grep -q '"Message": "filtered"' <<<"$bodies"; then fail "the filter policy let the other message through"; fi
echo "ok: sns"
