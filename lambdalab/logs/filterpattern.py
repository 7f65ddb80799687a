"""CloudWatch Logs filter patterns (FilterLogEvents, `aws logs tail --filter-pattern`): parse once, match many.

The three forms of the CloudWatch Logs user guide, "Filter pattern syntax for metric filters, subscription filters,
filter log events, and Live Tail":

- unstructured terms: ``ERROR`` (contains, case-sensitive), ``"Exact phrase"``, ``ERROR -Exiting`` (AND, NOT),
  ``?ERROR ?WARN`` (OR), ``%regex%``; an empty pattern matches every event;
- JSON: ``{ $.level = "ERROR" && ($.latency > 100 || $.cold IS TRUE) }`` with =, !=, <, <=, >, >= (numbers), = and !=
  with ``*`` wildcards or ``%regex%`` (strings), ``IS TRUE|FALSE|NULL``, ``NOT EXISTS``, ``$.a.b[0]`` and ``$.a[*]``;
- space-delimited: ``[ip, user, ..., status = 4*, bytes > 1000]`` over the event's words (``"…"`` and ``[…]`` are one
  word each), ``...`` for any number of words, conditions joined with && and ||.

Errors are AWS's InvalidParameterException messages ("Invalid filter pattern", "Invalid character(s) in term …",
"If a filter pattern starts with '{' it must end with '}'").
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lambdalab.logs.store import LogsError

Matcher = Callable[[str], bool]


def invalid(message: str = "Invalid filter pattern") -> LogsError:
    return LogsError("InvalidParameterException", message)


def compile_pattern(pattern: str | None) -> Matcher:
    """A predicate over event messages; raises LogsError (InvalidParameterException) for a bad pattern."""
    text = (pattern or "").strip()
    if not text:
        return lambda _message: True
    if text.startswith("{"):
        if not text.endswith("}"):
            raise invalid("If a filter pattern starts with '{' it must end with '}'")
        return _json_matcher(text[1:-1])
    if text.startswith("["):
        if not text.endswith("]"):
            raise invalid("If a filter pattern starts with '[' it must end with ']'")
        return _delimited_matcher(text[1:-1])
    return _terms_matcher(text)


# --- unstructured terms -------------------------------------------------------------------------------------------

_TERM = re.compile(r'\s*([?-]?)("(?:[^"\\]|\\.)*"|%(?:[^%\\]|\\.)+%|[^\s]+)')


def _unquote(token: str) -> str:
    return json.loads(token) if token.startswith('"') else token


def _regex(token: str) -> re.Pattern[str]:
    try:
        return re.compile(token[1:-1])
    except re.error:
        raise invalid(f"Invalid regex pattern: {token}") from None


def _terms_matcher(text: str) -> Matcher:
    required: list[Matcher] = []
    excluded: list[Matcher] = []
    optional: list[Matcher] = []
    position = 0
    while position < len(text):
        match = _TERM.match(text, position)
        if match is None:
            break
        prefix, token = match.group(1), match.group(2)
        position = match.end()
        if token.startswith('"'):
            try:
                phrase = _unquote(token)
            except ValueError:
                raise invalid(f"Invalid character(s) in term '{token}'") from None
            if phrase == "":
                raise invalid("Invalid character(s) in term '\"\"'")
            matcher: Matcher = _contains(phrase)
        elif token.startswith("%") and token.endswith("%") and len(token) > 2:
            matcher = _searches(_regex(token))
        else:
            if '"' in token:
                raise invalid(f"Invalid character(s) in term '{token}'")
            matcher = _contains(token)
        {"": required, "-": excluded, "?": optional}[prefix].append(matcher)
        if text[position:].strip() == "":
            break

    def match_all(message: str) -> bool:
        if any(not m(message) for m in required):
            return False
        if any(m(message) for m in excluded):
            return False
        return not optional or any(m(message) for m in optional)

    return match_all


def _searches(compiled: re.Pattern[str]) -> Matcher:
    return lambda message: compiled.search(message) is not None


def _contains(term: str) -> Matcher:
    return lambda message: term in message


# --- shared condition grammar (JSON and space-delimited) ----------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<op>&&|\|\||!=|<=|>=|=|<|>|\(|\))
    | (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<regex>%(?:[^%\\]|\\.)+%)
    | (?P<word>[^\s()=!<>&|"]+)
    )""",
    re.VERBOSE,
)


