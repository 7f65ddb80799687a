"""The cold-start analysis: Lambda invocations out of traces or run records, then per-function and execution figures."""

from __future__ import annotations

import enum
import functools
import heapq
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lambdalab.awslambda.core.outcome import Outcome
from lambdalab.constants import ON_DEMAND_INIT_CAP_SECONDS
from lambdalab.traces.model import (
    ORIGIN_LAMBDA,
    ORIGIN_LAMBDA_FUNCTION,
    ORIGIN_STEP_FUNCTIONS,
    SUBSEGMENT_INITIALIZATION,
    SUBSEGMENT_INVOCATION,
    SUBSEGMENT_OVERHEAD,
    Problem,
    Segment,
    Trace,
    bulk,
)

LOG = logging.getLogger(__name__)

UNQUALIFIED = "$LATEST"  # an unqualified ARN invokes $LATEST
# A request that reached the service this long after its environment's INIT began did not wait for that INIT.
_PREWARM_TOLERANCE_S = 0.05


class StartKind(enum.Enum):
    """How an invocation found its execution environment."""

    COLD = "cold"  # INIT ran in the request's path
    WARM = "warm"  # an idle environment was reused
    PROVISIONED = "provisioned"  # INIT ran ahead of the request (provisioned concurrency or a pre-warmed environment)


@dataclass(slots=True)  # read-only by convention; not frozen for speed (see model.Segment)
class Invocation:
    """One Lambda invocation, whichever source it came from. Epoch seconds; None where the source does not say."""

    function: str
    qualifier: str
    start_kind: StartKind | None  # None when throttled
    trace_id: str | None = None
    request_id: str | None = None
    throttled: bool = False
    throttles: int = 0  # throttled attempts recorded for this request (async retries can add more than one)
    spillover: bool | None = None  # None: the source cannot tell
    error: bool = False
    received_at: float | None = None  # the service took the request (AWS::Lambda segment start)
    init_start: float | None = None
    init_end: float | None = None
    invoke_start: float | None = None
    invoke_end: float | None = None
    end_to_end_s: float | None = None  # received → answered, INIT included when cold
    environment_id: str | None = None
    # Waiting for the machine that ran it, not Lambda's (local run directories only; None where the source cannot
    # tell): all of it, and the part during INIT. INIT and duration above exclude it.
    local_wait_s: float | None = None
    init_local_wait_s: float | None = None
    local_error: bool = False  # failed for a local reason (Lambdalab.LocalCapacity), never a Lambda outcome

    @property
    def key(self) -> tuple[str, str]:
        return (self.function, self.qualifier)

    @property
    def cold(self) -> bool:
        return self.start_kind is StartKind.COLD

    @property
    def init_duration_s(self) -> float | None:
        if self.init_start is None or self.init_end is None:
            return None
        return self.init_end - self.init_start

    @property
    def duration_s(self) -> float | None:
        if self.invoke_start is None or self.invoke_end is None:
            return None
        return self.invoke_end - self.invoke_start

    @property
    def first_time(self) -> float:
        for value in (self.received_at, self.init_start, self.invoke_start):
            if value is not None:
                return value
        return 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "qualifier": self.qualifier,
            "start_kind": self.start_kind.value if self.start_kind else None,
            "throttled": self.throttled,
            "throttles": self.throttles,
            "spillover": self.spillover,
            "error": self.error,
            "trace_id": self.trace_id,
            "request_id": self.request_id,
            "environment_id": self.environment_id,
            "received_at": self.received_at,
            "init_start": self.init_start,
            "init_duration_s": self.init_duration_s,
            "invoke_start": self.invoke_start,
            "duration_s": self.duration_s,
            "end_to_end_s": self.end_to_end_s,
            "local_wait_s": self.local_wait_s,
            "init_local_wait_s": self.init_local_wait_s,
            "local_error": self.local_error,
        }


@dataclass
class Execution:
    """A Step Functions execution: the Lambda invocations that share its trace id."""

    trace_id: str
    execution_arn: str | None
    state_machine: str | None
    start: float | None
    end: float | None
    items: list[Invocation] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return self.end - self.start


@dataclass
class Extraction:
    """What came out of a set of traces."""

    invocations: list[Invocation] = field(default_factory=list)
    executions: list[Execution] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@functools.lru_cache(maxsize=4096)  # a report sees the same few ARNs tens of thousands of times
