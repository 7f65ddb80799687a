#!/usr/bin/env bash
# Shared helpers for the lab's scripts (source it): stack name, stack outputs, required tools, clear errors.
# The AWS CLI reads AWS_PROFILE and AWS_REGION by itself; AWS_ENDPOINT_URL is passed on explicitly (see aws()).

LAB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_NAME="${STACK_NAME:-lambda-concurrency-lab}"
# A system-wide `aws` wins; the project's virtualenv is the fallback.
PATH="$PATH:$LAB_ROOT/.venv/bin"
export LAB_ROOT STACK_NAME PATH

# AWS CLI v1 sends SQS calls to the Region's queue endpoint whatever AWS_ENDPOINT_URL says; pass the endpoint
# explicitly so every call reaches a local cloud too. With AWS_ENDPOINT_URL unset (AWS itself) nothing is added.
aws() {
  if [[ -n ${AWS_ENDPOINT_URL:-} ]]; then
    command aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"
  else
    command aws "$@"
  fi
}

die() {
  echo "error: $*" >&2
  exit 1
}

require_tool() {
  local tool=$1 hint=$2
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not installed or not on PATH ($hint)"
}

# stack_output KEY: print the value of output KEY of $STACK_NAME, or fail saying what is missing.
stack_output() {
  local key=$1 value
  require_tool aws "install the AWS CLI, or run 'make venv' for the project's copy"
  if ! value=$(aws cloudformation describe-stacks --stack-name "$STACK_NAME" \
    --query "Stacks[0].Outputs[?OutputKey=='$key'].OutputValue" --output text); then
    die "cannot read stack '$STACK_NAME' (deployed? check AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, STACK_NAME)"
  fi
  if [[ -z $value || $value == "None" ]]; then
    die "stack '$STACK_NAME' has no output '$key' (deployed from this template.yaml?)"
  fi
  printf '%s\n' "$value"
}

# positive_int NAME VALUE: fail unless VALUE is a positive integer.
positive_int() {
  [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, got '$2'"
}

# Milliseconds since the epoch from a timestamp as the AWS CLI prints it: ISO 8601 (CLI v2, or v1 with
# cli_timestamp_format = iso8601) or epoch seconds (CLI v1's default).
epoch_ms() {
  local value=$1
  if [[ $value =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
    date -d "@$value" +%s%3N
  else
    date -d "$value" +%s%3N
  fi
}
