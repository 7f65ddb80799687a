"""The one endpoint of the local cloud: routes each request by AWS service to our Lambda API, our CloudFormation
read API, or moto."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import parse_qs

from aiohttp import web

from lambdalab import moto_errors

LOG = logging.getLogger(__name__)

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_LAMBDA_PATH = re.compile(r"^/(2015-03-31|2016-08-19|2017-10-31|2019-09-25|2019-09-30|2014-11-13)/")
MAX_BODY = 16 * 1024 * 1024  # over Lambda's 6 MB limit, so Lambda answers RequestTooLargeException itself

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Moto(Protocol):
    """Where everything that is not ours goes (lambdalab.moto_backend.MotoBackend)."""

    async def respond(self, request: web.Request, body: bytes | None, service: str | None) -> web.Response: ...


def service_of(request: web.Request) -> str | None:
    """The AWS service a request is for: the SigV4 credential scope, else a presigned query, else the path."""
    auth = request.headers.get("Authorization", "")
    match = _CREDENTIAL_SCOPE.search(auth)
    if match:
        return match.group(1)
    credential = request.query.get("X-Amz-Credential", "")
    parts = credential.split("/")
    if len(parts) >= 4:
        return parts[3]
    if _LAMBDA_PATH.match(request.rel_url.raw_path):
        return "lambda"
    return None


class Gateway:
    """An aiohttp app; `routes` maps a service name to our handler, everything else goes to moto (through `proxy`,
    one made here unless the caller passes the one its routes share)."""

    def __init__(
        self,
        moto: Moto,
        routes: dict[str, Route],
        extra: dict[str, Route] | None = None,
        proxy: MotoProxy | None = None,
    ) -> None:
        self.moto = moto
        self.routes = routes
        self.extra = extra or {}  # path prefix → handler, for lambdalab's own endpoints
        self.proxy = (proxy or MotoProxy(moto)).proxy
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.router.add_route("*", "/{tail:.*}", self.dispatch)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        for prefix, handler in self.extra.items():
            if request.path.startswith(prefix):
                return await handler(request)
        ours = self.routes.get(service_of(request) or "")
        if ours is not None:
            return await ours(request)
        return await self.proxy(request)


class MotoProxy:
    """moto's answer to a request, or an AWS-shaped error where moto lacks the operation. It needs only moto, so the
    components the gateway routes to (capacity, SQS redrive, Logs, REST APIs) take it before the gateway exists."""

    def __init__(self, moto: Moto) -> None:
        self.moto = moto

    async def proxy(self, request: web.Request, body: bytes | None = None) -> web.StreamResponse:
        """moto's answer; ``body`` replaces the request's (a route that rewrote it)."""
        if body is None:
            body = await request.read()
        answer = await self.moto.respond(request, body, service_of(request))
        missing = answer.headers.get(moto_errors.NOT_IMPLEMENTED_HEADER)
        if missing is not None or (answer.status >= 500 and answer.content_type == "text/html"):
            return await self._aws_error(request, body, missing)
        return answer

    async def _aws_error(self, request: web.Request, body: bytes, missing: str | None) -> web.StreamResponse:
        """moto lacks the operation (or failed with an HTML page): answer in the protocol the client speaks."""
        service = service_of(request)
        form = None
        if request.content_type == "application/x-www-form-urlencoded":
            form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
        protocol = moto_errors.protocol_of(service, request.headers, request.query, form)
        operation = (
            request.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
            or request.query.get("Action")
            or (form or {}).get("Action")
            or f"{request.method} {request.path}"
        )
        if missing is not None:
            message = f"{service or 'this service'} {operation} is not implemented by the local cloud ({missing})"
        else:
            message = f"the local cloud failed on {service or 'this service'} {operation} (an internal error)"
        LOG.warning("%s", message)
        status, headers, payload = moto_errors.error_response(
            protocol,
            not_implemented=missing is not None,
            message=message,
            content_type=(  # answer in the JSON version the client spoke (1.0 or 1.1)
                request.headers.get("Content-Type")
                if request.headers.get("Content-Type", "").startswith("application/x-amz-json")
                else None
            ),
        )
        return web.Response(status=status, body=payload, headers=headers)
