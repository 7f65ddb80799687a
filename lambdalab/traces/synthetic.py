"""Lambda-shaped X-Ray segment documents, as AWS documents them, for fixtures, the moto test and the benchmark."""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from typing import Any

from lambdalab.traces.model import (
    ORIGIN_LAMBDA,
    ORIGIN_LAMBDA_FUNCTION,
    ORIGIN_STEP_FUNCTIONS,
    SUBSEGMENT_INITIALIZATION,
    SUBSEGMENT_INVOCATION,
    SUBSEGMENT_OVERHEAD,
)

LOG = logging.getLogger(__name__)

REGION = "us-east-1"
ACCOUNT = "123456789012"


@dataclass
class Ids:
    """Segment and trace ids from a seeded generator, so fixtures are reproducible."""

    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def segment(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    def trace(self, epoch: float) -> str:
        return f"1-{int(epoch):08x}-{self.rng.getrandbits(96):024x}"


@dataclass
class Call:
    """One Lambda invocation to render as the two segments Lambda writes."""

    function: str
    received_at: float
    kind: str = "warm"  # "cold" | "warm" | "provisioned" | "throttled"
    qualifier: str | None = None
    init_s: float = 0.0
    duration_s: float = 0.05
    queue_s: float = 0.003  # service segment start → function segment start
    overhead_s: float = 0.001
    prewarmed_s: float = 300.0  # provisioned: INIT began this long before the request
    trace_id: str | None = None
    parent_id: str | None = None  # the caller's (sub)segment, e.g. a Step Functions task
    request_id: str | None = None
    error: bool = False

    def arn(self) -> str:
        base = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function}"
        return f"{base}:{self.qualifier}" if self.qualifier else base


def lambda_documents(call: Call, ids: Ids) -> list[dict[str, Any]]:
    """The `AWS::Lambda` service segment and the `AWS::Lambda::Function` segment (absent when throttled)."""
    trace_id = call.trace_id or ids.trace(call.received_at)
    request_id = call.request_id or f"{ids.rng.getrandbits(128):032x}"
    service_id = ids.segment()
    t = call.received_at
    if call.kind == "throttled":
        service: dict[str, Any] = {
            "id": service_id,
            "name": call.function,
            "trace_id": trace_id,
            "start_time": round(t, 6),
            "end_time": round(t + 0.004, 6),
            "origin": ORIGIN_LAMBDA,
            "resource_arn": call.arn(),
            "http": {"response": {"status": 429}},
            "aws": {"request_id": request_id},
            "error": True,
            "throttle": True,
            "cause": {"exceptions": [{"message": "Rate Exceeded.", "type": "TooManyRequestsException"}]},
        }
        if call.parent_id:
            service["parent_id"] = call.parent_id
        return [service]
    fn_start = t + call.queue_s
    subsegments: list[dict[str, Any]] = []
    cursor = fn_start
    if call.kind == "cold":
        subsegments.append(_sub(ids, SUBSEGMENT_INITIALIZATION, cursor, cursor + call.init_s))
        cursor += call.init_s
    elif call.kind == "provisioned":
        # Provisioned concurrency initialised ahead of traffic; X-Ray records the wait as the INIT span.
        subsegments.append(_sub(ids, SUBSEGMENT_INITIALIZATION, t - call.prewarmed_s, fn_start))
    invocation = _sub(ids, SUBSEGMENT_INVOCATION, cursor, cursor + call.duration_s)
    if call.error:
        invocation["error"] = True
    subsegments.append(invocation)
    cursor += call.duration_s
    subsegments.append(_sub(ids, SUBSEGMENT_OVERHEAD, cursor, cursor + call.overhead_s))
    fn_end = cursor + call.overhead_s
    function = {
        "id": ids.segment(),
        "name": call.function,
        "trace_id": trace_id,
        "parent_id": service_id,
        "start_time": round(fn_start, 6),
        "end_time": round(fn_end, 6),
        "origin": ORIGIN_LAMBDA_FUNCTION,
        "resource_arn": call.arn(),
        "aws": {
            "function_arn": call.arn(),
            "resource_names": [call.function],
            "account_id": ACCOUNT,
            "cloudwatch_logs": [{"log_group": f"/aws/lambda/{call.function}"}],
        },
        "subsegments": subsegments,
    }
    if call.error:
        function["error"] = True
    service = {
        "id": service_id,
        "name": call.function,
        "trace_id": trace_id,
        "start_time": round(t, 6),
        "end_time": round(fn_end + 0.001, 6),
        "origin": ORIGIN_LAMBDA,
        "resource_arn": call.arn(),
        "http": {"response": {"status": 200}},
        "aws": {"request_id": request_id},
    }
    if call.parent_id:
        service["parent_id"] = call.parent_id
    return [service, function]


