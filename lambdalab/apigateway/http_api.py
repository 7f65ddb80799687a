"""API Gateway HTTP APIs locally: routes matched as HTTP APIs match them, Lambda proxy integrations with payload
format 2.0 and 1.0, the response mapping, errors, metrics and the access log.

As "Working with routes for HTTP APIs", "Working with AWS Lambda proxy integrations for HTTP APIs" and "HTTP API
quotas" describe:

* Route keys are `METHOD /path` (path parameters `{name}`, a greedy `{name+}` as the last segment), `ANY /path`, or
  `$default`. A request takes the most specific route: a full match with its method, then with ANY, then the
  greedy route with the longest match, then `$default`; nothing: 404 `{"message":"Not Found"}`.
* Stages: a named stage is the first path segment (`rawPath` keeps it), the `$default` stage serves the root.
* Payload 2.0: `version`, `routeKey`, `rawPath`, `rawQueryString`, `cookies`, `headers` (lower-cased, repeated
  values joined with commas), `queryStringParameters` (joined with commas), `pathParameters`, `stageVariables`,
  `requestContext` (`accountId`, `apiId`, `domainName`, `domainPrefix`, `http`, `requestId`, `routeKey`, `stage`,
  `time`, `timeEpoch`), `body`, `isBase64Encoded`; absent members are left out. Payload 1.0: the REST API event
  with `version: "1.0"`.
* 2.0 responses: an object with `statusCode` gives its `statusCode`, `headers`, `cookies` (Set-Cookie), `body`,
  `isBase64Encoded`; any other JSON is the body of a 200 with `content-type: application/json` (a JSON string is the
  body itself). 1.0 responses need `statusCode` as for REST APIs.
* Errors: a function error or a response API Gateway cannot read: 500 `{"message":"Internal Server Error"}`; Lambda
  refusing the invoke (throttled, missing function): 500; no answer within the integration timeout (30 s at most,
  `TimeoutInMillis`): 503 `{"message":"Service Unavailable"}`.
* Metrics (AWS/ApiGateway): `Count`, `4xx`, `5xx`, `Latency`, `IntegrationLatency`, `DataProcessed` by `ApiId`;
  `ApiId`+`Stage`; `ApiId`+`Method`+`Resource`+`Stage` ("Monitor CloudWatch metrics for HTTP APIs").
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from lambdalab.apigateway.local import wait_counting_aws_time
from lambdalab.apigateway.proxy import HttpRequest, ProxyContext, build_event, request_time
from lambdalab.awslambda.core.localwait import LocalWait
from lambdalab.clock import Clock, Clocks
from lambdalab.observe.periods import BASE_PERIOD_S, Dims, PeriodStats

LOG = logging.getLogger(__name__)

DEFAULT_STAGE = "$default"
DEFAULT_ROUTE = "$default"
MAX_TIMEOUT_MS = 30_000
_LAMBDA_URI = re.compile(
    r"^arn:[^:]+:apigateway:[^:]*:lambda:path/\d{4}-\d{2}-\d{2}/functions/(?P<arn>.+)/invocations$"
)
_STAGE_VARIABLE = re.compile(r"\$\{stageVariables\.([A-Za-z0-9_]+)\}")
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript", "+json", "+xml",
               "application/x-www-form-urlencoded")  # fmt: skip
_EXECUTE_API_URL = re.compile(
    r"https?://(?P<api>[a-z0-9]+)\.execute-api\.[a-z0-9-]+\.[A-Za-z0-9.:-]+?(?P<rest>/[^\s\"']*)?(?=$|[\s\"'])"
)
INTERNAL_ERROR = (500, "Internal Server Error")
NOT_FOUND = (404, "Not Found")
UNAVAILABLE = (503, "Service Unavailable")


# --- the routing table --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpIntegration:
    type: str  # AWS_PROXY, HTTP_PROXY, MOCK ...
    uri: str
    payload_format_version: str = "2.0"
    timeout_ms: int = MAX_TIMEOUT_MS

    def function_arn(self, stage_variables: Mapping[str, str]) -> str | None:
        uri = _STAGE_VARIABLE.sub(lambda m: stage_variables.get(m.group(1), ""), self.uri)
        match = _LAMBDA_URI.match(uri)
        if match:
            return match.group("arn")
        if ":lambda:" in uri and ":function:" in uri:
            return uri
        return None


@dataclass(frozen=True)
class HttpRoute:
    key: str  # "GET /items/{id}", "ANY /x", "$default"
    integration: HttpIntegration | None
    authorization_type: str = "NONE"

    @property
    def method(self) -> str:
        return "*" if self.key == DEFAULT_ROUTE else self.key.split(" ", 1)[0].upper()

    @property
    def parts(self) -> tuple[str, ...]:
        if self.key == DEFAULT_ROUTE:
            return ()
        return tuple(p for p in self.key.split(" ", 1)[1].split("/") if p)


@dataclass(frozen=True)
class HttpStage:
    name: str
    variables: Mapping[str, str] = field(default_factory=dict)
    detailed_metrics: bool = False


@dataclass(frozen=True)
class HttpApi:
    id: str
    name: str
    routes: tuple[HttpRoute, ...]
    stages: Mapping[str, HttpStage]


@dataclass(frozen=True)
class RouteMatch:
    api: HttpApi
    stage: HttpStage
    route: HttpRoute
    path: str  # the path after the stage
    path_parameters: dict[str, str]


def _bind(template: tuple[str, ...], segments: tuple[str, ...]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for index, part in enumerate(template):
        if part.startswith("{") and part.endswith("+}"):
            rest = segments[index:]
            if not rest or index != len(template) - 1:
                return None
            params[part[1:-2]] = "/".join(unquote(p) for p in rest)
            return params
        if index >= len(segments):
            return None
        if part.startswith("{") and part.endswith("}"):
            params[part[1:-1]] = unquote(segments[index])
        elif part != segments[index]:
            return None
    return params if len(template) == len(segments) else None


def match_route(routes: Sequence[HttpRoute], method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
    """The route HTTP APIs choose for `method path` (without the stage), and its path parameters."""
    segments = tuple(p for p in path.split("/") if p)
    candidates: list[tuple[tuple[int, ...], HttpRoute, dict[str, str]]] = []
    default: HttpRoute | None = None
    for route in routes:
        if route.key == DEFAULT_ROUTE:
            default = route
            continue
        if route.method not in (method.upper(), "ANY"):
            continue
        params = _bind(route.parts, segments)
        if params is None:
            continue
        greedy = bool(route.parts) and route.parts[-1].endswith("+}")
        literal = sum(1 for p in route.parts if not p.startswith("{"))
        rank = (
            1 if greedy else 0,
            -len(route.parts) if greedy else 0,  # the longest greedy match first
            -literal,  # literal segments before parameters
            0 if route.method != "ANY" else 1,
        )
        candidates.append((rank, route, params))
    if candidates:
        candidates.sort(key=lambda c: c[0])
        return candidates[0][1], candidates[0][2]
    if default is not None:
        return default, {}
    return None


@dataclass
class HttpRouteTable:
    apis: dict[str, HttpApi] = field(default_factory=dict)

    def match(self, api_id: str, stage_name: str, method: str, path: str) -> RouteMatch | None:
        api = self.apis.get(api_id)
        if api is None:
            return None
        stage = api.stages.get(stage_name)
        if stage is None:
            return None
        found = match_route(api.routes, method, path)
        if found is None:
            return None
        return RouteMatch(api, stage, found[0], path, found[1])


def table_from_api(
    apis: Sequence[Mapping[str, Any]], fetch: Callable[[str], tuple[list[Any], list[Any], list[Any]]]
) -> HttpRouteTable:
    """GetApis items + `fetch(api_id)` → (GetRoutes items, GetIntegrations items, GetStages items)."""
    table = HttpRouteTable()
    for item in apis:
        if str(item.get("ProtocolType", "HTTP")).upper() != "HTTP":
            continue
        routes_items, integration_items, stage_items = fetch(item["ApiId"])
        integrations = {
            i["IntegrationId"]: HttpIntegration(
                str(i.get("IntegrationType", "")).upper(),
                str(i.get("IntegrationUri") or ""),
                str(i.get("PayloadFormatVersion") or "2.0"),
                int(i.get("TimeoutInMillis") or MAX_TIMEOUT_MS),
            )
            for i in integration_items
        }
        routes = []
        for route in routes_items:
            target = str(route.get("Target") or "")
            integration = integrations.get(target.split("/", 1)[1]) if target.startswith("integrations/") else None
            routes.append(HttpRoute(str(route["RouteKey"]), integration, str(route.get("AuthorizationType") or "NONE")))
        stages = {
            s["StageName"]: HttpStage(
                s["StageName"],
                dict(s.get("StageVariables") or {}),
                bool((s.get("DefaultRouteSettings") or {}).get("DetailedMetricsEnabled")),
            )
            for s in stage_items
        }
        table.apis[item["ApiId"]] = HttpApi(item["ApiId"], str(item.get("Name") or ""), tuple(routes), stages)
    return table


def local_http_api_url(value: str, endpoint_url: str, apis: Mapping[str, set[str]]) -> str:
    """Rewrite execute-api URLs of deployed HTTP APIs (`apis`: id → stage names) to the path-based local endpoint:
    `https://abc.execute-api.us-east-1.amazonaws.com/prod/x` → `{endpoint}/restapis/abc/prod/_user_request_/x`, and a
    URL without a named stage to the `$default` stage."""

    def replace(match: re.Match[str]) -> str:
        stages = apis.get(match.group("api"))
        if stages is None:
            return match.group(0)
        rest = match.group("rest") or ""
        segments = rest.split("/")
        stage, tail = DEFAULT_STAGE, rest
        if len(segments) > 1 and segments[1] in stages and segments[1] != DEFAULT_STAGE:
            stage, tail = segments[1], "/" + "/".join(segments[2:]) if len(segments) > 2 else ""
        return f"{endpoint_url.rstrip('/')}/restapis/{match.group('api')}/{stage}/_user_request_{tail}"

    return _EXECUTE_API_URL.sub(replace, value)


_USER_PATH = re.compile(r"^/restapis/(?P<api>[^/]+)/(?P<stage>[^/]+)/_user_request_(?P<path>/.*)?$")


def user_request_parts(request: web.Request) -> tuple[str, str, str] | None:
    """(api id, stage, path) of an API call on the local endpoint (unsigned, under `/restapis/{api}/{stage}/
    _user_request_`); None for anything else (the management API is signed)."""
    if "Authorization" in request.headers:
        return None
    match = _USER_PATH.match(request.rel_url.raw_path)
    if match is None:
        return None
    return match.group("api"), unquote(match.group("stage")), match.group("path") or "/"


# --- the event ----------------------------------------------------------------------------------------------------


def _joined(pairs: Sequence[tuple[str, str]], lower: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in pairs:
        name = key.lower() if lower else key
        out[name] = f"{out[name]},{value}" if name in out else value
    return out


def _is_text(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return not media or any(marker in media for marker in _TEXT_TYPES)


@dataclass(frozen=True)
class HttpApiRequest:
    method: str
    raw_path: str  # what requestContext.http.path and rawPath show (with a named stage)
    headers: Sequence[tuple[str, str]]
    raw_query: str
    query: Sequence[tuple[str, str]]
    body: bytes
    source_ip: str
    host: str


def build_event_v2(request: HttpApiRequest, match: RouteMatch, *, account_id: str, request_id: str,
                   epoch_ms: int) -> dict[str, Any]:  # fmt: skip
    """The payload format 2.0 event."""
    headers = [(k, v) for k, v in request.headers if k.lower() != "cookie"]
    cookies = [c.strip() for k, v in request.headers if k.lower() == "cookie" for c in v.split(";") if c.strip()]
    header_map = _joined(headers, lower=True)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": match.route.key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = header_map
    if request.query:
        event["queryStringParameters"] = _joined(request.query, lower=False)
    event["requestContext"] = {
        "accountId": account_id,
        "apiId": match.api.id,
        "domainName": request.host,
        "domainPrefix": match.api.id,
        "http": {
            "method": request.method,
            "path": request.raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": request.source_ip,
            "userAgent": header_map.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": match.route.key,
        "stage": match.stage.name,
        "time": request_time(epoch_ms),
        "timeEpoch": epoch_ms,
    }
    if match.path_parameters:
        event["pathParameters"] = dict(match.path_parameters)
    if match.stage.variables:
        event["stageVariables"] = dict(match.stage.variables)
    if request.body:
        content_type = header_map.get("content-type", "")
        try:
            text = request.body.decode("utf-8")
            binary = not _is_text(content_type)
        except UnicodeDecodeError:
            binary = True
        event["body"] = base64.b64encode(request.body).decode() if binary else text
        event["isBase64Encoded"] = binary
    else:
        event["isBase64Encoded"] = False
    return event


def build_event_v1(request: HttpApiRequest, match: RouteMatch, *, account_id: str, request_id: str,
                   epoch_ms: int) -> dict[str, Any]:  # fmt: skip
    """The payload format 1.0 event of an HTTP API: the REST API event with `version` and the route's path."""
    resource = "/" + "/".join(match.route.parts) if match.route.key != DEFAULT_ROUTE else DEFAULT_ROUTE
    event = build_event(
        HttpRequest(
            method=request.method,
            path=request.raw_path,
            stage_path=request.raw_path,
            headers=list(request.headers),
            query=list(request.query),
            body=request.body,
            source_ip=request.source_ip,
            host=request.host,
        ),
        ProxyContext(
            api_id=match.api.id,
            stage=match.stage.name,
            resource_id=match.route.key,
            resource_path=resource,
            path_parameters=match.path_parameters,
            stage_variables=match.stage.variables,
            account_id=account_id,
            request_id=request_id,
            request_time_epoch_ms=epoch_ms,
            binary_media_types=("*/*",) if request.body and not _is_text(_content_type(request.headers)) else (),
        ),
    )
    event = {"version": "1.0", **event}
    context = event["requestContext"]
    context["resourcePath"] = resource
    context["routeKey"] = match.route.key
    return event


