"""The gateway route for DynamoDB: admits each request against the capacity meter, forwards it to moto, and charges
the capacity units the request consumed, measured from the request and response items."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from lambdalab.dynamodb.meter import CapacityMeter, Kind, Use
from lambdalab.dynamodb.units import item_size, read_units, write_units

LOG = logging.getLogger(__name__)

TARGET_PREFIX = "DynamoDB_20120810."
JSON_TYPE = "application/x-amz-json-1.0"
THROTTLE_TYPE = "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
THROTTLE_MESSAGE = (
    "The level of configured provisioned throughput for the table was exceeded. "
    "Consider increasing your provisioning level with the UpdateTable API."
)
ON_DEMAND_THROTTLE_MESSAGE = "Throughput exceeds the current capacity of your table or index."
_TABLE_DESCRIBING = {"CreateTable": "TableDescription", "UpdateTable": "TableDescription", "DescribeTable": "Table"}

Proxy = Callable[[web.Request, bytes | None], Awaitable[web.StreamResponse]]
Describe = Callable[[str], dict[str, Any] | None]


@dataclass
class Plan:
    """What one request will use: an estimate per table before it runs, and how to measure it after."""

    estimates: dict[str, list[Use]] = field(default_factory=dict)
    body: bytes | None = None  # a rewritten request body (ReturnValues asked of moto to size the item)
    strip_attributes: bool = False  # the client did not ask for the item back: remove it from the response


class DynamoDbMetering:
    """``handle`` is the gateway route for the ``dynamodb`` service."""

    def __init__(self, meter: CapacityMeter, proxy: Proxy, describe: Describe) -> None:
        self.meter = meter
        self._proxy = proxy
        self._describe = describe  # blocking DescribeTable in moto, run in a thread

    async def handle(self, request: web.Request) -> web.StreamResponse:
        target = request.headers.get("X-Amz-Target", "")
        operation = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
        raw = await request.read()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return await self._proxy(request, None)  # moto answers the malformed request
        if not isinstance(body, dict):
            return await self._proxy(request, None)
        if operation == "DeleteTable":
            response = await self._proxy(request, None)
            if response.status == 200:
                self.meter.forget_table(str(body.get("TableName")))
            return response
        if operation in _TABLE_DESCRIBING:
            response = await self._proxy(request, None)
            self._learn(response, _TABLE_DESCRIBING[operation])
            return response
        plan = self._plan(operation, body)
        if plan is None:
            return await self._proxy(request, None)
        for table in plan.estimates:
            await self._ensure_known(table)
        for table, uses in plan.estimates.items():
            admission = self.meter.admit(table, uses)
            if not admission.admitted:
                LOG.debug("throttled %s on %s (%s)", operation, table, admission.throttled)
                return _throttle_response(self.meter.provisioned(table, Kind.READ) is not None)
        response = await self._proxy(request, plan.body)
        if response.status != 200 or not isinstance(response, web.Response) or response.body is None:
            return response
        payload = bytes(response.body)  # type: ignore[arg-type]
        try:
            result = json.loads(payload or b"{}")
        except ValueError:
            return response
        for table, uses in self._measure(operation, body, result, plan).items():
            self.meter.charge(table, uses)
        if plan.strip_attributes and "Attributes" in result:
            result.pop("Attributes")
            return _json_response(result, response)
        return response

    # --- table descriptions -------------------------------------------------------------------------------------
    def _learn(self, response: web.StreamResponse, key: str) -> None:
        if response.status != 200 or not isinstance(response, web.Response) or response.body is None:
            return
        try:
            description = json.loads(bytes(response.body))[key]  # type: ignore[arg-type]
        except (ValueError, KeyError, TypeError):
            return
        self.meter.set_table(description)

    async def _ensure_known(self, table: str) -> None:
        if self.meter.knows(table):
            return
        description = await asyncio.to_thread(self._describe, table)
        if description is not None:
            self.meter.set_table(description)

    # --- before: estimates --------------------------------------------------------------------------------------
    def _plan(self, operation: str, body: dict[str, Any]) -> Plan | None:
        table = str(body.get("TableName", ""))
        consistent = bool(body.get("ConsistentRead"))
        plan = Plan()
        if operation in ("GetItem", "Query", "Scan"):
            index = body.get("IndexName") if operation != "GetItem" else None
            plan.estimates[table] = [Use(index, Kind.READ, read_units(0, consistent=consistent))]
        elif operation == "PutItem":
            units = write_units(item_size(body.get("Item")))
            plan.estimates[table] = self._writes(table, units)
        elif operation in ("UpdateItem", "DeleteItem"):
            plan.estimates[table] = self._writes(table, write_units(item_size(body.get("Key"))))
            if body.get("ReturnValues", "NONE") == "NONE":
                rewritten = dict(body, ReturnValues="ALL_NEW" if operation == "UpdateItem" else "ALL_OLD")
                plan.body = json.dumps(rewritten).encode()
                plan.strip_attributes = True
        elif operation == "BatchGetItem":
            for name, spec in (body.get("RequestItems") or {}).items():
                consistent = bool(spec.get("ConsistentRead"))
                plan.estimates[name] = [Use(None, Kind.READ, read_units(0, consistent=consistent))]
        elif operation == "BatchWriteItem":
            for name, requests in (body.get("RequestItems") or {}).items():
                units = sum(write_units(item_size((r.get("PutRequest") or {}).get("Item"))) for r in requests)
                plan.estimates[name] = self._writes(name, units)
        elif operation == "TransactWriteItems":
            for name, units in _transact_writes(body).items():
                plan.estimates[name] = self._writes(name, units)
        elif operation == "TransactGetItems":
            for entry in body.get("TransactItems") or []:
                name = str((entry.get("Get") or {}).get("TableName", ""))
                plan.estimates.setdefault(name, []).append(Use(None, Kind.READ, read_units(0, consistent=True) * 2))
        else:
            return None
        return plan

    def _writes(self, table: str, units: float) -> list[Use]:
        """A write uses the table and every GSI (locally: projection ALL, and every item assumed to be indexed)."""
        return [Use(index, Kind.WRITE, units) for index in (None, *self.meter.indexes(table))]

    # --- after: measured ----------------------------------------------------------------------------------------
    def _measure(
        self, operation: str, body: dict[str, Any], result: dict[str, Any], plan: Plan
    ) -> dict[str, list[Use]]:
        table = str(body.get("TableName", ""))
        consistent = bool(body.get("ConsistentRead"))
        if operation == "GetItem":
            return {table: [Use(None, Kind.READ, read_units(item_size(result.get("Item")), consistent=consistent))]}
        if operation in ("Query", "Scan"):
            size = sum(item_size(item) for item in result.get("Items") or [])
            return {table: [Use(body.get("IndexName"), Kind.READ, read_units(size, consistent=consistent))]}
        if operation == "PutItem":
            return {table: self._writes(table, write_units(item_size(body.get("Item"))))}
        if operation in ("UpdateItem", "DeleteItem"):
            sized = result.get("Attributes") if plan.strip_attributes else None
            size = item_size(sized) if sized else item_size(body.get("Key"))
            return {table: self._writes(table, write_units(size))}
        if operation == "BatchGetItem":
            out: dict[str, list[Use]] = {}
            for name, items in (result.get("Responses") or {}).items():
                spec = (body.get("RequestItems") or {}).get(name) or {}
                c = bool(spec.get("ConsistentRead"))
                units = sum(read_units(item_size(item), consistent=c) for item in items)
                out[name] = [Use(None, Kind.READ, units)]
            return out
        if operation == "BatchWriteItem":
            unprocessed = result.get("UnprocessedItems") or {}
            out = {}
            for name, requests in (body.get("RequestItems") or {}).items():
                done = len(requests) - len(unprocessed.get(name) or [])
                units = sum(
                    write_units(
                        item_size((r.get("PutRequest") or {}).get("Item") or (r.get("DeleteRequest") or {}).get("Key"))
                    )
                    for r in requests[:done]
                )
                out[name] = self._writes(name, units)
            return out
        if operation == "TransactWriteItems":
            return {name: self._writes(name, units) for name, units in _transact_writes(body).items()}
        if operation == "TransactGetItems":
            out = {}
            gets = [entry.get("Get") or {} for entry in body.get("TransactItems") or []]
            for get, response in zip(gets, result.get("Responses") or [], strict=False):
                units = read_units(item_size(response.get("Item")), consistent=True, transactional=True)
                out.setdefault(str(get.get("TableName", "")), []).append(Use(None, Kind.READ, units))
            return out
        return {}


def _transact_writes(body: dict[str, Any]) -> dict[str, float]:
    units: dict[str, float] = {}
    for entry in body.get("TransactItems") or []:
        for action in ("Put", "Update", "Delete", "ConditionCheck"):
            spec = entry.get(action)
            if spec:
                sized = spec.get("Item") if action == "Put" else spec.get("Key")
                name = str(spec.get("TableName", ""))
                units[name] = units.get(name, 0.0) + write_units(item_size(sized), transactional=True)
    return units


def _throttle_response(provisioned: bool) -> web.Response:
    body = json.dumps(
        {"__type": THROTTLE_TYPE, "message": THROTTLE_MESSAGE if provisioned else ON_DEMAND_THROTTLE_MESSAGE}
    ).encode()
    return web.Response(
        status=400,
        body=body,
        headers={
            "Content-Type": JSON_TYPE,
            "x-amzn-RequestId": str(uuid.uuid4()),
            "x-amz-crc32": str(zlib.crc32(body)),
        },
    )


def _json_response(result: dict[str, Any], original: web.Response) -> web.Response:
    body = json.dumps(result).encode()
    headers = {k: v for k, v in original.headers.items() if k.lower() not in ("content-length", "x-amz-crc32")}
    headers["x-amz-crc32"] = str(zlib.crc32(body))
    return web.Response(status=original.status, body=body, headers=headers)
