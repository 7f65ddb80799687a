from tabulate import tabulate


def lambda_handler(event, context):
    return tabulate(event["rows"], tablefmt="plain")
