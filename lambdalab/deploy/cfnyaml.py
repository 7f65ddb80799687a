"""Read a template's text as CloudFormation reads it: JSON (ECMA-404) or YAML 1.1 with the short-form tags.

CloudFormation "supports the YAML Version 1.1 specification with a few exceptions": no `binary`, `omap`, `pairs`,
`set` or `timestamp` tags, no aliases, no hash merges [CloudFormation User Guide, template formats]. So:

- plain scalars resolve as YAML 1.1 does (`yes`/`no`/`on`/`off` are booleans, `0777` is octal 511, `0x1F` is 31,
  `1_000` is 1000, `1e3` — no dot — is the string "1e3"), which is what PyYAML's resolver implements;
- a timestamp-looking scalar stays the text it is written as: `Version: 2012-10-17` is the string "2012-10-17";
- an explicit `!!binary`, `!!omap`, `!!pairs`, `!!set` or `!!timestamp` is refused, naming the line;
- aliases and merge keys are resolved here, as `sam deploy` / `aws cloudformation package` resolve them before
  CloudFormation sees the template (each alias becomes its own copy, as after their YAML round trip);
- a duplicate key is kept last-wins with a warning: CloudFormation documents the behaviour as undefined.

Written here rather than taken from a library: samtranslator's and SAM CLI's `yaml_parse` register their tag
constructors on PyYAML's global SafeLoader (SAM CLI also rewires its timestamp constructor globally), and cfn-lint's
decoder turns timestamps into dates and costs 0.8 s to import; this loader is a private subclass and changes nothing
global.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

LOG = logging.getLogger(__name__)

# An alias-heavy template can expand exponentially ("billion laughs"); CloudFormation's own limit on a template body
# is 1 MB, so anything beyond this many nodes once aliases are expanded is not a template.
MAX_EXPANDED_NODES = 1_000_000

# Short forms whose long form has no "Fn::" prefix. [Intrinsic function reference; Condition functions]
_UNPREFIXED_TAGS = frozenset({"Ref", "Condition"})
_REFUSED_TAGS = ("binary", "omap", "pairs", "set", "timestamp")
_YAML_TAG = "tag:yaml.org,2002:"


class TemplateFormatError(Exception):
    """The text is not a template CloudFormation would parse; `line` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        self.message = message
        self.line = line
        self.column = column
        super().__init__(message)


@dataclass
class ParsedText:
    document: Any
    warnings: list[str] = field(default_factory=list)
    format: str = "YAML"  # or "JSON"


class _Loader(yaml.SafeLoader):
    """PyYAML's YAML 1.1 SafeLoader with CloudFormation's differences, registered on this class only."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicate_keys: list[tuple[str, int]] = []

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        assert isinstance(node, MappingNode)
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _YAML_TAG + "merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key is None:
                raise ConstructorError(
                    None, None, f"a null key ({key_node.value!r}) is not allowed", key_node.start_mark
                )
            if isinstance(key, (list, dict)):
                raise ConstructorError(None, None, "a key must be a scalar", key_node.start_mark)
            text = _key_text(key)
            if text in seen:
                self.duplicate_keys.append((text, line))
            seen[text] = line
        mapping = super().construct_mapping(node, deep=deep)
        return {_key_text(key): value for key, value in mapping.items()}


def _key_text(key: Any) -> str:
    """JSON keys are strings: a YAML 1.1 key `80` or `true` becomes "80" / "true", as in CloudFormation's JSON."""
    if isinstance(key, bool):
        return "true" if key else "false"
    return key if isinstance(key, str) else str(key)


def _timestamp_as_text(loader: _Loader, node: Node) -> str:
    assert isinstance(node, ScalarNode)
    return str(loader.construct_scalar(node))


def _refused_tag(name: str) -> Any:
    def refuse(loader: _Loader, node: Node) -> Any:
        raise ConstructorError(None, None, f"CloudFormation does not support the YAML tag !!{name}", node.start_mark)

    return refuse


def _short_form(loader: _Loader, suffix: str, node: Node) -> dict[str, Any]:
    """`!Sub x` → {"Fn::Sub": "x"}; `!GetAtt A.B` → {"Fn::GetAtt": ["A", "B"]} (split at the first dot)."""
    name = suffix if suffix in _UNPREFIXED_TAGS else f"Fn::{suffix}"
    value: Any
    if isinstance(node, ScalarNode):
        text = str(loader.construct_scalar(node))
        value = text.split(".", 1) if suffix == "GetAtt" else text
    elif isinstance(node, SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


for _tag in _REFUSED_TAGS:
    _Loader.add_constructor(_YAML_TAG + _tag, _refused_tag(_tag))
# Implicit timestamps (the resolver tags `2012-10-17` as one) stay text; only an explicit !!timestamp is refused.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _YAML_TAG + "timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_multi_constructor("!", _short_form)


def _unshare(value: Any, budget: list[int]) -> Any:
    """A copy in which no two places share an object (an alias is a copy of its anchor, not the same dict)."""
    budget[0] -= 1
    if budget[0] < 0:
        raise TemplateFormatError(
            f"the template expands to more than {MAX_EXPANDED_NODES:,} values once YAML aliases are resolved"
        )
    if isinstance(value, dict):
        return {key: _unshare(item, budget) for key, item in value.items()}
    if isinstance(value, list):
        return [_unshare(item, budget) for item in value]
    return value


def _parse_yaml(text: str) -> ParsedText:
    loader = _Loader(text)
    try:
        document = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "syntax error"
        if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
            problem += f" ({exc.context} on line {exc.context_mark.line + 1})"
        raise TemplateFormatError(
            f"YAML not well-formed: {problem}",
            mark.line + 1 if mark is not None else None,
            mark.column + 1 if mark is not None else None,
        ) from None
    except yaml.YAMLError as exc:
        raise TemplateFormatError(f"YAML not well-formed: {exc}") from None
    finally:
        loader.dispose()
    document = _unshare(document, [MAX_EXPANDED_NODES])
    warnings = [
        f"line {line}: duplicate key {key!r}; CloudFormation's behaviour is undefined, the last one is used"
        for key, line in loader.duplicate_keys
    ]
    return ParsedText(document, warnings, "YAML")


def _parse_json(text: str) -> ParsedText:
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                duplicates.append(key)
            result[key] = value
        return result

    document = json.loads(text, object_pairs_hook=pairs)
    warnings = [
        f"duplicate key {key!r}; CloudFormation's behaviour is undefined, the last one is used" for key in duplicates
    ]
    return ParsedText(document, warnings, "JSON")


def parse_text(text: str) -> ParsedText:
    """JSON when the text is a JSON object (as `sam` tries first), else YAML. A text that starts with `{` but is
    neither is reported with the JSON parser's position, which is the one that helps."""
    if text.lstrip().startswith("{"):
        try:
            return _parse_json(text)
        except json.JSONDecodeError as json_error:
            try:
                return _parse_yaml(text)  # a YAML flow mapping is not JSON but is still a template
            except TemplateFormatError:
                raise TemplateFormatError(
                    f"JSON not well-formed: {json_error.msg}", json_error.lineno, json_error.colno
                ) from None
    return _parse_yaml(text)
