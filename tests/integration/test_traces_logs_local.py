"""`lambdalab traces --logs` against a live local cloud: real functions write their log streams (one per execution
environment, REPORT with Init Duration on cold starts), and the report read from CloudWatch Logs finds the same
environments and cold starts as the run records, and the same count as the README's Logs Insights query."""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.support.cloud import BIN, RunningCloud, local_cloud

pytestmark = pytest.mark.integration

LAB = Path(__file__).parent / "lab" / "template.yaml"
STACK = "lambdalab-traces-logs"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("traces-logs")
    with local_cloud(LAB, tmp, extra=["--stack-name", STACK, "--time-scale", "0.01"]) as running:
        yield running


@pytest.fixture(scope="module")
def names(cloud: RunningCloud) -> dict[str, str]:
    return cloud.outputs(STACK)


def traces(cloud: RunningCloud, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "lambdalab"), "traces", *args],
        env=cloud.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def logs_report(cloud: RunningCloud, *args: str, invocations: int) -> dict[str, Any]:
    """The --logs JSON report, read again until `invocations` REPORT lines have arrived (the writer batches)."""
    deadline = time.monotonic() + 20
    while True:
        result = traces(cloud, "--logs", "--since", "10m", "--json", *args)
        assert result.returncode == 0, result.stderr
        got = json.loads(result.stdout)
        if got["totals"]["invocations"] >= invocations or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def insights(cloud: RunningCloud, group: str, query: str) -> list[dict[str, str]]:
    logs = cloud.client("logs")
    end = int(time.time()) + 60
    query_id = logs.start_query(logGroupName=group, startTime=end - 3600, endTime=end, queryString=query)["queryId"]
    for _ in range(100):
        answer = logs.get_query_results(queryId=query_id)
        if answer["status"] == "Complete":
            return [{c["field"]: c["value"] for c in row} for row in answer["results"]]
        time.sleep(0.1)
    raise AssertionError(f"query {query_id} did not complete")


def test_reserved_5_ten_async_invokes_the_logs_report_equals_the_run_records(cloud: RunningCloud, names: dict) -> None:
    # GIVEN the CLI scenario's shape: reserved concurrency 5, 10 parallel async invokes of a function that sleeps
    name = names["LimitedName"]
    client = cloud.client("lambda")
    with ThreadPoolExecutor(10) as pool:
        statuses = list(
            pool.map(
                lambda i: client.invoke(
                    FunctionName=name, InvocationType="Event", Payload=json.dumps({"sleep": 0.5, "n": i}).encode()
                )["StatusCode"],
                range(10),
            )
        )
    assert statuses == [202] * 10

    def ran(records: list[dict]) -> list[dict]:
        return [r for r in records if r["function_name"] == name and r["environment_id"] is not None]

    records = ran(cloud.wait_records(lambda rs: len(ran(rs)) >= 10, timeout=60, what="10 async invocations"))
    assert len(records) == 10

    # WHEN the report is read from the function's log group through the API (the same code reads AWS)
    got = logs_report(cloud, "--function", name, invocations=10)

    # THEN it is the logs' report, complete, with throttles unknown rather than 0
    assert got["source"]["kind"] == "logs"
    assert got["coverage"]["complete"] is True
    assert got["totals"]["throttles"] is None
    # ... it has every invocation, and exactly the cold starts the records have
    assert got["totals"]["invocations"] == 10
    assert {i["request_id"] for i in got["invocations"]} == {r["request_id"] for r in records}
    cold = {r["request_id"] for r in records if r["start_kind"] == "cold"}
    assert {i["request_id"] for i in got["invocations"] if i["start_kind"] == "cold"} == cold
    # ... one environment per log stream, as many as the records have, each serving the same calls
    by_record_env: dict[str, set[str]] = {}
    for r in records:
        by_record_env.setdefault(r["environment_id"], set()).add(r["request_id"])
    by_stream = [{got["invocations"][n]["request_id"] for n in env["invocations"]} for env in got["environments"]]
    assert sorted(map(sorted, by_stream)) == sorted(map(sorted, by_record_env.values()))
    for env in got["environments"]:
        kinds = [got["invocations"][n]["start_kind"] for n in env["invocations"]]
        assert kinds[0] == "cold" and set(kinds[1:]) <= {"warm"}, env  # Init Duration on the first REPORT only
    [function] = got["functions"]
    assert function["init_s"]["count"] == len(cold)
    # AND the README's Logs Insights query gives the same numbers
    [row] = insights(
        cloud,
        f"/aws/lambda/{name}",
        'filter @type = "REPORT" | stats count(@initDuration) as coldStarts, count(*) as invocations, '
        "count_distinct(@logStream) as environments",
    )
    assert {k: int(v) for k, v in row.items()} == {
        "coldStarts": len(cold),
        "invocations": 10,
        "environments": len(by_record_env),
    }
    # AND the table names the source and its coverage
    table = traces(cloud, "--logs", "--log-group", f"/aws/lambda/{name}", "--since", "10m")
    assert table.returncode == 0, table.stderr
    assert "CloudWatch Logs" in table.stdout
    assert "coverage: complete" in table.stdout


def test_provisioned_environments_are_not_cold_starts(cloud: RunningCloud, names: dict) -> None:
    # GIVEN an alias with provisioned concurrency 2, called twice one after the other
    client = cloud.client("lambda")
    arn = names["ProvisionedAliasArn"]
    for _ in range(2):
        assert client.invoke(FunctionName=arn, Payload=b"{}")["StatusCode"] == 200
    name = names["ProvisionedName"]

    def mine(records: list[dict]) -> list[dict]:
        return [r for r in records if r["function_name"] == name and r["environment_id"] is not None]

    records = mine(cloud.wait_records(lambda rs: len(mine(rs)) >= 2, what="2 provisioned invocations"))
    # WHEN the report is read from the logs
    got = logs_report(cloud, "--function", name, invocations=len(records))
    # THEN the calls the records say were provisioned are provisioned in the logs too (INIT_START ahead, no
    # Init Duration), under the version the alias points to
    kinds = {i["request_id"]: i["start_kind"] for i in got["invocations"]}
    assert kinds == {r["request_id"]: r["start_kind"] for r in records}
    assert "provisioned" in kinds.values()
    assert got["totals"]["cold_starts"] == 0
    assert {f["qualifier"] for f in got["functions"]} == {"1"}


def test_a_function_that_never_wrote_a_log_is_a_clear_error(cloud: RunningCloud) -> None:
    result = traces(cloud, "--logs", "--function", "lab-NeverInvoked", "--since", "10m")
    assert result.returncode == 2
    assert "log group /aws/lambda/lab-NeverInvoked (function lab-NeverInvoked) does not exist" in result.stderr
