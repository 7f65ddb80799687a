"""The CloudFormation read API, served by a tiny aiohttp app and called by a real boto3 client."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from aiohttp import web
from botocore.exceptions import ClientError

from lambdalab import constants
from lambdalab.clock import Clocks
from lambdalab.deploy import DeployedResource, DeployedStack, ResourceStatus, StackOutput, deploy
from lambdalab.deploy.stack_api import handle

from .conftest import ACCOUNT, REGION, TEMPLATES, RecordingLambdaControl, _free_port

STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/lab/8c3f1f80-0000-4000-8000-000000000001"


def make_stack() -> DeployedStack:
    created = datetime(2026, 11, 22, 6, 30, 0, 123000, tzinfo=UTC)
    resources = {
        "Queue": DeployedResource(
            "Queue",
            "AWS::SQS::Queue",
            ResourceStatus.CREATE_COMPLETE,
            physical_id="http://127.0.0.1:1/123456789012/lab-Queue-ABC",
            attributes={"Arn": "arn:aws:sqs:us-east-1:123456789012:lab-Queue-ABC"},
            timestamp=created,
        ),
        "Fn": DeployedResource(
            "Fn", "AWS::Lambda::Function", ResourceStatus.CREATE_COMPLETE, physical_id="lab-Fn-XYZ", timestamp=created
        ),
        "Rule": DeployedResource(
            "Rule",
            "AWS::Events::Rule",
            ResourceStatus.NOT_SUPPORTED,
            reason="AWS::Events::Rule (Rule): not supported",
            timestamp=created,
        ),
    }
    return DeployedStack(
        stack_name="lab",
        stack_id=STACK_ID,
        region=REGION,
        parameters={"Stage": "dev", "Zones": ["a", "b"], "Password": "hunter2"},
        resources=resources,
        outputs={
            "QueueUrl": StackOutput("QueueUrl", resources["Queue"].physical_id or "", "The queue & more <url>"),
            "FnName": StackOutput("FnName", "lab-Fn-XYZ", "", export_name="lab-FnName"),
        },
        warnings=[],
        known_differences=[],
        description="A lab stack",
        template_body="Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n",
        processed_template={"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}},
        creation_time=created,
        no_echo_parameters=frozenset({"Password"}),
    )


@pytest.fixture(scope="module")
def cloudformation() -> Iterator[object]:
    stacks = {"lab": make_stack()}

    async def endpoint(request: web.Request) -> web.Response:
        form = await request.post()
        params = {k: str(v) for k, v in form.items()}
        action = params.pop("Action", "")
        params.pop("Version", None)
        status, body = handle(action, params, stacks)
        return web.Response(status=status, text=body, content_type="text/xml")

    port = _free_port()
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/", endpoint)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, name="stack-api-test", daemon=True)
    thread.start()
    try:
        yield boto3.client(
            "cloudformation",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name=REGION,
            aws_access_key_id=constants.FAKE_ACCESS_KEY_ID,
            aws_secret_access_key=constants.FAKE_SECRET_ACCESS_KEY,
            aws_session_token=constants.FAKE_SESSION_TOKEN,
        )
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def test_describe_stacks_by_name_and_by_id(cloudformation) -> None:
    (stack,) = cloudformation.describe_stacks(StackName="lab")["Stacks"]
    assert stack["StackId"] == STACK_ID
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert stack["Description"] == "A lab stack"
    assert stack["CreationTime"] == datetime(2026, 11, 22, 6, 30, 0, 123000, tzinfo=UTC)
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert parameters == {"Stage": "dev", "Zones": "a,b", "Password": "****"}  # NoEcho, as AWS shows it
    outputs = {o["OutputKey"]: o for o in stack["Outputs"]}
    assert outputs["QueueUrl"]["OutputValue"] == "http://127.0.0.1:1/123456789012/lab-Queue-ABC"
    assert outputs["QueueUrl"]["Description"] == "The queue & more <url>"  # escaped in XML, intact here
    assert outputs["FnName"]["ExportName"] == "lab-FnName"
    assert cloudformation.describe_stacks(StackName=STACK_ID)["Stacks"][0]["StackName"] == "lab"
    assert [s["StackName"] for s in cloudformation.describe_stacks()["Stacks"]] == ["lab"]


def test_unknown_stack_is_the_aws_validation_error(cloudformation) -> None:
    with pytest.raises(ClientError) as caught:
        cloudformation.describe_stacks(StackName="nope")
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationError"
    assert error["Message"] == "Stack with id nope does not exist"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_list_and_describe_stack_resources(cloudformation) -> None:
    summaries = cloudformation.list_stack_resources(StackName="lab")["StackResourceSummaries"]
    assert {s["LogicalResourceId"]: s["PhysicalResourceId"] for s in summaries} == {
        "Queue": "http://127.0.0.1:1/123456789012/lab-Queue-ABC",
        "Fn": "lab-Fn-XYZ",
    }  # the rule was not created, so it is not listed
    assert {s["ResourceStatus"] for s in summaries} == {"CREATE_COMPLETE"}
    (resource,) = cloudformation.describe_stack_resources(StackName="lab", LogicalResourceId="Fn")["StackResources"]
    assert resource["ResourceType"] == "AWS::Lambda::Function" and resource["StackId"] == STACK_ID
    by_physical = cloudformation.describe_stack_resources(PhysicalResourceId="lab-Fn-XYZ")["StackResources"]
    assert [r["LogicalResourceId"] for r in by_physical] == ["Fn"]
    detail = cloudformation.describe_stack_resource(StackName="lab", LogicalResourceId="Queue")["StackResourceDetail"]
    assert detail["PhysicalResourceId"].endswith("lab-Queue-ABC")
    with pytest.raises(ClientError, match="Resource Rule does not exist for stack lab"):
        cloudformation.describe_stack_resource(StackName="lab", LogicalResourceId="Rule")


def test_get_template_list_stacks_and_exports(cloudformation) -> None:
    original = cloudformation.get_template(StackName="lab")
    assert original["TemplateBody"] == make_stack().template_body
    processed = cloudformation.get_template(StackName="lab", TemplateStage="Processed")["TemplateBody"]
    assert (processed if isinstance(processed, dict) else json.loads(processed))["Resources"]["Queue"]
    (summary,) = cloudformation.list_stacks()["StackSummaries"]
    assert (summary["StackName"], summary["StackStatus"]) == ("lab", "CREATE_COMPLETE")
    assert cloudformation.list_stacks(StackStatusFilter=["DELETE_COMPLETE"])["StackSummaries"] == []
    (export,) = cloudformation.list_exports()["Exports"]
    assert (export["Name"], export["Value"], export["ExportingStackId"]) == ("lab-FnName", "lab-Fn-XYZ", STACK_ID)


def test_describe_stack_events(cloudformation) -> None:
    events = cloudformation.describe_stack_events(StackName="lab")["StackEvents"]
    assert {e["LogicalResourceId"] for e in events} == {"lab", "Queue", "Fn"}
    assert {e["ResourceStatus"] for e in events} == {"CREATE_COMPLETE"}
    (stack_event,) = [e for e in events if e["ResourceType"] == "AWS::CloudFormation::Stack"]
    assert stack_event["PhysicalResourceId"] == STACK_ID


def test_write_actions_are_refused_with_an_aws_error(cloudformation) -> None:
    with pytest.raises(ClientError) as caught:
        cloudformation.delete_stack(StackName="lab")
    assert caught.value.response["Error"]["Code"] == "InvalidAction"
    assert "DeleteStack is not supported by the local cloud" in caught.value.response["Error"]["Message"]


def test_handle_directly_requires_a_stack_name() -> None:
    status, body = handle("ListStackResources", {}, {"lab": make_stack()})
    assert status == 400 and "<Code>ValidationError</Code>" in body and "StackName" in body


def test_template_body_file_is_not_needed(tmp_path: Path) -> None:
    stack = make_stack()
    stack.template_path = tmp_path / "gone.yaml"  # the body is kept in memory, the file may change later
    status, body = handle("GetTemplate", {"StackName": "lab"}, {"lab": stack})
    assert status == 200 and "AWS::SQS::Queue" in body


def test_a_deployed_stack_is_described(moto_endpoint: str) -> None:
    # GIVEN a stack deployed from a template into moto
    stack = deploy(
        TEMPLATES / "cfn_plain" / "template.yaml",
        lambda_control=RecordingLambdaControl(),
        endpoint_url=moto_endpoint,
        region=REGION,
        account_id=ACCOUNT,
        stack_name="described",
        epoch=Clocks.virtual(start_epoch=datetime(2026, 11, 22, 6, 30, tzinfo=UTC).timestamp())[1].epoch,
    )
    assert stack.creation_time == datetime(2026, 11, 22, 6, 30, tzinfo=UTC)  # the local cloud's epoch clock
    assert {r.timestamp for r in stack.resources.values()} == {stack.creation_time}
    # WHEN the CloudFormation API is asked about it
    status, body = handle("DescribeStacks", {"StackName": "described"}, {"described": stack})
    # THEN its outputs and parameters are there
    assert status == 200
    assert f"<OutputValue>{stack.outputs['AliasArn'].value}</OutputValue>" in body
    assert "<ParameterKey>EnableFifo</ParameterKey><ParameterValue>true</ParameterValue>" in body
    status, body = handle("ListStackResources", {"StackName": stack.stack_id}, {"described": stack})
    created = [r for r in stack.resources.values() if r.status is ResourceStatus.CREATE_COMPLETE]
    assert status == 200 and body.count("<member>") == len(created)
