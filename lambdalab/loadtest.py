"""Artillery scenarios against the local cloud: the repository's ``loadtests/*.yaml`` with their phases shortened
(arrival rates unchanged), run with the pinned Artillery, and their results per phase from the API's access log and
the Lambda run records of the cloud's run directory.

Shortening a phase keeps its ``arrivalRate``/``rampTo``/``arrivalCount`` as they are and scales ``duration`` (and a
``pause``): a 180 s phase at 100 arrivals per second compressed by 0.05 is 9 s at 100 per second. That is what the
experiments do with ``--time-scale``: metric periods, alarms and scaling are compressed by the same factor, so the
load per metric period is AWS's.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lambdalab.awslambda.core.outcome import Outcome
from lambdalab.clock import Clock
from lambdalab.errors import UserError

ARTILLERY_ENV = "LAMBDALAB_ARTILLERY"  # the artillery binary, when not node_modules/.bin/artillery or on PATH


@dataclass(frozen=True)
class Phase:
    name: str
    duration_s: float
    arrival_rate: float  # at the start of the phase
    ramp_to: float | None = None


@dataclass(frozen=True)
class Window:
    """A phase as it ran: [start, end) in epoch seconds."""

    phase: Phase
    start: float
    end: float


def load_scenario(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read the Artillery scenario: {exc}", where=str(path)) from None
    phases = (document or {}).get("config", {}).get("phases") if isinstance(document, dict) else None
    if not isinstance(phases, list) or not phases:
        raise UserError("config.phases must be a non-empty list", where=str(path))
    return document


def phases_of(document: dict[str, Any]) -> list[Phase]:
    found = []
    for number, raw in enumerate(document["config"]["phases"], start=1):
        if not isinstance(raw, dict):
            raise UserError(f"phase {number} is not a mapping")
        if "pause" in raw:
            found.append(Phase(str(raw.get("name") or f"pause {number}"), float(raw["pause"]), 0.0))
            continue
        duration = raw.get("duration")
        if duration is None:
            raise UserError(f"phase {number} ({raw.get('name', 'unnamed')}) has no duration")
        rate = raw.get("arrivalRate")
        if rate is None and "arrivalCount" in raw:
            rate = float(raw["arrivalCount"]) / float(duration)
        ramp = raw.get("rampTo")
        found.append(
            Phase(str(raw.get("name") or f"phase {number}"), float(duration), float(rate or 0.0), ramp and float(ramp))
        )
    return found


def shortened(document: dict[str, Any], *, factor: float | None = None, durations: list[float] | None = None) -> dict:
    """A copy with every phase's duration multiplied by `factor`, or replaced by `durations`; rates unchanged."""
    copy = json.loads(json.dumps(document))
    phases = copy["config"]["phases"]
    if durations is not None and len(durations) != len(phases):
        raise UserError(f"{len(durations)} durations given for {len(phases)} phases")
    for number, phase in enumerate(phases):
        key = "pause" if "pause" in phase else "duration"
        new = durations[number] if durations is not None else float(phase[key]) * (factor or 1.0)
        if "arrivalCount" in phase and key == "duration":
            # arrivalCount spreads a count over the duration: keep the rate, so scale the count with it
            phase["arrivalCount"] = max(1, round(float(phase["arrivalCount"]) * new / float(phase[key])))
        phase[key] = round(new, 3)
    return copy


def artillery_binary(root: Path | None = None) -> Path:
    """The pinned Artillery (node_modules/.bin/artillery beside the project), else one on PATH."""
    explicit = os.environ.get(ARTILLERY_ENV)
    candidates = [Path(explicit)] if explicit else []
    for base in (root, Path.cwd(), Path(__file__).resolve().parent.parent):
        if base is not None:
            candidates.append(base / "node_modules" / ".bin" / "artillery")
    on_path = shutil.which("artillery")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise UserError("Artillery is not installed: run `npm ci` in the repository (or set LAMBDALAB_ARTILLERY)")


