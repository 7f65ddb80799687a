"""The Lambda REST API on aiohttp: parse the request, call the service, shape the answer in AWS's form."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import logging
import uuid
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from lambdalab.awslambda.api import esm as esm_api  # noqa: F401  (registers the event source mapping routes)
from lambdalab.awslambda.api.common import ROUTES, body_json, empty_response, error_response, json_response, route
from lambdalab.awslambda.core.control import EventInvokeConfig, LayerSpec
from lambdalab.awslambda.core.exceptions import (
    InvalidParameterValueException,
    LambdaApiError,
    ProvisionedConcurrencyConfigNotFoundException,
    ResourceNotFoundException,
    ServiceException,
    UnknownOperationError,
)
from lambdalab.awslambda.core.models import LATEST, FunctionVersion, LambdaFunction, LayerVersion, split_function_name
from lambdalab.awslambda.service.service import LambdaService, function_spec_from_api, logging_config

LOG = logging.getLogger(__name__)


def _int(body: dict[str, Any], key: str, minimum: int | None = None) -> int:
    """An integer member of a request body, with AWS's validation message when it is missing or too small."""
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterValueException(
            f"1 validation error detected: Value '{value}' at '{key}' must be an integer"
        )
    if minimum is not None and value < minimum:
        member = key[0].lower() + key[1:]
        raise InvalidParameterValueException(
            f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: "
            f"Member must have value greater than or equal to {minimum}"
        )
    return value


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _unzip(encoded: Any, target: Path) -> None:
    """A base64 zip (Code.ZipFile / Content.ZipFile) into `target`, refusing entries that point outside it."""
    try:
        raw = base64.b64decode(encoded, validate=True)
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except (binascii.Error, zipfile.BadZipFile, ValueError, TypeError):
        raise InvalidParameterValueException(
            "Could not unzip uploaded file. Please check your file, then try to upload again."
        ) from None
    target.mkdir(parents=True, exist_ok=True)
    for member in archive.namelist():
        resolved = (target / member).resolve()
        if not str(resolved).startswith(str(target.resolve())):
            raise InvalidParameterValueException(f"Zip entry {member!r} points outside the folder")
    archive.extractall(target)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


