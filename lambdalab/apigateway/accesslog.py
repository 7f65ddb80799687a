"""API Gateway access logging: a stage's `AccessLogSetting.Format` with its ``$context`` variables substituted, as API
Gateway writes each line into the `DestinationArn` log group. Reusable for REST and HTTP APIs: the caller builds the
context (:func:`rest_context` for REST APIs) and names the stream.

API Gateway writes ``-`` for a variable without a value ("$context.error.message" on a success, the integration
fields when nothing was integrated); JSON, CLF, XML and CSV formats are all just templates. Sources: the API Gateway
developer guide, "Variables for access logging" and "Set up CloudWatch logging for REST APIs".
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_VARIABLE = re.compile(r"\$context\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)")
MISSING = "-"


@dataclass(frozen=True)
class AccessLogSetting:
    destination_arn: str
    format: str

    @property
    def log_group(self) -> str:
        """The log group of ``arn:aws:logs:<region>:<account>:log-group:<name>[:*]``."""
        name = self.destination_arn.split(":log-group:", 1)[-1]
        return name[:-2] if name.endswith(":*") else name


def stream_name(api_id: str, stage: str) -> str:
    """One stream per API stage in the destination group, named by a 32-hex digest as API Gateway's streams are."""
    return hashlib.md5(f"{api_id}/{stage}".encode(), usedforsecurity=False).hexdigest()


def format_line(template: str, context: Mapping[str, Any]) -> str:
    """Substitute every ``$context.name`` of `template`; the longest known name wins (``$context.status.`` is the
    variable ``status`` followed by a dot)."""

    def substitute(match: re.Match[str]) -> str:
        parts = match.group(1).split(".")
        for end in range(len(parts), 0, -1):
            name = ".".join(parts[:end])
            if name in context:
                rest = ".".join(parts[end:])
                return _text(context[name]) + ("." + rest if rest else "")
        return MISSING + (match.group(0)[len("$context." + parts[0]) :] if len(parts) > 1 else "")

    return _VARIABLE.sub(substitute, template)


def _text(value: Any) -> str:
    if value is None or value == "":
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def rest_context(
    *,
    request_id: str,
    extended_request_id: str,
    api_id: str,
    stage: str,
    account_id: str,
    http_method: str,
    path: str,
    resource_path: str | None,
    resource_id: str | None,
    protocol: str,
    source_ip: str,
    user_agent: str | None,
    domain_name: str,
    request_time: str,
    request_time_epoch_ms: int,
    status: int,
    response_length: int,
    response_latency_ms: int,
    integration_latency_ms: int | None,
    integration_status: int | None,
    error_message: str | None,
    error_type: str | None,
    xray_trace_id: str | None,
) -> dict[str, Any]:
    """The ``$context`` variables of a REST API request, by their names in the access log format."""
    integrated = integration_latency_ms is not None
    return {
        "requestId": request_id,
        "extendedRequestId": extended_request_id,
        "apiId": api_id,
        "stage": stage,
        "accountId": account_id,
        "httpMethod": http_method,
        "path": path,
        "resourcePath": resource_path,
        "resourceId": resource_id,
        "protocol": protocol,
        "identity.sourceIp": source_ip,
        "identity.userAgent": user_agent,
        "identity.caller": None,
        "identity.user": None,
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".", maxsplit=1)[0] if domain_name else None,
        "requestTime": request_time,
        "requestTimeEpoch": request_time_epoch_ms,
        "status": status,
        "responseLength": response_length,
        "responseLatency": response_latency_ms,
        "integrationLatency": integration_latency_ms,
        "integrationStatus": integration_status,
        "integration.status": integration_status,
        "integration.integrationStatus": integration_status,
        "integration.latency": integration_latency_ms,
        "integration.requestId": request_id if integrated else None,
        "integration.error": error_message if integrated and error_type else None,
        "error.message": error_message,
        "error.messageString": json.dumps(error_message) if error_message else None,
        "error.responseType": error_type,
        "xrayTraceId": xray_trace_id,
        "wafResponseCode": None,
        "authorizer.error": None,
    }
