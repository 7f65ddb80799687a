"""X-Ray: trace plans, Lambda's segment documents, the sampler, the forwarder and the UDP daemon."""

from __future__ import annotations

import json
import random
import socket
import time
from dataclasses import dataclass
from typing import Any

import pytest
from aws_xray_sdk.core.emitters.udp_emitter import UDPEmitter
from aws_xray_sdk.core.models.segment import Segment

from lambdalab.clock import VirtualClock
from lambdalab.observe.model import InvocationRecord
from lambdalab.observe.tracing import TraceHeader, is_trace_id
from lambdalab.observe.xray import (
    DEFAULT_RULE,
    MAX_BATCH_BYTES,
    MAX_SEGMENTS_PER_CALL,
    Sampler,
    SamplingRequest,
    SamplingRule,
    SegmentForwarder,
    XRayDaemon,
    lambda_segments,
    load_sampling_rules,
    plan_trace,
    segment_problems,
)
from tests.unit.observe.conftest import T0, build_record

INCOMING = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a1b2c3d4:0"

NOW = 1_800_000_000.0  # epoch seconds: the clock the caller (Telemetry, NullTelemetry) passes


def cold_record(**overrides: Any):
    received = T0 + 1.0
    fields = {
        "start_kind": "cold",
        "init_start": received + 0.010,
        "init_duration_s": 0.200,
        "invoke_start": received + 0.215,
        "invoke_end": received + 0.315,
        "duration_s": 0.1,
        "received_at": received,
    }
    fields.update(overrides)
    return build_record(**fields)


def by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {sub["name"]: sub for sub in doc.get("subsegments", [])}


# --- plans --------------------------------------------------------------------------------------------------------
def test_an_upstream_decision_wins_and_the_environment_gets_the_invocation_as_parent():
    plan = plan_trace(
        INCOMING, tracing_active=False, sampled=lambda: pytest.fail("the sampler must not be asked"), now=NOW
    )
    assert plan.sampled is True
    assert plan.trace_id == "1-5759e988-bd862e3fe1be46a994272793"
    assert plan.caller_parent_id == "53995c3f42cd8ad8"
    env = TraceHeader.parse(plan.environment_header)
    assert (env.root, env.parent, env.sampled, env.lineage) == (
        plan.trace_id,
        plan.invocation_subsegment_id,
        True,
        "a1b2c3d4:0",
    )
    assert len({plan.service_segment_id, plan.function_segment_id, plan.invocation_subsegment_id}) == 3


def test_without_a_header_active_tracing_asks_the_sampler_and_passthrough_does_not_sample():
    active = plan_trace(None, tracing_active=True, sampled=True, now=T0)
    assert active.sampled and is_trace_id(active.trace_id)
    assert active.trace_id.split("-")[1] == f"{int(T0):08x}"
    assert plan_trace(None, tracing_active=True, sampled=lambda: False, now=NOW).sampled is False
    passthrough = plan_trace(None, tracing_active=False, sampled=True, now=NOW)
    assert passthrough.sampled is False
    assert "Sampled=0" in passthrough.environment_header
    assert (
        plan_trace(INCOMING.replace("Sampled=1", "Sampled=0"), tracing_active=True, sampled=True, now=NOW).sampled
        is False
    )


