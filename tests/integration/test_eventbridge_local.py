"""EventBridge rules on a real `lambdalab up`: content filtering on a custom bus, the input transformer, asynchronous
invocation with Lambda's retries and on-failure destination, a target that does not exist going to the rule's DLQ,
and moto's patterns replaced (no 500 on PutEvents with a Lambda target)."""

from __future__ import annotations

import json
import time

import pytest

from tests.support.sources import Sources, drain

pytestmark = pytest.mark.integration


def _transformed(entries: list[dict]) -> list[dict]:
    return [e["event"] for e in entries if isinstance(e["event"], dict) and "order" in e["event"]]


def put(sources: Sources, detail_type: str, detail: dict, source: str = "shop") -> None:
    events = sources.cloud.client("events")
    answer = events.put_events(
        Entries=[
            {
                "EventBusName": sources.out["BusName"],
                "Source": source,
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
            }
        ]
    )
    assert answer["FailedEntryCount"] == 0, answer


def test_content_filtering_and_the_input_transformer(sources: Sources) -> None:
    before = len(_transformed(sources.entries("async")))
    # GIVEN the rule: source shop, detail-type OrderPlaced, total >= 100, customer anything-but prefix "test-"
    put(sources, "OrderPlaced", {"id": "o-1", "total": 150, "customer": "ann"})  # matches
    put(sources, "OrderPlaced", {"id": "o-2", "total": 99.5, "customer": "bob"})  # total too small
    put(sources, "OrderPlaced", {"id": "o-3", "total": 500, "customer": "test-bot"})  # excluded customer
    put(sources, "OrderPlaced", {"id": "o-4", "total": 100, "customer": "cy"}, source="other")  # other source
    put(sources, "OrderPlaced", {"id": "o-5", "total": 1e3, "customer": "dee"})  # matches
    entries = sources.wait_entries("async", lambda es: len(_transformed(es)) >= before + 2, what="two orders")
    got = _transformed(entries)[before:]
    assert sorted(e["order"] for e in got) == ["o-1", "o-5"]
    first = next(e for e in got if e["order"] == "o-1")
    # the transformer: <id> outside quotes is the JSON value, inside quotes the raw text; the reserved rule name
    assert first["total"] == 150 and first["text"] == "order o-1 of 150"
    assert first["rule"].startswith("lambdalab-sources-AsyncBigOrders")


def test_events_reach_functions_asynchronously_retried_then_sent_to_the_destination(sources: Sources) -> None:
    """A function that always fails: Lambda's async queue retries it (MaximumRetryAttempts 1), then the on-failure
    destination gets the invocation record - the event is not lost."""
    sqs = sources.cloud.client("sqs")
    put(sources, "Fail", {"case": "retry-then-destination"})
    messages = drain(sqs, sources.out["FailureQueueUrl"], expect=1, wait_s=20)
    records = [json.loads(m["Body"]) for m in messages]
    mine = [r for r in records if r["requestPayload"].get("detail", {}).get("case") == "retry-then-destination"]
    assert mine, records
    record = mine[0]
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2  # the first try and one retry
    assert record["requestPayload"]["detail-type"] == "Fail" and record["requestPayload"]["source"] == "shop"
    assert record["responseContext"]["functionError"] == "Unhandled"
    name = sources.out["FailingName"]
    records = sources.cloud.wait_records(
        lambda rs: any(r["function_name"] == name and r["attempt"] == 2 for r in rs), what="the retry's record"
    )
    mine_records = [r for r in records if r["function_name"] == name]
    assert {r["invocation_type"] for r in mine_records} == {"Event"}
    assert {r["outcome"] for r in mine_records} == {"function_error"}


def test_a_target_that_does_not_exist_goes_to_the_rule_dlq_at_once(sources: Sources) -> None:
    sqs = sources.cloud.client("sqs")
    put(sources, "Lost", {"case": "no-such-function"})
    messages = drain(sqs, sources.out["EventsDeadLettersUrl"], expect=1, wait_s=15)
    assert messages
    body = json.loads(messages[0]["Body"])
    assert body["detail"] == {"case": "no-such-function"} and body["detail-type"] == "Lost"
    attributes = {k: v["StringValue"] for k, v in messages[0]["MessageAttributes"].items()}
    assert attributes["ERROR_CODE"] == "NO_RESOURCE"
    assert attributes["RULE_ARN"].endswith("MissingTargetRule") or "MissingTargetRule" in attributes["RULE_ARN"]
    assert attributes["TARGET_ARN"].endswith(":function:does-not-exist")
    assert attributes["RETRY_ATTEMPTS"] == "0"  # errors retrying cannot fix are not retried


def test_put_events_with_the_aws_cli(sources: Sources) -> None:
    entries = json.dumps(
        [
            {
                "EventBusName": sources.out["BusName"],
                "Source": "shop",
                "DetailType": "OrderPlaced",
                "Detail": json.dumps({"id": "cli-1", "total": 300, "customer": "eve"}),
            }
        ]
    )
    result = sources.cloud.aws("events", "put-events", "--entries", entries)
    assert json.loads(result.stdout)["FailedEntryCount"] == 0
    sources.wait_entries(
        "async", lambda es: any(e["order"] == "cli-1" for e in _transformed(es)), what="the CLI's event"
    )


def test_step_functions_and_sqs_targets(sources: Sources) -> None:
    put(sources, "Workflow", {"case": "state machine"})
    put(sources, "Queued", {"case": "queue", "n": 1})
    sfn = sources.cloud.client("stepfunctions")
    deadline = time.monotonic() + 15
    executions: list = []
    while not executions and time.monotonic() < deadline:
        executions = sfn.list_executions(stateMachineArn=sources.out["WorkflowArn"])["executions"]
        time.sleep(0.2)
    assert executions, "the rule did not start the state machine"
    described = sfn.describe_execution(executionArn=executions[0]["executionArn"])
    started_with = json.loads(described["input"])
    assert started_with["detail"] == {"case": "state machine"} and started_with["detail-type"] == "Workflow"
    messages = drain(sources.cloud.client("sqs"), sources.out["EventsQueueUrl"], expect=1, wait_s=15)
    assert [json.loads(m["Body"]) for m in messages] == [{"case": "queue", "n": 1}]  # InputPath $.detail
