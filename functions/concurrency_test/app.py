"""Concurrency test function: configurable INIT and handler sleeps, and a report of the execution environment."""

import logging
import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

LOG = logging.getLogger(__name__)

MAX_SLEEP_SECONDS = 900.0
DEFAULT_COLD_START_SLEEP = 5.0
DEFAULT_EXECUTION_SLEEP = 3.0

_INIT_STARTED = time.perf_counter()


def _seconds_from_env(name: str, default: float) -> float:
    """Read a number of seconds from the environment; unset or empty means the default."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be a number of seconds, got {raw!r}") from exc
    if not 0 <= value <= MAX_SLEEP_SECONDS:
        raise ValueError(f"environment variable {name} must be between 0 and {MAX_SLEEP_SECONDS:g}, got {raw!r}")
    return value


COLD_START_SLEEP = _seconds_from_env("COLD_START_SLEEP", DEFAULT_COLD_START_SLEEP)
EXECUTION_SLEEP = _seconds_from_env("EXECUTION_SLEEP", DEFAULT_EXECUTION_SLEEP)
ENVIRONMENT_ID = str(uuid.uuid4())

# The cold start: this sleep runs once per execution environment, during INIT, before the first event.
time.sleep(COLD_START_SLEEP)

INITIALIZED_AT = datetime.now(UTC).isoformat(timespec="milliseconds")
INIT_DURATION_MS = round((time.perf_counter() - _INIT_STARTED) * 1000, 1)
_invocations = 0


def requested_sleep(event: Any) -> float:
    """The handler sleep: `event["sleep"]` when present, else EXECUTION_SLEEP; a bad value raises ValueError."""
    if event is None:
        return EXECUTION_SLEEP
    if not isinstance(event, dict):
        raise ValueError(f"event must be a JSON object, got {type(event).__name__}")
    value = event.get("sleep")
    if value is None:
        return EXECUTION_SLEEP
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"'sleep' must be a number of seconds, got {value!r}")
    if not 0 <= value <= MAX_SLEEP_SECONDS:
        raise ValueError(f"'sleep' must be between 0 and {MAX_SLEEP_SECONDS:g} seconds, got {value!r}")
    return float(value)


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Sleep for the requested time and say which environment served the call and whether it was its first."""
    global _invocations  # noqa: PLW0603 - per-environment state is the point of this function
    started = time.perf_counter()
    sleep_seconds = requested_sleep(event)
    _invocations += 1
    cold_start = _invocations == 1
    time.sleep(sleep_seconds)
    return {
        "cold_start": cold_start,
        "environment_id": ENVIRONMENT_ID,
        "initialized_at": INITIALIZED_AT,
        "init_duration_ms": INIT_DURATION_MS,
        "invocations": _invocations,
        "initialization_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        "function_version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        "slept_seconds": sleep_seconds,
        "handler_duration_ms": round((time.perf_counter() - started) * 1000, 1),
    }
