"""Deploying templates into a real moto server with a recording LambdaControl; ordering and cycles."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import boto3
import pytest

from lambdalab import constants
from lambdalab.awslambda.core.exceptions import InvalidParameterValueException
from lambdalab.clock import EpochClock
from lambdalab.deploy import ResourceStatus, deploy
from lambdalab.deploy.deployer import order_resources
from lambdalab.deploy.resources import function_name_of, physical_name
from lambdalab.errors import UserError

from .conftest import ACCOUNT, REGION, TEMPLATES, MappingLambdaControl, RecordingLambdaControl

REPO_TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"


def client(endpoint: str, service: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=constants.FAKE_ACCESS_KEY_ID,
        aws_secret_access_key=constants.FAKE_SECRET_ACCESS_KEY,
        aws_session_token=constants.FAKE_SESSION_TOKEN,
    )


def run(template: Path, control, endpoint: str, **kwargs):
    return deploy(
        template,
        lambda_control=control,
        endpoint_url=endpoint,
        region=REGION,
        account_id=ACCOUNT,
        **({"epoch": EpochClock()} | kwargs),
    )


# --- ordering -------------------------------------------------------------------------------------------------------


def test_order_puts_dependencies_first_and_keeps_template_order_otherwise() -> None:
    order = order_resources({"Function": {"Role", "Queue"}, "Role": set(), "Queue": {"Dlq"}, "Dlq": set(), "X": set()})
    assert order.index("Role") < order.index("Function")
    assert order.index("Dlq") < order.index("Queue") < order.index("Function")
    assert order.index("Function") < order.index("X")  # independent resources keep their place


def test_order_names_a_cycle() -> None:
    with pytest.raises(UserError, match=r"Circular dependency between resources: \[A, B, C\] \(A → B → C → A\)"):
        order_resources({"A": {"B"}, "B": {"C"}, "C": {"A"}})
    with pytest.raises(UserError, match="Self → Self"):
        order_resources({"Self": {"Self"}})


# --- names ------------------------------------------------------------------------------------------------------------


def test_physical_names_follow_cloudformation_and_fit_the_limit() -> None:
    name = physical_name("lab", "OrdersFunction", limit=64)
    assert re.fullmatch(r"lab-OrdersFunction-[A-Z0-9]{13}", name)
    long = physical_name("a-very-long-stack-name-for-the-lab-" * 2, "AnEvenLongerLogicalIdForTheFunction", limit=64)
    assert len(long) <= 64 and long.startswith("a-very-long")
    fifo = physical_name("lab", "Jobs", limit=80, suffix=".fifo")
    assert fifo.endswith(".fifo") and len(fifo) <= 80
    assert physical_name("Lab", "Bucket", limit=63, lowercase=True).islower()


def test_function_name_of_accepts_names_and_arns() -> None:
    assert function_name_of("fn") == ("fn", None)
    assert function_name_of("arn:aws:lambda:us-east-1:1:function:fn") == ("fn", None)
    assert function_name_of("arn:aws:lambda:us-east-1:1:function:fn:live") == ("fn", "live")
    assert function_name_of("123456789012:function:fn") == ("fn", None)
    assert function_name_of("fn:7") == ("fn", "7")


# --- deploys against moto ------------------------------------------------------------------------------------------


def test_sam_template_with_samconfig_creates_every_supported_type(moto_endpoint: str) -> None:
    # GIVEN the SAM template whose samconfig.toml sets Stage=dev, ProvisionedCount=2 and the stack name
    control = RecordingLambdaControl()
    # WHEN it is deployed
    stack = run(TEMPLATES / "sam_full" / "template.yaml", control, moto_endpoint)
    # THEN parameters come from samconfig.toml over the template defaults
    assert stack.stack_name == "sam-full"
    assert stack.stack_id.startswith(f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/sam-full/")
    assert stack.parameters["Stage"] == "dev" and stack.parameters["ProvisionedCount"] == "2"
    assert stack.parameters["Owners"] == ["alice", "bob"]
    resources = stack.resources
    assert "ProdOnlyTopic" not in resources  # its Condition is false

    # The function reached the Lambda control with its resolved configuration and local code folder.
    function_name = resources["OrdersFunction"].physical_id
    assert re.fullmatch(r"sam-full-OrdersFunction-[A-Z0-9]{13}", function_name)
    spec = control.functions[function_name]
    assert spec.code_dir == (TEMPLATES / "sam_full" / "src" / "orders").resolve()
    assert (spec.handler, spec.runtime, spec.timeout_s, spec.memory_mb) == ("app.lambda_handler", "python3.12", 10, 256)
    assert spec.tracing == "Active" and spec.reserved_concurrency == 20
    assert spec.environment["STAGE"] == "dev"
    assert spec.environment["TABLE_NAME"] == resources["OrdersTable"].physical_id
    assert spec.environment["QUEUE_URL"] == resources["WorkQueue"].physical_id
    assert spec.environment["REGION_AZ"] == "us-east-1b"
    assert spec.role == resources["OrdersFunctionRole"].attributes["Arn"]
    assert control.aliases[(function_name, "live")] == "1"
    assert control.provisioned[(function_name, "live")] == 2  # WantsProvisioned is true for dev
    (invoke_config,) = control.invoke_configs
    assert (invoke_config.qualifier, invoke_config.maximum_retry_attempts) == ("live", 1)
    assert invoke_config.on_failure_destination == resources["DeadLetterQueue"].attributes["Arn"]

    # DynamoDB: provisioned table with GSI, PITR, SSE, stream and tags.
    ddb = client(moto_endpoint, "dynamodb")
    table_name = resources["OrdersTable"].physical_id
    table = ddb.describe_table(TableName=table_name)["Table"]
    assert table["ProvisionedThroughput"]["WriteCapacityUnits"] == 5
    assert table["GlobalSecondaryIndexes"][0]["IndexName"] == "by-sku"
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["SSEDescription"]["Status"] == "ENABLED"
    assert resources["OrdersTable"].attributes["StreamArn"] == table["LatestStreamArn"]
    backups = ddb.describe_continuous_backups(TableName=table_name)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    ttl = ddb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires")
    assert ddb.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"] == [{"Key": "owner", "Value": "alice"}]

    # Application Auto Scaling target + target-tracking policy on the table.
    aas = client(moto_endpoint, "application-autoscaling")
    (target,) = aas.describe_scalable_targets(ServiceNamespace="dynamodb", ResourceIds=[f"table/{table_name}"])[
        "ScalableTargets"
    ]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (5, 100)
    (policy,) = aas.describe_scaling_policies(ServiceNamespace="dynamodb", ResourceId=f"table/{table_name}")[
        "ScalingPolicies"
    ]
    (action,) = aas.describe_scheduled_actions(ServiceNamespace="dynamodb", ResourceId=f"table/{table_name}")[
        "ScheduledActions"
    ]
    assert action["ScheduledActionName"] == "sale-start"
    assert action["ScalableTargetAction"] == {"MinCapacity": 50, "MaxCapacity": 200}
    assert policy["PolicyName"] == "sam-full-write"
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 70.0

    # SQS: named queue with a JSON redrive policy, generated-name DLQ with SSE.
    sqs = client(moto_endpoint, "sqs")
    work = sqs.get_queue_attributes(QueueUrl=resources["WorkQueue"].physical_id, AttributeNames=["All"])["Attributes"]
    assert resources["WorkQueue"].physical_id.endswith("/lab-dev-work")
    assert work["VisibilityTimeout"] == "60"
    redrive = json.loads(work["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == resources["DeadLetterQueue"].attributes["Arn"]
    assert int(redrive["maxReceiveCount"]) == 3
    dlq = sqs.get_queue_attributes(QueueUrl=resources["DeadLetterQueue"].physical_id, AttributeNames=["All"])
    assert dlq["Attributes"]["SqsManagedSseEnabled"] == "true"

    # Logs, CloudWatch, SNS, S3.
    logs = client(moto_endpoint, "logs")
    (group,) = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{function_name}")["logGroups"]
    assert group["retentionInDays"] == 7  # FindInMap on Stage=dev
    cloudwatch = client(moto_endpoint, "cloudwatch")
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[resources["ErrorsAlarm"].physical_id])["MetricAlarms"]
    assert alarm["Period"] == 60 and alarm["Dimensions"] == [{"Name": "FunctionName", "Value": function_name}]
    body = json.loads(cloudwatch.get_dashboard(DashboardName=resources["Dashboard"].physical_id)["DashboardBody"])
    assert body["widgets"][0]["properties"]["metrics"][0][3] == function_name
    sns = client(moto_endpoint, "sns")
    attributes = sns.get_topic_attributes(TopicArn=resources["AlertsTopic"].physical_id)["Attributes"]
    assert attributes["DisplayName"] == "${NotAVariable} alerts"
    assert resources["ReportsBucket"].physical_id in [
        b["Name"] for b in client(moto_endpoint, "s3").list_buckets()["Buckets"]
    ]

    # Step Functions: the definition from DefinitionUri with substitutions, logging and tracing.
    sfn = client(moto_endpoint, "stepfunctions")
    machine = sfn.describe_state_machine(stateMachineArn=resources["Flow"].physical_id)
    definition = json.loads(machine["definition"])
    assert definition["States"]["Call"]["Resource"] == resources["OrdersFunction"].attributes["Arn"]
    assert definition["States"]["Store"]["Parameters"]["table"] == table_name
    assert machine["roleArn"] == resources["FlowRole"].attributes["Arn"]
    assert machine["tracingConfiguration"] == {"enabled": True}
    assert machine["loggingConfiguration"]["level"] == "ALL"

    # API Gateway from SAM's Swagger body: /orders POST wired to the function; stage Prod.
    apigw = client(moto_endpoint, "apigateway")
    api_id = resources["ServerlessRestApi"].physical_id
    paths = {item["path"]: item for item in apigw.get_resources(restApiId=api_id)["items"]}
    assert "POST" in paths["/orders"]["resourceMethods"]
    integration = apigw.get_integration(restApiId=api_id, resourceId=paths["/orders"]["id"], httpMethod="POST")
    assert function_name in integration["uri"]
    (deployment,) = [r for r in resources.values() if r.resource_type == "AWS::ApiGateway::Deployment"]
    assert apigw.get_stage(restApiId=api_id, stageName="Prod")["deploymentId"] == deployment.physical_id

    # Outputs, including one whose Condition is false (absent) and one that refers to an uncreated resource.
    assert stack.outputs["OrdersFunctionArn"].value == resources["OrdersFunction"].attributes["Arn"]
    assert stack.outputs["OrdersFunctionArn"].export_name == "sam-full-OrdersFunctionArn"
    assert stack.outputs["ApiUrl"].value == f"https://{api_id}.execute-api.us-east-1.amazonaws.com/Prod/orders"
    assert "ProdTopic" not in stack.outputs and "ParameterName" not in stack.outputs

    # Nothing silently skipped: unsupported types and their dependants are warnings with names.
    assert resources["Parameter"].status is ResourceStatus.NOT_SUPPORTED
    assert "AWS::SSM::Parameter (Parameter): not supported by the local cloud; not created" in stack.warnings
    # SAM's Schedule event: an EventBridge rule with a schedule expression and the function as target
    assert resources["OrdersFunctionNightly"].status is ResourceStatus.CREATE_COMPLETE
    assert resources["OrdersFunctionNightlyPermission"].status is ResourceStatus.CREATE_COMPLETE
    events = client(moto_endpoint, "events")
    rule_name = resources["OrdersFunctionNightly"].physical_id
    assert events.describe_rule(Name=rule_name)["ScheduleExpression"] == "rate(1 day)"
    (target,) = events.list_targets_by_rule(Rule=rule_name)["Targets"]
    assert target["Arn"] == resources["OrdersFunction"].attributes["Arn"] + ":live"  # AutoPublishAlias
    assert resources["OrdersFunctionFromQueue"].status is ResourceStatus.NOT_SUPPORTED
    assert any("OrdersFunctionFromQueue" in w and "not run locally yet" in w for w in stack.warnings)
    assert any("output ParameterName" in w for w in stack.warnings)
    assert any("Permission" in d for d in stack.known_differences)
    assert any("sampling rules" in d for d in stack.known_differences)
    rule = resources["SamplingRule"].recorded["SamplingRule"]
    assert (rule["RuleName"], rule["FixedRate"]) == ("orders-all", 1)
    assert stack.outputs["OrdersFunctionArn"].value != rule["RuleARN"]
    for resource in resources.values():
        assert resource.status is ResourceStatus.CREATE_COMPLETE or resource.reason in stack.warnings


def test_command_line_overrides_beat_samconfig(moto_endpoint: str) -> None:
    control = RecordingLambdaControl()
    stack = run(
        TEMPLATES / "sam_full" / "template.yaml",
        control,
        moto_endpoint,
        stack_name="sam-prod",
        parameter_overrides={"Stage": "prod", "QueuePrefix": "prodlab"},
    )
    assert stack.stack_name == "sam-prod"
    assert stack.parameters["Stage"] == "prod"
    assert stack.parameters["ProvisionedCount"] == "2"  # still from samconfig.toml
    assert stack.resources["ProdOnlyTopic"].status is ResourceStatus.CREATE_COMPLETE
    assert stack.outputs["ProdTopic"].value == stack.resources["ProdOnlyTopic"].physical_id
    assert control.provisioned == {}  # WantsProvisioned is false in prod: the property was removed (AWS::NoValue)


def test_plain_cloudformation_template(moto_endpoint: str) -> None:
    control = MappingLambdaControl()
    stack = run(TEMPLATES / "cfn_plain" / "template.yaml", control, moto_endpoint, stack_name="plain")
    resources = stack.resources
    assert all(r.status is ResourceStatus.CREATE_COMPLETE for r in resources.values()), stack.warnings

    worker = control.functions["plain-worker"]
    assert worker.code_dir == (TEMPLATES / "cfn_plain" / "worker").resolve()
    assert worker.architectures == ("arm64",) and worker.tracing == "Active"
    assert worker.environment == {"RETRIES": "3", "DEBUG": "false"}
    assert worker.tags == {"team": "lab"}
    assert worker.dead_letter_target_arn == resources["PlainQueue"].attributes["Arn"]
    # A property the local cloud does not apply is named, not silently dropped.
    assert "AWS::Lambda::Function (Worker): properties EphemeralStorage are not applied locally" in stack.warnings
    inline = control.functions[resources["Inline"].physical_id]
    assert 'return "inline"' in (inline.code_dir / "index.py").read_text()
    shutil.rmtree(inline.code_dir)

    # Version before alias, provisioned concurrency on the version, the ESM through the control's new method.
    calls = [name for name, _ in control.calls]
    assert calls.index("publish_version") < calls.index("create_alias") < calls.index("put_event_invoke_config")
    assert control.provisioned == {("plain-worker", "1"): 4}
    assert control.aliases[("plain-worker", "live")] == "1"
    (mapping,) = control.mappings
    assert mapping["FunctionName"] == "plain-worker:live"
    assert mapping["EventSourceArn"] == resources["JobsQueue"].attributes["Arn"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 5}
    assert resources["WorkerFromJobs"].physical_id == "uuid-1"

    # FIFO queue from the condition, queue policy, SNS → SQS subscription.
    sqs = client(moto_endpoint, "sqs")
    jobs_url = resources["JobsQueue"].physical_id
    assert jobs_url.endswith(".fifo")
    attributes = sqs.get_queue_attributes(QueueUrl=jobs_url, AttributeNames=["All"])["Attributes"]
    assert attributes["FifoQueue"] == "true" and attributes["MessageRetentionPeriod"] == "3600"
    assert json.loads(attributes["Policy"])["Statement"][0]["Action"] == "sqs:SendMessage"
    sns = client(moto_endpoint, "sns")
    (subscription,) = sns.list_subscriptions_by_topic(TopicArn=resources["Topic"].physical_id)["Subscriptions"]
    assert subscription["Endpoint"] == resources["PlainQueue"].attributes["Arn"]

    # IAM: the customer managed policy is attached; the AWS managed one is recorded (moto does not know it).
    iam = client(moto_endpoint, "iam")
    role = resources["WorkerRole"].physical_id
    attached = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]]
    assert attached == [resources["ReadPolicy"].physical_id]
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == ["extra"]
    (unknown,) = resources["WorkerRole"].recorded["UnknownManagedPolicyArns"]
    assert unknown.endswith("service-role/AWSLambdaSQSQueueExecutionRole")

    # Lambda provisioned-concurrency autoscaling.
    aas = client(moto_endpoint, "application-autoscaling")
    (policy,) = aas.describe_scaling_policies(ServiceNamespace="lambda", ResourceId="function:plain-worker:live")[
        "ScalingPolicies"
    ]
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 0.7

    # API Gateway built from Resource / Method / Deployment / Stage / Account.
    apigw = client(moto_endpoint, "apigateway")
    api_id = resources["Api"].physical_id
    paths = {item["path"]: item["id"] for item in apigw.get_resources(restApiId=api_id)["items"]}
    assert paths["/jobs"] == resources["JobsResource"].physical_id
    integration = apigw.get_integration(restApiId=api_id, resourceId=paths["/jobs"], httpMethod="POST")
    assert integration["uri"].endswith("function:plain-worker/invocations")
    stage = apigw.get_stage(restApiId=api_id, stageName="v1")
    assert stage["variables"] == {"mode": "local"} and stage["tracingEnabled"] is True
    assert apigw.get_account()["cloudwatchRoleArn"] == resources["ApiLoggingRole"].attributes["Arn"]
    assert stack.outputs["ApiEndpoint"].value == f"https://{api_id}.execute-api.us-east-1.amazonaws.com/v1/jobs"


def test_without_the_condition_the_queue_is_standard(moto_endpoint: str) -> None:
    stack = run(
        TEMPLATES / "cfn_plain" / "template.yaml",
        RecordingLambdaControl(),
        moto_endpoint,
        stack_name="plain-standard",
        parameter_overrides={"EnableFifo": "false"},
    )
    assert not stack.resources["JobsQueue"].physical_id.endswith(".fifo")
    # Without create_event_source_mapping on the control the mapping is a named warning.
    assert stack.resources["WorkerFromJobs"].status is ResourceStatus.NOT_SUPPORTED
    assert any(w.startswith("AWS::Lambda::EventSourceMapping (WorkerFromJobs)") for w in stack.warnings)
    for resource in stack.resources.values():
        if resource.resource_type.startswith("AWS::Lambda::Function"):
            assert resource.status is ResourceStatus.CREATE_COMPLETE


def test_bad_template_is_a_user_error_with_file_and_line(moto_endpoint: str) -> None:
    path = TEMPLATES / "bad_yaml" / "template.yaml"
    with pytest.raises(UserError) as caught:
        run(path, RecordingLambdaControl(), moto_endpoint)
    assert caught.value.where == f"{path}:8"


def test_bad_parameter_is_a_user_error_naming_it(moto_endpoint: str) -> None:
    control = RecordingLambdaControl()
    with pytest.raises(UserError, match="parameter Stage: 'qa' is not one of the AllowedValues"):
        run(TEMPLATES / "sam_full" / "template.yaml", control, moto_endpoint, parameter_overrides={"Stage": "qa"})
    with pytest.raises(UserError, match=r"unknown parameter.*Stge"):
        run(TEMPLATES / "sam_full" / "template.yaml", control, moto_endpoint, parameter_overrides={"Stge": "dev"})
    assert control.calls == []  # nothing was created


def test_cycle_is_a_user_error_naming_it(moto_endpoint: str) -> None:
    with pytest.raises(
        UserError,
        match=r"Circular dependency between resources: \[First, Second, Third\] \(First → Second → Third → First\)",
    ):
        run(TEMPLATES / "cycle" / "template.yaml", RecordingLambdaControl(), moto_endpoint)


def test_unresolvable_reference_names_resource_and_path(moto_endpoint: str) -> None:
    with pytest.raises(UserError) as caught:
        run(TEMPLATES / "unresolvable" / "template.yaml", RecordingLambdaControl(), moto_endpoint)
    assert caught.value.where == "Resources.Queue.Properties.Tags[0].Value.Ref"
    assert "Unresolved resource dependencies [Owner] in the Resources block" in caught.value.message


def test_bad_stack_name(moto_endpoint: str) -> None:
    with pytest.raises(UserError, match="stack name '1bad' must start with a letter"):
        run(TEMPLATES / "cfn_plain" / "template.yaml", RecordingLambdaControl(), moto_endpoint, stack_name="1bad")


def test_repo_template_deploys(moto_endpoint: str) -> None:
    if not REPO_TEMPLATE.is_file():
        pytest.skip(f"{REPO_TEMPLATE} does not exist yet (another helper is writing it)")
    stack = run(REPO_TEMPLATE, MappingLambdaControl(), moto_endpoint, stack_name="repo-stack")
    for resource in stack.resources.values():
        if resource.status is not ResourceStatus.CREATE_COMPLETE:
            assert resource.reason in stack.warnings
    assert any(r.resource_type == "AWS::Lambda::Function" for r in stack.resources.values())
    assert all(
        r.status is ResourceStatus.CREATE_COMPLETE
        for r in stack.resources.values()
        if r.resource_type.startswith(("AWS::Lambda::Function", "AWS::SQS::", "AWS::DynamoDB::"))
    )


def test_language_extensions_globals_code_uri_and_inline_code(moto_endpoint: str) -> None:
    control = RecordingLambdaControl()
    stack = run(TEMPLATES / "language_extensions" / "template.yaml", control, moto_endpoint, stack_name="lx")
    configured = control.functions[stack.physical_id("Configured")]
    assert json.loads(configured.environment["CONFIG"]) == {"stage": "dev", "sizes": 2}
    assert configured.environment["FALLBACK"] == "none"
    assert configured.code_dir == (TEMPLATES / "language_extensions" / "src").resolve()
    inline = control.functions[stack.physical_id("Inline")]
    assert (inline.code_dir / "index.py").read_text().startswith("def handler(event, context):")
    shutil.rmtree(inline.code_dir)
    assert stack.no_echo_parameters == frozenset({"Stage"})


def test_explicit_samconfig_path(moto_endpoint: str, tmp_path: Path) -> None:
    config = tmp_path / "other.toml"
    config.write_text('[default.deploy.parameters]\nstack_name = "from-other"\nparameter_overrides = ["Stage=prod"]\n')
    stack = run(
        TEMPLATES / "sam_full" / "template.yaml", RecordingLambdaControl(), moto_endpoint, samconfig_path=config
    )
    assert stack.stack_name == "from-other"
    assert stack.parameters["Stage"] == "prod" and stack.parameters["ProvisionedCount"] == "1"  # the template Default
    assert "ProdOnlyTopic" in stack.resources


class RefusingLambdaControl(RecordingLambdaControl):
    def create_function(self, spec):
        raise InvalidParameterValueException(f"The runtime parameter of {spec.runtime} is not supported")


def test_a_lambda_api_error_is_a_user_error_naming_the_resource(moto_endpoint: str) -> None:
    with pytest.raises(UserError) as caught:
        run(TEMPLATES / "cfn_plain" / "template.yaml", RefusingLambdaControl(), moto_endpoint, stack_name="refused")
    assert caught.value.where == "Resources.Worker (AWS::Lambda::Function)"
    assert (
        caught.value.message == "InvalidParameterValueException: The runtime parameter of python3.12 is not supported"
    )


def test_a_property_the_local_cloud_ignores_does_not_block_its_resource(moto_endpoint: str) -> None:
    # GIVEN a function whose VpcConfig refers to a security group the local cloud cannot create
    control = RecordingLambdaControl()
    stack = run(TEMPLATES / "unsupported_reference" / "template.yaml", control, moto_endpoint)
    group = stack.resources["Group"]
    # THEN the group is a named warning, and the function is created without the property, with a warning too
    assert group.status is ResourceStatus.NOT_SUPPORTED and group.reason in stack.warnings
    assert stack.resources["Fn"].status is ResourceStatus.CREATE_COMPLETE
    assert "VpcConfig" not in stack.resources["Fn"].properties
    assert (
        "AWS::Lambda::Function (Fn): property VpcConfig refers to Group, which was not created; it is not applied"
        in stack.warnings
    )


def test_a_layer_is_published_and_the_function_gets_its_arn(moto_endpoint: str) -> None:
    # GIVEN a SAM layer with a local ContentUri and a function that uses it
    control = RecordingLambdaControl()
    stack = run(TEMPLATES / "layers" / "template.yaml", control, moto_endpoint)
    (layer,) = [r for r in stack.resources.values() if r.resource_type == "AWS::Lambda::LayerVersion"]
    # THEN the layer version is published from the folder and the function lists its ARN
    assert layer.status is ResourceStatus.CREATE_COMPLETE
    (arn,) = control.layers
    assert control.layers[arn].content_dir == (TEMPLATES / "layers" / "layer").resolve()
    assert control.layers[arn].compatible_runtimes == ("python3.12",)
    function = control.functions[stack.physical_id("Fn")]
    assert function.layers == (arn,)
    assert function.code_dir == (TEMPLATES / "layers" / "src").resolve()
    assert function.template_dir == (TEMPLATES / "layers").resolve()


@pytest.mark.parametrize(
    ("resources", "where", "message"),
    [
        (
            "  Q:\n    Type: AWS::SQS::Queue\n    DependsOn: Ghost\n",
            "Resources.Q.DependsOn",
            "Unresolved resource dependencies [Ghost] in the Resources block of the template",
        ),
        ("  Q:\n    Properties: {}\n", None, "Resources.Q needs a Type"),
        ("  Q:\n    Type: AWS::SQS::Queue\n    Condition: Nope\n", "Resources.Q.Condition", "'Nope' is not defined"),
        (
            "  Q:\n    Type: AWS::SQS::Queue\n    Condition: Never\n  P:\n    Type: AWS::SQS::Queue\n"
            "    Properties: {QueueName: !GetAtt Q.QueueName}\n",
            "Resources.P.Properties.QueueName.Fn::GetAtt",
            "Unresolved resource dependencies [Q] in the Resources block of the template (Q is not created: its "
            "Condition Never is false)",
        ),
    ],
)
def test_template_structure_errors(moto_endpoint: str, tmp_path: Path, resources: str, where, message: str) -> None:
    template = tmp_path / "template.yaml"
    template.write_text("Conditions:\n  Never: !Equals [a, b]\nResources:\n" + resources)
    control = RecordingLambdaControl()
    with pytest.raises(UserError) as caught:
        run(template, control, moto_endpoint, stack_name="structure")
    assert message in str(caught.value)
    if where is not None:
        assert caught.value.where == where


def test_serverless_repo_applications_are_never_fetched(moto_endpoint: str) -> None:
    stack = run(TEMPLATES / "sar_app" / "template.yaml", RecordingLambdaControl(), moto_endpoint)
    assert stack.resources["App"].resource_type == "AWS::CloudFormation::Stack"
    assert stack.resources["App"].status is ResourceStatus.NOT_SUPPORTED
    assert stack.resources["App"].reason == (
        "AWS::CloudFormation::Stack (App): nested stacks are not supported by the local cloud (this one is the "
        "AWS::Serverless::Application App, which the local cloud never fetches); not created"
    )
    # The function only mentions the application (an environment variable): it is created, the mention left unresolved
    assert stack.resources["Fn"].status is ResourceStatus.CREATE_COMPLETE
    assert stack.resources["Fn"].properties["Environment"]["Variables"]["THING"] == (
        "lambdalab-not-created-App.Outputs.Thing"
    )
    assert (
        "AWS::Lambda::Function (Fn): property Environment refers to App (AWS::CloudFormation::Stack), which was not "
        "created; the reference is left as the unresolved name lambdalab-not-created-App" in stack.warnings
    )
    assert stack.resources["Independent"].status is ResourceStatus.CREATE_COMPLETE
