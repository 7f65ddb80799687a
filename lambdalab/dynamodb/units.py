"""Item sizes and capacity units as DynamoDB counts them: 4 KB per read unit, 1 KB per write unit."""

from __future__ import annotations

import base64
import binascii
import logging
import math
from decimal import Decimal, InvalidOperation
from typing import Any

LOG = logging.getLogger(__name__)

READ_UNIT_BYTES = 4096
WRITE_UNIT_BYTES = 1024


def attribute_value_size(value: dict[str, Any]) -> int:
    """The size DynamoDB counts for one AttributeValue (wire JSON form, e.g. ``{"S": "abc"}``)."""
    if not isinstance(value, dict) or len(value) != 1:
        return 0
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return _number_size(str(inner))
    if kind == "B":
        return _binary_size(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(s).encode()) for s in inner)
    if kind == "NS":
        return sum(_number_size(str(n)) for n in inner)
    if kind == "BS":
        return sum(_binary_size(b) for b in inner)
    if kind == "L":
        return 3 + sum(1 + attribute_value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + attribute_value_size(v) for k, v in inner.items())
    return 0


def item_size(item: dict[str, Any] | None) -> int:
    """Bytes of an item: attribute names (UTF-8) plus values."""
    if not item:
        return 0
    return sum(len(name.encode()) + attribute_value_size(value) for name, value in item.items())


def read_units(size_bytes: int, *, consistent: bool, transactional: bool = False) -> float:
    """Read units for reading ``size_bytes`` as one unit of work: 4 KB steps (at least one), eventually consistent at
    half, transactional at double."""
    steps = max(1, math.ceil(size_bytes / READ_UNIT_BYTES))
    if transactional:
        return 2.0 * steps
    return float(steps) if consistent else steps / 2.0


def write_units(size_bytes: int, *, transactional: bool = False) -> float:
    """Write units for writing ``size_bytes``: 1 KB steps (at least one), transactional at double."""
    steps = max(1, math.ceil(size_bytes / WRITE_UNIT_BYTES))
    return 2.0 * steps if transactional else float(steps)


def _number_size(text: str) -> int:
    """Numbers: about one byte per two significant digits, plus one (DynamoDB's documented approximation)."""
    try:
        digits = Decimal(text).normalize().as_tuple().digits
    except (InvalidOperation, ValueError):
        return len(text)
    significant = len(digits) or 1
    return math.ceil(significant / 2) + 1


def _binary_size(encoded: Any) -> int:
    try:
        return len(base64.b64decode(str(encoded), validate=False))
    except (binascii.Error, ValueError):
        return len(str(encoded))
