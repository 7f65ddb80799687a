"""Leases on execution environments: the one place that admits a request, starts (spawns and initialises) an
environment, and releases or discards it, for on-demand requests and provisioned pre-warms alike.

    async with leases.acquire(function, version, qualifier) as lease:
        if lease.throttle is not None: ...          # the policy's decision, unchanged (reason, Retry-After)
        elif lease.failure is not None: ...         # the cold start failed: INIT error or this machine's error
        else:
            lease.finish(await lease.env.invoke(request))   # releases it, or discards it (timeout, crash)

The policy owns the environment records (which environment is idle, busy, dead); the host owns the processes; this
module keeps only the handle of each live environment (env id → the host's `Environment`) and keeps the two in step:
every record the policy makes live gets a handle here, and every record it kills loses its handle and is killed on
the host. Everything runs on the service's event loop (single-threaded, like the policy).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from lambdalab.awslambda.core.localwait import LocalWait
from lambdalab.awslambda.core.models import FunctionVersion, LambdaFunction
from lambdalab.awslambda.core.outcome import Outcome
from lambdalab.awslambda.core.policy import Admitted, ConcurrencyPolicy, PolicyStateError, StartKind, Throttled
from lambdalab.awslambda.hosting import (
    LOCAL_ERROR_TYPE,
    Environment,
    EnvironmentHost,
    EnvironmentSpec,
    InvokeResult,
    InvokeStatus,
)

LOG = logging.getLogger(__name__)

ON_DEMAND = "on-demand"
PROVISIONED = "provisioned-concurrency"


@dataclass
class ColdStart:
    """What starting one environment gave: INIT's timings and, when it failed, how."""

    init_start: float | None = None  # epoch seconds
    init_duration: float | None = None
    init_wait: float = 0.0  # INIT's local waiting (CPU gate, run queue)
    failure: Outcome | None = None  # INIT_ERROR or LOCAL_ERROR; None when the environment is ready
    error_type: str | None = None
    error_message: str | None = None
    logs: str = ""  # a failed INIT's log lines


class Lease:
    """One admitted (or throttled) request's hold on an environment. See the module docstring."""

    def __init__(self, leases: Leases, decision: Admitted | Throttled) -> None:
        self._leases = leases
        self.throttle: Throttled | None = decision if isinstance(decision, Throttled) else None
        self.decision: Admitted | None = decision if isinstance(decision, Admitted) else None
        self.env: Environment | None = None
        self.cold: ColdStart | None = None  # set on a cold start
        self.done = False

    @property
    def env_id(self) -> str | None:
        return self.decision.env_id if self.decision is not None else None

    @property
    def failure(self) -> Outcome | None:
        return self.cold.failure if self.cold is not None else None

    def finish(self, result: InvokeResult) -> None:
        """The invoke ended: release the environment (kept warm), or discard it after a timeout or crash (a ready
        provisioned one is replaced)."""
        self.done = True
        assert self.decision is not None
        self._leases.finish(self.decision.env_id, result.status)


