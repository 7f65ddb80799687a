"""Definition lint (statelint) and execution names, with the errors Step Functions returns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lambdalab.stepfunctions.validation import (
    StatesError,
    check_definition,
    check_execution_name,
    check_state_machine_name,
    definition_problems,
    diagnose,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("path", sorted((ROOT / "statemachine").glob("*.asl.json")), ids=lambda p: p.name)
def test_the_labs_definitions_are_valid(path: Path) -> None:
    assert definition_problems(path.read_text()) == []


L = "arn:aws:lambda:us-east-1:123456789012:function:f"


def task(**fields: Any) -> dict[str, Any]:
    return {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": L, "End": True, **fields}}}


def dmap(**fields: Any) -> dict[str, Any]:
    processor = {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "T",
        "States": {"T": {"Type": "Task", "Resource": L, "End": True}},
    }
    return {"StartAt": "M", "States": {"M": {"Type": "Map", "ItemProcessor": processor, "End": True, **fields}}}


RETRY = {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 3}
# Definitions AWS accepts; each names the construct. [AWS docs examples; issue 12; AWS responses on record]
ACCEPTED = {
    "integer BackoffRate (issue 12)": task(Retry=[{**RETRY, "BackoffRate": 2}]),
    "float BackoffRate, MaxDelaySeconds, JitterStrategy": task(
        Retry=[{**RETRY, "BackoffRate": 1.5, "MaxDelaySeconds": 10, "JitterStrategy": "FULL"}]
    ),
    "legacy Lambda function ARN": task(),
    "legacy ARN of a version": task(Resource=L + ":3"),
    "legacy ARN of an alias": task(Resource=L + ":live"),
    "lambda:invoke": task(Resource="arn:aws:states:::lambda:invoke", Parameters={"FunctionName": L, "Payload.$": "$"}),
    "lambda:invoke.waitForTaskToken": task(
        Resource="arn:aws:states:::lambda:invoke.waitForTaskToken",
        Parameters={"FunctionName": L, "Payload": {"token.$": "$$.Task.Token", "input.$": "$"}},
        HeartbeatSeconds=60,
        TimeoutSeconds=300,
    ),
    "intrinsic functions": {
        "StartAt": "A",
        "States": {
            "A": {
                "Type": "Pass",
                "End": True,
                "Parameters": {
                    "a.$": "States.Format('hi {}', $.name)",
                    "b.$": "States.Array(1, 2, $.x)",
                    "c.$": "States.JsonToString($)",
                    "d.$": "States.MathAdd($.n, 1)",
                    "e.$": "States.UUID()",
                    "f.$": "States.ArrayPartition($.l, 2)",
                    "g.$": "States.Hash($.s, 'SHA-256')",
                    "h.$": "States.StringToJson($.j)",
                    "i.$": "States.ArrayLength($.l)",
                },
            }
        },
    },
    "Parameters, ResultSelector, ResultPath, OutputPath, InputPath": task(
        Resource="arn:aws:states:::lambda:invoke",
        Parameters={"FunctionName": L, "Payload.$": "$"},
        ResultSelector={"r.$": "$.Payload"},
        ResultPath="$.out",
        OutputPath="$.out",
        InputPath="$",
    ),
    "Distributed Map: ItemReader, ItemSelector, ItemBatcher, ResultWriter, Label, tolerance": dmap(
        ItemReader={
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW", "MaxItems": 10},
            "Parameters": {"Bucket": "b", "Key": "k"},
        },
        ItemSelector={"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
        ItemBatcher={"MaxItemsPerBatch": 5, "BatchInput": {"x": 1}},
        ResultWriter={
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "b", "Prefix": "p"},
            "WriterConfig": {"OutputType": "JSONL", "Transformation": "COMPACT"},
        },
        MaxConcurrency=100,
        ToleratedFailurePercentage=5.5,
        ToleratedFailureCount=3,
        Label="batch",
    ),
    "EXPRESS child workflows": {
        **dmap(),
        "States": {
            "M": {
                **dmap()["States"]["M"],
                "ItemProcessor": {
                    **dmap()["States"]["M"]["ItemProcessor"],
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                },
            }
        },
    },
    "inline Map with ItemsPath and MaxConcurrencyPath": {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.entries",
                "MaxConcurrencyPath": "$.c",
                "ItemSelector": {"x.$": "$$.Map.Item.Value"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "T",
                    "States": {"T": {"Type": "Task", "Resource": L, "End": True}},
                },
                "End": True,
            }
        },
    },
    "legacy Map Iterator and Parameters": {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.e",
                "MaxConcurrency": 0,
                "Parameters": {"x.$": "$$.Map.Item.Value"},
                "Iterator": {"StartAt": "T", "States": {"T": {"Type": "Pass", "End": True}}},
                "End": True,
            }
        },
    },
    "Choice, Wait, Parallel, Catch, Fail paths": {
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.n", "NumericEquals": 1, "Next": "W"},
                    {
                        "And": [
                            {"Variable": "$.a", "IsPresent": True},
                            {"Not": {"Variable": "$.b", "StringEquals": "x"}},
                        ],
                        "Next": "P",
                    },
                ],
                "Default": "F",
            },
            "W": {"Type": "Wait", "Seconds": 1, "Next": "P"},
            "P": {
                "Type": "Parallel",
                "Branches": [{"StartAt": "X", "States": {"X": {"Type": "Pass", "End": True}}}],
                "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 0}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "F"}],
                "Next": "S",
            },
            "S": {"Type": "Succeed"},
            "F": {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "States.Format('{}', $.c)"},
        },
    },
    "workflow variables in JSONPath": {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Assign": {"v.$": "$.x", "n": 1}, "Next": "W"},
            "W": {"Type": "Wait", "Seconds": 0, "Assign": {"w": 2}, "Next": "B"},
            "B": {"Type": "Pass", "Parameters": {"x.$": "$v", "y.$": "$v.field"}, "End": True},
        },
    },
    "JSONata everywhere it may appear": {
        "QueryLanguage": "JSONata",
        "StartAt": "A",
        "States": {
            "A": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Arguments": {"FunctionName": L, "Payload": "{% $states.input %}"},
                "Output": "{% $states.result.Payload %}",
                "Assign": {"x": "{% 1 %}"},
                "TimeoutSeconds": "{% 5 %}",
                "Retry": [{"ErrorEquals": ["States.ALL"], "BackoffRate": 2}],
                "Next": "C",
            },
            "C": {
                "Type": "Choice",
                "Choices": [{"Condition": "{% $states.input.x = 1 %}", "Next": "W"}],
                "Default": "W",
            },
            "W": {"Type": "Wait", "Seconds": "{% 1 %}", "End": True},
        },
    },
    "top-level Comment, Version, TimeoutSeconds": {
        "Comment": "c",
        "Version": "1.0",
        "TimeoutSeconds": 10,
        "StartAt": "A",
        "States": {"A": {"Type": "Pass", "Result": {"a": 1}, "ResultPath": "$.r", "End": True}},
    },
    "SDK integrations and .sync": {
        "StartAt": "A",
        "States": {
            "A": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:dynamodb:getItem",
                "Parameters": {"TableName": "t", "Key": {"id": {"S.$": "$.id"}}},
                "Next": "B",
            },
            "B": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": {
                    "StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:x",
                    "Input.$": "$",
                },
                "End": True,
            },
        },
    },
}


@pytest.mark.parametrize("definition", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_every_definition_aws_accepts_is_accepted(definition: dict[str, Any]) -> None:
    assert definition_problems(json.dumps(definition)) == []
    check_definition(json.dumps(definition))


# What AWS rejects, with AWS's code, location and (where on record) AWS's words.
REJECTED = [
    (
        task(Retry=[{**RETRY, "BackoffRate": 0}]),
        "SCHEMA_VALIDATION_FAILED",
        "/States/A/Retry[0]/BackoffRate",
        "floor is 1",
    ),
    (
        task(Retry=[{**RETRY, "BackoffRate": "2"}]),
        "SCHEMA_VALIDATION_FAILED",
        "/States/A/Retry[0]/BackoffRate",
        "should be a Float",
    ),
    (
        {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": L}}},
        "SCHEMA_VALIDATION_FAILED",
        "/States/A",
        "These fields are required: [Next]",
    ),
    ({}, "SCHEMA_VALIDATION_FAILED", "/", "These fields are required: [States, StartAt]"),
    (
        {"States": {"A": {"Type": "Pass", "End": True}}},
        "SCHEMA_VALIDATION_FAILED",
        "/",
        "These fields are required: [StartAt]",
    ),
    (
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "NOPE"}}},
        "MISSING_TRANSITION_TARGET",
        "/States/A/Next",
        "Missing 'Next' target: NOPE",
    ),
    (
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}, "B": {"Type": "Pass", "End": True}}},
        "MISSING_TRANSITION_TARGET",
        "/States/B",
        'State "B" is not reachable.',
    ),
    (
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}}},
        "MISSING_END_STATE",
        None,
        "Workflow has no terminal state",
    ),
    (
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "TimeoutSeconds": 3, "End": True}}},
        "SCHEMA_VALIDATION_FAILED",
        "/States/A",
        "Field 'TimeoutSeconds' is not supported",
    ),
    (
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "Output": {"a": 1}, "End": True}}},
        "SCHEMA_VALIDATION_FAILED",
        "/States/A",
        "The QueryLanguage is set to 'JSONPath', but field 'Output' is only supported for the 'JSONata' QueryLanguage",
    ),
    (
        {
            "QueryLanguage": "JSONata",
            "StartAt": "A",
            "States": {"A": {"Type": "Pass", "QueryLanguage": "JSONPath", "End": True}},
        },
        "SCHEMA_VALIDATION_FAILED",
        "/States/A",
        "'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine",
    ),
    (
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "Parameters": {"x.$": "literal"}, "End": True}}},
        "SCHEMA_VALIDATION_FAILED",
        "/States/A/Parameters",
        "The value for the field 'x.$' must be a valid JSONPath or a valid intrinsic function call",
    ),
    (
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "OutputPath": "Test", "End": True}}},
        "SCHEMA_VALIDATION_FAILED",
        "/States/A/OutputPath",
        "Value must be a valid JSONPath.",
    ),
    (
        {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "SecondsPath": "$.s", "End": True}}},
        "SCHEMA_VALIDATION_FAILED",
        "/States/W",
        "There should only be one of the following fields: [",
    ),
    (
        dmap(ToleratedFailurePercentage=150),
        "SCHEMA_VALIDATION_FAILED",
        "/States/M/ToleratedFailurePercentage",
        "Maximum value is 100.0",
    ),
    (
        {
            "StartAt": "P",
            "States": {
                "P": {
                    "Type": "Parallel",
                    "End": True,
                    "Branches": [
                        {"StartAt": "X", "States": {"X": {"Type": "Pass", "End": True}}},
                        {"StartAt": "X", "States": {"X": {"Type": "Pass", "End": True}}},
                    ],
                }
            },
        },
        "DUPLICATE_STATE_NAME",
        "/States/X",
        "Duplicate State name: X",
    ),
    (
        {"StartAt": "a.b", "States": {"a.b": {"Type": "Pass", "Next": "c.d"}}},
        "MISSING_TRANSITION_TARGET",
        "/States/a.b/Next",
        "Missing 'Next' target: c.d",
    ),
]


@pytest.mark.parametrize(("definition", "code", "location", "message"), REJECTED)
def test_what_aws_rejects_is_rejected_with_its_code_location_and_words(
    definition: dict[str, Any], code: str, location: str | None, message: str
) -> None:
    found = diagnose(json.dumps(definition))
    assert any(d.code == code and d.location == location and message in d.message for d in found), found
    with pytest.raises(StatesError) as caught:
        check_definition(json.dumps(definition))
    assert caught.value.code == "InvalidDefinition"
    where = location if location is not None else "null"
    assert f"{code}: " in caught.value.message and f" at {where}" in caught.value.message


def test_create_state_machine_words_several_findings_as_aws_does() -> None:
    # AWS: 'MISSING_TRANSITION_TARGET: Missing 'Next' target: pass3 at /States/pass1/Next, MISSING_TRANSITION_TARGET:
    # State "pass2" is not reachable. at /States/pass2' [recorded in LocalStack PR 12487]
    definition = {
        "StartAt": "pass1",
        "States": {"pass1": {"Type": "Pass", "Next": "pass3"}, "pass2": {"Type": "Pass", "End": True}},
    }
    with pytest.raises(StatesError) as caught:
        check_definition(json.dumps(definition))
    assert caught.value.message == (
        "Invalid State Machine Definition: 'MISSING_TRANSITION_TARGET: Missing 'Next' target: pass3 at "
        "/States/pass1/Next, MISSING_END_STATE: Workflow has no terminal state at null'"
    )
    assert caught.value.body() == {"__type": "InvalidDefinition", "message": caught.value.message}


def test_an_express_machine_cannot_wait_for_a_task_token() -> None:
    definition = json.dumps(ACCEPTED["lambda:invoke.waitForTaskToken"])
    check_definition(definition, "STANDARD")
    with pytest.raises(
        StatesError, match=r"Express state machine does not support '\.waitForTaskToken' service integration"
    ):
        check_definition(definition, "EXPRESS")


@pytest.mark.parametrize("text", ["", "   ", "{not json", "[1, 2]", '"a string"', None, 42])
def test_a_definition_that_is_not_a_json_object_is_rejected(text: object) -> None:
    with pytest.raises(StatesError) as caught:
        check_definition(text)
    assert caught.value.code == "InvalidDefinition"


def test_a_file_path_is_never_read_as_a_definition(tmp_path: Path) -> None:
    # statelint reads a string naming an existing file as that file; a request body must not reach the disk
    secret = tmp_path / "definition.json"
    secret.write_text(json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}))
    problems = definition_problems(str(secret))
    assert problems and problems[0].startswith("INVALID_JSON_DESCRIPTION: ")


@pytest.mark.parametrize(
    "name", ["run-1", "a", "a" * 80, "Über_ünicode", "dots.are.fine", "(parens)", "plus+equals=", "at@sign"]
)
def test_valid_execution_names(name: str) -> None:
    check_execution_name(name)
    check_state_machine_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a" * 81,
        "has space",
        "tab\there",
        "new\nline",
        "<x>",
        "{x}",
        "[x]",
        "why?",
        "star*",
        'quote"',
        "hash#",
        "per%cent",
        "back\\slash",
        "caret^",
        "pipe|",
        "tilde~",
        "tick`",
        "dollar$",
        "amp&",
        "comma,",
        "semi;",
        "colon:",
        "slash/",
        "ctrl\x01",
        "del\x7f",
        "c1\x85",
        "nonchar\ufffe",
    ],
)
def test_invalid_execution_names(name: str) -> None:
    with pytest.raises(StatesError) as caught:
        check_execution_name(name)
    assert (caught.value.code, caught.value.message) == ("InvalidName", f"Invalid Name: '{name}'")


def test_no_name_is_valid_for_an_execution_but_not_for_a_state_machine() -> None:
    check_execution_name(None)
    with pytest.raises(StatesError):
        check_state_machine_name(None)
