"""The Lambda Runtime API (2018-06-01) served to one execution environment on its own 127.0.0.1 port.

AWS gives each sandbox its own endpoint (`AWS_LAMBDA_RUNTIME_API`) and `/next` names no environment, so one listener
per environment is how we know who asks. Endpoints and status codes follow the Runtime API reference
(https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html and its OpenAPI spec):

  GET  /2018-06-01/runtime/invocation/next                200 event (long poll)
  POST /2018-06-01/runtime/invocation/{id}/response       202 | 400 | 403 (not the current request) | 413 (> 6 MB)
  POST /2018-06-01/runtime/invocation/{id}/error          202 | 400 | 403
  POST /2018-06-01/runtime/init/error                     202 | 403 (not initialising)

Built on aiohttp's low-level server: it sets TCP_NODELAY on every connection and writes a small response's headers
and body together, which is what avoids the Nagle / delayed-ACK stall measured with http.server (44 ms → ~1 ms).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

LOG = logging.getLogger(__name__)

PREFIX = "/2018-06-01/runtime"
NEXT_PATH = f"{PREFIX}/invocation/next"
INIT_ERROR_PATH = f"{PREFIX}/init/error"
_INVOCATION_RE = re.compile(rf"^{PREFIX}/invocation/(?P<id>[^/]+)/(?P<kind>response|error)$")
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
DEFAULT_RESPONSE_LIMIT = 6 * 1024 * 1024


@dataclass(frozen=True)
class NextEvent:
    """What `/next` hands the runtime: the event and its Lambda-Runtime-* headers."""

    request_id: str
    payload: bytes
    deadline_ms: int
    invoked_function_arn: str
    trace_id: str | None = None
    client_context: str | None = None  # JSON text (the Invoke API's base64 already decoded)
    cognito_identity: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {
            "Lambda-Runtime-Aws-Request-Id": self.request_id,
            "Lambda-Runtime-Deadline-Ms": str(self.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": self.invoked_function_arn,
        }
        if self.trace_id:
            headers["Lambda-Runtime-Trace-Id"] = self.trace_id
        if self.client_context:
            headers["Lambda-Runtime-Client-Context"] = self.client_context
        if self.cognito_identity:
            headers["Lambda-Runtime-Cognito-Identity"] = self.cognito_identity
        return headers


@dataclass(frozen=True)
class Verdict:
    """How the environment judged a runtime's post: an HTTP status and, for 4xx, an error shape."""

    status: int
    error_type: str | None = None
    error_message: str | None = None

    @classmethod
    def accepted(cls) -> Verdict:
        return cls(202)


class RuntimeApiDelegate(Protocol):
    """The environment behind one Runtime API listener."""

    async def next_event(self) -> NextEvent:
        """Wait (long poll) for the next event for this environment."""
        ...

    def post_response(self, request_id: str, body: bytes, content_type: str | None) -> Verdict: ...

    def post_error(self, request_id: str, body: bytes, error_type: str | None) -> Verdict: ...

    def post_init_error(self, body: bytes, error_type: str | None) -> Verdict: ...

    def post_too_large(self, request_id: str, limit: int) -> Verdict:
        """The runtime posted a response or error body over `limit` bytes (the answer is a 413 or a 403)."""
        ...


class RuntimeApiServer:
    """One listener on 127.0.0.1:<ephemeral port>, answering one environment's runtime."""

    def __init__(self, delegate: RuntimeApiDelegate, *, response_limit: int = DEFAULT_RESPONSE_LIMIT) -> None:
        self.delegate = delegate
        self.response_limit = response_limit
        self._server: asyncio.AbstractServer | None = None
        self._web: web.Server | None = None
        self.port = 0

    @property
    def address(self) -> str:
        """`host:port`, the value of AWS_LAMBDA_RUNTIME_API."""
        return f"127.0.0.1:{self.port}"

    async def start(self) -> str:
        loop = asyncio.get_running_loop()
        self._web = web.Server(
            self._handle, request_factory=self._make_request, handler_cancellation=True, access_log=None
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._server = await loop.create_server(self._web, sock=sock, backlog=16)
        self.port = sock.getsockname()[1]
        return self.address

    def nodelay_flags(self) -> list[bool]:
        """TCP_NODELAY of every open runtime connection (all must be on; see the module docstring)."""
        flags = []
        for handler in self._web.connections if self._web is not None else []:
            transport = handler.transport
            sock = transport.get_extra_info("socket") if transport is not None else None
            if sock is not None:
                flags.append(bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
        return flags

    def _make_request(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        # client_max_size: read bodies up to the limit plus one byte, so an oversized one reaches our 413.
        loop = asyncio.get_running_loop()
        return web.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=self.response_limit + 1)

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        if self._web is not None:
            await self._web.shutdown(timeout=0.1)
            self._web = None
        if server is not None:
            try:
                await asyncio.wait_for(server.wait_closed(), timeout=1.0)
            except TimeoutError:
                LOG.debug("runtime api :%s did not close its connections within 1 s", self.port)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if request.method == "GET" and path == NEXT_PATH:
            return await self._next()
        if request.method == "POST" and path == INIT_ERROR_PATH:
            body = await request.read()
            return _verdict_response(self.delegate.post_init_error(body, request.headers.get(ERROR_TYPE_HEADER)))
        match = _INVOCATION_RE.match(path)
        if match and request.method == "POST":
            return await self._post_invocation(request, match["id"], match["kind"])
        if match or path in (NEXT_PATH, INIT_ERROR_PATH):
            return _error(405, "MethodNotAllowed", f"{request.method} is not allowed on {path}")
        return _error(404, "NotFound", f"no such Runtime API resource: {path}")

    async def _next(self) -> web.Response:
        event = await self.delegate.next_event()
        return web.Response(body=event.payload, headers=event.headers(), content_type="application/json")

    async def _post_invocation(self, request: web.BaseRequest, request_id: str, kind: str) -> web.Response:
        too_large = request.content_length is not None and request.content_length > self.response_limit
        body = b""
        if not too_large:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                too_large = True
        if too_large:
            return _verdict_response(self.delegate.post_too_large(request_id, self.response_limit))
        if kind == "response":
            verdict = self.delegate.post_response(request_id, body, request.headers.get("Content-Type"))
        else:
            verdict = self.delegate.post_error(request_id, body, request.headers.get(ERROR_TYPE_HEADER))
        return _verdict_response(verdict)


def _verdict_response(verdict: Verdict) -> web.Response:
    if verdict.status < 300:
        return web.Response(status=verdict.status, body=b'{"status":"OK"}', content_type="application/json")
    return _error(verdict.status, verdict.error_type or "Error", verdict.error_message or "")


def _error(status: int, error_type: str, message: str) -> web.Response:
    body = json.dumps({"errorMessage": message, "errorType": error_type}).encode()
    return web.Response(status=status, body=body, content_type="application/json")
