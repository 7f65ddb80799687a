"""Logs Insights execution: run a parsed query over the store's events and shape the answer as GetQueryResults does.

Rows start as the events of the queried groups in the time range, each with its system fields (``@timestamp``,
``@message``, ``@logStream``, ``@log``, ``@ingestionTime``, ``@ptr``) and discovered fields (lambdalab.logs.discovery).
Commands run in order over the rows. Values that look like numbers are numbers wherever arithmetic, an aggregate or
a numeric comparison needs one (the lab's access-log format quotes its latencies, as Insights tolerates).

Known differences from AWS, also in docs/LOGS.md: `pct` is the exact nearest-rank percentile (AWS approximates);
results are computed when the query starts, so a query is "Complete" at once unless it is still running in the
background pool.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lambdalab.logs import discovery
from lambdalab.logs.query import (
    AGGREGATES,
    Binary,
    Call,
    DedupCmd,
    DisplayCmd,
    Duration,
    Field,
    FieldsCmd,
    FilterCmd,
    LimitCmd,
    ListExpr,
    Literal,
    ParseCmd,
    Query,
    QuerySyntaxError,
    Regex,
    SortCmd,
    StatsCmd,
    Unary,
)
from lambdalab.logs.store import Found

MAX_RESULTS = 10_000


class Timestamp(int):
    """Milliseconds since the epoch that print as Insights prints time: ``2026-11-22 08:11:58.123``."""

    def render(self) -> str:
        seconds, millis = divmod(int(self), 1000)
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}"


Row = dict[str, Any]


@dataclass
class Result:
    rows: list[list[dict[str, str]]]
    records_matched: int
    records_scanned: int
    bytes_scanned: int

    def statistics(self) -> dict[str, float]:
        return {
            "recordsMatched": float(self.records_matched),
            "recordsScanned": float(self.records_scanned),
            "estimatedRecordsSkipped": 0.0,
            "bytesScanned": float(self.bytes_scanned),
            "estimatedBytesSkipped": 0.0,
            "logGroupsScanned": 0.0,
        }


def row_of(found: Found, account_id: str) -> Row:
    event = found.event
    row: Row = {
        "@timestamp": Timestamp(event.timestamp),
        "@message": event.message,
        "@logStream": found.stream,
        "@log": f"{account_id}:{found.group}",
        "@ingestionTime": Timestamp(event.ingestion),
        "@ptr": pointer(found),
    }
    row.update(discovery.discover(event.message))
    return row


def pointer(found: Found) -> str:
    """An opaque @ptr that GetLogRecord resolves: group, stream and the event's sequence."""
    import base64

    raw = json.dumps([found.group, found.stream, found.event.seq], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def run(
    query: Query,
    events: Iterable[Found],
    *,
    account_id: str,
    limit: int | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> Result:
    """Execute `query` over `events` (any order). Raises QuerySyntaxError for semantic errors."""
    rows: list[Row] = []
    scanned = 0
    scanned_bytes = 0
    for found in events:
        scanned += 1
        scanned_bytes += len(found.event.message.encode())
        rows.append(row_of(found, account_id))
        if scanned % 4096 == 0 and cancelled():
            break
    rows.sort(key=lambda r: r["@timestamp"], reverse=True)  # Insights scans newest first
    projection: list[str] | None = None  # None: the default (@timestamp, @message)
    created: list[str] = []
    aggregated = False
    display: list[str] | None = None
    matched = len(rows)
    for command in query.commands:
        if isinstance(command, FilterCmd):
            rows = [r for r in rows if truthy(evaluate(command.expr, r))]
            if not aggregated:
                matched = len(rows)
        elif isinstance(command, FieldsCmd):
            for item in command.items:
                if not isinstance(item.expr, Field) or item.name != item.expr.name:
                    for r in rows:
                        value = evaluate(item.expr, r)
                        if value is not None:
                            r[item.name] = value
                names = [i.name for i in command.items]
                projection = [*(projection or []), *(n for n in names if n not in (projection or []))]
        elif isinstance(command, ParseCmd):
            for r in rows:
                parse_into(command, r)
            created.extend(n for n in command.names if n not in created)
        elif isinstance(command, StatsCmd):
            if not aggregated:
                matched = len(rows)
            rows, projection = stats(command, rows)
            aggregated = True
            display = None
        elif isinstance(command, SortCmd):
            rows = sort_rows(rows, command.keys)
        elif isinstance(command, LimitCmd):
            rows = rows[: command.count]
        elif isinstance(command, DisplayCmd):
            display = list(command.names)
        elif isinstance(command, DedupCmd):
            seen: set[tuple[Any, ...]] = set()
            kept = []
            for r in rows:
                key = tuple(_hashable(r.get(n)) for n in command.names)
                if key not in seen:
                    seen.add(key)
                    kept.append(r)
            rows = kept
    cap = min(limit or MAX_RESULTS, MAX_RESULTS)
    rows = rows[:cap]
    if display is not None:
        columns = display
    elif projection is not None:
        columns = projection if aggregated else [*projection, *(c for c in created if c not in projection)]
    else:
        columns = ["@timestamp", "@message", *created]
    if not aggregated and "@ptr" not in columns:
        columns = [*columns, "@ptr"]
    shaped = [[{"field": name, "value": render(r[name])} for name in columns if r.get(name) is not None] for r in rows]
    return Result(shaped, matched, scanned, scanned_bytes)


# --- values -------------------------------------------------------------------------------------------------------


def render(value: Any) -> str:
    if isinstance(value, Timestamp):
        return value.render()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def truthy(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    return bool(value)


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


def _compare(op: str, left: Any, right: Any) -> bool | None:
    if left is None or right is None:
        return None if op not in ("=", "!=") else (left is right) == (op == "=")
    a, b = number(left), number(right)
    if a is not None and b is not None and not (isinstance(left, str) and isinstance(right, str)):
        x: Any = a
        y: Any = b
    else:
        x, y = render(left), render(right)
    if op == "=":
        return bool(x == y)
    if op == "!=":
        return bool(x != y)
    if op == "<":
        return bool(x < y)
    if op == "<=":
        return bool(x <= y)
    if op == ">":
        return bool(x > y)
    return bool(x >= y)


def evaluate(expr: Any, row: Row) -> Any:
    if isinstance(expr, Field):
        return row.get(expr.name)
    if isinstance(expr, Literal):
        return expr.value
    if isinstance(expr, Unary):
        value = evaluate(expr.operand, row)
        if expr.op == "not":
            return not truthy(value)
        n = number(value)
        return None if n is None else -n
    if isinstance(expr, Binary):
        op = expr.op
        if op == "and":
            return truthy(evaluate(expr.left, row)) and truthy(evaluate(expr.right, row))
        if op == "or":
            return truthy(evaluate(expr.left, row)) or truthy(evaluate(expr.right, row))
        left = evaluate(expr.left, row)
        if op == "like":
            if left is None:
                return False
            text = render(left)
            if isinstance(expr.right, Regex):
                hit = expr.right.pattern.search(text) is not None
            else:
                hit = str(expr.right.value) in text
            return hit != expr.negate
        if op == "in":
            assert isinstance(expr.right, ListExpr)
            hit = any(_compare("=", left, evaluate(item, row)) for item in expr.right.items)
            return hit != expr.negate
        right = evaluate(expr.right, row)
        if op in ("=", "!=", "<", "<=", ">", ">="):
            return _compare(op, left, right)
        a, b = number(left), number(right)
        if a is None or b is None:
            return None
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return None if b == 0 else a / b
        if op == "%":
            return None if b == 0 else a % b
        return a**b
    if isinstance(expr, Call):
        return call(expr, row)
    if isinstance(expr, Regex):
        return expr.pattern.pattern
    raise QuerySyntaxError(f"unsupported expression {expr!r}", 0, 0)


def _strings(args: Sequence[Any], row: Row) -> list[str | None]:
    values = [evaluate(a, row) for a in args]
    return [None if v is None else render(v) for v in values]


def call(expr: Call, row: Row) -> Any:
    name, args = expr.name, expr.args
    if name in AGGREGATES:
        raise QuerySyntaxError(f"{name} is an aggregation function; use it in stats", 0, 0)
    if name == "ispresent":
        return evaluate(args[0], row) is not None
    if name == "isempty":
        value = evaluate(args[0], row)
        return value is None or render(value) == ""
    if name == "isblank":
        value = evaluate(args[0], row)
        return value is None or render(value).strip() == ""
    if name == "coalesce":
        return next((v for v in (evaluate(a, row) for a in args) if v is not None), None)
    if name == "bin":
        period = evaluate(args[0], row)
        ms = period.milliseconds if isinstance(period, Duration) else None
        if not ms:
            raise QuerySyntaxError("bin() needs a time period such as 5m", 0, 0)
        stamp = row.get("@timestamp")
        return None if stamp is None else Timestamp(int(stamp) // ms * ms)
    if name in ("datefloor", "dateceil"):
        stamp, period = evaluate(args[0], row), evaluate(args[1], row)
        if stamp is None or not isinstance(period, Duration):
            return None
        ms = period.milliseconds
        floor = int(stamp) // ms * ms
        return Timestamp(floor if name == "datefloor" or floor == int(stamp) else floor + ms)
    if name == "frommillis":
        n = number(evaluate(args[0], row))
        return None if n is None else Timestamp(int(n))
    if name == "tomillis":
        value = evaluate(args[0], row)
        return None if value is None else int(value)
    if name in ("abs", "ceil", "floor", "sqrt", "log", "round"):
        n = number(evaluate(args[0], row))
        if n is None:
            return None
        if name == "abs":
            return abs(n)
        if name == "ceil":
            return float(math.ceil(n))
        if name == "floor":
            return float(math.floor(n))
        if name == "round":
            digits = int(number(evaluate(args[1], row)) or 0) if len(args) > 1 else 0
            return round(n, digits)
        if n <= 0 and name == "log":
            return None
        return math.sqrt(n) if name == "sqrt" else math.log(n)
    if name in ("greatest", "least"):
        numbers = [n for n in (number(evaluate(a, row)) for a in args) if n is not None]
        if not numbers:
            return None
        return max(numbers) if name == "greatest" else min(numbers)
    strings = _strings(args, row)
    if name == "strlen":
        return None if strings[0] is None else len(strings[0])
    if name == "toupper":
        return None if strings[0] is None else strings[0].upper()
    if name == "tolower":
        return None if strings[0] is None else strings[0].lower()
    if name in ("trim", "ltrim", "rtrim"):
        text = strings[0]
        if text is None:
            return None
        return {"trim": text.strip, "ltrim": text.lstrip, "rtrim": text.rstrip}[name]()
    if name == "concat":
        return "".join(s for s in strings if s is not None)
    if name == "strcontains":
        return None if strings[0] is None or strings[1] is None else strings[1] in strings[0]
    if name == "substr":
        text = strings[0]
        if text is None:
            return None
        start = int(number(strings[1]) or 0)
        if len(strings) > 2:
            return text[start : start + int(number(strings[2]) or 0)]
        return text[start:]
    if name == "replace":
        if strings[0] is None:
            return None
        return strings[0].replace(strings[1] or "", strings[2] or "")
    raise QuerySyntaxError(f"unknown function {name}", 0, 0)


# --- parse --------------------------------------------------------------------------------------------------------


def parse_into(command: ParseCmd, row: Row) -> None:
    value = evaluate(command.source, row)
    if value is None:
        return
    match = command.regex.search(render(value))
    if match is None:
        return
    if command.regex.groupindex:
        for name in command.names:
            extracted = match.group(name)
            if extracted is not None:
                row[name] = extracted
    else:
        for name, extracted in zip(command.names, match.groups(), strict=False):
            row[name] = extracted


# --- stats --------------------------------------------------------------------------------------------------------


def _has_aggregate(expr: Any) -> bool:
    if isinstance(expr, Call):
        return expr.name in AGGREGATES or any(_has_aggregate(a) for a in expr.args)
    if isinstance(expr, Binary):
        return _has_aggregate(expr.left) or _has_aggregate(expr.right)
    if isinstance(expr, Unary):
        return _has_aggregate(expr.operand)
    return False


def stats(command: StatsCmd, rows: list[Row]) -> tuple[list[Row], list[str]]:
    for item in command.items:
        if not _has_aggregate(item.expr):
            raise QuerySyntaxError(f"stats needs an aggregation function, not {item.name}", 0, 0)
    groups: dict[tuple[Any, ...], list[Row]] = {}
    keys: dict[tuple[Any, ...], list[Any]] = {}
    for r in rows:
        values = [evaluate(item.expr, r) for item in command.by]
        key = tuple(_hashable(v) for v in values)
        bucket = groups.get(key)
        if bucket is None:
            groups[key] = bucket = []
            keys[key] = values
        bucket.append(r)
    if not command.by and not groups:
        groups[()] = []
        keys[()] = []
    out: list[Row] = []
    for key, members in groups.items():
        row: Row = {item.name: value for item, value in zip(command.by, keys[key], strict=True)}
        for item in command.items:
            value = aggregate(item.expr, members)
            if value is not None:
                row[item.name] = value
        out.append(row)
    if any(isinstance(i.expr, Call) and i.expr.name == "bin" for i in command.by):
        name = next(i.name for i in command.by if isinstance(i.expr, Call) and i.expr.name == "bin")
        out.sort(key=lambda r: r.get(name) or 0, reverse=True)
    return out, [*(i.name for i in command.by), *(i.name for i in command.items)]


def aggregate(expr: Any, rows: list[Row]) -> Any:
    if isinstance(expr, Literal):
        return expr.value
    if isinstance(expr, Unary):
        inner = aggregate(expr.operand, rows)
        n = number(inner)
        return None if n is None else (-n if expr.op == "-" else float(not truthy(inner)))
    if isinstance(expr, Binary):
        a, b = number(aggregate(expr.left, rows)), number(aggregate(expr.right, rows))
        if a is None or b is None:
            return None
        ops: dict[str, Callable[[float, float], Any]] = {
            "+": lambda x, y: x + y,
            "-": lambda x, y: x - y,
            "*": lambda x, y: x * y,
            "/": lambda x, y: None if y == 0 else x / y,
            "%": lambda x, y: None if y == 0 else x % y,
            "^": lambda x, y: x**y,
        }
        if expr.op not in ops:
            raise QuerySyntaxError(f"operator {expr.op} cannot combine aggregations", 0, 0)
        return ops[expr.op](a, b)
    if not isinstance(expr, Call) or expr.name not in AGGREGATES:
        if isinstance(expr, Call):  # a scalar function of aggregates: round(avg(x))
            return call(Call(expr.name, tuple(Literal(aggregate(a, rows)) for a in expr.args)), {})
        raise QuerySyntaxError("stats expressions combine aggregation functions", 0, 0)
    name, args = expr.name, expr.args
    if name == "count":
        if not args or (isinstance(args[0], Literal) and args[0].value == "*"):
            return len(rows)
        return sum(1 for r in rows if evaluate(args[0], r) is not None)
    if not args:
        raise QuerySyntaxError(f"{name}() needs an argument", 0, 0)
    values = [evaluate(args[0], r) for r in rows]
    if name == "count_distinct":
        return len({_hashable(v) for v in values if v is not None})
    if name in ("earliest", "latest", "sortsfirst"):
        present = [
            (r["@timestamp"], v) for r, v in zip(rows, values, strict=True) if v is not None and "@timestamp" in r
        ]
        if not present:
            return None
        chosen = min(present, key=lambda p: p[0]) if name != "latest" else max(present, key=lambda p: p[0])
        return chosen[1]
    numbers = sorted(n for n in (number(v) for v in values) if n is not None)
    if not numbers:
        return None
    if name == "sum":
        return math.fsum(numbers)
    if name == "avg":
        return math.fsum(numbers) / len(numbers)
    if name == "min":
        return numbers[0]
    if name == "max":
        return numbers[-1]
    if name == "stddev":
        if len(numbers) < 2:
            return 0.0
        mean = math.fsum(numbers) / len(numbers)
        return math.sqrt(math.fsum((n - mean) ** 2 for n in numbers) / (len(numbers) - 1))
    # pct
    if len(args) < 2:
        raise QuerySyntaxError("pct() needs a field and a percentile", 0, 0)
    q = number(evaluate(args[1], {}))
    if q is None or not 0 <= q <= 100:
        raise QuerySyntaxError("the percentile of pct() must be between 0 and 100", 0, 0)
    return nearest_rank(numbers, q)


def nearest_rank(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of sorted values."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def sort_rows(rows: list[Row], keys: list[tuple[Any, bool]]) -> list[Row]:
    out = list(rows)
    for expr, descending in reversed(keys):
        present = [r for r in out if evaluate(expr, r) is not None]
        absent = [r for r in out if evaluate(expr, r) is None]

        def sort_key(r: Row, expr: Any = expr) -> tuple[int, Any]:
            value = evaluate(expr, r)
            n = number(value)
            return (0, n) if n is not None else (1, render(value))

        present.sort(key=sort_key, reverse=descending)
        out = present + absent
    return out
