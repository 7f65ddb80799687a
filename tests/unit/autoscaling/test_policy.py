"""Target tracking decisions from exact datapoint sequences, on a virtual clock."""

from __future__ import annotations

import pytest

from lambdalab.autoscaling.policy import (
    DYNAMODB_RULE,
    LAMBDA_RULE,
    Decision,
    Direction,
    TargetTracker,
    desired_capacity,
)
from lambdalab.clock import VirtualClock


def run(tracker: TargetTracker, clock: VirtualClock, datapoints: list[float | None], capacity: int) -> list[tuple]:
    """Feed one datapoint per 60 s period, applying each decision; returns (period, old, new) per decision."""
    out = []
    for period, value in enumerate(datapoints):
        clock.advance(60.0)
        decision = tracker.observe(value, capacity)
        if decision is not None:
            out.append((period, decision.old_capacity, decision.new_capacity, decision.alarm))
            capacity = decision.new_capacity
    return out


@pytest.mark.parametrize(
    ("capacity", "metric", "target", "expected"),
    [(5, 100.0, 70.0, 8), (5, 70.0, 70.0, 5), (10, 0.0, 70.0, 1), (10, 1.0, 0.7, 15), (40, 1.0, 0.1, 50)],
)
def test_desired_capacity(capacity: int, metric: float, target: float, expected: int) -> None:
    assert desired_capacity(capacity, metric, target, 1, 50) == expected


def test_dynamodb_scales_out_on_the_second_consecutive_datapoint_above_target() -> None:
    clock = VirtualClock()
    tracker = TargetTracker(clock, target=70.0, minimum=5, maximum=100, rule=DYNAMODB_RULE)
    # one breach, a dip, then two in a row: acts on period 3 (the 2nd consecutive), from 140% of 5 → 10
    assert run(tracker, clock, [90.0, 50.0, 80.0, 140.0], capacity=5) == [(3, 5, 10, "AlarmHigh")]


def test_alarm_stays_in_alarm_and_acts_again_each_period() -> None:
    clock = VirtualClock()
    tracker = TargetTracker(clock, target=70.0, minimum=5, maximum=100, rule=DYNAMODB_RULE)
    decisions = run(tracker, clock, [100.0, 100.0, 100.0, 100.0], capacity=5)
    assert decisions == [(1, 5, 8, "AlarmHigh"), (2, 8, 12, "AlarmHigh"), (3, 12, 18, "AlarmHigh")]


def test_dynamodb_scales_in_after_15_datapoints_at_least_20_percent_below() -> None:
    clock = VirtualClock()
    tracker = TargetTracker(clock, target=70.0, minimum=5, maximum=100, rule=DYNAMODB_RULE)
    # 56 is exactly 80% of 70: not below; then 15 at 20% → scale in on the 15th
    points: list[float | None] = [56.0] + [20.0] * 15
    assert run(tracker, clock, points, capacity=40) == [(15, 40, 12, "AlarmLow")]
    # 14 below, a missing datapoint, 14 below: no scale-in
    clock2 = VirtualClock()
    tracker2 = TargetTracker(clock2, target=70.0, minimum=5, maximum=100, rule=DYNAMODB_RULE)
    assert run(tracker2, clock2, [20.0] * 14 + [None] + [20.0] * 14, capacity=40) == []


def test_lambda_predefined_needs_three_datapoints_and_scales_in_below_90_percent() -> None:
    clock = VirtualClock()
    tracker = TargetTracker(clock, target=0.7, minimum=1, maximum=50, rule=LAMBDA_RULE)
    assert run(tracker, clock, [0.9, 0.9], capacity=2) == []
    assert run(tracker, clock, [0.9], capacity=2) == [(0, 2, 3, "AlarmHigh")]
    clock2 = VirtualClock()
    tracker2 = TargetTracker(clock2, target=0.7, minimum=1, maximum=50, rule=LAMBDA_RULE)
    # 0.63 is 90% of 0.7 (not below); 0.62 is
    assert run(tracker2, clock2, [0.63] * 15, capacity=10) == []
    assert run(tracker2, clock2, [0.62] * 15, capacity=10) == [(14, 10, 9, "AlarmLow")]


