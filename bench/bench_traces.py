"""Benchmark the cold-start analysis: parse + analyse 100,000 X-Ray segment documents (target ≤ 3 s).

    .venv/bin/python bench/bench_traces.py --segments 100000 --runs 5

The documents are a realistic mix (lambdalab.traces.synthetic.mixed_workload): mostly warm calls, a few per cent
cold starts, a provisioned alias, throttles, and Step Functions Map executions whose items share a trace. They are
handed over as BatchGetTraces returns them (each Document a JSON string), so parsing is part of the time.
Generating them is not. Prints the median wall time of the runs (and CPU time, and the load average, since other
work on a 2-core machine inflates wall time) as JSON; exits 1 when the median misses the target.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import statistics
import sys
import time
from typing import Any

from lambdalab.traces.model import parse_batch_get_traces
from lambdalab.traces.report import Source, from_traces
from lambdalab.traces.synthetic import batch_get_traces_response, mixed_workload

LOG = logging.getLogger(__name__)
TARGET_S = 3.0


def make_responses(segments: int) -> tuple[list[dict[str, Any]], int]:
    """BatchGetTraces pages (5 traces each, as the API returns them) holding at least `segments` documents."""
    traces = mixed_workload(invocations=segments // 2 + 10, start=1_795_000_000.0)
    pages: list[dict[str, Any]] = []
    count = 0
    batch: dict[str, list[dict[str, Any]]] = {}
    for docs in traces:
        if count >= segments:
            break
        batch[docs[0]["trace_id"]] = docs
        count += len(docs)
        if len(batch) == 5:
            pages.append(batch_get_traces_response(batch))
            batch = {}
    if batch:
        pages.append(batch_get_traces_response(batch))
    return pages, count


def analyse(pages: list[dict[str, Any]]) -> tuple[float, float, int, int]:
    """(wall seconds, CPU seconds of this process, invocations, cold starts) for one parse + analyse."""
    started, cpu = time.perf_counter(), time.process_time()
    outcome = parse_batch_get_traces(pages)
    report = from_traces(outcome, Source("file", "benchmark"))
    return time.perf_counter() - started, time.process_time() - cpu, len(report.invocations), report.cold_starts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    pages, count = make_responses(args.segments)
    times, cpu_times = [], []
    invocations = cold = 0
    for _ in range(args.runs):
        gc.collect()
        elapsed, cpu, invocations, cold = analyse(pages)
        times.append(elapsed)
        cpu_times.append(cpu)
    median = statistics.median(times)
    result = {
        "benchmark": "traces: parse + analyse",
        "segments": count,
        "invocations": invocations,
        "cold_starts": cold,
        "runs": args.runs,
        "median_s": round(median, 3),
        "times_s": [round(t, 3) for t in times],
        "median_cpu_s": round(statistics.median(cpu_times), 3),
        "load_average_1m": round(os.getloadavg()[0], 2),  # other work on the machine inflates wall time
        "target_s": TARGET_S,
        "within_target": median <= TARGET_S,
    }
    print(json.dumps(result, indent=2))
    return 0 if median <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
