"""The CloudWatch Logs Insights query language: a lexer and a recursive-descent parser into a small AST.

Written here because no maintained Python library parses Insights queries, and moto 5.2.5 reads only `fields`,
`sort` and `limit` (with string splitting). Commands: ``fields``, ``display``, ``filter``, ``stats`` (up to two),
``sort``, ``limit``, ``parse`` (glob and regex forms), ``dedup``. Expressions: literals, fields (``@duration``,
``record.metrics.durationMs``, ```a b```), arithmetic, comparisons, ``like`` / ``=~`` with strings or ``/regex/``,
``in [...]``, ``and`` / ``or`` / ``not``, function calls. A syntax error raises `QuerySyntaxError` with the character
offsets AWS reports in ``queryCompileError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


class QuerySyntaxError(Exception):
    def __init__(self, message: str, start: int, end: int) -> None:
        super().__init__(message)
        self.message = message
        self.start = start
        self.end = end


# --- tokens -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # ident, number, duration, string, regex, op, eof
    text: str
    start: int
    end: int


_SPEC = [
    ("space", r"\s+"),
    ("comment", r"#[^\n]*"),
    ("duration", r"\d+(?:\.\d+)?(?:ms|s|m|h|d|w|mo|q|y|sec|min|hr|second|minute|hour|day|week|month)s?\b"),
    ("number", r"\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?"),
    ("string", r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'"),
    ("backtick", r"`[^`]*`"),
    ("ident", r"[@A-Za-z_$][\w@$.]*(?<!\.)"),
    ("op", r"=~|!=|<=|>=|==|[|,()\[\]=<>+\-*/%^!]"),
]
_MASTER = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in _SPEC))
_REGEX = re.compile(r"/((?:[^/\\\n]|\\.)*)/([a-z]*)")
_OPERAND_END = {"ident", "number", "duration", "string", "regex"}
_REGEX_AFTER = {"like", "and", "or", "not", "in", "filter", "parse", "by", "as"}  # a "/" after these opens a regex


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        previous = tokens[-1] if tokens else None
        operand_before = previous is not None and (
            (previous.kind in _OPERAND_END and previous.text.lower() not in _REGEX_AFTER)
            or (previous.kind == "op" and previous.text in (")", "]"))
        )
        if len(tokens) >= 2 and tokens[-2].kind == "ident" and tokens[-2].text.lower() == "parse":
            operand_before = False  # parse <field> /regex/
        if text[position] == "/" and not operand_before:
            match = _REGEX.match(text, position)
            if match is None:
                raise QuerySyntaxError(
                    f"unexpected symbol found / at line 1 and position {position}", position, position
                )
            tokens.append(Token("regex", match.group(0), position, match.end()))
            position = match.end()
            continue
        match = _MASTER.match(text, position)
        if match is None:
            raise QuerySyntaxError(
                f"unexpected symbol found {text[position]} at line 1 and position {position}", position, position
            )
        kind = match.lastgroup or ""
        if kind == "backtick":
            tokens.append(Token("ident", match.group(0)[1:-1], position, match.end()))
        elif kind not in ("space", "comment"):
            tokens.append(Token(kind, match.group(0), position, match.end()))
        position = match.end()
    tokens.append(Token("eof", "", len(text), len(text)))
    return tokens


# --- AST ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    name: str


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Regex:
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class Call:
    name: str  # lower case
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Unary:
    op: str  # "-", "not"
    operand: Any


@dataclass(frozen=True)
class Binary:
    op: str  # + - * / % ^ = != < <= > >= and or like =~ in
    left: Any
    right: Any
    negate: bool = False  # not like, not in


@dataclass(frozen=True)
class ListExpr:
    items: tuple[Any, ...]


AGGREGATES = {
    "count",
    "count_distinct",
    "avg",
    "min",
    "max",
    "sum",
    "pct",
    "stddev",
    "earliest",
    "latest",
    "sortsfirst",
}


@dataclass
class Item:
    """An expression with its output name (alias, or the query text of the expression)."""

    expr: Any
    name: str


@dataclass
class FieldsCmd:
    items: list[Item]


@dataclass
class DisplayCmd:
    names: list[str]


@dataclass
class FilterCmd:
    expr: Any


@dataclass
class StatsCmd:
    items: list[Item]
    by: list[Item] = field(default_factory=list)


@dataclass
class SortCmd:
    keys: list[tuple[Any, bool]]  # (expression, descending)


@dataclass
class LimitCmd:
    count: int


@dataclass
class ParseCmd:
    source: Any
    regex: re.Pattern[str]
    names: list[str]


@dataclass
class DedupCmd:
    names: list[str]


@dataclass
class Query:
    commands: list[Any]
    text: str


# --- parser -------------------------------------------------------------------------------------------------------

_COMMANDS = ("fields", "display", "filter", "stats", "sort", "limit", "parse", "dedup")
_COMPARISONS = ("=", "==", "!=", "<", "<=", ">", ">=")
_KEYWORDS = {"and", "or", "not", "like", "in", "as", "by", "asc", "desc"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    # helpers
    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at(self, kind: str, text: str | None = None) -> bool:
        token = self.token
        if token.kind != kind:
            return False
        return text is None or token.text.lower() == text

    def at_word(self, word: str) -> bool:
        return self.token.kind == "ident" and self.token.text.lower() == word

    def error(self, token: Token | None = None) -> QuerySyntaxError:
        token = token or self.token
        shown = token.text if token.kind != "eof" else "<EOF>"
        return QuerySyntaxError(
            f"unexpected symbol found {shown} at line 1 and position {token.start}", token.start, token.end
        )

    def expect(self, kind: str, text: str | None = None) -> Token:
        if not self.at(kind, text):
            raise self.error()
        return self.advance()

    # query
    def query(self) -> Query:
        commands: list[Any] = []
        while True:
            if self.at("eof"):
                raise self.error()
            commands.append(self.command())
            if self.at("op", "|"):
                self.advance()
                continue
            if not self.at("eof"):
                raise self.error()
            break
        if sum(isinstance(c, StatsCmd) for c in commands) > 2:
            raise QuerySyntaxError("a query can have at most two stats commands", 0, len(self.text))
        return Query(commands, self.text)

    def command(self) -> Any:
        token = self.token
        word = token.text.lower() if token.kind == "ident" else ""
        if word not in _COMMANDS:
            raise self.error()
        self.advance()
        if word == "fields":
            return FieldsCmd(self.items(allow_assignment=True))
        if word == "display":
            return DisplayCmd([self.field_name() for _ in self.commas()])
        if word == "filter":
            return FilterCmd(self.expression())
        if word == "stats":
            items = self.items()
            by: list[Item] = []
            if self.at_word("by"):
                self.advance()
                by = self.items()
            return StatsCmd(items, by)
        if word == "sort":
            keys: list[tuple[Any, bool]] = []
            for _ in self.commas():
                expr = self.expression()
                descending = True
                if self.at_word("asc"):
                    self.advance()
                    descending = False
                elif self.at_word("desc"):
                    self.advance()
                keys.append((expr, descending))
            return SortCmd(keys)
        if word == "limit":
            token = self.expect("number")
            count = int(float(token.text))
            if count < 1 or count > 10000:
                raise QuerySyntaxError("limit must be between 1 and 10000", token.start, token.end)
            return LimitCmd(count)
        if word == "parse":
            return self.parse_command()
        return DedupCmd([self.field_name() for _ in self.commas()])

    def commas(self) -> Any:
        yield None
        while self.at("op", ","):
            self.advance()
            yield None

    def field_name(self) -> str:
        token = self.expect("ident")
        return token.text

    def items(self, *, allow_assignment: bool = False) -> list[Item]:
        items: list[Item] = []
        for _ in self.commas():
            start = self.token.start
            if allow_assignment and self.at("ident") and self.tokens[self.index + 1].text == "=":
                # fields x = expression  (an older spelling of "expression as x")
                name = self.advance().text
                self.advance()
                items.append(Item(self.expression(), name))
                continue
            expr = self.expression()
            end = self.tokens[self.index - 1].end
            name = self.text[start:end].strip()
            if self.at_word("as"):
                self.advance()
                name = self.field_name()
            elif isinstance(expr, Field):
                name = expr.name
            items.append(Item(expr, name))
        return items

    def parse_command(self) -> ParseCmd:
        source = self.expression_operand()
        token = self.token
        if token.kind == "string":
            pattern = _unquote(token.text)
            self.advance()
            names: list[str] = []
            if self.at_word("as"):
                self.advance()
                names = [self.field_name() for _ in self.commas()]
            stars = pattern.count("*")
            if stars != len(names):
                raise QuerySyntaxError(
                    "the number of fields does not match the number of wildcards in the parse pattern",
                    token.start,
                    token.end,
                )
            regex = re.compile(".*?".join(re.escape(p) for p in pattern.split("*")).replace(".*?", "(.*?)"), re.S)
            # the last wildcard takes the rest of the message
            if names and pattern.endswith("*"):
                regex = re.compile(regex.pattern[: -len("(.*?)")] + "(.*)", re.S)
            return ParseCmd(source, regex, names)
        if token.kind == "regex":
            self.advance()
            regex = _compile_regex(token)
            named = list(regex.groupindex)
            if not named:
                raise QuerySyntaxError(
                    "a parse regular expression needs named groups (?<name>...)", token.start, token.end
                )
            return ParseCmd(source, regex, named)
        raise self.error()

    # expressions, lowest precedence first
    def expression(self) -> Any:
        return self.or_expr()

    def or_expr(self) -> Any:
        left = self.and_expr()
        while self.at_word("or") or self.at("op", "||"):
            self.advance()
            left = Binary("or", left, self.and_expr())
        return left

    def and_expr(self) -> Any:
        left = self.not_expr()
        while self.at_word("and") or self.at("op", "&&"):
            self.advance()
            left = Binary("and", left, self.not_expr())
        return left

    def not_expr(self) -> Any:
        if self.at_word("not") or self.at("op", "!"):
            self.advance()
            return Unary("not", self.not_expr())
        return self.comparison()

    def comparison(self) -> Any:
        left = self.additive()
        negate = False
        if self.at_word("not") and self.tokens[self.index + 1].text.lower() in ("like", "in"):
            self.advance()
            negate = True
        token = self.token
        if token.kind == "op" and token.text in _COMPARISONS:
            self.advance()
            op = "=" if token.text == "==" else token.text
            return Binary(op, left, self.additive())
        if token.kind == "op" and token.text == "=~":
            self.advance()
            return Binary("like", left, self.pattern_operand(), negate)
        if token.kind == "ident" and token.text.lower() == "like":
            self.advance()
            return Binary("like", left, self.pattern_operand(), negate)
        if token.kind == "ident" and token.text.lower() == "in":
            self.advance()
            return Binary("in", left, self.list_expr(), negate)
        if negate:
            raise self.error()
        return left

    def pattern_operand(self) -> Any:
        token = self.token
        if token.kind == "regex":
            self.advance()
            return Regex(_compile_regex(token))
        if token.kind == "string":
            self.advance()
            return Literal(_unquote(token.text))
        raise self.error()

    def list_expr(self) -> ListExpr:
        self.expect("op", "[")
        items = []
        if not self.at("op", "]"):
            for _ in self.commas():
                items.append(self.additive())
        self.expect("op", "]")
        return ListExpr(tuple(items))

    def additive(self) -> Any:
        left = self.multiplicative()
        while self.at("op", "+") or self.at("op", "-"):
            op = self.advance().text
            left = Binary(op, left, self.multiplicative())
        return left

    def multiplicative(self) -> Any:
        left = self.power()
        while self.at("op", "*") or self.at("op", "/") or self.at("op", "%"):
            op = self.advance().text
            left = Binary(op, left, self.power())
        return left

    def power(self) -> Any:
        base = self.unary()
        if self.at("op", "^"):
            self.advance()
            return Binary("^", base, self.power())
        return base

    def unary(self) -> Any:
        if self.at("op", "-"):
            self.advance()
            return Unary("-", self.unary())
        return self.expression_operand()

    def expression_operand(self) -> Any:
        token = self.token
        if token.kind == "number":
            self.advance()
            number = float(token.text)
            return Literal(int(number) if number.is_integer() and "." not in token.text else number)
        if token.kind == "duration":
            self.advance()
            return Literal(Duration(token.text))
        if token.kind == "string":
            self.advance()
            return Literal(_unquote(token.text))
        if token.kind == "op" and token.text == "(":
            self.advance()
            inner = self.expression()
            self.expect("op", ")")
            return inner
        if token.kind == "op" and token.text == "*" and self.tokens[self.index + 1].text == ")":
            self.advance()
            return Literal("*")
        if token.kind == "ident":
            word = token.text.lower()
            if word in _KEYWORDS:
                raise self.error()
            self.advance()
            if self.at("op", "("):
                self.advance()
                args: list[Any] = []
                if not self.at("op", ")"):
                    for _ in self.commas():
                        args.append(self.expression())
                self.expect("op", ")")
                return Call(word, tuple(args))
            if word in ("true", "false"):
                return Literal(word == "true")
            if word == "null":
                return Literal(None)
            return Field(token.text)
        raise self.error()


@dataclass(frozen=True)
class Duration:
    """A time span literal of `bin()` and `datefloor()`: 5m, 1h, 30s, 100ms."""

    text: str

    @property
    def milliseconds(self) -> int:
        match = re.fullmatch(r"(\d+(?:\.\d+)?)([a-z]+?)s?", self.text)
        if match is None:
            raise ValueError(self.text)
        value, unit = float(match.group(1)), match.group(2)
        factor = {
            "ms": 1,
            "s": 1000,
            "sec": 1000,
            "second": 1000,
            "m": 60_000,
            "min": 60_000,
            "minute": 60_000,
            "h": 3_600_000,
            "hr": 3_600_000,
            "hour": 3_600_000,
            "d": 86_400_000,
            "day": 86_400_000,
            "w": 604_800_000,
            "week": 604_800_000,
            "mo": 2_592_000_000,
            "month": 2_592_000_000,
            "q": 7_776_000_000,
            "y": 31_536_000_000,
        }.get(unit)
        if factor is None:
            raise ValueError(self.text)
        return int(value * factor)


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def _compile_regex(token: Token) -> re.Pattern[str]:
    match = _REGEX.fullmatch(token.text)
    assert match is not None
    pattern, flags = match.group(1), match.group(2)
    pattern = re.sub(r"\(\?<([A-Za-z_][A-Za-z0-9_]*)>", r"(?P<\1>", pattern)  # Java/RE2 named groups
    pattern = pattern.replace("\\/", "/")
    try:
        return re.compile(pattern, re.IGNORECASE if "i" in flags else 0)
    except re.error as exc:
        raise QuerySyntaxError(f"invalid regular expression {token.text}: {exc}", token.start, token.end) from None


def parse(text: str) -> Query:
    """Parse an Insights query; raises QuerySyntaxError."""
    return _Parser(text).query()
