"""What moto's Step Functions interpreter cannot execute, found when a state machine is created, not when it runs.

A definition AWS accepts (see validation.py) can still hold constructs moto's interpreter does not run. Measured with
moto 5.2.5 (tests/unit/stepfunctions/test_executable.py runs each one through moto):

- JSONata (`QueryLanguage: JSONata`, `{% ... %}` expressions): moto evaluates JSONata through a JVM bridge that is not
  installed; every execution that reaches such a state fails with `States.Runtime` and
  "TypeError('NoneType' object is not callable)".
- Reading a workflow variable in JSONPath (`"x.$": "$name"`): the same failure.
- Fields and values moto's ASL grammar does not have (e.g. a Distributed Map's `ItemBatcher`, `ExecutionType:
  EXPRESS` child workflows, `ResultWriter.WriterConfig`): moto refuses the definition with an ASLParserException and an
  empty error code. These are found by running moto's own parser on the definition, so the list follows moto.

Such a definition is refused up front, naming each state and construct (CreateStateMachine answers 501
`NotImplemented`; `lambdalab up` reports the state machine as not created), rather than failing later with an
unrelated error.

Two gaps are closed instead, because the local run loses nothing by it: moto's grammar wants a float
`ToleratedFailurePercentage` (AWS takes any number, `10` included) and has no `ExecutionType: EXPRESS` (moto runs a
Distributed Map's items as in-process iterations whatever the child type), so the definition moto receives says `10.0`
and `STANDARD`. And what moto accepts but ignores (`ToleratedFailureCountPath`, `ToleratedFailurePercentagePath`) is
a warning: the machine runs, without that setting.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from lambdalab.stepfunctions.validation import VARIABLE_REFERENCE, StatesError, iter_states

LOG = logging.getLogger(__name__)

_PATH_FIELDS = ("InputPath", "OutputPath", "ResultPath", "ItemsPath", "Variable", "ErrorPath", "CausePath")
_QUOTED = re.compile(r"'(?:\\.|[^'\\])*'")
_VARIABLE_IN_EXPRESSION = re.compile(r"(?<![$\w.\]])\$([A-Za-z_][A-Za-z0-9_]*)")
_PARSE_ERROR = re.compile(r"^line (?P<line>\d+):(?P<column>\d+)(?:, at (?P<token>.*?))?(?:, (?P<message>.*))?$", re.S)


@dataclass(frozen=True)
class LocalLimit:
    """A construct the local interpreter cannot run (`runs` False) or runs differently from AWS, and where it is."""

    location: str
    construct: str
    runs: bool = False

    def text(self) -> str:
        return f"{self.location}: {self.construct}"


def moto_version() -> str:
    try:
        return metadata.version("moto")
    except metadata.PackageNotFoundError:  # pragma: no cover - moto is a dependency
        return "unknown"


def _variables_read(value: Any, location: str) -> list[LocalLimit]:
    """Workflow variables read by JSONPath expressions inside a state: `"x.$": "$name"`, `States.Format('{}', $v)`."""
    found: list[LocalLimit] = []
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{location}/{key}"
            if isinstance(item, str) and (str(key).endswith(".$") or key in _PATH_FIELDS):
                names = {item.split(".", 1)[0].split("[", 1)[0]} if VARIABLE_REFERENCE.match(item) else set()
                if item.startswith("States."):
                    names |= {f"${n}" for n in _VARIABLE_IN_EXPRESSION.findall(_QUOTED.sub("''", item))}
                found.extend(LocalLimit(child, f"reads the workflow variable {name}") for name in sorted(names))
            elif isinstance(item, (dict, list)) and key not in ("States", "Branches", "ItemProcessor", "Iterator"):
                found.extend(_variables_read(item, child))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_variables_read(item, f"{location}[{index}]"))
    return found


def _render(value: Any, pointer: str, lines: list[str], where: list[str]) -> None:
    """JSON with every key on a line of its own; `where[i]` is the pointer of what line i+1 holds."""
    if isinstance(value, dict):
        lines.append("{")
        where.append(pointer)
        for index, (key, item) in enumerate(value.items()):
            child = f"{pointer}/{key}" if pointer != "/" else f"/{key}"
            lines.append(json.dumps(key) + ":")
            where.append(child)
            _render(item, child, lines, where)
            if index < len(value) - 1:
                lines.append(",")
                where.append(pointer)
        lines.append("}")
        where.append(pointer)
    elif isinstance(value, list):
        lines.append("[")
        where.append(pointer)
        for index, item in enumerate(value):
            _render(item, f"{pointer}[{index}]", lines, where)
            if index < len(value) - 1:
                lines.append(",")
                where.append(pointer)
        lines.append("]")
        where.append(pointer)
    else:
        lines.append(json.dumps(value))
        where.append(pointer)


class _IgnoredFields(logging.Handler):
    """moto's preprocessor logs `<Field> declarations currently have no effect on the program evaluation.` for what
    it parses but does not run; collect those fields (from this thread's parse only)."""

    PATTERN = re.compile(r"^(?P<field>\w+) declarations currently have no effect")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.fields: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = self.PATTERN.match(record.getMessage())
        if match and record.thread == self.thread and match["field"] not in self.fields:
            self.fields.append(match["field"])


def _grammar_limits(definition: dict[str, Any]) -> list[LocalLimit]:
    """Run moto's ASL parser: its first complaint, placed in the definition, and the fields it parses but ignores."""
    from moto.stepfunctions.parser.asl.parse import preprocessor
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException

    lines: list[str] = []
    where: list[str] = []
    _render(definition, "/", lines, where)
    ignored = _IgnoredFields()
    moto_log = logging.getLogger(preprocessor.__name__)
    moto_log.addHandler(ignored)
    try:
        AmazonStateLanguageParser.parse("\n".join(lines))
    except ASLParserException as exc:
        first = _PARSE_ERROR.match(exc.errors[0]) if exc.errors else None
        if first is None:
            return [LocalLimit("/", f"moto's parser refuses the definition: {exc}")]
        location = where[int(first["line"]) - 1] if int(first["line"]) <= len(where) else "/"
        token = (first["token"] or "").strip()
        field = location.rsplit("/", 1)[-1]
        construct = (
            f"the field {field} (not in moto's ASL grammar)"
            if token == json.dumps(field)
            else f"{field} {token} (not in moto's ASL grammar)"
        )
        return [LocalLimit(location, construct)]
    except Exception as exc:  # moto's preprocessor raises plain errors for what it cannot build
        return [LocalLimit("/", f"moto's interpreter cannot build it: {type(exc).__name__}: {exc}")]
    finally:
        moto_log.removeHandler(ignored)
    return [
        LocalLimit(f"{state.location}/{field}", f"{field} is accepted but has no effect in moto", runs=True)
        for field in ignored.fields
        for state in iter_states(definition)
        if field in state.body
    ]


def adapt_for_moto(definition: dict[str, Any]) -> tuple[dict[str, Any], list[LocalLimit]]:
    """The definition as moto should get it (see the module docstring), and what the adaptation changes locally."""
    adapted = json.loads(json.dumps(definition))
    notes: list[LocalLimit] = []
    for state in iter_states(adapted):
        body = state.body
        percentage = body.get("ToleratedFailurePercentage")
        if isinstance(percentage, int) and not isinstance(percentage, bool):
            body["ToleratedFailurePercentage"] = float(percentage)
        config = (
            (body.get("ItemProcessor") or {}).get("ProcessorConfig")
            if isinstance(body.get("ItemProcessor"), dict)
            else None
        )
        if isinstance(config, dict) and config.get("ExecutionType") == "EXPRESS":
            config["ExecutionType"] = "STANDARD"
            notes.append(
                LocalLimit(
                    f"{state.location}/ItemProcessor/ProcessorConfig/ExecutionType",
                    "EXPRESS child workflows run as in-process iterations, as every Distributed Map does locally",
                    runs=True,
                )
            )
    return adapted, notes


def local_limits(definition: dict[str, Any]) -> list[LocalLimit]:
    """Every construct of an (AWS-valid) definition that the local interpreter cannot run (`runs` False) or runs
    differently (`runs` True); [] when it runs as on AWS."""
    definition, found = adapt_for_moto(definition)
    if definition.get("QueryLanguage") == "JSONata":
        found.append(LocalLimit("/QueryLanguage", "JSONata (QueryLanguage for the whole state machine)"))
    for state in iter_states(definition):
        if state.body.get("QueryLanguage") == "JSONata" and definition.get("QueryLanguage") != "JSONata":
            found.append(LocalLimit(f"{state.location}/QueryLanguage", "JSONata"))
        if state.query_language == "JSONPath":
            found.extend(_variables_read(state.body, state.location))
    if not any(not limit.runs for limit in found):
        found.extend(_grammar_limits(definition))
    return found


def unsupported_message(limits: list[LocalLimit]) -> str:
    blocking = [limit for limit in limits if not limit.runs]
    return (
        f"the local cloud cannot run this definition: moto {moto_version()}'s Step Functions interpreter does not "
        f"execute {'; '.join(limit.text() for limit in blocking)} (docs/STEPFUNCTIONS.md lists what runs locally)"
    )


def difference_message(limits: list[LocalLimit]) -> str:
    differing = [limit for limit in limits if limit.runs]
    return "runs locally with differences from AWS: " + "; ".join(limit.text() for limit in differing)


def prepare_for_moto(definition: str) -> tuple[str, list[LocalLimit]]:
    """The definition text to give moto, and what runs differently; raises 501 NotImplemented naming each construct
    the local interpreter cannot run (a local limit, not an AWS error: AWS accepts the definition). Call it after
    validation.check_definition."""
    parsed = json.loads(definition)
    limits = local_limits(parsed)
    if any(not limit.runs for limit in limits):
        raise StatesError("NotImplemented", unsupported_message(limits), status=501)
    adapted, _ = adapt_for_moto(parsed)
    changed = json.dumps(adapted) != json.dumps(parsed)  # not ==: 10.0 == 10, but moto's grammar tells them apart
    return (json.dumps(adapted) if changed else definition), limits
