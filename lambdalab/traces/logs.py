"""Cold starts from CloudWatch Logs: Lambda's REPORT lines, one per invocation that reached an environment.

X-Ray samples (the default rule: 1 request a second plus 5 %), so a burst of cold starts is mostly untraced. Lambda
writes a REPORT for every invocation into the log stream of the execution environment that ran it, with
``Init Duration`` on cold starts only — so the logs count cold starts completely. This module reads them:

- FilterLogEvents over each function's log group (``/aws/lambda/<name>``, or the function's
  ``LoggingConfig.LogGroup``), within the window, with one filter pattern that keeps REPORT (text and JSON
  ``platform.report``), INIT_START / ``platform.initStart`` and stand-alone XRAY lines; boto3's paginator follows
  ``nextToken`` (AWS may return empty pages with a token while it searches) and botocore's standard retry mode
  backs off on throttling (FilterLogEvents allows a few calls a second per account).
- The lines are parsed by :mod:`lambdalab.logs.discovery`, the parser the local Logs Insights uses.
- One Invocation per REPORT: cold when it carries ``Init Duration``; "provisioned" when its environment is a
  provisioned-concurrency one — the first REPORT after the stream's INIT_START carries no Init Duration (INIT ran
  ahead of any request), or a JSON ``platform.initStart`` says ``provisioned-concurrency`` — for every call that
  environment serves, as the local cloud's run records count them; warm otherwise. The stream is the environment;
  the stream name gives the version (``YYYY/MM/DD/[<version>]<32 hex>``; a custom group adds the function's name).

What the logs cannot say: throttled calls (they never reach an environment), the alias (streams name versions),
spillover, and the time before INIT or after the response (end to end = Init Duration + Duration).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from lambdalab.errors import UserError
from lambdalab.logs.discovery import ReportRecord, parse_init_start, parse_report, parse_xray
from lambdalab.traces.analysis import UNQUALIFIED, Invocation, StartKind
from lambdalab.traces.model import Problem
from lambdalab.traces.reader import Window
from lambdalab.traces.report import Coverage

LOG = logging.getLogger(__name__)

# Unstructured terms joined with OR (`?`): text REPORT / INIT_START / XRAY lines and the JSON platform records.
FILTER_PATTERN = '?"REPORT RequestId" ?"INIT_START" ?"XRAY TraceId" ?"platform.report" ?"platform.initStart"'
LAMBDA_PREFIX = "/aws/lambda/"
MAX_DISCOVERED_GROUPS = 100  # log groups searched when no function is named; beyond it, name them
PROVISIONED_INIT = "provisioned-concurrency"

_STREAM = re.compile(r"^\d{4}/\d{2}/\d{2}/(?P<function>[^\[\]]*)\[(?P<version>[^\]]+)\](?P<instance>[0-9A-Za-z]+)$")


COVERAGE = Coverage(
    True,
    "Lambda writes a REPORT line for every invocation that reached an execution environment; throttled calls never "
    "do, so throttles are unknown",
)
SPILLOVER_NOTE = "unavailable: Lambda's logs do not record spillover"
LIMITS_NOTE = (
    "from logs: throttles unknown (a throttled call never reaches a function; see the CloudWatch metric Throttles), "
    "qualifier = the version in the stream name (aliases are not logged), end to end = Init Duration + Duration"
)


def parse_stream_name(name: str) -> tuple[str | None, str | None]:
    """(function, version) of a Lambda log stream: ``2026/11/22/[$LATEST]<hex>`` → (None, "$LATEST");
    ``2026/11/22/my-fn[3]<hex>`` (a custom log group) → ("my-fn", "3"); anything else → (None, None)."""
    match = _STREAM.match(name)
    if match is None:
        return None, None
    return match.group("function") or None, match.group("version")


def default_group(function: str) -> str:
    return f"{LAMBDA_PREFIX}{function}"


@dataclass(frozen=True)
class Target:
    """One log group to read. `function`: the function its streams belong to (None: name it from the stream or the
    group); `required`: named by the user, so a missing group is an error (from a stack: a note)."""

    group: str
    function: str | None = None
    required: bool = True


@dataclass(frozen=True, slots=True)
class LogLine:
    """One event as FilterLogEvents (or the local store) gives it."""

    group: str
    stream: str
    timestamp_ms: int
    message: str


@dataclass
class LogsOutcome:
    invocations: list[Invocation] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    formats: Counter[str] = field(default_factory=Counter)  # REPORT lines per log format (Text / JSON)
    init_starts: int = 0

    @property
    def reports(self) -> int:
        return sum(self.formats.values())


def function_of(group: str, stream: str, target_function: str | None = None) -> str:
    """The function a stream belongs to: the stream's own name for it (custom groups), the one the target names, or
    the group's (``/aws/lambda/<name>``)."""
    named, _ = parse_stream_name(stream)
    if named:
        return named
    if target_function:
        return target_function
    return group[len(LAMBDA_PREFIX) :] if group.startswith(LAMBDA_PREFIX) else group


