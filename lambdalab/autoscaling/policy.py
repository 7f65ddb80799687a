"""Target tracking as Application Auto Scaling runs it: two alarms on one metric, evaluated once per period, and the
new capacity ``ceil(capacity * metric / target)`` within the target's minimum and maximum. Pure, on an injected clock.

Alarm rules (../shared/FIDELITY.md): DynamoDB scales out after 2 consecutive datapoints above the target and in after
15 at least 20% below it; Lambda provisioned concurrency scales out after 3 above and in after 15 below 90% of the
target. A missing datapoint breaks a run of breaching ones. While an alarm stays in ALARM, every new period invokes the
policy again (as Application Auto Scaling does), which acts only if the new capacity differs, and not within the
policy's cooldown (seconds, already scaled by the caller).
"""

from __future__ import annotations

import enum
import logging
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lambdalab.clock import Clock

LOG = logging.getLogger(__name__)


class Direction(enum.Enum):
    OUT = "out"
    IN = "in"


@dataclass(frozen=True)
class AlarmRule:
    out_datapoints: int  # consecutive datapoints above the target for AlarmHigh
    in_datapoints: int  # consecutive datapoints below target * in_fraction for AlarmLow
    in_fraction: float


DYNAMODB_RULE = AlarmRule(out_datapoints=2, in_datapoints=15, in_fraction=0.8)
LAMBDA_RULE = AlarmRule(out_datapoints=3, in_datapoints=15, in_fraction=0.9)


@dataclass(frozen=True)
class Decision:
    direction: Direction
    old_capacity: int
    new_capacity: int
    metric: float  # the datapoint the new capacity was computed from
    alarm: str  # "AlarmHigh" or "AlarmLow"


def desired_capacity(capacity: int, metric: float, target: float, minimum: int, maximum: int) -> int:
    """``ceil(capacity * metric / target)`` within ``[minimum, maximum]`` (rounding noise below 1e-9 ignored)."""
    if target <= 0:
        raise ValueError(f"the target value must be positive, not {target}")
    raw = capacity * metric / target
    wanted = math.ceil(round(raw, 9))
    return max(minimum, min(maximum, wanted))


class TargetTracker:
    """One target-tracking policy on one scalable target. Feed it one datapoint per period with ``observe``."""

    def __init__(
        self,
        clock: Clock,
        *,
        target: float,
        minimum: int,
        maximum: int,
        rule: AlarmRule,
        scale_out_cooldown_s: float = 0.0,
        scale_in_cooldown_s: float = 0.0,
        disable_scale_in: bool = False,
    ) -> None:
        if minimum > maximum:
            raise ValueError(f"minimum {minimum} is above maximum {maximum}")
        self.clock = clock
        self.target = target
        self.minimum = minimum
        self.maximum = maximum
        self.rule = rule
        self.scale_out_cooldown_s = scale_out_cooldown_s
        self.scale_in_cooldown_s = scale_in_cooldown_s
        self.disable_scale_in = disable_scale_in
        self._history: deque[float | None] = deque(maxlen=max(rule.out_datapoints, rule.in_datapoints))
        self._last_out: float | None = None
        self._last_in: float | None = None

    @property
    def history(self) -> list[float | None]:
        return list(self._history)

    def high_alarm(self) -> bool:
        last = list(self._history)[-self.rule.out_datapoints :]
        return len(last) == self.rule.out_datapoints and all(v is not None and v > self.target for v in last)

    def low_alarm(self) -> bool:
        threshold = self.target * self.rule.in_fraction
        last = list(self._history)[-self.rule.in_datapoints :]
        return len(last) == self.rule.in_datapoints and all(v is not None and v < threshold for v in last)

    def observe(self, datapoint: float | None, capacity: int) -> Decision | None:
        """The decision after one more period's datapoint (None when the period had no datapoint)."""
        self._history.append(datapoint)
        now = self.clock.now()
        if datapoint is None:
            return None
        if self.high_alarm():
            wanted = desired_capacity(capacity, datapoint, self.target, self.minimum, self.maximum)
            if wanted > capacity and not self._cooling(self._last_out, self.scale_out_cooldown_s, now):
                self._last_out = now
                return Decision(Direction.OUT, capacity, wanted, datapoint, "AlarmHigh")
            return None
        if self.low_alarm() and not self.disable_scale_in:
            wanted = desired_capacity(capacity, datapoint, self.target, self.minimum, self.maximum)
            last_change = max((t for t in (self._last_out, self._last_in) if t is not None), default=None)
            if wanted < capacity and not self._cooling(last_change, self.scale_in_cooldown_s, now):
                self._last_in = now
                return Decision(Direction.IN, capacity, wanted, datapoint, "AlarmLow")
        return None

    @staticmethod
    def _cooling(last: float | None, cooldown_s: float, now: float) -> bool:
        return last is not None and now - last < cooldown_s


