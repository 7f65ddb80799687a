"""Products API for the flash-sale lab: list, get and create products in DynamoDB behind API Gateway."""

import base64
import json
import logging
import os
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
from botocore.exceptions import ClientError

LOG = logging.getLogger(__name__)

TABLE_NAME = os.environ["TABLE_NAME"]
# Built once per environment, during INIT. No endpoint here: boto3 honours AWS_ENDPOINT_URL by itself.
DYNAMODB = boto3.client("dynamodb")

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
MAX_NAME_LENGTH = 200
THROTTLING_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})
JSON_HEADERS = {"Content-Type": "application/json"}


class BadRequest(Exception):
    """The request cannot be served as sent (HTTP 400)."""


def response(status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway proxy response with a JSON body."""
    return {
        "statusCode": status,
        "headers": {**JSON_HEADERS, **(headers or {})},
        "body": json.dumps(body, default=_json_default),
    }


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_item(product: dict[str, Any]) -> dict[str, Any]:
    """A product as a DynamoDB item (low-level attribute values)."""
    return {
        "id": {"S": product["id"]},
        "name": {"S": product["name"]},
        "price": {"N": str(product["price"])},
        "stock": {"N": str(product["stock"])},
        "created_at": {"S": product["created_at"]},
    }


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as a product."""
    return {
        "id": item["id"]["S"],
        "name": item["name"]["S"],
        "price": Decimal(item["price"]["N"]),
        "stock": int(item["stock"]["N"]),
        "created_at": item["created_at"]["S"],
    }


def parse_new_product(body: str | None, is_base64: bool = False) -> dict[str, Any]:
    """Validate a create request body: `name` (non-empty string), `price` (number >= 0), optional `stock` (int >= 0)."""
    if not body:
        raise BadRequest("request body is required")
    if is_base64:
        body = base64.b64decode(body).decode("utf-8")
    try:
        data = json.loads(body, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise BadRequest(f"'name' must be a non-empty string of at most {MAX_NAME_LENGTH} characters")
    price = data.get("price")
    if isinstance(price, bool) or not isinstance(price, int | Decimal):
        raise BadRequest("'price' must be a number")
    price = Decimal(price)
    if not price.is_finite() or price < 0:
        raise BadRequest("'price' must be a number >= 0")
    stock = data.get("stock", 0)
    if isinstance(stock, bool) or not isinstance(stock, int) or stock < 0:
        raise BadRequest("'stock' must be an integer >= 0")
    return {
        "id": str(uuid.uuid4()),
        "name": name.strip(),
        "price": price,
        "stock": stock,
        "created_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }


def create_product(event: dict[str, Any]) -> dict[str, Any]:
    product = parse_new_product(event.get("body"), bool(event.get("isBase64Encoded")))
    DYNAMODB.put_item(TableName=TABLE_NAME, Item=to_item(product), ConditionExpression="attribute_not_exists(id)")
    return response(201, product, {"Location": f"/products/{product['id']}"})


def get_product(event: dict[str, Any]) -> dict[str, Any]:
    product_id = (event.get("pathParameters") or {}).get("id")
    if not product_id:
        raise BadRequest("product id is required")
    found = DYNAMODB.get_item(TableName=TABLE_NAME, Key={"id": {"S": product_id}}).get("Item")
    if found is None:
        return response(404, {"message": f"product {product_id} not found"})
    return response(200, from_item(found))


def list_products(event: dict[str, Any]) -> dict[str, Any]:
    query = event.get("queryStringParameters") or {}
    try:
        limit = int(query.get("limit", DEFAULT_PAGE_SIZE))
    except ValueError as exc:
        raise BadRequest("'limit' must be an integer") from exc
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise BadRequest(f"'limit' must be between 1 and {MAX_PAGE_SIZE}")
    request: dict[str, Any] = {"TableName": TABLE_NAME, "Limit": limit}
    if query.get("next"):
        request["ExclusiveStartKey"] = {"id": {"S": query["next"]}}
    page = DYNAMODB.scan(**request)
    body: dict[str, Any] = {"items": [from_item(item) for item in page.get("Items", [])]}
    if "LastEvaluatedKey" in page:
        body["next"] = page["LastEvaluatedKey"]["id"]["S"]
    return response(200, body)


ROUTES = {
    ("GET", "/products"): list_products,
    ("GET", "/products/{id}"): get_product,
    ("POST", "/products"): create_product,
}


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Route by method and resource; 400 for a bad request, 404 for an unknown route or id, 503 when throttled."""
    route = ROUTES.get((event.get("httpMethod", ""), event.get("resource", "")))
    if route is None:
        return response(404, {"message": f"no route for {event.get('httpMethod')} {event.get('resource')}"})
    try:
        return route(event)
    except BadRequest as exc:
        return response(400, {"message": str(exc)})
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in THROTTLING_CODES:
            # The flash-sale signal: DynamoDB throttled us after the SDK's own retries. Tell the client to back off.
            LOG.warning("DynamoDB throttled %s %s: %s", event.get("httpMethod"), event.get("resource"), code)
            return response(
                503, {"message": "the products table is throttling requests; retry later"}, {"Retry-After": "1"}
            )
        raise
