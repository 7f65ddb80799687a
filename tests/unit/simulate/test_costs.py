"""The cost estimate: the price table, step-function integration with the 5-minute increment, line items."""

from __future__ import annotations

import json

import pytest

from lambdalab.errors import UserError
from lambdalab.simulate.costs import estimate, integrate, load_prices


def test_integration_of_a_capacity_over_time_and_the_provisioned_5_minute_rounding():
    assert integrate([(0.0, 5.0), (60.0, 10.0)], 0.0, 120.0) == 5 * 60 + 10 * 60
    assert integrate([(0.0, 2.0)], 0.0, 61.0, increment_s=300) == 2 * 300


def test_a_run_is_priced_line_by_line_with_init_billed_on_demand():
    prices = load_prices()
    cost = estimate(
        prices,
        window=(0.0, 3600.0),
        functions=[
            {
                "name": "F",
                "arch": "x86_64",
                "memory_mb": 1024,
                "requests": 1_000_000,
                "billed_ms_on_demand": 1_000_000 * 100,
                "billed_ms_provisioned": 0,
            }
        ],
        provisioned=[{"name": "F", "qualifier": "live", "arch": "x86_64", "memory_mb": 1024, "changes": [(0.0, 10.0)]}],
        tables=[
            {
                "name": "T",
                "mode": "PROVISIONED",
                "read_changes": [(0.0, 5.0)],
                "write_changes": [(0.0, 5.0)],
                "read_units": 0,
                "write_units": 0,
            }
        ],
        api_requests=1_000_000,
        sqs_requests=0,
        transitions=0,
    )
    by_item = {line.item: line.cost for line in cost.lines}
    assert by_item["F requests"] == pytest.approx(0.20)
    assert by_item["F on-demand duration + INIT"] == pytest.approx(100_000 * 0.0000166667)
    assert by_item["F:live provisioned concurrency"] == pytest.approx(10 * 3600 * 0.0000041667)
    assert by_item["T write capacity"] == pytest.approx(5 * 0.00065)
    assert by_item["REST API requests"] == pytest.approx(3.50)
    assert cost.per_month() == pytest.approx(cost.total * 730)


def test_a_bad_price_table_names_what_is_missing(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"lambda": {"requests_per_million": 0.2}}))
    with pytest.raises(UserError, match=r"lambda.duration_gb_second"):
        load_prices(path)
