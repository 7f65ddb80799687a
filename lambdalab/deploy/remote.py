"""Deploy another template into a running local cloud: `lambdalab deploy`, over `POST /_lambdalab/stacks`.

The local cloud's own endpoint, not an AWS API (CloudFormation's CreateStack takes a template body, and a SAM
project's code folders sit next to its template file, so the local cloud is given the file's path). It binds to
127.0.0.1 like everything else, and refuses what a web page could send across origins: a request must be
`Content-Type: application/json` (which a browser never sends cross-origin without a preflight this endpoint does not
answer) and carry no `Origin` header.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from lambdalab.errors import UserError

LOG = logging.getLogger(__name__)

STACKS_PATH = "/_lambdalab/stacks"

DeployFunction = Callable[[Path, Mapping[str, str], str | None], Awaitable[Any]]


def stack_summary(stack: Any) -> dict[str, Any]:
    """What the endpoint answers for a deployed stack (a DeployedStack)."""
    return {
        "stack_name": stack.stack_name,
        "stack_id": stack.stack_id,
        "summary": stack.summary(),
        "warnings": list(stack.warnings),
        "known_differences": list(stack.known_differences),
        "resources": {
            logical_id: {
                "type": resource.resource_type,
                "status": resource.status.value,
                "physical_id": resource.physical_id,
                "attributes": _json_safe(resource.attributes),
                "reason": resource.reason,
            }
            for logical_id, resource in stack.resources.items()
        },
        "outputs": {key: output.value for key, output in stack.outputs.items()},
    }


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _error(status: int, message: str, where: str | None = None) -> web.Response:
    body = {"error": message, **({"where": where} if where else {})}
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json")


async def handle_deploy(request: web.Request, deploy: DeployFunction) -> web.StreamResponse:
    """`POST /_lambdalab/stacks` with `{"template": "/abs/path", "stack_name": "x", "parameter_overrides": {}}`."""
    if request.method != "POST":
        return _error(405, "use POST")
    if request.content_type != "application/json" or "Origin" in request.headers:
        return _error(403, "deploys are taken from local clients only (Content-Type: application/json, no Origin)")
    try:
        payload = json.loads(await request.read() or b"{}")
    except ValueError as exc:
        return _error(400, f"the request body is not JSON: {exc}")
    if not isinstance(payload, dict) or not isinstance(payload.get("template"), str):
        return _error(400, 'the request needs {"template": "<absolute path>"}')
    template = Path(payload["template"])
    overrides = payload.get("parameter_overrides") or {}
    stack_name = payload.get("stack_name")
    if not template.is_absolute():
        return _error(400, f"template {template} must be an absolute path")
    if not template.is_file():
        return _error(400, f"template {template} not found")
    if not isinstance(overrides, dict) or not all(isinstance(v, str) for v in overrides.values()):
        return _error(400, "parameter_overrides must map names to strings")
    if stack_name is not None and not isinstance(stack_name, str):
        return _error(400, "stack_name must be a string")
    try:
        stack = await deploy(template, {str(k): v for k, v in overrides.items()}, stack_name)
    except UserError as exc:
        LOG.info("deploy of %s refused: %s", template, exc)
        return _error(400, exc.message, exc.where)
    return web.Response(body=json.dumps(stack_summary(stack)).encode(), content_type="application/json")


def deploy_remote(
    endpoint: str, template: Path, *, stack_name: str | None = None, overrides: Mapping[str, str] | None = None,
    timeout: float = 300.0,
) -> dict[str, Any]:  # fmt: skip
    """Ask the local cloud at `endpoint` to deploy `template`; its answer, or a UserError with its message."""
    body = json.dumps(
        {
            "template": str(Path(template).resolve()),
            "stack_name": stack_name,
            "parameter_overrides": dict(overrides or {}),
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - the local cloud's own http://127.0.0.1 endpoint
        endpoint.rstrip("/") + STACKS_PATH, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - see above
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        try:
            answer = json.loads(exc.read())
        except ValueError:
            answer = {"error": f"HTTP {exc.code} from {endpoint}"}
        raise UserError(str(answer.get("error")), where=answer.get("where")) from None
    except urllib.error.URLError as exc:
        raise UserError(f"no local cloud answers at {endpoint} ({exc.reason}); start one with `lambdalab up`") from None
