"""AWS/Lambda CloudWatch metrics: per-period aggregation on an injected clock, and a publisher to CloudWatch.

What is emitted follows AWS's "Types of metrics for Lambda functions" and "Monitoring concurrency" pages
(docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html, .../monitoring-concurrency.html):

- Invocation metrics, viewed with Sum: ``Invocations`` (successes and function errors, never throttles; one
  sample of 1 per invocation, so Sum counts them), ``Errors`` (one sample per invocation, 1 for a function error,
  0 otherwise, so Sum counts errors and Average is the error rate), ``Throttles``,
  ``ProvisionedConcurrencyInvocations``, ``ProvisionedConcurrencySpilloverInvocations``; dimensions: none
  (account), ``FunctionName``, and ``FunctionName`` + ``Resource`` (``name:qualifier``) when the call named a
  version or alias. The timestamp is when the request was received, as AWS documents for ``Errors``.
- ``Duration`` in milliseconds, published as a statistic set (SampleCount, Sum, Minimum, Maximum) so that Average
  and Maximum both work.
- Concurrency metrics, viewed with Maximum: ``ConcurrentExecutions`` (account, function, and version/alias when
  the snapshot has it), ``UnreservedConcurrentExecutions`` (account), ``ProvisionedConcurrentExecutions`` (function
  and alias), ``ProvisionedConcurrencyUtilization`` (alias: provisioned busy / allocated). These come from
  ``ConcurrencySnapshot`` samples. A sample counts when a series' value changes, and each period starts with the
  value carried over from the previous one, so Maximum is exact when the service calls ``sample_concurrency`` on
  every admission and release (a timer only approximates it: peaks between ticks are lost). Average is the mean
  of those samples -- AWS emits the utilisation "for each invocation", so change-weighted, not time-weighted, is
  the closer match; it is what the predefined ``LambdaProvisionedConcurrencyUtilization`` target tracks.
  An idle series (zero all period, unchanged) emits nothing, except the provisioned-concurrency series of an
  alias that has concurrency allocated: those emit every period, zeros included, so scale-in can happen.
- Asynchronous metrics from ``AsyncMetricEvent``: ``AsyncEventsReceived``, ``AsyncEventAge`` (ms),
  ``AsyncEventsDropped``, ``DeadLetterErrors``, ``DestinationDeliveryFailures``.

Local difference (documented): a "1-minute" period lasts ``60 * time_scale`` real seconds, so with a time scale
below 1 periods are compressed. Datapoint timestamps are the real start times of those compressed periods, and
periods shorter than 60 s are published with ``StorageResolution=1`` (high resolution). A record that arrives after
its period was flushed (a long invocation) is published late with its period's timestamp; CloudWatch merges it.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lambdalab.awslambda.core.outcome import ERROR_OUTCOMES, Outcome
from lambdalab.clock import Clock
from lambdalab.observe.model import InvocationRecord
from lambdalab.observe.periods import StatisticSet

LOG = logging.getLogger(__name__)

NAMESPACE = "AWS/Lambda"
BASE_PERIOD_S = 60.0
MAX_DATUMS_PER_CALL = 1000  # PutMetricData limit
_MAX_RETAINED_DATUMS = 100_000  # kept for retry while CloudWatch is unreachable; older ones are dropped (logged)
_MAX_QUIET_PERIODS = 1440  # after a longer silence only the last day of carried-over gauge values is emitted

Dims = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Dims]  # (metric name, dimensions in order)

_UNQUALIFIED = frozenset({"", "$LATEST"})

_UNITS = {
    "Duration": "Milliseconds",
    "AsyncEventAge": "Milliseconds",
    "ProvisionedConcurrencyUtilization": "None",
}

PROVISIONED_SERIES = frozenset({"ProvisionedConcurrentExecutions", "ProvisionedConcurrencyUtilization"})


class AsyncMetricKind(enum.Enum):
    """An asynchronous-invocation step that has its own metric."""

    RECEIVED = "AsyncEventsReceived"  # the event was queued (Invoke returned 202)
    DEQUEUED = "AsyncEventAge"  # the event was taken from the queue to be invoked; give its age
    DROPPED = "AsyncEventsDropped"  # the event was discarded without success (age, retries, ...)
    DEAD_LETTER_ERROR = "DeadLetterErrors"
    DESTINATION_DELIVERY_FAILURE = "DestinationDeliveryFailures"


@dataclass(frozen=True)
class AsyncMetricEvent:
    kind: AsyncMetricKind
    function_name: str
    qualifier: str | None
    at: float  # epoch seconds
    age_s: float | None = None  # DEQUEUED only: now - when it was queued


@dataclass(frozen=True)
class ProvisionedState:
    busy: int  # provisioned environments serving a request now
    allocated: int  # provisioned environments allocated (ready)


@dataclass(frozen=True)
class ConcurrencySnapshot:
    """The concurrency state at one moment. A function or alias missing from a mapping has 0 in flight."""

    at: float  # epoch seconds
    account_concurrent: int
    unreserved_concurrent: int  # in flight in functions without reserved concurrency
    functions: Mapping[str, int] = field(default_factory=dict)  # function name -> in flight
    resources: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (function, qualifier) -> in flight
    provisioned: Mapping[tuple[str, str], ProvisionedState] = field(default_factory=dict)  # (function, alias/ver)


def function_dims(function_name: str) -> Dims:
    return (("FunctionName", function_name),)


def resource_dims(function_name: str, qualifier: str) -> Dims:
    return (("FunctionName", function_name), ("Resource", f"{function_name}:{qualifier}"))


def _levels(function_name: str, qualifier: str | None) -> list[Dims]:
    levels: list[Dims] = [(), function_dims(function_name)]
    if qualifier is not None and qualifier not in _UNQUALIFIED:
        levels.append(resource_dims(function_name, qualifier))
    return levels


class _GaugePeriod:
    __slots__ = ("changed", "stat")

    def __init__(self) -> None:
        self.stat = StatisticSet()
        self.changed = False


class MetricsAggregator:
    """Turns invocation records, async events and concurrency snapshots into per-period AWS/Lambda datapoints.

    Pure: time comes from the records, the snapshots and ``flush(now)`` (or the injected clock, which must count
    epoch seconds). Thread-safe.
    """

    def __init__(self, clock: Clock, *, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, not {time_scale}")
        self._clock = clock
        self.period_s = BASE_PERIOD_S * time_scale
        self._storage_resolution = 1 if self.period_s < BASE_PERIOD_S else 60
        self._lock = threading.Lock()
        self._counters: dict[int, dict[SeriesKey, StatisticSet]] = {}
        # Gauges: the value of every series now, the open period and what was sampled in it.
        self._values: dict[SeriesKey, float] = {}
        self._allocated: dict[tuple[str, str], int] = {}
        self._gauge_index: int | None = None
        self._gauge_acc: dict[SeriesKey, _GaugePeriod] = {}
        self._active_pc: set[tuple[str, str]] = set()
        self._ready: list[dict[str, Any]] = []

    # --- inputs --------------------------------------------------------------------------------------------------
    def record_invocation(self, rec: InvocationRecord) -> None:
        if rec.invocation_type == "DryRun":
            return
        levels = _levels(rec.function_name, rec.qualifier)
        with self._lock:
            bucket = self._bucket(rec.received_at)
            if rec.outcome == Outcome.THROTTLED:
                for dims in levels:
                    _stat(bucket, "Throttles", dims).add(1)
                return
            error = 1.0 if rec.outcome in ERROR_OUTCOMES else 0.0
            for dims in levels:
                _stat(bucket, "Invocations", dims).add(1)
                _stat(bucket, "Errors", dims).add(error)
                if rec.duration_s is not None:
                    _stat(bucket, "Duration", dims).add(rec.duration_s * 1000.0)
                if rec.start_kind == "provisioned":
                    _stat(bucket, "ProvisionedConcurrencyInvocations", dims).add(1)
                if rec.spillover:
                    _stat(bucket, "ProvisionedConcurrencySpilloverInvocations", dims).add(1)

    def record_async(self, event: AsyncMetricEvent) -> None:
        if event.kind is AsyncMetricKind.DEQUEUED and event.age_s is None:
            raise ValueError("a DEQUEUED async event needs its age_s")
        with self._lock:
            bucket = self._bucket(event.at)
            value = (event.age_s or 0.0) * 1000.0 if event.kind is AsyncMetricKind.DEQUEUED else 1.0
            for dims in _levels(event.function_name, event.qualifier):
                _stat(bucket, event.kind.value, dims).add(value)

    def sample_concurrency(self, snapshot: ConcurrencySnapshot) -> None:
        index = self._index(snapshot.at)
        new_values = _series(snapshot)
        with self._lock:
            if self._gauge_index is None:
                self._open_gauge_period(index)
            elif index > self._gauge_index:
                self._roll_gauges(index)
            # A sample older than the open period (a late thread) counts in the open one: periods never reopen.
            for key in list(self._values):
                if key not in new_values:
                    if key[0] == "ProvisionedConcurrencyUtilization":
                        del self._values[key]  # no allocation, no utilisation
                    else:
                        new_values[key] = 0.0
            self._allocated = {key: state.allocated for key, state in snapshot.provisioned.items()}
            self._active_pc.update(key for key, allocated in self._allocated.items() if allocated > 0)
            for key, value in new_values.items():
                previous = self._values.get(key)
                self._values[key] = value
                # A series seen for the first time at zero is not a change (it was zero before), unless it is the
                # provisioned concurrency of an alias: that one is reported from the moment it is allocated.
                first_zero = previous is None and value == 0 and key[0] not in PROVISIONED_SERIES
                if previous != value and not first_zero:
                    acc = self._gauge_acc.setdefault(key, _GaugePeriod())
                    acc.stat.add(value)
                    acc.changed = True

    # --- output --------------------------------------------------------------------------------------------------
    def flush(self, now: float | None = None, *, final: bool = False) -> list[dict[str, Any]]:
        """PutMetricData ``MetricData`` entries for every period that ended by ``now``; with ``final`` the open one too.

        Each period is returned once; a record that arrives for an already flushed period comes out in a later
        flush with that period's timestamp.
        """
        now = self._clock.now() if now is None else now
        index_now = self._index(now)
        with self._lock:
            if self._gauge_index is not None and index_now > self._gauge_index:
                self._roll_gauges(index_now)
            if final and self._gauge_index is not None:
                self._close_gauge_period()
                self._gauge_acc = {}
            out, self._ready = self._ready, []
            for index in sorted(self._counters):
                if index < index_now or final:
                    for (name, dims), stat in self._counters.pop(index).items():
                        out.append(self._datum(name, dims, index, stat))
        return out

    # --- internals (called with the lock held) -------------------------------------------------------------------
    def _index(self, at: float) -> int:
        return math.floor(at / self.period_s)

    def _bucket(self, at: float) -> dict[SeriesKey, StatisticSet]:
        return self._counters.setdefault(self._index(at), {})

    def _open_gauge_period(self, index: int) -> None:
        self._gauge_index = index
        self._gauge_acc = {}
        for key, value in self._values.items():
            acc = _GaugePeriod()
            acc.stat.add(value)  # the value carried in from before the period is its first sample
            self._gauge_acc[key] = acc
        self._active_pc = {key for key, allocated in self._allocated.items() if allocated > 0}

    def _roll_gauges(self, index: int) -> None:
        """Close the open period, emit the carried values for periods with no sample at all, open ``index``."""
        assert self._gauge_index is not None
        self._close_gauge_period()
        for quiet in range(max(self._gauge_index + 1, index - _MAX_QUIET_PERIODS), index):
            for key, value in self._values.items():
                if value > 0 or self._provisioned_active(key):
                    stat = StatisticSet()
                    stat.add(value)
                    self._ready.append(self._datum(key[0], key[1], quiet, stat))
        self._open_gauge_period(index)

    def _close_gauge_period(self) -> None:
        assert self._gauge_index is not None
        for (name, dims), acc in self._gauge_acc.items():
            if acc.stat.count and (acc.stat.maximum > 0 or acc.changed or self._provisioned_active((name, dims))):
                self._ready.append(self._datum(name, dims, self._gauge_index, acc.stat))

    def _provisioned_active(self, key: SeriesKey) -> bool:
        name, dims = key
        if name not in PROVISIONED_SERIES:
            return False
        labels = dict(dims)
        function = labels.get("FunctionName")
        resource = labels.get("Resource")
        if resource is not None:
            qualifier = resource.split(":", 1)[1]
            return (function or "", qualifier) in self._active_pc
        return any(fn == function for fn, _ in self._active_pc)

    def _datum(self, name: str, dims: Dims, index: int, stat: StatisticSet) -> dict[str, Any]:
        return {
            "MetricName": name,
            "Dimensions": [{"Name": key, "Value": value} for key, value in dims],
            "Timestamp": datetime.fromtimestamp(index * self.period_s, UTC),
            "StatisticValues": stat.statistic_values(),
            "Unit": _UNITS.get(name, "Count"),
            "StorageResolution": self._storage_resolution,
        }


def _stat(bucket: dict[SeriesKey, StatisticSet], name: str, dims: Dims) -> StatisticSet:
    key = (name, dims)
    stat = bucket.get(key)
    if stat is None:
        stat = bucket[key] = StatisticSet()
    return stat


def _series(snapshot: ConcurrencySnapshot) -> dict[SeriesKey, float]:
    values: dict[SeriesKey, float] = {
        ("ConcurrentExecutions", ()): float(snapshot.account_concurrent),
        ("UnreservedConcurrentExecutions", ()): float(snapshot.unreserved_concurrent),
    }
    for function, count in snapshot.functions.items():
        values[("ConcurrentExecutions", function_dims(function))] = float(count)
    for (function, qualifier), count in snapshot.resources.items():
        values[("ConcurrentExecutions", resource_dims(function, qualifier))] = float(count)
    per_function_busy: dict[str, float] = {}
    for (function, qualifier), state in snapshot.provisioned.items():
        dims = resource_dims(function, qualifier)
        values[("ProvisionedConcurrentExecutions", dims)] = float(state.busy)
        per_function_busy[function] = per_function_busy.get(function, 0.0) + state.busy
        if state.allocated > 0:
            values[("ProvisionedConcurrencyUtilization", dims)] = state.busy / state.allocated
    for function, busy in per_function_busy.items():
        values[("ProvisionedConcurrentExecutions", function_dims(function))] = busy
    return values


class MetricsPublisher:
    """A background thread that flushes the aggregator every ``interval_s`` and calls PutMetricData.

    A thread (not an asyncio task) so boto3's blocking calls stay off the service's event loop; give it a client of
    its own (boto3 clients are thread-safe, but sessions are not). Errors talking to CloudWatch are logged and the
    datums kept for the next attempt (up to 100,000); they never reach the caller. ``stop()`` publishes everything,
    the open period included.
    """

    def __init__(
        self,
        aggregator: MetricsAggregator,
        cloudwatch_client: Any,
        interval_s: float = 10.0,
        *,
        namespace: str = NAMESPACE,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, not {interval_s}")
        self._aggregator = aggregator
        self._client = cloudwatch_client
        self._interval_s = interval_s
        self._namespace = namespace
        self._pending: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._publish_lock = threading.Lock()
        self.published = 0  # datums accepted by CloudWatch so far
        self.failures = 0  # PutMetricData calls that failed

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("metrics publisher already started")
        self._thread = threading.Thread(target=self._run, name="metrics-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            if self._thread.is_alive():
                LOG.warning("metrics publisher did not stop within %.1f s", timeout_s)
            self._thread = None
        self.publish_once(final=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.publish_once()

    def publish_once(self, *, final: bool = False) -> int:
        """Flush the aggregator and send what is due, in calls of at most 1000 datums; returns how many were sent."""
        with self._publish_lock:
            try:
                self._pending.extend(self._aggregator.flush(final=final))
            except Exception:
                LOG.exception("metrics aggregation failed")
            if len(self._pending) > _MAX_RETAINED_DATUMS:
                dropped = len(self._pending) - _MAX_RETAINED_DATUMS
                LOG.warning("CloudWatch unreachable too long: dropping the %d oldest metric datums", dropped)
                del self._pending[:dropped]
            sent = 0
            while self._pending:
                batch = self._pending[:MAX_DATUMS_PER_CALL]
                try:
                    self._client.put_metric_data(Namespace=self._namespace, MetricData=batch)
                except Exception as exc:  # botocore errors, connection refused, ...: log and retry next time
                    self.failures += 1
                    LOG.warning("PutMetricData failed (%d datums kept for retry): %s", len(self._pending), exc)
                    break
                del self._pending[: len(batch)]
                sent += len(batch)
            self.published += sent
            if sent:
                LOG.debug("published %d AWS/Lambda datums", sent)
            return sent
