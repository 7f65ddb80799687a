#!/usr/bin/env bash
# Invoke a concurrency test function COUNT times in parallel and summarise status codes, throttles and durations.
#
#   scripts/invoke.sh [base|provisioned|FUNCTION]     (default: base)
#   COUNT=20 PARALLEL=20 TYPE=RequestResponse|Event PAYLOAD=events/invoke-default.json QUALIFIER=live
#   AWS_MAX_ATTEMPTS=1 (no CLI retries: every throttle is counted)
#
# RequestResponse shows cold starts directly (the payload says cold_start and init_duration_ms); Event calls
# return 202 at once and queue inside Lambda, so throttling shows up as delay, not as errors.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

TARGET="${1:-base}"
COUNT="${COUNT:-10}"
PARALLEL="${PARALLEL:-$COUNT}"
TYPE="${TYPE:-RequestResponse}"
PAYLOAD="${PAYLOAD:-$LAB_ROOT/events/invoke-default.json}"
QUALIFIER="${QUALIFIER:-live}"
CALL_TIMEOUT="${CALL_TIMEOUT:-120}"
# One attempt per call, so a throttle shows as a 429 instead of being hidden by the CLI's own retries.
export AWS_MAX_ATTEMPTS="${AWS_MAX_ATTEMPTS:-1}"

positive_int COUNT "$COUNT"
positive_int PARALLEL "$PARALLEL"
positive_int CALL_TIMEOUT "$CALL_TIMEOUT"
[[ $TYPE == "RequestResponse" || $TYPE == "Event" ]] || die "TYPE must be RequestResponse or Event, got '$TYPE'"
[[ -f $PAYLOAD ]] || die "payload file '$PAYLOAD' not found"
require_tool aws "install the AWS CLI, or run 'make venv' for the project's copy"
require_tool jq "https://jqlang.github.io/jq/download/"
require_tool timeout "GNU coreutils"

case "$TARGET" in
  base) FUNCTION="$(stack_output ConcurrencyTestFunctionName)" ;;
  provisioned) FUNCTION="$(stack_output ProvisionedConcurrencyTestFunctionName)" ;;
  *) FUNCTION="$TARGET" ;;
esac

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

invoke_one() {
  local i=$1 started ended rc=0
  started=$(date +%s%N)
  timeout "$CALL_TIMEOUT" aws lambda invoke --function-name "$FUNCTION" --qualifier "$QUALIFIER" \
    --invocation-type "$TYPE" --payload "fileb://$PAYLOAD" --output json \
    "$WORK/$i.payload" >"$WORK/$i.meta" 2>"$WORK/$i.err" || rc=$?
  ended=$(date +%s%N)
  printf '%s %s\n' "$rc" "$(((ended - started) / 1000000))" >"$WORK/$i.result"
}

echo "invoking $FUNCTION:$QUALIFIER $COUNT times ($TYPE, at most $PARALLEL at once)"
for ((i = 1; i <= COUNT; i++)); do
  while (($(jobs -rp | wc -l) >= PARALLEL)); do
    wait -n || true
  done
  invoke_one "$i" &
done
wait

# One JSON line per call: status, client round trip, and the function's own report when there is one.
for ((i = 1; i <= COUNT; i++)); do
  read -r rc client_ms <"$WORK/$i.result"
  if [[ $rc == 0 ]]; then
    status=$(jq -r '.StatusCode // "?"' "$WORK/$i.meta")
    error=$(jq -r '.FunctionError // empty' "$WORK/$i.meta")
  elif grep -q "TooManyRequestsException" "$WORK/$i.err"; then
    status=429 error=""
  elif [[ $rc == 124 ]]; then
    status=timeout error="no answer within ${CALL_TIMEOUT}s"
  else
    status=error error=$(tr '\n' ' ' <"$WORK/$i.err")
  fi
  report='{}'
  if [[ -s $WORK/$i.payload ]] && jq -e 'type == "object"' "$WORK/$i.payload" >/dev/null 2>&1; then
    report=$(cat "$WORK/$i.payload")
  fi
  jq -nc --arg status "$status" --arg error "$error" --argjson client_ms "$client_ms" --argjson report "$report" \
    '{status: $status, error: $error, client_ms: $client_ms, report: $report}'
done >"$WORK/calls.jsonl"

jq -rs --arg type "$TYPE" '
  def stats(f): [.[] | f | select(. != null)] as $v
    | if ($v | length) == 0 then "n/a"
      else "min \($v | min | round) / avg \(($v | add / length) | round) / max \($v | max | round) ms" end;
  "status codes:     " + (group_by(.status) | map("\(.[0].status) x\(length)") | join(", ")),
  "throttled (429):  \(map(select(.status == "429")) | length)",
  "failed calls:     \(map(select(.error != "" and .status != "429")) | length)",
  "client round trip: " + stats(.client_ms),
  (if $type == "RequestResponse" then
    "cold starts:      \(map(select(.report.cold_start == true)) | length) of \(map(select(.report.cold_start != null)) | length) answered",
    "environments:     \(map(.report.environment_id // empty) | unique | length)",
    "init types:       " + (map(.report.initialization_type // empty) | group_by(.) | map("\(.[0]) x\(length)") | join(", ")),
    "INIT (cold only): " + stats(select(.report.cold_start == true) | .report.init_duration_ms),
    "handler:          " + stats(.report.handler_duration_ms)
  else empty end)
' "$WORK/calls.jsonl"

first_error=$(jq -r 'select(.status != "200" and .status != "202" and .status != "429") | .error' "$WORK/calls.jsonl" | head -1)
if [[ -n $first_error ]]; then
  echo "first error: $first_error" >&2
fi
