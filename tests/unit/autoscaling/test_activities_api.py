"""DescribeScalingActivities served by the lab: filters, paging, AWS-shaped validation errors; the rest to moto."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp import web

from lambdalab.autoscaling.runner import ActivityStore, ScalingActivitiesApi

TARGET = "AnyScaleFrontendService."


def activity(n: int, namespace: str = "dynamodb", resource: str = "table/t") -> dict[str, Any]:
    return {
        "ActivityId": f"a{n}", "ServiceNamespace": namespace, "ResourceId": resource,
        "ScalableDimension": "dynamodb:table:WriteCapacityUnits",
        "Description": f"Setting write capacity units to {n}.",
        "Cause": "c", "StartTime": float(n), "EndTime": float(n), "StatusCode": "Successful",
    }  # fmt: skip


async def call(server: Any, action: str, body: Any) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            server.make_url("/"), data=json.dumps(body), headers={"X-Amz-Target": TARGET + action}
        ) as response,
    ):
        return response.status, await response.json(content_type=None)


async def test_filters_pages_and_validates(aiohttp_server_factory) -> None:
    store = ActivityStore()
    for n in range(1, 4):
        store.add(activity(n))
    store.add(activity(9, "lambda", "function:f:live"))
    proxied: list[str] = []

    async def proxy(request: web.Request) -> web.StreamResponse:
        proxied.append(request.headers["X-Amz-Target"])
        return web.json_response({"from": "moto"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ScalingActivitiesApi(store, proxy).handle)
    server = await aiohttp_server_factory(app)
    # newest first, one namespace
    status, result = await call(server, "DescribeScalingActivities", {"ServiceNamespace": "dynamodb"})
    assert status == 200 and [a["ActivityId"] for a in result["ScalingActivities"]] == ["a3", "a2", "a1"]
    # paging
    status, page1 = await call(server, "DescribeScalingActivities", {"ServiceNamespace": "dynamodb", "MaxResults": 2})
    assert [a["ActivityId"] for a in page1["ScalingActivities"]] == ["a3", "a2"] and page1["NextToken"] == "2"
    body = {"ServiceNamespace": "dynamodb", "MaxResults": 2, "NextToken": page1["NextToken"]}
    _, page2 = await call(server, "DescribeScalingActivities", body)
    assert [a["ActivityId"] for a in page2["ScalingActivities"]] == ["a1"] and "NextToken" not in page2
    # resource filter
    _, only = await call(
        server, "DescribeScalingActivities", {"ServiceNamespace": "lambda", "ResourceId": "function:f:live"}
    )
    assert [a["ActivityId"] for a in only["ScalingActivities"]] == ["a9"]
    # validation errors, AWS-shaped
    status, error = await call(server, "DescribeScalingActivities", {})
    assert status == 400 and error["__type"] == "ValidationException" and "serviceNamespace" in error["message"]
    status, error = await call(server, "DescribeScalingActivities", {"ServiceNamespace": "dynamodb", "MaxResults": 0})
    assert status == 400 and "maxResults" in error["message"]
    status, error = await call(server, "DescribeScalingActivities", [1])
    assert status == 400 and error["__type"] == "SerializationException"
    # every other action goes to moto
    status, result = await call(server, "DescribeScalableTargets", {"ServiceNamespace": "dynamodb"})
    assert result == {"from": "moto"} and proxied == [TARGET + "DescribeScalableTargets"]
