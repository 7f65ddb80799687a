"""Lambda's platform records, byte for byte against lines observed in CloudWatch Logs."""

from __future__ import annotations

import json
import re

from lambdalab.logs import formats

# Observed on AWS (python3.12, us-east-1, 2026): REPORT of a traced cold start, INIT_REPORT of an import error.
OBSERVED_REPORT = (
    "REPORT RequestId: b92a770e-7c92-4a13-84e3-613428ff991f\tDuration: 3.10 ms\tBilled Duration: 546 ms\t"
    "Memory Size: 2048 MB\tMax Memory Used: 95 MB\tInit Duration: 542.01 ms\t\n"
    "XRAY TraceId: 1-6a507b87-0cc4438344b48ef127ab1931\tSegmentId: d0025b207c551fde\tSampled: true\t\n"
)
OBSERVED_INIT_REPORT = (
    "INIT_REPORT Init Duration: 87.28 ms\tPhase: invoke\tStatus: error\tError Type: Runtime.ImportModuleError\n"
)
OBSERVED_JSON_REPORT = (
    '{"time":"2026-10-08T07:30:29.470Z","type":"platform.report","record":{"requestId":'
    '"79b5e81f-9cdd-4145-b1f6-7c50ef8a2a36","metrics":{"durationMs":1233.96,"billedDurationMs":1698,'
    '"memorySizeMB":256,"maxMemoryUsedMB":123,"initDurationMs":463.512},"status":"success"}}'
)
OBSERVED_JSON_START = (
    '{"time":"2026-10-08T07:30:28.235Z","type":"platform.start","record":{"requestId":'
    '"79b5e81f-9cdd-4145-b1f6-7c50ef8a2a36","functionArn":'
    '"arn:aws:lambda:eu-central-1:825765399535:function:tenner-notifier","version":"$LATEST"}}'
)


def ms(iso: str) -> int:
    import datetime

    return int(datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def test_report_text_matches_an_observed_traced_cold_start() -> None:
    report = formats.Report(
        "b92a770e-7c92-4a13-84e3-613428ff991f",
        3.10,
        546,
        2048,
        95,
        init_duration_ms=542.01,
        trace=formats.Trace("1-6a507b87-0cc4438344b48ef127ab1931", "d0025b207c551fde"),
    )
    assert formats.report_text(report) == OBSERVED_REPORT


def test_warm_report_has_no_init_duration_and_timeouts_say_so() -> None:
    warm = formats.report_text(formats.Report("r", 1.5, 2, 128, 40))
    assert (
        warm == "REPORT RequestId: r\tDuration: 1.50 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\t"
        "Max Memory Used: 40 MB\t\n"
    )
    timeout = formats.report_text(formats.Report("r", 3000.0, 3000, 128, 40, status="timeout"))
    assert timeout.endswith("Max Memory Used: 40 MB\tStatus: timeout\t\n")
    exited = formats.report_text(formats.Report("r", 5, 5, 128, 40, status="error", error_type="Runtime.ExitError"))
    assert exited.endswith("Status: error\tError Type: Runtime.ExitError\t\n")


def test_init_report_matches_observed() -> None:
    assert formats.init_report_text(87.28, "invoke", "error", "Runtime.ImportModuleError") == OBSERVED_INIT_REPORT
    assert formats.init_report_text(10000.0, "init", "timeout") == (
        "INIT_REPORT Init Duration: 10000.00 ms\tPhase: init\tStatus: timeout\n"
    )


def test_start_end_init_start_and_timeout_lines() -> None:
    assert formats.start_text("abc", "$LATEST") == "START RequestId: abc Version: $LATEST\n"
    assert formats.end_text("abc") == "END RequestId: abc\n"
    runtime = formats.Runtime.local("python3.13", "us-east-1")
    line = formats.init_start_text(runtime)
    assert re.fullmatch(
        r"INIT_START Runtime Version: python:3\.13\.v0\t"
        r"Runtime Version ARN: arn:aws:lambda:us-east-1::runtime:[0-9a-f]{64}\n",
        line,
    )
    assert formats.timeout_text(ms("2026-11-22T08:00:03.004Z"), "abc", 3) == (
        "2026-11-22T08:00:03.004Z abc Task timed out after 3.00 seconds\n"
    )


def test_json_records_match_observed_shapes_and_field_order() -> None:
    report = formats.Report("79b5e81f-9cdd-4145-b1f6-7c50ef8a2a36", 1233.96, 1698, 256, 123, init_duration_ms=463.512)
    assert formats.report_json(ms("2026-10-08T07:30:29.470Z"), report) == OBSERVED_JSON_REPORT
    start = formats.start_json(
        ms("2026-10-08T07:30:28.235Z"),
        "79b5e81f-9cdd-4145-b1f6-7c50ef8a2a36",
        "arn:aws:lambda:eu-central-1:825765399535:function:tenner-notifier",
        "$LATEST",
    )
    assert start == OBSERVED_JSON_START
    init = json.loads(
        formats.init_start_json(
            0,
            formats.Runtime.local("python3.13", "eu-central-1"),
            init_type="on-demand",
            function_name="f",
            version="$LATEST",
            instance_id="2026/10/08/[$LATEST]22be53a8cfde4e68b844f8ec293b2543",
            memory_mb=256,
        )
    )
    assert list(init["record"]) == [
        "initializationType",
        "phase",
        "runtimeVersion",
        "runtimeVersionArn",
        "functionName",
        "functionVersion",
        "instanceId",
        "instanceMaxMemory",
    ]
    assert init["record"]["instanceMaxMemory"] == 268435456


def test_stream_names() -> None:
    when = ms("2026-11-22T23:59:59.000Z") / 1000
    assert formats.stream_name("$LATEST", when=when, token="a" * 32) == "2026/11/22/[$LATEST]" + "a" * 32
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[7\][0-9a-f]{32}", formats.stream_name("7", when=when))
    assert formats.stream_name("1", when=when, function_name="fn", token="b" * 32) == "2026/11/22/fn[1]" + "b" * 32


def test_levels() -> None:
    assert formats.passes("ERROR", "WARN") and not formats.passes("DEBUG", "INFO")
    assert formats.passes(None, "INFO") and not formats.passes(None, "WARN")  # no level counts as INFO
    assert formats.passes("anything", None)
