"""The asynchronous sources' delivery with fakes at the seams: SNS retries by error kind and its DLQ, EventBridge
retry policies and DLQ attributes, scheduled deliveries; ESM metrics."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest

from lambdalab.clock import Clocks, VirtualClock
from lambdalab.sources.esm_metrics import EsmMetrics
from lambdalab.sources.invoke import InvokeRefused, LoopBridge
from lambdalab.sources.retry import RetryPolicy
from lambdalab.sources.router import SourceRouter
from lambdalab.sources.targets import DeliveryError, Target


class FakeInvoker:
    def __init__(self, failures: list[InvokeRefused | None]) -> None:
        self.failures = failures
        self.calls: list[tuple[str, dict]] = []

    async def invoke_async(self, function_arn: str, payload: bytes, *, trace_header: str | None = None) -> None:
        self.calls.append((function_arn, json.loads(payload)))
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure


class FakeDelivery:
    def __init__(self, errors: list[DeliveryError | None]) -> None:
        self.errors = errors
        self.delivered: list[tuple[str, str]] = []
        self.dead: list[tuple[str, str, dict]] = []

    async def deliver(self, target: Target, payload: str) -> None:
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error
        self.delivered.append((target.arn, payload))

    async def deliver_message(self, queue_arn: str, body: str, attributes: dict) -> None:
        self.dead.append((queue_arn, body, attributes))


def router(loop: asyncio.AbstractEventLoop, invoker: Any) -> SourceRouter:
    return SourceRouter(
        bridge=LoopBridge(loop),
        invoker=invoker,
        moto_url="http://moto",
        gateway_url="http://gateway",
        region="us-east-1",
        account_id="123456789012",
        time_scale=0.0001,  # retries in microseconds
        clocks=Clocks.virtual()[1],
        rng=random.Random(3),
    )


FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:f"


async def sns(r: SourceRouter, redrive: str | None) -> None:
    r.on_sns_to_lambda(
        subscription_arn="arn:aws:sns:us-east-1:123456789012:t:sub",
        endpoint=FUNCTION,
        topic_arn="arn:aws:sns:us-east-1:123456789012:t",
        message="m",
        message_id="id-1",
        subject=None,
        attributes={"k": {"Type": "String", "Value": "v"}},
        redrive_policy=redrive,
    )
    for _ in range(200):
        await asyncio.sleep(0.001)


async def test_sns_delivers_the_lambda_event_and_retries_throttles() -> None:
    throttled = InvokeRefused("TooManyRequestsException", "Rate Exceeded.", status=429, throttled=True)
    invoker = FakeInvoker([throttled, throttled, None])
    r = router(asyncio.get_running_loop(), invoker)
    await sns(r, None)
    assert len(invoker.calls) == 3 and r.counts == {"sns.retried": 2, "sns.delivered": 1}
    record = invoker.calls[0][1]["Records"][0]
    assert record["EventSource"] == "aws:sns" and record["Sns"]["MessageAttributes"] == {
        "k": {"Type": "String", "Value": "v"}
    }
    assert record["Sns"]["Subject"] is None and record["Sns"]["UnsubscribeUrl"].endswith(":t:sub")


async def test_sns_client_errors_are_not_retried_and_go_to_the_subscription_dlq() -> None:
    missing = InvokeRefused("ResourceNotFoundException", "Function not found", status=404)
    invoker = FakeInvoker([missing])
    r = router(asyncio.get_running_loop(), invoker)
    fake = FakeDelivery([])
    r.delivery = fake  # type: ignore[assignment]
    await sns(r, json.dumps({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:dlq"}))
    assert len(invoker.calls) == 1 and r.counts == {"sns.dead_lettered": 1}
    ((queue, body, attributes),) = fake.dead
    assert queue.endswith(":dlq") and json.loads(body)["MessageId"] == "id-1"
    assert attributes["ErrorCode"] == "404" and "Function not found" in attributes["ErrorMessage"]


async def test_without_a_dlq_a_failed_sns_delivery_is_discarded_and_counted() -> None:
    invoker = FakeInvoker([InvokeRefused("ResourceNotFoundException", "gone", status=404)])
    r = router(asyncio.get_running_loop(), invoker)
    await sns(r, None)
    assert r.counts == {"sns.discarded": 1}


@pytest.mark.parametrize(
    ("errors", "dead", "condition", "retries"),
    [
        ([None], 0, None, 0),
        ([DeliveryError("THROTTLING", "slow down", retriable=True)] * 2 + [None], 0, None, 2),
        ([DeliveryError("THROTTLING", "slow down", retriable=True)] * 9, 1, "MaximumRetryAttempts", 3),
        ([DeliveryError("NO_RESOURCE", "gone", retriable=False)], 1, None, 0),
    ],
)
async def test_eventbridge_retry_policy_then_dlq(errors: list, dead: int, condition: str | None, retries: int) -> None:
    r = router(asyncio.get_running_loop(), FakeInvoker([]))
    fake = FakeDelivery(list(errors))
    r.delivery = fake  # type: ignore[assignment]
    await r.deliver_with_retries(
        Target(FUNCTION),
        '{"e": 1}',
        policy=RetryPolicy(maximum_retry_attempts=3, maximum_event_age_s=600),
        dlq="arn:aws:sqs:us-east-1:123456789012:dlq",
        dlq_attributes={"RULE_ARN": "arn:rule", "TARGET_ARN": FUNCTION},
        kind="events",
    )
    assert len(fake.dead) == dead and len(fake.delivered) == 1 - dead
    if dead:
        (_, body, attributes) = fake.dead[0]
        assert body == '{"e": 1}' and attributes["RULE_ARN"] == "arn:rule"
        assert attributes["RETRY_ATTEMPTS"] == str(retries)
        assert attributes.get("EXHAUSTED_RETRY_CONDITION") == condition
        assert attributes["ERROR_CODE"] in ("THROTTLING", "NO_RESOURCE")


async def test_attempt_hooks_rewrite_the_payload_per_attempt() -> None:
    r = router(asyncio.get_running_loop(), FakeInvoker([]))
    fake = FakeDelivery([DeliveryError("THROTTLING", "x", retriable=True), None])
    r.delivery = fake  # type: ignore[assignment]
    await r.deliver_with_retries(
        Target(FUNCTION), "first", policy=RetryPolicy(), dlq=None, dlq_attributes={}, kind="scheduler",
        attempt_hook=lambda n: f"attempt {n}",
    )  # fmt: skip
    assert fake.delivered == [(FUNCTION, "attempt 2")]


def test_rule_patterns_compile_once_and_match_eventbridge_events() -> None:
    r = router(asyncio.new_event_loop(), FakeInvoker([]))
    event = r.eventbridge_event(source="shop", detail_type="Order", detail={"total": 12})
    assert event["time"].endswith("Z") and event["version"] == "0" and event["account"] == "123456789012"
    assert r.rule_matches('{"detail": {"total": [{"numeric": [">", 10]}]}}', event)
    assert not r.rule_matches('{"source": ["other"]}', event)
    assert not r.rule_matches("{not json", event)  # a pattern we cannot compile matches nothing (and is logged)


def test_esm_metrics_sum_per_period_with_the_mapping_dimension() -> None:
    clock = VirtualClock(120.0)
    metrics = EsmMetrics(clock, time_scale=0.5)
    metrics.count("u-1", "FilteredOutEventCount", 3)
    metrics.count("u-1", "FilteredOutEventCount", 2)
    metrics.count("u-1", "PolledEventCount", 0)  # nothing: no datum
    metrics.iterator_age("fn", 250.0)
    assert metrics.flush() == []  # the period is still open
    clock.advance(30)
    datums = {d["MetricName"]: d for d in metrics.flush()}
    assert set(datums) == {"FilteredOutEventCount", "IteratorAge"}
    assert datums["FilteredOutEventCount"]["StatisticValues"]["Sum"] == 5
    assert datums["FilteredOutEventCount"]["Dimensions"] == [{"Name": "EventSourceMappingUUID", "Value": "u-1"}]
    assert datums["IteratorAge"]["Unit"] == "Milliseconds" and datums["IteratorAge"]["StorageResolution"] == 1
