"""X-Ray for the local Lambda service: trace plans, Lambda-shaped segments, sampling, and a UDP daemon.

Shapes follow "Visualize Lambda function invocations using AWS X-Ray" (docs.aws.amazon.com/lambda/latest/dg/
services-xray.html) and the X-Ray segment document schema (docs.aws.amazon.com/xray/latest/devguide/
xray-api-segmentdocuments.html): for a sampled invocation Lambda records an ``AWS::Lambda`` service segment and an
``AWS::Lambda::Function`` segment with ``Initialization`` (cold starts only), ``Invocation`` and ``Overhead``
subsegments. The X-Ray SDK inside the function never creates a segment: in Lambda mode (aws_xray_sdk's
``lambda_launcher.LambdaContext``) it builds a read-only facade from ``_X_AMZN_TRACE_ID`` and sends its
subsegments with ``parent_id`` = the header's ``Parent``. We hand the environment ``Parent=<Invocation subsegment
id>``, so the function's own subsegments nest under ``Invocation`` as they do on AWS (FIDELITY.md, X-Ray).
"""

from __future__ import annotations

import json
import logging
import random
import re
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from lambdalab.awslambda.core.outcome import ERROR_OUTCOMES, Outcome
from lambdalab.clock import Clock
from lambdalab.observe.model import InvocationRecord
from lambdalab.observe.tracing import (
    TraceHeader,
    is_segment_id,
    is_trace_id,
    new_segment_id,
    new_trace_id,
)

LOG = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_RULE",
    "Sampler",
    "SamplingRequest",
    "SamplingRule",
    "SegmentForwarder",
    "SegmentSink",
    "TraceHeader",
    "TracePlan",
    "XRayDaemon",
    "lambda_segments",
    "load_sampling_rules",
    "new_segment_id",
    "new_trace_id",
    "plan_trace",
    "segment_problems",
]

DAEMON_HEADER = {"format": "json", "version": 1}
MAX_SEGMENTS_PER_CALL = 50  # PutTraceSegments
MAX_BATCH_BYTES = 64 * 1024
_MAX_DATAGRAM = 65536
_MAX_QUEUED_DOCUMENTS = 100_000


# --- trace plan ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TracePlan:
    """The ids of one invocation's trace, decided before the invoke so the environment gets its header."""

    trace_id: str
    sampled: bool  # Lambda records its segments only when True
    service_segment_id: str  # the AWS::Lambda segment
    function_segment_id: str  # the AWS::Lambda::Function segment (parent: the service segment)
    invocation_subsegment_id: str  # the Invocation subsegment; the SDK's subsegments nest under it
    caller_parent_id: str | None  # the caller's segment (incoming Parent), parent of the service segment
    lineage: str | None
    environment_header: str  # Lambda-Runtime-Trace-Id / _X_AMZN_TRACE_ID for the environment

    @property
    def sdk_parent_id(self) -> str:
        return self.invocation_subsegment_id


def plan_trace(
    incoming_header: str | TraceHeader | None,
    tracing_active: bool,
    sampled: bool | Callable[[], bool],
    *,
    now: float,
) -> TracePlan:
    """Decide the trace of one invocation.

    An upstream decision (``Sampled=1`` / ``Sampled=0`` in the incoming header) wins; otherwise an Active function
    asks ``sampled`` (a bool, or a callable such as ``lambda: sampler.should_sample(request)`` so the reservoir is
    only spent when the decision is ours), and a PassThrough function does not sample. The trace id is the
    incoming Root if there is one, else a new one stamped with ``now`` (epoch seconds).
    """
    header = incoming_header if isinstance(incoming_header, TraceHeader) else TraceHeader.parse(incoming_header)
    if header.sampled is not None:
        decision = header.sampled
    elif tracing_active:
        decision = sampled() if callable(sampled) else bool(sampled)
    else:
        decision = False
    trace_id = header.root or new_trace_id(now)
    plan_ids = {
        "service_segment_id": new_segment_id(),
        "function_segment_id": new_segment_id(),
        "invocation_subsegment_id": new_segment_id(),
    }
    environment_header = TraceHeader(
        root=trace_id,
        parent=plan_ids["invocation_subsegment_id"],
        sampled=decision,
        lineage=header.lineage,
    ).format()
    return TracePlan(
        trace_id=trace_id,
        sampled=decision,
        caller_parent_id=header.parent,
        lineage=header.lineage,
        environment_header=environment_header,
        **plan_ids,
    )


