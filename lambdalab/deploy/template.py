"""Load a SAM template, its parameters and samconfig.toml, and transform it to CloudFormation offline."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import re
import shlex
import shutil
import tempfile
import tomllib
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
from samtranslator.model.exceptions import ExceptionWithMessage, InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.arn_generator import ArnGenerator
from samtranslator.translator.translator import Translator

from lambdalab import constants
from lambdalab.awsclients import local_session
from lambdalab.deploy.cfnyaml import TemplateFormatError, parse_text
from lambdalab.errors import UserError

LOG = logging.getLogger(__name__)

SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"
# The bucket samtranslator sees for a local CodeUri: it insists on an S3 location; the real folder is kept aside.
LOCAL_CODE_BUCKET = "lambdalab-local-code"
SAMCONFIG_NAME = "samconfig.toml"
# What an AWS::Serverless::Application's Location becomes, so the transform never calls the Serverless Application
# Repository; the nested stack it turns into is reported as not created.
SERVERLESS_REPO_PLACEHOLDER = "https://lambdalab.invalid/serverlessrepo/"

_LIST_TYPES = ("CommaDelimitedList", "List<Number>")


@dataclass(frozen=True)
class SamConfig:
    """What the deploy reads from samconfig.toml ([default.deploy.parameters], falling back to [default.global...])."""

    path: Path | None = None
    stack_name: str | None = None
    parameter_overrides: dict[str, str] = field(default_factory=dict)


@dataclass
class LoadedTemplate:
    """A template ready for intrinsic resolution: transformed, with local code folders kept aside."""

    path: Path
    original: dict[str, Any]
    transformed: dict[str, Any]
    code_dirs: dict[str, Path]  # logical id of the Lambda function → local folder with its code
    warnings: list[str] = field(default_factory=list)
    # S3 key of a placeholder DefinitionS3Location → the local state machine file it stands for (read as text)
    definition_files: dict[str, Path] = field(default_factory=dict)


class ManagedPolicyLoader:
    """The managed-policy map samtranslator asks for, without calling IAM.

    samtranslator first looks in its bundled map; this loader is its fallback for names the bundle lacks.
    """

    def __init__(self, partition: str = "aws") -> None:
        self.partition = partition

    def load(self) -> dict[str, str]:
        """Name → ARN of every AWS managed policy samtranslator knows (`.../policy/<name>`,
        `.../policy/service-role/<name>`, ...). An unknown name stays as written, and IAM rejects it, as in AWS."""
        return dict(get_bundled_managed_policy_map(self.partition) or {})


# --- loading ------------------------------------------------------------------------------------------------------


def _read_text(path: Path, *, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"cannot read {what}: it is not UTF-8 text", where=str(path)) from None
    except OSError as exc:
        raise UserError(f"cannot read {what}: {exc.strerror}", where=str(path)) from None


def _parse(path: Path, text: str, warnings: list[str] | None) -> Any:
    try:
        parsed = parse_text(text)
    except TemplateFormatError as exc:
        line = f":{exc.line}" if exc.line is not None else ""
        raise UserError(f"Template format error: {exc.message}", where=f"{path}{line}") from None
    if warnings is not None:
        warnings.extend(f"{path}: {warning}" for warning in parsed.warnings)
    return parsed.document


def load_document(path: Path, warnings: list[str] | None = None) -> dict[str, Any]:
    """Parse a template as CloudFormation does (JSON, or YAML 1.1 with the short-form tags: see cfnyaml); a syntax
    error names file and line. Duplicate keys are reported into `warnings`."""
    document = _parse(path, _read_text(path, what="template"), warnings)
    if not isinstance(document, dict):
        raise UserError("Template format error: a template must be a JSON object or YAML mapping", where=str(path))
    if not isinstance(document.get("Resources"), dict) or not document["Resources"]:
        raise UserError("Template format error: At least one Resources member must be defined.", where=str(path))
    return document


def load_structured_file(path: Path, *, what: str, warnings: list[str] | None = None) -> Any:
    """A JSON or YAML file referenced from a template (ASL definition, OpenAPI body), read the same way."""
    return _parse(path, _read_text(path, what=what), warnings)


# --- samconfig.toml and parameter overrides -------------------------------------------------------------------------

_STRUCTURED_OVERRIDE = re.compile(r"^ParameterKey=(?P<key>[^,]+),ParameterValue=(?P<value>.*)$")


def _expand_override_item(item: str) -> list[str]:
    """One command-line item may hold several pairs as sam writes them: `Stage=prod Note="two words"`.

    It is split (shell quoting) only when every part is a `Name=...` pair, so `Note=two words` stays one value.
    """
    try:
        parts = shlex.split(item)
    except ValueError:
        return [item]
    if len(parts) > 1 and all(re.match(r"[A-Za-z0-9]+=|ParameterKey=", part) for part in parts):
        return parts
    if len(parts) == 1 and parts[0] != item and re.match(r"[A-Za-z0-9]+=", parts[0]):
        return parts  # Name="quoted value" → the value without its quotes
    return [item]


def parse_parameter_overrides(items: Sequence[str]) -> dict[str, str]:
    """`K=V` items (or `ParameterKey=K,ParameterValue=V`, as sam accepts) → a dict; a malformed item is a UserError.

    An item may also hold several space-separated pairs with shell quoting, as `sam deploy --parameter-overrides`
    takes them: `"Stage=prod Note='two words'"`.
    """
    return _parse_pairs([part for raw in items for part in _expand_override_item(raw)])


def _parse_pairs(items: Sequence[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items:
        structured = _STRUCTURED_OVERRIDE.match(item)
        if structured:
            key, value = structured.group("key"), structured.group("value")
        else:
            key, sep, value = item.partition("=")
            if not sep:
                raise UserError(f"parameter override {item!r} is not of the form Name=Value")
        key = key.strip()
        if not re.fullmatch(r"[A-Za-z0-9]+", key):
            raise UserError(f"parameter override {item!r}: {key!r} is not a valid parameter name (letters and digits)")
        result[key] = value
    return result


def _split_override_string(text: str, *, where: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise UserError(f"parameter_overrides cannot be split: {exc}", where=where) from None


def read_samconfig(path: Path, *, config_env: str = "default") -> SamConfig:
    """Read stack_name and parameter_overrides; a missing file is an empty config, a malformed one a UserError."""
    if not path.is_file():
        return SamConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"samconfig.toml is not valid TOML: {exc}", where=str(path)) from None
    env = data.get(config_env, {})
    if not isinstance(env, dict):
        return SamConfig(path=path)
    merged: dict[str, Any] = {}
    for command in ("global", "deploy"):  # deploy wins over global, as in sam
        section = env.get(command, {})
        params = section.get("parameters", {}) if isinstance(section, dict) else {}
        if isinstance(params, dict):
            merged.update(params)
    raw = merged.get("parameter_overrides", [])
    if isinstance(raw, str):
        items = _split_override_string(raw, where=str(path))
    elif isinstance(raw, list):
        items = []
        for entry in raw:
            # A list entry may itself hold several space-separated K=V pairs.
            items.extend(_split_override_string(str(entry), where=str(path)))
    else:
        raise UserError("parameter_overrides must be a string or a list of strings", where=str(path))
    try:
        overrides = _parse_pairs(items)
    except UserError as exc:
        raise UserError(exc.message, where=str(path)) from None
    stack_name = merged.get("stack_name")
    return SamConfig(path=path, stack_name=str(stack_name) if stack_name else None, parameter_overrides=overrides)


# --- parameters -----------------------------------------------------------------------------------------------------


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_as_text(v) for v in value)
    return str(value)


def _check_number(name: str, text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise UserError(f"parameter {name}: {text!r} is not a Number") from None
    if not math.isfinite(number):
        raise UserError(f"parameter {name}: {text!r} is not a finite Number")
    return number


def _validate_one(name: str, text: str, declaration: Mapping[str, Any]) -> None:
    kind = str(declaration.get("Type", "String"))
    allowed = declaration.get("AllowedValues")
    if allowed is not None and text not in [_as_text(a) for a in allowed]:
        raise UserError(f"parameter {name}: {text!r} is not one of the AllowedValues {[_as_text(a) for a in allowed]}")
    pattern = declaration.get("AllowedPattern")
    if pattern is not None and kind == "String" and not re.fullmatch(str(pattern), text):
        reason = declaration.get("ConstraintDescription") or f"must match the AllowedPattern {pattern}"
        raise UserError(f"parameter {name}: {text!r} {reason}")
    if kind == "String":
        if "MinLength" in declaration and len(text) < int(declaration["MinLength"]):
            raise UserError(f"parameter {name}: {text!r} is shorter than MinLength {declaration['MinLength']}")
        if "MaxLength" in declaration and len(text) > int(declaration["MaxLength"]):
            raise UserError(f"parameter {name}: {text!r} is longer than MaxLength {declaration['MaxLength']}")
    if kind in ("Number", "List<Number>"):
        numbers = [text] if kind == "Number" else [part.strip() for part in text.split(",")]
        for part in numbers:
            number = _check_number(name, part)
            if "MinValue" in declaration and number < float(declaration["MinValue"]):
                raise UserError(f"parameter {name}: {part} is below MinValue {declaration['MinValue']}")
            if "MaxValue" in declaration and number > float(declaration["MaxValue"]):
                raise UserError(f"parameter {name}: {part} is above MaxValue {declaration['MaxValue']}")


def resolve_parameters(
    template: Mapping[str, Any],
    overrides: Mapping[str, str],
    samconfig: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Each parameter's value: command line → samconfig.toml → template Default, validated against its declaration.

    Returns name → value: a string, or a list of strings for CommaDelimitedList / List<...> types (what Ref gives).
    """
    declared = template.get("Parameters") or {}
    if not isinstance(declared, dict):
        raise UserError("Parameters must be a mapping")
    for source, values in (("--parameter-overrides", overrides), ("samconfig.toml", samconfig or {})):
        unknown = sorted(set(values) - set(declared))
        if unknown:
            raise UserError(
                f"{source}: unknown parameter(s) {', '.join(unknown)}; the template declares: "
                f"{', '.join(sorted(declared)) or 'none'}"
            )
    resolved: dict[str, Any] = {}
    for name, raw_declaration in declared.items():
        declaration = raw_declaration or {}
        kind = str(declaration.get("Type", "String"))
        if kind.startswith("AWS::SSM::"):
            raise UserError(f"parameter {name}: type {kind} (SSM parameter lookup) is not supported by the local cloud")
        if name in overrides:
            text = overrides[name]
        elif samconfig and name in samconfig:
            text = samconfig[name]
        elif "Default" in declaration:
            text = _as_text(declaration["Default"])
        else:
            raise UserError(f"parameter {name} has no value and no Default: pass --parameter-overrides {name}=...")
        if kind not in ("String", "Number", *_LIST_TYPES) and not kind.startswith(("AWS::", "List<AWS::")):
            raise UserError(f"parameter {name}: unknown Type {kind}")
        _validate_one(name, text, declaration)
        if kind in _LIST_TYPES or kind.startswith("List<"):
            resolved[name] = [part.strip() for part in text.split(",")] if text else []
        else:
            resolved[name] = text
    return resolved


