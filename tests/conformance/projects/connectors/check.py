"""Connectors become managed policies attached to the function's role, with the actions SAM documents."""


def check(stack) -> None:
    iam = stack.client("iam")
    role = stack.name_of("RecorderFunctionRole")
    attached = iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    actions = set()
    for policy in attached:
        if ":aws:policy/" in policy["PolicyArn"]:
            continue
        version = iam.get_policy(PolicyArn=policy["PolicyArn"])["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=policy["PolicyArn"], VersionId=version)["PolicyVersion"]["Document"]
        for statement in document["Statement"]:
            action = statement["Action"]
            actions.update([action] if isinstance(action, str) else action)
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "sqs:SendMessage"} <= actions, sorted(actions)
