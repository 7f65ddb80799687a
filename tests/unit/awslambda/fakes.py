"""A fake EnvironmentHost (no processes) and a recording telemetry, for service-layer tests on a virtual clock.

The fake host satisfies lambdalab.awslambda.hosting.EnvironmentHost as the process host does. Each function's
environments behave as the test scripts them: `FakeHost.init[function]` answers INIT (default: ready at once) and
`FakeHost.handler[function]` runs one invoke (default: success, the payload echoed). A handler may await anything
(an asyncio.Event) to keep a request running while the test changes settings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lambdalab.awslambda.core.control import FunctionSpec
from lambdalab.awslambda.core.policy import Limits
from lambdalab.awslambda.hosting import EnvironmentSpec, InitResult, InvokeRequest, InvokeResult, InvokeStatus
from lambdalab.awslambda.runtime.builds import CodeArtifact
from lambdalab.awslambda.service.service import LambdaService, ServiceConfig
from lambdalab.clock import Clocks, VirtualClock
from lambdalab.observe.metrics import AsyncMetricEvent, ConcurrencySnapshot
from lambdalab.observe.model import EnvironmentEvent, InvocationRecord
from lambdalab.observe.xray import TracePlan, plan_trace

Handler = Callable[["FakeEnvironment", InvokeRequest], Awaitable[InvokeResult]]


def ready(env: FakeEnvironment) -> InitResult:
    return InitResult(ok=True, status="success", init_started_at=env.init_started_at, init_duration_s=0.1)


def init_error(env: FakeEnvironment) -> InitResult:
    return InitResult(
        ok=False,
        status="error",
        init_started_at=env.init_started_at,
        init_duration_s=0.2,
        error_type="Runtime.ImportModuleError",
        error_message="Unable to import module 'app'",
        logs="INIT_START ...\nImportModuleError\n",
    )


def init_past_cap(env: FakeEnvironment) -> InitResult:
    """On-demand INIT ran past the 10 s cap: Lambda re-runs it inside the first invoke."""
    return InitResult(
        ok=False,
        status="timeout",
        init_started_at=env.init_started_at,
        init_duration_s=10.0,
        error_type="Sandbox.Timedout",
        error_message="INIT phase timed out after 10.00 seconds",
        retry_in_invoke=True,
    )


def result(
    env: FakeEnvironment,
    request: InvokeRequest,
    status: InvokeStatus = InvokeStatus.SUCCESS,
    body: bytes | None = None,
    error_type: str | None = None,
    **extra: Any,
) -> InvokeResult:
    now = env.host.clocks.epoch.now()
    return InvokeResult(
        request_id=request.request_id,
        status=status,
        body=request.payload if body is None else body,
        error_type=error_type,
        started_at=now,
        ended_at=now,
        duration_s=0.0,
        logs=f"START RequestId: {request.request_id}\nEND\n",
        max_memory_used_mb=40,
        **extra,
    )


async def echo(env: FakeEnvironment, request: InvokeRequest) -> InvokeResult:
    return result(env, request)


async def fail(env: FakeEnvironment, request: InvokeRequest) -> InvokeResult:
    body = b'{"errorMessage": "boom", "errorType": "ValueError"}'
    return result(env, request, InvokeStatus.FUNCTION_ERROR, body, "ValueError")


class FakeEnvironment:
    """One environment of the fake host: no process; INIT and invokes answer as the host's script says."""

    def __init__(self, host: FakeHost, spec: EnvironmentSpec) -> None:
        self.host = host
        self.spec = spec
        self.init_started_at: float | None = host.clocks.epoch.now()
        self.requests: list[InvokeRequest] = []
        self.killed = False
        self.busy = False
        self._kill = asyncio.Event()

    async def wait_ready(self) -> InitResult:
        await asyncio.sleep(0)  # INIT takes at least a loop turn, as a real one does
        return self.host.init.get(self.spec.function_name, ready)(self)

    async def invoke(self, request: InvokeRequest) -> InvokeResult:
        assert not self.killed, f"{self.spec.env_id} invoked after it was killed"
        assert not self.busy, f"{self.spec.env_id} got a second request while busy"
        self.busy = True
        self.requests.append(request)
        handler = asyncio.ensure_future(self.host.handler.get(self.spec.function_name, echo)(self, request))
        killed = asyncio.ensure_future(self._kill.wait())
        try:
            await asyncio.wait([handler, killed], return_when=asyncio.FIRST_COMPLETED)
            if handler.done():
                return handler.result()
            # killed mid-request, as the process host reports a SIGKILLed runtime
            body = b'{"errorType": "Runtime.ExitError", "errorMessage": "Runtime exited with error: signal: killed"}'
            return result(self, request, InvokeStatus.CRASH, body, "Runtime.ExitError")
        finally:
            for task in (handler, killed):
                task.cancel()
            self.busy = False

    async def kill(self) -> None:
        self.killed = True
        self._kill.set()
        self.host.environments.pop(self.spec.env_id, None)

    def init_local_wait_s(self) -> float:
        return self.host.init_local_wait_s  # what the test says INIT has waited for the pretend machine so far

    def init_waited_s(self, now: float) -> float | None:
        return None  # the fake host's INITs never wait for a machine

    def init_elapsed_s(self, now: float) -> float:
        return now - (self.init_started_at or now)


