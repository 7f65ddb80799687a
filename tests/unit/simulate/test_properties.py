"""Invariants of a simulation, whatever the load: nothing lost, no limit exceeded, every call answered once."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdalab.simulate.loads import InvokeLoad, SqsLoad
from tests.unit.simulate.conftest import models, simulation, stack

_BASE = stack()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    messages=st.integers(1, 120),
    reserved=st.integers(1, 8),
    errors=st.sampled_from([0.0, 0.3, 1.0]),
    duration=st.sampled_from(["50ms", "2s", "40s"]),
)
def test_every_sqs_message_ends_processed_dead_lettered_or_still_queued(messages, reserved, errors, duration):
    import copy

    s = copy.deepcopy(_BASE)
    consumer = s.function("QueueConsumerFunction")
    consumer.reserved = reserved
    s.queues["WorkQueue"].visibility_timeout_s = 5.0
    sim = simulation(s, models(f"*.duration={duration}", f"QueueConsumerFunction.errors={errors}"))
    SqsLoad("WorkQueue", messages, None, 10).start(sim)
    sim.run(sim.load_start + 1)
    (mapping,) = sim.mappings
    queue = mapping.queue
    visible, in_flight = queue.backlog(sim.clock.t)
    assert queue.deleted + queue.dead_lettered + visible + in_flight == messages
    peak = max(sim.series.gauges.get(f"concurrency {consumer.name}", [0.0]))
    assert peak <= reserved


@settings(max_examples=20, deadline=None)
@given(count=st.integers(1, 300), reserved=st.integers(1, 40), rate=st.sampled_from([None, 20.0, 500.0]))
def test_every_call_is_answered_once_and_reserved_concurrency_is_never_exceeded(count, reserved, rate):
    import copy

    s = copy.deepcopy(_BASE)
    function = s.function("ConcurrencyTestFunction")
    function.reserved = reserved
    sim = simulation(s, models("*.init=lognormal(p50=200ms,p99=2s)", "*.duration=lognormal(p50=100ms,p99=1s)"))
    load = InvokeLoad(function, "live", rate, None, count, False, False)
    load.start(sim)
    sim.run(sim.load_start + load.length())
    assert sum(load.statuses.values()) == count
    ids = [a.request_id for a in sim.kept]
    assert len(ids) == len(set(ids)) == count
    assert max(sim.series.gauges.get(f"concurrency {function.name}", [0.0])) <= reserved
    sim.policy.check_consistency()
    assert sim.life.in_flight() == 0