@dataclass
class _Tokens:
    items: list[tuple[str, str]]
    index: int = 0

    def peek(self) -> tuple[str, str] | None:
        return self.items[self.index] if self.index < len(self.items) else None

    def take(self) -> tuple[str, str]:
        item = self.peek()
        if item is None:
            raise invalid()
        self.index += 1
        return item


def _tokenize(text: str) -> _Tokens:
    items: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise invalid()
        kind = match.lastgroup or "word"
        items.append((kind, match.group(kind)))
        position = match.end()
    return _Tokens(items)


Getter = Callable[[Any], Any]  # record → the selected value(s)
_MISSING = object()


def _parse_or(tokens: _Tokens, comparison: Callable[[_Tokens], Callable[[Any], bool]]) -> Callable[[Any], bool]:
    left = _parse_and(tokens, comparison)
    while tokens.peek() == ("op", "||"):
        tokens.take()
        right = _parse_and(tokens, comparison)
        left = _either(left, right)
    return left


def _parse_and(tokens: _Tokens, comparison: Callable[[_Tokens], Callable[[Any], bool]]) -> Callable[[Any], bool]:
    left = _parse_primary(tokens, comparison)
    while tokens.peek() == ("op", "&&"):
        tokens.take()
        right = _parse_primary(tokens, comparison)
        left = _both(left, right)
    return left