def _content_type(headers: Sequence[tuple[str, str]]) -> str:
    return next((v for k, v in headers if k.lower() == "content-type"), "")


# --- the response -------------------------------------------------------------------------------------------------


@dataclass
class HttpApiResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    error: str = ""
    integration_status: int | None = None


def failure(kind: tuple[int, str], error: str, integration_status: int | None = None) -> HttpApiResponse:
    body = json.dumps({"message": kind[1]}).encode()
    return HttpApiResponse(kind[0], [("Content-Type", "application/json")], body, error or kind[1], integration_status)


def _header_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ValueError(f"header value {value!r} is not a string")


def map_response_v2(payload: bytes, function_error: str | None) -> HttpApiResponse:
    if function_error:
        return failure(INTERNAL_ERROR, "Lambda function error", 200)
    try:
        answer = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return failure(INTERNAL_ERROR, "the function's response is not JSON", 200)
    if not isinstance(answer, dict) or "statusCode" not in answer:
        body = answer if isinstance(answer, str) else json.dumps(answer)
        return HttpApiResponse(200, [("Content-Type", "application/json")], body.encode(), integration_status=200)
    try:
        status = answer.get("statusCode")
        if isinstance(status, str) and status.isdigit():
            status = int(status)
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise ValueError(f"statusCode {status!r}")
        headers = [(str(k), _header_text(v)) for k, v in (answer.get("headers") or {}).items()]
        for cookie in answer.get("cookies") or []:
            headers.append(("Set-Cookie", _header_text(cookie)))
        given = answer.get("body")
        raw = b""
        if given is not None:
            if not isinstance(given, str):
                raise ValueError(f"body must be a string, got {type(given).__name__}")
            text = given
            raw = base64.b64decode(text, validate=True) if answer.get("isBase64Encoded") is True else text.encode()
    except (ValueError, TypeError, AttributeError, binascii.Error) as exc:
        return failure(INTERNAL_ERROR, f"Malformed Lambda proxy response: {exc}", 200)
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return HttpApiResponse(status, headers, raw, integration_status=200)


