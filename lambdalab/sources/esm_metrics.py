"""Event source mapping metrics in AWS/Lambda, aggregated per period on an injected clock.

With `MetricsConfig: {Metrics: [EventCount]}` Lambda publishes, per mapping (dimension `EventSourceMappingUUID`),
`PolledEventCount`, `FilteredOutEventCount`, `InvokedEventCount`, `FailedInvokeEventCount`, and for SQS
`DeletedEventCount`, for streams `DroppedEventCount` and `OnFailureDestinationDeliveredEventCount` [Lambda
developer guide, "Event source mapping metrics"; AWS launch note of November 2024]. Stream mappings also give the
function's `IteratorAge` (ms, the age of the last record of each batch when it finished) [Kinesis: "Amazon CloudWatch
metrics"]. A period lasts `60 x time_scale` seconds, as for the other local metrics.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lambdalab.clock import Clock

BASE_PERIOD_S = 60.0
POLLED = "PolledEventCount"
FILTERED_OUT = "FilteredOutEventCount"
INVOKED = "InvokedEventCount"
FAILED_INVOKE = "FailedInvokeEventCount"
DELETED = "DeletedEventCount"
DROPPED = "DroppedEventCount"
ON_FAILURE_DELIVERED = "OnFailureDestinationDeliveredEventCount"
ITERATOR_AGE = "IteratorAge"

Dims = tuple[tuple[str, str], ...]


@dataclass
class _Stat:
    count: int = 0
    total: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)


class EsmMetrics:
    """Thread-safe; `flush(now, final=)` is what MetricsPublisher drives."""

    def __init__(self, clock: Clock, *, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, not {time_scale}")
        self._clock = clock
        self.period_s = BASE_PERIOD_S * time_scale
        self._resolution = 1 if self.period_s < BASE_PERIOD_S else 60
        self._lock = threading.Lock()
        self._periods: dict[int, dict[tuple[str, Dims], _Stat]] = {}

    def _add(self, name: str, dims: Dims, value: float) -> None:
        index = math.floor(self._clock.now() / self.period_s)
        with self._lock:
            self._periods.setdefault(index, {}).setdefault((name, dims), _Stat()).add(value)

    def count(self, mapping_uuid: str, name: str, events: int) -> None:
        if events > 0:
            self._add(name, (("EventSourceMappingUUID", mapping_uuid),), float(events))

    def iterator_age(self, function_name: str, age_ms: float) -> None:
        self._add(ITERATOR_AGE, (("FunctionName", function_name),), max(0.0, age_ms))

    def flush(self, now: float | None = None, *, final: bool = False) -> list[dict[str, Any]]:
        index_now = math.floor((self._clock.now() if now is None else now) / self.period_s)
        out: list[dict[str, Any]] = []
        with self._lock:
            for index in sorted(self._periods):
                if index < index_now or final:
                    for (name, dims), stat in self._periods.pop(index).items():
                        out.append(
                            {
                                "MetricName": name,
                                "Dimensions": [{"Name": k, "Value": v} for k, v in dims],
                                "Timestamp": datetime.fromtimestamp(index * self.period_s, UTC),
                                "StatisticValues": {
                                    "SampleCount": float(stat.count),
                                    "Sum": stat.total,
                                    "Minimum": stat.minimum,
                                    "Maximum": stat.maximum,
                                },
                                "Unit": "Milliseconds" if name == ITERATOR_AGE else "Count",
                                "StorageResolution": self._resolution,
                            }
                        )
        return out