def invocations_from_lines(lines: Iterable[LogLine], functions: dict[str, list[str]] | None = None) -> LogsOutcome:
    """Every REPORT in `lines` as an Invocation (see the module docstring for how each start is classified).

    `lines` may interleave streams (FilterLogEvents does); within a stream they must be in the stream's order.
    `functions` maps a log group to the functions wanted from it (a custom group shared by several functions keeps
    only their streams); a group not in it keeps every stream."""
    functions = functions or {}
    out = LogsOutcome()
    streams: dict[tuple[str, str], list[LogLine]] = {}
    for line in lines:
        streams.setdefault((line.group, line.stream), []).append(line)
    for (group, stream), events in streams.items():
        wanted = functions.get(group) or []
        name = function_of(group, stream, wanted[0] if wanted else None)
        if wanted and name not in wanted:
            continue  # another function's stream in a shared custom group
        _, version = parse_stream_name(stream)
        _read_stream(_Stream(name, version or UNQUALIFIED, group, stream), events, out)
    out.invocations.sort(key=lambda item: item.first_time)
    return out


@dataclass(frozen=True, slots=True)
class _Stream:
    """One log stream = one execution environment of `function` at `version`."""

    function: str
    version: str
    group: str
    name: str


def _read_stream(stream: _Stream, events: Sequence[LogLine], out: LogsOutcome) -> None:
    pending_init: float | None = None  # the time of an INIT_START no REPORT has followed yet
    provisioned = False  # a provisioned-concurrency environment (INIT ran before any request)
    last: Invocation | None = None
    for line in events:
        message = line.message
        report = parse_report(message)
        if report is not None:
            out.formats[report.log_format] += 1
            if report.init_duration_ms is not None:
                provisioned = False  # INIT in the request's path: an on-demand environment
            elif pending_init is not None:
                provisioned = True  # INIT_START with no Init Duration after it: INIT ran ahead of this request
            last = _invocation(stream, line.timestamp_ms, report, pending_init, provisioned)
            out.invocations.append(last)
            pending_init = None
            continue
        init = parse_init_start(message)
        if init is not None:
            out.init_starts += 1
            pending_init = line.timestamp_ms / 1000
            if init.init_type is not None:  # JSON says; text tells by the first REPORT
                provisioned = init.init_type == PROVISIONED_INIT
            continue
        xray = parse_xray(message)
        if xray is not None:
            if last is not None and last.trace_id is None:
                last.trace_id = xray[0]  # the XRAY line written as its own event right after its REPORT
            continue
        if message.startswith("REPORT RequestId:") or '"platform.report"' in message:
            out.problems.append(
                Problem(
                    f"{stream.group} {stream.name} at {line.timestamp_ms}", "unreadable REPORT line: " + message[:80]
                )
            )


def _invocation(
    stream: _Stream,
    timestamp_ms: int,
    report: ReportRecord,
    pending_init: float | None,
    provisioned: bool,
) -> Invocation:
    invoke_end = timestamp_ms / 1000  # Lambda writes REPORT when the invocation is over
    invoke_start = invoke_end - report.duration_ms / 1000
    init_start = init_end = None
    if provisioned:
        kind = StartKind.PROVISIONED
        init_start = pending_init  # the environment's first call: its INIT began then; the end is not in the logs
    elif report.init_duration_ms is not None:
        kind = StartKind.COLD
        init_end = invoke_start
        init_start = init_end - report.init_duration_ms / 1000
    else:
        kind = StartKind.WARM
    cold_init_s = report.init_duration_ms / 1000 if kind is StartKind.COLD and report.init_duration_ms else 0.0
    return Invocation(
        function=stream.function,
        qualifier=stream.version,
        start_kind=kind,
        trace_id=report.trace_id,
        request_id=report.request_id,
        error=report.status != "success",
        init_start=init_start,
        init_end=init_end,
        invoke_start=invoke_start,
        invoke_end=invoke_end,
        end_to_end_s=cold_init_s + report.duration_ms / 1000,
        environment_id=stream.name,
    )


