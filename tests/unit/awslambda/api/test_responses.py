"""The Lambda REST API (responses.py) over a service that never starts a process: what a client sees on the wire."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from lambdalab.awslambda.api.responses import LambdaApi
from lambdalab.awslambda.core.control import FunctionSpec
from lambdalab.awslambda.core.models import LATEST
from lambdalab.awslambda.core.policy import Limits, StartKind
from lambdalab.awslambda.runtime.builds import CodeArtifact
from lambdalab.awslambda.runtime.cpu import CpuGate
from lambdalab.awslambda.service.service import LambdaService, ServiceConfig
from lambdalab.clock import Clocks


class _NoHost:
    """No process may start in these tests."""

    gate = CpuGate(1)  # no INIT queues for a CPU
    environments: dict[str, Any] = {}

    async def spawn(self, spec: Any) -> Any:
        raise AssertionError("no environment may start here")


def _service(tmp_path: Path, limits: Limits) -> LambdaService:
    _, clocks = Clocks.virtual()
    service = LambdaService(_NoHost(), ServiceConfig(limits=limits), clocks=clocks)  # type: ignore[arg-type]
    spec = FunctionSpec(name="fn", handler="app.handler", runtime="python3.13", code_dir=tmp_path)
    service.create_function(spec, CodeArtifact(tmp_path))
    return service


async def _post(api: LambdaApi, path: str, body: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", api.handle)
    async with TestClient(TestServer(app)) as client:
        response = await client.post(path, data=body)
        return response.status, dict(response.headers), json.loads(await response.read())


async def test_a_rate_limit_throttle_keeps_its_reason_and_retry_after(tmp_path: Path) -> None:
    # One new environment per 30 s: the first cold start takes the only token, the next must wait 30 s for one.
    service = _service(tmp_path, Limits(scale_burst=1, scale_period_s=30.0))
    first = service.policy.admit("fn", LATEST, LATEST)
    assert getattr(first, "kind", None) is StartKind.COLD
    api = LambdaApi(service, tmp_path / "code")
    status, headers, body = await _post(api, "/2015-03-31/functions/fn/invocations", b"{}")
    assert status == 429
    assert headers["x-amzn-ErrorType"] == "TooManyRequestsException"
    assert body["Reason"] == "FunctionInvocationRateLimitExceeded"
    assert headers["Retry-After"] == "30"  # the policy's wait for the next token, not a made-up 1 s


async def test_a_reserved_concurrency_throttle_names_the_reserved_pool(tmp_path: Path) -> None:
    service = _service(tmp_path, Limits())
    service.put_function_concurrency("fn", 0)
    api = LambdaApi(service, tmp_path / "code")
    status, headers, body = await _post(api, "/2015-03-31/functions/fn/invocations", b"{}")
    assert status == 429
    assert body == {
        "Type": "User",
        "message": "Rate Exceeded.",
        "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
    }
    assert headers["Retry-After"] == "1"
    assert headers["x-amzn-RequestId"]


async def _call(api: LambdaApi, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", api.handle)
    async with TestClient(TestServer(app)) as client:
        data = None if body is None else json.dumps(body).encode()
        response = await client.request(method, path, data=data)
        raw = await response.read()
        return response.status, dict(response.headers), json.loads(raw) if raw else None


async def test_event_invoke_config_api_round_trip_and_aws_errors(tmp_path: Path) -> None:
    # The one EventInvokeConfig: put, merged by update, listed, read by the async queue, deleted.
    service = _service(tmp_path, Limits())
    api = LambdaApi(service, tmp_path / "code")
    path = "/2019-09-25/functions/fn/event-invoke-config"
    failure = "arn:aws:sqs:us-east-1:123456789012:failures"
    status, _, body = await _call(
        api, "PUT", path, {"MaximumRetryAttempts": 1, "DestinationConfig": {"OnFailure": {"Destination": failure}}}
    )
    assert status == 200
    assert (body["MaximumRetryAttempts"], body["MaximumEventAgeInSeconds"]) == (1, 21600)
    assert body["DestinationConfig"] == {"OnFailure": {"Destination": failure}}
    assert body["FunctionArn"].endswith(":function:fn:$LATEST")
    # POST merges: the retries and the destination stay, the age changes
    status, _, body = await _call(api, "POST", path, {"MaximumEventAgeInSeconds": 120})
    assert (body["MaximumRetryAttempts"], body["MaximumEventAgeInSeconds"]) == (1, 120)
    assert body["DestinationConfig"] == {"OnFailure": {"Destination": failure}}
    # the queue reads the very config the API returned (no mirror)
    config = service.queue.config_for("fn", None)
    assert (config.maximum_retry_attempts, config.maximum_event_age_s, config.on_failure_destination) == (
        1,
        120,
        failure,
    )
    status, _, listed = await _call(api, "GET", path + "/list")
    assert [c["MaximumEventAgeInSeconds"] for c in listed["FunctionEventInvokeConfigs"]] == [120]
    # AWS's validation messages, once
    status, headers, body = await _call(api, "PUT", path, {"MaximumRetryAttempts": 3})
    assert status == 400 and headers["x-amzn-ErrorType"] == "InvalidParameterValueException"
    assert body["Message"] == (
        "1 validation error detected: Value '3' at 'maximumRetryAttempts' failed to satisfy constraint: "
        "Member must have value less than or equal to 2"
    )
    status, _, body = await _call(api, "PUT", path, {"MaximumEventAgeInSeconds": 59})
    assert status == 400 and body["Message"] == (
        "1 validation error detected: Value '59' at 'maximumEventAgeInSeconds' failed to satisfy constraint: "
        "Member must have value between 60 and 21600"
    )
    assert service.queue.config_for("fn", None).maximum_event_age_s == 120  # a refused put changes nothing
    status, _, _ = await _call(api, "DELETE", path)
    assert status == 204
    assert service.queue.configured("fn", None) is None
    status, headers, body = await _call(api, "GET", path)
    assert status == 404 and body["Message"].endswith(":function:fn:$LATEST doesn't have an EventInvokeConfig")
