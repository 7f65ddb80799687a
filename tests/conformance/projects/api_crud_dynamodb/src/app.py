import json
import os

import boto3

table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])


def _response(status, body):
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


def lambda_handler(event, context):
    if event["httpMethod"] == "POST":
        item = json.loads(event["body"])
        table.put_item(Item=item)
        return _response(201, item)
    found = table.get_item(Key={"id": event["pathParameters"]["id"]}).get("Item")
    if found is None:
        return _response(404, {"message": "not found"})
    return _response(200, found)
