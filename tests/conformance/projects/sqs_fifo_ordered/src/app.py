import json
import os

import boto3

ledger = boto3.resource("dynamodb").Table(os.environ["LEDGER"])


def lambda_handler(event, context):
    for record in event["Records"]:
        n = json.loads(record["body"])["n"]
        ledger.update_item(
            Key={"id": record["attributes"]["MessageGroupId"]},
            UpdateExpression="SET seen = list_append(if_not_exists(seen, :empty), :n)",
            ExpressionAttributeValues={":n": [int(n)], ":empty": []},
        )
    return len(event["Records"])
