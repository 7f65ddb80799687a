"""HTTP APIs on a real `lambdalab up`: the SAM HttpApi events (implicit ServerlessHttpApi, $default stage), routes with
path parameters, greedy paths and $default, payload formats 2.0 and 1.0, the URL output, the status mapping of HTTP
APIs (500 / 404 / 503), the access log and AWS/ApiGateway metrics."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.support.sources import Sources

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).parents[2] / "events" / "http-api-v2.json"


def _events(sources: Sources) -> list[dict]:
    return [e["event"] for e in sources.entries("http")]


def test_the_url_output_names_the_local_endpoint(sources: Sources) -> None:
    url = sources.out["HttpUrl"]
    assert url == f"{sources.cloud.url}/restapis/{sources.out['HttpApiId']}/$default/_user_request_"


def test_payload_2_0_event_and_response(sources: Sources) -> None:
    url = sources.out["HttpUrl"]
    response = requests.get(f"{url}/items/42?size=L&size=XL", headers={"Cookie": "a=1; b=2"}, timeout=10)
    assert response.status_code == 201
    assert response.headers["x-route"] == "GET /items/{id}" and response.headers["Set-Cookie"] == "a=1"
    assert response.json() == {"version": "2.0", "path": "42"}
    assert response.headers["apigw-requestid"]
    event = next(e for e in reversed(_events(sources)) if e.get("routeKey") == "GET /items/{id}")
    assert event["rawPath"] == "/items/42" and event["rawQueryString"] == "size=L&size=XL"
    assert event["queryStringParameters"] == {"size": "L,XL"} and event["cookies"] == ["a=1", "b=2"]
    assert event["pathParameters"] == {"id": "42"} and event["isBase64Encoded"] is False
    assert "cookie" not in event["headers"] and event["headers"]["x-forwarded-proto"] == "http"
    context = event["requestContext"]
    assert context["stage"] == "$default" and context["apiId"] == sources.out["HttpApiId"]
    assert context["http"]["method"] == "GET" and context["http"]["path"] == "/items/42"
    sample = json.loads(SAMPLE.read_text())
    absent_without_auth_or_body = {"body", "stageVariables"}
    assert set(sample) - absent_without_auth_or_body <= set(event)
    assert set(sample["requestContext"]) - {"authentication", "authorizer"} <= set(context)


def test_greedy_default_and_payload_1_0_routes(sources: Sources) -> None:
    url = sources.out["HttpUrl"]
    files = requests.post(f"{url}/files/a/b/c.txt", data=b"\x00\xff", headers={"Content-Type": "image/png"}, timeout=10)
    assert files.status_code == 201 and files.headers["x-route"] == "ANY /files/{proxy+}"
    event = next(e for e in reversed(_events(sources)) if e.get("routeKey") == "ANY /files/{proxy+}")
    assert event["pathParameters"] == {"proxy": "a/b/c.txt"} and event["isBase64Encoded"] is True
    fallback = requests.get(f"{url}/whatever/else", timeout=10)
    assert fallback.status_code == 201 and fallback.headers["x-route"] == "$default"
    legacy = requests.get(f"{url}/legacy/ann?x=1", timeout=10)
    assert legacy.status_code == 201 and legacy.json() == {"version": "1.0", "path": "ann"}
    v1 = next(e for e in reversed(_events(sources)) if e.get("version") == "1.0")
    assert v1["resource"] == "/legacy/{name}" and v1["pathParameters"] == {"name": "ann"}
    assert v1["httpMethod"] == "GET" and v1["queryStringParameters"] == {"x": "1"}
    assert {r["invocation_type"] for r in sources.records_of(sources.out["HttpName"])} == {"RequestResponse"}


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/items/error", 500, "Internal Server Error"),  # the function raised
        ("/legacy/malformed", 500, "Internal Server Error"),  # a 1.0 response without a valid statusCode
        ("/throttled", 500, "Internal Server Error"),  # Lambda refused the invoke (reserved concurrency 0)
        ("/slow", 503, "Service Unavailable"),  # past the integration's TimeoutInMillis (1000)
    ],
)
def test_http_api_errors(sources: Sources, path: str, status: int, message: str) -> None:
    response = requests.get(f"{sources.out['HttpUrl']}{path}", timeout=10)
    assert response.status_code == status
    assert response.json() == {"message": message}


def test_a_bare_json_string_is_the_body_of_a_200(sources: Sources) -> None:
    response = requests.get(f"{sources.out['HttpUrl']}/items/text", timeout=10)
    assert response.status_code == 200 and response.text == "just text"
    assert response.headers["Content-Type"] == "application/json"


def test_access_log_and_metrics(sources: Sources) -> None:
    assert sources.cloud.run_dir is not None
    log = sources.cloud.run_dir / "api-access.jsonl"
    deadline = time.monotonic() + 10
    lines: list[dict] = []
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        if any(line.get("routeKey") == "GET /slow" for line in lines):
            break
        time.sleep(0.2)
    mine = [line for line in lines if line.get("apiId") == sources.out["HttpApiId"]]
    slow = next(line for line in mine if line.get("routeKey") == "GET /slow")
    assert slow["status"] == 503 and slow["stage"] == "$default" and slow["integrationStatus"] == 504
    throttled = next(line for line in mine if line.get("routeKey") == "GET /throttled")
    assert throttled["integrationStatus"] == 429 and "TooManyRequestsException" in throttled["error"]
    cloudwatch = sources.cloud.client("cloudwatch")
    api = sources.out["HttpApiId"]
    deadline = time.monotonic() + 15
    total = 0.0
    while time.monotonic() < deadline and total == 0:
        stats = cloudwatch.get_metric_statistics(
            Namespace="AWS/ApiGateway",
            MetricName="5xx",
            Dimensions=[{"Name": "ApiId", "Value": api}, {"Name": "Stage", "Value": "$default"}],
            StartTime=datetime.now(UTC) - timedelta(minutes=10),
            EndTime=datetime.now(UTC) + timedelta(minutes=1),
            Period=1,
            Statistics=["Sum"],
        )
        total = sum(point["Sum"] for point in stats["Datapoints"])
        time.sleep(0.5)
    assert total >= 4