# --- Lambda's segments --------------------------------------------------------------------------------------------
def test_a_cold_start_has_service_and_function_segments_with_initialization_invocation_overhead():
    plan = plan_trace(INCOMING, tracing_active=True, sampled=True, now=NOW)
    rec = cold_record()
    service, function = lambda_segments(rec, plan, region="us-east-1", account_id="123456789012")

    for doc in (service, function):
        assert segment_problems(doc) == [], doc
        assert doc["trace_id"] == plan.trace_id
    assert service["origin"] == "AWS::Lambda"
    assert service["id"] == plan.service_segment_id
    assert service["parent_id"] == "53995c3f42cd8ad8"
    assert service["aws"]["request_id"] == rec.request_id
    assert service["http"]["response"]["status"] == 200
    assert (service["start_time"], service["end_time"]) == (rec.received_at, rec.invoke_end)
    assert not any(flag in service for flag in ("error", "fault", "throttle"))

    assert function["origin"] == "AWS::Lambda::Function"
    assert function["id"] == plan.function_segment_id
    assert function["parent_id"] == plan.service_segment_id
    assert function["resource_arn"] == rec.function_arn
    subs = by_name(function)
    assert list(subs) == ["Initialization", "Invocation", "Overhead"]
    assert subs["Initialization"]["start_time"] == rec.init_start
    assert subs["Initialization"]["end_time"] == pytest.approx(rec.init_start + rec.init_duration_s)
    assert (subs["Invocation"]["start_time"], subs["Invocation"]["end_time"]) == (rec.invoke_start, rec.invoke_end)
    assert subs["Invocation"]["id"] == plan.invocation_subsegment_id == plan.sdk_parent_id
    assert subs["Overhead"]["start_time"] == rec.invoke_end
    assert function["start_time"] == rec.init_start


@pytest.mark.parametrize("start_kind", ["warm", "provisioned"])
def test_warm_and_provisioned_starts_have_no_initialization(start_kind: str):
    plan = plan_trace(None, tracing_active=True, sampled=True, now=NOW)
    rec = build_record(start_kind=start_kind)
    _, function = lambda_segments(rec, plan, region="us-east-1", account_id="123456789012")
    assert segment_problems(function) == []
    assert list(by_name(function)) == ["Invocation", "Overhead"]
    assert function["start_time"] == rec.invoke_start


def test_a_function_error_is_a_fault_with_its_cause():
    plan = plan_trace(None, tracing_active=True, sampled=True, now=NOW)
    rec = build_record(outcome="function_error", error_type="ValueError", error_message="boom")
    service, function = lambda_segments(rec, plan, region="us-east-1", account_id="123456789012")
    assert function["fault"] is True
    assert function["cause"]["exceptions"][0]["type"] == "ValueError"
    assert function["cause"]["exceptions"][0]["message"] == "boom"
    assert by_name(function)["Invocation"]["fault"] is True
    assert segment_problems(function) == []
    assert service["http"]["response"]["status"] == 200


def test_a_throttle_is_a_429_service_segment_only():
    plan = plan_trace(None, tracing_active=True, sampled=True, now=NOW)
    rec = build_record(
        outcome="throttled", start_kind=None, environment_id=None, invoke_start=None, invoke_end=None, duration_s=None
    )
    docs = lambda_segments(rec, plan, region="us-east-1", account_id="123456789012")
    assert len(docs) == 1
    (service,) = docs
    assert segment_problems(service) == []
    assert service["http"]["response"]["status"] == 429
    assert service["throttle"] is True
    assert service["error"] is True


def test_an_unsampled_plan_records_nothing():
    plan = plan_trace(None, tracing_active=False, sampled=True, now=NOW)
    assert lambda_segments(cold_record(), plan, region="us-east-1", account_id="123456789012") == []


def test_segment_problems_catches_what_the_schema_requires():
    good = {"name": "n", "id": "0123456789abcdef", "trace_id": "1-5759e988-bd862e3fe1be46a994272793", "start_time": 1}
    assert segment_problems({**good, "end_time": 2}) == []
    assert segment_problems({**good, "in_progress": True}) == []
    assert "neither end_time nor in_progress" in segment_problems(good)
    assert any("id" in p for p in segment_problems({**good, "id": "xyz", "end_time": 2}))
    assert any("trace_id" in p for p in segment_problems({**good, "trace_id": "1-x", "end_time": 2}))
    sub = {"name": "s", "id": "1111111111111111", "start_time": 1, "end_time": 2}
    assert any("duplicate" in p for p in segment_problems({**good, "end_time": 2, "subsegments": [sub, sub]}))
    standalone = {**good, "end_time": 2, "type": "subsegment"}
    assert any("parent_id" in p for p in segment_problems(standalone))