# --- SAM transform ---------------------------------------------------------------------------------------------------


def _transforms(document: Mapping[str, Any]) -> list[str]:
    declared = document.get("Transform")
    if declared is None:
        return []
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [str(t) for t in declared]
    if isinstance(declared, dict) and "Name" in declared:
        return [str(declared["Name"])]
    raise UserError(f"Transform {declared!r} is not understood")


def _is_local_path(value: Any) -> bool:
    return isinstance(value, str) and not value.startswith("s3://") and "://" not in value


def cache_root() -> Path:
    """LAMBDALAB_CACHE_DIR → $XDG_CACHE_HOME/lambdalab → ~/.cache/lambdalab."""
    explicit = os.environ.get(constants.ENV_CACHE_DIR)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "lambdalab"


def unpack_zip(archive: Path, *, where: str) -> Path:
    """A .zip deployment package unpacked once into the cache, keyed by the archive's SHA-256 (a changed archive is a
    new folder). Lambda unpacks the package into /var/task; the function runs from this folder the same way."""
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    target = cache_root() / "code" / digest
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=target.parent))
    try:
        with zipfile.ZipFile(archive) as package:
            for member in package.infolist():
                destination = (staging / member.filename).resolve()
                if not destination.is_relative_to(staging.resolve()):
                    raise UserError(
                        f"{archive.name}: member {member.filename!r} points outside the package", where=where
                    )
                package.extract(member, staging)
                mode = (member.external_attr >> 16) & 0o777
                if mode and not member.is_dir():
                    destination.chmod(mode)  # keep executable bits (a bootstrap, a binary), as Lambda does
        staging.rename(target)
    except zipfile.BadZipFile as exc:
        raise UserError(f"{archive.name} is not a valid .zip archive: {exc}", where=where) from None
    except OSError:
        if not target.is_dir():  # a concurrent deploy may have unpacked the same archive first
            raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    LOG.info("unpacked %s into %s", archive, target)
    return target