class Leases:
    """Starts and stops environments on the host as the policy decides; the only table of environment handles."""

    def __init__(
        self,
        host: EnvironmentHost,
        policy: ConcurrencyPolicy,
        *,
        spec_of: Callable[[str, LambdaFunction, FunctionVersion, str], EnvironmentSpec],
        event: Callable[[str, str, str | None], None],
        spawn_task: Callable[[Awaitable[Any], str], Any],
        changed: Callable[[], None],
        ended: Callable[[str], None] = lambda function: None,
        init_done: Callable[[str, float], None] = lambda function, seconds: None,
    ) -> None:
        self.host = host
        self.policy = policy
        self._spec_of = spec_of  # (env id, function, version, init type) → what the host builds
        self._event = event  # (env id, event, detail): an environment event for the observers
        self._spawn_task = spawn_task
        self._changed = changed  # the concurrency changed (a pre-warm became ready or failed)
        self._ended = ended  # (function) an admitted request's lease ended: its concurrency is free again
        self._init_done = init_done  # (function, INIT seconds) of every INIT that succeeded, as soon as it ends
        self._envs: dict[str, Environment] = {}
        self._stopped = False
        # admitted requests not yet over, per (function, qualifier as invoked): the concurrency snapshot's resources
        self.in_flight: dict[tuple[str, str], int] = {}
        self._versions: dict[str, tuple[LambdaFunction, FunctionVersion]] = {}  # what a replacement is built from

    def __len__(self) -> int:
        return len(self._envs)

    def get(self, env_id: str) -> Environment | None:
        return self._envs.get(env_id)

    # --- requests -------------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def acquire(
        self,
        function: LambdaFunction,
        version: FunctionVersion,
        qualifier: str,
        *,
        admit: Callable[[], Awaitable[Admitted | Throttled]] | None = None,
        local_wait: LocalWait | None = None,
    ) -> AsyncIterator[Lease]:
        """Admit one request (the policy decides: warm, provisioned, cold or throttled; `admit`, when given, asks it
        and may wait) and, on a cold start, start its environment. On exit without `finish` (an exception, a
        cancellation) the environment is discarded."""
        if admit is None:
            decision = self.policy.admit(function.name, version.version, qualifier)
        else:
            decision = await admit()
        lease = Lease(self, decision)
        if lease.decision is None:
            yield lease
            return
        env_id = lease.decision.env_id
        resource = (function.name, qualifier)
        self.in_flight[resource] = self.in_flight.get(resource, 0) + 1
        self._changed()
        try:
            if self._stopped:
                self._gone(lease, env_id)
            elif lease.decision.kind == StartKind.COLD:
                lease.cold = await self._start(env_id, function, version, ON_DEMAND, local_wait)
                lease.env = self._envs.get(env_id) if lease.cold.failure is None else None
                lease.done = lease.cold.failure is not None
            else:
                lease.env = self._envs.get(env_id)
                if lease.env is None:  # the host stopped it (the local cloud is stopping) after the policy chose it
                    self._gone(lease, env_id)
            yield lease
        finally:
            if not lease.done and lease.env is not None:
                self._discard(env_id, "killed", function, version)
            self.in_flight[resource] -= 1
            self._changed()
            self._ended(function.name)

    def _gone(self, lease: Lease, env_id: str) -> None:
        """An admission after `stop` (the local cloud is stopping: a request still in the gateway), or a warm one
        whose environment `stop` killed while the request waited. It fails as this machine's doing, never Lambda's."""
        with contextlib.suppress(PolicyStateError):
            self.policy.discard(env_id)
        message = "lambdalab (this machine, not Lambda): the local cloud is stopping; its execution environment is gone"
        lease.cold = ColdStart(failure=Outcome.LOCAL_ERROR, error_type=LOCAL_ERROR_TYPE, error_message=message)
        lease.done = True

    def finish(self, env_id: str, status: InvokeStatus) -> None:
        if status in (InvokeStatus.TIMEOUT, InvokeStatus.CRASH, InvokeStatus.LOCAL_ERROR):
            self._discard(env_id, "timed_out" if status == InvokeStatus.TIMEOUT else "crashed")
        elif not self.policy.release(env_id):
            self.kill_later(env_id, "killed")

    # --- provisioned concurrency ------------------------------------------------------------------------------------

    def prewarm(self, env_id: str, function: LambdaFunction, version: FunctionVersion) -> None:
        """Start a provisioned environment the policy created (in INIT) ahead of traffic."""
        self._versions[env_id] = (function, version)
        self._spawn_task(self._prewarm(env_id, function, version), f"prewarm-{env_id}")

    async def _prewarm(self, env_id: str, function: LambdaFunction, version: FunctionVersion) -> None:
        await self._start(env_id, function, version, PROVISIONED)
        self._changed()

    # --- stopping ---------------------------------------------------------------------------------------------------

    def kill_later(self, env_id: str, event: str) -> None:
        """The policy counts `env_id` DEAD: report it, forget its handle, kill it on the host in the background."""
        env = self._envs.get(env_id)
        self._event(env_id, event, None)
        self._forget(env_id)
        if env is not None:
            self._spawn_task(env.kill(), f"kill-{env_id}")

    async def stop(self) -> None:
        self._stopped = True  # a request still being admitted fails as this machine's (`_gone`), never spawns
        for env in list(self._envs.values()):
            await env.kill()
        self._envs.clear()
        self._versions.clear()

    # --- the cold-start sequence ------------------------------------------------------------------------------------

    async def _start(
        self,
        env_id: str,
        function: LambdaFunction,
        version: FunctionVersion,
        init_type: str,
        local_wait: LocalWait | None = None,
    ) -> ColdStart:
        """Spawn and initialise environment `env_id` (a policy record in INIT) and tell the policy how it went."""
        on_demand = init_type == ON_DEMAND
        spec = self._spec_of(env_id, function, version, init_type)
        try:
            env = await self.host.spawn(spec)
        except Exception as exc:
            if on_demand:  # this machine could not start it, even after waiting: never Lambda's error
                LOG.warning("could not start environment %s: %s", env_id, exc)
                self.policy.discard(env_id)
                message = f"lambdalab (this machine, not Lambda): could not start an execution environment: {exc}"
                return ColdStart(failure=Outcome.LOCAL_ERROR, error_type=LOCAL_ERROR_TYPE, error_message=message)
            # the fork server is gone or the OS refused: the config fails, as on AWS
            LOG.exception("could not start provisioned environment %s", env_id)
            self.policy.init_failed(env_id, str(exc))
            return ColdStart(failure=Outcome.INIT_ERROR, error_message=str(exc))
        self._envs[env_id] = env
        self._event(env_id, "created", None)
        if local_wait is not None:  # the request's caller reads INIT's local wait live while it waits
            local_wait.watch(env.init_local_wait_s)
        ready = await env.wait_ready()
        if local_wait is not None:
            local_wait.settle(ready.local_wait_s)
        cold = ColdStart(init_start=env.init_started_at, init_duration=ready.init_duration_s)
        if on_demand:
            cold.init_wait = ready.local_wait_s
            if ready.local:
                self.policy.discard(env_id)
                self._forget(env_id)
                self._spawn_task(env.kill(), f"kill-{env_id}")
                cold.init_duration = None
                cold.failure, cold.error_type, cold.error_message = (
                    Outcome.LOCAL_ERROR,
                    LOCAL_ERROR_TYPE,
                    ready.error_message,
                )
                return cold
            if not ready.ok and not ready.retry_in_invoke:
                self.policy.init_failed(env_id, f"{ready.error_type}: {ready.error_message}")
                self._event(env_id, "init_error", ready.error_type)
                self._forget(env_id)
                self._spawn_task(env.kill(), f"kill-{env_id}")
                cold.failure, cold.error_type, cold.error_message = (
                    Outcome.INIT_ERROR,
                    ready.error_type,
                    ready.error_message,
                )
                cold.logs = ready.logs
                return cold
            self.policy.init_finished(env_id)
            if ready.ok:
                if ready.init_duration_s is not None:  # known at once, before the call
                    self._init_done(function.name, ready.init_duration_s)
                self._event(env_id, "ready", f"init {(ready.init_duration_s or 0) * 1000:.1f} ms")
            else:  # INIT passed the on-demand cap: Lambda retries it inside the invoke, under the function timeout
                self._event(env_id, "init_retry", ready.error_type)
            return cold
        if ready.ok:
            self.policy.init_finished(env_id)
            if ready.init_duration_s is not None:
                self._init_done(function.name, ready.init_duration_s)
            self._event(env_id, "ready", f"init {(ready.init_duration_s or 0) * 1000:.1f} ms")
            return cold
        self.policy.init_failed(env_id, f"{ready.error_type}: {ready.error_message}")
        self._event(env_id, "init_error", ready.error_type)
        self._forget(env_id)
        await env.kill()
        cold.failure, cold.error_type, cold.error_message = Outcome.INIT_ERROR, ready.error_type, ready.error_message
        return cold

    def _discard(
        self,
        env_id: str,
        event: str,
        function: LambdaFunction | None = None,
        version: FunctionVersion | None = None,
    ) -> None:
        """The environment is unusable (timeout, crash, an abandoned request): DEAD in the policy, killed on the host;
        a ready provisioned one is replaced by a new pre-warm."""
        env = self._envs.get(env_id)
        try:
            replacements = self.policy.discard(env_id)
        except PolicyStateError:
            replacements = []
        self._event(env_id, event, None)
        source = self._versions.get(env_id) or (
            (function, version) if function is not None and version is not None else None
        )
        self._forget(env_id)
        if env is not None:
            self._spawn_task(env.kill(), f"kill-{env_id}")
        if source is not None:
            for new_id in replacements:
                self.prewarm(new_id, *source)

    def _forget(self, env_id: str) -> None:
        self._envs.pop(env_id, None)
        self._versions.pop(env_id, None)
