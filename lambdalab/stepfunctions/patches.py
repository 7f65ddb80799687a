"""Where moto's Step Functions interpreter falls short of AWS, the smallest wrap that closes the gap.

Each patch wraps one moto function and calls the original; each has a test that fails without it
(tests/unit/stepfunctions/test_patches.py, tests/integration/test_stepfunctions_local.py):

- inline Map: moto starts one worker per item when MaxConcurrency is 0 (and as many as MaxConcurrency says
  otherwise); AWS runs at most 40 inline iterations at once. [Map state in Inline mode]
- X-Ray: moto's Lambda tasks send no trace header; with tracing enabled AWS passes `X-Amzn-Trace-Id` to Lambda,
  so the execution and its invocations share one trace. [Step Functions and AWS X-Ray]
- task endpoint: moto's task clients call `localhost:$MOTO_PORT` (an environment variable for the whole process);
  they call the endpoint `install` is given (the gateway), so nothing else in the process is re-pointed.
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


class TaskEndpoint:
    """Where the interpreter's task clients (Lambda and every other service) send their calls: the endpoint given to
    `install`, never moto's `localhost:$MOTO_PORT`. moto's interpreter is one per process, so this is too; a later
    `install` (the next local cloud in the same process) points it elsewhere, and the clients made for the old
    endpoint are dropped."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.lambda_clients: dict[str, Any] = {}  # per Region, for `url`

    def point_at(self, url: str) -> None:
        with _lock:
            if url != self.url:
                self.url = url
                self.lambda_clients = {}


task_endpoint = TaskEndpoint()


def inline_workers(max_concurrency: int) -> int:
    """How many inline iterations may run at once: MaxConcurrency, 0 meaning no explicit limit, never above 40."""
    if max_concurrency <= 0:
        return INLINE_MAP_MAX_CONCURRENCY
    return min(max_concurrency, INLINE_MAP_MAX_CONCURRENCY)


def install(endpoint_url: str) -> None:
    """Install every patch once per process (idempotent); the interpreter's tasks call `endpoint_url`."""
    task_endpoint.point_at(endpoint_url)
    with _lock:
        if _installed:
            return
        _patch_inline_map()
        _patch_lambda_trace_header()
        _patch_task_clients()
        patch_definite_json_paths()
        _installed.update({"inline-map", "lambda-trace-header", "task-endpoint", "definite-json-paths"})
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

    lambda_eval_utils.execute_lambda_function_integration = execute_lambda_function_integration  # type: ignore[assignment]


def _patch_task_clients() -> None:
    """moto's `boto_client_for` (every task's client: Lambda, SQS, SNS, DynamoDB, ...), at `task_endpoint.url`.
    The interpreter's modules import it by name: swapped in its own module (for modules imported later) and in every
    one imported already, as for `extract_json`."""
    import sys

    from moto.stepfunctions.parser.asl.utils import boto_client

    original_client = boto_client.boto_client_for

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        endpoint = task_endpoint.url
        if endpoint is None:  # not installed by `install` (moto's mock mode): moto's own
            return original_client(region=region, service=service, state_credentials=state_credentials)
        if service != "lambda":
            return _task_client(service, region, endpoint)  # one per call, as moto makes them
        # One Lambda client per Region, shared by every task thread (botocore clients are thread-safe): moto builds
        # a new one per invoke, which costs tens of milliseconds of CPU each on a 40-wide Map.
        with _lock:
            client = task_endpoint.lambda_clients.get(region)
            if client is None:
                client = _task_client("lambda", region, endpoint, max_pool_connections=LAMBDA_POOL_CONNECTIONS)
                client.meta.events.register("before-sign.lambda.Invoke", _add_trace_header)
                task_endpoint.lambda_clients[region] = client
        return client

    for name, loaded in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions.parser") and getattr(loaded, "boto_client_for", None) is original_client:
            loaded.boto_client_for = boto_client_for  # type: ignore[attr-defined]


def _task_client(service: Any, region: str, endpoint_url: str, max_pool_connections: int = 10) -> Any:
    """moto's task client (no retries: Retry is the state machine's; its fake keys), at `endpoint_url`; the Lambda
    one has a connection pool as wide as the widest fan-out, so shared by every task thread it never queues a call."""
    import boto3
    from botocore.config import Config
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds

    return boto3.session.Session().client(
        service,
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id="ak",
        aws_secret_access_key="sk",  # noqa: S106 - moto's own fake
        config=Config(
            parameter_validation=False,
            retries={"max_attempts": 0, "total_max_attempts": 1},
            connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            max_pool_connections=max_pool_connections,  # botocore's default is 10
        ),
    )


def _add_trace_header(request: Any, **_: Any) -> None:
    header = getattr(_header, "value", None)
    if header:
        request.headers["X-Amzn-Trace-Id"] = header
