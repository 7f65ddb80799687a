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
from dataclasses import dataclass
from typing import Any

from lambdalab.clock import Clock
from lambdalab.observe.periods import BASE_PERIOD_S, Dims, PeriodStats

LOG = logging.getLogger(__name__)

NAMESPACE = "AWS/ApiGateway"
_UNITS = {"Latency": "Milliseconds", "IntegrationLatency": "Milliseconds"}


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
        self._stats = PeriodStats(BASE_PERIOD_S * time_scale, _UNITS)
        self.period_s = self._stats.period_s

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
        self._stats.add_all(request.at, levels, samples)

    def flush(self, now: float | None = None, *, final: bool = False) -> list[dict[str, Any]]:
        """PutMetricData entries for every period that ended by ``now`` (with ``final``, the open one too)."""
        return self._stats.flush(self._clock.now() if now is None else now, final=final)
