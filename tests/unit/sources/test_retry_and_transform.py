"""Delivery retry schedules (EventBridge/Scheduler RetryPolicy, SNS's delivery policy) and EventBridge input
transformation, with the examples of "Amazon EventBridge input transformation"."""

from __future__ import annotations

import json
import random

import pytest

from lambdalab.sources.retry import Exhausted, RetryPolicy, sns_delay
from lambdalab.sources.transform import TransformError, target_input

EVENT = {
    "version": "0",
    "id": "7bf73129-1428-4cd3-a780-95db273d1602",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "123456789012",
    "time": "2015-11-11T21:29:54Z",
    "region": "us-east-1",
    "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
    "detail": {"instance-id": "i-0123456789", "state": "RUNNING"},
}
PATHS = {"timestamp": "$.time", "instance": "$.detail.instance-id", "state": "$.detail.state",
         "resource": "$.resources[0]"}  # fmt: skip


def transform(template: str) -> str:
    target = {"InputTransformer": {"InputPathsMap": PATHS, "InputTemplate": template}}
    return target_input(target, EVENT, "arn:aws:events:us-east-2:123456789012:rule/example", "example")


def test_documented_input_templates() -> None:
    assert transform('"instance <instance> is in <state>"') == '"instance i-0123456789 is in RUNNING"'
    assert json.loads(transform('{"instance" : <instance>, "state": <state>}')) == {
        "instance": "i-0123456789",
        "state": "RUNNING",
    }
    mixed = json.loads(transform('{"instance": <instance>, "state": [9, <state>, true], "Transformed": "Yes"}'))
    assert mixed == {"instance": "i-0123456789", "state": [9, "RUNNING", True], "Transformed": "Yes"}
    template = (
        '{"ruleArn": <aws.events.rule-arn>, "ruleName": <aws.events.rule-name>, '
        '"originalEvent": <aws.events.event.json>, "event": <aws.events.event>}'
    )
    reserved = json.loads(transform(template))
    assert reserved["ruleArn"].endswith(":rule/example") and reserved["ruleName"] == "example"
    assert reserved["originalEvent"] == EVENT and "detail" not in reserved["event"]
    assert transform('"<aws.events.rule-name> triggered"') == '"example triggered"'
    # inside a string the raw value, unescaped (as EventBridge does); a path matching nothing binds nothing
    assert json.loads(transform('{"r": "<resource>", "missing": <nope>}')) == {
        "r": EVENT["resources"][0],
        "missing": None,
    }


def test_input_and_input_path() -> None:
    assert target_input({"Input": '{"fixed": 1}'}, EVENT, "arn", "r") == '{"fixed": 1}'
    assert json.loads(target_input({"InputPath": "$.detail"}, EVENT, "arn", "r")) == EVENT["detail"]
    assert json.loads(target_input({}, EVENT, "arn", "r")) == EVENT
    with pytest.raises(TransformError):
        target_input({"InputPath": "$$$["}, EVENT, "arn", "r")


def test_retry_policy_decides_on_attempts_and_age() -> None:
    policy = RetryPolicy(maximum_retry_attempts=2, maximum_event_age_s=60)
    assert policy.decide(0, 0) is None and policy.decide(1, 59) is None
    assert policy.decide(2, 0) is Exhausted.RETRIES
    assert policy.decide(0, 60) is Exhausted.AGE
    assert policy.decide(0, 0.6, time_scale=0.01) is Exhausted.AGE  # the age is compressed with the clock
    assert RetryPolicy.from_api(None) == RetryPolicy(185, 86400)
    with pytest.raises(ValueError):
        RetryPolicy(maximum_retry_attempts=186)
    with pytest.raises(ValueError):
        RetryPolicy(maximum_event_age_s=59)


def test_retry_backoff_is_jittered_under_a_doubling_cap() -> None:
    rng = random.Random(7)
    policy = RetryPolicy()
    for retries in range(12):
        cap = min(300.0, 2.0**retries)
        for _ in range(20):
            assert 0.0 <= policy.delay(retries, rng) <= cap
    assert policy.delay(3, random.Random(1), time_scale=0.01) <= 0.08


def test_sns_delivery_policy_for_lambda_endpoints() -> None:
    assert [sns_delay(n) for n in (1, 2, 3)] == [0.0, 0.0, 0.0]  # immediate
    assert [sns_delay(n) for n in (4, 5)] == [1.0, 1.0]  # pre-backoff
    backoff = [sns_delay(n) for n in range(6, 16)]
    assert backoff[0] == pytest.approx(1.0) and backoff[-1] == pytest.approx(20.0) and backoff == sorted(backoff)
    assert sns_delay(16) == 20.0 and sns_delay(15 + 100_000) == 20.0  # post-backoff
    assert sns_delay(16 + 100_000) is None  # 100,015 retries, then SNS gives up
    assert sns_delay(16, time_scale=0.01) == pytest.approx(0.2)
