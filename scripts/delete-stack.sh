#!/usr/bin/env bash
# Delete the lab's stack and the Lambda log groups its functions created (not part of the stack).
#
#   scripts/delete-stack.sh [--yes]      (STACK_NAME=lambda-concurrency-lab; WAIT_TIMEOUT=1800 s)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

WAIT_TIMEOUT="${WAIT_TIMEOUT:-1800}"
POLL="${POLL:-10}"
positive_int WAIT_TIMEOUT "$WAIT_TIMEOUT"
positive_int POLL "$POLL"
require_tool aws "install the AWS CLI, or run 'make venv' for the project's copy"

if [[ ${1:-} != "--yes" ]]; then
  read -r -p "Delete stack '$STACK_NAME' and its function log groups? Type the stack name to confirm: " answer
  [[ $answer == "$STACK_NAME" ]] || die "not confirmed; nothing deleted"
fi

# Read the function names first: they are gone with the stack.
functions=()
for key in ConcurrencyTestFunctionName ProvisionedConcurrencyTestFunctionName QueueConsumerFunctionName \
  ProductsReadFunctionName ProductsCreateFunctionName LatencyStandardFunctionName LatencyCustomFunctionName; do
  if name=$(stack_output "$key" 2>/dev/null); then
    functions+=("$name")
  fi
done

aws cloudformation delete-stack --stack-name "$STACK_NAME"
echo "deleting $STACK_NAME ..."
deadline=$((SECONDS + WAIT_TIMEOUT))
while true; do
  if ! status=$(aws cloudformation describe-stacks --stack-name "$STACK_NAME" \
    --query 'Stacks[0].StackStatus' --output text 2>/dev/null); then
    break # the stack no longer exists
  fi
  case "$status" in
    DELETE_COMPLETE) break ;;
    DELETE_FAILED) die "stack deletion failed; see: aws cloudformation describe-stack-events --stack-name $STACK_NAME" ;;
  esac
  ((SECONDS < deadline)) || die "stack still $status after ${WAIT_TIMEOUT}s"
  sleep "$POLL"
done
echo "stack $STACK_NAME deleted"

for name in "${functions[@]}"; do
  if aws logs delete-log-group --log-group-name "/aws/lambda/$name" 2>/dev/null; then
    echo "deleted log group /aws/lambda/$name"
  fi
done
