"""Properties: whatever the mix and whatever order documents arrive in, the report counts what was put in."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from lambdalab.traces.model import parse_batch_get_traces
from lambdalab.traces.report import Source, from_traces
from lambdalab.traces.synthetic import Call, Ids, batch_get_traces_response, lambda_documents

calls = st.lists(
    st.tuples(
        st.sampled_from(["alpha", "beta"]),
        st.sampled_from(["cold", "warm", "provisioned", "throttled"]),
        st.floats(min_value=0.0, max_value=5.0),  # received, seconds after t0
        st.floats(min_value=0.01, max_value=2.0),  # INIT seconds
        st.booleans(),  # all calls of this one's Map share a trace?
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(calls=calls, seed=st.integers(0, 2**32 - 1))
def test_counts_survive_any_order_and_shared_traces(calls, seed):
    rng = random.Random(seed)
    ids = Ids(random.Random(seed))
    shared = ids.trace(1_795_000_000)
    traces: dict[str, list] = {}
    expected: dict[tuple[str, str], dict[str, int]] = {}
    for function, kind, offset, init_s, in_map in calls:
        call = Call(function, 1_795_000_000 + offset, kind, init_s=init_s, trace_id=shared if in_map else None)
        docs = lambda_documents(call, ids)
        traces.setdefault(docs[0]["trace_id"], []).extend(docs)
        counts = expected.setdefault((function, "$LATEST"), {"cold": 0, "provisioned": 0, "warm": 0, "throttled": 0})
        counts[kind] += 1
    for docs in traces.values():
        rng.shuffle(docs)
    outcome = parse_batch_get_traces([batch_get_traces_response(traces)])
    report = from_traces(outcome, Source("file", "property"))
    assert report.problems == []
    got = {
        (f.function, f.qualifier): {
            "cold": f.cold_starts,
            "provisioned": f.provisioned_starts,
            "warm": f.warm_starts,
            "throttled": f.throttles,
        }
        for f in report.functions
    }
    assert got == expected
    # every invocation that ran sits on exactly one environment, and every cold one opened its own
    placed = [item for env in report.environments for item in env.invocations]
    assert len(placed) == len({id(item) for item in placed}) == sum(f.invocations for f in report.functions)
    for env in report.environments:
        cold_here = [item for item in env.invocations if item.cold]
        assert len(cold_here) <= 1
        if cold_here:
            assert env.invocations[0] is cold_here[0]
