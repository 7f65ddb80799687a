"""The local REST API endpoint over HTTP: routing, the integration call, API Gateway's errors and the access log."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from lambdalab.apigateway.local import AccessLog, RestApis, is_user_request, local_api_url, user_url
from lambdalab.apigateway.routes import Integration, Method, Resource, RestApi, RouteTable, Stage
from lambdalab.awslambda.core.exceptions import ResourceNotFoundException, TooManyRequestsException
from lambdalab.awslambda.core.localwait import LocalWait
from lambdalab.clock import Clocks, WallClock

FN = "arn:aws:lambda:us-east-1:123456789012:function:products:live"
URI = f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{FN}/invocations"
SIGV4 = "AWS4-HMAC-SHA256 Credential=AKIA/20261122/us-east-1/apigateway/aws4_request, SignedHeaders=host, Signature=ab"


class FakeOutcome:
    def __init__(self, body: bytes, function_error: str | None = None) -> None:
        self.body = body
        self.function_error = function_error
        self.request_id = "lambda-request-1"


class Function:
    """A stand-in Lambda behind the integration: answers by the event's `mode` query parameter."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.finished = asyncio.Event()

    async def __call__(self, arn: str, payload: bytes, trace_header: str | None, local: LocalWait) -> FakeOutcome:
        event = json.loads(payload)
        self.calls.append((arn, event))
        mode = (event["queryStringParameters"] or {}).get("mode")
        if mode == "throttle":
            raise TooManyRequestsException("ReservedFunctionConcurrentInvocationLimitExceeded", 1.0)
        if mode == "missing":
            raise ResourceNotFoundException("Function not found: " + arn)
        if mode == "slow":
            await asyncio.sleep(0.6)
            self.finished.set()
        if mode == "held":  # the same 0.6 s, but 0.5 s of it waiting for this machine (an INIT queued for a CPU)
            clock = WallClock()
            local.begin(clock.now())
            await asyncio.sleep(0.5)
            local.end(clock.now())
            await asyncio.sleep(0.1)
        return FakeOutcome(json.dumps({"statusCode": 200, "body": event["path"]}).encode())


def _table(*api_ids: str) -> RouteTable:
    method = Method("GET", Integration("AWS_PROXY", URI, "POST"))
    mock = Method("GET", Integration("MOCK"))
    resources = (Resource("r1", "/products", {"GET": method}), Resource("r2", "/mock", {"GET": mock}))
    return RouteTable({i: RestApi(i, "lab", resources, {"lab": Stage("lab")}) for i in api_ids})


async def _serve(aiohttp_server_factory: Any, apis: RestApis) -> str:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", apis.handle)
    server = await aiohttp_server_factory(app)
    return str(server.make_url("")).rstrip("/")


async def _fallback(request: web.Request) -> web.StreamResponse:
    return web.Response(status=299, text="management API")


def _apis(tmp_path: Path, function: Function, loader: Any = None, **kwargs: Any) -> RestApis:
    return RestApis(
        loader or (lambda: _table("api1")),
        function,
        _fallback,
        account_id="123456789012",
        access_log=AccessLog(tmp_path / "api-access.jsonl", flush_interval_s=0.0),
        **({"clocks": Clocks.wall()} | kwargs),  # real time: these tests measure a function's latency
    )


def _log(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "api-access.jsonl").read_text().splitlines()]


async def test_a_route_invokes_the_qualified_function_and_logs_latency(aiohttp_server_factory, tmp_path) -> None:
    function = Function()
    base = await _serve(aiohttp_server_factory, _apis(tmp_path, function))
    url = user_url(base, "api1", "lab", "/products") + "?limit=3"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert await response.text() == "/products"
        assert response.headers["x-amzn-RequestId"]
    arn, event = function.calls[0]
    assert arn == FN
    assert event["queryStringParameters"] == {"limit": "3"}
    assert event["requestContext"]["path"] == "/lab/products"
    (entry,) = _log(tmp_path)
    assert entry["requestId"] == event["requestContext"]["requestId"] == response.headers["x-amzn-RequestId"]
    assert entry["status"] == 200
    assert entry["resourcePath"] == "/products"
    assert entry["httpMethod"] == "GET"
    assert entry["ip"] == "127.0.0.1"
    assert 0 <= entry["integrationLatency"] <= entry["responseLatency"]


async def test_unknown_route_method_stage_or_api_is_missing_authentication_token(
    aiohttp_server_factory, tmp_path
) -> None:
    function = Function()
    base = await _serve(aiohttp_server_factory, _apis(tmp_path, function))
    async with aiohttp.ClientSession() as session:
        for method, url in [
            ("GET", user_url(base, "api1", "lab", "/nope")),
            ("POST", user_url(base, "api1", "lab", "/products")),
            ("GET", user_url(base, "api1", "prod", "/products")),
            ("GET", user_url(base, "other", "lab", "/products")),
        ]:
            async with session.request(method, url) as response:
                assert response.status == 403, url
                assert await response.json() == {"message": "Missing Authentication Token"}
                assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert function.calls == []
    assert [e["status"] for e in _log(tmp_path)] == [403] * 4
    assert all(e["integrationLatency"] is None for e in _log(tmp_path))


