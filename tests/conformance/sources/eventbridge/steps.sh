#!/usr/bin/env bash
# Put a big and a small order; only the big one arrives, transformed.
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "$0")/../common.sh"
bus="$(output BusName)"
aws events put-events --entries "[{\"EventBusName\": \"$bus\", \"Source\": \"shop\", \"DetailType\": \"Order\", \"Detail\": \"{\\\"id\\\": \\\"big-1\\\", \\\"total\\\": 250}\"}, {\"EventBusName\": \"$bus\", \"Source\": \"shop\", \"DetailType\": \"Order\", \"Detail\": \"{\\\"id\\\": \\\"small-1\\\", \\\"total\\\": 5}\"}]" >/dev/null
bodies="$(observed 12 2)"
grep -q '"order": "big-1"' <<<"$bodies" || fail "the big order did not arrive transformed"
grep -q 'order big-1 is big' <<<"$bodies" || fail "the template's string was not filled in"
if grep -q 'small-1' <<<"$bodies"; then fail "the pattern let the small order through"; fi
echo "ok: eventbridge"
