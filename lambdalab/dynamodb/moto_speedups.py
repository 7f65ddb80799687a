"""Make moto's DynamoDB fast enough for the lab's load: same answers, a fraction of the CPU.

Measured with moto 5.2.5 on this project's 2-core machine, a ``Scan`` with ``Limit: 10`` of a 2,000-item table took
about 20 ms, which at the flash sale's 70 scans per second is more CPU than the machine has. Two causes, both fixed
here without changing any answer:

1. ``Table.all_items`` sorts every item of the table on each scan with ``DynamoType.__lt__``, which builds each
   operand's ``cast_value`` (a new ``Decimal`` for numbers) in every one of the O(n log n) comparisons. The patched
   table keeps its items in key order as PutItem and DeleteItem change them (:class:`SortedItems`), with the same
   values as sort keys (a key attribute is S, N or B, whose ``cast_value`` is the string, ``Decimal(number)`` or the
   bytes): ``DynamoType.__lt__`` *is* ``cast_value <``, and a key attribute has one type per table, so the order is
   identical; a scan copies the list.
2. The JSON response serializer walks each ``AttributeValue`` (a union of ten members) through its generic
   per-member picker, ~26 picker calls per attribute. The patched serializer writes an ``AttributeValue`` that is in
   wire form already (one member, as ``dynamo_to_dict`` makes it) directly: blobs base64-encoded, strings as
   ``str``, maps and lists recursively — what the generic path produces member by member. Anything else (more than
   one member, an unknown member, another service's ``AttributeValue`` shape) goes the generic way.

tests/unit/dynamodb/test_moto_speedups.py checks both against moto's own code on generated items.
"""

from __future__ import annotations

import base64
import bisect
import logging
import threading
from decimal import Decimal
from typing import Any

LOG = logging.getLogger(__name__)

_PATCHED = False
GENERIC: dict[str, Any] = {}  # moto's own functions, kept for the equivalence tests
_SERVICES = frozenset({"dynamodb", "dynamodbstreams"})
_STRINGS = frozenset({"S", "N"})
_STRING_SETS = frozenset({"SS", "NS"})
_PLAIN = frozenset({"BOOL", "NULL"})


def _b64(value: str | bytes) -> str:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return base64.b64encode(value).strip().decode("utf-8")


def _string(value: Any) -> Any:
    return str(value) if value not in (None, {}, []) else value


def _key_value(value: Any) -> Any:
    """A key attribute's `cast_value` (key attributes are S, N or B): the string, the bytes, or the number."""
    kind = value.type
    if kind == "N":
        return Decimal(value.value)
    if kind in ("S", "B"):
        return value.value
    return value.cast_value


def _item_key(item: Any) -> Any:
    if item.range_key:
        return (_key_value(item.hash_key), _key_value(item.range_key))
    return _key_value(item.hash_key)


class SortedItems:
    """A table's items in key order, kept up to date by PutItem and DeleteItem instead of sorted on every scan.

    Bound to the table's ``items`` dict: a table whose dict was replaced (a restore) is indexed again from scratch.
    moto serves requests on several threads, so changes and snapshots hold a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._source: int | None = None  # id() of the dict the index was built from
        self._keys: list[Any] = []
        self._items: list[Any] = []

    def _current(self, table: Any) -> bool:
        return self._source == id(table.items)

    def _rebuild(self, table: Any) -> None:
        items: list[Any] = []
        for hash_set in table.items.values():
            if table.range_key_attr:
                items.extend(hash_set.values())
            else:
                items.append(hash_set)
        keyed = sorted(((_item_key(item), item) for item in items), key=lambda pair: pair[0])
        self._keys = [key for key, _ in keyed]
        self._items = [item for _, item in keyed]
        self._source = id(table.items)

    def snapshot(self, table: Any) -> list[Any]:
        with self._lock:
            if not self._current(table):
                self._rebuild(table)
            return list(self._items)

    def put(self, table: Any, item: Any) -> None:
        with self._lock:
            if not self._current(table):
                return  # built on the next snapshot
            key = _item_key(item)
            at = bisect.bisect_left(self._keys, key)
            if at < len(self._keys) and self._keys[at] == key:
                self._items[at] = item  # an overwrite: same key, new item
            else:
                self._keys.insert(at, key)
                self._items.insert(at, item)

    def delete(self, table: Any, item: Any) -> None:
        with self._lock:
            if not self._current(table):
                return
            key = _item_key(item)
            at = bisect.bisect_left(self._keys, key)
            if at < len(self._keys) and self._keys[at] == key:
                del self._keys[at]
                del self._items[at]


def _index_of(table: Any) -> SortedItems:
    index: SortedItems | None = table.__dict__.get("_lambdalab_sorted")
    if index is None:
        index = table.__dict__.setdefault("_lambdalab_sorted", SortedItems())
    return index


def wire_attribute_value(value: Any) -> dict[str, Any] | None:
    """An AttributeValue as the JSON serializer writes it, or None when the value is not one it can write directly."""
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((member, inner),) = value.items()
    if inner is None:
        return None  # the generic path drops a None member, leaving {}: let it
    if member in _STRINGS:
        return {member: _string(inner)}
    if member == "B":
        return {"B": _b64(inner)}
    if member in _PLAIN:
        return {member: inner}
    if member in _STRING_SETS and isinstance(inner, list):
        return {member: [_string(v) for v in inner]}
    if member == "BS" and isinstance(inner, list):
        return {"BS": [_b64(v) for v in inner]}
    if member == "M" and isinstance(inner, dict):
        mapped: dict[str, Any] = {}
        for key, item in inner.items():
            wired = wire_attribute_value(item)
            if wired is None:
                return None
            mapped[key] = wired
        return {"M": mapped}
    if member == "L" and isinstance(inner, list):
        listed = []
        for item in inner:
            wired = wire_attribute_value(item)
            if wired is None:
                return None
            listed.append(wired)
        return {"L": listed}
    return None


def speed_up_moto_dynamodb() -> None:
    """Idempotent; call in the process that runs moto's server."""
    global _PATCHED  # noqa: PLW0603 - one process-wide patch of a third-party module
    if _PATCHED:
        return
    from moto.core.serialize import BaseJSONSerializer
    from moto.dynamodb.models.table import Table

    original_put, original_delete = Table.put_item, Table.delete_item

    def all_items(self: Table) -> list[Any]:
        return _index_of(self).snapshot(self)

    def put_item(self: Table, *args: Any, **kwargs: Any) -> Any:
        item = original_put(self, *args, **kwargs)
        _index_of(self).put(self, item)
        return item

    def delete_item(self: Table, *args: Any, **kwargs: Any) -> Any:
        item = original_delete(self, *args, **kwargs)
        if item is not None:
            _index_of(self).delete(self, item)
        return item

    generic = BaseJSONSerializer._serialize_type_structure
    GENERIC.update(serialize_structure=generic, all_items=Table.all_items)

    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key and shape.name == "AttributeValue" and self.operation_model.service_model.service_name in _SERVICES:
            wired = wire_attribute_value(value)
            if wired is not None:
                self._default_serialize(serialized, wired, shape, key)
                return
        generic(self, serialized, value, shape, key)

    Table.all_items = all_items  # type: ignore[method-assign]
    Table.put_item = put_item  # type: ignore[method-assign]
    Table.delete_item = delete_item  # type: ignore[method-assign]
    BaseJSONSerializer._serialize_type_structure = serialize_structure  # type: ignore[method-assign]
    _PATCHED = True
    LOG.debug("moto DynamoDB: scans sort by key values, AttributeValues serialized directly")
