"""`lambdalab simulate` and `lambdalab tune` from the command line: the invocations the issue names, errors, sweeps."""

from __future__ import annotations

import io
import json

import pytest

from lambdalab.cli import main
from tests.unit.simulate.conftest import ROOT

TEMPLATE = str(ROOT / "template.yaml")


def _json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_invoke_at_a_rate_prints_the_traces_schema_with_the_simulation_section(capsys):
    body = _json(
        ["simulate", "--template", TEMPLATE, "--invoke", "ConcurrencyTestFunction", "--qualifier", "live",
         "--rate", "50", "--duration", "10", "--model-set", "*.init=300ms", "--model-set", "*.duration=200ms",
         "--json"],
        capsys,
    )  # fmt: skip
    assert body["schema"] == "lambdalab.traces/1" and body["source"]["kind"] == "simulation"
    assert body["totals"]["invocations"] == 500
    (function,) = body["functions"]
    # every arrival of the first 0.5 s (INIT 0.3 s + 0.2 s, every 20 ms) finds no free environment: 25 cold starts
    assert function["qualifier"] == "live" and function["cold_starts"] == 25
    simulation = body["simulation"]
    assert simulation["outcomes"]["invocations"] == 500 and simulation["costs"]["total"] > 0
    assert simulation["series"]["counts"]["arrivals ConcurrencyTestFunction:live"][:3] == [50.0, 50.0, 50.0]


def test_the_state_machine_invocation_with_a_model_file(tmp_path, capsys):
    model = tmp_path / "model.yaml"
    model.write_text("functions:\n  '*': {init: 5s, duration: 3s}\n")
    body = _json(
        ["simulate", "--template", TEMPLATE, "--state-machine", "BaseStateMachine", "--input",
         str(ROOT / "events" / "sample-test-input.json"), "--model", str(model), "--json"],
        capsys,
    )  # fmt: skip
    assert body["totals"]["cold_starts"] == 40
    (execution,) = body["simulation"]["executions"]
    assert execution["status"] == "SUCCEEDED" and execution["lambda_attempts"] == 150
    assert len(body["executions"][0]["items"]) == 150


def test_the_artillery_invocation_writes_html_with_svg_and_no_external_assets(tmp_path, capsys):
    page = tmp_path / "spike.html"
    assert main(["simulate", "--template", TEMPLATE, "--artillery", str(ROOT / "loadtests" / "spike.yaml"),
                 "--rate-factor", "0.2", "--model-set", "*.duration=100ms", "--html", str(page)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "Cost estimate" in out and "Scaling activities" in out
    text = page.read_text()
    assert text.count('<svg class="sim-chart"') >= 4
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--invoke", "NoSuchFunction", "--count", "1"], "no function 'NoSuchFunction'"),
        (["--invoke", "ConcurrencyTestFunction", "--rate", "5"], "needs --duration"),
        (["--state-machine", "Nope"], "no such state machine"),
        (["--send", "WorkQueue"], "--send needs --messages"),
        (["--invoke", "ConcurrencyTestFunction", "--count", "1", "--model-set", "x"], "FUNCTION.FIELD=VALUE"),
        (
            ["--invoke", "ConcurrencyTestFunction", "--count", "1", "--parameter-overrides", "Nope=1"],
            "unknown parameter",
        ),
        ([], "no load"),
    ],
)
def test_bad_input_gets_one_clear_message_and_exit_2(argv, message, capsys):
    assert main(["simulate", "--template", TEMPLATE, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_bad_model_file_names_the_file_and_line(tmp_path, capsys):
    model = tmp_path / "m.yaml"
    model.write_text("functions:\n  F: {init: [1\n")
    assert main(["simulate", "--template", TEMPLATE, "--invoke", "ConcurrencyTestFunction", "--count", "1",
                 "--model", str(model)]) == 2  # fmt: skip
    assert f"{model}:" in capsys.readouterr().err


def test_tune_sweeps_parameters_and_knobs_marks_the_pareto_front_and_recommends(tmp_path, capsys):
    out = tmp_path / "sweep.json"
    assert main(["tune", "--template", TEMPLATE, "--invoke", "ConcurrencyTestFunction", "--qualifier", "live",
                 "--count", "20", "--model-set", "*.duration=1s", "--sweep", "ReservedConcurrency=5,20",
                 "--sweep", "provisioned:ConcurrencyTestFunction:live=1,20", "--workers", "2",
                 "--save-json", str(out)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    body = json.loads(out.read_text())
    assert len(body["settings"]) == 4
    by = {
        (s["setting"]["ReservedConcurrency"], s["setting"]["provisioned:ConcurrencyTestFunction:live"]): s
        for s in body["settings"]
    }
    # provisioned 20 above reserved 5: refused with AWS's message, the sweep goes on
    assert "should not be greater than the reservedConcurrentExecution" in by[("5", "20")]["refused"]
    assert by[("5", "1")]["outcomes"]["throttles"] == 15
    assert by[("20", "20")]["outcomes"]["cold_starts"] == 0 and by[("20", "20")]["pareto"]
    assert by[("20", "1")]["outcomes"]["throttles"] == 0
    assert body["recommendation"].startswith("The cheapest setting with no throttling is ReservedConcurrency=20")
    assert "cheapest setting with no throttling" in text


def test_tune_help_lists_what_can_be_swept(capsys):
    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    help_text = capsys.readouterr().out
    for knob in (
        "pc.statistic",
        "pc.target",
        "table.min",
        "table.target",
        "reserved:FUNCTION",
        "ANY TEMPLATE PARAMETER",
    ):
        assert knob in help_text


def test_tune_refuses_an_unknown_setting(capsys):
    assert main(["tune", "--template", TEMPLATE, "--invoke", "ConcurrencyTestFunction", "--count", "1",
                 "--sweep", "Bogus=1,2"]) == 2  # fmt: skip
    assert "not a template parameter nor a knob" in capsys.readouterr().err


def test_run_writes_to_the_given_stream():
    from lambdalab.simulate.cli import run

    parser = __import__("lambdalab.cli", fromlist=["build_parser"]).build_parser()
    args = parser.parse_args(["simulate", "--template", TEMPLATE, "--send", "WorkQueue", "--messages", "20",
                              "--model-set", "*.duration=1s"])  # fmt: skip
    stream = io.StringIO()
    assert run(args, stdout=stream) == 0
    assert "SQS event source mappings" in stream.getvalue()
