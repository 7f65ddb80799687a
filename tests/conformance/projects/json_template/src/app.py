import os


def lambda_handler(event, context):
    return {"greeting": os.environ["GREETING"], "where": os.environ["REGION_AND_STACK"], "echo": event}
