"""Event source mapping metrics in AWS/Lambda, aggregated per period on an injected clock.

With `MetricsConfig: {Metrics: [EventCount]}` Lambda publishes, per mapping (dimension `EventSourceMappingUUID`),
`PolledEventCount`, `FilteredOutEventCount`, `InvokedEventCount`, `FailedInvokeEventCount`, and for SQS
`DeletedEventCount`, for streams `DroppedEventCount` and `OnFailureDestinationDeliveredEventCount` [Lambda
developer guide, "Event source mapping metrics"; AWS launch note of November 2024]. Stream mappings also give the
function's `IteratorAge` (ms, the age of the last record of each batch when it finished) [Kinesis: "Amazon CloudWatch
metrics"]. A period lasts `60 x time_scale` seconds, as for the other local metrics.
"""

from __future__ import annotations

from typing import Any

from lambdalab.clock import Clock
from lambdalab.observe.periods import BASE_PERIOD_S, Dims, PeriodStats

POLLED = "PolledEventCount"
FILTERED_OUT = "FilteredOutEventCount"
INVOKED = "InvokedEventCount"
FAILED_INVOKE = "FailedInvokeEventCount"
DELETED = "DeletedEventCount"
DROPPED = "DroppedEventCount"
ON_FAILURE_DELIVERED = "OnFailureDestinationDeliveredEventCount"
ITERATOR_AGE = "IteratorAge"


class EsmMetrics:
    """Thread-safe; `flush(now, final=)` is what MetricsPublisher drives."""

    def __init__(self, clock: Clock, *, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, not {time_scale}")
        self._clock = clock
        self._stats = PeriodStats(BASE_PERIOD_S * time_scale, {ITERATOR_AGE: "Milliseconds"})
        self.period_s = self._stats.period_s

    def _add(self, name: str, dims: Dims, value: float) -> None:
        self._stats.add(self._clock.now(), name, dims, value)

    def count(self, mapping_uuid: str, name: str, events: int) -> None:
        if events > 0:
            self._add(name, (("EventSourceMappingUUID", mapping_uuid),), float(events))

    def iterator_age(self, function_name: str, age_ms: float) -> None:
        self._add(ITERATOR_AGE, (("FunctionName", function_name),), max(0.0, age_ms))

    def flush(self, now: float | None = None, *, final: bool = False) -> list[dict[str, Any]]:
        return self._stats.flush(self._clock.now() if now is None else now, final=final)
