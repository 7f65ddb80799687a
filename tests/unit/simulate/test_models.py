"""Function models: the spec grammar, model files, measured models from a traces report, and their errors."""

from __future__ import annotations

import json
import random

import pytest

from lambdalab.errors import UserError
from lambdalab.simulate.models import (
    Empirical,
    Fixed,
    LogNormal,
    ModelSet,
    Uniform,
    apply_setting,
    load_model_file,
    parse_distribution,
)
from lambdalab.traces.analysis import Invocation, StartKind
from lambdalab.traces.report import Source, from_invocations


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("3", Fixed(3.0)),
        ("120ms", Fixed(0.12)),
        ("fixed(2s)", Fixed(2.0)),
        ("lognormal(p50=100ms, p99=1s)", LogNormal(0.1, 1.0)),
        ("uniform(1, 2)", Uniform(1.0, 2.0)),
        ("empirical(0.1, 0.2)", Empirical((0.1, 0.2))),
        ({"distribution": "lognormal", "p50": "1s", "p99": "4s"}, LogNormal(1.0, 4.0)),
        ({"samples": [1, 2]}, Empirical((1.0, 2.0))),
        (0.5, Fixed(0.5)),
    ],
)
def test_specs_parse(spec, expected):
    assert parse_distribution(spec, what="x") == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fast", "not a duration"),
        ("lognormal(p50=1s)", "cannot read"),
        ("lognormal(p50=2s, p99=1s)", "p50 <= p99"),
        ("gamma(1, 2)", "unknown distribution"),
        ("-1s", "at least 0"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec, message):
    with pytest.raises(UserError, match=message):
        parse_distribution(spec, what="ConcurrencyTestFunction.init")


def test_a_lognormal_has_the_median_and_p99_it_was_given():
    sample = LogNormal(0.1, 0.5).sampler(random.Random(7))
    values = sorted(sample() for _ in range(40_000))
    assert values[20_000] == pytest.approx(0.1, rel=0.03)
    assert values[39_600] == pytest.approx(0.5, rel=0.08)


def test_a_model_file_sets_defaults_and_functions_and_rejects_unknown_fields(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(
        "functions:\n"
        "  '*': {init: 200ms, duration: 50ms}\n"
        "  ProductsReadFunction:\n"
        "    duration: lognormal(p50=20ms, p99=90ms)\n"
        "    dynamodb: [{table: ProductsTable, read: 2}]\n"
    )
    models = load_model_file(path)
    read = models.for_function("ProductsReadFunction", "stack-ProductsReadFunction")
    assert read.init == Fixed(0.2) and read.duration == LogNormal(0.02, 0.09)
    assert read.dynamodb[0].table == "ProductsTable" and read.dynamodb[0].read == 2.0
    assert models.for_function("Other", "x").duration == Fixed(0.05)
    path.write_text("functions:\n  F: {init: 1s, memory: 512}\n")
    with pytest.raises(UserError, match=r"unknown model field.*memory"):
        load_model_file(path)
    path.write_text("functions: [1\n")
    with pytest.raises(UserError, match="neither JSON nor YAML"):
        load_model_file(path)


def test_command_line_settings_override_one_field():
    models = ModelSet()
    apply_setting(models, "*.init=5s")
    apply_setting(models, "F.errors=0.25")
    model = models.for_function("F", "stack-F")
    assert model.init == Fixed(5.0) and model.errors == 0.25
    with pytest.raises(UserError, match=r"FUNCTION.FIELD=VALUE"):
        apply_setting(models, "init=5s")
    with pytest.raises(UserError, match="between 0 and 1"):
        apply_setting(models, "F.errors=2")


def test_a_measured_traces_report_becomes_empirical_models_by_function(tmp_path):
    # GIVEN a traces report of a measured run: 50 cold starts with INITs around 400 ms, 500 calls around 80 ms
    rng = random.Random(3)
    invocations = []
    for i in range(500):
        cold = i < 50
        init = rng.lognormvariate(-0.92, 0.2) if cold else None
        start = float(i)
        duration = rng.lognormvariate(-2.5, 0.3)
        invocations.append(
            Invocation(
                function="lab-ProductsReadFunction-ABC",
                qualifier="$LATEST",
                start_kind=StartKind.COLD if cold else StartKind.WARM,
                received_at=start,
                init_start=start if cold else None,
                init_end=start + init if init else None,
                invoke_start=start + (init or 0),
                invoke_end=start + (init or 0) + duration,
                environment_id=f"e{i % 50}",
            )
        )
    report = from_invocations(invocations, Source("run-dir", "x"))
    path = tmp_path / "measured.json"
    path.write_text(json.dumps(report.to_json()))
    # WHEN it is the model
    models = load_model_file(path)
    model = models.for_function("ProductsReadFunction", "lambda-concurrency-lab-ProductsReadFunction")
    # THEN the simulator resamples what was measured
    assert isinstance(model.init, Empirical) and len(model.init.samples) == 50
    assert isinstance(model.duration, Empirical) and len(model.duration.samples) == 500
    measured = sorted(i.duration_s for i in invocations)
    sample = model.duration.sampler(random.Random(1))
    drawn = sorted(sample() for _ in range(20_000))
    for q in (0.5, 0.95):
        assert drawn[int(q * len(drawn))] == pytest.approx(measured[int(q * len(measured))], rel=0.10)
