"""The SAM template transforms offline, and the CloudFormation it becomes has every property the lab depends on."""

import json
from typing import Any

import pytest

from tests.support.sam import MANAGED_POLICIES, ROOT, Resolver, load_template, transform


@pytest.fixture(scope="module")
def lab(cfn) -> Resolver:
    """The transformed template, resolved with default parameters."""
    return Resolver(cfn)


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {logical_id: r for logical_id, r in resources.items() if r["Type"] == kind}


def _alias_of(resources: dict[str, Any], function: str) -> str:
    (alias_id,) = (
        logical_id
        for logical_id, r in _of_type(resources, "AWS::Lambda::Alias").items()
        if r["Properties"]["FunctionName"] == {"Ref": function}
    )
    return alias_id


def test_transform_yields_plain_cloudformation(cfn):
    assert "Transform" not in cfn
    kinds = {r["Type"] for r in cfn["Resources"].values()}
    assert not any(kind.startswith("AWS::Serverless::") for kind in kinds)


def test_every_function_is_python313_traced_and_built_from_its_own_folder(sam_template, resources, lab):
    functions = _of_type(resources, "AWS::Lambda::Function")
    assert len(functions) == 7
    for logical_id in functions:
        props = lab.properties(logical_id)
        assert props["Runtime"] == "python3.13"
        assert props["Handler"] == "app.lambda_handler"
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["Architectures"] == ["arm64"]
        assert "FunctionName" not in props, "names are left to CloudFormation; scripts read Outputs"
    for logical_id, resource in sam_template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            assert resource["Properties"]["CodeUri"].startswith("functions/"), logical_id


def test_base_function_has_reserved_and_no_provisioned_concurrency(resources, lab):
    assert lab.properties("ConcurrencyTestFunction")["ReservedConcurrentExecutions"] == 200
    alias = lab.properties(_alias_of(resources, "ConcurrencyTestFunction"))
    assert alias["Name"] == "live"
    assert "ProvisionedConcurrencyConfig" not in alias


def test_reserved_concurrency_minus_one_sets_none(cfn):
    lab = Resolver(cfn, {"ReservedConcurrency": -1, "QueueReservedConcurrency": -1})
    assert "ReservedConcurrentExecutions" not in lab.properties("ConcurrencyTestFunction")
    assert "ReservedConcurrentExecutions" not in lab.properties("QueueConsumerFunction")


def test_provisioned_concurrency_lives_on_the_alias_not_the_function(resources, lab):
    function = lab.properties("ProvisionedConcurrencyTestFunction")
    assert "ProvisionedConcurrencyConfig" not in function
    assert "ReservedConcurrentExecutions" not in function
    alias_id = _alias_of(resources, "ProvisionedConcurrencyTestFunction")
    alias = lab.properties(alias_id)
    assert alias["Name"] == "live"
    assert alias["ProvisionedConcurrencyConfig"] == {"ProvisionedConcurrentExecutions": 150}
    quick = Resolver(lab.template, {"ProvisionedConcurrency": 1}).properties(alias_id)
    assert quick["ProvisionedConcurrencyConfig"] == {"ProvisionedConcurrentExecutions": 1}
    # The alias points at the published version's number, so it follows each new version.
    assert resources[alias_id]["Properties"]["FunctionVersion"]["Fn::GetAtt"][1] == "Version"


def test_both_concurrency_functions_share_code_and_settings(lab):
    base = lab.properties("ConcurrencyTestFunction")
    provisioned = lab.properties("ProvisionedConcurrencyTestFunction")
    assert base["Code"] == provisioned["Code"]
    assert (
        base["Environment"]
        == provisioned["Environment"]
        == {"Variables": {"COLD_START_SLEEP": 5, "EXECUTION_SLEEP": 3}}
    )