def _either(a: Callable[[Any], bool], b: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda r: a(r) or b(r)


def _both(a: Callable[[Any], bool], b: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda r: a(r) and b(r)


def _parse_primary(tokens: _Tokens, comparison: Callable[[_Tokens], Callable[[Any], bool]]) -> Callable[[Any], bool]:
    if tokens.peek() == ("op", "("):
        tokens.take()
        inner = _parse_or(tokens, comparison)
        if tokens.take() != ("op", ")"):
            raise invalid()
        return inner
    return comparison(tokens)


def _value_test(op: str, kind: str, literal: str) -> Callable[[Any], bool]:
    """A test of one selected value against a literal (number, string with wildcards, %regex%)."""
    if kind == "regex":
        compiled = _regex(literal)
        if op not in ("=", "!="):
            raise invalid()
        return lambda v: v is not _MISSING and (compiled.search(_text(v)) is not None) == (op == "=")
    if kind == "word":
        number = _number(literal)
        if number is not None:
            return _numeric(op, number)
    if op not in ("=", "!="):
        raise invalid()
    text = _unquote(literal) if kind == "string" else literal
    if "*" in text:
        pattern = re.compile(".*".join(re.escape(part) for part in text.split("*")) + r"\Z", re.DOTALL)
        return lambda v: v is not _MISSING and (pattern.match(_text(v)) is not None) == (op == "=")
    return lambda v: v is not _MISSING and (_text(v) == text) == (op == "=")


def _numeric(op: str, number: float) -> Callable[[Any], bool]:
    def test(value: Any) -> bool:
        actual = _number(value) if isinstance(value, str) else value
        if isinstance(actual, bool) or not isinstance(actual, int | float):
            return op == "!=" and value is not _MISSING
        return {
            "=": actual == number,
            "!=": actual != number,
            "<": actual < number,
            "<=": actual <= number,
            ">": actual > number,
            ">=": actual >= number,
        }[op]

    return test


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


# --- JSON ---------------------------------------------------------------------------------------------------------

_SELECTOR_PART = re.compile(r"\.(?P<key>[A-Za-z0-9_@\-]+)|\[(?P<index>\d+|\*)\]")


def _selector(text: str) -> Getter:
    if not text.startswith("$"):
        raise invalid()
    parts: list[str | int | None] = []
    position = 1
    while position < len(text):
        match = _SELECTOR_PART.match(text, position)
        if match is None:
            raise invalid()
        if match.group("key") is not None:
            parts.append(match.group("key"))
        else:
            index = match.group("index")
            parts.append(None if index == "*" else int(index))
        position = match.end()

    def select(record: Any) -> list[Any]:
        values = [record]
        for part in parts:
            nxt: list[Any] = []
            for value in values:
                if part is None and isinstance(value, list):
                    nxt.extend(value)
                elif isinstance(part, int) and isinstance(value, list):
                    if part < len(value):
                        nxt.append(value[part])
                elif isinstance(part, str) and isinstance(value, dict) and part in value:
                    nxt.append(value[part])
            values = nxt
        return values

    return select


def _json_comparison(tokens: _Tokens) -> Callable[[Any], bool]:
    kind, text = tokens.take()
    if kind != "word" or not text.startswith("$"):
        raise invalid()
    select = _selector(text)
    nxt = tokens.peek()
    if nxt is not None and nxt[0] == "word" and nxt[1].upper() in ("IS", "NOT"):
        keyword = tokens.take()[1].upper()
        if keyword == "NOT":
            if tokens.take()[1].upper() != "EXISTS":
                raise invalid()
            return lambda r: not select(r)
        what = tokens.take()[1].upper()
        expected = {"TRUE": True, "FALSE": False, "NULL": None}
        if what not in expected:
            raise invalid()
        wanted = expected[what]
        return lambda r: any(v is wanted for v in select(r))
    op_kind, op = tokens.take()
    if op_kind != "op" or op not in ("=", "!=", "<", "<=", ">", ">="):
        raise invalid()
    literal_kind, literal = tokens.take()
    if literal_kind == "op":
        raise invalid()
    test = _value_test(op, literal_kind, literal)
    return lambda r: any(test(v) for v in select(r))


def _json_matcher(body: str) -> Matcher:
    tokens = _tokenize(body)
    if not tokens.items:
        raise invalid()
    predicate = _parse_or(tokens, _json_comparison)
    if tokens.peek() is not None:
        raise invalid()

    def match(message: str) -> bool:
        text = message.strip()
        if not text.startswith("{"):
            return False
        try:
            record = json.loads(text)
        except ValueError:
            return False
        return isinstance(record, dict) and predicate(record)

    return match


# --- space-delimited ----------------------------------------------------------------------------------------------

_WORD = re.compile(r'"[^"]*"|\[[^\]]*\]|\S+')


def _words(message: str) -> list[str]:
    out = []
    for word in _WORD.findall(message):
        grouped = (word.startswith('"') and word.endswith('"') and len(word) >= 2) or (
            word.startswith("[") and word.endswith("]")
        )
        out.append(word[1:-1] if grouped else word)
    return out


def _delimited_matcher(body: str) -> Matcher:
    names: list[str] = []
    conditions: list[str] = []  # the fields that carry a condition
    fields = [f.strip() for f in _split_fields(body)]
    if not fields or any(f == "" for f in fields):
        raise invalid()
    ellipsis_at: list[int] = []
    for position, text in enumerate(fields):
        if text == "...":
            ellipsis_at.append(position)
            names.append("...")
            continue
        name_match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text)
        if name_match is None:
            raise invalid()
        names.append(name_match.group(0))
        if text[name_match.end() :].strip():
            conditions.append(text)
    if len(ellipsis_at) > 1:
        raise invalid()
    by_name = {n: i for i, n in enumerate(names) if n != "..."}
    tests: list[Callable[[list[str]], bool]] = []
    for text in conditions:

        def comparison(tokens: _Tokens) -> Callable[[Any], bool]:
            kind, name = tokens.take()
            if kind != "word" or name not in by_name:
                raise invalid()
            op_kind, op = tokens.take()
            if op_kind != "op" or op not in ("=", "!=", "<", "<=", ">", ">="):
                raise invalid()
            literal_kind, literal = tokens.take()
            test = _value_test(op, literal_kind, literal)
            position = by_name[name]
            return lambda values: test(values[position] if position < len(values) else _MISSING)

        tokens = _tokenize(text)
        tests.append(_parse_or(tokens, comparison))
        if tokens.peek() is not None:
            raise invalid()
    count = len(names)
    ellipsis = ellipsis_at[0] if ellipsis_at else None

    def match(message: str) -> bool:
        words = _words(message)
        if ellipsis is None:
            if len(words) != count:
                return False
            values = words
        else:
            after = count - ellipsis - 1
            if len(words) < count - 1:
                return False
            values = [*words[:ellipsis], " ".join(words[ellipsis : len(words) - after]), *words[len(words) - after :]]
        return all(t(values) for t in tests)

    return match


def _split_fields(body: str) -> list[str]:
    """Split on commas outside quotes."""
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for char in body:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            out.append("".join(current))
            current = []
        else:
            current.append(char)
    out.append("".join(current))
    return out
