"""REST APIs on a real `lambdalab up`: proxy events, API Gateway's status codes, the access log, and Artillery."""

from __future__ import annotations

import json
import math
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.cloud import RunningCloud, local_cloud
from tests.support.events import load_event

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STACK_DIR = Path(__file__).parent / "apigateway"
STACK = "apigw-it"
ARTILLERY = ROOT / "node_modules" / ".bin" / "artillery"


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)


def call(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Reply(response.status, list(response.headers.items()), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, list(error.headers.items()), error.read())


def access_log(cloud: RunningCloud, request_id: str | None = None) -> dict[str, dict[str, Any]]:
    """The access log's entries by request id; with `request_id`, waits (up to 5 s) until that one is written."""
    assert cloud.run_dir is not None
    path = cloud.run_dir / "api-access.jsonl"
    deadline = time.monotonic() + 5.0
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        entries = {entry["requestId"]: entry for entry in map(json.loads, lines)}
        if request_id is None or request_id in entries or time.monotonic() > deadline:
            return entries
        time.sleep(0.05)  # lines reach the file within 0.25 s


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("apigw")
    extra = ["--stack-name", STACK, "--time-scale", "0.05"]  # 3 s metric periods
    with local_cloud(STACK_DIR / "template.yaml", tmp, extra=extra) as running:
        yield running


@pytest.fixture(scope="module")
def api(cloud: RunningCloud) -> str:
    return cloud.outputs(STACK)["ApiUrl"]


def test_the_stack_output_names_the_local_endpoint(cloud: RunningCloud, api: str) -> None:
    # the execute-api URL of the template's Fn::Sub became a path on the local endpoint
    api_id = cloud.client("apigateway").get_rest_apis()["items"][0]["id"]  # management calls still reach moto
    assert api == f"{cloud.url}/restapis/{api_id}/test/_user_request_"
    assert cloud.outputs(STACK)["EchoUrl"] == api + "/echo"


def test_the_function_gets_the_rest_proxy_event(cloud: RunningCloud, api: str) -> None:
    # WHEN a client calls a path with a parameter, a repeated query key and a header
    before_ms = time.time() * 1000
    reply = call("GET", f"{api}/items/42?x=1&x=2", headers={"X-Trace-Me": "yes"})
    # THEN the function (through its alias) answered, with the headers it set
    assert reply.status == 200, reply.body
    assert reply.header("X-Function-Version") == ["1"]
    assert reply.header("Set-Cookie") == ["a=1", "b=2"]
    body = reply.json()
    assert body["functionArn"].endswith(":live")  # the qualifier of the integration URI
    event = body["event"]
    sample = load_event("apigw-products-get")
    assert set(sample) <= set(event)
    assert set(sample["requestContext"]) <= set(event["requestContext"])
    assert event["resource"] == "/items/{id}"
    assert event["path"] == "/items/42"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"id": "42"}
    assert event["queryStringParameters"] == {"x": "2"}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"]}
    assert event["headers"]["X-Trace-Me"] == "yes"
    assert event["stageVariables"] == {"colour": "blue"}
    context = event["requestContext"]
    assert context["stage"] == "test"
    assert context["path"] == "/test/items/42"
    assert context["resourcePath"] == "/items/{id}"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["requestId"] == reply.header("x-amzn-RequestId")[0]
    assert before_ms - 1000 <= context["requestTimeEpoch"] <= time.time() * 1000 + 1000


def test_post_body_status_and_greedy_any_route(api: str) -> None:
    created = call("POST", f"{api}/echo?status=201", b'{"name": "x"}', {"Content-Type": "application/json"})
    assert created.status == 201
    event = created.json()["event"]
    assert event["body"] == '{"name": "x"}'
    assert event["isBase64Encoded"] is False
    deleted = call("DELETE", f"{api}/files/a/b.txt")
    assert deleted.status == 200
    assert deleted.json()["event"]["pathParameters"] == {"proxy": "a/b.txt"}
    assert deleted.json()["event"]["resource"] == "/files/{proxy+}"


def test_binary_response_is_decoded(api: str) -> None:
    reply = call("GET", f"{api}/echo?mode=binary")
    assert reply.status == 200
    assert reply.body == bytes(range(256))
    assert reply.header("Content-Type") == ["application/octet-stream"]


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("GET", "/nowhere", 403, "Missing Authentication Token"),
        ("PUT", "/echo", 403, "Missing Authentication Token"),
        ("GET", "/echo?mode=error", 502, "Internal server error"),
        ("GET", "/echo?mode=malformed", 502, "Internal server error"),
    ],
)
def test_api_gateway_errors(cloud: RunningCloud, api: str, method: str, path: str, status: int, message: str) -> None:
    reply = call(method, api + path)
    assert reply.status == status
    assert reply.json() == {"message": message}
    request_id = reply.header("x-amzn-RequestId")[0]
    entry = access_log(cloud, request_id)[request_id]
    assert entry["status"] == status


