"""The discrete-event simulator: the template's functions on a virtual clock, every rule the local cloud's.

One event heap, one clock. Decisions are made by the same code the local cloud runs: the concurrency policy and the
invocation lifecycle (lambdalab/awslambda/core/policy.py, lifecycle.py), the async queue (core/asyncq.py), the SQS
poller scaling (core/esm.py), the DynamoDB capacity meter (dynamodb/meter.py), target tracking (autoscaling/policy.py)
fed by the same CloudWatch aggregation of ProvisionedConcurrencyUtilization (observe/metrics.py). What is simulated
here is what the local cloud gets from processes and moto: how long an INIT or an invocation takes (the function
models), and an SQS queue's visibility timeout and redrive.

Hot path (a warm environment free): `call` → `Lifecycle.invoke` → `Run` → one heap push; the end event →
`Lifecycle.run_done` → `Answer` → counters. bench/bench_simulate.py measures it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lambdalab import constants
from lambdalab.autoscaling.policy import (
    PC_DIMENSION,
    Decision,
    TargetTracker,
    dynamodb_utilization,
    function_of_resource,
    lambda_metric_query,
    last_due_period,
    table_of_resource,
    tracker_for,
)
from lambdalab.awslambda.core.asyncq import Action, AsyncEvent, AsyncQueue
from lambdalab.awslambda.core.esm import SqsScaling
from lambdalab.awslambda.core.lifecycle import (
    Answer,
    Attempt,
    Command,
    Dispose,
    Kill,
    Lifecycle,
    Reject,
    Run,
    Spawn,
)
from lambdalab.awslambda.core.outcome import Outcome
from lambdalab.awslambda.core.policy import ConcurrencyPolicy, Limits, PolicyError, StartKind, ThrottleReason
from lambdalab.dynamodb.meter import CapacityMeter, Kind, Use
from lambdalab.errors import UserError
from lambdalab.observe.metrics import ConcurrencySnapshot, MetricsAggregator, ProvisionedState
from lambdalab.simulate.models import FunctionModel, ModelSet
from lambdalab.simulate.stack import LATEST, Function, Queue, SimStack
from lambdalab.traces.model import bulk

LOG = logging.getLogger(__name__)

PERIOD_S = 60.0  # CloudWatch's 1-minute period, as target tracking reads it
METRIC_LAG_PERIODS = 1.2  # the local executor's lag: a datapoint is read 1.2 periods after its period ends
REAP_INTERVAL_S = 5.0  # the local service's reaper interval
LONG_POLL_S = 20.0  # Lambda's SQS pollers long-poll 20 s
THROTTLE_BACKOFF_S = 0.2  # the local poller's pause after a throttled batch (AWS does not publish its own)
SUPERVISE_S = 0.05  # the local supervisor starts pollers every 50 ms while the level allows


_THROTTLE_LABELS = {reason.value: f"throttles {reason.value}" for reason in ThrottleReason}
# enum members as module constants on the hot path (an enum class attribute costs ~200 ns on CPython 3.11)
_SUCCESS, _THROTTLED, _FUNCTION_ERROR, _TIMEOUT = (
    Outcome.SUCCESS,
    Outcome.THROTTLED,
    Outcome.FUNCTION_ERROR,
    Outcome.TIMEOUT,
)
_COLD, _WARM, _PROVISIONED = StartKind.COLD, StartKind.WARM, StartKind.PROVISIONED


class EventClock:
    """The simulation's clock (a Clock): set by the event loop, read by every rule."""

    __slots__ = ("t",)

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


class Sample:
    """Values kept for quantiles: all of them up to `cap`, then a systematic subsample (every 2nd, 4th, ...) so memory
    stays bounded at tens of millions of invocations; quantiles of the subsample stay unbiased.

    The hot path only appends to `buffer` (`push`, a C-level call); `flush()` — called once per time-series bin and
    before the values are read — moves the buffer into the kept values with the current stride."""

    __slots__ = ("buffer", "cap", "kept", "offset", "push", "stride")

    def __init__(self, cap: int = 400_000) -> None:
        self.buffer = array("d")
        self.push = self.buffer.append
        self.kept = array("d")
        self.stride = 1
        self.offset = 0  # index in the buffer of the next value to keep
        self.cap = cap

    def add(self, value: float) -> None:
        self.push(value)

    def flush(self) -> None:
        buffer = self.buffer
        if not buffer:
            return
        if self.stride == 1:
            self.kept.extend(buffer)
        else:
            self.kept.extend(buffer[self.offset :: self.stride])
            self.offset = (self.offset - len(buffer)) % self.stride
        del buffer[:]  # the same array: `push` stays bound to it
        while len(self.kept) >= self.cap:
            self.kept = self.kept[1::2]
            self.stride *= 2
            self.offset %= self.stride

    @property
    def values(self) -> array[float]:
        self.flush()
        return self.kept

    def sorted(self) -> list[float]:
        return sorted(self.values)


class SimAttempt(Attempt):
    """An attempt plus what the simulator records about it."""

    __slots__ = (
        "call_index",
        "call_tries",
        "done",
        "init_duration",
        "init_start",
        "invoke_end",
        "invoke_start",
        "key",
        "key_stats",
        "status",
        "work",
    )
    work: float  # assigned by _start_run when the model makes DynamoDB calls, with the two below
    call_index: int
    call_tries: int

    def __init__(
        self,
        request_id: int,
        function: str,
        version: str,
        qualifier: str,
        *,
        timeout_s: float,
        received_at: float,
        done: Callable[[SimAttempt], None] | None,
        key: tuple[str, str] | None = None,
        key_stats: KeyStats | None = None,
    ) -> None:
        # Attempt's slots and this class's, assigned here in one call (the hot path builds one per invocation). Not
        # assigned until used: `context` and `init_retried` (never read here), and the DynamoDB step's `work`,
        # `call_index`, `call_tries` (set by _start_run when the model has calls).
        self.request_id = request_id
        self.function = function
        self.version = version
        self.qualifier = qualifier
        self.timeout_s = timeout_s
        self.received_at = received_at
        self.async_event = None
        self.env_id = None
        self.kind = None
        self.spillover = False
        self.outcome = None
        self.throttle = None
        self.key = key or (function, qualifier)
        self.key_stats = key_stats
        self.done = done
        self.init_start: float | None = None
        self.init_duration: float | None = None
        self.invoke_start: float | None = None
        self.invoke_end: float | None = None
        self.status = 200


