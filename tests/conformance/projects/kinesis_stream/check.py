"""Every record arrived once, in Kinesis's event shape, in the order it was put for its partition key."""

import base64
import json

from lambdalab import constants


def check(stack) -> None:
    stream_arn = stack.name_of("Clicks.Arn")
    batches = stack.received["Reports"]
    assert all(1 <= len(b["Records"]) <= 5 for b in batches), [len(b["Records"]) for b in batches]
    by_key: dict[str, list[int]] = {}
    for batch in batches:
        for record in batch["Records"]:
            assert record["eventSource"] == "aws:kinesis", record
            assert record["eventName"] == "aws:kinesis:record", record
            assert record["eventVersion"] == "1.0", record
            assert record["eventSourceARN"] == stream_arn, record
            assert record["awsRegion"] == constants.DEFAULT_REGION, record
            assert record["eventID"].startswith("shardId-"), record
            kinesis = record["kinesis"]
            assert kinesis["kinesisSchemaVersion"] == "1.0", record
            assert kinesis["sequenceNumber"] and isinstance(kinesis["approximateArrivalTimestamp"], float), record
            data = json.loads(base64.b64decode(kinesis["data"]))
            assert data["page"] == "/home", data
            by_key.setdefault(kinesis["partitionKey"], []).append(int(data["n"]))
    assert by_key == {
        "user-a": [0, 3, 6, 9],
        "user-b": [1, 4, 7, 10],
        "user-c": [2, 5, 8, 11],
    }, by_key
