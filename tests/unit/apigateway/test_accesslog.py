"""Access log lines from a stage's AccessLogSetting.Format, and the lab's latency summary over them in Insights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from lambdalab.apigateway import accesslog
from lambdalab.clock import EpochClock
from lambdalab.logs import insights
from lambdalab.logs.query import parse
from lambdalab.logs.store import LogStore

ROOT = Path(__file__).resolve().parents[3]


def template_format() -> str:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=Loader)
    stages = [
        r for r in template["Resources"].values() if r.get("Type") in ("AWS::ApiGateway::Stage", "AWS::Serverless::Api")
    ]
    for stage in stages:
        props = stage.get("Properties", {})
        setting = props.get("AccessLogSetting")
        if setting:
            return str(setting["Format"])
    raise AssertionError("the template has no AccessLogSetting")


def context(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = dict(
        request_id="r-1",
        extended_request_id="e-1",
        api_id="abc123",
        stage="lab",
        account_id="123456789012",
        http_method="GET",
        path="/lab/standard",
        resource_path="/standard",
        resource_id="res1",
        protocol="HTTP/1.1",
        source_ip="127.0.0.1",
        user_agent="curl/8",
        domain_name="127.0.0.1:4566",
        request_time="22/Nov/2026:07:37:34 +0000",
        request_time_epoch_ms=1_790_000_000_000,
        status=200,
        response_length=13,
        response_latency_ms=24,
        integration_latency_ms=23,
        integration_status=200,
        error_message=None,
        error_type=None,
        xray_trace_id="1-abc-def",
    )
    values.update(overrides)
    return accesslog.rest_context(**values)


def test_the_templates_json_format_as_api_gateway_writes_it() -> None:
    line = accesslog.format_line(template_format(), context())
    record = json.loads(line)
    assert record == {
        "requestId": "r-1",
        "requestTime": "22/Nov/2026:07:37:34 +0000",
        "httpMethod": "GET",
        "resourcePath": "/standard",
        "status": "200",
        "responseLatency": "24",
        "integrationLatency": "23",
        "integrationStatus": "200",
        "xrayTraceId": "1-abc-def",
        "error": "-",
    }


def test_clf_format_and_missing_values() -> None:
    clf = (
        "$context.identity.sourceIp $context.identity.caller $context.identity.user [$context.requestTime] "
        '"$context.httpMethod $context.resourcePath $context.protocol" $context.status $context.responseLength '
        "$context.requestId $context.unknownThing."
    )
    line = accesslog.format_line(clf, context(resource_path=None, integration_latency_ms=None, status=403))
    assert line == '127.0.0.1 - - [22/Nov/2026:07:37:34 +0000] "GET - HTTP/1.1" 403 13 r-1 -.'


def test_log_group_of_a_destination_arn() -> None:
    setting = accesslog.AccessLogSetting("arn:aws:logs:us-east-1:123456789012:log-group:/lab/api:*", "x")
    assert setting.log_group == "/lab/api"


def test_latency_summary_runs_as_a_logs_insights_query() -> None:
    store = LogStore("us-east-1", "123456789012", epoch=EpochClock())
    fmt = template_format()
    latencies = {"/standard": [10, 20, 30, 40, 50], "/custom": [5, 6, 7]}
    t = 1_790_000_000_000
    for resource, values in latencies.items():
        for value in values:
            t += 1
            line = accesslog.format_line(fmt, context(resource_path=resource, response_latency_ms=value))
            store.append("/lab/api", accesslog.stream_name("abc123", "lab"), [(t, line)], create=True)
    query = (
        "stats pct(responseLatency, 50) as p50, pct(responseLatency, 90) as p90, pct(responseLatency, 99) as p99, "
        "count(*) as requests by resourcePath | sort resourcePath asc"
    )
    result = insights.run(parse(query), store.search(["/lab/api"]), account_id="123456789012")
    rows = [{c["field"]: c["value"] for c in row} for row in result.rows]
    assert rows == [
        {"resourcePath": "/custom", "p50": "6", "p90": "7", "p99": "7", "requests": "3"},
        {"resourcePath": "/standard", "p50": "30", "p90": "50", "p99": "50", "requests": "5"},
    ]
