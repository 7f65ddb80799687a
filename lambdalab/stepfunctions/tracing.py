"""X-Ray for state machine executions: one trace per traced execution, a segment per Lambda task, the header
passed to Lambda so its segments join that trace."""

from __future__ import annotations

import json
import logging
import socket
import threading
from dataclasses import dataclass
from typing import Any

from lambdalab.clock import Clock
from lambdalab.observe.tracing import TraceHeader, new_segment_id, new_trace_id

LOG = logging.getLogger(__name__)

DAEMON_HEADER = b'{"format": "json", "version": 1}\n'
_MAX_TRACKED = 10_000  # executions whose trace ids are remembered; the oldest are forgotten first


@dataclass(frozen=True)
class ExecutionTrace:
    execution_arn: str
    state_machine_name: str
    root: str
    sampled: bool
    record_segments: bool  # False when tracing is off and only a caller's header is passed on


@dataclass(frozen=True)
class TaskTrace:
    execution: ExecutionTrace
    segment_id: str
    subsegment_id: str
    function: str
    state_name: str
    started: float

    @property
    def header(self) -> str:
        parent = self.subsegment_id if self.execution.record_segments else None
        return TraceHeader(root=self.execution.root, parent=parent, sampled=self.execution.sampled).format()


def execution_trace(
    execution_arn: str, state_machine_name: str, tracing_enabled: bool, trace_header: str | None, started: float
) -> ExecutionTrace | None:
    """The trace of one execution: the caller's `traceHeader` Root if it passed one, else a new trace when the state
    machine has tracing enabled; None when neither (Lambda then decides for itself, as on AWS)."""
    incoming = TraceHeader.parse(trace_header)
    if not tracing_enabled and incoming.root is None:
        return None
    root = incoming.root or new_trace_id(started)
    sampled = incoming.sampled if incoming.sampled is not None else tracing_enabled
    return ExecutionTrace(execution_arn, state_machine_name, root, sampled, record_segments=tracing_enabled)


def task_segment(task: TaskTrace, ended: float, failed: bool) -> dict[str, Any]:
    """The state machine's segment for one Lambda task, with the Lambda call as its subsegment (the parent of
    Lambda's own AWS::Lambda segment)."""
    execution = task.execution
    subsegment: dict[str, Any] = {
        "id": task.subsegment_id,
        "name": "Lambda",
        "namespace": "aws",
        "start_time": task.started,
        "end_time": ended,
        "aws": {"operation": "Invoke", "function_name": task.function},
    }
    segment: dict[str, Any] = {
        "name": execution.state_machine_name,
        "id": task.segment_id,
        "trace_id": execution.root,
        "start_time": task.started,
        "end_time": ended,
        "origin": "AWS::StepFunctions::StateMachine",
        "aws": {"execution_arn": execution.execution_arn, "state": task.state_name},
        "subsegments": [subsegment],
    }
    if failed:
        segment["fault"] = subsegment["fault"] = True
    return segment


class ExecutionTraces:
    """Execution ARN → its trace, looked up in moto's backend the first time a task of that execution runs; segments
    go to the X-Ray daemon over UDP (the daemon protocol), like any SDK's.

    Process-wide (moto's interpreter is patched once per process): `stepfunctions.local.enable` hands it the local
    cloud's epoch clock and daemon address through `use`, as it sets MOTO_PORT; until then no task is traced."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_arn: dict[str, ExecutionTrace | None] = {}
        self._given: dict[str, str] = {}  # execution ARN → the traceHeader its StartExecution carried
        self.daemon_address: tuple[str, int] | None = None
        self._sock: socket.socket | None = None
        self._epoch: Clock | None = None  # the segments' and new trace ids' times

    def use(self, epoch: Clock, daemon_address: str | None) -> None:
        self._epoch = epoch
        self.use_daemon(daemon_address)

    def use_daemon(self, address: str | None) -> None:
        if not address:
            self.daemon_address = None
            return
        host, _, port = address.rpartition(":")
        self.daemon_address = (host, int(port))

    def forget(self) -> None:
        with self._lock:
            self._by_arn.clear()
            self._given.clear()

    def remember_header(self, execution_arn: str, trace_header: str) -> None:
        """StartExecution's `traceHeader`, which moto's API drops: kept here until the execution's first task."""
        with self._lock:
            self._given[execution_arn] = trace_header
            while len(self._given) > _MAX_TRACKED:
                self._given.pop(next(iter(self._given)))

    def lookup(self, execution_arn: str) -> ExecutionTrace | None:
        with self._lock:
            if execution_arn in self._by_arn:
                return self._by_arn[execution_arn]
        with self._lock:
            given = self._given.get(execution_arn)
        if self._epoch is None:  # not enabled: nothing runs tasks in this process
            return None
        trace = _trace_from_moto(execution_arn, given, self._epoch)
        with self._lock:
            trace = self._by_arn.setdefault(execution_arn, trace)
            while len(self._by_arn) > _MAX_TRACKED:
                self._by_arn.pop(next(iter(self._by_arn)))
        return trace

    def begin_task(self, env: Any, parameters: dict[str, Any]) -> TaskTrace | None:
        try:
            context = env.states.context_object.context_object_data
            execution_arn = context["Execution"]["Id"]
            state_name = context.get("State", {}).get("Name", "")
        except (AttributeError, KeyError, TypeError):
            LOG.debug("no execution context for a Lambda task; not traced")
            return None
        trace = self.lookup(execution_arn)
        if trace is None or self._epoch is None:
            return None
        return TaskTrace(
            trace,
            new_segment_id(),
            new_segment_id(),
            str(parameters.get("FunctionName", "")),
            state_name,
            self._epoch.now(),
        )

    def end_task(self, task: TaskTrace, failed: bool) -> None:
        if not task.execution.record_segments or not task.execution.sampled or self.daemon_address is None:
            return
        assert self._epoch is not None  # a task was begun
        document = json.dumps(task_segment(task, self._epoch.now(), failed), separators=(",", ":")).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.sendto(DAEMON_HEADER + document, self.daemon_address)
        except OSError:
            LOG.debug("could not send a Step Functions segment to the X-Ray daemon", exc_info=True)


def _trace_from_moto(execution_arn: str, given_header: str | None, epoch: Clock) -> ExecutionTrace | None:
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    parts = execution_arn.split(":")
    if len(parts) < 7:
        return None
    region, account = parts[3], parts[4]
    try:
        execution: Any = stepfunctions_parser_backends[account][region].describe_execution(execution_arn)
    except Exception:  # a task of an execution moto no longer knows is simply not traced
        LOG.debug("execution %s not found in moto; not traced", execution_arn)
        return None
    state_machine = execution.state_machine
    tracing = getattr(state_machine, "tracingConfiguration", None) or {}  # moto's StateMachine spells it so
    started = execution.start_date.timestamp() if execution.start_date else epoch.now()
    return execution_trace(
        execution_arn, state_machine.name, bool(tracing.get("enabled")), given_header or execution.trace_header, started
    )
