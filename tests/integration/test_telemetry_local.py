"""What a live local cloud reports: X-Ray traces (Lambda's segments and the SDK's), CloudWatch metrics, and async
retries that end in an on-failure destination."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.cloud import RunningCloud, local_cloud

pytestmark = pytest.mark.integration

LAB = Path(__file__).parent / "lab" / "template.yaml"
STACK = "lambdalab-telemetry"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("telemetry")
    with local_cloud(LAB, tmp, extra=["--stack-name", STACK, "--time-scale", "0.01"]) as running:
        yield running


@pytest.fixture(scope="module")
def names(cloud: RunningCloud) -> dict[str, str]:
    return cloud.outputs(STACK)


def wait_for(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def traces_of(cloud: RunningCloud, trace_ids: set[str]) -> dict[str, list[dict]]:
    xray = cloud.client("xray")
    now = datetime.now(UTC)
    ids = {
        s["Id"] for s in xray.get_trace_summaries(StartTime=now - timedelta(minutes=10), EndTime=now)["TraceSummaries"]
    }
    wanted = sorted(ids & trace_ids)
    documents: dict[str, list[dict]] = {}
    for start in range(0, len(wanted), 5):
        for trace in xray.batch_get_traces(TraceIds=wanted[start : start + 5])["Traces"]:
            documents[trace["Id"]] = [json.loads(s["Document"]) for s in trace["Segments"]]
    return documents


def test_traces_show_the_cold_start_and_the_functions_own_subsegment(cloud: RunningCloud, names: dict) -> None:
    # GIVEN a traced function (Tracing: Active, the stack's sampling rule traces everything)
    name = names["TracedName"]
    client = cloud.client("lambda")
    # WHEN it is called twice
    first = client.invoke(FunctionName=name, Payload=b'{"order": "A-1"}')
    second = client.invoke(FunctionName=name, Payload=b'{"order": "A-2"}')
    assert json.loads(first["Payload"].read()) == {"traced": True}
    assert second["StatusCode"] == 200
    records = cloud.wait_records(lambda rs: sum(r["function_name"] == name for r in rs) >= 2, what="2 records")
    mine = [r for r in records if r["function_name"] == name]
    trace_ids = {r["trace_id"] for r in mine}
    assert all(r["sampled"] for r in mine)

    # THEN X-Ray has both traces, with Lambda's segments and the SDK's subsegment under Invocation
    def complete():
        docs = traces_of(cloud, trace_ids)
        ready = len(docs) == 2 and all(
            any(d.get("origin") == "AWS::Lambda::Function" for d in segs)
            and any(d.get("name") == "checkout-work" for d in segs)
            for segs in docs.values()
        )
        return docs if ready else None

    docs = wait_for(complete, "both traces with Lambda's and the SDK's documents")
    by_kind = {r["trace_id"]: r["start_kind"] for r in mine}
    for trace_id, segments in docs.items():
        service = next(d for d in segments if d.get("origin") == "AWS::Lambda")
        function = next(d for d in segments if d.get("origin") == "AWS::Lambda::Function")
        names_under = [s["name"] for s in function.get("subsegments", [])]
        assert function["parent_id"] == service["id"]
        assert "Invocation" in names_under and "Overhead" in names_under
        assert ("Initialization" in names_under) == (by_kind[trace_id] == "cold")
        invocation = next(s for s in function["subsegments"] if s["name"] == "Invocation")
        sdk = next(d for d in segments if d.get("name") == "checkout-work")
        assert sdk["parent_id"] == invocation["id"]
        assert sdk["trace_id"] == trace_id
    assert sorted(by_kind.values()) == ["cold", "warm"]


def test_cloudwatch_counts_every_invocation(cloud: RunningCloud, names: dict) -> None:
    name = names["ProbeName"]
    client = cloud.client("lambda")
    for _ in range(3):
        client.invoke(FunctionName=name, Payload=b"{}")
    cloudwatch = cloud.client("cloudwatch")

    def invocations() -> float:
        now = datetime.now(UTC)
        stats = cloudwatch.get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName="Invocations",
            Dimensions=[{"Name": "FunctionName", "Value": name}],
            StartTime=now - timedelta(minutes=10),
            EndTime=now + timedelta(minutes=1),
            Period=60,
            Statistics=["Sum"],
        )
        return sum(p["Sum"] for p in stats["Datapoints"])

    wait_for(lambda: invocations() == 3, "3 Invocations in CloudWatch")
    now = datetime.now(UTC)
    duration = cloudwatch.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="Duration",
        Dimensions=[{"Name": "FunctionName", "Value": name}],
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=["SampleCount", "Maximum"],
        Unit="Milliseconds",
    )
    assert sum(p["SampleCount"] for p in duration["Datapoints"]) == 3


def test_async_function_error_is_retried_then_sent_to_the_on_failure_destination(
    cloud: RunningCloud, names: dict
) -> None:
    # GIVEN MaximumRetryAttempts 1 and an SQS on-failure destination
    name = names["FlakyName"]
    response = cloud.client("lambda").invoke(
        FunctionName=name, InvocationType="Event", Payload=b'{"fault": "raise", "order": 7}'
    )
    assert response["StatusCode"] == 202
    request_id = response["ResponseMetadata"]["RequestId"]
    sqs = cloud.client("sqs")

    # WHEN the function fails twice (the first try and one retry, 1 minute later scaled by 0.01)
    def failure_message():
        got = sqs.receive_message(QueueUrl=names["FailureQueueUrl"], WaitTimeSeconds=1, MaxNumberOfMessages=1)
        return got.get("Messages")

    messages = wait_for(failure_message, "the on-failure destination record", timeout=30)
    # THEN the destination gets AWS's invocation record, and the run directory shows both attempts
    record = json.loads(messages[0]["Body"])
    assert record["requestContext"]["requestId"] == request_id
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestPayload"] == {"fault": "raise", "order": 7}
    assert record["responseContext"]["functionError"] == "Unhandled"
    records = cloud.wait_records(
        lambda rs: sum(r["request_id"] == request_id for r in rs) >= 2, what="both attempts in the run directory"
    )
    attempts = [r for r in records if r["request_id"] == request_id]
    assert [r["attempt"] for r in attempts] == [1, 2]
    assert all(r["outcome"] == "function_error" for r in attempts)
    gap = attempts[1]["invoke_start"] - attempts[0]["invoke_end"]
    assert 0.5 <= gap < 5, gap  # 60 s x 0.01, plus scheduling


def test_moving_an_alias_moves_its_provisioned_concurrency(cloud: RunningCloud, names: dict) -> None:
    # GIVEN the alias "live" on version 1 with provisioned concurrency 2
    name = names["ProvisionedName"]
    client = cloud.client("lambda")
    client.update_function_configuration(
        FunctionName=name, Environment={"Variables": {"COLD_START_SLEEP": "0.1", "RELEASE": "2"}}
    )
    assert client.publish_version(FunctionName=name)["Version"] == "2"
    # WHEN the alias moves to version 2
    client.update_alias(FunctionName=name, Name="live", FunctionVersion="2")

    # THEN provisioned environments are initialised for version 2 and serve the alias
    def ready():
        return client.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")["Status"] == "READY"

    wait_for(ready, "provisioned concurrency READY on version 2")
    body = json.loads(client.invoke(FunctionName=name, Qualifier="live", Payload=b"{}")["Payload"].read())
    assert body["function_version"] == "2"
    assert body["initialization_type"] == "provisioned-concurrency"
