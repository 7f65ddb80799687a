"""SQS consumer: processes a batch, reports failed messages as a partial batch response, logs one line per batch."""

import json
import logging
import os
import time
import uuid
from typing import Any

LOG = logging.getLogger(__name__)

MAX_MESSAGE_SLEEP_SECONDS = 60.0
ENVIRONMENT_ID = str(uuid.uuid4())
_batches = 0
_messages = 0


class InjectedFailure(Exception):
    """A message asked to fail (`{"fail": true}`): how experiments and tests exercise partial batch failures."""


def record_handler(record: dict[str, Any]) -> None:
    """Process one message. A JSON body may carry `fail: true` (fail it) or `sleep` (seconds of simulated work)."""
    try:
        body = json.loads(record.get("body") or "null")
    except json.JSONDecodeError:
        return  # plain-text messages are valid work items with nothing to do
    if not isinstance(body, dict):
        return
    if body.get("fail") is True:
        raise InjectedFailure(f"message {record.get('messageId')} asked to fail")
    sleep = body.get("sleep")
    if isinstance(sleep, int | float) and not isinstance(sleep, bool) and 0 < sleep <= MAX_MESSAGE_SLEEP_SECONDS:
        time.sleep(sleep)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """Handle every record; return the ids of those that failed so only they go back to the queue."""
    global _batches, _messages  # noqa: PLW0603 - per-environment counters are what the experiment reads
    records = event.get("Records") or []
    failures: list[dict[str, str]] = []
    for record in records:
        try:
            record_handler(record)
        except InjectedFailure as exc:
            LOG.warning("%s", exc)
            failures.append({"itemIdentifier": record["messageId"]})
    _batches += 1
    _messages += len(records)
    # One JSON line per batch on stdout; CloudWatch Logs Insights reads its fields directly.
    print(
        json.dumps(
            {
                "message": "batch processed",
                "environment_id": ENVIRONMENT_ID,
                "cold_start": _batches == 1,
                "messages": len(records),
                "failed": len(failures),
                "environment_batches": _batches,
                "environment_messages": _messages,
                "function_version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            }
        ),
        flush=True,
    )
    return {"batchItemFailures": failures}
