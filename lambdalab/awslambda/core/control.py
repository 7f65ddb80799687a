"""The Python interface the local deploy uses to create Lambda resources in the local Lambda service.

The deployer (lambdalab.deploy) talks to this protocol; lambdalab.awslambda.service.service.LambdaService implements it.
Everything else reaches the Lambda service through its HTTP API, as the AWS CLI and boto3 do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

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


@dataclass(frozen=True)
class EventInvokeConfigSpec:
    """AWS::Lambda::EventInvokeConfig / a SAM EventInvokeConfig."""

    function_name: str
    qualifier: str
    maximum_retry_attempts: int | None = None
    maximum_event_age_s: int | None = None
    on_success_destination: str | None = None
    on_failure_destination: str | None = None


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

    def put_event_invoke_config(self, spec: EventInvokeConfigSpec) -> None: ...

    def publish_layer_version(self, spec: LayerSpec) -> str:
        """Publish a new version of the layer; return its LayerVersionArn."""
        ...

    def function_arn(self, function_name: str, qualifier: str | None = None) -> str: ...

    def create_event_source_mapping(self, properties: dict[str, Any]) -> str:
        """AWS::Lambda::EventSourceMapping (resolved properties) → the mapping's UUID. A control that runs no
        mappings raises NotImplementedError (the deploy then names the resource as not run locally)."""
        ...
