"""Stream shards on a virtual clock: lanes by partition key, batches, retries, bisecting, record age, partial batch
responses; a hypothesis state machine for "never more than shards x factor batches at once", "per-key order kept"
and "nothing lost"."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from lambdalab.clock import VirtualClock
from lambdalab.sources.stream_policy import (
    Batch,
    Condition,
    Outcome,
    Rules,
    ShardLanes,
    StreamPolicyError,
    StreamRecord,
    Wait,
    failed_sequence,
    lane_of,
)


def records(keys: str, start: int = 1, at: float = 0.0) -> list[StreamRecord]:
    return [StreamRecord(start + i, key, at, 10) for i, key in enumerate(keys)]


def take(shard: ShardLanes, lane: int = 0) -> Batch:
    batch, _ = shard.next_batch(lane)
    assert isinstance(batch, Batch), batch
    return batch


def test_one_lane_batches_in_order_up_to_the_batch_size() -> None:
    shard = ShardLanes(VirtualClock(), Rules(batch_size=3))
    shard.add(records("aaaaa"))
    first = take(shard)
    assert [r.sequence for r in first.records] == [1, 2, 3]
    assert shard.next_batch(0) == (None, [])  # one batch at a time per lane
    assert shard.complete(first, Outcome.SUCCESS) == []
    assert [r.sequence for r in take(shard).records] == [4, 5]


def test_parallelization_routes_keys_to_lanes_and_keeps_each_key_in_one_lane() -> None:
    shard = ShardLanes(VirtualClock(), Rules(batch_size=100, parallelization_factor=3))
    keys = "abcdefghij" * 3
    shard.add(records(keys))
    batches = [shard.next_batch(lane)[0] for lane in range(3)]
    started = [b for b in batches if isinstance(b, Batch)]
    assert len(started) == len({lane_of(k, 3) for k in keys})
    for batch in started:
        assert {lane_of(r.key, 3) for r in batch.records} == {batch.lane}
        assert [r.sequence for r in batch.records] == sorted(r.sequence for r in batch.records)
    assert shard.in_flight == len(started) <= 3


def test_batching_window_waits_for_a_full_batch_or_the_window() -> None:
    clock = VirtualClock()
    shard = ShardLanes(clock, Rules(batch_size=3, batching_window_s=2.0))
    shard.add(records("aa"))
    batch, _ = shard.next_batch(0)
    assert isinstance(batch, Wait) and batch.seconds == pytest.approx(2.0)
    clock.advance(1)
    shard.add(records("a", start=3))  # full now
    assert len(take(shard).records) == 3


def test_batching_window_time_scale() -> None:
    clock = VirtualClock()
    shard = ShardLanes(clock, Rules(batch_size=10, batching_window_s=10.0, time_scale=0.1))
    shard.add(records("a"))
    assert shard.next_batch(0)[0] == Wait(pytest.approx(1.0))
    clock.advance(1.0)
    assert len(take(shard).records) == 1


def test_function_errors_retry_until_maximum_retry_attempts_then_discard() -> None:
    shard = ShardLanes(VirtualClock(), Rules(batch_size=10, maximum_retry_attempts=2))
    shard.add(records("aaa"))
    for attempt in range(2):
        batch = take(shard)
        assert batch.attempt == attempt
        assert shard.complete(batch, Outcome.FUNCTION_ERROR) == []
    last = take(shard)
    (discard,) = shard.complete(last, Outcome.FUNCTION_ERROR)
    assert discard.condition is Condition.RETRIES_EXHAUSTED
    assert [r.sequence for r in discard.records] == [1, 2, 3]
    assert discard.invocations == 3  # the first try and two retries
    assert shard.idle() and shard.counts()["discarded"] == 3


def test_throttles_never_consume_retries_and_back_off() -> None:
    clock = VirtualClock()
    shard = ShardLanes(clock, Rules(maximum_retry_attempts=0))
    shard.add(records("a"))
    for expected in (1.0, 2.0, 4.0):
        batch = take(shard)
        assert shard.complete(batch, Outcome.THROTTLED) == []
        wait, _ = shard.next_batch(0)
        assert wait == Wait(pytest.approx(expected))
        clock.advance(expected)
    assert take(shard).attempt == 0
    assert shard.counts()["discarded"] == 0


def test_bisect_splits_failed_batches_without_consuming_retries() -> None:
    shard = ShardLanes(VirtualClock(), Rules(batch_size=4, bisect_on_error=True, maximum_retry_attempts=0))
    shard.add(records("aaaa"))
    whole = take(shard)
    assert shard.complete(whole, Outcome.FUNCTION_ERROR) == []
    left = take(shard)
    assert [r.sequence for r in left.records] == [1, 2] and left.attempt == 0
    shard.complete(left, Outcome.SUCCESS)
    right = take(shard)
    assert [r.sequence for r in right.records] == [3, 4]
    shard.complete(right, Outcome.FUNCTION_ERROR)
    three = take(shard)
    assert [r.sequence for r in three.records] == [3]
    assert shard.complete(three, Outcome.SUCCESS) == []
    four = take(shard)
    (discard,) = shard.complete(four, Outcome.FUNCTION_ERROR)  # one record left: a retry, and none are allowed
    assert [r.sequence for r in discard.records] == [4]
    assert shard.counts() == {"pending": 0, "in_flight": 0, "succeeded": 3, "filtered": 0, "discarded": 1}


def test_partial_batch_response_checkpoints_at_the_lowest_failed_sequence() -> None:
    shard = ShardLanes(VirtualClock(), Rules(batch_size=5))
    shard.add(records("aaaaa"))
    batch = take(shard)
    shard.complete(batch, Outcome.SUCCESS, failed_sequence=3)
    retry = take(shard)
    assert [r.sequence for r in retry.records] == [3, 4, 5] and retry.attempt == 1
    assert shard.counts()["succeeded"] == 2
    with pytest.raises(StreamPolicyError):
        shard.complete(retry, Outcome.SUCCESS, failed_sequence=99)


def test_records_older_than_the_maximum_age_are_discarded_before_invoking() -> None:
    clock = VirtualClock()
    shard = ShardLanes(clock, Rules(maximum_record_age_s=60))
    shard.add(records("aa"))
    batch = take(shard)
    shard.complete(batch, Outcome.FUNCTION_ERROR)
    clock.advance(61)
    shard.add(records("a", start=3, at=clock.now()))
    started, discards = shard.next_batch(0)
    (discard,) = discards
    assert discard.condition is Condition.RECORD_AGE_EXCEEDED and [r.sequence for r in discard.records] == [1, 2]
    assert isinstance(started, Batch) and [r.sequence for r in started.records] == [3]


def test_filtered_records_are_counted_and_never_batched() -> None:
    shard = ShardLanes(VirtualClock(), Rules())
    shard.add(records("abc"), accepted=[True, False, True])
    assert [r.sequence for r in take(shard).records] == [1, 3]
    assert shard.counts()["filtered"] == 1


def test_payload_limit_caps_a_batch() -> None:
    shard = ShardLanes(VirtualClock(), Rules(batch_size=10))
    shard.add([StreamRecord(i, "k", 0.0, 2 * 1024 * 1024) for i in range(1, 5)])
    assert len(take(shard).records) == 2


def test_bugs_raise() -> None:
    shard = ShardLanes(VirtualClock(), Rules())
    shard.add(records("a"))
    batch = take(shard)
    shard.complete(batch, Outcome.SUCCESS)
    with pytest.raises(StreamPolicyError):
        shard.complete(batch, Outcome.SUCCESS)
    with pytest.raises(StreamPolicyError, match="out of order"):
        shard.add(records("a", start=1))


def test_resize_waits_for_in_flight_batches_and_keeps_key_order() -> None:
    shard = ShardLanes(VirtualClock(), Rules(batch_size=2, parallelization_factor=1))
    shard.add(records("abab"))
    batch = take(shard)
    shard.resize(4)
    assert len(shard.lanes) == 1  # a batch is in flight
    shard.complete(batch, Outcome.FUNCTION_ERROR)
    assert len(shard.lanes) == 4
    order: list[int] = []
    while not shard.idle():
        for lane in range(4):
            started, _ = shard.next_batch(lane)
            if isinstance(started, Batch):
                order += [r.sequence for r in started.records]
                shard.complete(started, Outcome.SUCCESS)
    assert sorted(order) == [1, 2, 3, 4]
    for key in "ab":
        mine = [s for s in order if "abab"[s - 1] == key]
        assert mine == sorted(mine)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", (True, None)),
        (b"null", (True, None)),
        (b'{"batchItemFailures": []}', (True, None)),
        (b'{"batchItemFailures": [{"itemIdentifier": "7"}, {"itemIdentifier": "5"}]}', (True, 5)),
        (b'{"batchItemFailures": [{"itemIdentifier": ""}]}', (False, None)),
        (b'{"batchItemFailures": [{"itemIdentifier": "8"}]}', (False, None)),
        (b'{"batchItemFailures": [{"id": "5"}]}', (False, None)),
        (b"nope", (False, None)),
    ],
)
def test_stream_partial_batch_response_rules(body: bytes, expected: tuple[bool, int | None]) -> None:
    assert failed_sequence(body, {5, 6, 7}) == expected


class Streams(RuleBasedStateMachine):
    """Two shards, random outcomes and clock moves: the documented invariants hold at every step."""

    @initialize(
        factor=st.integers(1, 4),
        batch_size=st.integers(1, 5),
        retries=st.integers(-1, 3),
        bisect=st.booleans(),
        age=st.sampled_from([-1, 60]),
    )
    def setup(self, factor: int, batch_size: int, retries: int, bisect: bool, age: int) -> None:
        self.clock = VirtualClock()
        rules = Rules(batch_size, 0.0, factor, retries, age, bisect)
        self.factor = factor
        self.shards = [ShardLanes(self.clock, rules) for _ in range(2)]
        self.next_sequence = [1, 1]
        self.keys: dict[tuple[int, int], str] = {}
        self.done: dict[tuple[int, int], str] = {}  # (shard, sequence) → how it ended
        self.processed: dict[tuple[int, str], list[int]] = {}  # (shard, key) → sequences first succeeded, in order
        self.running: list[tuple[int, Batch]] = []
        self.peak = 0

    @rule(shard=st.integers(0, 1), keys=st.lists(st.sampled_from("pqrstu"), min_size=1, max_size=6),
          filtered=st.booleans())  # fmt: skip
    def add(self, shard: int, keys: list[str], filtered: bool) -> None:
        start = self.next_sequence[shard]
        new = [StreamRecord(start + i, key, self.clock.now(), 1) for i, key in enumerate(keys)]
        accepted = [not (filtered and i == 0) for i in range(len(new))]
        for record, ok in zip(new, accepted, strict=True):
            self.keys[(shard, record.sequence)] = record.key
            if not ok:
                self.done[(shard, record.sequence)] = "filtered"
        self.shards[shard].add(new, accepted)
        self.next_sequence[shard] += len(new)

    def _discard(self, shard: int, discards: list) -> None:
        for discard in discards:
            for record in discard.records:
                assert (shard, record.sequence) not in self.done
                self.done[(shard, record.sequence)] = "discarded"

    @rule(shard=st.integers(0, 1), lane=st.integers(0, 3))
    def start(self, shard: int, lane: int) -> None:
        started, discards = self.shards[shard].next_batch(lane % self.factor)
        self._discard(shard, discards)
        if isinstance(started, Batch):
            for record in started.records:  # every earlier record of the key is finished or in this batch
                for (s, seq), key in self.keys.items():
                    if s == shard and key == record.key and seq < record.sequence:
                        assert (shard, seq) in self.done or seq in {r.sequence for r in started.records}
            self.running.append((shard, started))
            self.peak = max(self.peak, len(self.running))

    @precondition(lambda self: self.running)
    @rule(index=st.integers(0, 20), outcome=st.sampled_from(list(Outcome)), partial=st.booleans())
    def finish(self, index: int, outcome: Outcome, partial: bool) -> None:
        shard, batch = self.running.pop(index % len(self.running))
        failed = None
        if outcome is Outcome.SUCCESS and partial:
            failed = batch.records[len(batch.records) // 2].sequence
        succeeded = batch.records if outcome is Outcome.SUCCESS else ()
        if failed is not None:
            succeeded = tuple(r for r in batch.records if r.sequence < failed)
        for record in succeeded:
            assert (shard, record.sequence) not in self.done
            self.done[(shard, record.sequence)] = "succeeded"
            self.processed.setdefault((shard, record.key), []).append(record.sequence)
        self._discard(shard, self.shards[shard].complete(batch, outcome, failed))

    @rule(seconds=st.sampled_from([0.5, 5.0, 70.0]))
    def tick(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def at_most_shards_times_factor_batches(self) -> None:
        if hasattr(self, "shards"):
            assert sum(s.in_flight for s in self.shards) == len(self.running) <= 2 * self.factor

    @invariant()
    def per_key_order_kept(self) -> None:
        if hasattr(self, "shards"):
            for sequences in self.processed.values():
                assert sequences == sorted(sequences)

    @invariant()
    def nothing_lost(self) -> None:
        if hasattr(self, "shards"):
            for index, shard in enumerate(self.shards):
                counts = shard.counts()
                assert sum(counts.values()) == shard.added == self.next_sequence[index] - 1
                mine = [state for (s, _), state in self.done.items() if s == index]
                assert counts["succeeded"] == mine.count("succeeded")
                assert counts["discarded"] == mine.count("discarded")
                assert counts["filtered"] == mine.count("filtered")


TestStreams = Streams.TestCase
TestStreams.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
