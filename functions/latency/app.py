"""Latency function behind /standard and /custom: a short configurable sleep, then an API Gateway proxy response."""

import json
import logging
import os
import time
import uuid
from typing import Any

LOG = logging.getLogger(__name__)

DEFAULT_SLEEP_MS = 100.0
MAX_SLEEP_MS = 10_000.0


def _sleep_ms_from_env() -> float:
    raw = os.environ.get("LATENCY_SLEEP_MS", "").strip()
    if not raw:
        return DEFAULT_SLEEP_MS
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable LATENCY_SLEEP_MS must be a number, got {raw!r}") from exc
    if not 0 <= value <= MAX_SLEEP_MS:
        raise ValueError(f"environment variable LATENCY_SLEEP_MS must be between 0 and {MAX_SLEEP_MS:g}, got {raw!r}")
    return value


SLEEP_MS = _sleep_ms_from_env()
ENVIRONMENT_ID = str(uuid.uuid4())
_invocations = 0


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Sleep SLEEP_MS and return which environment (and alias version) served the request."""
    global _invocations  # noqa: PLW0603 - per-environment counter
    _invocations += 1
    time.sleep(SLEEP_MS / 1000)
    body = {
        "path": (event or {}).get("path"),
        "cold_start": _invocations == 1,
        "environment_id": ENVIRONMENT_ID,
        "invocations": _invocations,
        "initialization_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        "function_version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        "slept_ms": SLEEP_MS,
    }
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