def map_response_v1(payload: bytes, function_error: str | None) -> HttpApiResponse:
    from lambdalab.apigateway.proxy import map_response

    mapped = map_response(payload, function_error)
    if mapped.failure is not None:  # HTTP APIs answer 500 where REST APIs answer 502
        return failure(INTERNAL_ERROR, mapped.error, 200)
    return HttpApiResponse(mapped.status, mapped.headers, mapped.body, integration_status=200)


# --- metrics ------------------------------------------------------------------------------------------------------


class HttpApiMetrics:
    """AWS/ApiGateway metrics of HTTP APIs per period (`60 x time_scale` s); MetricsPublisher drives `flush`."""

    def __init__(self, epoch: Clock, *, time_scale: float = 1.0) -> None:
        self._epoch = epoch  # the period a flush without `now` closes
        self._stats = PeriodStats(
            BASE_PERIOD_S * time_scale,
            {"Latency": "Milliseconds", "IntegrationLatency": "Milliseconds", "DataProcessed": "Bytes"},
        )
        self.period_s = self._stats.period_s

    def record(self, *, api_id: str, stage: str, route: str | None, method: str, status: int, latency_ms: float,
               integration_latency_ms: float | None, bytes_processed: int, at: float) -> None:  # fmt: skip
        levels: list[Dims] = [(("ApiId", api_id),), (("ApiId", api_id), ("Stage", stage))]
        if route is not None:
            resource = route.split(" ", 1)[1] if " " in route else route
            levels.append((("ApiId", api_id), ("Method", method), ("Resource", resource), ("Stage", stage)))
        samples = [
            ("Count", 1.0),
            ("4xx", 1.0 if 400 <= status < 500 else 0.0),
            ("5xx", 1.0 if status >= 500 else 0.0),
            ("Latency", latency_ms),
            ("DataProcessed", float(bytes_processed)),
        ]
        if integration_latency_ms is not None:
            samples.append(("IntegrationLatency", integration_latency_ms))
        self._stats.add_all(at, levels, samples)

    def flush(self, now: float | None = None, *, final: bool = False) -> list[dict[str, Any]]:
        return self._stats.flush(self._epoch.now() if now is None else now, final=final)


