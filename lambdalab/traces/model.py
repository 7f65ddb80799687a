"""Typed, recursive X-Ray trace documents (segment → subsegments), parsed tolerantly: what cannot be read is told."""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

LOG = logging.getLogger(__name__)

# Origins Lambda and Step Functions write (AWS X-Ray segment documents; "Visualize Lambda function invocations").
ORIGIN_LAMBDA = "AWS::Lambda"
ORIGIN_LAMBDA_FUNCTION = "AWS::Lambda::Function"
ORIGIN_STEP_FUNCTIONS = "AWS::StepFunctions::StateMachine"
SUBSEGMENT_INITIALIZATION = "Initialization"
SUBSEGMENT_INVOCATION = "Invocation"
SUBSEGMENT_OVERHEAD = "Overhead"

_EMPTY: Mapping[str, Any] = {}


@dataclass(slots=True)
class Segment:
    """A segment or subsegment document: the documented fields we use, the open-ended objects kept as mappings.

    Treated as read-only once parsed. Not `frozen=True` on purpose: a frozen dataclass sets each field through
    object.__setattr__, which made building 200,000 of them ten times slower (bench/bench_traces.py).

    `end_time` is None while `in_progress`. `subsegments` holds both the ones embedded in the document and
    those sent as separate documents (`"type": "subsegment"`) that name this one as their parent.
    """

    id: str
    name: str
    start_time: float
    end_time: float | None = None
    trace_id: str | None = None
    parent_id: str | None = None
    type: str | None = None  # "subsegment" for a subsegment sent as its own document
    origin: str | None = None
    resource_arn: str | None = None
    namespace: str | None = None
    in_progress: bool = False
    error: bool = False
    fault: bool = False
    throttle: bool = False
    http: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    aws: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    cause: Mapping[str, Any] | str | None = None
    annotations: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    subsegments: tuple[Segment, ...] = ()

    @property
    def duration(self) -> float | None:
        """Seconds from start to end; None for an in-progress segment."""
        if self.end_time is None:
            return None
        return self.end_time - self.start_time

    @property
    def http_status(self) -> int | None:
        response = self.http.get("response") if isinstance(self.http, Mapping) else None
        status = response.get("status") if isinstance(response, Mapping) else None
        return status if isinstance(status, int) else None

    def child(self, name: str) -> Segment | None:
        """The first direct subsegment with this name."""
        for sub in self.subsegments:
            if sub.name == name:
                return sub
        return None

    def walk(self) -> Iterable[Segment]:
        """This segment and every subsegment below it, depth first (bounded by the document's depth)."""
        stack: list[Segment] = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.subsegments))


