"""moto's DynamoDB made fast answers exactly what moto answers: the same items in the same order, the same JSON."""

from __future__ import annotations

import json
from typing import Any

import boto3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from moto.core.serialize import BaseJSONSerializer, JSONSerializer, XFormedAttributePicker
from moto.core.utils import get_service_model
from moto.dynamodb.models.table import Table

from lambdalab.dynamodb.moto_speedups import GENERIC, speed_up_moto_dynamodb, wire_attribute_value

speed_up_moto_dynamodb()
GET_ITEM = get_service_model("dynamodb").operation_model("GetItem")  # moto's own model, as its handler uses

strings = st.text(max_size=6)
names = st.text(min_size=1, max_size=6)  # DynamoDB refuses empty attribute and map-key names (moto mangles them)
numbers = st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-999, max_value=999).map(str)
blobs = st.binary(max_size=6)
scalars = st.one_of(
    strings.map(lambda v: {"S": v}),
    numbers.map(lambda v: {"N": v}),
    blobs.map(lambda v: {"B": v}),
    st.booleans().map(lambda v: {"BOOL": v}),
    st.just({"NULL": True}),
    st.lists(strings, min_size=1, max_size=3, unique=True).map(lambda v: {"SS": v}),
    st.lists(numbers, min_size=1, max_size=3, unique=True).map(lambda v: {"NS": v}),
    st.lists(blobs, min_size=1, max_size=3, unique=True).map(lambda v: {"BS": v}),
)
attribute_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda v: {"L": v}),
        st.dictionaries(names, inner, max_size=3).map(lambda v: {"M": v}),
    ),
    max_leaves=8,
)


def serialize(item: dict[str, Any], *, generic: bool) -> Any:
    """A GetItem result holding `item` as moto's JSON serializer writes it (generic: moto's own code path)."""
    fast = BaseJSONSerializer._serialize_type_structure
    if generic:
        BaseJSONSerializer._serialize_type_structure = GENERIC["serialize_structure"]  # type: ignore[method-assign]
    try:
        serializer = JSONSerializer(operation_model=GET_ITEM, value_picker=XFormedAttributePicker())
        return json.loads(serializer.serialize({"Item": item})["body"])
    finally:
        BaseJSONSerializer._serialize_type_structure = fast  # type: ignore[method-assign]


@settings(max_examples=120, deadline=None)
@given(st.dictionaries(names, attribute_values, max_size=5))
def test_attribute_values_are_written_as_moto_writes_them(item: dict[str, Any]) -> None:
    assert serialize(item, generic=False) == serialize(item, generic=True)


def test_values_not_in_wire_form_take_the_generic_path() -> None:
    assert wire_attribute_value({"S": "a", "N": "1"}) is None  # two members
    assert wire_attribute_value({"Z": "?"}) is None  # not a member
    assert wire_attribute_value({"S": None}) is None
    assert wire_attribute_value({"L": [{"S": "a"}, {"Q": 1}]}) is None
    assert wire_attribute_value({"B": b"\x00\x01"}) == {"B": "AAE="}


operations = st.lists(
    st.tuples(st.sampled_from(["put", "delete"]), st.integers(0, 20), st.integers(0, 3), st.text(max_size=3)),
    max_size=40,
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations, st.booleans())
def test_scans_see_every_item_in_moto_s_order_after_any_puts_and_deletes(ops, with_range: bool) -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        keys = [{"AttributeName": "h", "KeyType": "HASH"}]
        definitions = [{"AttributeName": "h", "AttributeType": "N"}]
        if with_range:
            keys.append({"AttributeName": "r", "KeyType": "RANGE"})
            definitions.append({"AttributeName": "r", "AttributeType": "S"})
        client.create_table(
            TableName="t", KeySchema=keys, AttributeDefinitions=definitions, BillingMode="PAY_PER_REQUEST"
        )
        for action, h, r, payload in ops:
            key = {"h": {"N": str(h)}} | ({"r": {"S": f"r{r}"}} if with_range else {})
            if action == "put":
                client.put_item(TableName="t", Item=key | {"v": {"S": payload or "-"}})
            else:
                client.delete_item(TableName="t", Key=key)
        from moto.dynamodb.models import dynamodb_backends

        table = dynamodb_backends["123456789012"]["us-east-1"].get_table("t")
        fast = [
            (i.hash_key.value, i.range_key.value if i.range_key else None, i.attrs["v"].value)
            for i in table.all_items()
        ]
        slow = [
            (i.hash_key.value, i.range_key.value if i.range_key else None, i.attrs["v"].value)
            for i in GENERIC["all_items"](table)
        ]
        assert fast == slow
        scanned = client.scan(TableName="t")["Items"]
        assert [(i["h"]["N"], i["v"]["S"]) for i in scanned] == [(h, v) for h, _, v in slow]


def test_a_restored_table_is_indexed_again() -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t", KeySchema=[{"AttributeName": "h", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "h", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        )  # fmt: skip
        client.put_item(TableName="t", Item={"h": {"S": "b"}})
        assert [i["h"]["S"] for i in client.scan(TableName="t")["Items"]] == ["b"]
        from moto.dynamodb.models import dynamodb_backends

        table: Table = dynamodb_backends["123456789012"]["us-east-1"].get_table("t")
        table.items = {**table.items}  # what a restore does: a new dict
        client.put_item(TableName="t", Item={"h": {"S": "a"}})
        assert [i["h"]["S"] for i in client.scan(TableName="t")["Items"]] == ["a", "b"]
