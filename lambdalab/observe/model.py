"""What the Lambda service tells the observers about each invocation and environment."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class InvocationRecord:
    """One invocation attempt, as the local Lambda service saw it; one line of invocations.jsonl.

    Times are Unix epoch seconds (floats) so they line up with X-Ray and CloudWatch.
    A throttled attempt has outcome "throttled", a reason and no environment.
    """

    request_id: str
    function_name: str
    function_arn: str
    qualifier: str  # "$LATEST", a version number or an alias name, as invoked
    version: str  # the version that ran ("$LATEST" or "1", ...)
    invocation_type: str  # "RequestResponse" | "Event" | "DryRun"
    # an Outcome's value: "success" | "function_error" | "timeout" | "crash" | "init_error" | "throttled" |
    # "local_error" (this machine could not run the attempt; never a Lambda outcome). Outcome is a StrEnum, so a
    # record read back from JSON compares equal to the member.
    outcome: str
    start_kind: str | None  # "cold" | "warm" | "provisioned"; None when throttled
    spillover: bool  # on-demand call to an alias/version whose provisioned concurrency was all busy
    environment_id: str | None
    received_at: float  # the Invoke API accepted the request (or the async queue dequeued it)
    init_start: float | None  # function INIT (module import) began; None when warm
    init_duration_s: float | None  # INIT as the function takes it alone here (local waiting excluded)
    invoke_start: float | None  # the event was handed to the environment
    invoke_end: float | None  # the environment answered (or was killed)
    duration_s: float | None  # invoke_end - invoke_start
    billed_duration_ms: int | None
    memory_mb: int
    max_memory_used_mb: int | None
    error_type: str | None = None
    error_message: str | None = None
    throttle_reason: str | None = None
    trace_id: str | None = None  # X-Ray trace id "1-xxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx"
    parent_id: str | None = None  # caller's segment id from the trace header, if any
    sampled: bool = True
    attempt: int = 1  # async: 1 for the first try, 2-3 for retries
    tracing_active: bool = False  # the function has Tracing: Active
    responded_at: float | None = None  # the response left the service (end of the Overhead subsegment)
    # Waiting for this machine, not Lambda's: INIT queued at the CPU gate or for a CPU (not in init_duration_s), and
    # the invoke waited for a CPU (its deadline was extended by it). 0 when the machine kept up.
    init_local_wait_s: float = 0.0
    local_wait_s: float = 0.0  # all of it, INIT and invoke

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EnvironmentEvent:
    """An execution environment's lifecycle step, for the timeline: created, ready, reaped, killed, crashed."""

    environment_id: str
    function_name: str
    version: str
    pool: str  # "on-demand" | "provisioned"
    event: str  # "created" | "ready" | "init_error" | "reaped" | "killed" | "crashed" | "timed_out"
    at: float
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