# --- what a policy tracks: shared by the local cloud's executor (runner.py) and the simulator -----------------------

PC_DIMENSION = "lambda:function:ProvisionedConcurrency"
PREDEFINED_PC_METRIC = "LambdaProvisionedConcurrencyUtilization"


def rule_for(dimension: str) -> AlarmRule:
    """Lambda provisioned concurrency has its own alarm rule; DynamoDB tables and indexes the other."""
    return LAMBDA_RULE if dimension == PC_DIMENSION else DYNAMODB_RULE


def tracker_for(
    clock: Clock,
    config: Mapping[str, Any],
    *,
    dimension: str,
    minimum: int,
    maximum: int,
    time_scale: float = 1.0,
) -> TargetTracker:
    """A TargetTracker from a TargetTrackingScalingPolicyConfiguration (cooldowns multiplied by the time scale)."""
    return TargetTracker(
        clock,
        target=float(config["TargetValue"]),
        minimum=int(minimum),
        maximum=int(maximum),
        rule=rule_for(dimension),
        scale_out_cooldown_s=float(config.get("ScaleOutCooldown") or 0) * time_scale,
        scale_in_cooldown_s=float(config.get("ScaleInCooldown") or 0) * time_scale,
        disable_scale_in=bool(config.get("DisableScaleIn")),
    )


def metric_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """{"predefined": type} or the CustomizedMetricSpecification of a target-tracking configuration."""
    if "PredefinedMetricSpecification" in config:
        return {"predefined": config["PredefinedMetricSpecification"]["PredefinedMetricType"]}
    return dict(config.get("CustomizedMetricSpecification") or {})


def lambda_metric_query(function: str, qualifier: str, metric: Mapping[str, Any]) -> tuple[str, str, str, list[dict]]:
    """(namespace, metric name, statistic, dimensions) a provisioned-concurrency policy reads each period: the
    predefined type is AWS/Lambda ProvisionedConcurrencyUtilization, Average, on FunctionName + Resource."""
    if "predefined" in metric:
        dims = [{"Name": "FunctionName", "Value": function}, {"Name": "Resource", "Value": f"{function}:{qualifier}"}]
        return "AWS/Lambda", "ProvisionedConcurrencyUtilization", "Average", dims
    dims = [{"Name": d["Name"], "Value": d["Value"]} for d in metric.get("Dimensions") or []]
    return metric.get("Namespace", ""), metric.get("MetricName", ""), metric.get("Statistic", "Average"), dims


def dynamodb_utilization(consumed_units: float, period_s: float, capacity: int) -> float | None:
    """DynamoDB{Read,Write}CapacityUtilization of one period: consumed units / (period seconds * provisioned) * 100;
    None (no datapoint) without capacity."""
    if capacity <= 0:
        return None
    return consumed_units / (period_s * capacity) * 100.0


def last_due_period(now: float, period_s: float, lag_s: float) -> int:
    """The last period whose datapoint is published by `now` (a datapoint arrives within `lag_s` of its end)."""
    return math.floor((now - lag_s) / period_s) - 1


def function_of_resource(resource_id: str) -> tuple[str, str]:
    """``function:NAME:QUALIFIER`` → (NAME, QUALIFIER)."""
    parts = resource_id.split(":")
    return parts[1], parts[2] if len(parts) > 2 else ""


def table_of_resource(resource_id: str) -> tuple[str, str | None]:
    """``table/NAME`` or ``table/NAME/index/INDEX`` → (NAME, INDEX or None)."""
    parts = resource_id.split("/")
    return parts[1], parts[3] if len(parts) > 3 else None
