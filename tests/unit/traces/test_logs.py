"""`lambdalab traces --logs`: REPORT lines in the formats Lambda writes, read into the cold-start report. No network:
the events are tests/data/traces/logs/filter_log_events.json, served by botocore's Stubber."""

from __future__ import annotations

import argparse
import io
import json
from datetime import UTC, datetime

import pytest
from rich.console import Console

from lambdalab.clock import EpochClock
from lambdalab.errors import UserError
from lambdalab.logs import insights
from lambdalab.logs.discovery import parse_init_start, parse_report, parse_xray
from lambdalab.logs.filterpattern import compile_pattern
from lambdalab.logs.query import parse as parse_query
from lambdalab.logs.store import LogStore
from lambdalab.traces import cli, logs
from lambdalab.traces.reader import Window, window_from_args
from lambdalab.traces.report import Source, from_invocations
from lambdalab.traces.terminal import render
from tests.unit.traces.data import StubSession, load

TEXT_GROUP = "/aws/lambda/lab-ColdStartFunction"
JSON_GROUP = "/aws/lambda/lab-JsonFunction"
RECORDED = load("logs/filter_log_events.json")
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
WINDOW_ARGS = ("--start", "2026-11-22T07:00:00Z", "--end", "2026-11-22T09:00:00Z")

# The brief's line, byte for byte as Lambda writes it (tab-separated, trailing tab).
BRIEF_REPORT = (
    "REPORT RequestId: 6f7e1d2c-0b9a-4c8d-9e7f-6a5b4c3d2e1f\tDuration: 12.34 ms\tBilled Duration: 13 ms\t"
    "Memory Size: 128 MB\tMax Memory Used: 50 MB\tInit Duration: 250.00 ms\t"
)


def lines(group: str) -> list[logs.LogLine]:
    return [logs.LogLine(group, e["logStreamName"], e["timestamp"], e["message"]) for e in RECORDED[group]]


def filtered(group: str) -> list[dict]:
    """What FilterLogEvents answers with the reader's filter pattern (the local pattern engine applies it)."""
    keep = compile_pattern(logs.FILTER_PATTERN)
    return [e for e in RECORDED[group] if keep(e["message"])]


# --- parsing ------------------------------------------------------------------------------------------------------


def test_text_report_line_as_lambda_writes_it() -> None:
    report = parse_report(BRIEF_REPORT)
    assert report is not None
    assert report.request_id == "6f7e1d2c-0b9a-4c8d-9e7f-6a5b4c3d2e1f"
    assert (report.duration_ms, report.billed_duration_ms) == (12.34, 13)
    assert (report.memory_size_mb, report.max_memory_used_mb) == (128, 50)
    assert report.init_duration_ms == 250.0
    assert (report.status, report.log_format, report.trace_id) == ("success", "Text", None)
    # a warm call's REPORT has no Init Duration
    warm = parse_report(BRIEF_REPORT.replace("Init Duration: 250.00 ms\t", "") + "\n")
    assert warm is not None and warm.init_duration_ms is None


def test_text_report_with_status_and_xray_in_the_same_event() -> None:
    line = (
        BRIEF_REPORT + "Status: error\tError Type: Runtime.ExitError\t\n"
        "XRAY TraceId: 1-673fb600-4a1b2c3d4e5f60718293a4b5\tSegmentId: 7a8b9c0d1e2f3a4b\tSampled: true\t\n"
    )
    report = parse_report(line)
    assert report is not None
    assert (report.status, report.error_type) == ("error", "Runtime.ExitError")
    assert (report.trace_id, report.segment_id) == ("1-673fb600-4a1b2c3d4e5f60718293a4b5", "7a8b9c0d1e2f3a4b")
    assert parse_xray("XRAY TraceId: 1-a-b\tSegmentId: c\tSampled: true\t") == ("1-a-b", "c")


def test_json_platform_report_record() -> None:
    [event] = [e for e in RECORDED[JSON_GROUP] if '"initDurationMs"' in e["message"]]
    report = parse_report(event["message"])
    assert report is not None
    assert report.log_format == "JSON"
    assert (report.duration_ms, report.billed_duration_ms, report.memory_size_mb) == (99.871, 100, 256)
    assert report.init_duration_ms == 318.207
    assert report.trace_id == "1-673fb600-0123456789abcdef01234567"
    assert report.segment_id == "5d6e7f8091a2b3c4"


