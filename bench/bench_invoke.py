"""Benchmark the local Lambda service through its HTTP Invoke API, side by side with the in-process floor.

    .venv/bin/python bench/bench_invoke.py --clients 32 --invokes 4000 --cold 30

Measures, in one run: (1) the direct in-process handler call (the floor); (2) an aiohttp echo round trip to another
process on this machine (the cost of one local HTTP exchange); (3) warm invokes of a no-op function through the
Invoke API with N concurrent clients: latency p50/p99 and invokes/s, and the single-client p50 as a ratio to three
echo round trips — a warm invoke is three exchanges (the Invoke API, the runtime's `/next`, its `/response`), so the
ratio is what the service adds beyond the HTTP it cannot avoid, the figure to improve; (4) cold-start overhead —
request accepted → the function's INIT begins — from the run directory's records, over `--cold` freshly created
functions, one at a time. Prints medians and a JSON line for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import aiohttp

from lambdalab.observe.records import read_jsonl

HANDLER = "def lambda_handler(event, context):\n    return event\n"
FUNCTION_PATH = "/2015-03-31/functions/{name}/invocations"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def zipped_handler() -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", HANDLER)
    return base64.b64encode(buffer.getvalue()).decode()


async def create_function(session: aiohttp.ClientSession, url: str, name: str, code: str) -> None:
    body = {
        "FunctionName": name,
        "Runtime": "python3.13",
        "Role": "arn:aws:iam::123456789012:role/bench",
        "Handler": "app.lambda_handler",
        "Code": {"ZipFile": code},
        "MemorySize": 128,
        "Timeout": 30,
    }
    async with session.post(f"{url}/2015-03-31/functions", json=body) as response:
        if response.status != 201:
            raise RuntimeError(f"CreateFunction {name}: {response.status} {await response.text()}")


async def invoke(session: aiohttp.ClientSession, url: str, name: str) -> float:
    started = time.perf_counter()
    async with session.post(url + FUNCTION_PATH.format(name=name), data=b'{"n":1}') as response:
        body = await response.read()
        if response.status != 200 or "X-Amz-Function-Error" in response.headers:
            raise RuntimeError(f"invoke {name}: {response.status} {body[:300]!r}")
    return time.perf_counter() - started


def floor(invokes: int) -> list[float]:
    """The handler called directly in this process: what no local cloud can beat."""
    namespace: dict[str, Any] = {}
    exec(compile(HANDLER, "app.py", "exec"), namespace)
    handler = namespace["lambda_handler"]
    event = json.loads(b'{"n":1}')
    samples = []
    for _ in range(invokes):
        started = time.perf_counter()
        json.dumps(handler(json.loads(json.dumps(event)), None))
        samples.append(time.perf_counter() - started)
    return samples


async def warm(session: aiohttp.ClientSession, url: str, name: str, clients: int, invokes: int) -> dict[str, Any]:
    """`clients` concurrent loops of invokes on one warmed-up function."""
    await asyncio.gather(*(invoke(session, url, name) for _ in range(clients)))  # one environment per client
    per_client = max(1, invokes // clients)
    latencies: list[float] = []

    async def client_loop() -> None:
        for _ in range(per_client):
            latencies.append(await invoke(session, url, name))

    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "invokes": len(latencies),
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "invokes_per_s": len(latencies) / elapsed,
    }


async def run(url: str, run_dir: Path, clients: list[int], invokes: int, cold: int) -> dict[str, Any]:
    code = zipped_handler()
    connector = aiohttp.TCPConnector(limit=max(clients) * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        await create_function(session, url, "noop", code)
        warm_results = [await warm(session, url, "noop", n, invokes) for n in clients]
        # cold starts, one at a time, each on a new function
        for i in range(cold):
            await create_function(session, url, f"cold{i}", code)
            await invoke(session, url, f"cold{i}")
    await asyncio.sleep(1.0)  # the run directory is flushed every 0.25 s
    records = list(read_jsonl(run_dir / "invocations.jsonl"))
    overheads = [
        r["init_start"] - r["received_at"]
        for r in records
        if r["function_name"].startswith("cold") and r["start_kind"] == "cold" and r["init_start"]
    ]
    return {
        "warm": warm_results,
        "cold_starts": len(overheads),
        "cold_overhead_p50_ms": statistics.median(overheads) * 1000 if overheads else None,
        "cold_overhead_p95_ms": percentile(overheads, 0.95) * 1000 if overheads else None,
    }


ECHO_SERVER = """
import sys
from aiohttp import web

