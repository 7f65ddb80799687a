"""The CloudFormation Query API (read side) for stacks deployed into the local cloud: DescribeStacks and friends."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from xml.sax.saxutils import escape

from lambdalab.deploy.deployer import DeployedResource, DeployedStack, ResourceStatus

LOG = logging.getLogger(__name__)

NAMESPACE = "http://cloudformation.amazonaws.com/doc/2010-05-15/"

Handler = Callable[[Mapping[str, str], Mapping[str, DeployedStack]], str]


class StackApiError(Exception):
    """An AWS Query API error: code, message, HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _element(name: str, value: object) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


def _members(name: str, items: Iterable[str]) -> str:
    return f"<{name}>" + "".join(f"<member>{item}</member>" for item in items) + f"</{name}>"


def _envelope(action: str, result: str) -> str:
    return (
        f'<{action}Response xmlns="{NAMESPACE}"><{action}Result>{result}</{action}Result>'
        f"<ResponseMetadata>{_element('RequestId', uuid.uuid4())}</ResponseMetadata></{action}Response>"
    )


def error_body(code: str, message: str) -> str:
    return (
        f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>Sender</Type>{_element("Code", code)}'
        f"{_element('Message', message)}</Error>{_element('RequestId', uuid.uuid4())}</ErrorResponse>"
    )


def _find(stacks: Mapping[str, DeployedStack], name_or_id: str) -> DeployedStack:
    for stack in stacks.values():
        if name_or_id in (stack.stack_name, stack.stack_id):
            return stack
    raise StackApiError("ValidationError", f"Stack with id {name_or_id} does not exist")


def _required(params: Mapping[str, str], key: str) -> str:
    value = params.get(key)
    if not value:
        raise StackApiError(
            "ValidationError",
            f"1 validation error detected: Value null at '{key}' failed to satisfy constraint: Member must not be null",
        )
    return value


def _created(stack: DeployedStack) -> list[DeployedResource]:
    return [r for r in stack.resources.values() if r.status is ResourceStatus.CREATE_COMPLETE]


def _parameter_text(stack: DeployedStack, key: str, value: object) -> str:
    if key in stack.no_echo_parameters:
        return "****"
    return ",".join(str(v) for v in value) if isinstance(value, list) else str(value)


def _stack_xml(stack: DeployedStack) -> str:
    parameters = (
        _element("ParameterKey", key) + _element("ParameterValue", _parameter_text(stack, key, v))
        for key, v in stack.parameters.items()
    )
    outputs = []
    for output in stack.outputs.values():
        text = _element("OutputKey", output.key) + _element("OutputValue", output.value)
        if output.description:
            text += _element("Description", output.description)
        if output.export_name:
            text += _element("ExportName", output.export_name)
        outputs.append(text)
    body = _element("StackId", stack.stack_id) + _element("StackName", stack.stack_name)
    if stack.description:
        body += _element("Description", stack.description)
    body += _members("Parameters", parameters)
    body += _element("CreationTime", _timestamp(stack.creation_time))
    body += _element("StackStatus", "CREATE_COMPLETE")
    body += _element("DisableRollback", "false")
    body += _members("Capabilities", [escape("CAPABILITY_IAM"), escape("CAPABILITY_AUTO_EXPAND")])
    body += _members("Outputs", outputs)
    body += _members("Tags", [])
    body += _element("EnableTerminationProtection", "false")
    return body


def _describe_stacks(params: Mapping[str, str], stacks: Mapping[str, DeployedStack]) -> str:
    name = params.get("StackName")
    selected = [_find(stacks, name)] if name else list(stacks.values())
    return _members("Stacks", (_stack_xml(stack) for stack in selected))


def _resource_core(stack: DeployedStack, resource: DeployedResource) -> str:
    return (
        _element("StackName", stack.stack_name)
        + _element("StackId", stack.stack_id)
        + _element("LogicalResourceId", resource.logical_id)
        + _element("PhysicalResourceId", resource.physical_id or "")
        + _element("ResourceType", resource.resource_type)
    )


def _list_stack_resources(params: Mapping[str, str], stacks: Mapping[str, DeployedStack]) -> str:
    stack = _find(stacks, _required(params, "StackName"))
    summaries = (
        _element("LogicalResourceId", r.logical_id)
        + _element("PhysicalResourceId", r.physical_id or "")
        + _element("ResourceType", r.resource_type)
        + _element("LastUpdatedTimestamp", _timestamp(r.timestamp))
        + _element("ResourceStatus", r.status.value)
        for r in _created(stack)
    )
    return _members("StackResourceSummaries", summaries)


def _describe_stack_resources(params: Mapping[str, str], stacks: Mapping[str, DeployedStack]) -> str:
    name = params.get("StackName")
    physical = params.get("PhysicalResourceId")
    logical = params.get("LogicalResourceId")
    if name:
        candidates = [_find(stacks, name)]
    elif physical:
        candidates = [s for s in stacks.values() if any(r.physical_id == physical for r in s.resources.values())]
        if not candidates:
            raise StackApiError("ValidationError", f"Stack for {physical} does not exist")
    else:
        raise StackApiError("ValidationError", "Either StackName or PhysicalResourceId must be specified.")
    items = []
    for stack in candidates:
        for r in _created(stack):
            if (logical and r.logical_id != logical) or (physical and r.physical_id != physical):
                continue
            items.append(
                _resource_core(stack, r)
                + _element("Timestamp", _timestamp(r.timestamp))
                + _element("ResourceStatus", r.status.value)
            )
    return _members("StackResources", items)


