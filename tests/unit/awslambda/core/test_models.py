"""The Lambda service's state: names, qualifiers, versions, aliases, validation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from lambdalab.awslambda.core.control import EventInvokeConfig, FunctionSpec
from lambdalab.awslambda.core.exceptions import (
    InvalidParameterValueException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lambdalab.awslambda.core.models import LATEST, FunctionStore, split_function_name
from lambdalab.clock import Clocks


@pytest.fixture
def code(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text("def lambda_handler(event, context):\n    return event\n")
    return tmp_path


@pytest.fixture
def store() -> FunctionStore:
    return FunctionStore("us-east-1", "123456789012", epoch=Clocks.virtual(start_epoch=START)[1].epoch)


START = datetime(2026, 11, 22, 6, 30, tzinfo=UTC).timestamp()


def spec(code: Path, **changes) -> FunctionSpec:
    values = {"name": "fn", "handler": "app.lambda_handler", "runtime": "python3.13", "code_dir": code}
    values.update(changes)
    return FunctionSpec(**values)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("fn", ("fn", None)),
        ("fn:live", ("fn", "live")),
        ("fn:$LATEST", ("fn", "$LATEST")),
        ("arn:aws:lambda:us-east-1:123456789012:function:fn", ("fn", None)),
        ("arn:aws:lambda:us-east-1:123456789012:function:fn:7", ("fn", "7")),
        ("123456789012:function:fn:live", ("fn", "live")),
    ],
)
def test_function_names_arns_and_qualifiers(given: str, expected: tuple) -> None:
    assert split_function_name(given) == expected


def test_a_malformed_name_is_an_aws_validation_error() -> None:
    with pytest.raises(InvalidParameterValueException, match="functionName"):
        split_function_name("has spaces/and slashes")


def test_publish_version_snapshots_latest_and_unchanged_code_publishes_nothing_new(store, code) -> None:
    function = store.create(spec(code))
    first = store.publish_version(function)
    again = store.publish_version(function)
    assert (first.version, again.version) == ("1", "1")
    store.update_configuration(function, timeout_s=10)
    second = store.publish_version(function)
    assert second.version == "2"
    assert function.version("1").spec.timeout_s == 3 and function.version("2").spec.timeout_s == 10


def test_resolve_alias_version_and_latest(store, code) -> None:
    function = store.create(spec(code))
    store.publish_version(function)
    store.create_alias(function, "live", "1")
    assert function.resolve(None)[1].version == LATEST
    assert function.resolve("live") == ("live", function.version("1"))
    assert function.resolve("1")[1].version == "1"
    with pytest.raises(ResourceNotFoundException):
        function.resolve("nope")
    with pytest.raises(ResourceNotFoundException):
        function.resolve("9")


def test_duplicates_and_bad_settings_are_refused(store, code, tmp_path) -> None:
    store.create(spec(code))
    with pytest.raises(ResourceConflictException):
        store.create(spec(code))
    with pytest.raises(InvalidParameterValueException, match="timeout"):
        store.create(spec(code, name="slow", timeout_s=901))
    with pytest.raises(InvalidParameterValueException, match="memorySize"):
        store.create(spec(code, name="small", memory_mb=64))
    with pytest.raises(InvalidParameterValueException, match="runtime"):
        store.create(spec(code, name="node", runtime="nodejs22.x"))
    with pytest.raises(InvalidParameterValueException, match="does not exist"):
        store.create(spec(tmp_path / "missing", name="nocode"))
    assert [f.name for f in store.all()] == ["fn"]


def test_event_invoke_config_limits() -> None:
    # The one EventInvokeConfig type validates when made, with AWS's messages; absent values are AWS's defaults
    assert EventInvokeConfig("fn", "$LATEST", 0, 60).maximum_retry_attempts == 0
    assert EventInvokeConfig.of("fn").maximum_retry_attempts == 2
    assert EventInvokeConfig.of("fn").maximum_event_age_s == 21600
    with pytest.raises(InvalidParameterValueException, match="maximumRetryAttempts") as retries:
        EventInvokeConfig("fn", "$LATEST", 3, 60)
    assert retries.value.message.endswith("Member must have value less than or equal to 2")
    with pytest.raises(InvalidParameterValueException, match="maximumEventAgeInSeconds"):
        EventInvokeConfig.of("fn", maximum_retry_attempts=1, maximum_event_age_s=30)


def test_a_relative_code_folder_is_made_absolute(store, code, monkeypatch) -> None:
    # Environments chdir into the code folder: a relative path (the default run root is relative) would break.
    monkeypatch.chdir(code.parent)
    function = store.create(spec(Path(code.name)))
    assert function.latest.spec.code_dir == code.resolve()
    assert function.latest.spec.code_dir.is_absolute()


def test_last_modified_is_the_epoch_clocks_time(tmp_path: Path) -> None:
    clock, clocks = Clocks.virtual(start_epoch=START)
    store = FunctionStore("us-east-1", "123456789012", epoch=clocks.epoch)
    (tmp_path / "app.py").write_text("def lambda_handler(event, context):\n    return event\n")
    created = store.create(spec(tmp_path))
    assert created.latest.last_modified == "2026-11-22T06:30:00.000+0000"
    clock.advance(1.25)
    published = store.publish_version(created)
    assert published.last_modified == "2026-11-22T06:30:01.250+0000"
