"""Forward what the rule delivered (the transformer's output) to the Reports queue, where the test reads it."""

import json
import os

import boto3

sqs = boto3.client("sqs")


def handle(event, context):
    sqs.send_message(QueueUrl=os.environ["REPORTS_URL"], MessageBody=json.dumps(event))