@pytest.mark.parametrize(
    ("machine", "function", "definition", "max_concurrency"),
    [
        ("BaseStateMachine", "ConcurrencyTestFunction", "concurrency_test", 40),
        ("ProvisionedStateMachine", "ProvisionedConcurrencyTestFunction", "concurrency_test", 40),
        ("BaseDistributedStateMachine", "ConcurrencyTestFunction", "concurrency_test_distributed", 150),
        (
            "ProvisionedDistributedStateMachine",
            "ProvisionedConcurrencyTestFunction",
            "concurrency_test_distributed",
            150,
        ),
    ],
)
def test_state_machines_invoke_the_alias_with_logging_and_tracing(
    resources, lab, machine, function, definition, max_concurrency
):
    props = resources[machine]["Properties"]
    alias_id = _alias_of(resources, function)
    # The substitution is the alias's Ref (its ARN), never the function's or a version's.
    assert props["DefinitionSubstitutions"]["FunctionAliasArn"] == {"Ref": alias_id}
    resolved = lab.properties(machine)
    assert resolved["DefinitionSubstitutions"]["MapMaxConcurrency"] == max_concurrency
    assert resolved["TracingConfiguration"] == {"Enabled": True}
    assert resolved["LoggingConfiguration"]["Level"] in {"ALL", "ERROR"}
    assert resolved["LoggingConfiguration"]["Destinations"] == [
        {"CloudWatchLogsLogGroup": {"LogGroupArn": "<StateMachineLogGroup.Arn>"}}
    ]
    definition_text = lab.resolve(props["DefinitionString"])
    assert "${FunctionAliasArn}" in definition_text
    assert json.loads(definition_text) == json.loads(
        (ROOT / "statemachine" / f"{definition}.asl.json").read_text(encoding="utf-8")
    )


def test_distributed_machines_may_start_their_own_child_executions(lab):
    for machine in ("BaseDistributedStateMachine", "ProvisionedDistributedStateMachine"):
        name = lab.properties(machine)["StateMachineName"]
        policies = lab.properties(f"{machine}Role")["Policies"]
        statements = [s for p in policies for s in p["PolicyDocument"]["Statement"]]
        start = [s for s in statements if s["Action"] == "states:StartExecution"]
        assert start and start[0]["Resource"].endswith(f":stateMachine:{name}")


def test_sqs_event_source_mapping_settings(resources, lab):
    (esm_id,) = _of_type(resources, "AWS::Lambda::EventSourceMapping")
    esm = lab.properties(esm_id)
    assert esm["EventSourceArn"] == "<WorkQueue.Arn>"
    assert esm["BatchSize"] == 10
    assert esm["MaximumBatchingWindowInSeconds"] == 0
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert esm["ScalingConfig"] == {"MaximumConcurrency": 5}
    assert lab.properties("QueueConsumerFunction")["ReservedConcurrentExecutions"] == 5


def test_queue_visibility_is_at_least_six_times_the_consumer_timeout(lab):
    timeout = lab.properties("QueueConsumerFunction")["Timeout"]
    queue = lab.properties("WorkQueue")
    assert queue["VisibilityTimeout"] >= 6 * timeout
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": "<WorkDeadLetterQueue.Arn>", "maxReceiveCount": 3}
    assert queue["SqsManagedSseEnabled"] is True
    assert lab.properties("WorkDeadLetterQueue")["SqsManagedSseEnabled"] is True


def test_sqs_consumer_has_no_function_level_dlq(lab):
    assert "DeadLetterConfig" not in lab.properties("QueueConsumerFunction")


def test_products_table_is_provisioned_with_recovery_and_encryption(lab):
    table = lab.properties("ProductsTable")
    assert table["BillingMode"] == "PROVISIONED"
    assert table["ProvisionedThroughput"] == {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}


