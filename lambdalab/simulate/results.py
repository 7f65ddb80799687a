"""What a simulation produced, in the lab's formats: the cold-start report (lambdalab.traces/1, terminal, HTML by
lambdalab.traces), plus the simulation's own section (throttles by reason, spillover, SQS, DynamoDB, scaling
activities, executions, costs) and time series drawn as inline SVG."""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from lambdalab.awslambda.core.outcome import Outcome
from lambdalab.awslambda.core.policy import StartKind as PolicyStartKind
from lambdalab.simulate.costs import CostEstimate, PriceTable, estimate
from lambdalab.simulate.engine import SimAttempt, Simulation
from lambdalab.traces.analysis import (
    Execution,
    FunctionReport,
    Invocation,
    Quantiles,
    StartKind,
    environments_from_ids,
    percentile,
)
from lambdalab.traces.html import render_html
from lambdalab.traces.report import Report, Source
from lambdalab.traces.terminal import render as render_report

LOG = logging.getLogger(__name__)

EPOCH = 1767225600.0  # simulated t = 0 is shown as 2026-01-01T00:00:00Z
MAX_POINTS = 1500  # points per drawn series; longer runs are re-binned
_KIND = {
    PolicyStartKind.COLD: StartKind.COLD,
    PolicyStartKind.WARM: StartKind.WARM,
    PolicyStartKind.PROVISIONED: StartKind.PROVISIONED,
}


@dataclass
class Outcomes:
    """The figures `tune` compares, and the summary line."""

    invocations: int
    cold_starts: int
    throttles: int
    spillover: int
    dynamodb_throttles: int
    errors: int
    p99_s: float | None
    cost: float
    cost_per_month: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class SimulationResult:
    report: Report
    section: dict[str, Any]
    costs: CostEstimate
    outcomes: Outcomes
    charts: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        body = self.report.to_json()
        body["simulation"] = self.section
        return body


def _invocation(attempt: SimAttempt, names: dict[str, str]) -> Invocation:
    throttled = attempt.outcome is Outcome.THROTTLED
    init_end = None if attempt.init_start is None else attempt.init_start + (attempt.init_duration or 0.0)
    return Invocation(
        function=attempt.function,
        qualifier=attempt.qualifier,
        start_kind=None if throttled or attempt.kind is None else _KIND[attempt.kind],
        request_id=str(attempt.request_id),
        throttled=throttled,
        throttles=1 if throttled else 0,
        spillover=attempt.spillover if not throttled else None,
        error=attempt.outcome not in (Outcome.SUCCESS, Outcome.THROTTLED),
        received_at=EPOCH + attempt.received_at,
        init_start=None if attempt.init_start is None else EPOCH + attempt.init_start,
        init_end=None if init_end is None else EPOCH + init_end,
        invoke_start=None if attempt.invoke_start is None else EPOCH + attempt.invoke_start,
        invoke_end=None if attempt.invoke_end is None else EPOCH + attempt.invoke_end,
        end_to_end_s=None if throttled or attempt.invoke_end is None else attempt.invoke_end - attempt.received_at,
        environment_id=attempt.env_id,
    )


def _function_reports(sim: Simulation) -> list[FunctionReport]:
    reports = []
    for (function, qualifier), stats in sorted(sim.stats.items()):
        reports.append(
            FunctionReport(
                function=function,
                qualifier=qualifier,
                invocations=stats.invocations,
                cold_starts=stats.cold,
                provisioned_starts=stats.provisioned,
                warm_starts=stats.warm,
                throttles=sum(stats.throttles.values()),
                spillover=stats.spillover,
                spillover_source="simulation (the policy's spillover decision)",
                init=Quantiles.of(stats.init.values),
                duration=Quantiles.of(stats.duration.values),
                end_to_end_cold=Quantiles.of(stats.e2e_cold.values),
                end_to_end_warm=Quantiles.of(stats.e2e_warm.values),
            )
        )
    return reports


