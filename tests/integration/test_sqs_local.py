"""SQS event source mappings on a real `lambdalab up`: the ESM API, pollers, partial batches, throttles, redrive."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from lambdalab import constants
from tests.support.cloud import RunningCloud, local_cloud

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
STACK_TEMPLATE = HERE / "sqs" / "template.yaml"
STACK = "lambdalab-sqs"
REPO = HERE.parent.parent
MESSAGES = 2000
DRAIN_TIMEOUT_S = 60  # it drains in ~30-40 s on a 2-core machine (see docs/SQS.md)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ledger")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, ledger: Path) -> Iterator[RunningCloud]:
    tmp = tmp_path_factory.mktemp("sqs-cloud")
    extra = ["--stack-name", STACK, "--time-scale", "0.05", "--parameter-overrides", f"LedgerDir={ledger}"]
    with local_cloud(STACK_TEMPLATE, tmp, extra=extra) as running:
        yield running


@pytest.fixture(scope="module")
def out(cloud: RunningCloud) -> dict[str, str]:
    return cloud.outputs(STACK)


def drain_ids(sqs: Any, url: str) -> list[str]:
    """Every message id in a queue (receives them all, long visibility so each is seen once)."""
    ids: list[str] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300).get("Messages", [])
        if not got:
            return ids
        ids += [m["MessageId"] for m in got]


def queue_counts(sqs: Any, url: str) -> tuple[int, int]:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def send_numbered(sqs: Any, url: str, count: int, extra: dict[str, Any] | None = None) -> dict[str, int]:
    """Send {"n": 1..count} in batches of 10 from a few threads; return message id → n."""

    def send(first: int) -> dict[str, int]:
        entries = [
            {"Id": str(n), "MessageBody": json.dumps({"n": n, **(extra or {})})}
            for n in range(first, min(first + 10, count + 1))
        ]
        answer = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        assert not answer.get("Failed"), answer.get("Failed")
        return {m["MessageId"]: int(m["Id"]) for m in answer["Successful"]}

    sent: dict[str, int] = {}
    with ThreadPoolExecutor(8) as pool:
        for part in pool.map(send, range(1, count + 1, 10)):
            sent.update(part)
    return sent


def test_template_mapping_is_listed_enabled_with_its_settings(cloud: RunningCloud, out: dict[str, str]) -> None:
    lam = cloud.client("lambda")
    listed = lam.list_event_source_mappings(FunctionName=out["ChaosName"])["EventSourceMappings"]
    assert len(listed) == 1
    mapping = lam.get_event_source_mapping(UUID=listed[0]["UUID"])
    assert mapping["EventSourceArn"] == out["ChaosQueueArn"]
    assert mapping["State"] == "Enabled"
    assert mapping["BatchSize"] == 10
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 20}
    assert mapping["FunctionArn"].endswith(f":function:{out['ChaosName']}")
    by_queue = lam.list_event_source_mappings(EventSourceArn=out["ChaosQueueArn"])["EventSourceMappings"]
    assert [m["UUID"] for m in by_queue] == [mapping["UUID"]]


def test_nothing_lost(cloud: RunningCloud, out: dict[str, str], ledger: Path) -> None:
    """Thousands of messages through record failures, batch errors, crashed environments and throttles: every id
    ends processed, in the dead-letter queue, or still in the queue — counted, not sampled."""
    sqs = cloud.client("sqs", retries=3)
    url, dlq = out["ChaosQueueUrl"], out["ChaosDeadLetterQueueUrl"]
    started = time.monotonic()
    sent = send_numbered(sqs, url, MESSAGES)
    assert len(sent) == MESSAGES
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    counts = queue_counts(sqs, url)
    while counts != (0, 0) and time.monotonic() < deadline:
        time.sleep(0.5)
        counts = queue_counts(sqs, url)
    drained_in = time.monotonic() - started
    remaining = drain_ids(sqs, url)
    dead = drain_ids(sqs, dlq)
    processed: set[str] = set()
    for path in ledger.glob("*.ids"):
        processed |= set(path.read_text().split())
    records = cloud.wait_records(lambda rs: len(rs) > 0, what="invocation records")
    mine = [r for r in records if r.get("function_name") == out["ChaosName"]]
    outcomes: dict[str, int] = {}
    for r in mine:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    print(
        f"\n{MESSAGES} messages: {len(processed)} processed, {len(dead)} dead-lettered, {len(remaining)} remaining; "
        f"drained in {drained_in:.1f} s; invocations {outcomes}"
    )
    all_ids = set(sent)
    assert processed <= all_ids and set(dead) <= all_ids and set(remaining) <= all_ids
    assert len(dead) == len(set(dead)), "a message is in the dead-letter queue twice"
    assert not processed & set(dead), "a processed message was dead-lettered"
    assert processed | set(dead) | set(remaining) == all_ids, "messages lost"
    assert counts == (0, 0), f"the queue did not drain within {DRAIN_TIMEOUT_S} s: {counts}"
    # Messages that fail on every receive can only be in the DLQ; the failure kinds all happened.
    always_failing = {mid for mid, n in sent.items() if n % 50 == 0}
    assert always_failing <= set(dead)
    assert outcomes.get("throttled", 0) > 0
    assert outcomes.get("crash", 0) > 0
    assert outcomes.get("function_error", 0) > 0


def test_reserved_five_twenty_messages_two_batches_all_processed(
    cloud: RunningCloud, out: dict[str, str], ledger: Path
) -> None:
    """The CLI experiment's seed: reserved concurrency 5, 20 queued messages, batch size 10 → about 2 invocations."""
    lam = cloud.client("lambda")
    sqs = cloud.client("sqs")
    mapping = lam.create_event_source_mapping(
        EventSourceArn=out["SpareQueueArn"], FunctionName=out["PlainName"], BatchSize=10, Enabled=False
    )
    assert mapping["State"] == "Creating"
    _wait_state(lam, mapping["UUID"], "Disabled")
    lam.put_function_concurrency(FunctionName=out["PlainName"], ReservedConcurrentExecutions=5)
    sent = send_numbered(sqs, out["SpareQueueUrl"], 20, {"n": 1})  # n=1: no failure of any kind
    updated = lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True, MaximumBatchingWindowInSeconds=1)
    assert updated["State"] == "Enabling"
    _wait_state(lam, mapping["UUID"], "Enabled")
    deadline = time.monotonic() + 20
    while queue_counts(sqs, out["SpareQueueUrl"]) != (0, 0) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert queue_counts(sqs, out["SpareQueueUrl"]) == (0, 0)
    processed: set[str] = set()
    for path in ledger.glob("*.ids"):
        processed |= set(path.read_text().split())
    assert set(sent) <= processed
    cloud.wait_records(
        lambda rs: len([r for r in rs if r.get("function_name") == out["PlainName"]]) >= 2,
        timeout=10,
        what="the Plain function's invocation records",
    )
    time.sleep(0.5)  # the telemetry writer flushes in batches: let any further record land before counting
    plain = [r for r in cloud.records() if r.get("function_name") == out["PlainName"]]
    assert 2 <= len(plain) <= 4, [r["outcome"] for r in plain]
    assert all(r["outcome"] == "success" for r in plain)
    lam.delete_event_source_mapping(UUID=mapping["UUID"])


