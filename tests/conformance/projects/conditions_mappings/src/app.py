import os


def lambda_handler(event, context):
    return {
        "alarms": os.environ["ALARMS"],
        "dev_in_us_east": os.environ["DEV_IN_US_EAST"],
        "memory": context.memory_limit_in_mb,
    }
