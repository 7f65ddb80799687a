#!/usr/bin/env bash
# GET /items/42 answers 200 with the route key and the path parameter the function saw (payload format 2.0).
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "$0")/../common.sh"
url="$(output ApiUrl)"
answer="$(curl -sS -w '\n%{http_code}' "$url/items/42")"
[[ "$(tail -n1 <<<"$answer")" == "200" ]] || fail "status $(tail -n1 <<<"$answer")"
grep -q '"route": "GET /items/{id}"' <<<"$answer" || fail "unexpected body: $answer"
grep -q '"id": "42"' <<<"$answer" || fail "the path parameter is missing: $answer"
bodies="$(observed 20 1)"
grep -q '"version": "2.0"' <<<"$bodies" || fail "not a payload 2.0 event"
echo "ok: http-api"
