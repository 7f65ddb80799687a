"""Kinesis and DynamoDB stream event source mappings at run time: shard readers against the local streams (moto's
Kinesis and DynamoDB Streams APIs), one worker per lane, synchronous invokes through a `SyncInvoker`.

The rules (lanes, batches, retries, bisect, record age) are `lambdalab.sources.stream_policy`; this module reads,
invokes and delivers. The event shapes are Lambda's: `{"Records": [...]}` with the `kinesis` record
(`kinesisSchemaVersion`, `partitionKey`, `sequenceNumber`, base64 `data`, `approximateArrivalTimestamp`, `eventID`
`shardId-...:seq`, `eventName` `aws:kinesis:record`, `invokeIdentityArn`) or the `dynamodb` record (`eventName`
INSERT/MODIFY/REMOVE, `eventVersion` 1.1, `dynamodb` with Keys, NewImage/OldImage as the StreamViewType gives them,
`ApproximateCreationDateTime`, `SequenceNumber`, `SizeBytes`, `StreamViewType`), and the on-failure record with
`KinesisBatchInfo` / `DDBStreamBatchInfo` ["Using AWS Lambda with Amazon Kinesis"; "... with Amazon DynamoDB"].
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from lambdalab.awsclients import local_session
from lambdalab.clock import Clock, Clocks
from lambdalab.sources import esm_metrics
from lambdalab.sources.esm_metrics import EsmMetrics
from lambdalab.sources.invoke import InvokeRefused, Sender, SyncInvoker
from lambdalab.sources.stream_policy import (
    Batch,
    Discard,
    Outcome,
    Rules,
    ShardLanes,
    StreamRecord,
    Wait,
    failed_sequence,
)

LOG = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.5  # Lambda polls a shard "at a base rate of once per second"; half that keeps tests quick
READ_LIMIT = 1000
BUFFER_RECORDS = 20_000  # stop reading a shard while this many of its records wait (they stay in the stream)
IDLE_WAIT_S = 0.5
STOP_TIMEOUT_S = 10.0


class StreamNotFound(Exception):
    """The event source stream does not exist (CreateEventSourceMapping answers InvalidParameterValueException)."""


@dataclass(frozen=True)
class RawRecord:
    sequence: int
    key: str
    arrival_epoch: float
    size: int
    record: dict[str, Any]  # as the function receives it


class StreamReader(Protocol):
    """Blocking access to one stream (called in worker threads)."""

    kind: str  # "kinesis" or "dynamodb"
    arn: str

    def shards(self) -> list[str]: ...

    def iterator(self, shard_id: str, position: str, timestamp: float | None) -> str: ...

    def read(self, iterator: str, limit: int) -> tuple[list[RawRecord], str | None]: ...


def _client(service: str, endpoint_url: str, region: str) -> Any:
    return local_session(region).client(
        service,
        endpoint_url=endpoint_url,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, max_pool_connections=32),
    )


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return float(value)


class KinesisReader:
    kind = "kinesis"

    def __init__(self, arn: str, endpoint_url: str, region: str, identity_arn: str, epoch: Clock) -> None:
        self.arn = arn
        self._epoch = epoch  # the arrival time of a record that has none
        self.name = arn.split(":", 5)[5].split("/", 1)[1].split("/", 1)[0]
        self.region = region
        self.identity_arn = identity_arn
        self._client = _client("kinesis", endpoint_url, region)

    def shards(self) -> list[str]:
        try:
            listed = self._client.list_shards(StreamName=self.name)["Shards"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise StreamNotFound(self.arn) from None
            raise
        return [s["ShardId"] for s in listed if "EndingSequenceNumber" not in s.get("SequenceNumberRange", {})]

    def iterator(self, shard_id: str, position: str, timestamp: float | None) -> str:
        kwargs: dict[str, Any] = {"StreamName": self.name, "ShardId": shard_id, "ShardIteratorType": position}
        if position == "AT_TIMESTAMP":
            kwargs["Timestamp"] = datetime.fromtimestamp(timestamp or 0.0, UTC)
        return str(self._client.get_shard_iterator(**kwargs)["ShardIterator"])

    def read(self, iterator: str, limit: int) -> tuple[list[RawRecord], str | None]:
        answer = self._client.get_records(ShardIterator=iterator, Limit=limit)
        shard_id = _shard_of_kinesis_iterator(answer, iterator)
        out = []
        for item in answer.get("Records") or []:
            sequence = str(item["SequenceNumber"])
            data = item.get("Data") or b""
            arrival = _epoch(item.get("ApproximateArrivalTimestamp") or self._epoch.now())
            out.append(
                RawRecord(
                    int(sequence),
                    str(item.get("PartitionKey", "")),
                    arrival,
                    len(data),
                    {
                        "kinesis": {
                            "kinesisSchemaVersion": "1.0",
                            "partitionKey": str(item.get("PartitionKey", "")),
                            "sequenceNumber": sequence,
                            "data": base64.b64encode(data).decode(),
                            "approximateArrivalTimestamp": round(arrival, 3),
                        },
                        "eventSource": "aws:kinesis",
                        "eventVersion": "1.0",
                        "eventID": f"{shard_id}:{sequence}",
                        "eventName": "aws:kinesis:record",
                        "invokeIdentityArn": self.identity_arn,
                        "awsRegion": self.region,
                        "eventSourceARN": self.arn,
                    },
                )
            )
        return out, answer.get("NextShardIterator")


def _shard_of_kinesis_iterator(answer: dict[str, Any], iterator: str) -> str:
    """moto's shard iterators are base64 of `account|stream|shard|...`; the shard id goes into eventID."""
    with contextlib.suppress(ValueError, UnicodeDecodeError, IndexError):
        parts = base64.b64decode(iterator).decode().split(":")
        for part in parts:
            if part.startswith("shardId-"):
                return part
    return str(answer.get("ShardId", "shardId-000000000000"))