def test_maximum_statistic_scales_out_sooner_than_average_on_a_spike() -> None:
    # A spike fills 1 of 1 provisioned environment for a few seconds each minute: Maximum 1.0, Average 0.25.
    average = [0.25, 0.25, 0.25]
    maximum = [1.0, 1.0, 1.0]
    for series, expected in ((average, []), (maximum, [(2, 1, 2, "AlarmHigh")])):
        clock = VirtualClock()
        tracker = TargetTracker(clock, target=0.7, minimum=1, maximum=50, rule=LAMBDA_RULE)
        assert run(tracker, clock, series, capacity=1) == expected


def test_cooldowns_and_disable_scale_in() -> None:
    clock = VirtualClock()
    tracker = TargetTracker(clock, target=70.0, minimum=1, maximum=100, rule=DYNAMODB_RULE, scale_out_cooldown_s=150.0)
    # out at period 1; periods 2 (60 s later) and 3 (120 s) are cooling; period 4 (180 s) acts again
    assert run(tracker, clock, [140.0] * 5, capacity=5) == [(1, 5, 10, "AlarmHigh"), (4, 10, 20, "AlarmHigh")]
    clock2 = VirtualClock()
    tracker2 = TargetTracker(clock2, target=70.0, minimum=1, maximum=100, rule=DYNAMODB_RULE, disable_scale_in=True)
    assert run(tracker2, clock2, [1.0] * 20, capacity=10) == []


def test_capacity_bounds_and_bad_configuration() -> None:
    clock = VirtualClock()
    tracker = TargetTracker(clock, target=70.0, minimum=5, maximum=6, rule=DYNAMODB_RULE)
    assert run(tracker, clock, [700.0, 700.0, 700.0], capacity=5) == [(1, 5, 6, "AlarmHigh")]  # then at max: no-op
    with pytest.raises(ValueError, match="minimum"):
        TargetTracker(clock, target=70.0, minimum=7, maximum=6, rule=DYNAMODB_RULE)
    with pytest.raises(ValueError, match="target"):
        desired_capacity(1, 1.0, 0.0, 1, 2)
    decision = Decision(Direction.OUT, 1, 2, 1.0, "AlarmHigh")
    assert decision.direction is Direction.OUT


def test_what_a_policy_tracks_is_read_the_same_way_by_every_driver():
    from lambdalab.autoscaling.policy import (
        DYNAMODB_RULE,
        LAMBDA_RULE,
        PC_DIMENSION,
        dynamodb_utilization,
        function_of_resource,
        lambda_metric_query,
        last_due_period,
        metric_of,
        rule_for,
        table_of_resource,
        tracker_for,
    )
    from lambdalab.clock import VirtualClock

    assert rule_for(PC_DIMENSION) is LAMBDA_RULE and rule_for("dynamodb:table:ReadCapacityUnits") is DYNAMODB_RULE
    predefined = metric_of({"PredefinedMetricSpecification": {"PredefinedMetricType": "X"}, "TargetValue": 0.7})
    assert predefined == {"predefined": "X"}
    assert lambda_metric_query("fn", "live", predefined)[:3] == (
        "AWS/Lambda",
        "ProvisionedConcurrencyUtilization",
        "Average",
    )
    custom = metric_of({"CustomizedMetricSpecification": {"Namespace": "N", "MetricName": "M", "Statistic": "Maximum"}})
    assert lambda_metric_query("fn", "live", custom) == ("N", "M", "Maximum", [])
    assert dynamodb_utilization(210.0, 60.0, 5) == 70.0 and dynamodb_utilization(1.0, 60.0, 0) is None
    # a datapoint of period k (ending at (k+1)*60) is in 1.2 periods after its end
    assert last_due_period(60 + 72 - 0.01, 60.0, 72.0) == -1 and last_due_period(60 + 72, 60.0, 72.0) == 0
    assert function_of_resource("function:fn:live") == ("fn", "live")
    assert table_of_resource("table/t/index/i") == ("t", "i") and table_of_resource("table/t") == ("t", None)
    tracker = tracker_for(
        VirtualClock(),
        {"TargetValue": 70, "ScaleOutCooldown": 60, "DisableScaleIn": True},
        dimension="dynamodb:table:WriteCapacityUnits",
        minimum=5,
        maximum=100,
        time_scale=0.5,
    )
    assert (tracker.target, tracker.rule, tracker.scale_out_cooldown_s, tracker.disable_scale_in) == (
        70.0,
        DYNAMODB_RULE,
        30.0,
        True,
    )