# --- the handler --------------------------------------------------------------------------------------------------

# (function arn, payload, trace header, the request's local waits kept current by Lambda) → InvokeOutcome
Invoker = Callable[[str, bytes, str | None, LocalWait], Awaitable[Any]]


class HttpApis:
    """Serves the deployed HTTP APIs under `/restapis/{api}/{stage}/_user_request_/...` (the REST APIs' local form)."""

    def __init__(self, load_table: Callable[[], HttpRouteTable], invoker: Invoker, *, account_id: str,
                 clocks: Clocks, access_log: Any = None, metrics: HttpApiMetrics | None = None,
                 reload_after_miss_s: float = 1.0) -> None:  # fmt: skip
        self._load_table = load_table
        self.monotonic = clocks.monotonic  # latencies, when the routes were loaded
        self.epoch = clocks.epoch  # requestTimeEpoch, metric periods
        self._invoker = invoker
        self.account_id = account_id
        self.access_log = access_log  # lambdalab.apigateway.local.AccessLog: the REST APIs' log, for now
        self.metrics = metrics
        self.table: HttpRouteTable | None = None
        self._loaded_at = 0.0
        self._reload_after_miss_s = reload_after_miss_s
        self._lock = asyncio.Lock()
        self._abandoned: set[asyncio.Task[Any]] = set()

    async def reload(self) -> HttpRouteTable:
        async with self._lock:
            self.table = await asyncio.to_thread(self._load_table)
            self._loaded_at = self.monotonic.now()
            return self.table

    async def knows(self, api_id: str) -> bool:
        table = self.table if self.table is not None else await self.reload()
        if api_id in table.apis:
            return True
        if self.monotonic.now() - self._loaded_at >= self._reload_after_miss_s:
            return api_id in (await self.reload()).apis
        return False

    async def handle(self, request: web.Request, api_id: str, stage_name: str, path: str) -> web.StreamResponse:
        started = self.monotonic.now()
        epoch_ms = int(self.epoch.now() * 1000)
        request_id = str(uuid.uuid4())
        body = await request.read()
        table = self.table or await self.reload()
        found = table.match(api_id, stage_name, request.method, path)
        raw_path = path if stage_name == DEFAULT_STAGE else f"/{stage_name}{path}"
        integration_latency: int | None = None
        if found is None:
            response = failure(NOT_FOUND, "no route matches")
        elif found.route.integration is None:
            response = failure(NOT_FOUND, f"route {found.route.key} has no integration")
        else:
            integration = found.route.integration
            function_arn = integration.function_arn(found.stage.variables)
            if integration.type != "AWS_PROXY" or function_arn is None:
                response = failure(INTERNAL_ERROR, f"integration type {integration.type} is not served locally")
            else:
                api_request = HttpApiRequest(
                    method=request.method,
                    raw_path=raw_path,
                    headers=self._headers(request),
                    raw_query=request.rel_url.raw_query_string,
                    query=list(request.rel_url.query.items()),
                    body=body,
                    source_ip=request.remote or "127.0.0.1",
                    host=request.host,
                )
                builder = build_event_v1 if integration.payload_format_version == "1.0" else build_event_v2
                event = builder(api_request, found, account_id=self.account_id, request_id=request_id,
                                epoch_ms=epoch_ms)  # fmt: skip
                integration_started = self.monotonic.now()
                response = await self._integrate(function_arn, event, integration, request.headers.get(
                    "X-Amzn-Trace-Id"))  # fmt: skip
                integration_latency = round((self.monotonic.now() - integration_started) * 1000)
        response.headers.append(("apigw-requestid", request_id))
        latency = round((self.monotonic.now() - started) * 1000)
        route_key = found.route.key if found is not None else None
        if self.metrics is not None and found is not None:
            self.metrics.record(
                api_id=api_id, stage=stage_name, route=route_key, method=request.method, status=response.status,
                latency_ms=latency, integration_latency_ms=integration_latency,
                bytes_processed=len(body) + len(response.body), at=epoch_ms / 1000,
            )  # fmt: skip
        if self.access_log is not None:
            self.access_log.write(
                {
                    "requestId": request_id,
                    "ip": request.remote,
                    "requestTime": request_time(epoch_ms),
                    "httpMethod": request.method,
                    "routeKey": route_key,
                    "path": raw_path,
                    "apiId": api_id,
                    "stage": stage_name,
                    "status": response.status,
                    "protocol": f"HTTP/{request.version.major}.{request.version.minor}",
                    "responseLength": len(response.body),
                    "responseLatency": latency,
                    "integrationLatency": integration_latency,
                    "integrationStatus": response.integration_status,
                    "error": response.error or None,
                }
            )
        out = web.Response(status=response.status, body=response.body)
        for name, value in response.headers:
            out.headers.add(name, value)
        return out

    @staticmethod
    def _headers(request: web.Request) -> list[tuple[str, str]]:
        skip = ("connection", "content-length", "x-forwarded-for", "x-forwarded-port", "x-forwarded-proto")
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in skip]
        ip = request.remote or "127.0.0.1"
        forwarded = request.headers.get("X-Forwarded-For")
        headers.append(("X-Forwarded-For", f"{forwarded}, {ip}" if forwarded else ip))
        host = request.host.rsplit(":", 1)
        headers.append(("X-Forwarded-Port", host[1] if len(host) == 2 and host[1].isdigit() else "80"))
        headers.append(("X-Forwarded-Proto", request.scheme))
        return headers

    async def _integrate(self, function_arn: str, event: dict[str, Any], integration: HttpIntegration,
                         trace_header: str | None) -> HttpApiResponse:  # fmt: skip
        from lambdalab.awslambda.core.exceptions import LambdaApiError

        local = LocalWait()
        task = asyncio.ensure_future(self._invoker(function_arn, json.dumps(event).encode(), trace_header, local))
        timeout_s = min(integration.timeout_ms, MAX_TIMEOUT_MS) / 1000
        done = await wait_counting_aws_time(task, timeout_s, local, self.monotonic)
        if not done:  # the function runs on to its own timeout, as on AWS
            self._abandoned.add(task)
            task.add_done_callback(self._abandoned.discard)
            return failure(UNAVAILABLE, "Endpoint request timed out", 504)
        try:
            outcome = task.result()
        except LambdaApiError as exc:
            return failure(INTERNAL_ERROR, f"Lambda {exc.code}: {exc.message}", exc.status)
        mapper = map_response_v1 if integration.payload_format_version == "1.0" else map_response_v2
        return mapper(outcome.body, outcome.function_error)

    async def close(self) -> None:
        for task in list(self._abandoned):
            task.cancel()
        if self._abandoned:
            await asyncio.wait(self._abandoned, timeout=5)


def moto_http_table_loader(moto_url: str, region: str) -> Callable[[], HttpRouteTable]:
    """Read every HTTP API with its routes, integrations and stages from moto's API Gateway v2."""
    from lambdalab.awsclients import local_client

    def load() -> HttpRouteTable:
        client = local_client("apigatewayv2", moto_url, region)
        apis = client.get_apis().get("Items", [])

        def fetch(api_id: str) -> tuple[list[Any], list[Any], list[Any]]:
            return (
                client.get_routes(ApiId=api_id).get("Items", []),
                client.get_integrations(ApiId=api_id).get("Items", []),
                client.get_stages(ApiId=api_id).get("Items", []),
            )

        return table_from_api(apis, fetch)

    return load
