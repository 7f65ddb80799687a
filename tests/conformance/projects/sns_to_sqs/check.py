"""Publish three orders to the topic; each reaches the table through the subscribed queue."""

import json

from tests.conformance.runner import wait_until


def check(stack) -> None:
    sns = stack.client("sns")
    for order in ("a", "b", "c"):
        sns.publish(TopicArn=stack.outputs["TopicArn"], Message=json.dumps({"order": order}))
    table = stack.name_of("Seen")
    dynamodb = stack.client("dynamodb")
    wait_until(lambda: dynamodb.scan(TableName=table, Select="COUNT")["Count"] == 3, 30, "3 orders in the table")
