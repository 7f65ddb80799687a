"""The AWS look-ups around traces, against botocore's Stubber: stack functions, executions, metrics, sampling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import ANY

from lambdalab.errors import UserError
from lambdalab.traces import aws
from lambdalab.traces.reader import Window
from tests.unit.traces.data import StubSession

NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


def test_stack_functions_from_resources_pages_and_outputs():
    session = StubSession()
    cfn = session.stub("cloudformation")
    when = NOW
    cfn.add_response(
        "list_stack_resources",
        {
            "StackResourceSummaries": [
                {
                    "LogicalResourceId": "A",
                    "PhysicalResourceId": "lab-A-1",
                    "ResourceType": "AWS::Lambda::Function",
                    "LastUpdatedTimestamp": when,
                    "ResourceStatus": "CREATE_COMPLETE",
                },
                {
                    "LogicalResourceId": "Q",
                    "PhysicalResourceId": "q-url",
                    "ResourceType": "AWS::SQS::Queue",
                    "LastUpdatedTimestamp": when,
                    "ResourceStatus": "CREATE_COMPLETE",
                },
            ],
            "NextToken": "p2",
        },
        {"StackName": "lab"},
    )
    cfn.add_response(
        "list_stack_resources",
        {
            "StackResourceSummaries": [
                {
                    "LogicalResourceId": "B",
                    "PhysicalResourceId": "lab-B-2",
                    "ResourceType": "AWS::Lambda::Function",
                    "LastUpdatedTimestamp": when,
                    "ResourceStatus": "CREATE_COMPLETE",
                },
            ]
        },
        {"StackName": "lab", "NextToken": "p2"},
    )
    cfn.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "lab",
                    "CreationTime": when,
                    "StackStatus": "CREATE_COMPLETE",
                    "Outputs": [
                        {"OutputKey": "C", "OutputValue": "arn:aws:lambda:us-east-1:1:function:lab-C:live"},
                        {"OutputKey": "U", "OutputValue": "https://example.invalid"},
                    ],
                }
            ]
        },
        {"StackName": "lab"},
    )
    assert aws.stack_functions(session, "lab") == ["lab-A-1", "lab-B-2", "lab-C"]


def test_unknown_stack_is_a_user_error():
    session = StubSession()
    cfn = session.stub("cloudformation")
    cfn.add_client_error("list_stack_resources", "ValidationError", "Stack with id nope does not exist", 400)
    with pytest.raises(UserError, match="Stack with id nope does not exist"):
        aws.stack_functions(session, "nope")


def test_execution_trace_header_window_and_history_functions():
    session = StubSession()
    states = session.stub("stepfunctions")
    arn = "arn:aws:states:us-east-1:1:execution:lab-Map:e1"
    states.add_response(
        "describe_execution",
        {
            "executionArn": arn,
            "stateMachineArn": "arn:aws:states:us-east-1:1:stateMachine:lab-Map",
            "status": "SUCCEEDED",
            "startDate": NOW,
            "stopDate": NOW + timedelta(seconds=5),
            "traceHeader": "Root=1-6a000000-0123456789abcdef01234567;Sampled=1",
        },
        {"executionArn": arn},
    )
    states.add_response(
        "get_execution_history",
        {
            "events": [
                {
                    "timestamp": NOW,
                    "type": "TaskScheduled",
                    "id": 1,
                    "taskScheduledEventDetails": {
                        "resourceType": "lambda",
                        "resource": "invoke",
                        "region": "us-east-1",
                        "parameters": '{"FunctionName":"arn:aws:lambda:us-east-1:1:function:lab-Item:$LATEST"}',
                    },
                },
                {
                    "timestamp": NOW,
                    "type": "LambdaFunctionScheduled",
                    "id": 2,
                    "lambdaFunctionScheduledEventDetails": {"resource": "arn:aws:lambda:us-east-1:1:function:lab-Old"},
                },
            ]
        },
        {"executionArn": arn, "maxResults": 1000},
    )
    lookup = aws.describe_execution(session, arn)
    assert lookup.trace_id == "1-6a000000-0123456789abcdef01234567"
    assert lookup.window == Window(NOW, NOW + timedelta(seconds=5))
    assert lookup.functions == ["lab-Item", "lab-Old"]


def test_metrics_sums_and_sampling_warnings():
    session = StubSession()
    cw = session.stub("cloudwatch")
    cw.add_response(
        "get_metric_data",
        {"MetricDataResults": [{"Id": "i0", "Values": [5.0, 7.0]}, {"Id": "s0", "Values": [3.0]}], "NextToken": "n"},
        {"MetricDataQueries": ANY, "StartTime": ANY, "EndTime": ANY},
    )
    cw.add_response(
        "get_metric_data",
        {"MetricDataResults": [{"Id": "i0", "Values": [1.0]}]},
        {"MetricDataQueries": ANY, "StartTime": ANY, "EndTime": ANY, "NextToken": "n"},
    )
    metrics = aws.read_metrics(session, ["f"], [("f", "live"), ("f", "$LATEST")], Window(NOW - timedelta(hours=1), NOW))
    assert metrics.invocations == {"f": 13}
    assert metrics.spillover == {("f", "live"): 3}
    warnings, notes = aws.sampling_warnings({"f": 9}, metrics, [{"RuleName": "Default"}])
    assert len(warnings) == 2
    assert "traced 9 of the 13" in warnings[0] and "sampling rule" in warnings[0]
    assert "only the Default sampling rule" in warnings[1]
    assert notes == []
    warnings, notes = aws.sampling_warnings({"f": 13}, metrics, [{"RuleName": "Default"}, {"RuleName": "lab"}])
    assert warnings == []
    _, notes = aws.sampling_warnings({"f": 13}, metrics, None)
    assert notes == ["sampling rules could not be read (GetSamplingRules unavailable)"]


def test_metrics_unavailable_is_said_not_fatal():
    session = StubSession()
    cw = session.stub("cloudwatch")
    cw.add_client_error("get_metric_data", "AccessDenied", "not allowed", 403)
    metrics = aws.read_metrics(session, ["f"], [("f", "live")], Window(NOW - timedelta(hours=1), NOW))
    assert metrics.spillover is None and metrics.invocations == {}
    assert "CloudWatch metrics unavailable" in metrics.notes[0]
