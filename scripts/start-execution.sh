#!/usr/bin/env bash
# Start a load-generator execution, wait for it (with a deadline) and print per-item durations.
#
#   scripts/start-execution.sh base|provisioned|base-distributed|provisioned-distributed [PAYLOAD]
#   PAYLOAD defaults to events/sample-test-input.json (150 entries); TIMEOUT=900 POLL=3 (seconds)
#
# Use the inline machines up to 40 parallel invokes; the -distributed ones for 150 and beyond.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

MACHINE="${1:-}"
PAYLOAD="${2:-$LAB_ROOT/events/sample-test-input.json}"
TIMEOUT="${TIMEOUT:-900}"
POLL="${POLL:-3}"

case "$MACHINE" in
  base) OUTPUT_KEY=BaseStateMachineArn ;;
  provisioned) OUTPUT_KEY=ProvisionedStateMachineArn ;;
  base-distributed) OUTPUT_KEY=BaseDistributedStateMachineArn ;;
  provisioned-distributed) OUTPUT_KEY=ProvisionedDistributedStateMachineArn ;;
  *) die "usage: $0 base|provisioned|base-distributed|provisioned-distributed [PAYLOAD]" ;;
esac
positive_int TIMEOUT "$TIMEOUT"
positive_int POLL "$POLL"
[[ -f $PAYLOAD ]] || die "payload file '$PAYLOAD' not found"
require_tool aws "install the AWS CLI, or run 'make venv' for the project's copy"
require_tool jq "https://jqlang.github.io/jq/download/"
jq -e '.entries | type == "array"' "$PAYLOAD" >/dev/null || die "'$PAYLOAD' needs an array 'entries'"

ARN="$(stack_output "$OUTPUT_KEY")"
EXECUTION="$(aws stepfunctions start-execution --state-machine-arn "$ARN" --input "file://$PAYLOAD" \
  --query executionArn --output text)"
echo "started $EXECUTION ($(jq '.entries | length' "$PAYLOAD") entries)"

deadline=$((SECONDS + TIMEOUT))
status=RUNNING
while [[ $status == "RUNNING" ]]; do
  if ((SECONDS >= deadline)); then
    die "execution still RUNNING after ${TIMEOUT}s: $EXECUTION (raise TIMEOUT or check the console)"
  fi
  sleep "$POLL"
  description="$(aws stepfunctions describe-execution --execution-arn "$EXECUTION" --output json)"
  status="$(jq -r .status <<<"$description")"
done

echo "status: $status"
if [[ $status != "SUCCEEDED" ]]; then
  jq -r '"error: \(.error // "?")\ncause: \(.cause // "?")"' <<<"$description" >&2
  exit 1
fi

started_ms=$(epoch_ms "$(jq -r .startDate <<<"$description")")
stopped_ms=$(epoch_ms "$(jq -r .stopDate <<<"$description")")
echo "execution took $(((stopped_ms - started_ms) / 1000)).$(printf '%03d' $(((stopped_ms - started_ms) % 1000))) s"

# The INIT wait counts only for on-demand cold starts; provisioned environments ran INIT before the traffic.
jq -r '
  def total: .handler_duration_ms + (if .cold_start and .initialization_type != "provisioned-concurrency"
    then .init_duration_ms else 0 end);
  def col($n): tostring | . + (" " * $n) | .[0:$n];
  .output | fromjson as $items
  | ("item  cold   init_type               environment  init_ms  handler_ms  total_ms"),
    ($items | to_entries[] | .key as $i | .value
      | "\($i + 1 | col(5)) \(.cold_start | col(6)) \(.initialization_type | col(23)) \(.environment_id[0:8] | col(12)) \(.init_duration_ms | round | col(8)) \(.handler_duration_ms | round | col(11)) \(total | round)"),
    "",
    "cold starts: \($items | map(select(.cold_start and .initialization_type != "provisioned-concurrency")) | length) of \($items | length); environments: \($items | map(.environment_id) | unique | length)",
    "per-item total ms: min \($items | map(total) | min | round) / avg \($items | map(total) | add / length | round) / max \($items | map(total) | max | round)"
' <<<"$description"
