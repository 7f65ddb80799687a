"""Benchmark the simulator: its rate in simulated invocations per second, the spike profile, and a tune sweep.

    .venv/bin/python bench/bench_simulate.py                 # hot path 60 s at 10,000 rps, spike, tune (20 settings)
    .venv/bin/python bench/bench_simulate.py --hours 1       # the full target: one hour at 10,000 rps (36 M calls)

1. Hot path: one function (ConcurrencyTestFunction of template.yaml, unreserved) invoked at 10,000 rps, INIT
   lognormal(300 ms, 900 ms), duration lognormal(20 ms, 80 ms): a warm environment is almost always free. Reports
   simulated invocations per second of wall time and CPU microseconds per invocation (target: one hour, 36 million
   invocations, in under 5 minutes on one core: at most 8.3 µs each).
2. The spike profile (loadtests/spike.yaml against /standard and /custom, loadtests/models/spike.yaml), the whole
   `lambdalab simulate` command in process: target under 10 s; prints the Average vs Maximum spillover counts.
3. `lambdalab tune` over 20 settings of the flash sale at 10x its rates (loadtests/models/flash-sale.yaml): target
   under a minute on the machine's cores; prints the recommendation.

Prints one JSON document; CPU times beside wall times, and the load average, because other work on a shared 2-core
machine inflates wall time. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from lambdalab.cli import main as lambdalab
from lambdalab.simulate.engine import Simulation
from lambdalab.simulate.loads import InvokeLoad
from lambdalab.simulate.models import ModelSet, apply_setting
from lambdalab.simulate.stack import load_stack

ROOT = Path(__file__).resolve().parents[1]
HOT_TARGET_US = 300.0 / 36_000_000 * 1e6  # 5 minutes for 36 million invocations
SPIKE_TARGET_S = 10.0
TUNE_TARGET_S = 60.0


def hot_path(seconds: float, rate: float) -> dict[str, Any]:
    stack = load_stack(ROOT / "template.yaml", parameter_overrides={"ReservedConcurrency": "-1"})
    models = ModelSet()
    apply_setting(models, "*.init=lognormal(p50=300ms,p99=900ms)")
    apply_setting(models, "*.duration=lognormal(p50=20ms,p99=80ms)")
    sim = Simulation(stack, models, keep_invocations=0, bin_s=max(1.0, seconds / 1500))
    function = stack.function("ConcurrencyTestFunction")
    load = InvokeLoad(function, "live", rate, seconds, None, False, False)
    sim.prepare()
    load.start(sim)
    wall, cpu = time.perf_counter(), time.process_time()
    sim.run(sim.load_start + seconds)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    calls = sum(s.invocations + sum(s.throttles.values()) for s in sim.stats.values())
    stats = next(iter(sim.stats.values()))
    return {
        "simulated_s": seconds,
        "rate": rate,
        "invocations": calls,
        "cold_starts": stats.cold,
        "throttles": sum(stats.throttles.values()),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "invocations_per_wall_s": round(calls / wall),
        "cpu_us_per_invocation": round(cpu / calls * 1e6, 2),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "target_cpu_us": round(HOT_TARGET_US, 2),
        "within_target": cpu / calls * 1e6 <= HOT_TARGET_US,
    }


def _command(argv: list[str]) -> tuple[float, float, dict[str, Any]]:
    out = io.StringIO()
    wall, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(out):
        code = lambdalab(argv)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if code != 0:
        raise SystemExit(f"lambdalab {' '.join(argv)} exited {code}")
    return wall, cpu, json.loads(out.getvalue())


def spike() -> dict[str, Any]:
    wall, cpu, body = _command(
        [
            "simulate",
            "--template",
            str(ROOT / "template.yaml"),
            "--artillery",
            str(ROOT / "loadtests" / "spike.yaml"),
            "--model",
            str(ROOT / "loadtests" / "models" / "spike.yaml"),
            "--json",
        ]
    )
    rows = {f["qualifier"]: f for f in body["functions"] if f["qualifier"] in ("standard", "custom")}
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "invocations": body["totals"]["invocations"],
        "standard_average": {
            k: rows["standard"][k] for k in ("invocations", "provisioned_starts", "spillover", "cold_starts")
        },
        "custom_maximum": {
            k: rows["custom"][k] for k in ("invocations", "provisioned_starts", "spillover", "cold_starts")
        },
        "scale_outs": sum(1 for a in body["simulation"]["scaling_activities"] if a["direction"] == "out"),
        "target_s": SPIKE_TARGET_S,
        "within_target": wall <= SPIKE_TARGET_S,
    }


TUNE_SWEEP = [
    "--sweep", "TableBillingMode=PROVISIONED,PAY_PER_REQUEST",
    "--sweep", "TableMinCapacity=5,100,400,700,1000",
    "--sweep", "ProductsReservedConcurrency=50,150",
]  # fmt: skip


def tune() -> dict[str, Any]:
    wall, cpu, body = _command(
        [
            "tune",
            "--template",
            str(ROOT / "template.yaml"),
            "--artillery",
            str(ROOT / "loadtests" / "flash-sale.yaml"),
            "--rate-factor",
            "10",
            "--model",
            str(ROOT / "loadtests" / "models" / "flash-sale.yaml"),
            "--parameter-overrides",
            "TableMaxCapacity=2000",
            *TUNE_SWEEP,
            "--json",
        ]
    )
    return {
        "settings": len(body["settings"]),
        "workers": body["workers"],
        "wall_s": round(wall, 2),
        "parent_cpu_s": round(cpu, 2),
        "recommendation": body["recommendation"],
        "target_s": TUNE_TARGET_S,
        "within_target": wall <= TUNE_TARGET_S,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=None, help="simulated hours of the hot path (default 60 s)")
    parser.add_argument("--rate", type=float, default=10_000.0)
    parser.add_argument("--skip", action="append", default=[], choices=["hot", "spike", "tune"])
    args = parser.parse_args(argv)
    seconds = 3600.0 * args.hours if args.hours else 60.0
    result: dict[str, Any] = {"benchmark": "simulate", "load_average_1m_start": round(os.getloadavg()[0], 2)}
    if "hot" not in args.skip:
        result["hot_path"] = hot_path(seconds, args.rate)
    if "spike" not in args.skip:
        result["spike"] = spike()
    if "tune" not in args.skip:
        result["tune"] = tune()
    result["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=2))
    return 0 if all(v.get("within_target", True) for v in result.values() if isinstance(v, dict)) else 1


if __name__ == "__main__":
    sys.exit(main())