@pytest.mark.parametrize(
    "message",
    [
        "START RequestId: 1 Version: $LATEST\n",
        "END RequestId: 1\n",
        "[INFO]\t2026-11-22T08:00:00.252Z\t1\tREPORT RequestId: in the application's own words\n",
        "REPORT RequestId: cut-off\tDuration: 1",
        '{"time":"x","type":"platform.start","record":{"requestId":"1"}}',
        '{"time":"x","type":"platform.report","record":{"requestId":"1","metrics":{"durationMs":"fast"}}}',
        '{"type": "platform.report", "broken',
    ],
)
def test_what_is_not_a_readable_report(message: str) -> None:
    assert parse_report(message) is None


def test_init_start_text_and_json() -> None:
    text = parse_init_start("INIT_START Runtime Version: python:3.12.v38\tRuntime Version ARN: arn:aws:lambda:x\n")
    assert text is not None and (text.runtime_version, text.init_type) == ("python:3.12.v38", None)
    [event] = [e for e in RECORDED[JSON_GROUP] if "provisioned-concurrency" in e["message"]]
    record = parse_init_start(event["message"])
    assert record is not None and (record.init_type, record.log_format) == ("provisioned-concurrency", "JSON")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("2026/11/22/[$LATEST]5e1d3c9a7b2f4e6d8c0a1b2c3d4e5f60", (None, "$LATEST")),
        ("2026/11/22/[7]a1b2c3d4e5f60718293a4b5c6d7e8f90", (None, "7")),
        ("2026/11/22/lab-fn[$LATEST]5e1d3c9a7b2f4e6d8c0a1b2c3d4e5f60", ("lab-fn", "$LATEST")),
        ("my-own-stream", (None, None)),
    ],
)
def test_stream_names(name: str, expected: tuple) -> None:
    assert logs.parse_stream_name(name) == expected


def test_the_filter_pattern_keeps_exactly_the_lines_the_report_needs() -> None:
    kept = [e["message"].split("\t", 1)[0].split(" ", 1)[0][:16] for e in filtered(TEXT_GROUP)]
    assert set(kept) == {"INIT_START", "REPORT"}  # START, END, application lines and the timeout line stay on AWS
    assert len(filtered(JSON_GROUP)) == 5  # 2 initStart, 3 report; platform.start and the app record dropped


# --- classification -----------------------------------------------------------------------------------------------


def test_text_streams_are_environments_and_init_duration_marks_the_cold_starts() -> None:
    outcome = logs.invocations_from_lines(lines(TEXT_GROUP))
    by_id = {i.request_id: i for i in outcome.invocations}
    assert [by_id[r].start_kind.value for r in sorted(by_id)] == ["cold", "cold", "warm", "provisioned"]
    cold = by_id["3f2b8c1e-8d4a-4b7e-9a51-0c6d2e7f8a90"]
    assert cold.function == "lab-ColdStartFunction" and cold.qualifier == "$LATEST"
    assert cold.init_duration_s == pytest.approx(0.25)
    assert cold.duration_s == pytest.approx(1.00312)
    assert cold.end_to_end_s == pytest.approx(1.25312)
    assert cold.trace_id == "1-673fb600-4a1b2c3d4e5f60718293a4b5"
    assert cold.invoke_end == pytest.approx(T0.timestamp() + 1.255)  # REPORT is written when the call is over
    timeout = by_id["b7e0c2d4-1f3a-4c5b-8e6d-9a0b1c2d3e4f"]
    assert timeout.error and timeout.init_duration_s == pytest.approx(0.3015)
    provisioned = by_id["d4e5f6a7-b8c9-4d0e-9f1a-2b3c4d5e6f70"]
    assert provisioned.qualifier == "7"
    assert provisioned.init_start == pytest.approx(T0.timestamp() - 60)  # its INIT_START, a minute ahead
    assert provisioned.init_duration_s is None  # the logs do not say when that INIT ended
    assert {i.environment_id for i in outcome.invocations} == {e["logStreamName"] for e in RECORDED[TEXT_GROUP]}
    assert outcome.formats == {"Text": 4} and outcome.init_starts == 3
    [problem] = outcome.problems
    assert "unreadable REPORT line" in problem.reason


