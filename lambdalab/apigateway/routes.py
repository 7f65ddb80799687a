"""The routing table of the deployed REST APIs: resources, methods and their integrations, matched as API Gateway
matches them (literal path parts before `{param}`, `{param}` before `{proxy+}`, a method before ANY)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from lambdalab.apigateway.accesslog import AccessLogSetting

LOG = logging.getLogger(__name__)

# arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{function arn}/invocations
_LAMBDA_URI = re.compile(
    r"^arn:[^:]+:apigateway:[^:]*:lambda:path/\d{4}-\d{2}-\d{2}/functions/(?P<arn>.+)/invocations$"
)
_STAGE_VARIABLE = re.compile(r"\$\{stageVariables\.([A-Za-z0-9_]+)\}")
ANY = "ANY"


@dataclass(frozen=True)
class Integration:
    """A method's integration as GetIntegration reports it."""

    type: str  # AWS_PROXY, AWS, HTTP, HTTP_PROXY, MOCK
    uri: str = ""
    http_method: str = ""  # integrationHttpMethod

    def function_arn(self, stage_variables: Mapping[str, str]) -> str | None:
        """The Lambda function (qualified) ARN a Lambda integration invokes, stage variables substituted."""
        uri = _STAGE_VARIABLE.sub(lambda m: stage_variables.get(m.group(1), ""), self.uri)
        match = _LAMBDA_URI.match(uri)
        return match.group("arn") if match else None


@dataclass(frozen=True)
class Method:
    http_method: str
    integration: Integration | None
    authorization_type: str = "NONE"
    api_key_required: bool = False


@dataclass(frozen=True)
class Resource:
    """One API resource: its id, its path template (`/products/{id}`) and its methods by HTTP method."""

    id: str
    path: str
    methods: Mapping[str, Method] = field(default_factory=dict)

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(p for p in self.path.split("/") if p)


@dataclass(frozen=True)
class Stage:
    name: str
    variables: Mapping[str, str] = field(default_factory=dict)
    deployment_id: str = ""
    access_log: AccessLogSetting | None = None  # the stage's accessLogSettings (destination + format)


@dataclass(frozen=True)
class RestApi:
    id: str
    name: str
    resources: tuple[Resource, ...]
    stages: Mapping[str, Stage]
    binary_media_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class Match:
    """A request matched to a resource and method, with the path parameters it bound."""

    api: RestApi
    stage: Stage
    resource: Resource
    method: Method
    path_parameters: dict[str, str]


def _part_rank(part: str) -> int:
    """Literal parts win over `{param}`, which wins over `{proxy+}`."""
    if part.startswith("{") and part.endswith("+}"):
        return 2
    if part.startswith("{") and part.endswith("}"):
        return 1
    return 0


def _bind(template: tuple[str, ...], path: tuple[str, ...]) -> dict[str, str] | None:
    """Path parameters if `path` matches the resource `template`, else None."""
    params: dict[str, str] = {}
    for index, part in enumerate(template):
        rank = _part_rank(part)
        if rank == 2:  # greedy: one or more remaining segments, and only as the last part
            rest = path[index:]
            if not rest or index != len(template) - 1:
                return None
            params[part[1:-2]] = "/".join(unquote(p) for p in rest)
            return params
        if index >= len(path):
            return None
        if rank == 1:
            params[part[1:-1]] = unquote(path[index])
        elif part != path[index]:
            return None
    return params if len(template) == len(path) else None


def resource_for(resources: Iterable[Resource], path: str) -> tuple[Resource, dict[str, str]] | None:
    """The most specific resource whose template matches `path` (no stage), and its path parameters."""
    segments = tuple(p for p in path.split("/") if p)
    candidates = []
    for resource in resources:
        params = _bind(resource.parts, segments)
        if params is not None:
            candidates.append((tuple(_part_rank(p) for p in resource.parts), resource, params))
    if not candidates:
        return None
    candidates.sort(key=lambda c: c[0])
    _, resource, params = candidates[0]
    return resource, params


@dataclass
class RouteTable:
    """Every deployed REST API by id."""

    apis: dict[str, RestApi] = field(default_factory=dict)

    def match(self, api_id: str, stage_name: str, method: str, path: str) -> Match | None:
        api = self.apis.get(api_id)
        stage = api.stages.get(stage_name) if api is not None else None
        if api is None or stage is None:
            return None
        found = resource_for(api.resources, path)
        if found is None:
            return None
        resource, params = found
        chosen = resource.methods.get(method.upper()) or resource.methods.get(ANY)
        if chosen is None:
            return None
        return Match(api, stage, resource, chosen, params)


def table_from_api(apis: Iterable[Mapping[str, Any]], fetch: Any) -> RouteTable:
    """Build the table from GetRestApis items; `fetch(api_id)` returns (GetResources items, GetStages items)."""
    table = RouteTable()
    for item in apis:
        resources_items, stage_items = fetch(item["id"])
        resources = []
        for res in resources_items:
            methods = {}
            for verb, method in (res.get("resourceMethods") or {}).items():
                raw = method.get("methodIntegration") or None
                integration = (
                    Integration(str(raw.get("type", "")).upper(), raw.get("uri") or "", raw.get("httpMethod") or "")
                    if raw
                    else None
                )
                methods[verb.upper()] = Method(
                    verb.upper(),
                    integration,
                    method.get("authorizationType") or "NONE",
                    bool(method.get("apiKeyRequired")),
                )
            resources.append(Resource(res["id"], res.get("path") or "/", methods))
        stages = {
            s["stageName"]: Stage(
                s["stageName"], dict(s.get("variables") or {}), s.get("deploymentId") or "", _access_log(s)
            )
            for s in stage_items
        }
        table.apis[item["id"]] = RestApi(
            item["id"], item.get("name") or "", tuple(resources), stages, tuple(item.get("binaryMediaTypes") or ())
        )
    return table


def _access_log(stage: dict[str, Any]) -> AccessLogSetting | None:
    settings = stage.get("accessLogSettings") or {}
    if settings.get("destinationArn") and settings.get("format"):
        return AccessLogSetting(str(settings["destinationArn"]), str(settings["format"]))
    return None
