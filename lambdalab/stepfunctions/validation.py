"""What Step Functions checks before it accepts a definition or an execution name, with AWS-shaped errors.

Definitions are checked by statelint (structure, fields and their types, transitions, reachability, a terminal
state), and each finding is reported as AWS reports it: AWS's code (`SCHEMA_VALIDATION_FAILED`,
`MISSING_TRANSITION_TARGET`, `MISSING_END_STATE`, `DUPLICATE_STATE_NAME`, `INVALID_JSON_DESCRIPTION`), AWS's location
(`/States/A/Retry[0]/BackoffRate`) and, where AWS's wording is known from recorded responses, AWS's message.
statelint is stricter than AWS in a few places; each such finding is dropped here with the evidence that AWS accepts
the construct (`_ACCEPTED_BY_AWS`), so the local cloud is never stricter than AWS. A few rules AWS applies that
statelint does not know are checked here (`_aws_rules`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

LOG = logging.getLogger(__name__)

# StartExecution `name`: 1-80 characters; no white space, brackets, wildcards, the listed special characters,
# control characters, surrogates or non-characters. [StartExecution API reference]
NAME_MAX_LENGTH = 80
_FORBIDDEN_NAME = re.compile(r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:/\u0000-\u001f\u007f-\u009f\ufffe\uffff\ud800-\udfff]")
# CreateStateMachine `name`: 1-80 characters, the same forbidden characters. [CreateStateMachine API reference]
STATE_MACHINE_NAME_MAX_LENGTH = 80

SCHEMA = "SCHEMA_VALIDATION_FAILED"
MISSING_TARGET = "MISSING_TRANSITION_TARGET"
MISSING_END = "MISSING_END_STATE"
DUPLICATE_STATE = "DUPLICATE_STATE_NAME"
INVALID_JSON = "INVALID_JSON_DESCRIPTION"

# Fields only one query language allows. [Step Functions: transforming data with JSONata; JSONPath-only fields]
JSONATA_ONLY_FIELDS = frozenset({"Output", "Arguments", "Items", "Condition"})
JSONPATH_ONLY_FIELDS = frozenset({
    "InputPath", "OutputPath", "Parameters", "ResultPath", "ResultSelector", "ItemsPath", "MaxConcurrencyPath",
    "TimeoutSecondsPath", "HeartbeatSecondsPath", "SecondsPath", "TimestampPath", "ErrorPath", "CausePath",
    "ToleratedFailureCountPath", "ToleratedFailurePercentagePath", "Variable",
})  # fmt: skip
_JSONATA = re.compile(r"^\{%.*%\}$", re.S)
# A JSONPath-mode reference to a workflow variable: `$name` or `$name.field` (not `$`, `$.x`, `$$` or `$[0]`).
VARIABLE_REFERENCE = re.compile(r"^\$[A-Za-z_][A-Za-z0-9_]*(?:[.\[].*)?$", re.S)


@dataclass
class StatesError(Exception):
    """A Step Functions API error: `code` becomes `__type`, `message` the message, HTTP 400."""

    code: str
    message: str
    status: int = 400

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def body(self) -> dict[str, str]:
        return {"__type": self.code, "message": self.message}


@dataclass(frozen=True)
class Diagnostic:
    """One finding, as ValidateStateMachineDefinition lists it and CreateStateMachine words it."""

    code: str
    message: str
    location: str | None = None  # a JSON-pointer-like path, e.g. /States/A/Retry[0]/BackoffRate
    severity: str = "ERROR"

    def text(self) -> str:
        """`CODE: message at /location`; AWS writes `at null` when there is no location."""
        return f"{self.code}: {self.message} at {self.location if self.location is not None else 'null'}"

    def api(self) -> dict[str, str]:
        out = {"severity": self.severity, "code": self.code, "message": self.message}
        if self.location is not None:
            out["location"] = self.location
        return out


def check_execution_name(name: Any) -> None:
    """Raise InvalidName for a name AWS would reject; None (no name) is valid: the service then generates one."""
    if name is None:
        return
    if not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX_LENGTH or _FORBIDDEN_NAME.search(name):
        raise StatesError("InvalidName", f"Invalid Name: '{name}'")


def check_state_machine_name(name: Any) -> None:
    if not isinstance(name, str) or not 1 <= len(name) <= STATE_MACHINE_NAME_MAX_LENGTH or _FORBIDDEN_NAME.search(name):
        raise StatesError("InvalidName", f"Invalid Name: '{name}'")


# --- walking a definition ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StateRef:
    """A state wherever it sits (top level, a Parallel branch, a Map's processor), with its effective language."""

    name: str
    body: dict[str, Any]
    location: str  # /States/A or /States/M/ItemProcessor/States/B
    query_language: str  # "JSONPath" or "JSONata"


def iter_states(definition: dict[str, Any]) -> Iterator[StateRef]:
    """Every state of a definition, depth first. A state's language is its own QueryLanguage, else the machine's:
    AWS propagates the top-level language into branches and processors (which cannot declare one)."""
    top_language = "JSONata" if definition.get("QueryLanguage") == "JSONata" else "JSONPath"

    def walk(container: Any, prefix: str) -> Iterator[StateRef]:
        states = container.get("States") if isinstance(container, dict) else None
        if not isinstance(states, dict):
            return
        for name, body in states.items():
            if not isinstance(body, dict):
                continue
            declared = body.get("QueryLanguage")
            language = "JSONata" if declared == "JSONata" else ("JSONPath" if declared == "JSONPath" else top_language)
            location = f"{prefix}/States/{name}"
            yield StateRef(str(name), body, location, language)
            for index, branch in enumerate(
                body.get("Branches") or [] if isinstance(body.get("Branches"), list) else []
            ):
                yield from walk(branch, f"{location}/Branches[{index}]")
            for key in ("ItemProcessor", "Iterator"):
                if isinstance(body.get(key), dict):
                    yield from walk(body[key], f"{location}/{key}")

    yield from walk(definition, "")


# --- AWS rules statelint does not know ------------------------------------------------------------------------


def _aws_rules(definition: dict[str, Any], machine_type: str) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    top_jsonata = definition.get("QueryLanguage") == "JSONata"
    for state in iter_states(definition):
        body = state.body
        if top_jsonata and body.get("QueryLanguage") == "JSONPath":
            # [AWS ValidateStateMachineDefinition, recorded by LocalStack's snapshot tests]
            found.append(
                Diagnostic(SCHEMA, "'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine",
                           state.location)
            )  # fmt: skip
        resource = body.get("Resource")
        if machine_type == "EXPRESS" and isinstance(resource, str):
            for suffix in (".waitForTaskToken", ".sync"):
                if suffix in resource:
                    # AWS's message ends with a space. [recorded AWS response, LocalStack snapshot tests]
                    found.append(
                        Diagnostic(SCHEMA, f"Express state machine does not support '{suffix}' service integration ",
                                   f"{state.location}/Resource")
                    )  # fmt: skip
        percentage = body.get("ToleratedFailurePercentage")
        if isinstance(percentage, (int, float)) and not isinstance(percentage, bool):
            # A number, 0-100: AWS words the bounds as floats. [AWS responses measured by the floci project]
            if percentage < 0:
                found.append(Diagnostic(SCHEMA, "Minimum value is 0.0", f"{state.location}/ToleratedFailurePercentage"))
            elif percentage > 100:
                found.append(
                    Diagnostic(SCHEMA, "Maximum value is 100.0", f"{state.location}/ToleratedFailurePercentage")
                )
        if state.query_language == "JSONPath":
            for field in ("InputPath", "OutputPath", "ResultPath"):
                value = body.get(field)
                if isinstance(value, str) and not value.startswith("$"):
                    # [AWS's wording, recorded in cfn-lint issue 4078]
                    found.append(Diagnostic(SCHEMA, "Value must be a valid JSONPath.", f"{state.location}/{field}"))
        label = body.get("Label")
        if "Label" in body and (not isinstance(label, str) or len(label) > 40):
            found.append(
                Diagnostic(SCHEMA, "Label must be a string of at most 40 characters", f"{state.location}/Label")
            )
    return found


# --- statelint, corrected and reworded ----------------------------------------------------------------------------


def _lint_view(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition as statelint should see it: an integer BackoffRate as the float it equals. AWS accepts
    `"BackoffRate": 2` (issue 12: the lab's source stack deployed with it; AWS's own examples write it); statelint
    wants a Float and would skip its range check (at least 1.0) on an integer."""
    view = json.loads(json.dumps(definition))
    for state in iter_states(view):
        for retrier in state.body.get("Retry") or [] if isinstance(state.body.get("Retry"), list) else []:
            rate = retrier.get("BackoffRate") if isinstance(retrier, dict) else None
            if isinstance(rate, int) and not isinstance(rate, bool):
                retrier["BackoffRate"] = float(rate)
    return view


# Findings where statelint is stricter than AWS, each dropped, with the evidence that AWS accepts it.
_ACCEPTED_BY_AWS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], bool], str]] = [
    (  # A number 0-100; AWS words its bounds "0.0" and "100.0", so fractions are accepted (checked in _aws_rules).
        re.compile(r"^(?P<path>.+)\.ToleratedFailurePercentage is (?P<value>\S+) but should be an Integer$"),
        lambda m: re.fullmatch(r"-?\d+(\.\d+)?", m["value"]) is not None,
        "a fractional ToleratedFailurePercentage",
    ),
    (  # In JSONata states numeric fields may be JSONata expressions. [Step Functions: JSONata]
        re.compile(r'^(?P<path>.+) is "\{%.*%\}" but should be .+$', re.S),
        lambda m: True,
        "a JSONata expression in a numeric field",
    ),
    (  # Workflow variables (Nov 2024) in any state but Succeed/Fail, in Choice rules and Catchers; Map Label;
        # ItemReader.ReaderConfig InputType/CSVHeaderLocation/CSVDelimiter/ManifestType; ResultWriter.WriterConfig.
        # [Step Functions: variables; Distributed Map ItemReader, ResultWriter and Label reference]
        re.compile(
            r'^Field "(?P<field>Assign|Label|WriterConfig|InputType|CSVHeaderLocation|CSVDelimiter|ManifestType)" '
            r"not allowed in (?P<path>.+)$"
        ),
        lambda m: True,
        "a field statelint 3.1 does not know",
    ),
]
_VARIABLE_IN_TEMPLATE = re.compile(
    r'^Field "(?P<field>.+)" of (?P<template>\w+) at "(?P<path>.+)" is not a JSONPath or intrinsic function expression$'
)


def _pointer(statelint_path: str, definition: Any) -> str:
    """`State Machine.States.My.State.Retry[0]` → `/States/My.State/Retry[0]`, matching keys against the definition
    (a state name may contain dots)."""
    text = statelint_path.removeprefix("State Machine")
    parts: list[str] = []
    node: Any = definition
    while text:
        if text.startswith("["):
            index = text[1 : text.index("]")]
            text = text[len(index) + 2 :]
            if parts:
                parts[-1] += f"[{index}]"
            else:
                parts.append(f"[{index}]")
            node = node[int(index)] if isinstance(node, list) and index.isdigit() and int(index) < len(node) else None
            continue
        text = text.removeprefix(".")
        keys = sorted((k for k in node if isinstance(k, str)), key=len, reverse=True) if isinstance(node, dict) else []
        key = next((k for k in keys if text.startswith(k) and text[len(k) : len(k) + 1] in ("", ".", "[")), None)
        if key is None:  # not in the definition (a field statelint names that is missing): take up to the next dot
            key = re.split(r"[.\[]", text, maxsplit=1)[0]
        parts.append(key)
        text = text[len(key) :]
        node = node.get(key) if isinstance(node, dict) else None
    return "/" + "/".join(parts) if parts else "/"


def _value_at(definition: Any, pointer: str) -> Any:
    node = definition
    for part in [p for p in pointer.split("/") if p]:
        match = re.fullmatch(r"(?P<key>.*?)((?:\[\d+\])*)", part)
        key = match["key"] if match else part
        node = node.get(key) if isinstance(node, dict) else None
        for index in re.findall(r"\[(\d+)\]", part[len(key) :]):
            node = node[int(index)] if isinstance(node, list) and int(index) < len(node) else None
    return node


def _state_language(definition: dict[str, Any], pointer: str) -> str:
    for state in iter_states(definition):
        if state.location == pointer:
            return state.query_language
    return "JSONata" if definition.get("QueryLanguage") == "JSONata" else "JSONPath"


def _translate(problem: str, definition: dict[str, Any]) -> Diagnostic | None:
    """One statelint finding as AWS would report it, or None when AWS accepts what statelint rejects."""
    for pattern, accepted, _reason in _ACCEPTED_BY_AWS:
        match = pattern.match(problem)
        if match and accepted(match):
            return None
    variable = _VARIABLE_IN_TEMPLATE.match(problem)
    if variable:
        location = f"{_pointer(variable['path'], definition)}/{variable['template']}"
        value = (_value_at(definition, location) or {}).get(variable["field"])
        if isinstance(value, str) and VARIABLE_REFERENCE.match(value):
            return None  # `"x.$": "$name"` reads a workflow variable [Step Functions: variables]
        # [AWS's wording, recorded in cfn-lint issue 4085]
        return Diagnostic(
            SCHEMA, f"The value for the field '{variable['field']}' must be a valid JSONPath or a valid intrinsic "
            "function call", location
        )  # fmt: skip
    if match := re.match(r'^Field "(?P<field>[^"]+)" not allowed in (?P<path>.+)$', problem):
        location = _pointer(match["path"], definition)
        field, language = match["field"], _state_language(definition, location)
        if language == "JSONPath" and field in JSONATA_ONLY_FIELDS:
            message = (
                f"The QueryLanguage is set to 'JSONPath', but field '{field}' is only supported for the 'JSONata' "
                "QueryLanguage"
            )
        elif language == "JSONata" and field in JSONPATH_ONLY_FIELDS:
            message = (
                f"The QueryLanguage is set to 'JSONata', but field '{field}' is only supported for the 'JSONPath' "
                "QueryLanguage"
            )
        else:
            message = f"Field '{field}' is not supported"  # [AWS responses measured by the floci project]
        return Diagnostic(SCHEMA, message, location)
    if match := re.match(r'^(?P<path>.+) has forbidden field "(?P<field>[^"]+)"$', problem):
        return Diagnostic(SCHEMA, f"Field '{match['field']}' is not supported", _pointer(match["path"], definition))
    if match := re.match(r'^(?P<path>.+) does not have required field "(?P<field>[^"]+)"$', problem):
        return Diagnostic(SCHEMA, f"These fields are required: [{match['field']}]", _pointer(match["path"], definition))
    if match := re.match(r"^(?P<path>.+) may have only one of \[(?P<fields>.+)\]$", problem):
        fields = match["fields"].replace('"', "")
        return Diagnostic(
            SCHEMA, f"There should only be one of the following fields: [{fields}]", _pointer(match["path"], definition)
        )
    if match := re.match(r'^No state found named "(?P<name>.*)", referenced at (?P<path>.+)$', problem):
        # AWS says 'Next' whatever the field (Next, Default, Choices[i].Next, Catch[i].Next).
        return Diagnostic(
            MISSING_TARGET, f"Missing 'Next' target: {match['name']}", _pointer(match["path"], definition)
        )
    if match := re.match(r"^No transition found to state (?P<path>.+)$", problem):
        # statelint names the state under its container (`State Machine.B`), AWS under States (`/States/B`)
        for state in iter_states(definition):
            container, _, name = state.location.rpartition("/States/")
            if match["path"] == "State Machine" + container.replace("/", ".") + "." + name:
                return Diagnostic(MISSING_TARGET, f'State "{name}" is not reachable.', state.location)
        return Diagnostic(MISSING_TARGET, f"{match['path']} is not reachable.")
    if match := re.match(r"^StartAt value (?P<name>.*) not found in States field at (?P<path>.+)$", problem):
        location = _pointer(match["path"], definition)
        return Diagnostic(MISSING_TARGET, f"Missing 'Next' target: {match['name']}", f"{location.rstrip('/')}/StartAt")
    if problem.startswith("No terminal state found in machine at "):
        return Diagnostic(MISSING_END, "Workflow has no terminal state")
    if match := re.match(r'^State "(?P<name>.+)", defined at (?P<path>.+), is also defined at .+$', problem):
        return Diagnostic(DUPLICATE_STATE, f"Duplicate State name: {match['name']}", f"/States/{match['name']}")
    if match := re.match(r"^(?P<path>State Machine(?:\.|\[)\S*?)(?P<rest> (?:is|does|may|:).*)$", problem, re.S):
        # Type, range and pattern findings: AWS's location, statelint's words (AWS's are not on record).
        return Diagnostic(SCHEMA, f"Value{match['rest']}", _pointer(match["path"], definition))
    if match := re.match(r"^(?P<path>State Machine\S*?): (?P<rest>.+)$", problem, re.S):
        return Diagnostic(SCHEMA, match["rest"], _pointer(match["path"], definition))
    return Diagnostic(SCHEMA, problem)


def diagnose(definition: Any, machine_type: str = "STANDARD") -> list[Diagnostic]:
    """Every problem AWS would report for a definition (JSON text); [] when AWS accepts it.

    The text is parsed here and statelint gets the parsed object: statelint reads a string that names an existing
    file as that file, which a request body must never be able to do."""
    if not isinstance(definition, str) or not definition.strip():
        return [Diagnostic(SCHEMA, "Definition must be a valid JSON object")]
    try:
        parsed = json.loads(definition)
    except json.JSONDecodeError as exc:
        return [Diagnostic(INVALID_JSON, f"{exc.msg} (line {exc.lineno}, column {exc.colno})")]
    if not isinstance(parsed, dict):
        return [Diagnostic(SCHEMA, "Definition must be a valid JSON object")]
    from statelint.linter import Linter  # imported lazily: it builds its field tables at import

    found = _aws_rules(parsed, machine_type)
    for problem in Linter.validate(_lint_view(parsed)):
        diagnostic = _translate(problem, parsed)
        if diagnostic is not None and diagnostic not in found:
            found.append(diagnostic)
    return _as_aws_reports(found)


def _as_aws_reports(found: list[Diagnostic]) -> list[Diagnostic]:
    """AWS reports one `These fields are required: [A, B]` per place, and no unreachable states when the machine has
    no StartAt or no terminal state. [AWS responses recorded by LocalStack's snapshot tests and the floci project]"""
    required: dict[str | None, list[str]] = {}
    for diagnostic in found:
        if diagnostic.message.startswith("These fields are required: ["):
            required.setdefault(diagnostic.location, []).append(
                diagnostic.message[len("These fields are required: [") : -1]
            )
    no_walk = any(d.code == MISSING_END for d in found) or (
        "/" in required and any(field in ("StartAt", "States") for field in required["/"])
    )
    merged: list[Diagnostic] = []
    for diagnostic in found:
        if diagnostic.message.startswith("These fields are required: ["):
            if diagnostic.location in required:
                fields = ", ".join(required.pop(diagnostic.location))
                merged.append(Diagnostic(SCHEMA, f"These fields are required: [{fields}]", diagnostic.location))
            continue
        if no_walk and diagnostic.code == MISSING_TARGET and diagnostic.message.endswith("is not reachable."):
            continue
        merged.append(diagnostic)
    return merged


def definition_problems(definition: Any, machine_type: str = "STANDARD") -> list[str]:
    """The findings as `CODE: message at /location` lines; [] when the definition is valid."""
    return [diagnostic.text() for diagnostic in diagnose(definition, machine_type)]


def check_definition(definition: Any, machine_type: str = "STANDARD") -> None:
    """Raise InvalidDefinition as CreateStateMachine does: every finding in one message,
    `Invalid State Machine Definition: 'CODE: message at /location, CODE: ...'`."""
    problems = definition_problems(definition, machine_type)
    if problems:
        LOG.debug("rejected a definition: %s", problems)
        raise StatesError("InvalidDefinition", f"Invalid State Machine Definition: '{', '.join(problems)}'")
