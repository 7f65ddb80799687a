"""A scheduled job: report the run it was given (schedule, time, attempt) to the Reports queue."""

import json
import os

import boto3

sqs = boto3.client("sqs")


def handler(event, context):
    sqs.send_message(QueueUrl=os.environ["REPORTS_URL"], MessageBody=json.dumps(event))
    return {"cleaned": 0}
