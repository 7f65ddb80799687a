"""SQS FilterCriteria and the gaps moto leaves, on a real `lambdalab up`: filtered-out messages are deleted and counted
(FilteredOutEventCount), matching ones reach the function; StartMessageMoveTask redrives a DLQ for real; an API moto
lacks answers an AWS-shaped error in the service's protocol, never an HTML page."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from tests.support.sources import Sources

pytestmark = pytest.mark.integration


def _counts(sqs: object, url: str) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(  # type: ignore[attr-defined]
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_filter_criteria_keep_matching_messages_and_delete_the_rest(sources: Sources) -> None:
    sqs = sources.cloud.client("sqs")
    url = sources.out["FilteredUrl"]
    # filters (OR): body JSON {kind: [order], qty: [{numeric: [> 1]}]}; plain body [{prefix: URGENT}]
    bodies = {
        "json match": json.dumps({"kind": "order", "qty": 3, "id": "json match"}),
        "json qty 1": json.dumps({"kind": "order", "qty": 1, "id": "json qty 1"}),
        "json other": json.dumps({"kind": "refund", "qty": 9, "id": "json other"}),
        "plain match": "URGENT: plain match",
        "plain other": "later: plain other",
        "json urgent": json.dumps("URGENT json urgent"),  # JSON (a string) against the plain filter
    }
    for body in bodies.values():
        sqs.send_message(QueueUrl=url, MessageBody=body)
    deadline = time.monotonic() + 60  # a bound, not a figure: a loaded machine can hold a cold start for long
    while _counts(sqs, url) != (0, 0) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _counts(sqs, url) == (0, 0), "filtered-out messages must be deleted, not left in the queue"
    entries = sources.wait_entries(
        "sqs", lambda es: sum(len(e["event"]["Records"]) for e in es) >= 2, what="the two matching messages"
    )
    got = sorted(r["body"] for e in entries for r in e["event"]["Records"])
    assert got == sorted([bodies["json match"], bodies["plain match"]])
    lam = sources.cloud.client("lambda")
    (mapping,) = lam.list_event_source_mappings(FunctionName=sources.out["FilteredConsumerName"])["EventSourceMappings"]
    assert len(mapping["FilterCriteria"]["Filters"]) == 2 and mapping["MetricsConfig"] == {"Metrics": ["EventCount"]}
    cloudwatch = sources.cloud.client("cloudwatch")
    deadline = time.monotonic() + 15
    filtered = 0.0
    while time.monotonic() < deadline and filtered < 3:
        stats = cloudwatch.get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName="FilteredOutEventCount",
            Dimensions=[{"Name": "EventSourceMappingUUID", "Value": mapping["UUID"]}],
            StartTime=datetime.now(UTC) - timedelta(minutes=10),
            EndTime=datetime.now(UTC) + timedelta(minutes=1),
            Period=1,
            Statistics=["Sum"],
        )
        filtered = sum(p["Sum"] for p in stats["Datapoints"])
        time.sleep(0.3)
    assert filtered >= 3


def test_bad_filter_criteria_are_refused_as_lambda_refuses_them(sources: Sources) -> None:
    lam = sources.cloud.client("lambda")
    with pytest.raises(ClientError) as info:
        lam.create_event_source_mapping(
            EventSourceArn=sources.out["WorkArn"],
            FunctionName=sources.out["FilteredConsumerName"],
            FilterCriteria={"Filters": [{"Pattern": '{"body": "not an array"}'}]},
        )
    assert info.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "Invalid filter pattern definition." in info.value.response["Error"]["Message"]
    assert lam.list_event_source_mappings(EventSourceArn=sources.out["WorkArn"])["EventSourceMappings"] == []


def test_start_message_move_task_redrives_the_dead_letter_queue(sources: Sources) -> None:
    sqs = sources.cloud.client("sqs")
    work, dlq = sources.out["WorkUrl"], sources.out["WorkDeadLettersUrl"]
    for n in range(5):
        sqs.send_message(
            QueueUrl=work,
            MessageBody=f"job {n}",
            MessageAttributes={"n": {"DataType": "Number", "StringValue": str(n)}},
        )
    # maxReceiveCount 1: receive once, let the visibility lapse, and the next receive moves them to the DLQ
    sqs.receive_message(QueueUrl=work, MaxNumberOfMessages=10, VisibilityTimeout=1)
    time.sleep(1.2)
    assert sqs.receive_message(QueueUrl=work, MaxNumberOfMessages=10).get("Messages", []) == []
    assert _counts(sqs, dlq)[0] == 5
    handle = sqs.start_message_move_task(SourceArn=sources.out["WorkDeadLettersArn"])["TaskHandle"]
    deadline = time.monotonic() + 15
    task: dict = {}
    while time.monotonic() < deadline:
        task = sqs.list_message_move_tasks(SourceArn=sources.out["WorkDeadLettersArn"])["Results"][0]
        if task["Status"] == "COMPLETED":
            break
        time.sleep(0.2)
    assert task["Status"] == "COMPLETED" and task["ApproximateNumberOfMessagesMoved"] == 5, task
    assert handle and task["ApproximateNumberOfMessagesToMove"] == 5
    moved = sqs.receive_message(QueueUrl=work, MaxNumberOfMessages=10, MessageAttributeNames=["All"])["Messages"]
    assert sorted(m["Body"] for m in moved) == [f"job {n}" for n in range(5)]
    assert {m["MessageAttributes"]["n"]["StringValue"] for m in moved} == {"0", "1", "2", "3", "4"}
    assert _counts(sqs, dlq) == (0, 0)
    with pytest.raises(ClientError) as info:
        sqs.start_message_move_task(SourceArn=sources.out["WorkArn"])  # not a dead-letter queue
    assert info.value.response["Error"]["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as info:
        sqs.cancel_message_move_task(TaskHandle="nope")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


@pytest.mark.parametrize(
    ("service", "call", "code"),
    [
        ("kinesis", lambda c: c.describe_account_settings(), "UnknownOperationException"),  # JSON protocol
        ("sns", lambda c: c.get_sms_sandbox_account_status(), "InvalidAction"),  # query protocol
        ("events", lambda c: c.list_endpoints(), "UnknownOperationException"),
    ],
)
def test_apis_moto_lacks_answer_aws_shaped_errors(sources: Sources, service: str, call: object, code: str) -> None:
    client = sources.cloud.client(service)
    with pytest.raises(ClientError) as info:
        call(client)  # type: ignore[operator]
    error = info.value.response["Error"]
    assert error["Code"] == code
    assert "not implemented by the local cloud" in error["Message"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501


def test_the_aws_cli_reports_a_missing_api_clearly(sources: Sources) -> None:
    result = sources.cloud.aws("sns", "get-sms-sandbox-account-status", check=False)
    assert result.returncode != 0
    assert "InvalidAction" in result.stderr and "not implemented by the local cloud" in result.stderr
    assert "Unable to parse" not in result.stderr and "<html" not in result.stderr.lower()
