"""The fields CloudWatch Logs Insights discovers in an event: the system fields, Lambda's REPORT/START/END fields, and
the keys of a JSON message (flattened with dots: ``record.metrics.durationMs``, arrays by index: ``items.0``).

Lambda REPORT lines give ``@type``, ``@requestId``, ``@duration``, ``@billedDuration``, ``@memorySize``,
``@maxMemoryUsed``, ``@initDuration`` (cold starts), ``@xrayTraceId`` and ``@xraySegmentId`` (traced). Memory fields
are in bytes with 1 MB = 1,000,000 bytes — AWS's own sample query divides them by ``1000 / 1000`` to get MB.
"""

from __future__ import annotations

import json
import re
from typing import Any

_REPORT = re.compile(
    r"REPORT RequestId: (?P<requestId>\S+)\s+Duration: (?P<duration>[\d.]+) ms\s+"
    r"Billed Duration: (?P<billedDuration>\d+) ms\s+Memory Size: (?P<memorySize>\d+) MB\s+"
    r"Max Memory Used: (?P<maxMemoryUsed>\d+) MB"
    r"(?:\s+Init Duration: (?P<initDuration>[\d.]+) ms)?"
    r"(?:\s+Status: (?P<status>\S+))?(?:\s+Error Type: (?P<errorType>\S+))?"
    r"(?:\s+XRAY TraceId: (?P<xrayTraceId>\S+)\s+SegmentId: (?P<xraySegmentId>\S+))?"
)
_START = re.compile(r"START RequestId: (?P<requestId>\S+)")
_END = re.compile(r"END RequestId: (?P<requestId>\S+)")
MB = 1_000_000


def report_fields(message: str) -> dict[str, Any] | None:
    """The discovered fields of a text REPORT line, or None when `message` is not one."""
    if not message.startswith("REPORT RequestId:"):
        return None
    match = _REPORT.match(message)
    if match is None:
        return None
    fields: dict[str, Any] = {
        "@type": "REPORT",
        "@requestId": match.group("requestId"),
        "@duration": float(match.group("duration")),
        "@billedDuration": int(match.group("billedDuration")),
        "@memorySize": int(match.group("memorySize")) * MB,
        "@maxMemoryUsed": int(match.group("maxMemoryUsed")) * MB,
    }
    if match.group("initDuration"):
        fields["@initDuration"] = float(match.group("initDuration"))
    if match.group("xrayTraceId"):
        fields["@xrayTraceId"] = match.group("xrayTraceId")
        fields["@xraySegmentId"] = match.group("xraySegmentId")
    return fields


def flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            flatten(item, f"{prefix}.{index}" if prefix else str(index), out)
    elif prefix:
        out[prefix] = value


def json_fields(message: str) -> dict[str, Any]:
    """The keys of the JSON object in `message`: the whole message, or the part after Lambda's tab-separated text
    prefix (``[INFO]\\t<time>\\t<request id>\\t{...}``)."""
    text = message.strip()
    candidate = text if text.startswith("{") else None
    if candidate is None and "\t{" in text:
        candidate = text[text.rindex("\t{") + 1 :]
    if candidate is None or not candidate.endswith("}"):
        return {}
    try:
        parsed = json.loads(candidate)
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    out: dict[str, Any] = {}
    flatten(parsed, "", out)
    return out


def discover(message: str) -> dict[str, Any]:
    """Every discovered non-system field of one event."""
    if message.startswith("REPORT "):
        return report_fields(message) or {}
    if message.startswith("START RequestId:"):
        match = _START.match(message)
        return {"@type": "START", "@requestId": match.group("requestId")} if match else {}
    if message.startswith("END RequestId:"):
        match = _END.match(message)
        return {"@type": "END", "@requestId": match.group("requestId")} if match else {}
    return json_fields(message)
