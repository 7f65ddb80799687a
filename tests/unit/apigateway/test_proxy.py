"""The version 1.0 proxy event, and how API Gateway reads the function's answer or fails with 502."""

from __future__ import annotations

import base64
import json

import pytest

from lambdalab.apigateway.proxy import Failure, HttpRequest, ProxyContext, build_event, map_response
from tests.support.events import load_event


def _request(**overrides: object) -> HttpRequest:
    values: dict[str, object] = {
        "method": "GET",
        "path": "/products/6f1d",
        "stage_path": "/lab/products/6f1d",
        "headers": [("Content-Type", "application/json"), ("Accept", "a"), ("Accept", "b")],
        "query": [("limit", "10"), ("tag", "x"), ("tag", "y")],
        "body": b"",
        "source_ip": "203.0.113.10",
        "host": "127.0.0.1:4566",
    }
    values.update(overrides)
    return HttpRequest(**values)  # type: ignore[arg-type]


CONTEXT = ProxyContext(
    api_id="abcdef1234",
    stage="lab",
    resource_id="res1",
    resource_path="/products/{id}",
    path_parameters={"id": "6f1d"},
    stage_variables={"logRole": "existing"},
    account_id="123456789012",
    request_id="req-1",
    request_time_epoch_ms=1_795_332_648_881,
)


def _keys(value: object, prefix: str = "") -> set[str]:
    if not isinstance(value, dict):
        return set()
    keys = set()
    for key, inner in value.items():
        if key in ("headers", "multiValueHeaders", "pathParameters", "stageVariables"):  # data, not shape
            keys.add(prefix + key)
            continue
        keys |= {prefix + key} | _keys(inner, f"{prefix}{key}.")
    return keys


def test_event_has_every_field_of_the_sample_events() -> None:
    # GIVEN the sample event of the stack (captured shape of API Gateway's REST proxy event)
    sample = load_event("apigw-products-get")
    # WHEN we build an event for the same request
    event = build_event(_request(), CONTEXT)
    # THEN every field the sample has is there, with the same meaning
    assert _keys(sample) <= _keys(event)
    assert event["resource"] == sample["resource"]
    assert event["pathParameters"] == {"id": "6f1d"}
    assert event["stageVariables"] == sample["stageVariables"]
    context = event["requestContext"]
    assert context["path"] == "/lab/products/6f1d"
    assert context["stage"] == "lab"
    assert context["requestTimeEpoch"] == 1_795_332_648_881
    assert context["requestTime"] == "22/Nov/2026:07:30:48 +0000"
    assert context["identity"]["sourceIp"] == "203.0.113.10"
    assert context["apiId"] == context["domainPrefix"] == "abcdef1234"


def test_repeated_headers_and_query_keys_give_last_value_and_lists() -> None:
    event = build_event(_request(), CONTEXT)
    assert event["headers"]["Accept"] == "b"
    assert event["multiValueHeaders"]["Accept"] == ["a", "b"]
    assert event["queryStringParameters"] == {"limit": "10", "tag": "y"}
    assert event["multiValueQueryStringParameters"] == {"limit": ["10"], "tag": ["x", "y"]}


def test_nothing_gives_nulls() -> None:
    context = ProxyContext(**{**CONTEXT.__dict__, "path_parameters": {}, "stage_variables": {}})
    event = build_event(_request(headers=[], query=[]), context)
    for key in ("headers", "multiValueHeaders", "queryStringParameters", "multiValueQueryStringParameters"):
        assert event[key] is None
    assert event["pathParameters"] is None
    assert event["stageVariables"] is None
    assert event["body"] is None
    assert event["isBase64Encoded"] is False


def test_body_is_text_unless_its_type_is_a_binary_media_type() -> None:
    text = build_event(_request(method="POST", body=b'{"name": "x"}'), CONTEXT)
    assert text["body"] == '{"name": "x"}'
    assert text["isBase64Encoded"] is False
    context = ProxyContext(**{**CONTEXT.__dict__, "binary_media_types": ("image/*",)})
    png = build_event(_request(method="POST", body=b"\x89PNG", headers=[("Content-Type", "image/png")]), context)
    assert png["isBase64Encoded"] is True
    assert base64.b64decode(png["body"]) == b"\x89PNG"


def test_response_maps_status_headers_and_body() -> None:
    answer = {
        "statusCode": 201,
        "headers": {"Content-Type": "text/plain", "X-One": "1", "Set-Cookie": "ignored"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": "created",
        "isBase64Encoded": False,
    }
    response = map_response(json.dumps(answer).encode(), None)
    assert response.status == 201
    assert response.body == b"created"
    assert ("Set-Cookie", "a=1") in response.headers and ("Set-Cookie", "b=2") in response.headers
    assert ("Set-Cookie", "ignored") not in response.headers  # multiValueHeaders win for the same name
    assert ("X-One", "1") in response.headers
    assert response.failure is None


def test_base64_body_is_decoded_and_content_type_defaults_to_json() -> None:
    answer = {"statusCode": 200, "body": base64.b64encode(b"\x00\xff").decode(), "isBase64Encoded": True}
    response = map_response(json.dumps(answer).encode(), None)
    assert response.body == b"\x00\xff"
    assert ("Content-Type", "application/json") in response.headers


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"not json", "not JSON"),
        (b'"a string"', "not an object"),
        (b'{"body": "no status"}', "statusCode"),
        (b'{"statusCode": 99}', "statusCode"),
        (b'{"statusCode": true}', "statusCode"),
        (b'{"statusCode": 200, "body": {"an": "object"}}', "body must be a string"),
        (b'{"statusCode": 200, "message": "extra"}', "unexpected keys"),
        (b'{"statusCode": 200, "headers": {"X": {"a": 1}}}', "headers.X"),
        (b'{"statusCode": 200, "multiValueHeaders": {"X": "one"}}', "must be a list"),
        (b'{"statusCode": 200, "body": "%%%", "isBase64Encoded": true}', "not base64"),
    ],
)
def test_malformed_response_is_a_502(payload: bytes, why: str) -> None:
    response = map_response(payload, None)
    assert response.status == 502
    assert json.loads(response.body) == {"message": "Internal server error"}
    assert response.failure is Failure.BAD_RESPONSE
    assert why in response.error


def test_function_error_is_a_502_even_with_a_well_formed_body() -> None:
    response = map_response(b'{"statusCode": 200, "body": "ok"}', "Unhandled")
    assert response.status == 502
    assert json.loads(response.body) == {"message": "Internal server error"}
    assert ("x-amzn-ErrorType", "InternalServerErrorException") in response.headers