# --- sampling -----------------------------------------------------------------------------------------------------
def test_default_rule_takes_one_per_second_then_five_percent():
    clock = VirtualClock(T0)
    sampler = Sampler(clock, rng=random.Random(7))
    request = SamplingRequest(service_name="fn")
    decisions = [sampler.should_sample(request) for _ in range(2000)]
    assert decisions[0] is True  # the reservoir
    expected_rate = random.Random(7)
    expected = [True] + [expected_rate.random() < 0.05 for _ in range(1999)]
    assert decisions == expected
    assert 50 <= sum(decisions) <= 150
    clock.advance(1.0)
    assert sampler.should_sample(request) is True  # a new second, a new reservoir


def test_rules_match_by_priority_and_wildcards():
    clock = VirtualClock(T0)
    everything = SamplingRule(name="lab", priority=1, fixed_rate=1.0, reservoir_size=0, service_name="orders-*")
    nothing = SamplingRule(name="quiet", priority=2, fixed_rate=0.0, reservoir_size=0, service_name="*")
    sampler = Sampler(clock, [nothing, everything], seed=1)
    assert [r.name for r in sampler.rules] == ["lab", "quiet", "Default"]
    assert all(sampler.should_sample(SamplingRequest(service_name="orders-api")) for _ in range(100))
    assert not any(sampler.should_sample(SamplingRequest(service_name="billing")) for _ in range(100))
    single = SamplingRule(name="q", priority=1, fixed_rate=1.0, reservoir_size=0, service_name="fn?")
    assert single.matches(SamplingRequest(service_name="fn1"))
    assert not single.matches(SamplingRequest(service_name="fn12"))


def test_rules_load_from_get_sampling_rules_or_fall_back_to_the_default():
    class FakeXRay:
        def get_sampling_rules(self, **kwargs: Any) -> dict[str, Any]:
            if "NextToken" not in kwargs:
                record = {"RuleName": "all", "Priority": 5, "FixedRate": 1.0, "ReservoirSize": 0, "ServiceName": "*"}
                return {"SamplingRuleRecords": [{"SamplingRule": record}], "NextToken": "p2"}
            return {"SamplingRuleRecords": [{"SamplingRule": {"RuleName": "Default", "FixedRate": 0.05}}]}

    class Unsupported:
        def get_sampling_rules(self, **kwargs: Any) -> dict[str, Any]:
            raise RuntimeError("404 not implemented")

    rules = load_sampling_rules(FakeXRay())
    assert [(r.name, r.fixed_rate) for r in rules] == [("all", 1.0), ("Default", 0.05)]
    assert load_sampling_rules(Unsupported()) == [DEFAULT_RULE]


