"""EventBridge Scheduler and scheduled rules on a real `lambdalab up --time-scale 0.01`: compressed schedules (the
output says so), context attributes in the input, flexible time windows, a one-time at() schedule deleted after it
ran, and a schedule whose target is missing going to its DLQ."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.sources import Sources, drain

pytestmark = pytest.mark.integration


def _by_source(entries: list[dict], source: str) -> list[dict]:
    return [e for e in entries if isinstance(e["event"], dict) and e["event"].get("source") == source]


def test_the_output_says_schedules_are_compressed(sources: Sources) -> None:
    text = "\n".join(sources.cloud.stderr_through("schedules (EventBridge Scheduler"))
    assert "schedules (EventBridge Scheduler, scheduled rules) run on a clock 100 times as fast" in text


def test_rate_rule_and_cron_schedule_fire_on_the_compressed_clock(sources: Sources) -> None:
    # rate(5 minutes) at time scale 0.01 is every 3 s; cron(0/5 ...) with a 2-minute flexible window likewise
    entries = sources.wait_entries(
        "async",
        lambda es: len(_by_source(es, "scheduled-rule")) >= 2 and len(_by_source(es, "scheduler")) >= 2,
        timeout=20,
        what="two runs of each schedule",
    )
    rule_runs = _by_source(entries, "scheduled-rule")
    assert rule_runs[0]["event"] == {"source": "scheduled-rule"}  # the rule's Input, as given
    scheduler_runs = _by_source(entries, "scheduler")
    event = scheduler_runs[0]["event"]
    assert event["attempt"] == 1 and event["schedule"].startswith("arn:aws:scheduler:us-east-1:")
    at = datetime.fromisoformat(event["at"].replace("Z", "+00:00"))
    assert at.minute % 5 == 0 and at.second == 0  # the scheduled time, not the (flexible) delivery time
    invocations = sources.records_of(sources.out["AsyncName"])
    assert invocations and {r["invocation_type"] for r in invocations} == {"Event"}


def test_a_one_time_schedule_runs_once_and_is_deleted(sources: Sources) -> None:
    scheduler = sources.cloud.client("scheduler")
    # schedule time runs 100x fast: 2 schedule-minutes ahead is ~1.2 s of real time
    when = (datetime.now(UTC) + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%S")
    scheduler.create_schedule(
        Name="once",
        ScheduleExpression=f"at({when})",
        FlexibleTimeWindow={"Mode": "OFF"},
        ActionAfterCompletion="DELETE",
        Target={
            "Arn": f"arn:aws:lambda:us-east-1:123456789012:function:{sources.out['AsyncName']}",
            "RoleArn": "arn:aws:iam::123456789012:role/scheduler",
            "Input": json.dumps({"source": "one-time"}),
        },
    )
    sources.wait_entries("async", lambda es: len(_by_source(es, "one-time")) == 1, timeout=15, what="the one run")
    deadline = time.monotonic() + 10
    names = {"once"}
    while "once" in names and time.monotonic() < deadline:
        names = {s["Name"] for s in scheduler.list_schedules()["Schedules"]}
        time.sleep(0.2)
    assert "once" not in names, "ActionAfterCompletion DELETE"
    time.sleep(2)
    assert len(_by_source(sources.entries("async"), "one-time")) == 1


def test_a_schedule_whose_target_is_missing_goes_to_its_dlq(sources: Sources) -> None:
    sqs = sources.cloud.client("sqs")
    messages = drain(sqs, sources.out["SchedulerDeadLettersUrl"], expect=1, wait_s=20)
    assert messages
    assert json.loads(messages[0]["Body"]) == {"lost": True}
    attributes = {k: v["StringValue"] for k, v in messages[0]["MessageAttributes"].items()}
    assert attributes["ERROR_CODE"] == "NO_RESOURCE"
    assert attributes["SCHEDULE_ARN"] == sources.out["MissingScheduleArn"]
    assert attributes["TARGET_ARN"].endswith(":function:does-not-exist") and attributes["EXECUTION_ID"]
