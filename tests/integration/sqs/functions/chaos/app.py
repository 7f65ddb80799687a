"""SQS consumer that fails in every way a test needs, by message number: records, whole batches, its environment.

A body is {"n": <int>}. On a message's first receive: n % 7 == 0 fails the record (partial batch response),
n % 89 == 0 raises (the whole batch fails), n % 97 == 0 ends the process (the environment crashes). n % 50 == 0
fails its record on every receive, so it can only end in the dead-letter queue. Each batch sleeps BATCH_SLEEP s.
Before returning success the function appends the ids it processed to LEDGER_DIR/<pid>.ids: the test's ledger.
"""

import json
import os
import time


def lambda_handler(event, context):
    records = event.get("Records") or []
    time.sleep(float(os.environ.get("BATCH_SLEEP") or 0))  # a batch takes a while, so pollers outrun reserved 5
    failures = []
    done = []
    for record in records:
        body = json.loads(record["body"])
        n = int(body.get("n", 1))
        first = record["attributes"].get("ApproximateReceiveCount") == "1"
        if first and n % 97 == 0:
            os._exit(17)
        if first and n % 89 == 0:
            raise RuntimeError(f"message {n} fails its whole batch once")
        if n % 50 == 0 or (first and n % 7 == 0):
            failures.append({"itemIdentifier": record["messageId"]})
        else:
            done.append(record["messageId"])
    ledger = os.environ.get("LEDGER_DIR")
    if ledger and done:
        with open(os.path.join(ledger, f"{os.getpid()}.ids"), "a") as out:
            out.write("".join(f"{message_id}\n" for message_id in done))
    print(json.dumps({"records": len(records), "failed": len(failures)}))
    return {"batchItemFailures": failures}
