import os

import boto3
from boto3.dynamodb.conditions import Key

table = boto3.resource("dynamodb").Table(os.environ["TABLE"])


def lambda_handler(event, context):
    found = table.query(IndexName="by-device", KeyConditionExpression=Key("device").eq(event["device"]))["Items"]
    return sorted(item["user"] for item in found)