@pytest.mark.parametrize(
    ("dimension", "metric"),
    [("Read", "DynamoDBReadCapacityUtilization"), ("Write", "DynamoDBWriteCapacityUtilization")],
)
def test_table_target_tracking_uses_the_service_linked_role(lab, dimension, metric):
    target = lab.properties(f"ProductsTable{dimension}ScalableTarget")
    assert target["ServiceNamespace"] == "dynamodb"
    assert target["ScalableDimension"] == f"dynamodb:table:{dimension}CapacityUnits"
    assert target["ResourceId"] == "table/<ProductsTable>"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (5, 100)
    # Omitted RoleARN = Application Auto Scaling's service-linked role; never a role with dynamodb:*.
    role = target.get("RoleARN")
    assert role is None or role.endswith(
        "aws-service-role/dynamodb.application-autoscaling.amazonaws.com/"
        "AWSServiceRoleForApplicationAutoScaling_DynamoDBTable"
    )
    policy = lab.properties(f"ProductsTable{dimension}ScalingPolicy")
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["ScalingTargetId"] == f"<ProductsTable{dimension}ScalableTarget>"
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    assert config == {"TargetValue": 70, "PredefinedMetricSpecification": {"PredefinedMetricType": metric}}


def test_pay_per_request_table_drops_capacity_and_scaling(cfn):
    lab = Resolver(cfn, {"TableBillingMode": "PAY_PER_REQUEST"})
    assert "ProvisionedThroughput" not in lab.properties("ProductsTable")
    for logical_id in (
        "ProductsTableReadScalableTarget",
        "ProductsTableWriteScalableTarget",
        "ProductsTableReadScalingPolicy",
        "ProductsTableWriteScalingPolicy",
    ):
        assert not lab.exists(logical_id)


def test_no_role_in_the_stack_holds_full_dynamodb_access(resources, lab):
    for logical_id in _of_type(resources, "AWS::IAM::Role"):
        role = lab.properties(logical_id)
        for policy in role.get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert "dynamodb:*" not in actions, logical_id
        assert not any("AmazonDynamoDBFullAccess" in arn for arn in role.get("ManagedPolicyArns", []))


def test_products_read_is_reserved_and_create_is_provisioned(resources, lab):
    assert lab.properties("ProductsReadFunction")["ReservedConcurrentExecutions"] == 50
    alias = lab.properties(_alias_of(resources, "ProductsCreateFunction"))
    assert alias["ProvisionedConcurrencyConfig"] == {"ProvisionedConcurrentExecutions": 1}
    for fn in ("ProductsReadFunction", "ProductsCreateFunction"):
        assert lab.properties(fn)["Environment"] == {"Variables": {"TABLE_NAME": "<ProductsTable>"}}


def test_api_routes_reach_the_right_functions_and_aliases(resources, lab):
    body = lab.properties("LabApi")["Body"]
    uris = {
        (path, method.upper()): op["x-amazon-apigateway-integration"]["uri"]
        for path, methods in body["paths"].items()
        for method, op in methods.items()
    }
    assert set(uris) == {
        ("/products", "GET"),
        ("/products/{id}", "GET"),
        ("/products", "POST"),
        ("/standard", "GET"),
        ("/custom", "GET"),
    }
    assert "<ProductsReadFunction.Arn>" in uris[("/products", "GET")]
    assert "<ProductsCreateFunctionAliaslive>" in uris[("/products", "POST")]
    assert "<LatencyStandardFunctionAliasstandard>" in uris[("/standard", "GET")]
    assert "<LatencyCustomFunctionAliascustom>" in uris[("/custom", "GET")]


def test_api_stage_traces_and_logs_latency(resources, lab):
    (stage_id,) = _of_type(resources, "AWS::ApiGateway::Stage")
    stage = lab.properties(stage_id)
    assert stage["StageName"] == "lab"
    assert stage["TracingEnabled"] is True
    assert stage["AccessLogSetting"]["DestinationArn"] == "<ApiAccessLogGroup.Arn>"
    log_format = json.loads(stage["AccessLogSetting"]["Format"])
    assert log_format["responseLatency"] == "$context.responseLatency"
    assert log_format["integrationLatency"] == "$context.integrationLatency"
    # The stage waits for the account's log role when the stack creates it.
    assert stage["Variables"] == {"logRole": "<ApiGatewayAccount>"}
    assert Resolver(lab.template, {"ConfigureApiGatewayLogging": "false"}).properties(stage_id)["Variables"] == {
        "logRole": "existing"
    }


