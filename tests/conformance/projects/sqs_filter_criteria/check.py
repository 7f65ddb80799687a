"""The two wanted messages, and only they, arrived in SQS's record shape."""

import json

from lambdalab import constants


def check(stack) -> None:
    records = [r for report in stack.received["Reports"] for r in report["Records"]]
    assert sorted(json.loads(r["body"])["id"] for r in records) == ["order-1", "urgent-refund"], records
    for record in records:
        assert record["eventSource"] == "aws:sqs", record
        assert record["eventSourceARN"] == stack.name_of("Payments.Arn"), record
        assert record["awsRegion"] == constants.DEFAULT_REGION, record
        assert record["messageId"] and record["receiptHandle"] and record["md5OfBody"], record
        assert record["attributes"]["ApproximateReceiveCount"] == "1", record
        assert record["messageAttributes"] == {}, record
