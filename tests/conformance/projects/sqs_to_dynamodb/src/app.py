import json
import os

import boto3

table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])


def lambda_handler(event, context):
    for record in event["Records"]:
        order = json.loads(record["body"])
        table.put_item(Item={"order_id": str(order["n"]), "message_id": record["messageId"]})
    return {"stored": len(event["Records"])}