@pytest.mark.parametrize(("path", "alias"), [("standard", "standard"), ("custom", "custom")])
def test_latency_aliases_have_provisioned_concurrency_one_and_a_scalable_target(resources, lab, path, alias):
    function = f"Latency{path.capitalize()}Function"
    alias_id = _alias_of(resources, function)
    assert alias_id == f"{function}Alias{alias}"
    assert lab.properties(alias_id)["ProvisionedConcurrencyConfig"] == {"ProvisionedConcurrentExecutions": 1}
    target_id = f"Latency{path.capitalize()}ScalableTarget"
    target = lab.properties(target_id)
    assert target["ServiceNamespace"] == "lambda"
    assert target["ScalableDimension"] == "lambda:function:ProvisionedConcurrency"
    assert target["ResourceId"] == f"function:<{function}>:{alias}"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 50)
    # Registering the target fails unless the alias exists first.
    assert resources[target_id]["DependsOn"] in (alias_id, [alias_id])


def test_standard_scales_on_the_predefined_average_metric(lab):
    policy = lab.properties("LatencyStandardScalingPolicy")
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["ScalingTargetId"] == "<LatencyStandardScalableTarget>"
    assert policy["TargetTrackingScalingPolicyConfiguration"] == {
        "TargetValue": 0.7,
        "PredefinedMetricSpecification": {"PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"},
    }


def test_custom_scales_on_the_maximum_of_provisioned_concurrency_utilization(lab):
    policy = lab.properties("LatencyCustomScalingPolicy")
    assert policy["ScalingTargetId"] == "<LatencyCustomScalableTarget>"
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    assert config["TargetValue"] == 0.7
    metric = config["CustomizedMetricSpecification"]
    assert metric["Namespace"] == "AWS/Lambda"
    assert metric["MetricName"] == "ProvisionedConcurrencyUtilization"
    assert metric["Statistic"] == "Maximum"
    assert {d["Name"]: d["Value"] for d in metric["Dimensions"]} == {
        "FunctionName": "<LatencyCustomFunction>",
        "Resource": "<LatencyCustomFunction>:custom",
    }


def test_dashboard_shows_the_metrics_of_the_experiment(lab):
    body = json.loads(lab.properties("LatencyDashboard")["DashboardBody"])
    metrics = {
        entry[1] for widget in body["widgets"] for entry in widget["properties"]["metrics"] if isinstance(entry[0], str)
    }
    assert {
        "Latency",
        "IntegrationLatency",
        "Count",
        "4XXError",
        "5XXError",
        "Duration",
        "Invocations",
        "ProvisionedConcurrencySpilloverInvocations",
        "ConcurrentExecutions",
        "ProvisionedConcurrentExecutions",
    } <= metrics
    expressions = [
        entry[0]["expression"]
        for widget in body["widgets"]
        for entry in widget["properties"]["metrics"]
        if isinstance(entry[0], dict)
    ]
    assert any("PERIOD" in e for e in expressions), "calls per second"


def test_alarms_cover_table_and_lambda_throttles(resources, lab):
    alarms = [lab.properties(i) for i in _of_type(resources, "AWS::CloudWatch::Alarm")]
    watched = {(a["Namespace"], a["MetricName"], a["Dimensions"][0]["Value"]) for a in alarms}
    assert watched == {
        ("AWS/DynamoDB", "ReadThrottleEvents", "<ProductsTable>"),
        ("AWS/DynamoDB", "WriteThrottleEvents", "<ProductsTable>"),
        ("AWS/Lambda", "Throttles", "<ProductsReadFunction>"),
        ("AWS/Lambda", "Throttles", "<ProductsCreateFunction>"),
    }


