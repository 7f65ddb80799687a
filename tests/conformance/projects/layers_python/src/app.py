import shared_helpers


def lambda_handler(event, context):
    return {"greeting": shared_helpers.greet(event["name"]), "from": shared_helpers.__file__.startswith("/opt/python")}
