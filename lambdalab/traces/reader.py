"""Reading traces: the X-Ray API (paged, batched, retried), a saved BatchGetTraces file, or a local run directory."""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from lambdalab.errors import UserError
from lambdalab.observe.model import EnvironmentEvent, InvocationRecord
from lambdalab.traces.analysis import Invocation, invocation_from_record
from lambdalab.traces.model import ParseOutcome, Problem, parse_batch_get_traces

LOG = logging.getLogger(__name__)

MAX_WINDOW = timedelta(hours=24)  # GetTraceSummaries accepts at most 24 hours per call
BATCH_SIZE = 5  # BatchGetTraces takes at most 5 trace ids per call
MAX_PAGES_PER_CALL = 1000  # NextToken pages followed for one window or batch before giving up (and saying so)
THROTTLE_CODES = {"ThrottlingException", "ThrottledException", "TooManyRequestsException", "RequestLimitExceeded"}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


# --- time window ---------------------------------------------------------------------------------------------------


def parse_since(text: str) -> timedelta:
    """`30m`, `2h`, `1d`, `90s` → timedelta; anything else is a UserError."""
    match = _DURATION.match(text or "")
    if not match:
        raise UserError(f"--since {text!r} is not a duration like 30m, 2h or 1d")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise UserError(f"--since {text!r} must be longer than zero")
    return timedelta(seconds=seconds)


