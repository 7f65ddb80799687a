"""DynamoDB Streams event source mappings on a real `lambdalab up`: the table's writes become INSERT / MODIFY /
REMOVE records with the images NEW_AND_OLD_IMAGES gives, in order per item, filtered by the mapping's criteria."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.sources import Sources

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).parents[2] / "events" / "dynamodb-stream.json"


def _records(entries: list[dict]) -> list[dict]:
    return [r for e in entries if not e["failed"] for r in e["event"]["Records"]]


def test_table_writes_reach_the_function_as_stream_records(sources: Sources) -> None:
    ddb = sources.cloud.client("dynamodb")
    table = sources.out["TableName"]
    ddb.put_item(TableName=table, Item={"pk": {"S": "order-1"}, "status": {"S": "new"}})
    ddb.update_item(
        TableName=table,
        Key={"pk": {"S": "order-1"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "paid"}},
    )
    ddb.put_item(TableName=table, Item={"pk": {"S": "skip"}, "status": {"S": "ignored"}})  # filtered out
    ddb.delete_item(TableName=table, Key={"pk": {"S": "order-1"}})
    entries = sources.wait_entries("dynamodb", lambda es: len(_records(es)) >= 3, what="three stream records")
    records = _records(entries)
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    insert, modify, remove = records
    assert insert["dynamodb"]["NewImage"] == {"pk": {"S": "order-1"}, "status": {"S": "new"}}
    assert "OldImage" not in insert["dynamodb"]
    assert modify["dynamodb"]["OldImage"]["status"] == {"S": "new"}
    assert modify["dynamodb"]["NewImage"]["status"] == {"S": "paid"}
    assert remove["dynamodb"]["OldImage"]["status"] == {"S": "paid"} and "NewImage" not in remove["dynamodb"]
    assert int(insert["dynamodb"]["SequenceNumber"]) < int(modify["dynamodb"]["SequenceNumber"])
    assert all(r["dynamodb"]["Keys"] == {"pk": {"S": "order-1"}} for r in records)
    assert insert["eventSource"] == "aws:dynamodb" and insert["eventVersion"] == "1.1"
    assert insert["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert insert["eventSourceARN"].startswith(f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/")
    sample = json.loads(SAMPLE.read_text())["Records"][0]
    assert set(insert) == set(sample) and set(insert["dynamodb"]) == set(sample["dynamodb"])
    invocations = sources.records_of(sources.out["TableConsumerName"])
    assert {r["invocation_type"] for r in invocations} == {"RequestResponse"}


def test_the_filtered_write_was_left_out_and_counted(sources: Sources) -> None:
    records = _records(sources.entries("dynamodb"))
    assert all(r["dynamodb"]["Keys"]["pk"]["S"] != "skip" for r in records)
    lam = sources.cloud.client("lambda")
    (mapping,) = lam.list_event_source_mappings(FunctionName=sources.out["TableConsumerName"])["EventSourceMappings"]
    assert json.loads(mapping["FilterCriteria"]["Filters"][0]["Pattern"])["dynamodb"]["Keys"]
    assert mapping["StartingPosition"] == "TRIM_HORIZON" and mapping["ParallelizationFactor"] == 2
    assert mapping["LastProcessingResult"] == "OK"
