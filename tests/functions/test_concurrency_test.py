"""Tests for functions/concurrency_test: INIT sleep, cold flag, per-environment counters and the sleep parameter."""

import time
import uuid
from datetime import UTC, datetime

import pytest

from tests.support.events import load_event

COLD = 0.05  # the 5 s cold start, scaled down
WARM = 0.02  # the 3 s execution sleep, scaled down


@pytest.fixture
def environment(load_function):
    """A fresh environment of the concurrency test function, and how long its INIT took from outside."""
    started = time.perf_counter()
    module = load_function("concurrency_test", COLD_START_SLEEP=str(COLD), EXECUTION_SLEEP=str(WARM))
    return module, time.perf_counter() - started


def test_init_sleeps_once_and_reports_its_duration(environment):
    # GIVEN an environment whose INIT sleeps COLD seconds
    module, import_seconds = environment
    # THEN the import itself took the cold start, and the module measured it
    assert import_seconds >= COLD
    assert COLD * 1000 <= module.INIT_DURATION_MS <= import_seconds * 1000 + 1
    initialized = datetime.fromisoformat(module.INITIALIZED_AT)
    assert initialized.tzinfo == UTC
    assert abs((datetime.now(UTC) - initialized).total_seconds()) < 5


def test_first_call_is_cold_and_later_calls_are_warm(environment):
    module, _ = environment
    # WHEN the environment serves three calls
    first, second, third = (module.lambda_handler(load_event("invoke-default"), None) for _ in range(3))
    # THEN only the first is its cold start, and all report the same environment
    assert [first["cold_start"], second["cold_start"], third["cold_start"]] == [True, False, False]
    assert [first["invocations"], second["invocations"], third["invocations"]] == [1, 2, 3]
    assert first["environment_id"] == second["environment_id"] == third["environment_id"]
    uuid.UUID(first["environment_id"])
    assert first["initialized_at"] == third["initialized_at"]
    assert first["init_duration_ms"] >= COLD * 1000


def test_warm_calls_do_not_pay_the_init_sleep(environment):
    module, _ = environment
    module.lambda_handler({"sleep": 0}, None)
    started = time.perf_counter()
    result = module.lambda_handler({"sleep": 0}, None)
    assert time.perf_counter() - started < COLD
    assert result["slept_seconds"] == 0


def test_each_import_is_a_new_environment(load_function):
    first = load_function("concurrency_test", COLD_START_SLEEP="0", EXECUTION_SLEEP="0")
    second = load_function("concurrency_test", COLD_START_SLEEP="0", EXECUTION_SLEEP="0")
    a = first.lambda_handler({}, None)
    b = second.lambda_handler({}, None)
    assert a["environment_id"] != b["environment_id"]
    assert a["cold_start"] and b["cold_start"]


def test_default_sleep_comes_from_the_environment(environment):
    module, _ = environment
    started = time.perf_counter()
    result = module.lambda_handler({}, None)
    assert time.perf_counter() - started >= WARM
    assert result["slept_seconds"] == WARM
    assert result["handler_duration_ms"] >= WARM * 1000


def test_event_sleep_overrides_the_default(environment):
    module, _ = environment
    started = time.perf_counter()
    result = module.lambda_handler({"sleep": 0.06}, None)
    assert time.perf_counter() - started >= 0.06
    assert result["slept_seconds"] == 0.06


def test_sample_input_entries_are_valid_events(environment):
    module, _ = environment
    entries = load_event("sample-test-input")["entries"]
    assert len(entries) == 150
    assert all(module.requested_sleep(entry) == 3.0 for entry in entries)


@pytest.mark.parametrize("bad", ["3", True, -1, 901, float("nan"), [1], {"s": 1}])
def test_bad_sleep_values_raise_a_clear_error(environment, bad):
    module, _ = environment
    with pytest.raises(ValueError, match="'sleep' must be"):
        module.lambda_handler({"sleep": bad}, None)


def test_non_object_event_is_rejected(environment):
    module, _ = environment
    with pytest.raises(ValueError, match="event must be a JSON object"):
        module.lambda_handler([1, 2], None)


def test_a_rejected_call_does_not_count_as_served(environment):
    module, _ = environment
    with pytest.raises(ValueError):
        module.lambda_handler({"sleep": -5}, None)
    assert module.lambda_handler({"sleep": 0}, None)["cold_start"] is True


def test_reports_the_lambda_runtime_variables(load_function, monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "provisioned-concurrency")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_VERSION", "7")
    module = load_function("concurrency_test", COLD_START_SLEEP="0", EXECUTION_SLEEP="0")
    result = module.lambda_handler({}, None)
    assert result["initialization_type"] == "provisioned-concurrency"
    assert result["function_version"] == "7"


@pytest.mark.parametrize("value", ["fast", "-2", "1000"])
def test_bad_cold_start_setting_fails_init(load_function, value):
    with pytest.raises(ValueError, match="COLD_START_SLEEP"):
        load_function("concurrency_test", COLD_START_SLEEP=value, EXECUTION_SLEEP="0")
