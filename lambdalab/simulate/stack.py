"""The simulator's view of a template: functions, versions, aliases, concurrency settings, queues and their
mappings, tables, scaling policies, state machines and API routes, read with lambdalab.deploy.readonly."""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lambdalab import constants
from lambdalab.apigateway.routes import ANY, Integration, Method, Resource
from lambdalab.autoscaling.policy import metric_of
from lambdalab.awslambda.core.esm import MappingSettings, settings_from
from lambdalab.awslambda.core.exceptions import LambdaApiError
from lambdalab.deploy.readonly import ReadStack, read_stack
from lambdalab.deploy.resources import function_name_of
from lambdalab.errors import UserError

LOG = logging.getLogger(__name__)

LATEST = "$LATEST"
_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "x-amazon-apigateway-any-method"}


@dataclass
class Function:
    logical_id: str
    name: str
    timeout_s: float
    memory_mb: int
    architecture: str
    reserved: int | None
    versions: list[str] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)  # alias → version
    provisioned: dict[str, int] = field(default_factory=dict)  # alias or version → count

    def resolve(self, qualifier: str | None) -> tuple[str, str]:
        """(qualifier as invoked, version it runs)."""
        if qualifier in (None, "", LATEST):
            return LATEST, LATEST
        assert qualifier is not None
        if qualifier in self.aliases:
            return qualifier, self.aliases[qualifier]
        if qualifier in self.versions:
            return qualifier, qualifier
        raise UserError(f"function {self.logical_id} ({self.name}) has no version or alias {qualifier!r}")


@dataclass
class Queue:
    logical_id: str
    name: str
    arn: str
    visibility_timeout_s: float
    dlq_arn: str | None = None
    max_receive_count: int | None = None


@dataclass
class Mapping_:
    logical_id: str
    queue_arn: str
    function: str  # logical id
    qualifier: str
    settings: MappingSettings


@dataclass
class Table:
    logical_id: str
    name: str
    billing_mode: str  # PROVISIONED | PAY_PER_REQUEST
    read: float
    write: float
    indexes: dict[str, tuple[float, float]] = field(default_factory=dict)

    def description(self) -> dict[str, Any]:
        """A DynamoDB TableDescription, as CapacityMeter.set_table reads one."""
        body: dict[str, Any] = {
            "TableName": self.name,
            "BillingModeSummary": {"BillingMode": self.billing_mode},
            "GlobalSecondaryIndexes": [
                {"IndexName": name, "ProvisionedThroughput": {"ReadCapacityUnits": r, "WriteCapacityUnits": w}}
                for name, (r, w) in self.indexes.items()
            ],
        }
        if self.billing_mode == "PROVISIONED":
            body["ProvisionedThroughput"] = {"ReadCapacityUnits": self.read, "WriteCapacityUnits": self.write}
        return body


@dataclass
class ScalingPolicy:
    logical_id: str
    namespace: str  # lambda | dynamodb
    resource_id: str
    dimension: str
    minimum: int
    maximum: int
    config: dict[str, Any]  # TargetTrackingScalingPolicyConfiguration

    @property
    def metric(self) -> dict[str, Any]:
        return metric_of(self.config)


@dataclass
class StateMachine:
    logical_id: str
    name: str
    definition: dict[str, Any]


@dataclass
class Api:
    logical_id: str
    resources: tuple[Resource, ...]


@dataclass
class SimStack:
    path: Path
    stack_name: str
    parameters: dict[str, Any]
    functions: dict[str, Function]  # by logical id
    queues: dict[str, Queue]
    mappings: list[Mapping_]
    tables: dict[str, Table]
    scaling: list[ScalingPolicy]
    state_machines: dict[str, StateMachine]
    apis: dict[str, Api]
    warnings: list[str] = field(default_factory=list)
    region: str = constants.DEFAULT_REGION
    _by_name: dict[str, str] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """What the simulation depends on (not the parameter values that led to it): two settings with the same
        fingerprint simulate the same, so `tune` runs them once."""
        body = (self.functions, self.queues, self.mappings, self.tables, self.scaling, self.state_machines, self.apis)
        return hashlib.sha256(pickle.dumps(body, protocol=4)).hexdigest()

    def function(self, key: str) -> Function:
        """By logical id, name or (qualified) ARN."""
        name, _ = function_name_of(key) if ":" in key else (key, None)
        logical = key if key in self.functions else self._by_name.get(name)
        if logical is None:
            known = ", ".join(sorted(self.functions)) or "none"
            raise UserError(f"no function {key!r} in the template (functions: {known})")
        return self.functions[logical]

    def function_of_arn(self, arn: str) -> tuple[Function, str]:
        """A function ARN (maybe qualified) or name → (function, qualifier)."""
        name, qualifier = function_name_of(arn)
        return self.function(name), qualifier or LATEST

    def table(self, key: str) -> Table:
        if key in self.tables:
            return self.tables[key]
        for table in self.tables.values():
            if table.name == key:
                return table
        raise UserError(
            f"no DynamoDB table {key!r} in the template (tables: {', '.join(sorted(self.tables)) or 'none'})"
        )

    def queue(self, key: str) -> Queue:
        if key in self.queues:
            return self.queues[key]
        for queue in self.queues.values():
            if key in (queue.name, queue.arn):
                return queue
        raise UserError(f"no SQS queue {key!r} in the template (queues: {', '.join(sorted(self.queues)) or 'none'})")


