"""Rewrite the committed trace fixtures: `.venv/bin/python tests/data/traces/regenerate.py` (seeded, reproducible).

The shapes follow AWS's Lambda X-Ray documentation: an AWS::Lambda segment (the service's view, with the
request id and the 429 when throttled) and an AWS::Lambda::Function segment whose Initialization (cold starts
only), Invocation and Overhead subsegments carry the timing.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from lambdalab.traces.synthetic import Call, Ids, batch_get_traces_response, lambda_documents, step_functions_document

HERE = Path(__file__).parent
T0 = 1795000000.0  # 2026-11-18T...Z, a fixed epoch


def write(name: str, data: object) -> None:
    (HERE / name).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def lambda_mixed() -> None:
    """cold/warm on an alias, a provisioned alias, a throttle, an async call with a throttled first attempt,
    and a Map execution with three items (two cold) sharing one trace."""
    ids = Ids(random.Random(1))
    traces: dict[str, list] = {}

    def add(call: Call) -> list[dict]:
        docs = lambda_documents(call, ids)
        traces.setdefault(docs[0]["trace_id"], []).extend(docs)
        return docs

    fn = "lab-ColdStartFunction-1A2B3C"
    add(Call(fn, T0 + 0.0, "cold", qualifier="live", init_s=0.412, duration_s=0.061, request_id="req-cold-1"))
    add(Call(fn, T0 + 2.0, "warm", qualifier="live", duration_s=0.048, request_id="req-warm-1"))
    add(Call(fn, T0 + 2.01, "cold", qualifier="live", init_s=0.388, duration_s=0.070, request_id="req-cold-2"))
    add(Call(fn, T0 + 4.0, "warm", qualifier="live", duration_s=0.052, request_id="req-warm-2"))
    add(Call(fn, T0 + 4.2, "throttled", qualifier="live", request_id="req-throttled-1"))
    pc = "lab-ProvisionedFunction-4D5E6F"
    add(Call(pc, T0 + 1.0, "provisioned", qualifier="provisioned", duration_s=0.044, request_id="req-pc-1"))
    add(Call(pc, T0 + 3.0, "warm", qualifier="provisioned", duration_s=0.041, request_id="req-pc-2"))

    # An asynchronous call: the service segment holds Dwell Time and Attempt subsegments; attempt 1 was throttled.
    asy = "lab-AsyncFunction-7G8H9I"
    docs = add(Call(asy, T0 + 5.0, "cold", init_s=0.301, duration_s=0.090, queue_s=1.5, request_id="req-async-1"))
    service, function = docs
    dwell = {"id": ids.segment(), "name": "Dwell Time", "start_time": T0 + 5.0, "end_time": T0 + 5.01}
    attempt1 = {"id": ids.segment(), "name": "Attempt #1", "start_time": T0 + 5.01, "end_time": T0 + 5.02}
    attempt1.update({"error": True, "throttle": True})
    attempt2 = {"id": ids.segment(), "name": "Attempt #2", "start_time": T0 + 6.5, "end_time": service["end_time"]}
    service["subsegments"] = [dwell, attempt1, attempt2]
    function["parent_id"] = attempt2["id"]

    # A Step Functions Map execution: the state machine's segment and three items in one trace.
    trace_id = ids.trace(T0 + 10)
    head = step_functions_document(trace_id, "lab-FlashSaleMap", "exec-0001", start=T0 + 10, end=T0 + 11.2, ids=ids)
    map_docs = [head]
    for n, (kind, dur) in enumerate([("cold", 0.120), ("cold", 0.110), ("warm", 0.030)]):
        call = Call("lab-MapItemFunction-J1K2L3", T0 + 10.05 + n * 0.01, kind, init_s=0.350, duration_s=dur)
        call.trace_id = trace_id
        call.request_id = f"req-map-{n}"
        if kind == "warm":  # the third item reused the environment of the first, after it finished
            call.received_at = T0 + 10.7
        map_docs.extend(lambda_documents(call, ids))
    traces[trace_id] = map_docs
    write("batch_get_traces_lambda.json", batch_get_traces_response(traces))


def malformed() -> None:
    """One good cold trace plus everything a reader must survive."""
    ids = Ids(random.Random(2))
    fn = "lab-ColdStartFunction-1A2B3C"
    good = lambda_documents(Call(fn, T0 + 20, "cold", qualifier="live", init_s=0.5, duration_s=0.05), ids)
    good_id = good[0]["trace_id"]
    # An SDK subsegment sent as its own document (type "subsegment"), under the Invocation subsegment.
    invocation_id = good[1]["subsegments"][1]["id"]
    sdk = {
        "id": ids.segment(),
        "name": "DynamoDB",
        "type": "subsegment",
        "trace_id": good_id,
        "parent_id": invocation_id,
        "namespace": "aws",
        "start_time": T0 + 20.6,
        "end_time": T0 + 20.62,
        "aws": {"operation": "PutItem", "table_name": "orders"},
        "unknown_field": {"kept": "ignored"},
    }
    partial = lambda_documents(Call(fn, T0 + 21, "warm", qualifier="live"), ids)
    in_progress = lambda_documents(Call(fn, T0 + 22, "warm", qualifier="live"), ids)
    in_progress[1].pop("end_time")
    in_progress[1]["in_progress"] = True
    orphan = {
        "id": ids.segment(),
        "name": "S3",
        "type": "subsegment",
        "trace_id": partial[0]["trace_id"],
        "parent_id": "ffffffffffffffff",
        "start_time": T0 + 21.01,
        "end_time": T0 + 21.02,
    }
    no_start = dict(lambda_documents(Call(fn, T0 + 23, "warm", qualifier="live"), ids)[1])
    no_start.pop("start_time")
    response = batch_get_traces_response(
        {
            good_id: [good[0], good[1], sdk],
            partial[0]["trace_id"]: [partial[0], orphan],  # the function segment never arrived
            in_progress[0]["trace_id"]: in_progress,
            no_start["trace_id"]: [no_start],
            "1-00000000-000000000000000000000bad": ['{"id": "0123456789abcdef", "name": "broken", '],
        }
    )
    response["UnprocessedTraceIds"] = ["1-00000000-000000000000000000000000"]
    write("malformed.json", response)


def out_of_order() -> None:
    """Two cold traces, documents reversed, one function segment sent in progress first and complete later."""
    ids = Ids(random.Random(3))
    fn = "lab-ColdStartFunction-1A2B3C"
    traces: dict[str, list] = {}
    for n in range(2):
        service, function = lambda_documents(Call(fn, T0 + 30 + n, "cold", init_s=0.2 + n / 10), ids)
        early = {k: v for k, v in function.items() if k not in ("end_time", "subsegments")}
        early["in_progress"] = True
        traces[service["trace_id"]] = [function, early, service] if n == 0 else [early, function, service]
    write("out_of_order.json", batch_get_traces_response(traces))


def run_directory() -> None:
    """A local run directory: invocations.jsonl and environments.jsonl as the local Lambda service writes them."""
    run = HERE / "run"
    run.mkdir(exist_ok=True)
    arn = "arn:aws:lambda:us-east-1:123456789012:function:lab-ColdStartFunction"

    def record(n: int, kind: str | None, env: str | None, at: float, **extra: object) -> dict:
        base = {
            "request_id": f"req-{n}",
            "function_name": "lab-ColdStartFunction",
            "function_arn": arn,
            "qualifier": "live",
            "version": "1",
            "invocation_type": "RequestResponse",
            "outcome": "success",
            "start_kind": kind,
            "spillover": False,
            "environment_id": env,
            "received_at": at,
            "init_start": None,
            "init_duration_s": None,
            "invoke_start": at + 0.002,
            "invoke_end": at + 0.052,
            "duration_s": 0.05,
            "billed_duration_ms": 50,
            "memory_mb": 128,
            "max_memory_used_mb": 60,
            "trace_id": f"1-{int(at):08x}-{n:024x}",
            "a_field_from_the_future": 1,
        }
        if kind == "cold":
            base.update(init_start=at + 0.002, init_duration_s=0.3, invoke_start=at + 0.302, invoke_end=at + 0.362)
        base.update(extra)
        return base

    records = [
        record(1, "cold", "env-a", T0),
        record(2, "cold", "env-b", T0 + 0.1),
        record(3, "warm", "env-a", T0 + 1.0),
        record(4, "provisioned", "env-p", T0 + 1.1, qualifier="provisioned"),
        record(5, "warm", "env-b", T0 + 1.2, spillover=True),
        record(
            6,
            None,
            None,
            T0 + 1.3,
            outcome="throttled",
            throttle_reason="ReservedFunctionConcurrentInvocationLimitExceeded",
            invoke_start=None,
            invoke_end=None,
            duration_s=None,
        ),
    ]
    lines = [json.dumps(r) for r in records]
    lines.insert(3, '{"request_id": "req-broken", ')  # a torn line, as a crash mid-write leaves
    (run / "invocations.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    events = [
        {
            "environment_id": "env-p",
            "function_name": "lab-ColdStartFunction",
            "version": "1",
            "pool": "provisioned",
            "event": "created",
            "at": T0 - 60.0,
        },
        {
            "environment_id": "env-p",
            "function_name": "lab-ColdStartFunction",
            "version": "1",
            "pool": "provisioned",
            "event": "ready",
            "at": T0 - 59.6,
        },
        {
            "environment_id": "env-a",
            "function_name": "lab-ColdStartFunction",
            "version": "1",
            "pool": "on-demand",
            "event": "created",
            "at": T0,
        },
    ]
    (run / "environments.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n", encoding="utf-8")


if __name__ == "__main__":
    lambda_mixed()
    malformed()
    out_of_order()
    run_directory()