# --- Lambda's own segments ----------------------------------------------------------------------------------------
def _response_time(rec: InvocationRecord) -> float:
    # ``responded_at`` is a proposed InvocationRecord field (the response was sent); until it exists, Overhead ends
    # where the invocation did.
    responded = getattr(rec, "responded_at", None)
    for candidate in (responded, rec.invoke_end, rec.invoke_start):
        if candidate is not None:
            return float(candidate)
    if rec.init_start is not None and rec.init_duration_s is not None:
        return rec.init_start + rec.init_duration_s
    return rec.received_at


def _cause(rec: InvocationRecord) -> dict[str, Any]:
    return {
        "working_directory": "/var/task",
        "exceptions": [
            {
                "id": new_segment_id(),
                "type": rec.error_type or rec.outcome,
                "message": rec.error_message or rec.outcome,
            }
        ],
    }


def _subsegment(name: str, start: float, end: float, seg_id: str | None = None) -> dict[str, Any]:
    return {"id": seg_id or new_segment_id(), "name": name, "start_time": start, "end_time": max(start, end)}


def lambda_segments(rec: InvocationRecord, plan: TracePlan, *, region: str, account_id: str) -> list[dict[str, Any]]:
    """The segment documents Lambda records for one invocation attempt; [] when the plan is not sampled.

    A throttled attempt has only the service segment (HTTP 429, ``throttle`` and ``error`` set): it never reached
    the function.
    """
    if not plan.sampled:
        return []
    end = _response_time(rec)
    # Lambda records the ARN as invoked: qualified for an alias or version, so reports can group by alias.
    invoked_arn = rec.function_arn if rec.qualifier in ("", "$LATEST") else f"{rec.function_arn}:{rec.qualifier}"
    service: dict[str, Any] = {
        "name": rec.function_name,
        "id": plan.service_segment_id,
        "trace_id": plan.trace_id,
        "start_time": rec.received_at,
        "end_time": max(rec.received_at, end),
        "origin": "AWS::Lambda",
        "resource_arn": invoked_arn,
        "aws": {"request_id": rec.request_id, "region": region, "account_id": account_id},
        "http": {"response": {"status": 429 if rec.outcome == Outcome.THROTTLED else 200}},
    }
    if plan.caller_parent_id:
        service["parent_id"] = plan.caller_parent_id
    enqueued_at = getattr(rec, "enqueued_at", None)  # proposed field: when the async event was queued
    if rec.invocation_type == "Event" and enqueued_at is not None:
        service["start_time"] = min(float(enqueued_at), rec.received_at)
        service["subsegments"] = [
            _subsegment("Dwell Time", service["start_time"], rec.received_at),
            _subsegment(f"Attempt #{rec.attempt}", rec.received_at, service["end_time"]),
        ]
    if rec.outcome == Outcome.THROTTLED:
        service["error"] = True
        service["throttle"] = True
        return [service]

    cold = rec.start_kind == "cold" and rec.init_start is not None and rec.init_duration_s is not None
    begin = rec.init_start if cold and rec.init_start is not None else (rec.invoke_start or rec.received_at)
    function: dict[str, Any] = {
        "name": rec.function_name,
        "id": plan.function_segment_id,
        "trace_id": plan.trace_id,
        "parent_id": plan.service_segment_id,
        "start_time": begin,
        "end_time": max(begin, end),
        "origin": "AWS::Lambda::Function",
        "resource_arn": invoked_arn,
        "aws": {
            "account_id": account_id,
            "function_arn": invoked_arn,
            "resource_names": [rec.function_name],
        },
        "subsegments": [],
    }
    subsegments: list[dict[str, Any]] = function["subsegments"]
    if cold and rec.init_start is not None and rec.init_duration_s is not None:
        init = _subsegment("Initialization", rec.init_start, rec.init_start + rec.init_duration_s)
        if rec.outcome == Outcome.INIT_ERROR:
            init["fault"] = True
            init["cause"] = _cause(rec)
        subsegments.append(init)
    if rec.invoke_start is not None:
        invoke_end = rec.invoke_end if rec.invoke_end is not None else end
        invocation = _subsegment("Invocation", rec.invoke_start, invoke_end, plan.invocation_subsegment_id)
        if rec.outcome in ERROR_OUTCOMES and rec.outcome != Outcome.INIT_ERROR:
            invocation["fault"] = True
            invocation["cause"] = _cause(rec)
        subsegments.append(invocation)
        subsegments.append(_subsegment("Overhead", invoke_end, end))
    if rec.outcome in ERROR_OUTCOMES:
        function["fault"] = True
        function["cause"] = _cause(rec)
    return [service, function]


