"""How Lambda works through a stream shard: lanes, batches, retries, bisecting, record age. Pure code on a `Clock`.

The rules [Lambda developer guide: "Using AWS Lambda with Amazon Kinesis" (batching, ParallelizationFactor, error
handling, ReportBatchItemFailures, bisecting), "Retain discarded batch records for a Kinesis Data Streams event
source", "Using AWS Lambda with Amazon DynamoDB"]:

* A shard is processed by `ParallelizationFactor` (1-10) concurrent batches; "Lambda still ensures in-order
  processing at the partition-key level": records are routed to a lane by a hash of their partition key (Kinesis)
  or item key (DynamoDB), each lane runs one batch at a time, in sequence order. So a mapping never runs more than
  shards x ParallelizationFactor batches at once.
* A batch holds up to `BatchSize` records and at most the 6 MB synchronous payload; with
  `MaximumBatchingWindowInSeconds` Lambda waits until the batch is full, the window has passed, or the payload
  limit is reached.
* A function error retries the batch until it succeeds, the records exceed `MaximumRecordAgeInSeconds`, or the
  retries reach `MaximumRetryAttempts` (-1: unbounded). `BisectBatchOnFunctionError` splits a failed batch in two
  first; "splitting batches doesn't consume the retry quota".
* Throttles and errors before the function ran are retried, with backoff, until the records are too old; they never
  count as retries and nothing is dropped for them.
* `ReportBatchItemFailures`: "Lambda uses the record with the lowest sequence number as the checkpoint" and retries
  from it; an empty or null list is success; an empty, null or unknown `itemIdentifier` is a complete failure.
* Discarded records (retries exhausted, too old) are described to the on-failure destination, batch by batch.

Nothing is lost: every record added is, at any moment, exactly one of pending, in flight, succeeded, filtered out
or discarded (`ShardLanes.counts()` adds up to `added`), and discards are returned to the caller to deliver.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from lambdalab.clock import Clock

PAYLOAD_LIMIT = 6 * 1024 * 1024  # synchronous invocation payload
ENVELOPE_BYTES = 512  # per-record JSON around the data, counted against the payload limit
THROTTLE_BACKOFF_FIRST_S = 1.0
THROTTLE_BACKOFF_MAX_S = 60.0


class StreamPolicyError(Exception):
    """A caller bug: a result for a batch that is not in flight, an unknown lane."""


class Condition(enum.StrEnum):
    """Why records went to the on-failure destination (`requestContext.condition` of the record)."""

    RETRIES_EXHAUSTED = "RetryAttemptsExhausted"
    RECORD_AGE_EXCEEDED = "RecordAgeExceeded"


class Outcome(enum.Enum):
    SUCCESS = "success"  # the function returned; with ReportBatchItemFailures, see `failed_sequence`
    FUNCTION_ERROR = "function_error"  # the function ran and failed (error, timeout, crash, bad partial response)
    THROTTLED = "throttled"  # the invoke was refused before the function ran (429, 5xx)


@dataclass(frozen=True)
class Rules:
    """The mapping settings the policy reads (see MappingSettings)."""

    batch_size: int = 100
    batching_window_s: float = 0.0
    parallelization_factor: int = 1
    maximum_retry_attempts: int = -1
    maximum_record_age_s: int = -1
    bisect_on_error: bool = False
    time_scale: float = 1.0  # multiplies the batching window, the record age and the throttle backoff


@dataclass(frozen=True)
class StreamRecord:
    """One record as read from the shard; `payload` is what goes into the event (opaque here)."""

    sequence: int
    key: str
    arrival: float  # clock time the record became available (for record age and the batching window)
    size: int = 0
    payload: Any = None

    @property
    def sequence_text(self) -> str:
        return str(self.sequence)


@dataclass
class Batch:
    """Records handed to one invocation; `attempt` counts retries that consume the quota (0 = first try)."""

    lane: int
    records: tuple[StreamRecord, ...]
    attempt: int = 0
    invocations: int = 0  # invocations of these records so far (approximateInvokeCount on discard)


@dataclass(frozen=True)
class Discard:
    """Records dropped for good, to be described to the on-failure destination."""

    lane: int
    records: tuple[StreamRecord, ...]
    condition: Condition
    invocations: int


@dataclass(frozen=True)
class Wait:
    """Nothing to start in this lane for `seconds` (batching window, throttle backoff)."""

    seconds: float


def lane_of(key: str, factor: int) -> int:
    """The lane of a partition key: stable across runs (not Python's salted hash)."""
    if factor <= 1:
        return 0
    digest = hashlib.md5(key.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big") % factor


@dataclass
class _Lane:
    queue: deque[StreamRecord] = field(default_factory=deque)
    work: deque[Batch] = field(default_factory=deque)  # batches to retry (bisected halves first), in order
    in_flight: Batch | None = None
    not_before: float = 0.0  # throttle backoff
    throttles: int = 0  # consecutive, for the backoff
    window_started: float | None = None  # when the current batching window opened


class ShardLanes:
    """One shard's lanes. Call `add` with records in sequence order, `next_batch(lane)` to start work,
    `complete(batch, ...)` with what the invoke returned; both return the records to discard."""

    def __init__(self, clock: Clock, rules: Rules) -> None:
        if rules.parallelization_factor < 1:
            raise ValueError("parallelization_factor must be at least 1")
        if rules.time_scale <= 0:
            raise ValueError(f"time_scale must be positive, not {rules.time_scale}")
        self.clock = clock
        self.rules = rules
        self.lanes = [_Lane() for _ in range(rules.parallelization_factor)]
        self.added = 0
        self.succeeded = 0
        self.filtered = 0
        self.discarded = 0
        self.last_sequence: int | None = None
        self._resize_to: int | None = None

    # --- input --------------------------------------------------------------------------------------------------

    def add(self, records: list[StreamRecord], accepted: list[bool] | None = None) -> None:
        """Records read from the shard, in order; `accepted[i]` False means filter criteria left it out."""
        now = self.clock.now()
        for index, record in enumerate(records):
            if self.last_sequence is not None and record.sequence <= self.last_sequence:
                raise StreamPolicyError(f"records out of order: {record.sequence} after {self.last_sequence}")
            self.last_sequence = record.sequence
            self.added += 1
            if accepted is not None and not accepted[index]:
                self.filtered += 1
                continue
            lane = self.lanes[lane_of(record.key, len(self.lanes))]
            if not lane.queue and lane.window_started is None:
                lane.window_started = now
            lane.queue.append(record)

    def resize(self, factor: int) -> None:
        """A new ParallelizationFactor: applied once no batch is in flight, so per-key order holds."""
        if factor < 1:
            raise ValueError("parallelization_factor must be at least 1")
        self._resize_to = factor
        self._maybe_resize()

    def _maybe_resize(self) -> None:
        if self._resize_to is None or any(lane.in_flight is not None for lane in self.lanes):
            return
        factor, self._resize_to = self._resize_to, None
        old_lanes, now = self.lanes, self.clock.now()
        self.lanes = [_Lane() for _ in range(factor)]
        self.rules = Rules(**{**self.rules.__dict__, "parallelization_factor": factor})
        # A key's records all sat in one old lane, retried batches before queued records: splitting each retried
        # batch by new lane (keeping its attempt count), then queueing the rest in sequence order, keeps key order.
        for old in old_lanes:
            for batch in old.work:
                parts: dict[int, list[StreamRecord]] = {}
                for record in batch.records:
                    parts.setdefault(lane_of(record.key, factor), []).append(record)
                for index, records in parts.items():
                    self.lanes[index].work.append(Batch(index, tuple(records), batch.attempt, batch.invocations))
        for record in sorted((r for old in old_lanes for r in old.queue), key=lambda r: r.sequence):
            lane = self.lanes[lane_of(record.key, factor)]
            if not lane.queue and lane.window_started is None:
                lane.window_started = now
            lane.queue.append(record)

    # --- batches ------------------------------------------------------------------------------------------------

    def _too_old(self, record: StreamRecord, now: float) -> bool:
        age = self.rules.maximum_record_age_s
        return age >= 0 and now - record.arrival > age * self.rules.time_scale

    def _expire(self, lane_index: int, records: tuple[StreamRecord, ...], attempt: int, invocations: int,
                discards: list[Discard]) -> tuple[StreamRecord, ...]:  # fmt: skip
        now = self.clock.now()
        old = tuple(r for r in records if self._too_old(r, now))
        if old:
            discards.append(Discard(lane_index, old, Condition.RECORD_AGE_EXCEEDED, invocations))
            self.discarded += len(old)
        return tuple(r for r in records if not self._too_old(r, now))

    def next_batch(self, lane_index: int) -> tuple[Batch | Wait | None, list[Discard]]:
        """The next batch of a lane (now in flight), a Wait, or None (idle or busy); plus records dropped as too
        old on the way."""
        self._maybe_resize()
        if self._resize_to is not None or not 0 <= lane_index < len(self.lanes):
            return None, []
        lane = self.lanes[lane_index]
        discards: list[Discard] = []
        if lane.in_flight is not None:
            return None, discards
        now = self.clock.now()
        if now < lane.not_before:
            return Wait(lane.not_before - now), discards
        while lane.work:
            batch = lane.work[0]
            kept = self._expire(lane_index, batch.records, batch.attempt, batch.invocations, discards)
            if not kept:
                lane.work.popleft()
                continue
            batch.records = kept
            lane.work.popleft()
            lane.in_flight = batch
            return batch, discards
        while lane.queue and self._too_old(lane.queue[0], now):
            old: list[StreamRecord] = []
            while lane.queue and self._too_old(lane.queue[0], now):
                old.append(lane.queue.popleft())
            discards.append(Discard(lane_index, tuple(old), Condition.RECORD_AGE_EXCEEDED, 0))
            self.discarded += len(old)
        if not lane.queue:
            lane.window_started = None
            return None, discards
        records: list[StreamRecord] = []
        size = 0
        for record in lane.queue:
            cost = record.size + ENVELOPE_BYTES
            if len(records) >= self.rules.batch_size or (records and size + cost > PAYLOAD_LIMIT):
                break
            records.append(record)
            size += cost
        full = len(records) >= self.rules.batch_size or len(records) < len(lane.queue)
        window = self.rules.batching_window_s * self.rules.time_scale
        opened = lane.window_started if lane.window_started is not None else now
        if not full and window > 0 and now - opened < window:
            return Wait(window - (now - opened)), discards
        for _ in records:
            lane.queue.popleft()
        lane.window_started = now if lane.queue else None
        batch = Batch(lane_index, tuple(records))
        lane.in_flight = batch
        return batch, discards

    def complete(self, batch: Batch, outcome: Outcome, failed_sequence: int | None = None) -> list[Discard]:
        """What the invocation of `batch` returned; `failed_sequence` is the lowest reported batch item failure
        (ReportBatchItemFailures) when the outcome is SUCCESS."""
        if not 0 <= batch.lane < len(self.lanes) or self.lanes[batch.lane].in_flight is not batch:
            raise StreamPolicyError("complete() for a batch that is not in flight")
        lane = self.lanes[batch.lane]
        lane.in_flight = None
        discards: list[Discard] = []
        if outcome is Outcome.THROTTLED:
            lane.throttles += 1
            backoff = min(THROTTLE_BACKOFF_MAX_S, THROTTLE_BACKOFF_FIRST_S * 2 ** (lane.throttles - 1))
            lane.not_before = self.clock.now() + backoff * self.rules.time_scale
            lane.work.appendleft(batch)  # the same records, no retry consumed
            self._maybe_resize()
            return discards
        lane.throttles = 0
        batch.invocations += 1
        if outcome is Outcome.SUCCESS and failed_sequence is None:
            self.succeeded += len(batch.records)
            self._maybe_resize()
            return discards
        remaining = batch.records
        if outcome is Outcome.SUCCESS:  # a partial failure: everything before the checkpoint succeeded
            index = next((i for i, r in enumerate(batch.records) if r.sequence == failed_sequence), None)
            if index is None:
                raise StreamPolicyError(f"failed sequence {failed_sequence} is not in the batch")
            self.succeeded += index
            remaining = batch.records[index:]
        elif self.rules.bisect_on_error and len(batch.records) > 1:
            half = math.ceil(len(batch.records) / 2)
            first = Batch(batch.lane, batch.records[:half], batch.attempt, batch.invocations)
            second = Batch(batch.lane, batch.records[half:], batch.attempt, batch.invocations)
            lane.work.extendleft([second, first])
            self._maybe_resize()
            return discards
        attempt = batch.attempt + 1
        limit = self.rules.maximum_retry_attempts
        if limit >= 0 and attempt > limit:
            discards.append(Discard(batch.lane, remaining, Condition.RETRIES_EXHAUSTED, batch.invocations))
            self.discarded += len(remaining)
        else:
            lane.work.appendleft(Batch(batch.lane, remaining, attempt, batch.invocations))
        self._maybe_resize()
        return discards

    def update_rules(self, rules: Rules) -> None:
        """New mapping settings; a new ParallelizationFactor is applied once nothing is in flight."""
        factor = rules.parallelization_factor
        self.rules = Rules(**{**rules.__dict__, "parallelization_factor": len(self.lanes)})
        if factor != len(self.lanes):
            self.resize(factor)

    def requeue_in_flight(self) -> None:
        """Batches whose invocation was abandoned (the mapping stopped): back to the front, no retry consumed."""
        for lane in self.lanes:
            if lane.in_flight is not None:
                lane.work.appendleft(lane.in_flight)
                lane.in_flight = None
        self._maybe_resize()

    # --- observation --------------------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return sum(lane.in_flight is not None for lane in self.lanes)

    @property
    def pending(self) -> int:
        return sum(len(lane.queue) + sum(len(b.records) for b in lane.work) for lane in self.lanes)

    def in_flight_records(self) -> int:
        return sum(len(lane.in_flight.records) for lane in self.lanes if lane.in_flight is not None)

    def counts(self) -> dict[str, int]:
        return {
            "pending": self.pending,
            "in_flight": self.in_flight_records(),
            "succeeded": self.succeeded,
            "filtered": self.filtered,
            "discarded": self.discarded,
        }

    def idle(self) -> bool:
        return self.pending == 0 and self.in_flight == 0


def failed_sequence(body: bytes, sequences: set[int]) -> tuple[bool, int | None]:
    """A stream ReportBatchItemFailures response → (valid, lowest failed sequence number or None for success).

    The rules of "Reporting batch item failures" for streams: an empty or null response or list is success; invalid
    JSON, an empty, null, misnamed or unknown itemIdentifier is a complete failure (valid False).
    """
    text = body.decode(errors="replace").strip()
    if not text or text == "null":
        return True, None
    try:
        parsed = json.loads(text)
    except ValueError:
        return False, None
    if parsed is None:
        return True, None
    if not isinstance(parsed, dict):
        return False, None
    failures = parsed.get("batchItemFailures")
    if failures is None:
        return True, None
    if not isinstance(failures, list):
        return False, None
    lowest: int | None = None
    for item in failures:
        if not isinstance(item, dict):
            return False, None
        identifier = item.get("itemIdentifier")
        if not isinstance(identifier, str) or not identifier.isdigit() or int(identifier) not in sequences:
            return False, None
        lowest = int(identifier) if lowest is None else min(lowest, int(identifier))
    return True, lowest