def test_unknown_stage_and_api_are_missing_authentication_token(cloud: RunningCloud, api: str) -> None:
    assert call("GET", api.replace("/test/", "/prod/") + "/echo").status == 403
    assert call("GET", f"{cloud.url}/restapis/nosuchapi/test/_user_request_/echo").status == 403


def test_lambda_throttle_is_a_500(cloud: RunningCloud, api: str) -> None:
    # GIVEN a function with reserved concurrency 1, busy for 1.5 s
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(call, "GET", f"{api}/limited?mode=sleep&seconds=1.5")
        time.sleep(0.7)
        # WHEN a second request arrives meanwhile
        second = pool.submit(call, "GET", f"{api}/limited")
        replies = [first.result(), second.result()]
    # THEN Lambda throttles it and API Gateway answers 500 Internal server error [Lambda: API Gateway errors]
    assert [r.status for r in replies] == [200, 500]
    assert replies[1].json() == {"message": "Internal server error"}
    throttled_id, busy_id = replies[1].header("x-amzn-RequestId")[0], replies[0].header("x-amzn-RequestId")[0]
    entry = access_log(cloud, throttled_id)[throttled_id]
    assert entry["integrationStatus"] == 429
    assert "TooManyRequestsException" in entry["error"]
    busy = access_log(cloud, busy_id)[busy_id]
    assert busy["integrationLatency"] >= 1500
    assert busy["responseLatency"] >= busy["integrationLatency"]
    cloud.wait_records(
        lambda rs: any(r["outcome"] == "throttled" and "Limited" in r["function_name"] for r in rs),
        what="the throttled invocation record",
    )


def test_access_log_has_a_line_per_request_with_latencies(cloud: RunningCloud, api: str) -> None:
    ids = [call("GET", f"{api}/echo?n={n}").header("x-amzn-RequestId")[0] for n in range(3)]
    log = access_log(cloud, ids[-1])
    for request_id in ids:
        entry = log[request_id]
        assert entry["httpMethod"] == "GET"
        assert entry["resourcePath"] == "/echo"
        assert entry["status"] == 200
        assert entry["ip"] == "127.0.0.1"
        assert 0 <= entry["integrationLatency"] <= entry["responseLatency"] < 10_000


def test_api_gateway_metrics_reach_cloudwatch(cloud: RunningCloud, api: str) -> None:
    # GIVEN two answered requests and one function error on /echo
    sent = [call("GET", api + path).header("x-amzn-RequestId")[0] for path in ("/echo", "/echo", "/echo?mode=error")]
    name = cloud.client("apigateway").get_rest_apis()["items"][0]["name"]
    dims = [
        {"Name": "ApiName", "Value": name},
        {"Name": "Method", "Value": "GET"},
        {"Name": "Resource", "Value": "/echo"},
        {"Name": "Stage", "Value": "test"},
    ]
    cloudwatch = cloud.client("cloudwatch")

    def total(metric: str) -> float:
        stats = cloudwatch.get_metric_statistics(
            Namespace="AWS/ApiGateway",
            MetricName=metric,
            Dimensions=dims,
            StartTime=time.time() - 600,
            EndTime=time.time() + 60,
            Period=1,
            Statistics=["Sum"],
        )["Datapoints"]
        return sum(p["Sum"] for p in stats)

    # WHEN the 3 s periods close and the publisher sends them
    log = access_log(cloud, sent[-1])
    entries = [e for e in log.values() if e["resourcePath"] == "/echo" and e["httpMethod"] == "GET"]
    expected = {"Count": len(entries), "5XXError": sum(1 for e in entries if e["status"] >= 500)}
    deadline = time.monotonic() + 20
    seen = {metric: total(metric) for metric in expected}
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = {metric: total(metric) for metric in expected}
    # THEN CloudWatch counts exactly the requests the access log has for GET /echo
    assert seen == expected, f"CloudWatch has {seen}, the access log {expected} (waited up to 20 s)"
    assert expected["5XXError"] >= 1


# --- Artillery against the lab's own template -------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    if not ARTILLERY.exists():
        pytest.skip("Artillery is not installed: run `npm ci` in the repository root")
    tmp = tmp_path_factory.mktemp("lab")
    with local_cloud(ROOT / "template.yaml", tmp) as running:
        yield running


