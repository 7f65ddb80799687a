"""The Lambda proxy integration of REST APIs: the version 1.0 event API Gateway sends, and how it reads the function's
answer (statusCode, headers, multiValueHeaders, body, isBase64Encoded) or turns a failure into its own response."""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

LOG = logging.getLogger(__name__)

INTEGRATION_TIMEOUT_S = 29.0  # REST API integration timeout (default maximum) [API Gateway quotas]
_RESPONSE_KEYS = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"})


class Failure(Enum):
    """API Gateway's own answers (gateway responses) for the cases the local gateway reproduces."""

    MISSING_AUTHENTICATION_TOKEN = (403, "Missing Authentication Token", "MissingAuthenticationTokenException")
    INVOKE_REJECTED = (500, "Internal server error", "InternalServerErrorException")  # Lambda API refused, throttle
    BAD_RESPONSE = (502, "Internal server error", "InternalServerErrorException")  # function error, malformed answer
    TIMEOUT = (504, "Endpoint request timed out", "InternalServerErrorException")  # integration past 29 s

    @property
    def status(self) -> int:
        return self.value[0]

    @property
    def message(self) -> str:
        return self.value[1]

    @property
    def error_type(self) -> str:
        return self.value[2]


@dataclass(frozen=True)
class HttpRequest:
    """What the client sent, transport-free."""

    method: str
    path: str  # after the stage, e.g. /products/42
    stage_path: str  # the path API Gateway reports in requestContext.path, e.g. /lab/products/42
    headers: Sequence[tuple[str, str]]
    query: Sequence[tuple[str, str]]
    body: bytes
    source_ip: str
    host: str


@dataclass(frozen=True)
class ProxyContext:
    """The API, stage and resource the request matched."""

    api_id: str
    stage: str
    resource_id: str
    resource_path: str
    path_parameters: Mapping[str, str]
    stage_variables: Mapping[str, str]
    account_id: str
    request_id: str
    request_time_epoch_ms: int
    binary_media_types: Sequence[str] = ()


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    failure: Failure | None = None
    error: str = ""  # $context.error.message, or why the response was malformed (execution-log detail)
    integration_request_id: str | None = None  # $context.integration.requestId: the Lambda request id


def _single_and_multi(pairs: Sequence[tuple[str, str]]) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    """API Gateway's two views of repeated keys: the last value, and every value in order; null when there are none."""
    if not pairs:
        return None, None
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        single[key] = value
        multi.setdefault(key, []).append(value)
    return single, multi


def _is_binary(content_type: str, binary_media_types: Sequence[str]) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return any(fnmatch.fnmatch(media, pattern.lower()) for pattern in binary_media_types) if media else False


def request_time(epoch_ms: int) -> str:
    """$context.requestTime: CLF-formatted, e.g. 22/Nov/2026:07:40:12 +0000."""
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch_ms / 1000))


def build_event(request: HttpRequest, context: ProxyContext) -> dict[str, Any]:
    """The version 1.0 Lambda proxy event of a REST API [Set up Lambda proxy integrations: input format]."""
    headers, multi_headers = _single_and_multi(request.headers)
    query, multi_query = _single_and_multi(request.query)
    content_type = next((v for k, v in request.headers if k.lower() == "content-type"), "")
    body: str | None
    if not request.body:
        body, is_base64 = None, False
    elif _is_binary(content_type, context.binary_media_types):
        body, is_base64 = base64.b64encode(request.body).decode(), True
    else:
        body, is_base64 = request.body.decode("utf-8", errors="replace"), False
    user_agent = next((v for k, v in request.headers if k.lower() == "user-agent"), None)
    return {
        "resource": context.resource_path,
        "path": request.path,
        "httpMethod": request.method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": dict(context.path_parameters) or None,
        "stageVariables": dict(context.stage_variables) or None,
        "requestContext": {
            "resourceId": context.resource_id,
            "resourcePath": context.resource_path,
            "httpMethod": request.method,
            "extendedRequestId": context.request_id,
            "requestTime": request_time(context.request_time_epoch_ms),
            "path": request.stage_path,
            "accountId": context.account_id,
            "protocol": "HTTP/1.1",
            "stage": context.stage,
            "domainPrefix": context.api_id,  # the first label of {api-id}.execute-api... on AWS
            "requestTimeEpoch": context.request_time_epoch_ms,
            "requestId": context.request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": request.source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": user_agent,
                "user": None,
            },
            "domainName": request.host,
            "apiId": context.api_id,
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }


def failure_response(failure: Failure, error: str = "") -> HttpResponse:
    body = json.dumps({"message": failure.message}).encode()
    headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", failure.error_type)]
    return HttpResponse(failure.status, headers, body, failure, error or failure.message)


class MalformedResponse(ValueError):
    """The function answered something API Gateway cannot turn into HTTP."""


def _header_value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise MalformedResponse(f"{where} must be a string, got {type(value).__name__}")


def _parse(payload: bytes) -> HttpResponse:
    try:
        answer = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MalformedResponse("the function's response is not JSON") from None
    if not isinstance(answer, dict):
        raise MalformedResponse(f"the function's response is a JSON {type(answer).__name__}, not an object")
    unknown = sorted(set(answer) - _RESPONSE_KEYS)
    if unknown:
        raise MalformedResponse(f"unexpected keys in the response: {', '.join(unknown)}")
    status = answer.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise MalformedResponse(f"statusCode must be an integer from 100 to 599, got {status!r}")
    merged: dict[str, list[str]] = {}
    headers = answer.get("headers") or {}
    multi = answer.get("multiValueHeaders") or {}
    if not isinstance(headers, dict) or not isinstance(multi, dict):
        raise MalformedResponse("headers and multiValueHeaders must be objects")
    for name, value in headers.items():
        merged[name] = [_header_value(value, f"headers.{name}")]
    for name, values in multi.items():  # multiValueHeaders win where both name the same header
        if not isinstance(values, list):
            raise MalformedResponse(f"multiValueHeaders.{name} must be a list")
        merged[name] = [_header_value(v, f"multiValueHeaders.{name}") for v in values]
    body = answer.get("body")
    if body is not None and not isinstance(body, str):
        raise MalformedResponse(f"body must be a string, got {type(body).__name__}")
    raw = (body or "").encode()
    if answer.get("isBase64Encoded") is True and body:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedResponse("isBase64Encoded is true but body is not base64") from None
    header_list = [(name, value) for name, values in merged.items() for value in values]
    if not any(name.lower() == "content-type" for name, _ in header_list):
        header_list.append(("Content-Type", "application/json"))
    return HttpResponse(status, header_list, raw)


def map_response(payload: bytes, function_error: str | None) -> HttpResponse:
    """The function's answer as API Gateway returns it: 502 for a function error or a malformed response
    [Handling Lambda errors with an API Gateway API]."""
    if function_error:
        return failure_response(Failure.BAD_RESPONSE, "Lambda function error")
    try:
        return _parse(payload)
    except MalformedResponse as exc:
        response = failure_response(Failure.BAD_RESPONSE, "Malformed Lambda proxy response")
        response.error = f"Malformed Lambda proxy response: {exc}"
        return response