def _wait_state(lam: Any, mapping_uuid: str, state: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    current = lam.get_event_source_mapping(UUID=mapping_uuid)["State"]
    while current != state and time.monotonic() < deadline:
        time.sleep(0.05)
        current = lam.get_event_source_mapping(UUID=mapping_uuid)["State"]
    assert current == state, f"mapping {mapping_uuid} stayed {current} for {timeout} s, waiting for {state}"


def unvalidated_lambda(cloud: RunningCloud) -> Any:
    """A Lambda client that sends out-of-range values as they are, so the service (not botocore) must refuse them."""
    return boto3.session.Session().client(
        "lambda",
        endpoint_url=cloud.url,
        region_name=constants.DEFAULT_REGION,
        aws_access_key_id=constants.FAKE_ACCESS_KEY_ID,
        aws_secret_access_key=constants.FAKE_SECRET_ACCESS_KEY,
        aws_session_token=constants.FAKE_SESSION_TOKEN,
        config=Config(parameter_validation=False, retries={"total_max_attempts": 1}),
    )


def _error(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"].get("Message", "")


def test_bad_input_gets_aws_shaped_errors(cloud: RunningCloud, out: dict[str, str]) -> None:
    lam = unvalidated_lambda(cloud)
    queue, fn = out["SpareQueueArn"], out["PlainName"]
    missing_queue = queue.rsplit(":", 1)[0] + ":no-such-queue"
    code, message = _error(lam.create_event_source_mapping, EventSourceArn=missing_queue, FunctionName=fn)
    assert code == "InvalidParameterValueException" and "NonExistentQueue" in message
    code, message = _error(lam.create_event_source_mapping, EventSourceArn=queue, FunctionName="no-such-function")
    assert code == "ResourceNotFoundException" and "no-such-function" in message
    code, message = _error(lam.create_event_source_mapping, EventSourceArn=queue, FunctionName=fn, BatchSize=20)
    assert code == "InvalidParameterValueException" and "greater than 10" in message
    code, message = _error(
        lam.create_event_source_mapping,
        EventSourceArn=queue,
        FunctionName=fn,
        BatchSize=10001,
        MaximumBatchingWindowInSeconds=1,
    )
    assert code == "InvalidParameterValueException" and "less than or equal to 10000" in message
    for bad in (1, 1001):
        code, message = _error(
            lam.create_event_source_mapping,
            EventSourceArn=queue,
            FunctionName=fn,
            ScalingConfig={"MaximumConcurrency": bad},
        )
        assert code == "InvalidParameterValueException" and "maximumConcurrency" in message
    code, message = _error(
        lam.create_event_source_mapping, EventSourceArn=queue, FunctionName=fn, MaximumBatchingWindowInSeconds=301
    )
    assert code == "InvalidParameterValueException"
    code, _ = _error(lam.get_event_source_mapping, UUID="00000000-0000-4000-8000-000000000000")
    assert code == "ResourceNotFoundException"
    code, _ = _error(lam.delete_event_source_mapping, UUID="00000000-0000-4000-8000-000000000000")
    assert code == "ResourceNotFoundException"
    # A queue whose visibility timeout is below the function's timeout (2 s) is refused, as Lambda refuses it
    sqs = cloud.client("sqs")
    short_url = sqs.create_queue(QueueName="short-visibility", Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    short_arn = sqs.get_queue_attributes(QueueUrl=short_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    code, message = _error(lam.create_event_source_mapping, EventSourceArn=short_arn, FunctionName=fn)
    assert code == "InvalidParameterValueException"
    assert message == "Queue visibility timeout: 1 seconds is less than Function timeout: 2 seconds"
    assert lam.list_event_source_mappings(EventSourceArn=short_arn)["EventSourceMappings"] == []
    # A second mapping of the same queue to the same function conflicts.
    chaos = lam.list_event_source_mappings(FunctionName=out["ChaosName"])["EventSourceMappings"][0]
    code, message = _error(
        lam.create_event_source_mapping, EventSourceArn=chaos["EventSourceArn"], FunctionName=out["ChaosName"]
    )
    assert code == "ResourceConflictException" and chaos["UUID"] in message


def test_update_disable_delete_lifecycle(cloud: RunningCloud, out: dict[str, str]) -> None:
    lam = cloud.client("lambda")
    created = lam.create_event_source_mapping(
        EventSourceArn=out["SpareQueueArn"], FunctionName=out["ChaosName"], BatchSize=5
    )
    assert created["State"] == "Creating" and created["BatchSize"] == 5
    _wait_state(lam, created["UUID"], "Enabled")
    updated = lam.update_event_source_mapping(UUID=created["UUID"], ScalingConfig={"MaximumConcurrency": 7})
    assert updated["State"] == "Updating" and updated["ScalingConfig"] == {"MaximumConcurrency": 7}
    _wait_state(lam, created["UUID"], "Enabled")
    disabled = lam.update_event_source_mapping(UUID=created["UUID"], Enabled=False)
    assert disabled["State"] == "Disabling"
    _wait_state(lam, created["UUID"], "Disabled")
    code, _ = _error(unvalidated_lambda(cloud).update_event_source_mapping, UUID=created["UUID"], BatchSize=0)
    assert code == "InvalidParameterValueException"
    deleted = lam.delete_event_source_mapping(UUID=created["UUID"])
    assert deleted["State"] == "Deleting"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            lam.get_event_source_mapping(UUID=created["UUID"])
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ResourceNotFoundException"
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the deleted mapping was still there after 10 s")


def test_aws_cli_lists_mappings(cloud: RunningCloud, out: dict[str, str]) -> None:
    listed = json.loads(cloud.aws("lambda", "list-event-source-mappings", "--output", "json").stdout)
    assert out["ChaosQueueArn"] in [m["EventSourceArn"] for m in listed["EventSourceMappings"]]


def test_send_messages_script_runs_unchanged_against_the_lab_stack(tmp_path: Path) -> None:
    """scripts/send-messages.sh against the real template's stack: its QueueConsumer mapping drains the queue."""
    extra = ["--stack-name", "lambda-concurrency-lab", "--time-scale", "0.05"]
    with local_cloud(REPO / "template.yaml", tmp_path, extra=extra) as running:
        # AWS CLI v1 ignores AWS_ENDPOINT_URL for SQS (its "SSL common name" customization picks
        # <region>.queue.amazonaws.com); scripts/lib.sh passes --endpoint-url itself, so the script runs as is.
        env = dict(running.env, COUNT="20", STACK_NAME="lambda-concurrency-lab")
        result = subprocess.run(
            ["bash", str(REPO / "scripts" / "send-messages.sh")],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "sent 20 of 20 messages" in result.stdout
        outputs = running.outputs("lambda-concurrency-lab")
        lam = running.client("lambda")
        listed = lam.list_event_source_mappings(FunctionName=outputs["QueueConsumerFunctionName"])
        assert [m["State"] for m in listed["EventSourceMappings"]] == ["Enabled"]
        sqs = running.client("sqs")
        deadline = time.monotonic() + 30
        while queue_counts(sqs, outputs["WorkQueueUrl"]) != (0, 0) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert queue_counts(sqs, outputs["WorkQueueUrl"]) == (0, 0)
        batches = [r for r in running.records() if r.get("function_name") == outputs["QueueConsumerFunctionName"]]
        assert batches and all(r["outcome"] == "success" for r in batches)
