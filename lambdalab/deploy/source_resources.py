"""Provisioners for the resource types of the event sources: EventBridge buses and rules, Scheduler schedules and
groups, Kinesis streams, SNS topic policies, S3 bucket notifications. State goes to moto through its API; the
local cloud's router and scheduler deliver from it. Registered into lambdalab.deploy.resources' tables."""

from __future__ import annotations

import json
import logging
from typing import Any

from lambdalab.deploy.resources import (
    Created,
    NotCreated,
    ProvisionContext,
    Provisioner,
    as_int,
    call,
    json_text,
    physical_name,
    tags_dict,
    tags_list,
)
from lambdalab.errors import UserError

LOG = logging.getLogger(__name__)


# --- EventBridge ----------------------------------------------------------------------------------------------------


def events_bus(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    name = str(props["Name"])
    params: dict[str, Any] = {"Name": name}
    for key in ("EventSourceName", "Description", "KmsKeyIdentifier", "DeadLetterConfig"):
        if props.get(key):
            params[key] = props[key]
    if props.get("Tags"):
        params["Tags"] = tags_list(props["Tags"])
    arn = call(ctx, "events", "CreateEventBus", params)["EventBusArn"]
    if props.get("Policy"):
        ctx.recorded.setdefault(logical_id, {})["Policy"] = props["Policy"]
        ctx.note_difference("EventBridge bus policies are recorded but not enforced locally")
    return Created(name, {"Arn": arn, "Name": name, "Policy": json_text(props.get("Policy") or {})})


_TARGET_KEYS = (
    "Id", "Arn", "RoleArn", "Input", "InputPath", "InputTransformer", "RetryPolicy", "DeadLetterConfig",
    "SqsParameters", "KinesisParameters", "EcsParameters", "BatchParameters", "HttpParameters",
    "RedshiftDataParameters", "SageMakerPipelineParameters", "RunCommandParameters", "AppSyncParameters",
)  # fmt: skip
_DELIVERED = ("lambda", "sqs", "sns", "states", "events", "kinesis", "logs")


def _bus_name(value: Any) -> str:
    text = str(value or "default")
    return text.split("event-bus/", 1)[1] if "event-bus/" in text else text


def events_rule(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    name = str(props.get("Name") or physical_name(ctx.stack_name, logical_id, limit=64))
    bus = _bus_name(props.get("EventBusName"))
    params: dict[str, Any] = {"Name": name, "EventBusName": bus}
    if "EventPattern" in props:
        params["EventPattern"] = json_text(props["EventPattern"])
    if props.get("ScheduleExpression"):
        params["ScheduleExpression"] = props["ScheduleExpression"]
        if bus != "default":
            raise UserError(f"{logical_id}: schedule expressions are only supported on the default event bus")
    state = str(props.get("State", "ENABLED"))
    params["State"] = "ENABLED" if state == "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS" else state
    for key in ("Description", "RoleArn"):
        if props.get(key):
            params[key] = props[key]
    if props.get("Tags"):
        params["Tags"] = tags_list(props["Tags"])
    arn = call(ctx, "events", "PutRule", params)["RuleArn"]
    targets = []
    for target in props.get("Targets") or []:
        unknown = sorted(set(target) - set(_TARGET_KEYS))
        if unknown:
            ctx.warn_ignored(logical_id, [f"Targets[{target.get('Id')}].{k}" for k in unknown])
        service = str(target.get("Arn", "")).split(":")[2:3]
        if service and service[0] not in _DELIVERED:
            ctx.warnings.append(
                f"AWS::Events::Rule ({logical_id}): target {target.get('Id')} ({target.get('Arn')}) is created but "
                "not delivered to locally (Lambda, SQS, SNS, Step Functions, event bus, Kinesis and Logs targets are)"
            )
        clean = {k: v for k, v in target.items() if k in _TARGET_KEYS}
        if isinstance(clean.get("InputTransformer"), dict):
            transformer = dict(clean["InputTransformer"])
            transformer["InputTemplate"] = json_text(transformer.get("InputTemplate", ""))
            clean["InputTransformer"] = transformer
        if "Input" in clean:
            clean["Input"] = json_text(clean["Input"])
        targets.append(clean)
    if targets:
        answer = call(ctx, "events", "PutTargets", {"Rule": name, "EventBusName": bus, "Targets": targets})
        if answer.get("FailedEntryCount"):
            raise UserError(f"{logical_id}: PutTargets failed: {answer.get('FailedEntries')}")
    ref = name if bus == "default" else f"{bus}|{name}"
    return Created(ref, {"Arn": arn})


# --- EventBridge Scheduler ------------------------------------------------------------------------------------------


def schedule_group(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    name = str(props.get("Name") or physical_name(ctx.stack_name, logical_id, limit=64))
    params: dict[str, Any] = {"Name": name}
    if props.get("Tags"):
        params["Tags"] = tags_list(props["Tags"])
    arn = call(ctx, "scheduler", "CreateScheduleGroup", params)["ScheduleGroupArn"]
    return Created(name, {"Arn": arn, "CreationDate": "", "LastModificationDate": "", "State": "ACTIVE"})


def schedule(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    name = str(props.get("Name") or physical_name(ctx.stack_name, logical_id, limit=64))
    params: dict[str, Any] = {
        "Name": name,
        "ScheduleExpression": props["ScheduleExpression"],
        "FlexibleTimeWindow": props.get("FlexibleTimeWindow") or {"Mode": "OFF"},
        "Target": dict(props["Target"]),
    }
    for key in (
        "GroupName", "ScheduleExpressionTimezone", "Description", "State", "StartDate", "EndDate", "KmsKeyArn",
        "ActionAfterCompletion",
    ):  # fmt: skip
        if props.get(key) is not None:
            params[key] = props[key]
    target = params["Target"]
    if "Input" in target:
        target["Input"] = json_text(target["Input"])
    arn = str(target.get("Arn", ""))
    if arn.startswith("arn:aws:scheduler:::aws-sdk:"):
        ctx.warnings.append(
            f"AWS::Scheduler::Schedule ({logical_id}): universal target {arn} is created but not run locally"
        )
    answer = call(ctx, "scheduler", "CreateSchedule", params)
    ctx.note_difference(
        "EventBridge Scheduler schedules and scheduled rules run on the local schedule clock, which --time-scale "
        "compresses (a rate(1 minute) fires every 60 x time-scale seconds)"
    )
    return Created(name, {"Arn": answer["ScheduleArn"]})


# --- Kinesis ---------------------------------------------------------------------------------------------------------

ON_DEMAND_SHARDS = 4  # "a new on-demand stream has a write capacity of 4 MB/s" - 4 shards


def kinesis_stream(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    name = str(props.get("Name") or physical_name(ctx.stack_name, logical_id, limit=128))
    mode = str((props.get("StreamModeDetails") or {}).get("StreamMode", "PROVISIONED"))
    shards = as_int(props.get("ShardCount", 1)) if mode == "PROVISIONED" else ON_DEMAND_SHARDS
    params: dict[str, Any] = {"StreamName": name, "ShardCount": shards}
    if props.get("StreamModeDetails"):
        params["StreamModeDetails"] = {"StreamMode": mode}
    call(ctx, "kinesis", "CreateStream", params)
    retention = props.get("RetentionPeriodHours")
    if retention is not None and as_int(retention) > 24:
        call(
            ctx,
            "kinesis",
            "IncreaseStreamRetentionPeriod",
            {"StreamName": name, "RetentionPeriodHours": as_int(retention)},
        )
    if props.get("Tags"):
        call(ctx, "kinesis", "AddTagsToStream", {"StreamName": name, "Tags": tags_dict(props["Tags"])})
    if props.get("StreamEncryption"):
        ctx.note_difference("Kinesis StreamEncryption is accepted but records are not encrypted locally")
    if mode == "ON_DEMAND":
        ctx.note_difference(
            f"Kinesis on-demand streams have {ON_DEMAND_SHARDS} fixed shards locally (no automatic resharding)"
        )
    arn = ctx.arn("kinesis", f"stream/{name}")
    return Created(name, {"Arn": arn})


# --- SNS topic policy ------------------------------------------------------------------------------------------------


def sns_topic_policy(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    document = json_text(props["PolicyDocument"])
    for topic in props.get("Topics") or []:
        call(
            ctx, "sns", "SetTopicAttributes", {"TopicArn": topic, "AttributeName": "Policy", "AttributeValue": document}
        )
    ctx.note_difference("SNS topic policies are stored but not enforced locally")
    return Created(physical_name(ctx.stack_name, logical_id, limit=128))


# --- S3 bucket notifications ----------------------------------------------------------------------------------------


def _s3_filter(config: dict[str, Any]) -> dict[str, Any] | None:
    rules = ((config.get("Filter") or {}).get("S3Key") or {}).get("Rules")
    if not rules:
        return None
    return {"Key": {"FilterRules": [{"Name": str(r["Name"]).lower(), "Value": str(r["Value"])} for r in rules]}}


def bucket_notifications(ctx: ProvisionContext, logical_id: str, bucket: str, config: dict[str, Any]) -> None:
    """CloudFormation's NotificationConfiguration → PutBucketNotificationConfiguration."""
    api: dict[str, Any] = {}
    for cfn_key, api_key, arn_key, target_key in (
        ("LambdaConfigurations", "LambdaFunctionConfigurations", "Function", "LambdaFunctionArn"),
        ("QueueConfigurations", "QueueConfigurations", "Queue", "QueueArn"),
        ("TopicConfigurations", "TopicConfigurations", "Topic", "TopicArn"),
    ):
        entries = []
        for item in config.get(cfn_key) or []:
            entry: dict[str, Any] = {target_key: item[arn_key], "Events": [item["Event"]]}
            key_filter = _s3_filter(item)
            if key_filter:
                entry["Filter"] = key_filter
            entries.append(entry)
        if entries:
            api[api_key] = entries
    if (config.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled") in (True, "true", "True"):
        api["EventBridgeConfiguration"] = {}
    unknown = sorted(
        set(config) - {"LambdaConfigurations", "QueueConfigurations", "TopicConfigurations", "EventBridgeConfiguration"}
    )
    if unknown:
        ctx.warn_ignored(logical_id, [f"NotificationConfiguration.{k}" for k in unknown])
    call(
        ctx,
        "s3",
        "PutBucketNotificationConfiguration",
        {"Bucket": bucket, "NotificationConfiguration": api, "SkipDestinationValidation": True},
    )


# --- API Gateway HTTP APIs (v2) -------------------------------------------------------------------------------------

_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "x-amazon-apigateway-any-method"}


def _integration_uri(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _create_integration(ctx: ProvisionContext, api_id: str, spec: dict[str, Any]) -> str:
    params: dict[str, Any] = {"ApiId": api_id, "IntegrationType": str(spec.get("type", "aws_proxy")).upper()}
    if spec.get("uri"):
        params["IntegrationUri"] = _integration_uri(spec["uri"])
    if spec.get("httpMethod"):
        params["IntegrationMethod"] = spec["httpMethod"]
    params["PayloadFormatVersion"] = str(spec.get("payloadFormatVersion") or "2.0")
    if spec.get("timeoutInMillis"):
        params["TimeoutInMillis"] = as_int(spec["timeoutInMillis"])
    return str(call(ctx, "apigatewayv2", "CreateIntegration", params)["IntegrationId"])


def _import_http_api(ctx: ProvisionContext, logical_id: str, api_id: str, body: dict[str, Any]) -> None:
    """Routes and integrations from an OpenAPI 3 body with x-amazon-apigateway-integration (what SAM generates).

    Written here because moto's ImportApi turns `x-amazon-apigateway-any-method` into a route key of that name and
    `$default` into a path, and reads YAML only."""
    for path, operations in (body.get("paths") or {}).items():
        for method, operation in (operations or {}).items():
            if method.lower() not in _METHODS or not isinstance(operation, dict):
                continue
            verb = "ANY" if method.lower() == "x-amazon-apigateway-any-method" else method.upper()
            route_key = "$default" if path == "$default" else f"{verb} {path}"
            params: dict[str, Any] = {"ApiId": api_id, "RouteKey": route_key}
            integration = operation.get("x-amazon-apigateway-integration")
            if isinstance(integration, dict):
                kind = str(integration.get("type", "aws_proxy")).upper()
                if kind != "AWS_PROXY":
                    ctx.warnings.append(
                        f"AWS::ApiGatewayV2::Api ({logical_id}): route {route_key} has a {kind} integration, which "
                        "the local cloud does not serve (requests to it answer 500)"
                    )
                params["Target"] = f"integrations/{_create_integration(ctx, api_id, integration)}"
            if operation.get("security"):
                ctx.warnings.append(
                    f"AWS::ApiGatewayV2::Api ({logical_id}): route {route_key} has an authorizer, which is not "
                    "applied locally (every request is let through)"
                )
            call(ctx, "apigatewayv2", "CreateRoute", params)
    if body.get("x-amazon-apigateway-cors"):
        ctx.warn_ignored(logical_id, ["Body.x-amazon-apigateway-cors (CORS preflight is not answered locally)"])


def http_api(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    protocol = str(props.get("ProtocolType", "HTTP")).upper()
    if protocol != "HTTP" and not props.get("Body"):
        raise NotCreated(f"{protocol} APIs (API Gateway v2 WebSocket APIs) are not served by the local cloud")
    if props.get("BodyS3Location") and not props.get("Body"):
        raise NotCreated("BodyS3Location is not supported locally; give the OpenAPI document inline (Body)")
    body = props.get("Body")
    if isinstance(body, str):
        import yaml

        body = yaml.safe_load(body)
    title = body.get("info", {}).get("title") if isinstance(body, dict) else None
    name = str(props.get("Name") or title or physical_name(ctx.stack_name, logical_id, limit=128))
    params: dict[str, Any] = {"Name": name, "ProtocolType": "HTTP"}
    for key in ("Description", "Version", "DisableExecuteApiEndpoint", "CorsConfiguration"):
        if props.get(key) is not None:
            params[key] = props[key]
    if props.get("Tags"):
        params["Tags"] = tags_dict(props["Tags"])
    api = call(ctx, "apigatewayv2", "CreateApi", params)
    api_id = str(api["ApiId"])
    if isinstance(body, dict):
        _import_http_api(ctx, logical_id, api_id, body)
    if props.get("Target"):  # quick create: one integration, one route, the $default stage
        integration = _create_integration(ctx, api_id, {"uri": props["Target"], "type": "AWS_PROXY"})
        call(
            ctx,
            "apigatewayv2",
            "CreateRoute",
            {"ApiId": api_id, "RouteKey": props.get("RouteKey") or "$default", "Target": f"integrations/{integration}"},
        )
        call(ctx, "apigatewayv2", "CreateStage", {"ApiId": api_id, "StageName": "$default", "AutoDeploy": True})
    if props.get("CorsConfiguration"):
        ctx.note_difference("HTTP API CorsConfiguration is stored but CORS preflight requests are not answered locally")
    endpoint = f"https://{api_id}.execute-api.{ctx.region}.amazonaws.com"
    return Created(api_id, {"ApiEndpoint": endpoint, "ApiId": api_id})


def http_stage(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    params: dict[str, Any] = {"ApiId": props["ApiId"], "StageName": props["StageName"]}
    for key in ("AutoDeploy", "DeploymentId", "Description", "StageVariables", "DefaultRouteSettings", "RouteSettings"):
        if props.get(key) is not None:
            params[key] = props[key]
    if props.get("Tags"):
        params["Tags"] = tags_dict(props["Tags"])
    call(ctx, "apigatewayv2", "CreateStage", params)
    if props.get("AccessLogSettings"):
        ctx.warnings.append(
            f"AWS::ApiGatewayV2::Stage ({logical_id}): AccessLogSettings is not applied locally; every request is "
            "logged to api-access.jsonl in the run directory (the REST APIs' log)"
        )
    if props.get("DefaultRouteSettings") or props.get("RouteSettings"):
        ctx.note_difference("HTTP API route throttling settings are stored but not applied locally")
    return Created(str(props["StageName"]))


def http_route(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    params: dict[str, Any] = {"ApiId": props["ApiId"], "RouteKey": props["RouteKey"]}
    for key in ("Target", "AuthorizationType", "AuthorizerId", "AuthorizationScopes", "ApiKeyRequired",
                "OperationName", "RequestParameters"):  # fmt: skip
        if props.get(key) is not None:
            params[key] = props[key]
    if str(props.get("AuthorizationType", "NONE")).upper() != "NONE":
        ctx.warnings.append(
            f"AWS::ApiGatewayV2::Route ({logical_id}): AuthorizationType {props['AuthorizationType']} is not applied "
            "locally (every request is let through)"
        )
    route = call(ctx, "apigatewayv2", "CreateRoute", params)
    return Created(str(route["RouteId"]), {"RouteId": route["RouteId"]})


def http_integration(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    params: dict[str, Any] = {"ApiId": props["ApiId"], "IntegrationType": str(props["IntegrationType"]).upper()}
    keys = ("IntegrationUri", "IntegrationMethod", "PayloadFormatVersion", "TimeoutInMillis", "Description",
            "ConnectionType", "ConnectionId", "CredentialsArn", "RequestParameters", "ResponseParameters")  # fmt: skip
    for key in keys:
        if props.get(key) is not None:
            params[key] = props[key]
    if params["IntegrationType"] != "AWS_PROXY":
        ctx.warnings.append(
            f"AWS::ApiGatewayV2::Integration ({logical_id}): {params['IntegrationType']} integrations are not served "
            "locally (their routes answer 500); Lambda proxy (AWS_PROXY) integrations are"
        )
    integration = call(ctx, "apigatewayv2", "CreateIntegration", params)
    return Created(str(integration["IntegrationId"]), {"IntegrationId": integration["IntegrationId"]})


def http_deployment(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    params: dict[str, Any] = {"ApiId": props["ApiId"]}
    for key in ("StageName", "Description"):
        if props.get(key):
            params[key] = props[key]
    deployment = call(ctx, "apigatewayv2", "CreateDeployment", params)
    ctx.note_difference("HTTP API deployments are not snapshots locally: every stage serves the current routes")
    return Created(str(deployment["DeploymentId"]), {"DeploymentId": deployment["DeploymentId"]})


def http_authorizer(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    params = {k: props[k] for k in ("ApiId", "AuthorizerType", "Name", "IdentitySource", "AuthorizerUri",
                                    "JwtConfiguration", "AuthorizerPayloadFormatVersion", "EnableSimpleResponses",
                                    "AuthorizerResultTtlInSeconds") if props.get(k) is not None}  # fmt: skip
    created = call(ctx, "apigatewayv2", "CreateAuthorizer", params)
    ctx.warnings.append(
        f"AWS::ApiGatewayV2::Authorizer ({logical_id}): created but not applied locally (requests are not authorized)"
    )
    return Created(str(created["AuthorizerId"]), {"AuthorizerId": created["AuthorizerId"]})


def http_domain(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    raise NotCreated("custom domain names need DNS and certificates; use the local execute-api URL")


PROVISIONERS: dict[str, Provisioner] = {
    "AWS::Events::EventBus": events_bus,
    "AWS::Events::Rule": events_rule,
    "AWS::Scheduler::ScheduleGroup": schedule_group,
    "AWS::Scheduler::Schedule": schedule,
    "AWS::Kinesis::Stream": kinesis_stream,
    "AWS::SNS::TopicPolicy": sns_topic_policy,
    "AWS::ApiGatewayV2::Api": http_api,
    "AWS::ApiGatewayV2::Stage": http_stage,
    "AWS::ApiGatewayV2::Route": http_route,
    "AWS::ApiGatewayV2::Integration": http_integration,
    "AWS::ApiGatewayV2::Deployment": http_deployment,
    "AWS::ApiGatewayV2::Authorizer": http_authorizer,
    "AWS::ApiGatewayV2::DomainName": http_domain,
    "AWS::ApiGatewayV2::ApiMapping": http_domain,
}

APPLIED_PROPERTIES: dict[str, frozenset[str] | None] = {
    "AWS::Events::EventBus": frozenset({
        "Name", "EventSourceName", "Description", "KmsKeyIdentifier", "DeadLetterConfig", "Tags", "Policy",
    }),
    "AWS::Events::Rule": frozenset({
        "Name", "EventBusName", "EventPattern", "ScheduleExpression", "State", "Description", "RoleArn", "Tags",
        "Targets",
    }),
    "AWS::Scheduler::ScheduleGroup": frozenset({"Name", "Tags"}),
    "AWS::Scheduler::Schedule": frozenset({
        "Name", "GroupName", "ScheduleExpression", "ScheduleExpressionTimezone", "FlexibleTimeWindow", "Target",
        "Description", "State", "StartDate", "EndDate", "KmsKeyArn", "ActionAfterCompletion",
    }),
    "AWS::Kinesis::Stream": frozenset({
        "Name", "ShardCount", "StreamModeDetails", "RetentionPeriodHours", "Tags", "StreamEncryption",
    }),
    "AWS::SNS::TopicPolicy": frozenset({"PolicyDocument", "Topics"}),
    "AWS::ApiGatewayV2::Api": frozenset({
        "Name", "ProtocolType", "Body", "BodyS3Location", "Target", "RouteKey", "Description", "Version",
        "DisableExecuteApiEndpoint", "CorsConfiguration", "Tags", "FailOnWarnings",
    }),
    "AWS::ApiGatewayV2::Stage": frozenset({
        "ApiId", "StageName", "AutoDeploy", "DeploymentId", "Description", "StageVariables", "DefaultRouteSettings",
        "RouteSettings", "Tags", "AccessLogSettings",
    }),
    "AWS::ApiGatewayV2::Route": frozenset({
        "ApiId", "RouteKey", "Target", "AuthorizationType", "AuthorizerId", "AuthorizationScopes", "ApiKeyRequired",
        "OperationName", "RequestParameters",
    }),
    "AWS::ApiGatewayV2::Integration": frozenset({
        "ApiId", "IntegrationType", "IntegrationUri", "IntegrationMethod", "PayloadFormatVersion", "TimeoutInMillis",
        "Description", "ConnectionType", "ConnectionId", "CredentialsArn", "RequestParameters", "ResponseParameters",
    }),
    "AWS::ApiGatewayV2::Deployment": frozenset({"ApiId", "StageName", "Description"}),
    "AWS::ApiGatewayV2::Authorizer": None,
    "AWS::ApiGatewayV2::DomainName": None,
    "AWS::ApiGatewayV2::ApiMapping": None,
}  # fmt: skip

__all__ = ["APPLIED_PROPERTIES", "PROVISIONERS", "bucket_notifications"]
