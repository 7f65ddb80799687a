import os


def lambda_handler(event, context):
    return {
        "name": context.function_name,
        "owners": os.environ["OWNERS"],
        "first_port": os.environ["FIRST_PORT"],
        "secret_length": len(os.environ["SECRET_LENGTH"]),
    }
