"""What moto's interpreter cannot run is named at create time — and each named limit is checked against moto itself,
so a limit that moto lifts in a later version fails here instead of being refused for nothing."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdalab.stepfunctions.executable import adapt_for_moto, local_limits, prepare_for_moto
from lambdalab.stepfunctions.validation import StatesError, definition_problems

ROLE = "arn:aws:iam::123456789012:role/r"


def pass_machine(**state: Any) -> dict[str, Any]:
    return {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True, **state}}}


def distributed(**fields: Any) -> dict[str, Any]:
    config = fields.pop("config", {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"})
    state = {
        "Type": "Map",
        "ItemsPath": "$.items",
        "ItemProcessor": {"ProcessorConfig": config, "StartAt": "T", "States": {"T": {"Type": "Pass", "End": True}}},
        "End": True,
        **fields,
    }
    return {"StartAt": "M", "States": {"M": state}}


# construct → (definition, where the limit is named)
CANNOT_RUN = {
    "JSONata for the whole machine": (
        {"QueryLanguage": "JSONata", **pass_machine(Output="{% $states.input.x + 1 %}")},
        "/QueryLanguage",
    ),
    "JSONata in one state": (
        pass_machine(QueryLanguage="JSONata", Output={"y": "{% $states.input.x %}"}),
        "/States/A/QueryLanguage",
    ),
    "reading a workflow variable": (
        {
            "StartAt": "A",
            "States": {
                "A": {"Type": "Pass", "Assign": {"v.$": "$.x"}, "Next": "B"},
                "B": {"Type": "Pass", "Parameters": {"got.$": "$v"}, "End": True},
            },
        },
        "/States/B/Parameters/got.$",
    ),
    "a workflow variable inside an intrinsic": (
        {
            "StartAt": "A",
            "States": {
                "A": {"Type": "Pass", "Assign": {"v.$": "$.x"}, "Next": "B"},
                "B": {"Type": "Pass", "Parameters": {"s.$": "States.Format('{}', $v)"}, "End": True},
            },
        },
        "/States/B/Parameters/s.$",
    ),
    "ItemBatcher": (distributed(ItemBatcher={"MaxItemsPerBatch": 2}), "/States/M/ItemBatcher"),
    "ResultWriter.WriterConfig": (
        distributed(
            ResultWriter={
                "Resource": "arn:aws:states:::s3:putObject",
                "Parameters": {"Bucket": "b", "Prefix": "p"},
                "WriterConfig": {"OutputType": "JSONL", "Transformation": "NONE"},
            }
        ),
        "/States/M/ResultWriter/WriterConfig",
    ),
}


@pytest.fixture
def moto_states() -> Any:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield boto3.client("stepfunctions", region_name="us-east-1")


def run_in_moto(client: Any, definition: dict[str, Any], name: str) -> str:
    """Create and run the definition in moto's interpreter; the final status (or CREATE-FAILED)."""
    try:
        arn = client.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    except client.exceptions.ClientError:
        return "CREATE-FAILED"
    execution = client.start_execution(stateMachineArn=arn, input=json.dumps({"x": 1, "items": [1, 2, 3]}))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = client.describe_execution(executionArn=execution["executionArn"])["status"]
        if status != "RUNNING":
            return str(status)
        time.sleep(0.02)
    return "RUNNING"


@pytest.mark.parametrize(("definition", "location"), CANNOT_RUN.values(), ids=CANNOT_RUN.keys())
def test_each_construct_moto_cannot_run_is_named_and_really_fails_in_moto(
    moto_states: Any, definition: dict[str, Any], location: str
) -> None:
    # GIVEN a definition AWS accepts
    assert definition_problems(json.dumps(definition)) == []
    # THEN the local check names the construct and where it is ...
    limits = [limit for limit in local_limits(definition) if not limit.runs]
    assert [limit.location for limit in limits] == [location]
    with pytest.raises(StatesError) as caught:
        prepare_for_moto(json.dumps(definition))
    assert (caught.value.code, caught.value.status) == ("NotImplemented", 501)
    assert location in caught.value.message
    # ... and moto 5.2.5 indeed cannot run it: it refuses it, or the execution fails
    assert run_in_moto(moto_states, definition, "cannot") in ("CREATE-FAILED", "FAILED")


ADAPTED = {
    "an integer ToleratedFailurePercentage": distributed(ToleratedFailurePercentage=10),
    "EXPRESS child workflows": distributed(config={"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}),
}


@pytest.mark.parametrize("definition", ADAPTED.values(), ids=ADAPTED.keys())
def test_gaps_that_lose_nothing_locally_are_closed_by_adapting_what_moto_gets(
    moto_states: Any, definition: dict[str, Any]
) -> None:
    assert definition_problems(json.dumps(definition)) == []
    assert run_in_moto(moto_states, definition, "original") == "CREATE-FAILED"  # moto's grammar alone refuses it
    text, limits = prepare_for_moto(json.dumps(definition))
    assert all(limit.runs for limit in limits)
    assert run_in_moto(moto_states, json.loads(text), "adapted") == "SUCCEEDED"


def test_what_moto_accepts_but_ignores_is_a_difference_not_a_refusal() -> None:
    definition = distributed(ToleratedFailureCount=2, ToleratedFailurePercentagePath="$.p")
    text, limits = prepare_for_moto(json.dumps(definition))
    assert {(limit.location, limit.runs) for limit in limits} == {
        ("/States/M/ToleratedFailureCount", True),
        ("/States/M/ToleratedFailurePercentagePath", True),
    }
    assert json.loads(text) == definition  # nothing to adapt


RUNS = {
    "integer BackoffRate": {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Next": "B"},
            "B": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:s3:headBucket",
                "Parameters": {"Bucket": "nope-bucket"},
                "Retry": [
                    {
                        "ErrorEquals": ["States.ALL"],
                        "BackoffRate": 2,
                        "IntervalSeconds": 1,
                        "MaxAttempts": 1,
                        "MaxDelaySeconds": 1,
                        "JitterStrategy": "FULL",
                    }
                ],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "C"}],
                "End": True,
            },
            "C": {"Type": "Succeed"},
        },
    },
    "intrinsic functions": pass_machine(
        Parameters={
            "a.$": "States.Format('n={}', $.x)",
            "b.$": "States.MathAdd($.x, 1)",
            "h.$": "States.Hash('a', 'SHA-256')",
        }
    ),
    "Choice and Wait": {
        "StartAt": "W",
        "States": {
            "W": {"Type": "Wait", "Seconds": 0, "Next": "C"},
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "NumericEquals": 1, "Next": "S"}], "Default": "F"},
            "S": {"Type": "Succeed"},
            "F": {"Type": "Fail", "Error": "E"},
        },
    },
    "inline Map with ItemSelector": {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {"v.$": "$$.Map.Item.Value"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "T",
                    "States": {"T": {"Type": "Pass", "End": True}},
                },
                "End": True,
            }
        },
    },
    "a Distributed Map with a Label": distributed(Label="batch"),
}


@pytest.mark.parametrize("definition", RUNS.values(), ids=RUNS.keys())
def test_what_moto_runs_is_not_refused(moto_states: Any, definition: dict[str, Any]) -> None:
    assert definition_problems(json.dumps(definition)) == []
    assert local_limits(definition) == []
    assert json.dumps(adapt_for_moto(definition)[0]) == json.dumps(definition)
    assert run_in_moto(moto_states, definition, "runs") == "SUCCEEDED"
