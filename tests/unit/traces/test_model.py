"""Parsing segment documents: the schema's fields, tolerance, and what gets reported."""

from __future__ import annotations

import json

import pytest

from lambdalab.traces.model import (
    ParseOutcome,
    SegmentError,
    assemble_trace,
    parse_batch_get_traces,
    parse_segment,
)
from tests.unit.traces.data import load

TRACE = "1-6afd86ca-ab99254ae901e35cd47d380d"


def seg(seg_id: str, name: str = "fn", start: float = 10.0, end: float | None = 11.0, **extra):
    doc = {"id": seg_id, "name": name, "trace_id": TRACE, "start_time": start, **extra}
    if end is not None:
        doc["end_time"] = end
    return doc


def test_parse_segment_reads_the_documented_fields_and_nests_subsegments():
    doc = seg(
        "a1",
        origin="AWS::Lambda::Function",
        resource_arn="arn:aws:lambda:us-east-1:1:function:f:live",
        http={"response": {"status": 200}},
        subsegments=[seg("b1", "Invocation", 10.1, 10.5, subsegments=[seg("c1", "DynamoDB", 10.2, 10.3)])],
        something_new={"x": 1},
    )
    segment = parse_segment(doc)
    assert segment.origin == "AWS::Lambda::Function"
    assert segment.http_status == 200
    assert segment.duration == pytest.approx(1.0)
    invocation = segment.child("Invocation")
    assert invocation is not None and invocation.subsegments[0].name == "DynamoDB"
    assert [s.id for s in segment.walk()] == ["a1", "b1", "c1"]


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"name": "x", "start_time": 1.0, "end_time": 2.0}, "missing id"),
        ({"id": "a", "start_time": 1.0, "end_time": 2.0}, "missing name"),
        ({"id": "a", "name": "x", "end_time": 2.0}, "missing start_time"),
        ({"id": "a", "name": "x", "start_time": 1.0}, "missing end_time"),
        ({"id": "a", "name": "x", "start_time": "soon", "end_time": 2.0}, "start_time is not a number"),
        (["not", "an", "object"], "not a JSON object"),
    ],
)
def test_parse_segment_names_what_is_wrong(doc, reason):
    with pytest.raises(SegmentError, match=reason):
        parse_segment(doc)


def test_in_progress_segment_has_no_duration():
    segment = parse_segment(seg("a", end=None, in_progress=True))
    assert segment.in_progress and segment.duration is None


def test_assemble_keeps_the_complete_copy_whatever_the_order():
    complete = seg("a", end=12.0)
    partial = seg("a", end=None, in_progress=True)
    for order in ([complete, partial], [partial, complete]):
        outcome = ParseOutcome()
        trace = assemble_trace(TRACE, [json.dumps(d) for d in order], outcome)
        assert trace is not None
        assert trace.segments[0].end_time == 12.0
        assert outcome.problems == []


def test_detached_subsegments_attach_to_their_parent_even_when_they_arrive_first():
    parent = seg("p", subsegments=[seg("inv", "Invocation", 10.1, 10.9)])
    sdk = seg("s", "S3", 10.2, 10.3, type="subsegment", parent_id="inv")
    nested = seg("n", "PutObject", 10.21, 10.22, type="subsegment", parent_id="s")
    outcome = ParseOutcome()
    trace = assemble_trace(TRACE, [nested, sdk, parent], outcome)
    assert outcome.problems == []
    assert trace is not None
    invocation = trace.segments[0].child("Invocation")
    assert invocation is not None
    assert [s.name for s in invocation.walk()] == ["Invocation", "S3", "PutObject"]


def test_orphans_malformed_json_and_foreign_documents_are_reported_not_fatal():
    outcome = ParseOutcome()
    docs = [
        seg("a"),
        seg("o", type="subsegment", parent_id="nowhere"),
        '{"id": "x", ',
        seg("f", trace_id="1-00000000-000000000000000000000000"),
    ]
    trace = assemble_trace(TRACE, docs, outcome)
    assert trace is not None and [s.id for s in trace.segments] == ["a"]
    reasons = sorted(p.reason.split(" (")[0] for p in outcome.problems)
    assert reasons == ["document belongs to another trace", "malformed JSON", "orphan subsegment"]


def test_batch_get_traces_fixture_with_every_kind_of_damage():
    outcome = parse_batch_get_traces([load("malformed.json")])
    reasons = sorted(p.reason.split(" (")[0] for p in outcome.problems)
    assert reasons == [
        "malformed JSON",
        "missing start_time",
        "orphan subsegment",
        "unprocessed by BatchGetTraces",
    ]
    # the good trace, the partial one and the in-progress one still come through
    assert len(outcome.traces) == 3
    good = outcome.traces[0]
    invocation = good.by_origin("AWS::Lambda::Function")[0].child("Invocation")
    assert invocation is not None and [s.name for s in invocation.subsegments] == ["DynamoDB"]


def test_batch_get_traces_response_without_traces_is_reported():
    outcome = parse_batch_get_traces([{"nothing": []}, {"Traces": [{"Segments": []}]}])
    assert [p.reason for p in outcome.problems] == ["no Traces list", "trace without Id or Segments"]
