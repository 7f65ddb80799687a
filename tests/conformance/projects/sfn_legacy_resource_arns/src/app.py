def lambda_handler(event, context):
    return {"version": context.function_version, "qualified": context.invoked_function_arn.count(":") == 7}
