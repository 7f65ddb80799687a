"""The FIFO queue got `yes`/`on` as true, and IAM recorded the policy Version as the text 2012-10-17."""


def check(stack) -> None:
    url = stack.name_of("Fifo")
    assert url.endswith(".fifo"), url
    attributes = stack.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["FifoQueue"] == "true" and attributes["ContentBasedDeduplication"] == "true", attributes
    role = stack.client("iam").get_role(RoleName=stack.name_of("QuirkRole"))["Role"]
    assert role["AssumeRolePolicyDocument"]["Version"] == "2012-10-17", role
