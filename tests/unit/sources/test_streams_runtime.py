"""The stream mapping runtime with fakes at its seams (a reader, a SyncInvoker, a Sender): the lanes run at once up
to shards x factor, throttles never lose records, discards are described to the destination with the batch info,
and a mapping stopped mid-batch resumes with the abandoned records first."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from lambdalab.awslambda.core.esm import EventSourceMapping, SourceKind, settings_from
from lambdalab.clock import Clocks
from lambdalab.sources.invoke import InvokeRefused, SyncResult
from lambdalab.sources.streams import DynamoDBStreamReader, RawRecord, StreamRuntime

ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/s"


class FakeReader:
    kind = "kinesis"
    arn = ARN

    def __init__(self, shards: dict[str, list[tuple[str, dict]]]) -> None:
        self._pending = {shard: [self._raw(i, key, data) for i, (key, data) in enumerate(records)]
                         for shard, records in shards.items()}  # fmt: skip

    @staticmethod
    def _raw(index: int, key: str, data: str) -> RawRecord:
        record = {"kinesis": {"partitionKey": key, "sequenceNumber": str(index + 1), "data": data}}
        return RawRecord(index + 1, key, time.time(), 10, record)

    def shards(self) -> list[str]:
        return list(self._pending)

    def iterator(self, shard_id: str, position: str, timestamp: float | None) -> str:
        return shard_id

    def read(self, iterator: str, limit: int) -> tuple[list[RawRecord], str | None]:
        records, self._pending[iterator] = self._pending[iterator][:limit], self._pending[iterator][limit:]
        return records, iterator


class FakeInvoker:
    def __init__(self, *, sleep_s: float = 0.02, throttle_first: int = 0, poison: str = "") -> None:
        self.sleep_s = sleep_s
        self.throttles_left = throttle_first
        self.poison = poison
        self.running = 0
        self.peak = 0
        self.done: list[tuple[str, int]] = []

    async def invoke_sync(self, function_arn: str, payload: bytes) -> SyncResult:
        if self.throttles_left:
            self.throttles_left -= 1
            raise InvokeRefused("TooManyRequestsException", "Rate Exceeded.", status=429, throttled=True)
        records = json.loads(payload)["Records"]
        self.running += 1
        self.peak = max(self.peak, self.running)
        await asyncio.sleep(self.sleep_s)
        self.running -= 1
        if any(r["kinesis"]["data"] == self.poison for r in records):
            return SyncResult(b'{"errorMessage": "poison"}', "Unhandled", "$LATEST")
        self.done += [(r["kinesis"]["partitionKey"], int(r["kinesis"]["sequenceNumber"])) for r in records]
        return SyncResult(b"null", None, "$LATEST")


class FakeSender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    async def send(self, target_arn: str, body: bytes, attributes: dict[str, str]) -> None:
        self.sent.append((target_arn, json.loads(body)))


def runtime(reader: FakeReader, invoker: FakeInvoker, sender: FakeSender, **settings: Any) -> StreamRuntime:
    body = {"StartingPosition": "TRIM_HORIZON", **settings}
    mapping = EventSourceMapping(
        uuid="u-1",
        event_source_arn=ARN,
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
        settings=settings_from(body, source=SourceKind.KINESIS),
        region="us-east-1",
        account_id="123456789012",
        last_modified=1_800_000_000.0,
    )

    async def blocking(fn: Any, *args: Any) -> Any:
        return fn(*args)

    return StreamRuntime(
        mapping, reader, invoker, blocking=blocking, clocks=Clocks.wall(), time_scale=0.01, sender=sender,
        function_name="f",
    )  # fmt: skip


async def run_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert predicate(), "timed out"


def spawn(coro: Any, name: str) -> asyncio.Task[Any]:
    return asyncio.ensure_future(coro)


async def test_lanes_run_concurrently_up_to_shards_times_factor_in_key_order() -> None:
    shards = {f"shardId-{n}": [(f"k{i % 5}", "x") for i in range(40)] for n in range(2)}
    invoker, sender = FakeInvoker(sleep_s=0.03), FakeSender()
    stream = runtime(FakeReader(shards), invoker, sender, BatchSize=2, ParallelizationFactor=3)
    stream.start(spawn)
    await run_until(lambda: len(invoker.done) == 80)
    await stream.stop(0.5)
    assert 2 <= invoker.peak <= 6 and stream.stats.peak_in_flight <= 6
    assert stream.mapping.state.value == "Enabled" and stream.mapping.last_processing_result == "OK"


async def test_throttles_are_retried_and_lose_nothing() -> None:
    invoker, sender = FakeInvoker(throttle_first=5), FakeSender()
    stream = runtime(FakeReader({"shardId-0": [("k", "x")] * 6}), invoker, sender, BatchSize=3)
    stream.start(spawn)
    await run_until(lambda: len(invoker.done) == 6)
    await stream.stop(0.5)
    assert stream.stats.throttles == 5 and sender.sent == []
    assert [seq for _, seq in invoker.done] == [1, 2, 3, 4, 5, 6]


async def test_discarded_records_are_described_to_the_on_failure_destination() -> None:
    destination = "arn:aws:sqs:us-east-1:123456789012:failures"
    invoker, sender = FakeInvoker(poison="bad"), FakeSender()
    records = [("k", "ok"), ("k", "ok"), ("k", "bad"), ("k", "ok")]
    stream = runtime(
        FakeReader({"shardId-0": records}), invoker, sender, BatchSize=4, BisectBatchOnFunctionError=True,
        MaximumRetryAttempts=0, DestinationConfig={"OnFailure": {"Destination": destination}},
    )  # fmt: skip
    stream.start(spawn)
    await run_until(lambda: len(invoker.done) == 3 and sender.sent)
    await stream.stop(0.5)
    ((target, record),) = sender.sent
    assert target == destination
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["functionArn"].endswith(":function:f")
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    info = record["KinesisBatchInfo"]
    assert (info["shardId"], info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        "shardId-0", "3", "3", 1,
    )  # fmt: skip
    assert info["streamArn"] == ARN and info["approximateArrivalOfFirstRecord"].endswith("Z")
    assert sorted(seq for _, seq in invoker.done) == [1, 2, 4]
    assert stream.counts() == {"pending": 0, "in_flight": 0, "succeeded": 3, "filtered": 0, "discarded": 1}
    assert stream.stats.delivered_on_failure == 1


async def test_filter_criteria_leave_records_out_before_batching() -> None:
    invoker, sender = FakeInvoker(), FakeSender()
    import base64

    keep = base64.b64encode(b'{"t": "buy"}').decode()
    drop = base64.b64encode(b'{"t": "sell"}').decode()
    stream = runtime(
        FakeReader({"shardId-0": [("k", keep), ("k", drop), ("k", keep)]}), invoker, sender,
        FilterCriteria={"Filters": [{"Pattern": '{"data": {"t": ["buy"]}}'}]},
    )  # fmt: skip
    stream.start(spawn)
    await run_until(lambda: len(invoker.done) == 2)
    await stream.stop(0.5)
    assert [seq for _, seq in invoker.done] == [1, 3] and stream.stats.filtered_out == 1


class _StubStreams:
    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        return {"Records": self.records, "NextShardIterator": None}


def test_a_record_without_its_time_is_stamped_with_the_epoch_clock() -> None:
    # the stream's own ApproximateCreationDateTime is kept; one without gets the local cloud's epoch time, not the
    # machine's
    _, clocks = Clocks.virtual(start_epoch=1_800_000_000.0)
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-11-22T00:00:00.000"
    reader = DynamoDBStreamReader(arn, "http://127.0.0.1:9", "us-east-1", clocks.epoch)
    dated = {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "1", "ApproximateCreationDateTime": 1_700_000_000}}
    undated = {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "2"}}
    reader._client = _StubStreams([dated, undated])
    raws, _ = reader.read("iterator", 10)
    assert [raw.arrival_epoch for raw in raws] == [1_700_000_000.0, 1_800_000_000.0]
    assert raws[1].record["dynamodb"]["ApproximateCreationDateTime"] == 1_800_000_000
