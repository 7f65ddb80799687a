"""Benchmark the execution-environment layer: warm round trip, spawn → INIT start, memory per idle environment.

    .venv/bin/python bench/bench_environments.py --invokes 2000 --spawns 50 --envs 200

Prints medians (and p99 where it matters). Targets: warm round trip p50 ≈ 1 ms; spawn → INIT begins p50 ≤ 25 ms;
unique memory per idle environment small enough for 1,000 environments in 8 GiB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

from lambdalab.awslambda.hosting import EnvironmentSpec, InvokeRequest, InvokeStatus
from lambdalab.awslambda.runtime.host import ProcessHost
from lambdalab.clock import Clocks

LOG = logging.getLogger(__name__)
HANDLER = """
def lambda_handler(event, context):
    return event
"""
MIB = 1024 * 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def make_spec(code_dir: Path, env_id: str, runtime: str) -> EnvironmentSpec:
    return EnvironmentSpec(
        env_id=env_id,
        function_name="bench",
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:bench",
        version="$LATEST",
        handler="app.lambda_handler",
        code_dir=code_dir,
        runtime=runtime,
        memory_mb=128,
        timeout_s=30.0,
        user_environment={},
        init_type="on-demand",
        region="us-east-1",
        account_id="123456789012",
        endpoint_url="http://127.0.0.1:4566",
        xray_daemon_address=None,
        init_cap_s=10.0,
    )


async def bench(args: argparse.Namespace, code_dir: Path) -> None:
    host = ProcessHost(clocks=Clocks.wall())
    started = time.perf_counter()
    await host.start()
    print(f"fork server start: {(time.perf_counter() - started) * 1000:.1f} ms")
    try:
        # warm round trip: host → /next → handler (no-op) → /response → host
        env = await host.spawn(make_spec(code_dir, "warm", args.runtime))
        init = await env.wait_ready()
        assert init.ok, init
        payload = json.dumps({"n": 1}).encode()
        for i in range(50):  # warm up
            await env.invoke(InvokeRequest(f"w{i}", payload, time.time() + 30, env.spec.function_arn))
        trips = []
        for i in range(args.invokes):
            t0 = time.perf_counter()
            result = await env.invoke(InvokeRequest(f"r{i}", payload, time.time() + 30, env.spec.function_arn))
            trips.append(time.perf_counter() - t0)
            assert result.status is InvokeStatus.SUCCESS
        print(
            f"warm round trip ({args.invokes} invokes, {args.runtime}): p50 {statistics.median(trips) * 1000:.2f} ms,"
            f" p99 {percentile(trips, 0.99) * 1000:.2f} ms"
        )
        await env.kill()

        # spawn: the spawn request → the function's INIT begins (bootstrap.run), and → ready (first /next)
        to_init, to_ready, init_durations = [], [], []
        for i in range(args.spawns):
            env = await host.spawn(make_spec(code_dir, f"s{i}", args.runtime))
            init = await env.wait_ready()
            assert init.ok and init.init_started_at is not None and init.init_duration_s is not None
            to_init.append(init.init_started_at - env.spawned_at)
            to_ready.append(env.ready_at - env.spawned_at if env.ready_at else float("nan"))
            init_durations.append(init.init_duration_s)
            await env.kill()
        print(
            f"spawn → INIT begins ({args.spawns} spawns): p50 {statistics.median(to_init) * 1000:.2f} ms,"
            f" p99 {percentile(to_init, 0.99) * 1000:.2f} ms;"
            f" spawn → ready p50 {statistics.median(to_ready) * 1000:.2f} ms;"
            f" function INIT p50 {statistics.median(init_durations) * 1000:.2f} ms"
        )

        # memory: N idle environments, each after one invoke (the steady state of a warm pool)
        envs = []
        t0 = time.perf_counter()
        for i in range(args.envs):
            envs.append(await host.spawn(make_spec(code_dir, f"m{i}", args.runtime)))
        for env in envs:
            assert (await env.wait_ready()).ok
        elapsed = time.perf_counter() - t0
        for i, env in enumerate(envs):
            await env.invoke(InvokeRequest(f"m{i}", payload, time.time() + 30, env.spec.function_arn))
        uss = [env.memory_uss_bytes() for env in envs]
        rss = [env.memory_rss_bytes() for env in envs]
        server_uss = psutil.Process(host.forkserver_pid).memory_full_info().uss if host.forkserver_pid else 0
        host_rss = psutil.Process().memory_info().rss
        print(
            f"{args.envs} idle environments (spawned and ready in {elapsed:.2f} s):"
            f" USS per env median {statistics.median(uss) / MIB:.2f} MiB, max {max(uss) / MIB:.2f} MiB;"
            f" RSS per env median {statistics.median(rss) / MIB:.1f} MiB;"
            f" total USS {sum(uss) / MIB:.0f} MiB + fork server {server_uss / MIB:.1f} MiB;"
            f" host process RSS {host_rss / MIB:.0f} MiB"
        )
        per_env = statistics.median(uss)
        print(f"projected 1,000 idle environments: {per_env * 1000 / 1024**3:.2f} GiB (USS)")
    finally:
        await host.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invokes", type=int, default=2000, help="warm invokes to time")
    parser.add_argument("--spawns", type=int, default=50, help="spawns to time, one at a time")
    parser.add_argument("--envs", type=int, default=200, help="idle environments to measure memory with")
    parser.add_argument("--runtime", default="python3.13", help="runtime name (sets AWS_EXECUTION_ENV)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="lambdalab-bench-") as tmp:
        code_dir = Path(tmp)
        (code_dir / "app.py").write_text(HANDLER)
        asyncio.run(bench(args, code_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
