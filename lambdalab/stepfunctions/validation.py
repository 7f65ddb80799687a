"""What Step Functions checks before it accepts a definition or an execution name, with AWS-shaped errors."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

LOG = logging.getLogger(__name__)

# StartExecution `name`: 1-80 characters; no white space, brackets, wildcards, the listed special characters,
# control characters, surrogates or non-characters. [StartExecution API reference]
NAME_MAX_LENGTH = 80
_FORBIDDEN_NAME = re.compile(r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:/\u0000-\u001f\u007f-\u009f\ufffe\uffff\ud800-\udfff]")
# CreateStateMachine `name`: 1-80 characters, the same forbidden characters. [CreateStateMachine API reference]
STATE_MACHINE_NAME_MAX_LENGTH = 80


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


def check_execution_name(name: Any) -> None:
    """Raise InvalidName for a name AWS would reject; None (no name) is valid: the service then generates one."""
    if name is None:
        return
    if not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX_LENGTH or _FORBIDDEN_NAME.search(name):
        raise StatesError("InvalidName", f"Invalid Name: '{name}'")


def check_state_machine_name(name: Any) -> None:
    if not isinstance(name, str) or not 1 <= len(name) <= STATE_MACHINE_NAME_MAX_LENGTH or _FORBIDDEN_NAME.search(name):
        raise StatesError("InvalidName", f"Invalid Name: '{name}'")


def definition_problems(definition: Any) -> list[str]:
    """statelint's findings for an Amazon States Language definition given as JSON text; [] when it is valid.

    The text is parsed here and statelint gets the parsed object: statelint reads a string that names an existing
    file as that file, which a request body must never be able to do."""
    if not isinstance(definition, str) or not definition.strip():
        return ["the definition must be a non-empty JSON string"]
    try:
        parsed = json.loads(definition)
    except json.JSONDecodeError as exc:
        return [f"the definition is not valid JSON: {exc}"]
    if not isinstance(parsed, dict):
        return [f"the definition must be a JSON object, not {type(parsed).__name__}"]
    from statelint.linter import Linter  # imported lazily: it builds its field tables at import

    return list(Linter.validate(parsed))


def check_definition(definition: Any) -> None:
    """Raise InvalidDefinition, naming every problem statelint found, the way CreateStateMachine rejects one."""
    problems = definition_problems(definition)
    if problems:
        LOG.debug("rejected a definition: %s", problems)
        joined = "; ".join(problems)
        raise StatesError("InvalidDefinition", f"Invalid State Machine Definition: '{joined}'")