def build_result(
    sim: Simulation,
    *,
    loads: Sequence[Any],
    prices: PriceTable,
    description: dict[str, Any],
) -> SimulationResult:
    from lambdalab.simulate.asl import StateMachineLoad
    from lambdalab.simulate.loads import ArtilleryLoad, InvokeLoad, SqsLoad

    names = {spec.name: spec.logical_id for spec in sim.stack.functions.values()}
    invocations = [_invocation(a, names) for a in sim.kept]
    by_id = {id(a): inv for a, inv in zip(sim.kept, invocations, strict=True)}
    events = []
    for env_id, (created, ready) in sim.env_ready.items():
        events.append({"environment_id": env_id, "event": "created", "at": EPOCH + created})
        events.append({"environment_id": env_id, "event": "ready", "at": EPOCH + ready})
    executions: list[Execution] = []
    execution_rows: list[dict[str, Any]] = []
    for load in loads:
        if isinstance(load, StateMachineLoad):
            for record in load.records:
                items = [by_id[id(a)] for a in record.attempts if id(a) in by_id]
                executions.append(
                    Execution(
                        record.name,
                        None,
                        record.machine,
                        EPOCH + record.start,
                        None if record.end is None else EPOCH + record.end,
                        items,
                    )
                )
                execution_rows.append(
                    {
                        "state_machine": record.machine,
                        "name": record.name,
                        "status": record.status,
                        "error": record.error,
                        "duration_s": None if record.end is None else record.end - record.start,
                        "lambda_attempts": len(record.attempts),
                        "throttled_attempts": sum(1 for a in record.attempts if a.outcome is Outcome.THROTTLED),
                        "cold_starts": sum(
                            1
                            for a in record.attempts
                            if a.kind is PolicyStartKind.COLD and a.outcome is not Outcome.THROTTLED
                        ),
                        "retries": record.retries,
                        "state_transitions": record.transitions,
                    }
                )
    source = Source("simulation", str(sim.stack.path), EPOCH + sim.load_start, EPOCH + sim.end)
    report = Report(
        source=source,
        functions=_function_reports(sim),
        executions=executions,
        environments=environments_from_ids(invocations, events),
        invocations=invocations,
    )
    report.notes.append(
        "simulated on a virtual clock with the local cloud's rules; times count from 2026-01-01T00:00:00Z = t 0"
    )
    if sim.dropped_records:
        report.notes.append(
            f"{len(invocations)} invocation records kept of {len(invocations) + sim.dropped_records} "
            "(the counts and quantiles cover all of them; raise --keep-invocations for a longer timeline)"
        )
    report.notes.extend(sim.notes)

    # --- the simulation's own section ---------------------------------------------------------------------------
    throttles_by_reason: dict[str, int] = {}
    functions_rows = []
    for (function, qualifier), stats in sorted(sim.stats.items()):
        for reason, n in stats.throttles.items():
            throttles_by_reason[reason] = throttles_by_reason.get(reason, 0) + n
        functions_rows.append(
            {
                "function": function,
                "logical_id": names.get(function),
                "qualifier": qualifier,
                "invocations": stats.invocations,
                "cold_starts": stats.cold,
                "throttles": dict(stats.throttles),
                "spillover": stats.spillover,
                "errors": dict(stats.outcomes),
                "model": sim.model_of(function).describe(),
            }
        )
    api_rows = {}
    api_requests = 0
    latencies: list[float] = []
    for load in loads:
        if isinstance(load, ArtilleryLoad):
            for route, route_stats in load.by_route.items():
                ordered = sorted(route_stats.latencies)
                latencies.extend(ordered)
                api_requests += route_stats.requests
                api_rows[route] = {
                    "requests": route_stats.requests,
                    "statuses": {str(k): v for k, v in sorted(route_stats.statuses.items())},
                    "latency_s": {
                        "p50": percentile(ordered, 0.5),
                        "p95": percentile(ordered, 0.95),
                        "p99": percentile(ordered, 0.99),
                    },
                }
    sqs_rows = []
    sqs_requests = 0
    for load in loads:
        if isinstance(load, SqsLoad):
            sqs_requests += math.ceil(load.count / load.batch)
    for mapping in sim.mappings:
        queue = mapping.queue
        visible, in_flight = queue.backlog(sim.clock.t)
        sqs_requests += queue.requests
        sqs_rows.append(
            {
                "mapping": mapping.logical_id,
                "queue": queue.spec.logical_id,
                "sent": queue.sent,
                "processed": queue.deleted,
                "dead_lettered": queue.dead_lettered,
                "remaining": visible + in_flight,
                "batches": mapping.batches,
                "throttled_batches": mapping.throttled,
                "failed_batches": mapping.failed,
                "peak_pollers": mapping.scaling.peak_active if mapping.scaling else 0,
            }
        )
    periods = sim.dynamodb_periods()
    dynamo_rows = []
    table_costs = []
    dynamodb_throttles = 0
    for table in sim.stack.tables.values():
        rows = periods.get(table.logical_id, {})
        read = rows.get("read", [])
        write = rows.get("write", [])
        throttled = sum(r[2] for r in read) + sum(r[2] for r in write)
        dynamodb_throttles += throttled
        initial = sim.initial_capacity.get(table.logical_id, (table.read, table.write))
        changes_r = [(sim.load_start, initial[0])]
        changes_w = [(sim.load_start, initial[1])]
        for a in sim.activities:
            if a.resource_id == f"table/{table.name}":
                (changes_r if a.dimension.endswith("ReadCapacityUnits") else changes_w).append((a.at, float(a.new)))
        dynamo_rows.append(
            {
                "table": table.logical_id,
                "billing_mode": table.billing_mode,
                "throttle_events": throttled,
                "consumed_read_units": sum(r[1] for r in read),
                "consumed_write_units": sum(r[1] for r in write),
                "capacity_at_end": {"read": table.read, "write": table.write}
                if table.billing_mode == "PROVISIONED"
                else None,
            }
        )
        table_costs.append(
            {
                "name": table.logical_id,
                "mode": table.billing_mode,
                "read_changes": changes_r,
                "write_changes": changes_w,
                "read_units": sum(r[1] for r in read),
                "write_units": sum(r[1] for r in write),
            }
        )
    provisioned_costs = []
    for spec in sim.stack.functions.values():
        for qualifier, count in sim.initial_provisioned.get(spec.name, {}).items():
            changes = [(sim.load_start, float(count))]
            resource = f"function:{spec.name}:{qualifier}"
            changes += [(a.at, float(a.new)) for a in sim.activities if a.resource_id == resource]
            provisioned_costs.append(
                {
                    "name": spec.logical_id,
                    "qualifier": qualifier,
                    "arch": spec.architecture,
                    "memory_mb": spec.memory_mb,
                    "changes": changes,
                }
            )
    per_function: dict[str, dict[str, Any]] = {}
    for (function, _), stats in sim.stats.items():
        spec = sim.spec_of(function)
        row = per_function.setdefault(
            function,
            {
                "name": spec.logical_id,
                "arch": spec.architecture,
                "memory_mb": spec.memory_mb,
                "requests": 0,
                "billed_ms_on_demand": 0,
                "billed_ms_provisioned": 0,
            },
        )
        row["requests"] += stats.invocations
        row["billed_ms_on_demand"] += int(stats.billed_ms_on_demand)
        row["billed_ms_provisioned"] += int(stats.billed_ms_provisioned)
    transitions = sum(int(r["state_transitions"] or 0) for r in execution_rows)
    costs = estimate(
        prices,
        window=(sim.load_start, sim.end),
        functions=list(per_function.values()),
        provisioned=provisioned_costs,
        tables=table_costs,
        api_requests=api_requests,
        sqs_requests=sqs_requests,
        transitions=transitions,
    )
    load_rows: list[dict[str, Any]] = []
    for load in loads:
        if isinstance(load, InvokeLoad):
            load_rows.append(
                {
                    "kind": "invoke",
                    "function": load.function.logical_id,
                    "qualifier": load.qualifier,
                    "rate": load.rate,
                    "duration_s": load.duration,
                    "count": load.count,
                    "asynchronous": load.asynchronous,
                    "answers": dict(load.statuses),
                }
            )
        elif isinstance(load, SqsLoad):
            load_rows.append(
                {"kind": "sqs", "queue": load.queue, "count": load.count, "rate": load.rate, "batch": load.batch}
            )
        elif isinstance(load, ArtilleryLoad):
            load_rows.append(
                {
                    "kind": "artillery",
                    "script": str(load.script.path),
                    "virtual_users": load.users,
                    "completed": load.users_completed,
                    "failed": load.users_failed,
                    "phases": [{"name": n, "start_s": s, "duration_s": d} for n, s, d in load.phase_log],
                }
            )
        elif isinstance(load, StateMachineLoad):
            load_rows.append(
                {"kind": "state-machine", "state_machine": load.machine.logical_id, "executions": load.executions}
            )
    all_e2e: list[float] = []
    for stats in sim.stats.values():
        all_e2e.extend(stats.e2e_cold.values)
        all_e2e.extend(stats.e2e_warm.values)
    p99 = percentile(sorted(latencies), 0.99) if latencies else percentile(sorted(all_e2e), 0.99)
    errors = sum(sum(s.outcomes.values()) for s in sim.stats.values())
    outcomes = Outcomes(
        invocations=sum(s.invocations for s in sim.stats.values()),
        cold_starts=sum(s.cold for s in sim.stats.values()),
        throttles=sum(throttles_by_reason.values()),
        spillover=sum(s.spillover for s in sim.stats.values()),
        dynamodb_throttles=dynamodb_throttles,
        errors=errors,
        p99_s=p99,
        cost=costs.total,
        cost_per_month=costs.per_month(),
    )
    section = {
        **description,
        "window_s": {"start": sim.load_start, "end": sim.end},
        "outcomes": outcomes.to_json(),
        "throttles_by_reason": throttles_by_reason,
        "functions": functions_rows,
        "environments_created": dict(sim.envs_created),
        "loads": load_rows,
        "api": api_rows,
        "sqs": sqs_rows,
        "dynamodb": dynamo_rows,
        "executions": execution_rows,
        "async": dict(sim.async_outcomes),
        "scaling_activities": [a.__dict__ for a in sim.activities],
        "costs": costs.to_json(),
        "series": series_json(sim),
    }
    result = SimulationResult(report, section, costs, outcomes)
    return result


