import os


def lambda_handler(event, context):
    return {key: os.environ[key] for key in ("FLAG_NAME", "POLLER", "VPC")}
