"""Trace headers and ids."""

from __future__ import annotations

from lambdalab.observe.tracing import TraceHeader, is_segment_id, is_trace_id, new_segment_id, new_trace_id

AWS_EXAMPLE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def test_parse_and_format_round_trip_the_documented_header():
    header = TraceHeader.parse(AWS_EXAMPLE)
    assert header.root == "1-5759e988-bd862e3fe1be46a994272793"
    assert header.parent == "53995c3f42cd8ad8"
    assert header.sampled is True
    assert header.format() == AWS_EXAMPLE


def test_lineage_undecided_sampling_and_unknown_keys_are_kept():
    raw = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?;Lineage=10:1234abcd:3;Self=1-67891234-abc"
    header = TraceHeader.parse(raw)
    assert header.sampled is None
    assert header.parent is None
    assert header.lineage == "10:1234abcd:3"
    assert header.format() == "Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=10:1234abcd:3;Self=1-67891234-abc"
    assert TraceHeader.parse("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0").sampled is False


def test_malformed_parts_are_dropped_not_raised():
    header = TraceHeader.parse("Root=not-a-trace;Parent=xyz;garbage;Sampled=1")
    assert (header.root, header.parent, header.sampled) == (None, None, True)
    assert TraceHeader.parse(None) == TraceHeader()
    assert TraceHeader.parse("") == TraceHeader()


def test_ids_have_the_xray_formats_and_differ():
    trace_id = new_trace_id(0x5759E988)
    assert trace_id.startswith("1-5759e988-")
    assert is_trace_id(trace_id)
    ids = {new_segment_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(is_segment_id(i) for i in ids)
    assert not is_trace_id("1-5759e988-short")
    assert not is_segment_id("53995C3F42CD8AD8")  # X-Ray ids are lower-case hex
