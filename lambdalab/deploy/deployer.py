"""Deploy a SAM/CloudFormation template into the local cloud: resolve, order by dependency, create each resource."""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lambdalab.awslambda.core.control import LambdaControl
from lambdalab.awslambda.core.exceptions import LambdaApiError
from lambdalab.clock import Clock
from lambdalab.deploy.intrinsics import (
    NO_VALUE,
    PLACEHOLDER_PREFIX,
    IntrinsicError,
    MissingResource,
    Resolver,
    ResourceFacts,
    Scope,
    intrinsic_name,
    pseudo_parameters,
)
from lambdalab.deploy.resources import APPLIED_PROPERTIES, PROVISIONERS, NotCreated, ProvisionContext, new_stack_id
from lambdalab.deploy.template import (
    LOCAL_CODE_BUCKET,
    SAMCONFIG_NAME,
    SERVERLESS_REPO_PLACEHOLDER,
    LoadedTemplate,
    load_document,
    load_template,
    parse_parameter_overrides,
    read_samconfig,
    resolve_parameters,
)
from lambdalab.errors import UserError

LOG = logging.getLogger(__name__)

__all__ = ["DeployedResource", "DeployedStack", "ResourceStatus", "StackOutput", "deploy", "parse_parameter_overrides"]

_STACK_NAME = re.compile(r"[A-Za-z][-A-Za-z0-9]{0,127}")
# Keys of a resource that are not inspected for references (DependsOn is read separately).
_RESOURCE_META = ("Type", "DependsOn", "Condition", "DeletionPolicy", "UpdateReplacePolicy", "Metadata")


class ResourceStatus(enum.Enum):
    """What happened to a resource of the template during the local deploy."""

    CREATE_COMPLETE = "CREATE_COMPLETE"
    NOT_SUPPORTED = "NOT_SUPPORTED"  # the local cloud cannot create this type (or this configuration of it)
    SKIPPED = "SKIPPED"  # it refers to a resource that was not created


@dataclass
class DeployedResource:
    logical_id: str
    resource_type: str
    status: ResourceStatus
    physical_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    properties: dict[str, Any] = field(default_factory=dict)  # resolved, as given to the provisioner
    recorded: dict[str, Any] = field(default_factory=dict)  # kept with the stack but not enforced by the local cloud
    timestamp: datetime = field(kw_only=True)  # when it was created (the deploy's epoch clock)

    @property
    def type(self) -> str:
        """The CloudFormation type (the same as resource_type)."""
        return self.resource_type


@dataclass
class StackOutput:
    key: str
    value: str
    description: str = ""
    export_name: str | None = None


@dataclass
class DeployedStack:
    """A stack in the local cloud, as DescribeStacks and ListStackResources report it."""

    stack_name: str
    stack_id: str
    region: str
    parameters: dict[str, Any]
    resources: dict[str, DeployedResource]
    outputs: dict[str, StackOutput]
    warnings: list[str]
    known_differences: list[str]
    description: str = ""
    template_body: str = ""
    processed_template: dict[str, Any] = field(default_factory=dict)  # after the SAM transform
    no_echo_parameters: frozenset[str] = frozenset()  # shown as **** by DescribeStacks, as AWS does
    template_path: Path | None = None
    creation_time: datetime = field(kw_only=True)  # the deploy's epoch clock

    def count(self, status: ResourceStatus) -> int:
        return sum(resource.status is status for resource in self.resources.values())

    def summary(self) -> str:
        """`12 resources created, 2 not supported by the local cloud, 1 skipped; 4 warnings`, as `lambdalab up`
        prints it for each stack."""
        parts = [f"{self.count(ResourceStatus.CREATE_COMPLETE)} resources created"]
        if self.count(ResourceStatus.NOT_SUPPORTED):
            parts.append(f"{self.count(ResourceStatus.NOT_SUPPORTED)} not supported by the local cloud")
        if self.count(ResourceStatus.SKIPPED):
            parts.append(f"{self.count(ResourceStatus.SKIPPED)} skipped (attached to one not created)")
        text = ", ".join(parts)
        if self.warnings:
            text += f"; {len(self.warnings)} warning{'s' if len(self.warnings) != 1 else ''}"
        return text

    def exports(self) -> dict[str, str]:
        """Export name → value of every output that exports one (what Fn::ImportValue reads)."""
        return {o.export_name: o.value for o in self.outputs.values() if o.export_name is not None}

    def physical_id(self, logical_id: str) -> str:
        resource = self.resources[logical_id]
        if resource.physical_id is None:
            raise KeyError(f"{logical_id} was not created: {resource.reason}")
        return resource.physical_id


