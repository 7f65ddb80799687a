"""DynamoDB capacity metering and the target-tracking executor, wired into the local cloud with a few calls."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from botocore.exceptions import ClientError

from lambdalab.autoscaling.runner import ActivityStore, Autoscaler, ScalingActivitiesApi
from lambdalab.awsclients import local_client
from lambdalab.clock import EpochClock
from lambdalab.dynamodb.meter import NAMESPACE, CapacityMeter
from lambdalab.dynamodb.metering import DynamoDbMetering
from lambdalab.gateway import Route
from lambdalab.observe.metrics import MetricsPublisher

LOG = logging.getLogger(__name__)


class CapacityServices:
    """``routes()`` before the gateway exists, ``bind(gateway.proxy)``, ``start(url, lambda_service)``, ``stop()``."""

    def __init__(self, moto_url: str, region: str, time_scale: float) -> None:
        self.moto_url = moto_url
        self.region = region
        self.time_scale = time_scale
        self.meter = CapacityMeter(EpochClock(), time_scale=time_scale)
        self.activities = ActivityStore()
        self._proxy: Any = None
        self.metering = DynamoDbMetering(self.meter, self._forward, self._describe)
        self.activities_api = ScalingActivitiesApi(self.activities, self._forward_plain)
        self.publisher: MetricsPublisher | None = None
        self.autoscaler: Autoscaler | None = None
        self._moto_dynamodb = local_client("dynamodb", moto_url, region)

    def routes(self) -> dict[str, Route]:
        return {"dynamodb": self.metering.handle, "application-autoscaling": self.activities_api.handle}

    def bind(self, proxy: Any) -> None:
        self._proxy = proxy

    async def _forward(self, request: web.Request, body: bytes | None) -> web.StreamResponse:
        response: web.StreamResponse = await self._proxy(request, body)
        return response

    async def _forward_plain(self, request: web.Request) -> web.StreamResponse:
        response: web.StreamResponse = await self._proxy(request, None)
        return response

    def _describe(self, table: str) -> dict[str, Any] | None:
        try:
            description: dict[str, Any] = self._moto_dynamodb.describe_table(TableName=table)["Table"]
            return description
        except ClientError:
            return None  # moto answers ResourceNotFoundException to the request itself

    def start(self, gateway_url: str, lambda_service: Any) -> None:
        period_s = 60.0 * self.time_scale
        self.publisher = MetricsPublisher(
            self.meter,  # type: ignore[arg-type]  # the meter has the aggregator's flush(now, final=...)
            local_client("cloudwatch", self.moto_url, self.region),
            interval_s=min(10.0, period_s),
            namespace=NAMESPACE,
        )
        self.publisher.start()
        self.autoscaler = Autoscaler(
            EpochClock(),
            time_scale=self.time_scale,
            aas=local_client("application-autoscaling", self.moto_url, self.region),
            cloudwatch=local_client("cloudwatch", self.moto_url, self.region),
            dynamodb=local_client("dynamodb", gateway_url, self.region),
            meter=self.meter,
            lambda_service=lambda_service,
            store=self.activities,
        )
        self.autoscaler.start()

    async def stop(self) -> None:
        if self.autoscaler is not None:
            await self.autoscaler.stop()
            self.autoscaler = None
        if self.publisher is not None:
            self.publisher.stop()
            self.publisher = None