@dataclass
class ArtilleryRun:
    started: float
    ended: float
    returncode: int
    report: dict[str, Any]
    windows: list[Window]

    def counters(self) -> dict[str, int]:
        return dict(self.report.get("aggregate", {}).get("counters", {}))

    def latency_ms(self) -> dict[str, float | None]:
        summary = self.report.get("aggregate", {}).get("summaries", {}).get("http.response_time", {})
        return {q: summary.get(q) for q in ("p50", "p95", "p99", "max")}


def run_artillery(
    document: dict[str, Any], target: str, workdir: Path, *, epoch: Clock, root: Path | None = None
) -> ArtilleryRun:
    """Run the scenario to its end against `target` (the stack's ApiUrl); its phases' windows on `epoch` (the
    caller's epoch clock, so they line up with the local cloud's records)."""
    scenario = workdir / "scenario.yaml"
    scenario.write_text(yaml.safe_dump(document, sort_keys=False))
    report = workdir / "report.json"
    env = dict(os.environ, ARTILLERY_DISABLE_TELEMETRY="true")
    command = [
        str(artillery_binary(root)),
        "run",
        str(scenario),
        "--target",
        target,
        "--output",
        str(report),
        "--quiet",
    ]
    started = epoch.now()
    code = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=False).returncode
    ended = epoch.now()
    data = json.loads(report.read_text()) if report.exists() else {}
    windows = []
    at = started
    for phase in phases_of(document):
        windows.append(Window(phase, at, at + phase.duration_s))
        at += phase.duration_s
    return ArtilleryRun(started, ended, code, data, windows)


def read_jsonl(path: Path) -> Iterable[dict[str, Any]]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


@dataclass
class PhaseSummary:
    window: Window
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    latencies_ms: list[float] = field(default_factory=list)
    throttles: collections.Counter[str] = field(default_factory=collections.Counter)
    spillovers: collections.Counter[str] = field(default_factory=collections.Counter)  # by function:alias
    cold_starts: int = 0
    local_errors: int = 0
    local_waits: int = 0  # invocations that waited for this machine (CPU gate, run queue)

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def p50(self) -> float | None:
        return statistics.median(self.latencies_ms) if self.latencies_ms else None


def summarize(run_dir: Path, run: ArtilleryRun, *, grace_s: float = 30.0) -> list[PhaseSummary]:
    """Access-log lines and run records bucketed by the phase their request arrived in (the last phase keeps what
    arrived up to `grace_s` after it, so slow answers are counted)."""
    summaries = [PhaseSummary(w) for w in run.windows]
    if not summaries:
        return []

    def bucket(at: float) -> PhaseSummary | None:
        if at < run.started:
            return None
        for summary in summaries:
            if summary.window.start <= at < summary.window.end:
                return summary
        return summaries[-1] if at < summaries[-1].window.end + grace_s else None

    for entry in read_jsonl(run_dir / "api-access.jsonl"):
        arrived = float(entry.get("requestTimeEpoch") or 0.0) / 1000.0 or _clf_epoch(str(entry.get("requestTime")))
        summary = bucket(arrived)
        if summary is not None:
            summary.statuses[int(entry["status"])] += 1
            summary.latencies_ms.append(float(entry["responseLatency"]))
    for record in read_jsonl(run_dir / "invocations.jsonl"):
        summary = bucket(float(record["received_at"]))
        if summary is None:
            continue
        resource = f"{record['function_name']}:{record['qualifier']}"
        if record["outcome"] == Outcome.THROTTLED:
            summary.throttles[str(record["throttle_reason"])] += 1
        if record.get("spillover"):
            summary.spillovers[resource] += 1
        if record.get("start_kind") == "cold":
            summary.cold_starts += 1
        if record["outcome"] == Outcome.LOCAL_ERROR:
            summary.local_errors += 1
        if (record.get("local_wait_s") or 0.0) > 0.001:
            summary.local_waits += 1
    return summaries


def _clf_epoch(text: str) -> float:
    """`01/Dec/2026:23:12:49 +0000` → epoch seconds (0 when unreadable)."""
    try:
        return time.mktime(time.strptime(text.split(" ", maxsplit=1)[0], "%d/%b/%Y:%H:%M:%S")) - time.timezone
    except (ValueError, IndexError):
        return 0.0
