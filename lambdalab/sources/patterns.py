"""Content filtering as EventBridge, SNS and Lambda apply it: one matcher, three dialects.

Pure code: a pattern is compiled once (`compile_pattern`, which raises `PatternError` for what the service refuses)
and matched against parsed JSON (`Pattern.matches`). The rules are those of EventBridge's engine, aws/event-ruler
(README: "Ruler by Example", "JSON Array Matching", "$or"), which Lambda event filtering reuses ("For filter rules,
Lambda supports the same set of syntax and rules as Amazon EventBridge"), and which SNS filter policies follow closely:

* A pattern is a JSON object; fields are AND-ed; each leaf is an array of values, OR-ed. `$or: [{...}, {...}]` (two
  or more objects with no operator keywords) ORs sub-patterns at its level; otherwise `$or` is a field name.
* An event value that is an array matches when any of its elements does; objects inside arrays are matched element by
  element (two fields of one pattern object never match in two different elements of the same array).
* A field is present only when it holds a leaf (string, number, boolean, null, or an array with such values):
  `{"exists": false}` matches an absent field or one holding an object; `{"exists": true}` the opposite.
* Exact values compare strings character by character; numbers by their JSON text in EventBridge and Lambda
  ("300, 300.0, and 3.0e2 are not considered equal") but by value in SNS ("3.015e2" matches 301.5).
* `prefix`, `suffix`, `equals-ignore-case`, `wildcard`, `cidr` and the `anything-but` forms match strings only;
  `numeric` matches JSON numbers only; `anything-but` needs the field to be present.

Dialect differences (operators each service documents; anything else is refused as the service refuses it):

* EventBridge: every operator above.
* Lambda (event source mapping FilterCriteria): no `wildcard` and no `anything-but` with `prefix`, `suffix`,
  `equals-ignore-case` or `wildcard` (EventBridge's operator table marks them "Pipe support: No").
* SNS: no `wildcard`; with the MessageAttributes scope the policy is flat (no nested objects), String attributes are
  strings, Number attributes numbers, String.Array attributes JSON arrays, Binary attributes are not matched.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

OPERATORS = frozenset(
    {"prefix", "suffix", "equals-ignore-case", "wildcard", "anything-but", "numeric", "exists", "cidr"}
)
_NUMERIC_OPS = ("=", "<", "<=", ">", ">=")


class Dialect(enum.Enum):
    EVENTBRIDGE = "EventBridge"
    LAMBDA = "Lambda"
    SNS_ATTRIBUTES = "SNS (MessageAttributes)"
    SNS_BODY = "SNS (MessageBody)"

    @property
    def numbers_by_value(self) -> bool:
        return self in (Dialect.SNS_ATTRIBUTES, Dialect.SNS_BODY)


class PatternError(ValueError):
    """The service would refuse this pattern; the message says why."""


class Num(float):
    """A JSON number that remembers how it was written (EventBridge and Lambda compare exact numbers by text)."""

    text: str

    def __new__(cls, text: str) -> Num:
        number = super().__new__(cls, float(text))
        number.text = text
        return number


def loads(text: str | bytes) -> Any:
    """JSON with numbers kept as `Num` (value and original text)."""
    return json.loads(text, parse_int=Num, parse_float=Num, parse_constant=_no_constant)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_text(value: Any) -> str:
    if isinstance(value, Num):
        return value.text
    return json.dumps(value)


# --- matchers -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Exact:
    value: Any

    def matches(self, value: Any, by_value: bool) -> bool:
        expected = self.value
        if expected is None or isinstance(expected, bool):
            return value is expected
        if isinstance(expected, str):
            return isinstance(value, str) and value == expected
        if not _is_number(value):
            return False
        if by_value:
            return float(value) == float(expected)
        return _number_text(value) == _number_text(expected)


@dataclass(frozen=True)
class _Prefix:
    text: str
    ignore_case: bool = False

    def matches(self, value: Any, by_value: bool) -> bool:
        if not isinstance(value, str):
            return False
        if self.ignore_case:
            return value.lower().startswith(self.text.lower())
        return value.startswith(self.text)


@dataclass(frozen=True)
class _Suffix:
    text: str
    ignore_case: bool = False

    def matches(self, value: Any, by_value: bool) -> bool:
        if not isinstance(value, str):
            return False
        if self.ignore_case:
            return value.lower().endswith(self.text.lower())
        return value.endswith(self.text)


@dataclass(frozen=True)
class _EqualsIgnoreCase:
    text: str

    def matches(self, value: Any, by_value: bool) -> bool:
        return isinstance(value, str) and value.lower() == self.text.lower()


@dataclass(frozen=True)
class _Wildcard:
    regex: re.Pattern[str]

    def matches(self, value: Any, by_value: bool) -> bool:
        return isinstance(value, str) and self.regex.fullmatch(value) is not None


@dataclass(frozen=True)
class _Cidr:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network

    def matches(self, value: Any, by_value: bool) -> bool:
        if not isinstance(value, str):
            return False
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return False
        return address.version == self.network.version and address in self.network


@dataclass(frozen=True)
class _Numeric:
    low: float | None
    low_inclusive: bool
    high: float | None
    high_inclusive: bool

    def matches(self, value: Any, by_value: bool) -> bool:
        if not _is_number(value):
            return False
        number = float(value)
        if self.low is not None and (number < self.low or (number == self.low and not self.low_inclusive)):
            return False
        return not (self.high is not None and (number > self.high or (number == self.high and not self.high_inclusive)))


@dataclass(frozen=True)
class _AnythingBut:
    """Present, a match for none of `excluded` (values, or string matchers for the prefix/suffix/... forms)."""

    excluded: tuple[Any, ...]
    strings_only: bool  # the prefix, suffix, equals-ignore-case and wildcard forms match string values only

    def matches(self, value: Any, by_value: bool) -> bool:
        if self.strings_only and not isinstance(value, str):
            return False
        return not any(matcher.matches(value, by_value) for matcher in self.excluded)


@dataclass(frozen=True)
class _Exists:
    present: bool


Matcher = _Exact | _Prefix | _Suffix | _EqualsIgnoreCase | _Wildcard | _Cidr | _Numeric | _AnythingBut


# --- compiled patterns ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Leaf:
    matchers: tuple[Matcher | _Exists, ...]


@dataclass(frozen=True)
class _Object:
    fields: tuple[tuple[str, _Leaf | _Object], ...]
    alternatives: tuple[tuple[_Object, ...], ...] = ()  # each `$or`: at least one of its objects must match


@dataclass(frozen=True)
class Pattern:
    """A compiled pattern: `matches(event)` with the event as parsed JSON (use `loads` to keep number texts)."""

    root: _Object
    dialect: Dialect

    def matches(self, event: Any) -> bool:
        return _match_object(self.root, event, self.dialect.numbers_by_value)


def compile_pattern(pattern: Any, dialect: Dialect) -> Pattern:
    """Validate and compile a pattern given as JSON text or as parsed JSON."""
    if isinstance(pattern, (str, bytes)):
        try:
            pattern = loads(pattern)
        except ValueError as exc:
            raise PatternError(f"the pattern is not valid JSON: {exc}") from None
    if not isinstance(pattern, Mapping):
        raise PatternError("the pattern must be a JSON object")
    return Pattern(_compile_object(pattern, dialect, path=""), dialect)


def _is_or(key: str, value: Any) -> bool:
    """event-ruler reads `$or` as OR only for an array of 2+ objects whose keys are not operator keywords."""
    return (
        key == "$or"
        and isinstance(value, list)
        and len(value) >= 2
        and all(isinstance(item, Mapping) and not (set(item) & OPERATORS) for item in value)
    )


def _compile_object(pattern: Mapping[str, Any], dialect: Dialect, path: str) -> _Object:
    fields: list[tuple[str, _Leaf | _Object]] = []
    alternatives: list[tuple[_Object, ...]] = []
    for key, value in pattern.items():
        where = f"{path}.{key}" if path else key
        if _is_or(key, value):
            alternatives.append(tuple(_compile_object(item, dialect, path) for item in value))
        elif isinstance(value, Mapping):
            if dialect is Dialect.SNS_ATTRIBUTES:
                raise PatternError(f'"{where}": filter policies on message attributes cannot be nested')
            fields.append((key, _compile_object(value, dialect, where)))
        elif isinstance(value, list):
            fields.append((key, _Leaf(tuple(_compile_value(item, dialect, where) for item in value))))
        else:
            raise PatternError(f'"{where}" must be an object or an array')
    return _Object(tuple(fields), tuple(alternatives))


def _string(value: Any, operator: str, where: str) -> str:
    if not isinstance(value, str):
        raise PatternError(f'"{where}": {operator} match pattern must be a string')
    return value


def _strings(value: Any, operator: str, where: str) -> list[str]:
    """One string, or (anything-but forms) a non-empty array of strings."""
    if isinstance(value, list):
        if not value:
            raise PatternError(f'"{where}": {operator} needs at least one value')
        return [_string(item, operator, where) for item in value]
    return [_string(value, operator, where)]


def _wildcard(text: str, where: str) -> re.Pattern[str]:
    """event-ruler's wildcard: `*` any run of characters; `\\*` a literal star, `\\\\` a backslash; `**` refused."""
    out: list[str] = []
    index = 0
    previous_star = False
    while index < len(text):
        char = text[index]
        if char == "\\":
            following = text[index + 1 : index + 2]
            if following not in ("*", "\\"):
                raise PatternError(f'"{where}": invalid escape in wildcard pattern {text!r}')
            out.append(re.escape(following))
            index += 2
            previous_star = False
            continue
        if char == "*":
            if previous_star:
                raise PatternError(f'"{where}": consecutive wildcard characters are not allowed in {text!r}')
            out.append(".*")
            previous_star = True
        else:
            out.append(re.escape(char))
            previous_star = False
        index += 1
    return re.compile("".join(out), re.DOTALL)


