"""moto in this process: every AWS service but Lambda (and CloudFormation's read API) is moto's.

Two doors to the same backends (moto keeps its state in module-global backends, so both see one account):

* :meth:`MotoBackend.respond` — the gateway's: calls moto's WSGI application directly with the request it received,
  inline for DynamoDB (its handlers never block and are the local cloud's hottest path: every function's table
  call) and on a thread pool for the other services (an SQS ``ReceiveMessage`` long poll blocks for seconds). Going
  through moto's own HTTP server instead cost a new TCP connection, werkzeug's request parsing and a thread
  hand-off per call: about a fifth of the gateway's CPU under the flash sale.
* :attr:`MotoBackend.url` — moto's own HTTP server (a ThreadedMotoServer on an internal 127.0.0.1 port), for the
  lab's boto3 clients that talk to moto directly (deploy, telemetry, autoscaling, SQS pollers).
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote_to_bytes

import aiohttp
from aiohttp import web
from moto.core.request import (
    PRESERVED_HEADER_NAMES_ENVIRON_KEY,
    environ_key_for_header,
    should_preserve_original_header_name,
)
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from lambdalab.constants import DEFAULT_HOST

LOG = logging.getLogger(__name__)

# Hop-by-hop headers (RFC 9110 7.6.1) and those aiohttp recomputes: never copied from moto's answer.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
_INLINE_SERVICES = frozenset({"dynamodb"})  # handlers that never block: run on the caller's thread
_WORKERS = 32
_DYNAMODB_TARGET = "DynamoDB_20120810."  # the X-Amz-Target prefix of DynamoDB's API (Streams' is DynamoDBStreams_)


class MotoBackend:
    """`start()`, then `respond()` / `url`, then `stop()`. With ``http=False`` there is no HTTP server (and no `url`):
    only `respond()`, for a process that serves moto through its own front (the DynamoDB process)."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = 0, *, http: bool = True) -> None:
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False) if http else None
        self._app = DomainDispatcherApplication(create_backend_app)
        self._executor: ThreadPoolExecutor | None = None
        self._started = False

    def start(self) -> None:
        # IAM knows AWS's managed policies (moto's bundled copy, 0.14 s to load once), so attaching
        # AWSLambdaBasicExecutionRole & co. works and `aws iam list-attached-role-policies` answers as on AWS.
        from moto.core.config import default_user_config

        default_user_config.setdefault("iam", {})["load_aws_managed_policies"] = True
        # werkzeug logs every request at INFO; the local cloud's own output stays readable without it.
        logging.getLogger("werkzeug").setLevel(max(logging.WARNING, logging.getLogger().level))
        if self._server is not None:
            self._server.start()
            LOG.debug("moto listening on %s", self.url)
        self._executor = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="moto")
        self._started = True

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("this moto has no HTTP server")
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self._started:
            if self._server is not None:
                self._server.stop()
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None
            self._started = False

    async def respond(
        self, request: web.Request, body: bytes | None = None, service: str | None = None
    ) -> web.Response:
        """moto's answer to `request` (with `body` in place of the request's, when a route rewrote it)."""
        if body is None:
            body = await request.read()
        environ = wsgi_environ(request, body)
        if service in _INLINE_SERVICES:
            status, headers, payload = self.call(environ)
        else:
            loop = asyncio.get_running_loop()
            status, headers, payload = await loop.run_in_executor(self._executor, self.call, environ)
        head = request.method == "HEAD"
        out = web.Response(status=status, body=None if head else payload)
        for name, value in headers:
            lower = name.lower()
            if lower == "content-length" and head:
                out.headers[name] = value  # HEAD: the length of what GET would return (the CLI reads it)
            elif lower not in _HOP_BY_HOP:
                out.headers.add(name, value)
        return out

    def call(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        """One request through moto's WSGI application: (status, headers, body). Blocking."""
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            answer["status"] = int(status.split(" ", 1)[0])
            answer["headers"] = headers
            return lambda _data: None

        app: Callable[..., Iterable[bytes]] = self._app
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith(_DYNAMODB_TARGET):
            # The hottest path (every function's table call): moto's dispatcher would find the same app by matching
            # the host against every service's URL patterns and listing its modules — ~15 % of the DynamoDB
            # process's CPU in the flash sale. It makes the app on the first DynamoDB call; later ones go straight.
            app = self._app.app_instances.get("dynamodb") or self._app
        chunks: Iterable[bytes] = app(environ, start_response)
        try:
            payload = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return answer["status"], answer["headers"], payload


def wsgi_environ(request: web.Request, body: bytes) -> dict[str, Any]:
    """The WSGI environ moto's server would build for `request` (PEP 3333, plus moto's preserved header names)."""
    raw_path, _, query = request.rel_url.raw_path_qs.partition("?")
    host, _, port = (request.host or "127.0.0.1").partition(":")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(raw_path).decode("latin-1"),
        "QUERY_STRING": query,
        "SERVER_NAME": host,
        "SERVER_PORT": port or "80",
        "SERVER_PROTOCOL": f"HTTP/{request.version.major}.{request.version.minor}",
        "REMOTE_ADDR": request.remote or "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": request.scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)),
    }
    dashed: set[str] = set()
    preserved_names: dict[str, str] = {}
    preserved_values: dict[str, list[str]] = {}
    for name, raw_value in request.headers.items():
        key = environ_key_for_header(name)
        value = raw_value.replace("\r\n", "")
        if "_" not in name:
            dashed.add(key)
            if key == "CONTENT_LENGTH":
                continue  # the body's own length, above
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        elif should_preserve_original_header_name(name):
            preserved_names.setdefault(key, name)
            preserved_values.setdefault(key, []).append(value)
    # As moto's request handler does: S3 metadata names keep their underscores, never standing in for a dashed one.
    for key, values in preserved_values.items():
        if key not in dashed:
            environ[key] = ",".join(values)
    environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = {k: v for k, v in preserved_names.items() if k not in dashed}
    return environ


class HttpForwarder:
    """A service served by another process of the local cloud: requests go there over HTTP (keep-alive)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def respond(
        self, request: web.Request, body: bytes | None = None, service: str | None = None
    ) -> web.Response:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, force_close=False),
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=300),
            )
        if body is None:
            body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        url = self.url + request.rel_url.raw_path_qs
        async with self._session.request(request.method, url, headers=headers, data=body) as upstream:
            payload = await upstream.read()
            out = web.Response(status=upstream.status, body=payload)
            for name, value in upstream.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    out.headers.add(name, value)
            return out

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class InProcessXRay:
    """``put_trace_segments`` straight into moto's X-Ray backend, with moto's own validation, as boto3 would reach it
    through the HTTP API (the same ``UnprocessedTraceSegments`` answer), minus the client and the HTTP round trip:
    every traced invocation sends two or three documents, so this is on the invoke path's budget."""

    def __init__(self, account_id: str, region: str) -> None:
        from moto.xray.models import xray_backends

        self._backend = xray_backends[account_id][region]

    def put_trace_segments(self, TraceSegmentDocuments: list[str]) -> dict[str, Any]:
        from moto.xray.exceptions import BadSegmentException

        unprocessed = []
        for document in TraceSegmentDocuments:
            try:
                self._backend.process_segment(document)
            except BadSegmentException as bad:
                unprocessed.append(bad.to_dict())
        return {"UnprocessedTraceSegments": unprocessed}
