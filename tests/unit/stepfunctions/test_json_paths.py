"""moto 5.2.5 reads `$.a[0].b` as a list; with the patch a definite path gives the one value it names, as AWS."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdalab.stepfunctions.patches import is_definite_path, patch_definite_json_paths


@pytest.mark.parametrize(
    ("path", "definite"),
    [("$", True), ("$.a", True), ("$.a[0].b", True), ("$[1]", True), ("$.a['b c']", True), ("$.a[*].b", False),
     ("$..b", False), ("$.a[?(@.n == 1)].v", False), ("$.a[0:2]", False), ("$.a[0,1]", False), ("$.*", False)],
)  # fmt: skip
def test_definite_paths(path: str, definite: bool) -> None:
    assert is_definite_path(path) is definite


def run(definition: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        client = boto3.client("stepfunctions", region_name="us-east-1")
        arn = client.create_state_machine(
            name="paths", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/r"
        )["stateMachineArn"]
        execution = client.start_execution(stateMachineArn=arn, input=json.dumps(payload))["executionArn"]
        deadline = time.monotonic() + 10
        while (described := client.describe_execution(executionArn=execution))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the execution did not finish"
            time.sleep(0.02)
        return described


MACHINE = {
    "StartAt": "Pick",
    "States": {
        "Pick": {
            "Type": "Pass",
            "Parameters": {
                "first_ok.$": "$.checks[0].ok",
                "second.$": "$.checks[1]",
                "cooked.$": "$.params[?(@.name == 'eggs')].value",
                "all_ok.$": "$.checks[*].ok",
            },
            "Next": "Decide",
        },
        "Decide": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.first_ok", "BooleanEquals": True, "Next": "Yes"}],
            "Default": "No",
        },
        "Yes": {"Type": "Succeed"},
        "No": {"Type": "Fail", "Error": "TookTheDefault"},
    },
}
PAYLOAD = {"checks": [{"ok": True}, {"ok": False}], "params": [{"name": "eggs", "value": "poached"}]}


def test_a_definite_path_under_an_index_is_one_value_and_indefinite_paths_stay_lists() -> None:
    patch_definite_json_paths()
    described = run(MACHINE, PAYLOAD)
    assert described["status"] == "SUCCEEDED", described.get("error")
    assert json.loads(described["output"]) == {
        "first_ok": True,
        "second": {"ok": False},
        "cooked": ["poached"],  # a filter is indefinite: a list, as on AWS (getmoto/moto#7825)
        "all_ok": [True, False],
    }
    # AND a Choice on such a path (a Parallel's results) is decided on the value, not a list
    patch_definite_json_paths()  # idempotent
    choice = {"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.checks[0].ok", "BooleanEquals": True, "Next": "Y"}],
              "Default": "N"}, "Y": {"Type": "Succeed"}, "N": {"Type": "Fail", "Error": "TookTheDefault"}}}  # fmt: skip
    assert run(choice, PAYLOAD)["status"] == "SUCCEEDED"
