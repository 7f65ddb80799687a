"""The seam between the Lambda service and whatever runs execution environments: what a host is asked to do and
what it answers. Two hosts satisfy it: the process host of the local cloud (runtime/host.py, `ProcessHost`: one OS
process per environment) and the fake host of the service-layer unit tests (tests/unit/awslambda/fakes.py); the
simulator's host would be the third.

The service (through its leases, leases.py) asks a host to `spawn` an environment from an `EnvironmentSpec`, waits for
its INIT (`wait_ready`), hands it one `InvokeRequest` at a time (`invoke`) and `kill`s it. The host decides nothing
about concurrency: which environment serves which request is the policy's decision.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from lambdalab import constants
from lambdalab.logs.function import LoggingConfig

LOCAL_ERROR_TYPE = "Lambdalab.LocalCapacity"  # never an AWS error type: the output names this machine


class InvokeStatus(enum.Enum):
    SUCCESS = "success"
    FUNCTION_ERROR = "function_error"
    TIMEOUT = "timeout"
    CRASH = "crash"
    LOCAL_ERROR = "local_error"  # this machine ended the invoke (the host stopped, the fork server died)


@dataclass(frozen=True)
class EnvironmentSpec:
    """Everything one execution environment is built from."""

    env_id: str
    function_name: str
    function_arn: str
    version: str
    handler: str  # "app.lambda_handler"
    code_dir: Path  # the task root (LAMBDA_TASK_ROOT, the working directory, first on the import path)
    runtime: str  # "python3.13"
    memory_mb: int
    timeout_s: float
    user_environment: dict[str, str]
    init_type: str  # "on-demand" | "provisioned-concurrency"
    region: str
    account_id: str
    endpoint_url: str  # the local cloud, given to the function as AWS_ENDPOINT_URL
    xray_daemon_address: str | None = None  # "127.0.0.1:2000"
    init_cap_s: float | None = constants.ON_DEMAND_INIT_CAP_SECONDS  # None for provisioned concurrency
    paths: tuple[Path, ...] = ()  # after the task root: the function's dependencies, then its layers (/opt/python)
    service_endpoints: dict[str, str] = field(default_factory=dict)  # AWS_ENDPOINT_URL_<ID> (another process's)
    logging: LoggingConfig = field(default_factory=LoggingConfig)  # the function's: log group, format, levels


@dataclass(frozen=True)
class InvokeRequest:
    request_id: str
    payload: bytes
    deadline: float  # the host's monotonic clock (a wall-clock step moves no deadline); the runtime gets epoch ms
    invoked_function_arn: str
    trace_header: str | None = None  # "Root=1-...;Parent=...;Sampled=1"
    client_context: str | None = None  # base64 of the client context JSON, as the Invoke API receives it
    tracing_active: bool = False  # the REPORT line gets its XRAY line (the function's segment is in trace_header)


@dataclass(frozen=True)
class InitResult:
    ok: bool
    status: str  # "success" | "error" | "timeout" (INIT_REPORT's Status)
    init_started_at: float | None  # epoch seconds, function INIT began
    init_duration_s: float | None  # INIT as this function takes it alone: wall time minus local_wait_s
    error_type: str | None = None
    error_message: str | None = None
    error_body: bytes | None = None  # what the runtime posted to /init/error, if it did
    logs: str = ""  # what INIT wrote to the log stream (INIT_START, its output, INIT_REPORT), as CloudWatch shows it
    retry_in_invoke: bool = False  # on-demand INIT past its cap: the first invoke re-runs INIT (AWS behaviour)
    local_wait_s: float = 0.0  # INIT waited this long for this machine: queued at the CPU gate or for a CPU
    local: bool = False  # the failure is this machine's (the environment could not be started), not the function's


@dataclass(frozen=True)
class InvokeResult:
    request_id: str
    status: InvokeStatus
    body: bytes  # the response, or the error JSON as Lambda returns it
    error_type: str | None
    started_at: float  # epoch seconds, the event was handed to the runtime
    ended_at: float
    duration_s: float
    logs: str  # what the invocation wrote to the log stream, START to REPORT, as CloudWatch shows it
    max_memory_used_mb: int  # RSS high-water mark of the process (VmHWM), runtime SDK pages counted once imported
    content_type: str | None = None
    init_duration_s: float | None = None  # INIT re-run inside this invoke (after an INIT timeout), if any
    local_wait_s: float = 0.0  # the process waited this long for a CPU during the invoke (deadline extended by it)
    init_local_wait_s: float = 0.0  # local waiting of the INIT re-run inside this invoke, if any


class Environment(Protocol):
    """One execution environment as the service drives it."""

    @property
    def init_started_at(self) -> float | None:
        """Epoch seconds the function's INIT began (None before it did)."""
        ...

    def init_local_wait_s(self) -> float: ...  # INIT's wait for this machine so far (CPU gate, run queue)

    async def wait_ready(self) -> InitResult:
        """Wait for INIT to end: ready, failed, past its cap (retry_in_invoke) or this machine's failure (local)."""
        ...

    async def invoke(self, request: InvokeRequest) -> InvokeResult:
        """Run one request to its end: an answer, an error, a crash or the deadline (monotonic)."""
        ...

    async def kill(self) -> None:
        """Stop it for good (idempotent)."""
        ...


class InitInProgress(Protocol):
    """What the service reads of a host's environment to tell a local backlog from Lambda's throttle."""

    @property
    def spec(self) -> EnvironmentSpec: ...

    def init_waited_s(self, now: float) -> float | None:
        """None once the first INIT is over; before, its waiting for this machine so far (the fork, the CPU gate,
        the run queue)."""

    def init_elapsed_s(self, now: float) -> float:
        """Seconds since the spawn request."""


class EnvironmentHost(Protocol):
    """Starts execution environments. `spawn` returns once the environment exists (its INIT then runs); it raises
    when it cannot start one (the service reports that as this machine's error, never as Lambda's). `environments`
    say whether INITs wait for this machine (a host without that limit: they never wait)."""

    async def spawn(self, spec: EnvironmentSpec) -> Environment: ...

    @property
    def environments(self) -> Mapping[str, InitInProgress]: ...
