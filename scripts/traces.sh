#!/usr/bin/env bash
# The cold-start report for the lab's stack from X-Ray (or CloudWatch Logs): a table in the terminal and an HTML report.
#
#   scripts/traces.sh                      last hour, every function of $STACK_NAME (HTML: .lambdalab/traces-report.html)
#   scripts/traces.sh --logs               the same from the functions' REPORT lines: every call, not X-Ray's sample
#   scripts/traces.sh --since 30m --function lab-ColdStartFunction
#   scripts/traces.sh --execution arn:aws:states:...:execution:...   one Step Functions execution
#   HTML=report.html scripts/traces.sh --json > report.json
#
# Works against AWS (AWS_PROFILE / AWS_REGION) and the local cloud (eval "$(lambdalab env)") alike.
# Any flag of `lambdalab traces` can be added; `lambdalab traces --help` lists them.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

HTML="${HTML:-$LAB_ROOT/.lambdalab/traces-report.html}"
mkdir -p "$(dirname "$HTML")"

args=(--html "$HTML")
# Read the stack's functions unless the caller chose another source.
window_given=false
source_given=false
for arg in "$@"; do
  case $arg in
    --since | --since=* | --start | --start=* | --execution | --execution=*) window_given=true ;;
    --run-dir | --run-dir=* | --file | --file=*) source_given=true ;;
  esac
done
if [[ $source_given == false ]]; then
  args+=(--stack "$STACK_NAME")
  [[ $window_given == true ]] || args+=(--since "${SINCE:-1h}")
fi

if command -v lambdalab >/dev/null 2>&1 && lambdalab traces --help >/dev/null 2>&1; then
  exec lambdalab traces "${args[@]}" "$@"
fi
# Before the `lambdalab` entry point is installed: the same code, run as a module.
PYTHON="${PYTHON:-$LAB_ROOT/.venv/bin/python}"
[[ -x $PYTHON ]] || PYTHON=python3
cd "$LAB_ROOT"
exec "$PYTHON" -m lambdalab.traces.cli "${args[@]}" "$@"
