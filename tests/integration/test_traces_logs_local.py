"""`lambdalab traces --logs` against a live local cloud's CloudWatch Logs: the report counts the cold starts that the
function's log streams record, as the README's Logs Insights query does.

Until the local cloud's functions write their own log streams, the test writes them with PutLogEvents, in the format
Lambda writes (one stream per execution environment, INIT_START, START/END, REPORT with Init Duration on the cold
ones, the XRAY line when traced); the CLI reads them through the local endpoint exactly as it reads AWS."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import uuid

import pytest

from tests.support.cloud import BIN, RunningCloud, local_cloud

pytestmark = pytest.mark.integration

FUNCTION = "lab-LogsProbe"
GROUP = f"/aws/lambda/{FUNCTION}"
RUNTIME = (
    "INIT_START Runtime Version: python:3.12.v38\tRuntime Version ARN: "
    "arn:aws:lambda:us-east-1::runtime:7b620fc2e66107a1046b140b9d320295811af3ad5d4c6a011fad1fa65127e9e6\n"
)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    with local_cloud(None, tmp_path_factory.mktemp("traces-logs")) as running:
        yield running


def report_line(request_id: str, duration_ms: float, init_ms: float | None, trace: str | None) -> str:
    line = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: {int(duration_ms) + 1} ms\t"
        f"Memory Size: 128 MB\tMax Memory Used: 50 MB\t"
    )
    if init_ms is not None:
        line += f"Init Duration: {init_ms:.2f} ms\t"
    if trace is not None:
        line += f"\nXRAY TraceId: {trace}\tSegmentId: {secrets.token_hex(8)}\tSampled: true\t"
    return line + "\n"


def write_environment(logs, start_ms: int, calls: int, init_ms: float) -> tuple[str, list[str]]:
    """One execution environment's stream: INIT_START, then `calls` invocations, the first one cold."""
    stream = time.strftime("%Y/%m/%d/", time.gmtime(start_ms / 1000)) + "[$LATEST]" + secrets.token_hex(16)
    logs.create_log_stream(logGroupName=GROUP, logStreamName=stream)
    events = [(start_ms, RUNTIME)]
    t = start_ms + int(init_ms)
    ids = []
    for n in range(calls):
        request_id = str(uuid.uuid4())
        ids.append(request_id)
        trace = f"1-{int(t / 1000):08x}-{secrets.token_hex(12)}" if n == 0 else None
        events += [
            (t, f"START RequestId: {request_id} Version: $LATEST\n"),
            (t + 1, f"[INFO]\t2026-11-22T08:00:00.000Z\t{request_id}\tsleeping\n"),
            (t + 200, f"END RequestId: {request_id}\n"),
            (t + 200, report_line(request_id, 200.0, init_ms if n == 0 else None, trace)),
        ]
        t += 250
    logs.put_log_events(
        logGroupName=GROUP, logStreamName=stream, logEvents=[{"timestamp": ts, "message": m} for ts, m in events]
    )
    return stream, ids


def traces(cloud: RunningCloud, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "lambdalab"), "traces", *args],
        env=cloud.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def insights(cloud: RunningCloud, query: str, start_s: int, end_s: int) -> list[dict[str, str]]:
    logs = cloud.client("logs")
    query_id = logs.start_query(logGroupName=GROUP, startTime=start_s, endTime=end_s, queryString=query)["queryId"]
    for _ in range(100):
        answer = logs.get_query_results(queryId=query_id)
        if answer["status"] == "Complete":
            return [{c["field"]: c["value"] for c in row} for row in answer["results"]]
        time.sleep(0.1)
    raise AssertionError(f"query {query_id} did not complete")


def test_logs_report_counts_every_cold_start_the_streams_record(cloud: RunningCloud) -> None:
    # GIVEN the shape of the CLI scenario: 5 environments (reserved concurrency 5) serve 10 calls, 2 each
    logs = cloud.client("logs")
    logs.create_log_group(logGroupName=GROUP)
    now_ms = int(time.time() * 1000) - 60_000
    streams = {}
    for env in range(5):
        stream, ids = write_environment(logs, now_ms + env * 10, calls=2, init_ms=240.0 + env)
        streams[stream] = ids

    # WHEN the report is read from the local CloudWatch Logs through the API (the same code reads AWS)
    result = traces(cloud, "--logs", "--function", FUNCTION, "--since", "10m", "--json")
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)

    # THEN every call is there, exactly the 5 cold starts, one environment per stream, throttles unknown
    assert got["source"]["kind"] == "logs"
    assert got["coverage"]["complete"] is True
    assert got["totals"]["invocations"] == 10
    assert got["totals"]["cold_starts"] == 5
    assert got["totals"]["throttles"] is None
    assert {env["id"] for env in got["environments"]} == set(streams)
    for env in got["environments"]:
        kinds = [got["invocations"][n]["start_kind"] for n in env["invocations"]]
        assert kinds == ["cold", "warm"], env["id"]
        assert [got["invocations"][n]["request_id"] for n in env["invocations"]] == streams[env["id"]]
    [function] = got["functions"]
    assert function["init_s"]["p50"] == pytest.approx(0.242)
    assert sum(1 for i in got["invocations"] if i["trace_id"]) == 5  # the XRAY line of each traced (cold) call
    # AND the README's Logs Insights query gives the same numbers
    start_s, end_s = now_ms // 1000 - 60, int(time.time()) + 60
    [row] = insights(
        cloud,
        'filter @type = "REPORT" | stats count(@initDuration) as coldStarts, count(*) as invocations',
        start_s,
        end_s,
    )
    assert (int(row["coldStarts"]), int(row["invocations"])) == (got["totals"]["cold_starts"], 10)
    # AND the table names the source and its coverage
    table = traces(cloud, "--logs", "--log-group", GROUP, "--since", "10m")
    assert table.returncode == 0, table.stderr
    assert "CloudWatch Logs" in table.stdout
    assert "coverage: complete" in table.stdout


def test_a_function_that_never_wrote_a_log_is_a_clear_error(cloud: RunningCloud) -> None:
    result = traces(cloud, "--logs", "--function", "lab-NeverInvoked", "--since", "10m")
    assert result.returncode == 2
    assert "log group /aws/lambda/lab-NeverInvoked (function lab-NeverInvoked) does not exist" in result.stderr
