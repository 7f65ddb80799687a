"""Readers: the X-Ray API's paging, batching and throttling retries; saved files; run directories; time windows."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber

from lambdalab.errors import UserError
from lambdalab.traces.reader import (
    RetryPolicy,
    Window,
    XRayReader,
    filter_expression,
    parse_since,
    parse_time,
    read_run_dir,
    read_trace_file,
    window_from_args,
)
from lambdalab.traces.synthetic import Call, Ids, batch_get_traces_response, lambda_documents

NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


def xray_client():
    return boto3.client("xray", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")


def no_sleep(policy: RetryPolicy, slept: list[float]) -> RetryPolicy:
    policy.sleep = slept.append
    return policy


def test_since_and_iso_times():
    assert parse_since("30m") == timedelta(minutes=30)
    assert parse_since("2h") == timedelta(hours=2)
    assert parse_since("1d") == timedelta(days=1)
    for bad in ("30", "m", "-1h", "0m", "1w"):
        with pytest.raises(UserError, match="--since"):
            parse_since(bad)
    assert parse_time("2026-11-22T06:00:00Z", "--start") == NOW
    assert parse_time("2026-11-22T07:00:00+01:00", "--start") == NOW
    assert parse_time("2026-11-22T06:00:00", "--start") == NOW  # naive means UTC
    with pytest.raises(UserError, match="--end 'yesterday'"):
        parse_time("yesterday", "--end")


def test_window_flags():
    assert window_from_args("2h", None, None, now=NOW) == Window(NOW - timedelta(hours=2), NOW)
    assert window_from_args(None, None, None, now=NOW).start == NOW - timedelta(hours=1)
    with pytest.raises(UserError, match="not both"):
        window_from_args("2h", "2026-11-22T00:00:00Z", None, now=NOW)
    with pytest.raises(UserError, match="--end needs --start"):
        window_from_args(None, None, "2026-11-22T00:00:00Z", now=NOW)
    with pytest.raises(UserError, match="before it starts"):
        window_from_args(None, "2026-11-22T07:00:00Z", "2026-11-22T06:00:00Z", now=NOW)


def test_window_splits_at_24_hours():
    parts = Window(NOW - timedelta(hours=50), NOW).split()
    assert [p.end - p.start for p in parts] == [timedelta(hours=24), timedelta(hours=24), timedelta(hours=2)]
    assert parts[0].start == NOW - timedelta(hours=50) and parts[-1].end == NOW
    assert all(a.end == b.start for a, b in itertools.pairwise(parts))


def test_summaries_follow_next_token_and_each_24h_window_then_batch_by_five():
    client = xray_client()
    stub = Stubber(client)
    window = Window(NOW - timedelta(hours=30), NOW)
    ids = [f"1-6a000000-{n:024x}" for n in range(12)]
    # first 24 h: two pages; last 6 h: one page that repeats an id (it must be read once)
    stub.add_response(
        "get_trace_summaries",
        {"TraceSummaries": [{"Id": i} for i in ids[:4]], "NextToken": "page-2"},
        {"StartTime": ANY, "EndTime": ANY, "Sampling": False},
    )
    stub.add_response(
        "get_trace_summaries",
        {"TraceSummaries": [{"Id": i} for i in ids[4:8]]},
        {"StartTime": ANY, "EndTime": ANY, "Sampling": False, "NextToken": "page-2"},
    )
    stub.add_response(
        "get_trace_summaries",
        {"TraceSummaries": [{"Id": i} for i in [ids[7], *ids[8:]]]},
        {"StartTime": ANY, "EndTime": ANY, "Sampling": False},
    )
    ident = Ids()
    for start in range(0, 12, 5):
        batch = ids[start : start + 5]
        traces = {}
        for trace_id in batch:
            docs = lambda_documents(Call("f", 100.0, "cold", init_s=0.2, trace_id=trace_id), ident)
            traces[trace_id] = docs
        stub.add_response("batch_get_traces", batch_get_traces_response(traces), {"TraceIds": batch})
    with stub:
        outcome = XRayReader(client).read(window)
    stub.assert_no_pending_responses()
    assert sorted(t.id for t in outcome.traces) == ids
    assert outcome.problems == []


def test_batch_get_traces_pages_within_a_batch():
    client = xray_client()
    stub = Stubber(client)
    ident = Ids()
    first = lambda_documents(Call("f", 1.0, "warm", trace_id="1-6a000000-000000000000000000000001"), ident)
    second = lambda_documents(Call("f", 2.0, "warm", trace_id="1-6a000000-000000000000000000000002"), ident)
    page1 = batch_get_traces_response({first[0]["trace_id"]: first})
    page1["NextToken"] = "more"
    page2 = batch_get_traces_response({second[0]["trace_id"]: second})
    trace_ids = [first[0]["trace_id"], second[0]["trace_id"]]
    stub.add_response("batch_get_traces", page1, {"TraceIds": trace_ids})
    stub.add_response("batch_get_traces", page2, {"TraceIds": trace_ids, "NextToken": "more"})
    with stub:
        outcome = XRayReader(client).batch_get(trace_ids)
    assert [t.id for t in outcome.traces] == trace_ids


def test_filter_expression_refused_falls_back_to_client_side():
    client = xray_client()
    stub = Stubber(client)
    expected = {"StartTime": ANY, "EndTime": ANY, "Sampling": False, "FilterExpression": 'service("a") OR service("b")'}
    stub.add_client_error("get_trace_summaries", "InternalFailure", "Not implemented yet - moto", 500, expected)
    plain = {"StartTime": ANY, "EndTime": ANY, "Sampling": False}
    stub.add_response("get_trace_summaries", {"TraceSummaries": []}, plain)
    reader = XRayReader(client)
    with stub:
        assert reader.trace_ids(Window(NOW - timedelta(hours=1), NOW), ["a", "b"]) == []
    assert any("client-side" in note for note in reader.notes)
    assert filter_expression([]) is None


def test_throttling_is_retried_with_full_jitter_and_bounded():
    slept: list[float] = []
    calls = {"n": 0}

    def throttled_twice(**kwargs):
        calls["n"] += 1
        if calls["n"] <= 2:
            error = {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}
            raise ClientError(error, "GetTraceSummaries")
        return {"ok": kwargs}

    policy = no_sleep(RetryPolicy(base_s=1.0, cap_s=3.0, rng=lambda: 0.5), slept)
    assert policy.call("GetTraceSummaries", throttled_twice, X=1) == {"ok": {"X": 1}}
    assert slept == [0.5, 1.0]  # 0.5 * min(3, 1 * 2**attempt)
    assert policy.retried == 2

    def always(**_kwargs):
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "no"}}, "BatchGetTraces")

    slept.clear()
    bounded = no_sleep(RetryPolicy(max_attempts=4, base_s=1.0, cap_s=3.0, rng=lambda: 1.0), slept)
    with pytest.raises(UserError, match="still throttled after 4 attempts"):
        bounded.call("BatchGetTraces", always)
    assert slept == [1.0, 2.0, 3.0]  # capped at 3


def test_other_errors_are_not_retried():
    slept: list[float] = []

    def denied(**_kwargs):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetTraceSummaries")

    with pytest.raises(ClientError):
        no_sleep(RetryPolicy(), slept).call("GetTraceSummaries", denied)
    assert slept == []


def test_max_traces_stops_reading_and_says_so():
    client = xray_client()
    stub = Stubber(client)
    stub.add_response(
        "get_trace_summaries",
        {"TraceSummaries": [{"Id": f"1-6a000000-{n:024x}"} for n in range(10)], "NextToken": "t"},
        {"StartTime": ANY, "EndTime": ANY, "Sampling": False},
    )
    reader = XRayReader(client, max_traces=3)
    with stub:
        assert len(reader.trace_ids(Window(NOW - timedelta(hours=1), NOW))) == 3
    assert any("--max-traces 3" in note for note in reader.notes)


def test_trace_file_errors_are_user_errors(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(UserError, match="cannot read"):
        read_trace_file(missing)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="is not JSON"):
        read_trace_file(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"Items": []}))
    with pytest.raises(UserError, match="not BatchGetTraces output"):
        read_trace_file(wrong)
    pages = tmp_path / "pages.json"
    ident = Ids()
    docs = lambda_documents(Call("f", 1.0, "cold", init_s=0.1), ident)
    pages.write_text(json.dumps([batch_get_traces_response({docs[0]["trace_id"]: docs})] * 2))
    assert len(read_trace_file(pages).traces) == 2


def test_run_dir_reads_records_tolerantly(data_dir):
    run = read_run_dir(data_dir / "run")
    assert len(run.invocations) == 6
    assert [p.reason.split(" (")[0] for p in run.problems] == ["malformed JSON"]
    assert {e["environment_id"] for e in run.environment_events} == {"env-a", "env-p"}


def test_run_dir_errors(tmp_path):
    with pytest.raises(UserError, match="not a directory"):
        read_run_dir(tmp_path / "missing")
    with pytest.raises(UserError, match=r"no invocations\.jsonl"):
        read_run_dir(tmp_path)
    (tmp_path / "invocations.jsonl").write_text('[1, 2]\n{"function_name": "f"}\n')
    run = read_run_dir(tmp_path)
    assert run.invocations == []
    assert [p.reason.split(" (")[0] for p in run.problems] == ["line is not a JSON object", "unusable record"]
