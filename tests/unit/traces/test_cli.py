"""`lambdalab traces` without the lead's main: add_arguments + run, over files and run directories."""

from __future__ import annotations

import argparse
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from lambdalab.errors import UserError
from lambdalab.traces import cli
from lambdalab.traces.reader import RetryPolicy, window_from_args
from tests.unit.traces.data import StubSession, load


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lambdalab traces")
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def run_json(*argv: str) -> dict:
    out = io.StringIO()
    assert cli.run(parse(*argv, "--json"), stdout=out) == 0
    return json.loads(out.getvalue())


def test_json_from_a_saved_batch_get_traces_file(data_dir):
    report = run_json("--file", str(data_dir / "batch_get_traces_lambda.json"))
    assert report["schema"] == "lambdalab.traces/1"
    assert report["source"]["kind"] == "file"
    assert report["totals"] == {
        "traces": 9,
        "invocations": 10,
        "cold_starts": 5,
        "provisioned_starts": 1,
        "throttles": 2,
    }
    functions = {(f["function"], f["qualifier"]): f for f in report["functions"]}
    cold = functions[("lab-ColdStartFunction-1A2B3C", "live")]
    assert cold["cold_starts"] == 2 and cold["cold_share"] == 0.5
    assert set(cold["init_s"]) == {"count", "p50", "p95", "p99", "max"}
    assert cold["end_to_end_s"]["gap_p50"] > 0
    [execution] = report["executions"]
    assert [item["start_kind"] for item in execution["items"]] == ["cold", "cold", "warm"]
    # every environment points at invocations that exist; every invocation that ran is on exactly one
    placed = sorted(i for env in report["environments"] for i in env["invocations"])
    ran = [n for n, item in enumerate(report["invocations"]) if not item["throttled"]]
    assert placed == ran
    assert report["problems"]["count"] == 0


def test_function_filter_is_client_side(data_dir):
    report = run_json(
        "--file", str(data_dir / "batch_get_traces_lambda.json"), "--function", "lab-MapItemFunction-J1K2L3"
    )
    assert [f["function"] for f in report["functions"]] == ["lab-MapItemFunction-J1K2L3"]
    assert report["totals"]["cold_starts"] == 2
    assert len(report["executions"]) == 1


def test_problems_are_counted_with_reasons(data_dir):
    report = run_json("--file", str(data_dir / "malformed.json"))
    assert report["totals"]["invocations"] == 1
    assert report["problems"]["count"] == 6
    assert report["problems"]["reasons"]["malformed JSON"] == 1


def test_run_directory_uses_the_records_as_ground_truth(data_dir):
    report = run_json("--run-dir", str(data_dir / "run"))
    functions = {(f["function"], f["qualifier"]): f for f in report["functions"]}
    live = functions[("lab-ColdStartFunction", "live")]
    assert (live["invocations"], live["cold_starts"], live["throttles"], live["spillover"]) == (4, 2, 1, 1)
    assert live["init_s"]["p50"] == pytest.approx(0.3)
    envs = {env["id"]: env for env in report["environments"]}
    assert set(envs) == {"env-a", "env-b", "env-p"}
    assert envs["env-p"]["init_end"] - envs["env-p"]["init_start"] == pytest.approx(0.4)  # created → ready
    assert not envs["env-a"]["inferred"]


def test_table_output_names_the_cold_starts(data_dir):
    out = io.StringIO()
    cli.run(parse("--file", str(data_dir / "batch_get_traces_lambda.json")), stdout=out)
    text = out.getvalue()
    assert "lab-ColdStartFunction-1A2B3C" in text and "exec-0001" in text
    assert "spillover: unavailable" in text


def test_html_is_written(data_dir, tmp_path):
    target = tmp_path / "report.html"
    out = io.StringIO()
    cli.run(parse("--file", str(data_dir / "batch_get_traces_lambda.json"), "--html", str(target)), stdout=out)
    page = target.read_text()
    assert page.startswith("<!DOCTYPE html>") and "report-data" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--run-dir", "a", "--file", "b"], "either --run-dir or --file"),
        (["--file", "b", "--stack", "s"], "cannot be combined"),
        (["--file", "/nonexistent/traces.json"], "cannot read"),
        (["--run-dir", "/nonexistent"], "not a directory"),
        (["--since", "soon", "--function", "f"], "--since 'soon'"),
        (["--max-traces", "0"], "--max-traces"),
    ],
)
def test_user_errors_are_clear(argv, message):
    with pytest.raises(UserError, match=message):
        cli.run(parse(*argv), stdout=io.StringIO())


def test_standalone_main_prints_error_and_exits_2(capsys):
    assert cli.main(["--file", "/nonexistent/traces.json"]) == 2
    assert capsys.readouterr().err.startswith("error: cannot read /nonexistent/traces.json")


def test_execution_reads_its_trace_by_the_trace_header(data_dir):
    """--execution: DescribeExecution's traceHeader → BatchGetTraces of that one trace; the items are its calls."""
    fixture = load("batch_get_traces_lambda.json")
    [map_trace] = [t for t in fixture["Traces"] if any("StepFunctions" in s["Document"] for s in t["Segments"])]
    # the state machine's own segment left out: the execution is known by the trace header alone
    lambda_only = [s for s in map_trace["Segments"] if "StepFunctions" not in s["Document"]]
    arn = "arn:aws:states:us-east-1:123456789012:execution:lab-FlashSaleMap:run-7"
    session = StubSession()
    states = session.stub("stepfunctions")
    start = datetime(2026, 11, 18, 11, 6, 50, tzinfo=UTC)
    states.add_response(
        "describe_execution",
        {
            "executionArn": arn,
            "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:lab-FlashSaleMap",
            "status": "SUCCEEDED",
            "startDate": start,
            "stopDate": start + timedelta(seconds=2),
            "traceHeader": f"Root={map_trace['Id']};Sampled=1",
        },
    )
    states.add_response("get_execution_history", {"events": []})
    xray = session.stub("xray")
    xray.add_response(
        "batch_get_traces",
        {"Traces": [{"Id": map_trace["Id"], "Segments": lambda_only}]},
        {"TraceIds": [map_trace["Id"]]},
    )
    xray.add_client_error("get_sampling_rules", "UnknownOperationException", "not here", 404)
    cloudwatch = session.stub("cloudwatch")
    cloudwatch.add_response("get_metric_data", {"MetricDataResults": [{"Id": "i0", "Values": [3.0]}]})
    args = parse("--execution", arn)
    report = cli._xray_report(
        args, session, RetryPolicy(), window_from_args(None, None, None, now=datetime.now(UTC))
    ).to_json()
    [execution] = report["executions"]
    assert execution["execution_arn"] == arn
    assert [item["start_kind"] for item in execution["items"]] == ["cold", "cold", "warm"]
    assert report["source"]["window"]["start"] == "2026-11-18T11:06:50.000Z"  # the execution's own window
    assert report["warnings"] == []  # CloudWatch counted 3 calls, X-Ray traced 3
    assert "sampling rules could not be read (GetSamplingRules unavailable)" in report["notes"]
