"""DynamoDB of the local cloud in a process of its own: moto's DynamoDB backend behind the capacity meter.

Why a process: every function's table call is DynamoDB traffic, the local cloud's heaviest request path; served in
the main process it took about 40 % of that process's one interpreter lock under the flash sale, where the Lambda
service (admission, the Runtime API of every environment, telemetry) needs it. Here it has its own interpreter and
core. Functions reach it directly (``AWS_ENDPOINT_URL_DYNAMODB`` in their environment, a local difference the docs
name); every other caller (the AWS CLI, boto3 at ``AWS_ENDPOINT_URL``, the deploy, the autoscaler) goes through the
gateway, which forwards the ``dynamodb`` and ``dynamodbstreams`` services here, so there is one DynamoDB.

The capacity meter (buckets with burst, throttles, per-period consumption) lives here with the traffic it meters
and publishes ``AWS/DynamoDB`` metrics to the local CloudWatch through the gateway, twice a period. The autoscaler
reads them from CloudWatch, as Application Auto Scaling does on AWS.

Run by :class:`DynamoDbProcess` as ``python -m lambdalab.dynamodb.service --cloudwatch-url URL ...``; it prints
``ready <url>`` on stdout, and exits with its parent (PR_SET_PDEATHSIG, and a check of the parent pid).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import subprocess
import sys
from typing import Any

from aiohttp import web

from lambdalab import constants
from lambdalab.awsclients import local_client
from lambdalab.clock import Clock, EpochClock
from lambdalab.dynamodb.meter import NAMESPACE, CapacityMeter
from lambdalab.dynamodb.metering import DynamoDbMetering
from lambdalab.dynamodb.moto_speedups import speed_up_moto_dynamodb
from lambdalab.moto_backend import MotoBackend
from lambdalab.observe.metrics import MetricsPublisher

LOG = logging.getLogger(__name__)

_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 10.0
HEALTH_PATH = "/_lambdalab/health"


class DynamoDbService:
    """The aiohttp application of the process: health, then every request through the meter to moto."""

    def __init__(
        self, region: str, account_id: str, time_scale: float, cloudwatch: Any | None, *, epoch: Clock
    ) -> None:
        speed_up_moto_dynamodb()
        self.moto = MotoBackend(http=False)
        self.region = region
        self.account_id = account_id
        self.meter = CapacityMeter(epoch, time_scale=time_scale)
        self.metering = DynamoDbMetering(self.meter, self._forward, self._describe)
        self.publisher: MetricsPublisher | None = None
        if cloudwatch is not None:
            period_s = 60.0 * time_scale
            self.publisher = MetricsPublisher(
                self.meter,  # type: ignore[arg-type]  # the meter has the aggregator's flush(now, final=...)
                cloudwatch,
                interval_s=min(10.0, max(0.05, period_s / 2)),  # a period's data is in CloudWatch within half a period
                namespace=NAMESPACE,
            )
        self.app = web.Application(client_max_size=16 * 1024 * 1024)
        self.app.router.add_get(HEALTH_PATH, self._health)
        self.app.router.add_route("*", "/{tail:.*}", self.metering.handle)

    def start(self) -> None:
        self.moto.start()
        if self.publisher is not None:
            self.publisher.start()

    def stop(self) -> None:
        if self.publisher is not None:
            self.publisher.stop()
        self.moto.stop()

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ready", "pid": os.getpid()})

    async def _forward(self, request: web.Request, body: bytes | None) -> web.StreamResponse:
        return await self.moto.respond(request, body, "dynamodb")

    def _describe(self, table: str) -> dict[str, Any] | None:
        from moto.dynamodb.models import dynamodb_backends

        try:
            description: dict[str, Any] = dynamodb_backends[self.account_id][self.region].describe_table(table)["Table"]
            return description
        except Exception:  # moto answers ResourceNotFoundException to the request itself
            return None


class DynamoDbProcess:
    """The host's handle on the DynamoDB process: ``await start()``, ``url``, ``await stop()``."""

    def __init__(self, *, cloudwatch_url: str, region: str, account_id: str, time_scale: float) -> None:
        self._args = [
            "--cloudwatch-url",
            cloudwatch_url,
            "--region",
            region,
            "--account-id",
            account_id,
            "--time-scale",
            repr(time_scale),
        ]
        self._proc: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self) -> None:
        await self.spawn()
        await self.wait_ready()

    async def spawn(self) -> None:
        """Start the process; `wait_ready()` later, so the caller's own setup overlaps the process's imports."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # never the host's AWS settings
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lambdalab.dynamodb.service",
            "--parent-pid",
            str(os.getpid()),
            *self._args,
            stdin=subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
        )

    async def wait_ready(self) -> None:
        """Until the process says `ready <url>` (then `url` is set); it is stopped if it does not."""
        assert self._proc is not None and self._proc.stdout is not None
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), timeout=_START_TIMEOUT_S)
        except TimeoutError:
            await self.stop()
            raise RuntimeError(f"the DynamoDB process did not start within {_START_TIMEOUT_S:.0f} s") from None
        text = line.decode().strip()
        if not text.startswith("ready "):
            await self.stop()
            raise RuntimeError(f"the DynamoDB process failed to start: {text or 'no output'}")
        self.url = text.split(" ", 1)[1]
        LOG.info("DynamoDB process pid %s at %s", self._proc.pid, self.url)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)  # publishes the open period's metrics, then exits
        try:
            await asyncio.wait_for(proc.wait(), timeout=_STOP_TIMEOUT_S)
        except TimeoutError:
            LOG.warning("the DynamoDB process did not stop within %.0f s; killing it", _STOP_TIMEOUT_S)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambdalab.dynamodb.service")
    parser.add_argument("--host", default=constants.DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cloudwatch-url", default=None, help="where AWS/DynamoDB metrics go (the gateway)")
    parser.add_argument("--region", default=constants.DEFAULT_REGION)
    parser.add_argument("--account-id", default=constants.DEFAULT_ACCOUNT_ID)
    parser.add_argument("--time-scale", type=float, default=constants.DEFAULT_TIME_SCALE)
    parser.add_argument("--parent-pid", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="dynamodb %(levelname)s %(message)s")
    if args.parent_pid:
        from lambdalab.awslambda.runtime.forkserver import set_parent_death_signal

        set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != args.parent_pid:
            return 1  # the parent died before the death signal was armed
    cloudwatch = local_client("cloudwatch", args.cloudwatch_url, args.region) if args.cloudwatch_url else None
    # The DynamoDB process is its own composition root: its one epoch clock (metric periods) is made here. It is the
    # same wall time as the local cloud's (both EpochClock), so its CloudWatch periods line up with the others.
    service = DynamoDbService(args.region, args.account_id, args.time_scale, cloudwatch, epoch=EpochClock())
    gc.freeze()  # imports and moto's backends live until exit: keep the collector's full passes off them
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio works too
        pass
    asyncio.run(_serve(service, args.host, args.port, args.parent_pid))
    return 0


async def _serve(service: DynamoDbService, host: str, port: int, parent_pid: int) -> None:
    service.start()
    runner = web.AppRunner(service.app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0]
    sys.stdout.write(f"ready http://{bound[0]}:{bound[1]}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        if parent_pid and os.getppid() != parent_pid:
            break  # the parent is gone
    await runner.cleanup()
    await asyncio.to_thread(service.stop)


if __name__ == "__main__":
    sys.exit(main())
