import json
import os

import boto3

sqs = boto3.client("sqs")


def lambda_handler(event, context):
    sqs.send_message(QueueUrl=os.environ["QUEUE_URL"], MessageBody=json.dumps(event))
    return {"sent_to": os.environ["QUEUE_URL"].rsplit("/", 1)[-1]}
