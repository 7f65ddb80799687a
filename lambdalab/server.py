"""The local cloud: moto, the environment host, the Lambda service, observers and the gateway, started and stopped
together."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from lambdalab import constants, moto_errors
from lambdalab.apigateway.http_api import (
    HttpApiMetrics,
    HttpApis,
    local_http_api_url,
    moto_http_table_loader,
    user_request_parts,
)
from lambdalab.apigateway.local import ACCESS_LOG, AccessLog, RestApis, local_api_url, moto_table_loader
from lambdalab.apigateway.metrics import NAMESPACE as API_NAMESPACE
from lambdalab.apigateway.metrics import ApiMetrics
from lambdalab.autoscaling.local import CapacityServices
from lambdalab.awsclients import local_client
from lambdalab.awslambda.api.responses import LambdaApi
from lambdalab.awslambda.core.localwait import LocalWait
from lambdalab.awslambda.core.policy import Limits
from lambdalab.awslambda.runtime.host import ProcessHost
from lambdalab.awslambda.service.destinations import Destinations
from lambdalab.awslambda.service.service import LambdaService, ServiceConfig, ThreadSafeControl
from lambdalab.clock import Clocks
from lambdalab.deploy import stack_api
from lambdalab.deploy.deployer import deploy as deploy_template
from lambdalab.deploy.remote import STACKS_PATH, handle_deploy
from lambdalab.dynamodb.service import DynamoDbProcess
from lambdalab.gateway import Gateway, MotoProxy
from lambdalab.logs.local import LocalLogs
from lambdalab.moto_backend import HttpForwarder, InProcessXRay, MotoBackend
from lambdalab.observe.metrics import MetricsPublisher
from lambdalab.observe.pipeline import Telemetry
from lambdalab.observe.records import RunMeta
from lambdalab.observe.xray import SamplingRule
from lambdalab.sources import moto_hooks
from lambdalab.sources.esm_metrics import EsmMetrics
from lambdalab.sources.invoke import LambdaServiceInvoker, LoopBridge
from lambdalab.sources.router import SourceRouter
from lambdalab.sources.scheduler import Scheduler
from lambdalab.sqs_moto import make_moto_sqs_thread_safe, speed_up_moto_sqs
from lambdalab.sqs_redrive import MessageMoveTasks
from lambdalab.stepfunctions.api import StatesApi
from lambdalab.stepfunctions.local import enable as enable_stepfunctions

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class CloudConfig:
    """How to run the local cloud. `port=0` picks a free port (tests)."""

    host: str = constants.DEFAULT_HOST
    port: int = constants.DEFAULT_PORT
    template: Path | None = None
    parameter_overrides: Mapping[str, str] = field(default_factory=dict)
    stack_name: str | None = None
    run_root: Path = Path(constants.DEFAULT_RUN_ROOT)
    time_scale: float = constants.DEFAULT_TIME_SCALE
    account_concurrency: int = constants.ACCOUNT_CONCURRENCY
    keep_alive_s: float = constants.DEFAULT_KEEP_ALIVE_SECONDS
    region: str = constants.DEFAULT_REGION
    account_id: str = constants.DEFAULT_ACCOUNT_ID


class LocalCloud:
    """Runs on the caller's event loop: `await start()`, then `url`, then `await stop()`."""

    def __init__(self, config: CloudConfig) -> None:
        self.config = config
        # The one monotonic and one epoch clock of the local cloud; everything below gets them from here.
        self.clocks = Clocks.wall()
        self.moto = MotoBackend(config.host)
        self.host: ProcessHost | None = None
        self.dynamodb: DynamoDbProcess | None = None
        self.service: LambdaService | None = None
        self.telemetry: Telemetry | None = None
        self.stacks: dict[str, Any] = {}
        self.warnings: list[str] = []
        self._runner: web.AppRunner | None = None
        self._url = ""
        self._stoppers: list[Any] = []
        self._closers: list[Any] = []  # coroutine functions, awaited at stop
        self.run_dir: Path | None = None
        self._rest_apis: RestApis | None = None
        self._deploy_lock = asyncio.Lock()
        self.logs: LocalLogs | None = None  # CloudWatch Logs: the store, its API and the writer Lambda and API GW use
        self.router: SourceRouter | None = None  # SNS, EventBridge and S3 deliveries (lambdalab.sources)
        self.scheduler: Scheduler | None = None  # Scheduler schedules and scheduled rules

    @property
    def url(self) -> str:
        return self._url

    async def start(self) -> None:
        """Build the local cloud in dependency order, each part given what it needs when it is made.

        The one cycle (the gateway routes to the Lambda API, the Lambda service and everything it starts need the
        gateway's URL) is broken by the listening socket: it is bound first, so the URL is known before anything is
        made, and the gateway — the last part, holding every route — serves on it once the parts exist. Until then
        connections wait in the socket's backlog. Calls our routes make to moto go through a `MotoProxy`, which needs
        only moto, never through the gateway."""
        config = self.config
        moto_errors.install()  # what moto lacks answers an AWS-shaped error, not an HTML page
        self.moto.start()
        self._stoppers.append(self.moto.stop)
        # Bind first, so functions and the deployer know the URL before anything is created.
        listener = _listening_socket(config.host, config.port)
        self._stoppers.append(listener.close)  # a start that fails before the gateway serves leaves no bound port
        port = listener.getsockname()[1]  # the real port (config.port may be 0)
        self._url = f"http://{config.host}:{port}"
        moto_proxy = MotoProxy(self.moto)

        states_api = StatesApi(self.moto.url)  # lints definitions, names executions, then moto runs them
        self._closers.append(states_api.close)
        move_tasks = MessageMoveTasks(self.moto.url, config.region, clocks=self.clocks)  # SQS DLQ redrive (not in moto)
        self._closers.append(move_tasks.close)

        async def sqs_route(request: web.Request) -> web.StreamResponse:
            return await move_tasks.handle(request) or await moto_proxy.proxy(request)

        async def logs_fallback(request: web.Request, body: bytes) -> web.StreamResponse:
            return await moto_proxy.proxy(request, body)

        self.logs = LocalLogs(
            config.region,
            config.account_id,
            epoch=self.clocks.epoch,  # creation and ingestion times, PutLogEvents' window, stream names' dates
            fallback=logs_fallback,  # Logs actions that name no log group (resource policies, ...) stay moto's
            cloudwatch=local_client("cloudwatch", self.moto.url, config.region),  # embedded metric format
        )
        self.logs.start()
        self._stoppers.append(self.logs.stop)
        self.dynamodb = DynamoDbProcess(
            cloudwatch_url=self._url, region=config.region, account_id=config.account_id, time_scale=config.time_scale
        )
        await self.dynamodb.spawn()  # it imports moto on the other core while this process sets up the rest

        self.telemetry = Telemetry(
            config.run_root,
            RunMeta(
                template=str(config.template) if config.template else None,
                parameters=dict(config.parameter_overrides),
                time_scale=config.time_scale,
            ),
            cloudwatch=local_client("cloudwatch", self.moto.url, config.region),
            xray=InProcessXRay(config.account_id, config.region),
            region=config.region,
            account_id=config.account_id,
            time_scale=config.time_scale,
            epoch=self.clocks.epoch,
        )
        self.telemetry.start()
        self._stoppers.append(self.telemetry.stop)
        self.run_dir = self.telemetry.run_dir
        # executions run; their tasks (Lambda ones included) call the gateway, named here — no MOTO_PORT
        enable_stepfunctions(self._url, self.telemetry.daemon.address, epoch=self.clocks.epoch)
        # Environments write their log streams into the local CloudWatch Logs.
        self.host = ProcessHost(run_dir=self.run_dir, logs=self.logs.functions, clocks=self.clocks)
        await self.host.start()
        await self.dynamodb.wait_ready()
        dynamodb = HttpForwarder(self.dynamodb.url)  # the gateway's DynamoDB route, to the process that now runs
        self._closers.append(dynamodb.close)
        limits = Limits(account_concurrency=config.account_concurrency, keep_alive_s=config.keep_alive_s)
        esm_metrics = EsmMetrics(self.clocks.epoch, time_scale=config.time_scale)  # mappings' MetricsConfig
        self.service = LambdaService(
            self.host,
            ServiceConfig(
                region=config.region,
                account_id=config.account_id,
                endpoint_url=self._url,
                time_scale=config.time_scale,
                limits=limits,
                xray_daemon_address=self.telemetry.daemon.address,
                # Functions' table calls go straight to the DynamoDB process, not through the gateway.
                service_endpoints={"dynamodb": self.dynamodb.url, "dynamodb_streams": self.dynamodb.url},
                # pollers reach SQS (and Kinesis) in moto directly, not via the gateway; table streams live in the
                # DynamoDB process
                source_endpoints={"sqs": self.moto.url, "dynamodb": self.dynamodb.url},
            ),
            self.telemetry,
            clocks=self.clocks,
            esm_metrics=esm_metrics,
            # Async destinations and DLQs: queues, topics and buses in moto (a function target is the service's own
            # asynchronous invoke).
            event_sender=Destinations(self.moto.url).send,
        )
        service = self.service
        speed_up_moto_sqs(self.clocks.epoch)  # moto reads its clock per message per call: too slow at thousands
        make_moto_sqs_thread_safe()  # moto's DeleteMessage and a concurrent SendMessage could lose the message
        self._wire_sources(esm_metrics)
        await self.service.start()
        capacity = CapacityServices(  # autoscaling
            self.moto.url,
            config.region,
            config.time_scale,
            proxy=moto_proxy.proxy,
            gateway_url=self._url,
            lambda_service=service,
            epoch=self.clocks.epoch,
        )
        capacity.start()
        self._closers.insert(0, capacity.stop)

        async def invoke_for_api(
            function_arn: str, payload: bytes, trace_header: str | None, local_wait: LocalWait
        ) -> Any:
            return await service.invoke(function_arn, None, payload, trace_header=trace_header, local_wait=local_wait)

        access_log = AccessLog(self.run_dir / ACCESS_LOG)  # REST and HTTP APIs share the access log
        rest_metrics = ApiMetrics(self.clocks.epoch, time_scale=config.time_scale)
        self._rest_apis = RestApis(  # REST API calls; the management API under /restapis/ still goes to moto
            moto_table_loader(self.moto.url, config.region),
            invoke_for_api,
            moto_proxy.proxy,
            account_id=config.account_id,
            access_log=access_log,
            clocks=self.clocks,
            log_sink=self.logs.writer.put,  # stages' AccessLogSetting → their CloudWatch Logs group
            metrics=rest_metrics,
        )
        self._closers.append(self._rest_apis.close)
        http_metrics = HttpApiMetrics(self.clocks.epoch, time_scale=config.time_scale)
        self._http_apis = HttpApis(  # HTTP APIs share the REST APIs' local URL form and access log
            moto_http_table_loader(self.moto.url, config.region),
            invoke_for_api,
            account_id=config.account_id,
            clocks=self.clocks,
            access_log=access_log,
            metrics=http_metrics,
        )
        self._closers.append(self._http_apis.close)
        for aggregator, period_s in ((rest_metrics, rest_metrics.period_s), (http_metrics, http_metrics.period_s)):
            api_publisher = MetricsPublisher(
                aggregator,  # type: ignore[arg-type]  # MetricsPublisher only calls flush(final=...)
                local_client("cloudwatch", self.moto.url, config.region),
                max(0.5, min(5.0, period_s / 2)),
                namespace=API_NAMESPACE,
            )
            api_publisher.start()
            self._stoppers.append(api_publisher.stop)  # publishes the open period too
        lambda_api = LambdaApi(service, self.run_dir / "code")

        async def dynamodb_route(request: web.Request) -> web.StreamResponse:
            return await dynamodb.respond(request, None, "dynamodb")

        async def cloudformation_route(request: web.Request) -> web.StreamResponse:
            return await self._cloudformation(request)

        gateway = Gateway(
            self.moto,
            {
                "lambda": lambda_api.handle,
                "cloudformation": cloudformation_route,
                "states": states_api.handle,
                "dynamodb": dynamodb_route,
                "logs": self.logs.api.handle,
                "sqs": sqs_route,
            }
            | capacity.routes(),
            extra={"/_lambdalab/": self._internal, "/restapis/": self._rest_api_route},
            proxy=moto_proxy,
        )
        self._runner = web.AppRunner(gateway.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, listener).start()
        if config.template is not None:
            await self.deploy(config.template, config.parameter_overrides, config.stack_name)

    def _wire_sources(self, esm_metrics: EsmMetrics) -> None:
        """Event sources: stream mappings invoke synchronously and SNS, EventBridge, Scheduler and S3 asynchronously,
        all through the Lambda service's invoke (lambdalab.sources.invoke's adapter); ESM metrics to CloudWatch."""
        assert self.service is not None
        config = self.config
        invoker = LambdaServiceInvoker(self.service)  # stream mappings have the service's own, the same adapter
        publisher = MetricsPublisher(
            esm_metrics,  # type: ignore[arg-type]  # MetricsPublisher only calls flush(final=...)
            local_client("cloudwatch", self.moto.url, config.region),
            max(0.5, min(5.0, esm_metrics.period_s / 2)),
            namespace="AWS/Lambda",
        )
        publisher.start()
        self._stoppers.append(publisher.stop)
        self.router = SourceRouter(
            bridge=LoopBridge(asyncio.get_running_loop()),
            invoker=invoker,
            moto_url=self.moto.url,
            gateway_url=self._url,
            region=config.region,
            account_id=config.account_id,
            clocks=self.clocks,
            time_scale=config.time_scale,
        )
        moto_hooks.install(self.router)
        self._stoppers.append(moto_hooks.uninstall)
        self.scheduler = Scheduler(
            self.router,
            region=config.region,
            account_id=config.account_id,
            clocks=self.clocks,
            time_scale=config.time_scale,
        )
        self.scheduler.start()
        self._closers.insert(0, self.scheduler.stop)

    async def deploy(self, template: Path, overrides: Mapping[str, str], stack_name: str | None) -> Any:
        assert self.service is not None
        control = ThreadSafeControl(self.service, asyncio.get_running_loop())
        stack = await asyncio.to_thread(
            deploy_template,
            template,
            lambda_control=control,
            endpoint_url=self._url,  # through the gateway, so queue URLs and ARNs name the endpoint users see
            region=self.config.region,
            account_id=self.config.account_id,
            stack_name=stack_name,
            parameter_overrides=overrides,
            other_stacks=dict(self.stacks),  # their exports for Fn::ImportValue; their names and exports are taken
            epoch=self.clocks.epoch,
        )
        self.stacks[stack.stack_name] = stack
        if self._rest_apis is not None:  # routes from the new APIs; their execute-api outputs name the local endpoint
            table = await self._rest_apis.reload()
            http_table = await self._http_apis.reload()
            http_stages = {api_id: set(api.stages) for api_id, api in http_table.apis.items()}
            for output in stack.outputs.values():
                output.value = local_api_url(output.value, self._url, set(table.apis))
                output.value = local_http_api_url(output.value, self._url, http_stages)
        self.warnings.extend(stack.warnings)
        if self.telemetry is not None:
            rules = [
                SamplingRule.from_api(resource_properties.get("SamplingRule", {}))
                for resource_properties in _resources_of_type(stack, "AWS::XRay::SamplingRule")
            ]
            if rules:
                self.telemetry.use_sampling_rules(rules)
        return stack

    async def _cloudformation(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        params = {k: str(v) for k, v in form.items()}
        params.update({k: v for k, v in request.query.items()})
        status, body = stack_api.handle(params.get("Action", ""), params, self.stacks)
        return web.Response(status=status, body=body.encode(), content_type="text/xml")

    async def _rest_api_route(self, request: web.Request) -> web.StreamResponse:
        """`/restapis/{api}/{stage}/_user_request_/...`: an HTTP API's request if the id is one, else a REST API's."""
        assert self._rest_apis is not None
        parts = user_request_parts(request)
        if parts is not None:
            api_id, stage, path = parts
            rest = self._rest_apis.table
            if (rest is None or api_id not in rest.apis) and await self._http_apis.knows(api_id):
                return await self._http_apis.handle(request, api_id, stage, path)
        return await self._rest_apis.handle(request)

    async def _internal(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/_lambdalab/health":
            body = {
                "status": "ready",
                "stacks": sorted(self.stacks),
                "run_dir": str(self.run_dir) if self.run_dir else None,
                "time_scale": self.config.time_scale,
            }
            return web.Response(body=json.dumps(body).encode(), content_type="application/json")
        if request.path == STACKS_PATH:  # `lambdalab deploy`: another template into this running cloud
            return await handle_deploy(request, self._deploy_one_at_a_time)
        return web.Response(status=404, text="unknown lambdalab endpoint")

    async def _deploy_one_at_a_time(self, template: Path, overrides: Mapping[str, str], stack_name: str | None) -> Any:
        async with self._deploy_lock:
            return await self.deploy(template, overrides, stack_name)

    async def stop(self) -> None:
        if self.service is not None:
            await self.service.stop()
        if self.host is not None:
            await self.host.stop()
        if self.dynamodb is not None:
            await self.dynamodb.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        for close in self._closers:
            await close()
        self._closers.clear()
        for stop in reversed(self._stoppers):
            try:
                stop()
            except Exception:
                LOG.exception("error while stopping")
        self._stoppers.clear()


@contextlib.contextmanager
def collector_paused_while_starting() -> Iterator[None]:
    """Around `await cloud.start()` in a process that runs one local cloud (`lambdalab up`, `lambdalab demo`).

    Starting (moto's backends, the deploy, boto3's models) leaves ~600k objects, and CPython's full collections over
    the growing heap cost ~3 s of CPU per start. So: no collection while starting, one pass after it, and what
    survives (the imports and the cloud's state, alive until exit) is frozen out of every later pass, the exit's too.
    """
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.collect()
        gc.freeze()
        gc.enable()


class LocalCloudThread:
    """The local cloud on its own event loop in a thread, with a ready event: for tests and benchmarks in process."""

    def __init__(self, config: CloudConfig, ready_timeout_s: float = 120.0) -> None:
        self.cloud = LocalCloud(config)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="lambdalab-cloud", daemon=True)
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._timeout = ready_timeout_s

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            await self.cloud.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            await self.cloud.stop()
            return
        self._ready.set()
        await self._stop.wait()
        await self.cloud.stop()

    def start(self) -> LocalCloud:
        self._thread.start()
        if not self._ready.wait(self._timeout):
            raise TimeoutError(f"the local cloud did not start within {self._timeout} s")
        if self._error is not None:
            raise self._error
        return self.cloud

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)


def _listening_socket(host: str, port: int) -> socket.socket:
    """The gateway's socket, bound and listening (`port=0`: a free one) before the gateway exists: connections made
    meanwhile wait in its backlog until the gateway serves on it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as TCPSite(reuse_address=True)
        sock.bind((host, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _resources_of_type(stack: Any, resource_type: str) -> list[dict[str, Any]]:
    """The resolved properties of a deployed stack's resources of one type."""
    return [r.properties for r in stack.resources.values() if r.resource_type == resource_type]
