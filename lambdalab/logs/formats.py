"""The lines Lambda itself (the platform, not the runtime client) writes into a function's log stream, text and JSON.

Pure functions, one per record. Sources (observed output on AWS, 2024-2026, and the Lambda developer guide):

- text: ``INIT_START Runtime Version: python:3.12.v27\\tRuntime Version ARN: arn:aws:lambda:<region>::runtime:<hex>``,
  ``START RequestId: <id> Version: $LATEST``, ``END RequestId: <id>``, ``REPORT RequestId: <id>\\tDuration: 3.10 ms\\t
  Billed Duration: 546 ms\\tMemory Size: 2048 MB\\tMax Memory Used: 95 MB\\tInit Duration: 542.01 ms\\t`` followed, in
  the same event, by ``\\nXRAY TraceId: 1-…\\tSegmentId: …\\tSampled: true\\t`` when traced; a platform-detected failure
  adds ``Status: error\\tError Type: Runtime.ImportModuleError`` (or ``Status: timeout``) to REPORT, and an INIT that
  failed writes ``INIT_REPORT Init Duration: 87.28 ms\\tPhase: invoke\\tStatus: error\\tError Type: …``. Every platform
  text record ends with a newline, as CloudWatch shows them.
- JSON (``LoggingConfig.LogFormat: JSON``): ``{"time": …, "type": "platform.initStart" | "platform.start" |
  "platform.report" | …, "record": {…}}`` with the field order AWS writes (``platform.report``: requestId, metrics
  {durationMs, billedDurationMs, memorySizeMB, maxMemoryUsedMB, initDurationMs}, tracing, status); the Telemetry API
  schema reference defines the records.

What the *runtime client* writes (``[ERROR] Type: message`` records of unhandled exceptions, ``LAMBDA_WARNING:
Unhandled exception…``, the application's own JSON records) comes from awslambdaric itself, which our environments
run; it is not formatted here (see :mod:`lambdalab.logs.capture`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

TEXT = "Text"
JSON = "JSON"
LOG_FORMATS = (TEXT, JSON)

# The level of each platform record, for SystemLogLevel filtering (JSON format only). AWS's default (INFO) shows
# initStart, start and report, as observed; runtimeDone and a successful initReport only at DEBUG.
SYSTEM_LEVELS = ("DEBUG", "INFO", "WARN")
APPLICATION_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
LEVEL_RANK = {"TRACE": 0, "DEBUG": 1, "INFO": 2, "WARN": 3, "WARNING": 3, "ERROR": 4, "FATAL": 5, "CRITICAL": 5}


def level_rank(level: str | None) -> int:
    """The order of a level name (TRACE lowest); an unknown or missing level counts as INFO, as Lambda assigns."""
    return LEVEL_RANK.get((level or "").upper(), LEVEL_RANK["INFO"])


def passes(level: str | None, threshold: str | None) -> bool:
    """Whether a record of `level` reaches CloudWatch under a configured log level (None: no filtering)."""
    return threshold is None or level_rank(level) >= level_rank(threshold)


def stream_name(version: str, *, when: float, function_name: str | None = None, token: str = "") -> str:
    """The log stream of one execution environment: ``YYYY/MM/DD/[<version>]<32 hex>`` (the UTC date of
    `when`, epoch seconds).

    The same value is the environment's ``AWS_LAMBDA_LOG_STREAM_NAME``. `function_name` is given for a function that
    writes to a custom log group (``LoggingConfig.LogGroup``): Lambda then names the function before the version,
    ``YYYY/MM/DD/<function>[<version>]<32 hex>``, so that several functions can share the group (observed; the
    format log forwarders parse since 2025). `token` fixes the 32 hex digits (tests); default: random.
    """
    day = time.strftime("%Y/%m/%d", time.gmtime(when))
    return f"{day}/{function_name or ''}[{version}]{token or secrets.token_hex(16)}"


def default_log_group(function_name: str) -> str:
    return f"/aws/lambda/{function_name}"


@dataclass(frozen=True)
class Runtime:
    """What INIT_START names: the runtime version and its ARN."""

    version: str  # "python:3.13.v0"
    arn: str

    @classmethod
    def local(cls, runtime: str, region: str) -> Runtime:
        """The local cloud's runtime version for `runtime` ("python3.13"): ``python:3.13.v0``.

        AWS numbers its runtime releases v1, v2, …; ``v0`` says the host's Python ran it, not an AWS runtime build.
        The ARN keeps AWS's shape (``arn:aws:lambda:<region>::runtime:<64 hex>``), its digest derived from the name.
        """
        family, _, number = runtime.partition("python")
        name = f"python:{number}" if not family and number else runtime
        version = f"{name}.v0"
        digest = hashlib.sha256(f"lambdalab:{version}".encode()).hexdigest()
        return cls(version, f"arn:aws:lambda:{region}::runtime:{digest}")


@dataclass(frozen=True)
class Trace:
    """The X-Ray ids of a traced invocation."""

    trace_id: str  # 1-5e1b4151-5ac6c58f5f3d8e2e3b1c8a7d
    segment_id: str  # the AWS::Lambda::Function segment
    sampled: bool = True

    def header(self) -> str:
        return f"Root={self.trace_id};Parent={self.segment_id};Sampled={1 if self.sampled else 0}"


@dataclass(frozen=True)
class Report:
    """One invocation's REPORT: what the platform measured."""

    request_id: str
    duration_ms: float
    billed_duration_ms: int
    memory_size_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None = None  # cold starts only
    status: str = "success"  # "success" | "error" | "timeout" (error: the runtime failed, not the handler)
    error_type: str | None = None  # with status "error": Runtime.ExitError, Runtime.ImportModuleError, ...
    trace: Trace | None = None


