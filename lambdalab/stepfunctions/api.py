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
from lambdalab.stepfunctions.validation import (
    StatesError,
    check_definition,
    check_execution_name,
    check_state_machine_name,
    definition_problems,
)

LOG = logging.getLogger(__name__)

_JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
_VALIDATE = "ValidateStateMachineDefinition"
_HOP_BY_HOP = {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "content-length", "host"}


def prepare(action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Check one Step Functions request the way AWS does before it reaches moto; return the request to forward.

    - CreateStateMachine / UpdateStateMachine: the definition is linted with statelint (InvalidDefinition).
    - StartExecution / StartSyncExecution: the name is checked (InvalidName), and a UUID is generated when it is
      missing, as AWS does: moto would otherwise name every such execution "None".
    """
    if action == "CreateStateMachine":
        check_state_machine_name(payload.get("name"))
        check_definition(payload.get("definition"))
    elif action == "UpdateStateMachine":
        if "definition" in payload:
            check_definition(payload.get("definition"))
    elif action in ("StartExecution", "StartSyncExecution"):
        if payload.get("name") is None:
            payload = {**payload, "name": str(uuid.uuid4())}
        check_execution_name(payload["name"])
    return payload


def execution_arn(state_machine_arn: str, name: str) -> str:
    """arn:aws:states:R:A:stateMachine:M + name → arn:aws:states:R:A:execution:M:name."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + name


def validate_definition(payload: dict[str, Any]) -> dict[str, Any]:
    """ValidateStateMachineDefinition (moto does not implement it): statelint's findings as ERROR diagnostics."""
    problems = definition_problems(payload.get("definition"))
    limit = payload.get("maxResults") or 100
    diagnostics = [{"severity": "ERROR", "code": "SCHEMA_VALIDATION_FAILED", "message": p} for p in problems]
    return {
        "result": "FAIL" if problems else "OK",
        "diagnostics": diagnostics[:limit],
        "truncated": len(diagnostics) > limit,
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
