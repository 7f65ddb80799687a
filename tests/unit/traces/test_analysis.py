"""The analysis over committed trace documents and run records: cold starts, provisioned, throttles, executions."""

from __future__ import annotations

import random

import pytest

from lambdalab.traces.analysis import (
    Invocation,
    StartKind,
    extract,
    infer_environments,
    invocation_from_record,
    parse_function_arn,
    percentile,
    summarise,
)
from lambdalab.traces.model import parse_batch_get_traces
from lambdalab.traces.synthetic import Call, Ids, batch_get_traces_response, lambda_documents
from tests.unit.traces.data import load


@pytest.fixture
def mixed():
    outcome = parse_batch_get_traces([load("batch_get_traces_lambda.json")])
    assert outcome.problems == []
    return extract(outcome.traces)


def by_key(reports):
    return {(r.function, r.qualifier): r for r in reports}


def test_cold_starts_are_initialization_subsegments_in_the_function_segment(mixed):
    reports = by_key(summarise(mixed.invocations))
    cold_fn = reports[("lab-ColdStartFunction-1A2B3C", "live")]
    assert (cold_fn.invocations, cold_fn.cold_starts, cold_fn.warm_starts) == (4, 2, 2)
    assert cold_fn.cold_share == pytest.approx(0.5)
    # INIT durations are the Initialization subsegments: 412 ms and 388 ms
    assert cold_fn.init.max == pytest.approx(0.412, abs=1e-6)
    assert cold_fn.init.p50 == pytest.approx(0.400, abs=1e-6)
    cold_requests = sorted(i.request_id for i in mixed.invocations if i.cold and i.function.startswith("lab-Cold"))
    assert cold_requests == ["req-cold-1", "req-cold-2"]


def test_cold_latency_includes_init_and_the_gap_is_reported(mixed):
    report = by_key(summarise(mixed.invocations))[("lab-ColdStartFunction-1A2B3C", "live")]
    assert report.end_to_end_cold.count == 2 and report.end_to_end_warm.count == 2
    assert report.end_to_end_cold.p50 > 0.388  # at least the INIT
    assert report.gap_p50_s == pytest.approx(report.end_to_end_cold.p50 - report.end_to_end_warm.p50)
    assert report.gap_p50_s > 0.35


def test_provisioned_init_ahead_of_traffic_is_not_a_cold_start(mixed):
    report = by_key(summarise(mixed.invocations))[("lab-ProvisionedFunction-4D5E6F", "provisioned")]
    assert (report.cold_starts, report.provisioned_starts, report.warm_starts) == (0, 1, 1)
    assert report.init.count == 0  # the 300 s pre-warm wait is not an INIT duration


def test_throttles_sync_429_and_async_attempts(mixed):
    reports = by_key(summarise(mixed.invocations))
    sync = reports[("lab-ColdStartFunction-1A2B3C", "live")]
    assert sync.throttles == 1
    throttled = [i for i in mixed.invocations if i.throttled]
    assert [i.request_id for i in throttled] == ["req-throttled-1"]
    assert throttled[0].start_kind is None
    asynchronous = reports[("lab-AsyncFunction-7G8H9I", "$LATEST")]
    # attempt 1 was throttled, attempt 2 ran cold: the function segment's parent is the Attempt subsegment
    assert (asynchronous.invocations, asynchronous.cold_starts, asynchronous.throttles) == (1, 1, 1)


def test_step_functions_execution_groups_its_items(mixed):
    assert len(mixed.executions) == 1
    execution = mixed.executions[0]
    assert execution.execution_arn.endswith(":execution:lab-FlashSaleMap:exec-0001")
    assert execution.duration_s == pytest.approx(1.2)
    assert [(i.request_id, i.start_kind) for i in execution.items] == [
        ("req-map-0", StartKind.COLD),
        ("req-map-1", StartKind.COLD),
        ("req-map-2", StartKind.WARM),
    ]
    assert [round(i.duration_s, 3) for i in execution.items] == [0.12, 0.11, 0.03]


def test_inferred_environments_one_per_init_and_warm_calls_reuse_idle_ones(mixed):
    envs = [e for e in infer_environments(mixed.invocations) if e.function == "lab-MapItemFunction-J1K2L3"]
    assert len(envs) == 2  # two cold items; the warm one reused an environment that was idle
    assert sorted(len(e.invocations) for e in envs) == [1, 2]
    assert all(e.init_start is not None for e in envs)


def test_overlapping_warm_calls_without_a_known_environment_open_one_without_init():
    ids = Ids(random.Random(5))
    traces = {}
    for n in range(3):  # three warm calls at the same moment: three environments
        docs = lambda_documents(Call("f", 100.0 + n * 0.001, "warm", duration_s=0.5), ids)
        traces[docs[0]["trace_id"]] = docs
    outcome = parse_batch_get_traces([batch_get_traces_response(traces)])
    envs = infer_environments(extract(outcome.traces).invocations)
    assert len(envs) == 3 and all(e.init_start is None for e in envs)


