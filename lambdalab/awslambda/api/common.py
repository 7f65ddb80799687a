"""What every Lambda API handler shares: the route table and the JSON request and response shapes (AWS's).

api/responses.py (functions, invoke, concurrency, layers) and api/esm.py (event source mappings) both register their
handlers here; `LambdaApi.handle` (responses.py) dispatches over `ROUTES`. A module of its own so that neither API
module imports the other's privates.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from lambdalab.awslambda.core.exceptions import InvalidRequestContentException, LambdaApiError

# (the LambdaApi, the request, the path parameters) → the response
Handler = Callable[[Any, web.Request, dict[str, str]], Awaitable[web.StreamResponse]]
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    """Register a handler for `method` on a path pattern with `{name}` parameters."""
    compiled = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "/?$")

    def register(fn: Handler) -> Handler:
        ROUTES.append((method, compiled, fn))
        return fn

    return register


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        content_type="application/json",
        headers={"x-amzn-RequestId": str(uuid.uuid4()), **(headers or {})},
    )


def empty_response(status: int) -> web.Response:
    return web.Response(status=status, headers={"x-amzn-RequestId": str(uuid.uuid4())})


def error_response(exc: LambdaApiError) -> web.Response:
    """A Lambda API error as AWS answers it: its status, `x-amzn-ErrorType`, its body and headers (Retry-After)."""
    return web.Response(
        body=json.dumps(exc.body()).encode(),
        status=exc.status,
        content_type="application/json",
        headers={"x-amzn-RequestId": str(uuid.uuid4()), "x-amzn-ErrorType": exc.code, **exc.headers},
    )


async def body_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (empty body: {}), or InvalidRequestContentException as Lambda words it."""
    raw = await request.read()
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise InvalidRequestContentException("Could not parse request body into json") from None
    if not isinstance(parsed, dict):
        raise InvalidRequestContentException("Could not parse request body into json: expected an object")
    return parsed
