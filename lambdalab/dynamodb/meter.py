"""The capacity meter: token buckets with burst for PROVISIONED tables, the double-the-peak rule for PAY_PER_REQUEST,
and per-period consumption and throttle counts, all on an injected clock.

Rules applied (see docs/DYNAMODB.md):
- PROVISIONED: one bucket per table or GSI and per kind (read, write), refilled at the provisioned units per second,
  holding at most ``burst_s`` seconds of them (300 s on AWS, scaled locally by the time scale). A bucket starts full.
  A request is admitted when every bucket it touches holds at least ``min(estimate, bucket size)`` and more than zero;
  its actual units are charged after it ran, so a bucket may go below zero (debt) and then refuses until refilled.
- PAY_PER_REQUEST: per one-second window, a table accepts up to twice its previous peak window (the peak starts at
  half the documented initial on-demand throughput: 6,000 read and 2,000 write units per second, so up to 12,000 and
  4,000 at once). The peak never decays locally (AWS: the peak of the previous 30 minutes).
"""

from __future__ import annotations

import enum
import logging
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lambdalab.clock import Clock

LOG = logging.getLogger(__name__)

NAMESPACE = "AWS/DynamoDB"
BASE_PERIOD_S = 60.0
BURST_SECONDS = 300.0
ON_DEMAND_INITIAL_PEAK = {"read": 6000.0, "write": 2000.0}
ON_DEMAND_WINDOW_S = 1.0
_HISTORY_PERIODS = 120


class BillingMode(enum.Enum):
    PROVISIONED = "PROVISIONED"
    PAY_PER_REQUEST = "PAY_PER_REQUEST"


class Kind(enum.Enum):
    READ = "read"
    WRITE = "write"

    # Members are singletons compared by identity, so the identity hash is consistent with equality; Enum's own
    # __hash__ is Python code run for every bucket lookup (a fifth of an admission in bench/bench_simulate.py).
    __hash__ = object.__hash__


@dataclass(frozen=True)
class Use:
    """One request's use of one capacity: the table (index None) or a GSI, read or write, in capacity units."""

    index: str | None
    kind: Kind
    units: float


@dataclass
class TokenBucket:
    rate: float  # units per second
    size: float  # rate * burst seconds
    tokens: float
    updated: float

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.size, self.tokens + (now - self.updated) * self.rate)
        self.updated = max(self.updated, now)

    def resize(self, rate: float, burst_s: float, now: float) -> None:
        self.refill(now)
        self.rate = rate
        self.size = rate * burst_s
        self.tokens = min(self.tokens, self.size)


@dataclass
class OnDemandWindow:
    peak: float
    window: int = -1
    used: float = 0.0

    def roll(self, window: int) -> None:
        if window != self.window:
            self.peak = max(self.peak, self.used) if self.window >= 0 else self.peak
            self.window = window
            self.used = 0.0

    @property
    def allowed(self) -> float:
        return 2.0 * self.peak


@dataclass
class PeriodStat:
    consumed: float = 0.0
    throttle_events: int = 0
    provisioned: float | None = None


@dataclass
class TableCapacity:
    name: str
    mode: BillingMode
    # (index or None, kind) → provisioned units per second; empty for PAY_PER_REQUEST
    provisioned: dict[tuple[str | None, Kind], float] = field(default_factory=dict)
    buckets: dict[tuple[str | None, Kind], TokenBucket] = field(default_factory=dict)
    on_demand: dict[tuple[str | None, Kind], OnDemandWindow] = field(default_factory=dict)
    indexes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Admission:
    admitted: bool
    throttled: tuple[tuple[str | None, Kind], ...] = ()  # the capacities that refused


