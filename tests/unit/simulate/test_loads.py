"""Arrivals, Artillery scripts and their routes, SQS sends and async invokes."""

from __future__ import annotations

import random

import pytest

from lambdalab.errors import UserError
from lambdalab.simulate.loads import ArtilleryLoad, InvokeLoad, arrival_times, load_artillery
from tests.unit.simulate.conftest import ROOT, models, simulation, stack


def test_uniform_arrivals_are_evenly_spaced_and_a_ramp_accelerates_linearly():
    steady = list(arrival_times(10.0, 2.0, 5.0, None, None))
    assert steady == pytest.approx([10.0 + i * 0.2 for i in range(10)])
    ramp = list(arrival_times(0.0, 10.0, 1.0, 9.0, None))
    assert len(ramp) == 50  # (1 + 9) / 2 * 10
    first_half = sum(1 for t in ramp if t < 5.0)
    assert first_half == 15  # ∫0..5 (1 + 0.8 t) dt = 15
    poisson = list(arrival_times(0.0, 1000.0, 2.0, None, random.Random(5)))
    assert len(poisson) == pytest.approx(2000, rel=0.05)


def test_the_flash_sale_script_reads_with_weights_captures_and_rates(tmp_path):
    script = load_artillery(ROOT / "loadtests" / "flash-sale.yaml", rate_factor=10)
    assert [p.rate for p in script.phases] == [50, 200, 1000, 50]
    assert {s.name: s.weight for s in script.scenarios} == {"browse": 7, "buy": 3}
    buy = next(s for s in script.scenarios if s.name == "buy")
    assert [(st.method, st.url, st.capture) for st in buy.flow] == [
        ("POST", "/products", True),
        ("GET", "/products/{{ productId }}", False),
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("config:\n  phases:\n    - duration: 10\nscenarios: [{flow: [{get: {url: /x}}]}]\n")
    with pytest.raises(UserError, match=r"phases\[0\].*arrivalRate"):
        load_artillery(bad)


def test_flows_go_through_the_apis_routes_to_functions_and_aliases():
    s = stack()
    load = ArtilleryLoad(load_artillery(ROOT / "loadtests" / "flash-sale.yaml"), s)
    read = load.route("GET", "/products/{{ productId }}")
    create = load.route("POST", "/products")
    assert read is not None and read[0].logical_id == "ProductsReadFunction" and read[1] == "$LATEST"
    assert create is not None and create[0].logical_id == "ProductsCreateFunction" and create[1] == "live"
    assert load.route("DELETE", "/products") is None  # API Gateway answers 403


def test_a_buy_flow_stops_when_its_post_fails_and_a_browse_flow_completes():
    # GIVEN the products create function reserved to 0 concurrency is impossible; throttle it with reserved 1
    s = stack(ProductsReservedConcurrency="1")
    s.function("ProductsCreateFunction").reserved = 1
    s.function("ProductsCreateFunction").provisioned = {}
    sim = simulation(s, models("*.init=100ms", "*.duration=2s"))
    load = ArtilleryLoad(load_artillery(ROOT / "loadtests" / "flash-sale.yaml", rate_factor=0.2), s)
    load.start(sim)
    sim.run(sim.load_start + 30)
    gets = load.by_route["GET /products/{…}"].requests
    posts = load.by_route["POST /products"]
    assert posts.statuses.get(500, 0) > 0  # throttled invokes answer 500, as the local API Gateway does
    assert gets == posts.statuses.get(201, 0) + posts.statuses.get(200, 0)
    assert load.users_failed >= posts.statuses.get(500, 0)


def test_async_invokes_are_accepted_throttled_and_retried_until_they_succeed():
    s = stack(ReservedConcurrency="2")
    sim = simulation(s, models("*.init=100ms", "*.duration=1s"))
    InvokeLoad(s.function("ConcurrencyTestFunction"), "live", None, None, 10, True, False).start(sim)
    sim.run(sim.load_start)
    assert sim.queue.counts().succeeded == 10  # every event eventually ran (nothing lost)
    assert sim.async_outcomes["requeued"] > 0  # throttled attempts went back with backoff
    (stats,) = sim.stats.values()
    assert stats.invocations == 10 and sum(stats.throttles.values()) == sim.async_outcomes["requeued"]
