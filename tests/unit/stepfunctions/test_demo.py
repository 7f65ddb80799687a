"""`lambdalab demo`'s pure parts: the summary from run records, the conclusion, the input and the parameters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lambdalab.cli import build_parser, main
from lambdalab.demo import (
    DemoConfig,
    call_seconds,
    conclusion,
    load_entries,
    parameter_overrides,
    percentile,
    summarise,
)
from lambdalab.errors import UserError

ROOT = Path(__file__).resolve().parents[3]


def record(kind: str | None, seconds: float, env: str = "e1", function: str = "f") -> dict[str, Any]:
    return {
        "function_name": function,
        "start_kind": kind,
        "environment_id": env if kind else None,
        "received_at": 100.0,
        "responded_at": 100.0 + seconds if kind else 100.0,
        "invoke_end": 100.0 + seconds if kind else None,
    }


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 100)) == (50.0, 95.0, 100.0)
    assert percentile([3.0], 95) == 3.0
    assert percentile([], 50) is None


def test_call_seconds_prefers_the_response_time() -> None:
    assert call_seconds({"received_at": 1.0, "responded_at": 4.0, "invoke_end": 3.5}) == 3.0
    assert call_seconds({"received_at": 1.0, "invoke_end": 3.5}) == 2.5
    assert call_seconds({"received_at": 1.0}) is None


def test_summary_counts_kinds_environments_and_throttles() -> None:
    records = [
        record("cold", 8.0, "e1"),
        record("cold", 8.2, "e2"),
        record("warm", 3.0, "e1"),
        record("warm", 3.1, "e2"),
        record(None, 0.0),  # a throttled call: no environment, not a call that ran
        record("warm", 1.0, "other", function="g"),
    ]
    summary = summarise("base", "f", records, "SUCCEEDED", 12.0)
    assert (summary.calls, summary.cold_starts, summary.warm_starts, summary.throttles) == (4, 2, 2, 1)
    assert summary.environments == 2
    assert summary.max_s == pytest.approx(8.2)
    assert summary.cold_p50_s == pytest.approx(8.0) and summary.warm_p50_s == pytest.approx(3.0)
    assert summary.cold_start_gap_s == pytest.approx(5.0)


def test_conclusion_names_the_removed_cold_starts() -> None:
    base = summarise("base", "f", [record("cold", 8.0), record("warm", 3.0)])
    provisioned = summarise("provisioned", "f", [record("provisioned", 3.0), record("provisioned", 3.1)])
    line = conclusion(base, provisioned)
    assert line.startswith("Provisioned concurrency removed all 1 cold starts")
    assert "p95 3.1 s instead of 8.0 s" in line and "5.0 s" in line


def test_conclusion_says_when_an_execution_failed() -> None:
    ok = summarise("base", "f", [record("warm", 3.0)])
    failed = summarise("provisioned", "f", [], "FAILED")
    assert "did not succeed" in conclusion(ok, failed)


def test_entries_are_cut_or_repeated_to_items_and_take_the_execution_sleep(tmp_path: Path) -> None:
    path = tmp_path / "input.json"
    path.write_text(json.dumps({"entries": [{"item": 1, "sleep": 3}, {"item": 2, "sleep": 3}]}))
    assert [e["item"] for e in load_entries(DemoConfig(input_path=path, items=5))] == [1, 2, 3, 4, 5]
    assert {e["sleep"] for e in load_entries(DemoConfig(input_path=path, execution_sleep=0.2))} == {0.2}
    assert len(load_entries(DemoConfig(input_path=ROOT / "events" / "sample-test-input.json"))) == 150


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "not found"), ("{oops", "not valid JSON"), ('{"entries": []}', "non-empty array"), ("[1]", "entries")],
)
def test_a_bad_input_file_is_a_user_error(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "input.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_entries(DemoConfig(input_path=path))


def test_parameters_keep_the_template_defaults_unless_asked() -> None:
    assert parameter_overrides(DemoConfig(), 150) == {"ProvisionedConcurrency": "150"}
    scaled = parameter_overrides(DemoConfig(cold_start_sleep=0.5, execution_sleep=0.2, provisioned_concurrency=7), 20)
    assert scaled == {"ProvisionedConcurrency": "7", "ColdStartSleep": "0.5", "ExecutionSleep": "0.2"}


@pytest.mark.parametrize(
    "argv",
    [["--items", "0"], ["--items", "x"], ["--cold-start-sleep", "-1"], ["--execution-sleep", "nan"],
     ["--provisioned-concurrency", "0"]],
)  # fmt: skip
def test_bad_flags_are_rejected(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["demo", *argv])
    assert caught.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_a_missing_template_is_reported_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["demo", "--template", str(tmp_path / "none.yaml"), "--input", str(ROOT / "events/sample-test-input.json")]
    )
    assert code == UserError("x").exit_code
    assert "template" in capsys.readouterr().err