def parse_function_arn(arn: str | None) -> tuple[str, str | None] | None:
    """`arn:aws:lambda:region:account:function:NAME[:QUALIFIER]` → (NAME, QUALIFIER or None)."""
    if not arn or ":function:" not in arn:
        return None
    parts = arn.split(":")
    if len(parts) < 7 or not parts[6]:
        return None
    return parts[6], (parts[7] if len(parts) > 7 and parts[7] else None)


def _identity(service: Segment | None, function: Segment | None) -> tuple[str, str]:
    name: str | None = None
    qualifier: str | None = None
    for segment in (service, function):
        if segment is None:
            continue
        for arn in (segment.resource_arn, segment.aws.get("function_arn")):
            parsed = parse_function_arn(arn if isinstance(arn, str) else None)
            if parsed is None:
                continue
            name = name or parsed[0]
            qualifier = qualifier or parsed[1]
    if name is None:
        name = (service or function).name if (service or function) else "unknown"  # type: ignore[union-attr]
    return name, qualifier or UNQUALIFIED


def _throttled_attempts(service: Segment) -> int:
    attempts = [sub for sub in service.subsegments if sub.name.startswith("Attempt") and _is_throttle(sub)]
    if attempts:
        return len(attempts)
    return 1 if _is_throttle(service) else 0


def _is_throttle(segment: Segment) -> bool:
    return segment.throttle or segment.http_status == 429


def _request_id(service: Segment | None, function: Segment | None) -> str | None:
    for segment in (service, function):
        if segment is not None:
            value = segment.aws.get("request_id")
            if isinstance(value, str):
                return value
    return None


def _pair(trace: Trace, problems: list[Problem]) -> list[tuple[Segment | None, Segment | None]]:
    """Match each AWS::Lambda::Function segment with its AWS::Lambda segment: by parent id, else by name and time."""
    services = trace.by_origin(ORIGIN_LAMBDA)
    functions = trace.by_origin(ORIGIN_LAMBDA_FUNCTION)
    owner: dict[str, Segment] = {}
    for service in services:
        owner[service.id] = service
        for sub in service.subsegments:  # async: the function's parent is an "Attempt #n" subsegment
            owner[sub.id] = service
    used: set[str] = set()
    pairs: list[tuple[Segment | None, Segment | None]] = []
    pending: list[Segment] = []
    for function in functions:
        parent = owner.get(function.parent_id or "")
        if parent is not None and parent.id not in used:
            used.add(parent.id)
            pairs.append((parent, function))
        else:
            pending.append(function)
    for function in pending:
        name = _identity(None, function)[0]
        best: Segment | None = None
        for service in services:
            if service.id in used or _identity(service, None)[0] != name:
                continue
            if service.start_time <= function.start_time + _PREWARM_TOLERANCE_S and (
                best is None or service.start_time > best.start_time
            ):
                best = service
        if best is not None:
            used.add(best.id)
        pairs.append((best, function))
    for service in services:
        if service.id not in used:
            pairs.append((service, None))
    return pairs


