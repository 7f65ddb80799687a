"""The gateway's `states` route: what it checks, what it changes, and that everything else reaches moto untouched."""

from __future__ import annotations

import json
import uuid
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from lambdalab.stepfunctions import patches
from lambdalab.stepfunctions.api import StatesApi, execution_arn, prepare
from lambdalab.stepfunctions.validation import StatesError

SM = "arn:aws:states:us-east-1:123456789012:stateMachine:lab-base"
GOOD = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}})
BAD = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass"}}})


def test_a_missing_execution_name_becomes_a_uuid() -> None:
    prepared = prepare("StartExecution", {"stateMachineArn": SM, "input": "{}"})
    assert str(uuid.UUID(prepared["name"])) == prepared["name"]
    assert prepare("StartExecution", {"stateMachineArn": SM})["name"] != prepared["name"]


def test_a_given_name_is_kept_and_checked() -> None:
    assert prepare("StartSyncExecution", {"stateMachineArn": SM, "name": "run-1"})["name"] == "run-1"
    with pytest.raises(StatesError, match="Invalid Name"):
        prepare("StartExecution", {"stateMachineArn": SM, "name": "run 1"})


def test_definitions_are_linted_on_create_and_update() -> None:
    assert prepare("CreateStateMachine", {"name": "m", "definition": GOOD})["definition"] == GOOD
    with pytest.raises(StatesError, match="Invalid State Machine Definition"):
        prepare("CreateStateMachine", {"name": "m", "definition": BAD})
    with pytest.raises(StatesError):
        prepare("UpdateStateMachine", {"stateMachineArn": SM, "definition": BAD})
    assert prepare("UpdateStateMachine", {"stateMachineArn": SM, "roleArn": "r"}) == {
        "stateMachineArn": SM,
        "roleArn": "r",
    }


def test_other_actions_pass_through() -> None:
    payload = {"executionArn": "x"}
    assert prepare("DescribeExecution", payload) is payload


def test_execution_arn_from_state_machine_arn_and_name() -> None:
    assert execution_arn(SM, "run-1") == "arn:aws:states:us-east-1:123456789012:execution:lab-base:run-1"


@pytest.fixture
async def routed(aiohttp_server_factory: Any) -> Any:
    """A StatesApi in front of a fake moto that records what reached it."""
    seen: list[dict[str, Any]] = []

    async def fake_moto(request: web.Request) -> web.Response:
        seen.append({"target": request.headers.get("X-Amz-Target"), "body": await request.read()})
        return web.json_response({"ok": True}, headers={"x-amzn-RequestId": "moto"})

    upstream = web.Application()
    upstream.router.add_route("*", "/{tail:.*}", fake_moto)
    moto = await aiohttp_server_factory(upstream)
    api = StatesApi(str(moto.make_url("/")))
    front = web.Application()
    front.router.add_route("*", "/{tail:.*}", api.handle)
    server = await aiohttp_server_factory(front)
    yield server, seen
    await api.close()


async def post(server: Any, action: str, body: bytes) -> tuple[int, dict[str, Any], Any]:
    headers = {"X-Amz-Target": f"AWSStepFunctions.{action}", "Content-Type": "application/x-amz-json-1.0"}
    async with aiohttp.ClientSession() as session, session.post(server.make_url("/"), data=body, headers=headers) as r:
        return r.status, json.loads(await r.read()), r.headers


async def test_a_bad_definition_never_reaches_moto(routed: Any) -> None:
    server, seen = routed
    status, body, headers = await post(
        server, "CreateStateMachine", json.dumps({"name": "m", "definition": BAD}).encode()
    )
    assert status == 400
    assert body["__type"] == "InvalidDefinition"
    assert headers["x-amzn-ErrorType"] == "InvalidDefinition"
    assert seen == []


