#!/usr/bin/env bash
# Wait for a run (a minute on AWS; at --time-scale 0.05 locally, 3 s) with the context attributes filled in.
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "$0")/../common.sh"
bodies="$(observed 90 1)"
grep -q '"schedule": "arn:aws:scheduler:' <<<"$bodies" || fail "no scheduled run arrived"
grep -q '"attempt": 1' <<<"$bodies" || fail "the attempt number was not filled in"
echo "ok: scheduler"
