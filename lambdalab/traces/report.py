"""The cold-start report: one value built from any source, rendered as a table, JSON or HTML."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lambdalab.traces.analysis import (
    Environment,
    Execution,
    FunctionReport,
    Invocation,
    environments_from_ids,
    extract,
    infer_environments,
    summarise,
)
from lambdalab.traces.model import ParseOutcome, Problem, bulk

LOG = logging.getLogger(__name__)

SCHEMA = "lambdalab.traces/1"


@dataclass(frozen=True)
class Source:
    """Where the data came from: "xray" (an API endpoint), "logs" (CloudWatch Logs), "run-dir" or "file"; and its
    window, if any."""

    kind: str
    detail: str
    window_start: float | None = None
    window_end: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "detail": self.detail,
            "window": None
            if self.window_start is None or self.window_end is None
            else {"start": iso(self.window_start), "end": iso(self.window_end)},
        }


SOURCE_LABELS = {"xray": "X-Ray", "file": "X-Ray file", "run-dir": "run records", "logs": "CloudWatch Logs"}


@dataclass(frozen=True)
class Coverage:
    """How much of what happened the source saw: `complete` True (every invocation), False (a sample), None (unknown);
    `detail` says why, in one sentence."""

    complete: bool | None
    detail: str

    @property
    def label(self) -> str:
        if self.complete is None:
            return "unknown"
        return "complete" if self.complete else "partial"

    def to_json(self) -> dict[str, Any]:
        return {"complete": self.complete, "detail": self.detail}


@dataclass
class Report:
    """Everything the renderers show. Build it with `from_traces` or `from_invocations`."""

    source: Source
    functions: list[FunctionReport]
    executions: list[Execution]
    environments: list[Environment]
    invocations: list[Invocation]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    traces_read: int | None = None
    coverage: Coverage | None = None
    throttles_known: bool = True  # False: the source cannot see throttled calls (logs), so throttles are None, not 0

    @property
    def cold_starts(self) -> int:
        return sum(f.cold_starts for f in self.functions)

    def problem_summary(self) -> dict[str, Any]:
        reasons = Counter(_reason_kind(problem.reason) for problem in self.problems)
        return {
            "count": len(self.problems),
            "reasons": dict(sorted(reasons.items())),
            "examples": [{"where": p.where, "reason": p.reason} for p in self.problems[:10]],
        }

    def to_json(self) -> dict[str, Any]:
        index = {id(item): n for n, item in enumerate(self.invocations)}
        return {
            "schema": SCHEMA,
            "source": self.source.to_json(),
            "totals": {
                "traces": self.traces_read,
                "invocations": sum(f.invocations for f in self.functions),
                "cold_starts": self.cold_starts,
                "provisioned_starts": sum(f.provisioned_starts for f in self.functions),
                "throttles": sum(f.throttles or 0 for f in self.functions) if self.throttles_known else None,
            },
            "coverage": self.coverage.to_json() if self.coverage is not None else None,
            "functions": [f.to_json() for f in self.functions],
            "executions": [_execution_json(e, index) for e in self.executions],
            "environments": [env.to_json(index) for env in self.environments],
            "invocations": [item.to_json() for item in self.invocations],
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "problems": self.problem_summary(),
        }


def _reason_kind(reason: str) -> str:
    """Group "malformed JSON (Expecting value)" and its siblings under one reason for the counts."""
    return reason.split(" (", 1)[0]


def _execution_json(execution: Execution, index: Mapping[int, int]) -> dict[str, Any]:
    return {
        "execution_arn": execution.execution_arn,
        "state_machine": execution.state_machine,
        "trace_id": execution.trace_id,
        "start": iso(execution.start) if execution.start is not None else None,
        "duration_s": execution.duration_s,
        "items": [
            {
                "invocation": index.get(id(item)),
                "function": item.function,
                "qualifier": item.qualifier,
                "start_kind": item.start_kind.value if item.start_kind else None,
                "throttled": item.throttled,
                "duration_s": item.duration_s,
                "end_to_end_s": item.end_to_end_s,
            }
            for item in execution.items
        ],
    }


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _keep(item: Invocation, functions: set[str] | None) -> bool:
    return functions is None or item.function in functions


def from_traces(
    outcome: ParseOutcome,
    source: Source,
    *,
    functions: Iterable[str] | None = None,
    execution_traces: Mapping[str, str] | None = None,
    spillover_metrics: Mapping[tuple[str, str], int] | None = None,
    spillover_note: str = "unavailable: X-Ray does not record spillover",
) -> Report:
    """A report from parsed traces. `functions` filters client-side (moto ignores FilterExpression).

    `execution_traces` maps a trace id to a Step Functions execution ARN for traces that carry no state-machine
    segment (e.g. a trace id taken from DescribeExecution's traceHeader).
    """
    with bulk():
        return _from_traces(
            outcome,
            source,
            functions=functions,
            execution_traces=execution_traces,
            spillover_metrics=spillover_metrics,
            spillover_note=spillover_note,
        )


def _from_traces(
    outcome: ParseOutcome,
    source: Source,
    *,
    functions: Iterable[str] | None,
    execution_traces: Mapping[str, str] | None,
    spillover_metrics: Mapping[tuple[str, str], int] | None,
    spillover_note: str,
) -> Report:
    wanted = set(functions) if functions else None
    extraction = extract(outcome.traces)
    invocations = [item for item in extraction.invocations if _keep(item, wanted)]
    executions = extraction.executions
    known = {execution.trace_id for execution in executions}
    for trace_id, arn in (execution_traces or {}).items():
        if trace_id in known:
            for execution in executions:
                if execution.trace_id == trace_id and execution.execution_arn is None:
                    execution.execution_arn = arn
            continue
        items = [item for item in extraction.invocations if item.trace_id == trace_id]
        starts = [item.first_time for item in items]
        ends = [item.invoke_end for item in items if item.invoke_end is not None]
        executions.append(
            Execution(trace_id, arn, None, min(starts) if starts else None, max(ends) if ends else None, items)
        )
    for execution in executions:
        execution.items = [item for item in execution.items if _keep(item, wanted)]
    executions = [e for e in executions if e.items or wanted is None]
    report = Report(
        source=source,
        functions=summarise(invocations, spillover_metrics, spillover_note),
        executions=executions,
        environments=infer_environments(invocations),
        invocations=invocations,
        problems=outcome.problems + extraction.problems,
        traces_read=len(outcome.traces),
    )
    report.notes.append(
        "environments are inferred from traces (X-Ray carries no environment id): each INIT opens one, "
        "a warm call goes to one that was idle"
    )
    if any(f.provisioned_starts for f in report.functions):
        report.notes.append(
            "provisioned: the Initialization subsegment began before the request arrived (provisioned concurrency "
            "initialises ahead of traffic; X-Ray records the wait as INIT), so it is not counted as a cold start"
        )
    return report


def from_invocations(
    invocations: Sequence[Invocation],
    source: Source,
    *,
    environment_events: Sequence[Mapping[str, Any]] = (),
    functions: Iterable[str] | None = None,
    problems: Sequence[Problem] = (),
    coverage: Coverage | None = None,
    throttles_known: bool = True,
    spillover_note: str = "unavailable: the records do not say",
) -> Report:
    """A report from invocations that name their environments: ground-truth records (a local run directory) or
    Lambda's REPORT lines (CloudWatch Logs, one stream per environment)."""
    wanted = set(functions) if functions else None
    kept = sorted((item for item in invocations if _keep(item, wanted)), key=lambda i: i.first_time)
    report = Report(
        source=source,
        functions=summarise(kept, None, spillover_note, throttles_known=throttles_known),
        # A run directory does not know which traces were Step Functions executions; the X-Ray path does.
        executions=[],
        environments=environments_from_ids(kept, environment_events),
        invocations=kept,
        problems=list(problems),
        coverage=coverage,
        throttles_known=throttles_known,
    )
    limited = local_limits_warning(kept)
    if limited is not None:
        report.warnings.append(limited)
    return report


def local_limits_warning(invocations: Sequence[Invocation]) -> str | None:
    """One sentence when the machine that ran the calls made them wait or fail (a local run), else None."""
    waited = [i for i in invocations if (i.local_wait_s or 0.0) >= 0.001]
    inits = [i for i in invocations if (i.init_local_wait_s or 0.0) >= 0.001]
    failed = sum(1 for i in invocations if i.local_error)
    if not waited and not failed:
        return None
    parts = []
    if inits:
        parts.append(f"{len(inits)} INITs waited {sum(i.init_local_wait_s or 0.0 for i in inits):.1f} s for a CPU")
    others = sum(i.local_wait_s or 0.0 for i in waited) - sum(i.init_local_wait_s or 0.0 for i in inits)
    if others >= 0.001:
        parts.append(f"invocations waited {others:.1f} s more")
    if failed:
        parts.append(f"{failed} calls failed for a local reason")
    return (
        "limited by this machine, not Lambda: " + "; ".join(parts) + ". INIT and duration figures exclude the "
        "waiting; end-to-end times include it"
    )
