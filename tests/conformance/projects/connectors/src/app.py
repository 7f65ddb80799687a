import json
import os

import boto3

table = boto3.resource("dynamodb").Table(os.environ["TABLE"])
sqs = boto3.client("sqs")


def lambda_handler(event, context):
    table.put_item(Item={"id": event["id"]})
    sqs.send_message(QueueUrl=os.environ["OUTBOX"], MessageBody=json.dumps(event))
    return table.get_item(Key={"id": event["id"]})["Item"]