class FakeHost:
    """The EnvironmentHost protocol without processes: every environment it spawned, in order."""

    def __init__(self, clocks: Clocks) -> None:
        self.clocks = clocks
        self.spawned: list[FakeEnvironment] = []
        self.init: dict[str, Callable[[FakeEnvironment], InitResult]] = {}
        self.handler: dict[str, Handler] = {}
        self.refuse_spawn: str | None = None  # a message: spawn raises (this machine cannot start one)
        self.init_local_wait_s = 0.0  # every INIT in progress reports this much local waiting so far
        self.environments: dict[str, FakeEnvironment] = {}

    async def spawn(self, spec: EnvironmentSpec) -> FakeEnvironment:
        await asyncio.sleep(0)
        if self.refuse_spawn is not None:
            raise OSError(self.refuse_spawn)
        env = FakeEnvironment(self, spec)
        self.spawned.append(env)
        self.environments[spec.env_id] = env
        return env

    def live(self, function: str | None = None) -> list[FakeEnvironment]:
        return [e for e in self.spawned if not e.killed and (function is None or e.spec.function_name == function)]


@dataclass
class RecordingTelemetry:
    """The service's Telemetry protocol, keeping everything it is told."""

    records: list[InvocationRecord] = field(default_factory=list)
    events: list[EnvironmentEvent] = field(default_factory=list)
    snapshots: list[ConcurrencySnapshot] = field(default_factory=list)
    async_events: list[AsyncMetricEvent] = field(default_factory=list)

    def plan(self, function_name: str, function_arn: str, incoming: str | None, tracing_active: bool) -> TracePlan:
        return plan_trace(incoming, tracing_active, False, now=1_800_000_000.0)

    def invocation(self, record: InvocationRecord, plan: TracePlan | None) -> None:
        self.records.append(record)

    def environment(self, event: EnvironmentEvent) -> None:
        self.events.append(event)

    def concurrency(self, snapshot: ConcurrencySnapshot) -> None:
        self.snapshots.append(snapshot)

    def async_event(self, event: AsyncMetricEvent) -> None:
        self.async_events.append(event)

    def event_names(self, env_id: str) -> list[str]:
        return [e.event for e in self.events if e.environment_id == env_id]


@dataclass
class Lab:
    """A Lambda service on a fake host and a virtual clock, with one function "fn" (code in a temporary folder)."""

    service: LambdaService
    host: FakeHost
    clock: VirtualClock
    telemetry: RecordingTelemetry
    sent: list[tuple[str, dict[str, Any]]]  # destinations and DLQ messages: (target ARN, the JSON sent)
    code_dir: Path

    def create(self, name: str, **spec: Any) -> None:
        self.service.create_function(
            FunctionSpec(name=name, handler="app.handler", runtime="python3.13", code_dir=self.code_dir, **spec),
            CodeArtifact(self.code_dir),
        )

    def advance(self, seconds: float) -> None:
        """Move the virtual clock and tell the service (its async dispatcher sleeps until the next due event)."""
        self.clock.advance(seconds)
        self.service.clock_moved()


async def make_lab(tmp_path: Path, limits: Limits | None = None, **config: Any) -> Lab:
    clock, clocks = Clocks.virtual()
    host = FakeHost(clocks)
    telemetry = RecordingTelemetry()
    sent: list[tuple[str, dict[str, Any]]] = []

    async def sender(target: str, body: bytes, attributes: dict[str, str]) -> None:
        import json

        sent.append((target, json.loads(body)))

    service = LambdaService(
        host, ServiceConfig(limits=limits or Limits(), **config), telemetry, clocks=clocks, event_sender=sender
    )
    lab = Lab(service, host, clock, telemetry, sent, tmp_path)
    lab.create("fn")
    await service.start()
    return lab


async def settle(turns: int = 50) -> None:
    """Let background tasks (pre-warms, kills, async attempts) run: a few event-loop turns, no real time."""
    for _ in range(turns):
        await asyncio.sleep(0)
