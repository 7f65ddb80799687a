"""The local CloudWatch Logs state: log groups, their streams, and each stream's events in timestamp order.

Why our own store and not moto's logs backend: moto 5.2.5 keeps events in one list per stream that it re-sorts on
every GetLogEvents, scans whole for first/last timestamps on every DescribeLogStreams, does not interleave
FilterLogEvents across streams by default, matches every *unsupported* filter pattern (kinder than AWS), and its Logs
Insights knows only `fields`, `sort` and `limit`. The lab writes hundreds of events a second and reads them with
`aws logs tail`, filter patterns and Insights, so the state lives here, indexed for those reads.

One owner: every read and write goes through `LogStore` under its lock. Events within a stream are kept in
(timestamp, sequence) order — the sequence is the order of arrival, so events with equal timestamps stay in the order
they were written.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from lambdalab.clock import Clock

LOG = logging.getLogger(__name__)

RETENTION_DAYS = (
    *(1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731),
    *(1096, 1827, 2192, 2557, 2922, 3288, 3653),
)


class LogsError(Exception):
    """An AWS CloudWatch Logs error: its code (the `__type`) and message, as the API answers it."""

    def __init__(self, code: str, message: str, status: int = 400, **extra: object) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra


def group_not_found() -> LogsError:
    return LogsError("ResourceNotFoundException", "The specified log group does not exist.")


def stream_not_found() -> LogsError:
    return LogsError("ResourceNotFoundException", "The specified log stream does not exist.")


@dataclass(slots=True)
class LogEvent:
    timestamp: int  # ms since the epoch
    seq: int  # arrival order, unique in the store
    ingestion: int  # ms since the epoch
    message: str

    @property
    def key(self) -> tuple[int, int]:
        return (self.timestamp, self.seq)

    @property
    def event_id(self) -> str:
        return f"{self.seq:056d}"


@dataclass(eq=False)
class LogStream:
    name: str
    arn: str
    creation_time: int
    events: list[LogEvent] = field(default_factory=list)
    last_ingestion: int | None = None
    stored_bytes: int = 0

    @property
    def first_timestamp(self) -> int | None:
        return self.events[0].timestamp if self.events else None

    @property
    def last_timestamp(self) -> int | None:
        return self.events[-1].timestamp if self.events else None

    def insert(self, event: LogEvent) -> None:
        if not self.events or self.events[-1].key <= event.key:
            self.events.append(event)
        else:  # an older event (PutLogEvents accepts events older than the stream's newest): keep the order
            bisect.insort(self.events, event, key=lambda e: e.key)

    def between(self, start: int | None, end: int | None, *, end_inclusive: bool) -> list[LogEvent]:
        """Events with start <= timestamp < end (or <= end)."""
        events = self.events
        lo = 0 if start is None else bisect.bisect_left(events, start, key=lambda e: e.timestamp)
        if end is None:
            hi = len(events)
        elif end_inclusive:
            hi = bisect.bisect_right(events, end, key=lambda e: e.timestamp)
        else:
            hi = bisect.bisect_left(events, end, key=lambda e: e.timestamp)
        return events[lo:hi]

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"logStreamName": self.name, "creationTime": self.creation_time}
        if self.events:
            out["firstEventTimestamp"] = self.first_timestamp
            out["lastEventTimestamp"] = self.last_timestamp
            out["lastIngestionTime"] = self.last_ingestion
        out["uploadSequenceToken"] = "1"
        out["arn"] = self.arn
        out["storedBytes"] = 0  # AWS: deprecated, always 0
        return out


@dataclass(eq=False)
class LogGroup:
    name: str
    arn: str  # ...:log-group:<name> (logGroupArn); describe's `arn` adds ":*"
    creation_time: int
    retention_in_days: int | None = None
    kms_key_id: str | None = None
    log_group_class: str = "STANDARD"
    tags: dict[str, str] = field(default_factory=dict)
    streams: dict[str, LogStream] = field(default_factory=dict)

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"logGroupName": self.name, "creationTime": self.creation_time}
        if self.retention_in_days is not None:
            out["retentionInDays"] = self.retention_in_days
        out["metricFilterCount"] = 0
        out["arn"] = f"{self.arn}:*"
        out["storedBytes"] = sum(s.stored_bytes for s in self.streams.values())
        if self.kms_key_id:
            out["kmsKeyId"] = self.kms_key_id
        out["logGroupClass"] = self.log_group_class
        out["logGroupArn"] = self.arn
        return out


@dataclass(frozen=True, slots=True)
class Found:
    """An event with where it was found (FilterLogEvents, Insights)."""

    group: str
    stream: str
    event: LogEvent


class LogStore:
    """Thread-safe: the writer thread appends, API handlers read; every method takes the one lock."""

    def __init__(self, region: str, account_id: str, *, epoch: Clock) -> None:
        self.region = region
        self.account_id = account_id
        self.epoch = epoch  # creation and ingestion times
        self._lock = threading.RLock()
        self._groups: dict[str, LogGroup] = {}
        self._seq = itertools.count(1)
        self.events_written = 0

    def _now_ms(self) -> int:
        return int(self.epoch.now() * 1000)

    # --- groups and streams -------------------------------------------------------------------------------------

    def group_arn(self, name: str) -> str:
        return f"arn:aws:logs:{self.region}:{self.account_id}:log-group:{name}"

    def create_group(
        self,
        name: str,
        *,
        tags: dict[str, str] | None = None,
        kms_key_id: str | None = None,
        log_group_class: str | None = None,
        exist_ok: bool = False,
    ) -> LogGroup:
        with self._lock:
            group = self._groups.get(name)
            if group is not None:
                if exist_ok:
                    return group
                raise LogsError("ResourceAlreadyExistsException", "The specified log group already exists")
            group = LogGroup(
                name,
                self.group_arn(name),
                self._now_ms(),
                kms_key_id=kms_key_id,
                log_group_class=log_group_class or "STANDARD",
                tags=dict(tags or {}),
            )
            self._groups[name] = group
            return group

    def delete_group(self, name: str) -> None:
        with self._lock:
            if self._groups.pop(name, None) is None:
                raise group_not_found()

    def group(self, name: str) -> LogGroup:
        """The group named `name` (or by ARN, with or without the trailing ``:*``)."""
        with self._lock:
            group = self._groups.get(name)
            if group is None and name.startswith("arn:"):
                resource = name.split(":log-group:", 1)[-1]
                resource = resource[:-2] if resource.endswith(":*") else resource
                group = self._groups.get(resource)
            if group is None:
                raise group_not_found()
            return group

    def groups(self) -> list[LogGroup]:
        with self._lock:
            return sorted(self._groups.values(), key=lambda g: g.name)

    def put_retention(self, name: str, days: int | None) -> None:
        with self._lock:
            self.group(name).retention_in_days = days

    def create_stream(self, group_name: str, stream_name: str, *, exist_ok: bool = False) -> LogStream:
        with self._lock:
            group = self.group(group_name)
            stream = group.streams.get(stream_name)
            if stream is not None:
                if exist_ok:
                    return stream
                raise LogsError("ResourceAlreadyExistsException", "The specified log stream already exists")
            stream = LogStream(stream_name, f"{group.arn}:log-stream:{stream_name}", self._now_ms())
            group.streams[stream_name] = stream
            return stream

    def delete_stream(self, group_name: str, stream_name: str) -> None:
        with self._lock:
            group = self.group(group_name)
            if group.streams.pop(stream_name, None) is None:
                raise stream_not_found()

    def stream(self, group_name: str, stream_name: str) -> LogStream:
        with self._lock:
            stream = self.group(group_name).streams.get(stream_name)
            if stream is None:
                raise stream_not_found()
            return stream

    def streams(self, group_name: str) -> list[LogStream]:
        with self._lock:
            return list(self.group(group_name).streams.values())

    # --- writing ------------------------------------------------------------------------------------------------

    def append(self, group_name: str, stream_name: str, events: Iterable[tuple[int, str]], *, create: bool) -> int:
        """Add events (timestamp ms, message) to a stream in the order given; `create` makes the group and stream
        on first write (what Lambda and API Gateway do). Returns how many were added."""
        now = self._now_ms()
        count = 0
        with self._lock:
            if create:
                group = self._groups.get(group_name) or self.create_group(group_name)
                stream = group.streams.get(stream_name) or self.create_stream(group_name, stream_name)
            else:
                stream = self.stream(group_name, stream_name)
            for timestamp, message in events:
                stream.insert(LogEvent(int(timestamp), next(self._seq), now, message))
                stream.stored_bytes += len(message)
                count += 1
            if count:
                stream.last_ingestion = now
            self.events_written += count
        return count

    # --- reading ------------------------------------------------------------------------------------------------

    def read_stream(self, group_name: str, stream_name: str, start: int | None, end: int | None) -> list[LogEvent]:
        """A copy of a stream's events with start <= timestamp < end (GetLogEvents' window)."""
        with self._lock:
            return self.stream(group_name, stream_name).between(start, end, end_inclusive=False)

    def search(
        self,
        group_names: Iterable[str],
        *,
        start: int | None = None,
        end: int | None = None,
        stream_names: Iterable[str] | None = None,
        stream_prefix: str | None = None,
        after: tuple[int, int] | None = None,
    ) -> Iterator[Found]:
        """Events of the groups' streams interleaved in (timestamp, arrival) order, start <= timestamp <= end,
        after the key `after` (pagination). The slices are copied under the lock; the merge runs outside it."""
        wanted = set(stream_names) if stream_names is not None else None
        slices: list[list[Found]] = []
        with self._lock:
            for group_name in group_names:
                group = self.group(group_name)
                for stream in group.streams.values():
                    if wanted is not None and stream.name not in wanted:
                        continue
                    if stream_prefix and not stream.name.startswith(stream_prefix):
                        continue
                    events = stream.between(start, end, end_inclusive=True)
                    if after is not None:
                        events = events[bisect.bisect_right(events, after, key=lambda e: e.key) :]
                    if events:
                        slices.append([Found(group.name, stream.name, e) for e in events])
        yield from heapq.merge(*slices, key=lambda f: f.event.key)
