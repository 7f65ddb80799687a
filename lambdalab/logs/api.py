"""The CloudWatch Logs API (JSON 1.1, ``X-Amz-Target: Logs_20140328.<Action>``) over the local LogStore.

Served here: log groups and streams (create, delete, describe, retention, tags), PutLogEvents, GetLogEvents,
FilterLogEvents (filter patterns, interleaved across streams), GetLogRecord, and Logs Insights (StartQuery,
GetQueryResults, StopQuery, DescribeQueries). Every other action that does not name a log group (resource policies,
destinations, query definitions, …) goes to moto as before; one that names a log group (metric filters, subscription
filters, export tasks, Live Tail, …) is answered with a `LambdalabNotImplemented` error saying so — never silently
answered by a moto that does not know our log groups.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import logging
import re
import threading
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import botocore.session
from aiohttp import web

from lambdalab.clock import Clock
from lambdalab.logs import insights
from lambdalab.logs.filterpattern import compile_pattern
from lambdalab.logs.query import QuerySyntaxError, parse
from lambdalab.logs.store import RETENTION_DAYS, Found, LogsError, LogStore

LOG = logging.getLogger(__name__)

TARGET_PREFIX = "Logs_20140328."
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_BATCH_BYTES = 1_048_576
MAX_BATCH_EVENTS = 10_000
EVENT_OVERHEAD_BYTES = 26
DAY_MS = 86_400_000
_GROUP_NAME = re.compile(r"^[.\-_/#A-Za-z0-9]{1,512}$")
_STREAM_NAME = re.compile(r"^[^:*]{1,512}$")

Proxy = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


def _validation(value: Any, member: str, constraint: str) -> LogsError:
    return LogsError(
        "InvalidParameterException",
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}",
    )


def _limit(params: dict[str, Any], default: int, maximum: int) -> int:
    value = params.get("limit", default)
    if not isinstance(value, int) or value < 1:
        raise _validation(value, "limit", "Member must have value greater than or equal to 1")
    if value > maximum:
        raise _validation(value, "limit", f"Member must have value less than or equal to {maximum}")
    return value


def _encode_token(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def _decode_token(token: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        raise LogsError("InvalidParameterException", "The specified nextToken is invalid.") from None


def _key_token(direction: str, key: tuple[int, int]) -> str:
    return f"{direction}/{key[0]:020d}{key[1]:036d}"


def _parse_key_token(token: str) -> tuple[str, tuple[int, int]]:
    if len(token) != 58 or token[1] != "/" or token[0] not in "fb" or not token[2:].isdigit():
        raise LogsError("InvalidParameterException", "The specified nextToken is invalid.")
    return token[0], (int(token[2:22]), int(token[22:]))


@dataclass
class QueryState:
    query_id: str
    query_string: str
    group_names: list[str]
    create_time: int
    status: str = "Scheduled"
    result: insights.Result | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    settled: threading.Event = field(default_factory=threading.Event)  # no longer Scheduled/Running


class Queries:
    """Logs Insights queries run in one background thread; their state is kept for GetQueryResults."""

    KEEP = 1000

    def __init__(self, store: LogStore, epoch: Clock) -> None:
        self.store = store
        self.epoch = epoch  # createTime
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="logs-insights")
        self._lock = threading.Lock()
        self.states: dict[str, QueryState] = {}

    def start(self, group_names: list[str], start_ms: int, end_ms: int, text: str, limit: int | None) -> QueryState:
        try:
            query = parse(text)
        except QuerySyntaxError as exc:
            raise LogsError(
                "MalformedQueryException",
                exc.message,
                queryCompileError={
                    "location": {"startCharOffset": exc.start, "endCharOffset": exc.end},
                    "message": exc.message,
                },
            ) from None
        state = QueryState(str(uuid.uuid4()), text, group_names, int(self.epoch.now() * 1000))
        with self._lock:
            self.states[state.query_id] = state
            while len(self.states) > self.KEEP:
                self.states.pop(next(iter(self.states)))

        def execute() -> None:
            try:
                run()
            finally:
                state.settled.set()

        def run() -> None:
            if state.cancel.is_set():
                return
            state.status = "Running"
            try:
                events = self.store.search(group_names, start=start_ms, end=end_ms)
                state.result = insights.run(
                    query, events, account_id=self.store.account_id, limit=limit, cancelled=state.cancel.is_set
                )
                state.status = "Cancelled" if state.cancel.is_set() else "Complete"
            except QuerySyntaxError as exc:
                LOG.info("query %s failed: %s", state.query_id, exc.message)
                state.status = "Failed"
            except LogsError as exc:  # a log group deleted while the query waited
                LOG.info("query %s failed: %s", state.query_id, exc.message)
                state.status = "Failed"

        self._pool.submit(execute)
        return state

    def get(self, query_id: str) -> QueryState:
        state = self.states.get(query_id)
        if state is None:
            raise LogsError("ResourceNotFoundException", "Query does not exist.")
        return state

    def wait(self, query_id: str, timeout_s: float = 30.0) -> QueryState:
        """Until the query is no longer Scheduled/Running (tests and the traces reader use this)."""
        state = self.get(query_id)
        state.settled.wait(timeout_s)  # a bounded wait, not a clock read
        return state

    def close(self) -> None:
        for state in self.states.values():
            state.cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


def _names_a_log_group() -> set[str]:
    """Actions of the Logs API whose input names a log group (from botocore's model of the service)."""
    model = botocore.session.get_session().get_service_model("logs")
    out = set()
    for name in model.operation_names:
        shape = model.operation_model(name).input_shape
        members = set(shape.members) if shape is not None else set()
        if members & {"logGroupName", "logGroupIdentifier", "logGroupNames", "logGroupIdentifiers", "logGroupArn"}:
            out.add(name)
    return out


class LogsApi:
    """The gateway route for service "logs"."""

    def __init__(self, store: LogStore, fallback: Proxy | None = None, *, epoch: Clock) -> None:
        self.store = store
        self.fallback = fallback
        self.epoch = epoch  # PutLogEvents' too-old / too-new window, queries' createTime
        self.queries = Queries(store, epoch)
        self._group_actions: set[str] | None = None

    # --- transport ----------------------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        target = request.headers.get("X-Amz-Target", "")
        action = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
        body = await request.read()
        handler = getattr(self, f"do_{action}", None) if action else None
        if handler is None:
            if self._group_actions is None:
                self._group_actions = _names_a_log_group()
            if action in self._group_actions or self.fallback is None:
                return _error(
                    LogsError(
                        "LambdalabNotImplemented",
                        f"CloudWatch Logs {action or target or 'request'} is not reproduced by the local cloud "
                        f"(lambdalab); see docs/LOGS.md",
                    )
                )
            return await self.fallback(request, body)
        try:
            params = json.loads(body or b"{}")
            if not isinstance(params, dict):
                raise ValueError("not an object")
        except ValueError:
            return _error(LogsError("SerializationException", "Start of structure or map found where not expected."))
        try:
            result = await asyncio.to_thread(handler, params)
        except LogsError as exc:
            return _error(exc)
        return web.Response(body=json.dumps(result).encode(), content_type=CONTENT_TYPE, charset=None)

    def handle_sync(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """Call an action in process (tests, the traces reader): raises LogsError as the API answers."""
        handler = getattr(self, f"do_{action}", None)
        if handler is None:
            raise LogsError("LambdalabNotImplemented", action)
        result: dict[str, Any] = handler(params)
        return result

    def close(self) -> None:
        self.queries.close()

    # --- groups -------------------------------------------------------------------------------------------------

    def _group_name(self, params: dict[str, Any]) -> str:
        name = params.get("logGroupName") or params.get("logGroupIdentifier")
        if not name:
            raise LogsError("InvalidParameterException", "Either logGroupName or logGroupIdentifier is required.")
        return str(name)

    def do_CreateLogGroup(self, params: dict[str, Any]) -> dict[str, Any]:
        name = str(params.get("logGroupName", ""))
        if not _GROUP_NAME.match(name):
            raise _validation(
                name, "logGroupName", "Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+"
            )
        self.store.create_group(
            name,
            tags=params.get("tags"),
            kms_key_id=params.get("kmsKeyId"),
            log_group_class=params.get("logGroupClass"),
        )
        return {}

    def do_DeleteLogGroup(self, params: dict[str, Any]) -> dict[str, Any]:
        self.store.delete_group(self._group_name(params))
        return {}

    def do_DescribeLogGroups(self, params: dict[str, Any]) -> dict[str, Any]:
        limit = _limit(params, 50, 50)
        prefix = params.get("logGroupNamePrefix")
        pattern = params.get("logGroupNamePattern")
        if prefix and pattern:
            raise LogsError(
                "InvalidParameterException", "LogGroup name prefix and LogGroup name pattern are mutually exclusive"
            )
        identifiers = params.get("logGroupIdentifiers")
        groups = self.store.groups()
        if prefix:
            groups = [g for g in groups if g.name.startswith(prefix)]
        if pattern:
            groups = [g for g in groups if pattern.lower() in g.name.lower()]
        if identifiers:
            wanted = {str(i).removesuffix(":*") for i in identifiers}
            groups = [g for g in groups if g.name in wanted or g.arn in wanted]
        if params.get("logGroupClass"):
            groups = [g for g in groups if g.log_group_class == params["logGroupClass"]]
        start = int(_decode_token(params["nextToken"])) if params.get("nextToken") else 0
        page = groups[start : start + limit]
        out: dict[str, Any] = {"logGroups": [g.describe() for g in page]}
        if start + limit < len(groups):
            out["nextToken"] = _encode_token(start + limit)
        return out

    def do_PutRetentionPolicy(self, params: dict[str, Any]) -> dict[str, Any]:
        days = params.get("retentionInDays")
        if days not in RETENTION_DAYS:
            raise _validation(
                days,
                "retentionInDays",
                "Member must satisfy enum value set: [" + ", ".join(str(d) for d in RETENTION_DAYS) + "]",
            )
        self.store.put_retention(self._group_name(params), int(days))
        return {}

    def do_DeleteRetentionPolicy(self, params: dict[str, Any]) -> dict[str, Any]:
        self.store.put_retention(self._group_name(params), None)
        return {}

    def do_TagLogGroup(self, params: dict[str, Any]) -> dict[str, Any]:
        self.store.group(self._group_name(params)).tags.update(params.get("tags") or {})
        return {}

    def do_UntagLogGroup(self, params: dict[str, Any]) -> dict[str, Any]:
        tags = self.store.group(self._group_name(params)).tags
        for key in params.get("tags") or []:
            tags.pop(key, None)
        return {}

    def do_ListTagsLogGroup(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"tags": dict(self.store.group(self._group_name(params)).tags)}

    def do_TagResource(self, params: dict[str, Any]) -> dict[str, Any]:
        self.store.group(str(params.get("resourceArn", ""))).tags.update(params.get("tags") or {})
        return {}

    def do_UntagResource(self, params: dict[str, Any]) -> dict[str, Any]:
        tags = self.store.group(str(params.get("resourceArn", ""))).tags
        for key in params.get("tagKeys") or []:
            tags.pop(key, None)
        return {}

    def do_ListTagsForResource(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"tags": dict(self.store.group(str(params.get("resourceArn", ""))).tags)}

    # --- streams ------------------------------------------------------------------------------------------------

    def do_CreateLogStream(self, params: dict[str, Any]) -> dict[str, Any]:
        name = str(params.get("logStreamName", ""))
        if not _STREAM_NAME.match(name):
            raise _validation(name, "logStreamName", "Member must satisfy regular expression pattern: [^:*]*")
        self.store.create_stream(self._group_name(params), name)
        return {}

    def do_DeleteLogStream(self, params: dict[str, Any]) -> dict[str, Any]:
        self.store.delete_stream(self._group_name(params), str(params.get("logStreamName", "")))
        return {}

    def do_DescribeLogStreams(self, params: dict[str, Any]) -> dict[str, Any]:
        limit = _limit(params, 50, 50)
        order_by = params.get("orderBy", "LogStreamName")
        if order_by not in ("LogStreamName", "LastEventTime"):
            raise _validation(order_by, "orderBy", "Member must satisfy enum value set: [LogStreamName, LastEventTime]")
        prefix = params.get("logStreamNamePrefix")
        if order_by == "LastEventTime" and prefix:
            raise LogsError("InvalidParameterException", "Cannot order by LastEventTime with a logStreamNamePrefix.")
        streams = self.store.streams(self._group_name(params))
        if prefix:
            streams = [s for s in streams if s.name.startswith(prefix)]
        descending = bool(params.get("descending", False))
        if order_by == "LogStreamName":
            streams.sort(key=lambda s: s.name, reverse=descending)
        else:
            streams.sort(key=lambda s: (s.last_timestamp or 0, s.name), reverse=descending)
        start = int(_decode_token(params["nextToken"])) if params.get("nextToken") else 0
        page = streams[start : start + limit]
        out: dict[str, Any] = {"logStreams": [s.describe() for s in page]}
        if start + limit < len(streams):
            out["nextToken"] = _encode_token(start + limit)
        return out

    # --- events -------------------------------------------------------------------------------------------------

    def do_PutLogEvents(self, params: dict[str, Any]) -> dict[str, Any]:
        group_name = self._group_name(params)
        stream_name = str(params.get("logStreamName", ""))
        events = params.get("logEvents") or []
        if not events:
            raise _validation("[]", "logEvents", "Member must have length greater than or equal to 1")
        if len(events) > MAX_BATCH_EVENTS:
            raise _validation(
                len(events), "logEvents", f"Member must have length less than or equal to {MAX_BATCH_EVENTS}"
            )
        size = sum(len(str(e.get("message", "")).encode()) + EVENT_OVERHEAD_BYTES for e in events)
        if size > MAX_BATCH_BYTES:
            raise LogsError(
                "InvalidParameterException", f"Upload too large: {size} bytes exceeds limit of {MAX_BATCH_BYTES}"
            )
        timestamps = [int(e.get("timestamp", 0)) for e in events]
        if any(later < earlier for earlier, later in itertools.pairwise(timestamps)):
            raise LogsError(
                "InvalidParameterException",
                "Log events in a single PutLogEvents request must be in chronological order.",
            )
        if timestamps[-1] - timestamps[0] > DAY_MS:
            raise LogsError(
                "InvalidParameterException",
                "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
            )
        self.store.stream(group_name, stream_name)  # ResourceNotFoundException before anything is written
        now = int(self.epoch.now() * 1000)
        oldest, newest = now - 14 * DAY_MS, now + 2 * 3_600_000
        rejected: dict[str, int] = {}
        accepted: list[tuple[int, str]] = []
        for index, (stamp, event) in enumerate(zip(timestamps, events, strict=True)):
            if stamp < oldest:
                rejected["tooOldLogEventEndIndex"] = index + 1
            elif stamp > newest:
                rejected.setdefault("tooNewLogEventStartIndex", index)
            else:
                accepted.append((stamp, str(event.get("message", ""))))
        self.store.append(group_name, stream_name, accepted, create=False)
        out: dict[str, Any] = {"nextSequenceToken": f"{uuid.uuid4().int:056d}"[:56]}
        if rejected:
            out["rejectedLogEventsInfo"] = rejected
        return out

    def do_GetLogEvents(self, params: dict[str, Any]) -> dict[str, Any]:
        limit = _limit(params, 10000, 10000)
        events = self.store.read_stream(
            self._group_name(params),
            str(params.get("logStreamName", "")),
            params.get("startTime"),
            params.get("endTime"),
        )
        token = params.get("nextToken")
        if token:
            direction, key = _parse_key_token(str(token))
            if direction == "f":
                page = [e for e in events if e.key > key][:limit]
            else:
                before = [e for e in events if e.key < key]
                page = before[-limit:]
        elif params.get("startFromHead"):
            page = events[:limit]
        else:
            page = events[-limit:]
        if page:
            forward, backward = _key_token("f", page[-1].key), _key_token("b", page[0].key)
        elif token:
            forward = backward = str(token)
        else:
            forward, backward = _key_token("f", (0, 0)), _key_token("b", (0, 0))
        return {
            "events": [{"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingestion} for e in page],
            "nextForwardToken": forward,
            "nextBackwardToken": backward,
        }

    def do_FilterLogEvents(self, params: dict[str, Any]) -> dict[str, Any]:
        limit = _limit(params, 10000, 10000)
        group_name = self._group_name(params)
        names = params.get("logStreamNames")
        prefix = params.get("logStreamNamePrefix")
        if names and prefix:
            raise LogsError(
                "InvalidParameterException", "logStreamNames and logStreamNamePrefix are mutually exclusive"
            )
        matcher = compile_pattern(params.get("filterPattern"))
        after: tuple[int, int] | None = None
        if params.get("nextToken"):
            decoded = _decode_token(str(params["nextToken"]))
            if not (isinstance(decoded, list) and len(decoded) == 3 and decoded[0] == group_name):
                raise LogsError("InvalidParameterException", "The specified nextToken is invalid.")
            after = (int(decoded[1]), int(decoded[2]))
        self.store.group(group_name)
        page: list[Found] = []
        more = False
        for found in self.store.search(
            [group_name],
            start=params.get("startTime"),
            end=params.get("endTime"),
            stream_names=names,
            stream_prefix=prefix,
            after=after,
        ):
            if not matcher(found.event.message):
                continue
            if len(page) == limit:
                more = True
                break
            page.append(found)
        out: dict[str, Any] = {
            "events": [
                {
                    "logStreamName": f.stream,
                    "timestamp": f.event.timestamp,
                    "message": f.event.message,
                    "ingestionTime": f.event.ingestion,
                    "eventId": f.event.event_id,
                }
                for f in page
            ],
            "searchedLogStreams": [],
        }
        if more:
            last = page[-1].event
            out["nextToken"] = _encode_token([group_name, last.timestamp, last.seq])
        return out

    def do_GetLogRecord(self, params: dict[str, Any]) -> dict[str, Any]:
        pointer = str(params.get("logRecordPointer", ""))
        try:
            group_name, stream_name, seq = json.loads(base64.urlsafe_b64decode(pointer.encode()))
        except (ValueError, TypeError, binascii.Error):
            raise LogsError("InvalidParameterException", "The specified log record pointer is invalid.") from None
        stream = self.store.stream(group_name, stream_name)
        for event in stream.events:
            if event.seq == seq:
                return {
                    "logRecord": {
                        "@timestamp": str(event.timestamp),
                        "@message": event.message,
                        "@logStream": stream_name,
                        "@log": f"{self.store.account_id}:{group_name}",
                        "@ingestionTime": str(event.ingestion),
                    }
                }
        raise LogsError("ResourceNotFoundException", "The specified log record does not exist.")

    # --- Logs Insights ------------------------------------------------------------------------------------------

    def do_StartQuery(self, params: dict[str, Any]) -> dict[str, Any]:
        forms = [k for k in ("logGroupName", "logGroupNames", "logGroupIdentifiers") if params.get(k)]
        if len(forms) != 1:
            raise LogsError(
                "InvalidParameterException",
                "Exactly one of logGroupName, logGroupNames or logGroupIdentifiers must be specified",
            )
        raw = params[forms[0]]
        names = [raw] if isinstance(raw, str) else list(raw)
        if len(names) > 50:
            raise _validation(len(names), forms[0], "Member must have length less than or equal to 50")
        resolved = []
        for name in names:
            try:
                resolved.append(self.store.group(str(name)).name)
            except LogsError:
                raise LogsError(
                    "ResourceNotFoundException",
                    f"Log group '{name}' does not exist for account ID '{self.store.account_id}'",
                ) from None
        start, end = params.get("startTime"), params.get("endTime")
        if not isinstance(start, int) or not isinstance(end, int):
            raise LogsError("InvalidParameterException", "startTime and endTime are required")
        if end < start:
            raise LogsError("InvalidParameterException", "End time should not be before the start time")
        limit = params.get("limit")
        if limit is not None and (not isinstance(limit, int) or not 1 <= limit <= 10000):
            raise _validation(limit, "limit", "Member must have value less than or equal to 10000")
        state = self.queries.start(resolved, start * 1000, end * 1000 + 999, str(params.get("queryString", "")), limit)
        return {"queryId": state.query_id}

    def do_GetQueryResults(self, params: dict[str, Any]) -> dict[str, Any]:
        state = self.queries.get(str(params.get("queryId", "")))
        result = state.result
        out: dict[str, Any] = {
            "queryLanguage": "CWLI",
            "results": result.rows if result is not None and state.status == "Complete" else [],
            "statistics": result.statistics()
            if result is not None
            else {"recordsMatched": 0.0, "recordsScanned": 0.0, "bytesScanned": 0.0},
            "status": state.status,
        }
        return out

    def do_StopQuery(self, params: dict[str, Any]) -> dict[str, Any]:
        state = self.queries.get(str(params.get("queryId", "")))
        if state.status not in ("Scheduled", "Running"):
            return {"success": False}
        state.cancel.set()
        state.status = "Cancelled"
        state.settled.set()
        return {"success": True}

    def do_DescribeQueries(self, params: dict[str, Any]) -> dict[str, Any]:
        group = params.get("logGroupName")
        status = params.get("status")
        states = [
            s
            for s in self.queries.states.values()
            if (not group or group in s.group_names) and (not status or s.status == status)
        ]
        states.sort(key=lambda s: s.create_time, reverse=True)
        limit = int(params.get("maxResults") or 1000)
        return {
            "queries": [
                {
                    "queryLanguage": "CWLI",
                    "queryId": s.query_id,
                    "queryString": s.query_string,
                    "status": s.status,
                    "createTime": s.create_time,
                    "logGroupName": s.group_names[0] if s.group_names else "",
                }
                for s in states[:limit]
            ]
        }


def _error(exc: LogsError) -> web.Response:
    body: dict[str, Any] = {"__type": exc.code, "message": exc.message, **exc.extra}
    return web.Response(status=exc.status, body=json.dumps(body).encode(), content_type=CONTENT_TYPE, charset=None)
