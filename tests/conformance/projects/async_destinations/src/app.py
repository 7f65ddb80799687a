def lambda_handler(event, context):
    if event.get("fail"):
        raise RuntimeError("asked to fail")
    return {"done": event["id"]}
