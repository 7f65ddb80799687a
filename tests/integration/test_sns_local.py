"""SNS → Lambda on a real `lambdalab up`: the AWS CLI's `sns publish`, filter policies on attributes and on the body,
the SNS event shape, asynchronous invocation, and a subscription whose function is gone going to its DLQ."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.sources import Sources, drain

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).parents[2] / "events" / "sns-notification.json"


def _sns_events(entries: list[dict]) -> list[dict]:
    return [e["event"] for e in entries if "Records" in e["event"] and e["event"]["Records"][0].get("EventSource")]


def test_publish_with_the_aws_cli_reaches_the_function_asynchronously_in_snss_shape(sources: Sources) -> None:
    # GIVEN the subscription's policy {kind: [order], amount: [{numeric: [> 10]}]}
    attributes = json.dumps(
        {"kind": {"DataType": "String", "StringValue": "order"}, "amount": {"DataType": "Number", "StringValue": "12"}}
    )
    # WHEN the AWS CLI publishes (the call that failed with "invalid XML" before)
    result = sources.cloud.aws(
        "sns", "publish", "--topic-arn", sources.out["TopicArn"], "--message", "hello sns",
        "--subject", "greeting", "--message-attributes", attributes,
    )  # fmt: skip
    message_id = json.loads(result.stdout)["MessageId"]
    # THEN the function gets SNS's event, invoked as an Event
    entries = sources.wait_entries(
        "async",
        lambda es: any(ev["Records"][0]["Sns"]["MessageId"] == message_id for ev in _sns_events(es)),
        what="the SNS event",
    )
    event = next(ev for ev in _sns_events(entries) if ev["Records"][0]["Sns"]["MessageId"] == message_id)
    (record,) = event["Records"]
    assert record["EventSource"] == "aws:sns" and record["EventVersion"] == "1.0"
    assert record["EventSubscriptionArn"].startswith(sources.out["TopicArn"] + ":")
    sns = record["Sns"]
    assert sns["Type"] == "Notification" and sns["TopicArn"] == sources.out["TopicArn"]
    assert sns["Message"] == "hello sns" and sns["Subject"] == "greeting"
    assert sns["MessageAttributes"]["amount"] == {"Type": "Number", "Value": "12"}
    assert sns["Timestamp"].endswith("Z") and sns["Signature"] and sns["SigningCertUrl"].startswith("https://")
    sample = json.loads(SAMPLE.read_text())["Records"][0]
    assert set(record) == set(sample) and set(sns) == set(sample["Sns"])
    records = sources.cloud.wait_records(
        lambda rs: any(r["function_name"] == sources.out["AsyncName"] and r["invocation_type"] == "Event" for r in rs),
        what="an Event invocation record",
    )
    assert {r["invocation_type"] for r in records if r["function_name"] == sources.out["AsyncName"]} == {"Event"}


def test_filter_policies_on_attributes_and_body(sources: Sources) -> None:
    sns = sources.cloud.client("sns")
    before = len(_sns_events(sources.entries("async")))
    # topic → (attributes, body, delivered): the attribute policy {kind: [order], amount: [{numeric: [> 10]}]} on
    # Topic; the body policy {detail: {region: [{prefix: eu-}]}} on BodyTopic
    cases = {
        "small": ("TopicArn", {"kind": "order", "amount": "5"}, "x", False),
        "wrong kind": ("TopicArn", {"kind": "refund", "amount": "50"}, "x", False),
        "no amount": ("TopicArn", {"kind": "order"}, "x", False),
        "big": ("TopicArn", {"kind": "order", "amount": "3.1e2"}, "not json", True),
        "eu body": ("BodyTopicArn", {}, '{"detail": {"region": "eu-west-1"}}', True),
        "us body": ("BodyTopicArn", {"kind": "order", "amount": "50"}, '{"detail": {"region": "us-east-1"}}', False),
        "text body": ("BodyTopicArn", {}, "eu-west-1", False),  # not JSON: a body policy cannot match it
    }
    for name, (topic, attributes, body, _) in cases.items():
        message_attributes = {
            k: {"DataType": "Number" if k == "amount" else "String", "StringValue": v} for k, v in attributes.items()
        }
        sns.publish(TopicArn=sources.out[topic], Message=body, Subject=name, MessageAttributes=message_attributes)
    expected = sorted(name for name, (_, _, _, delivered) in cases.items() if delivered)
    entries = sources.wait_entries(
        "async", lambda es: len(_sns_events(es)) >= before + len(expected), what="the filtered SNS events"
    )
    got = sorted(ev["Records"][0]["Sns"]["Subject"] for ev in _sns_events(entries)[before:])
    assert got == expected


def test_a_subscription_to_a_missing_function_goes_to_its_dead_letter_queue(sources: Sources) -> None:
    sqs = sources.cloud.client("sqs")
    sns = sources.cloud.client("sns")
    message_id = sns.publish(
        TopicArn=sources.out["TopicArn"],
        Message="nobody home",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "lost"}},
    )["MessageId"]
    messages = drain(sqs, sources.out["SnsDeadLettersUrl"], expect=1, wait_s=15)
    lost = [m for m in messages if json.loads(m["Body"]).get("MessageId") == message_id]
    assert lost, [m["Body"] for m in messages]
    body = json.loads(lost[0]["Body"])
    assert body["Message"] == "nobody home" and body["TopicArn"] == sources.out["TopicArn"]
    attributes = {k: v["StringValue"] for k, v in lost[0]["MessageAttributes"].items()}
    assert attributes["ErrorCode"] == "404" and "ResourceNotFoundException" in attributes["ErrorMessage"]
    assert attributes["RequestID"]
