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
