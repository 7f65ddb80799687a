"""HTTP APIs: route selection, the payload 2.0 and 1.0 events (against AWS's sample), response mapping, URL rewrite."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from lambdalab.apigateway.http_api import (
    HttpApi,
    HttpApiRequest,
    HttpIntegration,
    HttpRoute,
    HttpStage,
    RouteMatch,
    build_event_v1,
    build_event_v2,
    local_http_api_url,
    map_response_v1,
    map_response_v2,
    match_route,
)

SAMPLE = Path(__file__).parents[3] / "events" / "http-api-v2.json"
LAMBDA = HttpIntegration("AWS_PROXY", "arn:aws:lambda:us-east-1:123456789012:function:f")


def routes(*keys: str) -> tuple[HttpRoute, ...]:
    return tuple(HttpRoute(key, LAMBDA) for key in keys)


@pytest.mark.parametrize(
    ("method", "path", "expected", "params"),
    [
        ("GET", "/pets/dog", "GET /pets/dog", {}),  # a literal beats a parameter
        ("GET", "/pets/7", "GET /pets/{id}", {"id": "7"}),
        ("POST", "/pets/7", "ANY /pets/{id}", {"id": "7"}),  # the method beats ANY
        ("GET", "/pets/7/toys/1", "GET /pets/{proxy+}", {"proxy": "7/toys/1"}),  # the longest greedy match
        ("GET", "/other/a/b", "ANY /{proxy+}", {"proxy": "other/a/b"}),
        ("GET", "/", "$default", {}),
        ("DELETE", "/pets", "ANY /{proxy+}", {"proxy": "pets"}),  # greedy before $default
        ("GET", "/pets/caf%C3%A9", "GET /pets/{id}", {"id": "café"}),
    ],
)
def test_the_most_specific_route_wins(method: str, path: str, expected: str, params: dict) -> None:
    table = routes(
        "GET /pets/{id}", "ANY /pets/{id}", "GET /pets/dog", "GET /pets/{proxy+}", "ANY /{proxy+}", "$default"
    )
    found = match_route(table, method, path)
    assert found is not None and found[0].key == expected and found[1] == params


def test_no_route_no_default_is_none() -> None:
    assert match_route(routes("GET /a"), "GET", "/b") is None


def request(**changes) -> HttpApiRequest:
    base = {
        "method": "POST",
        "raw_path": "/prod/items/42",
        "headers": [("Content-Type", "application/json"), ("Cookie", "a=1; b=2"), ("X-Multi", "1"), ("x-multi", "2"),
                    ("User-Agent", "curl/8")],
        "raw_query": "q=1&q=2&z=",
        "query": [("q", "1"), ("q", "2"), ("z", "")],
        "body": b'{"n": 1}',
        "source_ip": "10.0.0.1",
        "host": "127.0.0.1:4566",
    }  # fmt: skip
    base.update(changes)
    return HttpApiRequest(**base)


MATCH = RouteMatch(
    HttpApi("abc123", "api", routes("POST /items/{id}"), {}),
    HttpStage("prod", {"alias": "live"}),
    HttpRoute("POST /items/{id}", LAMBDA),
    "/items/42",
    {"id": "42"},
)


def test_payload_2_0_event_has_the_sample_shape() -> None:
    event = build_event_v2(request(), MATCH, account_id="123456789012", request_id="r-1", epoch_ms=1_700_000_000_000)
    sample = json.loads(SAMPLE.read_text())
    assert set(sample) == set(event)
    assert set(sample["requestContext"]) - {"authentication", "authorizer"} == set(event["requestContext"])
    assert set(sample["requestContext"]["http"]) == set(event["requestContext"]["http"])
    assert event["routeKey"] == "POST /items/{id}" and event["rawPath"] == "/prod/items/42"
    assert event["cookies"] == ["a=1", "b=2"] and "cookie" not in event["headers"]
    assert event["headers"]["x-multi"] == "1,2" and event["queryStringParameters"] == {"q": "1,2", "z": ""}
    assert event["pathParameters"] == {"id": "42"} and event["stageVariables"] == {"alias": "live"}
    assert event["body"] == '{"n": 1}' and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["http"] == {"method": "POST", "path": "/prod/items/42", "protocol": "HTTP/1.1",
                               "sourceIp": "10.0.0.1", "userAgent": "curl/8"}  # fmt: skip
    assert context["time"] == "14/Nov/2023:22:13:20 +0000" and context["timeEpoch"] == 1_700_000_000_000


def test_payload_2_0_leaves_absent_members_out_and_encodes_binary() -> None:
    bare = RouteMatch(MATCH.api, HttpStage("$default"), HttpRoute("$default", LAMBDA), "/", {})
    event = build_event_v2(
        request(headers=[("Content-Type", "image/png")], raw_query="", query=[], body=b"\x89PNG"),
        bare, account_id="1", request_id="r", epoch_ms=0,
    )  # fmt: skip
    assert "cookies" not in event and "queryStringParameters" not in event and "pathParameters" not in event
    assert "stageVariables" not in event
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\x89PNG"


def test_payload_1_0_event_is_the_rest_event_with_a_version() -> None:
    event = build_event_v1(request(), MATCH, account_id="1", request_id="r", epoch_ms=0)
    assert event["version"] == "1.0" and event["resource"] == "/items/{id}" and event["path"] == "/prod/items/42"
    assert event["multiValueQueryStringParameters"] == {"q": ["1", "2"], "z": [""]}
    assert event["requestContext"]["routeKey"] == "POST /items/{id}" and event["requestContext"]["stage"] == "prod"


@pytest.mark.parametrize(
    ("payload", "status", "body", "headers"),
    [
        (b'{"statusCode": 201, "headers": {"a": "b"}, "cookies": ["c=1", "d=2"], "body": "hi"}', 201, b"hi",
         [("a", "b"), ("Set-Cookie", "c=1"), ("Set-Cookie", "d=2")]),
        (b'{"message": "no statusCode"}', 200, b'{"message": "no statusCode"}', [("Content-Type", "application/json")]),
        (b'"just text"', 200, b"just text", [("Content-Type", "application/json")]),
        (b"[1, 2]", 200, b"[1, 2]", []),
        (b'{"statusCode": 200, "body": "aGk=", "isBase64Encoded": true}', 200, b"hi", []),
    ],
)  # fmt: skip
def test_payload_2_0_responses(payload: bytes, status: int, body: bytes, headers: list) -> None:
    response = map_response_v2(payload, None)
    assert (response.status, response.body) == (status, body)
    for header in headers:
        assert header in response.headers


@pytest.mark.parametrize(
    "payload",
    [b"not json", b'{"statusCode": "teapot"}', b'{"statusCode": 200, "body": 5}',
     b'{"statusCode": 200, "body": "%%", "isBase64Encoded": true}', b'{"statusCode": 200, "headers": {"a": {}}}'],
)  # fmt: skip
def test_bad_responses_are_500_internal_server_error(payload: bytes) -> None:
    response = map_response_v2(payload, None)
    assert response.status == 500 and json.loads(response.body) == {"message": "Internal Server Error"}


def test_function_errors_are_500_in_both_formats_and_1_0_needs_a_status_code() -> None:
    assert map_response_v2(b"{}", "Unhandled").status == 500
    assert map_response_v1(b'{"statusCode": 200}', "Unhandled").status == 500
    assert map_response_v1(b'{"ok": true}', None).status == 500  # REST answers 502 here; HTTP APIs 500
    assert map_response_v1(b'{"statusCode": 204}', None).status == 204


def test_execute_api_urls_of_http_apis_become_local() -> None:
    apis = {"abc123": {"$default", "prod"}, "only": {"$default"}}
    endpoint = "http://127.0.0.1:4566"
    assert local_http_api_url("https://abc123.execute-api.us-east-1.amazonaws.com", endpoint, apis) == (
        f"{endpoint}/restapis/abc123/$default/_user_request_"
    )
    assert local_http_api_url("https://abc123.execute-api.us-east-1.amazonaws.com/prod/x", endpoint, apis) == (
        f"{endpoint}/restapis/abc123/prod/_user_request_/x"
    )
    assert local_http_api_url("https://only.execute-api.eu-west-1.amazonaws.com/pets/1", endpoint, apis) == (
        f"{endpoint}/restapis/only/$default/_user_request_/pets/1"
    )
    assert local_http_api_url("https://zzz.execute-api.us-east-1.amazonaws.com/", endpoint, apis).startswith("https")
