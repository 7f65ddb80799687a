"""The scenarios the local cloud and AWS's documented rules decide, reproduced by the simulator."""

from __future__ import annotations

import json

import pytest

from lambdalab.awslambda.core.outcome import Outcome
from lambdalab.awslambda.core.policy import ThrottleReason
from lambdalab.simulate.asl import StateMachineLoad
from lambdalab.simulate.loads import ArtilleryLoad, InvokeLoad, SqsLoad, load_artillery
from tests.unit.simulate.conftest import ROOT, models, simulation, stack

SAMPLE_INPUT = json.loads((ROOT / "events" / "sample-test-input.json").read_text())


def _run_machine(machine: str, **overrides: str):
    s = stack(ProvisionedConcurrency="150", **overrides)
    sim = simulation(s, models("*.init=5s", "*.duration=3s"))
    load = StateMachineLoad(s.state_machines[machine], SAMPLE_INPUT)
    load.start(sim, s)
    sim.run(sim.load_start)
    return sim, load


def test_the_demo_inline_map_gives_40_cold_starts_of_150_and_150_provisioned_give_none():
    base, base_load = _run_machine("BaseStateMachine")
    (stats,) = base.stats.values()
    assert (stats.invocations, stats.cold, stats.warm) == (150, 40, 110)
    assert base_load.records[0].status == "SUCCEEDED"
    provisioned, _ = _run_machine("ProvisionedStateMachine")
    (stats,) = provisioned.stats.values()
    assert (stats.invocations, stats.cold, stats.provisioned, stats.spillover) == (150, 0, 150, 0)


def test_the_distributed_map_starts_all_150_at_once_so_all_are_cold():
    sim, load = _run_machine("BaseDistributedStateMachine")
    (stats,) = sim.stats.values()
    assert (stats.invocations, stats.cold) == (150, 150)
    assert load.records[0].end - load.records[0].start == pytest.approx(8.0)


def test_the_demo_matches_the_local_cloud_run_within_10_percent():
    # The README's `make demo` run on the local cloud (150 items, inline Map): execution 18.30 s, p95 8.35 s,
    # cold p50 8.23 s, warm p50 3.01 s; its INIT was 5.2 s and a call 3.0 s.
    s = stack(ProvisionedConcurrency="150")
    sim = simulation(s, models("*.init=5.2s", "*.duration=3.02s"))
    load = StateMachineLoad(s.state_machines["BaseStateMachine"], SAMPLE_INPUT)
    load.start(sim, s)
    sim.run(sim.load_start)
    (stats,) = sim.stats.values()
    record = load.records[0]
    cold = sorted(stats.e2e_cold.values)
    warm = sorted(stats.e2e_warm.values)
    assert cold[len(cold) // 2] == pytest.approx(8.23, rel=0.10)
    assert warm[len(warm) // 2] == pytest.approx(3.01, rel=0.10)
    assert record.end - record.start == pytest.approx(18.30, rel=0.10)


def test_reserved_5_answers_10_parallel_calls_with_5_successes_and_5_reserved_throttles():
    s = stack(ReservedConcurrency="5")
    sim = simulation(s, models("*.init=300ms", "*.duration=1s"))
    load = InvokeLoad(s.function("ConcurrencyTestFunction"), "live", None, None, 10, False, False)
    load.start(sim)
    sim.run(sim.load_start)
    assert load.statuses == {"200 OK": 5, f"429 {ThrottleReason.RESERVED.value}": 5}


def test_20_messages_in_batches_of_10_on_reserved_5_take_about_2_invocations_and_none_is_lost():
    s = stack()  # QueueReservedConcurrency=5, QueueBatchSize=10, QueueMaximumConcurrency=5
    sim = simulation(s, models("*.init=300ms", "*.duration=1s"))
    SqsLoad("WorkQueue", 20, None, 10).start(sim)
    sim.run(sim.load_start + 1)
    (mapping,) = sim.mappings
    assert 2 <= mapping.batches <= 4
    assert mapping.queue.deleted == 20 and mapping.queue.dead_lettered == 0
    assert mapping.queue.backlog(sim.clock.t) == (0, 0)


def test_the_spike_scales_the_maximum_alias_out_first_and_it_spills_over_less():
    s = stack()
    sim = simulation(s, models("*.init=lognormal(p50=400ms,p99=900ms)", "*.duration=100ms"), bin_s=2.0)
    script = load_artillery(ROOT / "loadtests" / "spike.yaml")
    load = ArtilleryLoad(script, s)
    load.start(sim)
    sim.run(sim.load_start + load.length())
    custom = next(v for k, v in sim.stats.items() if k[1] == "custom")
    standard = next(v for k, v in sim.stats.items() if k[1] == "standard")
    outs = {a.resource_id.rsplit(":", 1)[1]: a.at for a in reversed(sim.activities) if a.direction == "out"}
    assert "custom" in outs
    assert outs["custom"] < outs.get("standard", float("inf"))
    assert custom.spillover < standard.spillover
    assert custom.invocations == standard.invocations == 37_200


def test_a_burst_beyond_1000_new_environments_in_10_s_throttles_with_the_scaling_rate_reason():
    # GIVEN an unreserved function in an account of 5,000 (no other limit in the way) and 3,000 calls at once
    s = stack(ReservedConcurrency="-1")
    sim = simulation(s, models("*.init=1s", "*.duration=20s"), account=5000)
    load = InvokeLoad(s.function("ConcurrencyTestFunction"), "live", None, None, 3000, False, False)
    load.start(sim)
    sim.run(sim.load_start)
    (stats,) = sim.stats.values()
    # THEN 1,000 start (the bucket), the rest are throttled FunctionInvocationRateLimitExceeded
    assert stats.cold == 1000
    assert stats.throttles == {ThrottleReason.SCALING_RATE.value: 2000}
    rejected = [a for a in sim.kept if a.outcome is Outcome.THROTTLED]
    assert all(0 < a.throttle.retry_after_s <= 0.01 + 1e-9 for a in rejected)


def test_the_scaling_bucket_refills_at_100_new_environments_a_second():
    s = stack(ReservedConcurrency="-1")
    sim = simulation(s, models("*.init=1s", "*.duration=60s"), account=5000)
    # 2,000 calls a second for 5 s: 1,000 at once, then about 100 more each second
    load = InvokeLoad(s.function("ConcurrencyTestFunction"), "live", 2000, 5, None, False, False)
    load.start(sim)
    sim.run(sim.load_start + 5)
    (stats,) = sim.stats.values()
    assert stats.cold == pytest.approx(1000 + 100 * 5, abs=5)
    assert set(stats.throttles) == {ThrottleReason.SCALING_RATE.value}
