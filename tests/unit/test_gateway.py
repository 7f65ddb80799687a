"""Routing by AWS service, and the proxy to moto."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from lambdalab.gateway import Gateway, service_of

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


async def test_routes_ours_and_proxies_the_rest(aiohttp_server_factory) -> None:
    # GIVEN a stand-in for moto that echoes what reached it
    async def upstream(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({"path": request.path_qs, "body": body.decode(), "svc": request.headers.get("X-S")})

    moto_app = web.Application()
    moto_app.router.add_route("*", "/{tail:.*}", upstream)
    moto = await aiohttp_server_factory(moto_app)

    async def ours(request: web.Request) -> web.Response:
        return web.json_response({"ours": True})

    gateway = Gateway(str(moto.make_url("/")), {"lambda": ours})
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
    # THEN Lambda is ours and SQS reached moto unchanged
    assert lambda_body == {"ours": True}
    assert sqs_body == {"path": "/?Action=ListQueues", "body": "x=1", "svc": "sqs"}


async def test_head_answers_keep_the_content_length_of_the_body_they_describe(aiohttp_server_factory) -> None:
    """HeadObject without Content-Length broke `aws s3 cp s3://...` ("fatal error: 'ContentLength'")."""

    async def upstream(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x" * 1234, headers={"ETag": '"abc"'})

    moto_app = web.Application()
    moto_app.router.add_route("*", "/{tail:.*}", upstream)
    moto = await aiohttp_server_factory(moto_app)
    server = await aiohttp_server_factory(Gateway(str(moto.make_url("/")), {}).app)
    async with aiohttp.ClientSession() as session:
        async with session.head(server.make_url("/bucket/key")) as r:
            assert r.status == 200 and r.headers["Content-Length"] == "1234" and r.headers["ETag"] == '"abc"'
            assert await r.read() == b""
        async with session.get(server.make_url("/bucket/key")) as r:
            assert r.headers["Content-Length"] == "1234" and len(await r.read()) == 1234


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
    from lambdalab import moto_errors

    async def upstream(request: web.Request) -> web.StreamResponse:  # moto's answer once the patch is in
        return web.Response(status=501, headers={moto_errors.NOT_IMPLEMENTED_HEADER: "The X action has not been "
                                                  "implemented"})  # fmt: skip

    moto_app = web.Application()
    moto_app.router.add_route("*", "/{tail:.*}", upstream)
    moto = await aiohttp_server_factory(moto_app)
    server = await aiohttp_server_factory(Gateway(str(moto.make_url("/")), {}).app)
    url = server.make_url(path)
    async with aiohttp.ClientSession() as session, session.post(url, headers=headers, data=b"{}") as r:
        text = await r.text()
        assert r.status == 501
        assert content_type in r.headers["Content-Type"]
        assert code in text and "not implemented by the local cloud" in text


async def test_an_html_error_page_from_moto_becomes_an_internal_failure(aiohttp_server_factory) -> None:
    async def upstream(request: web.Request) -> web.StreamResponse:
        return web.Response(status=500, text="<html><h1>Internal Server Error</h1></html>", content_type="text/html")

    moto_app = web.Application()
    moto_app.router.add_route("*", "/{tail:.*}", upstream)
    moto = await aiohttp_server_factory(moto_app)
    server = await aiohttp_server_factory(Gateway(str(moto.make_url("/")), {}).app)
    headers = {"X-Amz-Target": "AmazonSQS.ListQueues"}
    async with aiohttp.ClientSession() as session, session.post(server.make_url("/"), headers=headers) as r:
        assert r.status == 500 and (await r.json(content_type=None))["__type"] == "InternalFailure"
