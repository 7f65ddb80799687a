"""The flash sale at its real rates, through the local API with Artillery, against the lab template's defaults.

    .venv/bin/python bench/bench_flash_sale.py --phases 10,10,30,10

`lambdalab up` runs the lab's template.yaml in its own process; the pinned Artillery runs loadtests/flash-sale.yaml
with each phase's duration replaced (arrival rates unchanged: 5 → 20 → 100 → 5 per second). With the table's 300 s
of burst not yet spent, AWS would serve nearly every request with a 2xx. Reports:

* the 2xx share and every non-2xx by cause, from Artillery and from the API's access log joined to the Lambda run
  records (throttles by reason, function errors, local errors — this machine's, never Lambda's);
* latency p50/p95/p99 as Artillery saw it, and of warm 2xx requests (the API access log's latency of requests whose
  Lambda call reused an environment);
* INIT p50 of the cold starts during the storm divided by the same function's INIT measured alone on this machine
  (three cold starts one at a time, on an idle cloud, before the load);
* how many INITs waited for this machine (the CPU gate, the run queue) and how long;
* CPU seconds of the local cloud and of Artillery.

Prints a table and a JSON line for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CpuMeter, local_cloud, percentile
from lambdalab import constants
from lambdalab.observe.records import read_jsonl

ROOT = Path(__file__).resolve().parent.parent
ARTILLERY = ROOT / "node_modules" / ".bin" / "artillery"
LIST_EVENT = {
    "httpMethod": "GET",
    "resource": "/products",
    "path": "/products",
    "queryStringParameters": {"limit": "1"},
}


def client(url: str, service: str) -> Any:
    return boto3.session.Session().client(
        service,
        endpoint_url=url,
        region_name=constants.DEFAULT_REGION,
        aws_access_key_id=constants.FAKE_ACCESS_KEY_ID,
        aws_secret_access_key=constants.FAKE_SECRET_ACCESS_KEY,
        aws_session_token=constants.FAKE_SESSION_TOKEN,
        config=Config(retries={"total_max_attempts": 1}, read_timeout=120),
    )


def stack_outputs(url: str, stack: str) -> dict[str, str]:
    described = client(url, "cloudformation").describe_stacks(StackName=stack)
    return {o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0].get("Outputs", [])}


def inits_alone(url: str, run_dir: Path, function: str, count: int) -> list[float]:
    """`count` cold starts of `function`, one at a time on an idle cloud: each after its idle environments retire."""
    lam = client(url, "lambda")
    for i in range(count):
        lam.update_function_configuration(FunctionName=function, Description=f"bench cold start {i}")
        lam.invoke(FunctionName=function, Payload=json.dumps(LIST_EVENT).encode())["Payload"].read()
    time.sleep(1.0)  # the run directory is flushed every 0.25 s
    records = [r for r in read_jsonl(run_dir / "invocations.jsonl") if r["function_name"] == function]
    return [r["init_duration_s"] for r in records if r["start_kind"] == "cold" and r["init_duration_s"]][-count:]


def scenario_with(phases: list[float], source: Path, target: Path) -> None:
    """The scenario with each phase's duration replaced, everything else (rates, flows, weights) as it is."""
    document = yaml.safe_load(source.read_text())
    configured = document["config"]["phases"]
    if len(phases) != len(configured):
        raise SystemExit(f"--phases has {len(phases)} durations; {source.name} has {len(configured)} phases")
    for phase, duration in zip(configured, phases, strict=True):
        phase["duration"] = duration
    target.write_text(yaml.safe_dump(document, sort_keys=False))


def run_artillery(scenario: Path, api_url: str, report: Path) -> tuple[subprocess.Popen[bytes], float]:
    env = dict(os.environ, ARTILLERY_DISABLE_TELEMETRY="true")
    command = [str(ARTILLERY), "run", str(scenario), "--target", api_url, "--output", str(report), "--quiet"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL), time.time()


