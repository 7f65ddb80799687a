"""The report in the terminal: one rich table per view, warnings first, what could not be read last."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.table import Table

from lambdalab.traces.report import SOURCE_LABELS, Report, iso

LOG = logging.getLogger(__name__)


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def render(report: Report, console: Console | None = None) -> None:
    console = console or Console()
    source = report.source.to_json()
    window = source["window"]
    where = f"{SOURCE_LABELS.get(report.source.kind, report.source.kind)}: {report.source.detail}"
    if window:
        where += f"  [{window['start']} → {window['end']}]"
    console.print(f"[bold]Cold-start report[/bold]  {where}")
    if report.coverage is not None:
        console.print(f"coverage: {report.coverage.label} — {report.coverage.detail}")
    for warning in report.warnings:
        console.print(f"[bold yellow]warning:[/bold yellow] {warning}")

    table = Table(title="Per function and alias (times in ms)", show_lines=False)
    for column, justify in (
        ("function", "left"),
        ("qualifier", "left"),
        ("calls", "right"),
        ("cold", "right"),
        ("cold %", "right"),
        ("prov.", "right"),
        ("INIT p50/p95/max", "right"),
        ("duration p50/p95/p99", "right"),
        ("e2e cold p50", "right"),
        ("e2e warm p50", "right"),
        ("gap", "right"),
        ("throttles", "right"),
        ("spillover", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for f in report.functions:
        table.add_row(
            f.function,
            f.qualifier,
            str(f.invocations),
            f"[bold red]{f.cold_starts}[/bold red]" if f.cold_starts else "0",
            _share(f.cold_share),
            str(f.provisioned_starts),
            f"{ms(f.init.p50)} / {ms(f.init.p95)} / {ms(f.init.max)}",
            f"{ms(f.duration.p50)} / {ms(f.duration.p95)} / {ms(f.duration.p99)}",
            ms(f.end_to_end_cold.p50),
            ms(f.end_to_end_warm.p50),
            ms(f.gap_p50_s),
            "n/a" if f.throttles is None else str(f.throttles),
            "n/a" if f.spillover is None else str(f.spillover),
        )
    if report.functions:
        console.print(table)
    else:
        console.print("no Lambda invocations found")

    if report.executions:
        runs = Table(title="Step Functions executions (times in ms)")
        for column in ("execution", "trace", "duration", "items", "cold items", "item durations (c = cold)"):
            runs.add_column(column)
        for execution in report.executions:
            label = execution.execution_arn.rsplit(":", 1)[-1] if execution.execution_arn else "-"
            items = [
                f"{ms(item.duration_s)}{'c' if item.cold else ''}"
                for item in sorted(execution.items, key=lambda i: i.first_time)
            ]
            shown = ", ".join(items[:12]) + (f" … (+{len(items) - 12})" if len(items) > 12 else "")
            runs.add_row(
                label,
                execution.trace_id,
                ms(execution.duration_s),
                str(len(execution.items)),
                str(sum(1 for item in execution.items if item.cold)),
                shown,
            )
        console.print(runs)

    for note in report.notes:
        console.print(f"[dim]note: {note}[/dim]")
    spill_notes = sorted({f.spillover_source for f in report.functions if f.spillover is None})
    for note in spill_notes:
        console.print(f"[dim]spillover: {note}[/dim]")
    summary = report.problem_summary()
    if summary["count"]:
        reasons = ", ".join(f"{reason} x{count}" for reason, count in summary["reasons"].items())
        console.print(f"[yellow]could not read {summary['count']} item(s):[/yellow] {reasons}")
    if report.invocations:
        first = min(i.first_time for i in report.invocations)
        console.print(f"[dim]{len(report.invocations)} invocation(s) from {iso(first)}[/dim]")
