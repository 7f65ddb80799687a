"""One provisioner per CloudFormation resource type: Lambda through LambdaControl, the rest through boto3 to moto."""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import string
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore import xform_name
from botocore.exceptions import ClientError

from lambdalab import constants
from lambdalab.awsclients import local_client
from lambdalab.awslambda.core.control import EventInvokeConfig, FunctionSpec, LambdaControl, LayerSpec
from lambdalab.awslambda.core.exceptions import LambdaApiError
from lambdalab.awslambda.runtime.interpreters import UnsupportedRuntime, find_interpreter
from lambdalab.deploy.cfnyaml import TemplateFormatError, parse_text
from lambdalab.deploy.template import write_inline_code
from lambdalab.errors import UserError
from lambdalab.logs.function import LoggingConfig
from lambdalab.stepfunctions.executable import difference_message, local_limits, unsupported_message
from lambdalab.stepfunctions.validation import definition_problems

LOG = logging.getLogger(__name__)

_RANDOM_ALPHABET = string.ascii_uppercase + string.digits
_client_lock = threading.Lock()
_client_cache: dict[tuple[str, str, str], Any] = {}


def shared_client(service: str, endpoint_url: str, region: str) -> Any:
    """One client per service, endpoint and Region for every deploy of the process: making a boto3 client costs about
    0.2 s of CPU (most of a small stack's deploy); botocore clients are thread-safe once made."""
    key = (service, endpoint_url, region)
    with _client_lock:
        if key not in _client_cache:
            _client_cache[key] = local_client(service, endpoint_url, region)
        return _client_cache[key]


@dataclass
class Created:
    """A created resource: what Ref returns and what GetAtt can read."""

    physical_id: str
    attributes: dict[str, Any] = field(default_factory=dict)


class NotCreated(Exception):
    """The resource was accepted but cannot be created locally; the message is the warning shown to the user."""


@dataclass
class ProvisionContext:
    """What every provisioner needs: where the local cloud is and who the stack is."""

    stack_name: str
    region: str
    account_id: str
    endpoint_url: str
    lambda_control: LambdaControl
    code_dirs: Mapping[str, Path]
    template_dir: Path | None = None  # where `sam build` output would be (.aws-sam/build)
    metadata: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # logical id → its (SAM) Metadata
    definition_files: Mapping[str, Path] = field(default_factory=dict)  # placeholder S3 key → local definition file
    known_differences: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    recorded: dict[str, dict[str, Any]] = field(default_factory=dict)  # logical id → what is kept but not enforced
    types: dict[str, str] = field(default_factory=dict)  # logical id → resource type
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = shared_client(service, self.endpoint_url, self.region)
        return self._clients[service]

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account_id}:{resource}"

    def warn_ignored(self, logical_id: str, names: list[str]) -> None:
        kind = self.types.get(logical_id, "resource")
        self.warnings.append(f"{kind} ({logical_id}): properties {', '.join(names)} are not applied locally")

    def note_difference(self, text: str) -> None:
        if text not in self.known_differences:
            self.known_differences.append(text)


