"""Fixtures for the deploy tests: an in-process moto server on a free port and a recording LambdaControl."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from lambdalab.awslambda.core.control import EventInvokeConfig, FunctionSpec, LayerSpec

TEMPLATES = Path(__file__).resolve().parents[2] / "data" / "templates"
REGION = "us-east-1"
ACCOUNT = "123456789012"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@dataclass
class RecordingLambdaControl:
    """A LambdaControl that keeps every call, and answers as the Lambda API would (ARNs, version numbers)."""

    region: str = REGION
    account_id: str = ACCOUNT
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    versions: dict[str, list[str]] = field(default_factory=dict)
    aliases: dict[tuple[str, str], str] = field(default_factory=dict)
    concurrency: dict[str, int] = field(default_factory=dict)
    provisioned: dict[tuple[str, str], int] = field(default_factory=dict)
    invoke_configs: list[EventInvokeConfig] = field(default_factory=list)
    layers: dict[str, LayerSpec] = field(default_factory=dict)  # LayerVersionArn → spec
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def function_arn(self, function_name: str, qualifier: str | None = None) -> str:
        arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{function_name}"
        return f"{arn}:{qualifier}" if qualifier else arn

    def _require(self, name: str) -> None:
        if name not in self.functions:
            raise LookupError(f"Function not found: {name}")

    def create_function(self, spec: FunctionSpec) -> str:
        if spec.name in self.functions:
            raise ValueError(f"Function already exist: {spec.name}")
        self.functions[spec.name] = spec
        self.calls.append(("create_function", spec.name))
        return self.function_arn(spec.name)

    def publish_version(self, function_name: str, description: str = "") -> str:
        self._require(function_name)
        versions = self.versions.setdefault(function_name, [])
        versions.append(str(len(versions) + 1))
        self.calls.append(("publish_version", function_name))
        return versions[-1]

    def create_alias(self, function_name: str, alias_name: str, function_version: str, description: str = "") -> str:
        self._require(function_name)
        if function_version != "$LATEST" and function_version not in self.versions.get(function_name, []):
            raise LookupError(f"version {function_version} of {function_name} does not exist")
        self.aliases[(function_name, alias_name)] = function_version
        self.calls.append(("create_alias", (function_name, alias_name, function_version)))
        return self.function_arn(function_name, alias_name)

    def put_function_concurrency(self, function_name: str, reserved: int) -> None:
        self._require(function_name)
        self.concurrency[function_name] = reserved
        self.calls.append(("put_function_concurrency", (function_name, reserved)))

    def put_provisioned_concurrency(self, function_name: str, qualifier: str, count: int) -> None:
        self._require(function_name)
        self.provisioned[(function_name, qualifier)] = count
        self.calls.append(("put_provisioned_concurrency", (function_name, qualifier, count)))

    def put_event_invoke_config(self, spec: EventInvokeConfig) -> None:
        self._require(spec.function_name)
        self.invoke_configs.append(spec)
        self.calls.append(("put_event_invoke_config", spec.function_name))

    def publish_layer_version(self, spec: LayerSpec) -> str:
        number = 1 + sum(1 for arn in self.layers if arn.split(":")[6] == spec.name)
        arn = f"arn:aws:lambda:{self.region}:{self.account_id}:layer:{spec.name}:{number}"
        self.layers[arn] = spec
        self.calls.append(("publish_layer_version", spec.name))
        return arn

    def create_event_source_mapping(self, properties: dict[str, Any]) -> str:
        raise NotImplementedError("this control runs no event source mappings")


@dataclass
class MappingLambdaControl(RecordingLambdaControl):
    """The same, plus create_event_source_mapping (the method the lead adds to the real service)."""

    mappings: list[dict[str, Any]] = field(default_factory=list)

    def create_event_source_mapping(self, properties: dict[str, Any]) -> str:
        self.mappings.append(properties)
        return f"uuid-{len(self.mappings)}"


@pytest.fixture
def control() -> RecordingLambdaControl:
    return RecordingLambdaControl()
