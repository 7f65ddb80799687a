#!/usr/bin/env bash
# Send a matching and a non-matching message; only the first reaches the function, and the queue empties (Lambda
# deletes what its filters leave out).
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "$0")/../common.sh"
work="$(output WorkUrl)"
aws sqs send-message "${ENDPOINT[@]}" --queue-url "$work" --message-body '{"kind": "order", "id": "wanted"}' >/dev/null
aws sqs send-message "${ENDPOINT[@]}" --queue-url "$work" --message-body '{"kind": "refund", "id": "filtered"}' >/dev/null
bodies="$(observed 12 2)"
grep -q 'wanted' <<<"$bodies" || fail "the matching message did not arrive"
if grep -q 'filtered' <<<"$bodies"; then fail "the filter let the other message through"; fi
for _ in $(seq 1 30); do
  left="$(aws sqs get-queue-attributes "${ENDPOINT[@]}" --queue-url "$work" \
    --attribute-names ApproximateNumberOfMessages ApproximateNumberOfMessagesNotVisible \
    --query 'Attributes.[ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible]' --output text)"
  [[ "$left" == $'0\t0' ]] && { echo "ok: sqs-filter"; exit 0; }
  sleep 1
done
fail "the filtered-out message was left in the queue ($left)"
