"""Report each event, as received, to the stack's Reports queue."""

import json
import os

import boto3

SQS = boto3.client("sqs")
REPORTS_URL = os.environ["REPORTS_URL"]


def lambda_handler(event, context):
    SQS.send_message(QueueUrl=REPORTS_URL, MessageBody=json.dumps(event))
    return {"ok": True}