def _local_dir(base: Path, value: str, *, where: str) -> Path:
    """A local code location: a folder, or a .zip package (unpacked into the cache)."""
    location = (base / value).resolve()
    if location.is_dir():
        return location
    if location.is_file():
        if zipfile.is_zipfile(location):
            return unpack_zip(location, where=where)
        raise UserError(f"code location {value!r} is a file but not a .zip archive ({location})", where=where)
    raise UserError(f"code folder {value!r} does not exist ({location})", where=where)


def write_inline_code(logical_id: str, source: str, runtime: str) -> Path:
    """Lambda puts InlineCode / ZipFile into index.py (Python) or index.js (Node.js); do the same in a temp folder."""
    folder = Path(tempfile.mkdtemp(prefix=f"lambdalab-inline-{logical_id}-"))
    name = "index.js" if runtime.startswith("nodejs") else "index.py"
    (folder / name).write_text(source, encoding="utf-8")
    return folder


def _definition_location(
    path: Path, logical_id: str, definition_files: dict[str, Path], *, where: str
) -> dict[str, str]:
    """A state machine file kept as text: CloudFormation substitutes DefinitionSubstitutions into the file's text
    (a placeholder may stand outside quotes, `"MaxConcurrency": ${Max}`, so the file need not parse before)."""
    if not path.is_file():
        raise UserError(f"state machine definition {path} does not exist", where=where)
    key = f"statemachine/{logical_id}"
    definition_files[key] = path
    return {"Bucket": LOCAL_CODE_BUCKET, "Key": key}


