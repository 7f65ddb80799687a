"""What a runtime costs when nothing else runs: measured once per machine and runtime, replayed by every environment.

The fork server saves each environment the CPU of starting an interpreter and of importing the SDK; to keep INIT
durations what this machine would give one environment alone, the environment waits those costs instead
(:mod:`lambdalab.awslambda.runtime.forkserver`). This module measures them: ``PROBE_RUNS`` fresh processes of the
runtime's interpreter, one after the other, each

* the **start**: from launching the interpreter to the runtime client loaded (``baseline`` on its stdout);
* the **imports**: ``python -X importtime`` self time of every module ``import boto3`` loads after that, and which
  module first imported which (the tree the fork server restores modules by);
* the **data**: how long parsing each of the SDK data files every client reads takes (``forkserver.PRELOAD_DATA``:
  the fork server parses them once and a child's first load waits this long instead);
* the **memory**: resident set added by those imports and that parsed data (counted in Max Memory Used only once the
  function imports any of them).

The quickest run is kept (noise on a shared machine only ever adds time): the smallest start, and the import times
of the run whose imports took least in total. Results are cached
in the runtime's folder, keyed by this machine (boot id aside: hostname, CPU model, interpreter, packages), so they
are measured once, not at every start. Delete ``costs-*.json`` there to measure again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lambdalab.awslambda.runtime import forkserver
from lambdalab.awslambda.runtime.interpreters import Interpreter
from lambdalab.clock import Clocks

LOG = logging.getLogger(__name__)

PROBE_RUNS = 5
_PROBE_TIMEOUT_S = 60.0
_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)\s*$")


@dataclass(frozen=True)
class RuntimeCosts:
    """One runtime's costs on this machine (seconds, bytes)."""

    startup_s: float
    imports_s: dict[str, float]  # module -> self time of its import
    tree: dict[str, list[str]]  # module -> the modules its import loaded first
    preload_rss: int  # resident bytes the SDK imports and its parsed data add
    data_s: dict[str, float] = field(default_factory=dict)  # botocore data file -> what parsing it alone costs
    runs: int = PROBE_RUNS
    measured_at: float = 0.0  # epoch seconds of the measurement (0: not known)

    def import_cost(self, module: str) -> float:
        """What `import module` costs alone: its own time and that of everything it loaded first."""
        seen: set[str] = set()
        todo = [module]
        total = 0.0
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            total += self.imports_s.get(name, 0.0)
            todo.extend(self.tree.get(name, ()))
        return total

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> RuntimeCosts:
        return cls(
            startup_s=float(data["startup_s"]),  # type: ignore[arg-type]
            imports_s={str(k): float(v) for k, v in dict(data["imports_s"]).items()},  # type: ignore[call-overload]
            tree={str(k): [str(c) for c in v] for k, v in dict(data["tree"]).items()},  # type: ignore[call-overload]
            preload_rss=int(data["preload_rss"]),  # type: ignore[call-overload]
            # required: costs cached before the data was parsed in the fork server are measured again
            data_s={str(k): float(v) for k, v in dict(data["data_s"]).items()},  # type: ignore[call-overload]
            runs=int(data.get("runs", PROBE_RUNS)),  # type: ignore[call-overload]
            measured_at=float(data.get("measured_at", 0.0)),  # type: ignore[arg-type]
        )


def machine_key(interpreter: Interpreter, site: Path) -> str:
    """This machine, this interpreter, these packages."""
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((line for line in info if line.startswith("model name")), "")
    except OSError:
        pass
    raw = json.dumps(
        [platform.node(), cpu, os.cpu_count(), str(interpreter.executable), interpreter.version, str(site)]
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def runtime_costs(interpreter: Interpreter, site: Path, clocks: Clocks) -> RuntimeCosts:
    """The cached costs for this machine, measured now (on the host's `clocks`) if there are none."""
    cache = site.parent / f"costs-{machine_key(interpreter, site)}.json"
    try:
        return RuntimeCosts.from_json(json.loads(cache.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    LOG.warning("measuring what a %s environment costs alone on this machine (once)", interpreter.runtime)
    costs = measure(interpreter, site, clocks)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(costs.to_json(), indent=1, sort_keys=True) + "\n")
    tmp.replace(cache)
    return costs


def measure(interpreter: Interpreter, site: Path, clocks: Clocks, runs: int = PROBE_RUNS) -> RuntimeCosts:
    """What an environment of this runtime costs alone: each probe's start-up is the time until its first line, on
    the monotonic clock (a wall clock in the local cloud: this measures the machine); `measured_at` on the epoch."""
    clock = clocks.monotonic
    startups: list[float] = []
    samples: list[tuple[dict[str, float], dict[str, list[str]]]] = []
    rss: list[int] = []
    data_s: dict[str, float] = {}
    script = forkserver.__file__
    for _ in range(runs):
        begin = clock.now()
        proc = subprocess.Popen(
            [str(interpreter.executable), "-I", "-S", "-X", "importtime", script, "probe", str(site)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env={"PATH": os.defpath, "LANG": "C.UTF-8"},
            text=True,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        startups.append(clock.now() - begin)
        try:
            rest, err = proc.communicate(timeout=_PROBE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RuntimeError(
                f"the {interpreter.runtime} probe did not finish within {_PROBE_TIMEOUT_S:.0f} s"
            ) from None
        if proc.returncode != 0 or first.strip() != "baseline":
            raise RuntimeError(f"the {interpreter.runtime} probe failed: {(err or '').strip().splitlines()[-1:]}")
        sizes = json.loads(rest.strip().splitlines()[-1])
        rss.append(int(sizes["preload_rss"]) - int(sizes["baseline_rss"]))
        for name, seconds in dict(sizes.get("data_s", {})).items():  # each file's quickest parse
            data_s[name] = min(float(seconds), data_s.get(name, float("inf")))
        samples.append(parse_importtime(err.split(forkserver.PROBE_MARK, 1)[-1]))
    # One whole run, the quickest: per-module minima taken from different runs would add up to less than any run.
    imports, tree = min(samples, key=lambda sample: sum(sample[0].values()))
    return RuntimeCosts(
        startup_s=min(startups),
        imports_s=imports,
        tree=tree,
        preload_rss=int(statistics.median(rss)),
        data_s=data_s,
        runs=runs,
        measured_at=clocks.epoch.now(),
    )


def parse_importtime(text: str) -> tuple[dict[str, float], dict[str, list[str]]]:
    """`-X importtime` lines → (module → self seconds, module → the modules loaded while it was imported).

    The lines come in post-order (a module after everything it imported), indented by nesting depth. A module listed
    twice (an alias installed in sys.modules) keeps its first entry."""
    self_times: dict[str, float] = {}
    tree: dict[str, list[str]] = {}
    pending: dict[int, list[str]] = {}
    for line in text.splitlines():
        match = _IMPORT_LINE.match(line)
        if match is None:
            continue
        depth = len(match.group(3))
        name = match.group(4)
        children = pending.pop(depth + 2, [])
        for deeper in [d for d in pending if d > depth]:
            children.extend(pending.pop(deeper))
        if name not in self_times:
            self_times[name] = int(match.group(1)) / 1e6
            tree[name] = children
        pending.setdefault(depth, []).append(name)
    return self_times, {k: v for k, v in tree.items() if v}
