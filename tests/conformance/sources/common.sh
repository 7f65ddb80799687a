#!/usr/bin/env bash
# Shared by the conformance steps: stack outputs, and waiting for what the function reported.
set -euo pipefail

STACK_NAME="${STACK_NAME:?set STACK_NAME to the deployed stack}"
ENDPOINT=()
if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then ENDPOINT=(--endpoint-url "$AWS_ENDPOINT_URL"); fi  # AWS CLI v1 and SQS

output() {
  aws cloudformation describe-stacks --stack-name "$STACK_NAME" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}

# observed SECONDS COUNT: print the bodies the function reported (one per line), once COUNT arrived or SECONDS passed
observed() {
  local deadline=$((SECONDS + $1)) want=$2 url got=() line
  url="$(output ObservedQueueUrl)"
  while ((SECONDS < deadline && ${#got[@]} < want)); do
    while IFS= read -r line; do
      [[ -n "$line" && "$line" != "None" ]] && got+=("$line")
    done < <(aws sqs receive-message "${ENDPOINT[@]}" --queue-url "$url" --max-number-of-messages 10 \
      --visibility-timeout 600 --wait-time-seconds 1 --query "Messages[].Body" --output text | tr '\t' '\n')
  done
  printf '%s\n' "${got[@]}"
}

fail() { echo "FAIL: $*" >&2; exit 1; }
