"""Where moto's Step Functions interpreter falls short of AWS, the smallest wrap that closes the gap.

Each patch wraps one moto function and calls the original; each has a test that fails without it
(tests/unit/stepfunctions/test_patches.py, tests/integration/test_stepfunctions_local.py):

- inline Map: moto starts one worker per item when MaxConcurrency is 0 (and as many as MaxConcurrency says
  otherwise); AWS runs at most 40 inline iterations at once. [Map state in Inline mode]
- X-Ray: moto's Lambda tasks send no trace header; with tracing enabled AWS passes `X-Amzn-Trace-Id` to Lambda,
  so the execution and its invocations share one trace. [Step Functions and AWS X-Ray]
- JSONPath: moto 5.2.5 reads `$.checks[0].ok` (a field under an array index) as `[true]`, not `true` (its fix for
  getmoto/moto#7825 wraps every match whose parent is an index), so a Choice on it silently takes the Default and a
  Parameter gets a list. AWS returns the one value a definite path names, and a list for an indefinite one (wildcard,
  filter, slice, union, recursive descent). [Step Functions: paths; Reference Paths]
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from lambdalab.stepfunctions.tracing import ExecutionTraces

LOG = logging.getLogger(__name__)

# AWS: "In this mode, the Map state supports up to 40 concurrent iterations." [Using Map state in Inline mode]
INLINE_MAP_MAX_CONCURRENCY = 40
LAMBDA_POOL_CONNECTIONS = 256

_lock = threading.Lock()
_installed: set[str] = set()  # the patches in place in this process
_header = threading.local()  # the trace header of the Lambda task running on this thread
traces = ExecutionTraces()


def inline_workers(max_concurrency: int) -> int:
    """How many inline iterations may run at once: MaxConcurrency, 0 meaning no explicit limit, never above 40."""
    if max_concurrency <= 0:
        return INLINE_MAP_MAX_CONCURRENCY
    return min(max_concurrency, INLINE_MAP_MAX_CONCURRENCY)


def install() -> None:
    """Install every patch once per process (idempotent)."""
    with _lock:
        if _installed:
            return
        _patch_inline_map()
        _patch_lambda_trace_header()
        patch_definite_json_paths()
        _installed.update({"inline-map", "lambda-trace-header", "definite-json-paths"})
        LOG.debug("Step Functions interpreter patches installed")


_INDEFINITE = re.compile(r"\[\s*\?|\*|\.\.|\[[^\]]*[:,][^\]]*\]")


def is_definite_path(path: str) -> bool:
    """A JSONPath that names at most one node: no wildcard, filter, slice, union or recursive descent."""
    return _INDEFINITE.search(path) is None


def patch_definite_json_paths() -> None:
    """moto's `extract_json`, answering a definite path with the one value it names (idempotent).

    The interpreter's modules import the function by name: the module attribute is swapped before they are imported
    (so they import this one), and in any that were imported already."""
    import sys

    from moto.stepfunctions.parser.asl.utils import json_path

    original = json_path.extract_json
    if getattr(original, "lambdalab_patched", False):
        return

    def extract_json(path: str, data: Any) -> Any:
        if not is_definite_path(path):
            return original(path, data)
        matches = json_path.parse(path).find(data)
        if not matches:
            raise json_path.NoSuchJsonPathError(json_path=path, data=data)
        return matches[0].value

    extract_json.lambdalab_patched = True  # type: ignore[attr-defined]
    for name, loaded in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions.parser") and getattr(loaded, "extract_json", None) is original:
            loaded.extract_json = extract_json  # type: ignore[attr-defined]


def _patch_inline_map() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import inline_iteration_component

    component = inline_iteration_component.InlineIterationComponent
    original = component._eval_body

    def _eval_body(self: Any, env: Any) -> None:
        eval_input = env.stack[-1]  # InlineIterationComponentEvalInput, popped by the original
        eval_input.max_concurrency = inline_workers(int(eval_input.max_concurrency))
        original(self, env)

    component._eval_body = _eval_body  # type: ignore[method-assign]


def _patch_lambda_trace_header() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    original_execute = lambda_eval_utils.execute_lambda_function_integration
    original_client = lambda_eval_utils.boto_client_for  # still used for every other service

    def execute_lambda_function_integration(env: Any, parameters: dict[str, Any], region: str, **kwargs: Any) -> None:
        task = traces.begin_task(env, parameters)
        _header.value = task.header if task is not None else None
        failed = True
        try:
            original_execute(env=env, parameters=parameters, region=region, **kwargs)
            failed = False
        finally:
            _header.value = None
            if task is not None:
                traces.end_task(task, failed=failed)

    lambda_clients: dict[str, Any] = {}

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        if service != "lambda":
            return original_client(region=region, service=service, state_credentials=state_credentials)
        # One Lambda client per Region, shared by every task thread (botocore clients are thread-safe): moto builds
        # a new one per invoke, which costs tens of milliseconds of CPU each on a 40-wide Map.
        with _lock:
            client = lambda_clients.get(region)
            if client is None:
                client = _lambda_client(region)
                client.meta.events.register("before-sign.lambda.Invoke", _add_trace_header)
                lambda_clients[region] = client
        return client

    lambda_eval_utils.execute_lambda_function_integration = execute_lambda_function_integration  # type: ignore[assignment]
    lambda_eval_utils.boto_client_for = boto_client_for


def _lambda_client(region: str) -> Any:
    """moto's task client (no retries: Retry is the state machine's; its fake keys; localhost:MOTO_PORT), with a
    connection pool as wide as the widest fan-out, so shared by every task thread it never queues a call."""
    import boto3
    from botocore.config import Config
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds

    return boto3.session.Session().client(
        "lambda",
        region_name=region,
        endpoint_url=f"http://localhost:{moto_server_port()}",
        aws_access_key_id="ak",
        aws_secret_access_key="sk",  # noqa: S106 - moto's own fake
        config=Config(
            parameter_validation=False,
            retries={"max_attempts": 0, "total_max_attempts": 1},
            connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            max_pool_connections=LAMBDA_POOL_CONNECTIONS,
        ),
    )


def _add_trace_header(request: Any, **_: Any) -> None:
    header = getattr(_header, "value", None)
    if header:
        request.headers["X-Amzn-Trace-Id"] = header