async def test_lambda_throttle_is_a_500_internal_server_error(aiohttp_server_factory, tmp_path) -> None:
    base = await _serve(aiohttp_server_factory, _apis(tmp_path, Function()))
    async with aiohttp.ClientSession() as session:
        for mode in ("throttle", "missing"):
            async with session.get(user_url(base, "api1", "lab", "/products") + f"?mode={mode}") as response:
                assert response.status == 500
                assert await response.json() == {"message": "Internal server error"}
    throttled, missing = _log(tmp_path)
    assert throttled["integrationStatus"] == 429
    assert "TooManyRequestsException" in throttled["error"]
    assert missing["integrationStatus"] == 500


async def test_integration_timeout_is_a_504_and_the_function_keeps_running(aiohttp_server_factory, tmp_path) -> None:
    function = Function()
    apis = _apis(tmp_path, function, integration_timeout_s=0.2)
    base = await _serve(aiohttp_server_factory, apis)
    started = time.monotonic()
    url = user_url(base, "api1", "lab", "/products") + "?mode=slow"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 504
        assert await response.json() == {"message": "Endpoint request timed out"}
    assert time.monotonic() - started < 0.55
    assert not function.finished.is_set()
    await asyncio.wait_for(function.finished.wait(), 2)  # not cancelled: Lambda runs on to its own end
    assert _log(tmp_path)[0]["status"] == 504
    await apis.close()


async def test_the_integration_timeout_does_not_count_waiting_for_this_machine(
    aiohttp_server_factory, tmp_path
) -> None:
    apis = _apis(tmp_path, Function(), integration_timeout_s=0.2)
    base = await _serve(aiohttp_server_factory, apis)
    url = user_url(base, "api1", "lab", "/products") + "?mode=held"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200  # 0.1 s of the function's own time: within the 0.2 s AWS would count
    await apis.close()


async def test_unsupported_integration_type_is_a_500(aiohttp_server_factory, tmp_path) -> None:
    base = await _serve(aiohttp_server_factory, _apis(tmp_path, Function()))
    async with aiohttp.ClientSession() as session, session.get(user_url(base, "api1", "lab", "/mock")) as response:
        assert response.status == 500
    assert "MOCK" in _log(tmp_path)[0]["error"]


async def test_management_calls_go_to_the_fallback(aiohttp_server_factory, tmp_path) -> None:
    base = await _serve(aiohttp_server_factory, _apis(tmp_path, Function()))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/restapis/api1/resources") as response:
            assert response.status == 299
        signed = {"Authorization": SIGV4}
        async with session.get(user_url(base, "api1", "lab", "/products"), headers=signed) as response:
            assert response.status == 299
    assert not (tmp_path / "api-access.jsonl").exists()


async def test_a_miss_reloads_the_apis_at_most_once_per_interval(aiohttp_server_factory, tmp_path) -> None:
    # GIVEN a loader that sees a second API only after the first load
    loads: list[int] = []

    def loader() -> RouteTable:
        loads.append(1)
        return _table("api1") if len(loads) == 1 else _table("api1", "api2")

    base = await _serve(aiohttp_server_factory, _apis(tmp_path, Function(), loader, reload_after_miss_s=0.0))
    async with aiohttp.ClientSession() as session:
        async with session.get(user_url(base, "api1", "lab", "/products")) as response:
            assert response.status == 200
        # WHEN a request names the new API
        async with session.get(user_url(base, "api2", "lab", "/products")) as response:
            # THEN the miss re-read the APIs and found it
            assert response.status == 200
    assert len(loads) == 2


def test_execute_api_urls_of_deployed_apis_become_local() -> None:
    local = "http://127.0.0.1:4566"
    assert (
        local_api_url("https://abc123.execute-api.us-east-1.amazonaws.com/lab", local, {"abc123"})
        == "http://127.0.0.1:4566/restapis/abc123/lab/_user_request_"
    )
    assert (
        local_api_url("https://abc123.execute-api.eu-west-1.amazonaws.com.cn/lab/products?x=1", local, {"abc123"})
        == "http://127.0.0.1:4566/restapis/abc123/lab/_user_request_/products?x=1"
    )
    other = "https://zzz.execute-api.us-east-1.amazonaws.com/lab"
    assert local_api_url(other, local, {"abc123"}) == other  # not one of ours
    assert local_api_url("arn:aws:sqs:us-east-1:1:q", local, {"abc123"}) == "arn:aws:sqs:us-east-1:1:q"


def test_user_requests_are_unsigned_and_under_user_request() -> None:
    from aiohttp.test_utils import make_mocked_request

    assert is_user_request(make_mocked_request("GET", "/restapis/a/lab/_user_request_/x"))
    assert is_user_request(make_mocked_request("GET", "/restapis/a/lab/_user_request_"))
    assert not is_user_request(make_mocked_request("GET", "/restapis/a/stages/lab"))
    assert not is_user_request(
        make_mocked_request("GET", "/restapis/a/lab/_user_request_/x", headers={"Authorization": SIGV4})
    )