def test_every_call_of_a_provisioned_environment_is_provisioned() -> None:
    """As the run records count them: the environment's kind, not only its first call."""
    stream = "2026/11/22/[7]a1b2c3d4e5f60718293a4b5c6d7e8f90"
    no_init = BRIEF_REPORT.replace("Init Duration: 250.00 ms\t", "")
    events = [
        logs.LogLine(TEXT_GROUP, stream, 1_000, "INIT_START Runtime Version: python:3.12.v38\n"),
        logs.LogLine(TEXT_GROUP, stream, 90_000, no_init.replace("6f7e1d2c", "00000001")),
        logs.LogLine(TEXT_GROUP, stream, 91_000, no_init.replace("6f7e1d2c", "00000002")),
    ]
    first, second = logs.invocations_from_lines(events).invocations
    assert (first.start_kind.value, second.start_kind.value) == ("provisioned", "provisioned")
    assert (first.init_start, second.init_start) == (1.0, None)
    # an on-demand environment: Init Duration on the first REPORT, the next ones warm
    on_demand = [events[0], logs.LogLine(TEXT_GROUP, stream, 90_000, BRIEF_REPORT), events[2]]
    assert [i.start_kind.value for i in logs.invocations_from_lines(on_demand).invocations] == ["cold", "warm"]


def test_json_format_and_filtered_events_give_the_same_answer() -> None:
    every = logs.invocations_from_lines(lines(JSON_GROUP))
    only = logs.invocations_from_lines(
        logs.LogLine(JSON_GROUP, e["logStreamName"], e["timestamp"], e["message"]) for e in filtered(JSON_GROUP)
    )
    assert [(i.request_id, i.start_kind) for i in every.invocations] == [
        (i.request_id, i.start_kind) for i in only.invocations
    ]
    kinds = {i.request_id[:8]: (i.start_kind.value, i.qualifier, i.error) for i in every.invocations}
    assert kinds == {
        "0a1b2c3d": ("cold", "$LATEST", False),
        "1b2c3d4e": ("warm", "$LATEST", True),
        "2c3d4e5f": ("provisioned", "3", False),
    }
    assert every.formats == {"JSON": 3}


def test_a_shared_custom_group_keeps_only_the_named_functions_streams() -> None:
    group = "/shared/lambda"
    mine = "2026/11/22/lab-A[$LATEST]5e1d3c9a7b2f4e6d8c0a1b2c3d4e5f60"
    theirs = "2026/11/22/lab-B[$LATEST]0f9e8d7c6b5a49382716a5b4c3d2e1f0"
    events = [logs.LogLine(group, stream, 1000, BRIEF_REPORT) for stream in (mine, theirs)]
    outcome = logs.invocations_from_lines(events, {group: ["lab-A"]})
    assert [i.function for i in outcome.invocations] == ["lab-A"]
    assert {i.function for i in logs.invocations_from_lines(events).invocations} == {"lab-A", "lab-B"}


def insights_rows(group: str, query: str) -> list[dict[str, str]]:
    store = LogStore("us-east-1", "123456789012", epoch=EpochClock())
    for event in RECORDED[group]:
        store.append(group, event["logStreamName"], [(event["timestamp"], event["message"])], create=True)
    result = insights.run(parse_query(query), store.search([group]), account_id="123456789012")
    return [{c["field"]: c["value"] for c in r} for r in result.rows]


def test_the_readme_insights_queries_count_what_the_report_counts() -> None:
    """The README's queries over the same events (the local Insights engine) = the report's figures."""
    query = (
        'filter @type = "REPORT" | stats count(@initDuration) as coldStarts, count(*) as invocations, '
        "count_distinct(@logStream) as environments"
    )
    [row] = insights_rows(TEXT_GROUP, query)
    report = from_invocations(logs.invocations_from_lines(lines(TEXT_GROUP)).invocations, _source())
    assert {k: int(v) for k, v in row.items()} == {
        "coldStarts": report.cold_starts,
        "invocations": len(report.invocations),
        "environments": len(report.environments),
    }
    assert report.cold_starts == 2
    [json_row] = insights_rows(
        JSON_GROUP,
        'filter type = "platform.report" | stats count(record.metrics.initDurationMs) as coldStarts, count(*)',
    )
    json_report = from_invocations(logs.invocations_from_lines(lines(JSON_GROUP)).invocations, _source())
    assert (int(json_row["coldStarts"]), int(json_row["count(*)"])) == (json_report.cold_starts, 3)


