import yaml  # not in a requirements.txt: on Lambda this fails at import


def lambda_handler(event, context):
    return yaml.safe_dump(event)
