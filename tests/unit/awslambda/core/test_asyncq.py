"""Tests of the asynchronous-invocation queue on a virtual clock: retry schedules, event age, destinations, DLQ."""

from __future__ import annotations

import json

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from lambdalab.awslambda.core.asyncq import (
    Action,
    AsyncEvent,
    AsyncQueue,
    AsyncQueueError,
    Condition,
    EventState,
)
from lambdalab.awslambda.core.control import EventInvokeConfig
from lambdalab.awslambda.core.exceptions import InvalidParameterValueException
from lambdalab.clock import VirtualClock

ARN = "arn:aws:lambda:us-east-1:123456789012:function:fn"
FAILURE_ARN = "arn:aws:sqs:us-east-1:123456789012:failures"
SUCCESS_ARN = "arn:aws:sqs:us-east-1:123456789012:successes"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:dlq"


def make(time_scale: float = 1.0) -> tuple[AsyncQueue, VirtualClock]:
    clock = VirtualClock(100.0)
    return AsyncQueue(clock, time_scale=time_scale), clock


def event(event_id: str = "req-1", payload: bytes = b'{"order": 7}', **kwargs) -> AsyncEvent:
    return AsyncEvent(event_id=event_id, function="fn", qualifier=None, payload=payload, function_arn=ARN, **kwargs)


def take_one(queue: AsyncQueue) -> AsyncEvent:
    (got,) = queue.due()
    return got


# --- the queue ---------------------------------------------------------------------------------------------------


def test_an_accepted_event_is_due_at_once_and_in_flight_once_taken():
    queue, _ = make()
    queue.accept(event())
    assert queue.next_due_at() == 100.0
    assert queue.counts().queued == 1
    got = take_one(queue)
    assert got.state is EventState.IN_FLIGHT and queue.due() == []
    assert queue.next_due_at() is None
    counts = queue.counts()
    assert (counts.accepted, counts.queued, counts.in_flight) == (1, 0, 1)


def test_due_hands_out_the_earliest_first_and_respects_the_limit():
    queue, clock = make()
    for i in range(5):
        queue.accept(event(f"req-{i}"))
        clock.advance(1)
    assert [e.event_id for e in queue.due(limit=2)] == ["req-0", "req-1"]
    assert [e.event_id for e in queue.due()] == ["req-2", "req-3", "req-4"]


def test_an_event_id_is_accepted_once_and_outcomes_need_an_event_in_flight():
    queue, _ = make()
    e = queue.accept(event())
    with pytest.raises(AsyncQueueError):
        queue.accept(event())
    with pytest.raises(AsyncQueueError):
        queue.on_success(e)  # still queued
    take_one(queue)
    queue.on_success(e)
    with pytest.raises(AsyncQueueError):
        queue.on_success(e)  # already finished


# --- success -----------------------------------------------------------------------------------------------------


def test_success_without_a_destination_just_finishes():
    queue, _ = make()
    e = queue.accept(event())
    take_one(queue)
    got = queue.on_success(e, b'"ok"', "$LATEST")
    assert (got.action, got.target_arn, got.record) == (Action.SUCCEEDED, None, None)
    assert queue.state_of("req-1") is EventState.SUCCEEDED
    assert queue.counts().succeeded == 1


def test_success_with_an_on_success_destination_gets_aws_invocation_record():
    queue, clock = make()
    queue.configure(EventInvokeConfig("fn", on_success_destination=SUCCESS_ARN))
    e = queue.accept(event(accepted_epoch=1_700_000_000.0))
    clock.advance(2.5)
    take_one(queue)
    got = queue.on_success(e, b'{"total": 3}', "$LATEST")
    assert got.action is Action.SUCCEEDED and got.target_arn == SUCCESS_ARN
    assert got.record == {
        "version": "1.0",
        "timestamp": "2023-11-14T22:13:22.500Z",
        "requestContext": {
            "requestId": "req-1",
            "functionArn": ARN,
            "condition": "Success",
            "approximateInvokeCount": 1,
        },
        "requestPayload": {"order": 7},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
        "responsePayload": {"total": 3},
    }
    json.dumps(got.record)  # it is JSON, as AWS sends it


# --- function errors ---------------------------------------------------------------------------------------------


