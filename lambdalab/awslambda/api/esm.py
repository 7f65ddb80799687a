"""The Lambda API's event source mapping operations (Create/List/Get/Update/DeleteEventSourceMapping): SQS queues,
Kinesis streams and DynamoDB streams."""

from __future__ import annotations

import logging
from typing import Protocol

from aiohttp import web

from lambdalab.awslambda.api.common import body_json, json_response, route
from lambdalab.awslambda.core.exceptions import InvalidParameterValueException
from lambdalab.awslambda.service.service import LambdaService

LOG = logging.getLogger(__name__)


class ApiContext(Protocol):
    """What these handlers use of the LambdaApi (responses.py): the service."""

    service: LambdaService


PREFIX = "/2015-03-31/event-source-mappings"
MAX_ITEMS = 100


@route("POST", PREFIX)
async def create_event_source_mapping(api: ApiContext, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    body = await body_json(request)
    mappings = api.service.event_sources
    source, _, _ = mappings.check(body)
    queue_url = await mappings.resolve_queue_async(source)  # in a thread: the loop never waits on SQS
    mapping = mappings.create(body, queue_url=queue_url)
    return json_response(mapping.to_api(), status=202)


@route("GET", PREFIX)
async def list_event_source_mappings(api: ApiContext, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    query = request.query
    mappings = api.service.event_sources.list_mappings(query.get("EventSourceArn"), query.get("FunctionName"))
    start = 0
    if query.get("Marker"):
        try:
            start = int(query["Marker"])
        except ValueError:
            raise InvalidParameterValueException(f"Invalid Marker: {query['Marker']!r}") from None
    try:
        limit = int(query.get("MaxItems", MAX_ITEMS))
    except ValueError:
        raise InvalidParameterValueException(f"Invalid MaxItems: {query.get('MaxItems')!r}") from None
    if not 1 <= limit <= 10000:
        raise InvalidParameterValueException(
            f"1 validation error detected: Value '{limit}' at 'maxItems' failed to satisfy constraint: "
            "Member must have value between 1 and 10000"
        )
    page = mappings[start : start + limit]
    answer: dict[str, object] = {"EventSourceMappings": [m.to_api() for m in page]}
    if start + limit < len(mappings):
        answer["NextMarker"] = str(start + limit)
    return json_response(answer)


@route("GET", PREFIX + "/{uuid}")
async def get_event_source_mapping(api: ApiContext, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    return json_response(api.service.event_sources.get(p["uuid"]).to_api())


@route("PUT", PREFIX + "/{uuid}")
async def update_event_source_mapping(api: ApiContext, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    body = await body_json(request)
    return json_response(api.service.event_sources.update(p["uuid"], body).to_api(), status=202)


@route("DELETE", PREFIX + "/{uuid}")
async def delete_event_source_mapping(api: ApiContext, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
    return json_response(api.service.event_sources.delete(p["uuid"]).to_api(), status=202)