async def echo(request):
    return web.Response(body=await request.read(), content_type="application/json")

app = web.Application()
app.router.add_route("*", "/{tail:.*}", echo)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=lambda *_: print("ready", flush=True))
"""


async def echo_round_trips(url: str, count: int) -> list[float]:
    """`count` POSTs of the invoke payload to an aiohttp echo server, one at a time, over one kept-alive connection."""
    samples = []
    async with aiohttp.ClientSession() as session:
        for _ in range(count + 50):
            started = time.perf_counter()
            async with session.post(url, data=b'{"n":1}') as response:
                await response.read()
            samples.append(time.perf_counter() - started)
    return samples[50:]  # the first ones warm the connection and the server


def echo_baseline(count: int) -> list[float]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-c", ECHO_SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the echo server did not start")
        return asyncio.run(echo_round_trips(f"http://127.0.0.1:{port}/echo", count))
    finally:
        process.terminate()
        process.wait(10)


def read_ready(process: subprocess.Popen[str], cwd: Path, timeout_s: float = 60.0) -> tuple[str, Path]:
    """The URL and run directory `lambdalab up` prints once it is ready."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    url = None
    for line in process.stdout:
        if line.startswith("ready "):
            url = line.split()[1]
        elif line.startswith("# run directory: ") and url is not None:
            return url, Path(line.split(": ", 1)[1].strip())
        if time.monotonic() > deadline:
            break
    raise RuntimeError("lambdalab up did not print ready and its run directory")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,32", help="comma-separated concurrent client counts")
    parser.add_argument("--invokes", type=int, default=4000)
    parser.add_argument("--cold", type=int, default=30)
    args = parser.parse_args()
    floor_samples = floor(args.invokes)
    echo_samples = echo_baseline(min(args.invokes, 2000))
    with tempfile.TemporaryDirectory() as tmp:
        # The local cloud runs in its own process, as `lambdalab up` does, so the load generator here does not
        # share its interpreter lock.
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "lambdalab"), "up", "--no-template", "--port", "0", "--run-root", tmp],
            cwd=tmp,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            url, run_dir = read_ready(process, Path(tmp))
            clients = [int(c) for c in args.clients.split(",")]
            result = asyncio.run(run(url, run_dir, clients, args.invokes, args.cold))
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(60)
    result["floor_p50_us"] = statistics.median(floor_samples) * 1e6
    result["echo_p50_ms"] = statistics.median(echo_samples) * 1000
    print(f"in-process handler call (floor)  p50 {result['floor_p50_us']:.1f} us")
    print(f"aiohttp echo round trip          p50 {result['echo_p50_ms']:.3f} ms (one local HTTP exchange)")
    for w in result["warm"]:
        w["added_p50_ms"] = w["p50_ms"] - result["floor_p50_us"] / 1000
        w["ratio_to_3_echo"] = w["p50_ms"] / (3 * result["echo_p50_ms"])
        print(
            f"warm invoke via HTTP, {w['clients']:>2} clients  p50 {w['p50_ms']:.2f} ms  p99 {w['p99_ms']:.2f} ms  "
            f"{w['invokes_per_s']:.0f} invokes/s  (added p50 {w['added_p50_ms']:.2f} ms)"
        )
    single = next((w for w in result["warm"] if w["clients"] == 1), None)
    if single is not None:
        print(f"warm invoke (1 client) / 3 echo round trips: {single['ratio_to_3_echo']:.2f}")
    if result["cold_overhead_p50_ms"] is not None:
        print(
            f"cold start: request accepted -> INIT begins  p50 {result['cold_overhead_p50_ms']:.1f} ms  "
            f"p95 {result['cold_overhead_p95_ms']:.1f} ms  (n={result['cold_starts']})"
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
