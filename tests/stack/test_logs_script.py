"""scripts/logs.sh against a real local CloudWatch Logs endpoint, with the project's AWS CLI (v1)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdalab import constants
from tests.unit.logs.conftest import Served

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")


@pytest.fixture
def endpoint() -> Iterator[Served]:
    server = Served()
    server.start()
    yield server
    server.stop()


def run(endpoint: Served, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=endpoint.url,
        AWS_ACCESS_KEY_ID=constants.FAKE_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=constants.FAKE_SECRET_ACCESS_KEY,
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        PATH=f"{ROOT / '.venv' / 'bin'}:{env['PATH']}",
    )
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "logs.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_count_streams_tail_and_cold(endpoint: Served) -> None:
    t = int(time.time() * 1000)
    for index, init in enumerate(("\tInit Duration: 100.00 ms", "", "\tInit Duration: 90.00 ms")):
        report = f"REPORT RequestId: r{index}\tDuration: 1.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\t"
        report += f"Max Memory Used: 40 MB{init}\t\n"
        endpoint.logs.writer.put(
            "/aws/lambda/fn", f"stream-{index % 2}", [(t + index, f"START r{index}\n"), (t + index, report)]
        )
    endpoint.logs.writer.flush()
    assert run(endpoint, "count", "fn").strip() == "2"
    assert [line.split("\t")[0] for line in run(endpoint, "streams", "fn").splitlines()] == ["stream-0", "stream-1"]
    assert "stream-1 START r1" in run(endpoint, "tail", "fn")
    assert run(endpoint, "cold", "fn").splitlines() == ["invocations 3", "cold starts 2"]
