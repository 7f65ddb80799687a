"""Routing by AWS service, and the proxy to moto."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from lambdalab.gateway import Gateway, service_of
from lambdalab.moto_errors import NOT_IMPLEMENTED_HEADER

SIGV4 = "AWS4-HMAC-SHA256 Credential=AKIA/20261122/us-east-1/{svc}/aws4_request, SignedHeaders=host, Signature=ab"


@pytest.mark.parametrize("svc", ["lambda", "sqs", "dynamodb", "cloudformation", "states", "xray"])
def test_service_comes_from_the_sigv4_credential_scope(svc: str) -> None:
    request = make_mocked_request("POST", "/", headers={"Authorization": SIGV4.format(svc=svc)})
    assert service_of(request) == svc


def test_presigned_and_unsigned_requests() -> None:
    presigned = make_mocked_request("GET", "/?X-Amz-Credential=AKIA%2F20261122%2Fus-east-1%2Fs3%2Faws4_request")
    assert service_of(presigned) == "s3"
    assert service_of(make_mocked_request("GET", "/2015-03-31/functions/")) == "lambda"
    assert service_of(make_mocked_request("GET", "/products")) is None


class RecordingMoto:
    """A stand-in for moto that echoes what reached it."""

    def __init__(self) -> None:
        self.services: list[str | None] = []

    async def respond(self, request: web.Request, body: bytes | None, service: str | None) -> web.Response:
        self.services.append(service)
        raw = await request.read() if body is None else body
        return web.json_response({"path": request.path_qs, "body": raw.decode(), "svc": request.headers.get("X-S")})


async def test_routes_ours_and_sends_the_rest_to_moto(aiohttp_server_factory) -> None:
    # GIVEN a gateway with a Lambda route of ours and moto behind it
    async def ours(request: web.Request) -> web.Response:
        return web.json_response({"ours": True})

    moto = RecordingMoto()
    gateway = Gateway(moto, {"lambda": ours})
    server = await aiohttp_server_factory(gateway.app)
    async with aiohttp.ClientSession() as session:
        # WHEN a Lambda request and an SQS request arrive
        async with session.get(
            server.make_url("/2015-03-31/functions/"), headers={"Authorization": SIGV4.format(svc="lambda")}
        ) as r:
            lambda_body = await r.json()
        async with session.post(
            server.make_url("/?Action=ListQueues"),
            data=b"x=1",
            headers={"Authorization": SIGV4.format(svc="sqs"), "X-S": "sqs"},
        ) as r:
            sqs_body = await r.json()
    # THEN Lambda is ours and SQS reached moto unchanged, named as SQS
    assert lambda_body == {"ours": True}
    assert sqs_body == {"path": "/?Action=ListQueues", "body": "x=1", "svc": "sqs"}
    assert moto.services == ["sqs"]


class AnsweringMoto:
    """A stand-in for moto that gives one fixed answer."""

    def __init__(self, answer: web.Response) -> None:
        self.answer = answer

    async def respond(self, request: web.Request, body: bytes | None, service: str | None) -> web.Response:
        return self.answer


@pytest.mark.parametrize(
    ("headers", "path", "code", "content_type"),
    [
        ({"X-Amz-Target": "Kinesis_20131202.DescribeAccountSettings"}, "/", "UnknownOperationException", "json"),
        ({}, "/?Action=GetSMSSandboxAccountStatus", "InvalidAction", "xml"),
    ],
)
async def test_what_moto_lacks_answers_in_the_clients_protocol(
    aiohttp_server_factory, headers: dict, path: str, code: str, content_type: str
) -> None:
    # GIVEN moto answering as moto_errors.install() makes it answer an operation it lacks
    lacking = web.Response(status=501, headers={NOT_IMPLEMENTED_HEADER: "The X action has not been implemented"})
    server = await aiohttp_server_factory(Gateway(AnsweringMoto(lacking), {}).app)
    # WHEN a JSON-protocol or query-protocol client calls it
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.make_url(path), headers=headers, data=b"{}") as r,
    ):
        text = await r.text()
    # THEN it gets 501 in its own protocol, saying the local cloud lacks it
    assert r.status == 501
    assert content_type in r.headers["Content-Type"]
    assert code in text and "not implemented by the local cloud" in text


async def test_an_html_error_page_from_moto_becomes_an_internal_failure(aiohttp_server_factory) -> None:
    page = web.Response(status=500, text="<html><h1>Internal Server Error</h1></html>", content_type="text/html")
    server = await aiohttp_server_factory(Gateway(AnsweringMoto(page), {}).app)
    headers = {"X-Amz-Target": "AmazonSQS.ListQueues"}
    async with aiohttp.ClientSession() as session, session.post(server.make_url("/"), headers=headers) as r:
        assert r.status == 500 and (await r.json(content_type=None))["__type"] == "InternalFailure"