def test_sampling_rule_traces_every_lab_request(lab):
    rule = lab.properties("TraceEverythingSamplingRule")["SamplingRule"]
    assert rule["FixedRate"] == 1.0
    assert rule["ReservoirSize"] >= 100
    assert rule["Priority"] < 10000, "must win over the Default rule"
    assert rule["ServiceName"] == "lambda-concurrency-lab-*"
    # Every traced entry point of the lab carries the stack-name prefix the rule matches.
    api_name = lab.properties("LabApi")["Name"]
    assert api_name.startswith("lambda-concurrency-lab-")
    for machine in ("BaseStateMachine", "ProvisionedStateMachine"):
        assert lab.properties(machine)["StateMachineName"].startswith("lambda-concurrency-lab-")


def test_outputs_name_everything_the_scripts_read(lab):
    outputs = lab.template["Outputs"]
    needed = {
        "ConcurrencyTestFunctionName",
        "ProvisionedConcurrencyTestFunctionName",
        "ConcurrencyTestFunctionAliasArn",
        "ProvisionedConcurrencyTestFunctionAliasArn",
        "BaseStateMachineArn",
        "ProvisionedStateMachineArn",
        "BaseDistributedStateMachineArn",
        "ProvisionedDistributedStateMachineArn",
        "QueueConsumerFunctionName",
        "WorkQueueUrl",
        "WorkDeadLetterQueueUrl",
        "ProductsTableName",
        "ApiUrl",
        "DashboardName",
    }
    assert needed <= set(outputs)
    assert lab.resolve(outputs["ApiUrl"]["Value"]) == "https://<LabApi>.execute-api.us-east-1.amazonaws.com/lab"
    assert lab.resolve(outputs["ProvisionedConcurrencyTestFunctionAliasArn"]["Value"]) == (
        "<ProvisionedConcurrencyTestFunctionAliaslive>"
    )


def test_parameters_have_descriptions_and_constraints(sam_template):
    for name, spec in sam_template["Parameters"].items():
        assert spec.get("Description"), name
        assert "Default" in spec, name
        assert {"AllowedValues", "MinValue", "AllowedPattern"} & set(spec), name


def test_managed_policies_used_by_the_transform_are_known():
    # A transform asking for a policy outside the offline map would fail; this also guards the map itself.
    assert all(arn.startswith("arn:aws:iam::aws:policy/") for arn in MANAGED_POLICIES.values())


def test_code_change_publishes_a_new_version():
    template = load_template()
    before = {i for i, r in transform(template)["Resources"].items() if r["Type"] == "AWS::Lambda::Version"}
    template["Resources"]["ConcurrencyTestFunction"]["Properties"]["CodeUri"] = "functions/latency/"
    after = {i for i, r in transform(template)["Resources"].items() if r["Type"] == "AWS::Lambda::Version"}
    changed = before ^ after
    assert changed and all(i.startswith("ConcurrencyTestFunctionVersion") for i in changed)


def test_resource_types_are_the_documented_ones(resources):
    # docs/STACK.md lists them for the local cloud, which must support each type it deploys.
    assert {r["Type"] for r in resources.values()} == {
        "AWS::Lambda::Function",
        "AWS::Lambda::Version",
        "AWS::Lambda::Alias",
        "AWS::Lambda::Permission",
        "AWS::Lambda::EventSourceMapping",
        "AWS::IAM::Role",
        "AWS::StepFunctions::StateMachine",
        "AWS::Logs::LogGroup",
        "AWS::SQS::Queue",
        "AWS::DynamoDB::Table",
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Dashboard",
        "AWS::ApiGateway::RestApi",
        "AWS::ApiGateway::Deployment",
        "AWS::ApiGateway::Stage",
        "AWS::ApiGateway::Account",
        "AWS::XRay::SamplingRule",
    }
