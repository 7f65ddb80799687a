"""Kinesis event source mappings on a real `lambdalab up`: a 2-shard stream with ParallelizationFactor 3 never runs
more than 6 batches at once and keeps per-key order; a poison record is bisected out, retried, discarded to the
on-failure destination with the KinesisBatchInfo record, and every other record is processed (nothing lost)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.support.sources import Sources, drain

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).parents[2] / "events" / "kinesis-records.json"


def _mapping(sources: Sources) -> dict:
    lam = sources.cloud.client("lambda")
    (mapping,) = lam.list_event_source_mappings(FunctionName=sources.out["StreamConsumerName"])["EventSourceMappings"]
    deadline = time.monotonic() + 10
    while mapping["State"] != "Enabled" and time.monotonic() < deadline:
        time.sleep(0.2)
        mapping = lam.get_event_source_mapping(UUID=mapping["UUID"])
    return mapping


def _put(sources: Sources, records: list[tuple[str, dict]]) -> dict[str, str]:
    """Put (key, data) records in order; return sequence → key."""
    kinesis = sources.cloud.client("kinesis")
    answer = kinesis.put_records(
        StreamName=sources.out["StreamName"],
        Records=[{"PartitionKey": key, "Data": json.dumps(data).encode()} for key, data in records],
    )
    assert answer["FailedRecordCount"] == 0
    return {
        f"{r['ShardId']}:{r['SequenceNumber']}": key for r, (key, _) in zip(answer["Records"], records, strict=True)
    }


def test_the_mapping_reports_its_stream_settings(sources: Sources) -> None:
    mapping = _mapping(sources)
    assert mapping["State"] == "Enabled" and mapping["EventSourceArn"] == sources.out["StreamArn"]
    assert mapping["StartingPosition"] == "LATEST" and mapping["BatchSize"] == 4
    assert mapping["ParallelizationFactor"] == 3 and mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == 1 and mapping["MaximumRecordAgeInSeconds"] == -1
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"].endswith(":" + "StreamFailures".lower()) or (
        "StreamFailures" in mapping["DestinationConfig"]["OnFailure"]["Destination"]
    )


def test_shards_times_factor_bounds_concurrency_and_each_key_stays_in_order(sources: Sources) -> None:
    _mapping(sources)
    keys = [f"key-{i}" for i in range(12)]
    put = _put(sources, [(keys[i % len(keys)], {"n": i}) for i in range(96)])
    entries = sources.wait_entries(
        "kinesis",
        lambda es: sum(len(e["records"]) for e in es if not e["failed"]) >= 96,
        timeout=40,
        what="all 96 records processed",
    )
    batches = [e for e in entries if any(f"{k}" in keys for k, _ in e["records"])]
    # concurrency: the most batches running at one moment
    moments = sorted([(b["started"], 1) for b in batches] + [(b["ended"], -1) for b in batches])
    running = peak = 0
    for _, step in moments:
        running += step
        peak = max(peak, running)
    print(f"\n{len(batches)} batches, peak {peak} at once")
    assert peak <= 6, f"{peak} batches ran at once on 2 shards x ParallelizationFactor 3"
    assert peak >= 3, "lanes did not run in parallel"
    # order: within one key (one shard), sequence numbers are processed in increasing order
    by_key: dict[str, list[int]] = {}
    for batch in sorted(batches, key=lambda b: b["started"]):
        for key, sequence in batch["records"]:
            by_key.setdefault(key, []).append(sequence)
    for key, sequences in by_key.items():
        assert sequences == sorted(sequences), f"{key} out of order: {sequences}"
    assert sum(len(s) for s in by_key.values()) == len(put) == 96
    # the event: Lambda's Kinesis record, invoked synchronously
    record = batches[0]["event"]["Records"][0]
    sample = json.loads(SAMPLE.read_text())["Records"][0]
    assert set(record) == set(sample) and set(record["kinesis"]) == set(sample["kinesis"])
    assert record["eventSource"] == "aws:kinesis" and record["eventSourceARN"] == sources.out["StreamArn"]
    assert record["eventID"].startswith("shardId-") and record["eventName"] == "aws:kinesis:record"
    assert record["invokeIdentityArn"].startswith("arn:aws:iam::")
    invocations = sources.records_of(sources.out["StreamConsumerName"])
    assert invocations and {r["invocation_type"] for r in invocations} == {"RequestResponse"}


def test_a_poison_record_is_bisected_out_retried_and_sent_to_the_destination(sources: Sources) -> None:
    _mapping(sources)
    records = [("poison-key", {"n": i, "poison": i == 5}) for i in range(8)]
    put = _put(sources, records)
    poison_sequence = next(int(k.split(":")[1]) for k, (_, data) in zip(put, records, strict=True) if data["poison"])
    sqs = sources.cloud.client("sqs")
    messages = drain(sqs, sources.out["StreamFailuresUrl"], expect=1, wait_s=30)
    assert messages, "no on-failure record"
    failure = json.loads(messages[0]["Body"])
    info = failure["KinesisBatchInfo"]
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] >= 2
    assert failure["responseContext"]["functionError"] == "Unhandled"
    assert info["streamArn"] == sources.out["StreamArn"] and info["batchSize"] == 1  # bisected down to the poison
    assert int(info["startSequenceNumber"]) == int(info["endSequenceNumber"]) == poison_sequence
    # nothing lost: every other record was processed, each exactly in order of its sequence
    entries = sources.wait_entries(
        "kinesis",
        lambda es: (
            {s for e in es if not e["failed"] for k, s in e["records"] if k == "poison-key"}
            >= {int(k.split(":")[1]) for k in put} - {poison_sequence}
        ),
        what="the good records",
    )
    done = [s for e in entries if not e["failed"] for k, s in e["records"] if k == "poison-key"]
    assert sorted(set(done)) == sorted({int(k.split(":")[1]) for k in put} - {poison_sequence})
    assert poison_sequence not in done


def test_the_lambda_api_creates_updates_and_deletes_stream_mappings(sources: Sources) -> None:
    """`aws lambda create-event-source-mapping` with a stream ARN, the settings echoed, an update, a delete; and the
    errors Lambda gives for what it refuses, with nothing created."""
    function = sources.out["AsyncName"]
    created = json.loads(
        sources.cloud.aws(
            "lambda", "create-event-source-mapping", "--function-name", function,
            "--event-source-arn", sources.out["StreamArn"], "--starting-position", "LATEST",
            "--batch-size", "50", "--parallelization-factor", "4", "--maximum-record-age-in-seconds", "120",
            "--filter-criteria", json.dumps({"Filters": [{"Pattern": json.dumps({"data": {"kind": ["x"]}})}]}),
        ).stdout
    )  # fmt: skip
    assert created["State"] == "Creating" and created["StartingPosition"] == "LATEST"
    assert (created["BatchSize"], created["ParallelizationFactor"]) == (50, 4)
    assert created["MaximumRecordAgeInSeconds"] == 120 and created["MaximumRetryAttempts"] == -1
    assert created["BisectBatchOnFunctionError"] is False and created["DestinationConfig"] == {}
    lam = sources.cloud.client("lambda")
    uuid = created["UUID"]
    updated = lam.update_event_source_mapping(UUID=uuid, ParallelizationFactor=2, MaximumRetryAttempts=3)
    assert updated["ParallelizationFactor"] == 2 and updated["MaximumRetryAttempts"] == 3
    deadline = time.monotonic() + 10
    while lam.get_event_source_mapping(UUID=uuid)["State"] != "Enabled" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lam.get_event_source_mapping(UUID=uuid)["State"] == "Enabled"
    lam.delete_event_source_mapping(UUID=uuid)
    bad = [
        ({}, "StartingPosition is required"),
        ({"StartingPosition": "LATEST", "ParallelizationFactor": 11}, "parallelizationFactor"),
        ({"StartingPosition": "LATEST", "MaximumRecordAgeInSeconds": 10}, "maximumRecordAgeInSeconds"),
        ({"StartingPosition": "LATEST", "ScalingConfig": {"MaximumConcurrency": 5}}, "ScalingConfig"),
        ({"StartingPosition": "LATEST", "FilterCriteria": {"Filters": [{"Pattern": '{"data": ["x"]}'}]}},
         "must be a JSON object"),
    ]  # fmt: skip
    for extra, message in bad:
        with pytest.raises(ClientError) as info:
            lam.create_event_source_mapping(FunctionName=function, EventSourceArn=sources.out["StreamArn"], **extra)
        assert info.value.response["Error"]["Code"] == "InvalidParameterValueException", extra
        assert message in info.value.response["Error"]["Message"], info.value.response["Error"]["Message"]
    missing = sources.out["StreamArn"].replace("stream/", "stream/no-such-")
    with pytest.raises(ClientError) as info:
        lam.create_event_source_mapping(FunctionName=function, EventSourceArn=missing, StartingPosition="LATEST")
    assert "Stream not found" in info.value.response["Error"]["Message"]
    deadline = time.monotonic() + 10
    while lam.list_event_source_mappings(FunctionName=function)["EventSourceMappings"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lam.list_event_source_mappings(FunctionName=function)["EventSourceMappings"] == []