def _source() -> Source:
    return Source("logs", "test")


# --- the CLI over stubbed CloudWatch Logs -------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lambdalab traces")
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def stub_filter(session: StubSession, group: str, pages: int = 2, missing: bool = False):
    stub = session.stubs.get("logs") or session.stub("logs")
    if missing:
        stub.add_client_error(
            "filter_log_events", "ResourceNotFoundException", "The specified log group does not exist.", 400
        )
        return stub
    events = filtered(group)
    half = len(events) // 2
    chunks = [events[:half], events[half:]] if pages == 2 else [events]
    for n, chunk in enumerate(chunks):
        expected = {
            "logGroupName": group,
            "startTime": int(datetime(2026, 11, 22, 7, tzinfo=UTC).timestamp() * 1000),
            "endTime": int(datetime(2026, 11, 22, 9, tzinfo=UTC).timestamp() * 1000),
            "filterPattern": logs.FILTER_PATTERN,
        }
        if n:
            expected["nextToken"] = f"page-{n}"
        answer: dict = {"events": chunk, "searchedLogStreams": []}
        if n + 1 < len(chunks):
            answer["nextToken"] = f"page-{n + 1}"
        stub.add_response("filter_log_events", answer, expected)
    return stub


def no_logging_config(session: StubSession, *names: str) -> None:
    lam = session.stub("lambda")
    for name in names:
        lam.add_response(
            "get_function_configuration",
            {"FunctionName": name, "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{name}"}},
            {"FunctionName": name},
        )


def logs_report(session: StubSession, *argv: str) -> dict:
    args = parse("--logs", *WINDOW_ARGS, *argv)
    window = window_from_args(args.since, args.start, args.end, now=datetime.now(UTC))
    return cli._logs_report(args, session, window).to_json()


def test_logs_report_for_named_functions_follows_pages_and_says_its_coverage() -> None:
    session = StubSession()
    no_logging_config(session, "lab-ColdStartFunction", "lab-JsonFunction")
    stub_filter(session, TEXT_GROUP)
    stub_filter(session, JSON_GROUP, pages=1)
    report = logs_report(session, "--function", "lab-ColdStartFunction", "--function", "lab-JsonFunction")
    session.stubs["logs"].assert_no_pending_responses()
    assert report["source"]["kind"] == "logs"
    assert report["source"]["window"] == {"start": "2026-11-22T07:00:00.000Z", "end": "2026-11-22T09:00:00.000Z"}
    assert report["coverage"]["complete"] is True
    assert "throttles are unknown" in report["coverage"]["detail"]
    assert report["totals"] == {
        "traces": None,
        "invocations": 7,
        "cold_starts": 3,
        "provisioned_starts": 2,
        "throttles": None,  # unknown, not 0
    }
    assert all(f["throttles"] is None for f in report["functions"])
    assert {f["spillover"] for f in report["functions"]} == {None}
    assert len(report["environments"]) == 5  # one per log stream
    assert not any(env["inferred"] for env in report["environments"])
    assert any("7 REPORT lines read (JSON 3, Text 4)" in note for note in report["notes"])
    assert report["problems"]["count"] == 1  # the truncated REPORT


def test_no_function_named_reads_every_lambda_log_group() -> None:
    session = StubSession()
    stub = session.stub("logs")
    stub.add_response(
        "describe_log_groups",
        {"logGroups": [{"logGroupName": TEXT_GROUP}, {"logGroupName": "/aws/lambda/never-called"}]},
        {"logGroupNamePrefix": "/aws/lambda/"},
    )
    stub_filter(session, TEXT_GROUP, pages=1)
    stub_filter(session, "/aws/lambda/never-called", missing=True)  # deleted between the two calls
    report = logs_report(session)
    assert report["totals"]["invocations"] == 4
    assert "no log group (never invoked?): /aws/lambda/never-called" in report["notes"]