class CapacityMeter:
    """Thread-safe: the gateway handler admits and charges, the publisher flushes, the autoscaler reads periods."""

    def __init__(self, clock: Clock, *, time_scale: float = 1.0, burst_s: float | None = None) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, not {time_scale}")
        self.clock = clock
        self.period_s = BASE_PERIOD_S * time_scale
        self.burst_s = BURST_SECONDS * time_scale if burst_s is None else burst_s
        self._tables: dict[str, TableCapacity] = {}
        self._lock = threading.Lock()
        # (table, index, kind) → period index → stat; throttled requests per (table, period)
        self._periods: dict[tuple[str, str | None, Kind], dict[int, PeriodStat]] = {}
        self._throttled_requests: dict[str, dict[int, int]] = {}
        self._flushed_through = math.floor(clock.now() / self.period_s) - 1

    # --- tables -------------------------------------------------------------------------------------------------
    def set_table(self, description: dict[str, Any]) -> None:
        """Learn or update a table from a DynamoDB TableDescription (CreateTable, UpdateTable, DescribeTable)."""
        name = description["TableName"]
        billing = (description.get("BillingModeSummary") or {}).get("BillingMode") or "PROVISIONED"
        mode = BillingMode(billing)
        provisioned: dict[tuple[str | None, Kind], float] = {}
        throughputs: list[tuple[str | None, dict[str, Any]]] = [(None, description.get("ProvisionedThroughput") or {})]
        indexes = []
        for gsi in description.get("GlobalSecondaryIndexes") or []:
            indexes.append(gsi["IndexName"])
            throughputs.append((gsi["IndexName"], gsi.get("ProvisionedThroughput") or {}))
        if mode is BillingMode.PROVISIONED:
            for index, throughput in throughputs:
                provisioned[(index, Kind.READ)] = float(throughput.get("ReadCapacityUnits") or 0)
                provisioned[(index, Kind.WRITE)] = float(throughput.get("WriteCapacityUnits") or 0)
        with self._lock:
            self._set_table(name, mode, provisioned, tuple(indexes))

    def _set_table(
        self, name: str, mode: BillingMode, provisioned: dict[tuple[str | None, Kind], float], indexes: tuple[str, ...]
    ) -> None:
        now = self.clock.now()
        table = self._tables.get(name)
        if table is None or table.mode is not mode:
            table = TableCapacity(name, mode, indexes=indexes)
            self._tables[name] = table
        table.indexes = indexes
        table.provisioned = provisioned
        if mode is BillingMode.PROVISIONED:
            for key, rate in provisioned.items():
                bucket = table.buckets.get(key)
                if bucket is None:
                    table.buckets[key] = TokenBucket(rate, rate * self.burst_s, rate * self.burst_s, now)
                else:
                    bucket.resize(rate, self.burst_s, now)
            for key in list(table.buckets):
                if key not in provisioned:
                    del table.buckets[key]
        else:
            for index in (None, *indexes):
                for kind in Kind:
                    table.on_demand.setdefault((index, kind), OnDemandWindow(ON_DEMAND_INITIAL_PEAK[kind.value]))

    def forget_table(self, name: str) -> None:
        with self._lock:
            self._tables.pop(name, None)

    def knows(self, name: str) -> bool:
        with self._lock:
            return name in self._tables

    def table(self, name: str) -> TableCapacity | None:
        with self._lock:
            return self._tables.get(name)

    def indexes(self, name: str) -> tuple[str, ...]:
        with self._lock:
            table = self._tables.get(name)
            return table.indexes if table else ()

    def provisioned(self, name: str, kind: Kind, index: str | None = None) -> float | None:
        with self._lock:
            table = self._tables.get(name)
            return None if table is None else table.provisioned.get((index, kind))

    # --- requests -----------------------------------------------------------------------------------------------
    def admit(self, name: str, uses: Iterable[Use]) -> Admission:
        """Whether a request may run now. A refused request counts one throttled request, and one throttle event per
        capacity it would have used (read or write, table or GSI)."""
        uses = list(uses)
        with self._lock:
            table = self._tables.get(name)
            if table is None:
                return Admission(True)
            now = self.clock.now()
            refused: list[tuple[str | None, Kind]] = []
            for use in uses:
                key = (use.index, use.kind)
                if table.mode is BillingMode.PROVISIONED:
                    bucket = table.buckets.get(key)
                    if bucket is None:
                        continue
                    bucket.refill(now)
                    need = min(use.units, bucket.size)
                    if bucket.tokens <= 0 or bucket.tokens < need:
                        refused.append(key)
                else:
                    window = table.on_demand.get(key)
                    if window is None:
                        continue
                    window.roll(math.floor(now / ON_DEMAND_WINDOW_S))
                    if window.used + use.units > window.allowed:
                        refused.append(key)
            if not refused:
                return Admission(True)
            period = self._period(now)
            for index, kind in refused:
                self._stat(name, index, kind, period).throttle_events += 1
            per_table = self._throttled_requests.setdefault(name, {})
            per_table[period] = per_table.get(period, 0) + 1
            return Admission(False, tuple(refused))

    def charge(self, name: str, uses: Iterable[Use]) -> None:
        """Charge what a request consumed (after it ran)."""
        with self._lock:
            table = self._tables.get(name)
            if table is None:
                return
            now = self.clock.now()
            period = self._period(now)
            for use in uses:
                key = (use.index, use.kind)
                if table.mode is BillingMode.PROVISIONED:
                    bucket = table.buckets.get(key)
                    if bucket is not None:
                        bucket.refill(now)
                        bucket.tokens -= use.units
                else:
                    window = table.on_demand.get(key)
                    if window is not None:
                        window.roll(math.floor(now / ON_DEMAND_WINDOW_S))
                        window.used += use.units
                self._stat(name, use.index, use.kind, period).consumed += use.units

    def tokens(self, name: str, kind: Kind, index: str | None = None) -> float | None:
        """The burst credit left now (PROVISIONED), for tests and reports."""
        with self._lock:
            table = self._tables.get(name)
            bucket = table.buckets.get((index, kind)) if table else None
            if bucket is None:
                return None
            bucket.refill(self.clock.now())
            return bucket.tokens

    # --- periods ------------------------------------------------------------------------------------------------
    def period_index(self, at: float | None = None) -> int:
        return self._period(self.clock.now() if at is None else at)

    def _period(self, at: float) -> int:
        return math.floor(at / self.period_s)

    def _stat(self, name: str, index: str | None, kind: Kind, period: int) -> PeriodStat:
        periods = self._periods.setdefault((name, index, kind), {})
        stat = periods.get(period)
        if stat is None:
            stat = periods[period] = PeriodStat()
            for old in [p for p in periods if p < period - _HISTORY_PERIODS]:
                del periods[old]
        return stat

    def period_stat(self, name: str, kind: Kind, period: int, index: str | None = None) -> PeriodStat:
        """Consumption and throttles of one closed period; a known table with no traffic reads as zero."""
        with self._lock:
            stat = self._periods.get((name, index, kind), {}).get(period)
            return PeriodStat(stat.consumed, stat.throttle_events) if stat else PeriodStat()

    def flush(self, now: float | None = None, *, final: bool = False) -> list[dict[str, Any]]:
        """PutMetricData entries for every period that ended by ``now`` (the open one too with ``final``): Consumed
        and Provisioned Read/WriteCapacityUnits, Read/WriteThrottleEvents, ThrottledRequests, zeros included for
        every known table, so alarms and scale-in see idle periods."""
        now = self.clock.now() if now is None else now
        with self._lock:
            last = self._period(now) if final else self._period(now) - 1
            datums: list[dict[str, Any]] = []
            for period in range(self._flushed_through + 1, last + 1):
                for name, table in self._tables.items():
                    datums.extend(self._period_datums(name, table, period))
            self._flushed_through = max(self._flushed_through, last)
            return datums

    def _period_datums(self, name: str, table: TableCapacity, period: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        timestamp = datetime.fromtimestamp(period * self.period_s, UTC)
        resolution = 1 if self.period_s < BASE_PERIOD_S else 60
        throttled = 0
        for index in (None, *table.indexes):
            dims = [{"Name": "TableName", "Value": name}]
            if index is not None:
                dims.append({"Name": "GlobalSecondaryIndexName", "Value": index})
            for kind in Kind:
                stat = self._periods.get((name, index, kind), {}).get(period) or PeriodStat()
                label = "Read" if kind is Kind.READ else "Write"
                values: list[tuple[str, float, str]] = [
                    (f"Consumed{label}CapacityUnits", stat.consumed, "Count"),
                    (f"{label}ThrottleEvents", float(stat.throttle_events), "Count"),
                ]
                provisioned = table.provisioned.get((index, kind))
                if provisioned is not None:
                    values.append((f"Provisioned{label}CapacityUnits", provisioned, "Count"))
                for metric, value, unit in values:
                    out.append(
                        {
                            "MetricName": metric,
                            "Dimensions": dims,
                            "Timestamp": timestamp,
                            "Value": value,
                            "Unit": unit,
                            "StorageResolution": resolution,
                        }
                    )
        throttled = self._throttled_requests.get(name, {}).get(period, 0)
        out.append(
            {
                "MetricName": "ThrottledRequests",
                "Dimensions": [{"Name": "TableName", "Value": name}],
                "Timestamp": timestamp,
                "Value": float(throttled),
                "Unit": "Count",
                "StorageResolution": resolution,
            }
        )
        return out
