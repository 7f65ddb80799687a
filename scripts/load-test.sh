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

if ! command -v npx >/dev/null 2>&1 || ! npx --no-install artillery --version >/dev/null 2>&1; then
  cat >&2 <<'HINT'
Artillery is not installed. Install Node.js 18+ (https://nodejs.org), then either
  npm install --global artillery@latest
or, inside this repository,
  npm install --no-save artillery
and run this script again.
HINT
  exit 2
fi

API_URL="$(stack_output ApiUrl)"
echo "running loadtests/$SCENARIO.yaml against $API_URL"
exec npx --no-install artillery run "$FILE" --target "$API_URL" "$@"
