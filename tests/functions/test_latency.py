"""Tests for functions/latency: configurable sleep and an API Gateway proxy response."""

import json
import time

import pytest

from tests.support.events import load_event


def test_returns_a_proxy_response_after_the_configured_sleep(load_function):
    module = load_function("latency", LATENCY_SLEEP_MS="40")
    started = time.perf_counter()
    result = module.lambda_handler(load_event("apigw-standard"), None)
    assert time.perf_counter() - started >= 0.04
    assert result["statusCode"] == 200
    assert result["headers"]["Content-Type"] == "application/json"
    body = json.loads(result["body"])
    assert body["path"] == "/standard"
    assert body["cold_start"] is True
    assert body["slept_ms"] == 40


def test_second_call_is_warm_on_the_same_environment(load_function):
    module = load_function("latency", LATENCY_SLEEP_MS="0")
    first = json.loads(module.lambda_handler(load_event("apigw-custom"), None)["body"])
    second = json.loads(module.lambda_handler(load_event("apigw-custom"), None)["body"])
    assert (first["cold_start"], second["cold_start"]) == (True, False)
    assert first["environment_id"] == second["environment_id"]
    assert second["invocations"] == 2


@pytest.mark.parametrize("value", ["soon", "-1", "20000"])
def test_bad_sleep_setting_fails_init(load_function, value):
    with pytest.raises(ValueError, match="LATENCY_SLEEP_MS"):
        load_function("latency", LATENCY_SLEEP_MS=value)