@dataclass(slots=True)
class KeyStats:
    """Counters and samples of one function and qualifier."""

    function: str
    qualifier: str
    invocations: int = 0
    cold: int = 0
    warm: int = 0
    provisioned: int = 0
    spillover: int = 0
    throttles: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    init: Sample = field(default_factory=Sample)
    duration: Sample = field(default_factory=Sample)
    e2e_cold: Sample = field(default_factory=Sample)
    e2e_warm: Sample = field(default_factory=Sample)
    billed_ms_on_demand: float = 0.0  # duration + INIT of on-demand cold starts (billed since August 2025)
    billed_ms_provisioned: float = 0.0  # duration on provisioned environments
    labels: tuple[str, str, str] = ("", "", "")  # series names: arrivals, cold starts, spillover


class Series:
    """Time series in fixed bins from the start of the load (bin width `width` seconds): counts (events per bin) and
    peaks (the highest value seen in the bin)."""

    __slots__ = ("counts", "gauges", "start", "width")

    def __init__(self, width: float, start: float) -> None:
        self.width = width
        self.start = start
        self.counts: dict[str, array[float]] = {}
        self.gauges: dict[str, array[float]] = {}

    def index(self, t: float) -> int:
        return max(0, int((t - self.start) / self.width))

    @staticmethod
    def grow(table: dict[str, array[float]], name: str, i: int) -> array[float]:
        row = table.get(name)
        if row is None:
            row = table[name] = array("d")
        if len(row) <= i:
            row.extend(array("d", [0.0]) * (i + 1 - len(row) + 256))
        return row

    def count(self, name: str, t: float, value: float = 1.0) -> None:
        i = int((t - self.start) / self.width + 1e-9) if t > self.start else 0
        row = self.counts.get(name)
        if row is None or len(row) <= i:
            row = self.grow(self.counts, name, i)
        row[i] += value

    def peak(self, name: str, t: float, value: float) -> None:
        i = int((t - self.start) / self.width + 1e-9) if t > self.start else 0
        row = self.gauges.get(name)
        if row is None or len(row) <= i:
            row = self.grow(self.gauges, name, i)
        row[i] = max(row[i], value)

    def length(self) -> int:
        return max((len(r) for r in (*self.counts.values(), *self.gauges.values())), default=0)


@dataclass
class Activity:
    at: float
    resource_id: str
    dimension: str
    direction: str
    old: int
    new: int
    datapoint: float
    alarm: str


@dataclass
class _Tracked:
    resource_id: str
    dimension: str
    metric: dict[str, Any]
    tracker: TargetTracker
    next_period: int


class _Runtime:
    """What the host needs per function: its model's samplers and settings."""

    __slots__ = (
        "calls",
        "concurrency_label",
        "errors",
        "init",
        "init_errors",
        "logical_id",
        "model",
        "run",
        "spec",
        "status",
    )

    def __init__(self, spec: Function, model: FunctionModel, rng: random.Random, tables: dict[str, str]) -> None:
        self.spec = spec
        self.logical_id = spec.logical_id
        self.model = model
        self.init = model.init.sampler(rng)
        self.run = model.duration.sampler(rng)
        self.errors = model.errors
        self.init_errors = model.init_errors
        self.status = model.status
        self.concurrency_label = f"concurrency {spec.name}"
        self.calls: list[tuple[str, tuple[Use, ...], int, float, tuple[tuple[str, float], ...]]] = []
        for call in model.dynamodb:
            uses: list[Use] = []
            if call.read:
                uses.append(Use(call.index, Kind.READ, call.read))
            if call.write:
                uses.append(Use(call.index, Kind.WRITE, call.write))
            table = tables[call.table]
            labels = tuple((f"dynamodb consumed {use.kind.value} {table}", use.units) for use in uses)
            self.calls.append((table, tuple(uses), call.retries, call.backoff_s, labels))


class _SimQueue:
    """An SQS queue as the simulator needs it: visible messages, in-flight ones with their visibility timeout, receive
    counts, and the redrive to a dead-letter queue when a message is received more than maxReceiveCount times.
    (The local cloud gets this from moto; moto's SQS cannot run on a virtual clock.)"""

    def __init__(self, spec: Queue) -> None:
        self.spec = spec
        self.visible: deque[list[float]] = deque()  # [sent_at, receive_count]
        self.invisible: list[tuple[float, int, list[float]]] = []  # (visible again at, seq, message)
        self.seq = itertools.count()
        self.sent = 0
        self.deleted = 0
        self.dead_lettered = 0
        self.dlq: _SimQueue | None = None
        self.requests = 0  # SQS API requests (send, receive, delete), for the cost

    def refresh(self, now: float) -> None:
        while self.invisible and self.invisible[0][0] <= now:
            self.visible.append(heapq.heappop(self.invisible)[2])

    def backlog(self, now: float) -> tuple[int, int]:
        self.refresh(now)
        return len(self.visible), len(self.invisible)

    def receive(self, now: float, count: int) -> list[list[float]]:
        self.refresh(now)
        taken: list[list[float]] = []
        limit = self.spec.max_receive_count
        while self.visible and len(taken) < count:
            message = self.visible.popleft()
            if limit is not None and message[1] >= limit and self.dlq is not None:
                self.dead_lettered += 1  # received maxReceiveCount times already: SQS moves it on this receive
                self.dlq.visible.append([now, 0.0])
                self.dlq.sent += 1
                continue
            message[1] += 1
            heapq.heappush(self.invisible, (now + self.spec.visibility_timeout_s, next(self.seq), message))
            taken.append(message)
        return taken

    def delete(self, messages: list[list[float]]) -> None:
        ids = {id(m) for m in messages}
        self.invisible = [entry for entry in self.invisible if id(entry[2]) not in ids]
        heapq.heapify(self.invisible)
        self.deleted += len(messages)

    def next_visible_at(self) -> float | None:
        return self.invisible[0][0] if self.invisible else None