def _invocation(
    trace_id: str, service: Segment | None, function: Segment | None, problems: list[Problem]
) -> Invocation | None:
    name, qualifier = _identity(service, function)
    if function is None:
        assert service is not None
        throttles = _throttled_attempts(service)
        if throttles:
            return Invocation(
                function=name,
                qualifier=qualifier,
                start_kind=None,
                trace_id=trace_id,
                request_id=_request_id(service, None),
                throttled=True,
                throttles=throttles,
                error=True,
                received_at=service.start_time,
                end_to_end_s=service.duration,
            )
        reason = "AWS::Lambda segment in progress" if service.in_progress else "AWS::Lambda segment without function"
        problems.append(Problem(f"{trace_id} segment {service.id}", f"partial trace: {reason} segment"))
        return None
    if function.in_progress:
        problems.append(Problem(f"{trace_id} segment {function.id}", "partial trace: function segment in progress"))
        return None
    init = function.child(SUBSEGMENT_INITIALIZATION)
    invocation = function.child(SUBSEGMENT_INVOCATION)
    overhead = function.child(SUBSEGMENT_OVERHEAD)
    received = service.start_time if service is not None else None
    kind = StartKind.WARM
    init_start = init_end = None
    if init is not None:
        init_start, init_end = init.start_time, init.end_time
        if init_end is None and invocation is not None:
            init_end = invocation.start_time
        if received is not None:
            prewarmed = init.start_time < received - _PREWARM_TOLERANCE_S
        else:
            prewarmed = init_end is not None and init_end - init.start_time > ON_DEMAND_INIT_CAP_SECONDS
        kind = StartKind.PROVISIONED if prewarmed else StartKind.COLD
    invoke_start: float | None
    invoke_end: float | None
    if invocation is not None and invocation.end_time is not None:
        invoke_start, invoke_end = invocation.start_time, invocation.end_time
    else:
        # No Invocation subsegment (older or partial traces): the function segment minus INIT and Overhead.
        invoke_start = init_end if init_end is not None and kind is StartKind.COLD else function.start_time
        invoke_end = overhead.start_time if overhead is not None else function.end_time
        init_failed = init is not None and (init.fault or init.error)
        if invocation is None and not init_failed:
            problems.append(Problem(f"{trace_id} segment {function.id}", "missing Invocation subsegment"))
    end_to_end: float | None
    if service is not None and service.end_time is not None:
        end_to_end = service.end_time - service.start_time
    else:
        end_to_end = function.duration
    throttles = _throttled_attempts(service) if service is not None else 0
    return Invocation(
        function=name,
        qualifier=qualifier,
        start_kind=kind,
        trace_id=trace_id,
        request_id=_request_id(service, function),
        throttles=throttles,
        error=any(s is not None and (s.error or s.fault) for s in (function, invocation, init)),
        received_at=received,
        init_start=init_start,
        init_end=init_end,
        invoke_start=invoke_start,
        invoke_end=invoke_end,
        end_to_end_s=end_to_end,
    )


def _execution_arn(segment: Segment) -> str | None:
    value = segment.aws.get("execution_arn")
    if isinstance(value, str):
        return value
    if segment.resource_arn and ":execution:" in segment.resource_arn:
        return segment.resource_arn
    return None


def extract(traces: Iterable[Trace]) -> Extraction:
    """Every Lambda invocation in the traces, and the Step Functions executions they belong to."""
    with bulk():
        return _extract(traces)


def _extract(traces: Iterable[Trace]) -> Extraction:
    out = Extraction()
    for trace in traces:
        found: list[Invocation] = []
        for service, function in _pair(trace, out.problems):
            item = _invocation(trace.id, service, function, out.problems)
            if item is not None:
                found.append(item)
        found.sort(key=lambda i: i.first_time)
        out.invocations.extend(found)
        machines = trace.by_origin(ORIGIN_STEP_FUNCTIONS)
        if machines:
            head = machines[0]
            out.executions.append(
                Execution(
                    trace_id=trace.id,
                    execution_arn=_execution_arn(head),
                    state_machine=head.name,
                    start=head.start_time,
                    end=head.end_time,
                    items=found,
                )
            )
    return out


# --- run directories --------------------------------------------------------------------------------------------

_KINDS = {kind.value: kind for kind in StartKind}


def invocation_from_record(record: Mapping[str, Any]) -> Invocation:
    """One `lambdalab.observe.model.InvocationRecord` (as a JSON object) → Invocation. Raises KeyError/ValueError."""
    function = record["function_name"]
    if not isinstance(function, str):
        raise ValueError("function_name is not a string")
    throttled = record.get("outcome") == Outcome.THROTTLED
    kind_raw = record.get("start_kind")
    kind = None if throttled else _KINDS.get(kind_raw or "")
    if not throttled and kind is None:
        raise ValueError(f"unknown start_kind {kind_raw!r}")
    init_start = _float_or_none(record.get("init_start"))
    init_duration = _float_or_none(record.get("init_duration_s"))
    received = _float_or_none(record.get("received_at"))
    invoke_end = _float_or_none(record.get("invoke_end"))
    qualifier = record.get("qualifier") or UNQUALIFIED
    return Invocation(
        function=function,
        qualifier=str(qualifier),
        start_kind=kind,
        trace_id=record.get("trace_id"),
        request_id=record.get("request_id"),
        throttled=throttled,
        throttles=1 if throttled else 0,
        spillover=bool(record.get("spillover")),
        error=record.get("outcome") not in ("success", None),
        received_at=received,
        init_start=init_start,
        init_end=init_start + init_duration if init_start is not None and init_duration is not None else None,
        invoke_start=_float_or_none(record.get("invoke_start")),
        invoke_end=invoke_end,
        end_to_end_s=invoke_end - received if invoke_end is not None and received is not None else None,
        environment_id=record.get("environment_id"),
        local_wait_s=_float_or_none(record.get("local_wait_s")),
        init_local_wait_s=_float_or_none(record.get("init_local_wait_s")),
        local_error=record.get("outcome") == Outcome.LOCAL_ERROR,
    )


