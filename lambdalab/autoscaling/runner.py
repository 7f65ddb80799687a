"""Runs target tracking in the local cloud: reads scalable targets and policies from moto's Application Auto Scaling,
evaluates each policy once per (scaled) period, applies the new capacity and records scaling activities, which it
serves for DescribeScalingActivities (moto does not keep activities).

Metric sources (docs/AUTOSCALING.md), both from the local CloudWatch with GetMetricStatistics, as on AWS: DynamoDB
utilisation is the period's ConsumedRead/WriteCapacityUnits Sum (published by the capacity meter in the DynamoDB
process twice a period) / (period seconds * provisioned units, from DescribeTable) * 100; Lambda provisioned-
concurrency utilisation uses the exact dimension set FunctionName + Resource (moto matches dimensions as a subset,
and FunctionName + Resource is the largest set Lambda publishes, so the match is exact).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from aiohttp import web
from botocore.exceptions import ClientError

from lambdalab.autoscaling.policy import (
    PC_DIMENSION,
    Decision,
    Direction,
    TargetTracker,
    dynamodb_utilization,
    function_of_resource,
    lambda_metric_query,
    last_due_period,
    metric_of,
    table_of_resource,
    tracker_for,
)
from lambdalab.clock import Clock
from lambdalab.dynamodb.meter import Kind

LOG = logging.getLogger(__name__)

BASE_PERIOD_S = 60.0
_DIMENSIONS = {
    "dynamodb:table:ReadCapacityUnits": ("read capacity units", Kind.READ),
    "dynamodb:table:WriteCapacityUnits": ("write capacity units", Kind.WRITE),
    "dynamodb:index:ReadCapacityUnits": ("read capacity units", Kind.READ),
    "dynamodb:index:WriteCapacityUnits": ("write capacity units", Kind.WRITE),
}


@dataclass
class TrackedPolicy:
    policy_name: str
    policy_arn: str
    namespace: str
    resource_id: str
    dimension: str
    metric: dict[str, Any]  # {"predefined": type} or the CustomizedMetricSpecification
    tracker: TargetTracker
    next_period: int  # the first period this policy has not evaluated


@dataclass
class ActivityStore:
    """Scaling activities, newest first, shaped as DescribeScalingActivities returns them."""

    activities: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, activity: dict[str, Any]) -> None:
        with self._lock:
            self.activities.insert(0, activity)

    def query(self, namespace: str, resource_id: str | None, dimension: str | None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                a
                for a in self.activities
                if a["ServiceNamespace"] == namespace
                and (resource_id is None or a["ResourceId"] == resource_id)
                and (dimension is None or a["ScalableDimension"] == dimension)
            ]


class ScalingActivitiesApi:
    """The gateway route for ``application-autoscaling``: DescribeScalingActivities from the store, the rest to moto."""

    def __init__(self, store: ActivityStore, proxy: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> None:
        self.store = store
        self._proxy = proxy

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not request.headers.get("X-Amz-Target", "").endswith(".DescribeScalingActivities"):
            return await self._proxy(request)
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            return _error("SerializationException", "the request body is not JSON")
        if not isinstance(body, dict):
            return _error("SerializationException", "the request body is not a JSON object")
        namespace = body.get("ServiceNamespace")
        if not namespace:
            return _error(
                "ValidationException",
                "1 validation error detected: Value null at 'serviceNamespace' failed to satisfy constraint: "
                "Member must not be null",
            )
        max_results = body.get("MaxResults", 50)
        if not isinstance(max_results, int) or not 1 <= max_results <= 50:
            return _error(
                "ValidationException",
                f"1 validation error detected: Value '{max_results}' at 'maxResults' failed to satisfy constraint: "
                "Member must have value between 1 and 50",
            )
        found = self.store.query(namespace, body.get("ResourceId"), body.get("ScalableDimension"))
        start = int(body.get("NextToken") or 0) if str(body.get("NextToken") or "0").isdigit() else 0
        page = found[start : start + max_results]
        result: dict[str, Any] = {"ScalingActivities": page}
        if start + max_results < len(found):
            result["NextToken"] = str(start + max_results)
        return web.Response(body=json.dumps(result).encode(), content_type="application/x-amz-json-1.1")


def _error(error_type: str, message: str) -> web.Response:
    body = json.dumps({"__type": error_type, "message": message}).encode()
    return web.Response(status=400, body=body, content_type="application/x-amz-json-1.1")


class ProvisionedConcurrency(Protocol):
    """What autoscaling uses of the Lambda service (lambdalab.awslambda.service.service.LambdaService): the provisioned
    concurrency of an alias or version, read and set as the Lambda API does, never its stores."""

    def provisioned_concurrency(self, function_name: str, qualifier: str) -> int | None: ...

    def put_provisioned_concurrency(self, function_name: str, qualifier: str, count: int) -> None: ...


class Autoscaler:
    """An asyncio task on the cloud's loop; boto3 calls run in threads. ``clock`` is epoch time (period alignment)."""

    def __init__(
        self,
        clock: Clock,
        *,
        time_scale: float,
        aas: Any,  # boto3 application-autoscaling client (moto)
        cloudwatch: Any,  # boto3 cloudwatch client (moto)
        dynamodb: Any,  # boto3 dynamodb client at the gateway, so the meter sees UpdateTable
        lambda_service: ProvisionedConcurrency | None,
        store: ActivityStore,
        lag_periods: float = 1.2,
    ) -> None:
        self.clock = clock
        self.time_scale = time_scale
        self.period_s = BASE_PERIOD_S * time_scale
        self.lag_s = lag_periods * self.period_s  # a datapoint is published within one period of its end
        self._aas = aas
        self._cloudwatch = cloudwatch
        self._dynamodb = dynamodb
        self.service = lambda_service  # reads and sets provisioned concurrency only, on the loop
        self.store = store
        self.policies: dict[str, TrackedPolicy] = {}
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._refreshed_at: float | None = None

    def compression_note(self) -> str:
        if self.time_scale == 1.0:
            return "1-minute metric periods (not compressed)"
        return f"metric periods compressed to {self.period_s:g} s instead of 60 s (time scale {self.time_scale:g})"

    def start(self) -> None:
        LOG.info("application auto scaling: %s", self.compression_note())
        self._task = asyncio.get_running_loop().create_task(self._run(), name="autoscaler")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=10)
            except TimeoutError:
                LOG.warning("the autoscaler did not stop within 10 s; cancelling it")
                self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        tick = max(0.2, self.period_s / 4)
        while not self._stop.is_set():
            try:
                await self.step()
            except ClientError as exc:  # the local CloudWatch refused a query: say so, try again next tick
                LOG.warning("autoscaler step failed: %s", exc)
            except Exception:
                LOG.exception("autoscaler step failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=tick)

    async def step(self) -> list[Decision]:
        """Refresh targets and policies, then evaluate every policy on every period that is due."""
        now = self.clock.now()
        if self._refreshed_at is None or now - self._refreshed_at >= self.period_s / 2:
            await asyncio.to_thread(self._refresh)  # twice a period: new policies are picked up within one
            self._refreshed_at = now
        decisions = []
        due = last_due_period(self.clock.now(), self.period_s, self.lag_s)  # the last period whose data is in
        for policy in list(self.policies.values()):
            while policy.next_period <= due:
                period = policy.next_period
                policy.next_period += 1
                capacity = await self._capacity(policy)
                if capacity is None:
                    continue
                datapoint = await asyncio.to_thread(self._datapoint, policy, period, capacity)
                decision = policy.tracker.observe(datapoint, capacity)
                LOG.debug("%s period %d: datapoint %s capacity %d", policy.policy_name, period, datapoint, capacity)
                if decision is not None:
                    decisions.append(decision)
                    await self._apply(policy, decision)
        return decisions

    # --- targets and policies from moto -------------------------------------------------------------------------
    def _refresh(self) -> None:
        seen = set()
        for namespace in ("dynamodb", "lambda"):
            targets = {
                (t["ResourceId"], t["ScalableDimension"]): t
                for t in self._aas.describe_scalable_targets(ServiceNamespace=namespace)["ScalableTargets"]
            }
            for p in self._aas.describe_scaling_policies(ServiceNamespace=namespace)["ScalingPolicies"]:
                target = targets.get((p["ResourceId"], p["ScalableDimension"]))
                config = p.get("TargetTrackingScalingPolicyConfiguration")
                if p.get("PolicyType") != "TargetTrackingScaling" or target is None or config is None:
                    continue
                seen.add(p["PolicyARN"])
                self._track(p, target, config)
        for arn in [a for a in self.policies if a not in seen]:
            del self.policies[arn]

    def _track(self, p: dict[str, Any], target: dict[str, Any], config: dict[str, Any]) -> None:
        metric = metric_of(config)
        existing = self.policies.get(p["PolicyARN"])
        tracker = tracker_for(
            self.clock,
            config,
            dimension=p["ScalableDimension"],
            minimum=int(target["MinCapacity"]),
            maximum=int(target["MaxCapacity"]),
            time_scale=self.time_scale,
        )
        if existing is not None:
            same = (existing.metric, existing.tracker.target, existing.tracker.minimum, existing.tracker.maximum) == (
                metric,
                tracker.target,
                tracker.minimum,
                tracker.maximum,
            )
            if same:
                return
            LOG.info("policy %s changed: tracking again from now", p["PolicyName"])
        first = math.floor(self.clock.now() / self.period_s)
        self.policies[p["PolicyARN"]] = TrackedPolicy(
            p["PolicyName"], p["PolicyARN"], p["ServiceNamespace"], p["ResourceId"], p["ScalableDimension"],
            metric, tracker, first,
        )  # fmt: skip

    # --- capacity and metrics -----------------------------------------------------------------------------------
    async def _capacity(self, policy: TrackedPolicy) -> int | None:
        if policy.dimension == PC_DIMENSION:
            function_name, qualifier = function_of_resource(policy.resource_id)
            if self.service is None:
                return None
            try:
                return int(self.service.provisioned_concurrency(function_name, qualifier) or 0)
            except Exception:
                return None
        table, index = table_of_resource(policy.resource_id)
        return await asyncio.to_thread(self._table_capacity, table, index, _DIMENSIONS[policy.dimension][1])

    def _table_capacity(self, table: str, index: str | None, kind: Kind) -> int | None:
        """The provisioned units of a table or GSI now (DescribeTable); None when it is on demand or gone."""
        try:
            description = self._dynamodb.describe_table(TableName=table)["Table"]
        except ClientError:
            return None
        if ((description.get("BillingModeSummary") or {}).get("BillingMode") or "PROVISIONED") != "PROVISIONED":
            return None
        throughput = description.get("ProvisionedThroughput") or {}
        if index is not None:
            found = [g for g in description.get("GlobalSecondaryIndexes") or [] if g.get("IndexName") == index]
            throughput = (found[0].get("ProvisionedThroughput") or {}) if found else {}
        units = throughput.get("ReadCapacityUnits" if kind is Kind.READ else "WriteCapacityUnits")
        return int(units) if units else None

    def _datapoint(self, policy: TrackedPolicy, period: int, capacity: int) -> float | None:
        if policy.dimension in _DIMENSIONS:
            table, index = table_of_resource(policy.resource_id)
            if capacity <= 0:
                return None
            label = "Read" if _DIMENSIONS[policy.dimension][1] is Kind.READ else "Write"
            dims = [{"Name": "TableName", "Value": table}]
            if index is not None:
                dims.append({"Name": "GlobalSecondaryIndexName", "Value": index})
            consumed = self._cloudwatch_value("AWS/DynamoDB", f"Consumed{label}CapacityUnits", "Sum", dims, period)
            return None if consumed is None else dynamodb_utilization(consumed, self.period_s, capacity)
        if policy.dimension == PC_DIMENSION:
            function_name, qualifier = function_of_resource(policy.resource_id)
            namespace, name, statistic, dims = lambda_metric_query(function_name, qualifier, policy.metric)
            return self._cloudwatch_value(namespace, name, statistic, dims, period)
        return None

    def _cloudwatch_value(
        self, namespace: str, name: str, statistic: str, dims: list[dict[str, str]], period: int
    ) -> float | None:
        start = datetime.fromtimestamp(period * self.period_s, UTC)
        end = start + timedelta(seconds=self.period_s)
        if self.period_s < 1:
            # CloudWatch (and moto) resolve time to whole seconds; a sub-second period (time scale under 1/60) is
            # read from the whole second around it, so neighbouring periods can share a datapoint.
            start = start.replace(microsecond=0)
            end = max(start + timedelta(seconds=1), end)
        points = self._cloudwatch.get_metric_statistics(
            Namespace=namespace,
            MetricName=name,
            Dimensions=dims,
            StartTime=start,
            EndTime=end,
            Period=max(1, math.ceil(self.period_s)),
            Statistics=[statistic],
        )["Datapoints"]
        values = [float(p[statistic]) for p in points if statistic in p]
        if not values:
            return None
        if statistic == "Sum":
            return sum(values)
        return max(values) if statistic == "Maximum" else values[0]

    # --- actions ------------------------------------------------------------------------------------------------
    async def _apply(self, policy: TrackedPolicy, decision: Decision) -> None:
        started = self.clock.now()
        status, message = "Successful", "Successfully set capacity."
        try:
            if policy.dimension == PC_DIMENSION:
                assert self.service is not None
                function_name, qualifier = function_of_resource(policy.resource_id)
                self.service.put_provisioned_concurrency(function_name, qualifier, decision.new_capacity)
                what = "provisioned concurrency"
            else:
                what = _DIMENSIONS[policy.dimension][0]
                await asyncio.to_thread(self._update_table, policy, decision.new_capacity)
        except Exception as exc:  # the activity records the failure, as AWS does
            status, message = "Failed", f"Failed to set capacity: {exc}"
            what = "capacity"
            LOG.warning("scaling %s failed: %s", policy.resource_id, exc)
        LOG.info(
            "scaled %s %s from %d to %d (%s, datapoint %.3g)",
            policy.resource_id, decision.direction.value, decision.old_capacity, decision.new_capacity,
            decision.alarm, decision.metric,
        )  # fmt: skip
        alarm = (
            f"TargetTracking-{policy.resource_id}-{decision.alarm}-{uuid.uuid5(uuid.NAMESPACE_URL, policy.policy_arn)}"
        )
        self.store.add(
            {
                "ActivityId": str(uuid.uuid4()),
                "ServiceNamespace": policy.namespace,
                "ResourceId": policy.resource_id,
                "ScalableDimension": policy.dimension,
                "Description": f"Setting {what} to {decision.new_capacity}.",
                "Cause": f"monitor alarm {alarm} in state ALARM triggered policy {policy.policy_name}",
                "StartTime": started,
                "EndTime": self.clock.now(),
                "StatusCode": status,
                "StatusMessage": message,
                "Details": json.dumps(
                    {
                        "direction": decision.direction.value,
                        "from": decision.old_capacity,
                        "to": decision.new_capacity,
                        "datapoint": decision.metric,
                        "local": self.compression_note(),
                    }
                ),
            }
        )

    def _update_table(self, policy: TrackedPolicy, capacity: int) -> None:
        table, index = table_of_resource(policy.resource_id)
        kind = _DIMENSIONS[policy.dimension][1]
        other = Kind.WRITE if kind is Kind.READ else Kind.READ
        unchanged = self._table_capacity(table, index, other) or 1
        throughput = {
            "ReadCapacityUnits": capacity if kind is Kind.READ else unchanged,
            "WriteCapacityUnits": capacity if kind is Kind.WRITE else unchanged,
        }
        if index is None:
            self._dynamodb.update_table(TableName=table, ProvisionedThroughput=throughput)
        else:
            self._dynamodb.update_table(
                TableName=table,
                GlobalSecondaryIndexUpdates=[{"Update": {"IndexName": index, "ProvisionedThroughput": throughput}}],
            )


def direction_word(decision: Decision) -> str:
    return "scale-out" if decision.direction is Direction.OUT else "scale-in"