def test_artillery_never_loads_the_real_posthog_client() -> None:
    if not ARTILLERY.exists():
        pytest.skip("Artillery is not installed: run `npm ci` in the repository root")
    # Artillery 2 sends a "usage ping" to PostHog even with ARTILLERY_DISABLE_TELEMETRY set; package.json overrides it
    script = (
        "const path = require('path');"
        "const telemetry = path.join(path.dirname(require.resolve('artillery/package.json')), 'lib', 'telemetry.js');"
        "console.log(require('module').createRequire(telemetry).resolve('posthog-node'))"
    )
    resolved = subprocess.run(
        ["node", "-e", script], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
    ).stdout.strip()
    assert Path(resolved).resolve().is_relative_to(ROOT / "tools" / "posthog-node-offline")


def test_load_test_script_runs_artillery_against_products(lab: RunningCloud, tmp_path: Path) -> None:
    # GIVEN the flash-sale scenario cut to 3 s at 4 arrivals/s, run by the unchanged script
    report = tmp_path / "report.json"
    overrides = {"config": {"phases": [{"duration": 3, "arrivalRate": 4}]}}
    env = {k: v for k, v in lab.env.items() if k != "ARTILLERY_DISABLE_TELEMETRY"}
    env["STACK_NAME"] = "lambda-concurrency-lab"
    started = time.monotonic()
    # WHEN scripts/load-test.sh runs (bounded: a DNS lookup or phone-home would show as a hang)
    result = subprocess.run(
        [
            str(ROOT / "scripts" / "load-test.sh"),
            "flash-sale",
            *("--overrides", json.dumps(overrides)),
            "--output",
            str(report),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"against {lab.url}/restapis/" in result.stdout
    # THEN the report counts every request as answered and 2xx, with latency summaries
    aggregate = json.loads(report.read_text())["aggregate"]
    counters, summaries = aggregate["counters"], aggregate["summaries"]
    assert counters["vusers.created"] == 12
    assert counters.get("vusers.failed", 0) == 0
    buys = counters.get("vusers.created_by_name.buy", 0)
    assert counters["http.requests"] == counters["vusers.created"] + buys  # a buy is a POST then a GET
    assert counters["http.responses"] == counters["http.requests"]
    two_xx = sum(v for k, v in counters.items() if k.startswith("http.codes.2"))
    assert two_xx == counters["http.requests"]
    latency = summaries["http.response_time"]
    assert latency["count"] == counters["http.requests"]
    assert 0 <= latency["min"] <= latency["median"] <= latency["p95"] <= latency["max"] < 10_000
    # AND the API's access log saw the same requests
    products = [e for e in access_log(lab).values() if (e["resourcePath"] or "").startswith("/products")]
    assert len(products) == counters["http.requests"]
    assert elapsed < 45
    # AND the README's latency summary, a Logs Insights query on the stage's access log group, gives per endpoint
    # the numbers the run records give (pct is nearest-rank locally: docs/LOGS.md)
    group = lab.outputs("lambda-concurrency-lab")["ApiAccessLogGroupName"]
    summary = insights(
        lab,
        group,
        "filter resourcePath like '/products' | stats count(*) as n, pct(responseLatency, 50) as p50, "
        "pct(responseLatency, 90) as p90, pct(responseLatency, 99) as p99 by resourcePath",
        done=lambda rows: sum(int(row["n"]) for row in rows) >= len(products),
    )
    expected = {}
    for path in {e["resourcePath"] for e in products}:
        latencies = sorted(float(e["responseLatency"]) for e in products if e["resourcePath"] == path)
        expected[path] = {"n": len(latencies), **{f"p{q}": nearest_rank(latencies, q) for q in (50, 90, 99)}}
    found = {row.pop("resourcePath"): {k: float(v) for k, v in row.items()} for row in summary}
    assert found == expected


def insights(cloud: RunningCloud, group: str, query: str, done: Any = bool) -> list[dict[str, str]]:
    """Run a Logs Insights query as the CLI does (start-query, then get-query-results until it completes), again
    until `done(rows)` or 10 s: access-log lines are batched into the store off the request path."""
    logs = cloud.client("logs")
    deadline = time.monotonic() + 10
    while True:
        query_id = logs.start_query(logGroupName=group, startTime=0, endTime=int(time.time()) + 60, queryString=query)[
            "queryId"
        ]
        result = logs.get_query_results(queryId=query_id)
        while result["status"] in ("Scheduled", "Running"):
            time.sleep(0.05)
            result = logs.get_query_results(queryId=query_id)
        assert result["status"] == "Complete", result
        rows = [{f["field"]: f["value"] for f in row} for row in result["results"]]
        if time.monotonic() > deadline or done(rows):
            return rows
        time.sleep(0.2)


def nearest_rank(ordered: list[float], q: int) -> float:
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def test_node_tools_are_pinned() -> None:
    package = json.loads((ROOT / "package.json").read_text())
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert package["devDependencies"]["artillery"] == lock["packages"]["node_modules/artillery"]["version"]
    assert lock["packages"]["node_modules/posthog-node"] == {"resolved": "tools/posthog-node-offline", "link": True}