def physical_name(stack_name: str, logical_id: str, *, limit: int, lowercase: bool = False, suffix: str = "") -> str:
    """A name as CloudFormation makes one when the template gives none: `<stack>-<LogicalId>-<RANDOM13>`.

    The stack and logical-id parts are shortened to fit the service's limit (the random part and suffix are kept).
    """
    random_part = "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(13))
    budget = limit - len(random_part) - len(suffix) - 2
    stack, logical = stack_name, logical_id
    if len(stack) + len(logical) > budget:
        logical = logical[: max(budget - len(stack), budget // 2)]
        stack = stack[: budget - len(logical)]
    name = f"{stack}-{logical}-{random_part}{suffix}"
    return name.lower() if lowercase else name


def as_int(value: Any) -> int:
    return int(float(value)) if isinstance(value, str) else int(value)


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return constants.parse_bool(value)
    return bool(value)


def tags_dict(tags: Any) -> dict[str, str]:
    """CloudFormation tags come as [{Key, Value}] (most types) or {k: v} (SAM, some types)."""
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    if isinstance(tags, list):
        return {str(t["Key"]): str(t.get("Value", "")) for t in tags if isinstance(t, dict) and "Key" in t}
    return {}


def tags_list(tags: Any) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags_dict(tags).items()]


def json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _policy_text(document: Any) -> str:
    """An IAM policy document as JSON. AWS takes a document without Version (as SAM's policy templates make them) as
    the 2008 language; moto refuses those, so the current version is filled in - IAM is not enforced locally."""
    if isinstance(document, str):
        document = json.loads(document)
    if isinstance(document, dict) and "Version" not in document:
        document = {"Version": "2012-10-17", **document}
    return json.dumps(document)


def _coerce(shape: Any, value: Any) -> Any:
    """Convert CloudFormation's loosely typed values ("5", "true") to what the API shape wants."""
    if shape is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        return {k: _coerce(shape.members.get(k), v) for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [_coerce(shape.member, v) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _coerce(shape.value, v) for k, v in value.items()}
    if kind in ("integer", "long") and isinstance(value, str):
        return int(float(value))
    if kind in ("double", "float") and isinstance(value, (str, int)):
        return float(value)
    if kind == "boolean" and isinstance(value, str):
        return constants.parse_bool(value)
    if kind == "string" and isinstance(value, (int, float, bool)):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return value


def call(ctx: ProvisionContext, service: str, operation: str, params: Mapping[str, Any]) -> Any:
    """Call `operation` with `params` coerced to its input shape; AWS errors become UserErrors naming the call."""
    client = ctx.client(service)
    model = client.meta.service_model.operation_model(operation)
    coerced = _coerce(model.input_shape, dict(params))
    method = getattr(client, xform_name(operation))
    try:
        return method(**coerced)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise UserError(f"{service} {operation} failed: {error.get('Code')}: {error.get('Message')}") from None


def _shape_members(ctx: ProvisionContext, service: str, operation: str) -> set[str]:
    return set(ctx.client(service).meta.service_model.operation_model(operation).input_shape.members)


def _pick(
    ctx: ProvisionContext,
    service: str,
    operation: str,
    props: Mapping[str, Any],
    logical_id: str,
    *,
    handled: frozenset[str] | set[str] = frozenset(),
) -> dict[str, Any]:
    """Properties whose names match the API's parameters; any other property is reported, not silently dropped."""
    members = _shape_members(ctx, service, operation)
    picked = {k: v for k, v in props.items() if k in members}
    ignored = sorted(set(props) - members - set(handled))
    if ignored:
        ctx.warn_ignored(logical_id, ignored)
    return picked


# --- Lambda -------------------------------------------------------------------------------------------------------


def function_name_of(value: Any) -> tuple[str, str | None]:
    """A FunctionName property (name, partial or full ARN, maybe qualified) → (name, qualifier)."""
    text = str(value)
    if ":function:" in text:  # arn:aws:lambda:region:account:function:name[:qualifier] or account:function:name
        name, _, qualifier = text.split(":function:", 1)[1].partition(":")
        return name, qualifier or None
    if ":" in text:
        name, qualifier = text.rsplit(":", 1)
        return name, qualifier
    return text, None


def lambda_function(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    if props.get("PackageType") == "Image":
        raise NotCreated("container-image functions need Docker; the local cloud runs zip functions only")
    code_dir = ctx.code_dirs.get(logical_id)
    zip_file = (props.get("Code") or {}).get("ZipFile") if isinstance(props.get("Code"), dict) else None
    if code_dir is None and isinstance(zip_file, str):  # ZipFile built by an intrinsic (!Sub |): known only now
        code_dir = write_inline_code(logical_id, zip_file, str(props.get("Runtime", "")))
    if code_dir is None:
        raise UserError(
            f"{logical_id}: Code must be a local folder (CodeUri) or InlineCode; "
            f"got {json.dumps(props.get('Code'), default=str)}"
        )
    name = str(props.get("FunctionName") or physical_name(ctx.stack_name, logical_id, limit=64))
    tracing = (props.get("TracingConfig") or {}).get("Mode", "PassThrough")
    reserved = props.get("ReservedConcurrentExecutions")
    spec = FunctionSpec(
        name=name,
        handler=str(props.get("Handler", "")),
        runtime=str(props.get("Runtime", "")),
        code_dir=code_dir,
        timeout_s=as_int(props.get("Timeout", constants.DEFAULT_TIMEOUT_SECONDS)),
        memory_mb=as_int(props.get("MemorySize", constants.DEFAULT_MEMORY_MB)),
        environment={
            str(k): _env_text(v) for k, v in ((props.get("Environment") or {}).get("Variables") or {}).items()
        },
        role=str(props.get("Role", "")),
        tracing=str(tracing),
        architectures=tuple(str(a) for a in props.get("Architectures") or ["x86_64"]),
        description=str(props.get("Description", "")),
        reserved_concurrency=as_int(reserved) if reserved is not None else None,
        dead_letter_target_arn=(props.get("DeadLetterConfig") or {}).get("TargetArn"),
        tags=tags_dict(props.get("Tags")),
        logical_id=logical_id,
        layers=tuple(str(arn) for arn in props.get("Layers") or ()),
        template_dir=ctx.template_dir,
        logging=_logging_config(logical_id, props.get("LoggingConfig")),
    )
    if not spec.handler or not spec.runtime:
        raise UserError(f"{logical_id}: a zip function needs Handler and Runtime")
    if spec.runtime.startswith("python"):
        with contextlib.suppress(UnsupportedRuntime):
            note = find_interpreter(spec.runtime).note()
            if note is not None:
                ctx.note_difference(note)
    arn = ctx.lambda_control.create_function(spec)
    return Created(name, {"Arn": arn})


def _logging_config(logical_id: str, value: Any) -> LoggingConfig:
    if value is not None and not isinstance(value, dict):
        raise UserError(f"{logical_id}: LoggingConfig must be a mapping; got {json.dumps(value, default=str)}")
    try:
        return LoggingConfig.from_api(value)
    except ValueError as exc:  # Lambda's own validation message
        raise UserError(f"{logical_id}: LoggingConfig: {exc}") from None


def lambda_layer_version(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    content_dir = ctx.code_dirs.get(logical_id)
    if content_dir is None:
        raise UserError(
            f"{logical_id}: Content must be a local folder (ContentUri); "
            f"got {json.dumps(props.get('Content'), default=str)}"
        )
    metadata = ctx.metadata.get(logical_id) or {}
    spec = LayerSpec(
        name=str(props.get("LayerName") or physical_name(ctx.stack_name, logical_id, limit=64)),
        content_dir=content_dir,
        compatible_runtimes=tuple(str(r) for r in props.get("CompatibleRuntimes") or ()),
        compatible_architectures=tuple(str(a) for a in props.get("CompatibleArchitectures") or ()),
        description=str(props.get("Description", "")),
        license_info=props.get("LicenseInfo"),
        build_method=str(metadata["BuildMethod"]) if metadata.get("BuildMethod") else None,
    )
    arn = ctx.lambda_control.publish_layer_version(spec)
    return Created(arn, {"LayerVersionArn": arn})


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def lambda_version(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    name, _ = function_name_of(props["FunctionName"])
    version = ctx.lambda_control.publish_version(name, str(props.get("Description", "")))
    provisioned = (props.get("ProvisionedConcurrencyConfig") or {}).get("ProvisionedConcurrentExecutions")
    if provisioned is not None:
        ctx.lambda_control.put_provisioned_concurrency(name, version, as_int(provisioned))
    arn = ctx.lambda_control.function_arn(name, version)
    return Created(arn, {"Version": version, "FunctionArn": arn})


def lambda_alias(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    name, _ = function_name_of(props["FunctionName"])
    alias = str(props["Name"])
    version = str(props["FunctionVersion"])
    if version.startswith("arn:"):
        version = function_name_of(version)[1] or "$LATEST"
    if props.get("RoutingConfig"):
        ctx.note_difference(
            "Lambda alias RoutingConfig (weighted versions) is ignored: every call goes to the alias's main version"
        )
    arn = ctx.lambda_control.create_alias(name, alias, version, str(props.get("Description", "")))
    provisioned = (props.get("ProvisionedConcurrencyConfig") or {}).get("ProvisionedConcurrentExecutions")
    if provisioned is not None:
        ctx.lambda_control.put_provisioned_concurrency(name, alias, as_int(provisioned))
    return Created(arn, {"AliasArn": arn})


def lambda_event_invoke_config(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    name, _ = function_name_of(props["FunctionName"])
    qualifier = str(props.get("Qualifier", "$LATEST"))
    destinations = props.get("DestinationConfig") or {}
    retries = props.get("MaximumRetryAttempts")
    age = props.get("MaximumEventAgeInSeconds")
    config = EventInvokeConfig.of(
        name,
        qualifier,
        maximum_retry_attempts=as_int(retries) if retries is not None else None,
        maximum_event_age_s=as_int(age) if age is not None else None,
        on_success_destination=(destinations.get("OnSuccess") or {}).get("Destination"),
        on_failure_destination=(destinations.get("OnFailure") or {}).get("Destination"),
    )
    ctx.lambda_control.put_event_invoke_config(config)
    return Created(f"{name}:{qualifier}")


def lambda_permission(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    ctx.recorded[logical_id] = dict(props)
    ctx.note_difference(
        "AWS::Lambda::Permission is recorded but resource-based policies are not enforced locally: "
        "any caller may invoke any function"
    )
    return Created(physical_name(ctx.stack_name, logical_id, limit=100))


def lambda_event_source_mapping(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    name, qualifier = function_name_of(props["FunctionName"])
    resolved = {k: v for k, v in props.items() if k in (APPLIED_PROPERTIES["AWS::Lambda::EventSourceMapping"] or ())}
    resolved["FunctionName"] = f"{name}:{qualifier}" if qualifier else name
    try:
        mapping_id = str(ctx.lambda_control.create_event_source_mapping(resolved))
    except NotImplementedError:
        raise NotCreated("event source mappings are not run locally yet (the Lambda service has no pollers)") from None
    except LambdaApiError as exc:
        if exc.message.startswith("Unsupported event source"):
            # The local service names a source it does not run (AWS runs it): one warning, not a failed deploy.
            raise NotCreated(f"{exc.message.rstrip('.')} (not run locally)") from None
        raise
    return Created(mapping_id, {"Id": mapping_id})


# --- IAM ----------------------------------------------------------------------------------------------------------


def _attach_managed(ctx: ProvisionContext, logical_id: str, kind: str, target: str, arns: list[Any]) -> None:
    client = ctx.client("iam")
    for arn in arns:
        try:
            if kind == "role":
                client.attach_role_policy(RoleName=target, PolicyArn=str(arn))
            elif kind == "user":
                client.attach_user_policy(UserName=target, PolicyArn=str(arn))
            else:
                client.attach_group_policy(GroupName=target, PolicyArn=str(arn))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchEntity" and ":iam::aws:policy/" in str(arn):
                # moto knows AWS managed policies only with MOTO_IAM_LOAD_MANAGED_POLICIES=true; IAM is not enforced
                # locally, so the attachment is kept on record instead.
                ctx.recorded.setdefault(logical_id, {}).setdefault("UnknownManagedPolicyArns", []).append(str(arn))
                ctx.note_difference(
                    "IAM policies are stored but not enforced locally; AWS managed policies unknown "
                    "to the local IAM are recorded on the resource only"
                )
            else:
                error = exc.response.get("Error", {})
                raise UserError(
                    f"{logical_id}: attaching {arn} failed: {error.get('Code')}: {error.get('Message')}"
                ) from None


def iam_role(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    name = str(props.get("RoleName") or physical_name(ctx.stack_name, logical_id, limit=64))
    params: dict[str, Any] = {
        "RoleName": name,
        "AssumeRolePolicyDocument": _policy_text(props["AssumeRolePolicyDocument"]),
        "Path": props.get("Path", "/"),
    }
    for key in ("Description", "MaxSessionDuration", "PermissionsBoundary"):
        if key in props:
            params[key] = props[key]
    if props.get("Tags"):
        params["Tags"] = tags_list(props["Tags"])
    role = call(ctx, "iam", "CreateRole", params)["Role"]
    for policy in props.get("Policies") or []:
        call(
            ctx,
            "iam",
            "PutRolePolicy",
            {
                "RoleName": name,
                "PolicyName": policy["PolicyName"],
                "PolicyDocument": _policy_text(policy["PolicyDocument"]),
            },
        )
    _attach_managed(ctx, logical_id, "role", name, list(props.get("ManagedPolicyArns") or []))
    ctx.note_difference(
        "IAM policies are stored but not enforced locally; AWS managed policies unknown "
        "to the local IAM are recorded on the resource only"
    )
    return Created(name, {"Arn": role["Arn"], "RoleId": role["RoleId"]})


def iam_policy(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    name = str(props["PolicyName"])
    document = _policy_text(props["PolicyDocument"])
    for role in props.get("Roles") or []:
        call(ctx, "iam", "PutRolePolicy", {"RoleName": role, "PolicyName": name, "PolicyDocument": document})
    for user in props.get("Users") or []:
        call(ctx, "iam", "PutUserPolicy", {"UserName": user, "PolicyName": name, "PolicyDocument": document})
    for group in props.get("Groups") or []:
        call(ctx, "iam", "PutGroupPolicy", {"GroupName": group, "PolicyName": name, "PolicyDocument": document})
    return Created(physical_name(ctx.stack_name, logical_id[:5], limit=64), {"Id": name})


def iam_managed_policy(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    name = str(props.get("ManagedPolicyName") or physical_name(ctx.stack_name, logical_id, limit=128))
    params: dict[str, Any] = {"PolicyName": name, "PolicyDocument": _policy_text(props["PolicyDocument"])}
    for key in ("Path", "Description"):
        if key in props:
            params[key] = props[key]
    policy = call(ctx, "iam", "CreatePolicy", params)["Policy"]
    arn = policy["Arn"]
    for kind, key in (("role", "Roles"), ("user", "Users"), ("group", "Groups")):
        for target in props.get(key) or []:
            _attach_managed(ctx, logical_id, kind, str(target), [arn])
    return Created(arn, {"PolicyArn": arn, "PolicyId": policy["PolicyId"], "DefaultVersionId": "v1"})


def iam_service_linked_role(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    params: dict[str, Any] = {k: props[k] for k in ("AWSServiceName", "Description", "CustomSuffix") if k in props}
    try:
        role = ctx.client("iam").create_service_linked_role(**params)["Role"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "EntityAlreadyExists":
            error = exc.response.get("Error", {})
            raise UserError(
                f"iam CreateServiceLinkedRole failed: {error.get('Code')}: {error.get('Message')}"
            ) from None
        # A service-linked role is one per account and service: a second stack uses the one that exists.
        existing = [
            r
            for r in ctx.client("iam").list_roles(PathPrefix="/aws-service-role/")["Roles"]
            if r["Path"] == f"/aws-service-role/{params['AWSServiceName']}/"
        ]
        if not existing:
            raise UserError(f"{logical_id}: the service-linked role exists but cannot be found") from None
        role = existing[0]
        ctx.warnings.append(f"{logical_id}: the service-linked role {role['RoleName']} already exists; it is reused")
    return Created(role["RoleName"], {"Arn": role["Arn"]})


# --- SQS, SNS, S3 -------------------------------------------------------------------------------------------------

QUEUE_ATTRIBUTES = (
    "ContentBasedDeduplication", "DeduplicationScope", "DelaySeconds", "FifoQueue", "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds", "KmsMasterKeyId", "MaximumMessageSize", "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds", "RedriveAllowPolicy", "RedrivePolicy", "SqsManagedSseEnabled",
    "VisibilityTimeout",
)  # fmt: skip


def _queue_attribute(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def sqs_queue(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    fifo = _bool(props.get("FifoQueue", False))
    name = str(
        props.get("QueueName") or physical_name(ctx.stack_name, logical_id, limit=80, suffix=".fifo" if fifo else "")
    )
    attributes = {key: _queue_attribute(props[key]) for key in QUEUE_ATTRIBUTES if key in props}
    unknown = sorted(set(props) - set(QUEUE_ATTRIBUTES) - {"QueueName", "Tags"})
    if unknown:
        ctx.warn_ignored(logical_id, unknown)
    params: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
    if props.get("Tags"):
        params["tags"] = tags_dict(props["Tags"])
    url = call(ctx, "sqs", "CreateQueue", params)["QueueUrl"]
    arn = ctx.arn("sqs", name)
    return Created(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})


def sqs_queue_policy(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    document = json_text(props["PolicyDocument"])
    for url in props.get("Queues") or []:
        call(ctx, "sqs", "SetQueueAttributes", {"QueueUrl": url, "Attributes": {"Policy": document}})
    return Created(physical_name(ctx.stack_name, logical_id, limit=128))


def sns_topic(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    fifo = _bool(props.get("FifoTopic", False))
    name = str(
        props.get("TopicName") or physical_name(ctx.stack_name, logical_id, limit=256, suffix=".fifo" if fifo else "")
    )
    attributes: dict[str, str] = {}
    for key in ("DisplayName", "KmsMasterKeyId", "ContentBasedDeduplication", "FifoTopic", "TracingConfig"):
        if key in props:
            attributes[key] = _queue_attribute(props[key])
    params: dict[str, Any] = {"Name": name, "Attributes": attributes}
    if props.get("Tags"):
        params["Tags"] = tags_list(props["Tags"])
    arn = call(ctx, "sns", "CreateTopic", params)["TopicArn"]
    for subscription in props.get("Subscription") or []:
        call(
            ctx,
            "sns",
            "Subscribe",
            {"TopicArn": arn, "Protocol": subscription["Protocol"], "Endpoint": subscription["Endpoint"]},
        )
    return Created(arn, {"TopicArn": arn, "TopicName": name})


def sns_subscription(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    params: dict[str, Any] = {
        "TopicArn": props["TopicArn"],
        "Protocol": props["Protocol"],
        "ReturnSubscriptionArn": True,
    }
    if "Endpoint" in props:
        params["Endpoint"] = props["Endpoint"]
    attributes = {
        k: _queue_attribute(props[k])
        for k in ("RawMessageDelivery", "FilterPolicy", "FilterPolicyScope", "RedrivePolicy", "DeliveryPolicy")
        if k in props
    }
    if attributes:
        params["Attributes"] = attributes
    existing = [
        s
        for s in call(ctx, "sns", "ListSubscriptionsByTopic", {"TopicArn": props["TopicArn"]}).get("Subscriptions", [])
        if s.get("Protocol") == props["Protocol"] and s.get("Endpoint") == props.get("Endpoint")
    ]
    if existing:
        # SNS keeps one subscription per topic, protocol and endpoint; moto returns the old one with the old
        # attributes, where SNS refuses a second one that asks for different attributes.
        current = call(ctx, "sns", "GetSubscriptionAttributes", {"SubscriptionArn": existing[0]["SubscriptionArn"]})
        have = current.get("Attributes", {})
        if any(have.get(k) != v for k, v in attributes.items()):
            raise UserError(
                "sns Subscribe failed: InvalidParameter: Invalid parameter: Attributes Reason: Subscription already "
                f"exists with different attributes ({props.get('Endpoint')} on {props['TopicArn']})"
            )
    arn = call(ctx, "sns", "Subscribe", params)["SubscriptionArn"]
    return Created(arn)


S3_BUCKET_APPLIED = frozenset({"BucketName", "Tags", "VersioningConfiguration", "NotificationConfiguration"})


def s3_bucket(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    name = str(props.get("BucketName") or physical_name(ctx.stack_name, logical_id, limit=63, lowercase=True))
    params: dict[str, Any] = {"Bucket": name}
    if ctx.region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": ctx.region}
    call(ctx, "s3", "CreateBucket", params)
    if props.get("Tags"):
        call(ctx, "s3", "PutBucketTagging", {"Bucket": name, "Tagging": {"TagSet": tags_list(props["Tags"])}})
    if props.get("VersioningConfiguration"):
        call(
            ctx,
            "s3",
            "PutBucketVersioning",
            {"Bucket": name, "VersioningConfiguration": props["VersioningConfiguration"]},
        )
    if props.get("NotificationConfiguration"):
        from lambdalab.deploy.source_resources import bucket_notifications

        bucket_notifications(ctx, logical_id, name, props["NotificationConfiguration"])
    unknown = sorted(set(props) - S3_BUCKET_APPLIED)
    if unknown:
        ctx.warn_ignored(logical_id, unknown)
    return Created(
        name,
        {
            "Arn": f"arn:aws:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{ctx.region}.amazonaws.com",
            "DualStackDomainName": f"{name}.s3.dualstack.{ctx.region}.amazonaws.com",
            "WebsiteURL": f"http://{name}.s3-website-{ctx.region}.amazonaws.com",
        },
    )


# --- DynamoDB and Application Auto Scaling --------------------------------------------------------------------------


DYNAMODB_TABLE_APPLIED = frozenset({
    "TableName", "AttributeDefinitions", "KeySchema", "BillingMode", "ProvisionedThroughput", "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes", "TableClass", "DeletionProtectionEnabled", "OnDemandThroughput", "StreamSpecification",
    "SSESpecification", "Tags", "PointInTimeRecoverySpecification", "TimeToLiveSpecification",
    "ContributorInsightsSpecification",
})  # fmt: skip


def dynamodb_table(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    name = str(props.get("TableName") or physical_name(ctx.stack_name, logical_id, limit=255))
    params: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    for key in (
        "ProvisionedThroughput",
        "GlobalSecondaryIndexes",
        "LocalSecondaryIndexes",
        "TableClass",
        "DeletionProtectionEnabled",
        "OnDemandThroughput",
    ):
        if key in props:
            params[key] = props[key]
    if "StreamSpecification" in props:
        params["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    sse = props.get("SSESpecification")
    if sse:
        params["SSESpecification"] = {
            "Enabled": _bool(sse.get("SSEEnabled", False)),
            **{k: sse[k] for k in ("SSEType", "KMSMasterKeyId") if k in sse},
        }
    if props.get("Tags"):
        params["Tags"] = tags_list(props["Tags"])
    unknown = sorted(set(props) - DYNAMODB_TABLE_APPLIED)
    if unknown:
        ctx.warn_ignored(logical_id, unknown)
    table = call(ctx, "dynamodb", "CreateTable", params)["TableDescription"]
    pitr = props.get("PointInTimeRecoverySpecification")
    if pitr:
        call(
            ctx,
            "dynamodb",
            "UpdateContinuousBackups",
            {
                "TableName": name,
                "PointInTimeRecoverySpecification": {
                    "PointInTimeRecoveryEnabled": pitr.get("PointInTimeRecoveryEnabled", False),
                    **(
                        {"RecoveryPeriodInDays": pitr["RecoveryPeriodInDays"]} if "RecoveryPeriodInDays" in pitr else {}
                    ),
                },
            },
        )
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        call(ctx, "dynamodb", "UpdateTimeToLive", {"TableName": name, "TimeToLiveSpecification": ttl})
    if props.get("ContributorInsightsSpecification"):
        ctx.note_difference("DynamoDB Contributor Insights is accepted but not collected locally")
    attributes: dict[str, Any] = {"Arn": table["TableArn"]}
    if table.get("LatestStreamArn"):
        attributes["StreamArn"] = table["LatestStreamArn"]
    return Created(name, attributes)


def scalable_target(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    params = _pick(
        ctx,
        "application-autoscaling",
        "RegisterScalableTarget",
        props,
        logical_id,
        handled={"RoleARN", "ScheduledActions"},
    )
    if "RoleARN" in props:
        params["RoleARN"] = props["RoleARN"]
    call(ctx, "application-autoscaling", "RegisterScalableTarget", params)
    for action in props.get("ScheduledActions") or []:
        scheduled = {
            "ServiceNamespace": props["ServiceNamespace"],
            "ResourceId": props["ResourceId"],
            "ScalableDimension": props["ScalableDimension"],
            **action,
        }
        call(ctx, "application-autoscaling", "PutScheduledAction", scheduled)
    physical = f"{props['ResourceId']}|{props['ScalableDimension']}|{props['ServiceNamespace']}"
    return Created(physical)


def scaling_policy(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    params = _pick(ctx, "application-autoscaling", "PutScalingPolicy", props, logical_id, handled={"ScalingTargetId"})
    if "ScalingTargetId" in props:
        resource_id, dimension, namespace = str(props["ScalingTargetId"]).split("|")
        params.update(ResourceId=resource_id, ScalableDimension=dimension, ServiceNamespace=namespace)
    missing = [k for k in ("ResourceId", "ScalableDimension", "ServiceNamespace") if k not in params]
    if missing:
        raise UserError(f"{logical_id}: a scaling policy needs ScalingTargetId or {', '.join(missing)}")
    arn = call(ctx, "application-autoscaling", "PutScalingPolicy", params)["PolicyARN"]
    return Created(arn, {"Arn": arn})


# --- CloudWatch, Logs, X-Ray ---------------------------------------------------------------------------------------


def log_group(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    name = str(props.get("LogGroupName") or physical_name(ctx.stack_name, logical_id, limit=512))
    params: dict[str, Any] = {"logGroupName": name}
    if props.get("KmsKeyId"):
        params["kmsKeyId"] = props["KmsKeyId"]
    if props.get("Tags"):
        params["tags"] = tags_dict(props["Tags"])
    call(ctx, "logs", "CreateLogGroup", params)
    if "RetentionInDays" in props:
        call(ctx, "logs", "PutRetentionPolicy", {"logGroupName": name, "retentionInDays": props["RetentionInDays"]})
    return Created(name, {"Arn": ctx.arn("logs", f"log-group:{name}:*")})


def cloudwatch_alarm(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    name = str(props.get("AlarmName") or physical_name(ctx.stack_name, logical_id, limit=255))
    params = _pick(ctx, "cloudwatch", "PutMetricAlarm", props, logical_id, handled={"Tags"})
    params["AlarmName"] = name
    if props.get("Tags"):
        params["Tags"] = tags_list(props["Tags"])
    call(ctx, "cloudwatch", "PutMetricAlarm", params)
    return Created(name, {"Arn": ctx.arn("cloudwatch", f"alarm:{name}")})


def cloudwatch_dashboard(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    name = str(props.get("DashboardName") or physical_name(ctx.stack_name, logical_id, limit=255))
    call(ctx, "cloudwatch", "PutDashboard", {"DashboardName": name, "DashboardBody": json_text(props["DashboardBody"])})
    return Created(name)


def xray_sampling_rule(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    rule = dict(props.get("SamplingRule") or {})
    name = str(rule.get("RuleName") or props.get("RuleName") or physical_name(ctx.stack_name, logical_id, limit=32))
    arn = ctx.arn("xray", f"sampling-rule/{name}")
    # moto's X-Ray serves no sampling-rule API, so the rule is kept with the stack rather than in the X-Ray store.
    ctx.recorded[logical_id] = {"SamplingRule": {**rule, "RuleName": name, "RuleARN": arn}}
    ctx.note_difference(
        "X-Ray sampling rules are recorded with the stack but not applied: the local X-Ray keeps every trace"
    )
    return Created(arn, {"RuleArn": arn, "RuleName": name})


# --- Step Functions -----------------------------------------------------------------------------------------------


def _lower_first(value: Any) -> Any:
    """CloudFormation's PascalCase Step Functions configuration → the API's camelCase."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: _lower_first(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_first(v) for v in value]
    return value


def state_machine(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    name = str(props.get("StateMachineName") or physical_name(ctx.stack_name, logical_id, limit=80))
    location = props.get("DefinitionS3Location")
    local_file = ctx.definition_files.get(str(location.get("Key"))) if isinstance(location, dict) else None
    if "DefinitionString" in props:
        definition = str(props["DefinitionString"])
    elif "Definition" in props:
        definition = json.dumps(props["Definition"])
    elif local_file is not None:
        definition = local_file.read_text(encoding="utf-8")
    else:
        raise UserError(
            f"{logical_id}: a state machine needs Definition or DefinitionString, or a local file as DefinitionUri / "
            "DefinitionS3Location (an S3 object is not read locally)"
        )
    for key, value in (props.get("DefinitionSubstitutions") or {}).items():
        definition = definition.replace("${" + str(key) + "}", _env_text(value))
    if local_file is not None and not definition.lstrip().startswith("{"):
        # A YAML definition file: Step Functions takes JSON, CloudFormation converts it (after substitution).
        try:
            definition = json.dumps(parse_text(definition).document)
        except TemplateFormatError as exc:
            raise UserError(f"{logical_id}: {local_file}: {exc.message}") from None
    try:
        parsed = json.loads(definition)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{logical_id}: the state machine definition is not valid JSON after substitution: {exc}"
        ) from None
    if isinstance(parsed, dict) and not definition_problems(definition, str(props.get("StateMachineType", "STANDARD"))):
        # AWS accepts it (else CreateStateMachine below says why, as AWS does); can the local interpreter run it?
        limits = local_limits(parsed)
        if any(not limit.runs for limit in limits):
            raise NotCreated(unsupported_message(limits))
        if limits:
            ctx.warnings.append(f"AWS::StepFunctions::StateMachine ({logical_id}): {difference_message(limits)}")
    params: dict[str, Any] = {"name": name, "definition": definition, "roleArn": props["RoleArn"]}
    if "StateMachineType" in props:
        params["type"] = props["StateMachineType"]
    if props.get("LoggingConfiguration"):
        params["loggingConfiguration"] = _lower_first(props["LoggingConfiguration"])
    if props.get("TracingConfiguration"):
        params["tracingConfiguration"] = _lower_first(props["TracingConfiguration"])
    if props.get("Tags"):
        params["tags"] = [{"key": k, "value": v} for k, v in tags_dict(props["Tags"]).items()]
    arn = call(ctx, "stepfunctions", "CreateStateMachine", params)["stateMachineArn"]
    return Created(arn, {"Arn": arn, "Name": name, "StateMachineRevisionId": "INITIAL"})


# --- API Gateway ----------------------------------------------------------------------------------------------------

_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "x-amazon-apigateway-any-method"}


def _warn_unserved_integration(ctx: ProvisionContext, logical_id: str, method: str, path: str, kind: str) -> None:
    """Only Lambda proxy integrations are served locally: any other type is named at deploy, not a silent 500."""
    if str(kind).upper() != "AWS_PROXY":
        ctx.warnings.append(
            f"{ctx.types.get(logical_id, 'AWS::ApiGateway::RestApi')} ({logical_id}): {method} {path} has a "
            f"{str(kind).upper()} integration, which the local cloud does not serve (mapping templates are not run); "
            "requests to it answer 500"
        )


def _import_openapi_paths(
    ctx: ProvisionContext, api_id: str, root_id: str, body: Mapping[str, Any], logical_id: str = ""
) -> None:
    """Create resources, methods and integrations from an OpenAPI/Swagger body.

    Written here because moto's put_rest_api reads only OpenAPI 3 and skips x-amazon-apigateway-integration, while
    SAM generates Swagger 2.0 with integrations.
    """
    ids = {"/": root_id}
    for path in sorted((body.get("paths") or {}), key=lambda p: (p.count("/"), p)):
        parent = "/"
        for part in [p for p in path.split("/") if p]:
            current = parent.rstrip("/") + "/" + part
            if current not in ids:
                created = call(
                    ctx,
                    "apigateway",
                    "CreateResource",
                    {"restApiId": api_id, "parentId": ids[parent], "pathPart": part},
                )
                ids[current] = created["id"]
            parent = current
        for method, operation in (body["paths"][path] or {}).items():
            if method.lower() not in _HTTP_METHODS or not isinstance(operation, dict):
                continue
            http_method = "ANY" if method.lower() == "x-amazon-apigateway-any-method" else method.upper()
            call(
                ctx,
                "apigateway",
                "PutMethod",
                {
                    "restApiId": api_id,
                    "resourceId": ids[parent],
                    "httpMethod": http_method,
                    "authorizationType": "NONE",
                },
            )
            integration = operation.get("x-amazon-apigateway-integration")
            if isinstance(integration, dict):
                params: dict[str, Any] = {
                    "restApiId": api_id,
                    "resourceId": ids[parent],
                    "httpMethod": http_method,
                    "type": str(integration.get("type", "aws_proxy")).upper(),
                }
                if "httpMethod" in integration:
                    params["integrationHttpMethod"] = integration["httpMethod"]
                if "uri" in integration:
                    params["uri"] = (
                        integration["uri"] if isinstance(integration["uri"], str) else json.dumps(integration["uri"])
                    )
                call(ctx, "apigateway", "PutIntegration", params)
                _warn_unserved_integration(ctx, logical_id, http_method, path, params["type"])


def rest_api(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    body = props.get("Body")
    if body is None and props.get("BodyS3Location"):
        raise NotCreated("BodyS3Location is not supported locally; give the OpenAPI document inline (Body)")
    title = (body or {}).get("info", {}).get("title") if isinstance(body, dict) else None
    name = str(props.get("Name") or title or logical_id)
    params: dict[str, Any] = {"name": name}
    if props.get("Description"):
        params["description"] = props["Description"]
    if props.get("EndpointConfiguration"):
        params["endpointConfiguration"] = _lower_first(props["EndpointConfiguration"])
    api = call(ctx, "apigateway", "CreateRestApi", params)
    resources = call(ctx, "apigateway", "GetResources", {"restApiId": api["id"]})["items"]
    root_id = next(item["id"] for item in resources if item["path"] == "/")
    if isinstance(body, dict):
        _import_openapi_paths(ctx, api["id"], root_id, body, logical_id)
    return Created(api["id"], {"RootResourceId": root_id, "RestApiId": api["id"]})


def api_deployment(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    params: dict[str, Any] = {"restApiId": props["RestApiId"]}
    if props.get("StageName"):
        params["stageName"] = props["StageName"]
    if props.get("Description"):
        params["description"] = props["Description"]
    deployment = call(ctx, "apigateway", "CreateDeployment", params)
    return Created(deployment["id"], {"DeploymentId": deployment["id"]})


def api_stage(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    params: dict[str, Any] = {
        "restApiId": props["RestApiId"],
        "stageName": props["StageName"],
        "deploymentId": props["DeploymentId"],
    }
    for cfn_key, api_key in (
        ("Description", "description"),
        ("Variables", "variables"),
        ("TracingEnabled", "tracingEnabled"),
        ("CacheClusterEnabled", "cacheClusterEnabled"),
    ):
        if cfn_key in props:
            params[api_key] = props[cfn_key]
    if props.get("Tags"):
        params["tags"] = tags_dict(props["Tags"])
    call(ctx, "apigateway", "CreateStage", params)
    access_log = props.get("AccessLogSetting") or {}
    if access_log.get("DestinationArn"):  # the local REST API endpoint writes these lines into CloudWatch Logs
        operations = [
            {"op": "replace", "path": "/accessLogSettings/destinationArn", "value": access_log["DestinationArn"]}
        ]
        if access_log.get("Format"):
            operations.append({"op": "replace", "path": "/accessLogSettings/format", "value": access_log["Format"]})
        call(
            ctx,
            "apigateway",
            "UpdateStage",
            {"restApiId": props["RestApiId"], "stageName": props["StageName"], "patchOperations": operations},
        )
    if props.get("MethodSettings"):
        ctx.note_difference("API Gateway MethodSettings (throttling, logging, metrics) are accepted but not applied")
    return Created(str(props["StageName"]))


def api_account(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    if props.get("CloudWatchRoleArn"):
        call(
            ctx,
            "apigateway",
            "UpdateAccount",
            {"patchOperations": [{"op": "replace", "path": "/cloudwatchRoleArn", "value": props["CloudWatchRoleArn"]}]},
        )
    return Created(physical_name(ctx.stack_name, logical_id, limit=64))


def api_resource(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    created = call(
        ctx,
        "apigateway",
        "CreateResource",
        {"restApiId": props["RestApiId"], "parentId": props["ParentId"], "pathPart": props["PathPart"]},
    )
    return Created(created["id"], {"ResourceId": created["id"]})


def api_method(ctx: ProvisionContext, logical_id: str, props: dict[str, Any]) -> Created:
    base = {"restApiId": props["RestApiId"], "resourceId": props["ResourceId"], "httpMethod": props["HttpMethod"]}
    call(
        ctx,
        "apigateway",
        "PutMethod",
        {
            **base,
            "authorizationType": props.get("AuthorizationType", "NONE"),
            "apiKeyRequired": props.get("ApiKeyRequired", False),
        },
    )
    integration = props.get("Integration")
    if integration:
        params: dict[str, Any] = {**base, "type": integration["Type"]}
        if "IntegrationHttpMethod" in integration:
            params["integrationHttpMethod"] = integration["IntegrationHttpMethod"]
        if "Uri" in integration:
            params["uri"] = integration["Uri"]
        call(ctx, "apigateway", "PutIntegration", params)
        _warn_unserved_integration(ctx, logical_id, str(props["HttpMethod"]), str(props["ResourceId"]), params["type"])
    return Created(f"{props['RestApiId']}-{props['ResourceId']}-{props['HttpMethod']}")


Provisioner = Callable[[ProvisionContext, str, dict[str, Any]], Created]

PROVISIONERS: dict[str, Provisioner] = {
    "AWS::Lambda::Function": lambda_function,
    "AWS::Lambda::LayerVersion": lambda_layer_version,
    "AWS::Lambda::Version": lambda_version,
    "AWS::Lambda::Alias": lambda_alias,
    "AWS::Lambda::EventInvokeConfig": lambda_event_invoke_config,
    "AWS::Lambda::Permission": lambda_permission,
    "AWS::Lambda::EventSourceMapping": lambda_event_source_mapping,
    "AWS::IAM::Role": iam_role,
    "AWS::IAM::Policy": iam_policy,
    "AWS::IAM::ManagedPolicy": iam_managed_policy,
    "AWS::IAM::ServiceLinkedRole": iam_service_linked_role,
    "AWS::SQS::Queue": sqs_queue,
    "AWS::SQS::QueuePolicy": sqs_queue_policy,
    "AWS::SNS::Topic": sns_topic,
    "AWS::SNS::Subscription": sns_subscription,
    "AWS::S3::Bucket": s3_bucket,
    "AWS::DynamoDB::Table": dynamodb_table,
    "AWS::ApplicationAutoScaling::ScalableTarget": scalable_target,
    "AWS::ApplicationAutoScaling::ScalingPolicy": scaling_policy,
    "AWS::Logs::LogGroup": log_group,
    "AWS::CloudWatch::Alarm": cloudwatch_alarm,
    "AWS::CloudWatch::Dashboard": cloudwatch_dashboard,
    "AWS::XRay::SamplingRule": xray_sampling_rule,
    "AWS::StepFunctions::StateMachine": state_machine,
    "AWS::ApiGateway::RestApi": rest_api,
    "AWS::ApiGateway::Deployment": api_deployment,
    "AWS::ApiGateway::Stage": api_stage,
    "AWS::ApiGateway::Account": api_account,
    "AWS::ApiGateway::Resource": api_resource,
    "AWS::ApiGateway::Method": api_method,
}


# Properties each provisioner applies; any other property of a created resource is named in a warning by the
# deployer. None: the provisioner checks its properties itself (or records or passes all of them on).
APPLIED_PROPERTIES: dict[str, frozenset[str] | None] = {
    "AWS::Lambda::Function": frozenset({
        "FunctionName", "Code", "Handler", "Runtime", "Timeout", "MemorySize", "Environment", "Role", "TracingConfig",
        "Architectures", "Description", "ReservedConcurrentExecutions", "DeadLetterConfig", "Tags", "PackageType",
        "Layers", "LoggingConfig",
    }),
    "AWS::Lambda::LayerVersion": frozenset({
        "LayerName", "Content", "CompatibleRuntimes", "CompatibleArchitectures", "Description", "LicenseInfo",
    }),
    "AWS::Lambda::Version": frozenset({"FunctionName", "Description", "ProvisionedConcurrencyConfig", "CodeSha256"}),
    "AWS::Lambda::Alias": frozenset({
        "FunctionName", "FunctionVersion", "Name", "Description", "ProvisionedConcurrencyConfig", "RoutingConfig",
    }),
    "AWS::Lambda::EventInvokeConfig": frozenset({
        "FunctionName", "Qualifier", "MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig",
    }),
    "AWS::Lambda::Permission": None,
    "AWS::Lambda::EventSourceMapping": frozenset({
        "EventSourceArn", "FunctionName", "Enabled", "BatchSize", "MaximumBatchingWindowInSeconds",
        "FunctionResponseTypes", "ScalingConfig", "FilterCriteria", "MetricsConfig", "StartingPosition",
        "StartingPositionTimestamp", "ParallelizationFactor", "MaximumRetryAttempts", "MaximumRecordAgeInSeconds",
        "BisectBatchOnFunctionError", "DestinationConfig",
    }),
    "AWS::IAM::Role": frozenset({
        "RoleName", "AssumeRolePolicyDocument", "Path", "Description", "MaxSessionDuration", "PermissionsBoundary",
        "Tags", "Policies", "ManagedPolicyArns",
    }),
    "AWS::IAM::Policy": frozenset({"PolicyName", "PolicyDocument", "Roles", "Users", "Groups"}),
    "AWS::IAM::ManagedPolicy": frozenset({
        "ManagedPolicyName", "PolicyDocument", "Path", "Description", "Roles", "Users", "Groups",
    }),
    "AWS::IAM::ServiceLinkedRole": frozenset({"AWSServiceName", "Description", "CustomSuffix"}),
    "AWS::SQS::Queue": None,
    "AWS::SQS::QueuePolicy": frozenset({"Queues", "PolicyDocument"}),
    "AWS::SNS::Topic": frozenset({
        "TopicName", "DisplayName", "KmsMasterKeyId", "ContentBasedDeduplication", "FifoTopic", "TracingConfig",
        "Tags", "Subscription",
    }),
    "AWS::SNS::Subscription": frozenset({
        "TopicArn", "Protocol", "Endpoint", "RawMessageDelivery", "FilterPolicy", "FilterPolicyScope", "RedrivePolicy",
        "DeliveryPolicy", "Region",
    }),
    "AWS::S3::Bucket": None,
    "AWS::DynamoDB::Table": None,
    "AWS::ApplicationAutoScaling::ScalableTarget": None,
    "AWS::ApplicationAutoScaling::ScalingPolicy": None,
    "AWS::Logs::LogGroup": frozenset({"LogGroupName", "KmsKeyId", "Tags", "RetentionInDays"}),
    "AWS::CloudWatch::Alarm": None,
    "AWS::CloudWatch::Dashboard": frozenset({"DashboardName", "DashboardBody"}),
    "AWS::XRay::SamplingRule": None,
    "AWS::StepFunctions::StateMachine": frozenset({
        "StateMachineName", "DefinitionString", "Definition", "DefinitionSubstitutions", "RoleArn",
        "DefinitionS3Location", "StateMachineType", "LoggingConfiguration", "TracingConfiguration", "Tags",
    }),
    "AWS::ApiGateway::RestApi": frozenset({"Body", "Name", "Description", "EndpointConfiguration"}),
    "AWS::ApiGateway::Deployment": frozenset({"RestApiId", "StageName", "Description"}),
    "AWS::ApiGateway::Stage": frozenset({
        "RestApiId", "StageName", "DeploymentId", "Description", "Variables", "TracingEnabled",
        "CacheClusterEnabled", "Tags", "MethodSettings", "AccessLogSetting",
    }),
    "AWS::ApiGateway::Account": frozenset({"CloudWatchRoleArn"}),
    "AWS::ApiGateway::Resource": frozenset({"RestApiId", "ParentId", "PathPart"}),
    "AWS::ApiGateway::Method": frozenset({
        "RestApiId", "ResourceId", "HttpMethod", "AuthorizationType", "ApiKeyRequired", "Integration",
    }),
}  # fmt: skip


def _register_source_types() -> None:
    """The event-source types (EventBridge, Scheduler, Kinesis, SNS topic policies) live in their own module."""
    from lambdalab.deploy import source_resources

    PROVISIONERS.update(source_resources.PROVISIONERS)
    APPLIED_PROPERTIES.update(source_resources.APPLIED_PROPERTIES)


_register_source_types()


def new_stack_id(region: str, account_id: str, stack_name: str) -> str:
    return f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/{uuid.uuid4()}"