def _default_stack_name(template_path: Path) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9-]", "-", template_path.resolve().parent.name).strip("-")
    return cleaned if cleaned and cleaned[0].isalpha() else "lambdalab"


def _depends_on(resource: Mapping[str, Any], logical_id: str) -> list[str]:
    raw = resource.get("DependsOn", [])
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return list(raw)
    raise UserError(f"Resources.{logical_id}.DependsOn must be a name or a list of names")


def order_resources(dependencies: Mapping[str, set[str]]) -> list[str]:
    """Logical ids so that each comes after everything it depends on; ties keep the given order.

    A cycle is a UserError naming it (A → B → A).
    """
    order: list[str] = []
    state: dict[str, str] = {}  # "visiting" | "done"
    path: list[str] = []

    def visit(node: str) -> None:
        mark = state.get(node)
        if mark == "done":
            return
        if mark == "visiting":
            cycle = [*path[path.index(node) :], node]
            members = ", ".join(sorted(set(cycle)))
            raise UserError(
                f"Template format error: Circular dependency between resources: [{members}] ({' → '.join(cycle)})"
            )
        state[node] = "visiting"
        path.append(node)
        for dependency in sorted(dependencies.get(node, ()), key=list(dependencies).index):
            visit(dependency)
        path.pop()
        state[node] = "done"
        order.append(node)

    for node in dependencies:
        visit(node)
    return order


@dataclass
class _Plan:
    resolver: Resolver
    active: dict[str, dict[str, Any]]
    dependencies: dict[str, set[str]]


def _plan(template: Mapping[str, Any], scope: Scope) -> _Plan:
    resolver = Resolver(scope)
    try:
        resolver.all_conditions()
    except IntrinsicError as exc:
        raise UserError(exc.message, where=exc.path or "Conditions") from None
    resources = template.get("Resources") or {}
    active: dict[str, dict[str, Any]] = {}
    for logical_id, resource in resources.items():
        if logical_id.startswith("Fn::ForEach"):
            raise UserError(
                "Fn::ForEach (AWS::LanguageExtensions) is not supported by the local cloud",
                where=f"Resources.{logical_id}",
            )
        if not isinstance(resource, dict) or "Type" not in resource:
            raise UserError(f"Resources.{logical_id} needs a Type")
        condition = resource.get("Condition")
        if condition is not None:
            try:
                if not resolver.condition(str(condition), f"Resources.{logical_id}.Condition"):
                    LOG.info("%s: Condition %s is false; not created", logical_id, condition)
                    scope.inactive_resources[logical_id] = str(condition)
                    continue
            except IntrinsicError as exc:
                raise UserError(exc.message, where=exc.path) from None
        active[logical_id] = resource
    scope.declared_resources = {logical_id: str(resource["Type"]) for logical_id, resource in active.items()}
    dependencies: dict[str, set[str]] = {}
    for logical_id, resource in active.items():
        body = {k: v for k, v in resource.items() if k not in _RESOURCE_META}
        referenced = {name for name in resolver.references(body) if name in active}
        for name in _depends_on(resource, logical_id):
            if name in active:
                referenced.add(name)
            elif name not in resources:
                raise UserError(
                    f"Template format error: Unresolved resource dependencies [{name}] in the Resources block of "
                    "the template",
                    where=f"Resources.{logical_id}.DependsOn",
                )
        dependencies[logical_id] = referenced
    return _Plan(resolver=resolver, active=active, dependencies=dependencies)


