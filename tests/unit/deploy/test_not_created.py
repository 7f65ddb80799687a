"""A resource the local cloud cannot create never takes with it a resource that only mentions it (issue 14.5)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from lambdalab import constants
from lambdalab.awslambda.core.exceptions import InvalidParameterValueException
from lambdalab.clock import EpochClock
from lambdalab.deploy import ResourceStatus, deploy
from lambdalab.deploy.deployer import group_warnings
from lambdalab.errors import UserError

from .conftest import ACCOUNT, REGION, TEMPLATES, MappingLambdaControl, RecordingLambdaControl


def run(template: Path, control, endpoint: str, **kwargs):
    return deploy(
        template,
        lambda_control=control,
        endpoint_url=endpoint,
        region=REGION,
        account_id=ACCOUNT,
        **({"epoch": EpochClock()} | kwargs),
    )


def test_mentions_are_left_unresolved_and_attached_resources_are_skipped(moto_endpoint: str) -> None:
    # GIVEN a template with two IoT topic rules and an image function the local cloud cannot create
    control = RecordingLambdaControl()
    stack = run(TEMPLATES / "mentions" / "template.yaml", control, moto_endpoint, stack_name="mentions")
    status = {logical_id: r.status for logical_id, r in stack.resources.items()}
    # THEN they are not created ...
    assert status["NightlyRule"] is status["HourlyRule"] is ResourceStatus.NOT_SUPPORTED
    assert status["ImageFunction"] is ResourceStatus.NOT_SUPPORTED
    # ... the version attached to the image function is skipped, naming why ...
    assert status["ImageVersion"] is ResourceStatus.SKIPPED
    assert stack.resources["ImageVersion"].reason == (
        "AWS::Lambda::Version (ImageVersion): not created because its property FunctionName refers to ImageFunction "
        "(AWS::Lambda::Function), which was not created"
    )
    # ... and the role, the function and the permission that only mention a rule are created, with unresolved names
    assert status["WorkerRole"] is status["Worker"] is status["WorkerPermission"] is ResourceStatus.CREATE_COMPLETE
    spec = control.functions[stack.physical_id("Worker")]
    assert spec.environment == {
        "RULE_NAME": "lambdalab-not-created-NightlyRule",
        "RULE_ARNS": (
            "arn:aws:iot:us-east-1:123456789012:lambdalab-not-created-NightlyRule,"
            "arn:aws:iot:us-east-1:123456789012:lambdalab-not-created-HourlyRule"
        ),
    }
    iam = boto3.client(
        "iam",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id=constants.FAKE_ACCESS_KEY_ID,
        aws_secret_access_key=constants.FAKE_SECRET_ACCESS_KEY,
    )
    policy = iam.get_role_policy(RoleName=stack.physical_id("WorkerRole"), PolicyName="describe-rule")
    assert policy["PolicyDocument"]["Version"] == "2012-10-17"  # the unquoted date, as CloudFormation reads it
    assert policy["PolicyDocument"]["Statement"][0]["Resource"].endswith(":lambdalab-not-created-NightlyRule")
    # AND every unsupported type is one warning, each mention one warning, nothing said twice
    assert (
        "AWS::IoT::TopicRule (NightlyRule, HourlyRule): not supported by the local cloud; not created" in stack.warnings
    )
    assert (
        "AWS::Lambda::Function (Worker): property Environment refers to NightlyRule (AWS::IoT::TopicRule), which was "
        "not created; the reference is left as the unresolved name lambdalab-not-created-NightlyRule" in stack.warnings
    )
    assert len(stack.warnings) == len(set(stack.warnings))
    # AND the output that names the rule is left out, the other one is set
    assert stack.outputs["WorkerName"].value == stack.physical_id("Worker")
    assert "RuleArn" not in stack.outputs
    assert stack.summary().startswith("3 resources created, 3 not supported by the local cloud, 1 skipped")
    for resource in stack.resources.values():
        if resource.status is not ResourceStatus.CREATE_COMPLETE:
            assert any(resource.logical_id in w for w in stack.warnings)


def test_group_warnings_merges_the_same_news_about_one_type() -> None:
    warnings = [
        "AWS::Events::Rule (A): not supported by the local cloud; not created",
        "free text",
        "AWS::Events::Rule (B): not supported by the local cloud; not created",
        "AWS::ApiGateway::Stage (S1): properties AccessLogSetting are not applied locally",
        "AWS::ApiGateway::Stage (S2): properties AccessLogSetting are not applied locally",
        "AWS::Events::Rule (A): not supported by the local cloud; not created",
        "free text",
    ]
    assert group_warnings(warnings) == [
        "AWS::Events::Rule (A, B): not supported by the local cloud; not created",
        "free text",
        "AWS::ApiGateway::Stage (S1, S2): properties AccessLogSetting are not applied locally",
    ]


EXPORTER = """
Resources:
  Queue:
    Type: AWS::SQS::Queue
