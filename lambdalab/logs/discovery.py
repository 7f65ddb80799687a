"""The fields CloudWatch Logs Insights discovers in an event: the system fields, Lambda's REPORT/START/END fields, and
the keys of a JSON message (flattened with dots: ``record.metrics.durationMs``, arrays by index: ``items.0``).

Lambda REPORT lines give ``@type``, ``@requestId``, ``@duration``, ``@billedDuration``, ``@memorySize``,
``@maxMemoryUsed``, ``@initDuration`` (cold starts), ``@xrayTraceId`` and ``@xraySegmentId`` (traced). Memory fields
are in bytes with 1 MB = 1,000,000 bytes — AWS's own sample query divides them by ``1000 / 1000`` to get MB.

The same parser reads REPORT for `lambdalab traces --logs`: :func:`parse_report` (text REPORT lines and JSON
``platform.report`` records alike), :func:`parse_init_start` and :func:`parse_xray`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
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


_XRAY = re.compile(r"XRAY TraceId: (?P<traceId>\S+)\s+SegmentId: (?P<segmentId>\S+)(?:\s+Sampled: (?P<sampled>\S+))?")
_TRACE_ROOT = re.compile(r"Root=([^;\s]+)")
_PARENT = re.compile(r"Parent=([^;\s]+)")
_INIT_START = re.compile(r"INIT_START Runtime Version: (?P<runtimeVersion>\S+)")


@dataclass(frozen=True, slots=True)
class ReportRecord:
    """What one REPORT says about one invocation, text (``REPORT RequestId: …``) or JSON (``platform.report``)."""

    request_id: str
    duration_ms: float
    billed_duration_ms: int
    memory_size_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None = None  # cold starts only
    status: str = "success"  # "success" | "error" | "timeout" (what the platform saw)
    error_type: str | None = None
    trace_id: str | None = None  # the XRAY line (text) or record.tracing (JSON), when traced
    segment_id: str | None = None
    log_format: str = "Text"  # "Text" | "JSON"


@dataclass(frozen=True, slots=True)
class InitStartRecord:
    """``INIT_START`` (text) or ``platform.initStart`` (JSON): an execution environment began its INIT.

    Only the JSON record says why: `init_type` is ``on-demand``, ``provisioned-concurrency`` or ``snap-start``."""

    runtime_version: str | None
    init_type: str | None = None
    log_format: str = "Text"


def parse_report(message: str) -> ReportRecord | None:
    """The REPORT of a text REPORT line or a JSON ``platform.report`` record; None when `message` is neither, or is
    one that cannot be read."""
    if message.startswith("REPORT RequestId:"):
        return _text_report(message)
    if message.startswith("{") and '"platform.report"' in message:
        return _json_report(message)
    return None


def parse_init_start(message: str) -> InitStartRecord | None:
    """An INIT_START line or a JSON ``platform.initStart`` record; None otherwise."""
    if message.startswith("INIT_START "):
        match = _INIT_START.match(message)
        return InitStartRecord(match.group("runtimeVersion") if match else None)
    if message.startswith("{") and '"platform.initStart"' in message:
        record = _platform_record(message, "platform.initStart")
        if record is None:
            return None
        version, kind = record.get("runtimeVersion"), record.get("initializationType")
        return InitStartRecord(
            version if isinstance(version, str) else None, kind if isinstance(kind, str) else None, "JSON"
        )
    return None


def parse_xray(message: str) -> tuple[str, str] | None:
    """(trace id, segment id) of an ``XRAY TraceId: … SegmentId: …`` line written as an event of its own."""
    match = _XRAY.match(message) if message.startswith("XRAY TraceId:") else None
    return (match.group("traceId"), match.group("segmentId")) if match else None


def _text_report(message: str) -> ReportRecord | None:
    match = _REPORT.match(message)
    if match is None:
        return None
    init = match.group("initDuration")
    return ReportRecord(
        request_id=match.group("requestId"),
        duration_ms=float(match.group("duration")),
        billed_duration_ms=int(match.group("billedDuration")),
        memory_size_mb=int(match.group("memorySize")),
        max_memory_used_mb=int(match.group("maxMemoryUsed")),
        init_duration_ms=float(init) if init else None,
        status=match.group("status") or "success",
        error_type=match.group("errorType"),
        trace_id=match.group("xrayTraceId"),
        segment_id=match.group("xraySegmentId"),
    )


def _platform_record(message: str, record_type: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(message)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or parsed.get("type") != record_type or not isinstance(parsed.get("record"), dict):
        return None
    record: dict[str, Any] = parsed["record"]
    return record


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _json_report(message: str) -> ReportRecord | None:
    record = _platform_record(message, "platform.report")
    if record is None:
        return None
    metrics = record.get("metrics")
    request_id = record.get("requestId")
    if not isinstance(metrics, dict) or not isinstance(request_id, str):
        return None
    duration, billed = _number(metrics.get("durationMs")), _number(metrics.get("billedDurationMs"))
    memory, used = _number(metrics.get("memorySizeMB")), _number(metrics.get("maxMemoryUsedMB"))
    if duration is None or billed is None or memory is None or used is None:
        return None
    tracing = record.get("tracing")
    header = tracing.get("value") if isinstance(tracing, dict) else None
    root = _TRACE_ROOT.search(header) if isinstance(header, str) else None
    parent = _PARENT.search(header) if isinstance(header, str) else None
    span = tracing.get("spanId") if isinstance(tracing, dict) else None
    status, error_type = record.get("status"), record.get("errorType")
    return ReportRecord(
        request_id=request_id,
        duration_ms=duration,
        billed_duration_ms=int(billed),
        memory_size_mb=int(memory),
        max_memory_used_mb=int(used),
        init_duration_ms=_number(metrics.get("initDurationMs")),
        status=status if isinstance(status, str) else "success",
        error_type=error_type if isinstance(error_type, str) else None,
        trace_id=root.group(1) if root else None,
        segment_id=span if isinstance(span, str) else (parent.group(1) if parent else None),
        log_format="JSON",
    )


def report_fields(message: str) -> dict[str, Any] | None:
    """The discovered fields of a text REPORT line, or None when `message` is not one."""
    if not message.startswith("REPORT RequestId:"):
        return None
    report = _text_report(message)
    if report is None:
        return None
    fields: dict[str, Any] = {
        "@type": "REPORT",
        "@requestId": report.request_id,
        "@duration": report.duration_ms,
        "@billedDuration": report.billed_duration_ms,
        "@memorySize": report.memory_size_mb * MB,
        "@maxMemoryUsed": report.max_memory_used_mb * MB,
    }
    if report.init_duration_ms is not None:
        fields["@initDuration"] = report.init_duration_ms
    if report.trace_id is not None:
        fields["@xrayTraceId"] = report.trace_id
        fields["@xraySegmentId"] = report.segment_id
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