class DynamoDBStreamReader:
    kind = "dynamodb"

    def __init__(self, arn: str, endpoint_url: str, region: str, epoch: Clock) -> None:
        self.arn = arn
        self._epoch = epoch  # ApproximateCreationDateTime of a record that has none
        self.region = region
        self._client = _client("dynamodbstreams", endpoint_url, region)

    def shards(self) -> list[str]:
        try:
            described = self._client.describe_stream(StreamArn=self.arn)["StreamDescription"]
        except (ClientError, KeyError) as exc:
            raise StreamNotFound(self.arn) from exc
        if described.get("StreamStatus") not in (None, "ENABLED", "ENABLING"):
            raise StreamNotFound(self.arn)
        return [s["ShardId"] for s in described.get("Shards") or []]

    def iterator(self, shard_id: str, position: str, timestamp: float | None) -> str:
        return str(
            self._client.get_shard_iterator(StreamArn=self.arn, ShardId=shard_id, ShardIteratorType=position)[
                "ShardIterator"
            ]
        )

    def read(self, iterator: str, limit: int) -> tuple[list[RawRecord], str | None]:
        answer = self._client.get_records(ShardIterator=iterator, Limit=limit)
        out = []
        for item in answer.get("Records") or []:
            body = dict(item.get("dynamodb") or {})
            created = _epoch(body.get("ApproximateCreationDateTime") or self._epoch.now())
            body["ApproximateCreationDateTime"] = int(created)
            record = {
                "eventID": item.get("eventID") or uuid.uuid4().hex,
                "eventName": item.get("eventName"),
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": self.region,
                "dynamodb": body,
                "eventSourceARN": self.arn,
            }
            if item.get("userIdentity"):
                record["userIdentity"] = item["userIdentity"]
            out.append(
                RawRecord(
                    int(body.get("SequenceNumber", "0")),
                    json.dumps(body.get("Keys") or {}, sort_keys=True),
                    created,
                    int(body.get("SizeBytes") or 0),
                    record,
                )
            )
        return out, answer.get("NextShardIterator")


def stream_reader(
    kind: str, arn: str, endpoint_url: str, region: str, identity_arn: str, *, epoch: Clock
) -> StreamReader:
    if kind == "kinesis":
        return KinesisReader(arn, endpoint_url, region, identity_arn, epoch)
    return DynamoDBStreamReader(arn, endpoint_url, region, epoch)


