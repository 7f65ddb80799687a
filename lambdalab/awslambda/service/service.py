"""The local Lambda service: functions, invocations and the concurrency policy, driving execution environments.

Everything here runs on one asyncio event loop. The pure policy (policy.py, asyncq.py) decides; this module acts
through its leases (leases.py: admit, start, release or discard an environment on an `EnvironmentHost`), hands
events to the environments, and reports each invocation to the observers. Calls from other threads (the deployer) go
through `ThreadSafeControl`. docs/ARCHITECTURE.md draws the layers, the owners of state and the invoke path.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import functools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from lambdalab import constants
from lambdalab.awslambda.core.asyncq import Action, AsyncEvent, AsyncQueue, Disposition
from lambdalab.awslambda.core.billing import billed_duration_ms
from lambdalab.awslambda.core.control import EventInvokeConfig, FunctionSpec, LayerSpec
from lambdalab.awslambda.core.exceptions import (
    InvalidParameterValueException,
    InvalidRequestContentException,
    LambdaApiError,
    LocalCapacityException,
    ProvisionedConcurrencyConfigNotFoundException,
    RequestTooLargeException,
    ResourceConflictException,
    ResourceNotFoundException,
    TooManyRequestsException,
)
from lambdalab.awslambda.core.localwait import LocalWait
from lambdalab.awslambda.core.models import (
    LATEST,
    Alias,
    FunctionStore,
    FunctionVersion,
    LambdaFunction,
    LayerStore,
    LayerVersion,
    split_function_name,
)
from lambdalab.awslambda.core.outcome import InvocationResult, Outcome, Rejected
from lambdalab.awslambda.core.policy import (
    Admitted,
    ConcurrencyPolicy,
    EnvState,
    Limits,
    PolicyError,
    Pool,
    Throttled,
    ThrottleReason,
)
from lambdalab.awslambda.esm.sqs_poller import EventSourceMappings
from lambdalab.awslambda.hosting import (
    EnvironmentHost,
    EnvironmentSpec,
    InitInProgress,
    InvokeRequest,
    InvokeResult,
    InvokeStatus,
)
from lambdalab.awslambda.runtime.builds import BuildError, CodeArtifact, build_layer, function_artifact
from lambdalab.awslambda.runtime.interpreters import UnsupportedRuntime, find_interpreter
from lambdalab.awslambda.service.leases import ColdStart, Leases
from lambdalab.awslambda.service.waiting import WaitingRoom
from lambdalab.clock import Clock, Clocks
from lambdalab.logs.function import LoggingConfig
from lambdalab.observe.metrics import AsyncMetricEvent, AsyncMetricKind, ConcurrencySnapshot, ProvisionedState
from lambdalab.observe.model import EnvironmentEvent, InvocationRecord
from lambdalab.observe.xray import TracePlan, plan_trace
from lambdalab.sources.esm_metrics import EsmMetrics
from lambdalab.sources.invoke import LambdaServiceInvoker

LOG = logging.getLogger(__name__)
T = TypeVar("T")

# (target ARN, body, message attributes) → delivered to a queue, topic or bus; raises when it could not be
EventSender = Callable[[str, bytes, dict[str, str]], Awaitable[None]]

LOG_TAIL_BYTES = 4096


@dataclass(frozen=True)
class ServiceConfig:
    region: str = constants.DEFAULT_REGION
    account_id: str = constants.DEFAULT_ACCOUNT_ID
    endpoint_url: str = ""  # the local cloud's URL, handed to functions as AWS_ENDPOINT_URL
    time_scale: float = constants.DEFAULT_TIME_SCALE
    limits: Limits = field(default_factory=Limits)
    reap_interval_s: float = 5.0
    xray_daemon_address: str | None = None
    service_endpoints: dict[str, str] = field(default_factory=dict)  # handed to functions as AWS_ENDPOINT_URL_<ID>
    # Where event source mappings reach their sources, when not at endpoint_url: "sqs" (queues and Kinesis streams:
    # moto, directly) and a source kind's own ("dynamodb": the DynamoDB process, for table streams).
    source_endpoints: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InvokeOutcome:
    """What the Invoke API answers."""

    status: int
    body: bytes
    request_id: str
    executed_version: str | None = None
    function_error: str | None = None  # "Unhandled" when the function failed
    log_result: str | None = None  # base64 of the log tail when LogType=Tail


class Telemetry(Protocol):
    """Where the service reports (lambdalab.observe.pipeline.Telemetry). Hooks must be cheap and never raise."""

    def plan(self, function_name: str, function_arn: str, incoming: str | None, tracing_active: bool) -> TracePlan: ...

    def invocation(self, record: InvocationRecord, plan: TracePlan | None) -> None: ...

    def environment(self, event: EnvironmentEvent) -> None: ...

    def concurrency(self, snapshot: ConcurrencySnapshot) -> None: ...

    def async_event(self, event: AsyncMetricEvent) -> None: ...


class NullTelemetry:
    """Reports nowhere; traces are still planned (new trace ids stamped on `epoch`) so environments get a well-formed
    header."""

    def __init__(self, epoch: Clock) -> None:
        self.epoch = epoch

    def plan(self, function_name: str, function_arn: str, incoming: str | None, tracing_active: bool) -> TracePlan:
        return plan_trace(incoming, tracing_active, False, now=self.epoch.now())

    def invocation(self, record: InvocationRecord, plan: TracePlan | None) -> None:
        pass

    def environment(self, event: EnvironmentEvent) -> None:
        pass

    def concurrency(self, snapshot: ConcurrencySnapshot) -> None:
        pass

    def async_event(self, event: AsyncMetricEvent) -> None:
        pass


UNHURRIED_FORK_S = 0.01  # an INIT held up by this machine waited for it longer than this at least (an unhurried fork)
ADMISSION_WAIT_LIMIT_S = 60.0  # the longest a call waits at admission for this machine (then Lambda's answer stands)


@dataclass
class _Attempt:
    """One invocation attempt in progress: what the record needs, filled in as it goes."""

    request_id: str
    function: LambdaFunction
    qualifier: str
    version: FunctionVersion
    invocation_type: str
    received_at: float
    trace_header: str | None
    attempt: int = 1
    admission_wait_s: float = 0.0  # waited at admission while INITs were held up by this machine (local)
    local_wait: LocalWait | None = None  # the caller's live reading of this request's local waits (API Gateway)


class LambdaService:
    """The Lambda API's behaviour. Methods are called on the event loop thread unless noted."""

    def __init__(
        self,
        host: EnvironmentHost,
        config: ServiceConfig,
        telemetry: Telemetry | None = None,
        *,
        clocks: Clocks,
        esm_metrics: EsmMetrics | None = None,
        event_sender: EventSender | None = None,
    ) -> None:
        self.config = config
        self.host = host
        self.store = FunctionStore(config.region, config.account_id, epoch=clocks.epoch)  # LastModified
        self.layers = LayerStore(config.region, config.account_id, epoch=clocks.epoch)  # CreatedDate
        self.clock = clocks.monotonic  # the policy's and the queue's time; invoke deadlines
        self.epoch = clocks.epoch  # timestamps: run records, environment events, LastModified
        self.policy = ConcurrencyPolicy(self.clock, config.limits)
        self.queue = AsyncQueue(self.clock, time_scale=config.time_scale)
        self.telemetry: Telemetry = telemetry or NullTelemetry(clocks.epoch)
        self.waiting = WaitingRoom(self.clock)  # calls held at admission while this machine's CPU lags (`_admit`)
        self._recent_inits: dict[str, collections.deque[float]] = {}
        self._usual_init_s: dict[str, float] = {}
        self.leases = Leases(
            host,
            self.policy,
            spec_of=self._environment_spec,
            event=self._environment_event,
            spawn_task=self._spawn_task,
            changed=self._concurrency_changed,
            ended=self.waiting.call_ended,
            init_done=self._note_init,
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._queue_wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._concurrency_pending = False
        self._stopping = False
        # Where async destinations, DLQ messages and stream mappings' on-failure records go when the target is not a
        # function (queues, topics, buses: destinations.Destinations); a function target is this service's own
        # asynchronous invoke, so the sender never needs the service (no cycle).
        self._event_sender = event_sender
        # SQS queue and stream mappings and their pollers: they reach functions through this service's typed internal
        # invoke (and its function ARNs), never its stores or the HTTP-shaped invoke.
        self.event_sources = EventSourceMappings(
            self,
            clocks,
            region=config.region,
            account_id=config.account_id,
            endpoint_url=config.source_endpoints.get("sqs", config.endpoint_url),
            source_endpoints={k: v for k, v in config.source_endpoints.items() if k != "sqs"},
            time_scale=config.time_scale,
            spawn_task=self._spawn_task,
            metrics=esm_metrics,
            sender=_EventSender(self),
            stream_invoker=LambdaServiceInvoker(self),
        )

    # --- lifecycle ------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._spawn_task(self._reaper(), "reaper")
        self._spawn_task(self._async_dispatcher(), "async-dispatcher")
        self.event_sources.start()

    async def stop(self) -> None:
        await self.event_sources.stop()  # pollers first: nothing new is invoked while environments go
        self._stopping = True
        self.waiting.close()
        self._queue_wakeup.set()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        await self.leases.stop()

    def clock_moved(self) -> None:
        """The monotonic clock jumped (a virtual clock advanced): the async dispatcher looks at the queue again
        instead of sleeping out the time it computed before."""
        self._queue_wakeup.set()

    def _spawn_task(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and not self._stopping:
            LOG.error("background task %s failed", task.get_name(), exc_info=task.exception())

    # --- control: functions, versions, aliases --------------------------------------------------------------------

    def layer_roots(self, arns: tuple[str, ...]) -> list[Path]:
        """The folders a function's layers are extracted to, in order; AWS's errors for a bad or unknown ARN."""
        return [layer.opt_root for layer in self.layers.resolve(arns)]

    @staticmethod
    def build(spec: FunctionSpec, layer_roots: list[Path]) -> CodeArtifact:
        """The function's import path (its dependencies installed on first use). Blocking: call it off the loop.
        A dependency that cannot be installed is InvalidParameterValueException naming the function and pip's
        words (on AWS, `sam build` would have failed before the deploy)."""
        try:
            interpreter = find_interpreter(spec.runtime)
        except UnsupportedRuntime as exc:
            raise InvalidParameterValueException(str(exc)) from None
        try:
            return function_artifact(
                spec.code_dir.resolve(),
                interpreter,
                name=spec.name,
                logical_id=spec.logical_id or None,
                template_dir=spec.template_dir,
                layers=layer_roots,
            )
        except BuildError as exc:
            raise InvalidParameterValueException(str(exc)) from None

    def publish_layer_version(self, spec: LayerSpec, opt_root: Path) -> LayerVersion:
        """A new version of the layer, extracted at `opt_root` (built by `build_layer`, off the loop)."""
        return self.layers.publish(spec, opt_root)

    @staticmethod
    def build_layer(spec: LayerSpec) -> Path:
        """The folder the layer is extracted to (/opt): its content, or its `sam build` output. Blocking."""
        runtime = next((r for r in spec.compatible_runtimes if r.startswith("python")), None) or spec.build_method
        try:
            interpreter = find_interpreter(runtime or "python3.13")
            return build_layer(spec.content_dir.resolve(), interpreter, spec.build_method, what=f"layer {spec.name}")
        except (BuildError, UnsupportedRuntime) as exc:
            raise InvalidParameterValueException(str(exc)) from None

    def create_function(self, spec: FunctionSpec, artifact: CodeArtifact | None = None) -> str:
        if artifact is None:  # a caller on the loop that did not build first: build here (blocks while pip runs)
            artifact = self.build(spec, self.layer_roots(spec.layers))
        function = self.store.create(spec, artifact)
        self.policy.add_function(function.name)
        self.queue.set_dead_letter(function.name, spec.dead_letter_target_arn)  # DeadLetterConfig, the queue's
        if spec.reserved_concurrency is not None:
            self.put_function_concurrency(function.name, spec.reserved_concurrency)
        return function.arn

    def delete_function(self, name: str, qualifier: str | None = None) -> None:
        function = self.store.get(name)
        if qualifier is not None:
            raise InvalidParameterValueException("Deleting a single version is not supported by the local cloud.")
        for env_id in self.policy.remove_function(function.name):
            self.leases.kill_later(env_id, "killed")
        for disposition in self.queue.forget_function(function.name):
            self._spawn_task(self._dispose(disposition), f"forget-{disposition.event.event_id}")
        self.store.delete(function.name)

    def update_function_configuration(self, name: str, **changes: Any) -> FunctionVersion:
        function = self.store.get(name)
        latest = self.store.update_configuration(function, **changes)
        # Environments of $LATEST run the old configuration: retire the idle ones, as a new deployment does.
        for record in self.policy.environments(function.name):
            if record.version == LATEST and record.state == EnvState.IDLE:
                self.policy.discard(record.env_id)
                self.leases.kill_later(record.env_id, "killed")
        return latest

    def publish_version(self, function_name: str, description: str = "") -> str:
        function = self.store.get(function_name)
        return self.store.publish_version(function, description).version

    def create_alias(self, function_name: str, alias_name: str, function_version: str, description: str = "") -> str:
        function = self.store.get(function_name)
        self.store.create_alias(function, alias_name, function_version, description)
        return function.qualified_arn(alias_name)

    def update_alias(
        self, function_name: str, alias_name: str, function_version: str | None, description: str | None
    ) -> Alias:
        function = self.store.get(function_name)
        alias = function.aliases.get(alias_name)
        if alias is None:
            raise ResourceNotFoundException(f"Alias not found: {function.arn}:{alias_name}")
        if function_version is not None and function_version != alias.function_version:
            version = function.version(function_version)
            alias.function_version = function_version
            requested = self.provisioned_concurrency(function.name, alias_name)
            if requested is not None:
                # As on AWS, the alias's provisioned concurrency moves to the new version: new environments are
                # initialised for it and the old version's are retired.
                self._provision(function, alias_name, version, requested)
        if description is not None:
            alias.description = description
        alias.revision_id = str(uuid.uuid4())
        return alias

    def delete_alias(self, function_name: str, alias_name: str) -> None:
        function = self.store.get(function_name)
        if self.provisioned_concurrency(function.name, alias_name) is not None:
            self.delete_provisioned_concurrency(function_name, alias_name)
        function.aliases.pop(alias_name, None)

    def function_arn(self, function_name: str, qualifier: str | None = None) -> str:
        return self.store.get(function_name).qualified_arn(qualifier)

    # --- control: concurrency -------------------------------------------------------------------------------------

    def put_function_concurrency(self, function_name: str, reserved: int) -> None:
        function = self.store.get(function_name)
        try:
            self.policy.set_reserved(function.name, reserved)
        except PolicyError as exc:
            raise _policy_error(exc) from None
        self._concurrency_changed()

    def delete_function_concurrency(self, function_name: str) -> None:
        function = self.store.get(function_name)
        self.policy.set_reserved(function.name, None)
        self._concurrency_changed()

    def reserved_concurrency(self, function_name: str) -> int | None:
        """The function's reserved concurrency (None: unreserved). The policy holds it; nothing else does."""
        return self.policy.reserved(self.store.get(function_name).name)

    def provisioned_concurrency(self, function_name: str, qualifier: str) -> int | None:
        """The provisioned concurrency requested on an alias or version (None: no config). Held by the policy."""
        status = self.policy.provisioned_status(self.store.get(function_name).name, qualifier)
        return None if status is None else status.requested

    def provisioned_qualifiers(self, function_name: str) -> list[str]:
        """The aliases and versions with a provisioned concurrency config."""
        return self.policy.provisioned_qualifiers(self.store.get(function_name).name)

    def put_provisioned_concurrency(self, function_name: str, qualifier: str, count: int) -> None:
        function = self.store.get(function_name)
        if qualifier in (None, "", LATEST):
            raise InvalidParameterValueException(
                "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
            )
        _, version = function.resolve(qualifier)
        self._provision(function, qualifier, version, count)

    def _provision(self, function: LambdaFunction, qualifier: str, version: FunctionVersion, count: int) -> None:
        try:
            change = self.policy.set_provisioned(
                function.name, qualifier, version.version, count, modified_at=self.epoch.now()
            )
        except PolicyError as exc:
            raise _policy_error(exc) from None
        for env_id in change.retire:
            self.leases.kill_later(env_id, "killed")
        for env_id in change.create:
            self.leases.prewarm(env_id, function, version)
        self._concurrency_changed()

    def delete_provisioned_concurrency(self, function_name: str, qualifier: str) -> None:
        function = self.store.get(function_name)
        if self.provisioned_concurrency(function.name, qualifier) is None:
            raise ProvisionedConcurrencyConfigNotFoundException(
                f"No Provisioned Concurrency Config found for this function: {function.qualified_arn(qualifier)}"
            )
        for env_id in self.policy.delete_provisioned(function.name, qualifier):
            self.leases.kill_later(env_id, "killed")
        self._concurrency_changed()

    def put_event_invoke_config(self, config: EventInvokeConfig) -> EventInvokeConfig:
        """Put the config (validated when made) for an existing qualifier; the async queue keeps the one copy."""
        function = self.store.get(config.function_name)
        function.resolve(config.qualifier)  # the version or alias must exist
        stored = replace(config, function_name=function.name, last_modified=self.epoch.now())
        self.queue.configure(stored)
        return stored

    def event_invoke_config(self, function_name: str, qualifier: str | None) -> EventInvokeConfig | None:
        return self.queue.configured(self.store.get(function_name).name, qualifier)

    def event_invoke_configs(self, function_name: str) -> list[EventInvokeConfig]:
        return self.queue.configs_of(self.store.get(function_name).name)

    def delete_event_invoke_config(self, function_name: str, qualifier: str) -> None:
        function = self.store.get(function_name)
        self.queue.unconfigure(function.name, qualifier)

    # --- environments ---------------------------------------------------------------------------------------------

    def _environment_spec(
        self, env_id: str, function: LambdaFunction, version: FunctionVersion, init_type: str
    ) -> EnvironmentSpec:
        spec = version.spec
        code = version.code
        return EnvironmentSpec(
            env_id=env_id,
            function_name=function.name,
            function_arn=function.arn,
            version=version.version,
            handler=spec.handler,
            code_dir=code.task_root,
            paths=code.paths,
            runtime=spec.runtime,
            memory_mb=spec.memory_mb,
            timeout_s=float(spec.timeout_s),
            user_environment=dict(spec.environment),
            init_type=init_type,
            region=self.config.region,
            account_id=self.config.account_id,
            logging=spec.logging,
            endpoint_url=self.config.endpoint_url,
            xray_daemon_address=self.config.xray_daemon_address,
            init_cap_s=self.config.limits.init_cap_s if init_type == "on-demand" else None,
            service_endpoints=dict(self.config.service_endpoints),
        )

    def _environment_event(self, env_id: str, event: str, detail: str | None = None) -> None:
        try:
            record = self.policy.environment(env_id)
        except KeyError:
            return
        self.telemetry.environment(
            EnvironmentEvent(
                environment_id=env_id,
                function_name=record.function,
                version=record.version,
                pool=record.pool.value,
                event=event,
                at=self.epoch.now(),
                detail=detail,
            )
        )

    async def _reaper(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.config.reap_interval_s)
            for env_id in self.policy.reap_idle():
                self.leases.kill_later(env_id, "reaped")

    # --- invoke ---------------------------------------------------------------------------------------------------

    def validate_payload(self, payload: bytes, invocation_type: str) -> bytes:
        limit = constants.ASYNC_PAYLOAD_LIMIT if invocation_type == "Event" else constants.SYNC_PAYLOAD_LIMIT
        if len(payload) > limit:
            raise RequestTooLargeException(
                f"Request must be smaller than {limit} bytes for the {invocation_type} invocation type",
            )
        if not payload.strip():
            return b"{}"
        try:
            json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequestContentException(
                "Could not parse request body into json: the payload is not JSON"
            ) from None
        return payload

    async def invoke(
        self,
        function_name: str,
        qualifier: str | None,
        payload: bytes,
        *,
        invocation_type: str = "RequestResponse",
        log_type: str = "None",
        trace_header: str | None = None,
        client_context: str | None = None,
        local_wait: LocalWait | None = None,
    ) -> InvokeOutcome:
        """The Invoke API. `local_wait`, when given, is kept current with this request's waits for this machine
        while it runs (a caller's timeout must not count them: API Gateway's 29 s)."""
        received_at = self.epoch.now()
        if invocation_type not in ("RequestResponse", "Event", "DryRun"):
            raise InvalidParameterValueException(
                f"1 validation error detected: Value '{invocation_type}' at 'invocationType' failed to satisfy "
                "constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
            )
        if log_type not in ("None", "Tail"):
            raise InvalidParameterValueException(
                f"1 validation error detected: Value '{log_type}' at 'logType' failed to satisfy constraint: "
                "Member must satisfy enum value set: [Tail, None]"
            )
        function, as_invoked, version = self._resolve(function_name, qualifier)
        payload = self.validate_payload(payload, invocation_type)
        request_id = str(uuid.uuid4())
        if invocation_type == "DryRun":
            return InvokeOutcome(204, b"", request_id, executed_version=version.version)
        if invocation_type == "Event":
            self.accept_async(
                function, as_invoked, payload, request_id=request_id, received_at=received_at, trace_header=trace_header
            )
            return InvokeOutcome(202, b"", request_id)
        attempt = _Attempt(request_id, function, as_invoked, version, invocation_type, received_at, trace_header)
        attempt.local_wait = local_wait
        return self._sync_outcome(await self._run(attempt, payload, client_context), log_type)

    async def invoke_internal(self, function_arn: str, payload: bytes) -> InvocationResult | Rejected:
        """A RequestResponse invocation from inside Lambda (an event source mapping): the typed result, or why Lambda
        rejected the request before any attempt. The same path as `invoke` without the HTTP shapes."""
        received_at = self.epoch.now()
        try:
            function, as_invoked, version = self._resolve(function_arn, None)
            payload = self.validate_payload(payload, "RequestResponse")
        except LambdaApiError as exc:
            return Rejected(exc.code, exc.message, exc.status)
        attempt = _Attempt(str(uuid.uuid4()), function, as_invoked, version, "RequestResponse", received_at, None)
        return await self._run(attempt, payload)

    def enqueue_internal(self, function_arn: str, payload: bytes, *, trace_header: str | None = None) -> str | Rejected:
        """An asynchronous invocation from inside AWS (SNS, EventBridge, S3, a schedule, a destination): the event's
        request id once it is in the async queue, or why Lambda rejected it (the Event payload limit, an unknown
        function). The same path as `invoke` with InvocationType Event, without the HTTP shapes."""
        received_at = self.epoch.now()
        try:
            function, as_invoked, _ = self._resolve(function_arn, None)
            payload = self.validate_payload(payload, "Event")
        except LambdaApiError as exc:
            return Rejected(exc.code, exc.message, exc.status)
        request_id = str(uuid.uuid4())
        self.accept_async(
            function, as_invoked, payload, request_id=request_id, received_at=received_at, trace_header=trace_header
        )
        return request_id

    def _resolve(self, function_name: str, qualifier: str | None) -> tuple[LambdaFunction, str, FunctionVersion]:
        """(the function, the qualifier as invoked, the version that runs), or the Lambda API's error."""
        function = self.store.get(function_name)
        _, embedded_qualifier = split_function_name(function_name)
        if embedded_qualifier and qualifier and embedded_qualifier != qualifier:
            raise InvalidParameterValueException(
                "The derived qualifier from the function name does not match the specified qualifier."
            )
        as_invoked, version = function.resolve(qualifier or embedded_qualifier)
        return function, as_invoked, version

    def mapping_function_arn(self, function_name: str) -> str:
        """The ARN a mapping targets (qualified when the name is); an unknown function, version or alias is
        ResourceNotFoundException."""
        function = self.store.get(function_name)
        _, qualifier = split_function_name(function_name)
        function.resolve(qualifier)
        return function.qualified_arn(qualifier)

    def check_function(self, function_name: str) -> None:
        """ResourceNotFoundException unless the function (the name part) exists."""
        self.store.get(function_name)

    def function_timeout_s(self, function_name: str) -> int:
        """The timeout of the version or alias a (possibly qualified) function name resolves to."""
        function = self.store.get(function_name)
        _, qualifier = split_function_name(function_name)
        _, version = function.resolve(qualifier)
        return int(version.spec.timeout_s)

    def function_role(self, function_name: str) -> str:
        """The execution role of $LATEST ("" when the function is unknown)."""
        try:
            return self.store.get(function_name).latest.spec.role
        except LambdaApiError:
            return ""

    def _sync_outcome(self, run: InvocationResult, log_type: str) -> InvokeOutcome:
        record, result = run.record, run.result
        refusal: LambdaApiError | None = None
        if run.throttle is not None:
            refusal = TooManyRequestsException(run.throttle.reason.value, run.throttle.retry_after_s)
        elif run.outcome is Outcome.LOCAL_ERROR:
            refusal = LocalCapacityException(record.error_message or "lambdalab: this machine could not run the call")
        if refusal is not None:
            refusal.request_id = record.request_id
            refusal.headers["x-amzn-RequestId"] = record.request_id
            raise refusal
        body = run.body()
        function_error = None if run.outcome is Outcome.SUCCESS else "Unhandled"
        log_result = None
        if log_type == "Tail":  # the last 4 KB of what the call wrote to its log stream
            logs = result.logs if result is not None else run.init_logs
            log_result = base64.b64encode(logs.encode()[-LOG_TAIL_BYTES:]).decode()
        return InvokeOutcome(200, body, record.request_id, record.version, function_error, log_result)

    async def _run(self, attempt: _Attempt, payload: bytes, client_context: str | None = None) -> InvocationResult:
        """One attempt: admit, start or reuse an environment, invoke, release (a lease). Always returns a record."""
        function, version = attempt.function, attempt.version
        plan = self.telemetry.plan(function.name, function.arn, attempt.trace_header, version.spec.tracing == "Active")
        admit = functools.partial(self._admit, attempt)
        async with self.leases.acquire(
            function, version, attempt.qualifier, admit=admit, local_wait=attempt.local_wait
        ) as lease:
            if lease.throttle is not None:
                reason = lease.throttle.reason.value
                record = self._report(attempt, plan, Outcome.THROTTLED, None, None, throttle_reason=reason)
                return InvocationResult(Outcome.THROTTLED, record, throttle=lease.throttle)
            decision, env_id = lease.decision, lease.env_id
            cold = lease.cold or ColdStart()
            if cold.failure is not None:
                record = self._report(
                    attempt,
                    plan,
                    cold.failure,
                    decision,
                    env_id,
                    init_start=cold.init_start,
                    init_duration=cold.init_duration,
                    error_type=cold.error_type,
                    error_message=cold.error_message,
                    init_wait=cold.init_wait,
                )
                return InvocationResult(cold.failure, record, init_logs=cold.logs)
            assert lease.env is not None
            request = InvokeRequest(
                request_id=attempt.request_id,
                payload=payload,
                deadline=self.clock.now() + version.spec.timeout_s,
                invoked_function_arn=function.qualified_arn(None if attempt.qualifier == LATEST else attempt.qualifier),
                trace_header=plan.environment_header,
                client_context=client_context,
                tracing_active=version.spec.tracing == "Active",
            )
            result = await lease.env.invoke(request)
            init_duration, init_wait = cold.init_duration, cold.init_wait
            if result.init_duration_s is not None:  # the INIT re-run inside the invoke
                init_duration = result.init_duration_s
                init_wait += result.init_local_wait_s
            lease.finish(result)
            outcome = _OUTCOMES[result.status]
            error_message = None if result.status == InvokeStatus.SUCCESS else _error_message(result.body)
            record = self._report(
                attempt,
                plan,
                outcome,
                decision,
                env_id,
                init_start=cold.init_start,
                init_duration=init_duration,
                result=result,
                error_type=result.error_type,
                error_message=error_message,
                init_wait=init_wait,
            )
            return InvocationResult(outcome, record, result)

    async def _admit(self, attempt: _Attempt) -> Admitted | Throttled:
        """The policy's decision, except where this machine lags behind AWS: a call waits for an environment to come
        free while one is held up in INIT by this machine past its usual INIT (`_wait_while_lagging`), and a
        concurrency throttle this machine caused waits and is decided again (`_admit_after_local_backlog`)."""
        if self._lagging(attempt.function.name, attempt.version.version, attempt.qualifier):
            await self._wait_while_lagging(attempt)
        decision = self.policy.admit(attempt.function.name, attempt.version.version, attempt.qualifier)
        if isinstance(decision, Throttled) and self._held_by_this_machine(decision, attempt.function.name):
            decision = await self._admit_after_local_backlog(attempt, decision)
        return decision

    def _held_by_this_machine(self, decision: Throttled, function_name: str) -> bool:
        """Is a concurrency throttle this machine's doing? Yes while an environment it counts (the function's for a
        reserved-concurrency throttle, any for the account's) is held up in INIT by this machine
        (`_init_held_up_locally`): on AWS, where each environment has a CPU of its own, its INIT would be over by
        now. The scaling rate (10 s windows) is not a matter of CPU."""
        if decision.reason is ThrottleReason.SCALING_RATE:
            return False
        now = self.epoch.now()
        reserved = decision.reason is ThrottleReason.RESERVED
        return any(
            self._init_held_up_locally(env, now)
            for env in self.host.environments.values()
            if not reserved or env.spec.function_name == function_name
        )

    def _init_held_up_locally(self, env: InitInProgress, now: float) -> bool:
        """On AWS this INIT would be over, and here it is not because it waited for this machine: it began (its
        spawn request) longer ago than its function's INITs take here unhurried, and it has waited for this machine
        — its fork, the CPU gate, the run queue of a CPU shared with a storm's other INITs — for longer than it is
        late, so without the waits it would be over too. An INIT that is late for its own reasons (a slow call of
        its own, more work than usual) does not count: AWS would still be running it."""
        usual = self._usual_init_s.get(env.spec.function_name)
        if usual is None:
            return False
        late = env.init_elapsed_s(now) - usual
        if late <= 0:
            return False
        waited = env.init_waited_s(now)
        return waited is not None and waited > max(late, UNHURRIED_FORK_S)

    def _note_init(self, function_name: str, init_s: float) -> None:
        """The INIT durations (local waits excluded) a function has reported lately: their median is what its INIT
        takes on its own here, the yardstick of `_held_by_this_machine`."""
        recent = self._recent_inits.setdefault(function_name, collections.deque(maxlen=21))
        recent.append(init_s)
        self._usual_init_s[function_name] = sorted(recent)[len(recent) // 2]

    async def _admit_after_local_backlog(
        self, attempt: _Attempt, decision: Admitted | Throttled
    ) -> Admitted | Throttled:
        """Wait — do not throttle — while the concurrency is held up by INITs waiting for this machine; decide
        again each time a call ends, and for good once none is held up (then a throttle is Lambda's). The wait is
        local, in the record's `local_wait_s`; bounded by ADMISSION_WAIT_LIMIT_S (then the throttle stands and the
        record shows the wait)."""
        began = self.clock.now()
        deadline = began + ADMISSION_WAIT_LIMIT_S
        name = attempt.function.name
        if attempt.local_wait is not None:
            attempt.local_wait.begin(began)
        while isinstance(decision, Throttled) and self._held_by_this_machine(decision, name):
            throttle = decision
            reserved = throttle.reason is ThrottleReason.RESERVED
            key = ("held", throttle.reason, name if reserved else None)
            still = functools.partial(self._held_by_this_machine, throttle, name)
            if not await self.waiting.pause(key, name if reserved else None, still, deadline):
                break
            decision = self.policy.admit(name, attempt.version.version, attempt.qualifier)
        ended = self.clock.now()
        attempt.admission_wait_s += ended - began
        if attempt.local_wait is not None:
            attempt.local_wait.end(ended)
        return decision

    def _lagging(self, function_name: str, version: str, qualifier: str) -> bool:
        """Would AWS have an environment of this function version free for a new call, where this machine has none?
        Yes when none is idle but one is held up in INIT by this machine (`_init_held_up_locally`): on AWS, with a
        CPU of its own, it would have finished INIT and its first call. A call then waits for an environment to
        come free rather than start one more INIT that this machine cannot run either — a cold-start storm that
        feeds itself (each wait makes the next call cold too, and every INIT waits longer). It is warm when it gets
        one, as it would have been on AWS."""
        if function_name not in self._usual_init_s:
            return False  # the function was never seen to INIT: no yardstick
        if self.policy.has_idle(function_name, version, qualifier):
            return False  # the policy will hand it over: warm or provisioned
        now = self.epoch.now()
        environments = self.host.environments
        return any(
            record.state is EnvState.INIT
            and record.pool is Pool.ON_DEMAND
            and record.version == version
            and (env := environments.get(record.env_id)) is not None
            and self._init_held_up_locally(env, now)
            for record in self.policy.environments(function_name)
        )

    async def _wait_while_lagging(self, attempt: _Attempt) -> None:
        began = self.clock.now()
        deadline = began + ADMISSION_WAIT_LIMIT_S
        where = (attempt.function.name, attempt.version.version, attempt.qualifier)
        still = functools.partial(self._lagging, *where)
        if attempt.local_wait is not None:
            attempt.local_wait.begin(began)
        while still():
            if not await self.waiting.pause(("lagging", *where), attempt.function.name, still, deadline):
                break
        ended = self.clock.now()
        attempt.admission_wait_s += ended - began
        if attempt.local_wait is not None:
            attempt.local_wait.end(ended)

    def _concurrency_changed(self) -> None:
        """Report the concurrency once per event-loop turn, however many changes the turn made (a burst of them
        costs one snapshot). A request's admit and its own release never share a turn; the sample is the state at
        the end of the turn, so only a peak that rose and fell within one turn (one request released while another
        was admitted) is not seen."""
        if self._loop is None:
            self._report_concurrency()
        elif not self._concurrency_pending:
            self._concurrency_pending = True
            self._loop.call_soon(self._report_concurrency)

    def _report_concurrency(self) -> None:
        self._concurrency_pending = False
        policy = self.policy
        functions = self.store.values()
        provisioned = {
            (function.name, qualifier): ProvisionedState(
                busy=policy.provisioned_concurrent_executions(function.name, qualifier),
                allocated=policy.provisioned_allocated(function.name, qualifier),
            )
            for function in functions
            for qualifier in policy.provisioned_qualifiers(function.name)
        }
        snapshot = ConcurrencySnapshot(
            at=self.epoch.now(),
            account_concurrent=policy.concurrent_executions(),
            unreserved_concurrent=policy.unreserved_concurrent_executions(),
            functions={f.name: policy.concurrent_executions(f.name) for f in functions},
            resources={k: v for k, v in self.leases.in_flight.items() if k[1] != LATEST},
            provisioned=provisioned,
        )
        self.telemetry.concurrency(snapshot)

    def _report(
        self,
        attempt: _Attempt,
        plan: TracePlan,
        outcome: Outcome,
        decision: Admitted | None,
        env_id: str | None,
        *,
        init_start: float | None = None,
        init_duration: float | None = None,
        result: InvokeResult | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
        throttle_reason: str | None = None,
        init_wait: float = 0.0,
    ) -> InvocationRecord:
        """Build the attempt's record and hand it, with its trace plan, to the telemetry."""
        spec = attempt.version.spec
        duration = result.duration_s if result is not None else None
        billed = None
        if duration is not None:
            billed = billed_duration_ms(duration, init_duration)
        record = InvocationRecord(
            request_id=attempt.request_id,
            function_name=attempt.function.name,
            function_arn=attempt.function.arn,
            qualifier=attempt.qualifier,
            version=attempt.version.version,
            invocation_type=attempt.invocation_type,
            outcome=outcome,
            start_kind=decision.kind.value if decision is not None else None,
            spillover=bool(decision is not None and decision.spillover),
            environment_id=env_id,
            received_at=attempt.received_at,
            init_start=init_start,
            init_duration_s=init_duration,
            invoke_start=result.started_at if result is not None else None,
            invoke_end=result.ended_at if result is not None else None,
            duration_s=duration,
            billed_duration_ms=billed,
            memory_mb=spec.memory_mb,
            max_memory_used_mb=result.max_memory_used_mb if result is not None else None,
            error_type=error_type,
            error_message=error_message,
            throttle_reason=throttle_reason,
            trace_id=plan.trace_id,
            parent_id=plan.caller_parent_id,
            sampled=plan.sampled,
            attempt=attempt.attempt,
            tracing_active=spec.tracing == "Active",
            responded_at=self.epoch.now(),
            init_local_wait_s=init_wait,
            local_wait_s=attempt.admission_wait_s + init_wait + (result.local_wait_s if result is not None else 0.0),
        )
        self.telemetry.invocation(record, plan)
        return record

    # --- asynchronous invocation ----------------------------------------------------------------------------------

    def accept_async(
        self,
        function: LambdaFunction,
        qualifier: str,
        payload: bytes,
        *,
        request_id: str,
        received_at: float,
        trace_header: str | None,
    ) -> None:
        event = AsyncEvent(
            event_id=request_id,
            function=function.name,
            qualifier=None if qualifier == LATEST else qualifier,
            payload=payload,
            function_arn=function.qualified_arn(None if qualifier == LATEST else qualifier),
            trace_header=trace_header,
            accepted_epoch=received_at,
        )
        self.queue.accept(event)
        received = AsyncMetricEvent(AsyncMetricKind.RECEIVED, function.name, event.qualifier, received_at)
        self.telemetry.async_event(received)
        self._queue_wakeup.set()

    async def _async_dispatcher(self) -> None:
        """Hand due events to attempts; sleep exactly until the next one is due, or until woken."""
        while not self._stopping:
            for disposition in self.queue.take_expired():
                await self._dispose(disposition)
            for event in self.queue.due():
                self._spawn_task(self._deliver(event), f"async-{event.event_id}")
            next_at = self.queue.next_due_at()
            timeout = 3600.0 if next_at is None else max(0.0, next_at - self.clock.now())
            self._queue_wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue_wakeup.wait(), timeout=timeout)

    async def _deliver(self, event: AsyncEvent) -> None:
        try:
            function = self.store.get(event.function)
            as_invoked, version = function.resolve(event.qualifier)
        except LambdaApiError as exc:
            await self._dispose(self.queue.on_system_error(event, exc.message, exc.status))
            return
        now = self.epoch.now()  # AsyncEventAge: from queued to this attempt's invoke, on every attempt
        self.telemetry.async_event(
            AsyncMetricEvent(
                AsyncMetricKind.DEQUEUED, function.name, event.qualifier, now, age_s=now - (event.accepted_epoch or now)
            )
        )
        attempt = _Attempt(
            event.event_id,
            function,
            as_invoked,
            version,
            "Event",
            now,
            event.trace_header,
            attempt=event.attempts + 1,
        )
        try:
            run = await self._run(attempt, event.payload)
        except Exception as exc:  # a bug or an OS failure: retried like a 5xx, never lost
            LOG.exception("async attempt of %s failed in the service", event.event_id)
            await self._dispose(self.queue.on_system_error(event, str(exc)))
            return
        record, result = run.record, run.result
        if run.outcome is Outcome.LOCAL_ERROR:  # retried like a 5xx, never lost, never counted as Lambda's
            disposition = self.queue.on_system_error(event, record.error_message or "local capacity")
        elif run.throttle is not None:
            disposition = self.queue.on_throttle(
                event, run.throttle.reason.value, reserved_zero=self.policy.reserved(function.name) == 0
            )
        elif run.outcome is Outcome.SUCCESS:
            disposition = self.queue.on_success(event, result.body if result else None, record.version)
        else:
            body = run.body()
            disposition = self.queue.on_function_error(
                event,
                record.error_type or "Unhandled",
                record.error_message or "",
                response_payload=body,
                executed_version=record.version,
            )
        await self._dispose(disposition)

    async def _dispose(self, disposition: Disposition) -> None:
        """Send a finished event where its configuration says: a destination, the DLQ, or nowhere (recorded)."""
        target = disposition.target_arn
        event = disposition.event
        if disposition.action == Action.DISCARDED:
            LOG.info("async event %s discarded: %s", event.event_id, disposition.reason)
        if disposition.action in (Action.DISCARDED, Action.DLQ, Action.DESTINATION):
            # dropped without a successful run (sent to the DLQ or on-failure destination first, if any)
            self._async_metric(AsyncMetricKind.DROPPED, event)
        if target is not None and (self._event_sender is not None or _is_function_arn(target)):
            if disposition.dlq_message is not None:
                body, attributes = disposition.dlq_message.body, disposition.dlq_message.attributes
            else:
                body, attributes = json.dumps(disposition.record or {}).encode(), {}
            try:
                await self.deliver(target, body, attributes)
            except Exception as exc:
                LOG.warning("could not deliver event %s to %s: %s", event.event_id, target, exc)
                failed = disposition.action == Action.DLQ
                kind = AsyncMetricKind.DEAD_LETTER_ERROR if failed else AsyncMetricKind.DESTINATION_DELIVERY_FAILURE
                self._async_metric(kind, event)
        self._queue_wakeup.set()

    async def deliver(self, target_arn: str, body: bytes, attributes: dict[str, str]) -> None:
        """Deliver a record to a destination: a function is invoked asynchronously (InvocationType Event), anything
        else goes to the event sender; raise on failure."""
        if _is_function_arn(target_arn):
            queued = self.enqueue_internal(target_arn, body)
            if isinstance(queued, Rejected):
                raise RuntimeError(f"Lambda rejected the destination invoke: {queued.code}: {queued.message}")
            return
        if self._event_sender is None:
            raise RuntimeError(f"no delivery to {target_arn} is wired into the Lambda service")
        await self._event_sender(target_arn, body, attributes)

    def _async_metric(self, kind: AsyncMetricKind, event: AsyncEvent) -> None:
        self.telemetry.async_event(AsyncMetricEvent(kind, event.function, event.qualifier, self.epoch.now()))

    # --- observation ----------------------------------------------------------------------------------------------

    def account_settings(self) -> dict[str, Any]:
        limits = self.config.limits
        return {
            "AccountLimit": {
                "TotalCodeSize": 80530636800,
                "CodeSizeUnzipped": 262144000,
                "CodeSizeZipped": 52428800,
                "ConcurrentExecutions": limits.account_concurrency,
                "UnreservedConcurrentExecutions": self.policy.unreserved_available(),
            },
            "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": len(self.store.all())},
        }


def _is_function_arn(arn: str) -> bool:
    parts = arn.split(":")
    return len(parts) > 5 and parts[2] == "lambda"


class _EventSender:
    """The Sender (lambdalab.sources.invoke) over `LambdaService.deliver`: delivery to SQS, SNS, buses and functions."""

    def __init__(self, service: LambdaService) -> None:
        self._service = service

    async def send(self, target_arn: str, body: bytes, attributes: dict[str, str]) -> None:
        await self._service.deliver(target_arn, body, attributes)


class ThreadSafeControl:
    """LambdaControl for callers on other threads (the deployer): each call runs on the service's loop."""

    def __init__(self, service: LambdaService, loop: asyncio.AbstractEventLoop, timeout_s: float = 60.0) -> None:
        self._service = service
        self._loop = loop
        self._timeout = timeout_s

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        future: Future[T] = Future()

        def run() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result(timeout=self._timeout)

    def create_function(self, spec: FunctionSpec) -> str:
        roots = self._call(self._service.layer_roots, spec.layers)
        artifact = self._service.build(spec, roots)  # on this thread: pip never blocks the loop
        return self._call(self._service.create_function, spec, artifact)

    def publish_layer_version(self, spec: LayerSpec) -> str:
        opt_root = self._service.build_layer(spec)  # on this thread
        return self._call(self._service.publish_layer_version, spec, opt_root).arn

    def publish_version(self, function_name: str, description: str = "") -> str:
        return self._call(self._service.publish_version, function_name, description)

    def create_alias(self, function_name: str, alias_name: str, function_version: str, description: str = "") -> str:
        return self._call(self._service.create_alias, function_name, alias_name, function_version, description)

    def put_function_concurrency(self, function_name: str, reserved: int) -> None:
        self._call(self._service.put_function_concurrency, function_name, reserved)

    def put_provisioned_concurrency(self, function_name: str, qualifier: str, count: int) -> None:
        self._call(self._service.put_provisioned_concurrency, function_name, qualifier, count)

    def put_event_invoke_config(self, config: EventInvokeConfig) -> None:
        self._call(self._service.put_event_invoke_config, config)

    def function_arn(self, function_name: str, qualifier: str | None = None) -> str:
        return self._call(self._service.function_arn, function_name, qualifier)

    def create_event_source_mapping(self, properties: dict[str, Any]) -> str:
        mappings = self._service.event_sources
        source, _, _ = self._call(mappings.check, properties, True)
        queue_url = mappings.resolve_queue(source)  # on this thread: the loop never waits on SQS
        return self._call(lambda: mappings.create(properties, queue_url, True).uuid)


def _policy_error(exc: PolicyError) -> LambdaApiError:
    """The policy's refusal as the Lambda API error AWS returns for it."""
    if exc.code == "ResourceConflictException":
        return ResourceConflictException(exc.message)
    return InvalidParameterValueException(exc.message)


_OUTCOMES = {
    InvokeStatus.SUCCESS: Outcome.SUCCESS,
    InvokeStatus.FUNCTION_ERROR: Outcome.FUNCTION_ERROR,
    InvokeStatus.TIMEOUT: Outcome.TIMEOUT,
    InvokeStatus.CRASH: Outcome.CRASH,
    InvokeStatus.LOCAL_ERROR: Outcome.LOCAL_ERROR,
}


def _error_message(body: bytes) -> str | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return body.decode(errors="replace")[:1024]
    return parsed.get("errorMessage") if isinstance(parsed, dict) else None


def function_spec_from_api(body: dict[str, Any], code_dir: Path) -> FunctionSpec:
    """CreateFunction's JSON body → FunctionSpec (code already unpacked into code_dir)."""
    env = (body.get("Environment") or {}).get("Variables") or {}
    return FunctionSpec(
        name=body["FunctionName"],
        handler=body.get("Handler", ""),
        runtime=body.get("Runtime", ""),
        code_dir=code_dir,
        timeout_s=int(body.get("Timeout", constants.DEFAULT_TIMEOUT_SECONDS)),
        memory_mb=int(body.get("MemorySize", constants.DEFAULT_MEMORY_MB)),
        environment={str(k): str(v) for k, v in env.items()},
        role=body.get("Role", ""),
        tracing=(body.get("TracingConfig") or {}).get("Mode", "PassThrough"),
        architectures=tuple(body.get("Architectures") or ("x86_64",)),
        description=body.get("Description", ""),
        dead_letter_target_arn=(body.get("DeadLetterConfig") or {}).get("TargetArn"),
        tags=dict(body.get("Tags") or {}),
        layers=tuple(str(arn) for arn in body.get("Layers") or ()),
        logging=logging_config(body.get("LoggingConfig")),
    )


def logging_config(value: Any) -> LoggingConfig:
    """A LoggingConfig member (API body or template property) → LoggingConfig, or Lambda's validation error."""
    if value is not None and not isinstance(value, dict):
        raise InvalidParameterValueException("LoggingConfig must be an object")
    try:
        return LoggingConfig.from_api(value)
    except ValueError as exc:
        raise InvalidParameterValueException(str(exc)) from None
