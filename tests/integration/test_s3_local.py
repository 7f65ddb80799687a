"""S3 notifications on a real `lambdalab up`: prefix/suffix filters, the S3 event record to Lambda (asynchronously)
and to SQS, the EventBridge event on the default bus, and `aws s3 cp` / download_file (HeadObject's Content-Length)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support.sources import Sources, drain

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).parents[2] / "events" / "s3-put.json"


def _s3_records(entries: list[dict]) -> list[dict]:
    return [
        e["event"]["Records"][0]
        for e in entries
        if isinstance(e["event"], dict) and e["event"].get("Records", [{}])[0].get("eventSource") == "aws:s3"
    ]


def test_matching_objects_reach_the_function_as_s3_records(sources: Sources) -> None:
    s3 = sources.cloud.client("s3")
    bucket = sources.out["BucketName"]
    before = len(_s3_records(sources.entries("async")))
    s3.put_object(Bucket=bucket, Key="uploads/a b.json", Body=b'{"x": 1}')  # prefix and suffix match
    s3.put_object(Bucket=bucket, Key="uploads/a.txt", Body=b"x")  # wrong suffix
    s3.put_object(Bucket=bucket, Key="elsewhere/a.json", Body=b"x")  # wrong prefix
    s3.copy_object(Bucket=bucket, Key="uploads/copy.json", CopySource={"Bucket": bucket, "Key": "uploads/a b.json"})
    entries = sources.wait_entries("async", lambda es: len(_s3_records(es)) >= before + 2, what="two S3 records")
    records = _s3_records(entries)[before:]
    assert sorted(r["s3"]["object"]["key"] for r in records) == ["uploads/a+b.json", "uploads/copy.json"]
    put = next(r for r in records if r["eventName"] == "ObjectCreated:Put")
    assert put["eventVersion"] == "2.1" and put["eventSource"] == "aws:s3" and put["awsRegion"] == "us-east-1"
    assert put["s3"]["bucket"]["name"] == bucket and put["s3"]["bucket"]["arn"] == f"arn:aws:s3:::{bucket}"
    assert put["s3"]["object"]["size"] == 8 and put["s3"]["object"]["eTag"] and put["s3"]["object"]["sequencer"]
    assert {r["eventName"] for r in records} == {"ObjectCreated:Put", "ObjectCreated:Copy"}
    sample = json.loads(SAMPLE.read_text())["Records"][0]
    assert set(put) == set(sample) and set(put["s3"]) == set(sample["s3"])
    assert set(sample["s3"]["object"]) <= set(put["s3"]["object"])
    assert {r["invocation_type"] for r in sources.records_of(sources.out["AsyncName"])} == {"Event"}


def test_queue_notifications_and_eventbridge(sources: Sources) -> None:
    s3 = sources.cloud.client("s3")
    sqs = sources.cloud.client("sqs")
    bucket = sources.out["BucketName"]
    s3.put_object(Bucket=bucket, Key="events/report.csv", Body=b"a,b\n")
    bodies: list[dict] = []
    deadline = time.monotonic() + 15
    while not any("Records" in b for b in bodies) and time.monotonic() < deadline:
        bodies += [json.loads(m["Body"]) for m in drain(sqs, sources.out["UploadsQueueUrl"], wait_s=2)]
    records = [b["Records"][0] for b in bodies if "Records" in b]
    assert [r["s3"]["object"]["key"] for r in records] == ["events/report.csv"]
    # S3 sends a test event when the notification is configured, as AWS does
    assert any(b.get("Event") == "s3:TestEvent" for b in bodies) or len(bodies) == 1
    # the bucket sends to EventBridge too: a default-bus rule with a wildcard on the key
    entries = sources.wait_entries(
        "async",
        lambda es: any(isinstance(e["event"], dict) and e["event"].get("source") == "aws.s3" for e in es),
        what="the EventBridge S3 event",
    )
    event = next(e["event"] for e in entries if isinstance(e["event"], dict) and e["event"].get("source") == "aws.s3")
    assert event["detail-type"] == "Object Created" and event["resources"] == [f"arn:aws:s3:::{bucket}"]
    detail = event["detail"]
    assert detail["bucket"] == {"name": bucket} and detail["object"]["key"] == "events/report.csv"
    assert detail["reason"] == "PutObject" and detail["object"]["size"] == 4


def test_aws_s3_cp_and_download_file(sources: Sources, tmp_path: Path) -> None:
    """`aws s3 cp s3://bucket/key .` failed with `fatal error: 'ContentLength'` (HeadObject had no Content-Length)."""
    s3 = sources.cloud.client("s3")
    bucket = sources.out["BucketName"]
    s3.put_object(Bucket=bucket, Key="data/blob.bin", Body=bytes(range(256)) * 40)
    head = s3.head_object(Bucket=bucket, Key="data/blob.bin")
    assert head["ContentLength"] == 10240
    target = tmp_path / "blob.bin"
    result = sources.cloud.aws("s3", "cp", f"s3://{bucket}/data/blob.bin", str(target))
    assert target.read_bytes() == bytes(range(256)) * 40, result.stderr
    again = tmp_path / "again.bin"
    s3.download_file(bucket, "data/blob.bin", str(again))
    assert again.read_bytes() == target.read_bytes()
