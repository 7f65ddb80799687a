import json
import os


def lambda_handler(event, context):
    body = {
        "shared": os.environ["SHARED"],
        "overridden": os.environ["OVERRIDDEN"],
        "memory": context.memory_limit_in_mb,
    }
    return {"statusCode": 200, "body": json.dumps(body)}
