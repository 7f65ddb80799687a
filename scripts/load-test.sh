#!/usr/bin/env bash
# Run an Artillery scenario from loadtests/ against the lab API.
#
#   scripts/load-test.sh spike|linear|flash-sale [extra artillery arguments]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

SCENARIO="${1:-}"
[[ -n $SCENARIO ]] || die "usage: $0 spike|linear|flash-sale [artillery arguments]"
shift
FILE="$LAB_ROOT/loadtests/$SCENARIO.yaml"
if [[ ! -f $FILE ]]; then
  have=()
  for path in "$LAB_ROOT"/loadtests/*.yaml; do
    have+=("$(basename "$path" .yaml)")
  done
  die "no scenario '$SCENARIO' (have: ${have[*]})"
fi

# The repository's pinned Artillery (package.json, `npm ci`) wins over a global one. Artillery sends an anonymous usage
# ping even with telemetry disabled; the pinned install replaces its PostHog client with one that sends nothing.
PATH="$LAB_ROOT/node_modules/.bin:$PATH"
export ARTILLERY_DISABLE_TELEMETRY="${ARTILLERY_DISABLE_TELEMETRY:-true}"
if ! command -v node >/dev/null 2>&1 || ! command -v artillery >/dev/null 2>&1; then
  cat >&2 <<'HINT'
Artillery is not installed. Install Node.js 18.16+ (https://nodejs.org), then, inside this repository,
  npm ci        (or npm install: the pinned Artillery of package.json)
and run this script again.
HINT
  exit 2
fi

API_URL="$(stack_output ApiUrl)"
echo "running loadtests/$SCENARIO.yaml against $API_URL"
exec artillery run "$FILE" --target "$API_URL" "$@"
