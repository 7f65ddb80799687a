"""The SQS poller's event (Lambda's record shape) and its reading of a partial batch response."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lambdalab.awslambda.esm.sqs_poller import failed_item_ids, sqs_event


def test_the_event_has_lambdas_record_shape() -> None:
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "rh",
        "Body": '{"n": 1}',
        "MD5OfBody": "abc",
        "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1"},
        "MessageAttributes": {
            "k": {"DataType": "String", "StringValue": "v"},
            "b": {"DataType": "Binary", "BinaryValue": b"\x01"},
        },
    }
    event = sqs_event([message], "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1")
    (record,) = event["Records"]
    assert record == {
        "messageId": "m1",
        "receiptHandle": "rh",
        "body": '{"n": 1}',
        "attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1"},
        "messageAttributes": {
            "k": {"stringValue": "v", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
            "b": {"binaryValue": "AQ==", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"},
        },
        "md5OfBody": "abc",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "awsRegion": "us-east-1",
    }


def test_the_event_matches_the_stack_sample_keys() -> None:
    sample = json.loads((Path(__file__).parents[4] / "events" / "sqs-batch.json").read_text())["Records"][0]
    message = {"MessageId": "m", "ReceiptHandle": "r", "Body": "", "MD5OfBody": "", "Attributes": {}}
    ours = sqs_event([message], "arn:aws:sqs:us-east-1:1:q", "us-east-1")["Records"][0]
    assert set(ours) == set(sample)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", set()),
        (b"null", set()),
        (b"{}", set()),
        (b'{"batchItemFailures": []}', set()),
        (b'{"batchItemFailures": null}', set()),
        (b'{"batchItemFailures": [{"itemIdentifier": "a"}]}', {"a"}),
        (b'{"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]}', {"a", "b"}),
        (b"not json", None),
        (b'{"batchItemFailures": [{"itemIdentifier": ""}]}', None),
        (b'{"batchItemFailures": [{"itemIdentifier": null}]}', None),
        (b'{"batchItemFailures": [{"id": "a"}]}', None),
        (b'{"batchItemFailures": [{"itemIdentifier": "zzz"}]}', None),
        (b'{"batchItemFailures": "a"}', None),
        (b"[1]", None),
    ],
)
def test_partial_batch_response_rules(body: bytes, expected: set[str] | None) -> None:
    assert failed_item_ids(body, {"a", "b", "c"}) == expected
