"""`lambdalab demo` end to end, scaled down: the numbers it prints are checked against the run records it wrote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lambdalab.awslambda.runtime.interpreters import find_interpreter
from tests.support.cloud import terminate_with_parent

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ITEMS = 50  # more than the inline Map's 40, so the base machine reuses environments too


def overlap(records: list[dict[str, Any]]) -> int:
    edges = []
    for r in records:
        edges += [(r["invoke_start"], 1), (r["invoke_end"], -1)]
    running = peak = 0
    for _, step in sorted(edges):
        running += step
        peak = max(peak, running)
    return peak


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    args = [
        str(BIN / "lambdalab"), "demo", "--items", str(ITEMS), "--cold-start-sleep", "0.5",
        "--execution-sleep", "0.2", "--run-root", str(tmp / "runs"),
    ]  # fmt: skip
    began = time.monotonic()
    process = subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=terminate_with_parent,  # noqa: PLW1509 -- one prctl call, see tests.support.cloud
    )
    try:
        stdout, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError("lambdalab demo did not finish within 120 s") from None
    elapsed = time.monotonic() - began
    leftovers = True
    try:
        os.killpg(process.pid, 0)  # anything still in the demo's process group?
    except ProcessLookupError:
        leftovers = False
    if leftovers:
        os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, stderr[-4000:]
    assert not leftovers, "the demo left processes behind"
    run_dir = Path(next(line for line in stdout.splitlines() if line.startswith("run directory: ")).split(": ", 1)[1])
    return {
        "stdout": stdout,
        "run_dir": run_dir,
        "elapsed": elapsed,
        "summary": json.loads((run_dir / "demo.json").read_text()),
    }


def machine_records(demo: dict[str, Any], machine: str) -> list[dict[str, Any]]:
    function = demo["summary"]["machines"][machine]["function"]
    return [r for r in lines(demo["run_dir"] / "invocations.jsonl") if r["function_name"] == function]


def test_demo_finishes_quickly_and_prints_the_comparison(demo: dict[str, Any]) -> None:
    assert demo["elapsed"] < 120
    out = demo["stdout"]
    for words in ("base (on demand)", "provisioned", "cold starts", "p95 duration", "cold-start gap", "report: "):
        assert words in out
    assert "Provisioned concurrency removed all 40 cold starts" in out
    assert (demo["run_dir"] / "report.html").is_file()
    # the lab's functions are python3.13: the demo says which interpreter served them (3.13 wherever it is installed)
    found = find_interpreter("python3.13")
    assert f"python3.13 functions ran on Python {'.'.join(map(str, found.version))} ({found.executable})" in out
    assert demo["summary"]["interpreters"] == [line for line in out.splitlines() if " functions ran on Python " in line]


def test_provisioned_machine_has_no_cold_start(demo: dict[str, Any]) -> None:
    records = machine_records(demo, "provisioned")
    ran = [r for r in records if r["start_kind"]]
    assert len(ran) == ITEMS
    assert {r["start_kind"] for r in ran} == {"provisioned"}
    assert {r["qualifier"] for r in ran} == {"live"}
    assert demo["summary"]["machines"]["provisioned"]["cold_starts"] == 0


def test_base_cold_starts_equal_the_environments_it_created(demo: dict[str, Any]) -> None:
    records = [r for r in machine_records(demo, "base") if r["start_kind"]]
    function = demo["summary"]["machines"]["base"]["function"]
    created = {
        e["environment_id"]
        for e in lines(demo["run_dir"] / "environments.jsonl")
        if e["function_name"] == function and e["event"] == "created"
    }
    cold = [r for r in records if r["start_kind"] == "cold"]
    assert len(records) == ITEMS
    assert len(cold) == len(created) == 40  # the inline Map runs 40 at once; the other 10 reuse warm environments
    assert {r["environment_id"] for r in cold} == created
    assert overlap(records) <= 40
    summary = demo["summary"]["machines"]["base"]
    assert (summary["calls"], summary["cold_starts"], summary["warm_starts"]) == (ITEMS, 40, ITEMS - 40)


def test_cold_calls_pay_init_and_warm_ones_do_not(demo: dict[str, Any]) -> None:
    base = [r for r in machine_records(demo, "base") if r["start_kind"]]
    e2e = {kind: sorted(r["responded_at"] - r["received_at"] for r in base if r["start_kind"] == kind)
           for kind in ("cold", "warm")}  # fmt: skip
    # INIT sleeps 0.5 s and the handler 0.2 s: a cold call takes at least both and records its INIT; a warm one
    # records none, and is the faster (bounds only from below: a loaded machine makes everything slower)
    assert min(e2e["cold"]) >= 0.7
    assert all(r["init_duration_s"] >= 0.5 for r in base if r["start_kind"] == "cold")
    assert all(r["init_duration_s"] is None for r in base if r["start_kind"] == "warm")
    assert e2e["warm"][len(e2e["warm"]) // 2] < e2e["cold"][len(e2e["cold"]) // 2]
    summary = demo["summary"]["machines"]["base"]
    assert summary["cold_start_gap_s"] == pytest.approx(
        e2e["cold"][(len(e2e["cold"]) + 1) // 2 - 1] - e2e["warm"][(len(e2e["warm"]) + 1) // 2 - 1]
    )
