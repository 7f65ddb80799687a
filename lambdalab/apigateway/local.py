"""The local REST API endpoint: `/restapis/{api}/{stage}/_user_request_/{path}` on the gateway, routed by the deployed
APIs' resources and methods to their Lambda proxy integrations, with an access log line per request."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from aiohttp import web

from lambdalab.apigateway import accesslog
from lambdalab.apigateway.metrics import ApiMetrics, ApiRequest
from lambdalab.apigateway.proxy import (
    INTEGRATION_TIMEOUT_S,
    Failure,
    HttpRequest,
    HttpResponse,
    ProxyContext,
    build_event,
    failure_response,
    map_response,
    request_time,
)
from lambdalab.apigateway.routes import RouteTable, table_from_api
from lambdalab.awsclients import local_client
from lambdalab.awslambda.core.localwait import LocalWait
from lambdalab.clock import Clock, Clocks

LOG = logging.getLogger(__name__)

PREFIX = "/restapis/"
USER_REQUEST = "_user_request_"
ACCESS_LOG = "api-access.jsonl"
_USER_PATH = re.compile(r"^/restapis/(?P<api>[^/]+)/(?P<stage>[^/]+)/_user_request_(?P<path>/.*)?$")
# What the template's outputs say on AWS: https://{api}.execute-api.{region}.{URLSuffix}/{stage}/...
_EXECUTE_API_URL = re.compile(
    r"https?://(?P<api>[a-z0-9]+)\.execute-api\.[a-z0-9-]+\.[A-Za-z0-9.:-]+/(?P<stage>[^/\s?#]+)(?P<rest>[^\s]*)"
)
_RELOAD_AFTER_MISS_S = 1.0


class Outcome(Protocol):
    """What LambdaService.invoke returns (InvokeOutcome)."""

    body: bytes
    function_error: str | None
    request_id: str


# (function arn, payload, trace header, the request's local waits kept current by Lambda)
Invoker = Callable[[str, bytes, str | None, LocalWait], Awaitable[Outcome]]
LogSink = Callable[[str, str, list[tuple[int, str]]], None]  # (group, stream, events): the CloudWatch Logs writer
Proxy = Callable[[web.Request], Awaitable[web.StreamResponse]]


def local_api_url(value: str, endpoint_url: str, api_ids: set[str]) -> str:
    """Rewrite execute-api URLs of the deployed APIs in `value` to the path-based local endpoint.

    `https://abc123.execute-api.us-east-1.amazonaws.com/lab/products` becomes
    `http://127.0.0.1:4566/restapis/abc123/lab/_user_request_/products`; other text is left as it is.
    """

    def replace(match: re.Match[str]) -> str:
        if match.group("api") not in api_ids:
            return match.group(0)
        return f"{endpoint_url.rstrip('/')}/restapis/{match.group('api')}/{match.group('stage')}/{USER_REQUEST}" + (
            match.group("rest") or ""
        )

    return _EXECUTE_API_URL.sub(replace, value)


def is_user_request(request: web.Request) -> bool:
    """An API call (unsigned, under `/restapis/{api}/{stage}/_user_request_`), not an API Gateway management call."""
    return "Authorization" not in request.headers and _USER_PATH.match(request.rel_url.raw_path) is not None


def _apigw_id() -> str:
    return base64.b32encode(os.urandom(10)).decode()[:16]


class AccessLog:
    """JSON lines in the run directory; the fields of the template's AccessLogSetting format, plus the caller's ip.

    The file stays open; a line reaches the disk within `flush_interval_s` (a flush scheduled on the event loop when
    the first unflushed line is written), and everything at `close()`."""

    def __init__(self, path: Path, flush_interval_s: float = 0.25) -> None:
        self.path = path
        self._sink: Any = None  # opened on the first line
        self._flush_interval_s = flush_interval_s
        self._flush_pending = False

    def write(self, entry: dict[str, Any]) -> None:
        if self._sink is None:
            self._sink = self.path.open("a", encoding="utf-8")
        self._sink.write(json.dumps(entry, separators=(",", ":")) + "\n")
        if self._flush_interval_s <= 0:
            self._sink.flush()
        elif not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_later(self._flush_interval_s, self.flush)

    def flush(self) -> None:
        self._flush_pending = False
        if self._sink is not None and not self._sink.closed:
            self._sink.flush()

    def close(self) -> None:
        if self._sink is not None and not self._sink.closed:
            self._sink.close()


async def wait_counting_aws_time(task: asyncio.Future[Any], timeout_s: float, local: LocalWait, clock: Clock) -> bool:
    """Wait for `task` at most `timeout_s` of the time AWS would count: the request's waits for this machine
    (`local`, kept current by the Lambda service) extend the deadline, so they never become API Gateway's 504.
    True when the task is done."""
    began = clock.now()
    while True:
        left = began + timeout_s + local.seconds(clock.now()) - clock.now()
        if left <= 0:
            return task.done()
        done, _ = await asyncio.wait({task}, timeout=left)
        if done:
            return True


class RestApis:
    """Serves the deployed REST APIs. `handle` is the gateway route for every path under `/restapis/`."""

    def __init__(
        self,
        load_table: Callable[[], RouteTable],
        invoker: Invoker,
        fallback: Proxy,
        *,
        account_id: str,
        access_log: AccessLog | None,
        clocks: Clocks,
        log_sink: LogSink | None = None,
        metrics: ApiMetrics | None = None,
        integration_timeout_s: float = INTEGRATION_TIMEOUT_S,
        reload_after_miss_s: float = _RELOAD_AFTER_MISS_S,
    ) -> None:
        self._load_table = load_table
        self._invoker = invoker
        self._fallback = fallback
        self.account_id = account_id
        self.access_log = access_log
        self.monotonic = clocks.monotonic  # latencies, when the routes were loaded
        self.epoch = clocks.epoch  # requestTimeEpoch, access log lines, metric periods
        self.integration_timeout_s = integration_timeout_s
        self.reload_after_miss_s = reload_after_miss_s  # a miss re-reads the APIs at most this often
        self.table: RouteTable | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()
        self._abandoned: set[asyncio.Task[Any]] = set()  # invocations API Gateway stopped waiting for (504)
        self.metrics = metrics  # AWS/ApiGateway metrics; the composition root publishes them (MetricsPublisher)
        self.log_sink = log_sink  # stages' AccessLogSetting lines go here (CloudWatch Logs)

    async def reload(self) -> RouteTable:
        async with self._lock:
            self.table = await asyncio.to_thread(self._load_table)
            self._loaded_at = self.monotonic.now()
            LOG.info("REST API routes loaded: %s", ", ".join(sorted(self.table.apis)) or "none")
            return self.table

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not is_user_request(request):
            return await self._fallback(request)  # the API Gateway management API (moto)
        started = self.monotonic.now()
        epoch_ms = int(self.epoch.now() * 1000)
        match = _USER_PATH.match(request.rel_url.raw_path)
        assert match is not None
        api_id, stage_name, path = match.group("api"), match.group("stage"), match.group("path") or "/"
        request_id = str(uuid.uuid4())
        body = await request.read()
        table = self.table if self.table is not None else await self.reload()
        found = table.match(api_id, stage_name, request.method, path)
        if found is None and self.monotonic.now() - self._loaded_at >= self.reload_after_miss_s:
            found = (await self.reload()).match(api_id, stage_name, request.method, path)
        integration_latency: int | None = None
        resource_path = found.resource.path if found is not None else None
        if found is None:
            response = failure_response(Failure.MISSING_AUTHENTICATION_TOKEN)
        else:
            integration = found.method.integration
            function_arn = integration.function_arn(found.stage.variables) if integration is not None else None
            if integration is None or integration.type != "AWS_PROXY" or function_arn is None:
                kind = integration.type if integration is not None else "none"
                response = failure_response(Failure.INVOKE_REJECTED, f"integration type {kind} is not served locally")
            else:
                http_request = HttpRequest(
                    method=request.method,
                    path=path,
                    stage_path=f"/{stage_name}{path}",
                    headers=self._headers(request),
                    query=list(request.rel_url.query.items()),
                    body=body,
                    source_ip=request.remote or "127.0.0.1",
                    host=request.host,
                )
                context = ProxyContext(
                    api_id=api_id,
                    stage=stage_name,
                    resource_id=found.resource.id,
                    resource_path=found.resource.path,
                    path_parameters=found.path_parameters,
                    stage_variables=found.stage.variables,
                    account_id=self.account_id,
                    request_id=request_id,
                    request_time_epoch_ms=epoch_ms,
                    binary_media_types=found.api.binary_media_types,
                )
                event = build_event(http_request, context)
                integration_started = self.monotonic.now()
                response = await self._integrate(function_arn, event, request.headers.get("X-Amzn-Trace-Id"))
                integration_latency = round((self.monotonic.now() - integration_started) * 1000)
        response.headers += [("x-amzn-RequestId", request_id), ("x-amz-apigw-id", _apigw_id())]
        latency = round((self.monotonic.now() - started) * 1000)
        if self.metrics is not None and found is not None:
            self.metrics.record(
                ApiRequest(
                    found.api.name,
                    stage_name,
                    resource_path,
                    found.method.http_method if found.method.http_method != "ANY" else request.method,
                    response.status,
                    latency,
                    integration_latency,
                    epoch_ms / 1000,
                )
            )
        if self.access_log is not None:
            self.access_log.write(
                {
                    "requestId": request_id,
                    "ip": request.remote,
                    "requestTime": request_time(epoch_ms),
                    "requestTimeEpoch": epoch_ms,
                    "httpMethod": request.method,
                    "resourcePath": resource_path,
                    "path": f"/{stage_name}{path}",
                    "apiId": api_id,
                    "stage": stage_name,
                    "status": response.status,
                    "protocol": f"HTTP/{request.version.major}.{request.version.minor}",
                    "responseLength": len(response.body),
                    "responseLatency": latency,
                    "integrationLatency": integration_latency,
                    "integrationStatus": None if integration_latency is None else self._integration_status(response),
                    "integrationRequestId": response.integration_request_id,
                    "error": response.error or None,
                }
            )
        setting = found.stage.access_log if found is not None else None
        if setting is not None and self.log_sink is not None:
            variables = accesslog.rest_context(
                request_id=request_id,
                extended_request_id=_apigw_id(),
                api_id=api_id,
                stage=stage_name,
                account_id=self.account_id,
                http_method=request.method,
                path=f"/{stage_name}{path}",
                resource_path=resource_path,
                resource_id=found.resource.id if found is not None else None,
                protocol=f"HTTP/{request.version.major}.{request.version.minor}",
                source_ip=request.remote or "127.0.0.1",
                user_agent=request.headers.get("User-Agent"),
                domain_name=request.host,
                request_time=request_time(epoch_ms),
                request_time_epoch_ms=epoch_ms,
                status=response.status,
                response_length=len(response.body),
                response_latency_ms=latency,
                integration_latency_ms=integration_latency,
                integration_status=None if integration_latency is None else self._integration_status(response),
                error_message=_error_message(response),
                error_type=response.failure.name if response.failure is not None else None,
                xray_trace_id=_root_of(request.headers.get("X-Amzn-Trace-Id")),
            )
            line = accesslog.format_line(setting.format, variables)
            self.log_sink(setting.log_group, accesslog.stream_name(api_id, stage_name), [(epoch_ms, line)])
        out = web.Response(status=response.status, body=response.body)
        for name, value in response.headers:
            out.headers.add(name, value)
        return out

    @staticmethod
    def _integration_status(response: HttpResponse) -> int:
        """$context.integration.status: what Lambda's Invoke answered (200 unless it refused or timed out)."""
        if response.failure is Failure.INVOKE_REJECTED:
            return 429 if "TooManyRequests" in response.error else 500
        if response.failure is Failure.TIMEOUT:
            return 504
        return 200

    @staticmethod
    def _headers(request: web.Request) -> list[tuple[str, str]]:
        """The client's headers as API Gateway forwards them, with the X-Forwarded-* it adds."""
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in ("connection", "content-length")]
        forwarded_for = request.headers.get("X-Forwarded-For")
        ip = request.remote or "127.0.0.1"
        headers = [
            (k, v) for k, v in headers if k.lower() not in ("x-forwarded-for", "x-forwarded-port", "x-forwarded-proto")
        ]
        headers.append(("X-Forwarded-For", f"{forwarded_for}, {ip}" if forwarded_for else ip))
        host = request.host.rsplit(":", 1)
        headers.append(("X-Forwarded-Port", host[1] if len(host) == 2 and host[1].isdigit() else "80"))
        headers.append(("X-Forwarded-Proto", request.scheme))
        return headers

    async def _integrate(self, function_arn: str, event: dict[str, Any], trace_header: str | None) -> HttpResponse:
        from lambdalab.awslambda.core.exceptions import LambdaApiError

        payload = json.dumps(event).encode()
        local = LocalWait()
        task = asyncio.ensure_future(self._invoker(function_arn, payload, trace_header, local))
        done = await wait_counting_aws_time(task, self.integration_timeout_s, local, self.monotonic)
        if not done:  # API Gateway answers 504; the function keeps running to its own timeout
            self._abandoned.add(task)
            task.add_done_callback(self._forget)
            return failure_response(Failure.TIMEOUT, "Endpoint request timed out")
        try:
            outcome = task.result()
        except LambdaApiError as exc:  # the Lambda API refused the invoke (throttle, missing function): 500
            LOG.info("Lambda rejected the integration request for %s: %s %s", function_arn, exc.code, exc.message)
            rejected = failure_response(Failure.INVOKE_REJECTED, f"Lambda {exc.code}: {exc.message}")
            rejected.integration_request_id = exc.request_id
            return rejected
        response = map_response(outcome.body, outcome.function_error)
        response.integration_request_id = outcome.request_id
        return response

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            LOG.info("an abandoned integration request ended with %s", task.exception())

    async def close(self) -> None:
        if self.access_log is not None:
            self.access_log.close()
        for task in list(self._abandoned):
            task.cancel()
        if self._abandoned:
            await asyncio.wait(self._abandoned, timeout=5)