def analyse(run_dir: Path, began: float, report: dict[str, Any], alone: dict[str, list[float]]) -> dict[str, Any]:
    aggregate = report["aggregate"]
    counters: dict[str, int] = aggregate.get("counters", {})
    summaries: dict[str, dict[str, float]] = aggregate.get("summaries", {})
    codes = {k.removeprefix("http.codes."): v for k, v in counters.items() if k.startswith("http.codes.")}
    errors = {k.removeprefix("errors."): v for k, v in counters.items() if k.startswith("errors.")}
    requests = counters.get("http.requests", 0)
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    latency = summaries.get("http.response_time", {})

    records = [r for r in read_jsonl(run_dir / "invocations.jsonl") if r["received_at"] >= began]
    by_request = {r["request_id"]: r for r in records}
    access = [a for a in read_jsonl(run_dir / "api-access.jsonl")]
    causes: collections.Counter[str] = collections.Counter()
    warm_ok: list[float] = []
    for entry in access:
        record = by_request.get(entry.get("integrationRequestId") or "")
        status = int(entry["status"])
        if 200 <= status < 300:
            if record is not None and record["start_kind"] in ("warm", "provisioned"):
                warm_ok.append(float(entry["responseLatency"]))
            continue
        if record is None:
            causes[f"{status} (no Lambda call)"] += 1
        elif record["outcome"] == "throttled":
            causes[f"{status} Lambda throttle {record['throttle_reason']}"] += 1
        else:
            causes[f"{status} {record['outcome']} {record.get('error_type') or ''}".strip()] += 1
    local_errors = [r for r in records if r["outcome"] == "local_error"]
    aws_local = [r for r in records if r.get("error_type") in ("ServiceException", "Runtime.ExitError")]
    ratios: dict[str, Any] = {}
    waits = [r for r in records if r["start_kind"] == "cold" and (r.get("init_local_wait_s") or 0) > 0.001]
    for function, samples in alone.items():
        storm = [
            r["init_duration_s"]
            for r in records
            if r["function_name"] == function and r["start_kind"] == "cold" and r["init_duration_s"]
        ]
        alone_p50 = statistics.median(samples) if samples else None
        storm_p50 = statistics.median(storm) if storm else None
        ratios[function] = {
            "alone_p50_ms": alone_p50 * 1000 if alone_p50 else None,
            "storm_p50_ms": storm_p50 * 1000 if storm_p50 else None,
            "storm_cold_starts": len(storm),
            "ratio": storm_p50 / alone_p50 if storm_p50 and alone_p50 else None,
        }
    return {
        "requests": requests,
        "codes": codes,
        "client_errors": errors,
        "ok_share": ok / requests if requests else 0.0,
        "latency_ms": {q: latency.get(q) for q in ("p50", "p95", "p99", "max")},
        "warm_ok_latency_ms": {
            "p50": statistics.median(warm_ok) if warm_ok else None,
            "p99": percentile(warm_ok, 0.99) if warm_ok else None,
            "n": len(warm_ok),
        },
        "non_2xx_causes": dict(causes.most_common()),
        "invocations": len(records),
        "outcomes": dict(collections.Counter(r["outcome"] for r in records).most_common()),
        "local_errors": len(local_errors),
        "aws_error_types_of_local_origin": len([r for r in aws_local if r["outcome"] == "local_error"]),
        "service_or_exit_errors": len(aws_local),
        "init_ratio": ratios,
        "inits_that_waited_locally": len(waits),
        "local_wait_s": {
            "init_total": sum(r.get("init_local_wait_s") or 0 for r in records),
            "init_p50": statistics.median([r["init_local_wait_s"] for r in waits]) if waits else 0.0,
            "all_total": sum(r.get("local_wait_s") or 0 for r in records),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", default="10,10,30,10", help="phase durations in seconds (rates unchanged)")
    parser.add_argument("--scenario", type=Path, default=ROOT / "loadtests" / "flash-sale.yaml")
    parser.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    parser.add_argument("--alone", type=int, default=3, help="cold starts measured alone before the load")
    parser.add_argument("--lambdalab", type=Path, default=None, help="another lambdalab to measure (an old commit)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run directory and Artillery's report here")
    args = parser.parse_args()
    if not ARTILLERY.exists():
        raise SystemExit("Artillery is not installed: run `make node-deps` (npm ci) first")
    phases = [float(p) for p in args.phases.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "flash-sale.yaml"
        scenario_with(phases, args.scenario, scenario)
        run_root = args.keep if args.keep is not None else Path(tmp) / "runs"
        up_args = ["--template", str(args.template), "--run-root", str(run_root)]
        with local_cloud(up_args, cwd=args.template.parent, lambdalab=args.lambdalab) as cloud:
            outputs = stack_outputs(cloud.url, "lambda-concurrency-lab")
            functions = [outputs["ProductsReadFunctionName"]]
            alone = {fn: inits_alone(cloud.url, cloud.run_dir, fn, args.alone) for fn in functions}
            report_path = (args.keep if args.keep is not None else Path(tmp)) / "report.json"
            meter = CpuMeter({"local cloud": cloud.process.pid})
            meter.start()
            children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            artillery, began = run_artillery(scenario, outputs["ApiUrl"], report_path)
            code = artillery.wait(timeout=sum(phases) + 120)
            children_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # Artillery, reaped: its whole CPU
            wall = time.time() - began
            cpu = {
                **meter.stop(),
                "artillery": (children_after.ru_utime + children_after.ru_stime)
                - (children_before.ru_utime + children_before.ru_stime),
                "wall": wall,
            }
            time.sleep(1.5)  # the last records reach the run directory
            if code != 0 or not report_path.exists():
                raise SystemExit(f"artillery failed (exit {code})")
            result = analyse(cloud.run_dir, began, json.loads(report_path.read_text()), alone)
    result["phases_s"] = phases
    result["cpu_s"] = cpu
    print_table(result)
    print(json.dumps(result))
    return 0


def print_table(r: dict[str, Any]) -> None:
    lat, warm = r["latency_ms"], r["warm_ok_latency_ms"]
    print(f"flash sale, phases {r['phases_s']} s at 5/20/100/5 arrivals per second: {r['requests']} requests")
    print(
        f"  2xx share            {r['ok_share'] * 100:.2f} %   codes {r['codes']}   client errors {r['client_errors']}"
    )
    print(f"  non-2xx by cause     {r['non_2xx_causes'] or 'none'}")
    print(f"  latency (Artillery)  p50 {lat['p50']} ms  p95 {lat['p95']} ms  p99 {lat['p99']} ms")
    print(f"  warm 2xx (API log)   p50 {warm['p50']} ms  p99 {warm['p99']} ms  (n={warm['n']})")
    for function, ratio in r["init_ratio"].items():
        print(
            f"  INIT {function[-36:]}: alone p50 {ratio['alone_p50_ms']:.0f} ms, storm p50 "
            f"{ratio['storm_p50_ms'] or 0:.0f} ms over {ratio['storm_cold_starts']} cold starts, ratio "
            f"{ratio['ratio'] or 0:.2f}"
        )
    waits = r["local_wait_s"]
    print(
        f"  local waits          {r['inits_that_waited_locally']} INITs waited (p50 {waits['init_p50']:.3f} s, "
        f"total {waits['init_total']:.1f} s); all waiting {waits['all_total']:.1f} s; local errors "
        f"{r['local_errors']}; ServiceException/Runtime.ExitError {r['service_or_exit_errors']}"
    )
    print(f"  CPU seconds          {r['cpu_s']}")


if __name__ == "__main__":
    raise SystemExit(main())
