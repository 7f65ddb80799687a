"""The target-tracking executor and the scaling-activities API, wired into the local cloud with a few calls.

DynamoDB's capacity meter runs in the DynamoDB process (lambdalab.dynamodb.service) with the traffic it meters; the
autoscaler reads its consumption from CloudWatch, as Application Auto Scaling does on AWS."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from lambdalab.autoscaling.runner import ActivityStore, Autoscaler, ProvisionedConcurrency, ScalingActivitiesApi
from lambdalab.awsclients import local_client
from lambdalab.clock import Clock
from lambdalab.gateway import Route

LOG = logging.getLogger(__name__)

# the gateway's fallback to moto (lambdalab.gateway.MotoProxy.proxy): a request, the body to send instead or None
Proxy = Callable[[web.Request, bytes | None], Awaitable[web.StreamResponse]]


class CapacityServices:
    """Built once the Lambda service exists, with everything it needs: ``routes()`` for the gateway, ``start()``,
    ``stop()``. Calls Application Auto Scaling lacks locally fall back to moto through ``proxy``."""

    def __init__(
        self,
        moto_url: str,
        region: str,
        time_scale: float,
        *,
        proxy: Proxy,
        gateway_url: str,
        lambda_service: ProvisionedConcurrency,
        epoch: Clock,
    ) -> None:
        self.moto_url = moto_url
        self.region = region
        self.time_scale = time_scale
        self.epoch = epoch  # the local cloud's epoch clock: metric periods and scaling activities' times
        self.activities = ActivityStore()
        self._proxy = proxy
        self.activities_api = ScalingActivitiesApi(self.activities, self._forward_plain)
        self._gateway_url = gateway_url
        self._lambda_service = lambda_service
        self.autoscaler: Autoscaler | None = None

    def routes(self) -> dict[str, Route]:
        return {"application-autoscaling": self.activities_api.handle}

    async def _forward_plain(self, request: web.Request) -> web.StreamResponse:
        return await self._proxy(request, None)

    def start(self) -> None:
        self.autoscaler = Autoscaler(
            self.epoch,
            time_scale=self.time_scale,
            aas=local_client("application-autoscaling", self.moto_url, self.region),
            cloudwatch=local_client("cloudwatch", self.moto_url, self.region),
            dynamodb=local_client("dynamodb", self._gateway_url, self.region),
            lambda_service=self._lambda_service,
            store=self.activities,
        )
        self.autoscaler.start()

    async def stop(self) -> None:
        if self.autoscaler is not None:
            await self.autoscaler.stop()
            self.autoscaler = None