def test_function_errors_are_retried_one_then_two_minutes_later_scaled_then_go_to_the_failure_destination():
    queue, clock = make(time_scale=0.01)
    queue.configure(EventInvokeConfig("fn", on_failure_destination=FAILURE_ARN))
    e = queue.accept(event())
    take_one(queue)
    first = queue.on_function_error(e, "ValueError", "bad order")
    assert first.action is Action.REQUEUED and first.next_attempt_at == pytest.approx(100.6)
    clock.set(100.59)
    assert queue.due() == []
    clock.set(100.6)
    take_one(queue)
    second = queue.on_function_error(e, "ValueError", "bad order")
    assert second.next_attempt_at == pytest.approx(101.8)
    clock.set(101.8)
    take_one(queue)
    final = queue.on_function_error(e, "Runtime.ExitError", "exit status 1")
    assert (final.action, final.target_arn, final.condition) == (
        Action.DESTINATION,
        FAILURE_ARN,
        Condition.RETRIES_EXHAUSTED,
    )
    assert final.record is not None
    assert final.record["requestContext"]["condition"] == "RetriesExhausted"
    assert final.record["requestContext"]["approximateInvokeCount"] == 3
    assert final.record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert final.record["responsePayload"] == {"errorMessage": "exit status 1", "errorType": "Runtime.ExitError"}
    assert queue.counts().destination == 1 and queue.state_of("req-1") is EventState.DESTINATION


def test_maximum_retry_attempts_zero_fails_on_the_first_error_and_one_allows_a_single_retry():
    queue, clock = make()
    queue.configure(EventInvokeConfig("fn", maximum_retry_attempts=0, on_failure_destination=FAILURE_ARN))
    e = queue.accept(event())
    take_one(queue)
    assert queue.on_function_error(e, "Err", "x", handled=True).action is Action.DESTINATION
    queue.configure(EventInvokeConfig("fn", maximum_retry_attempts=1, on_failure_destination=FAILURE_ARN))
    e2 = queue.accept(event("req-2"))
    take_one(queue)
    assert queue.on_function_error(e2, "Err", "x").next_attempt_at == 160.0
    clock.set(160.0)
    take_one(queue)
    last = queue.on_function_error(e2, "Err", "x", handled=True, response_payload=b'{"errorMessage": "x"}')
    assert last.action is Action.DESTINATION
    assert last.record["responseContext"]["functionError"] == "Handled"
    assert last.record["responsePayload"] == {"errorMessage": "x"}


def test_without_a_failure_destination_the_event_goes_to_the_dead_letter_queue():
    queue, _ = make()
    queue.configure(EventInvokeConfig("fn", maximum_retry_attempts=0))
    queue.set_dead_letter("fn", DLQ_ARN)
    e = queue.accept(event(payload=b'{"order": 8}'))
    take_one(queue)
    got = queue.on_function_error(e, "Sandbox.Timedout", "Task timed out after 3.00 seconds" + "!" * 2000)
    assert (got.action, got.target_arn) == (Action.DLQ, DLQ_ARN)
    assert got.dlq_message is not None and got.dlq_message.body == b'{"order": 8}'
    attributes = got.dlq_message.attributes
    assert attributes["RequestID"] == "req-1" and attributes["ErrorCode"] == "200"
    assert attributes["ErrorMessage"].startswith("Task timed out after 3.00 seconds")
    assert len(attributes["ErrorMessage"].encode()) == 1024
    assert queue.counts().dlq == 1


def test_the_failure_destination_wins_over_the_dead_letter_queue():
    queue, _ = make()
    queue.configure(EventInvokeConfig("fn", maximum_retry_attempts=0, on_failure_destination=FAILURE_ARN))
    queue.set_dead_letter("fn", DLQ_ARN)
    e = queue.accept(event())
    take_one(queue)
    assert queue.on_function_error(e, "Err", "x").action is Action.DESTINATION


def test_with_neither_the_event_is_discarded_and_the_discard_is_recorded():
    queue, _ = make()
    queue.configure(EventInvokeConfig("fn", maximum_retry_attempts=0))
    e = queue.accept(event())
    take_one(queue)
    got = queue.on_function_error(e, "KeyError", "'id'")
    assert got.action is Action.DISCARDED and "RetriesExhausted" in (got.reason or "")
    assert queue.discarded() == [got]
    assert queue.counts().discarded == 1 and queue.state_of("req-1") is EventState.DISCARDED


# --- throttles, system errors, event age ----------------------------------------------------------------------------


def test_throttles_back_off_exponentially_from_one_second_to_at_most_five_minutes():
    queue, clock = make()
    e = queue.accept(event())
    delays = []
    for _ in range(12):
        take_one(queue)
        got = queue.on_throttle(e, "ReservedFunctionConcurrentInvocationLimitExceeded")
        assert got.action is Action.REQUEUED
        delays.append(got.next_attempt_at - clock.now())
        clock.set(got.next_attempt_at)
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    assert e.attempts == 0  # throttled attempts never ran the function


def test_system_errors_use_the_same_backoff_scaled():
    queue, clock = make(time_scale=0.01)
    e = queue.accept(event())
    take_one(queue)
    assert queue.on_system_error(e, "environment failed to start").next_attempt_at == pytest.approx(100.01)
    clock.set(100.01)
    take_one(queue)
    assert queue.on_system_error(e, "again", 503).next_attempt_at == pytest.approx(100.03)


