"""AWS/ApiGateway CloudWatch metrics of REST APIs, aggregated per period on an injected clock.

What AWS documents for REST APIs ("Amazon API Gateway dimensions and metrics"): ``Count`` (Sum), ``4XXError`` and
``5XXError`` (one sample per request, 1 or 0, so Sum counts and Average is the rate), ``Latency`` and
``IntegrationLatency`` in milliseconds (statistic sets, so Average, Maximum and percentile-free views work);
dimensions ``ApiName``; ``ApiName`` + ``Stage``; and, with detailed metrics, ``ApiName`` + ``Method`` + ``Resource`` +
``Stage``. Locally the detailed level is always emitted (stage MethodSettings are not applied). A period lasts
``60 * time_scale`` real seconds, as for the local AWS/Lambda metrics.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lambdalab.clock import Clock

LOG = logging.getLogger(__name__)

NAMESPACE = "AWS/ApiGateway"
BASE_PERIOD_S = 60.0
_UNITS = {"Latency": "Milliseconds", "IntegrationLatency": "Milliseconds"}

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


@dataclass(frozen=True)
class ApiRequest:
    """One request as the metrics see it."""

    api_name: str
    stage: str
    resource: str | None  # None when no resource matched (403 Missing Authentication Token)
    method: str
    status: int
    latency_ms: float
    integration_latency_ms: float | None
    at: float  # epoch seconds when the request arrived


class ApiMetrics:
    """Thread-safe aggregator with the ``flush(now, final=)`` interface MetricsPublisher drives."""

    def __init__(self, clock: Clock, *, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, not {time_scale}")
        self._clock = clock
        self.period_s = BASE_PERIOD_S * time_scale
        self._resolution = 1 if self.period_s < BASE_PERIOD_S else 60
        self._lock = threading.Lock()
        self._periods: dict[int, dict[tuple[str, Dims], _Stat]] = {}

    def record(self, request: ApiRequest) -> None:
        levels: list[Dims] = [
            (("ApiName", request.api_name),),
            (("ApiName", request.api_name), ("Stage", request.stage)),
        ]
        if request.resource is not None:
            levels.append(
                (
                    ("ApiName", request.api_name),
                    ("Method", request.method),
                    ("Resource", request.resource),
                    ("Stage", request.stage),
                )
            )
        samples: list[tuple[str, float]] = [
            ("Count", 1.0),
            ("4XXError", 1.0 if 400 <= request.status < 500 else 0.0),
            ("5XXError", 1.0 if request.status >= 500 else 0.0),
            ("Latency", request.latency_ms),
        ]
        if request.integration_latency_ms is not None:
            samples.append(("IntegrationLatency", request.integration_latency_ms))
        with self._lock:
            bucket = self._periods.setdefault(math.floor(request.at / self.period_s), {})
            for dims in levels:
                for name, value in samples:
                    bucket.setdefault((name, dims), _Stat()).add(value)

    def flush(self, now: float | None = None, *, final: bool = False) -> list[dict[str, Any]]:
        """PutMetricData entries for every period that ended by ``now`` (with ``final``, the open one too)."""
        index_now = math.floor((self._clock.now() if now is None else now) / self.period_s)
        out: list[dict[str, Any]] = []
        with self._lock:
            for index in sorted(self._periods):
                if index < index_now or final:
                    for (name, dims), stat in self._periods.pop(index).items():
                        out.append(self._datum(name, dims, index, stat))
        return out

    def _datum(self, name: str, dims: Dims, index: int, stat: _Stat) -> dict[str, Any]:
        return {
            "MetricName": name,
            "Dimensions": [{"Name": key, "Value": value} for key, value in dims],
            "Timestamp": datetime.fromtimestamp(index * self.period_s, UTC),
            "StatisticValues": {
                "SampleCount": float(stat.count),
                "Sum": stat.total,
                "Minimum": stat.minimum,
                "Maximum": stat.maximum,
            },
            "Unit": _UNITS.get(name, "Count"),
            "StorageResolution": self._resolution,
        }
