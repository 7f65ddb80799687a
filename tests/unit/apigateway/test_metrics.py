"""AWS/ApiGateway metrics per period: Count, 4XX/5XX as 0/1 samples, latencies as statistic sets, three levels."""

from __future__ import annotations

import pytest

from lambdalab.apigateway.metrics import ApiMetrics, ApiRequest
from lambdalab.clock import VirtualClock


def _request(status: int, latency: float, at: float, resource: str | None = "/products") -> ApiRequest:
    return ApiRequest("lab-api", "lab", resource, "GET", status, latency, None if resource is None else latency - 1, at)


def _by(datums: list[dict], name: str, levels: int) -> dict:
    (datum,) = [d for d in datums if d["MetricName"] == name and len(d["Dimensions"]) == levels]
    return datum


def test_a_period_sums_counts_and_errors_and_keeps_latency_extremes() -> None:
    # GIVEN three requests in the first 60 s period: a 200, a 404 and a 502
    clock = VirtualClock(600.0)
    metrics = ApiMetrics(clock)
    for status, latency, at in ((200, 20, 600.0), (404, 5, 610.0), (502, 90, 659.0)):
        metrics.record(_request(status, latency, at))
    # WHEN the period has not ended, nothing is due; after it has, everything is
    assert metrics.flush() == []
    clock.advance(60)
    datums = metrics.flush()
    # THEN every level (API, API+stage, API+method+resource+stage) carries the same numbers
    for levels in (1, 2, 4):
        assert _by(datums, "Count", levels)["StatisticValues"]["Sum"] == 3
        assert _by(datums, "4XXError", levels)["StatisticValues"]["Sum"] == 1
        assert _by(datums, "5XXError", levels)["StatisticValues"]["Sum"] == 1
        latency = _by(datums, "Latency", levels)
        assert latency["StatisticValues"] == {"SampleCount": 3, "Sum": 115, "Minimum": 5, "Maximum": 90}
        assert latency["Unit"] == "Milliseconds"
    assert {d["Name"] for d in _by(datums, "Count", 4)["Dimensions"]} == {"ApiName", "Method", "Resource", "Stage"}
    assert _by(datums, "Count", 1)["Timestamp"].timestamp() == 600.0
    assert metrics.flush() == []  # each period once


def test_compressed_periods_are_high_resolution() -> None:
    clock = VirtualClock(0.0)
    metrics = ApiMetrics(clock, time_scale=0.05)  # 3 s periods
    metrics.record(_request(200, 10, 1.0))
    metrics.record(_request(200, 10, 4.0))
    clock.set(4.5)
    (first_period,) = {d["Timestamp"].timestamp() for d in metrics.flush()}
    assert first_period == 0.0
    final = metrics.flush(final=True)
    assert {d["Timestamp"].timestamp() for d in final} == {3.0}
    assert all(d["StorageResolution"] == 1 for d in final)


def test_unmatched_requests_have_no_resource_level_and_no_integration_latency() -> None:
    metrics = ApiMetrics(VirtualClock(0.0))
    metrics.record(_request(403, 1, 0.0, resource=None))
    datums = metrics.flush(final=True)
    assert all(len(d["Dimensions"]) < 4 for d in datums)
    assert not [d for d in datums if d["MetricName"] == "IntegrationLatency"]


def test_time_scale_must_be_positive() -> None:
    with pytest.raises(ValueError, match="time_scale"):
        ApiMetrics(VirtualClock(), time_scale=0)
