"""The flash-sale (b) and provisioned-concurrency spike (c) experiments against a running local cloud, driven by
direct Lambda invokes with API Gateway proxy events; phase lengths are compressed by the cloud's time scale.

Usage: ``python -m lambdalab.autoscaling.experiments flash-sale|pc-spike [--url URL] [--stack NAME] [--rate-factor F]``
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.config import Config

from lambdalab import constants
from lambdalab.awsclients import local_session

LOG = logging.getLogger(__name__)

FLASH_SALE = (
    ("before the sale", 120, 5),
    ("announcement", 120, 20),
    ("the sale", 180, 100),
    ("after the sale", 300, 5),
)
SPIKE = (
    ("warm-up", 120, 2), ("spike 30 rps", 120, 30), ("drop", 240, 1), ("spike 60 rps", 120, 60), ("drop", 240, 1),
    ("spike 90 rps", 120, 90), ("drop", 240, 1),
)  # fmt: skip


@dataclass
class PhaseResult:
    name: str
    seconds: float
    rate: float
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    capacity: dict[str, int] = field(default_factory=dict)


def api_event(
    method: str, resource: str, body: dict[str, Any] | None = None, query: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "resource": resource, "path": resource, "httpMethod": method, "headers": {"Content-Type": "application/json"},
        "queryStringParameters": query, "pathParameters": None, "isBase64Encoded": False,
        "body": json.dumps(body) if body is not None else None,
        "requestContext": {"resourcePath": resource, "httpMethod": method, "stage": "Prod"},
    }  # fmt: skip


class Driver:
    """Open-loop arrivals: ``rate`` requests per second, each a call of ``target`` in a worker thread."""

    def __init__(self, workers: int = 64) -> None:
        self.pool = concurrent.futures.ThreadPoolExecutor(workers)

    def run_phase(self, seconds: float, rate: float, targets: Sequence[Callable[[int], str]]) -> collections.Counter:
        counts: collections.Counter[str] = collections.Counter()
        lock = threading.Lock()
        futures = []
        started = time.monotonic()
        n = 0
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * rate) + 1
            while n < due:
                for target in targets:
                    futures.append(self.pool.submit(target, n))
                n += 1
            time.sleep(min(0.02, 1.0 / max(rate, 1.0)))
        for future in concurrent.futures.as_completed(futures, timeout=120):
            with lock:
                counts[future.result()] += 1
        return counts


def _clients(url: str) -> Any:
    session = local_session()
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"}, max_pool_connections=64, read_timeout=60)
    return lambda service: session.client(service, endpoint_url=url, config=config)


def _time_scale(url: str) -> float:
    with urllib.request.urlopen(f"{url}/_lambdalab/health", timeout=10) as response:  # noqa: S310 - local endpoint
        return float(json.load(response)["time_scale"])


def _invoke(lam: Any, name: str, qualifier: str | None, event: dict[str, Any], label: str) -> Callable[[int], str]:
    def call(_: int) -> str:
        kwargs: dict[str, Any] = {"FunctionName": name, "Payload": json.dumps(event).encode()}
        if qualifier:
            kwargs["Qualifier"] = qualifier
        try:
            result = lam.invoke(**kwargs)
        except lam.exceptions.TooManyRequestsException:
            return f"{label} 429 (Lambda throttled)"
        if result.get("FunctionError"):
            return f"{label} 502 (function error)"
        payload = json.loads(result["Payload"].read() or b"{}")
        return f"{label} {payload.get('statusCode')}"

    return call


def _cloudwatch_sum(cloudwatch: Any, namespace: str, metric: str, dims: list[dict[str, str]], since: datetime) -> float:
    points = cloudwatch.get_metric_statistics(
        Namespace=namespace, MetricName=metric, Dimensions=dims, StartTime=since,
        EndTime=datetime.now(UTC) + timedelta(minutes=1), Period=3600, Statistics=["Sum"],
    )["Datapoints"]  # fmt: skip
    return float(sum(p["Sum"] for p in points))


def _activities(aas: Any, namespace: str) -> list[str]:
    found = aas.describe_scaling_activities(ServiceNamespace=namespace)["ScalingActivities"]
    return [f"  {a['StartTime']:%H:%M:%S} {a['ResourceId']}: {a['Description']}" for a in reversed(found)]


def flash_sale(url: str, stack: str, rate_factor: float = 1.0) -> str:
    client = _clients(url)
    time_scale = _time_scale(url)
    outputs = _outputs(client("cloudformation"), stack)
    table = outputs["ProductsTableName"]
    lam, ddb = client("lambda"), client("dynamodb")
    browse = _invoke(
        lam, outputs["ProductsReadFunctionName"], None, api_event("GET", "/products", query={"limit": "10"}), "GET"
    )
    buy_event = api_event("POST", "/products", {"name": "flash-sale item", "price": 19.99, "stock": 1})
    buy = _invoke(lam, outputs["ProductsCreateFunctionName"], "live", buy_event, "POST")

    def mixed(n: int) -> str:
        return buy(n) if n % 10 < 3 else browse(n)  # 7 browse : 3 buy, as loadtests/flash-sale.yaml

    since = datetime.now(UTC) - timedelta(seconds=5)
    driver = Driver()
    lines = [f"flash sale against {table}: phases compressed by the time scale {time_scale:g}"]
    for name, seconds, rate in FLASH_SALE:
        counts = driver.run_phase(seconds * time_scale, rate * rate_factor, [mixed])
        throughput = ddb.describe_table(TableName=table)["Table"]["ProvisionedThroughput"]
        lines.append(
            f"{name:>16}: {seconds * time_scale:6.1f} s at {rate * rate_factor:g} rps  {dict(sorted(counts.items()))}"
            f"  table RCU {throughput['ReadCapacityUnits']} WCU {throughput['WriteCapacityUnits']}"
        )
    cloudwatch = client("cloudwatch")
    time.sleep(60 * time_scale * 1.5)  # the last period reaches CloudWatch
    dims = [{"Name": "TableName", "Value": table}]
    for metric in ("ReadThrottleEvents", "WriteThrottleEvents", "ThrottledRequests"):
        lines.append(f"{metric}: {_cloudwatch_sum(cloudwatch, 'AWS/DynamoDB', metric, dims, since):g}")
    lines.append("scaling activities (look for write/read capacity rising after the sale starts):")
    lines += _activities(client("application-autoscaling"), "dynamodb") or ["  none"]
    return "\n".join(lines)


def pc_spike(url: str, stack: str, rate_factor: float = 1.0) -> str:
    client = _clients(url)
    time_scale = _time_scale(url)
    outputs = _outputs(client("cloudformation"), stack)
    lam = client("lambda")
    aliases = {outputs["LatencyStandardFunctionName"]: "standard", outputs["LatencyCustomFunctionName"]: "custom"}
    targets = [_invoke(lam, name, alias, api_event("GET", f"/{alias}"), f"/{alias}") for name, alias in aliases.items()]
    since = datetime.now(UTC) - timedelta(seconds=5)
    driver = Driver()
    lines = [f"spike against /standard (Average) and /custom (Maximum): phases compressed by {time_scale:g}"]
    for name, seconds, rate in SPIKE:
        counts = driver.run_phase(seconds * time_scale, rate * rate_factor, targets)
        pcs = {
            alias: lam.get_provisioned_concurrency_config(FunctionName=fn, Qualifier=alias)[
                "RequestedProvisionedConcurrentExecutions"
            ]
            for fn, alias in aliases.items()
        }
        lines.append(f"{name:>14}: {rate * rate_factor:g} rps  {dict(sorted(counts.items()))}  provisioned {pcs}")
    time.sleep(60 * time_scale * 1.5)
    cloudwatch = client("cloudwatch")
    for fn, alias in aliases.items():
        dims = [{"Name": "FunctionName", "Value": fn}, {"Name": "Resource", "Value": f"{fn}:{alias}"}]
        spill = _cloudwatch_sum(cloudwatch, "AWS/Lambda", "ProvisionedConcurrencySpilloverInvocations", dims, since)
        served = _cloudwatch_sum(cloudwatch, "AWS/Lambda", "ProvisionedConcurrencyInvocations", dims, since)
        lines.append(f"/{alias}: {served:g} on provisioned concurrency, {spill:g} spilled over to on-demand")
    lines.append("scaling activities (the Maximum policy should act first and more):")
    lines += _activities(client("application-autoscaling"), "lambda") or ["  none"]
    return "\n".join(lines)


def _outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambdalab.autoscaling.experiments", description=__doc__)
    parser.add_argument("experiment", choices=["flash-sale", "pc-spike"])
    parser.add_argument("--url", default=f"http://{constants.DEFAULT_HOST}:{constants.DEFAULT_PORT}")
    parser.add_argument("--stack", default="lambda-concurrency-lab")
    parser.add_argument("--rate-factor", type=float, default=1.0, help="multiply every arrival rate (a 2-core host)")
    args = parser.parse_args(argv)
    run = flash_sale if args.experiment == "flash-sale" else pc_spike
    print(run(args.url, args.stack, args.rate_factor))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