def _sub(ids: Ids, name: str, start: float, end: float) -> dict[str, Any]:
    return {"id": ids.segment(), "name": name, "start_time": round(start, 6), "end_time": round(end, 6)}


def step_functions_document(
    trace_id: str, name: str, execution: str, *, start: float, end: float, ids: Ids
) -> dict[str, Any]:
    """The state machine's own segment for one execution (its task subsegments are left out)."""
    return {
        "id": ids.segment(),
        "name": name,
        "trace_id": trace_id,
        "start_time": round(start, 6),
        "end_time": round(end, 6),
        "origin": ORIGIN_STEP_FUNCTIONS,
        "resource_arn": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}",
        "aws": {"execution_arn": f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{name}:{execution}"},
    }


def batch_get_traces_response(traces: dict[str, list[dict[str, Any]] | list[str]]) -> dict[str, Any]:
    """Documents grouped by trace id, in BatchGetTraces' answer shape (documents as JSON strings)."""
    out = []
    for trace_id, docs in traces.items():
        segments = []
        for doc in docs:
            text = doc if isinstance(doc, str) else json.dumps(doc, separators=(",", ":"))
            seg_id = doc.get("id", "?") if isinstance(doc, dict) else "?"
            segments.append({"Id": seg_id, "Document": text})
        out.append({"Id": trace_id, "Duration": 0.0, "LimitExceeded": False, "Segments": segments})
    return {"Traces": out, "UnprocessedTraceIds": []}


def mixed_workload(invocations: int, start: float, seed: int = 11) -> list[list[dict[str, Any]]]:
    """A realistic mix, as lists of documents per trace: mostly warm calls, a few cold starts of 150-900 ms, a
    provisioned alias, some throttles, and Map executions whose items share a trace."""
    ids = Ids(random.Random(seed))
    rng = ids.rng
    traces: list[list[dict[str, Any]]] = []
    t = start
    made = 0
    functions = [("lab-ColdStart", None), ("lab-Provisioned", "live"), ("lab-Throttled", None)]
    while made < invocations:
        t += rng.expovariate(200.0)
        roll = rng.random()
        if roll < 0.05:  # a Map execution of 5-20 items
            items = min(rng.randint(5, 20), invocations - made)
            trace_id = ids.trace(t)
            docs: list[dict[str, Any]] = []
            for n in range(items):
                kind = "cold" if rng.random() < 0.3 else "warm"
                call = Call("lab-MapItem", t + n * 0.002, kind, init_s=rng.uniform(0.15, 0.9), trace_id=trace_id)
                call.duration_s = rng.uniform(0.02, 0.2)
                docs.extend(lambda_documents(call, ids))
            head = step_functions_document(trace_id, "lab-Map", f"exec-{made}", start=t - 0.01, end=t + 1.5, ids=ids)
            docs.append(head)
            traces.append(docs)
            made += items
            continue
        name, qualifier = functions[0 if roll < 0.6 else (1 if roll < 0.9 else 2)]
        if qualifier:
            kind = "provisioned" if rng.random() < 0.02 else "warm"
        elif name == "lab-Throttled" and rng.random() < 0.2:
            kind = "throttled"
        else:
            kind = "cold" if rng.random() < 0.03 else "warm"
        call = Call(name, t, kind, qualifier=qualifier, init_s=rng.uniform(0.15, 0.9))
        call.duration_s = rng.lognormvariate(-3.0, 0.5)
        traces.append(lambda_documents(call, ids))
        made += 1
    return traces
