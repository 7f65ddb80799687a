"""How an invocation attempt ended: one enum for the service, the lifecycle, the simulator and the observers.

A `StrEnum`, so the run records (invocations.jsonl) keep their string values and a record read back from JSON
compares equal to the member (`"throttled" == Outcome.THROTTLED`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from lambdalab.awslambda.core.policy import Throttled
from lambdalab.awslambda.hosting import InvokeResult
from lambdalab.observe.model import InvocationRecord


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


@dataclass(frozen=True)
class InvocationResult:
    """One attempt, typed: how it ended, its record, the environment's answer (None when it never ran) and, when
    throttled, the policy's decision unchanged (its reason and Retry-After reach the 429 as they were decided)."""

    outcome: Outcome
    record: InvocationRecord
    result: InvokeResult | None = None
    throttle: Throttled | None = None
    init_logs: str = ""  # a failed INIT's log lines (the Invoke API's tail shows them)

    def body(self) -> bytes:
        """The Invoke API's payload: the function's answer, or Lambda's error JSON when none came (INIT error)."""
        if self.result is not None:
            return self.result.body
        record = self.record
        return json.dumps(
            {"errorMessage": record.error_message or "", "errorType": record.error_type or "Unhandled"}
        ).encode()


@dataclass(frozen=True)
class Rejected:
    """Lambda rejected the request before any attempt (no such function or alias, a payload too large or not JSON):
    the Lambda API error's code, message and HTTP status, as a value."""

    code: str
    message: str
    status: int


class Invoker(Protocol):
    """A synchronous invoke from inside Lambda (an event source mapping's poller): typed, no HTTP shapes, no API
    exceptions for control flow."""

    async def invoke_internal(self, function_arn: str, payload: bytes) -> InvocationResult | Rejected: ...
