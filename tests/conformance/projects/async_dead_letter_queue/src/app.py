def lambda_handler(event, context):
    raise ValueError(f"cannot import {event['file']}")
