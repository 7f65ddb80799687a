"""The Lambda service layer (service.py, leases.py) on a fake host and a virtual clock: no processes, no real time."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from lambdalab.awslambda.core.control import EventInvokeConfig
from lambdalab.awslambda.core.exceptions import ResourceNotFoundException, TooManyRequestsException
from lambdalab.awslambda.core.outcome import Outcome
from lambdalab.awslambda.core.policy import EnvState, Limits
from lambdalab.awslambda.hosting import InvokeRequest, InvokeResult, InvokeStatus
from tests.unit.awslambda.fakes import (
    FakeEnvironment,
    Lab,
    fail,
    init_error,
    init_past_cap,
    make_lab,
    result,
    settle,
)

pytestmark = pytest.mark.timeout(30)


class Gate:
    """A handler that holds every request until released, so the test can act while requests run."""

    def __init__(self) -> None:
        self.running: list[FakeEnvironment] = []
        self._release = asyncio.Event()

    async def __call__(self, env: FakeEnvironment, request: InvokeRequest) -> InvokeResult:
        self.running.append(env)
        await self._release.wait()
        return result(env, request)

    def release(self) -> None:
        self._release.set()

    async def until(self, n: int) -> None:
        while len(self.running) < n:
            await asyncio.sleep(0)


@pytest.fixture
async def lab(tmp_path: Path):
    lab = await make_lab(tmp_path)
    yield lab
    await lab.service.stop()


async def test_a_cold_start_then_a_warm_call_in_the_same_environment(lab: Lab) -> None:
    first = await lab.service.invoke("fn", None, b'{"n": 1}')
    second = await lab.service.invoke("fn", None, b'{"n": 2}')
    assert (first.status, first.body, second.body) == (200, b'{"n": 1}', b'{"n": 2}')
    (env,) = lab.host.spawned
    assert env.spec.init_type == "on-demand" and env.spec.init_cap_s == 10.0
    assert [r.start_kind for r in lab.telemetry.records] == ["cold", "warm"]
    assert [r.outcome for r in lab.telemetry.records] == [Outcome.SUCCESS, Outcome.SUCCESS]
    assert lab.telemetry.records[0].init_duration_s == 0.1 and lab.telemetry.records[1].init_duration_s is None
    # the deadline is on the monotonic clock: now + the function's timeout (3 s)
    assert env.requests[0].deadline == pytest.approx(lab.clock.now() + 3.0)
    assert lab.telemetry.event_names(env.spec.env_id) == ["created", "ready"]


async def test_an_alias_moved_while_its_provisioned_environments_run(lab: Lab) -> None:
    service = lab.service
    assert service.publish_version("fn") == "1"
    service.update_function_configuration("fn", timeout_s=5)
    assert service.publish_version("fn") == "2"
    service.create_alias("fn", "live", "1")
    service.put_provisioned_concurrency("fn", "live", 2)
    await settle()
    v1 = lab.host.live()
    assert [(e.spec.version, e.spec.init_type, e.spec.init_cap_s) for e in v1] == [
        ("1", "provisioned-concurrency", None)
    ] * 2
    gate = Gate()
    lab.host.handler["fn"] = gate
    running = asyncio.ensure_future(service.invoke("fn", "live", b"{}"))
    await gate.until(1)
    busy = gate.running[0]
    idle = next(e for e in v1 if e is not busy)

    service.update_alias("fn", "live", "2", None)
    await settle()
    # the idle old environment goes at once, two new ones are initialised for version 2, the busy one finishes first
    assert idle.killed and not busy.killed
    assert sorted(e.spec.version for e in lab.host.live()) == ["1", "2", "2"]
    status = service.policy.provisioned_status("fn", "live")
    assert status is not None and (status.version, status.allocated, status.status) == ("2", 2, "READY")

    gate.release()
    answer = await running
    await settle()
    assert answer.status == 200 and answer.executed_version == "1"
    assert busy.killed  # retired when its request ended
    assert sorted(e.spec.version for e in lab.host.live()) == ["2", "2"]
    lab.host.handler.pop("fn")
    after = await service.invoke("fn", "live", b"{}")
    assert after.executed_version == "2" and lab.telemetry.records[-1].start_kind == "provisioned"
    service.policy.check_consistency()


async def test_deleting_a_function_while_it_runs(lab: Lab) -> None:
    gate = Gate()
    lab.host.handler["fn"] = gate
    running = asyncio.ensure_future(lab.service.invoke("fn", None, b'{"x": 1}'))
    await gate.until(1)
    (env,) = lab.host.spawned
    lab.service.delete_function("fn")
    answer = await running  # its environment is killed at once: the request ends as a runtime exit
    await settle()
    assert env.killed
    assert answer.status == 200 and answer.function_error == "Unhandled"
    assert json.loads(answer.body)["errorType"] == "Runtime.ExitError"
    assert lab.telemetry.records[-1].outcome == Outcome.CRASH
    assert lab.service.policy.environments() == []
    gate.release()
    with pytest.raises(ResourceNotFoundException):
        await lab.service.invoke("fn", None, b"{}")


async def test_the_init_cap_and_the_init_retry_inside_the_invoke(lab: Lab) -> None:
    lab.host.init["fn"] = init_past_cap

    async def reinit_then_answer(env: FakeEnvironment, request: InvokeRequest) -> InvokeResult:
        return result(env, request, init_duration_s=2.5, init_local_wait_s=0.25)

    lab.host.handler["fn"] = reinit_then_answer
    answer = await lab.service.invoke("fn", None, b"{}")
    assert answer.status == 200 and answer.function_error is None
    (env,) = lab.host.spawned
    (record,) = lab.telemetry.records
    assert record.outcome == Outcome.SUCCESS and record.start_kind == "cold"
    assert record.init_duration_s == 2.5  # the INIT that ran inside the invoke, not the abandoned one
    assert lab.telemetry.event_names(env.spec.env_id) == ["created", "init_retry"]
    assert lab.service.policy.environment(env.spec.env_id).state is EnvState.IDLE  # kept, as Lambda keeps it


async def test_an_init_error_answers_unhandled_and_discards_the_environment(lab: Lab) -> None:
    lab.host.init["fn"] = init_error
    answer = await lab.service.invoke("fn", None, b"{}", log_type="Tail")
    await settle()
    assert answer.status == 200 and answer.function_error == "Unhandled"
    assert json.loads(answer.body)["errorType"] == "Runtime.ImportModuleError"
    assert answer.log_result is not None  # the failed INIT's own log lines
    (env,) = lab.host.spawned
    assert env.killed and lab.telemetry.records[0].outcome == Outcome.INIT_ERROR
    assert lab.service.policy.environments() == []


async def test_a_spawn_this_machine_refuses_is_a_local_error_not_lambdas(lab: Lab) -> None:
    lab.host.refuse_spawn = "EAGAIN"
    with pytest.raises(Exception) as caught:
        await lab.service.invoke("fn", None, b"{}")
    assert getattr(caught.value, "code", "") == "LambdalabLocalCapacityException"
    assert lab.telemetry.records[0].outcome == Outcome.LOCAL_ERROR
    assert lab.service.policy.concurrent_executions("fn") == 0


async def test_a_timeout_discards_the_environment_and_the_next_call_is_cold(lab: Lab) -> None:
    async def time_out(env: FakeEnvironment, request: InvokeRequest) -> InvokeResult:
        return result(env, request, InvokeStatus.TIMEOUT, b'{"errorType": "Sandbox.Timedout"}', "Sandbox.Timedout")

    lab.host.handler["fn"] = time_out
    answer = await lab.service.invoke("fn", None, b"{}")
    await settle()
    assert answer.function_error == "Unhandled" and lab.host.spawned[0].killed
    lab.host.handler.pop("fn")
    await lab.service.invoke("fn", None, b"{}")
    assert len(lab.host.spawned) == 2 and lab.telemetry.records[-1].start_kind == "cold"


async def test_a_requests_local_waits_are_kept_current_for_its_caller(lab: Lab) -> None:
    from lambdalab.awslambda.core.localwait import LocalWait
    from lambdalab.awslambda.hosting import InitResult

    # GIVEN an INIT that waited 0.3 s for this machine (queued for a CPU)
    def init_that_waited(env: FakeEnvironment) -> InitResult:
        live.append(local.seconds(lab.clock.now()))  # read by the caller while INIT runs
        return InitResult(
            ok=True, status="success", init_started_at=env.init_started_at, init_duration_s=0.1, local_wait_s=0.3
        )

    local, live = LocalWait(), []
    lab.host.init["fn"] = init_that_waited
    lab.host.init_local_wait_s = 0.25  # what the environment reports so far, during INIT
    # WHEN API Gateway's request runs it
    answer = await lab.service.invoke("fn", None, b"{}", local_wait=local)
    # THEN the caller saw INIT's wait live, then as measured at its end (and nothing of the function's own time)
    assert answer.status == 200
    assert live == [pytest.approx(0.25)] and local.seconds(lab.clock.now()) == pytest.approx(0.3)


async def test_reserved_concurrency_lowered_under_load(lab: Lab) -> None:
    service = lab.service
    service.put_function_concurrency("fn", 2)
    gate = Gate()
    lab.host.handler["fn"] = gate
    running = [asyncio.ensure_future(service.invoke("fn", None, b"{}")) for _ in range(2)]
    await gate.until(2)
    with pytest.raises(TooManyRequestsException) as third:
        await service.invoke("fn", None, b"{}")
    assert third.value.reason == "ReservedFunctionConcurrentInvocationLimitExceeded"
    service.put_function_concurrency("fn", 1)  # allowed below what runs now: running requests finish
    assert service.reserved_concurrency("fn") == 1
    gate.release()
    assert [a.status for a in await asyncio.gather(*running)] == [200, 200]
    lab.host.handler.pop("fn")
    assert (await service.invoke("fn", None, b"{}")).status == 200  # one at a time now
    service.delete_function_concurrency("fn")
    assert service.reserved_concurrency("fn") is None
    service.policy.check_consistency()


async def test_reserved_concurrency_raised_under_load_admits_at_once(lab: Lab) -> None:
    service = lab.service
    service.put_function_concurrency("fn", 1)
    gate = Gate()
    lab.host.handler["fn"] = gate
    first = asyncio.ensure_future(service.invoke("fn", None, b"{}"))
    await gate.until(1)
    with pytest.raises(TooManyRequestsException):
        await service.invoke("fn", None, b"{}")
    service.put_function_concurrency("fn", 2)
    second = asyncio.ensure_future(service.invoke("fn", None, b"{}"))
    await gate.until(2)
    gate.release()
    assert [a.status for a in await asyncio.gather(first, second)] == [200, 200]
    assert len(lab.host.spawned) == 2


async def test_async_function_errors_are_retried_then_go_to_the_failure_destination(lab: Lab) -> None:
    service = lab.service
    failure = "arn:aws:sqs:us-east-1:123456789012:failures"
    service.put_event_invoke_config(
        EventInvokeConfig("fn", "$LATEST", maximum_retry_attempts=1, on_failure_destination=failure)
    )
    lab.host.handler["fn"] = fail
    accepted = await service.invoke("fn", None, b'{"order": 7}', invocation_type="Event")
    assert accepted.status == 202
    await settle()
    assert [r.outcome for r in lab.telemetry.records] == [Outcome.FUNCTION_ERROR]
    lab.advance(59.0)
    await settle()
    assert len(lab.telemetry.records) == 1  # the retry is 1 minute later
    lab.advance(1.0)
    await settle()
    assert [r.attempt for r in lab.telemetry.records] == [1, 2]
    ((target, record),) = lab.sent
    assert target == failure
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestPayload"] == {"order": 7}
    # AND the async metrics count it: received once, taken from the queue twice (its age each time: 0 s, then the
    # minute it waited for its retry), dropped once — after it went to the on-failure destination
    kinds = [(e.kind.value, round(e.age_s or 0.0)) for e in lab.telemetry.async_events]
    assert kinds == [("AsyncEventsReceived", 0), ("AsyncEventAge", 0), ("AsyncEventAge", 60), ("AsyncEventsDropped", 0)]


async def test_an_async_success_goes_to_the_success_destination(lab: Lab) -> None:
    success = "arn:aws:sns:us-east-1:123456789012:done"
    lab.service.put_event_invoke_config(EventInvokeConfig("fn", "$LATEST", on_success_destination=success))
    await lab.service.invoke("fn", None, b'{"ok": true}', invocation_type="Event")
    await settle()
    ((target, record),) = lab.sent
    assert target == success and record["requestContext"]["condition"] == "Success"
    assert record["responsePayload"] == {"ok": True}
    assert "AsyncEventsDropped" not in [e.kind.value for e in lab.telemetry.async_events]


async def test_a_function_destination_is_the_services_own_asynchronous_invoke(lab: Lab) -> None:
    # GIVEN an on-success destination that is another function
    lab.create("audit")
    audit = "arn:aws:lambda:us-east-1:123456789012:function:audit"
    lab.service.put_event_invoke_config(EventInvokeConfig("fn", "$LATEST", on_success_destination=audit))
    # WHEN fn succeeds asynchronously
    await lab.service.invoke("fn", None, b'{"ok": true}', invocation_type="Event")
    await settle()
    # THEN the record is an asynchronous invoke of audit (not handed to the sender, which has no Lambda client)
    assert lab.sent == []
    runs = [(r.function_name, r.invocation_type) for r in lab.telemetry.records]
    assert runs == [("fn", "Event"), ("audit", "Event")]
    (audit_request,) = [r for e in lab.host.live("audit") for r in e.requests]
    assert json.loads(audit_request.payload)["requestContext"]["condition"] == "Success"


async def test_an_async_event_with_reserved_zero_fails_without_running(lab: Lab) -> None:
    failure = "arn:aws:sqs:us-east-1:123456789012:failures"
    lab.service.put_event_invoke_config(EventInvokeConfig("fn", "$LATEST", on_failure_destination=failure))
    lab.service.put_function_concurrency("fn", 0)
    accepted = await lab.service.invoke("fn", None, b"{}", invocation_type="Event")
    await settle()
    assert accepted.status == 202 and lab.host.spawned == []
    ((_, record),) = lab.sent
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert lab.telemetry.records[0].outcome == Outcome.THROTTLED


async def test_the_internal_invoke_is_typed(lab: Lab) -> None:
    from lambdalab.awslambda.core.outcome import InvocationResult, Rejected

    run = await lab.service.invoke_internal("fn", b"{}")
    assert isinstance(run, InvocationResult) and run.outcome is Outcome.SUCCESS
    missing = await lab.service.invoke_internal("nope", b"{}")
    assert isinstance(missing, Rejected) and missing.code == "ResourceNotFoundException" and missing.status == 404
    lab.service.put_function_concurrency("fn", 0)
    throttled = await lab.service.invoke_internal("fn", b"{}")
    assert isinstance(throttled, InvocationResult) and throttled.throttle is not None


async def test_the_internal_async_invoke_is_typed_and_queues_as_an_event(lab: Lab) -> None:
    from lambdalab.awslambda.core.outcome import Rejected
    from lambdalab.sources.invoke import InvokeRefused, LambdaServiceInvoker

    request_id = lab.service.enqueue_internal(
        "fn", b'{"n": 1}', trace_header="Root=1-5759e988-bd862e3fe1be46a994272793"
    )
    assert isinstance(request_id, str)
    await settle()
    (record,) = lab.telemetry.records
    assert (record.request_id, record.invocation_type, record.outcome) == (request_id, "Event", Outcome.SUCCESS)
    missing = lab.service.enqueue_internal("nope", b"{}")
    assert isinstance(missing, Rejected) and missing.code == "ResourceNotFoundException"
    too_big = lab.service.enqueue_internal("fn", b'"' + b"x" * (1024 * 1024) + b'"')  # the Event limit: 1 MB
    assert isinstance(too_big, Rejected) and too_big.status == 413
    with pytest.raises(InvokeRefused) as refused:  # what SNS, EventBridge and S3 see
        await LambdaServiceInvoker(lab.service).invoke_async("nope", b"{}")
    assert refused.value.status == 404 and not refused.value.throttled


async def test_provisioned_last_modified_is_stamped_at_write_time(tmp_path: Path) -> None:
    lab = await make_lab(tmp_path, Limits())
    try:
        lab.service.publish_version("fn")
        lab.service.put_provisioned_concurrency("fn", "1", 1)
        written = lab.service.policy.provisioned_status("fn", "1")
        lab.advance(30.0)
        read = lab.service.policy.provisioned_status("fn", "1")
        assert written is not None and read is not None
        assert read.last_modified == written.last_modified == lab.service.epoch.now() - 30.0
    finally:
        await lab.service.stop()


async def test_a_request_still_arriving_while_the_cloud_stops_is_a_local_error(lab: Lab) -> None:
    await lab.service.invoke("fn", None, b"{}")  # one idle environment the policy would reuse
    await lab.service.leases.stop()
    for _ in range(2):  # the idle one (its handle gone) and then a cold start: neither spawns nor raises KeyError
        with pytest.raises(Exception) as caught:
            await lab.service.invoke("fn", None, b"{}")
        assert getattr(caught.value, "code", "") == "LambdalabLocalCapacityException"
    assert [r.outcome for r in lab.telemetry.records] == [Outcome.SUCCESS, Outcome.LOCAL_ERROR, Outcome.LOCAL_ERROR]
    assert len(lab.host.spawned) == 1
    assert lab.service.policy.concurrent_executions("fn") == 0