def _string_matcher(operator: str, value: Any, dialect: Dialect, where: str) -> Matcher:
    """prefix / suffix (optionally with equals-ignore-case inside), equals-ignore-case, wildcard."""
    if operator in ("prefix", "suffix"):
        ignore_case = False
        if isinstance(value, Mapping):
            if set(value) != {"equals-ignore-case"}:
                raise PatternError(f'"{where}": {operator} takes a string or {{"equals-ignore-case": ...}}')
            ignore_case = True
            value = value["equals-ignore-case"]
        text = _string(value, operator, where)
        return _Prefix(text, ignore_case) if operator == "prefix" else _Suffix(text, ignore_case)
    if operator == "equals-ignore-case":
        return _EqualsIgnoreCase(_string(value, operator, where))
    if dialect is not Dialect.EVENTBRIDGE:
        raise PatternError(f'"{where}": {dialect.value} filters do not support wildcard matching')
    return _Wildcard(_wildcard(_string(value, operator, where), where))


def _numeric(spec: Any, where: str) -> _Numeric:
    if not isinstance(spec, list) or len(spec) not in (2, 4):
        raise PatternError(f'"{where}": numeric needs [op, number] or [lower op, number, upper op, number]')
    low: float | None = None
    high: float | None = None
    low_inclusive = high_inclusive = False
    pairs = [(spec[i], spec[i + 1]) for i in range(0, len(spec), 2)]
    for position, (op, number) in enumerate(pairs):
        if op not in _NUMERIC_OPS:
            raise PatternError(f'"{where}": unrecognized numeric range operator {op!r}')
        if not _is_number(number) or not math.isfinite(float(number)):
            raise PatternError(f'"{where}": value of {op} must be a number')
        if op == "=":
            if len(pairs) != 1:
                raise PatternError(f'"{where}": "=" cannot be combined with another numeric operator')
            return _Numeric(float(number), True, float(number), True)
        if op in (">", ">="):
            if position != 0 or low is not None:
                raise PatternError(f'"{where}": the lower bound (> or >=) must come first')
            low, low_inclusive = float(number), op == ">="
        else:
            if high is not None:
                raise PatternError(f'"{where}": only one upper bound (< or <=) is allowed')
            high, high_inclusive = float(number), op == "<="
    if len(pairs) == 2 and (low is None or high is None):
        raise PatternError(f'"{where}": a numeric range needs a lower bound (> or >=) then an upper bound (< or <=)')
    if low is not None and high is not None and low >= high:
        raise PatternError(f'"{where}": bottom must be less than top')
    return _Numeric(low, low_inclusive, high, high_inclusive)


