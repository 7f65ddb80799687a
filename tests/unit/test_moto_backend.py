"""moto in process: the gateway's in-process door answers what moto's own HTTP server answers."""

from __future__ import annotations

import asyncio

import boto3
import pytest
from botocore.config import Config

from lambdalab import constants
from lambdalab.gateway import Gateway
from lambdalab.moto_backend import MotoBackend


@pytest.fixture(scope="module")
def moto():
    backend = MotoBackend()
    backend.start()
    yield backend
    backend.stop()


def client(service: str, url: str):
    return boto3.session.Session().client(
        service,
        endpoint_url=url,
        region_name=constants.DEFAULT_REGION,
        aws_access_key_id=constants.FAKE_ACCESS_KEY_ID,
        aws_secret_access_key=constants.FAKE_SECRET_ACCESS_KEY,
        config=Config(retries={"total_max_attempts": 1}),
    )


@pytest.fixture
async def gateway_url(moto, aiohttp_server_factory):
    server = await aiohttp_server_factory(Gateway(moto, {}).app)
    return str(server.make_url("")).rstrip("/")


async def test_s3_metadata_and_head_through_the_in_process_door(gateway_url: str, moto: MotoBackend) -> None:
    def scenario() -> tuple[dict, dict, bytes]:
        s3 = client("s3", gateway_url)
        s3.create_bucket(Bucket="lab-bucket")
        s3.put_object(Bucket="lab-bucket", Key="k", Body=b"hello world", Metadata={"my_key": "v1", "other-key": "v2"})
        head = s3.head_object(Bucket="lab-bucket", Key="k")
        direct = client("s3", moto.url).head_object(Bucket="lab-bucket", Key="k")  # moto's own HTTP server
        body = s3.get_object(Bucket="lab-bucket", Key="k")["Body"].read()
        return head, direct, body

    head, direct, body = await asyncio.to_thread(scenario)
    # HEAD keeps Content-Length (the AWS CLI's `s3 cp` reads it), metadata names keep their underscores
    assert head["ContentLength"] == 11 == direct["ContentLength"]
    assert head["Metadata"] == direct["Metadata"] == {"my_key": "v1", "other-key": "v2"}
    assert body == b"hello world"


async def test_query_and_json_protocols_through_the_in_process_door(gateway_url: str) -> None:
    def scenario() -> tuple[str, list[str], dict]:
        sqs = client("sqs", gateway_url)
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        sqs.send_message(
            QueueUrl=url, MessageBody="m & <x>", MessageAttributes={"a": {"DataType": "String", "StringValue": "1"}}
        )
        got = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]
        ddb = client("dynamodb", gateway_url)
        ddb.create_table(
            TableName="t", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        )  # fmt: skip
        ddb.put_item(TableName="t", Item={"id": {"S": "1"}, "n": {"N": "2"}})
        return url, [m["Body"] for m in got], ddb.get_item(TableName="t", Key={"id": {"S": "1"}})["Item"]

    url, bodies, item = await asyncio.to_thread(scenario)
    assert url.endswith("/q") and bodies == ["m & <x>"]
    assert item == {"id": {"S": "1"}, "n": {"N": "2"}}


async def test_dynamodb_calls_after_the_first_skip_motos_service_lookup(
    gateway_url: str, moto: MotoBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []
    original = moto._app.get_application

    def counted(environ):
        lookups.append(environ.get("HTTP_X_AMZ_TARGET", ""))
        return original(environ)

    monkeypatch.setattr(moto._app, "get_application", counted)

    def scenario() -> tuple[list[str], dict]:
        ddb = client("dynamodb", gateway_url)
        names = [ddb.list_tables()["TableNames"] for _ in range(3)][-1]
        streams = client("dynamodbstreams", gateway_url).list_streams()
        return names, streams

    names, streams = await asyncio.to_thread(scenario)
    assert isinstance(names, list) and streams["Streams"] == []
    # at most the first DynamoDB call was dispatched by moto's lookup; DynamoDB Streams still is (another API)
    assert [t for t in lookups if t.startswith("DynamoDB_")] in ([], ["DynamoDB_20120810.ListTables"])
    assert any(t.startswith("DynamoDBStreams_") for t in lookups)