# --- forwarding and the daemon ------------------------------------------------------------------------------------
class FakeXRayClient:
    def __init__(self, fail: int = 0, reject: set[str] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail
        self.reject = reject or set()

    def put_trace_segments(self, TraceSegmentDocuments: list[str]) -> dict[str, Any]:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("refused")
        self.calls.append(TraceSegmentDocuments)
        ids = [json.loads(d)["id"] for d in TraceSegmentDocuments]
        return {"UnprocessedTraceSegments": [{"Id": i, "Message": "bad"} for i in ids if i in self.reject]}


def segment(n: int, padding: int = 0) -> dict[str, Any]:
    return {
        "name": "s",
        "id": f"{n:016x}",
        "trace_id": "1-5759e988-bd862e3fe1be46a994272793",
        "start_time": T0,
        "end_time": T0 + 1,
        "annotations": {"pad": "x" * padding},
    }


def test_forwarder_batches_by_count_and_size_and_retries_after_failures():
    client = FakeXRayClient(fail=1, reject={f"{3:016x}"})
    forwarder = SegmentForwarder(client)
    for n in range(120):
        forwarder.put(segment(n))
    assert forwarder.flush() == 0  # the failure is logged, documents kept
    assert forwarder.flush() == 119
    assert [len(c) for c in client.calls] == [MAX_SEGMENTS_PER_CALL, MAX_SEGMENTS_PER_CALL, 20]
    assert forwarder.rejected == 1
    for n in range(10):
        forwarder.put(segment(n, padding=20_000))
    forwarder.flush()
    big_batches = client.calls[3:]
    assert all(sum(len(d.encode()) for d in batch) <= MAX_BATCH_BYTES for batch in big_batches)
    assert sum(len(b) for b in big_batches) == 10


class ListSink:
    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []

    def put(self, document: dict[str, Any]) -> None:
        self.documents.append(document)


def wait_for(predicate, timeout_s: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def test_daemon_accepts_the_protocol_and_counts_malformed_datagrams():
    sink = ListSink()
    daemon = XRayDaemon(sink=sink)
    daemon.start()
    try:
        host, port = daemon.address.split(":")
        assert host == "127.0.0.1"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            header = b'{"format": "json", "version": 1}\n'
            sock.sendto(header + json.dumps(segment(1)).encode(), (host, int(port)))
            sock.sendto(b"not json at all", (host, int(port)))
            sock.sendto(header + b'{"name": "no id"}', (host, int(port)))
            sock.sendto(b'{"format": "xml", "version": 1}\n' + json.dumps(segment(2)).encode(), (host, int(port)))
            sock.sendto(header + json.dumps(segment(3)).encode(), (host, int(port)))
        wait_for(lambda: daemon.received == 5, what="five datagrams")
    finally:
        daemon.stop()
    assert [d["id"] for d in sink.documents] == [f"{1:016x}", f"{3:016x}"]
    assert daemon.malformed == 3


def test_the_xray_sdk_emitter_reaches_the_daemon():
    sink = ListSink()
    daemon = XRayDaemon(sink=sink)
    daemon.start()
    try:
        emitter = UDPEmitter(daemon_address=daemon.address)
        seg = Segment("sdk-segment", traceid="1-5759e988-bd862e3fe1be46a994272793")
        seg.close()
        emitter.send_entity(seg)
        wait_for(lambda: len(sink.documents) == 1, what="the SDK's segment")
    finally:
        daemon.stop()
    assert sink.documents[0]["name"] == "sdk-segment"
    assert daemon.malformed == 0


def test_an_init_error_faults_the_initialization_subsegment():
    plan = plan_trace(None, tracing_active=True, sampled=True, now=NOW)
    rec = cold_record(
        outcome="init_error", invoke_start=None, invoke_end=None, duration_s=None, error_type="Runtime.ImportError"
    )
    _, function = lambda_segments(rec, plan, region="us-east-1", account_id="123456789012")
    assert segment_problems(function) == []
    subs = by_name(function)
    assert list(subs) == ["Initialization"]
    assert subs["Initialization"]["fault"] is True
    assert subs["Initialization"]["cause"]["exceptions"][0]["type"] == "Runtime.ImportError"
    assert function["end_time"] == pytest.approx(rec.init_start + rec.init_duration_s)


@dataclass(frozen=True)
class QueuedRecord(InvocationRecord):
    """An InvocationRecord with the proposed ``enqueued_at`` field."""

    enqueued_at: float | None = None


def test_an_async_event_has_dwell_time_and_attempt_subsegments_when_its_queue_time_is_known():
    plan = plan_trace(None, tracing_active=True, sampled=True, now=NOW)
    base = build_record(invocation_type="Event", attempt=2)
    rec = QueuedRecord(**{**base.to_json(), "enqueued_at": base.received_at - 5.0})
    service, _ = lambda_segments(rec, plan, region="us-east-1", account_id="123456789012")
    assert segment_problems(service) == []
    assert service["start_time"] == rec.received_at - 5.0
    subs = by_name(service)
    assert list(subs) == ["Dwell Time", "Attempt #2"]
    assert subs["Dwell Time"]["end_time"] == rec.received_at == subs["Attempt #2"]["start_time"]
