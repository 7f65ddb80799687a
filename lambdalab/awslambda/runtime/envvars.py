"""The environment variables an execution environment sees: Lambda's defined runtime variables plus the function's."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lambdalab import constants

LOG = logging.getLogger(__name__)

# AWS Lambda Developer Guide, "Working with Lambda environment variables" → "Defined runtime environment variables"
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime).
# Reserved keys: the function's configuration cannot set them (CreateFunction fails).
RESERVED_KEYS = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
        "TZ",
    }
)
# Unreserved: Lambda sets these, the function's configuration may replace them.
UNRESERVED_DEFAULTS = {
    "LANG": "en_US.UTF-8",
    "PATH": "/usr/local/bin:/usr/bin/:/bin:/opt/bin",
    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
}
ENDPOINT_URL = "AWS_ENDPOINT_URL"
INIT_TYPES = ("on-demand", "provisioned-concurrency")


@dataclass(frozen=True)
class EnvironmentVariablesInput:
    """What the variables are built from (one execution environment)."""

    function_name: str
    version: str  # "$LATEST" or "1", "2", ...
    handler: str
    runtime: str  # "python3.13"
    memory_mb: int
    region: str
    log_group: str
    init_type: str  # "on-demand" | "provisioned-concurrency"
    code_dir: Path
    runtime_api: str  # "127.0.0.1:PORT" of this environment's Runtime API
    endpoint_url: str  # the local cloud, for AWS_ENDPOINT_URL
    user_environment: dict[str, str]
    runtime_dir: str  # the runtime's own packages (Lambda's /var/runtime): LAMBDA_RUNTIME_DIR and PYTHONPATH
    log_stream_name: str  # the environment's log stream (lambdalab.logs.formats.stream_name)
    xray_daemon_address: str | None = None  # "127.0.0.1:2000"
    # service id → URL for the services another process of the local cloud serves (AWS_ENDPOINT_URL_<ID>)
    service_endpoints: Mapping[str, str] = field(default_factory=dict)
    # what the function's LoggingConfig tells the runtime client (AWS_LAMBDA_LOG_FORMAT / AWS_LAMBDA_LOG_LEVEL)
    log_variables: Mapping[str, str] = field(default_factory=dict)


def check_user_environment(user_environment: dict[str, str]) -> None:
    """Raise ValueError naming the first reserved key a function's configuration tries to set (AWS rejects those)."""
    for key in sorted(user_environment):
        if key in RESERVED_KEYS:
            raise ValueError(
                f"Lambda was unable to configure your environment variables because the environment variables you "
                f"have provided contains reserved keys that are currently not supported for modification. "
                f"Reserved keys used in this request: {key}"
            )


def build_environment(spec: EnvironmentVariablesInput) -> dict[str, str]:
    """The complete environment of one execution environment; nothing of the host's own environment is in it.

    Precedence, lowest first:
      1. Lambda's unreserved defaults (LANG, PATH, PYTHONPATH, AWS_XRAY_CONTEXT_MISSING, and the X-Ray daemon
         address when tracing is on) — the function's configuration may replace any of these;
      2. the function's own `Environment.Variables` (`user_environment`);
      3. Lambda's reserved variables (handler, region, function name/memory/version, init type, log group/stream,
         credentials — the fakes of lambdalab.constants, never the host's —, Runtime API, task root, runtime dir,
         TZ). A user key that collides with one of them is an error (ValueError naming it), as CreateFunction
         rejects it on AWS;
      4. `AWS_ENDPOINT_URL` = the local cloud, and `AWS_ENDPOINT_URL_<SERVICE>` for a service another process of
         the local cloud serves (DynamoDB). Not AWS variables: the local cloud sets them last so the function's SDK
         calls stay on this machine; a user value is replaced (with a warning in our log).
    """
    if spec.init_type not in INIT_TYPES:
        raise ValueError(f"init_type {spec.init_type!r} is not one of {INIT_TYPES}")
    check_user_environment(spec.user_environment)
    env: dict[str, str] = dict(UNRESERVED_DEFAULTS)
    env["PYTHONPATH"] = spec.runtime_dir  # AWS: "The Python library path ($LAMBDA_RUNTIME_DIR)"
    if spec.xray_daemon_address:
        host, _, port = spec.xray_daemon_address.rpartition(":")
        env["AWS_XRAY_DAEMON_ADDRESS"] = spec.xray_daemon_address
        env["_AWS_XRAY_DAEMON_ADDRESS"] = host
        env["_AWS_XRAY_DAEMON_PORT"] = port
    env.update(spec.user_environment)
    env.update(
        {
            "_HANDLER": spec.handler,
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_INITIALIZATION_TYPE": spec.init_type,
            "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": spec.log_stream_name,
            "AWS_ACCESS_KEY": constants.FAKE_ACCESS_KEY_ID,
            "AWS_ACCESS_KEY_ID": constants.FAKE_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": constants.FAKE_SECRET_ACCESS_KEY,
            "AWS_SESSION_TOKEN": constants.FAKE_SESSION_TOKEN,
            "AWS_LAMBDA_RUNTIME_API": spec.runtime_api,
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "LAMBDA_RUNTIME_DIR": spec.runtime_dir,
            "TZ": ":UTC",
            **spec.log_variables,
        }
    )
    endpoints = {ENDPOINT_URL: spec.endpoint_url}
    endpoints.update({f"{ENDPOINT_URL}_{service.upper()}": url for service, url in spec.service_endpoints.items()})
    for name, url in endpoints.items():
        user_endpoint = spec.user_environment.get(name)
        if user_endpoint is not None and user_endpoint != url:
            LOG.warning(
                "function %s sets %s=%s; the local cloud replaces it with %s",
                spec.function_name,
                name,
                user_endpoint,
                url,
            )
        env[name] = url
    return env
