"""The Python interface the local deploy uses to create Lambda resources in the local Lambda service.

The deployer (lambdalab.deploy) talks to this protocol; lambdalab.awslambda.service.service.LambdaService implements it.
Everything else reaches the Lambda service through its HTTP API, as the AWS CLI and boto3 do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lambdalab.awslambda.core.exceptions import InvalidParameterValueException
from lambdalab.logs.function import LoggingConfig


@dataclass(frozen=True)
class FunctionSpec:
    """A function as the template (after transform and intrinsic resolution) describes it."""

    name: str
    handler: str
    runtime: str
    code_dir: Path
    timeout_s: int = 3
    memory_mb: int = 128
    environment: dict[str, str] = field(default_factory=dict)
    role: str = ""
    tracing: str = "PassThrough"  # "Active" or "PassThrough"
    architectures: tuple[str, ...] = ("x86_64",)
    description: str = ""
    reserved_concurrency: int | None = None
    dead_letter_target_arn: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    logical_id: str = ""
    layers: tuple[str, ...] = ()  # layer version ARNs, in order
    template_dir: Path | None = None  # where `sam build` output (.aws-sam/build) would be
    logging: LoggingConfig = field(default_factory=LoggingConfig)  # LoggingConfig: log group, format, levels


@dataclass(frozen=True)
class LayerSpec:
    """AWS::Lambda::LayerVersion (SAM: AWS::Serverless::LayerVersion) with its content in a local folder."""

    name: str
    content_dir: Path
    compatible_runtimes: tuple[str, ...] = ()
    compatible_architectures: tuple[str, ...] = ()
    description: str = ""
    license_info: str | None = None
    build_method: str | None = None  # SAM Metadata BuildMethod: "python3.13" builds it as `sam build` does


# PutFunctionEventInvokeConfig's limits and AWS's defaults [API reference; "Asynchronous invocation"]
DEFAULT_MAX_RETRY_ATTEMPTS = 2
MAX_RETRY_ATTEMPTS = 2
DEFAULT_MAX_EVENT_AGE_S = 21600
MIN_EVENT_AGE_S = 60


@dataclass(frozen=True)
class EventInvokeConfig:
    """A function's (or qualifier's) asynchronous invocation settings: PutFunctionEventInvokeConfig,
    AWS::Lambda::EventInvokeConfig, a SAM EventInvokeConfig. The one type: the API and the deployer make it, the
    service stamps `last_modified`, the async queue keeps it and reads it. Validated once, when made, with AWS's
    messages (InvalidParameterValueException)."""

    function_name: str
    qualifier: str = "$LATEST"
    maximum_retry_attempts: int = DEFAULT_MAX_RETRY_ATTEMPTS
    maximum_event_age_s: int = DEFAULT_MAX_EVENT_AGE_S
    on_success_destination: str | None = None
    on_failure_destination: str | None = None
    last_modified: float = 0.0  # Unix time it was put (the service stamps it)

    def __post_init__(self) -> None:
        if not 0 <= self.maximum_retry_attempts <= MAX_RETRY_ATTEMPTS:
            raise InvalidParameterValueException(
                f"1 validation error detected: Value '{self.maximum_retry_attempts}' at 'maximumRetryAttempts' failed "
                f"to satisfy constraint: Member must have value less than or equal to {MAX_RETRY_ATTEMPTS}"
            )
        if not MIN_EVENT_AGE_S <= self.maximum_event_age_s <= DEFAULT_MAX_EVENT_AGE_S:
            raise InvalidParameterValueException(
                f"1 validation error detected: Value '{self.maximum_event_age_s}' at 'maximumEventAgeInSeconds' "
                f"failed to satisfy constraint: Member must have value between {MIN_EVENT_AGE_S} and "
                f"{DEFAULT_MAX_EVENT_AGE_S}"
            )

    @classmethod
    def of(
        cls,
        function_name: str,
        qualifier: str | None = None,
        *,
        maximum_retry_attempts: int | None = None,
        maximum_event_age_s: int | None = None,
        on_success_destination: str | None = None,
        on_failure_destination: str | None = None,
    ) -> EventInvokeConfig:
        """From a request or a template, where an absent value (None) means AWS's default."""
        return cls(
            function_name,
            qualifier or "$LATEST",
            DEFAULT_MAX_RETRY_ATTEMPTS if maximum_retry_attempts is None else maximum_retry_attempts,
            DEFAULT_MAX_EVENT_AGE_S if maximum_event_age_s is None else maximum_event_age_s,
            on_success_destination or None,
            on_failure_destination or None,
        )


class LambdaControl(Protocol):
    """Create and configure Lambda resources. Errors raise LambdaApiError (AWS-shaped) from lambdalab.awslambda."""

    def create_function(self, spec: FunctionSpec) -> str:
        """Create the function; return its ARN."""
        ...

    def publish_version(self, function_name: str, description: str = "") -> str:
        """Publish $LATEST as a new version; return the version's number as a string ("1", "2", ...)."""
        ...

    def create_alias(self, function_name: str, alias_name: str, function_version: str, description: str = "") -> str:
        """Create an alias; return its ARN."""
        ...

    def put_function_concurrency(self, function_name: str, reserved: int) -> None: ...

    def put_provisioned_concurrency(self, function_name: str, qualifier: str, count: int) -> None: ...

    def put_event_invoke_config(self, config: EventInvokeConfig) -> None: ...

    def publish_layer_version(self, spec: LayerSpec) -> str:
        """Publish a new version of the layer; return its LayerVersionArn."""
        ...

    def function_arn(self, function_name: str, qualifier: str | None = None) -> str: ...

    def create_event_source_mapping(self, properties: dict[str, Any]) -> str:
        """AWS::Lambda::EventSourceMapping (resolved properties) → the mapping's UUID. A control that runs no
        mappings raises NotImplementedError (the deploy then names the resource as not run locally)."""
        ...