def test_pairing_falls_back_to_name_and_time_without_parent_ids():
    ids = Ids(random.Random(6))
    service, function = lambda_documents(Call("f", 50.0, "cold", init_s=0.2), ids)
    function.pop("parent_id")
    outcome = parse_batch_get_traces([batch_get_traces_response({service["trace_id"]: [function, service]})])
    [item] = extract(outcome.traces).invocations
    assert item.cold and item.received_at == pytest.approx(50.0)


def test_function_segment_alone_still_counts_and_long_init_without_service_is_provisioned():
    ids = Ids(random.Random(8))
    _, cold = lambda_documents(Call("f", 10.0, "cold", init_s=0.3), ids)
    _, prewarmed = lambda_documents(Call("f", 20.0, "provisioned", prewarmed_s=120.0), ids)
    response = batch_get_traces_response({cold["trace_id"]: [cold], prewarmed["trace_id"]: [prewarmed]})
    outcome = parse_batch_get_traces([response])
    kinds = sorted(i.start_kind.value for i in extract(outcome.traces).invocations)
    assert kinds == ["cold", "provisioned"]


def test_missing_invocation_subsegment_is_tolerated_and_reported():
    ids = Ids(random.Random(9))
    service, function = lambda_documents(Call("f", 10.0, "cold", init_s=0.3, duration_s=0.1), ids)
    function["subsegments"] = [s for s in function["subsegments"] if s["name"] != "Invocation"]
    outcome = parse_batch_get_traces([batch_get_traces_response({service["trace_id"]: [service, function]})])
    extraction = extract(outcome.traces)
    [item] = extraction.invocations
    assert item.cold
    assert item.duration_s == pytest.approx(0.1, abs=1e-3)  # between INIT's end and Overhead's start
    assert [p.reason for p in extraction.problems] == ["missing Invocation subsegment"]


def test_parse_function_arn():
    assert parse_function_arn("arn:aws:lambda:us-east-1:1:function:f") == ("f", None)
    assert parse_function_arn("arn:aws:lambda:us-east-1:1:function:f:live") == ("f", "live")
    assert parse_function_arn("arn:aws:states:us-east-1:1:stateMachine:m") is None
    assert parse_function_arn(None) is None


def test_percentile_interpolates_like_numpy():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == pytest.approx(50.5)
    assert percentile(values, 0.95) == pytest.approx(95.05)
    assert percentile(values, 0.99) == pytest.approx(99.01)
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([], 0.5) is None


def test_run_record_becomes_an_invocation_and_bad_kinds_are_refused():
    record = {
        "function_name": "f",
        "qualifier": "live",
        "outcome": "success",
        "start_kind": "cold",
        "spillover": False,
        "received_at": 10.0,
        "init_start": 10.01,
        "init_duration_s": 0.3,
        "invoke_start": 10.31,
        "invoke_end": 10.41,
        "environment_id": "env-1",
    }
    item = invocation_from_record(record)
    assert isinstance(item, Invocation) and item.cold
    assert item.init_duration_s == pytest.approx(0.3)
    assert item.end_to_end_s == pytest.approx(0.41)
    with pytest.raises(ValueError, match="start_kind"):
        invocation_from_record({**record, "start_kind": "lukewarm"})
    throttled = invocation_from_record({**record, "outcome": "throttled", "start_kind": None})
    assert throttled.throttled and throttled.start_kind is None


def test_spillover_comes_from_records_then_metrics_else_unavailable():
    ran = Invocation("f", "live", StartKind.WARM, invoke_start=1.0, invoke_end=1.1)
    [unknown] = summarise([ran])
    assert unknown.spillover is None and "unavailable" in unknown.spillover_source
    [metric] = summarise([ran], spillover_metrics={("f", "live"): 7})
    assert metric.spillover == 7
    flagged = Invocation("f", "live", StartKind.WARM, spillover=True, invoke_start=1.0, invoke_end=1.1)
    [records] = summarise([flagged, ran], spillover_metrics={("f", "live"): 7})
    assert records.spillover == 1 and records.spillover_source == "invocation records"


def test_a_run_limited_by_the_machine_says_so() -> None:
    from lambdalab.traces.analysis import invocation_from_record
    from lambdalab.traces.report import local_limits_warning

    base = {
        "function_name": "fn", "qualifier": "$LATEST", "outcome": "success", "start_kind": "cold",
        "received_at": 1.0, "init_start": 1.0, "init_duration_s": 0.3, "invoke_start": 2.0, "invoke_end": 2.1,
    }  # fmt: skip
    quiet = [invocation_from_record(base)]
    assert local_limits_warning(quiet) is None
    waited = invocation_from_record(base | {"init_local_wait_s": 0.7, "local_wait_s": 0.75})
    failed = invocation_from_record(base | {"outcome": "local_error"})
    assert waited.init_duration_s == pytest.approx(0.3)  # INIT as the function takes it alone; the wait is apart
    line = local_limits_warning([*quiet, waited, failed])
    assert line == (
        "limited by this machine, not Lambda: 1 INITs waited 0.7 s for a CPU; invocations waited 0.1 s more; 1 calls "
        "failed for a local reason. INIT and duration figures exclude the waiting; end-to-end times include it"
    )