def test_a_named_function_without_log_group_is_a_user_error() -> None:
    session = StubSession()
    no_logging_config(session, "lab-Nobody")
    stub_filter(session, "/aws/lambda/lab-Nobody", missing=True)
    with pytest.raises(UserError, match=r"log group /aws/lambda/lab-Nobody \(function lab-Nobody\) does not exist"):
        logs_report(session, "--function", "lab-Nobody")


def test_logging_config_log_group_is_read_instead_of_the_default() -> None:
    session = StubSession()
    lam = session.stub("lambda")
    lam.add_response(
        "get_function_configuration",
        {"FunctionName": "lab-ColdStartFunction", "LoggingConfig": {"LogFormat": "Text", "LogGroup": TEXT_GROUP}},
    )
    lam.add_response(
        "get_function_configuration",
        {"FunctionName": "lab-Custom", "LoggingConfig": {"LogFormat": "JSON", "LogGroup": JSON_GROUP}},
    )
    stub_filter(session, TEXT_GROUP, pages=1)
    stub_filter(session, JSON_GROUP, pages=1)
    report = logs_report(session, "--function", "lab-ColdStartFunction", "--function", "lab-Custom")
    assert f"lab-Custom logs to {JSON_GROUP} (LoggingConfig.LogGroup)" in report["notes"]
    # streams that do not name their function belong to the function that logs to the group
    assert {f["function"] for f in report["functions"]} == {"lab-ColdStartFunction", "lab-Custom"}


def test_an_empty_window_is_a_report_with_a_warning() -> None:
    session = StubSession()
    stub = session.stub("logs")
    stub.add_response("filter_log_events", {"events": []})
    report = logs_report(session, "--log-group", "/custom/group")
    assert report["totals"]["invocations"] == 0
    assert report["totals"]["throttles"] is None  # still unknown, not 0
    assert any("no REPORT line in the window" in w for w in report["warnings"])


def test_table_says_the_source_coverage_and_unknown_throttles() -> None:
    outcome = logs.invocations_from_lines(lines(TEXT_GROUP))
    report = from_invocations(
        outcome.invocations, _source(), coverage=logs.COVERAGE, throttles_known=False, spillover_note="n/a"
    )
    out = io.StringIO()
    render(report, Console(file=out, width=200))
    text = out.getvalue()
    assert "CloudWatch Logs: test" in text
    assert "coverage: complete" in text
    assert "n/a" in text
    assert json.loads(json.dumps(report.to_json()))["totals"]["throttles"] is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--logs", "--run-dir", "x"], "cannot be combined with --run-dir or --file"),
        (["--log-group", "g", "--file", "x"], "cannot be combined with --run-dir or --file"),
        (["--logs", "--execution", "arn:aws:states:us-east-1:1:execution:m:e"], "--execution reads X-Ray"),
    ],
)
def test_logs_flag_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        cli.run(parse(*argv), stdout=io.StringIO())


def test_window_is_passed_in_milliseconds() -> None:
    window = Window(T0, datetime(2026, 11, 22, 8, 0, 1, tzinfo=UTC))
    session = StubSession()
    stub = session.stub("logs")
    stub.add_response(
        "filter_log_events",
        {"events": []},
        {
            "logGroupName": "g",
            "startTime": int(T0.timestamp() * 1000),
            "endTime": int(T0.timestamp() * 1000) + 1000,
            "filterPattern": logs.FILTER_PATTERN,
        },
    )
    assert list(logs.LogsReader(session.client("logs")).lines(logs.Target("g"), window)) == []


@pytest.mark.parametrize(
    ("traced", "counted", "expected"),
    [
        ({"a": 3}, {}, None),
        ({"a": 3}, {"a": 3}, True),
        ({"a": 1, "b": 2}, {"a": 10, "b": 2}, False),
    ],
)
def test_xray_coverage_compares_traced_with_cloudwatchs_count(traced: dict, counted: dict, expected) -> None:
    coverage = cli._xray_coverage(traced, counted)
    assert coverage.complete is expected
    if expected is False:
        assert coverage.detail.startswith("X-Ray traced 3 of the 12 invocations CloudWatch counted")
