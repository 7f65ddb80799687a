import os

KEYS = [
    "NAME",
    "HOST",
    "FIRST_PART",
    "LAST_OF_SPLIT",
    "QUEUE_ARN",
    "QUEUE_URL_OR_NONE",
    "PROD_ONLY",
    "LITERAL",
    "ENCODED",
    "ZONE",
    "SUBNET",
    "PARTITION_URL",
]


def lambda_handler(event, context):
    return {key: os.environ.get(key) for key in KEYS}
