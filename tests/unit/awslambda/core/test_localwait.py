"""A request's waits for this machine, as its caller reads them while it runs: finished, under way, and the INIT it
waits on (live, then as measured)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambdalab.awslambda.core.localwait import LocalWait


def test_waits_add_up_the_one_under_way_included() -> None:
    local = LocalWait()
    assert local.seconds(10.0) == 0.0
    local.begin(10.0)
    assert local.seconds(10.5) == pytest.approx(0.5)  # under way: counted up to now
    local.end(11.0)
    assert local.seconds(20.0) == pytest.approx(1.0)  # over: no longer grows
    inits = iter([0.2, 0.7])
    local.watch(lambda: next(inits))  # an INIT queued for a CPU: read live
    assert local.seconds(20.0) == pytest.approx(1.2)
    assert local.seconds(20.0) == pytest.approx(1.7)
    local.settle(0.8)  # INIT over: its measured wait replaces the live reading
    assert local.seconds(30.0) == pytest.approx(1.8)


@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 100)), max_size=20))
def test_never_negative_and_never_shrinking(spans: list[tuple[float, float]]) -> None:
    local, now, last = LocalWait(), 0.0, 0.0
    for wait, gap in spans:
        local.begin(now)
        now += wait
        assert local.seconds(now) >= last
        local.end(now)
        now += gap
        assert local.seconds(now) == pytest.approx(last + wait) and local.seconds(now) >= last
        last = local.seconds(now)