def _anything_but(spec: Any, dialect: Dialect, where: str) -> _AnythingBut:
    if isinstance(spec, Mapping):
        if len(spec) != 1:
            raise PatternError(f'"{where}": anything-but takes one of prefix, suffix, equals-ignore-case, wildcard')
        ((operator, value),) = spec.items()
        if operator not in ("prefix", "suffix", "equals-ignore-case", "wildcard"):
            raise PatternError(f'"{where}": unsupported anything-but pattern {operator!r}')
        if dialect is Dialect.LAMBDA:
            raise PatternError(f'"{where}": Lambda filters do not support anything-but with {operator}')
        if dialect is not Dialect.EVENTBRIDGE and operator == "wildcard":
            raise PatternError(f'"{where}": {dialect.value} filters do not support wildcard matching')
        texts = _strings(value, f"anything-but {operator}", where)
        return _AnythingBut(tuple(_string_matcher(operator, text, dialect, where) for text in texts), True)
    values = spec if isinstance(spec, list) else [spec]
    if not values:
        raise PatternError(f'"{where}": anything-but needs at least one value')
    if all(isinstance(v, str) for v in values) or all(_is_number(v) for v in values):
        return _AnythingBut(tuple(_Exact(v) for v in values), False)
    raise PatternError(f'"{where}": inside anything-but list, all values must be strings or all must be numbers')


