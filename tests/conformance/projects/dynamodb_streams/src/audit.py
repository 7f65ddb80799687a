"""Report each batch of table changes, as received, to the (FIFO) Reports queue."""

import json
import os

import boto3

sqs = boto3.client("sqs")


def handler(event, context):
    sqs.send_message(
        QueueUrl=os.environ["REPORTS_URL"],
        MessageBody=json.dumps(event),
        MessageGroupId="changes",
        MessageDeduplicationId=context.aws_request_id,
    )
