"""The flash-sale and provisioned-concurrency spike experiments through the real front door: the repository's
Artillery scenarios against the local API, phases compressed by the cloud's time scale, arrival rates unchanged.

Usage (with ``lambdalab up --time-scale 0.05`` running the lab template)::

    python -m lambdalab.autoscaling.experiments flash-sale [--url URL] [--stack NAME] [--scenario FILE]
    python -m lambdalab.autoscaling.experiments pc-spike   [--url URL] [--stack NAME] [--scenario FILE]

Per phase it prints the HTTP status counts and latency percentiles (the API's access log), the table capacity or the
aliases' provisioned concurrency (sampled twice a metric period), Lambda throttles by reason, spillovers to
on-demand, cold starts, and the scaling activities, with a line when this machine's limits made requests wait
(those waits are local, not Lambda's). ``--rate-factor`` multiplies every rate, as an explicit choice only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.config import Config

from lambdalab import constants
from lambdalab.awsclients import local_session
from lambdalab.clock import Clock, EpochClock
from lambdalab.errors import UserError
from lambdalab.loadtest import PhaseSummary, load_scenario, run_artillery, shortened, summarize

LOG = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent.parent
SCENARIOS = {"flash-sale": ROOT / "loadtests" / "flash-sale.yaml", "pc-spike": ROOT / "loadtests" / "spike.yaml"}


def _clients(url: str) -> Callable[[str], Any]:
    session = local_session()
    config = Config(retries={"total_max_attempts": 2, "mode": "standard"}, read_timeout=60)
    return lambda service: session.client(service, endpoint_url=url, config=config)


def _health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/_lambdalab/health", timeout=10) as response:  # noqa: S310 - local endpoint
        health: dict[str, Any] = json.load(response)
        return health


def _outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


class Sampler:
    """Reads a capacity every `interval_s` in a thread: [(epoch, {name: value})]."""

    def __init__(self, read: Callable[[], dict[str, int]], interval_s: float, epoch: Clock) -> None:
        self._read = read
        self._epoch = epoch
        self._interval = interval_s
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capacity-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a failed read leaves a gap, never stops the experiment
                self.samples.append((self._epoch.now(), self._read()))
            self._stop.wait(self._interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def at(self, when: float) -> dict[str, int]:
        before = [values for at, values in self.samples if at <= when]
        return before[-1] if before else (self.samples[0][1] if self.samples else {})


def _activities(aas: Any, namespace: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = aas.describe_scaling_activities(ServiceNamespace=namespace)["ScalingActivities"]
    return list(reversed(found))


def _phase_lines(summaries: list[PhaseSummary], sampler: Sampler, label: str) -> list[str]:
    lines = []
    for s in summaries:
        phase = s.window.phase
        rate = f"{phase.arrival_rate:g}" + (f"→{phase.ramp_to:g}" if phase.ramp_to is not None else "")
        statuses = " ".join(f"{code} x{n}" for code, n in sorted(s.statuses.items())) or "no requests"
        p50, p99 = s.p50(), s.percentile(0.99)
        latency = f"p50 {p50:.0f} ms p99 {p99:.0f} ms" if p50 is not None and p99 is not None else "-"
        capacity = " ".join(f"{k} {v}" for k, v in sampler.at(s.window.end).items())
        extra = []
        if s.throttles:
            extra.append("throttled " + ", ".join(f"{n} x {reason}" for reason, n in s.throttles.items()))
        if s.spillovers:
            extra.append(
                "spilled over " + ", ".join(f"{n} on {res.rsplit(':', 1)[-1]}" for res, n in s.spillovers.items())
            )
        if s.cold_starts:
            extra.append(f"{s.cold_starts} cold starts")
        if s.local_waits or s.local_errors:
            extra.append(f"this machine: {s.local_waits} calls waited, {s.local_errors} local errors")
        lines.append(
            f"{phase.name:>16} {s.window.end - s.window.start:6.1f} s at {rate:>7} /s  {statuses:<28} {latency:<24}"
            f" {label}: {capacity}" + ("  [" + "; ".join(extra) + "]" if extra else "")
        )
    return lines


def _activity_lines(activities: list[dict[str, Any]], summaries: list[PhaseSummary]) -> list[str]:
    lines = []
    for activity in activities:
        started = activity["StartTime"]
        epoch = started.timestamp() if hasattr(started, "timestamp") else float(started)
        phase = next((s.window.phase.name for s in summaries if s.window.start <= epoch < s.window.end), "after")
        lines.append(f"  [{phase}] {activity['ResourceId']}: {activity['Description']}")
    return lines or ["  none"]


def run_experiment(
    name: str, url: str, stack: str, scenario: Path | None = None, rate_factor: float = 1.0, *, epoch: Clock
) -> str:
    """`epoch`: the experiment's one clock (made by `main`), for the phase windows, the capacity samples and the
    CloudWatch query window."""
    health = _health(url)
    time_scale = float(health["time_scale"])
    run_dir = Path(health["run_dir"]) if health.get("run_dir") else None
    if run_dir is None or not run_dir.is_dir():
        raise UserError("the local cloud's run directory is not readable here (run the experiment on its machine)")
    client = _clients(url)
    outputs = _outputs(client("cloudformation"), stack)
    document = shortened(load_scenario(scenario or SCENARIOS[name]), factor=time_scale)
    if rate_factor != 1.0:
        for phase in document["config"]["phases"]:
            for key in ("arrivalRate", "rampTo"):
                if key in phase:
                    phase[key] = round(float(phase[key]) * rate_factor, 3)
    period_s = 60.0 * time_scale
    lam, ddb = client("lambda"), client("dynamodb")
    if name == "flash-sale":
        table = outputs["ProductsTableName"]

        def read() -> dict[str, int]:
            throughput = ddb.describe_table(TableName=table)["Table"].get("ProvisionedThroughput") or {}
            return {
                "RCU": int(throughput.get("ReadCapacityUnits", 0)),
                "WCU": int(throughput.get("WriteCapacityUnits", 0)),
            }

        label, namespace = "table", "dynamodb"
    else:
        aliases = {"standard": outputs["LatencyStandardFunctionName"], "custom": outputs["LatencyCustomFunctionName"]}

        def read() -> dict[str, int]:
            return {
                f"/{alias}": int(
                    lam.get_provisioned_concurrency_config(FunctionName=fn, Qualifier=alias)[
                        "RequestedProvisionedConcurrentExecutions"
                    ]
                )
                for alias, fn in aliases.items()
            }

        label, namespace = "provisioned", "lambda"
    since = datetime.fromtimestamp(epoch.now(), UTC) - timedelta(seconds=5)
    with tempfile.TemporaryDirectory() as tmp, Sampler(read, max(0.5, period_s / 2), epoch) as sampler:
        run = run_artillery(document, outputs["ApiUrl"], Path(tmp), epoch=epoch, root=ROOT)
        time.sleep(max(1.0, 1.5 * period_s))  # the last period's metrics and scaling decisions land
    summaries = summarize(run_dir, run)
    rates = "" if rate_factor == 1.0 else f", rates x {rate_factor:g} (not AWS's rates)"
    lines = [
        f"{name}: {SCENARIOS[name].name if scenario is None else scenario.name} at its rates{rates}, phases compressed "
        f"by the time scale {time_scale:g} (metric periods {period_s:g} s instead of 60 s)",
        *_phase_lines(summaries, sampler, label),
        f"Artillery: {run.counters().get('http.requests', 0)} requests, latency {run.latency_ms()}",
    ]
    until = datetime.fromtimestamp(epoch.now(), UTC) + timedelta(minutes=1)
    if name == "flash-sale":
        lines += _dynamodb_throttles(client("cloudwatch"), outputs["ProductsTableName"], since, until)
    else:
        lines += _spillovers(client("cloudwatch"), outputs, since, until)
    lines.append(f"scaling activities ({namespace}):")
    lines += _activity_lines(_activities(client("application-autoscaling"), namespace), summaries)
    waits = sum(s.local_waits for s in summaries)
    if waits:
        lines.append(
            f"note: {waits} calls waited for this machine (CPU for INIT or the invoke); those waits are local, not "
            "Lambda's, and are not in the INIT and duration figures"
        )
    return "\n".join(lines)


def _cloudwatch_sum(
    cloudwatch: Any, namespace: str, metric: str, dims: list[dict[str, str]], *, since: datetime, until: datetime
) -> float:
    points = cloudwatch.get_metric_statistics(
        Namespace=namespace, MetricName=metric, Dimensions=dims, StartTime=since,
        EndTime=until, Period=3600, Statistics=["Sum"],
    )["Datapoints"]  # fmt: skip
    return float(sum(p["Sum"] for p in points))


def _dynamodb_throttles(cloudwatch: Any, table: str, since: datetime, until: datetime) -> list[str]:
    dims = [{"Name": "TableName", "Value": table}]
    totals = {
        m: _cloudwatch_sum(cloudwatch, "AWS/DynamoDB", m, dims, since=since, until=until)
        for m in ("ReadThrottleEvents", "WriteThrottleEvents")
    }
    return [f"DynamoDB (CloudWatch): {', '.join(f'{m} {v:g}' for m, v in totals.items())}"]


def _spillovers(cloudwatch: Any, outputs: dict[str, str], since: datetime, until: datetime) -> list[str]:
    lines = []
    for alias, key in (("standard", "LatencyStandardFunctionName"), ("custom", "LatencyCustomFunctionName")):
        fn = outputs[key]
        dims = [{"Name": "FunctionName", "Value": fn}, {"Name": "Resource", "Value": f"{fn}:{alias}"}]
        spill = _cloudwatch_sum(
            cloudwatch, "AWS/Lambda", "ProvisionedConcurrencySpilloverInvocations", dims, since=since, until=until
        )
        served = _cloudwatch_sum(
            cloudwatch, "AWS/Lambda", "ProvisionedConcurrencyInvocations", dims, since=since, until=until
        )
        lines.append(f"/{alias} (CloudWatch): {served:g} on provisioned concurrency, {spill:g} spilled over")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambdalab.autoscaling.experiments", description=__doc__)
    parser.add_argument("experiment", choices=sorted(SCENARIOS))
    parser.add_argument("--url", default=f"http://{constants.DEFAULT_HOST}:{constants.DEFAULT_PORT}")
    parser.add_argument("--stack", default="lambda-concurrency-lab")
    parser.add_argument("--scenario", type=Path, default=None, help="another Artillery scenario (default: loadtests/)")
    parser.add_argument("--rate-factor", type=float, default=1.0, help="multiply every rate (an explicit choice)")
    args = parser.parse_args(argv)
    try:
        # This tool drives a running local cloud from outside: its own composition root, with its one clock here.
        epoch = EpochClock()
        print(run_experiment(args.experiment, args.url, args.stack, args.scenario, args.rate_factor, epoch=epoch))
    except UserError as exc:
        print(f"error: {exc}")
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
