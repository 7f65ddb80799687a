#!/usr/bin/env bash
# Upload a .csv and a .txt with `aws s3 cp`; only the .csv arrives, as an S3 record.
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "$0")/../common.sh"
bucket="$(output BucketName)"
tmp="$(mktemp -d)"
echo "a,b" >"$tmp/report.csv"
echo "x" >"$tmp/notes.txt"
aws s3 cp "$tmp/report.csv" "s3://$bucket/in/report.csv" >/dev/null
aws s3 cp "$tmp/notes.txt" "s3://$bucket/in/notes.txt" >/dev/null
aws s3 cp "s3://$bucket/in/report.csv" "$tmp/back.csv" >/dev/null  # HeadObject's Content-Length
cmp -s "$tmp/report.csv" "$tmp/back.csv" || fail "the object did not come back intact"
bodies="$(observed 12 2)"
grep -q '"key": "in/report.csv"' <<<"$bodies" || fail "the .csv upload did not arrive"
grep -q '"eventName": "ObjectCreated:Put"' <<<"$bodies" || fail "not an S3 record"
if grep -q 'notes.txt' <<<"$bodies"; then fail "the suffix filter let the .txt through"; fi
echo "ok: s3"
