"""`lambdalab traces` against a live local cloud: the X-Ray report finds exactly the cold starts the run records say
happened."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.cloud import BIN, RunningCloud, local_cloud

pytestmark = pytest.mark.integration

LAB = Path(__file__).parent / "lab" / "template.yaml"
STACK = "lambdalab-traces"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("traces")
    with local_cloud(LAB, tmp, extra=["--stack-name", STACK, "--time-scale", "0.01"]) as running:
        yield running


def report(cloud: RunningCloud, *args: str) -> dict:
    result = subprocess.run(
        [str(BIN / "lambdalab"), "traces", "--json", *args],
        env=cloud.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_xray_report_matches_the_invocation_records(cloud: RunningCloud) -> None:
    # GIVEN a traced function called 3 at once (3 cold starts), then 3 times one after the other (warm)
    name = cloud.outputs(STACK)["ProbeName"]
    client = cloud.client("lambda")
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda _: client.invoke(FunctionName=name, Payload=b'{"sleep": 0.3}'), range(3)))
    for _ in range(3):
        client.invoke(FunctionName=name, Payload=b"{}")
    records = cloud.wait_records(lambda rs: sum(r["function_name"] == name for r in rs) >= 6, what="6 records")
    mine = [r for r in records if r["function_name"] == name]
    cold_in_records = {r["request_id"] for r in mine if r["start_kind"] == "cold"}
    assert len(cold_in_records) == 3

    # WHEN the report is read from the local X-Ray through the API (the same code reads AWS)
    def from_xray() -> dict:
        return report(cloud, "--since", "10m", "--function", name)

    got = from_xray()
    for _ in range(50):
        if got["totals"]["invocations"] >= 6:
            break
        got = from_xray()
    # THEN it finds the same 6 calls and exactly the same 3 cold starts
    assert got["source"]["kind"] == "xray"
    assert got["totals"]["invocations"] == 6
    assert got["totals"]["cold_starts"] == 3
    cold_in_traces = {i["request_id"] for i in got["invocations"] if i["start_kind"] == "cold"}
    assert cold_in_traces == cold_in_records
    # AND the run directory gives the same answer with real environment ids
    local = report(cloud, "--run-dir", str(cloud.run_dir), "--function", name)
    assert local["totals"]["cold_starts"] == 3
    assert {e["id"] for e in local["environments"]} == {r["environment_id"] for r in mine}
