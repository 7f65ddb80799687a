import json
import os

import boto3

seen = boto3.resource("dynamodb").Table(os.environ["SEEN"])


def lambda_handler(event, context):
    for record in event["Records"]:
        seen.put_item(Item={"id": json.loads(record["body"])["order"]})
