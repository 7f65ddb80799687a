import os


def lambda_handler(event, context):
    return {"entry": event["id"], "init": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]}