def _prepare_sam(
    document: dict[str, Any], base: Path, template_path: Path, definition_files: dict[str, Path]
) -> dict[str, Path]:
    """Inline local DefinitionUri files and swap local CodeUri folders for a placeholder S3 location.

    samtranslator accepts only S3 locations for CodeUri; the code runs in place locally, so the real folder is kept
    in the returned side table (logical id → folder) and the S3 key names the logical id.
    """
    code_dirs: dict[str, Path] = {}
    globals_function = (
        ((document.get("Globals") or {}).get("Function") or {}) if isinstance(document.get("Globals"), dict) else {}
    )
    global_code = globals_function.get("CodeUri")
    global_runtime = str(globals_function.get("Runtime", ""))
    globals_api = (document.get("Globals") or {}).get("Api") if isinstance(document.get("Globals"), dict) else None
    global_api_uri = globals_api.get("DefinitionUri") if isinstance(globals_api, dict) else None
    if _is_local_path(global_api_uri) and isinstance(globals_api, dict):
        del globals_api["DefinitionUri"]  # inlined into each Api below; samtranslator would want an S3 location
    for logical_id, resource in document["Resources"].items():
        if not isinstance(resource, dict):
            continue
        kind = resource.get("Type")
        props = resource.setdefault("Properties", {}) if kind and str(kind).startswith("AWS::Serverless::") else None
        where = f"{template_path}: Resources.{logical_id}"
        if kind == "AWS::Serverless::Function" and isinstance(props, dict):
            if props.get("PackageType") == "Image":
                continue
            if "InlineCode" in props:
                runtime = str(props.get("Runtime", global_runtime))
                code_dirs[logical_id] = write_inline_code(logical_id, str(props["InlineCode"]), runtime)
                continue
            code_uri = props.get("CodeUri", global_code)
            if code_uri is None:
                raise UserError("a function needs CodeUri (or InlineCode)", where=where)
            if _is_local_path(code_uri):
                code_dirs[logical_id] = _local_dir(base, str(code_uri), where=where)
                props["CodeUri"] = {"Bucket": LOCAL_CODE_BUCKET, "Key": logical_id}
        elif kind == "AWS::Serverless::LayerVersion" and isinstance(props, dict):
            content_uri = props.get("ContentUri")
            if _is_local_path(content_uri):
                code_dirs[logical_id] = _local_dir(base, str(content_uri), where=where)
                props["ContentUri"] = {"Bucket": LOCAL_CODE_BUCKET, "Key": logical_id}
        elif kind == "AWS::Serverless::Application" and isinstance(props, dict):
            location = props.get("Location")
            if isinstance(location, dict):
                # samtranslator would call the Serverless Application Repository over the network; the local cloud
                # never does. The nested stack it becomes is reported as not created.
                app = f"{location.get('ApplicationId')}@{location.get('SemanticVersion')}"
                props["Location"] = f"{SERVERLESS_REPO_PLACEHOLDER}{app}"
        elif kind == "AWS::Serverless::StateMachine" and isinstance(props, dict):
            uri = props.get("DefinitionUri")
            if _is_local_path(uri) and "Definition" not in props:
                path = base / str(uri)
                try:  # a JSON file inlines as Definition (its placeholders sit in strings: the same result)
                    props["Definition"] = json.loads(_read_text(path, what="state machine definition"))
                    del props["DefinitionUri"]
                except json.JSONDecodeError:  # YAML, or placeholders outside strings: substituted as text
                    props["DefinitionUri"] = _definition_location(path, logical_id, definition_files, where=where)
        elif kind in ("AWS::Serverless::Api", "AWS::Serverless::HttpApi") and isinstance(props, dict):
            uri = props.get("DefinitionUri")
            if uri is None and "DefinitionBody" not in props and kind == "AWS::Serverless::Api":
                uri = global_api_uri
            if _is_local_path(uri) and "DefinitionBody" not in props:
                props["DefinitionBody"] = load_structured_file(base / str(uri), what="OpenAPI definition")
                props.pop("DefinitionUri", None)
    return code_dirs