def _describe_stack_resource(params: Mapping[str, str], stacks: Mapping[str, DeployedStack]) -> str:
    stack = _find(stacks, _required(params, "StackName"))
    logical = _required(params, "LogicalResourceId")
    resource = stack.resources.get(logical)
    if resource is None or resource.status is not ResourceStatus.CREATE_COMPLETE:
        raise StackApiError("ValidationError", f"Resource {logical} does not exist for stack {stack.stack_name}")
    detail = (
        _resource_core(stack, resource)
        + _element("LastUpdatedTimestamp", _timestamp(resource.timestamp))
        + _element("ResourceStatus", resource.status.value)
    )
    return f"<StackResourceDetail>{detail}</StackResourceDetail>"


def _get_template(params: Mapping[str, str], stacks: Mapping[str, DeployedStack]) -> str:
    stack = _find(stacks, _required(params, "StackName"))
    stage = params.get("TemplateStage", "Original")
    if stage not in ("Original", "Processed"):
        raise StackApiError("ValidationError", f"TemplateStage {stage} is not one of Original, Processed")
    body = stack.template_body if stage == "Original" else json.dumps(stack.processed_template, indent=2)
    return _element("TemplateBody", body) + _members("StagesAvailable", ["Original", "Processed"])


def _list_stacks(params: Mapping[str, str], stacks: Mapping[str, DeployedStack]) -> str:
    filters = {v for k, v in params.items() if k.startswith("StackStatusFilter.member.")}
    if filters and "CREATE_COMPLETE" not in filters:
        return _members("StackSummaries", [])
    summaries = []
    for stack in stacks.values():
        text = _element("StackId", stack.stack_id) + _element("StackName", stack.stack_name)
        if stack.description:
            text += _element("TemplateDescription", stack.description)
        text += _element("CreationTime", _timestamp(stack.creation_time)) + _element("StackStatus", "CREATE_COMPLETE")
        summaries.append(text)
    return _members("StackSummaries", summaries)


def _list_exports(params: Mapping[str, str], stacks: Mapping[str, DeployedStack]) -> str:
    exports = (
        _element("ExportingStackId", stack.stack_id)
        + _element("Name", output.export_name)
        + _element("Value", output.value)
        for stack in stacks.values()
        for output in stack.outputs.values()
        if output.export_name
    )
    return _members("Exports", exports)


def _describe_stack_events(params: Mapping[str, str], stacks: Mapping[str, DeployedStack]) -> str:
    """One CREATE_COMPLETE event per created resource and one for the stack, newest first, as AWS lists them."""
    stack = _find(stacks, _required(params, "StackName"))
    events = [
        (stack.creation_time, stack.stack_name, stack.stack_id, "AWS::CloudFormation::Stack"),
        *((r.timestamp, r.logical_id, r.physical_id or "", r.resource_type) for r in _created(stack)),
    ]
    members = []
    for moment, logical_id, physical_id, kind in sorted(events, key=lambda e: e[0], reverse=True):
        members.append(
            _element("StackId", stack.stack_id)
            + _element("EventId", f"{logical_id}-CREATE_COMPLETE-{_timestamp(moment)}")
            + _element("StackName", stack.stack_name)
            + _element("LogicalResourceId", logical_id)
            + _element("PhysicalResourceId", physical_id)
            + _element("ResourceType", kind)
            + _element("Timestamp", _timestamp(moment))
            + _element("ResourceStatus", "CREATE_COMPLETE")
        )
    return _members("StackEvents", members)


ACTIONS: dict[str, Handler] = {
    "DescribeStackEvents": _describe_stack_events,
    "DescribeStacks": _describe_stacks,
    "ListStackResources": _list_stack_resources,
    "DescribeStackResources": _describe_stack_resources,
    "DescribeStackResource": _describe_stack_resource,
    "GetTemplate": _get_template,
    "ListStacks": _list_stacks,
    "ListExports": _list_exports,
}


def handle(action: str, params: dict[str, str], stacks: Mapping[str, DeployedStack]) -> tuple[int, str]:
    """Answer one CloudFormation Query API call: (HTTP status, XML body). Write actions are refused."""
    handler = ACTIONS.get(action)
    if handler is None:
        LOG.info("cloudformation %s: not supported locally", action)
        message = (
            f"{action} is not supported by the local cloud: stacks are created by `lambdalab up`; "
            f"supported: {', '.join(sorted(ACTIONS))}"
        )
        return 400, error_body("InvalidAction", message)
    try:
        return 200, _envelope(action, handler(params, stacks))
    except StackApiError as exc:
        return exc.status, error_body(exc.code, exc.message)