def _int(value: Any, default: int | None = None) -> int | None:
    if value is None:
        return default
    return int(float(value)) if isinstance(value, str) else int(value)


def load_stack(
    template: Path,
    *,
    parameter_overrides: Mapping[str, str] | None = None,
    samconfig_path: Path | None = None,
) -> SimStack:
    read = read_stack(template, parameter_overrides=parameter_overrides, samconfig_path=samconfig_path)
    return build(read)


def build(read: ReadStack) -> SimStack:
    where = str(read.template_path)
    stack = SimStack(
        path=read.template_path,
        stack_name=read.stack_name,
        parameters=read.parameters,
        functions={},
        queues={},
        mappings=[],
        tables={},
        scaling=[],
        state_machines={},
        apis={},
        warnings=list(read.warnings),
        region=read.region,
    )
    for r in read.of_type("AWS::Lambda::Function"):
        p = r.properties
        if p.get("PackageType") == "Image":
            stack.warnings.append(f"{r.logical_id}: a container-image function, simulated like a zip function")
        stack.functions[r.logical_id] = Function(
            logical_id=r.logical_id,
            name=r.physical_id,
            timeout_s=float(p.get("Timeout", constants.DEFAULT_TIMEOUT_SECONDS)),
            memory_mb=_int(p.get("MemorySize"), constants.DEFAULT_MEMORY_MB) or constants.DEFAULT_MEMORY_MB,
            architecture=str((p.get("Architectures") or ["x86_64"])[0]),
            reserved=_int(p.get("ReservedConcurrentExecutions")),
        )
        stack._by_name[r.physical_id] = r.logical_id
    for r in read.resources.values():
        p = r.properties
        try:
            if r.type == "AWS::Lambda::Version":
                function = stack.function(function_name_of(p["FunctionName"])[0])
                version = str(r.attributes["Version"])
                function.versions.append(version)
                pc = (p.get("ProvisionedConcurrencyConfig") or {}).get("ProvisionedConcurrentExecutions")
                if pc is not None:
                    function.provisioned[version] = int(_int(pc) or 0)
            elif r.type == "AWS::Lambda::Alias":
                function = stack.function(function_name_of(p["FunctionName"])[0])
                version = str(p["FunctionVersion"])
                if version.startswith("arn:"):
                    version = function_name_of(version)[1] or LATEST
                function.aliases[str(p["Name"])] = version
                if p.get("RoutingConfig"):
                    stack.warnings.append(f"{r.logical_id}: alias RoutingConfig (weighted versions) is not simulated")
                pc = (p.get("ProvisionedConcurrencyConfig") or {}).get("ProvisionedConcurrentExecutions")
                if pc is not None:
                    function.provisioned[str(p["Name"])] = int(_int(pc) or 0)
            elif r.type == "AWS::SQS::Queue":
                redrive = p.get("RedrivePolicy") or {}
                if isinstance(redrive, str):
                    redrive = json.loads(redrive)
                stack.queues[r.logical_id] = Queue(
                    logical_id=r.logical_id,
                    name=str(r.attributes["QueueName"]),
                    arn=str(r.attributes["Arn"]),
                    visibility_timeout_s=float(p.get("VisibilityTimeout", 30)),
                    dlq_arn=redrive.get("deadLetterTargetArn"),
                    max_receive_count=_int(redrive.get("maxReceiveCount")),
                )
            elif r.type == "AWS::DynamoDB::Table":
                throughput = p.get("ProvisionedThroughput") or {}
                mode = str(p.get("BillingMode", "PROVISIONED"))
                indexes = {
                    str(g["IndexName"]): (
                        float((g.get("ProvisionedThroughput") or {}).get("ReadCapacityUnits", 0)),
                        float((g.get("ProvisionedThroughput") or {}).get("WriteCapacityUnits", 0)),
                    )
                    for g in p.get("GlobalSecondaryIndexes") or []
                }
                stack.tables[r.logical_id] = Table(
                    r.logical_id,
                    r.physical_id,
                    mode,
                    float(throughput.get("ReadCapacityUnits", 0)),
                    float(throughput.get("WriteCapacityUnits", 0)),
                    indexes,
                )
            elif r.type == "AWS::StepFunctions::StateMachine":
                stack.state_machines[r.logical_id] = StateMachine(
                    r.logical_id, str(r.attributes["Name"]), _definition(r.logical_id, p, where)
                )
            elif r.type == "AWS::ApiGateway::RestApi" and isinstance(p.get("Body"), Mapping):
                stack.apis[r.logical_id] = Api(r.logical_id, _routes(p["Body"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{r.type} ({r.logical_id}): property missing or malformed: {exc}", where=where) from None
    for r in read.of_type("AWS::Lambda::EventSourceMapping"):
        p = r.properties
        source = str(p.get("EventSourceArn", ""))
        if ":sqs:" not in source:
            stack.warnings.append(f"{r.logical_id}: event source {source or '?'} is not SQS; not simulated")
            continue
        try:
            settings = settings_from(p, lenient=True)
        except LambdaApiError as exc:
            raise UserError(f"{r.logical_id}: {exc.message}", where=where) from None
        function, qualifier = stack.function_of_arn(str(p["FunctionName"]))
        stack.mappings.append(Mapping_(r.logical_id, source, function.logical_id, qualifier, settings))
    targets = {r.physical_id: r.properties for r in read.of_type("AWS::ApplicationAutoScaling::ScalableTarget")}
    for r in read.of_type("AWS::ApplicationAutoScaling::ScalingPolicy"):
        p = r.properties
        if p.get("PolicyType") != "TargetTrackingScaling":
            stack.warnings.append(f"{r.logical_id}: only target tracking is simulated ({p.get('PolicyType')})")
            continue
        target = targets.get(str(p.get("ScalingTargetId")))
        if target is None:
            stack.warnings.append(f"{r.logical_id}: its scalable target is not in the template; not simulated")
            continue
        minimum, maximum = int(_int(target["MinCapacity"]) or 0), int(_int(target["MaxCapacity"]) or 0)
        if minimum > maximum:
            raise UserError(
                f"{r.logical_id}: its scalable target's MinCapacity {minimum} is above MaxCapacity {maximum} "
                "(Application Auto Scaling refuses it: ValidationException)",
                where=where,
            )
        stack.scaling.append(
            ScalingPolicy(
                r.logical_id,
                str(target["ServiceNamespace"]),
                str(target["ResourceId"]),
                str(target["ScalableDimension"]),
                int(_int(target["MinCapacity"]) or 0),
                int(_int(target["MaxCapacity"]) or 0),
                dict(p["TargetTrackingScalingPolicyConfiguration"]),
            )
        )
    return stack


def _definition(logical_id: str, props: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The state machine's definition with DefinitionSubstitutions applied (as the local deploy does)."""
    if "DefinitionString" in props:
        text = str(props["DefinitionString"])
    elif "Definition" in props:
        text = json.dumps(props["Definition"])
    else:
        raise UserError(f"{logical_id}: a state machine needs Definition or DefinitionString", where=where)
    for key, value in (props.get("DefinitionSubstitutions") or {}).items():
        replacement = (
            value if isinstance(value, str) else json.dumps(value) if isinstance(value, dict | list) else str(value)
        )
        text = text.replace("${" + str(key) + "}", replacement)
    try:
        definition = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{logical_id}: the definition is not JSON after substitution: {exc}", where=where) from None
    if not isinstance(definition, dict):
        raise UserError(f"{logical_id}: the definition is not a JSON object", where=where)
    return definition


def _routes(body: Mapping[str, Any]) -> tuple[Resource, ...]:
    """OpenAPI/Swagger paths with x-amazon-apigateway-integration → the route table's resources."""
    resources = []
    for n, (path, operations) in enumerate(sorted((body.get("paths") or {}).items())):
        methods = {}
        for verb, operation in (operations or {}).items():
            if verb.lower() not in _HTTP_METHODS or not isinstance(operation, Mapping):
                continue
            http_method = ANY if verb.lower() == "x-amazon-apigateway-any-method" else verb.upper()
            raw = operation.get("x-amazon-apigateway-integration")
            integration = (
                Integration(
                    str(raw.get("type", "aws_proxy")).upper(),
                    str(raw.get("uri") or ""),
                    str(raw.get("httpMethod") or ""),
                )
                if isinstance(raw, Mapping)
                else None
            )
            methods[http_method] = Method(http_method, integration)
        resources.append(Resource(f"r{n}", str(path), methods))
    return tuple(resources)
