import json


def record_handler(record):
    job = json.loads(record["body"])
    if int(job["n"]) % 4 == 0:
        raise ValueError(f"job {job['n']} cannot be done")


def lambda_handler(event, context):
    failures = []
    for record in event["Records"]:
        try:
            record_handler(record)
        except ValueError:
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
