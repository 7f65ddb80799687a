"""The Lambda service's state: functions, their published versions, aliases and settings (no I/O, no processes)."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lambdalab.awslambda.core.control import FunctionSpec, LayerSpec
from lambdalab.awslambda.core.exceptions import (
    InvalidParameterValueException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lambdalab.awslambda.runtime.builds import CodeArtifact
from lambdalab.clock import Clock

LOG = logging.getLogger(__name__)

LATEST = "$LATEST"
_NAME_RE = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")
_ALIAS_RE = re.compile(r"^(?!^[0-9]+$)([a-zA-Z0-9-_]+)$")
_ARN_RE = re.compile(r"^arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:function:([a-zA-Z0-9-_]+)(?::([a-zA-Z0-9-_$]+))?$")
_PARTIAL_ARN_RE = re.compile(r"^\d{12}:function:([a-zA-Z0-9-_]+)(?::([a-zA-Z0-9-_$]+))?$")
_SHORT_QUALIFIED_RE = re.compile(r"^([a-zA-Z0-9-_]+):([a-zA-Z0-9-_$]+)$")


def _timestamp(epoch: Clock) -> str:
    """Lambda's LastModified format, of the epoch clock's time: 2026-11-22T06:30:00.000+0000."""
    return datetime.fromtimestamp(epoch.now(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def split_function_name(name: str) -> tuple[str, str | None]:
    """A function name, partial ARN or ARN (optionally qualified) → (name, qualifier or None)."""
    for pattern in (_ARN_RE, _PARTIAL_ARN_RE, _SHORT_QUALIFIED_RE):
        match = pattern.match(name)
        if match:
            return match.group(1), match.group(2)
    if _NAME_RE.match(name):
        return name, None
    raise InvalidParameterValueException(
        f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy constraint: Member must "
        "satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?"
        "(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?"
    )


def code_sha256(code_dir: Path) -> str:
    """A stable digest of the code folder (what CodeSha256 means for a zip, applied to the folder we run)."""
    digest = hashlib.sha256()
    if code_dir.is_dir():
        for path in sorted(p for p in code_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(str(path.relative_to(code_dir)).encode())
            digest.update(path.read_bytes())
    return base64.b64encode(digest.digest()).decode()


@dataclass
class FunctionVersion:
    version: str
    spec: FunctionSpec
    code_sha256: str
    last_modified: str
    description: str = ""
    revision_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    artifact: CodeArtifact | None = None  # the import path it runs with (None: the code folder alone)

    @property
    def code(self) -> CodeArtifact:
        return self.artifact if self.artifact is not None else CodeArtifact(self.spec.code_dir)


_LAYER_NAME_RE = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")
_LAYER_ARN_RE = re.compile(r"^arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:(\d{12}):layer:([a-zA-Z0-9-_]+):(\d+)$")
MAX_LAYERS = 5


@dataclass
class LayerVersion:
    name: str
    version: int
    arn: str  # LayerVersionArn
    layer_arn: str
    spec: LayerSpec
    opt_root: Path  # the folder the layer is extracted to (/opt), built when it asks for it
    code_sha256: str
    created: str


class LayerStore:
    """Every layer version of the local account in one Region."""

    def __init__(self, region: str, account_id: str, *, epoch: Clock) -> None:
        self.epoch = epoch  # LastModified, CreatedDate
        self.region = region
        self.account_id = account_id
        self._layers: dict[str, dict[int, LayerVersion]] = {}
        self._next: dict[str, int] = {}

    def layer_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:layer:{name}"

    def publish(self, spec: LayerSpec, opt_root: Path) -> LayerVersion:
        if not _LAYER_NAME_RE.match(spec.name):
            raise InvalidParameterValueException(
                f"1 validation error detected: Value '{spec.name}' at 'layerName' failed to satisfy constraint: "
                "Member must satisfy regular expression pattern: (arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:"
                "layer:[a-zA-Z0-9-_]+)|[a-zA-Z0-9-_]+"
            )
        number = self._next.get(spec.name, 1)
        self._next[spec.name] = number + 1
        layer_arn = self.layer_arn(spec.name)
        version = LayerVersion(
            name=spec.name,
            version=number,
            arn=f"{layer_arn}:{number}",
            layer_arn=layer_arn,
            spec=spec,
            opt_root=opt_root,
            code_sha256=code_sha256(opt_root),
            created=_timestamp(self.epoch),
        )
        self._layers.setdefault(spec.name, {})[number] = version
        return version

    def get(self, name: str, version: int) -> LayerVersion:
        found = self._layers.get(name, {}).get(version)
        if found is None:
            raise ResourceNotFoundException("The resource you requested does not exist.")
        return found

    def by_arn(self, arn: str) -> LayerVersion:
        """A function's Layers entry → the layer version; AWS's message for one that does not exist."""
        match = _LAYER_ARN_RE.match(arn)
        if match is None:
            raise InvalidParameterValueException(
                f"1 validation error detected: Value '[{arn}]' at 'layers' failed to satisfy constraint: Member "
                "must satisfy constraint: [Member must have length less than or equal to 140, Member must have "
                "length greater than or equal to 1, Member must satisfy regular expression pattern: "
                "(arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+)|"
                "(arn:[a-zA-Z0-9-]+:lambda:::awslayer:[a-zA-Z0-9-_]+), Member must not be null]"
            )
        found = self._layers.get(match.group(2), {}).get(int(match.group(3)))
        if found is None or match.group(1) != self.account_id:
            raise InvalidParameterValueException(f"Layer version {arn} does not exist.")
        return found

    def resolve(self, arns: tuple[str, ...]) -> list[LayerVersion]:
        if len(arns) > MAX_LAYERS:
            raise InvalidParameterValueException(f"Cannot exceed {MAX_LAYERS} layers.")
        return [self.by_arn(arn) for arn in arns]

    def versions(self, name: str) -> list[LayerVersion]:
        return [self._layers[name][n] for n in sorted(self._layers.get(name, {}), reverse=True)]

    def names(self) -> list[str]:
        return sorted(name for name, versions in self._layers.items() if versions)

    def delete(self, name: str, version: int) -> None:
        self._layers.get(name, {}).pop(version, None)


@dataclass
class Alias:
    name: str
    function_version: str
    description: str = ""
    revision_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class LambdaFunction:
    name: str
    arn: str
    latest: FunctionVersion
    versions: dict[str, FunctionVersion] = field(default_factory=dict)
    aliases: dict[str, Alias] = field(default_factory=dict)
    next_version: int = 1
    # Reserved and provisioned concurrency are not here: the concurrency policy holds them (LambdaService asks it);
    # nor are event invoke configs: the async queue holds them (control.EventInvokeConfig).

    def version(self, version: str) -> FunctionVersion:
        if version == LATEST:
            return self.latest
        try:
            return self.versions[version]
        except KeyError:
            raise ResourceNotFoundException(f"Function not found: {self.arn}:{version}") from None

    def resolve(self, qualifier: str | None) -> tuple[str, FunctionVersion]:
        """(the qualifier as invoked, the version that runs). Unqualified means $LATEST."""
        if qualifier is None or qualifier == LATEST:
            return LATEST, self.latest
        if qualifier in self.aliases:
            return qualifier, self.version(self.aliases[qualifier].function_version)
        if qualifier.isdigit():
            return qualifier, self.version(qualifier)
        raise ResourceNotFoundException(f"Function not found: {self.arn}:{qualifier}")

    def qualified_arn(self, qualifier: str | None) -> str:
        return self.arn if qualifier is None else f"{self.arn}:{qualifier}"


class FunctionStore:
    """Every function of the local account in one Region."""

    def __init__(self, region: str, account_id: str, *, epoch: Clock) -> None:
        self.epoch = epoch  # LastModified, CreatedDate
        self.region = region
        self.account_id = account_id
        self._functions: dict[str, LambdaFunction] = {}

    def arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"

    def create(self, spec: FunctionSpec, artifact: CodeArtifact | None = None) -> LambdaFunction:
        if not _NAME_RE.match(spec.name):
            raise InvalidParameterValueException(f"Invalid function name: {spec.name!r} (1-64 of a-z A-Z 0-9 - _)")
        if spec.name in self._functions:
            raise ResourceConflictException(f"Function already exist: {spec.name}")
        # Environments run with the code folder as working directory: a relative path would not survive the chdir.
        spec = replace(spec, code_dir=spec.code_dir.resolve())
        validate_spec(spec)
        latest = FunctionVersion(
            LATEST, spec, code_sha256(spec.code_dir), _timestamp(self.epoch), spec.description, artifact=artifact
        )
        function = LambdaFunction(name=spec.name, arn=self.arn(spec.name), latest=latest)
        self._functions[spec.name] = function
        return function

    def get(self, name_or_arn: str) -> LambdaFunction:
        name, _ = split_function_name(name_or_arn)
        try:
            return self._functions[name]
        except KeyError:
            raise ResourceNotFoundException(f"Function not found: {self.arn(name)}") from None

    def delete(self, name: str) -> LambdaFunction:
        function = self.get(name)
        del self._functions[function.name]
        return function

    def all(self) -> list[LambdaFunction]:
        return sorted(self._functions.values(), key=lambda f: f.name)

    def values(self) -> list[LambdaFunction]:
        """Every function, in no particular order (cheaper than `all()` on hot paths)."""
        return list(self._functions.values())

    def update_configuration(
        self, function: LambdaFunction, artifact: CodeArtifact | None = None, **changes: Any
    ) -> FunctionVersion:
        spec = replace(function.latest.spec, **changes)
        validate_spec(spec)
        kept = artifact if artifact is not None else function.latest.artifact
        function.latest = FunctionVersion(
            LATEST, spec, code_sha256(spec.code_dir), _timestamp(self.epoch), spec.description, artifact=kept
        )
        return function.latest

    def publish_version(self, function: LambdaFunction, description: str = "") -> FunctionVersion:
        """Publish $LATEST; like AWS, publishing unchanged code and configuration returns the newest version."""
        if function.versions:
            newest = function.versions[str(function.next_version - 1)]
            if newest.spec == function.latest.spec and newest.code_sha256 == function.latest.code_sha256:
                return newest
        number = str(function.next_version)
        function.next_version += 1
        version = FunctionVersion(
            number,
            function.latest.spec,
            function.latest.code_sha256,
            _timestamp(self.epoch),
            description or "",
            artifact=function.latest.artifact,
        )
        function.versions[number] = version
        return version

    def create_alias(self, function: LambdaFunction, name: str, version: str, description: str = "") -> Alias:
        if not _ALIAS_RE.match(name) or len(name) > 128:
            raise InvalidParameterValueException(f"Invalid alias name: {name!r}")
        if name in function.aliases:
            raise ResourceConflictException(f"Alias already exists: {function.arn}:{name}")
        function.version(version)  # must exist
        alias = Alias(name, version, description)
        function.aliases[name] = alias
        return alias


def validate_spec(spec: FunctionSpec) -> None:
    """The limits CreateFunction/UpdateFunctionConfiguration enforce, with AWS's parameter names."""
    if not 1 <= spec.timeout_s <= 900:
        raise InvalidParameterValueException(
            f"1 validation error detected: Value '{spec.timeout_s}' at 'timeout' failed to satisfy constraint: "
            "Member must have value between 1 and 900"
        )
    if not 128 <= spec.memory_mb <= 10240:
        raise InvalidParameterValueException(
            f"1 validation error detected: Value '{spec.memory_mb}' at 'memorySize' failed to satisfy constraint: "
            "Member must have value between 128 and 10240"
        )
    if not spec.runtime.startswith("python"):
        raise InvalidParameterValueException(
            f"The runtime parameter of {spec.runtime} is not supported by the local cloud (Python runtimes only)."
        )
    if "." not in spec.handler:
        raise InvalidParameterValueException(
            f"Invalid handler {spec.handler!r}: expected module.function, e.g. app.lambda_handler"
        )
    if not spec.code_dir.is_dir():
        raise InvalidParameterValueException(f"Code folder {spec.code_dir} does not exist")