class _Mapping:
    def __init__(self, logical_id: str, queue: _SimQueue, function: Function, qualifier: str, settings: Any) -> None:
        self.logical_id = logical_id
        self.queue = queue
        self.function = function
        self.qualifier = qualifier
        self.settings = settings
        self.scaling: SqsScaling | None = None
        self.waiting: list[int] = []  # pollers in a long poll (ids)
        self.poller_ids = itertools.count(1)
        self.batches = 0
        self.throttled = 0
        self.failed = 0
        self.messages = 0


class Simulation:
    """The template on a virtual clock. Build it, add loads, `run()`, then read the results."""

    def __init__(
        self,
        stack: SimStack,
        models: ModelSet,
        *,
        seed: int = 1,
        limits: Limits | None = None,
        bin_s: float = 1.0,
        keep_invocations: int = 10_000,
    ) -> None:
        self.stack = stack
        self.models = models
        self.rng = random.Random(seed)
        self.clock = EventClock()
        self.limits = limits or Limits()
        self.policy = ConcurrencyPolicy(self.clock, self.limits)
        self.queue = AsyncQueue(self.clock)
        self.life = Lifecycle(self.policy, self.clock, queue=self.queue, timeout_of=self._timeout_of)
        self.meter = CapacityMeter(self.clock)
        self.metrics = MetricsAggregator(self.clock)
        self._heap: list[tuple[float, int, Callable[[Any], None], Any]] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._alive: set[str] = set()
        self._env_kind: dict[str, str] = {}
        self.load_start = 0.0
        self.end = 0.0
        self.active_work = 0  # loads' work in progress between invocations (executions, virtual users)
        self._stream: Iterator[float] | None = None
        self._stream_fire: Callable[[], Any] | None = None
        self._stream_t = math.inf
        self._run_end_cb = self._run_end  # bound once: the hot path schedules it for every call
        self.bin_s = bin_s
        self.series = Series(bin_s, 0.0)
        self.stats: dict[tuple[str, str], KeyStats] = {}
        self.kept: list[SimAttempt] = []
        self.keep_invocations = keep_invocations
        self.dropped_records = 0
        self.activities: list[Activity] = []
        self.async_outcomes: dict[str, int] = {}
        self.envs_created = {"on-demand": 0, "provisioned-concurrency": 0}
        self.env_ready: dict[str, tuple[float, float]] = {}  # provisioned env id → (created, ready), for the timeline
        self.notes: list[str] = []
        self._by_name = {f.name: f for f in stack.functions.values()}
        tables = {}
        for table in stack.tables.values():
            tables[table.logical_id] = table.name
            tables[table.name] = table.name
            self.meter.set_table(table.description())
        self._tables = tables
        self._runtime: dict[str, _Runtime] = {}
        for spec in stack.functions.values():
            model = models.for_function(spec.logical_id, spec.name)
            for call in model.dynamodb:
                if call.table not in tables:
                    raise UserError(
                        f"model of {spec.logical_id}: no DynamoDB table {call.table!r} in the template "
                        f"(tables: {', '.join(sorted(stack.tables)) or 'none'})"
                    )
            self._runtime[spec.name] = _Runtime(spec, model, self.rng, tables)
            self.policy.add_function(spec.name)
        self.initial_capacity = {t.logical_id: (t.read, t.write) for t in stack.tables.values()}
        self.initial_provisioned = {f.name: dict(f.provisioned) for f in stack.functions.values() if f.provisioned}
        self._configure_concurrency()
        self._queues: dict[str, _SimQueue] = {q.arn: _SimQueue(q) for q in stack.queues.values()}
        for q in self._queues.values():
            if q.spec.dlq_arn:
                q.dlq = self._queues.get(q.spec.dlq_arn)
        self.mappings: list[_Mapping] = []
        for m in stack.mappings:
            queue = self._queues.get(m.queue_arn)
            if queue is None:
                self.notes.append(f"{m.logical_id}: queue {m.queue_arn} is not in the template; not simulated")
                continue
            self.mappings.append(_Mapping(m.logical_id, queue, stack.functions[m.function], m.qualifier, m.settings))
        self._resolved: dict[str, dict[str, tuple[str, str, str, KeyStats, tuple[str, str]]]] = {}
        self._tracked: list[_Tracked] = []
        self._pc_watch: dict[tuple[str, str], ProvisionedState] = {}
        self._pc_values: dict[tuple[str, tuple[tuple[str, str], ...], int], dict[str, float]] = {}

    # --- set-up --------------------------------------------------------------------------------------------------

    def _timeout_of(self, function: str, version: str) -> float:
        return self._runtime[function].spec.timeout_s

    def _configure_concurrency(self) -> None:
        for spec in self.stack.functions.values():
            try:
                if spec.reserved is not None:
                    self.policy.set_reserved(spec.name, spec.reserved)
            except PolicyError as exc:
                raise UserError(
                    f"{spec.logical_id}: ReservedConcurrentExecutions {spec.reserved}: {exc.message}"
                ) from None
        for spec in self.stack.functions.values():
            for qualifier, count in spec.provisioned.items():
                _, version = spec.resolve(qualifier)
                try:
                    self._execute_all(self.life.set_provisioned(spec.name, qualifier, version, count))
                except PolicyError as exc:
                    raise UserError(
                        f"{spec.logical_id}:{qualifier}: ProvisionedConcurrentExecutions {count}: {exc.message}"
                    ) from None

    def prepare(self) -> None:
        """Deploy: run the provisioned pre-warm until every environment is ready (as CloudFormation waits for it),
        set up autoscaling and pollers; loads start at `load_start`."""
        self._drain(until=None, stop_when_idle=True)
        self.load_start = self.clock.t
        self.series = Series(self.bin_s, self.load_start)
        self._start_autoscaling()
        for mapping in self.mappings:
            if mapping.settings.enabled:
                mapping.scaling = SqsScaling(self.clock, mapping.settings.maximum_concurrency)
                self._supervise(mapping)
        self.schedule(self.load_start + REAP_INTERVAL_S, self._reap, None)
        self.schedule(self.load_start + self.bin_s, self._sample, None)

    # --- the event loop -------------------------------------------------------------------------------------------

    def schedule(self, at: float, callback: Callable[[Any], None], arg: Any) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), callback, arg))

    def stream(self, times: Iterator[float], fire: Callable[[], Any]) -> bool:
        """Take over one arrival stream (times in order): the loop merges it with the heap instead of pushing an event
        per arrival, which is a quarter of a warm call's cost. Only one stream; False when it is taken."""
        if self._stream_fire is not None:
            return False
        self._stream = times
        self._stream_fire = fire
        self._stream_t = next(times, math.inf)
        return True

    def _drain(self, until: float | None, stop_when_idle: bool = False) -> None:
        heap, pop, clock = self._heap, heapq.heappop, self.clock
        limit = math.inf if until is None else until
        inf = math.inf
        while True:
            st = self._stream_t
            if heap and heap[0][0] <= st:
                if heap[0][0] > limit:
                    break
                t, _, callback, arg = pop(heap)
                clock.t = t
                callback(arg)
            elif st <= limit and st != inf:
                clock.t = st
                stream = self._stream
                assert stream is not None and self._stream_fire is not None
                self._stream_t = next(stream, inf)
                self._stream_fire()
            else:
                break
        if until is not None and until > clock.t:
            clock.t = until

    def run(self, until: float) -> None:
        """Run the loads to `until` (clock time), then let what is in flight finish (at most 15 minutes more).

        The cyclic garbage collector is paused meanwhile (lambdalab.traces.model.bulk): an invocation creates no
        reference cycle, so its passes are pure overhead, about a tenth of the hot path (bench/bench_simulate.py)."""
        with bulk():
            self._run(until)

    def _run(self, until: float) -> None:
        self._horizon = until
        self._drain(until)
        settle = until + 900.0
        self._settling = True
        while self._heap and self._heap[0][0] <= settle and self._busy():
            t, _, callback, arg = heapq.heappop(self._heap)
            self.clock.t = t
            callback(arg)
        self.end = max(self.clock.t, until)

    _settling = False
    _horizon = 0.0

    def _busy(self) -> bool:
        if self.life.in_flight() or self.active_work:
            return True
        if self.queue.counts().queued:
            return True
        return any(m.queue.visible or m.queue.invisible for m in self.mappings)

    # --- invoking -------------------------------------------------------------------------------------------------

    def function_named(self, name: str) -> Function:
        return self._runtime[name].spec

    def call(
        self,
        function: Function,
        qualifier: str,
        done: Callable[[SimAttempt], None] | None,
        *,
        source: str = "invoke",
    ) -> SimAttempt:
        """A synchronous invoke now; `done(attempt)` is called when it is answered (at once when throttled)."""
        by_qualifier = self._resolved.get(function.logical_id)
        resolved = by_qualifier.get(qualifier) if by_qualifier is not None else None
        if resolved is None:
            as_invoked, version = function.resolve(qualifier)
            probe = SimAttempt(0, function.name, version, as_invoked, timeout_s=0, received_at=0, done=None)
            resolved = (function.name, version, as_invoked, self._key(probe), probe.key)
            self._resolved.setdefault(function.logical_id, {})[qualifier] = resolved
        attempt = SimAttempt(
            next(self._ids),
            resolved[0],
            resolved[1],
            resolved[2],
            timeout_s=function.timeout_s,
            received_at=self.clock.t,
            done=done,
            key=resolved[4],
            key_stats=resolved[3],
        )
        command = self.life.invoke(attempt)
        if type(command) is Run:
            self._start_run(command)
        else:
            self._execute(command)
        return attempt

    def call_async(self, function: Function, qualifier: str, *, source: str = "invoke") -> None:
        """InvocationType=Event: 202 at once; the event is queued and dispatched (with retries) by the lifecycle."""
        as_invoked, _ = function.resolve(qualifier)
        event = AsyncEvent(
            event_id=str(next(self._ids)),
            function=function.name,
            qualifier=None if as_invoked == LATEST else as_invoked,
            payload=b"{}",
            accepted_epoch=self.clock.t,
        )
        self.life.accept_async(event)
        self.series.count(f"async accepted {function.logical_id}", self.clock.t)
        self._dispatch_async(None)

    def _dispatch_async(self, _: Any) -> None:
        def make(event: AsyncEvent) -> SimAttempt:
            spec = self._runtime[event.function].spec
            as_invoked, version = spec.resolve(event.qualifier)
            return SimAttempt(
                next(self._ids),
                spec.name,
                version,
                as_invoked,
                timeout_s=spec.timeout_s,
                received_at=self.clock.t,
                done=None,
            )

        self._execute_all(self.life.dispatch_async(make))
        due = self.queue.next_due_at()
        if due is not None and due > self.clock.t:
            self.schedule(due, self._dispatch_async, None)

    def _execute_all(self, commands: Any) -> None:
        for command in commands:
            self._execute(command)

    def _execute(self, command: Command | None) -> None:
        kind = type(command)
        c: Any = command  # narrowed by `kind` (type() is cheaper than isinstance on this path)
        if kind is Run:
            self._start_run(c)
        elif kind is Answer:
            self._answered(c.attempt)
        elif kind is Spawn:
            self._spawn(c)
        elif kind is Reject:
            self._answered(c.attempt)
        elif kind is Kill:
            self._alive.discard(c.env_id)
            if self._env_kind.pop(c.env_id, None) == "provisioned-concurrency":
                self._pc_changed()
        elif kind is Dispose:
            disposition = c.disposition
            action = disposition.action.value
            self.async_outcomes[action] = self.async_outcomes.get(action, 0) + 1
            if disposition.action is Action.REQUEUED and disposition.next_attempt_at is not None:
                self.schedule(disposition.next_attempt_at, self._dispatch_async, None)
        elif command is not None:
            raise AssertionError(f"unknown command {command!r}")

    # --- the simulated host ---------------------------------------------------------------------------------------

    def _spawn(self, command: Spawn) -> None:
        runtime = self._runtime[command.function]
        env_id = command.env_id
        self._alive.add(env_id)
        self._env_kind[env_id] = command.init_type
        self.envs_created[command.init_type] += 1
        now = self.clock.t
        init = runtime.init()
        attempt = command.attempt
        if isinstance(attempt, SimAttempt):
            attempt.init_start = now
            attempt.init_duration = init
            self._count_admission(attempt)
        else:
            self.env_ready[env_id] = (now, now + init)
        if now + init > command.init_deadline:
            self.schedule(command.init_deadline, self._init_timed_out, env_id)
        elif runtime.init_errors and self.rng.random() < runtime.init_errors:
            self.schedule(now + init, self._init_failed, env_id)
        else:
            self.schedule(now + init, self._init_done, env_id)

    def _init_done(self, env_id: str) -> None:
        if env_id not in self._alive:
            return  # retired while in INIT
        command = self.life.init_done(env_id)
        if command is None:
            self._pc_changed()
        self._execute(command)

    def _init_failed(self, env_id: str) -> None:
        if env_id in self._alive:
            self._execute_all(self.life.init_failed(env_id, "Runtime.Unknown: the model's INIT error"))

    def _init_timed_out(self, env_id: str) -> None:
        if env_id in self._alive:
            self._execute_all(self.life.init_timed_out(env_id))

    def _start_run(self, command: Run) -> None:
        attempt: SimAttempt = command.attempt  # type: ignore[assignment]
        runtime = self._runtime[attempt.function]
        now = self.clock.t
        if attempt.init_start is None:  # warm or provisioned: count it now (a cold one was counted at spawn)
            # Series.peak, inlined: this runs for every warm call
            series = self.series
            i = int((now - series.start) / series.width + 1e-9) if now > series.start else 0
            row = series.gauges.get(runtime.concurrency_label)
            if row is None or len(row) <= i:
                row = series.grow(series.gauges, runtime.concurrency_label, i)
            value = self.policy.concurrent_executions(attempt.function)
            if value > row[i]:  # noqa: PLR1730 - a comparison is cheaper than max() on this path
                row[i] = value
            if attempt.kind is _PROVISIONED and attempt.key in self._pc_watch:
                self._pc_changed(attempt.key)
        if command.reinit:  # INIT again inside the invoke, under the function timeout
            again = runtime.init()
            attempt.init_duration = (attempt.init_duration or 0.0) + again
            now += again
        attempt.invoke_start = now
        attempt.status = runtime.status
        work = runtime.run()
        if runtime.calls:
            attempt.work = work
            attempt.call_index = 0
            attempt.call_tries = 0
            if now > self.clock.t:  # after an INIT re-run: the calls happen once it is over
                self.schedule(now, self._dynamo_step, (attempt, command, now))
            else:
                self._dynamo_step((attempt, command, now))
            return
        end = now + work
        if end > command.deadline:
            self.schedule(command.deadline, self._run_timed_out, command)
        else:
            heapq.heappush(self._heap, (end, next(self._seq), self._run_end_cb, command))

    def _dynamo_step(self, state: tuple[SimAttempt, Run, float]) -> None:
        """The function's DynamoDB calls, in order, each admitted by the capacity meter; a refused one is retried with
        the SDK's exponential backoff; one still refused after its retries ends the invocation with the model's
        throttled status (the lab's products function answers 503)."""
        attempt, command, _ = state
        runtime = self._runtime[attempt.function]
        now = self.clock.t
        calls = runtime.calls
        while attempt.call_index < len(calls):
            table, uses, retries, backoff, labels = calls[attempt.call_index]
            if self.meter.admit(table, uses).admitted:
                self.meter.charge(table, uses)
                for label, units in labels:
                    self.series.count(label, now, units)
                attempt.call_index += 1
                attempt.call_tries = 0
                continue
            self.series.count(f"dynamodb throttled requests {table}", now)
            if attempt.call_tries < retries:
                delay = backoff * 2.0**attempt.call_tries
                attempt.call_tries += 1
                if now + delay > command.deadline:
                    self.schedule(command.deadline, self._run_timed_out, command)
                else:
                    self.schedule(now + delay, self._dynamo_step, state)
                return
            attempt.status = runtime.model.throttled_status
            break
        end = now + attempt.work
        if end > command.deadline:
            self.schedule(command.deadline, self._run_timed_out, command)
        else:
            self.schedule(end, self._run_end, command)

    def _run_end(self, command: Run) -> None:
        attempt: SimAttempt = command.attempt  # type: ignore[assignment]
        attempt.invoke_end = self.clock.t
        runtime = self._runtime[attempt.function]
        outcome = _FUNCTION_ERROR if runtime.errors and self.rng.random() < runtime.errors else _SUCCESS
        commands = self.life.run_done(command.env_id, outcome)
        if len(commands) == 1:
            self._answered(commands[0].attempt)  # type: ignore[attr-defined]
        else:
            self._execute_all(commands)

    def _run_timed_out(self, command: Run) -> None:
        command.attempt.invoke_end = self.clock.t  # type: ignore[attr-defined]
        self._execute_all(self.life.run_done(command.env_id, Outcome.TIMEOUT))

    # --- recording ------------------------------------------------------------------------------------------------

    def _key(self, attempt: SimAttempt) -> KeyStats:
        stats = self.stats.get(attempt.key)
        if stats is None:
            stats = self.stats[attempt.key] = KeyStats(attempt.function, attempt.qualifier)
            label = self._runtime[attempt.function].logical_id
            if attempt.qualifier != LATEST:
                label = f"{label}:{attempt.qualifier}"
            stats.labels = (f"arrivals {label}", f"cold starts {label}", f"spillover {label}")
        return stats

    def _count_admission(self, attempt: SimAttempt) -> None:
        """An attempt got an environment: the concurrency peaks of this bin."""
        now = self.clock.t
        function = attempt.function
        self.series.peak(self._runtime[function].concurrency_label, now, self.policy.concurrent_executions(function))
        if attempt.kind is StartKind.PROVISIONED and attempt.key in self._pc_watch:
            self._pc_changed(attempt.key)

    def _answered(self, attempt: SimAttempt) -> None:
        now = self.clock.t
        stats = attempt.key_stats or self._key(attempt)
        series = self.series
        outcome = attempt.outcome
        arrivals, colds, spills = stats.labels
        # Series.count of the arrival, inlined: this runs for every call
        t = attempt.received_at
        i = int((t - series.start) / series.width + 1e-9) if t > series.start else 0
        row = series.counts.get(arrivals)
        if row is None or len(row) <= i:
            row = series.grow(series.counts, arrivals, i)
        row[i] += 1.0
        if outcome is _THROTTLED:
            assert attempt.throttle is not None
            reason = attempt.throttle.reason.value
            stats.throttles[reason] = stats.throttles.get(reason, 0) + 1
            series.count(_THROTTLE_LABELS.get(reason) or f"throttles {reason}", now)
        else:
            kind = attempt.kind
            stats.invocations += 1
            e2e = now - attempt.received_at
            start = attempt.invoke_start
            duration = (attempt.invoke_end or now) - (now if start is None else start)
            stats.duration.push(duration)
            if kind is _WARM:
                stats.warm += 1
                stats.e2e_warm.push(e2e)
                stats.billed_ms_on_demand += -(-duration * 1000.0 // 1.0)  # rounded up to 1 ms, as Lambda bills
            elif kind is _COLD:
                stats.cold += 1
                stats.init.push(attempt.init_duration or 0.0)
                stats.e2e_cold.push(e2e)
                stats.billed_ms_on_demand += math.ceil((duration + (attempt.init_duration or 0.0)) * 1000)
                series.count(colds, now)
            else:
                stats.provisioned += 1
                stats.e2e_warm.push(e2e)
                stats.billed_ms_provisioned += -(-duration * 1000.0 // 1.0)
                if attempt.key in self._pc_watch:
                    self._pc_changed(attempt.key)
            if attempt.spillover:
                stats.spillover += 1
                series.count(spills, now)
            if outcome is not _SUCCESS:
                name = outcome.value if outcome is not None else "unknown"
                stats.outcomes[name] = stats.outcomes.get(name, 0) + 1
        if len(self.kept) < self.keep_invocations:
            self.kept.append(attempt)
        else:
            self.dropped_records += 1
        if attempt.done is not None:
            attempt.done(attempt)

    # --- provisioned-concurrency metrics and autoscaling ----------------------------------------------------------

    def _pc_changed(self, key: tuple[str, str] | None = None) -> None:
        """Feed the CloudWatch aggregation the provisioned state of every tracked alias when it changed (the local
        service samples on every admission and release; unchanged values add no sample there either). `key`: only
        that alias can have changed."""
        watch = self._pc_watch
        if not watch:
            return
        changed = False
        for each in (key,) if key is not None else list(watch):
            function, qualifier = each
            state = ProvisionedState(
                busy=self.policy.provisioned_concurrent_executions(function, qualifier),
                allocated=self.policy.provisioned_allocated(function, qualifier),
            )
            if state != watch[each]:
                watch[each] = state
                changed = True
        if changed:
            self.metrics.sample_concurrency(
                ConcurrencySnapshot(
                    at=self.clock.t, account_concurrent=0, unreserved_concurrent=0, provisioned=dict(watch)
                )
            )

    def _start_autoscaling(self) -> None:
        first = math.floor(self.clock.t / PERIOD_S)
        for policy in self.stack.scaling:
            if policy.dimension != PC_DIMENSION and not policy.dimension.startswith("dynamodb:"):
                self.notes.append(f"{policy.logical_id}: dimension {policy.dimension} is not simulated")
                continue
            tracker = tracker_for(
                self.clock, policy.config, dimension=policy.dimension, minimum=policy.minimum, maximum=policy.maximum
            )
            self._tracked.append(_Tracked(policy.resource_id, policy.dimension, policy.metric, tracker, first))
            if policy.dimension == PC_DIMENSION:
                name, qualifier = function_of_resource(policy.resource_id)
                if name not in self._runtime:
                    raise UserError(f"{policy.logical_id}: function {name} is not in the template")
                self._pc_watch[(name, qualifier)] = ProvisionedState(0, -1)
        if self._tracked:
            self._pc_changed()
            lag = METRIC_LAG_PERIODS * PERIOD_S
            self.schedule((first + 1) * PERIOD_S + lag, self._autoscale, None)

    def _autoscale(self, _: Any) -> None:
        now = self.clock.t
        lag = METRIC_LAG_PERIODS * PERIOD_S
        for datum in self.metrics.flush(now):
            if datum["MetricName"] != "ProvisionedConcurrencyUtilization":
                continue
            dims = tuple((d["Name"], d["Value"]) for d in datum["Dimensions"])
            period = round(datum["Timestamp"].timestamp() / PERIOD_S)
            self._pc_values[("ProvisionedConcurrencyUtilization", dims, period)] = datum["StatisticValues"]
        due = last_due_period(now, PERIOD_S, lag)
        for tracked in self._tracked:
            while tracked.next_period <= due:
                period = tracked.next_period
                tracked.next_period += 1
                capacity = self._capacity(tracked)
                if capacity is None:
                    continue
                datapoint = self._datapoint(tracked, period, capacity)
                decision = tracked.tracker.observe(datapoint, capacity)
                if datapoint is not None:  # drawn over the whole minute it describes
                    label = f"utilisation {tracked.resource_id}"
                    t = max(period * PERIOD_S, self.load_start)
                    while t < (period + 1) * PERIOD_S:
                        self.series.peak(label, t, datapoint)
                        t += self.bin_s
                if decision is not None:
                    self._apply(tracked, decision)
        if not self._settling or self._busy():
            self.schedule((due + 2) * PERIOD_S + lag, self._autoscale, None)

    def _capacity(self, tracked: _Tracked) -> int | None:
        if tracked.dimension == PC_DIMENSION:
            name, qualifier = function_of_resource(tracked.resource_id)
            status = self.policy.provisioned_status(name, qualifier)
            return None if status is None else status.requested
        table, index = table_of_resource(tracked.resource_id)
        kind = Kind.READ if tracked.dimension.endswith("ReadCapacityUnits") else Kind.WRITE
        provisioned = self.meter.provisioned(table, kind, index)
        return None if provisioned is None else int(provisioned)

    def _datapoint(self, tracked: _Tracked, period: int, capacity: int) -> float | None:
        if tracked.dimension == PC_DIMENSION:
            name, qualifier = function_of_resource(tracked.resource_id)
            _, metric, statistic, dims = lambda_metric_query(name, qualifier, tracked.metric)
            values = self._pc_values.get((metric, tuple((d["Name"], d["Value"]) for d in dims), period))
            if values is None:
                return None
            if statistic == "Maximum":
                return values["Maximum"]
            if statistic == "Minimum":
                return values["Minimum"]
            if statistic == "Sum":
                return values["Sum"]
            return values["Sum"] / values["SampleCount"] if values["SampleCount"] else None
        table, index = table_of_resource(tracked.resource_id)
        kind = Kind.READ if tracked.dimension.endswith("ReadCapacityUnits") else Kind.WRITE
        stat = self.meter.period_stat(table, kind, period, index)
        return dynamodb_utilization(stat.consumed, PERIOD_S, capacity)

    def _apply(self, tracked: _Tracked, decision: Decision) -> None:
        self.activities.append(
            Activity(
                self.clock.t,
                tracked.resource_id,
                tracked.dimension,
                decision.direction.value,
                decision.old_capacity,
                decision.new_capacity,
                decision.metric,
                decision.alarm,
            )
        )
        if tracked.dimension == PC_DIMENSION:
            name, qualifier = function_of_resource(tracked.resource_id)
            spec = self._runtime[name].spec
            _, version = spec.resolve(qualifier)
            try:
                self._execute_all(self.life.set_provisioned(name, qualifier, version, decision.new_capacity))
            except PolicyError as exc:
                self.notes.append(f"scaling {tracked.resource_id} to {decision.new_capacity} failed: {exc.message}")
            self._pc_changed()
            return
        table_name, index = table_of_resource(tracked.resource_id)
        table = self.stack.table(table_name)
        if tracked.dimension.endswith("ReadCapacityUnits"):
            if index is None:
                table.read = float(decision.new_capacity)
            else:
                table.indexes[index] = (float(decision.new_capacity), table.indexes[index][1])
        elif index is None:
            table.write = float(decision.new_capacity)
        else:
            table.indexes[index] = (table.indexes[index][0], float(decision.new_capacity))
        self.meter.set_table(table.description())

    # --- SQS event source mappings --------------------------------------------------------------------------------

    def send_messages(self, queue_key: str, count: int) -> None:
        queue = self._queue(queue_key)
        now = self.clock.t
        for _ in range(count):
            queue.visible.append([now, 0.0])
        queue.sent += count
        for mapping in self.mappings:
            if mapping.queue is queue:
                self._wake(mapping)

    def _queue(self, key: str) -> _SimQueue:
        spec = self.stack.queue(key)
        return self._queues[spec.arn]

    def _supervise(self, mapping: _Mapping) -> None:
        """Start pollers while the scaling level allows (the local supervisor's loop, every 50 ms)."""
        scaling = mapping.scaling
        assert scaling is not None
        while scaling.try_start():
            self._poll((mapping, next(mapping.poller_ids)))
        if not self._settling or self._busy():
            self.schedule(self.clock.t + SUPERVISE_S, self._supervise, mapping)

    def _poll(self, poller: tuple[_Mapping, int]) -> None:
        mapping, _ = poller
        scaling = mapping.scaling
        assert scaling is not None
        if scaling.active > scaling.level:  # scaled down: this poller stops
            scaling.finish()
            return
        now = self.clock.t
        queue = mapping.queue
        settings = mapping.settings
        queue.requests += 1
        messages = queue.receive(now, min(10, settings.batch_size))
        if not messages:
            scaling.found_empty()
            mapping.waiting.append(poller[1])
            wake = queue.next_visible_at()
            until = now + LONG_POLL_S if wake is None else min(now + LONG_POLL_S, max(wake, now + SUPERVISE_S))
            self.schedule(until, self._long_poll_end, poller)
            return
        scaling.found_messages()
        if settings.batching_window_s > 0 and len(messages) < settings.batch_size:
            self.schedule(now + settings.batching_window_s, self._fill_batch, (poller, messages))
            return
        while len(messages) < settings.batch_size:
            more = queue.receive(now, min(10, settings.batch_size - len(messages)))
            queue.requests += 1
            if not more:
                break
            messages.extend(more)
        self._invoke_batch(poller, messages)

    def _fill_batch(self, state: tuple[tuple[_Mapping, int], list[list[float]]]) -> None:
        poller, messages = state
        mapping = poller[0]
        while len(messages) < mapping.settings.batch_size:
            more = mapping.queue.receive(self.clock.t, min(10, mapping.settings.batch_size - len(messages)))
            mapping.queue.requests += 1
            if not more:
                break
            messages.extend(more)
        self._invoke_batch(poller, messages)

    def _long_poll_end(self, poller: tuple[_Mapping, int]) -> None:
        mapping = poller[0]
        if poller[1] in mapping.waiting:
            mapping.waiting.remove(poller[1])
            self._poll(poller)

    def _wake(self, mapping: _Mapping) -> None:
        while mapping.waiting and mapping.queue.visible:
            poller_id = mapping.waiting.pop(0)
            self._poll((mapping, poller_id))

    def _invoke_batch(self, poller: tuple[_Mapping, int], messages: list[list[float]]) -> None:
        mapping = poller[0]
        mapping.batches += 1
        mapping.messages += len(messages)

        def done(attempt: SimAttempt) -> None:
            if attempt.outcome is Outcome.SUCCESS:
                mapping.queue.delete(messages)
                mapping.queue.requests += 1
                self.schedule(self.clock.t, self._poll, poller)
            elif attempt.outcome is Outcome.THROTTLED:
                mapping.throttled += 1  # the batch stays in flight and reappears after the visibility timeout
                self.schedule(self.clock.t + THROTTLE_BACKOFF_S, self._poll, poller)
            else:
                mapping.failed += 1  # the whole batch returns to the queue after the visibility timeout
                self.schedule(self.clock.t, self._poll, poller)

        self.call(mapping.function, mapping.qualifier, done, source=f"sqs {mapping.logical_id}")

    # --- periodic work --------------------------------------------------------------------------------------------

    def _reap(self, _: Any) -> None:
        self._execute_all(self.life.reap())
        if not self._settling or self._busy():
            self.schedule(self.clock.t + REAP_INTERVAL_S, self._reap, None)

    def _sample(self, _: Any) -> None:
        """Gauges at the end of each bin: provisioned allocated, SQS backlog and pollers, table capacity; and the
        samples' buffers flushed (so they never hold more than a bin's values)."""
        for key_stats in self.stats.values():
            for sample in (key_stats.duration, key_stats.e2e_warm, key_stats.e2e_cold, key_stats.init):
                sample.flush()
        now = self.clock.t - 1e-9
        series = self.series
        invoked = {function for function, _ in self.stats}
        for spec in self.stack.functions.values():
            if spec.name not in invoked:
                continue  # provisioned concurrency nobody called: in the costs, not in the charts
            for qualifier in spec.provisioned:
                status = self.policy.provisioned_status(spec.name, qualifier)
                if status is not None:
                    series.peak(f"provisioned allocated {spec.logical_id}:{qualifier}", now, status.allocated)
                    series.peak(
                        f"provisioned busy {spec.logical_id}:{qualifier}",
                        now,
                        self.policy.provisioned_concurrent_executions(spec.name, qualifier),
                    )
        for scaled in self._tracked:
            if scaled.dimension == PC_DIMENSION:
                name, qualifier = function_of_resource(scaled.resource_id)
                status = self.policy.provisioned_status(name, qualifier)
                spec = self._runtime[name].spec
                if status is not None:
                    series.peak(f"provisioned allocated {spec.logical_id}:{qualifier}", now, status.allocated)
        for mapping in self.mappings:
            visible, in_flight = mapping.queue.backlog(self.clock.t)
            series.peak(f"sqs backlog {mapping.queue.spec.logical_id}", now, visible)
            series.peak(f"sqs in flight {mapping.queue.spec.logical_id}", now, in_flight)
            if mapping.scaling is not None:
                series.peak(f"pollers level {mapping.logical_id}", now, mapping.scaling.level)
                series.peak(f"pollers active {mapping.logical_id}", now, mapping.scaling.active - len(mapping.waiting))
        for table in self.stack.tables.values():
            if table.billing_mode == "PROVISIONED":
                series.peak(f"dynamodb provisioned read {table.logical_id}", now, table.read)
                series.peak(f"dynamodb provisioned write {table.logical_id}", now, table.write)
        if not self._settling or self._busy():
            self.schedule(self.clock.t + self.bin_s, self._sample, None)

    # --- results --------------------------------------------------------------------------------------------------

    def dynamodb_periods(self) -> dict[str, dict[str, list[tuple[int, float, int]]]]:
        """Per table and kind: (period, consumed units, throttle events) for every minute of the run."""
        out: dict[str, dict[str, list[tuple[int, float, int]]]] = {}
        first = math.floor(self.load_start / PERIOD_S)
        last = math.floor(self.end / PERIOD_S)
        for table in self.stack.tables.values():
            per_kind = out.setdefault(table.logical_id, {})
            for kind in Kind:
                rows = []
                for period in range(first, last + 1):
                    stat = self.meter.period_stat(table.name, kind, period)
                    rows.append((period, stat.consumed, stat.throttle_events))
                per_kind[kind.value] = rows
        return out

    def spec_of(self, function_name: str) -> Function:
        return self._runtime[function_name].spec

    def model_of(self, function_name: str) -> FunctionModel:
        return self._runtime[function_name].model

    def account_limit(self) -> int:
        return self.limits.account_concurrency


def default_limits(
    account_concurrency: int = constants.ACCOUNT_CONCURRENCY, keep_alive_s: float | None = None
) -> Limits:
    return Limits(
        account_concurrency=account_concurrency,
        keep_alive_s=constants.DEFAULT_KEEP_ALIVE_SECONDS if keep_alive_s is None else keep_alive_s,
    )
