"""The Logs API through boto3 over HTTP, as the AWS CLI and scripts reach it: shapes, ordering, errors."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

GROUP = "/aws/lambda/fn"


def error_of(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    error = raised.value.response["Error"]
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return error["Code"], error["Message"]


def now_ms() -> int:
    return int(time.time() * 1000)


def test_groups_streams_and_events(served: Any, logs_client: Any) -> None:
    t = now_ms()
    served.logs.writer.put(GROUP, "2026/11/22/[$LATEST]" + "a" * 32, [(t, "START a\n"), (t + 5, "END a\n")])
    served.logs.writer.put(GROUP, "2026/11/22/[$LATEST]" + "b" * 32, [(t + 2, "START b\n")])
    served.logs.writer.flush()
    groups = logs_client.describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"]
    assert [g["logGroupName"] for g in groups] == [GROUP]
    assert groups[0]["arn"].endswith(":log-group:/aws/lambda/fn:*") and groups[0]["logGroupClass"] == "STANDARD"
    streams = logs_client.describe_log_streams(logGroupName=GROUP, orderBy="LastEventTime", descending=True)[
        "logStreams"
    ]
    assert [s["logStreamName"][-1] for s in streams] == ["a", "b"]
    assert streams[0]["lastEventTimestamp"] == t + 5 and streams[0]["firstEventTimestamp"] == t
    events = logs_client.get_log_events(
        logGroupName=GROUP, logStreamName=streams[0]["logStreamName"], startFromHead=True
    )
    assert [e["message"] for e in events["events"]] == ["START a\n", "END a\n"]
    again = logs_client.get_log_events(
        logGroupName=GROUP, logStreamName=streams[0]["logStreamName"], nextToken=events["nextForwardToken"]
    )
    assert again["events"] == [] and again["nextForwardToken"] == events["nextForwardToken"]
    filtered = logs_client.filter_log_events(logGroupName=GROUP, filterPattern="START")["events"]
    assert [e["message"] for e in filtered] == ["START a\n", "START b\n"]  # interleaved by time across streams


def test_filter_log_events_pages_without_losing_or_repeating(served: Any, logs_client: Any) -> None:
    t = now_ms()
    for i in range(25):
        served.logs.writer.put(GROUP, f"s{i % 3}", [(t + i // 2, f"event {i}")])
    served.logs.writer.flush()
    pages = logs_client.get_paginator("filter_log_events").paginate(
        logGroupName=GROUP, PaginationConfig={"PageSize": 4}
    )
    messages = [e["message"] for page in pages for e in page["events"]]
    assert sorted(messages) == sorted(f"event {i}" for i in range(25))
    assert len(messages) == 25


def test_put_log_events_and_its_rules(logs_client: Any) -> None:
    logs_client.create_log_group(logGroupName="/app", tags={"team": "lab"})
    logs_client.put_retention_policy(logGroupName="/app", retentionInDays=7)
    logs_client.create_log_stream(logGroupName="/app", logStreamName="one")
    t = now_ms()
    answer = logs_client.put_log_events(
        logGroupName="/app",
        logStreamName="one",
        logEvents=[
            {"timestamp": t - 15 * 86_400_000, "message": "old"},
            {"timestamp": t - 14 * 86_400_000 - 60_000, "message": "old too"},
        ],
    )
    assert answer["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 2}
    logs_client.put_log_events(
        logGroupName="/app", logStreamName="one", logEvents=[{"timestamp": t, "message": "fresh"}]
    )
    events = logs_client.get_log_events(logGroupName="/app", logStreamName="one")["events"]
    assert [e["message"] for e in events] == ["fresh"]
    assert logs_client.describe_log_groups(logGroupNamePattern="APP")["logGroups"][0]["retentionInDays"] == 7
    assert logs_client.list_tags_log_group(logGroupName="/app")["tags"] == {"team": "lab"}
    assert error_of(
        logs_client.put_log_events,
        logGroupName="/app",
        logStreamName="one",
        logEvents=[{"timestamp": t, "message": "b"}, {"timestamp": t - 1, "message": "a"}],
    ) == ("InvalidParameterException", "Log events in a single PutLogEvents request must be in chronological order.")


def test_errors_in_aws_shapes(logs_client: Any) -> None:
    assert error_of(logs_client.describe_log_streams, logGroupName="/nope") == (
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    )
    logs_client.create_log_group(logGroupName="/g")
    assert error_of(logs_client.create_log_group, logGroupName="/g") == (
        "ResourceAlreadyExistsException",
        "The specified log group already exists",
    )
    assert error_of(logs_client.get_log_events, logGroupName="/g", logStreamName="x") == (
        "ResourceNotFoundException",
        "The specified log stream does not exist.",
    )
    assert error_of(
        logs_client.describe_log_streams, logGroupName="/g", orderBy="LastEventTime", logStreamNamePrefix="a"
    ) == ("InvalidParameterException", "Cannot order by LastEventTime with a logStreamNamePrefix.")
    assert error_of(logs_client.describe_log_groups, limit=51)[1] == (
        "1 validation error detected: Value '51' at 'limit' failed to satisfy constraint: "
        "Member must have value less than or equal to 50"
    )
    assert error_of(logs_client.filter_log_events, logGroupName="/g", filterPattern="{ $.a = 1")[1] == (
        "If a filter pattern starts with '{' it must end with '}'"
    )
    assert error_of(logs_client.put_retention_policy, logGroupName="/g", retentionInDays=2)[0] == (
        "InvalidParameterException"
    )
    code, message = error_of(
        logs_client.put_metric_filter,
        logGroupName="/g",
        filterName="f",
        filterPattern="x",
        metricTransformations=[{"metricName": "m", "metricNamespace": "n", "metricValue": "1"}],
    )
    assert code == "LambdalabNotImplemented" and "PutMetricFilter" in message


def test_insights_start_get_describe_and_errors(served: Any, logs_client: Any) -> None:
    t = now_ms()
    served.logs.writer.put(
        GROUP,
        "s",
        [
            (
                t,
                "REPORT RequestId: r1\tDuration: 5.00 ms\tBilled Duration: 6 ms\tMemory Size: 128 MB\t"
                "Max Memory Used: 40 MB\tInit Duration: 99.50 ms\t\n",
            )
        ],
    )
    served.logs.writer.flush()
    seconds = t // 1000
    query_id = logs_client.start_query(
        logGroupName=GROUP,
        startTime=seconds - 60,
        endTime=seconds + 60,
        queryString="stats count(@initDuration) as cold",
    )["queryId"]
    served.logs.api.queries.wait(query_id)
    answer = logs_client.get_query_results(queryId=query_id)
    assert answer["status"] == "Complete"
    assert answer["results"] == [[{"field": "cold", "value": "1"}]]
    assert answer["statistics"]["recordsScanned"] == 1.0
    assert logs_client.describe_queries(logGroupName=GROUP)["queries"][0]["queryId"] == query_id
    assert logs_client.stop_query(queryId=query_id)["success"] is False
    with pytest.raises(ClientError) as raised:
        logs_client.start_query(logGroupName=GROUP, startTime=1, endTime=2, queryString="fields @message | filter = 3")
    error = raised.value.response["Error"]
    assert error["Code"] == "MalformedQueryException"
    assert raised.value.response["queryCompileError"]["location"] == {"startCharOffset": 25, "endCharOffset": 26}
    assert error_of(logs_client.start_query, logGroupName="/none", startTime=1, endTime=2, queryString="fields @m") == (
        "ResourceNotFoundException",
        "Log group '/none' does not exist for account ID '123456789012'",
    )
    assert error_of(logs_client.get_query_results, queryId="nope")[0] == "ResourceNotFoundException"
