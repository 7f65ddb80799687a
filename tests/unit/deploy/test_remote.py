"""`lambdalab deploy` and its endpoint: local clients only, AWS-shaped failures, the stack's summary."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from lambdalab.cli import main
from lambdalab.deploy.remote import STACKS_PATH, handle_deploy
from lambdalab.errors import UserError


class FakeStack:
    stack_name = "s"
    stack_id = "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1"
    warnings = ["AWS::SSM::Parameter (P): not supported by the local cloud; not created"]
    known_differences: list[str] = []
    resources: dict[str, Any] = {}
    outputs: dict[str, Any] = {}

    def summary(self) -> str:
        return "0 resources created; 1 warning"


@pytest.fixture
async def endpoint(aiohttp_server_factory: Any, tmp_path: Path) -> Any:
    calls: list[tuple[Path, dict[str, str], str | None]] = []

    async def deploy(template: Path, overrides: Any, stack_name: str | None) -> Any:
        calls.append((template, dict(overrides), stack_name))
        if stack_name == "broken":
            raise UserError("Template format error: Unresolved resource dependencies [X]", where="Resources.Y")
        return FakeStack()

    app = web.Application()
    app.router.add_route("*", STACKS_PATH, lambda request: handle_deploy(request, deploy))
    server = await aiohttp_server_factory(app)
    (tmp_path / "template.yaml").write_text("Resources: {}\n")
    return server, calls, tmp_path / "template.yaml"


async def post(server: Any, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json", **(headers or {})}
    url = server.make_url(STACKS_PATH)
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=json.dumps(body), headers=headers) as response,
    ):
        return response.status, json.loads(await response.read())


async def test_a_deploy_answers_the_stack_summary(endpoint: Any) -> None:
    server, calls, template = endpoint
    status, body = await post(server, {"template": str(template), "stack_name": "s", "parameter_overrides": {"A": "1"}})
    assert status == 200
    assert body["summary"] == "0 resources created; 1 warning" and body["warnings"] == FakeStack.warnings
    assert calls == [(template, {"A": "1"}, "s")]


async def test_a_refused_template_is_its_message_and_where(endpoint: Any) -> None:
    server, _, template = endpoint
    status, body = await post(server, {"template": str(template), "stack_name": "broken"})
    assert (status, body) == (
        400,
        {"error": "Template format error: Unresolved resource dependencies [X]", "where": "Resources.Y"},
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, 'the request needs {"template": "<absolute path>"}'),
        ({"template": "relative.yaml"}, "must be an absolute path"),
        ({"template": "/nowhere/template.yaml"}, "not found"),
    ],
)
async def test_bad_requests_are_refused(endpoint: Any, body: dict[str, Any], message: str) -> None:
    server, calls, _ = endpoint
    status, answer = await post(server, body)
    assert status == 400 and message in answer["error"]
    assert calls == []


async def test_what_a_web_page_could_send_is_refused(endpoint: Any) -> None:
    # GIVEN a cross-origin request (a browser adds Origin) or a "simple" one a page can send without a preflight
    server, calls, template = endpoint
    status, _ = await post(server, {"template": str(template)}, {"Origin": "https://evil.example"})
    assert status == 403
    async with aiohttp.ClientSession() as session:
        data = json.dumps({"template": str(template)})
        async with session.post(server.make_url(STACKS_PATH), data=data, headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 403
    # THEN nothing was deployed
    assert calls == []


def test_lambdalab_deploy_without_a_cloud_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    template = tmp_path / "template.yaml"
    template.write_text("Resources: {}\n")
    assert main(["deploy", "--template", str(template), "--port", str(port)]) == 2
    assert f"no local cloud answers at http://127.0.0.1:{port}" in capsys.readouterr().err
