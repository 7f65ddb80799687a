#!/usr/bin/env bash
# Change reserved or provisioned concurrency of a lab function between experiments (the next deploy resets it).
#
#   scripts/set-concurrency.sh reserved    base|queue|products-read|FUNCTION  N|none
#   scripts/set-concurrency.sh provisioned provisioned|products-create|FUNCTION N|none   (alias QUALIFIER=live)
#
# Provisioned concurrency takes minutes to allocate; the script waits for READY (deadline WAIT_TIMEOUT=900 s).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

usage() {
  die "usage: $0 reserved|provisioned FUNCTION N|none"
}

[[ $# == 3 ]] || usage
KIND=$1 TARGET=$2 VALUE=$3
QUALIFIER="${QUALIFIER:-live}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-900}"
POLL="${POLL:-10}"
positive_int WAIT_TIMEOUT "$WAIT_TIMEOUT"
positive_int POLL "$POLL"
[[ $VALUE == "none" || $VALUE =~ ^[0-9]+$ ]] || die "N must be a whole number or 'none', got '$VALUE'"
require_tool aws "install the AWS CLI, or run 'make venv' for the project's copy"

case "$TARGET" in
  base) FUNCTION="$(stack_output ConcurrencyTestFunctionName)" ;;
  provisioned) FUNCTION="$(stack_output ProvisionedConcurrencyTestFunctionName)" ;;
  queue) FUNCTION="$(stack_output QueueConsumerFunctionName)" ;;
  products-read) FUNCTION="$(stack_output ProductsReadFunctionName)" ;;
  products-create) FUNCTION="$(stack_output ProductsCreateFunctionName)" ;;
  *) FUNCTION="$TARGET" ;;
esac

case "$KIND" in
  reserved)
    if [[ $VALUE == "none" ]]; then
      aws lambda delete-function-concurrency --function-name "$FUNCTION"
      echo "$FUNCTION: reserved concurrency removed (uses the unreserved pool)"
    else
      # Lambda refuses values that would leave less than 100 unreserved in the account.
      aws lambda put-function-concurrency --function-name "$FUNCTION" --reserved-concurrent-executions "$VALUE" \
        --output text --query ReservedConcurrentExecutions >/dev/null
      if [[ $VALUE == 0 ]]; then
        echo "$FUNCTION: reserved concurrency 0 (every call is throttled)"
      else
        echo "$FUNCTION: reserved concurrency $VALUE"
      fi
    fi
    ;;
  provisioned)
    if [[ $VALUE == "none" ]]; then
      aws lambda delete-provisioned-concurrency-config --function-name "$FUNCTION" --qualifier "$QUALIFIER"
      echo "$FUNCTION:$QUALIFIER: provisioned concurrency removed"
      exit 0
    fi
    positive_int N "$VALUE"
    aws lambda put-provisioned-concurrency-config --function-name "$FUNCTION" --qualifier "$QUALIFIER" \
      --provisioned-concurrent-executions "$VALUE" --output text --query Status >/dev/null
    deadline=$((SECONDS + WAIT_TIMEOUT))
    while true; do
      read -r status available reason < <(aws lambda get-provisioned-concurrency-config --function-name "$FUNCTION" \
        --qualifier "$QUALIFIER" --output text \
        --query '[Status, AvailableProvisionedConcurrentExecutions, StatusReason]')
      echo "$FUNCTION:$QUALIFIER: $status ($available of $VALUE ready)"
      case "$status" in
        READY) exit 0 ;;
        FAILED) die "provisioned concurrency failed: $reason" ;;
      esac
      ((SECONDS < deadline)) || die "still $status after ${WAIT_TIMEOUT}s waiting for $VALUE provisioned environments"
      sleep "$POLL"
    done
    ;;
  *) usage ;;
esac
