"""The observers of a running local cloud in one place: run directory, CloudWatch metrics and X-Ray."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lambdalab.clock import Clock
from lambdalab.observe.local_limits import LocalLimits
from lambdalab.observe.metrics import AsyncMetricEvent, ConcurrencySnapshot, MetricsAggregator, MetricsPublisher
from lambdalab.observe.model import EnvironmentEvent, InvocationRecord
from lambdalab.observe.records import RunDirectory, RunMeta
from lambdalab.observe.xray import (
    Sampler,
    SamplingRequest,
    SamplingRule,
    SegmentForwarder,
    TracePlan,
    XRayDaemon,
    lambda_segments,
    plan_trace,
)

LOG = logging.getLogger(__name__)


class Telemetry:
    """What the Lambda service reports to. Start it before the service; stop it after (stopping flushes)."""

    def __init__(
        self,
        run_root: Path,
        meta: RunMeta,
        *,
        cloudwatch: Any,
        xray: Any,
        region: str,
        account_id: str,
        time_scale: float,
        epoch: Clock,
        publish_interval_s: float = 5.0,
    ) -> None:
        self.epoch = epoch  # the run's times, metric periods, sampling reservoirs, new trace ids
        self.records = RunDirectory(run_root, epoch=epoch, meta=meta)
        self.metrics = MetricsAggregator(epoch, time_scale=time_scale)
        self._publisher = MetricsPublisher(
            self.metrics, cloudwatch, interval_s=min(publish_interval_s, 60 * time_scale)
        )
        self._forwarder = SegmentForwarder(xray)
        self.daemon = XRayDaemon(sink=self._forwarder)
        self.sampler = Sampler(epoch)
        self._region = region
        self._account_id = account_id
        self.local_limits = LocalLimits()

    @property
    def run_dir(self) -> Path:
        return self.records.path

    def start(self) -> None:
        self._forwarder.start()
        self.daemon.start()
        self._publisher.start()

    def stop(self) -> None:
        for step in (self._publisher.stop, self.daemon.stop, self._forwarder.stop, self.records.close):
            try:
                step()
            except Exception:
                LOG.exception("error while stopping telemetry")

    def use_sampling_rules(self, rules: Iterable[SamplingRule]) -> None:
        self.sampler.update_rules(rules)

    # --- hooks the Lambda service calls -------------------------------------------------------------------------

    def plan(self, function_name: str, function_arn: str, incoming: str | None, tracing_active: bool) -> TracePlan:
        request = SamplingRequest(service_name=function_name, resource_arn=function_arn)
        return plan_trace(incoming, tracing_active, lambda: self.sampler.should_sample(request), now=self.epoch.now())

    def invocation(self, record: InvocationRecord, plan: TracePlan | None) -> None:
        self.records.append_invocation(record)
        self.metrics.record_invocation(record)
        self.local_limits.record(record)
        if plan is not None and plan.sampled:
            for document in lambda_segments(record, plan, region=self._region, account_id=self._account_id):
                self._forwarder.put(document)

    def environment(self, event: EnvironmentEvent) -> None:
        self.records.append_environment(event)

    def concurrency(self, snapshot: ConcurrencySnapshot) -> None:
        self.metrics.sample_concurrency(snapshot)

    def async_event(self, event: AsyncMetricEvent) -> None:
        self.metrics.record_async(event)
