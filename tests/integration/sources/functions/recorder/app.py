"""One handler for the event-source tests: it writes every event it gets to the ledger, then behaves as MODE says.

MODE=ok      record and return {"ok": true}
MODE=fail    record and raise (async retries, on-failure destinations)
MODE=stream  record each stream record (key, sequence, when), sleep STREAM_SLEEP, fail the batch if a record is
             poison (data {"poison": true}) - bisecting then isolates it
MODE=http    answer by path: /error raises, /malformed returns no statusCode in 1.0, /slow sleeps 2 s,
             /text returns a bare JSON string; otherwise echo the route
"""

import base64
import json
import os
import time
import uuid

LEDGER = os.environ["LEDGER_DIR"]
NAME = os.environ.get("LEDGER_NAME", "fn")
MODE = os.environ.get("MODE", "ok")
STREAM_SLEEP = float(os.environ.get("STREAM_SLEEP", "0.2"))


def _write(kind, payload):
    folder = os.path.join(LEDGER, NAME)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{time.time_ns()}-{kind}-{uuid.uuid4().hex[:8]}.json")
    with open(path + ".tmp", "w", encoding="utf-8") as sink:
        json.dump(payload, sink)
    os.replace(path + ".tmp", path)


def _stream_key(record):
    if "kinesis" in record:
        data = json.loads(base64.b64decode(record["kinesis"]["data"]))
        return record["kinesis"]["partitionKey"], int(record["kinesis"]["sequenceNumber"]), data
    image = record["dynamodb"].get("NewImage") or record["dynamodb"].get("OldImage") or {}
    return json.dumps(record["dynamodb"]["Keys"], sort_keys=True), int(record["dynamodb"]["SequenceNumber"]), image


def lambda_handler(event, context):
    if MODE == "stream":
        started = time.time()
        rows = [_stream_key(r) for r in event["Records"]]
        time.sleep(STREAM_SLEEP)
        poison = any(isinstance(data, dict) and data.get("poison") for _, _, data in rows)
        _write(
            "batch",
            {
                "started": started,
                "ended": time.time(),
                "request_id": context.aws_request_id,
                "records": [[key, seq] for key, seq, _ in rows],
                "failed": poison,
                "event": event,
            },
        )
        if poison:
            raise RuntimeError("poison record in the batch")
        return {"batchItemFailures": []}
    _write("event", {"request_id": context.aws_request_id, "event": event})
    if MODE == "fail":
        raise RuntimeError("this function always fails")
    if MODE == "http":
        path = (event.get("rawPath") or event.get("path") or "").rsplit("/", 1)[-1]
        if path == "error":
            raise RuntimeError("asked to fail")
        if path == "malformed":
            return {"statusCode": "teapot", "body": 5}
        if path == "slow":
            time.sleep(2)
        if path == "text":
            return "just text"
        answer = {
            "statusCode": 201,
            "headers": {"x-route": event.get("routeKey") or event.get("resource", "")},
            "body": json.dumps({"version": event.get("version"), "path": path}),
        }
        if event.get("version") == "2.0":
            answer["cookies"] = ["a=1"]
        return answer
    return {"ok": True}