def test_a_throttled_event_expires_at_its_maximum_age_and_goes_to_the_dead_letter_queue():
    queue, clock = make(time_scale=0.01)
    queue.configure(EventInvokeConfig("fn", maximum_event_age_s=60))  # 0.6 s scaled
    queue.set_dead_letter("fn", DLQ_ARN)
    e = queue.accept(event())
    for _ in range(20):
        if not queue.due():
            break
        got = queue.on_throttle(e, "ConcurrentInvocationLimitExceeded")
        assert got.next_attempt_at <= 100.6 + 1e-9  # never scheduled past its expiry
        clock.set(got.next_attempt_at)
    assert clock.now() == pytest.approx(100.6)
    assert queue.state_of("req-1") is EventState.DLQ
    (expired,) = queue.take_expired()
    assert (expired.action, expired.condition) == (Action.DLQ, Condition.EVENT_AGE_EXCEEDED)
    assert expired.dlq_message.attributes["ErrorCode"] == "429"
    assert queue.take_expired() == []


def test_an_event_waiting_for_a_function_error_retry_can_expire_first():
    queue, clock = make()
    queue.configure(EventInvokeConfig("fn", maximum_event_age_s=90, on_failure_destination=FAILURE_ARN))
    e = queue.accept(event())
    take_one(queue)
    assert queue.on_function_error(e, "Err", "x").next_attempt_at == 160.0
    clock.set(160.0)
    take_one(queue)
    # the second retry would be at 280, past the 90 s age: the event is due at its expiry instead
    assert queue.on_function_error(e, "Err", "x").next_attempt_at == 190.0
    clock.set(190.0)
    assert queue.due() == []
    (expired,) = queue.take_expired()
    assert expired.condition is Condition.EVENT_AGE_EXCEEDED and expired.target_arn == FAILURE_ARN
    assert expired.record["requestContext"]["condition"] == "EventAgeExceeded"
    assert expired.record["requestContext"]["approximateInvokeCount"] == 2


def test_an_event_left_in_a_backed_up_queue_past_its_age_is_expired_not_run():
    queue, clock = make()
    queue.configure(EventInvokeConfig("fn", maximum_event_age_s=60))
    queue.accept(event())
    clock.advance(60)
    assert queue.due() == []
    (expired,) = queue.take_expired()
    assert expired.action is Action.DISCARDED and expired.condition is Condition.EVENT_AGE_EXCEEDED
    assert queue.counts().discarded == 1


def test_reserved_concurrency_zero_sends_events_to_failure_handling_without_retries():
    queue, _ = make()
    queue.set_dead_letter("fn", DLQ_ARN)
    e = queue.accept(event())
    take_one(queue)
    got = queue.on_throttle(e, "ReservedFunctionConcurrentInvocationLimitExceeded", reserved_zero=True)
    assert (got.action, got.condition) == (Action.DLQ, Condition.RETRIES_EXHAUSTED)


# --- configuration -----------------------------------------------------------------------------------------------


def test_configs_apply_per_qualifier_and_latest_is_the_unqualified_one():
    queue, _ = make()
    queue.configure(EventInvokeConfig("fn", "$LATEST", maximum_retry_attempts=1))
    queue.configure(EventInvokeConfig("fn", "live", maximum_retry_attempts=0))
    assert queue.config_for("fn", None).maximum_retry_attempts == 1
    assert queue.config_for("fn", "live").maximum_retry_attempts == 0
    assert queue.config_for("fn", "2").maximum_retry_attempts == 2  # AWS default
    assert queue.config_for("other", None).maximum_event_age_s == 21600
    queue.unconfigure("fn", None)
    assert queue.config_for("fn", "$LATEST").maximum_retry_attempts == 2


@pytest.mark.parametrize(("retries", "age"), [(3, 60), (-1, 60), (2, 59), (2, 21601)])
def test_invalid_event_invoke_configs_are_refused(retries, age):
    with pytest.raises(InvalidParameterValueException, match="1 validation error detected"):
        EventInvokeConfig("fn", maximum_retry_attempts=retries, maximum_event_age_s=age)


def test_forgetting_a_function_discards_its_queued_events_on_the_record():
    queue, _ = make()
    queue.accept(event("a"))
    queue.accept(AsyncEvent(event_id="b", function="other", qualifier=None, payload=b"{}"))
    (got,) = queue.forget_function("fn")
    assert got.action is Action.DISCARDED and got.reason == "function deleted"
    assert [e.event_id for e in queue.due()] == ["b"]
    assert queue.counts().accounted() == 2


# --- property: nothing is ever lost ----------------------------------------------------------------------------------