def parse_time(text: str, flag: str) -> datetime:
    """ISO-8601 (`2026-11-22T06:00:00Z`, with an offset, or naive meaning UTC) → aware datetime."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UserError(f"{flag} {text!r} is not an ISO-8601 time such as 2026-11-22T06:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise UserError(
                f"the time window ends ({self.end.isoformat()}) before it starts ({self.start.isoformat()})"
            )

    def split(self, limit: timedelta = MAX_WINDOW) -> list[Window]:
        """Consecutive windows of at most `limit`, covering this one."""
        parts = []
        cursor = self.start
        while cursor < self.end:  # bounded: advances by `limit` each turn
            nxt = min(cursor + limit, self.end)
            parts.append(Window(cursor, nxt))
            cursor = nxt
        return parts


def window_from_args(since: str | None, start: str | None, end: str | None, *, now: datetime) -> Window:
    """--since, or --start [--end]; --since and --start together is an error. Default: the last hour before `now`
    (the command's one reading of the clock, `lambdalab.traces.cli.run`)."""
    if since and start:
        raise UserError("use either --since or --start/--end, not both")
    if end and not start:
        raise UserError("--end needs --start")
    if start:
        return Window(parse_time(start, "--start"), parse_time(end, "--end") if end else now)
    return Window(now - parse_since(since or "1h"), now)


# --- retries --------------------------------------------------------------------------------------------------------


@dataclass
class RetryPolicy:
    """Bounded retries with full jitter (sleep uniform in [0, min(cap, base * 2**attempt)]) on throttling only."""

    max_attempts: int = 6
    base_s: float = 0.2
    cap_s: float = 5.0
    sleep: Callable[[float], None] = time.sleep
    rng: Callable[[], float] = random.random
    retried: int = field(default=0, init=False)

    def call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        for attempt in range(self.max_attempts):
            try:
                return fn(**kwargs)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if code not in THROTTLE_CODES and status != 429:
                    raise
                if attempt == self.max_attempts - 1:
                    raise UserError(f"{what} was still throttled after {self.max_attempts} attempts") from None
                delay = self.rng() * min(self.cap_s, self.base_s * 2**attempt)
                LOG.info("%s throttled (%s); retry %s in %.2f s", what, code or status, attempt + 1, delay)
                self.retried += 1
                self.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")


# --- the X-Ray API ---------------------------------------------------------------------------------------------------


def filter_expression(functions: Sequence[str]) -> str | None:
    """`service("a") OR service("b")`: Lambda names both of its nodes after the function."""
    if not functions:
        return None
    return " OR ".join(f'service("{name}")' for name in functions)


@dataclass
class XRayReader:
    """GetTraceSummaries over a window (split at 24 h, NextToken followed), then BatchGetTraces by 5 ids."""

    client: Any  # a boto3 "xray" client
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_traces: int = 20_000
    notes: list[str] = field(default_factory=list)

    def trace_ids(self, window: Window, functions: Sequence[str] = ()) -> list[str]:
        expression = filter_expression(functions)
        seen: dict[str, None] = {}
        for part in window.split():
            for trace_id in self._summaries(part, expression):
                seen.setdefault(trace_id, None)
                if len(seen) >= self.max_traces:
                    self.notes.append(f"stopped at --max-traces {self.max_traces}; narrow the window to see the rest")
                    return list(seen)
        return list(seen)

    def _summaries(self, window: Window, expression: str | None) -> Iterator[str]:
        kwargs: dict[str, Any] = {"StartTime": window.start, "EndTime": window.end, "Sampling": False}
        if expression:
            kwargs["FilterExpression"] = expression
        for page in range(MAX_PAGES_PER_CALL):
            try:
                response = self.retry.call("GetTraceSummaries", self.client.get_trace_summaries, **kwargs)
            except ClientError as exc:
                if "FilterExpression" not in kwargs or page:
                    raise
                # moto (and so the local cloud) answers FilterExpression with InternalFailure "Not implemented".
                LOG.info("FilterExpression refused (%s); filtering client-side", exc)
                self.notes.append("the endpoint refused FilterExpression; functions were filtered client-side")
                kwargs.pop("FilterExpression")
                response = self.retry.call("GetTraceSummaries", self.client.get_trace_summaries, **kwargs)
            for summary in response.get("TraceSummaries") or []:
                if isinstance(summary.get("Id"), str):
                    yield summary["Id"]
            token = response.get("NextToken")
            if not token:
                return
            kwargs["NextToken"] = token
        self.notes.append(f"GetTraceSummaries still paging after {MAX_PAGES_PER_CALL} pages; the rest was not read")

    def batch_get(self, trace_ids: Sequence[str], outcome: ParseOutcome | None = None) -> ParseOutcome:
        outcome = outcome if outcome is not None else ParseOutcome()
        for offset in range(0, len(trace_ids), BATCH_SIZE):
            batch = list(trace_ids[offset : offset + BATCH_SIZE])
            kwargs: dict[str, Any] = {"TraceIds": batch}
            for _ in range(MAX_PAGES_PER_CALL):
                response = self.retry.call("BatchGetTraces", self.client.batch_get_traces, **kwargs)
                parse_batch_get_traces([response], outcome)
                token = response.get("NextToken")
                if not token:
                    break
                kwargs["NextToken"] = token
        return outcome

    def read(self, window: Window, functions: Sequence[str] = ()) -> ParseOutcome:
        ids = self.trace_ids(window, functions)
        LOG.info("%s trace ids in %s .. %s", len(ids), window.start, window.end)
        return self.batch_get(ids)


# --- saved BatchGetTraces output --------------------------------------------------------------------------------------


def read_trace_file(path: Path) -> ParseOutcome:
    """A saved `aws xray batch-get-traces` answer: one response object, or a JSON list of them."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{path} is not JSON (line {exc.lineno if hasattr(exc, 'lineno') else '?'})") from None
    responses = data if isinstance(data, list) else [data]
    if not all(isinstance(item, Mapping) and "Traces" in item for item in responses):
        raise UserError(f"{path} is not BatchGetTraces output (expected an object with a Traces list)")
    return parse_batch_get_traces(responses)


# --- local run directory ----------------------------------------------------------------------------------------

_RECORD_FIELDS = {f.name for f in fields(InvocationRecord)}
_EVENT_FIELDS = {f.name for f in fields(EnvironmentEvent)}


@dataclass
class RunDirectory:
    invocations: list[Invocation]
    environment_events: list[dict[str, Any]]
    problems: list[Problem]


def _json_lines(path: Path, problems: list[Problem]) -> Iterable[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as exc:
                problems.append(Problem(f"{path.name}:{number}", f"malformed JSON ({getattr(exc, 'msg', exc)!s})"))
                continue
            if not isinstance(value, dict):
                problems.append(Problem(f"{path.name}:{number}", "line is not a JSON object"))
                continue
            yield value


def read_run_dir(path: Path) -> RunDirectory:
    """`<run>/invocations.jsonl` (InvocationRecord lines) and `<run>/environments.jsonl` (EnvironmentEvent lines).

    Unknown fields are ignored; a line that cannot be used is reported, never fatal.
    """
    if not path.is_dir():
        raise UserError(f"--run-dir {path} is not a directory")
    invocations_path = path / "invocations.jsonl"
    if not invocations_path.is_file():
        raise UserError(f"--run-dir {path} has no invocations.jsonl (is it a lambdalab run directory?)")
    problems: list[Problem] = []
    invocations: list[Invocation] = []
    for number, record in enumerate(_json_lines(invocations_path, problems), start=1):
        known = {key: value for key, value in record.items() if key in _RECORD_FIELDS}
        try:
            invocations.append(invocation_from_record(known))
        except (KeyError, ValueError, TypeError) as exc:
            problems.append(Problem(f"invocations.jsonl record {number}", f"unusable record ({exc})"))
    events: list[dict[str, Any]] = []
    events_path = path / "environments.jsonl"
    if events_path.is_file():
        events = [{k: v for k, v in e.items() if k in _EVENT_FIELDS} for e in _json_lines(events_path, problems)]
    return RunDirectory(invocations, events, problems)
