"""What an EventBridge rule target receives: the event, `Input`, `InputPath`, or an `InputTransformer`. Pure code.

The rules of "Amazon EventBridge input transformation": `InputPathsMap` binds variables to JSON paths of the event
(a path that matches nothing binds nothing); `InputTemplate` is text with `<variable>` placeholders. Inside a JSON
string a placeholder is replaced by the raw value ("EventBridge doesn't escape values extracted by Input Path");
outside strings by the value's JSON. Predefined variables: `aws.events.rule-arn`, `aws.events.rule-name`,
`aws.events.event.ingestion-time`, `aws.events.event` (the event without `detail`) and `aws.events.event.json`.
JSON paths are evaluated with jsonpath-ng (a dependency of moto), not by hand.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from jsonpath_ng.ext import parse as jsonpath

_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")


class TransformError(ValueError):
    """An InputPath or InputPathsMap entry that is not a JSON path."""


def find_path(path: str, event: Any) -> tuple[bool, Any]:
    try:
        matches = jsonpath(path).find(event)
    except Exception as exc:  # jsonpath-ng raises several parser exception types
        raise TransformError(f"invalid JSON path {path!r}: {exc}") from None
    if not matches:
        return False, None
    return True, matches[0].value


def _render(template: str, values: Mapping[str, Any]) -> str:
    out: list[str] = []
    in_string = False
    escaped = False
    index = 0
    while index < len(template):
        char = template[index]
        if char == "<":
            match = _PLACEHOLDER.match(template, index)
            if match is not None and match.group(1) in values:
                value = values[match.group(1)]
                if in_string:
                    out.append(value if isinstance(value, str) else json.dumps(value))
                else:
                    out.append(json.dumps(value))
                index = match.end()
                continue
            if match is not None and not in_string:
                out.append("null")  # a variable whose path matched nothing
                index = match.end()
                continue
            if match is not None:
                index = match.end()
                continue
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        out.append(char)
        index += 1
    return "".join(out)


def target_input(target: Mapping[str, Any], event: Mapping[str, Any], rule_arn: str, rule_name: str) -> str:
    """The text EventBridge sends to `target` (a PutTargets target) for `event` (the full event object)."""
    if target.get("Input") is not None:
        return str(target["Input"])
    if target.get("InputPath"):
        found, value = find_path(str(target["InputPath"]), event)
        return json.dumps(value if found else None)
    transformer = target.get("InputTransformer")
    if not transformer:
        return json.dumps(event)
    values: dict[str, Any] = {}
    for name, path in (transformer.get("InputPathsMap") or {}).items():
        found, value = find_path(str(path), event)
        if found:
            values[name] = value
    values.update(
        {
            "aws.events.rule-arn": rule_arn,
            "aws.events.rule-name": rule_name,
            "aws.events.event.ingestion-time": event.get("time"),
            "aws.events.event": {k: v for k, v in event.items() if k != "detail"},
            "aws.events.event.json": dict(event),
        }
    )
    return _render(str(transformer.get("InputTemplate", "")), values)
