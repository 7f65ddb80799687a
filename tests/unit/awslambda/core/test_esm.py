"""SQS event source mappings: scaling on a virtual clock, settings validation (the event and the partial response:
tests/unit/awslambda/esm/test_sqs_poller.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdalab.awslambda.core.esm import (
    EventSourceMapping,
    MappingSettings,
    MappingState,
    SqsScaling,
    settings_from,
)
from lambdalab.awslambda.core.exceptions import InvalidParameterValueException
from lambdalab.clock import VirtualClock


def fill(scaling: SqsScaling) -> int:
    started = 0
    while scaling.try_start():
        started += 1
    return started


def test_starts_with_five_concurrent_batches() -> None:
    scaling = SqsScaling(VirtualClock())
    assert fill(scaling) == 5
    assert scaling.active == 5


def test_scales_up_by_at_most_300_per_minute_while_messages_are_found() -> None:
    clock = VirtualClock()
    scaling = SqsScaling(clock)
    scaling.found_messages()
    clock.advance(30)
    assert scaling.level == 5 + 150
    clock.advance(30)
    assert scaling.level == 305
    clock.advance(60 * 3)
    assert scaling.level == 1000  # the ceiling
    assert scaling.seconds_to_reach(1000) == pytest.approx(199.0)


def test_maximum_concurrency_caps_the_level_and_the_start() -> None:
    clock = VirtualClock()
    scaling = SqsScaling(clock, maximum_concurrency=2)
    assert scaling.level == 2
    scaling.found_messages()
    clock.advance(600)
    assert scaling.level == 2
    assert fill(scaling) == 2


def test_scales_back_to_five_when_the_queue_drains() -> None:
    clock = VirtualClock()
    scaling = SqsScaling(clock)
    scaling.found_messages()
    clock.advance(60)
    assert scaling.level == 305
    scaling.found_empty()
    assert scaling.level == 5
    clock.advance(600)
    assert scaling.level == 5  # no growth without messages


def test_time_scale_compresses_the_minute() -> None:
    clock = VirtualClock()
    scaling = SqsScaling(clock, time_scale=0.01)
    scaling.found_messages()
    clock.advance(0.6)  # one scaled minute
    assert scaling.level == 305


def test_lowering_maximum_concurrency_lowers_the_level() -> None:
    clock = VirtualClock()
    scaling = SqsScaling(clock)
    scaling.found_messages()
    clock.advance(60)
    scaling.set_maximum(20)
    assert scaling.level == 20


def test_finish_without_start_is_a_bug() -> None:
    with pytest.raises(RuntimeError):
        SqsScaling(VirtualClock()).finish()


@settings(max_examples=200, deadline=None)
@given(
    maximum=st.one_of(st.none(), st.integers(2, 1000)),
    steps=st.lists(
        st.tuples(st.sampled_from(["found", "empty", "start", "finish", "tick"]), st.integers(0, 1000)),
        max_size=80,
    ),
)
def test_never_more_concurrent_batches_than_the_cap(maximum: int | None, steps: list[tuple[str, int]]) -> None:
    clock = VirtualClock()
    scaling = SqsScaling(clock, maximum_concurrency=maximum)
    cap = 1000 if maximum is None else maximum
    anchor_level, anchor_time = scaling.level, clock.now()  # growth is measured from the last drop
    for action, value in steps:
        if action == "found":
            scaling.found_messages()
        elif action == "empty":
            scaling.found_empty()
        elif action == "start":
            for _ in range(value % 50):
                scaling.try_start()
        elif action == "finish" and scaling.active:
            scaling.finish()
        elif action == "tick":
            clock.advance(value / 10)
        level = scaling.level
        assert scaling.active <= cap
        assert min(5, cap) <= level <= cap
        if action == "empty":
            anchor_level, anchor_time = level, clock.now()
        # growth is bounded by 300 per minute of clock time (drops are immediate)
        assert level - anchor_level <= 300 * (clock.now() - anchor_time) / 60 + 1e-9
    assert scaling.peak_active <= cap


@settings(max_examples=100, deadline=None)
@given(
    maximum=st.one_of(st.none(), st.integers(2, 1000)),
    events=st.lists(st.tuples(st.booleans(), st.floats(0, 120)), max_size=40),
)
def test_started_batches_never_exceed_the_cap(maximum: int | None, events: list[tuple[bool, float]]) -> None:
    """Pollers only start through try_start: at no moment are more batches active than the cap."""
    clock = VirtualClock()
    scaling = SqsScaling(clock, maximum_concurrency=maximum)
    cap = 1000 if maximum is None else maximum
    for found, seconds in events:
        clock.advance(seconds)
        (scaling.found_messages if found else scaling.found_empty)()
        fill(scaling)
        assert scaling.active <= cap
        if not found and scaling.active:
            scaling.finish()
    assert scaling.peak_active <= cap


# --- settings -----------------------------------------------------------------------------------------------------


def test_defaults_and_api_shape() -> None:
    mapping = EventSourceMapping(
        uuid="u",
        event_source_arn="arn:aws:sqs:us-east-1:123456789012:q",
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
        settings=settings_from({}),
        region="us-east-1",
        account_id="123456789012",
        last_modified=1_800_000_000.0,
    )
    body = mapping.to_api()
    assert body["BatchSize"] == 10 and body["MaximumBatchingWindowInSeconds"] == 0
    assert body["State"] == MappingState.CREATING.value == "Creating"
    assert body["FunctionResponseTypes"] == [] and "ScalingConfig" not in body
    assert body["EventSourceMappingArn"] == "arn:aws:lambda:us-east-1:123456789012:event-source-mapping:u"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"BatchSize": 0}, "greater than or equal to 1"),
        ({"BatchSize": 10001, "MaximumBatchingWindowInSeconds": 1}, "less than or equal to 10000"),
        ({"BatchSize": 11}, "greater than 0 if maximum batch size is greater than 10"),
        ({"MaximumBatchingWindowInSeconds": 301}, "less than or equal to 300"),
        ({"ScalingConfig": {"MaximumConcurrency": 1}}, "scalingConfig.maximumConcurrency"),
        ({"ScalingConfig": {"MaximumConcurrency": 1001}}, "scalingConfig.maximumConcurrency"),
        ({"FunctionResponseTypes": ["Nope"]}, "functionResponseTypes"),
        ({"BatchSize": "10"}, "must be an integer"),
        ({"Enabled": "yes"}, "must be a boolean"),
    ],
)
def test_bad_settings_are_invalid_parameter_values(body: dict, needle: str) -> None:
    with pytest.raises(InvalidParameterValueException) as info:
        settings_from(body)
    assert needle in info.value.message
    assert info.value.status == 400


def test_cloudformation_properties_may_be_strings() -> None:
    parsed = settings_from(
        {"BatchSize": "100", "MaximumBatchingWindowInSeconds": "2", "ScalingConfig": {"MaximumConcurrency": "5"}},
        lenient=True,
    )
    assert parsed == MappingSettings(batch_size=100, batching_window_s=2, maximum_concurrency=5)


def test_update_keeps_what_it_does_not_name() -> None:
    base = settings_from({"BatchSize": 5, "FunctionResponseTypes": ["ReportBatchItemFailures"]})
    updated = settings_from({"Enabled": False}, base=base)
    assert updated.batch_size == 5 and updated.report_batch_item_failures and not updated.enabled
