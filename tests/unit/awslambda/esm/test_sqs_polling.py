"""The SQS mappings and their pollers (esm/sqs_poller.py) on a fake SQS queue, a fake function and a virtual clock: no
processes, no moto. The queue's visibility timeouts, the scaling of pollers and the batching window all run on the
virtual clock; only the pollers' own short pauses are real (they are made 0 here)."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdalab.awslambda.core.esm import MappingState
from lambdalab.awslambda.core.exceptions import InvalidParameterValueException, ResourceNotFoundException
from lambdalab.awslambda.core.outcome import InvocationResult, Outcome
from lambdalab.awslambda.core.policy import Throttled, ThrottleReason
from lambdalab.awslambda.esm import sqs_poller
from lambdalab.awslambda.esm.sqs_poller import EventSourceMappings
from lambdalab.awslambda.hosting import InvokeResult, InvokeStatus
from lambdalab.clock import Clocks, VirtualClock
from lambdalab.observe.model import InvocationRecord

REGION, ACCOUNT = "us-east-1", "123456789012"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:work"
QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/work"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:worker"


class FakeSqs:
    """One standard queue with SQS's visibility rules on the virtual clock: a received message is invisible for the
    visibility timeout, then returns; DeleteMessageBatch takes the latest receipt handle only. Thread-safe (the
    pollers call it from their thread pool)."""

    def __init__(self, clock: VirtualClock, visibility_timeout_s: int = 30) -> None:
        self.clock = clock
        self.visibility_timeout_s = visibility_timeout_s
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.bodies: dict[str, str] = {}  # message id → body, of every message still in the queue
        self._visible_at: dict[str, float] = {}
        self._receipt: dict[str, str] = {}
        self.receives: dict[str, int] = {}
        self.deleted: list[str] = []

    def send(self, body: str) -> str:
        with self._lock:
            message_id = f"m{next(self._ids)}"
            self.bodies[message_id] = body
            self._visible_at[message_id] = self.clock.now()
            self.receives[message_id] = 0
            return message_id

    def visible(self) -> list[str]:
        with self._lock:
            return [m for m in self.bodies if self._visible_at[m] <= self.clock.now()]

    # --- the boto3 client's calls the mappings make ----------------------------------------------------------------

    def get_queue_url(self, QueueName: str, QueueOwnerAWSAccountId: str) -> dict[str, Any]:
        return {"QueueUrl": QUEUE_URL}

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        return {"Attributes": {"VisibilityTimeout": str(self.visibility_timeout_s)}}

    def receive_message(self, QueueUrl: str, MaxNumberOfMessages: int, **_: Any) -> dict[str, Any]:
        with self._lock:
            now = self.clock.now()
            ready = [m for m in self.bodies if self._visible_at[m] <= now][:MaxNumberOfMessages]
            messages = []
            for message_id in ready:
                self.receives[message_id] += 1
                receipt = f"{message_id}#{self.receives[message_id]}"
                self._receipt[message_id] = receipt
                self._visible_at[message_id] = now + self.visibility_timeout_s
                messages.append(
                    {
                        "MessageId": message_id,
                        "ReceiptHandle": receipt,
                        "Body": self.bodies[message_id],
                        "MD5OfBody": "",
                        "Attributes": {"ApproximateReceiveCount": str(self.receives[message_id])},
                    }
                )
        if not messages:
            time.sleep(0.002)  # a (very) short long poll, so an idle poller does not spin
        return {"Messages": messages} if messages else {}

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        successful, failed = [], []
        with self._lock:
            for entry in Entries:
                message_id = entry["ReceiptHandle"].split("#")[0]
                if self._receipt.get(message_id) == entry["ReceiptHandle"] and message_id in self.bodies:
                    del self.bodies[message_id]
                    self.deleted.append(message_id)
                    successful.append({"Id": entry["Id"]})
                else:
                    failed.append({"Id": entry["Id"], "Code": "ReceiptHandleIsInvalid", "SenderFault": True})
        return {"Successful": successful, "Failed": failed}


Answer = Callable[[list[dict[str, Any]]], Awaitable["InvocationResult"]]


@dataclass
class FakeWorker:
    """The Lambda service as the mappings see it (LambdaFunctions): a function whose answer per batch a test scripts;
    it counts the batches in flight. Closing `gate` holds every invoke until it opens again."""

    timeout_s: int = 30
    answer: Answer | None = None
    batches: list[list[str]] = field(default_factory=list)  # the message ids of each invoke, in order
    in_flight: int = 0
    peak_in_flight: int = 0
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.gate.set()

    async def invoke_internal(self, function_arn: str, payload: bytes) -> InvocationResult:
        records = json.loads(payload)["Records"]
        self.batches.append([r["messageId"] for r in records])
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await self.gate.wait()
            return await (self.answer or succeed)(records)
        finally:
            self.in_flight -= 1

    def mapping_function_arn(self, function_name: str) -> str:
        return FUNCTION_ARN

    def check_function(self, function_name: str) -> None:
        return None

    def function_role(self, function_name: str) -> str:
        return f"arn:aws:iam::{ACCOUNT}:role/worker"

    def function_timeout_s(self, function_name: str) -> int:
        return self.timeout_s


def _record(outcome: Outcome) -> InvocationRecord:
    return InvocationRecord(
        request_id="r",
        function_name="worker",
        function_arn=FUNCTION_ARN,
        qualifier="$LATEST",
        version="$LATEST",
        invocation_type="RequestResponse",
        outcome=outcome,
        start_kind=None,
        spillover=False,
        environment_id=None,
        received_at=0.0,
        init_start=None,
        init_duration_s=None,
        invoke_start=None,
        invoke_end=None,
        duration_s=None,
        billed_duration_ms=None,
        memory_mb=128,
        max_memory_used_mb=None,
    )


def ran(body: bytes, status: InvokeStatus = InvokeStatus.SUCCESS) -> InvocationResult:
    outcome = Outcome.SUCCESS if status is InvokeStatus.SUCCESS else Outcome.FUNCTION_ERROR
    result = InvokeResult("r", status, body, None if outcome is Outcome.SUCCESS else "Error", 0.0, 0.0, 0.0, "", 40)
    return InvocationResult(outcome, _record(outcome), result)


def throttled() -> InvocationResult:
    return InvocationResult(
        Outcome.THROTTLED, _record(Outcome.THROTTLED), throttle=Throttled(ThrottleReason.RESERVED, 1.0)
    )


async def succeed(records: list[dict[str, Any]]) -> InvocationResult:
    return ran(b"null")


def failing_items(*bodies: str) -> Answer:
    """Report the messages with these bodies as batch item failures."""

    async def answer(records: list[dict[str, Any]]) -> InvocationResult:
        failures = [{"itemIdentifier": r["messageId"]} for r in records if r["body"] in bodies]
        return ran(json.dumps({"batchItemFailures": failures}).encode())

    return answer


@dataclass
class Lab:
    clock: VirtualClock
    sqs: FakeSqs
    worker: FakeWorker
    mappings: EventSourceMappings
    tasks: set[asyncio.Task[Any]]

    def create(self, **body: Any) -> str:
        request = {"EventSourceArn": QUEUE_ARN, "FunctionName": "worker", **body}
        return self.mappings.create(request).uuid

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Let the pollers run (real time, a few ms a turn) until `condition` holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def make_lab(visibility_timeout_s: int = 30, timeout_s: int = 30) -> Lab:
    clock, clocks = Clocks.virtual()
    sqs = FakeSqs(clock, visibility_timeout_s)
    worker = FakeWorker(timeout_s=timeout_s)
    tasks: set[asyncio.Task[Any]] = set()

    def spawn(coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    mappings = EventSourceMappings(
        worker,
        clocks,
        region=REGION,
        account_id=ACCOUNT,
        endpoint_url="http://sqs.invalid",  # never used: the fake client is
        time_scale=1.0,
        spawn_task=spawn,
        sender=None,  # type: ignore[arg-type]  # stream mappings only
        stream_invoker=None,  # type: ignore[arg-type]
        sqs_client=sqs,
    )
    mappings.start()
    return Lab(clock, sqs, worker, mappings, tasks)


@pytest.fixture(autouse=True)
def no_real_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqs_poller, "THROTTLE_BACKOFF_S", 0.0)
    monkeypatch.setattr(sqs_poller, "ERROR_BACKOFF_S", 0.0)
    monkeypatch.setattr(sqs_poller, "STOP_GRACE_S", 1.0)  # disable/delete: a batch's grace (3 s in the cloud)


@pytest.fixture
async def lab() -> Any:
    made = await make_lab()
    yield made
    made.worker.gate.set()
    await made.mappings.stop()


# --- creating a mapping ----------------------------------------------------------------------------------------------


async def test_a_visibility_timeout_below_the_function_timeout_is_refused() -> None:
    lab = await make_lab(visibility_timeout_s=10, timeout_s=30)
    try:
        with pytest.raises(InvalidParameterValueException) as refused:
            lab.create(BatchSize=1)
        assert refused.value.message == "Queue visibility timeout: 10 seconds is less than Function timeout: 30 seconds"
        assert lab.mappings.list_mappings() == []
        lab.worker.timeout_s = 10  # equal is allowed
        assert lab.create(BatchSize=1)
    finally:
        await lab.mappings.stop()


# --- scaling -----------------------------------------------------------------------------------------------------


async def test_pollers_scale_up_from_five_by_five_a_second_while_messages_keep_coming(lab: Lab) -> None:
    for n in range(40):
        lab.sqs.send(f"m{n}")
    lab.worker.gate.clear()  # every batch stays in flight: in-flight batches = pollers busy
    uuid = lab.create(BatchSize=1)
    await until(lambda: lab.worker.in_flight == 5)
    await asyncio.sleep(0.2)  # the supervisor had time to start more, and did not: the level is 5
    assert lab.worker.in_flight == 5
    lab.advance(1.0)  # 300 per minute: 5 more after one second
    await until(lambda: lab.worker.in_flight == 10)
    await asyncio.sleep(0.2)
    assert lab.worker.in_flight == 10 and lab.mappings.scaling(uuid).level == 10
    lab.worker.gate.set()
    await until(lambda: not lab.sqs.bodies)
    await until(lambda: lab.mappings.scaling(uuid).level == 5)  # an empty poll scales back to the first five
    assert sorted(lab.sqs.deleted) == sorted(f"m{n}" for n in range(1, 41))


async def test_maximum_concurrency_caps_the_batches_in_flight(lab: Lab) -> None:
    for n in range(30):
        lab.sqs.send(f"m{n}")
    lab.worker.gate.clear()
    uuid = lab.create(BatchSize=1, ScalingConfig={"MaximumConcurrency": 2})
    await until(lambda: lab.worker.in_flight == 2)
    lab.advance(600.0)  # long enough to scale to 1,000 without the cap
    await asyncio.sleep(0.2)
    assert lab.worker.in_flight == 2 and lab.mappings.scaling(uuid).level == 2
    lab.worker.gate.set()
    await until(lambda: not lab.sqs.bodies)
    assert lab.worker.peak_in_flight == 2


# --- batches -----------------------------------------------------------------------------------------------------


async def test_the_batching_window_gathers_messages_until_it_ends(lab: Lab) -> None:
    for n in range(3):
        lab.sqs.send(f"early{n}")
    lab.create(BatchSize=10, MaximumBatchingWindowInSeconds=5)
    await asyncio.sleep(0.2)
    assert lab.worker.batches == []  # 3 < 10 and the window is open: no invoke yet
    lab.sqs.send("late")
    await until(lambda: not lab.sqs.visible())  # a poller took it (into the open batch, or its own open window)
    await asyncio.sleep(0.1)
    assert lab.worker.batches == []
    lab.advance(5.0)
    await until(lambda: not lab.sqs.bodies)
    # one batch for what one window gathered (the late one may be in a second poller's window: either ends first)
    assert any(batch[:3] == ["m1", "m2", "m3"] for batch in lab.worker.batches)
    assert sorted(itertools.chain.from_iterable(lab.worker.batches)) == ["m1", "m2", "m3", "m4"]


async def test_a_full_batch_does_not_wait_for_the_window(lab: Lab) -> None:
    for n in range(4):
        lab.sqs.send(f"m{n}")
    lab.create(BatchSize=4, MaximumBatchingWindowInSeconds=300)
    await until(lambda: len(lab.worker.batches) == 1)  # the virtual clock never moved
    assert lab.worker.batches == [["m1", "m2", "m3", "m4"]]


async def test_without_a_window_a_batch_is_what_one_receive_returns(lab: Lab) -> None:
    for n in range(3):
        lab.sqs.send(f"m{n}")
    lab.create(BatchSize=10)
    await until(lambda: len(lab.worker.batches) == 1)
    assert lab.worker.batches == [["m1", "m2", "m3"]]


# --- what returns to the queue -------------------------------------------------------------------------------------


async def test_report_batch_item_failures_returns_only_the_failed_messages(lab: Lab) -> None:
    for body in ("ok-1", "bad", "ok-2"):
        lab.sqs.send(body)
    lab.worker.answer = failing_items("bad")
    lab.create(BatchSize=10, FunctionResponseTypes=["ReportBatchItemFailures"])
    await until(lambda: len(lab.sqs.deleted) == 2)
    assert sorted(lab.sqs.deleted) == ["m1", "m3"]
    assert list(lab.sqs.bodies) == ["m2"]  # in flight until its visibility timeout ends
    lab.worker.answer = None
    lab.advance(30.0)
    await until(lambda: not lab.sqs.bodies)
    assert lab.worker.batches == [["m1", "m2", "m3"], ["m2"]]


async def test_without_report_batch_item_failures_the_response_is_not_read(lab: Lab) -> None:
    for body in ("ok-1", "bad"):
        lab.sqs.send(body)
    lab.worker.answer = failing_items("bad")
    lab.create(BatchSize=10)
    await until(lambda: not lab.sqs.bodies)
    assert sorted(lab.sqs.deleted) == ["m1", "m2"]


async def test_an_invalid_partial_batch_response_fails_the_whole_batch(lab: Lab) -> None:
    for body in ("a", "b"):
        lab.sqs.send(body)

    async def invalid(records: list[dict[str, Any]]) -> InvocationResult:
        return ran(b'{"batchItemFailures": [{"itemIdentifier": "not-in-the-batch"}]}')

    lab.worker.answer = invalid
    uuid = lab.create(BatchSize=10, FunctionResponseTypes=["ReportBatchItemFailures"])
    await until(lambda: lab.mappings.stats(uuid).function_errors == 1)
    await asyncio.sleep(0.05)
    assert lab.sqs.deleted == [] and sorted(lab.sqs.bodies) == ["m1", "m2"]


async def test_a_function_error_returns_the_whole_batch(lab: Lab) -> None:
    lab.sqs.send("a")

    async def error(records: list[dict[str, Any]]) -> InvocationResult:
        return ran(b'{"errorMessage": "boom"}', InvokeStatus.FUNCTION_ERROR)

    lab.worker.answer = error
    uuid = lab.create(BatchSize=10)
    await until(lambda: lab.mappings.stats(uuid).function_errors == 1)
    assert lab.sqs.deleted == [] and list(lab.sqs.bodies) == ["m1"]
    lab.worker.answer = None
    lab.advance(30.0)
    await until(lambda: not lab.sqs.bodies)
    assert lab.sqs.receives["m1"] == 2


async def test_a_throttled_batch_returns_to_the_queue_and_is_not_lost(lab: Lab) -> None:
    for body in ("a", "b"):
        lab.sqs.send(body)

    async def throttle(records: list[dict[str, Any]]) -> InvocationResult:
        return throttled()

    lab.worker.answer = throttle
    uuid = lab.create(BatchSize=10)
    await until(lambda: lab.mappings.stats(uuid).throttles == 1)
    await asyncio.sleep(0.05)
    assert lab.sqs.deleted == [] and sorted(lab.sqs.bodies) == ["m1", "m2"]  # not deleted: in flight
    assert lab.sqs.visible() == []  # and not received again before its visibility timeout
    lab.worker.answer = None
    lab.advance(30.0)
    await until(lambda: not lab.sqs.bodies)
    assert sorted(lab.sqs.deleted) == ["m1", "m2"]
    assert lab.worker.batches == [["m1", "m2"], ["m1", "m2"]]


# --- disabling and deleting while a batch runs ----------------------------------------------------------------------


async def test_disabling_a_mapping_lets_its_batch_finish_then_polls_no_more(lab: Lab) -> None:
    lab.sqs.send("a")
    lab.worker.gate.clear()
    uuid = lab.create(BatchSize=10)
    await until(lambda: lab.worker.in_flight == 1)
    assert lab.mappings.update(uuid, {"Enabled": False}).state == MappingState.DISABLING
    await asyncio.sleep(0.05)  # the disable is under way (its grace for the batch is 1 s here)
    lab.worker.gate.set()
    await until(lambda: lab.mappings.get(uuid).state == MappingState.DISABLED)
    assert lab.sqs.deleted == ["m1"]  # the batch in flight finished and was deleted
    lab.sqs.send("after")
    await asyncio.sleep(0.2)
    assert lab.sqs.receives["m2"] == 0 and len(lab.worker.batches) == 1
    lab.mappings.update(uuid, {"Enabled": True})
    await until(lambda: not lab.sqs.bodies)


async def test_deleting_a_mapping_mid_batch_cancels_it_and_the_messages_come_back(lab: Lab) -> None:
    lab.sqs.send("a")
    lab.worker.gate.clear()  # the batch never ends: the delete's grace runs out
    uuid = lab.create(BatchSize=10)
    await until(lambda: lab.worker.in_flight == 1)
    assert lab.mappings.delete(uuid).state == MappingState.DELETING
    await until(lambda: lab.mappings.list_mappings() == [])
    with pytest.raises(ResourceNotFoundException):
        lab.mappings.get(uuid)
    assert lab.worker.in_flight == 0  # cancelled
    assert list(lab.sqs.bodies) == ["m1"] and lab.sqs.deleted == []  # not lost: in flight
    lab.advance(30.0)
    assert lab.sqs.visible() == ["m1"]  # back in the queue for whoever polls it next


# --- invariants -------------------------------------------------------------------------------------------------


BEHAVIOURS = st.sampled_from(["ok", "item-failure-once", "error-once", "throttle-once"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    behaviours=st.lists(BEHAVIOURS, min_size=1, max_size=25),
    batch_size=st.integers(1, 10),
    maximum_concurrency=st.integers(2, 4),
    report_failures=st.booleans(),
)
def test_nothing_is_lost_and_concurrency_never_exceeds_the_maximum(
    behaviours: list[str], batch_size: int, maximum_concurrency: int, report_failures: bool
) -> None:
    """Whatever each message's first attempt does (succeeds, fails as an item, fails the batch, is throttled): every
    message is at every moment deleted or still in the queue, each is deleted exactly once and only after a
    successful run that did not report it, and the batches in flight never exceed MaximumConcurrency."""

    async def scenario() -> None:
        lab = await make_lab()
        attempts: dict[str, int] = {}
        successes: set[str] = set()  # message ids of a run that succeeded for them

        async def answer(records: list[dict[str, Any]]) -> InvocationResult:
            first = {r["messageId"]: attempts.get(r["messageId"], 0) == 0 for r in records}
            for r in records:
                attempts[r["messageId"]] = attempts.get(r["messageId"], 0) + 1
            await asyncio.sleep(0)  # let other pollers interleave
            firsts = [r for r in records if first[r["messageId"]]]
            if any(r["body"] == "throttle-once" for r in firsts):
                return throttled()
            if any(r["body"] == "error-once" for r in firsts):
                return ran(b'{"errorMessage": "boom"}', InvokeStatus.FUNCTION_ERROR)
            failed = [r["messageId"] for r in firsts if r["body"] == "item-failure-once"]
            successes.update(r["messageId"] for r in records if not (report_failures and r["messageId"] in failed))
            return ran(json.dumps({"batchItemFailures": [{"itemIdentifier": i} for i in failed]}).encode())

        lab.worker.answer = answer
        sent = [lab.sqs.send(b) for b in behaviours]
        body: dict[str, Any] = {"BatchSize": batch_size, "ScalingConfig": {"MaximumConcurrency": maximum_concurrency}}
        if report_failures:
            body["FunctionResponseTypes"] = ["ReportBatchItemFailures"]
        lab.create(**body)
        try:
            for _ in range(6):  # each round: the pollers drain what is visible, then the timeouts end
                await until(lambda: lab.sqs.visible() == [] and lab.worker.in_flight == 0)
                await asyncio.sleep(0.02)
                assert set(lab.sqs.deleted) | set(lab.sqs.bodies) == set(sent)  # nothing lost
                assert not set(lab.sqs.deleted) & set(lab.sqs.bodies)
                if not lab.sqs.bodies:
                    break
                lab.advance(30.0)
            assert sorted(lab.sqs.deleted) == sorted(sent)  # every message processed in the end
            assert len(lab.sqs.deleted) == len(set(lab.sqs.deleted))  # and deleted once
            assert set(lab.sqs.deleted) <= successes  # only after a run that succeeded for it
            assert lab.worker.peak_in_flight <= maximum_concurrency
        finally:
            await lab.mappings.stop()

    asyncio.run(scenario())
