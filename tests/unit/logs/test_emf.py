"""Embedded metric format: Powertools' output becomes metrics; invalid EMF stays a log line and makes none."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdalab.logs import emf

POWERTOOLS = {
    "_aws": {
        "Timestamp": 1700000000123,
        "CloudWatchMetrics": [
            {
                "Namespace": "Lab",
                "Dimensions": [["service"]],
                "Metrics": [{"Name": "ColdStart", "Unit": "Count"}, {"Name": "Latency", "Unit": "Milliseconds"}],
            }
        ],
    },
    "service": "products",
    "ColdStart": [1.0],
    "Latency": [12.5, 13.0],
    "function_request_id": "abc",
}


def test_powertools_metrics_parse() -> None:
    data = emf.parse(json.dumps(POWERTOOLS))
    assert [(d.name, d.values, d.dimensions, d.unit) for d in data] == [
        ("ColdStart", (1.0,), (("service", "products"),), "Count"),
        ("Latency", (12.5, 13.0), (("service", "products"),), "Milliseconds"),
    ]
    assert data[1].to_api()["Values"] == [12.5, 13.0] and data[0].to_api()["Timestamp"] == 1700000000.123


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.pop("_aws"), "_aws is not an object"),
        (lambda d: d["_aws"].pop("Timestamp"), "_aws.Timestamp is not a number"),
        (lambda d: d.__setitem__("service", 3), "dimension service is not a string member of the root"),
        (lambda d: d.__setitem__("Latency", "fast"), "metric Latency is not a number or an array of numbers"),
        (lambda d: d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0].__setitem__("Unit", "Parsecs"), "unknown Unit"),
        (lambda d: d["_aws"]["CloudWatchMetrics"][0].__setitem__("Namespace", ""), "Namespace"),
    ],
)
def test_invalid_emf_is_rejected_with_the_rule(change: Any, reason: str) -> None:
    document = json.loads(json.dumps(POWERTOOLS))
    change(document)
    with pytest.raises(emf.EmfError, match=reason):
        emf.parse(json.dumps(document))


class FakeCloudWatch:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def put_metric_data(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


def test_publisher_sends_valid_events_and_counts_the_rest() -> None:
    cloudwatch = FakeCloudWatch()
    publisher = emf.EmfPublisher(cloudwatch)
    publisher("/aws/lambda/f", "s", [(0, json.dumps(POWERTOOLS)), (1, '{"_aws": 1}'), (2, "plain text")])
    publisher.flush()
    assert [c["Namespace"] for c in cloudwatch.calls] == ["Lab"]
    assert [m["MetricName"] for m in cloudwatch.calls[0]["MetricData"]] == ["ColdStart", "Latency"]
    assert publisher.rejected == 1 and publisher.published == 2


def test_emf_reaches_moto_cloudwatch() -> None:
    """The publisher against moto's CloudWatch, in process: the metric can be read back."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("cloudwatch", region_name="us-east-1")
        publisher = emf.EmfPublisher(client)
        document = dict(POWERTOOLS)
        document["_aws"] = {**POWERTOOLS["_aws"], "Timestamp": 1700000000000}
        publisher("/aws/lambda/f", "s", [(0, json.dumps(document))])
        publisher.flush()
        metrics = client.list_metrics(Namespace="Lab")["Metrics"]
        assert sorted(m["MetricName"] for m in metrics) == ["ColdStart", "Latency"]