def segment_problems(doc: Any, *, standalone: bool = True) -> list[str]:
    """What makes ``doc`` an invalid segment (or subsegment) document; [] when it is valid.

    Required by the schema: name, id (16 hex), trace_id (top level), start_time, end_time or in_progress;
    a standalone subsegment (``type: subsegment``) also needs parent_id. Subsegment ids must be unique.
    """
    if not isinstance(doc, dict):
        return ["not a JSON object"]
    problems: list[str] = []
    if not isinstance(doc.get("name"), str) or not doc["name"]:
        problems.append("missing name")
    if not is_segment_id(doc.get("id")):
        problems.append(f"id {doc.get('id')!r} is not 16 hex digits")
    if standalone and not is_trace_id(doc.get("trace_id")):
        problems.append(f"trace_id {doc.get('trace_id')!r} is malformed")
    if not isinstance(doc.get("start_time"), int | float):
        problems.append("missing start_time")
    if "end_time" in doc:
        if not isinstance(doc["end_time"], int | float):
            problems.append("end_time is not a number")
        elif isinstance(doc.get("start_time"), int | float) and doc["end_time"] < doc["start_time"]:
            problems.append("end_time before start_time")
    elif doc.get("in_progress") is not True:
        problems.append("neither end_time nor in_progress")
    if standalone and doc.get("type") == "subsegment" and not is_segment_id(doc.get("parent_id")):
        problems.append("a standalone subsegment needs parent_id")
    seen: set[str] = set()
    pending = list(doc.get("subsegments") or [])
    while pending:
        sub = pending.pop()
        problems.extend(f"subsegment: {p}" for p in segment_problems(sub, standalone=False))
        if isinstance(sub, dict):
            if sub.get("id") in seen or sub.get("id") == doc.get("id"):
                problems.append(f"duplicate subsegment id {sub.get('id')}")
            seen.add(sub.get("id", ""))
            pending.extend(sub.get("subsegments") or [])
    return problems


# --- sampling -----------------------------------------------------------------------------------------------------
def _glob(pattern: str) -> re.Pattern[str]:
    """X-Ray rule wildcards: ``*`` any run of characters, ``?`` one character; everything else literal."""
    parts = ("." if ch == "?" else ".*" if ch == "*" else re.escape(ch) for ch in pattern)
    return re.compile("^" + "".join(parts) + "$", re.IGNORECASE)


