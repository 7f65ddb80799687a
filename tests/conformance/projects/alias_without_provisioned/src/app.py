import os


def lambda_handler(event, context):
    return {"message": f"{os.environ['GREETING']} {event.get('name', 'you')}", "version": context.function_version}