def iso_time(timestamp_ms: int) -> str:
    """``2026-10-08T07:30:29.470Z``: the JSON records' `time`."""
    seconds, millis = divmod(int(timestamp_ms), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _ms(value: float) -> str:
    return f"{value:.2f}"


def _json(record_type: str, timestamp_ms: int, record: dict[str, Any]) -> str:
    return json.dumps({"time": iso_time(timestamp_ms), "type": record_type, "record": record}, separators=(",", ":"))


# --- text ---------------------------------------------------------------------------------------------------------


def init_start_text(runtime: Runtime) -> str:
    return f"INIT_START Runtime Version: {runtime.version}\tRuntime Version ARN: {runtime.arn}\n"


def start_text(request_id: str, version: str) -> str:
    return f"START RequestId: {request_id} Version: {version}\n"


def end_text(request_id: str) -> str:
    return f"END RequestId: {request_id}\n"


def report_text(report: Report) -> str:
    line = (
        f"REPORT RequestId: {report.request_id}\tDuration: {_ms(report.duration_ms)} ms\t"
        f"Billed Duration: {report.billed_duration_ms} ms\tMemory Size: {report.memory_size_mb} MB\t"
        f"Max Memory Used: {report.max_memory_used_mb} MB\t"
    )
    if report.init_duration_ms is not None:
        line += f"Init Duration: {_ms(report.init_duration_ms)} ms\t"
    if report.status != "success":
        line += f"Status: {report.status}\t"
        if report.error_type:
            line += f"Error Type: {report.error_type}\t"
    if report.trace is not None:
        line += (
            f"\nXRAY TraceId: {report.trace.trace_id}\tSegmentId: {report.trace.segment_id}\t"
            f"Sampled: {'true' if report.trace.sampled else 'false'}\t"
        )
    return line + "\n"


def init_report_text(duration_ms: float, phase: str, status: str, error_type: str | None = None) -> str:
    """INIT_REPORT: written when INIT failed or timed out (``phase`` "init", or "invoke" when retried in the call)."""
    line = f"INIT_REPORT Init Duration: {_ms(duration_ms)} ms\tPhase: {phase}\tStatus: {status}"
    if error_type:
        line += f"\tError Type: {error_type}"
    return line + "\n"


def timeout_text(timestamp_ms: int, request_id: str, timeout_s: float) -> str:
    """``2026-11-22T08:00:03.004Z <request id> Task timed out after 3.00 seconds``."""
    return f"{iso_time(timestamp_ms)} {request_id} Task timed out after {timeout_s:.2f} seconds\n"


# --- JSON ---------------------------------------------------------------------------------------------------------


def init_start_json(
    timestamp_ms: int,
    runtime: Runtime,
    *,
    init_type: str,
    function_name: str,
    version: str,
    instance_id: str,
    memory_mb: int,
    phase: str = "init",
) -> str:
    return _json(
        "platform.initStart",
        timestamp_ms,
        {
            "initializationType": init_type,
            "phase": phase,
            "runtimeVersion": runtime.version,
            "runtimeVersionArn": runtime.arn,
            "functionName": function_name,
            "functionVersion": version,
            "instanceId": instance_id,
            "instanceMaxMemory": memory_mb * 1024 * 1024,
        },
    )


def init_report_json(
    timestamp_ms: int, duration_ms: float, *, init_type: str, phase: str, status: str, error_type: str | None = None
) -> str:
    record: dict[str, Any] = {"initializationType": init_type, "phase": phase, "status": status}
    if error_type:
        record["errorType"] = error_type
    record["metrics"] = {"durationMs": round(duration_ms, 3)}
    return _json("platform.initReport", timestamp_ms, record)


def start_json(timestamp_ms: int, request_id: str, function_arn: str, version: str, trace: Trace | None = None) -> str:
    record: dict[str, Any] = {"requestId": request_id, "functionArn": function_arn, "version": version}
    if trace is not None:
        record["tracing"] = {"spanId": trace.segment_id, "type": "X-Amzn-Trace-Id", "value": trace.header()}
    return _json("platform.start", timestamp_ms, record)


def runtime_done_json(timestamp_ms: int, request_id: str, status: str, duration_ms: float) -> str:
    return _json(
        "platform.runtimeDone",
        timestamp_ms,
        {"requestId": request_id, "status": status, "metrics": {"durationMs": round(duration_ms, 3)}},
    )


def report_json(timestamp_ms: int, report: Report) -> str:
    metrics: dict[str, Any] = {
        "durationMs": round(report.duration_ms, 3),
        "billedDurationMs": report.billed_duration_ms,
        "memorySizeMB": report.memory_size_mb,
        "maxMemoryUsedMB": report.max_memory_used_mb,
    }
    if report.init_duration_ms is not None:
        metrics["initDurationMs"] = round(report.init_duration_ms, 3)
    record: dict[str, Any] = {"requestId": report.request_id, "metrics": metrics}
    if report.trace is not None:
        trace = report.trace
        record["tracing"] = {"spanId": trace.segment_id, "type": "X-Amzn-Trace-Id", "value": trace.header()}
    record["status"] = report.status
    if report.error_type and report.status != "success":
        record["errorType"] = report.error_type
    return _json("platform.report", timestamp_ms, record)


def system_level(record_type: str, status: str = "success") -> str:
    """The level a JSON platform record is filtered at under ``SystemLogLevel``."""
    if record_type in ("platform.runtimeDone", "platform.initRuntimeDone"):
        return "DEBUG"
    if record_type == "platform.initReport":
        return "DEBUG" if status == "success" else "WARN"
    if record_type == "platform.report" and status != "success":
        return "WARN"
    return "INFO"
