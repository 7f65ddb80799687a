"""AWS/Lambda metrics: exact datapoints for scripted sequences on a virtual clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from lambdalab.clock import VirtualClock
from lambdalab.observe.metrics import (
    MAX_DATUMS_PER_CALL,
    AsyncMetricEvent,
    AsyncMetricKind,
    ConcurrencySnapshot,
    MetricsAggregator,
    MetricsPublisher,
    ProvisionedState,
)
from tests.unit.observe.conftest import T0, build_record

FN = (("FunctionName", "fn"),)
LIVE = (("FunctionName", "fn"), ("Resource", "fn:live"))


def index(data: list[dict[str, Any]]) -> dict[tuple[str, tuple[tuple[str, str], ...], float], dict[str, float]]:
    """Datapoints keyed by (metric, dimensions, epoch timestamp); each key must occur once."""
    out: dict[tuple[str, tuple[tuple[str, str], ...], float], dict[str, float]] = {}
    for datum in data:
        dims = tuple((d["Name"], d["Value"]) for d in datum["Dimensions"])
        key = (datum["MetricName"], dims, datum["Timestamp"].timestamp())
        assert key not in out, f"duplicate datapoint {key}"
        out[key] = datum["StatisticValues"]
    return out


def snap(at: float, busy: int, allocated: int = 4, on_demand: int = 0) -> ConcurrencySnapshot:
    total = busy + on_demand
    return ConcurrencySnapshot(
        at=at,
        account_concurrent=total,
        unreserved_concurrent=total,
        functions={"fn": total} if total else {},
        resources={("fn", "live"): total} if total else {},
        provisioned={("fn", "live"): ProvisionedState(busy=busy, allocated=allocated)},
    )


def test_invocation_counters_per_level_for_a_scripted_minute():
    # GIVEN two successes (one provisioned, one spillover), a function error and a throttle on fn:live
    agg = MetricsAggregator(VirtualClock(T0))
    agg.record_invocation(build_record(qualifier="live", start_kind="provisioned", duration_s=0.1))
    agg.record_invocation(build_record(qualifier="live", start_kind="warm", spillover=True, duration_s=0.3))
    agg.record_invocation(build_record(qualifier="live", outcome="function_error", duration_s=0.2))
    agg.record_invocation(
        build_record(qualifier="live", outcome="throttled", start_kind=None, duration_s=None, throttle_reason="r")
    )
    agg.record_invocation(build_record(invocation_type="DryRun"))  # not an invocation at all

    # WHEN the minute is over
    assert agg.flush(T0 + 59.9) == []  # nothing before the period closes
    data = index(agg.flush(T0 + 60))

    # THEN every level (account, function, alias) has the same exact counts
    for dims in ((), FN, LIVE):
        assert data[("Invocations", dims, T0)] == {"SampleCount": 3, "Sum": 3, "Minimum": 1, "Maximum": 1}
        assert data[("Errors", dims, T0)] == {"SampleCount": 3, "Sum": 1, "Minimum": 0, "Maximum": 1}
        assert data[("Throttles", dims, T0)]["Sum"] == 1
        assert data[("ProvisionedConcurrencyInvocations", dims, T0)]["Sum"] == 1
        assert data[("ProvisionedConcurrencySpilloverInvocations", dims, T0)]["Sum"] == 1
        duration = data[("Duration", dims, T0)]
        assert duration["SampleCount"] == 3
        assert duration["Sum"] == pytest.approx(600.0)
        assert duration["Minimum"] == pytest.approx(100.0)
        assert duration["Maximum"] == pytest.approx(300.0)
    assert len(data) == 18
    assert agg.flush(T0 + 120) == []  # each period once


def test_unqualified_calls_have_no_resource_dimension_and_periods_split_by_received_time():
    agg = MetricsAggregator(VirtualClock(T0))
    agg.record_invocation(build_record(received_at=T0 + 59.0))
    agg.record_invocation(build_record(received_at=T0 + 61.0))
    data = index(agg.flush(T0 + 120))
    assert data[("Invocations", FN, T0)]["Sum"] == 1
    assert data[("Invocations", FN, T0 + 60)]["Sum"] == 1
    assert not any(dict(dims).get("Resource") for (_, dims, _) in data)


def test_a_late_record_is_published_later_with_its_own_period_timestamp():
    agg = MetricsAggregator(VirtualClock(T0))
    agg.record_invocation(build_record(received_at=T0 + 10))
    assert index(agg.flush(T0 + 60))[("Invocations", (), T0)]["Sum"] == 1
    agg.record_invocation(build_record(received_at=T0 + 50))  # finished long after its minute
    assert index(agg.flush(T0 + 70))[("Invocations", (), T0)]["Sum"] == 1


def test_time_scale_compresses_periods_and_uses_high_resolution():
    agg = MetricsAggregator(VirtualClock(T0), time_scale=0.1)  # 6-second "minutes"
    agg.record_invocation(build_record(received_at=T0 + 5.9))
    agg.record_invocation(build_record(received_at=T0 + 6.0))
    data = agg.flush(T0 + 12)
    stamps = sorted({d["Timestamp"] for d in data if d["MetricName"] == "Invocations"})
    assert stamps == [datetime.fromtimestamp(T0, UTC), datetime.fromtimestamp(T0 + 6, UTC)]
    assert {d["StorageResolution"] for d in data} == {1}
    assert {d["StorageResolution"] for d in _one_minute_datapoints()} == {60}


def _one_minute_datapoints() -> list[dict[str, Any]]:
    agg = MetricsAggregator(VirtualClock(T0))
    agg.record_invocation(build_record())
    return agg.flush(T0 + 60)


def test_provisioned_utilization_maximum_and_average_are_exact_when_sampled_on_every_change():
    # GIVEN 4 provisioned environments on fn:live; busy goes 0 -> 1 -> 2 -> 4 -> 1 in minute 0
    agg = MetricsAggregator(VirtualClock(T0))
    for at, busy in ((T0, 0), (T0 + 10, 1), (T0 + 11, 2), (T0 + 12, 4), (T0 + 30, 1)):
        agg.sample_concurrency(snap(at, busy))
    # nothing changes during minute 1, then everything is released in minute 2
    agg.sample_concurrency(snap(T0 + 125, 0))

    # WHEN three minutes have passed
    data = index(agg.flush(T0 + 180))

    # THEN minute 0: Maximum 1.0 and the mean of the samples; minute 1 carries 1 busy in; minute 2 ends at 0
    util0 = data[("ProvisionedConcurrencyUtilization", LIVE, T0)]
    assert util0 == {"SampleCount": 5, "Sum": pytest.approx(2.0), "Minimum": 0.0, "Maximum": 1.0}
    assert data[("ProvisionedConcurrencyUtilization", LIVE, T0 + 60)] == {
        "SampleCount": 1,
        "Sum": 0.25,
        "Minimum": 0.25,
        "Maximum": 0.25,
    }
    util2 = data[("ProvisionedConcurrencyUtilization", LIVE, T0 + 120)]
    assert (util2["SampleCount"], util2["Maximum"], util2["Minimum"]) == (2, 0.25, 0.0)
    assert data[("ProvisionedConcurrentExecutions", LIVE, T0)]["Maximum"] == 4
    assert data[("ProvisionedConcurrentExecutions", FN, T0)]["Maximum"] == 4
    assert data[("ConcurrentExecutions", (), T0)]["Maximum"] == 4
    assert data[("ConcurrentExecutions", FN, T0 + 60)]["Maximum"] == 1
    assert data[("ConcurrentExecutions", LIVE, T0 + 120)]["Maximum"] == 1
    assert data[("UnreservedConcurrentExecutions", (), T0)]["Maximum"] == 4


def test_an_alias_with_provisioned_concurrency_reports_zero_utilization_every_idle_period():
    agg = MetricsAggregator(VirtualClock(T0))
    agg.sample_concurrency(snap(T0 + 1, 0, allocated=10))
    data = index(agg.flush(T0 + 240))
    for minute in range(4):
        assert data[("ProvisionedConcurrencyUtilization", LIVE, T0 + 60 * minute)]["Maximum"] == 0.0
    # idle on-demand series (always zero, never changed) emit nothing
    assert not any(name == "ConcurrentExecutions" for (name, _, _) in data)


def test_a_period_without_any_sample_still_gets_the_carried_concurrency():
    agg = MetricsAggregator(VirtualClock(T0))
    agg.sample_concurrency(ConcurrencySnapshot(at=T0 + 5, account_concurrent=7, unreserved_concurrent=7))
    data = index(agg.flush(T0 + 180))
    assert [data[("ConcurrentExecutions", (), T0 + 60 * m)]["Maximum"] for m in range(3)] == [7, 7, 7]


def test_final_flush_includes_the_open_period():
    agg = MetricsAggregator(VirtualClock(T0))
    agg.record_invocation(build_record(received_at=T0 + 1))
    agg.sample_concurrency(ConcurrencySnapshot(at=T0 + 1, account_concurrent=3, unreserved_concurrent=3))
    assert agg.flush(T0 + 30) == []
    data = index(agg.flush(T0 + 30, final=True))
    assert data[("Invocations", (), T0)]["Sum"] == 1
    assert data[("ConcurrentExecutions", (), T0)]["Maximum"] == 3


def test_async_metrics():
    agg = MetricsAggregator(VirtualClock(T0))
    agg.record_async(AsyncMetricEvent(AsyncMetricKind.RECEIVED, "fn", None, T0 + 1))
    agg.record_async(AsyncMetricEvent(AsyncMetricKind.RECEIVED, "fn", None, T0 + 2))
    agg.record_async(AsyncMetricEvent(AsyncMetricKind.DEQUEUED, "fn", None, T0 + 3, age_s=2.0))
    agg.record_async(AsyncMetricEvent(AsyncMetricKind.DROPPED, "fn", None, T0 + 4))
    with pytest.raises(ValueError, match="age_s"):
        agg.record_async(AsyncMetricEvent(AsyncMetricKind.DEQUEUED, "fn", None, T0 + 3))
    data = index(agg.flush(T0 + 60))
    assert data[("AsyncEventsReceived", FN, T0)]["Sum"] == 2
    assert data[("AsyncEventAge", FN, T0)]["Maximum"] == 2000.0
    assert data[("AsyncEventsDropped", (), T0)]["Sum"] == 1


def test_the_clock_is_used_when_flush_gets_no_time():
    clock = VirtualClock(T0)
    agg = MetricsAggregator(clock)
    agg.record_invocation(build_record())
    assert agg.flush() == []
    clock.advance(60)
    assert len(agg.flush()) == 6  # Invocations, Errors, Duration at account and function level


class FakeCloudWatch:
    """Records PutMetricData calls; fails the first ``fail`` of them like an unreachable endpoint."""

    def __init__(self, fail: int = 0) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.fail = fail

    def put_metric_data(self, Namespace: str, MetricData: list[dict[str, Any]]) -> None:
        assert Namespace == "AWS/Lambda"
        if self.fail:
            self.fail -= 1
            raise ConnectionError("connection refused")
        self.calls.append(MetricData)


def test_publisher_batches_at_most_1000_datums_and_retries_after_errors():
    agg = MetricsAggregator(VirtualClock(T0))
    for n in range(700):  # 700 functions x (Invocations, Errors, Duration), plus the 3 account-level ones
        agg.record_invocation(build_record(function_name=f"fn{n}"))
    cloudwatch = FakeCloudWatch(fail=1)
    publisher = MetricsPublisher(agg, cloudwatch, interval_s=60)
    assert publisher.publish_once(final=True) == 0  # the error is logged, not raised
    assert publisher.publish_once() == 2103  # the kept datums go out on the next round
    assert [len(batch) for batch in cloudwatch.calls] == [MAX_DATUMS_PER_CALL, MAX_DATUMS_PER_CALL, 103]
    assert publisher.publish_once() == 0
    assert publisher.failures == 1


def test_publisher_thread_stops_and_flushes_the_open_period():
    agg = MetricsAggregator(VirtualClock(T0))
    cloudwatch = FakeCloudWatch()
    publisher = MetricsPublisher(agg, cloudwatch, interval_s=0.01)
    publisher.start()
    agg.record_invocation(build_record())
    publisher.stop()
    names = sorted(d["MetricName"] for batch in cloudwatch.calls for d in batch)
    assert names.count("Invocations") == 2
