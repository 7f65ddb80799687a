#!/usr/bin/env bash
# Send COUNT messages to the lab's work queue, 10 per SendMessageBatch call.
#
#   COUNT=20 SLEEP=0 FAIL_EVERY=0 scripts/send-messages.sh
#
# Each body is {"n": i, "sleep": SLEEP, "fail": true|false}: the consumer sleeps SLEEP seconds per message and
# reports every FAIL_EVERY-th message as a batch item failure (0 = none), so it returns to the queue and, after
# maxReceiveCount receives, lands in the dead-letter queue.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

COUNT="${COUNT:-20}"
SLEEP="${SLEEP:-0}"
FAIL_EVERY="${FAIL_EVERY:-0}"
BATCH=10

positive_int COUNT "$COUNT"
[[ $SLEEP =~ ^[0-9]+([.][0-9]+)?$ ]] || die "SLEEP must be a number of seconds, got '$SLEEP'"
[[ $FAIL_EVERY =~ ^[0-9]+$ ]] || die "FAIL_EVERY must be 0 or a positive integer, got '$FAIL_EVERY'"
require_tool aws "install the AWS CLI, or run 'make venv' for the project's copy"
require_tool jq "https://jqlang.github.io/jq/download/"

QUEUE_URL="$(stack_output WorkQueueUrl)"
sent=0
failed=0
for ((first = 1; first <= COUNT; first += BATCH)); do
  last=$((first + BATCH - 1 < COUNT ? first + BATCH - 1 : COUNT))
  entries=$(jq -nc --argjson first "$first" --argjson last "$last" --argjson sleep "$SLEEP" \
    --argjson every "$FAIL_EVERY" '
    [range($first; $last + 1) | {
      Id: "m\(.)",
      MessageBody: ({n: ., sleep: $sleep, fail: ($every > 0 and (. % $every) == 0)} | tojson)
    }]')
  result=$(aws sqs send-message-batch --queue-url "$QUEUE_URL" --entries "$entries" --output json)
  sent=$((sent + $(jq '.Successful // [] | length' <<<"$result")))
  failed=$((failed + $(jq '.Failed // [] | length' <<<"$result")))
done
echo "sent $sent of $COUNT messages to $QUEUE_URL ($failed rejected)"
echo "watch: aws logs tail /aws/lambda/$(stack_output QueueConsumerFunctionName) --since 5m --follow"
[[ $failed == 0 ]] || exit 1
