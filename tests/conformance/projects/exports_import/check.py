"""The message reached the exported queue; ListExports lists both stacks' exports."""


def check(stack) -> None:
    exports = {e["Name"]: e for e in stack.client("cloudformation").list_exports()["Exports"]}
    assert exports["conf-shared-queue-arn"]["ExportingStackId"].split("/")[1] == "conf-exports-provider", exports
    assert "conf-exports-import-ReExported" in exports
    url = exports["conf-exports-provider-QueueUrl"]["Value"]
    messages = stack.client("sqs").receive_message(QueueUrl=url, WaitTimeSeconds=2).get("Messages", [])
    assert [m["Body"] for m in messages] == ['{"hello": "world"}'], messages