# The properties that say which resource a resource is attached to (or is about). When the referenced resource was
# not created, creating this one with an unresolved name would make something that stands for nothing, so it is
# skipped; a reference anywhere else (an environment variable, a policy, a tag, a definition) is a mere mention and
# is left as the unresolved name.
_ATTACHED_TO: dict[str, frozenset[str]] = {
    "AWS::Lambda::Permission": frozenset({"FunctionName"}),
    "AWS::Lambda::EventSourceMapping": frozenset({"FunctionName", "EventSourceArn"}),
    "AWS::Lambda::Version": frozenset({"FunctionName"}),
    "AWS::Lambda::Alias": frozenset({"FunctionName", "FunctionVersion"}),
    "AWS::Lambda::EventInvokeConfig": frozenset({"FunctionName"}),
    "AWS::SNS::Subscription": frozenset({"TopicArn", "Endpoint"}),
    "AWS::SQS::QueuePolicy": frozenset({"Queues"}),
    "AWS::IAM::Policy": frozenset({"Roles", "Users", "Groups"}),
    "AWS::ApiGateway::Deployment": frozenset({"RestApiId"}),
    "AWS::ApiGateway::Stage": frozenset({"RestApiId", "DeploymentId"}),
    "AWS::ApiGateway::Resource": frozenset({"RestApiId", "ParentId"}),
    "AWS::ApiGateway::Method": frozenset({"RestApiId", "ResourceId"}),
    "AWS::ApplicationAutoScaling::ScalableTarget": frozenset({"ResourceId"}),
    "AWS::ApplicationAutoScaling::ScalingPolicy": frozenset({"ScalingTargetId", "ResourceId"}),
}


def _names(keys: list[str]) -> str:
    return ("property " if len(keys) == 1 else "properties ") + ", ".join(keys)


def _not_supported(kind: str, logical_id: str, resource: Mapping[str, Any]) -> str:
    if kind == "AWS::CloudFormation::Stack":
        url = str((resource.get("Properties") or {}).get("TemplateURL", ""))
        detail = (
            f" (this one is the AWS::Serverless::Application {logical_id}, which the local cloud never fetches)"
            if url.startswith(SERVERLESS_REPO_PLACEHOLDER)
            else ""
        )
        return f"{kind} ({logical_id}): nested stacks are not supported by the local cloud{detail}; not created"
    return f"{kind} ({logical_id}): not supported by the local cloud; not created"


def plan_resources(template: Mapping[str, Any], scope: Scope) -> _Plan:
    """The active resources (conditions applied), their dependencies and the resolver: the public name for callers
    that read a template without deploying it (lambdalab.deploy.readonly)."""
    return _plan(template, scope)


def _at(epoch: Clock) -> datetime:
    return datetime.fromtimestamp(epoch.now(), UTC)


