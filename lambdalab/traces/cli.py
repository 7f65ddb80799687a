"""`lambdalab traces`: flags, source selection and output; the lead's cli.py mounts add_arguments and run."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError
from rich.console import Console

from lambdalab.errors import UserError
from lambdalab.traces import aws, logs
from lambdalab.traces.analysis import extract
from lambdalab.traces.html import write_html
from lambdalab.traces.reader import RetryPolicy, Window, XRayReader, read_run_dir, read_trace_file, window_from_args
from lambdalab.traces.report import Coverage, Report, Source, from_invocations, from_traces
from lambdalab.traces.terminal import render

LOG = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Cold starts from X-Ray traces (AWS, or the local cloud via AWS_ENDPOINT_URL), Lambda's REPORT lines in "
        "CloudWatch Logs (--logs), a saved BatchGetTraces file, or a local run directory."
    )
    src = parser.add_argument_group("source (default: the X-Ray API of the configured endpoint)")
    src.add_argument("--stack", metavar="NAME", help="report on this CloudFormation stack's functions")
    src.add_argument("--function", metavar="NAME", action="append", default=[], help="a function (repeatable)")
    src.add_argument("--execution", metavar="ARN", help="a Step Functions execution: its trace and items")
    src.add_argument("--since", metavar="DURATION", help="window ending now: 30m, 2h, 1d (default 1h)")
    src.add_argument("--start", metavar="TIME", help="window start, ISO-8601 (UTC if no offset)")
    src.add_argument("--end", metavar="TIME", help="window end, ISO-8601 (default now)")
    src.add_argument("--run-dir", metavar="PATH", type=Path, help="read a local run directory instead of X-Ray")
    src.add_argument("--file", metavar="PATH", type=Path, help="read saved BatchGetTraces output (JSON)")
    src.add_argument(
        "--logs",
        action="store_true",
        help="read Lambda's REPORT lines from CloudWatch Logs instead of X-Ray: every invocation, not a sample",
    )
    src.add_argument(
        "--log-group",
        metavar="NAME",
        action="append",
        default=[],
        help="with --logs: also read this log group, every stream in it (repeatable; implies --logs)",
    )
    src.add_argument("--max-traces", metavar="N", type=int, default=20_000, help="stop after N traces (20000)")
    src.add_argument("--region", help="AWS region (default: the profile's or AWS_REGION)")
    src.add_argument("--profile", help="AWS profile")
    out = parser.add_argument_group("output (default: a table)")
    out.add_argument("--json", action="store_true", help="print the report as JSON (schema in docs/TRACES.md)")
    out.add_argument("--html", metavar="PATH", type=Path, help="also write a self-contained HTML report")


def run(args: argparse.Namespace, *, stdout: Any = None) -> int:
    """Build the report from the chosen source and print it. User errors raise UserError."""
    stdout = stdout or sys.stdout
    if args.run_dir and args.file:
        raise UserError("use either --run-dir or --file, not both")
    if args.max_traces is not None and args.max_traces < 1:
        raise UserError("--max-traces must be at least 1")
    use_logs = args.logs or bool(args.log_group)
    offline = args.run_dir or args.file
    if offline and (args.stack or args.execution or use_logs):
        raise UserError("--stack, --execution and --logs read AWS; they cannot be combined with --run-dir or --file")
    if use_logs and args.execution:
        raise UserError("--execution reads X-Ray; with --logs name the functions (--function or --stack)")
    # This command reads AWS (or files) from outside any local cloud: its own composition root, and its one reading
    # of the clock, which --since / the default last hour count back from.
    now = datetime.now(UTC)
    if args.run_dir:
        report = _from_run_dir(args)
    elif use_logs:
        report = _from_logs(args, now)
    elif args.file:
        outcome = read_trace_file(args.file)
        report = from_traces(outcome, Source("file", str(args.file)), functions=args.function or None)
    else:
        report = _from_xray(args, now)
    if args.html:
        write_html(report, args.html)
    try:
        if args.json:
            json.dump(report.to_json(), stdout, indent=2, sort_keys=False)
            stdout.write("\n")
        else:
            render(report, Console(file=stdout, width=200 if not stdout.isatty() else None))
            if args.html:
                stdout.write(f"HTML report: {args.html}\n")
        stdout.flush()
    except BrokenPipeError:  # `lambdalab traces --json | head`: the reader left, which is not an error
        LOG.debug("stdout closed early")
    return 0


def _from_run_dir(args: argparse.Namespace) -> Report:
    run = read_run_dir(args.run_dir)
    return from_invocations(
        run.invocations,
        Source("run-dir", str(args.run_dir)),
        environment_events=run.environment_events,
        functions=args.function or None,
        problems=run.problems,
        coverage=Coverage(True, "the local cloud records every invocation, throttles included"),
    )


def _session(args: argparse.Namespace) -> Any:
    try:
        return boto3.Session(profile_name=args.profile, region_name=args.region)
    except BotoCoreError as exc:  # e.g. ProfileNotFound
        raise UserError(str(exc)) from None


def _from_xray(args: argparse.Namespace, now: datetime) -> Report:
    requested = window_from_args(args.since, args.start, args.end, now=now)  # flags checked before any AWS call
    session = _session(args)
    retry = RetryPolicy()
    return _aws_call("X-Ray", lambda: _xray_report(args, session, retry, requested))


def _from_logs(args: argparse.Namespace, now: datetime) -> Report:
    window = window_from_args(args.since, args.start, args.end, now=now)  # flags checked before any AWS call
    session = _session(args)
    return _aws_call("CloudWatch Logs", lambda: _logs_report(args, session, window))


def _aws_call(what: str, build: Callable[[], Report]) -> Report:
    """`build()`, with AWS's failures turned into one-line user errors."""
    try:
        return build()
    except NoRegionError:
        raise UserError("no AWS region: pass --region or set AWS_REGION") from None
    except NoCredentialsError:
        raise UserError("no AWS credentials: pass --profile, or `eval $(lambdalab env)` for the local cloud") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise UserError(f"{exc.operation_name}: {error.get('Code')}: {error.get('Message')}") from None
    except BotoCoreError as exc:
        raise UserError(f"cannot reach the {what} endpoint: {exc}") from None