INCLUDE_TRANSFORM = "AWS::Include"


def expand_includes(value: Any, base: Path, template_path: Path, depth: int = 0) -> Any:
    """`Fn::Transform: {Name: AWS::Include, Parameters: {Location: file}}` replaced by the file's content, as
    CloudFormation does with the S3 object that `sam deploy` / `aws cloudformation package` upload for a local
    Location. A mapping holding the transform beside other keys gets the included keys merged in. An S3 Location is
    refused (the local cloud reads no S3 objects into templates), and so is any other macro."""
    if depth > 20:
        raise UserError("AWS::Include nests more than 20 levels deep", where=str(template_path))
    if isinstance(value, list):
        return [expand_includes(item, base, template_path, depth) for item in value]
    if not isinstance(value, dict):
        return value
    expanded = {k: expand_includes(v, base, template_path, depth) for k, v in value.items() if k != "Fn::Transform"}
    if "Fn::Transform" not in value:
        return expanded
    transform = value["Fn::Transform"]
    name = transform.get("Name") if isinstance(transform, dict) else None
    if name != INCLUDE_TRANSFORM:
        raise UserError(
            f"Fn::Transform {name!r}: macros are not supported by the local cloud (only AWS::Include of a local file)",
            where=str(template_path),
        )
    location = str(((transform.get("Parameters") or {}) if isinstance(transform, dict) else {}).get("Location", ""))
    if not location or not _is_local_path(location):
        raise UserError(
            f"AWS::Include of {location or 'no Location'} is not supported by the local cloud: it reads no S3 "
            "objects; give the local file's path as Location (sam deploy uploads it)",
            where=str(template_path),
        )
    path = (base / location).resolve()
    if not path.is_file():
        raise UserError(f"AWS::Include: {location} does not exist ({path})", where=str(template_path))
    included = expand_includes(load_structured_file(path, what="included snippet"), path.parent, path, depth + 1)
    if not expanded:
        return included
    if not isinstance(included, dict):
        raise UserError(f"AWS::Include: {location} must hold a mapping to merge beside other keys", where=str(path))
    return {**expanded, **included}