def _create(ctx: ProvisionContext, plan: _Plan, logical_id: str, epoch: Clock) -> DeployedResource:
    resource = plan.active[logical_id]
    kind = str(resource["Type"])
    provisioner = PROVISIONERS.get(kind)
    if provisioner is None:
        message = _not_supported(kind, logical_id, resource)
        return DeployedResource(logical_id, kind, ResourceStatus.NOT_SUPPORTED, reason=message, timestamp=_at(epoch))
    applied = APPLIED_PROPERTIES.get(kind)
    raw = resource.get("Properties") or {}
    if intrinsic_name(raw) is not None:  # `Properties: !If [Cond, {...}, {...}]`
        try:
            raw = plan.resolver.resolve(raw, "Properties")
        except IntrinsicError as exc:
            raise UserError(exc.message, where=f"Resources.{logical_id}.{exc.path}") from None
        raw = {} if raw is NO_VALUE else raw
    if not isinstance(raw, dict):
        raise UserError("Properties must be a mapping", where=f"Resources.{logical_id}")
    properties: dict[str, Any] = {}
    mentions: dict[str, list[str]] = {}  # logical id not created → the properties that refer to it
    resolver = plan.resolver
    for key, value in raw.items():
        resolver.lenient, resolver.missing = True, []
        try:
            resolved = resolver.resolve(value, f"Properties.{key}")
        except IntrinsicError as exc:
            raise UserError(exc.message, where=f"Resources.{logical_id}.{exc.path}") from None
        finally:
            resolver.lenient = False
        if resolver.missing:
            if applied is not None and key not in applied:
                # The local cloud would not apply this property anyway (a function's Layers, say): drop it and go on.
                ctx.warnings.append(
                    f"{kind} ({logical_id}): property {key} refers to {', '.join(dict.fromkeys(resolver.missing))}, "
                    "which was not created; it is not applied"
                )
                continue
            for missing in dict.fromkeys(resolver.missing):
                mentions.setdefault(missing, []).append(key)
        if resolved is not NO_VALUE:
            properties[key] = resolved
    types = resolver.scope.declared_resources
    attached = _ATTACHED_TO.get(kind, frozenset())
    for missing, keys in mentions.items():
        if attached.intersection(keys):
            message = (
                f"{kind} ({logical_id}): not created because its {_names(keys)} refers to {missing} "
                f"({types.get(missing)}), which was not created"
            )
            return DeployedResource(
                logical_id, kind, ResourceStatus.SKIPPED, reason=message, properties=properties, timestamp=_at(epoch)
            )
    LOG.info("creating %s (%s)", logical_id, kind)
    where = f"Resources.{logical_id} ({kind})"
    try:
        created = provisioner(ctx, logical_id, properties)
    except NotCreated as exc:
        message = f"{kind} ({logical_id}): {exc}; not created"
        return DeployedResource(
            logical_id, kind, ResourceStatus.NOT_SUPPORTED, reason=message, properties=properties, timestamp=_at(epoch)
        )
    except (UserError, KeyError, TypeError, ValueError, LambdaApiError) as exc:
        if isinstance(exc, UserError):
            error = UserError(exc.message, where=where)
        elif isinstance(exc, LambdaApiError):  # the local Lambda service refused it, as AWS would
            error = UserError(f"{exc.code}: {exc.message}", where=where)
        else:
            error = UserError(f"property missing or malformed: {exc}", where=where)
        if not mentions:
            raise error from (exc if isinstance(exc, (KeyError, TypeError, ValueError)) else None)
        # It failed with an unresolved name in it: the resource it needs was not created, which is the cause to name.
        missing = ", ".join(f"{m} ({types.get(m)})" for m in mentions)
        message = f"{kind} ({logical_id}): not created because it refers to {missing}, which was not created ({error})"
        return DeployedResource(
            logical_id, kind, ResourceStatus.SKIPPED, reason=message, properties=properties, timestamp=_at(epoch)
        )
    resolver.scope.resources[logical_id] = ResourceFacts(created.physical_id, created.attributes)
    for missing, keys in mentions.items():
        ctx.warnings.append(
            f"{kind} ({logical_id}): {_names(keys)} {'refers' if len(keys) == 1 else 'refer'} to {missing} "
            f"({types.get(missing)}), which was not created; the reference is left as the unresolved name "
            f"{PLACEHOLDER_PREFIX}{missing}"
        )
    ignored = sorted(set(properties) - applied) if applied is not None else []
    if ignored:
        ctx.warn_ignored(logical_id, ignored)
    return DeployedResource(
        logical_id,
        kind,
        ResourceStatus.CREATE_COMPLETE,
        physical_id=created.physical_id,
        attributes=created.attributes,
        properties=properties,
        recorded=ctx.recorded.get(logical_id, {}),
        timestamp=_at(epoch),
    )


_ABOUT_RESOURCE = re.compile(
    r"^(?P<kind>[A-Za-z0-9]+::[A-Za-z0-9]+::[A-Za-z0-9]+) \((?P<ids>[^()]+)\): (?P<rest>.+)$", re.S
)