@dataclass
class LambdaApi:
    """Routes Lambda API requests to the service. `code_root` is where CreateFunction unpacks zip files."""

    service: LambdaService
    code_root: Path

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.rel_url.raw_path
        for method, pattern, fn in ROUTES:
            if method != request.method:
                continue
            match = pattern.match(path)
            if match:
                params = {k: unquote(v) for k, v in match.groupdict().items()}
                try:
                    return await fn(self, request, params)
                except LambdaApiError as exc:
                    return error_response(exc)
                except Exception as exc:
                    LOG.exception("Lambda API %s %s failed", request.method, path)
                    return error_response(ServiceException(f"Internal error in the local Lambda service: {exc}"))
        return error_response(
            UnknownOperationError(f"The local Lambda API does not serve {request.method} {request.rel_url.path}")
        )

    # --- helpers --------------------------------------------------------------------------------------------------

    def configuration(self, function: LambdaFunction, version: FunctionVersion) -> dict[str, Any]:
        spec = version.spec
        config: dict[str, Any] = {
            "FunctionName": function.name,
            "FunctionArn": function.qualified_arn(None if version.version == LATEST else version.version),
            "Runtime": spec.runtime,
            "Role": spec.role or f"arn:aws:iam::{self.service.config.account_id}:role/lambdalab-local",
            "Handler": spec.handler,
            "CodeSize": sum(p.stat().st_size for p in spec.code_dir.rglob("*") if p.is_file()),
            "Description": version.description or spec.description,
            "Timeout": spec.timeout_s,
            "MemorySize": spec.memory_mb,
            "LastModified": version.last_modified,
            "CodeSha256": version.code_sha256,
            "Version": version.version,
            "TracingConfig": {"Mode": spec.tracing},
            "RevisionId": version.revision_id,
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "PackageType": "Zip",
            "Architectures": list(spec.architectures),
            "EphemeralStorage": {"Size": 512},
            "LoggingConfig": spec.logging.to_api(function.name),
        }
        if spec.environment:
            config["Environment"] = {"Variables": dict(spec.environment)}
        if spec.dead_letter_target_arn:
            config["DeadLetterConfig"] = {"TargetArn": spec.dead_letter_target_arn}
        if spec.layers:
            config["Layers"] = [
                {"Arn": layer.arn, "CodeSize": _size(layer.opt_root)}
                for layer in self.service.layers.resolve(spec.layers)
            ]
        return config

    def function_and_qualifier(self, name: str, request: web.Request) -> tuple[LambdaFunction, str | None]:
        function = self.service.store.get(name)
        _, embedded = split_function_name(name)
        return function, request.query.get("Qualifier") or embedded

    def pc_config(self, function: LambdaFunction, qualifier: str) -> dict[str, Any]:
        status = self.service.policy.provisioned_status(function.name, qualifier)
        if status is None:
            raise ProvisionedConcurrencyConfigNotFoundException(
                f"No Provisioned Concurrency Config found for this function: {function.qualified_arn(qualifier)}"
            )
        config: dict[str, Any] = {
            "RequestedProvisionedConcurrentExecutions": status.requested,
            "AvailableProvisionedConcurrentExecutions": status.available,
            "AllocatedProvisionedConcurrentExecutions": status.allocated,
            "Status": status.status,
            "LastModified": _iso(status.last_modified),  # stamped when the config was written
        }
        if status.status_reason:
            config["StatusReason"] = status.status_reason
        return config


# --- invoke -----------------------------------------------------------------------------------------------------------