# --- time series -----------------------------------------------------------------------------------------------


def _rebinned(values: Sequence[float], factor: int, how: str) -> list[float]:
    if factor <= 1:
        return list(values)
    out = []
    for i in range(0, len(values), factor):
        chunk = values[i : i + factor]
        out.append(sum(chunk) if how == "sum" else max(chunk))
    return out


def series_json(sim: Simulation) -> dict[str, Any]:
    series = sim.series
    length = max(1, math.ceil((sim.end - sim.load_start) / series.width))
    factor = max(1, math.ceil(length / MAX_POINTS))

    def padded(values: Any) -> list[float]:
        row = list(values[:length])
        return row + [0.0] * (length - len(row))

    counts = {k: _rebinned(padded(v), factor, "sum") for k, v in series.counts.items()}
    peaks = {k: _rebinned(padded(v), factor, "max") for k, v in series.gauges.items()}
    return {"bin_s": series.width * factor, "start_s": sim.load_start, "counts": counts, "peaks": peaks}


_COLORS = ["#3b82c4", "#d64541", "#2f9e6e", "#f0a33a", "#7b5ea7", "#1aa3a3", "#b5651d", "#5b6670"]


def svg_chart(
    title: str,
    lines: list[tuple[str, list[float]]],
    *,
    bin_s: float,
    unit: str,
    marks: Sequence[tuple[float, str]] = (),
    step: bool = True,
) -> str:
    """One self-contained SVG line chart (x: seconds from the load's start)."""
    lines = [(name, values) for name, values in lines if values and any(v for v in values)]
    if not lines:
        return ""
    legend_rows = math.ceil(len(lines) / 3)
    width, height, left, right, top, bottom = 900, 226 + 16 * legend_rows, 60, 16, 28, 32 + 16 * legend_rows
    n = max(len(v) for _, v in lines)
    peak = max(max(v) for _, v in lines) or 1.0
    top_value = _nice(peak)
    span = n * bin_s

    def x(i: float) -> float:
        return left + (i / max(n, 1)) * (width - left - right)

    def y(v: float) -> float:
        return top + (1 - v / top_value) * (height - top - bottom)

    parts = [
        f'<svg class="sim-chart" role="img" aria-label="{html.escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{left}" y="16" font-weight="600">{html.escape(title)}</text>',
    ]
    for k in range(5):
        value = top_value * k / 4
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#e3e7ea"/>'
        )
        parts.append(f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:g}</text>')
    for k in range(6):
        t = span * k / 5
        parts.append(f'<text x="{x(n * k / 5):.1f}" y="{height - bottom + 14}" text-anchor="middle">{_clock(t)}</text>')
    parts.append(f'<text x="{width - right}" y="16" text-anchor="end" fill="#5b6670">{html.escape(unit)}</text>')
    for at, label in marks:
        px = x(at / bin_s)
        parts.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{top}" y2="{height - bottom}" '
            'stroke="#7b5ea7" stroke-dasharray="3,3"/>'
        )
        parts.append(f'<text x="{px + 3:.1f}" y="{top + 10}" font-size="9" fill="#7b5ea7">{html.escape(label)}</text>')
    for index, (name, values) in enumerate(lines):
        color = _COLORS[index % len(_COLORS)]
        points = []
        for i, v in enumerate(values):
            if step:
                points.append(f"{x(i):.1f},{y(v):.1f}")
                points.append(f"{x(i + 1):.1f},{y(v):.1f}")
            else:
                points.append(f"{x(i + 0.5):.1f},{y(v):.1f}")
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{" ".join(points)}">'
            f"<title>{html.escape(name)}</title></polyline>"
        )
        lx = left + (index % 3) * 290
        ly = height - 16 * legend_rows + 4 + (index // 3) * 16
        parts.append(
            f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{color}"/>'
            f'<text x="{lx + 14}" y="{ly}">{html.escape(name[:44])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _nice(value: float) -> float:
    if value <= 0:
        return 1.0
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exponent:
            return step * exponent
    return 10 * exponent


def _clock(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def charts(result: SimulationResult) -> list[str]:
    body = result.section["series"]
    bin_s = body["bin_s"]
    counts, peaks = body["counts"], body["peaks"]
    start = body["start_s"]
    per_s = lambda values: [v / bin_s for v in values]  # noqa: E731
    out: list[str] = []
    marks = [(a["at"] - start, f"{a['old']}→{a['new']}") for a in result.section["scaling_activities"]]
    arrivals = [(k.removeprefix("arrivals "), per_s(v)) for k, v in sorted(counts.items()) if k.startswith("arrivals ")]
    out.append(svg_chart("Arrivals per function and alias", arrivals, bin_s=bin_s, unit="calls/s"))
    concurrency = [
        (k.removeprefix("concurrency "), v) for k, v in sorted(peaks.items()) if k.startswith("concurrency ")
    ]
    out.append(svg_chart("Concurrent executions (peak per bin)", concurrency, bin_s=bin_s, unit="executions"))
    provisioned = [
        (k.removeprefix("provisioned "), v) for k, v in sorted(peaks.items()) if k.startswith("provisioned ")
    ]
    out.append(
        svg_chart(
            "Provisioned concurrency: allocated vs busy", provisioned, bin_s=bin_s, unit="environments", marks=marks
        )
    )
    utilisation = [
        (k.removeprefix("utilisation "), v) for k, v in sorted(peaks.items()) if k.startswith("utilisation ")
    ]
    out.append(
        svg_chart(
            "Utilisation datapoints target tracking saw (per minute)",
            utilisation,
            bin_s=bin_s,
            unit="ratio / %",
            marks=marks,
        )
    )
    throttles = [
        (k.removeprefix("throttles "), per_s(v)) for k, v in sorted(counts.items()) if k.startswith("throttles ")
    ]
    out.append(svg_chart("Throttles by reason", throttles, bin_s=bin_s, unit="per s"))
    spill = [(k, per_s(v)) for k, v in sorted(counts.items()) if k.startswith(("spillover ", "cold starts "))]
    out.append(svg_chart("Spillover and cold starts", spill, bin_s=bin_s, unit="per s"))
    sqs = [(k, v) for k, v in sorted(peaks.items()) if k.startswith(("sqs ", "pollers "))]
    out.append(svg_chart("SQS backlog and pollers", sqs, bin_s=bin_s, unit="messages / pollers"))
    dynamo = [(k, v) for k, v in sorted(peaks.items()) if k.startswith("dynamodb provisioned")]
    dynamo += [(k, per_s(v)) for k, v in sorted(counts.items()) if k.startswith("dynamodb ")]
    out.append(
        svg_chart(
            "DynamoDB: provisioned capacity, consumed units/s, throttled requests/s",
            dynamo,
            bin_s=bin_s,
            unit="units/s",
            marks=marks,
        )
    )
    return [c for c in out if c]


def render_page(result: SimulationResult) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(line.service)}</td><td>{html.escape(line.item)}</td>"
        f"<td>{line.quantity:,.2f} {html.escape(line.unit)}</td><td>${line.cost:,.4f}</td></tr>"
        for line in result.costs.lines
    )
    o = result.outcomes
    summary = (
        f"<p>{o.invocations:,} invocations, {o.cold_starts:,} cold starts, {o.throttles:,} throttles, "
        f"{o.spillover:,} spillovers, {o.dynamodb_throttles:,} DynamoDB throttle events; p99 {_ms(o.p99_s)}; "
        f"cost ${o.cost:,.4f} for the run (${o.cost_per_month:,.2f} a month if it repeated)</p>"
    )
    activities = "".join(
        f"<tr><td>{a['at'] - result.section['window_s']['start']:,.0f} s</td><td>{html.escape(a['resource_id'])}</td>"
        f"<td>{a['direction']}</td><td>{a['old']} → {a['new']}</td><td>{a['datapoint']:.3g}</td></tr>"
        for a in result.section["scaling_activities"]
    )
    extra = (
        "<h2>Simulation</h2>"
        + summary
        + '<h2>Time series</h2><div class="charts">'
        + "".join(charts(result))
        + "</div>"
        + (
            "<h2>Scaling activities</h2><table><tr><th>at</th><th>resource</th><th>direction</th>"
            "<th>capacity</th><th>datapoint</th></tr>" + activities + "</table>"
            if activities
            else ""
        )
        + f'<h2>Cost estimate</h2><div class="muted">{html.escape(result.costs.prices)}</div>'
        + f"<table><tr><th>service</th><th>item</th><th>quantity</th><th>cost</th></tr>{rows}"
        f"<tr><td></td><td><b>total</b></td><td></td><td><b>${result.costs.total:,.4f}</b></td></tr></table>"
    )
    return render_html(result.report, title="Simulation report", extra_sections=extra)


def render_terminal(result: SimulationResult, console: Console) -> None:
    render_report(result.report, console)
    section = result.section
    if section["throttles_by_reason"]:
        table = Table(title="Throttles by reason")
        table.add_column("reason")
        table.add_column("count", justify="right")
        for reason, n in sorted(section["throttles_by_reason"].items()):
            table.add_row(reason, f"{n:,}")
        console.print(table)
    if section["api"]:
        table = Table(title="API routes (latency as the client saw it)")
        for column in ("route", "requests", "statuses", "p50", "p99"):
            table.add_column(column, justify="left" if column in ("route", "statuses") else "right")
        for route, row in section["api"].items():
            lat = row["latency_s"]
            table.add_row(
                route,
                f"{row['requests']:,}",
                ", ".join(f"{k}: {v:,}" for k, v in row["statuses"].items()),
                _ms(lat["p50"]),
                _ms(lat["p99"]),
            )
        console.print(table)
    if any(row["sent"] or row["batches"] for row in section["sqs"]):
        table = Table(title="SQS event source mappings")
        for column in (
            "mapping",
            "sent",
            "processed",
            "dead-lettered",
            "remaining",
            "batches",
            "throttled",
            "failed",
            "peak pollers",
        ):
            table.add_column(column, justify="left" if column == "mapping" else "right")
        for row in section["sqs"]:
            table.add_row(
                row["mapping"],
                *(
                    f"{row[k]:,}"
                    for k in (
                        "sent",
                        "processed",
                        "dead_lettered",
                        "remaining",
                        "batches",
                        "throttled_batches",
                        "failed_batches",
                        "peak_pollers",
                    )
                ),
            )
        console.print(table)
    if any(
        row["throttle_events"] or row["consumed_read_units"] or row["consumed_write_units"]
        for row in section["dynamodb"]
    ):
        table = Table(title="DynamoDB")
        for column in ("table", "mode", "consumed RCU", "consumed WCU", "throttle events", "capacity at end"):
            table.add_column(column, justify="left" if column in ("table", "mode") else "right")
        for row in section["dynamodb"]:
            cap = row["capacity_at_end"]
            table.add_row(
                row["table"],
                row["billing_mode"],
                f"{row['consumed_read_units']:,.0f}",
                f"{row['consumed_write_units']:,.0f}",
                f"{row['throttle_events']:,}",
                "-" if cap is None else f"{cap['read']:g} / {cap['write']:g}",
            )
        console.print(table)
    if section["executions"]:
        table = Table(title="Step Functions executions")
        for column in (
            "state machine",
            "execution",
            "status",
            "duration",
            "Lambda attempts",
            "throttled",
            "cold",
            "retries",
        ):
            table.add_column(column)
        for row in section["executions"][:20]:
            table.add_row(
                row["state_machine"],
                row["name"],
                row["status"],
                f"{row['duration_s']:.2f} s" if row["duration_s"] is not None else "-",
                str(row["lambda_attempts"]),
                str(row["throttled_attempts"]),
                str(row["cold_starts"]),
                str(row["retries"]),
            )
        console.print(table)
    if section["scaling_activities"]:
        table = Table(title="Scaling activities")
        for column in ("at", "resource", "direction", "capacity", "datapoint"):
            table.add_column(column)
        start = section["window_s"]["start"]
        for a in section["scaling_activities"]:
            table.add_row(
                f"{a['at'] - start:,.0f} s",
                a["resource_id"],
                a["direction"],
                f"{a['old']} → {a['new']}",
                f"{a['datapoint']:.3g}",
            )
        console.print(table)
    costs = Table(title=f"Cost estimate ({result.costs.prices})")
    for column in ("service", "item", "quantity", "cost"):
        costs.add_column(column, justify="right" if column in ("quantity", "cost") else "left")
    for line in result.costs.lines:
        costs.add_row(line.service, line.item, f"{line.quantity:,.2f} {line.unit}", f"${line.cost:,.4f}")
    costs.add_row("", "total", f"{result.costs.window_s / 60:,.1f} min simulated", f"${result.costs.total:,.4f}")
    console.print(costs)
    o = result.outcomes
    console.print(
        f"simulated {o.invocations:,} invocations: {o.cold_starts:,} cold starts, {o.throttles:,} throttles, "
        f"{o.spillover:,} spillovers, {o.dynamodb_throttles:,} DynamoDB throttle events, p99 {_ms(o.p99_s)}; "
        f"${o.cost:,.4f} (${o.cost_per_month:,.2f} a month if repeated)"
    )


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f} ms"
