"""Report every event to the stack's ObservedQueue (the conformance steps read it there, on AWS and locally)."""

import json
import os

import boto3

SQS = boto3.client("sqs")
QUEUE_URL = os.environ["OBSERVED_QUEUE_URL"]


def lambda_handler(event, context):
    SQS.send_message(QueueUrl=QUEUE_URL, MessageBody=json.dumps(event))
    return {
        "statusCode": 200,
        "body": json.dumps({"route": event.get("routeKey"), "params": event.get("pathParameters")}),
    }
