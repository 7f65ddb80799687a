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

from lambdalab.awslambda.control import LambdaControl
from lambdalab.awslambda.exceptions import LambdaApiError
from lambdalab.deploy.intrinsics import (
    NO_VALUE,
    IntrinsicError,
    MissingResource,
    Resolver,
    ResourceFacts,
    Scope,
    pseudo_parameters,
)
from lambdalab.deploy.resources import APPLIED_PROPERTIES, PROVISIONERS, NotCreated, ProvisionContext, new_stack_id
from lambdalab.deploy.template import (
    SAMCONFIG_NAME,
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
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))

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
    creation_time: datetime = field(default_factory=lambda: datetime.now(UTC))

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
            raise UserError(f"circular dependency between resources: {' → '.join(cycle)}")
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
                raise UserError(f"Resources.{logical_id}.DependsOn: no resource named {name!r}")
        dependencies[logical_id] = referenced
    return _Plan(resolver=resolver, active=active, dependencies=dependencies)


def plan_resources(template: Mapping[str, Any], scope: Scope) -> _Plan:
    """The active resources (conditions applied), their dependencies and the resolver: the public name for callers
    that read a template without deploying it (lambdalab.deploy.readonly)."""
    return _plan(template, scope)


def _create(ctx: ProvisionContext, plan: _Plan, logical_id: str) -> DeployedResource:
    resource = plan.active[logical_id]
    kind = str(resource["Type"])
    provisioner = PROVISIONERS.get(kind)
    if provisioner is None:
        message = f"{kind} ({logical_id}): not supported by the local cloud; not created"
        return DeployedResource(logical_id, kind, ResourceStatus.NOT_SUPPORTED, reason=message)
    applied = APPLIED_PROPERTIES.get(kind)
    raw = resource.get("Properties") or {}
    if not isinstance(raw, dict):
        raise UserError("Properties must be a mapping", where=f"Resources.{logical_id}")
    properties: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            resolved = plan.resolver.resolve(value, f"Properties.{key}")
        except MissingResource as exc:
            if applied is not None and key not in applied:
                # The local cloud would not apply this property anyway (a function's Layers, say): drop it and go on.
                ctx.warnings.append(
                    f"{kind} ({logical_id}): property {key} refers to {exc.logical_id}, which was not created; "
                    "it is not applied"
                )
                continue
            message = f"{kind} ({logical_id}): not created because it refers to {exc.logical_id}, which was not created"
            return DeployedResource(logical_id, kind, ResourceStatus.SKIPPED, reason=message)
        except IntrinsicError as exc:
            raise UserError(exc.message, where=f"Resources.{logical_id}.{exc.path}") from None
        if resolved is not NO_VALUE:
            properties[key] = resolved
    LOG.info("creating %s (%s)", logical_id, kind)
    try:
        created = provisioner(ctx, logical_id, properties)
    except NotCreated as exc:
        message = f"{kind} ({logical_id}): {exc}; not created"
        return DeployedResource(logical_id, kind, ResourceStatus.NOT_SUPPORTED, reason=message, properties=properties)
    except UserError as exc:
        raise UserError(exc.message, where=f"Resources.{logical_id} ({kind})") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"property missing or malformed: {exc}", where=f"Resources.{logical_id} ({kind})") from exc
    except LambdaApiError as exc:  # the local Lambda service refused it, as AWS would
        raise UserError(f"{exc.code}: {exc.message}", where=f"Resources.{logical_id} ({kind})") from None
    plan.resolver.scope.resources[logical_id] = ResourceFacts(created.physical_id, created.attributes)
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
    )


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
) -> DeployedStack:
    """Deploy `template_path` into the local cloud and describe the result.

    Parameter values: `parameter_overrides` (command line) → samconfig.toml → the template's Default.
    Stack name: `stack_name` → samconfig.toml's stack_name → the template folder's name.
    """
    template_path = Path(template_path)
    samconfig = read_samconfig(samconfig_path or template_path.resolve().parent / SAMCONFIG_NAME)
    name = stack_name or samconfig.stack_name or _default_stack_name(template_path)
    if not _STACK_NAME.fullmatch(name):
        raise UserError(
            f"stack name {name!r} must start with a letter and hold only letters, digits and hyphens (at most 128)"
        )
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
    stack_id = new_stack_id(region, account_id, name)
    scope = Scope(
        parameters=parameters,
        pseudo=pseudo_parameters(region=region, account_id=account_id, stack_name=name, stack_id=stack_id),
        mappings=template.get("Mappings") or {},
        condition_definitions=template.get("Conditions") or {},
        region=region,
    )
    plan = _plan(template, scope)
    ctx = ProvisionContext(
        stack_name=name,
        region=region,
        account_id=account_id,
        endpoint_url=endpoint_url,
        lambda_control=lambda_control,
        code_dirs=loaded.code_dirs,
        types=dict(plan.resolver.scope.declared_resources),
    )
    warnings = list(loaded.warnings)
    resources: dict[str, DeployedResource] = {}
    for logical_id in order_resources(plan.dependencies):
        deployed = _create(ctx, plan, logical_id)
        resources[logical_id] = deployed
        if deployed.status is not ResourceStatus.CREATE_COMPLETE:
            LOG.warning("%s", deployed.reason)
            warnings.append(deployed.reason)
    warnings.extend(ctx.warnings)
    outputs = _outputs(template, plan.resolver, warnings)
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
    )
