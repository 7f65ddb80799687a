#!/usr/bin/env bash
# A function's CloudWatch Logs: count its log streams (one per execution environment), list them, tail them, or
# count cold starts from its REPORT lines. Works on AWS and against the local cloud (AWS_ENDPOINT_URL).
#   scripts/logs.sh count   [base|provisioned|consumer|FUNCTION]   # number of log streams = environments started
#   scripts/logs.sh streams [FUNCTION]                             # streams, most recent event first
#   scripts/logs.sh tail    [FUNCTION] [--follow]                  # `aws logs tail` (CLI v2); v1: filter-log-events
#   scripts/logs.sh cold    [FUNCTION]                             # REPORT lines: invocations and cold starts
# SINCE (default 1h) bounds tail and cold: 30m, 2h, 1d.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
require_tool aws "install the AWS CLI"
require_tool jq "install jq"

COMMAND="${1:-}"
TARGET="${2:-base}"
SINCE="${SINCE:-1h}"
case "$COMMAND" in count | streams | tail | cold) ;; *) die "usage: scripts/logs.sh count|streams|tail|cold [FUNCTION]" ;; esac
case "$TARGET" in
  base) FUNCTION="$(stack_output ConcurrencyTestFunctionName)" ;;
  provisioned) FUNCTION="$(stack_output ProvisionedConcurrencyTestFunctionName)" ;;
  consumer) FUNCTION="$(stack_output QueueConsumerFunctionName)" ;;
  *) FUNCTION="$TARGET" ;;
esac
GROUP="/aws/lambda/$FUNCTION"

since_ms() {
  local amount=${SINCE%[mhd]} unit=${SINCE: -1} seconds
  [[ $amount =~ ^[0-9]+$ ]] || die "SINCE must look like 30m, 2h or 1d (got '$SINCE')"
  case "$unit" in m) seconds=$((amount * 60)) ;; h) seconds=$((amount * 3600)) ;; d) seconds=$((amount * 86400)) ;; *) die "SINCE must end in m, h or d" ;; esac
  echo $((($(date +%s) - seconds) * 1000))
}

case "$COMMAND" in
  count)
    aws logs describe-log-streams --log-group-name "$GROUP" --output json | jq '.logStreams | length'
    ;;
  streams)
    aws logs describe-log-streams --log-group-name "$GROUP" --order-by LastEventTime --descending --output json |
      jq -r '.logStreams[] | "\(.logStreamName)\t\(.lastEventTimestamp // "-")"'
    ;;
  tail)
    if aws logs tail help >/dev/null 2>&1; then
      aws logs tail "$GROUP" --since "$SINCE" "${@:3}"
    else # AWS CLI v1 has no `logs tail`
      aws logs filter-log-events --log-group-name "$GROUP" --start-time "$(since_ms)" --output json |
        jq -r '.events[] | "\(.logStreamName) \(.message | rtrimstr("\n"))"'
    fi
    ;;
  cold)
    aws logs filter-log-events --log-group-name "$GROUP" --start-time "$(since_ms)" \
      --filter-pattern '"REPORT RequestId"' --output json |
      jq -r '[.events[].message] | "invocations \(length)\ncold starts \(map(select(test("Init Duration"))) | length)"'
    ;;
esac