# --- the runtime --------------------------------------------------------------------------------------------------


@dataclass
class StreamStats:
    """What a stream mapping did; readable in process (tests) and logged at stop."""

    polls: int = 0
    received: int = 0
    filtered_out: int = 0
    batches: int = 0
    succeeded: int = 0
    function_errors: int = 0
    throttles: int = 0
    discarded: int = 0
    delivered_on_failure: int = 0
    delivery_failures: int = 0
    read_errors: int = 0
    peak_in_flight: int = 0


@dataclass
class _Shard:
    shard_id: str
    lanes: ShardLanes
    iterator: str | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    last_result: dict[int, tuple[int, str | None, str | None]] = field(default_factory=dict)  # lane → response


Blocking = Callable[..., Awaitable[Any]]


def rules_of(settings: Any, time_scale: float) -> Rules:
    return Rules(
        batch_size=settings.batch_size,
        batching_window_s=float(settings.batching_window_s),
        parallelization_factor=settings.parallelization_factor,
        maximum_retry_attempts=settings.maximum_retry_attempts,
        maximum_record_age_s=settings.maximum_record_age_s,
        bisect_on_error=settings.bisect_on_error,
        time_scale=time_scale,
    )


class StreamRuntime:
    """One stream mapping's readers and lane workers. `start(spawn)` / `await stop()`; settings via `apply()`."""

    def __init__(
        self,
        mapping: Any,
        reader: StreamReader,
        invoker: SyncInvoker,
        *,
        blocking: Blocking,
        clocks: Clocks,
        time_scale: float,
        sender: Sender | None = None,
        metrics: EsmMetrics | None = None,
        function_name: str = "",
    ) -> None:
        self.mapping = mapping
        self.reader = reader
        self.invoker = invoker
        self.sender = sender
        self.metrics = metrics
        self.function_name = function_name
        self.clock = clocks.monotonic  # lanes, batching windows, record ages
        self.epoch = clocks.epoch  # records' arrival times, iterator age, the on-failure record's timestamp
        self.time_scale = time_scale
        self._blocking = blocking
        self.stats = StreamStats()
        self.shards: dict[str, _Shard] = {}
        self.running = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._workers: dict[tuple[str, int], asyncio.Task[Any]] = {}
        self.ready = asyncio.Event()  # iterators are open: records written from now on are read

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def start(self, spawn: Callable[[Any, str], Any]) -> None:
        if self.running:
            return
        self.running = True
        spawn(self._main(), f"esm-stream-{self.mapping.uuid}")

    async def stop(self, grace_s: float = 3.0) -> None:
        self.running = False
        tasks = [t for t in self._tasks if not t.done()]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=STOP_TIMEOUT_S)
        self._tasks.clear()
        self._workers.clear()
        for shard in self.shards.values():  # abandoned invocations are retried when the mapping is enabled again
            shard.lanes.requeue_in_flight()

    def apply(self, settings: Any) -> None:
        """New settings (UpdateEventSourceMapping): the policy reads them from the next batch on."""
        for shard in self.shards.values():
            shard.lanes.update_rules(rules_of(settings, self.time_scale))
            shard.changed.set()
        if self.running:
            for shard in self.shards.values():
                self._ensure_workers(shard)

    def _task(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _main(self) -> None:
        mapping = self.mapping
        try:
            shard_ids = await self._blocking(self.reader.shards)
            settings = mapping.settings
            for shard_id in shard_ids:
                shard = self.shards.get(shard_id)
                if shard is None:
                    shard = _Shard(shard_id, ShardLanes(self.clock, rules_of(settings, self.time_scale)))
                    self.shards[shard_id] = shard
                if shard.iterator is None:
                    shard.iterator = await self._blocking(
                        self.reader.iterator,
                        shard_id,
                        settings.starting_position,
                        settings.starting_position_timestamp,
                    )
        except Exception as exc:
            LOG.warning("event source mapping %s: cannot read %s: %s", mapping.uuid, self.reader.arn, exc)
            mapping.last_processing_result = f"PROBLEM: cannot read the stream: {exc}"
            self.running = False
            return
        from lambdalab.awslambda.core.esm import MappingState

        if mapping.state in (MappingState.CREATING, MappingState.ENABLING, MappingState.UPDATING):
            mapping.state = MappingState.ENABLED
        self.ready.set()
        for shard in self.shards.values():
            self._task(self._read(shard), f"esm-read-{mapping.uuid}-{shard.shard_id}")
            self._ensure_workers(shard)
        while self.running and self._tasks:
            await asyncio.sleep(IDLE_WAIT_S)

    def _ensure_workers(self, shard: _Shard) -> None:
        for lane in range(max(len(shard.lanes.lanes), shard.lanes.rules.parallelization_factor)):
            key = (shard.shard_id, lane)
            task = self._workers.get(key)
            if task is None or task.done():
                self._workers[key] = self._task(self._work(shard, lane), f"esm-lane-{self.mapping.uuid}-{lane}")

    # --- reading ------------------------------------------------------------------------------------------------

    async def _read(self, shard: _Shard) -> None:
        filters = self.mapping.settings.filters
        while self.running and shard.iterator is not None:
            if shard.lanes.pending >= BUFFER_RECORDS:
                await asyncio.sleep(POLL_INTERVAL_S)
                continue
            self.stats.polls += 1
            try:
                raws, following = await self._blocking(self.reader.read, shard.iterator, READ_LIMIT)
            except (ClientError, BotoCoreError, KeyError, ValueError) as exc:
                self.stats.read_errors += 1
                LOG.warning("event source mapping %s: GetRecords failed: %s", self.mapping.uuid, exc)
                await asyncio.sleep(POLL_INTERVAL_S)
                continue
            if following:
                shard.iterator = following
            if not raws:
                await asyncio.sleep(POLL_INTERVAL_S)
                continue
            filters = self.mapping.settings.filters
            now, epoch = self.clock.now(), self.epoch.now()
            records = [
                StreamRecord(raw.sequence, raw.key, now - max(0.0, epoch - raw.arrival_epoch), raw.size, raw)
                for raw in raws
            ]
            accepted = [filters.matches(raw.record) for raw in raws] if filters else None
            shard.lanes.add(records, accepted)
            dropped = 0 if accepted is None else accepted.count(False)
            self.stats.received += len(raws)
            self.stats.filtered_out += dropped
            self._count(esm_metrics.POLLED, len(raws))
            self._count(esm_metrics.FILTERED_OUT, dropped)
            shard.changed.set()
            self._ensure_workers(shard)

    # --- processing ---------------------------------------------------------------------------------------------

    def _count(self, name: str, events: int) -> None:
        if self.metrics is not None and "EventCount" in self.mapping.settings.metrics:
            self.metrics.count(self.mapping.uuid, name, events)

    async def _work(self, shard: _Shard, lane: int) -> None:
        while self.running:
            started, discards = shard.lanes.next_batch(lane)
            await self._discard(shard, discards)
            if isinstance(started, Batch):
                await self._run(shard, started)
                continue
            if isinstance(started, Wait):
                await asyncio.sleep(min(started.seconds, IDLE_WAIT_S))
                continue
            if lane >= len(shard.lanes.lanes) and shard.lanes.rules.parallelization_factor <= lane:
                return  # the factor went down: this lane is gone
            shard.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(shard.changed.wait(), timeout=IDLE_WAIT_S)

    def _event(self, shard: _Shard, batch: Batch) -> bytes:
        return json.dumps({"Records": [record.payload.record for record in batch.records]}).encode()

    async def _run(self, shard: _Shard, batch: Batch) -> None:
        mapping = self.mapping
        stats = self.stats
        stats.batches += 1
        in_flight = sum(s.lanes.in_flight for s in self.shards.values())
        stats.peak_in_flight = max(stats.peak_in_flight, in_flight)
        self._count(esm_metrics.INVOKED, len(batch.records))
        failed: int | None = None
        try:
            result = await self.invoker.invoke_sync(mapping.function_arn, self._event(shard, batch))
        except InvokeRefused as exc:
            stats.throttles += 1
            shard.last_result[batch.lane] = (exc.status, None, None)
            mapping.last_processing_result = f"PROBLEM: {exc.code}"
            self._count(esm_metrics.FAILED_INVOKE, len(batch.records))
            outcome = Outcome.THROTTLED
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or an OS failure: retried like a throttle, never lost
            LOG.exception("event source mapping %s: invoke failed in the service", mapping.uuid)
            stats.throttles += 1
            shard.last_result[batch.lane] = (500, None, None)
            mapping.last_processing_result = f"PROBLEM: {exc}"
            outcome = Outcome.THROTTLED
        else:
            shard.last_result[batch.lane] = (200, result.executed_version, result.function_error)
            outcome = Outcome.SUCCESS
            if result.function_error is not None:
                outcome = Outcome.FUNCTION_ERROR
            elif mapping.settings.report_batch_item_failures:
                valid, failed = failed_sequence(result.payload, {r.sequence for r in batch.records})
                if not valid:
                    outcome = Outcome.FUNCTION_ERROR
            if outcome is Outcome.FUNCTION_ERROR:
                stats.function_errors += 1
                mapping.last_processing_result = "PROBLEM: Function call failed"
                self._count(esm_metrics.FAILED_INVOKE, len(batch.records))
            else:
                stats.succeeded += 1
                mapping.last_processing_result = "OK"
                last = batch.records[-1].payload
                if self.metrics is not None and self.function_name:
                    self.metrics.iterator_age(self.function_name, (self.epoch.now() - last.arrival_epoch) * 1000)
        discards = shard.lanes.complete(batch, outcome, failed)
        shard.changed.set()
        await self._discard(shard, discards)

    async def _discard(self, shard: _Shard, discards: list[Discard]) -> None:
        for discard in discards:
            self.stats.discarded += len(discard.records)
            self._count(esm_metrics.DROPPED, len(discard.records))
            destination = self.mapping.settings.on_failure_destination
            LOG.info(
                "event source mapping %s: %d records of %s discarded (%s)%s",
                self.mapping.uuid,
                len(discard.records),
                shard.shard_id,
                discard.condition,
                f", described to {destination}" if destination else "",
            )
            if destination is None or self.sender is None:
                continue
            body = json.dumps(self.failure_record(shard, discard)).encode()
            try:
                await self.sender.send(destination, body, {})
            except Exception as exc:
                self.stats.delivery_failures += 1
                LOG.warning("event source mapping %s: on-failure delivery to %s failed: %s", self.mapping.uuid,
                            destination, exc)  # fmt: skip
                continue
            self.stats.delivered_on_failure += len(discard.records)
            self._count(esm_metrics.ON_FAILURE_DELIVERED, len(discard.records))

    def failure_record(self, shard: _Shard, discard: Discard) -> dict[str, Any]:
        """The invocation record Lambda sends to the on-failure destination of a stream mapping."""
        first, last = discard.records[0].payload, discard.records[-1].payload
        record: dict[str, Any] = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.mapping.function_arn,
                "condition": str(discard.condition),
                "approximateInvokeCount": discard.invocations,
            },
            "version": "1.0",
            "timestamp": _iso(self.epoch.now()),
        }
        status, version, error = shard.last_result.get(discard.lane, (0, None, None))
        if discard.invocations:
            response: dict[str, Any] = {"statusCode": status, "executedVersion": version or "$LATEST"}
            if error:
                response["functionError"] = error
            record["responseContext"] = response
        info = {
            "shardId": shard.shard_id,
            "startSequenceNumber": str(first.sequence),
            "endSequenceNumber": str(last.sequence),
            "approximateArrivalOfFirstRecord": _iso(first.arrival_epoch),
            "approximateArrivalOfLastRecord": _iso(last.arrival_epoch),
            "batchSize": len(discard.records),
            "streamArn": self.reader.arn,
        }
        record["KinesisBatchInfo" if self.reader.kind == "kinesis" else "DDBStreamBatchInfo"] = info
        return record

    def counts(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for shard in self.shards.values():
            for key, value in shard.lanes.counts().items():
                total[key] = total.get(key, 0) + value
        return total


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(epoch * 1000) % 1000:03d}Z"