def _error_message(response: HttpResponse) -> str | None:
    """$context.error.message: the gateway's message when it answered an error itself."""
    if response.failure is None:
        return None
    try:
        return str(json.loads(response.body).get("message")) or None
    except (ValueError, AttributeError):
        return None


def _root_of(trace_header: str | None) -> str | None:
    if not trace_header:
        return None
    for part in trace_header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "Root":
            return value
    return None


def moto_table_loader(moto_url: str, region: str) -> Callable[[], RouteTable]:
    """Read every REST API, its resources (with methods and integrations) and stages from moto's API Gateway."""

    def load() -> RouteTable:
        client = local_client("apigateway", moto_url, region)
        apis = [item for page in client.get_paginator("get_rest_apis").paginate() for item in page.get("items", [])]

        def fetch(api_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            resources = [
                item
                for page in client.get_paginator("get_resources").paginate(restApiId=api_id, embed=["methods"])
                for item in page.get("items", [])
            ]
            stages = client.get_stages(restApiId=api_id).get("item", [])
            return resources, stages

        return table_from_api(apis, fetch)

    return load


def user_url(endpoint_url: str, api_id: str, stage: str, path: str = "") -> str:
    """The local URL of a resource path of a deployed API."""
    return f"{endpoint_url.rstrip('/')}/restapis/{api_id}/{stage}/{USER_REQUEST}{quote(path)}"
