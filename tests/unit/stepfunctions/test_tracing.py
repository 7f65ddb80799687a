"""Traces of state machine executions: which executions are traced, and the segments the state machine records."""

from __future__ import annotations

import json
import socket

from lambdalab.clock import Clocks
from lambdalab.observe.tracing import TraceHeader, is_segment_id, is_trace_id
from lambdalab.observe.xray import segment_problems
from lambdalab.stepfunctions.tracing import ExecutionTraces, TaskTrace, execution_trace, task_segment

ARN = "arn:aws:states:us-east-1:123456789012:execution:lab-base:run-1"
ROOT = "1-5f84c7a1-0123456789abcdef01234567"


def test_tracing_enabled_starts_a_sampled_trace_stamped_with_the_execution_start() -> None:
    trace = execution_trace(ARN, "lab-base", True, None, started=0x5F84C7A1)
    assert trace is not None
    assert is_trace_id(trace.root) and trace.root.startswith("1-5f84c7a1-")
    assert trace.sampled and trace.record_segments


def test_tracing_disabled_and_no_header_means_no_trace() -> None:
    assert execution_trace(ARN, "lab-base", False, None, started=0) is None


def test_a_caller_header_is_continued_with_its_sampling_decision() -> None:
    trace = execution_trace(ARN, "lab-base", True, f"Root={ROOT};Sampled=0", started=0)
    assert trace is not None and (trace.root, trace.sampled) == (ROOT, False)
    # tracing off: the caller's trace is passed on to Lambda, but the state machine records nothing itself
    passed = execution_trace(ARN, "lab-base", False, f"Root={ROOT};Sampled=1", started=0)
    assert passed is not None and passed.sampled and not passed.record_segments


def task(record_segments: bool = True) -> TaskTrace:
    trace = execution_trace(ARN, "lab-base", record_segments, None if record_segments else f"Root={ROOT}", 100.0)
    assert trace is not None
    return TaskTrace(
        trace, "a" * 16, "b" * 16, "arn:aws:lambda:us-east-1:123456789012:function:f:live", "Invoke", 100.0
    )


def test_the_header_to_lambda_names_the_state_machines_subsegment_as_parent() -> None:
    header = TraceHeader.parse(task().header)
    assert (header.parent, header.sampled) == ("b" * 16, True)
    assert TraceHeader.parse(task(record_segments=False).header).parent is None


def test_task_segment_is_a_valid_xray_document() -> None:
    doc = task_segment(task(), ended=101.5, failed=False)
    assert segment_problems(doc) == []
    assert doc["origin"] == "AWS::StepFunctions::StateMachine"
    assert doc["subsegments"][0]["id"] == "b" * 16 and is_segment_id(doc["id"])
    assert "fault" not in doc
    assert task_segment(task(), ended=101.5, failed=True)["fault"] is True


def test_segments_go_to_the_daemon_over_udp() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    clock, clocks = Clocks.virtual(start_epoch=100.0)
    traces = ExecutionTraces()
    traces.use(clocks.epoch, f"127.0.0.1:{sock.getsockname()[1]}")
    clock.advance(2.25)  # the task ran 2.25 s of the local cloud's time
    try:
        traces.end_task(task(), failed=False)
        header, _, body = sock.recv(65536).partition(b"\n")
    finally:
        sock.close()
    assert json.loads(header) == {"format": "json", "version": 1}
    segment = json.loads(body)
    assert segment["trace_id"].startswith("1-")
    assert (segment["start_time"], segment["end_time"]) == (100.0, 102.25)  # the epoch clock's, not the machine's


def test_nothing_is_sent_for_a_pass_through_trace() -> None:
    traces = ExecutionTraces()
    traces.use(
        Clocks.virtual()[1].epoch, "127.0.0.1:9"
    )  # discard port: a send would not fail, so the test checks no socket was made
    traces.end_task(task(record_segments=False), failed=False)
    assert traces._sock is None
