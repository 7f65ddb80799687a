"""Deploying the event-source types into a real moto server: each property applied (read back through the AWS API) or
named in a warning; what the local cloud cannot serve is named at deploy."""

from __future__ import annotations

import json

import pytest

from lambdalab.clock import EpochClock
from lambdalab.deploy import ResourceStatus, deploy

from .conftest import ACCOUNT, REGION, TEMPLATES, MappingLambdaControl
from .test_deployer import client


@pytest.fixture(scope="module")
def deployed(moto_endpoint: str):  # type: ignore[no-untyped-def]
    return deploy(
        TEMPLATES / "sources" / "template.yaml",
        lambda_control=MappingLambdaControl(),
        endpoint_url=moto_endpoint,
        region=REGION,
        account_id=ACCOUNT,
        stack_name="sources-deploy",
        epoch=EpochClock(),
    )


def test_eventbridge_bus_and_rules(deployed, moto_endpoint: str) -> None:  # type: ignore[no-untyped-def]
    events = client(moto_endpoint, "events")
    assert deployed.resources["Bus"].physical_id == "shop-events"
    rule_ref = deployed.resources["Rule"].physical_id
    bus, name = rule_ref.split("|")  # a rule on a custom bus is referred to as bus|rule
    rule = events.describe_rule(Name=name, EventBusName=bus)
    assert json.loads(rule["EventPattern"]) == {"source": ["shop"], "detail": {"total": [{"numeric": [">", 10]}]}}
    targets = {t["Id"]: t for t in events.list_targets_by_rule(Rule=name, EventBusName=bus)["Targets"]}
    assert targets["fn"]["RetryPolicy"] == {"MaximumRetryAttempts": 4, "MaximumEventAgeInSeconds": 120}
    assert targets["fn"]["DeadLetterConfig"]["Arn"] == deployed.resources["Dlq"].attributes["Arn"]
    assert targets["fn"]["InputTransformer"]["InputTemplate"] == '{"id": <id>}'
    assert any("target batch" in w and "not delivered to locally" in w for w in deployed.warnings)
    nightly = events.describe_rule(Name=deployed.resources["Nightly"].physical_id)
    assert nightly["ScheduleExpression"] == "cron(0 3 * * ? *)"
    assert deployed.resources["Rule"].attributes["Arn"].startswith(f"arn:aws:events:{REGION}:{ACCOUNT}:rule/")


def test_scheduler_group_and_schedule(deployed, moto_endpoint: str) -> None:  # type: ignore[no-untyped-def]
    scheduler = client(moto_endpoint, "scheduler")
    schedule = scheduler.get_schedule(GroupName="jobs", Name=deployed.resources["Schedule"].physical_id)
    assert schedule["ScheduleExpression"] == "rate(10 minutes)"
    assert schedule["ScheduleExpressionTimezone"] == "Europe/Paris"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 5}
    assert json.loads(schedule["Target"]["Input"]) == {"hello": "world"}  # an object Input becomes its JSON text
    assert schedule["Target"]["RetryPolicy"]["MaximumRetryAttempts"] == 2
    assert deployed.resources["Group"].attributes["Arn"].endswith(":schedule-group/jobs")
    assert any("schedule clock" in d for d in deployed.known_differences)


def test_kinesis_stream(deployed, moto_endpoint: str) -> None:  # type: ignore[no-untyped-def]
    kinesis = client(moto_endpoint, "kinesis")
    name = deployed.resources["Stream"].physical_id
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 2 and summary["RetentionPeriodHours"] == 48
    assert kinesis.list_tags_for_stream(StreamName=name)["Tags"] == [{"Key": "team", "Value": "data"}]
    assert deployed.resources["Stream"].attributes["Arn"] == f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}"


def test_topic_policy_and_bucket_notifications(deployed, moto_endpoint: str) -> None:  # type: ignore[no-untyped-def]
    sns = client(moto_endpoint, "sns")
    topic = deployed.resources["Topic"].physical_id
    policy = json.loads(sns.get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"])
    assert policy["Statement"][0]["Action"] == "sns:Publish"
    s3 = client(moto_endpoint, "s3")
    config = s3.get_bucket_notification_configuration(Bucket=deployed.resources["Bucket"].physical_id)
    (topic_config,) = config["TopicConfigurations"]
    assert topic_config["TopicArn"] == topic and topic_config["Events"] == ["s3:ObjectCreated:*"]
    rules = {r["Name"]: r["Value"] for r in topic_config["Filter"]["Key"]["FilterRules"]}
    assert rules == {"prefix": "in/", "suffix": ".csv"}  # CloudFormation's "Prefix" is S3's "prefix"
    from moto.s3.models import s3_backends  # moto keeps EventBridgeConfiguration but leaves it out of the Get answer

    bucket = s3_backends[ACCOUNT]["aws"].buckets[deployed.resources["Bucket"].physical_id]
    assert bucket.notification_configuration.event_bridge is not None
    assert not any("NotificationConfiguration" in w for w in deployed.warnings)


def test_http_apis(deployed, moto_endpoint: str) -> None:  # type: ignore[no-untyped-def]
    v2 = client(moto_endpoint, "apigatewayv2")
    api_id = deployed.resources["ServerlessHttpApi"].physical_id
    routes = {r["RouteKey"]: r for r in v2.get_routes(ApiId=api_id)["Items"]}
    assert set(routes) == {"GET /items/{id}", "POST /slow"}
    integrations = {i["IntegrationId"]: i for i in v2.get_integrations(ApiId=api_id)["Items"]}
    slow = integrations[routes["POST /slow"]["Target"].split("/")[1]]
    assert (slow["PayloadFormatVersion"], slow["TimeoutInMillis"]) == ("1.0", 1500)
    item = integrations[routes["GET /items/{id}"]["Target"].split("/")[1]]
    assert item["IntegrationType"] == "AWS_PROXY" and item["PayloadFormatVersion"] == "2.0"
    assert {s["StageName"] for s in v2.get_stages(ApiId=api_id)["Items"]} == {"$default"}
    quick = deployed.resources["QuickApi"].physical_id
    assert [r["RouteKey"] for r in v2.get_routes(ApiId=quick)["Items"]] == ["$default"]
    assert deployed.resources["QuickApi"].attributes["ApiEndpoint"] == (
        f"https://{quick}.execute-api.{REGION}.amazonaws.com"
    )
    assert any("SlowRoute" in w and "AWS_IAM is not applied" in w for w in deployed.warnings)
    assert deployed.resources["Sockets"].status is ResourceStatus.NOT_SUPPORTED
    assert any("WEBSOCKET APIs" in w for w in deployed.warnings)


def test_rest_non_proxy_integrations_are_named_at_deploy(deployed) -> None:  # type: ignore[no-untyped-def]
    assert any("(Legacy): GET /mapped has a AWS integration" in w and "answer 500" in w for w in deployed.warnings)


def test_every_resource_is_created_or_named(deployed) -> None:  # type: ignore[no-untyped-def]
    for resource in deployed.resources.values():
        assert resource.status is ResourceStatus.CREATE_COMPLETE or resource.reason in deployed.warnings
