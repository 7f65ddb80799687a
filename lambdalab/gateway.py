"""The one endpoint of the local cloud: routes each request by AWS service to our Lambda API, our CloudFormation
read API, or moto."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from lambdalab import moto_errors

LOG = logging.getLogger(__name__)

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_LAMBDA_PATH = re.compile(r"^/(2015-03-31|2016-08-19|2017-10-31|2019-09-25|2019-09-30|2014-11-13)/")
# Hop-by-hop headers (RFC 9110 7.6.1) and those aiohttp recomputes: never forwarded.
_HOP_BY_HOP = {
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
MAX_BODY = 16 * 1024 * 1024  # over Lambda's 6 MB limit, so Lambda answers RequestTooLargeException itself

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
    """An aiohttp app; `routes` maps a service name to our handler, everything else is proxied to moto."""

    def __init__(self, moto_url: str, routes: dict[str, Route], extra: dict[str, Route] | None = None) -> None:
        self.moto_url = moto_url.rstrip("/")
        self.routes = routes
        self.extra = extra or {}  # path prefix → handler, for lambdalab's own endpoints
        self._session: aiohttp.ClientSession | None = None
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.router.add_route("*", "/{tail:.*}", self.dispatch)
        self.app.on_cleanup.append(self._close)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        for prefix, handler in self.extra.items():
            if request.path.startswith(prefix):
                return await handler(request)
        ours = self.routes.get(service_of(request) or "")
        if ours is not None:
            return await ours(request)
        return await self.proxy(request)

    async def proxy(self, request: web.Request, body: bytes | None = None) -> web.StreamResponse:
        """Forward to moto; ``body`` replaces the request's (a route that rewrote it)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64),
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=300),
            )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        if body is None:
            body = await request.read()
        url = self.moto_url + request.rel_url.raw_path_qs
        async with self._session.request(
            request.method, url, headers=headers, data=body, allow_redirects=False
        ) as upstream:
            payload = await upstream.read()
            out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
            missing = upstream.headers.get(moto_errors.NOT_IMPLEMENTED_HEADER)
            if missing is not None or (
                upstream.status >= 500 and upstream.headers.get("Content-Type", "").startswith("text/html")
            ):
                return await self._aws_error(request, body, missing)
            if request.method == "HEAD" and "Content-Length" in upstream.headers:
                # A HEAD answer has no body but must keep the length of the one it describes (HeadObject's
                # ContentLength: the AWS CLI's `s3 cp` and boto3's download_file read it).
                out_headers["Content-Length"] = upstream.headers["Content-Length"]
                return web.Response(status=upstream.status, headers=out_headers)
            return web.Response(status=upstream.status, body=payload, headers=out_headers)

    async def _aws_error(self, request: web.Request, body: bytes, missing: str | None) -> web.StreamResponse:
        """moto lacks the operation (or failed with an HTML page): answer in the protocol the client speaks."""
        service = service_of(request)
        form = None
        if request.content_type == "application/x-www-form-urlencoded":
            from urllib.parse import parse_qs

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

    async def _close(self, app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