def _float_or_none(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


# --- execution environments (timeline) ---------------------------------------------------------------------------


@dataclass
class Environment:
    """One execution environment on the timeline: its INIT (if seen) and the invocations it served."""

    id: str
    function: str
    qualifier: str
    inferred: bool  # from traces, which carry no environment id: reconstructed from cold starts and overlap
    init_start: float | None = None
    init_end: float | None = None
    invocations: list[Invocation] = field(default_factory=list)

    def to_json(self, index: Mapping[int, int]) -> dict[str, Any]:
        return {
            "id": self.id,
            "function": self.function,
            "qualifier": self.qualifier,
            "inferred": self.inferred,
            "init_start": self.init_start,
            "init_end": self.init_end,
            "invocations": [index[id(item)] for item in self.invocations],
        }


def environments_from_ids(
    invocations: Sequence[Invocation], events: Sequence[Mapping[str, Any]] = ()
) -> list[Environment]:
    """Environments named by the source (run directories): INIT from the cold record or the created → ready events."""
    envs: dict[str, Environment] = {}
    for item in invocations:
        if item.environment_id is None or item.throttled:
            continue
        env = envs.get(item.environment_id)
        if env is None:
            env = envs[item.environment_id] = Environment(item.environment_id, item.function, item.qualifier, False)
        env.invocations.append(item)
        if item.init_start is not None and env.init_start is None:
            env.init_start, env.init_end = item.init_start, item.init_end
    created: dict[str, float] = {}
    for event in events:
        env_id, kind, at = event.get("environment_id"), event.get("event"), event.get("at")
        if not isinstance(env_id, str) or not isinstance(at, int | float) or env_id not in envs:
            continue
        if kind == "created":
            created[env_id] = float(at)
        elif kind == "ready" and envs[env_id].init_start is None and env_id in created:
            envs[env_id].init_start, envs[env_id].init_end = created[env_id], float(at)
    for env in envs.values():
        env.invocations.sort(key=lambda i: i.first_time)
    return sorted(envs.values(), key=lambda e: (e.function, e.qualifier, _env_start(e)))


def infer_environments(invocations: Sequence[Invocation]) -> list[Environment]:
    """Reconstruct environments from traces: each INIT opens one; a warm call goes to an environment idle at the time.

    A warm call with no idle environment known (its cold start fell outside the window or was not sampled) opens an
    environment without an INIT bar. Among idle environments the most recently used one is chosen.
    """
    groups: dict[tuple[str, str], list[Invocation]] = {}
    for item in invocations:
        if not item.throttled and item.invoke_start is not None:
            groups.setdefault(item.key, []).append(item)
    result: list[Environment] = []
    for (function, qualifier), items in sorted(groups.items()):
        items.sort(key=lambda i: i.invoke_start or 0.0)
        envs: list[Environment] = []
        busy: list[tuple[float, int]] = []  # min-heap of (busy until, environment index)
        idle: list[int] = []  # freed environments; the last one freed on top (the heap frees them in time order)
        for item in items:
            start = item.invoke_start or 0.0
            end = item.invoke_end if item.invoke_end is not None else start
            while busy and busy[0][0] <= start:
                idle.append(heapq.heappop(busy)[1])
            if item.init_start is None and idle:
                chosen = idle.pop()
            else:
                env = Environment(f"{function}:{qualifier}#{len(envs) + 1}", function, qualifier, True)
                env.init_start, env.init_end = item.init_start, item.init_end
                envs.append(env)
                chosen = len(envs) - 1
            envs[chosen].invocations.append(item)
            heapq.heappush(busy, (max(start, end), chosen))
        result.extend(envs)
    return result


def _env_start(env: Environment) -> float:
    if env.init_start is not None:
        return env.init_start
    return env.invocations[0].first_time if env.invocations else 0.0


# --- statistics ---------------------------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not sorted_values:
        return None
    if len(sorted_values) == 1:
        return sorted_values[0]
    position = (len(sorted_values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


@dataclass(frozen=True)
class Quantiles:
    count: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Quantiles:
        ordered = sorted(v for v in values if v is not None)
        return cls(
            count=len(ordered),
            p50=percentile(ordered, 0.50),
            p95=percentile(ordered, 0.95),
            p99=percentile(ordered, 0.99),
            max=ordered[-1] if ordered else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "p50": self.p50, "p95": self.p95, "p99": self.p99, "max": self.max}


@dataclass
class FunctionReport:
    """The figures for one function and qualifier (alias, version or $LATEST)."""

    function: str
    qualifier: str
    invocations: int  # invocations that ran (throttled ones are counted apart)
    cold_starts: int
    provisioned_starts: int
    warm_starts: int
    throttles: int | None  # None: the source cannot see throttles (logs: a throttled call never reaches a function)
    spillover: int | None
    spillover_source: str
    init: Quantiles
    duration: Quantiles
    end_to_end_cold: Quantiles
    end_to_end_warm: Quantiles

    @property
    def cold_share(self) -> float | None:
        return self.cold_starts / self.invocations if self.invocations else None

    @property
    def gap_p50_s(self) -> float | None:
        cold, warm = self.end_to_end_cold.p50, self.end_to_end_warm.p50
        return None if cold is None or warm is None else cold - warm

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "qualifier": self.qualifier,
            "invocations": self.invocations,
            "cold_starts": self.cold_starts,
            "provisioned_starts": self.provisioned_starts,
            "warm_starts": self.warm_starts,
            "cold_share": self.cold_share,
            "throttles": self.throttles,
            "spillover": self.spillover,
            "spillover_source": self.spillover_source,
            "init_s": self.init.to_json(),
            "duration_s": self.duration.to_json(),
            "end_to_end_s": {
                "cold": self.end_to_end_cold.to_json(),
                "warm": self.end_to_end_warm.to_json(),
                "gap_p50": self.gap_p50_s,
            },
        }


def summarise(
    invocations: Sequence[Invocation],
    spillover_metrics: Mapping[tuple[str, str], int] | None = None,
    spillover_note: str = "unavailable: X-Ray does not record spillover",
    *,
    throttles_known: bool = True,
) -> list[FunctionReport]:
    """Per (function, qualifier) figures. Spillover: the records' own flag, else the metrics given, else None.
    `throttles_known` False: the source cannot see throttled calls, so throttles are None, not 0."""
    groups: dict[tuple[str, str], list[Invocation]] = {}
    for item in invocations:
        groups.setdefault(item.key, []).append(item)
    reports = []
    for (function, qualifier), items in sorted(groups.items()):
        ran = [i for i in items if not i.throttled]
        cold = [i for i in ran if i.start_kind is StartKind.COLD]
        warm_like = [i for i in ran if i.start_kind is not StartKind.COLD]
        spill_flags = [i.spillover for i in ran if i.spillover is not None]
        if spill_flags:
            spillover: int | None = sum(1 for flag in spill_flags if flag)
            source = "invocation records"
        elif spillover_metrics is not None and (function, qualifier) in spillover_metrics:
            spillover = spillover_metrics[(function, qualifier)]
            source = "CloudWatch ProvisionedConcurrencySpilloverInvocations"
        else:
            spillover, source = None, spillover_note
        reports.append(
            FunctionReport(
                function=function,
                qualifier=qualifier,
                invocations=len(ran),
                cold_starts=len(cold),
                provisioned_starts=sum(1 for i in ran if i.start_kind is StartKind.PROVISIONED),
                warm_starts=sum(1 for i in ran if i.start_kind is StartKind.WARM),
                throttles=sum(i.throttles for i in items) if throttles_known else None,
                spillover=spillover,
                spillover_source=source,
                init=Quantiles.of(i.init_duration_s for i in cold),
                duration=Quantiles.of(i.duration_s for i in ran),
                end_to_end_cold=Quantiles.of(i.end_to_end_s for i in cold),
                end_to_end_warm=Quantiles.of(i.end_to_end_s for i in warm_like),
            )
        )
    return reports
