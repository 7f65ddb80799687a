"""An HTTP API handler (payload format 2.0): GET answers with a plain object (API Gateway makes it a 200 JSON
response), PUT with a full response object; both say what they were given."""

import json


def _seen(event):
    http = event["requestContext"]["http"]
    return {
        "version": event["version"],
        "routeKey": event["routeKey"],
        "rawPath": event["rawPath"],
        "rawQueryString": event["rawQueryString"],
        "query": event.get("queryStringParameters"),
        "params": event.get("pathParameters"),
        "method": http["method"],
        "path": http["path"],
        "cookies": event.get("cookies"),
        "stage": event["requestContext"]["stage"],
        "header": event["headers"].get("x-client"),
        "has_resource": "resource" in event or "httpMethod" in event,  # payload 1.0 members
    }


def handler(event, context):
    seen = _seen(event)
    if seen["method"] == "PUT":
        body = json.loads(event["body"]) if event.get("body") else None
        return {
            "statusCode": 201,
            "headers": {"content-type": "application/json", "x-item": seen["params"]["id"]},
            "cookies": ["last=" + seen["params"]["id"]],
            "body": json.dumps({**seen, "body": body}),
        }
    return seen
