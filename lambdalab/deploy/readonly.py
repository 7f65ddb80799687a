"""Read a template as the local deploy would, without creating anything: every active resource, resolved.

The same steps as `deploy()` (samconfig.toml, parameter overrides, the SAM transform, conditions, dependency order,
intrinsics) with made-up physical ids in place of created resources: names as CloudFormation makes them (without the
random suffix, so a read is reproducible), ARNs in AWS's format. The simulator reads templates through this.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lambdalab import constants
from lambdalab.deploy.deployer import order_resources, plan_resources
from lambdalab.deploy.intrinsics import (
    NO_VALUE,
    IntrinsicError,
    MissingResource,
    ResourceFacts,
    Scope,
    pseudo_parameters,
)
from lambdalab.deploy.resources import function_name_of
from lambdalab.deploy.template import (
    SAMCONFIG_NAME,
    load_document,
    load_template,
    read_samconfig,
    resolve_parameters,
)
from lambdalab.errors import UserError

LOG = logging.getLogger(__name__)


@dataclass
class ReadResource:
    logical_id: str
    type: str
    properties: dict[str, Any]  # resolved
    physical_id: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReadStack:
    stack_name: str
    region: str
    account_id: str
    parameters: dict[str, Any]
    resources: dict[str, ReadResource]  # in dependency order
    template_path: Path
    warnings: list[str] = field(default_factory=list)

    def of_type(self, kind: str) -> list[ReadResource]:
        return [r for r in self.resources.values() if r.type == kind]


def read_stack(
    template_path: Path,
    *,
    parameter_overrides: Mapping[str, str] | None = None,
    samconfig_path: Path | None = None,
    stack_name: str | None = None,
    region: str = constants.DEFAULT_REGION,
    account_id: str = constants.DEFAULT_ACCOUNT_ID,
) -> ReadStack:
    """Parameters: overrides → samconfig.toml → Default (as `lambdalab up`). Raises UserError naming what is wrong."""
    template_path = Path(template_path)
    if not template_path.is_file():
        raise UserError(f"template {template_path} not found")
    samconfig = read_samconfig(samconfig_path or template_path.resolve().parent / SAMCONFIG_NAME)
    name = stack_name or samconfig.stack_name or "lambdalab"
    document = load_document(template_path)
    parameters = resolve_parameters(document, parameter_overrides or {}, samconfig.parameter_overrides)
    loaded = load_template(
        template_path,
        parameter_values=parameters,
        region=region,
        account_id=account_id,
        stack_name=name,
        document=document,
    )
    template = loaded.transformed
    stack_id = f"arn:aws:cloudformation:{region}:{account_id}:stack/{name}/00000000-0000-0000-0000-000000000000"
    scope = Scope(
        parameters=parameters,
        pseudo=pseudo_parameters(region=region, account_id=account_id, stack_name=name, stack_id=stack_id),
        mappings=template.get("Mappings") or {},
        condition_definitions=template.get("Conditions") or {},
        region=region,
    )
    plan = plan_resources(template, scope)
    facts = _Facts(name, region, account_id)
    resources: dict[str, ReadResource] = {}
    warnings = list(loaded.warnings)
    for logical_id in order_resources(plan.dependencies):
        resource = plan.active[logical_id]
        kind = str(resource["Type"])
        properties: dict[str, Any] = {}
        for key, value in (resource.get("Properties") or {}).items():
            try:
                resolved = plan.resolver.resolve(value, f"Properties.{key}")
            except MissingResource as exc:
                warnings.append(f"{kind} ({logical_id}): property {key} refers to {exc.logical_id}; not read")
                continue
            except IntrinsicError as exc:
                raise UserError(exc.message, where=f"{template_path}: Resources.{logical_id}.{exc.path}") from None
            if resolved is not NO_VALUE:
                properties[key] = resolved
        physical, attributes = facts.of(logical_id, kind, properties)
        scope.resources[logical_id] = ResourceFacts(physical, attributes)
        resources[logical_id] = ReadResource(logical_id, kind, properties, physical, attributes)
    return ReadStack(name, region, account_id, parameters, resources, template_path, warnings)


class _Facts:
    """Made-up physical ids and attributes, in AWS's formats, for Ref and Fn::GetAtt."""

    def __init__(self, stack: str, region: str, account: str) -> None:
        self.stack, self.region, self.account = stack, region, account
        self._versions: dict[str, int] = {}

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{resource}"

    def name(self, logical_id: str, given: Any = None) -> str:
        return str(given) if given else f"{self.stack}-{logical_id}"

    def of(self, logical_id: str, kind: str, props: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        if kind == "AWS::Lambda::Function":
            name = self.name(logical_id, props.get("FunctionName"))
            return name, {"Arn": self.arn("lambda", f"function:{name}")}
        if kind == "AWS::Lambda::Version":
            function, _ = function_name_of(props.get("FunctionName", ""))
            number = self._versions.get(function, 0) + 1
            self._versions[function] = number
            arn = self.arn("lambda", f"function:{function}:{number}")
            return arn, {"Version": str(number), "FunctionArn": arn}
        if kind == "AWS::Lambda::Alias":
            function, _ = function_name_of(props.get("FunctionName", ""))
            arn = self.arn("lambda", f"function:{function}:{props.get('Name')}")
            return arn, {"AliasArn": arn}
        if kind == "AWS::SQS::Queue":
            fifo = str(props.get("FifoQueue", "false")).lower() == "true"
            suffix = ".fifo" if fifo and not props.get("QueueName") else ""
            name = self.name(logical_id, props.get("QueueName")) + suffix
            url = f"https://sqs.{self.region}.amazonaws.com/{self.account}/{name}"
            return url, {"Arn": self.arn("sqs", name), "QueueName": name, "QueueUrl": url}
        if kind == "AWS::SNS::Topic":
            name = self.name(logical_id, props.get("TopicName"))
            arn = self.arn("sns", name)
            return arn, {"TopicArn": arn, "TopicName": name}
        if kind == "AWS::DynamoDB::Table":
            name = self.name(logical_id, props.get("TableName"))
            arn = self.arn("dynamodb", f"table/{name}")
            return name, {"Arn": arn, "StreamArn": f"{arn}/stream/1970-01-01T00:00:00.000"}
        if kind == "AWS::StepFunctions::StateMachine":
            name = self.name(logical_id, props.get("StateMachineName"))
            arn = self.arn("states", f"stateMachine:{name}")
            return arn, {"Arn": arn, "Name": name, "StateMachineRevisionId": "INITIAL"}
        if kind == "AWS::ApiGateway::RestApi":
            api_id = logical_id.lower()[:10]
            return api_id, {"RootResourceId": f"{api_id}-root", "RestApiId": api_id}
        if kind == "AWS::ApplicationAutoScaling::ScalableTarget":
            return f"{props.get('ResourceId')}|{props.get('ScalableDimension')}|{props.get('ServiceNamespace')}", {}
        if kind == "AWS::ApplicationAutoScaling::ScalingPolicy":
            arn = self.arn("autoscaling", f"scalingPolicy:{logical_id}")
            return arn, {"Arn": arn}
        if kind == "AWS::IAM::Role":
            name = self.name(logical_id, props.get("RoleName"))
            return name, {"Arn": f"arn:aws:iam::{self.account}:role/{name}", "RoleId": f"AROA{logical_id.upper()[:16]}"}
        if kind == "AWS::Logs::LogGroup":
            name = self.name(logical_id, props.get("LogGroupName"))
            return name, {"Arn": self.arn("logs", f"log-group:{name}:*")}
        if kind == "AWS::S3::Bucket":
            name = self.name(logical_id, props.get("BucketName")).lower()
            return name, {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}
        if kind == "AWS::Lambda::EventSourceMapping":
            return f"{logical_id}-mapping", {"Id": f"{logical_id}-mapping"}
        # Anything else: a name, and any attribute read as an ARN-shaped placeholder.
        return self.name(logical_id), _AnyAttribute(self.arn("resource", logical_id))


class _AnyAttribute(dict[str, Any]):
    """GetAtt of a resource the simulator does not model: a placeholder for every attribute name."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self._base = base

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> str:
        return f"{self._base}/{key}"
