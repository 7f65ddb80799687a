"""Answers API Gateway proxy events as the query string says: echo the event, fail, be malformed, sleep, binary."""

import base64
import json
import os
import time


def lambda_handler(event, context):
    query = event.get("queryStringParameters") or {}
    mode = query.get("mode", "echo")
    if mode == "error":
        raise RuntimeError("asked to fail")
    if mode == "malformed":
        return {"statusCode": 200, "body": {"not": "a string"}}
    if mode == "sleep":
        time.sleep(float(query.get("seconds", "1")))
    if mode == "binary":
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/octet-stream"},
            "body": base64.b64encode(bytes(range(256))).decode(),
            "isBase64Encoded": True,
        }
    return {
        "statusCode": int(query.get("status", "200")),
        "headers": {
            "Content-Type": "application/json",
            "X-Function-Version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"],
        },
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": json.dumps({"event": event, "functionArn": context.invoked_function_arn}),
    }
