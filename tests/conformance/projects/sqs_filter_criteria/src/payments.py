"""Report each message the mapping let through (its id and the record's shape) to the Reports queue."""

import json
import os

import boto3

sqs = boto3.client("sqs")


def handler(event, context):
    for record in event["Records"]:
        sqs.send_message(QueueUrl=os.environ["REPORTS_URL"], MessageBody=json.dumps({"Records": [record]}))