@dataclass(frozen=True)
class SamplingRule:
    """One X-Ray sampling rule (the fields of GetSamplingRules' ``SamplingRule`` that apply to Lambda)."""

    name: str
    priority: int
    fixed_rate: float
    reservoir_size: int
    service_name: str = "*"
    service_type: str = "*"
    host: str = "*"
    http_method: str = "*"
    url_path: str = "*"
    resource_arn: str = "*"
    _patterns: tuple[tuple[str, re.Pattern[str]], ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        attrs = ("service_name", "service_type", "host", "http_method", "url_path", "resource_arn")
        object.__setattr__(self, "_patterns", tuple((a, _glob(getattr(self, a))) for a in attrs))

    @classmethod
    def from_api(cls, rule: dict[str, Any]) -> SamplingRule:
        return cls(
            name=str(rule.get("RuleName") or rule.get("RuleARN") or "unnamed"),
            priority=int(rule.get("Priority", 10000)),
            fixed_rate=float(rule.get("FixedRate", 0.0)),
            reservoir_size=int(rule.get("ReservoirSize", 0)),
            service_name=str(rule.get("ServiceName", "*")),
            service_type=str(rule.get("ServiceType", "*")),
            host=str(rule.get("Host", "*")),
            http_method=str(rule.get("HTTPMethod", "*")),
            url_path=str(rule.get("URLPath", "*")),
            resource_arn=str(rule.get("ResourceARN", "*")),
        )

    def matches(self, request: SamplingRequest) -> bool:
        return all(pattern.match(getattr(request, attr)) is not None for attr, pattern in self._patterns)


# The rule every account has: one request per second, then 5 percent. [X-Ray sampling rules; FIDELITY.md]
DEFAULT_RULE = SamplingRule(name="Default", priority=10000, fixed_rate=0.05, reservoir_size=1)


@dataclass(frozen=True)
class SamplingRequest:
    """What a rule is matched against; for Lambda, the function name, type and ARN."""

    service_name: str
    service_type: str = "AWS::Lambda::Function"
    resource_arn: str = "*"
    host: str = ""
    http_method: str = ""
    url_path: str = ""


class Sampler:
    """Centralised-rule sampling: the matching rule of lowest priority first spends its per-second reservoir,
    then samples at its fixed rate. Time from the injected clock; randomness from an injectable ``random.Random``.
    """

    def __init__(
        self,
        clock: Clock,
        rules: Iterable[SamplingRule] | None = None,
        *,
        rng: random.Random | None = None,
        seed: int | None = None,
    ) -> None:
        self._clock = clock
        self._rng = rng or random.Random(seed)
        self._lock = threading.Lock()
        self._rules: list[SamplingRule] = []
        self._reservoir: dict[str, tuple[int, int]] = {}  # rule name -> (second, requests taken in it)
        self.update_rules(rules if rules is not None else [DEFAULT_RULE])

    @property
    def rules(self) -> list[SamplingRule]:
        return list(self._rules)

    def update_rules(self, rules: Iterable[SamplingRule]) -> None:
        ordered = sorted(rules, key=lambda r: (r.priority, r.name))
        if not any(r.name == DEFAULT_RULE.name for r in ordered):
            ordered.append(DEFAULT_RULE)
        with self._lock:
            self._rules = ordered
            self._reservoir = {k: v for k, v in self._reservoir.items() if any(r.name == k for r in ordered)}

    def refresh(self, xray_client: Any) -> None:
        self.update_rules(load_sampling_rules(xray_client))

    def rule_for(self, request: SamplingRequest) -> SamplingRule:
        for rule in self._rules:
            if rule.matches(request):
                return rule
        return DEFAULT_RULE

    def should_sample(self, request: SamplingRequest) -> bool:
        with self._lock:
            rule = self.rule_for(request)
            second = int(self._clock.now() // 1)
            window, taken = self._reservoir.get(rule.name, (second, 0))
            if window != second:
                window, taken = second, 0
            if taken < rule.reservoir_size:
                self._reservoir[rule.name] = (window, taken + 1)
                return True
            self._reservoir[rule.name] = (window, taken)
            return self._rng.random() < rule.fixed_rate


def load_sampling_rules(xray_client: Any) -> list[SamplingRule]:
    """The rules from GetSamplingRules, paginated; the Default rule alone when the endpoint has none.

    moto 5.2.5 does not implement GetSamplingRules, so against bare moto this logs once and falls back.
    """
    rules: list[SamplingRule] = []
    try:
        token: str | None = None
        for _page in range(1000):  # a bound on pagination, far above any real rule count (25 rules per account)
            kwargs = {"NextToken": token} if token else {}
            response = xray_client.get_sampling_rules(**kwargs)
            rules.extend(SamplingRule.from_api(r["SamplingRule"]) for r in response.get("SamplingRuleRecords", []))
            token = response.get("NextToken")
            if not token:
                break
    except Exception as exc:
        LOG.info("no sampling rules from X-Ray (%s); using the default rule (1 req/s + 5%%)", exc)
        return [DEFAULT_RULE]
    return rules or [DEFAULT_RULE]


# --- forwarding to PutTraceSegments -------------------------------------------------------------------------------
class SegmentSink(Protocol):
    def put(self, document: dict[str, Any]) -> None: ...


class SegmentForwarder:
    """A sink that batches segment documents to PutTraceSegments from a background thread.

    Batches hold at most 50 documents and 64 KB; a batch goes out when full or ``flush_interval_s`` after its first
    document. Failed calls are logged and their documents retried on the next round; documents X-Ray rejects
    (UnprocessedTraceSegments) are counted and logged.
    """

    def __init__(self, xray_client: Any, *, flush_interval_s: float = 0.5) -> None:
        self._client = xray_client
        self._interval = flush_interval_s
        self._queue: deque[str] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self.forwarded = 0
        self.rejected = 0
        self.failures = 0
        self.dropped = 0  # documents discarded because more than 100,000 were waiting

    def put(self, document: dict[str, Any]) -> None:
        text = json.dumps(document, separators=(",", ":"))
        with self._cond:
            self._queue.append(text)
            if len(self._queue) > _MAX_QUEUED_DOCUMENTS:
                self._queue.popleft()
                self.dropped += 1
                if self.dropped % 10_000 == 1:
                    LOG.warning("X-Ray unreachable too long: %d oldest queued segments dropped so far", self.dropped)
            if len(self._queue) >= MAX_SEGMENTS_PER_CALL:
                self._cond.notify()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("segment forwarder already started")
        self._thread = threading.Thread(target=self._run, name="xray-forwarder", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            if self._thread.is_alive():
                LOG.warning("X-Ray forwarder did not stop within %.1f s", timeout_s)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._stopping and len(self._queue) < MAX_SEGMENTS_PER_CALL:
                    self._cond.wait(timeout=self._interval)
                if self._stopping:
                    return
            self.flush()

    def flush(self) -> int:
        """Send everything queued now; returns how many documents X-Ray accepted."""
        accepted = 0
        with self._send_lock:
            while True:
                with self._cond:
                    batch = _take_batch(self._queue)
                if not batch:
                    return accepted
                try:
                    response = self._client.put_trace_segments(TraceSegmentDocuments=batch)
                except Exception as exc:
                    self.failures += 1
                    LOG.warning("PutTraceSegments failed (%d documents kept for retry): %s", len(batch), exc)
                    with self._cond:
                        self._queue.extendleft(reversed(batch))
                    return accepted
                unprocessed = response.get("UnprocessedTraceSegments") or []
                for item in unprocessed:
                    LOG.warning("X-Ray rejected segment %s: %s", item.get("Id"), item.get("Message"))
                self.rejected += len(unprocessed)
                accepted += len(batch) - len(unprocessed)
                self.forwarded += len(batch) - len(unprocessed)


def _take_batch(queue: deque[str]) -> list[str]:
    batch: list[str] = []
    size = 0
    while queue and len(batch) < MAX_SEGMENTS_PER_CALL:
        nxt = len(queue[0].encode())
        if batch and size + nxt > MAX_BATCH_BYTES:
            break
        batch.append(queue.popleft())
        size += nxt
    return batch


# --- the UDP daemon -----------------------------------------------------------------------------------------------
class XRayDaemon:
    """The X-Ray daemon protocol on UDP: each datagram is ``{"format": "json", "version": 1}\\n<document>``.

    Valid documents go to ``sink`` (normally a ``SegmentForwarder``); malformed datagrams are counted and logged
    at debug level. ``address`` ("127.0.0.1:PORT") is what environments get as ``AWS_XRAY_DAEMON_ADDRESS``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, sink: SegmentSink | None = None) -> None:
        if sink is None:
            raise ValueError("XRayDaemon needs a sink for the documents it receives")
        self._host = host
        self._port = port
        self._sink = sink
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.received = 0
        self.malformed = 0

    @property
    def address(self) -> str:
        if self._sock is None:
            raise RuntimeError("the X-Ray daemon is not started")
        host, port = self._sock.getsockname()[:2]
        return f"{host}:{port}"

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    def start(self) -> None:
        if self._sock is not None:
            raise RuntimeError("the X-Ray daemon is already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sock.bind((self._host, self._port))
        sock.settimeout(0.2)  # how long stop() may wait for the receive loop to notice
        self._sock = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="xray-daemon", daemon=True)
        self._thread.start()
        LOG.info("X-Ray daemon listening on udp://%s", self.address)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop receiving, then flush the sink (if it can be flushed)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            if self._thread.is_alive():
                LOG.warning("X-Ray daemon thread did not stop within %.1f s", timeout_s)
            self._thread = None
        if self._sock is not None:
            self._drain()
            self._sock.close()
            self._sock = None
        flush = getattr(self._sink, "flush", None)
        if callable(flush):
            flush()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                data = self._sock.recv(_MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                if not self._stop.is_set():
                    LOG.exception("X-Ray daemon socket failed")
                return
            self.handle_datagram(data)

    def _drain(self) -> None:
        """Take the datagrams already queued on the socket, so nothing sent before stop() is lost."""
        assert self._sock is not None
        self._sock.setblocking(False)
        for _ in range(100_000):
            try:
                data = self._sock.recv(_MAX_DATAGRAM)
            except (BlockingIOError, OSError):
                return
            self.handle_datagram(data)

    def handle_datagram(self, data: bytes) -> bool:
        """Validate one datagram and pass its document on; False (counted, logged at debug) when malformed."""
        self.received += 1
        header_raw, sep, body = data.partition(b"\n")
        try:
            header = json.loads(header_raw) if sep else None
            if header != DAEMON_HEADER:
                raise ValueError(f"bad daemon header {header_raw[:80]!r}")
            document = json.loads(body)
            problems = segment_problems(document)
            if problems:
                raise ValueError("; ".join(problems))
        except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            self.malformed += 1
            LOG.debug("dropping a malformed X-Ray datagram (%d bytes): %s", len(data), exc)
            return False
        try:
            self._sink.put(document)
        except Exception:
            LOG.exception("X-Ray sink failed for segment %s", document.get("id"))
            return False
        return True