TERMINAL = {
    Action.SUCCEEDED: EventState.SUCCEEDED,
    Action.DESTINATION: EventState.DESTINATION,
    Action.DLQ: EventState.DLQ,
    Action.DISCARDED: EventState.DISCARDED,
    Action.REQUEUED: EventState.QUEUED,
}


class QueueMachine(RuleBasedStateMachine):
    """Random accepts, clock moves, outcomes and config changes; every event stays accounted for."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = VirtualClock()
        self.queue = AsyncQueue(self.clock, time_scale=0.01)
        self.expected: dict[str, EventState] = {}  # what the dispositions so far say about each event
        self.in_flight: dict[str, AsyncEvent] = {}
        self.ids = 0

    def _apply(self, disposition) -> None:
        state = TERMINAL[disposition.action]
        self.expected[disposition.event.event_id] = state
        if disposition.action is Action.DESTINATION:
            assert disposition.target_arn and disposition.record["requestContext"]["condition"] in (
                "RetriesExhausted",
                "EventAgeExceeded",
            )
        if disposition.action is Action.DLQ:
            assert disposition.target_arn and disposition.dlq_message.body == disposition.event.payload
        if disposition.action is Action.DISCARDED:
            assert disposition.reason and disposition in self.queue.discarded()

    @rule(fn=st.sampled_from(["f", "g"]))
    def accept(self, fn: str) -> None:
        self.ids += 1
        event_id = f"e{self.ids}"
        self.queue.accept(AsyncEvent(event_id=event_id, function=fn, qualifier=None, payload=b"{}"))
        self.expected[event_id] = EventState.QUEUED

    @rule(seconds=st.sampled_from([0.0, 0.01, 0.3, 0.6, 1.2, 3.0, 60.0, 300.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(limit=st.none() | st.integers(1, 3))
    def take_due(self, limit: int | None) -> None:
        for event in self.queue.due(limit):
            assert event.next_attempt_at <= self.clock.now()
            self.expected[event.event_id] = EventState.IN_FLIGHT
            self.in_flight[event.event_id] = event
        for disposition in self.queue.take_expired():
            assert disposition.condition.value == "EventAgeExceeded"
            self._apply(disposition)

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data(), outcome=st.sampled_from(["success", "function_error", "throttle", "zero", "system"]))
    def report(self, data: st.DataObject, outcome: str) -> None:
        event = self.in_flight.pop(data.draw(st.sampled_from(sorted(self.in_flight))))
        if outcome == "success":
            disposition = self.queue.on_success(event, b"null")
        elif outcome == "function_error":
            disposition = self.queue.on_function_error(event, "Err", "boom")
        elif outcome == "system":
            disposition = self.queue.on_system_error(event, "oops")
        else:
            disposition = self.queue.on_throttle(event, "Reserved", reserved_zero=outcome == "zero")
        self._apply(disposition)
        if disposition.action is Action.REQUEUED:
            config = self.queue.config_for(event.function, event.qualifier)
            assert disposition.next_attempt_at <= event.accepted_at + config.maximum_event_age_s * 0.01 + 1e-9

    @rule(
        fn=st.sampled_from(["f", "g"]),
        retries=st.integers(0, 2),
        age=st.sampled_from([60, 600, 21600]),
        on_success=st.booleans(),
        on_failure=st.booleans(),
        dlq=st.booleans(),
    )
    def configure(self, fn: str, retries: int, age: int, on_success: bool, on_failure: bool, dlq: bool) -> None:
        self.queue.configure(
            EventInvokeConfig(
                fn,
                maximum_retry_attempts=retries,
                maximum_event_age_s=age,
                on_success_destination=SUCCESS_ARN if on_success else None,
                on_failure_destination=FAILURE_ARN if on_failure else None,
            ),
        )
        self.queue.set_dead_letter(fn, DLQ_ARN if dlq else None)

    @invariant()
    def every_event_is_in_exactly_the_state_its_dispositions_say(self) -> None:
        for event_id, state in self.expected.items():
            assert self.queue.state_of(event_id) is state, event_id

    @invariant()
    def counts_add_up_to_the_number_accepted(self) -> None:
        counts = self.queue.counts()
        assert counts.accepted == len(self.expected) == counts.accounted()
        for state, n in (
            (EventState.QUEUED, counts.queued),
            (EventState.IN_FLIGHT, counts.in_flight),
            (EventState.SUCCEEDED, counts.succeeded),
            (EventState.DESTINATION, counts.destination),
            (EventState.DLQ, counts.dlq),
            (EventState.DISCARDED, counts.discarded),
        ):
            assert n == sum(1 for s in self.expected.values() if s is state), state

    @invariant()
    def no_event_runs_more_than_three_times(self) -> None:
        for event in [*self.queue.queued(), *self.queue.in_flight()]:
            assert event.attempts <= 3 and event.function_error_retries_used <= 2


TestQueueMachine = QueueMachine.TestCase
TestQueueMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
