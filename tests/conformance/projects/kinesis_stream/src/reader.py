"""Report each batch of stream records, as received, to the (FIFO) Reports queue."""

import json
import os

import boto3

sqs = boto3.client("sqs")


def handler(event, context):
    sqs.send_message(
        QueueUrl=os.environ["REPORTS_URL"],
        MessageBody=json.dumps(event),
        MessageGroupId="batches",
        MessageDeduplicationId=context.aws_request_id,
    )
