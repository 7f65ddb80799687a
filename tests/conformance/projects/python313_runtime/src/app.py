import sys


def lambda_handler(event, context):
    return list(sys.version_info[:2])