async def test_start_execution_reaches_moto_with_a_name(routed: Any) -> None:
    server, seen = routed
    status, body, _ = await post(server, "StartExecution", json.dumps({"stateMachineArn": SM, "input": "{}"}).encode())
    assert (status, body) == (200, {"ok": True})
    forwarded = json.loads(seen[0]["body"])
    assert forwarded["stateMachineArn"] == SM and uuid.UUID(forwarded["name"])


async def test_a_trace_header_moto_would_drop_is_remembered(routed: Any) -> None:
    server, _ = routed
    header = "Root=1-5f84c7a1-0123456789abcdef01234567;Sampled=1"
    payload = {"stateMachineArn": SM, "name": "traced-run", "traceHeader": header}
    await post(server, "StartExecution", json.dumps(payload).encode())
    assert patches.traces._given[execution_arn(SM, "traced-run")] == header


async def test_other_requests_are_forwarded_byte_for_byte(routed: Any) -> None:
    server, seen = routed
    raw = b'{"executionArn":  "arn:x"}'
    status, _, headers = await post(server, "DescribeExecution", raw)
    assert status == 200 and headers["x-amzn-RequestId"] == "moto"
    assert seen == [{"target": "AWSStepFunctions.DescribeExecution", "body": raw}]


@pytest.mark.parametrize("raw", [b"{not json", b"[1]"])
async def test_an_unreadable_body_is_a_serialization_error(routed: Any, raw: bytes) -> None:
    server, seen = routed
    status, body, _ = await post(server, "StartExecution", raw)
    assert status == 400 and body["__type"] == "SerializationException"
    assert seen == []


async def test_validate_state_machine_definition_answers_with_aws_diagnostics(routed: Any) -> None:
    server, seen = routed
    status, body, _ = await post(server, "ValidateStateMachineDefinition", json.dumps({"definition": BAD}).encode())
    assert status == 200 and body["result"] == "FAIL" and not body["truncated"]
    assert body["diagnostics"][0] == {
        "severity": "ERROR",
        "code": "SCHEMA_VALIDATION_FAILED",
        "message": "These fields are required: [Next]",
        "location": "/States/A",
    }
    status, body, _ = await post(server, "ValidateStateMachineDefinition", json.dumps({"definition": GOOD}).encode())
    assert body == {"result": "OK", "diagnostics": [], "truncated": False}
    # An express machine may not wait for a task token (the request's type is honoured)
    wait = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Task", "End": True,
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": "q", "MessageBody": {"t.$": "$$.Task.Token"}}}}})  # fmt: skip
    status, body, _ = await post(
        server, "ValidateStateMachineDefinition", json.dumps({"definition": wait, "type": "EXPRESS"}).encode()
    )
    assert body["result"] == "FAIL" and body["diagnostics"][0]["location"] == "/States/A/Resource"
    assert seen == []


async def test_what_the_local_interpreter_cannot_run_is_a_warning_in_validate_and_501_on_create(routed: Any) -> None:
    # GIVEN a JSONata machine: AWS accepts it, moto's interpreter has no JSONata engine
    server, seen = routed
    jsonata = json.dumps({"QueryLanguage": "JSONata", "StartAt": "A",
                          "States": {"A": {"Type": "Pass", "Output": "{% $states.input %}", "End": True}}})  # fmt: skip
    status, body, _ = await post(server, "ValidateStateMachineDefinition", json.dumps({"definition": jsonata}).encode())
    assert status == 200 and body["result"] == "OK"  # as AWS answers
    assert body["diagnostics"] == [{
        "severity": "WARNING", "code": "LOCAL_CLOUD_LIMIT", "location": "/QueryLanguage",
        "message": "cannot run locally: JSONata (QueryLanguage for the whole state machine)",
    }]  # fmt: skip
    status, body, _ = await post(
        server, "CreateStateMachine", json.dumps({"name": "m", "definition": jsonata, "roleArn": "r"}).encode()
    )
    assert status == 501 and body["__type"] == "NotImplemented"
    assert "/QueryLanguage: JSONata" in body["message"] and "moto 5.2.5" in body["message"]
    assert seen == []  # nothing reached moto
