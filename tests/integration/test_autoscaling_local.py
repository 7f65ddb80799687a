"""Provisioned-concurrency target tracking on a live local cloud: on the same spike, the alias tracked by the Maximum
statistic gets provisioned concurrency sooner and spills over less than the one tracked by the predefined Average."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cloud import RunningCloud, local_cloud

pytestmark = pytest.mark.integration

STACK_DIR = Path(__file__).parent / "capacity"
STACK = "pcscaling"
TIME_SCALE = "0.05"  # 3 s metric periods
PERIOD_S = 3.0
SPIKE = 4  # concurrent requests at the start of every period, each sleeping 400 ms
PERIODS = 9


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    tmp = tmp_path_factory.mktemp("autoscaling")
    with local_cloud(STACK_DIR / "template.yaml", tmp, extra=["--stack-name", STACK, "--time-scale", TIME_SCALE]) as c:
        yield c


def test_maximum_statistic_scales_sooner_and_spills_over_less(cloud: RunningCloud) -> None:
    outputs = cloud.outputs(STACK)
    standard, custom = outputs["StandardName"], outputs["CustomName"]
    lam = cloud.client("lambda", retries=1)
    aliases = {standard: "standard", custom: "custom"}
    for name, alias in aliases.items():
        config = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=alias)
        assert config["RequestedProvisionedConcurrentExecutions"] == 1

    def invoke(name: str) -> int:
        return lam.invoke(FunctionName=name, Qualifier=aliases[name], Payload=b"{}")["StatusCode"]

    # WHEN the same spike hits both aliases at the start of every (compressed) minute
    first_scaled: dict[str, int] = {}
    with concurrent.futures.ThreadPoolExecutor(2 * SPIKE) as pool:
        for period in range(PERIODS):
            started = time.monotonic()
            statuses = list(pool.map(invoke, [standard, custom] * SPIKE))
            assert statuses == [200] * (2 * SPIKE)
            for name, alias in aliases.items():
                count = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=alias)[
                    "RequestedProvisionedConcurrentExecutions"
                ]
                if count > 1 and name not in first_scaled:
                    first_scaled[name] = period
            time.sleep(max(0.0, PERIOD_S - (time.monotonic() - started)))

    records = [r for r in cloud.records() if r["function_name"] in aliases and r["invocation_type"] != "DryRun"]
    spill = {name: sum(1 for r in records if r["function_name"] == name and r["spillover"]) for name in aliases}
    calls = {name: sum(1 for r in records if r["function_name"] == name) for name in aliases}
    final = {
        name: lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=alias)[
            "RequestedProvisionedConcurrentExecutions"
        ]
        for name, alias in aliases.items()
    }
    print(f"calls {calls} spillover {spill} first scaled in period {first_scaled} final {final}")
    # THEN the Maximum-statistic alias scaled out (after 3 periods above 0.7 plus the metric delay), and sooner
    assert custom in first_scaled, f"the Maximum-statistic alias never scaled out: {final}"
    assert first_scaled[custom] < first_scaled.get(standard, PERIODS), first_scaled
    assert final[custom] > final[standard]
    # AND it spilled over less, counted from the run's invocation records
    assert calls[custom] == calls[standard] == SPIKE * PERIODS
    assert spill[custom] < spill[standard], spill
    # AND the scale-out is a scaling activity of the lambda namespace
    activities = json.loads(
        cloud.aws("application-autoscaling", "describe-scaling-activities", "--service-namespace", "lambda").stdout
    )["ScalingActivities"]
    custom_activities = [a for a in activities if a["ResourceId"] == f"function:{custom}:custom"]
    assert custom_activities and all(a["StatusCode"] == "Successful" for a in custom_activities)
    assert custom_activities[-1]["Description"] == "Setting provisioned concurrency to 2."
    assert "custom-maximum-utilization" in custom_activities[-1]["Cause"]