# --- reading CloudWatch Logs -------------------------------------------------------------------------------------


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@dataclass
class LogsReader:
    """FilterLogEvents over log groups (boto3 paginator); DescribeLogGroups to find Lambda's groups."""

    client: Any  # a boto3 "logs" client
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def lines(self, target: Target, window: Window) -> Iterator[LogLine]:
        paginator = self.client.get_paginator("filter_log_events")
        pages = paginator.paginate(
            logGroupName=target.group,
            startTime=int(window.start.timestamp() * 1000),
            endTime=int(window.end.timestamp() * 1000),
            filterPattern=FILTER_PATTERN,
        )
        try:
            for page in pages:
                for event in page.get("events") or []:
                    yield LogLine(
                        target.group,
                        str(event.get("logStreamName", "")),
                        int(event.get("timestamp", 0)),
                        str(event.get("message", "")),
                    )
        except ClientError as exc:
            if _error_code(exc) != "ResourceNotFoundException":
                raise
            if target.required:
                what = f" (function {target.function})" if target.function else ""
                raise UserError(
                    f"log group {target.group}{what} does not exist: Lambda creates it on the function's first "
                    "invocation; check the name, --region, or the function's LoggingConfig.LogGroup"
                ) from None
            self.missing.append(target.group)

    def read(self, targets: Sequence[Target], window: Window) -> LogsOutcome:
        """Each group once, whatever number of targets name it."""
        functions: dict[str, list[str]] = {}
        first: dict[str, Target] = {}
        every: set[str] = set()  # groups named without a function (--log-group): every stream is kept
        for target in targets:
            first.setdefault(target.group, target)
            if target.function:
                functions.setdefault(target.group, []).append(target.function)
            else:
                every.add(target.group)
        for group in every:
            functions.pop(group, None)
        lines: list[LogLine] = []
        for target in first.values():
            lines.extend(self.lines(target, window))
        if self.missing:
            self.notes.append("no log group (never invoked?): " + ", ".join(sorted(self.missing)))
        return invocations_from_lines(lines, functions)

    def lambda_groups(self, prefix: str = LAMBDA_PREFIX) -> list[str]:
        """Every log group under `prefix` (DescribeLogGroups, paginated)."""
        names: list[str] = []
        for page in self.client.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix):
            names.extend(str(g["logGroupName"]) for g in page.get("logGroups") or [] if g.get("logGroupName"))
        return names


def function_targets(
    functions: Sequence[str],
    lookup: Callable[[str], str | None],
    *,
    required: Callable[[str], bool] = lambda _name: True,
) -> tuple[list[Target], list[str]]:
    """A target per function: its `LoggingConfig.LogGroup` when `lookup` finds one, else ``/aws/lambda/<name>``.

    `lookup` returns the configured log group, or None when it cannot be read (the default is then assumed). Returns
    the targets and notes about custom groups."""
    targets: list[Target] = []
    notes: list[str] = []
    for name in functions:
        group = lookup(name)
        if group and group != default_group(name):
            notes.append(f"{name} logs to {group} (LoggingConfig.LogGroup)")
        targets.append(Target(group or default_group(name), name, required(name)))
    return targets, notes


def logging_config_lookup(session: Any, notes: list[str]) -> Callable[[str], str | None]:
    """Lambda GetFunctionConfiguration's `LoggingConfig.LogGroup`, best effort: None (and a note, once) when the
    function's configuration cannot be read, so the default group is read instead."""
    client: Any = None
    failed: list[str] = []

    def lookup(name: str) -> str | None:
        nonlocal client
        try:
            client = client or session.client("lambda")
            config = client.get_function_configuration(FunctionName=name)
        except Exception as exc:  # best effort: any failure means "assume the default group"
            LOG.info("GetFunctionConfiguration %s: %s", name, exc)
            if not failed:
                notes.append(
                    f"could not read LoggingConfig of {name} ({exc.__class__.__name__}); read its default log group"
                )
            failed.append(name)
            return None
        group = (config.get("LoggingConfig") or {}).get("LogGroup")
        return str(group) if group else None

    return lookup
