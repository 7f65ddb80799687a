"""Tests for functions/products against a moto DynamoDB table: create, get, list, bad requests and throttling."""

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from tests.support.events import load_event

TABLE = "products-test"


@pytest.fixture
def products(load_function, monkeypatch):
    """The products module with a fresh moto table (PROVISIONED 5/5, like the template's default)."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PROVISIONED",
            ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        )
        yield load_function("products", TABLE_NAME=TABLE)


def _create(products, **fields):
    event = load_event("apigw-products-create")
    if fields:
        event["body"] = json.dumps(fields)
    return products.lambda_handler(event, None)


def test_create_stores_the_product_and_returns_201(products):
    result = _create(products)
    assert result["statusCode"] == 201
    body = json.loads(result["body"])
    assert body["name"] == "Flash-sale headphones"
    assert body["price"] == 79.99
    assert body["stock"] == 500
    assert result["headers"]["Location"] == f"/products/{body['id']}"
    stored = boto3.client("dynamodb").get_item(TableName=TABLE, Key={"id": {"S": body["id"]}})["Item"]
    assert stored["price"] == {"N": "79.99"}
    assert stored["stock"] == {"N": "500"}


def test_get_returns_a_created_product(products):
    created = json.loads(_create(products, name="Kettle", price=25, stock=3)["body"])
    event = load_event("apigw-products-get")
    event["pathParameters"] = {"id": created["id"]}
    result = products.lambda_handler(event, None)
    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == created


def test_get_of_an_unknown_id_is_404(products):
    result = products.lambda_handler(load_event("apigw-products-get"), None)
    assert result["statusCode"] == 404
    assert "not found" in json.loads(result["body"])["message"]


def test_list_pages_through_every_product(products):
    created = {json.loads(_create(products, name=f"item {i}", price=i)["body"])["id"] for i in range(5)}
    seen: list[str] = []
    event = load_event("apigw-products-list")
    event["queryStringParameters"] = {"limit": "2"}
    for _ in range(10):
        body = json.loads(products.lambda_handler(event, None)["body"])
        seen.extend(item["id"] for item in body["items"])
        if "next" not in body:
            break
        event["queryStringParameters"] = {"limit": "2", "next": body["next"]}
    assert sorted(seen) == sorted(created)


def test_list_of_an_empty_table_is_empty(products):
    result = products.lambda_handler(load_event("apigw-products-list"), None)
    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == {"items": []}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "body is required"),
        ("{not json", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        (json.dumps({"price": 3}), "'name'"),
        (json.dumps({"name": "x", "price": "free"}), "'price' must be a number"),
        (json.dumps({"name": "x", "price": -1}), ">= 0"),
        (json.dumps({"name": "x", "price": True}), "'price' must be a number"),
        (json.dumps({"name": "x", "price": 1, "stock": 1.5}), "'stock'"),
    ],
)
def test_bad_create_bodies_are_400_and_store_nothing(products, body, message):
    event = load_event("apigw-products-create")
    event["body"] = body
    result = products.lambda_handler(event, None)
    assert result["statusCode"] == 400
    assert message in json.loads(result["body"])["message"]
    assert boto3.client("dynamodb").scan(TableName=TABLE)["Count"] == 0


def test_sample_bad_event_is_400(products):
    assert products.lambda_handler(load_event("apigw-products-create-bad"), None)["statusCode"] == 400


def test_unknown_route_is_404(products):
    event = load_event("apigw-products-list")
    event["httpMethod"] = "DELETE"
    assert products.lambda_handler(event, None)["statusCode"] == 404


def test_throttling_becomes_503_with_retry_after(products, monkeypatch):
    def throttled(**_kwargs):
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "rate exceeded"}}, "PutItem"
        )

    monkeypatch.setattr(products.DYNAMODB, "put_item", throttled)
    result = _create(products)
    assert result["statusCode"] == 503
    assert result["headers"]["Retry-After"] == "1"


def test_other_dynamodb_errors_propagate(products, monkeypatch):
    def broken(**_kwargs):
        raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no table"}}, "Scan")

    monkeypatch.setattr(products.DYNAMODB, "scan", broken)
    with pytest.raises(ClientError):
        products.lambda_handler(load_event("apigw-products-list"), None)