Outputs:
  QueueArn:
    Value: !GetAtt Queue.Arn
    Export:
      Name: !Sub "${AWS::StackName}-QueueArn"
"""

IMPORTER = """
Parameters:
  Source: {Type: String, Default: exporter}
Resources:
  Policy:
    Type: AWS::SQS::Queue
    Properties:
      Tags:
        - Key: source
          Value: !ImportValue
            Fn::Sub: "${Source}-QueueArn"
Outputs:
  Imported:
    Value: !ImportValue exporter-QueueArn
"""


def test_import_value_reads_exports_of_stacks_in_the_same_local_cloud(moto_endpoint: str, tmp_path: Path) -> None:
    exporter_path, importer_path = tmp_path / "exporter.yaml", tmp_path / "importer.yaml"
    exporter_path.write_text(EXPORTER)
    importer_path.write_text(IMPORTER)
    control = RecordingLambdaControl()
    exporter = run(exporter_path, control, moto_endpoint, stack_name="exporter")
    arn = exporter.resources["Queue"].attributes["Arn"]
    assert exporter.exports() == {"exporter-QueueArn": arn}
    importer = run(importer_path, control, moto_endpoint, stack_name="importer", other_stacks={"exporter": exporter})
    assert importer.outputs["Imported"].value == arn
    assert importer.resources["Policy"].properties["Tags"] == [{"Key": "source", "Value": arn}]
    # WHEN nothing exports the name THEN it is CloudFormation's error, naming where, and nothing was created
    created_before = len(control.calls)
    with pytest.raises(UserError, match="No export named exporter-QueueArn found") as caught:
        run(importer_path, control, moto_endpoint, stack_name="importer2")
    assert caught.value.where == "Resources.Policy.Properties.Tags[0].Value.Fn::ImportValue"
    assert len(control.calls) == created_before
    # AND a second stack exporting the same name is refused before it creates anything
    sqs = boto3.client(
        "sqs",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id=constants.FAKE_ACCESS_KEY_ID,
        aws_secret_access_key=constants.FAKE_SECRET_ACCESS_KEY,
    )
    queues_before = sqs.list_queues().get("QueueUrls", [])
    clash = tmp_path / "clash.yaml"
    clash.write_text(EXPORTER.replace("${AWS::StackName}-QueueArn", "exporter-QueueArn"))
    with pytest.raises(UserError, match="Export with name exporter-QueueArn is already exported by stack exporter"):
        run(clash, control, moto_endpoint, stack_name="clash", other_stacks={"exporter": exporter})
    assert sqs.list_queues().get("QueueUrls", []) == queues_before
    # AND a stack name that is taken is CloudFormation's AlreadyExistsException
    with pytest.raises(UserError, match=r"Stack \[exporter\] already exists"):
        run(exporter_path, control, moto_endpoint, stack_name="exporter", other_stacks={"exporter": exporter})


def test_state_machines_aws_accepts_deploy_and_one_moto_cannot_run_is_named(moto_endpoint: str) -> None:
    stack = run(
        TEMPLATES / "state_machines" / "template.yaml", RecordingLambdaControl(), moto_endpoint, stack_name="sfn"
    )
    # the integer BackoffRate (issue 12) deploys
    assert stack.resources["Retrying"].status is ResourceStatus.CREATE_COMPLETE
    # JSONata is accepted by AWS but not run by moto: not created, the state machine and the construct named
    assert stack.resources["Transforming"].status is ResourceStatus.NOT_SUPPORTED
    reason = stack.resources["Transforming"].reason
    assert reason.startswith(
        "AWS::StepFunctions::StateMachine (Transforming): the local cloud cannot run this definition"
    )
    assert "/QueryLanguage: JSONata" in reason and reason in stack.warnings
    # ToleratedFailureCount runs but is ignored by moto: created, with the difference said once
    assert stack.resources["Tolerant"].status is ResourceStatus.CREATE_COMPLETE
    assert (
        "AWS::StepFunctions::StateMachine (Tolerant): runs locally with differences from AWS: "
        "/States/Fan/ToleratedFailureCount: ToleratedFailureCount is accepted but has no effect in moto"
    ) in stack.warnings


def test_includes_globals_api_definition_uri_and_properties_chosen_by_if(moto_endpoint: str) -> None:
    stack = run(TEMPLATES / "includes" / "template.yaml", RecordingLambdaControl(), moto_endpoint, stack_name="inc")
    assert all(r.status is ResourceStatus.CREATE_COMPLETE for r in stack.resources.values()), stack.warnings
    assert stack.resources["IncludedQueue"].properties == {"VisibilityTimeout": 60}
    assert stack.resources["Sized"].properties == {"VisibilityTimeout": 30, "Tags": [{"Key": "team", "Value": "lab"}]}
    api = next(r for r in stack.resources.values() if r.resource_type == "AWS::ApiGateway::RestApi")
    assert "/hello" in api.properties["Body"]["paths"]  # from Globals.Api.DefinitionUri


def test_an_include_from_s3_or_another_macro_is_named_as_unsupported(moto_endpoint: str, tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        "Resources:\n  Fn::Transform:\n    Name: AWS::Include\n    Parameters: {Location: s3://bucket/snippet.yaml}\n"
    )
    with pytest.raises(UserError, match=r"AWS::Include of s3://bucket/snippet\.yaml is not supported"):
        run(template, RecordingLambdaControl(), moto_endpoint)
    template.write_text(
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      Fn::Transform: {Name: MyMacro}\n"
    )
    with pytest.raises(UserError, match="Fn::Transform 'MyMacro': macros are not supported by the local cloud"):
        run(template, RecordingLambdaControl(), moto_endpoint)


def test_definition_files_are_substituted_as_text_as_cloudformation_does(moto_endpoint: str) -> None:
    # GIVEN a JSON file with a placeholder outside quotes, and a YAML file (SAM DefinitionUri and plain
    # DefinitionS3Location as `aws cloudformation package` takes a local path)
    stack = run(
        TEMPLATES / "definition_files" / "template.yaml", RecordingLambdaControl(), moto_endpoint, stack_name="df"
    )
    assert all(r.status is ResourceStatus.CREATE_COMPLETE for r in stack.resources.values()), stack.warnings
    states = boto3.client(
        "stepfunctions",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id=constants.FAKE_ACCESS_KEY_ID,
        aws_secret_access_key=constants.FAKE_SECRET_ACCESS_KEY,
    )

    def definition(logical_id: str) -> dict:
        return json.loads(states.describe_state_machine(stateMachineArn=stack.physical_id(logical_id))["definition"])

    # THEN the number stays a number, the string a string, and YAML becomes the JSON Step Functions takes
    assert definition("Numbers")["States"]["Fan"]["MaxConcurrency"] == 3
    assert definition("Numbers")["States"]["Fan"]["ItemProcessor"]["States"]["One"]["Result"] == "one"
    assert definition("Waits")["States"]["Pause"]["Seconds"] == 2
    assert definition("Plain")["States"]["Pause"]["Seconds"] == 5


STREAM_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      StreamSpecification: {StreamViewType: NEW_IMAGE}
  Machine:
    Type: AWS::StepFunctions::StateMachine
    Properties:
      RoleArn: arn:aws:iam::123456789012:role/r
      Definition: {QueryLanguage: JSONata, StartAt: A, States: {A: {Type: Pass, End: true}}}
  Consumer:
    Type: AWS::Serverless::Function
    Properties:
      InlineCode: "def handler(e, c):\\n    return 1\\n"
      Handler: index.handler
      Runtime: python3.12
      Policies:
        - Statement:
            - Effect: Allow
              Action: states:StartExecution
              Resource: !Ref Machine
      Events:
        Changes:
          Type: DynamoDB
          Properties: {Stream: !GetAtt Table.StreamArn, StartingPosition: LATEST}
"""