def _local_definition_s3_locations(
    document: dict[str, Any], base: Path, template_path: Path, definition_files: dict[str, Path]
) -> None:
    """`AWS::StepFunctions::StateMachine` with `DefinitionS3Location: ./file.asl.json` (as `aws cloudformation package`
    allows): the file is kept as text, like a SAM DefinitionUri."""
    for logical_id, resource in document["Resources"].items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::StepFunctions::StateMachine":
            continue
        props = resource.get("Properties") or {}
        location = props.get("DefinitionS3Location")
        if isinstance(location, str) and _is_local_path(location):
            where = f"{template_path}: Resources.{logical_id}.Properties.DefinitionS3Location"
            props["DefinitionS3Location"] = _definition_location(
                base / location, logical_id, definition_files, where=where
            )


def _collect_cfn_code(document: dict[str, Any], base: Path, template_path: Path) -> dict[str, Path]:
    """Plain AWS::Lambda::Function resources: `Code: ./folder` (as `sam package` allows) or `Code.ZipFile`."""
    code_dirs: dict[str, Path] = {}
    for logical_id, resource in document["Resources"].items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Lambda::Function":
            continue
        props = resource.get("Properties") or {}
        code = props.get("Code")
        where = f"{template_path}: Resources.{logical_id}.Properties.Code"
        if isinstance(code, str) and _is_local_path(code):
            code_dirs[logical_id] = _local_dir(base, code, where=where)
        elif isinstance(code, dict) and isinstance(code.get("ZipFile"), str):
            code_dirs[logical_id] = write_inline_code(logical_id, code["ZipFile"], str(props.get("Runtime", "")))
    return code_dirs


def _transform_error(path: Path, exc: ExceptionWithMessage) -> UserError:
    causes = getattr(exc, "causes", None) or [exc]
    lines = [f"  - {cause.message}" for cause in causes]
    return UserError("the SAM transform failed:\n" + "\n".join(lines), where=str(path))


def load_template(
    template_path: Path,
    *,
    parameter_values: Mapping[str, Any],
    region: str,
    account_id: str,
    stack_name: str,
    document: dict[str, Any] | None = None,
) -> LoadedTemplate:
    """Load, prepare and (if it declares the SAM transform) transform a template to plain CloudFormation.

    `document` is the already parsed template, when the caller has it (to read its Parameters first).
    """
    original = document if document is not None else load_document(template_path)
    base = template_path.resolve().parent
    document = copy.deepcopy(original)
    transforms = _transforms(document)
    warnings: list[str] = []
    unknown = [t for t in transforms if t not in (SAM_TRANSFORM, LANGUAGE_EXTENSIONS)]
    if unknown:
        raise UserError(
            f"transform(s) {', '.join(unknown)} are not supported by the local cloud", where=str(template_path)
        )
    document = expand_includes(document, base, template_path)
    code_dirs: dict[str, Path] = {}
    definition_files: dict[str, Path] = {}
    _local_definition_s3_locations(document, base, template_path, definition_files)
    if SAM_TRANSFORM in transforms:
        code_dirs.update(_prepare_sam(document, base, template_path, definition_files))
        values: dict[str, Any] = {
            **parameter_values,
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::StackName": stack_name,
            "AWS::Partition": "aws",
        }
        ArnGenerator.BOTO_SESSION_REGION_NAME = region
        # A session with the lab's fake credentials: nothing in the transform may reach AWS with the host's.
        session = local_session(region)
        translator = Translator(None, Parser(), boto_session=session)
        loader = ManagedPolicyLoader()
        try:
            transformed = translator.translate(document, parameter_values=values, get_managed_policy_map=loader.load)
        except InvalidDocumentException as exc:
            raise _transform_error(template_path, exc) from None
        except ExceptionWithMessage as exc:
            raise _transform_error(template_path, exc) from None
    else:
        transformed = document
    code_dirs.update(_collect_cfn_code(transformed, base, template_path))
    # Functions that came from SAM keep their logical id, but map S3 keys too (a SAM-generated id may differ).
    for logical_id, resource in transformed.get("Resources", {}).items():
        props = (resource.get("Properties") or {}) if isinstance(resource, dict) else {}
        code = props.get("Code") or props.get("Content")
        if isinstance(code, dict) and code.get("S3Bucket") == LOCAL_CODE_BUCKET:
            source = str(code.get("S3Key"))
            if source in code_dirs:
                code_dirs[logical_id] = code_dirs[source]
    return LoadedTemplate(
        path=template_path,
        original=original,
        transformed=transformed,
        code_dirs=code_dirs,
        warnings=warnings,
        definition_files=definition_files,
    )