def _compile_value(item: Any, dialect: Dialect, where: str) -> Matcher | _Exists:
    if item is None or isinstance(item, (str, bool)) or _is_number(item):
        return _Exact(item)
    if isinstance(item, list):
        raise PatternError(f'"{where}": match values cannot be nested arrays')
    if not isinstance(item, Mapping):
        raise PatternError(f'"{where}": unsupported match value {item!r}')
    if len(item) != 1:
        raise PatternError(f'"{where}": a match object takes exactly one operator, got {sorted(item)}')
    ((operator, value),) = item.items()
    if operator in ("prefix", "suffix", "equals-ignore-case", "wildcard"):
        return _string_matcher(operator, value, dialect, where)
    if operator == "anything-but":
        return _anything_but(value, dialect, where)
    if operator == "numeric":
        return _numeric(value, where)
    if operator == "exists":
        if not isinstance(value, bool):
            raise PatternError(f'"{where}": exists match pattern must be either true or false')
        return _Exists(value)
    if operator == "cidr":
        text = _string(value, "cidr", where)
        try:
            return _Cidr(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise PatternError(f'"{where}": nonstandard IP address or CIDR {text!r}') from None
    raise PatternError(f'"{where}": unrecognized match type {operator}')


# --- matching -------------------------------------------------------------------------------------------------------


def _flatten(value: list[Any]) -> Iterator[Any]:
    for item in value:
        if isinstance(item, list):
            yield from _flatten(item)
        else:
            yield item


def _match_object(pattern: _Object, value: Any, by_value: bool) -> bool:
    if isinstance(value, list):
        objects = [item for item in _flatten(value) if isinstance(item, Mapping)]
        return any(_match_fields(pattern, item, by_value) for item in objects or [{}])
    return _match_fields(pattern, value if isinstance(value, Mapping) else {}, by_value)


def _match_fields(pattern: _Object, event: Mapping[str, Any], by_value: bool) -> bool:
    for key, sub in pattern.fields:
        present = key in event
        value = event.get(key)
        if isinstance(sub, _Object):
            if not _match_object(sub, value if present else None, by_value):
                return False
        elif not _match_leaf(sub, present, value, by_value):
            return False
    return all(any(_match_object(alt, event, by_value) for alt in group) for group in pattern.alternatives)


def _leaf_values(present: bool, value: Any) -> list[Any]:
    """The leaf values a field holds: none when absent or an object (not a leaf node)."""
    if not present or isinstance(value, Mapping):
        return []
    if isinstance(value, list):
        return [item for item in _flatten(value) if not isinstance(item, Mapping)]
    return [value]


def _match_leaf(leaf: _Leaf, present: bool, value: Any, by_value: bool) -> bool:
    values = _leaf_values(present, value)
    for matcher in leaf.matchers:
        if isinstance(matcher, _Exists):
            if matcher.present == bool(values):
                return True
        elif any(matcher.matches(v, by_value) for v in values):
            return True
    return False


# --- SNS message attributes -----------------------------------------------------------------------------------------


def sns_attribute_document(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """SNS message attributes ({name: {Type, Value}} as Publish carries them) → what a filter policy sees.

    String → the string; Number → a number; String.Array → the JSON array (a value that does not parse is kept as a
    string); Binary and Binary.Array are not matched by filter policies, so they are left out.
    """
    document: dict[str, Any] = {}
    for name, attribute in (attributes or {}).items():
        kind = str(attribute.get("Type") or attribute.get("DataType") or "String")
        raw = attribute.get("Value", attribute.get("StringValue"))
        if kind.startswith("Binary"):
            continue
        if kind.startswith("Number"):
            try:
                document[name] = Num(str(raw))
            except ValueError:
                document[name] = str(raw)
        elif kind.startswith("String.Array"):
            try:
                parsed = loads(str(raw))
            except ValueError:
                parsed = str(raw)
            document[name] = parsed
        else:
            document[name] = "" if raw is None else str(raw)
    return document
