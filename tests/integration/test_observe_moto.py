"""Metrics and traces end to end against moto's CloudWatch and X-Ray, in process on a free 127.0.0.1 port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from lambdalab.clock import VirtualClock
from lambdalab.constants import DEFAULT_ACCOUNT_ID, FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY
from lambdalab.observe.metrics import ConcurrencySnapshot, MetricsAggregator, MetricsPublisher, ProvisionedState
from lambdalab.observe.model import InvocationRecord
from lambdalab.observe.xray import SegmentForwarder, XRayDaemon, lambda_segments, plan_trace

pytestmark = pytest.mark.integration

REGION = "us-east-1"
LIVE = [{"Name": "FunctionName", "Value": "orders"}, {"Name": "Resource", "Value": "orders:live"}]


@pytest.fixture
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def client(service: str, url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=FAKE_ACCESS_KEY_ID,
        aws_secret_access_key=FAKE_SECRET_ACCESS_KEY,
    )


def record(received_at: float, **overrides: Any) -> InvocationRecord:
    fields: dict[str, Any] = {
        "request_id": "c6af9ac6-7b61-11e6-9a41-93e812345678",
        "function_name": "orders",
        "function_arn": f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT_ID}:function:orders:live",
        "qualifier": "live",
        "version": "3",
        "invocation_type": "RequestResponse",
        "outcome": "success",
        "start_kind": "provisioned",
        "spillover": False,
        "environment_id": "env-1",
        "received_at": received_at,
        "init_start": None,
        "init_duration_s": None,
        "invoke_start": received_at + 0.002,
        "invoke_end": received_at + 0.052,
        "duration_s": 0.05,
        "billed_duration_ms": 50,
        "memory_mb": 128,
        "max_memory_used_mb": 50,
        "tracing_active": True,
    }
    fields.update(overrides)
    return InvocationRecord(**fields)


def test_published_metrics_read_back_with_get_metric_statistics(moto_url: str):
    # GIVEN a minute, ten minutes ago, with 4 provisioned environments on orders:live: busy peaks at 3, 3 calls
    minute = (time.time() // 60) * 60 - 600
    agg = MetricsAggregator(VirtualClock(minute))
    for at, busy in ((minute + 1, 1), (minute + 2, 3), (minute + 3, 2), (minute + 4, 0)):
        agg.sample_concurrency(
            ConcurrencySnapshot(
                at=at,
                account_concurrent=busy,
                unreserved_concurrent=0,
                functions={"orders": busy},
                provisioned={("orders", "live"): ProvisionedState(busy=busy, allocated=4)},
            )
        )
    for n in range(3):
        agg.record_invocation(record(minute + 1 + n))
    cloudwatch = client("cloudwatch", moto_url)

    # WHEN the publisher flushes it to CloudWatch
    publisher = MetricsPublisher(agg, cloudwatch, interval_s=60)
    assert publisher.publish_once(final=True) > 0
    assert publisher.failures == 0

    # THEN the Maximum of the utilisation is the peak, its Average the mean of the samples, Sum the call count
    def stats(name: str, statistics: list[str]) -> list[dict[str, Any]]:
        return cloudwatch.get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName=name,
            Dimensions=LIVE,
            StartTime=datetime.fromtimestamp(minute - 60, UTC),
            EndTime=datetime.fromtimestamp(minute + 120, UTC),
            Period=60,
            Statistics=statistics,
        )["Datapoints"]

    (utilization,) = stats("ProvisionedConcurrencyUtilization", ["Maximum", "Average"])
    assert utilization["Maximum"] == pytest.approx(0.75)
    assert utilization["Average"] == pytest.approx((0.25 + 0.75 + 0.5 + 0.0) / 4)
    assert utilization["Timestamp"] == datetime.fromtimestamp(minute, UTC)
    (invocations,) = stats("Invocations", ["Sum"])
    assert invocations["Sum"] == 3
    (pc_invocations,) = stats("ProvisionedConcurrencyInvocations", ["Sum"])
    assert pc_invocations["Sum"] == 3
    (duration,) = stats("Duration", ["Average", "Maximum"])
    assert duration["Maximum"] == pytest.approx(50.0)


SDK_CHILD = textwrap.dedent(
    """
    from aws_xray_sdk.core import xray_recorder

    with xray_recorder.in_subsegment("handler-work") as sub:
        sub.put_annotation("stage", "lab")
    """
)


def test_lambda_segments_and_sdk_subsegments_read_back_from_xray(moto_url: str, tmp_path: Path):
    xray = client("xray", moto_url)
    forwarder = SegmentForwarder(xray, flush_interval_s=0.05)
    forwarder.start()
    daemon = XRayDaemon(sink=forwarder)
    daemon.start()
    try:
        # GIVEN a cold, actively traced invocation whose plan was made before the invoke
        now = time.time()
        plan = plan_trace(None, tracing_active=True, sampled=True, now=now)
        rec = record(
            now - 1.0,
            start_kind="cold",
            init_start=now - 0.99,
            init_duration_s=0.3,
            invoke_start=now - 0.68,
            invoke_end=now - 0.6,
            duration_s=0.08,
            trace_id=plan.trace_id,
        )
        # WHEN the function's own X-Ray SDK, in Lambda mode, records a subsegment through the daemon ...
        child = tmp_path / "child.py"
        child.write_text(SDK_CHILD)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "LAMBDA_TASK_ROOT": str(tmp_path),
            "_X_AMZN_TRACE_ID": plan.environment_header,
            "AWS_XRAY_DAEMON_ADDRESS": daemon.address,
        }
        done = subprocess.run(
            [sys.executable, str(child)], check=False, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        # ... and the service sends its own segments through the same sink
        for doc in lambda_segments(rec, plan, region=REGION, account_id=DEFAULT_ACCOUNT_ID):
            forwarder.put(doc)
        deadline = time.monotonic() + 10
        while daemon.received < 1 and time.monotonic() < deadline:  # bounded: the SDK's UDP datagram
            time.sleep(0.02)
        assert daemon.received == 1
    finally:
        daemon.stop()
        forwarder.stop()
    assert forwarder.forwarded == 3
    assert forwarder.rejected == 0

    # THEN X-Ray has the trace, with Lambda's two segments and the SDK's subsegment under Invocation
    summaries = xray.get_trace_summaries(
        StartTime=datetime.now(UTC) - timedelta(minutes=5), EndTime=datetime.now(UTC) + timedelta(minutes=5)
    )["TraceSummaries"]
    assert plan.trace_id in [s["Id"] for s in summaries]
    traces = xray.batch_get_traces(TraceIds=[plan.trace_id])["Traces"]
    documents = [json.loads(s["Document"]) for s in traces[0]["Segments"]]
    by_origin = {d.get("origin", d.get("type")): d for d in documents}
    assert set(by_origin) == {"AWS::Lambda", "AWS::Lambda::Function", "subsegment"}
    function = by_origin["AWS::Lambda::Function"]
    assert function["parent_id"] == by_origin["AWS::Lambda"]["id"]
    assert [s["name"] for s in function["subsegments"]] == ["Initialization", "Invocation", "Overhead"]
    invocation = function["subsegments"][1]
    sdk = by_origin["subsegment"]
    assert sdk["name"] == "handler-work"
    assert sdk["parent_id"] == invocation["id"]
    assert sdk["trace_id"] == plan.trace_id
    assert sdk["annotations"] == {"stage": "lab"}
