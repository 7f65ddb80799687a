"""The Runtime API listener (runtime/runtime_api.py) on a real loopback port, with a scripted environment behind it:
what a runtime client (awslambdaric) sees on the wire. No process, no fork server."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from lambdalab.awslambda.runtime.runtime_api import (
    ERROR_TYPE_HEADER,
    INIT_ERROR_PATH,
    NEXT_PATH,
    NextEvent,
    RuntimeApiServer,
    Verdict,
)

ARN = "arn:aws:lambda:us-east-1:123456789012:function:fn"
LIMIT = 1024  # a small response limit, so the tests send kilobytes, not 6 MB


@dataclass
class ScriptedEnvironment:
    """RuntimeApiDelegate: events a test queues, Lambda's rules for the posts (one current request; /init/error only
    while initialising), and every call recorded."""

    events: asyncio.Queue[NextEvent] = field(default_factory=asyncio.Queue)
    current: str | None = None
    initialising: bool = True
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    async def next_event(self) -> NextEvent:
        self.initialising = False  # the first /next ends INIT
        event = await self.events.get()
        self.current = event.request_id
        return event

    def _for_current(self, request_id: str) -> Verdict | None:
        if request_id != self.current:
            return Verdict(403, "InvalidRequestID", f"{request_id} is not the current request")
        self.current = None
        return None

    def post_response(self, request_id: str, body: bytes, content_type: str | None) -> Verdict:
        self.calls.append(("response", request_id, body, content_type))
        return self._for_current(request_id) or Verdict.accepted()

    def post_error(self, request_id: str, body: bytes, error_type: str | None) -> Verdict:
        self.calls.append(("error", request_id, body, error_type))
        return self._for_current(request_id) or Verdict.accepted()

    def post_init_error(self, body: bytes, error_type: str | None) -> Verdict:
        self.calls.append(("init_error", body, error_type))
        if not self.initialising:
            return Verdict(403, "InvalidStateTransition", "init/error is only accepted during INIT")
        return Verdict.accepted()

    def post_too_large(self, request_id: str, limit: int) -> Verdict:
        self.calls.append(("too_large", request_id, limit))
        self._for_current(request_id)
        return Verdict(413, "RequestEntityTooLarge", f"Exceeded maximum allowed payload size ({limit} bytes).")


@dataclass
class Runtime:
    env: ScriptedEnvironment
    server: RuntimeApiServer
    http: aiohttp.ClientSession

    def url(self, path: str) -> str:
        return f"http://{self.server.address}{path}"

    async def post(self, path: str, data: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        async with self.http.post(self.url(path), data=data, headers=headers) as response:
            return response.status, json.loads(await response.read())


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    env = ScriptedEnvironment()
    server = RuntimeApiServer(env, response_limit=LIMIT)
    address = await server.start()
    assert address.startswith("127.0.0.1:") and server.port > 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        yield Runtime(env, server, http)
    await server.close()


def event(request_id: str = "req-1", **extra: Any) -> NextEvent:
    return NextEvent(request_id, b'{"order": 7}', 1_800_000_003_000, ARN, **extra)


async def test_next_long_polls_until_an_event_then_hands_it_with_lambdas_headers(runtime: Runtime) -> None:
    pending = asyncio.ensure_future(runtime.http.get(runtime.url(NEXT_PATH)))
    await asyncio.sleep(0.1)
    assert not pending.done()  # a long poll: no event, no answer
    runtime.env.events.put_nowait(
        event(trace_id="Root=1-5f0b3c2a-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1")
    )
    async with await pending as response:
        assert response.status == 200
        assert await response.read() == b'{"order": 7}'
        # awslambdaric takes the event and never answers without this content type (DESIGN.md's measured facts)
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["Lambda-Runtime-Aws-Request-Id"] == "req-1"
        assert response.headers["Lambda-Runtime-Deadline-Ms"] == "1800000003000"
        assert response.headers["Lambda-Runtime-Invoked-Function-Arn"] == ARN
        assert response.headers["Lambda-Runtime-Trace-Id"].startswith("Root=1-5f0b3c2a-")
        assert "Lambda-Runtime-Client-Context" not in response.headers
        assert "Lambda-Runtime-Cognito-Identity" not in response.headers
    assert runtime.server.nodelay_flags() and all(runtime.server.nodelay_flags())  # no Nagle stall on the way back


async def test_next_carries_client_context_and_cognito_identity_when_the_invoke_had_them(runtime: Runtime) -> None:
    runtime.env.events.put_nowait(event(client_context='{"custom": {"k": "v"}}', cognito_identity='{"id": "c"}'))
    async with runtime.http.get(runtime.url(NEXT_PATH)) as response:
        assert response.headers["Lambda-Runtime-Client-Context"] == '{"custom": {"k": "v"}}'
        assert response.headers["Lambda-Runtime-Cognito-Identity"] == '{"id": "c"}'
        assert "Lambda-Runtime-Trace-Id" not in response.headers  # no trace id, no header


async def test_a_response_reaches_the_environment_with_its_content_type_and_is_accepted(runtime: Runtime) -> None:
    runtime.env.events.put_nowait(event())
    async with runtime.http.get(runtime.url(NEXT_PATH)):
        pass
    status, body = await runtime.post(
        "/2018-06-01/runtime/invocation/req-1/response", b"plain words", {"Content-Type": "text/plain"}
    )
    assert (status, body) == (202, {"status": "OK"})
    assert runtime.env.calls == [("response", "req-1", b"plain words", "text/plain")]


async def test_a_response_for_another_request_is_403_in_the_runtime_apis_error_shape(runtime: Runtime) -> None:
    runtime.env.events.put_nowait(event())
    async with runtime.http.get(runtime.url(NEXT_PATH)):
        pass
    status, body = await runtime.post("/2018-06-01/runtime/invocation/req-0/response", b"{}")
    assert status == 403
    assert body == {"errorMessage": "req-0 is not the current request", "errorType": "InvalidRequestID"}
    status, _ = await runtime.post("/2018-06-01/runtime/invocation/req-1/response", b"{}")
    assert status == 202
    status, _ = await runtime.post("/2018-06-01/runtime/invocation/req-1/response", b"{}")  # answered already
    assert status == 403


async def test_an_error_passes_its_error_type_header(runtime: Runtime) -> None:
    runtime.env.events.put_nowait(event())
    async with runtime.http.get(runtime.url(NEXT_PATH)):
        pass
    error = json.dumps({"errorMessage": "boom", "errorType": "ValueError"}).encode()
    status, body = await runtime.post(
        "/2018-06-01/runtime/invocation/req-1/error", error, {ERROR_TYPE_HEADER: "Unhandled"}
    )
    assert (status, body) == (202, {"status": "OK"})
    assert runtime.env.calls == [("error", "req-1", error, "Unhandled")]


async def test_init_error_is_accepted_while_initialising_and_refused_after(runtime: Runtime) -> None:
    error = b'{"errorMessage": "No module named app", "errorType": "Runtime.ImportModuleError"}'
    status, body = await runtime.post(INIT_ERROR_PATH, error, {ERROR_TYPE_HEADER: "Runtime.ImportModuleError"})
    assert (status, body) == (202, {"status": "OK"})
    assert runtime.env.calls == [("init_error", error, "Runtime.ImportModuleError")]
    runtime.env.events.put_nowait(event())
    async with runtime.http.get(runtime.url(NEXT_PATH)):  # INIT is over
        pass
    status, body = await runtime.post(INIT_ERROR_PATH, error)
    assert status == 403 and body["errorType"] == "InvalidStateTransition"
    assert runtime.env.calls[-1] == ("init_error", error, None)


@pytest.mark.parametrize("kind", ["response", "error"])
async def test_a_body_over_the_limit_is_413_and_the_environment_is_told(runtime: Runtime, kind: str) -> None:
    runtime.env.events.put_nowait(event())
    async with runtime.http.get(runtime.url(NEXT_PATH)):
        pass
    status, body = await runtime.post(f"/2018-06-01/runtime/invocation/req-1/{kind}", b"x" * (LIMIT + 1))
    assert status == 413
    assert body == {
        "errorMessage": f"Exceeded maximum allowed payload size ({LIMIT} bytes).",
        "errorType": "RequestEntityTooLarge",
    }
    assert runtime.env.calls == [("too_large", "req-1", LIMIT)]  # the body itself never reached the environment


async def test_a_chunked_body_over_the_limit_is_413_too(runtime: Runtime) -> None:
    runtime.env.events.put_nowait(event())
    async with runtime.http.get(runtime.url(NEXT_PATH)):
        pass

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit is found while reading
        for _ in range(4):
            yield b"y" * (LIMIT // 2)

    status, _ = await runtime.post("/2018-06-01/runtime/invocation/req-1/response", chunks())
    assert status == 413
    assert runtime.env.calls == [("too_large", "req-1", LIMIT)]


async def test_a_body_of_exactly_the_limit_is_accepted(runtime: Runtime) -> None:
    runtime.env.events.put_nowait(event())
    async with runtime.http.get(runtime.url(NEXT_PATH)):
        pass
    status, _ = await runtime.post("/2018-06-01/runtime/invocation/req-1/response", b"z" * LIMIT)
    assert status == 202
    assert runtime.env.calls[0][:3] == ("response", "req-1", b"z" * LIMIT)


async def test_unknown_paths_are_404_and_wrong_methods_405(runtime: Runtime) -> None:
    async with runtime.http.get(runtime.url("/2018-06-01/runtime/nothing")) as response:
        assert response.status == 404 and (await response.json())["errorType"] == "NotFound"
    async with runtime.http.get(runtime.url("/2018-06-01/runtime/invocation/req-1/response")) as response:
        assert response.status == 405 and (await response.json())["errorType"] == "MethodNotAllowed"
    async with runtime.http.post(runtime.url(NEXT_PATH)) as response:
        assert response.status == 405
    assert runtime.env.calls == []


async def test_close_frees_the_port() -> None:
    server = RuntimeApiServer(ScriptedEnvironment())
    await server.start()
    port = server.port
    await server.close()
    with socket.socket() as probe:  # nothing listens there any more
        assert probe.connect_ex(("127.0.0.1", port)) != 0
