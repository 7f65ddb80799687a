"""What a runtime costs alone: the import-time tree and self times, and a real measurement of a real interpreter."""

from __future__ import annotations

import sys

import pytest

from lambdalab.awslambda.runtime.interpreters import find_interpreter
from lambdalab.awslambda.runtime.packages import ensure_runtime_packages
from lambdalab.awslambda.runtime.probe import RuntimeCosts, measure, parse_importtime
from lambdalab.clock import Clocks

# `python -X importtime -c "import pkg"` prints each module after what it imported (post-order), indented by depth.
SAMPLE = """\
import time: self [us] | cumulative | imported package
import time:       100 |        100 |     leaf_a
import time:       200 |        200 |       deep
import time:       300 |        500 |     leaf_b
import time:        50 |        650 |   mid
import time:        25 |         25 |   sibling
import time:      1000 |       1675 | pkg
import time:        10 |         10 | other
import time:         1 |          1 | pkg
"""


def test_the_tree_and_self_times_come_from_post_order_lines() -> None:
    self_times, tree = parse_importtime(SAMPLE)
    assert self_times == {
        "leaf_a": 0.0001, "deep": 0.0002, "leaf_b": 0.0003, "mid": 0.00005, "sibling": 0.000025, "pkg": 0.001,
        "other": 0.00001,
    }  # fmt: skip
    assert tree == {"leaf_b": ["deep"], "mid": ["leaf_a", "leaf_b"], "pkg": ["mid", "sibling"]}


def test_an_import_costs_itself_and_everything_it_loaded_first() -> None:
    self_times, tree = parse_importtime(SAMPLE)
    costs = RuntimeCosts(startup_s=0.08, imports_s=self_times, tree=tree, preload_rss=0)
    assert costs.import_cost("pkg") == pytest.approx(0.001675)  # the cumulative column
    assert costs.import_cost("leaf_b") == pytest.approx(0.0005)
    assert costs.import_cost("unknown") == 0.0
    assert RuntimeCosts.from_json(costs.to_json()) == costs


@pytest.mark.slow
def test_measuring_a_real_runtime() -> None:
    interpreter = find_interpreter(f"python{sys.version_info[0]}.{sys.version_info[1]}")
    site = ensure_runtime_packages(interpreter)
    costs = measure(interpreter, site, Clocks.wall(), runs=2)
    # A fresh interpreter with the runtime client takes tens of milliseconds; boto3 takes more than its own module.
    assert 0.005 < costs.startup_s < 5.0
    assert costs.import_cost("boto3") > costs.imports_s["boto3"] > 0
    assert "botocore" in costs.imports_s and costs.preload_rss > 1_000_000
    assert "awslambdaric" not in costs.imports_s  # the runtime client is part of the start, not of an import
    # parsing the SDK data every client reads: endpoints.json alone is over a megabyte of JSON
    assert set(costs.data_s) == {"endpoints", "partitions", "sdk-default-configuration", "_retry"}
    assert costs.data_s["endpoints"] > 0.002
