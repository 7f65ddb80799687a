"""The gateway's `states` route: checks AWS makes and moto does not (definition lint, execution names), then
moto's Step Functions API."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import aiohttp
from aiohttp import web

from lambdalab.stepfunctions import patches
from lambdalab.stepfunctions.executable import difference_message, local_limits, prepare_for_moto
from lambdalab.stepfunctions.validation import (
    StatesError,
    check_definition,
    check_execution_name,
    check_state_machine_name,
    diagnose,
)

LOG = logging.getLogger(__name__)

_JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
_VALIDATE = "ValidateStateMachineDefinition"
_HOP_BY_HOP = {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "content-length", "host"}


def _definition_for_moto(payload: dict[str, Any], machine_type: str) -> dict[str, Any]:
    """Check the definition as AWS does (InvalidDefinition), then that the local interpreter can run it (501
    NotImplemented naming each construct); return the request with the definition moto should get."""
    check_definition(payload.get("definition"), machine_type)
    text, limits = prepare_for_moto(str(payload["definition"]))
    differing = [limit for limit in limits if limit.runs]
    if differing:
        LOG.warning(
            "state machine %s %s", payload.get("name") or payload.get("stateMachineArn"), difference_message(differing)
        )
    return payload if text == payload["definition"] else {**payload, "definition": text}


def prepare(action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Check one Step Functions request the way AWS does before it reaches moto; return the request to forward.

    - CreateStateMachine / UpdateStateMachine: the definition is validated as AWS validates it (InvalidDefinition
      with AWS's codes and locations), then checked for what moto's interpreter cannot run (501 NotImplemented naming
      the state and construct: a local limit, never an AWS error); see validation.py and executable.py.
    - StartExecution / StartSyncExecution: the name is checked (InvalidName), and a UUID is generated when it is
      missing, as AWS does: moto would otherwise name every such execution "None".
    """
    if action == "CreateStateMachine":
        check_state_machine_name(payload.get("name"))
        payload = _definition_for_moto(payload, str(payload.get("type") or "STANDARD"))
    elif action == "UpdateStateMachine":
        if "definition" in payload:
            payload = _definition_for_moto(payload, "STANDARD")
    elif action in ("StartExecution", "StartSyncExecution"):
        if payload.get("name") is None:
            payload = {**payload, "name": str(uuid.uuid4())}
        check_execution_name(payload["name"])
    return payload


def execution_arn(state_machine_arn: str, name: str) -> str:
    """arn:aws:states:R:A:stateMachine:M + name → arn:aws:states:R:A:execution:M:name."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + name


LOCAL_LIMIT_CODE = "LOCAL_CLOUD_LIMIT"


def validate_definition(payload: dict[str, Any]) -> dict[str, Any]:
    """ValidateStateMachineDefinition (moto does not implement it): AWS's findings as ERROR diagnostics; what the local
    interpreter cannot run (or runs differently) as WARNING diagnostics with the code LOCAL_CLOUD_LIMIT, which leave
    the result OK, as AWS's would be."""
    definition = payload.get("definition")
    errors = diagnose(definition, str(payload.get("type") or "STANDARD"))
    diagnostics = [d.api() for d in errors]
    if not errors:
        parsed = json.loads(str(definition))
        for limit in local_limits(parsed):
            what = "runs locally with a difference" if limit.runs else "cannot run locally"
            diagnostics.append(
                {"severity": "WARNING", "code": LOCAL_LIMIT_CODE, "message": f"{what}: {limit.construct}",
                 "location": limit.location}
            )  # fmt: skip
    limit_count = payload.get("maxResults") or 100
    return {
        "result": "FAIL" if errors else "OK",
        "diagnostics": diagnostics[:limit_count],
        "truncated": len(diagnostics) > limit_count,
    }


class StatesApi:
    """Checks the actions `prepare` knows, forwards every request (changed or not) to moto."""

    def __init__(self, moto_url: str) -> None:
        self.moto_url = moto_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        action = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        body = await request.read()
        if action in ("CreateStateMachine", "UpdateStateMachine", "StartExecution", "StartSyncExecution", _VALIDATE):
            try:
                payload = json.loads(body or b"{}")
                if not isinstance(payload, dict):
                    raise ValueError("the request body must be a JSON object")
            except ValueError as exc:
                return _error(StatesError("SerializationException", f"could not parse the request: {exc}"))
            if action == _VALIDATE:
                return web.Response(
                    body=json.dumps(validate_definition(payload)).encode(), content_type=_JSON_CONTENT_TYPE
                )
            try:
                prepared = prepare(action, payload)
            except StatesError as exc:
                LOG.info("%s rejected: %s %s", action, exc.code, exc.message)
                return _error(exc)
            if prepared is not payload:
                body = json.dumps(prepared).encode()
            if action in ("StartExecution", "StartSyncExecution") and prepared.get("traceHeader"):
                patches.traces.remember_header(
                    execution_arn(str(prepared.get("stateMachineArn", "")), prepared["name"]), prepared["traceHeader"]
                )
        return await self._forward(request, body)

    async def _forward(self, request: web.Request, body: bytes) -> web.StreamResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=300))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        url = self.moto_url + request.rel_url.raw_path_qs
        async with self._session.request(request.method, url, headers=headers, data=body) as upstream:
            payload = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
            return web.Response(status=upstream.status, body=payload, headers=out)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _error(exc: StatesError) -> web.Response:
    return web.Response(
        status=exc.status,
        body=json.dumps(exc.body()).encode(),
        headers={"Content-Type": _JSON_CONTENT_TYPE, "x-amzn-ErrorType": exc.code},
    )
