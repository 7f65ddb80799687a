"""The reserved environment variables an execution environment gets, and their precedence."""

import os
from pathlib import Path

import pytest

from lambdalab import constants
from lambdalab.awslambda.runtime import envvars


def make_input(**overrides):
    base = dict(
        function_name="order-fn",
        version="$LATEST",
        handler="app.lambda_handler",
        runtime="python3.13",
        memory_mb=256,
        region="eu-west-1",
        log_group="/aws/lambda/order-fn",
        init_type="on-demand",
        code_dir=Path("/code/order_fn"),
        runtime_api="127.0.0.1:40001",
        endpoint_url="http://127.0.0.1:4566",
        user_environment={},
        runtime_dir="/runtimes/python3.13/site",
        log_stream_name="2026/12/02/[$LATEST]0123456789abcdef0123456789abcdef",
    )
    base.update(overrides)
    return envvars.EnvironmentVariablesInput(**base)


def test_reserved_variables_describe_the_function():
    env = envvars.build_environment(make_input())
    assert env["_HANDLER"] == "app.lambda_handler"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.13"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "order-fn"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/order-fn"
    assert env["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:40001"
    assert env["LAMBDA_TASK_ROOT"] == "/code/order_fn"
    assert env["TZ"] == ":UTC"
    assert env["LANG"] == "en_US.UTF-8"
    assert env["AWS_XRAY_CONTEXT_MISSING"] == "LOG_ERROR"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert env["LAMBDA_RUNTIME_DIR"] == "/runtimes/python3.13/site"  # the runtime's own packages, nothing of the lab
    assert env["PYTHONPATH"] == env["LAMBDA_RUNTIME_DIR"]


def test_log_stream_and_format_variables_are_what_the_environment_was_given():
    stream = "2026/12/02/[7]0123456789abcdef0123456789abcdef"
    env = envvars.build_environment(
        make_input(version="7", log_stream_name=stream, log_variables={"AWS_LAMBDA_LOG_FORMAT": "JSON"})
    )
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"] == stream
    assert env["AWS_LAMBDA_LOG_FORMAT"] == "JSON"
    assert "AWS_LAMBDA_LOG_FORMAT" not in envvars.build_environment(make_input())


def test_credentials_are_the_fakes_never_the_hosts(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAHOSTREALKEY00000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "host-secret")
    monkeypatch.setenv("LAMBDALAB_HOST_ONLY", "1")
    env = envvars.build_environment(make_input())
    assert env["AWS_ACCESS_KEY_ID"] == env["AWS_ACCESS_KEY"] == constants.FAKE_ACCESS_KEY_ID
    assert env["AWS_SECRET_ACCESS_KEY"] == constants.FAKE_SECRET_ACCESS_KEY
    assert env["AWS_SESSION_TOKEN"] == constants.FAKE_SESSION_TOKEN
    assert "LAMBDALAB_HOST_ONLY" not in env
    assert "host-secret" not in env.values()
    assert (
        not set(env)
        - set(envvars.RESERVED_KEYS)
        - {"LANG", "PATH", "PYTHONPATH", "AWS_XRAY_CONTEXT_MISSING", "AWS_ENDPOINT_URL"}
    )
    assert os.environ["LAMBDALAB_HOST_ONLY"] == "1"


def test_user_variables_are_added_and_may_replace_unreserved_defaults():
    env = envvars.build_environment(make_input(user_environment={"TABLE": "orders", "LANG": "de_DE.UTF-8"}))
    assert env["TABLE"] == "orders"
    assert env["LANG"] == "de_DE.UTF-8"


@pytest.mark.parametrize("key", ["AWS_REGION", "_HANDLER", "AWS_ACCESS_KEY_ID", "LAMBDA_TASK_ROOT", "TZ"])
def test_user_variables_may_not_set_reserved_keys(key):
    with pytest.raises(ValueError, match=f"Reserved keys used in this request: {key}"):
        envvars.build_environment(make_input(user_environment={key: "x"}))


def test_endpoint_url_always_points_at_the_local_cloud():
    env = envvars.build_environment(make_input(user_environment={"AWS_ENDPOINT_URL": "https://example.com"}))
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"


def test_xray_daemon_variables_only_when_given():
    without = envvars.build_environment(make_input())
    assert not {"AWS_XRAY_DAEMON_ADDRESS", "_AWS_XRAY_DAEMON_ADDRESS", "_AWS_XRAY_DAEMON_PORT"} & set(without)
    with_xray = envvars.build_environment(make_input(xray_daemon_address="127.0.0.1:2000"))
    assert with_xray["AWS_XRAY_DAEMON_ADDRESS"] == "127.0.0.1:2000"
    assert with_xray["_AWS_XRAY_DAEMON_ADDRESS"] == "127.0.0.1"
    assert with_xray["_AWS_XRAY_DAEMON_PORT"] == "2000"


def test_provisioned_init_type_and_bad_init_type():
    env = envvars.build_environment(make_input(init_type="provisioned-concurrency"))
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "provisioned-concurrency"
    with pytest.raises(ValueError, match="init_type"):
        envvars.build_environment(make_input(init_type="snap-start"))
