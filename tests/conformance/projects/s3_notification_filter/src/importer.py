"""Read each uploaded CSV and report the notification, with the object's first line, to the Reports queue."""

import json
import os
import urllib.parse

import boto3

s3 = boto3.client("s3")
sqs = boto3.client("sqs")


def on_upload(event, context):
    for record in event["Records"]:
        bucket = record["s3"]["bucket"]["name"]
        key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
        header = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()[0]
        sqs.send_message(QueueUrl=os.environ["REPORTS_URL"], MessageBody=json.dumps({"header": header, **event}))
