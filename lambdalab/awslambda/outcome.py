"""How an invocation attempt ended: one enum for the service, the lifecycle, the simulator and the observers.

A `StrEnum`, so the run records (invocations.jsonl) keep their string values and a record read back from JSON
compares equal to the member (`"throttled" == Outcome.THROTTLED`).
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    SUCCESS = "success"
    FUNCTION_ERROR = "function_error"  # the handler raised or returned an error (X-Amz-Function-Error: Unhandled)
    TIMEOUT = "timeout"  # Task timed out after N seconds; the environment is reset
    CRASH = "crash"  # the runtime exited during the invoke
    INIT_ERROR = "init_error"  # INIT failed (import error, exit during INIT)
    THROTTLED = "throttled"  # refused by the concurrency policy (429), never ran
    LOCAL_ERROR = "local_error"  # this machine could not run the attempt; never a Lambda outcome


# What CloudWatch counts in `Errors` and X-Ray marks as a fault of the function.
ERROR_OUTCOMES = frozenset({Outcome.FUNCTION_ERROR, Outcome.TIMEOUT, Outcome.CRASH, Outcome.INIT_ERROR})