class StreamlessControl(MappingLambdaControl):
    """The local service as it is today: it runs SQS event sources only."""

    def create_event_source_mapping(self, properties: dict) -> str:
        if ":sqs:" not in str(properties.get("EventSourceArn")):
            raise InvalidParameterValueException(
                f"Unsupported event source '{properties['EventSourceArn']}': the local Lambda service runs SQS queue "
                "event sources only"
            )
        return super().create_event_source_mapping(properties)


def test_a_source_the_local_service_does_not_run_and_an_arn_placeholder_in_a_policy(
    moto_endpoint: str, tmp_path: Path
) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(STREAM_TEMPLATE)
    stack = run(template, StreamlessControl(), moto_endpoint, stack_name="streams")
    # the stream mapping is one warning, not a failed deploy
    mapping = next(r for r in stack.resources.values() if r.resource_type == "AWS::Lambda::EventSourceMapping")
    assert mapping.status is ResourceStatus.NOT_SUPPORTED
    assert "Unsupported event source" in mapping.reason and "(not run locally)" in mapping.reason
    # the role whose policy names the state machine (whose Ref is an ARN) is created with an ARN-shaped placeholder
    assert stack.resources["Machine"].status is ResourceStatus.NOT_SUPPORTED
    role = stack.resources["ConsumerRole"]
    assert role.status is ResourceStatus.CREATE_COMPLETE, stack.warnings
    statement = role.properties["Policies"][0]["PolicyDocument"]["Statement"][0]
    assert statement["Resource"] == "arn:aws:states:us-east-1:123456789012:lambdalab-not-created-Machine"
    assert stack.resources["Consumer"].status is ResourceStatus.CREATE_COMPLETE