@route("POST", "/2015-03-31/functions/{name}/invocations")
async def invoke(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    payload = await request.read()
    outcome = await api.service.invoke(
        p["name"],
        request.query.get("Qualifier"),
        payload,
        invocation_type=request.headers.get("X-Amz-Invocation-Type", "RequestResponse"),
        log_type=request.headers.get("X-Amz-Log-Type", "None"),
        trace_header=request.headers.get("X-Amzn-Trace-Id"),
        client_context=request.headers.get("X-Amz-Client-Context"),
    )
    headers = {"x-amzn-RequestId": outcome.request_id}
    if outcome.executed_version is not None and outcome.status == 200:
        headers["X-Amz-Executed-Version"] = outcome.executed_version
    if outcome.function_error:
        headers["X-Amz-Function-Error"] = outcome.function_error
    if outcome.log_result is not None:
        headers["X-Amz-Log-Result"] = outcome.log_result
    return web.Response(body=outcome.body, status=outcome.status, headers=headers, content_type="application/json")


# --- functions ----------------------------------------------------------------------------------------------------


@route("GET", "/2015-03-31/functions")
async def list_functions(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    functions = api.service.store.all()
    show_all = request.query.get("FunctionVersion") == "ALL"
    configs = []
    for function in functions:
        configs.append(api.configuration(function, function.latest))
        if show_all:
            configs.extend(api.configuration(function, v) for v in function.versions.values())
    start = int(request.query.get("Marker", "0") or 0)
    limit = int(request.query.get("MaxItems", "50") or 50)
    page = configs[start : start + limit]
    body: dict[str, Any] = {"Functions": page}
    if start + limit < len(configs):
        body["NextMarker"] = str(start + limit)
    return json_response(body)


@route("POST", "/2015-03-31/functions")
async def create_function(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    body = await body_json(request)
    for key in ("FunctionName", "Role", "Code"):
        if key not in body:
            raise InvalidParameterValueException(f"1 validation error detected: '{key}' is required")
    code = body["Code"] or {}
    if "ZipFile" not in code:
        raise InvalidParameterValueException(
            "The local cloud needs the code inline (Code.ZipFile, e.g. aws lambda create-function --zip-file fileb://f.zip)"
        )
    target = api.code_root / f"{body['FunctionName']}-{uuid.uuid4().hex[:8]}"
    _unzip(code["ZipFile"], target)
    spec = function_spec_from_api(body, target)
    roots = api.service.layer_roots(spec.layers)
    artifact = await asyncio.to_thread(api.service.build, spec, roots)  # pip, when it must, off the loop
    api.service.create_function(spec, artifact)
    function = api.service.store.get(spec.name)
    if body.get("Publish"):
        api.service.publish_version(spec.name, body.get("Description", ""))
    return json_response(api.configuration(function, function.latest), status=201)


@route("GET", "/2015-03-31/functions/{name}")
async def get_function(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    function, qualifier = api.function_and_qualifier(p["name"], request)
    _, version = function.resolve(qualifier)
    body: dict[str, Any] = {
        "Configuration": api.configuration(function, version),
        "Code": {"RepositoryType": "Local", "Location": version.spec.code_dir.resolve().as_uri()},
    }
    reserved = api.service.reserved_concurrency(function.name)
    if reserved is not None:
        body["Concurrency"] = {"ReservedConcurrentExecutions": reserved}
    if version.spec.tags:
        body["Tags"] = dict(version.spec.tags)
    return json_response(body)


@route("GET", "/2015-03-31/functions/{name}/configuration")
async def get_function_configuration(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    function, qualifier = api.function_and_qualifier(p["name"], request)
    _, version = function.resolve(qualifier)
    return json_response(api.configuration(function, version))


@route("PUT", "/2015-03-31/functions/{name}/configuration")
async def update_function_configuration(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    body = await body_json(request)
    changes: dict[str, Any] = {}
    if "Timeout" in body:
        changes["timeout_s"] = _int(body, "Timeout")
    if "MemorySize" in body:
        changes["memory_mb"] = _int(body, "MemorySize")
    if "Environment" in body:
        variables = (body["Environment"] or {}).get("Variables") or {}
        changes["environment"] = {str(k): str(v) for k, v in variables.items()}
    if "Handler" in body:
        changes["handler"] = str(body["Handler"])
    if "Description" in body:
        changes["description"] = str(body["Description"])
    if "TracingConfig" in body:
        changes["tracing"] = (body["TracingConfig"] or {}).get("Mode", "PassThrough")
    if "LoggingConfig" in body:
        changes["logging"] = logging_config(body["LoggingConfig"])
    latest = api.service.update_function_configuration(p["name"], **changes)
    function = api.service.store.get(p["name"])
    return json_response(api.configuration(function, latest))


@route("DELETE", "/2015-03-31/functions/{name}")
async def delete_function(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    api.service.delete_function(p["name"], request.query.get("Qualifier"))
    return empty_response(204)


# --- versions and aliases -----------------------------------------------------------------------------------------


@route("POST", "/2015-03-31/functions/{name}/versions")
async def publish_version(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    body = await body_json(request)
    number = api.service.publish_version(p["name"], body.get("Description", ""))
    function = api.service.store.get(p["name"])
    return json_response(api.configuration(function, function.version(number)), status=201)


@route("GET", "/2015-03-31/functions/{name}/versions")
async def list_versions(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    function = api.service.store.get(p["name"])
    versions = [function.latest, *function.versions.values()]
    return json_response({"Versions": [api.configuration(function, v) for v in versions]})


def _alias_body(function: LambdaFunction, name: str) -> dict[str, Any]:
    alias = function.aliases.get(name)
    if alias is None:
        raise ResourceNotFoundException(f"Alias not found: {function.arn}:{name}")
    return {
        "AliasArn": function.qualified_arn(name),
        "Name": name,
        "FunctionVersion": alias.function_version,
        "Description": alias.description,
        "RevisionId": alias.revision_id,
    }


@route("POST", "/2015-03-31/functions/{name}/aliases")
async def create_alias(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    body = await body_json(request)
    for key in ("Name", "FunctionVersion"):
        if key not in body:
            raise InvalidParameterValueException(f"1 validation error detected: '{key}' is required")
    if body.get("RoutingConfig"):
        raise InvalidParameterValueException("Weighted aliases (RoutingConfig) are not supported by the local cloud.")
    api.service.create_alias(p["name"], body["Name"], str(body["FunctionVersion"]), body.get("Description", ""))
    return json_response(_alias_body(api.service.store.get(p["name"]), body["Name"]), status=201)


@route("GET", "/2015-03-31/functions/{name}/aliases")
async def list_aliases(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    function = api.service.store.get(p["name"])
    wanted = request.query.get("FunctionVersion")
    aliases = [
        _alias_body(function, name)
        for name, alias in sorted(function.aliases.items())
        if wanted is None or alias.function_version == wanted
    ]
    return json_response({"Aliases": aliases})


@route("GET", "/2015-03-31/functions/{name}/aliases/{alias}")
async def get_alias(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    return json_response(_alias_body(api.service.store.get(p["name"]), p["alias"]))


@route("PUT", "/2015-03-31/functions/{name}/aliases/{alias}")
async def update_alias(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    body = await body_json(request)
    version = body.get("FunctionVersion")
    api.service.update_alias(p["name"], p["alias"], None if version is None else str(version), body.get("Description"))
    return json_response(_alias_body(api.service.store.get(p["name"]), p["alias"]))


@route("DELETE", "/2015-03-31/functions/{name}/aliases/{alias}")
async def delete_alias(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    function = api.service.store.get(p["name"])
    _alias_body(function, p["alias"])
    api.service.delete_alias(p["name"], p["alias"])
    return empty_response(204)


# --- concurrency ----------------------------------------------------------------------------------------------------


@route("PUT", "/2017-10-31/functions/{name}/concurrency")
async def put_function_concurrency(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    body = await body_json(request)
    reserved = _int(body, "ReservedConcurrentExecutions", minimum=0)
    api.service.put_function_concurrency(p["name"], reserved)
    return json_response({"ReservedConcurrentExecutions": reserved})


@route("GET", "/2019-09-30/functions/{name}/concurrency")
async def get_function_concurrency(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    function = api.service.store.get(p["name"])
    reserved = api.service.reserved_concurrency(function.name)
    return json_response({} if reserved is None else {"ReservedConcurrentExecutions": reserved})


@route("DELETE", "/2017-10-31/functions/{name}/concurrency")
async def delete_function_concurrency(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    api.service.delete_function_concurrency(p["name"])
    return empty_response(204)


@route("PUT", "/2019-09-30/functions/{name}/provisioned-concurrency")
async def put_provisioned(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    body = await body_json(request)
    count = _int(body, "ProvisionedConcurrentExecutions", minimum=1)
    function, qualifier = api.function_and_qualifier(p["name"], request)
    if not qualifier:
        raise InvalidParameterValueException("1 validation error detected: 'Qualifier' is required")
    api.service.put_provisioned_concurrency(function.name, qualifier, count)
    return json_response(api.pc_config(function, qualifier), status=202)


@route("GET", "/2019-09-30/functions/{name}/provisioned-concurrency")
async def get_provisioned(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    function, qualifier = api.function_and_qualifier(p["name"], request)
    if request.query.get("List") == "ALL":
        configs = []
        for q in sorted(api.service.provisioned_qualifiers(function.name)):
            configs.append({"FunctionArn": function.qualified_arn(q), **api.pc_config(function, q)})
        return json_response({"ProvisionedConcurrencyConfigs": configs})
    if not qualifier:
        raise InvalidParameterValueException("1 validation error detected: 'Qualifier' is required")
    return json_response(api.pc_config(function, qualifier))


@route("DELETE", "/2019-09-30/functions/{name}/provisioned-concurrency")
async def delete_provisioned(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    function, qualifier = api.function_and_qualifier(p["name"], request)
    if not qualifier:
        raise InvalidParameterValueException("1 validation error detected: 'Qualifier' is required")
    api.service.delete_provisioned_concurrency(function.name, qualifier)
    return empty_response(204)


@route("GET", "/2016-08-19/account-settings")
async def get_account_settings(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    return json_response(api.service.account_settings())


# --- asynchronous invocation configuration --------------------------------------------------------------------------


def _event_invoke_body(function: LambdaFunction, config: EventInvokeConfig) -> dict[str, Any]:
    destinations: dict[str, Any] = {}
    if config.on_success_destination:
        destinations["OnSuccess"] = {"Destination": config.on_success_destination}
    if config.on_failure_destination:
        destinations["OnFailure"] = {"Destination": config.on_failure_destination}
    return {
        "LastModified": config.last_modified,
        "FunctionArn": function.qualified_arn(config.qualifier),
        "MaximumRetryAttempts": config.maximum_retry_attempts,
        "MaximumEventAgeInSeconds": config.maximum_event_age_s,
        "DestinationConfig": destinations,
    }


def _configured(api: LambdaApi, function: LambdaFunction, qualifier: str) -> EventInvokeConfig:
    config = api.service.event_invoke_config(function.name, qualifier)
    if config is None:
        raise ResourceNotFoundException(
            f"The function {function.qualified_arn(qualifier)} doesn't have an EventInvokeConfig"
        )
    return config


async def _put_event_invoke(api: LambdaApi, request: web.Request, p: dict[str, str], merge: bool) -> web.Response:
    body = await body_json(request)
    function, qualifier = api.function_and_qualifier(p["name"], request)
    qualifier = qualifier or LATEST
    previous = api.service.event_invoke_config(function.name, qualifier) if merge else None
    destinations = body.get("DestinationConfig") or {}

    def pick(key: str, old: Any) -> Any:
        return body.get(key, old)

    config = EventInvokeConfig.of(
        function.name,
        qualifier,
        maximum_retry_attempts=pick("MaximumRetryAttempts", previous and previous.maximum_retry_attempts),
        maximum_event_age_s=pick("MaximumEventAgeInSeconds", previous and previous.maximum_event_age_s),
        on_success_destination=(destinations.get("OnSuccess") or {}).get("Destination")
        or (previous.on_success_destination if previous else None),
        on_failure_destination=(destinations.get("OnFailure") or {}).get("Destination")
        or (previous.on_failure_destination if previous else None),
    )
    return json_response(_event_invoke_body(function, api.service.put_event_invoke_config(config)))


@route("PUT", "/2019-09-25/functions/{name}/event-invoke-config")
async def put_event_invoke_config(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    return await _put_event_invoke(api, request, p, merge=False)


@route("POST", "/2019-09-25/functions/{name}/event-invoke-config")
async def update_event_invoke_config(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    return await _put_event_invoke(api, request, p, merge=True)


@route("GET", "/2019-09-25/functions/{name}/event-invoke-config")
async def get_event_invoke_config(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    function, qualifier = api.function_and_qualifier(p["name"], request)
    return json_response(_event_invoke_body(function, _configured(api, function, qualifier or LATEST)))


@route("GET", "/2019-09-25/functions/{name}/event-invoke-config/list")
async def list_event_invoke_configs(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    function = api.service.store.get(p["name"])
    configs = [_event_invoke_body(function, c) for c in api.service.event_invoke_configs(function.name)]
    return json_response({"FunctionEventInvokeConfigs": configs})


@route("DELETE", "/2019-09-25/functions/{name}/event-invoke-config")
async def delete_event_invoke_config(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    function, qualifier = api.function_and_qualifier(p["name"], request)
    _configured(api, function, qualifier or LATEST)
    api.service.delete_event_invoke_config(function.name, qualifier or LATEST)
    return empty_response(204)


# --- permissions (recorded, not enforced locally) -------------------------------------------------------------------


@route("POST", "/2015-03-31/functions/{name}/policy")
async def add_permission(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    body = await body_json(request)
    function = api.service.store.get(p["name"])
    statement = {
        "Sid": body.get("StatementId", str(uuid.uuid4())),
        "Effect": "Allow",
        "Principal": {"Service": body.get("Principal", "")},
        "Action": body.get("Action", "lambda:InvokeFunction"),
        "Resource": function.arn,
    }
    return json_response({"Statement": json.dumps(statement)}, status=201)


# --- layers -------------------------------------------------------------------------------------------------------


def _layer_version(layer: LayerVersion) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Content": {"Location": layer.opt_root.resolve().as_uri(), "CodeSha256": layer.code_sha256, "CodeSize": 0},
        "LayerArn": layer.layer_arn,
        "LayerVersionArn": layer.arn,
        "Description": layer.spec.description,
        "CreatedDate": layer.created,
        "Version": layer.version,
        "CompatibleRuntimes": list(layer.spec.compatible_runtimes),
        "CompatibleArchitectures": list(layer.spec.compatible_architectures),
    }
    body["Content"]["CodeSize"] = _size(layer.opt_root)
    if layer.spec.license_info:
        body["LicenseInfo"] = layer.spec.license_info
    return body


@route("POST", "/2018-10-31/layers/{name}/versions")
async def publish_layer_version(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    body = await body_json(request)
    content = body.get("Content")
    if not isinstance(content, dict) or "ZipFile" not in content:
        raise InvalidParameterValueException(
            "The local cloud needs the layer content inline (Content.ZipFile, e.g. aws lambda publish-layer-version "
            "--zip-file fileb://layer.zip)"
        )
    target = api.code_root / "layers" / f"{p['name']}-{uuid.uuid4().hex[:8]}"
    _unzip(content["ZipFile"], target)
    spec = LayerSpec(
        name=p["name"],
        content_dir=target,
        compatible_runtimes=tuple(body.get("CompatibleRuntimes") or ()),
        compatible_architectures=tuple(body.get("CompatibleArchitectures") or ()),
        description=str(body.get("Description", "")),
        license_info=body.get("LicenseInfo"),
    )
    layer = api.service.publish_layer_version(spec, target)
    return json_response(_layer_version(layer), status=201)


@route("GET", "/2018-10-31/layers/{name}/versions/{version}")
async def get_layer_version(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    if not p["version"].isdigit():
        raise InvalidParameterValueException(f"Invalid layer version {p['version']!r}")
    return json_response(_layer_version(api.service.layers.get(p["name"], int(p["version"]))))


@route("DELETE", "/2018-10-31/layers/{name}/versions/{version}")
async def delete_layer_version(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    if p["version"].isdigit():
        api.service.layers.delete(p["name"], int(p["version"]))
    return empty_response(204)


@route("GET", "/2018-10-31/layers/{name}/versions")
async def list_layer_versions(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    versions = [_layer_version(v) for v in api.service.layers.versions(p["name"])]
    for version in versions:
        version.pop("Content")
    return json_response({"LayerVersions": versions})


@route("GET", "/2018-10-31/layers")
async def list_layers(api: LambdaApi, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    if request.query.get("find") == "LayerVersion":  # GetLayerVersionByArn
        return json_response(_layer_version(api.service.layers.by_arn(request.query.get("Arn", ""))))
    layers = []
    for name in api.service.layers.names():
        newest = _layer_version(api.service.layers.versions(name)[0])
        newest.pop("Content")
        layers.append({"LayerName": name, "LayerArn": newest["LayerArn"], "LatestMatchingVersion": newest})
    return json_response({"Layers": layers})
