"""Definition lint (statelint) and execution names, with the errors Step Functions returns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lambdalab.stepfunctions.validation import (
    StatesError,
    check_definition,
    check_execution_name,
    check_state_machine_name,
    definition_problems,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("path", sorted((ROOT / "statemachine").glob("*.asl.json")), ids=lambda p: p.name)
def test_the_labs_definitions_are_valid(path: Path) -> None:
    assert definition_problems(path.read_text()) == []


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke"}}},
         'does not have required field "Next"'),
        ({"StartAt": "B", "States": {"A": {"Type": "Pass", "End": True}}}, "StartAt value B not found"),
        ({"StartAt": "A", "States": {"A": {"Type": "Nope", "End": True}}}, "Nope"),
        ({"States": {"A": {"Type": "Pass", "End": True}}}, '"StartAt"'),
    ],
)  # fmt: skip
def test_statelint_findings_become_invalid_definition(definition: dict, expected: str) -> None:
    with pytest.raises(StatesError) as caught:
        check_definition(json.dumps(definition))
    assert caught.value.code == "InvalidDefinition"
    assert caught.value.message.startswith("Invalid State Machine Definition: '")
    assert expected in caught.value.message
    assert caught.value.body() == {"__type": "InvalidDefinition", "message": caught.value.message}


@pytest.mark.parametrize("text", ["", "   ", "{not json", "[1, 2]", '"a string"', None, 42])
def test_a_definition_that_is_not_a_json_object_is_rejected(text: object) -> None:
    with pytest.raises(StatesError) as caught:
        check_definition(text)
    assert caught.value.code == "InvalidDefinition"


def test_a_file_path_is_never_read_as_a_definition(tmp_path: Path) -> None:
    # statelint reads a string naming an existing file as that file; a request body must not reach the disk
    secret = tmp_path / "definition.json"
    secret.write_text(json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}))
    problems = definition_problems(str(secret))
    assert problems and "not valid JSON" in problems[0]


@pytest.mark.parametrize(
    "name", ["run-1", "a", "a" * 80, "Über_ünicode", "dots.are.fine", "(parens)", "plus+equals=", "at@sign"]
)
def test_valid_execution_names(name: str) -> None:
    check_execution_name(name)
    check_state_machine_name(name)


@pytest.mark.parametrize(
    "name",
    ["", "a" * 81, "has space", "tab\there", "new\nline", "<x>", "{x}", "[x]", "why?", "star*", 'quote"', "hash#",
     "per%cent", "back\\slash", "caret^", "pipe|", "tilde~", "tick`", "dollar$", "amp&", "comma,", "semi;", "colon:",
     "slash/", "ctrl\x01", "del\x7f", "c1\x85", "nonchar\ufffe"],
)  # fmt: skip
def test_invalid_execution_names(name: str) -> None:
    with pytest.raises(StatesError) as caught:
        check_execution_name(name)
    assert (caught.value.code, caught.value.message) == ("InvalidName", f"Invalid Name: '{name}'")


def test_no_name_is_valid_for_an_execution_but_not_for_a_state_machine() -> None:
    check_execution_name(None)
    with pytest.raises(StatesError):
        check_state_machine_name(None)
