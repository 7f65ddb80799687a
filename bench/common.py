"""What the benchmarks share: starting `lambdalab up` in its own process, percentiles, CPU time of processes."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Cloud:
    process: subprocess.Popen[str]
    url: str
    run_dir: Path


def read_ready(process: subprocess.Popen[str], timeout_s: float = 120.0) -> tuple[str, Path]:
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


@contextlib.contextmanager
def local_cloud(args: Sequence[str], cwd: Path, lambdalab: Path | None = None) -> Iterator[Cloud]:
    """`lambdalab up --port 0 ARGS` in its own process (as users run it), stopped with Ctrl-C at the end."""
    command = [str(lambdalab or BIN / "lambdalab"), "up", "--port", "0", *args]
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, text=True)
    try:
        url, run_dir = read_ready(process)
        yield Cloud(process, url, run_dir)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class CpuMeter:
    """CPU seconds (user + system) of process trees between start() and stop(), by name."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self._start: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def _sample(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for name, pid in self.roots.items():
            try:
                root = psutil.Process(pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            total = 0.0
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    total += times.user + times.system + times.children_user + times.children_system
            totals[name] = total
        return totals

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> dict[str, float]:
        end = self._sample()
        self.seconds = {name: end.get(name, 0.0) - self._start.get(name, 0.0) for name in self.roots}
        return self.seconds
