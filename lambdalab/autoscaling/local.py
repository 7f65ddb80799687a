"""The target-tracking executor and the scaling-activities API, wired into the local cloud with a few calls.

DynamoDB's capacity meter runs in the DynamoDB process (lambdalab.dynamodb.service) with the traffic it meters; the
autoscaler reads its consumption from CloudWatch, as Application Auto Scaling does on AWS."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from lambdalab.autoscaling.runner import ActivityStore, Autoscaler, ProvisionedConcurrency, ScalingActivitiesApi
from lambdalab.awsclients import local_client
from lambdalab.clock import Clock
from lambdalab.gateway import Route

LOG = logging.getLogger(__name__)


class CapacityServices:
    """``routes()`` before the gateway exists, ``bind(gateway.proxy)``, ``start(url, lambda_service)``, ``stop()``."""

    def __init__(self, moto_url: str, region: str, time_scale: float, *, epoch: Clock) -> None:
        self.moto_url = moto_url
        self.region = region
        self.time_scale = time_scale
        self.epoch = epoch  # the local cloud's epoch clock: metric periods and scaling activities' times
        self.activities = ActivityStore()
        self._proxy: Any = None
        self.activities_api = ScalingActivitiesApi(self.activities, self._forward_plain)
        self.autoscaler: Autoscaler | None = None

    def routes(self) -> dict[str, Route]:
        return {"application-autoscaling": self.activities_api.handle}

    def bind(self, proxy: Any) -> None:
        self._proxy = proxy

    async def _forward_plain(self, request: web.Request) -> web.StreamResponse:
        response: web.StreamResponse = await self._proxy(request, None)
        return response

    def start(self, gateway_url: str, lambda_service: ProvisionedConcurrency) -> None:
        self.autoscaler = Autoscaler(
            self.epoch,
            time_scale=self.time_scale,
            aas=local_client("application-autoscaling", self.moto_url, self.region),
            cloudwatch=local_client("cloudwatch", self.moto_url, self.region),
            dynamodb=local_client("dynamodb", gateway_url, self.region),
            lambda_service=lambda_service,
            store=self.activities,
        )
        self.autoscaler.start()

    async def stop(self) -> None:
        if self.autoscaler is not None:
            await self.autoscaler.stop()
            self.autoscaler = None