@dataclass(frozen=True, slots=True)
class Trace:
    """All the segments of one trace id, top-level segments only (subsegments hang below them)."""

    id: str
    segments: tuple[Segment, ...]

    def by_origin(self, origin: str) -> list[Segment]:
        return [segment for segment in self.segments if segment.origin == origin]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that could not be read: where (trace id / file:line / segment id) and why."""

    where: str
    reason: str


@dataclass
class ParseOutcome:
    """Traces read plus everything skipped, so a report can say what it could not read."""

    traces: list[Trace] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@contextmanager
def bulk() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many acyclic objects (segment trees, invocations).

    Its passes over a heap that only grows are pure overhead here: about 40% of the time for 100,000 documents
    (bench/bench_traces.py). Reference counting still frees everything; the collector resumes afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class SegmentError(ValueError):
    """A segment document that does not follow the schema well enough to use."""


def _number(value: Any, name: str) -> float:
    kind = type(value)
    if kind is float:
        return value
    if kind is not int:  # bool is not int here: type() is exact
        raise SegmentError(f"{name} is not a number")
    return float(value)


# json.loads gives dicts, lists and strs: exact type() checks are several times cheaper than isinstance against
# the Mapping ABC, which matters at 100,000 documents (bench/bench_traces.py).


def parse_segment(doc: Mapping[str, Any], *, depth: int = 0) -> Segment:
    """One segment (or subsegment) object into a Segment; raises SegmentError naming the first missing field.

    Written flat on purpose (type() checks inline, no helper calls per field): it runs once per segment and
    subsegment, 200,000 times for the benchmark's 100,000 documents.
    """
    if depth > 64:
        raise SegmentError("subsegments nested deeper than 64 levels")
    if type(doc) is not dict:
        if not isinstance(doc, Mapping):
            raise SegmentError("segment is not a JSON object")
        doc = dict(doc)
    get = doc.get
    seg_id = get("id")
    if type(seg_id) is not str or not seg_id:
        raise SegmentError("missing id")
    name = get("name")
    if type(name) is not str:
        raise SegmentError("missing name")
    if "start_time" not in doc:
        raise SegmentError("missing start_time")
    start = _number(doc["start_time"], "start_time")
    end_raw = get("end_time")
    end = None if end_raw is None else _number(end_raw, "end_time")
    in_progress = end is None and get("in_progress") is True
    if end is None and not in_progress:
        raise SegmentError("missing end_time (and not in_progress)")
    subs_raw = get("subsegments")
    subsegments: tuple[Segment, ...] = ()
    if type(subs_raw) is list and subs_raw:
        subsegments = tuple([parse_segment(sub, depth=depth + 1) for sub in subs_raw])
    trace_id, parent_id, kind, origin = get("trace_id"), get("parent_id"), get("type"), get("origin")
    resource_arn, namespace = get("resource_arn"), get("namespace")
    http, aws, cause, annotations = get("http"), get("aws"), get("cause"), get("annotations")
    return Segment(
        seg_id,
        name,
        start,
        end,
        trace_id if type(trace_id) is str else None,
        parent_id if type(parent_id) is str else None,
        kind if type(kind) is str else None,
        origin if type(origin) is str else None,
        resource_arn if type(resource_arn) is str else None,
        namespace if type(namespace) is str else None,
        in_progress,
        get("error") is True,
        get("fault") is True,
        get("throttle") is True,
        http if type(http) is dict else _EMPTY,
        aws if type(aws) is dict else _EMPTY,
        cause if type(cause) is dict or type(cause) is str else None,
        annotations if type(annotations) is dict else _EMPTY,
        subsegments,
    )


def assemble_trace(trace_id: str, documents: Iterable[Any], outcome: ParseOutcome) -> Trace | None:
    """Build one trace from its documents in any order: JSON strings or already-decoded objects.

    Documents that cannot be read are added to `outcome.problems`. A segment sent twice (in progress, then
    complete) keeps its complete version. Subsegments sent as separate documents are attached to their parent;
    one whose parent never arrived is reported as an orphan.
    """
    by_id: dict[str, Segment] = {}
    detached: list[Segment] = []
    loads = json.loads
    for index, raw in enumerate(documents):
        try:
            doc = loads(raw) if type(raw) is str or isinstance(raw, str | bytes) else raw
        except ValueError as exc:
            outcome.problems.append(Problem(f"{trace_id} document {index}", f"malformed JSON ({_msg(exc)})"))
            continue
        try:
            segment = parse_segment(doc)
        except SegmentError as exc:
            outcome.problems.append(Problem(f"{trace_id} document {index}", str(exc)))
            continue
        if segment.trace_id is not None and segment.trace_id != trace_id:
            outcome.problems.append(Problem(f"{trace_id} document {index}", "document belongs to another trace"))
            continue
        if segment.type == "subsegment" and segment.parent_id:
            detached.append(segment)
            continue
        previous = by_id.get(segment.id)
        if previous is None or previous.end_time is None or segment.end_time is not None:
            by_id[segment.id] = segment
    if detached:
        _attach(trace_id, by_id, detached, outcome)
    if not by_id:
        return None
    segments = sorted(by_id.values(), key=lambda s: (s.start_time, s.id))
    return Trace(id=trace_id, segments=tuple(segments))


def _msg(exc: ValueError) -> str:
    return str(getattr(exc, "msg", exc))


def _attach(trace_id: str, by_id: dict[str, Segment], detached: list[Segment], outcome: ParseOutcome) -> None:
    """Hang separately sent subsegments under their parents; a parent may itself be a detached subsegment."""
    children: dict[str, list[Segment]] = {}
    for sub in detached:
        children.setdefault(sub.parent_id or "", []).append(sub)

    def build(node: Segment, depth: int) -> Segment:
        extra = children.pop(node.id, [])
        rebuilt = [build(sub, depth + 1) for sub in node.subsegments] if depth < 64 else list(node.subsegments)
        kids = [build(sub, depth + 1) for sub in extra] if depth < 64 else extra
        if not extra and all(a is b for a, b in zip(rebuilt, node.subsegments, strict=True)):
            return node
        merged = sorted(rebuilt + kids, key=lambda s: s.start_time)
        return replace(node, subsegments=tuple(merged))

    for seg_id in list(by_id):
        by_id[seg_id] = build(by_id[seg_id], 0)
    for parent_id, orphans in children.items():
        for orphan in orphans:
            outcome.problems.append(
                Problem(f"{trace_id} subsegment {orphan.id}", f"orphan subsegment (parent {parent_id} not in trace)")
            )


def parse_batch_get_traces(responses: Iterable[Mapping[str, Any]], outcome: ParseOutcome | None = None) -> ParseOutcome:
    """BatchGetTraces responses (or one saved response) into traces: `Traces[].Segments[].Document` strings."""
    outcome = outcome if outcome is not None else ParseOutcome()
    with bulk():
        _parse_pages(responses, outcome)
    return outcome


def _parse_pages(responses: Iterable[Mapping[str, Any]], outcome: ParseOutcome) -> None:
    for page_index, response in enumerate(responses):
        traces = response.get("Traces") if isinstance(response, Mapping) else None
        if not isinstance(traces, list):
            outcome.problems.append(Problem(f"response {page_index}", "no Traces list"))
            continue
        for item in traces:
            trace_id = item.get("Id") if isinstance(item, Mapping) else None
            segments = item.get("Segments") if isinstance(item, Mapping) else None
            if not isinstance(trace_id, str) or not isinstance(segments, list):
                outcome.problems.append(Problem(f"response {page_index}", "trace without Id or Segments"))
                continue
            docs = [s.get("Document") if type(s) is dict else None for s in segments]
            readable = [d for d in docs if type(d) is str or type(d) is dict]
            for _ in range(len(docs) - len(readable)):
                outcome.problems.append(Problem(trace_id, "segment without Document"))
            trace = assemble_trace(trace_id, readable, outcome)
            if trace is not None:
                outcome.traces.append(trace)
        for unprocessed in response.get("UnprocessedTraceIds") or []:
            outcome.problems.append(Problem(str(unprocessed), "unprocessed by BatchGetTraces"))
