"""Lambda event filtering for event source mappings: `FilterCriteria` validated as CreateEventSourceMapping does and
applied to each record as Lambda applies it ("Lambda event filtering", docs.aws.amazon.com/lambda/latest/dg/
invocation-eventfiltering.html). Pure code; the pattern rules are `lambdalab.sources.patterns` (dialect LAMBDA).

* Up to five filters per mapping (a quota AWS can raise to 10; the local cloud keeps the default); a record that
  matches any one filter is processed, the others are filtered out (SQS: deleted from the queue; streams: skipped).
* The data key is `body` for SQS, `data` for Kinesis (base64-decoded first), `dynamodb` for DynamoDB streams.
* SQS: Lambda compares the format of the body with the format of the pattern's `body`: a JSON body against a JSON
  (object) pattern, or a plain-string body against a plain pattern, is filtered; a mismatch drops the message; a
  pattern without `body` filters on the other properties only.
* Streams: the data pattern must be a JSON object (else the mapping is refused); a record whose data is not JSON is
  dropped by a filter with a data pattern. Kinesis data is matched under a top-level `data` key, as Lambda's
  examples write it; "Kinesis event source mappings only support filtering on the data key" (other keys are matched
  against the record as the function sees it, with a warning at creation).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lambdalab.sources.patterns import Dialect, Pattern, PatternError, compile_pattern, loads

LOG = logging.getLogger(__name__)

MAX_FILTERS = 5
DATA_KEYS = {"sqs": "body", "kinesis": "data", "dynamodb": "dynamodb"}


class FilterCriteriaError(ValueError):
    """CreateEventSourceMapping would refuse these filter criteria; the message is Lambda's."""


@dataclass(frozen=True)
class _Filter:
    pattern: Pattern
    data_form: str | None  # None: no pattern on the data key; "object": a JSON pattern; "plain": a string pattern


@dataclass(frozen=True)
class FilterSet:
    """The compiled filters of one mapping; `criteria` is what the API echoes back."""

    source: str  # "sqs", "kinesis" or "dynamodb"
    criteria: dict[str, Any]
    filters: tuple[_Filter, ...]

    def __bool__(self) -> bool:
        return bool(self.filters)

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether Lambda sends this record (the record as the function would see it) to the function."""
        if not self.filters:
            return True
        key = DATA_KEYS[self.source]
        parsed_data: Any = _UNSET
        for item in self.filters:
            view: Mapping[str, Any] = record
            if item.data_form is not None:
                if parsed_data is _UNSET:
                    parsed_data = _parse_data(self.source, record)
                if item.data_form == "object":
                    if not isinstance(parsed_data, (dict, list)):
                        continue  # the data is not JSON: this filter drops the record
                    view = {**record, key: parsed_data}
                elif isinstance(parsed_data, (dict, list)):
                    continue  # a JSON body against a plain-string pattern: dropped
            if item.pattern.matches(view):
                return True
        return False


_UNSET: Any = object()


def _parse_data(source: str, record: Mapping[str, Any]) -> Any:
    """The record's data as filtering sees it: parsed JSON, or None when it is not JSON."""
    if source == "sqs":
        body = record.get("body")
        try:
            return loads(body) if isinstance(body, str) else None
        except ValueError:
            return None
    if source == "kinesis":
        try:
            raw = base64.b64decode(str((record.get("kinesis") or {}).get("data", "")), validate=True)
            return loads(raw.decode("utf-8"))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
    return record.get("dynamodb")


def compile_filter_criteria(criteria: Any, source: str) -> FilterSet:
    """Validate FilterCriteria ({"Filters": [{"Pattern": "..."}]}) for a source kind; `{}` or no filters: none."""
    if criteria is None:
        return FilterSet(source, {}, ())
    if not isinstance(criteria, Mapping):
        raise FilterCriteriaError("FilterCriteria must be an object with a Filters list")
    filters = criteria.get("Filters")
    if filters is None:
        return FilterSet(source, {}, ())
    if not isinstance(filters, list):
        raise FilterCriteriaError("FilterCriteria.Filters must be a list")
    if len(filters) > MAX_FILTERS:
        raise FilterCriteriaError(
            f"The number of filters ({len(filters)}) exceeds the limit of {MAX_FILTERS} filters per event source "
            "mapping (a Service Quotas limit)"
        )
    compiled: list[_Filter] = []
    for item in filters:
        text = item.get("Pattern") if isinstance(item, Mapping) else None
        if not isinstance(text, str):
            raise FilterCriteriaError("Invalid filter pattern definition.")
        try:
            pattern = compile_pattern(text, Dialect.LAMBDA)
            raw = json.loads(text)
        except PatternError as exc:
            LOG.info("filter pattern %r refused: %s", text, exc)
            raise FilterCriteriaError(f"Invalid filter pattern definition. {exc}") from None
        key = DATA_KEYS[source]
        data_form = None
        if source == "kinesis" and set(raw) - {"data"}:
            # "Kinesis event source mappings only support filtering on the data key" (with-kinesis-filtering)
            LOG.warning("filter pattern %r: Kinesis mappings filter on the data key only", text)
        if key in raw:
            data_form = "object" if isinstance(raw[key], dict) else "plain"
            if source != "sqs" and data_form != "object":
                raise FilterCriteriaError(
                    f"Invalid filter pattern definition. The filter pattern for {key} must be a JSON object."
                )
        compiled.append(_Filter(pattern, data_form))
    return FilterSet(source, {"Filters": [{"Pattern": f["Pattern"]} for f in filters]}, tuple(compiled))
