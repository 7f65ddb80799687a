import os


def lambda_handler(event, context):
    return {"machine": os.environ["MACHINE_ARN"]}