def _xray_report(args: argparse.Namespace, session: Any, retry: RetryPolicy, requested: Window) -> Report:
    functions: list[str] = list(args.function)
    if args.stack:
        functions.extend(name for name in aws.stack_functions(session, args.stack, retry) if name not in functions)
    # botocore's own retries are off for X-Ray: RetryPolicy is the one bounded, jittered retry on throttling.
    xray = session.client("xray", config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
    reader = XRayReader(xray, retry=retry, max_traces=args.max_traces)
    execution_traces: dict[str, str] = {}
    window: Window
    if args.execution:
        lookup = aws.describe_execution(session, args.execution, retry)
        window = lookup.window if lookup.window is not None and not (args.since or args.start) else requested
        if lookup.trace_id:
            execution_traces[lookup.trace_id] = args.execution
            outcome = reader.batch_get([lookup.trace_id])
        else:
            # No traceHeader (tracing off on the state machine): the functions its history called, in its window.
            functions.extend(name for name in lookup.functions if name not in functions)
            outcome = reader.read(window, functions)
    else:
        window = requested
        outcome = reader.read(window, functions)
    endpoint = reader.client.meta.endpoint_url
    source = Source("xray", endpoint, window.start.timestamp(), window.end.timestamp())
    seen = {(i.function, i.qualifier) for i in extract(outcome.traces).invocations}
    names = functions or sorted({name for name, _ in seen})
    metrics = aws.read_metrics(session, names, sorted(k for k in seen if k[0] in names), window)
    report = from_traces(
        outcome,
        source,
        functions=functions or None,
        execution_traces=execution_traces,
        spillover_metrics=metrics.spillover,
        spillover_note="unavailable: " + (metrics.notes[0] if metrics.notes else "no function named (--function)"),
    )
    traced: dict[str, int] = {}
    for item in report.invocations:
        traced[item.function] = traced.get(item.function, 0) + 1
    warnings, notes = aws.sampling_warnings(traced, metrics, aws.sampling_rules(session))
    report.coverage = _xray_coverage(traced, metrics.invocations)
    report.warnings.extend(warnings)
    report.notes.extend(reader.notes + metrics.notes + notes)
    if retry.retried:
        report.notes.append(f"{retry.retried} throttled call(s) were retried")
    return report


def _xray_coverage(traced: dict[str, int], counted: dict[str, int]) -> Coverage:
    """Traced against CloudWatch's Invocations count: partial when X-Ray missed some, unknown when not comparable."""
    if not counted:
        return Coverage(
            None, "X-Ray keeps only sampled requests and CloudWatch's counts were not read; --logs reads every one"
        )
    seen = sum(min(traced.get(name, 0), count) for name, count in counted.items())
    total = sum(counted.values())
    if seen < total:
        return Coverage(False, f"X-Ray traced {seen} of the {total} invocations CloudWatch counted; --logs reads all")
    return Coverage(True, f"X-Ray traced all {total} invocations CloudWatch counted")


def _logs_report(args: argparse.Namespace, session: Any, window: Window) -> Report:
    notes: list[str] = []
    named: list[str] = list(args.function)
    functions = list(named)
    if args.stack:
        stack = aws.stack_functions(session, args.stack, RetryPolicy())
        functions.extend(name for name in stack if name not in functions)
    # FilterLogEvents allows a few calls a second per account: botocore's standard mode backs off on throttling.
    client = session.client("logs", config=Config(retries={"mode": "standard", "max_attempts": 10}))
    reader = logs.LogsReader(client)
    targets: list[logs.Target] = []
    if functions:
        lookup = logs.logging_config_lookup(session, notes)
        targets, custom = logs.function_targets(functions, lookup, required=lambda name: name in named)
        notes.extend(custom)
    targets.extend(logs.Target(group) for group in args.log_group)
    if not targets:
        groups = reader.lambda_groups()
        if len(groups) > logs.MAX_DISCOVERED_GROUPS:
            notes.append(
                f"{len(groups)} log groups under {logs.LAMBDA_PREFIX}: read the first {logs.MAX_DISCOVERED_GROUPS}; "
                "name the functions (--function, --stack) to read others"
            )
            groups = groups[: logs.MAX_DISCOVERED_GROUPS]
        targets = [logs.Target(group, required=False) for group in groups]
        if not groups:
            notes.append(f"no log group under {logs.LAMBDA_PREFIX} (no function has been invoked?)")
    outcome = reader.read(targets, window)
    groups_read = len({t.group for t in targets}) - len(reader.missing)
    source = Source(
        "logs",
        f"{client.meta.endpoint_url} ({groups_read} log group{'s' if groups_read != 1 else ''})",
        window.start.timestamp(),
        window.end.timestamp(),
    )
    report = from_invocations(
        outcome.invocations,
        source,
        functions=None,
        problems=outcome.problems,
        coverage=logs.COVERAGE,
        throttles_known=False,
        spillover_note=logs.SPILLOVER_NOTE,
    )
    if outcome.reports:
        formats = ", ".join(f"{kind} {count}" for kind, count in sorted(outcome.formats.items()))
        notes.append(f"{outcome.reports} REPORT lines read ({formats}), {outcome.init_starts} INIT_START")
    else:
        report.warnings.append(
            "no REPORT line in the window: the functions were not invoked then, or their logs go elsewhere "
            "(LoggingConfig.LogGroup; --log-group)"
        )
    notes.append(logs.LIMITS_NOTE)
    report.notes.extend(notes + reader.notes)
    return report


def main(argv: list[str] | None = None) -> int:
    """Standalone entry for scripts/traces.sh before the lead's `lambdalab` CLI mounts this module."""
    parser = argparse.ArgumentParser(prog="lambdalab traces")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        return run(args)
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
