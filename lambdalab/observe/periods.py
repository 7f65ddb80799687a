"""Statistic sets per metric period, and the PutMetricData entries they become.

The local services that publish to CloudWatch (API Gateway REST and HTTP APIs, event source mappings) aggregate
the same way: one statistic set (SampleCount, Sum, Minimum, Maximum) per metric name, dimensions and period of
`period_s` seconds; once a period has ended, `flush` hands its entries to MetricsPublisher. High resolution (1 s)
when the period is compressed below a minute, as CloudWatch needs for sub-minute timestamps.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

Dims = tuple[tuple[str, str], ...]
BASE_PERIOD_S = 60.0


class StatisticSet:
    """A statistic set: what CloudWatch needs for SampleCount, Sum, Minimum, Maximum and Average."""

    __slots__ = ("count", "maximum", "minimum", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)

    def statistic_values(self) -> dict[str, float]:
        return {"SampleCount": float(self.count), "Sum": self.total, "Minimum": self.minimum, "Maximum": self.maximum}


class PeriodStats:
    """Thread-safe statistic sets by (metric name, dimensions) per period; `units` names the non-Count units."""

    def __init__(self, period_s: float, units: Mapping[str, str] | None = None) -> None:
        if period_s <= 0:
            raise ValueError(f"the metric period must be positive, not {period_s}")
        self.period_s = period_s
        self.resolution = 1 if period_s < BASE_PERIOD_S else 60
        self._units = dict(units or {})
        self._lock = threading.Lock()
        self._periods: dict[int, dict[tuple[str, Dims], StatisticSet]] = {}

    def add(self, at: float, name: str, dims: Dims, value: float) -> None:
        self.add_all(at, (dims,), ((name, value),))

    def add_all(self, at: float, levels: Iterable[Dims], samples: Iterable[tuple[str, float]]) -> None:
        """Every sample at every dimension level, in the period of `at` (epoch seconds)."""
        pairs = list(samples)
        with self._lock:
            bucket = self._periods.setdefault(math.floor(at / self.period_s), {})
            for dims in levels:
                for name, value in pairs:
                    stat = bucket.get((name, dims))
                    if stat is None:
                        stat = bucket[(name, dims)] = StatisticSet()
                    stat.add(value)

    def flush(self, now: float, *, final: bool = False) -> list[dict[str, Any]]:
        """PutMetricData entries for every period that ended by `now` (with `final`, the open one too)."""
        index_now = math.floor(now / self.period_s)
        out: list[dict[str, Any]] = []
        with self._lock:
            for index in sorted(self._periods):
                if index < index_now or final:
                    for (name, dims), stat in self._periods.pop(index).items():
                        out.append(
                            {
                                "MetricName": name,
                                "Dimensions": [{"Name": key, "Value": value} for key, value in dims],
                                "Timestamp": datetime.fromtimestamp(index * self.period_s, UTC),
                                "StatisticValues": stat.statistic_values(),
                                "Unit": self._units.get(name, "Count"),
                                "StorageResolution": self.resolution,
                            }
                        )
        return out
