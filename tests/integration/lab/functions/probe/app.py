"""A probe: sleeps at INIT, reports what the environment looks like and how often it has been used."""

import os
import time
import uuid

_INIT_STARTED = time.time()
time.sleep(float(os.environ.get("COLD_START_SLEEP", "0")))
ENVIRONMENT_ID = str(uuid.uuid4())
_calls = 0


def lambda_handler(event, context):
    global _calls
    _calls += 1
    time.sleep(float(event.get("sleep", 0)))
    if event.get("print"):
        print(event["print"])
    return {
        "environment_id": ENVIRONMENT_ID,
        "calls": _calls,
        "cold_start": _calls == 1,
        "initialization_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
        "function_version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION"),
        "env_keys": sorted(os.environ) if event.get("env") else None,
        "access_key": os.environ.get("AWS_ACCESS_KEY_ID") if event.get("env") else None,
        "greeting": os.environ.get("GREETING"),
        "cwd": os.getcwd(),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
    }
