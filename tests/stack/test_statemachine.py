"""The state machine definitions lint with statelint once substituted, and say what the lab depends on."""

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.support.sam import ROOT, Resolver

ALIAS_ARN = "arn:aws:lambda:us-east-1:123456789012:function:lambda-concurrency-lab-ConcurrencyTest-AbC123:live"
LAMBDA_RETRY_ERRORS = {"Lambda.TooManyRequestsException", "Lambda.ServiceException", "Lambda.SdkClientException"}
DEFINITIONS = ["concurrency_test", "concurrency_test_distributed"]


def substituted(name: str, values: dict[str, Any]) -> str:
    """What Step Functions receives: the file with each ${Key} replaced by its DefinitionSubstitutions value."""
    text = (ROOT / "statemachine" / f"{name}.asl.json").read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("${" + key + "}", str(value))
    return text


def _task(definition: dict[str, Any]) -> dict[str, Any]:
    processor = definition["States"]["FanOut"]["ItemProcessor"]
    return processor["States"][processor["StartAt"]]


@pytest.mark.parametrize("name", DEFINITIONS)
def test_statelint_accepts_the_substituted_definition(tmp_path: Path, name: str):
    path = tmp_path / f"{name}.json"
    path.write_text(substituted(name, {"FunctionAliasArn": ALIAS_ARN, "MapMaxConcurrency": 40}), encoding="utf-8")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "statelint"), str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_statelint_rejects_a_broken_definition(tmp_path: Path):
    # Proves the lint test can fail: a Retry with a misspelt field is an error.
    definition = json.loads(substituted("concurrency_test", {"FunctionAliasArn": ALIAS_ARN, "MapMaxConcurrency": 40}))
    _task(definition)["Retry"][0]["IntervalSecs"] = 1
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(definition), encoding="utf-8")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "statelint"), str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0


@pytest.mark.parametrize("name", DEFINITIONS)
def test_placeholders_stay_inside_json_strings(name: str):
    raw = (ROOT / "statemachine" / f"{name}.asl.json").read_text(encoding="utf-8")
    json.loads(raw)  # parses as is
    assert "${FunctionAliasArn}" in raw and "${MapMaxConcurrency}" in raw


@pytest.mark.parametrize("name", DEFINITIONS)
def test_each_entry_invokes_the_alias_and_retries_lambda_errors_with_backoff(name: str):
    definition = json.loads(substituted(name, {"FunctionAliasArn": ALIAS_ARN, "MapMaxConcurrency": 40}))
    fan_out = definition["States"]["FanOut"]
    assert fan_out["Type"] == "Map"
    assert fan_out["ItemsPath"] == "$.entries"
    task = _task(definition)
    assert task["Resource"] == "arn:aws:states:::lambda:invoke"
    assert task["Parameters"] == {"FunctionName": ALIAS_ARN, "Payload.$": "$"}
    (retry,) = task["Retry"]
    assert set(retry["ErrorEquals"]) >= LAMBDA_RETRY_ERRORS
    assert "TimeOut" not in retry["ErrorEquals"]
    assert retry["BackoffRate"] > 1
    assert retry["IntervalSeconds"] >= 1
    assert retry["MaxAttempts"] >= 3


def test_inline_map_concurrency_comes_from_the_template_parameter():
    definition = json.loads(substituted("concurrency_test", {"FunctionAliasArn": ALIAS_ARN, "MapMaxConcurrency": 25}))
    configure = definition["States"]["Configure"]
    assert configure["Next"] == "FanOut"
    assert configure["Parameters"]["maxConcurrency.$"] == "States.StringToJson('25')"
    fan_out = definition["States"]["FanOut"]
    assert fan_out["MaxConcurrencyPath"] == "$.maxConcurrency"
    assert fan_out["ItemProcessor"]["ProcessorConfig"]["Mode"] == "INLINE"


def test_distributed_map_runs_express_child_executions():
    definition = json.loads(
        substituted("concurrency_test_distributed", {"FunctionAliasArn": ALIAS_ARN, "MapMaxConcurrency": 150})
    )
    fan_out = definition["States"]["FanOut"]
    # STANDARD children: each keeps its own execution history, and moto's interpreter (the local cloud's) runs them.
    assert fan_out["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert definition["States"]["Configure"]["Parameters"]["maxConcurrency.$"] == "States.StringToJson('150')"
    assert fan_out["MaxConcurrencyPath"] == "$.maxConcurrency"


@pytest.mark.parametrize("name", DEFINITIONS)
def test_the_local_clouds_interpreter_runs_the_fan_out(name: str, monkeypatch: pytest.MonkeyPatch):
    # GIVEN the definition with the Lambda task swapped for a Pass that echoes the entry (moto's Lambda needs Docker)
    for key, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    definition = json.loads(substituted(name, {"FunctionAliasArn": ALIAS_ARN, "MapMaxConcurrency": 3}))
    processor = definition["States"]["FanOut"]["ItemProcessor"]
    processor["States"][processor["StartAt"]] = {"Type": "Pass", "Parameters": {"got.$": "$.item"}, "End": True}
    entries = [{"item": i, "sleep": 0} for i in range(7)]
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        client = boto3.client("stepfunctions")
        machine = client.create_state_machine(
            name=name, definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/lab"
        )["stateMachineArn"]
        execution = client.start_execution(stateMachineArn=machine, input=json.dumps({"entries": entries}))
        # WHEN it runs (deadline 20 s)
        deadline = time.monotonic() + 20
        status = client.describe_execution(executionArn=execution["executionArn"])
        while status["status"] == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.05)
            status = client.describe_execution(executionArn=execution["executionArn"])
    # THEN every entry went through the item processor, in order
    assert status["status"] == "SUCCEEDED", status
    assert json.loads(status["output"]) == [{"got": i} for i in range(7)]


def test_template_substitutions_resolve_to_alias_arns(cfn):
    # Ref of an AWS::Lambda::Alias is its ARN; the substitution must be that Ref for every machine.
    lab = Resolver(cfn)
    for machine in (
        "BaseStateMachine",
        "ProvisionedStateMachine",
        "BaseDistributedStateMachine",
        "ProvisionedDistributedStateMachine",
    ):
        ref = cfn["Resources"][machine]["Properties"]["DefinitionSubstitutions"]["FunctionAliasArn"]["Ref"]
        assert cfn["Resources"][ref]["Type"] == "AWS::Lambda::Alias"
        assert lab.properties(ref)["Name"] == "live"