def group_warnings(warnings: list[str]) -> list[str]:
    """Each warning once; warnings that say the same about several resources of one type become one line naming
    them all: `AWS::Events::Rule (A, B): not supported by the local cloud; not created`."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for warning in warnings:
        match = _ABOUT_RESOURCE.match(warning)
        key = (match["kind"], match["rest"]) if match else ("", warning)
        ids = grouped.setdefault(key, [])
        for logical_id in match["ids"].split(", ") if match else ():
            if logical_id not in ids:
                ids.append(logical_id)
    return [f"{kind} ({', '.join(ids)}): {rest}" if kind else rest for (kind, rest), ids in grouped.items()]


def _outputs(template: Mapping[str, Any], resolver: Resolver, warnings: list[str]) -> dict[str, StackOutput]:
    outputs: dict[str, StackOutput] = {}
    for key, output in (template.get("Outputs") or {}).items():
        if not isinstance(output, dict) or "Value" not in output:
            raise UserError(f"Outputs.{key} needs a Value")
        condition = output.get("Condition")
        try:
            if condition is not None and not resolver.condition(str(condition), f"Outputs.{key}.Condition"):
                continue
            value = resolver.resolve(output["Value"], f"Outputs.{key}.Value")
            export = output.get("Export", {}).get("Name") if isinstance(output.get("Export"), dict) else None
            export_name = resolver.resolve(export, f"Outputs.{key}.Export.Name") if export is not None else None
        except MissingResource as exc:
            warnings.append(f"output {key}: not set because it refers to {exc.logical_id}, which was not created")
            continue
        except IntrinsicError as exc:
            raise UserError(exc.message, where=exc.path) from None
        text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
        outputs[key] = StackOutput(
            key, text, str(output.get("Description", "")), str(export_name) if export_name is not None else None
        )
    return outputs


def _refuse_taken_exports(
    template: Mapping[str, Any], resolver: Resolver, exported_by: Mapping[str, str], *, early: bool
) -> None:
    """An export name another stack already exports fails the stack, as in CloudFormation. Checked before anything
    is created for the names that need no resource (`!Sub ${AWS::StackName}-Arn`), and again at the end."""
    for key, output in (template.get("Outputs") or {}).items():
        export = output.get("Export") if isinstance(output, dict) else None
        if not isinstance(export, dict) or "Name" not in export:
            continue
        resolver.lenient, resolver.missing = early, []
        try:
            name = resolver.resolve(export["Name"], f"Outputs.{key}.Export.Name")
        except IntrinsicError:
            continue  # reported with its output, at the end
        finally:
            resolver.lenient = False
        if resolver.missing or not isinstance(name, str):
            continue
        if name in exported_by:
            raise UserError(
                f"Export with name {name} is already exported by stack {exported_by[name]}",
                where=f"Outputs.{key}.Export.Name",
            )


def deploy(
    template_path: Path,
    *,
    lambda_control: LambdaControl,
    endpoint_url: str,
    region: str,
    account_id: str,
    stack_name: str | None = None,
    parameter_overrides: Mapping[str, str] | None = None,
    samconfig_path: Path | None = None,
    other_stacks: Mapping[str, DeployedStack] | None = None,
    epoch: Clock,
) -> DeployedStack:
    """Deploy `template_path` into the local cloud and describe the result.

    Parameter values: `parameter_overrides` (command line) → samconfig.toml → the template's Default.
    Stack name: `stack_name` → samconfig.toml's stack_name → the template folder's name.
    `other_stacks`: the stacks already in this local cloud, whose exports Fn::ImportValue reads; a stack of the same
    name, or an export name one of them already exports, is refused as CloudFormation refuses them.
    `epoch`: the local cloud's epoch clock, for the stack's and its resources' times.
    """
    template_path = Path(template_path)
    samconfig = read_samconfig(samconfig_path or template_path.resolve().parent / SAMCONFIG_NAME)
    name = stack_name or samconfig.stack_name or _default_stack_name(template_path)
    if not _STACK_NAME.fullmatch(name):
        raise UserError(
            f"stack name {name!r} must start with a letter and hold only letters, digits and hyphens (at most 128)"
        )
    parse_warnings: list[str] = []
    others = dict(other_stacks or {})
    if name in others:
        raise UserError(f"AlreadyExistsException: Stack [{name}] already exists")
    exported_by = {export: stack.stack_name for stack in others.values() for export in stack.exports()}
    document = load_document(template_path, parse_warnings)
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
    stack_id = new_stack_id(region, account_id, name)
    scope = Scope(
        parameters=parameters,
        pseudo=pseudo_parameters(region=region, account_id=account_id, stack_name=name, stack_id=stack_id),
        mappings=template.get("Mappings") or {},
        condition_definitions=template.get("Conditions") or {},
        region=region,
        exports={export: value for stack in others.values() for export, value in stack.exports().items()},
    )
    plan = _plan(template, scope)
    _refuse_taken_exports(template, plan.resolver, exported_by, early=True)
    ctx = ProvisionContext(
        stack_name=name,
        region=region,
        account_id=account_id,
        endpoint_url=endpoint_url,
        lambda_control=lambda_control,
        code_dirs=loaded.code_dirs,
        template_dir=loaded.path.parent,
        metadata=_metadata(loaded),
        definition_files=loaded.definition_files,
        types=dict(plan.resolver.scope.declared_resources),
    )
    warnings = [*parse_warnings, *loaded.warnings]
    resources: dict[str, DeployedResource] = {}
    for logical_id in order_resources(plan.dependencies):
        deployed = _create(ctx, plan, logical_id, epoch)
        resources[logical_id] = deployed
        if deployed.status is not ResourceStatus.CREATE_COMPLETE:
            LOG.info("%s", deployed.reason)  # the caller prints the warnings; logging them too would say it twice
            warnings.append(deployed.reason)
    warnings.extend(ctx.warnings)
    _refuse_taken_exports(template, plan.resolver, exported_by, early=False)
    outputs = _outputs(template, plan.resolver, warnings)
    warnings = group_warnings(warnings)
    LOG.info(
        "stack %s: %d resources created, %d not",
        name,
        sum(r.status is ResourceStatus.CREATE_COMPLETE for r in resources.values()),
        sum(r.status is not ResourceStatus.CREATE_COMPLETE for r in resources.values()),
    )
    return DeployedStack(
        stack_name=name,
        stack_id=stack_id,
        region=region,
        parameters=parameters,
        resources=resources,
        outputs=outputs,
        warnings=warnings,
        known_differences=list(ctx.known_differences),
        description=str(loaded.original.get("Description", "")),
        template_body=template_path.read_text(encoding="utf-8"),
        processed_template=template,
        no_echo_parameters=frozenset(
            key
            for key, declaration in (document.get("Parameters") or {}).items()
            if isinstance(declaration, dict) and str(declaration.get("NoEcho", "false")).lower() == "true"
        ),
        template_path=template_path,
        creation_time=_at(epoch),
    )


def _metadata(loaded: LoadedTemplate) -> dict[str, dict[str, Any]]:
    """Each transformed resource's Metadata; a resource SAM generated from one with local code (a layer's
    LayerVersion, named with a hash) gets the Metadata of the SAM resource it came from (BuildMethod lives there)."""
    original = loaded.original.get("Resources") or {}
    found: dict[str, dict[str, Any]] = {}
    for logical_id, resource in (loaded.transformed.get("Resources") or {}).items():
        if not isinstance(resource, dict):
            continue
        metadata = resource.get("Metadata")
        props = resource.get("Properties") or {}
        code = (props.get("Content") or props.get("Code")) if isinstance(props, dict) else None
        if not metadata and isinstance(code, dict) and code.get("S3Bucket") == LOCAL_CODE_BUCKET:
            source = original.get(str(code.get("S3Key")))
            metadata = source.get("Metadata") if isinstance(source, dict) else None
        if isinstance(metadata, dict):
            found[logical_id] = metadata
    return found
