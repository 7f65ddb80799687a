"""Execution environments: real processes forked from the fork server, speaking the Runtime API to us."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from pathlib import Path

import aiohttp
import psutil
import pytest

from lambdalab import constants
from lambdalab.awslambda.hosting import EnvironmentSpec, InvokeRequest, InvokeStatus
from lambdalab.awslambda.runtime.environment import EnvironmentState, IllegalTransition
from lambdalab.awslambda.runtime.host import ProcessHost
from lambdalab.clock import Clocks

FIXTURES = Path(__file__).parent / "fixtures"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:fn"


def make_spec(env_id: str = "env-1", folder: str = "basic", **overrides) -> EnvironmentSpec:
    base = dict(
        env_id=env_id,
        function_name="fn",
        function_arn=ARN,
        version="$LATEST",
        handler="app.lambda_handler",
        code_dir=(FIXTURES / folder).resolve(),
        runtime="python3.13",
        memory_mb=128,
        timeout_s=3.0,
        user_environment={},
        init_type="on-demand",
        region="us-east-1",
        account_id="123456789012",
        endpoint_url="http://127.0.0.1:4566",
        xray_daemon_address=None,
        init_cap_s=10.0,
    )
    base.update(overrides)
    return EnvironmentSpec(**base)


def request(event: dict, request_id: str = "req-1", timeout_s: float = 3.0, **kw) -> InvokeRequest:
    return InvokeRequest(
        request_id=request_id,
        payload=json.dumps(event).encode(),
        deadline=time.monotonic() + timeout_s,
        invoked_function_arn=ARN,
        **kw,
    )


def run(scenario):
    """Run `scenario(host)` with a started host, and always stop it."""

    async def main():
        host = ProcessHost(clocks=Clocks.wall())
        await host.start()
        try:
            return await scenario(host)
        finally:
            await host.stop()

    return asyncio.run(main())


async def ready_env(host: ProcessHost, **overrides):
    env = await host.spawn(make_spec(**overrides))
    init = await env.wait_ready()
    assert init.ok, init
    return env


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_handler_returns_and_init_is_measured():
    async def scenario(host):
        before = time.time()
        env = await host.spawn(make_spec())
        assert env.pid and env.state in (EnvironmentState.STARTING, EnvironmentState.INIT, EnvironmentState.READY)
        init = await env.wait_ready()
        assert init.ok and init.status == "success"
        assert before <= init.init_started_at <= time.time()
        assert 0 < init.init_duration_s < time.time() - before
        assert "init: module imported" in init.logs
        assert env.state is EnvironmentState.READY
        result = await env.invoke(request({"action": "echo", "n": 1}, "req-a"))
        return init, result

    init, result = run(scenario)
    assert result.status is InvokeStatus.SUCCESS
    assert json.loads(result.body) == {"echo": {"action": "echo", "n": 1}, "count": 1, "request_id": "req-a"}
    assert result.error_type is None
    # the invocation's lines as CloudWatch Logs shows them: START, its output, END, REPORT with the cold start's INIT
    start, output, end, report = result.logs.splitlines(keepends=True)
    assert (start, output, end) == (
        "START RequestId: req-a Version: $LATEST\n",
        "handling echo #1\n",
        "END RequestId: req-a\n",
    )
    assert re.fullmatch(
        r"REPORT RequestId: req-a\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\tMemory Size: 128 MB\t"
        r"Max Memory Used: \d+ MB\tInit Duration: [\d.]+ ms\t\n",
        report,
    )
    assert init.logs.startswith("INIT_START Runtime Version: python:3.13.v0\t")
    assert result.started_at <= result.ended_at
    assert result.duration_s == pytest.approx(result.ended_at - result.started_at)
    assert result.max_memory_used_mb > 5


def test_warm_environment_keeps_module_state():
    async def scenario(host):
        env = await ready_env(host)
        first = await env.invoke(request({"action": "echo"}, "r1"))
        second = await env.invoke(request({"action": "echo"}, "r2"))
        return env, first, second

    env, first, second = run(scenario)
    assert json.loads(first.body)["count"] == 1
    assert json.loads(second.body)["count"] == 2
    assert env.invocations == 2


def test_unhandled_exception_is_a_function_error_with_lambdas_error_shape():
    async def scenario(host):
        env = await ready_env(host)
        failed = await env.invoke(request({"action": "raise"}, "r-err"))
        after = await env.invoke(request({"action": "echo"}, "r-after"))
        return env, failed, after

    _env, failed, after = run(scenario)
    assert failed.status is InvokeStatus.FUNCTION_ERROR
    assert failed.error_type == "ValueError"
    body = json.loads(failed.body)
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "bad input"
    assert any("raise ValueError" in line for line in body["stackTrace"])
    assert "[ERROR] ValueError: bad input" in failed.logs
    assert after.status is InvokeStatus.SUCCESS  # the environment survives a function error


def test_import_error_at_init_is_reported_and_the_environment_dies():
    async def scenario(host):
        env = await host.spawn(make_spec(folder="import_error"))
        init = await env.wait_ready()
        with pytest.raises(IllegalTransition):
            await env.invoke(request({}))
        return env, init

    env, init = run(scenario)
    assert not init.ok and init.status == "error"
    assert init.error_type == "Runtime.ImportModuleError"
    assert "Unable to import module 'app'" in init.error_message
    assert json.loads(init.error_body)["errorType"] == "Runtime.ImportModuleError"
    assert "Runtime.ImportModuleError" in init.logs
    assert env.state is EnvironmentState.DEAD
    assert gone(env.pid)


def test_exit_during_init_is_runtime_exit_error():
    async def scenario(host):
        env = await host.spawn(make_spec(folder="init_exit"))
        return env, await env.wait_ready()

    env, init = run(scenario)
    assert not init.ok
    assert init.error_type == "Runtime.ExitError"
    assert init.error_message == "Runtime exited with error: exit status 2"
    assert "about to exit during init" in init.logs
    assert env.state is EnvironmentState.DEAD


@pytest.mark.parametrize(
    ("action", "reason"),
    [("exit", "exit status 3"), ("os_exit", "exit status 7"), ("sigkill", "signal: killed")],
)
def test_process_exit_mid_invoke_is_a_crash_seen_at_once(action, reason):
    async def scenario(host):
        env = await ready_env(host, timeout_s=30.0)
        started = time.monotonic()
        result = await env.invoke(request({"action": action}, "r-crash", timeout_s=30.0))
        return env, result, time.monotonic() - started

    env, result, waited = run(scenario)
    assert result.status is InvokeStatus.CRASH
    assert result.error_type == "Runtime.ExitError"
    assert json.loads(result.body) == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: r-crash Error: Runtime exited with error: {reason}",
    }
    assert f"handling {action} #1" in result.logs
    assert waited < 10  # reported by the fork server's reaper, not found at the 30 s deadline
    assert env.state is EnvironmentState.DEAD


def test_timeout_kills_the_environment_at_the_deadline():
    async def scenario(host):
        env = await ready_env(host, timeout_s=0.5)
        pid = env.pid
        result = await env.invoke(request({"action": "loop"}, "r-slow", timeout_s=0.5))
        return env, pid, result

    env, pid, result = run(scenario)
    assert result.status is InvokeStatus.TIMEOUT
    assert result.error_type == "Sandbox.Timedout"
    assert json.loads(result.body) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": "RequestId: r-slow Error: Task timed out after 0.50 seconds",
    }
    assert result.duration_s >= 0.45
    assert env.state is EnvironmentState.DEAD
    assert gone(pid)


def test_memory_over_the_function_size_is_out_of_memory():
    async def scenario(host):
        env = await ready_env(host, memory_mb=64, timeout_s=20.0)
        return env, await env.invoke(request({"action": "hog", "mb": 900}, "r-hog", timeout_s=20.0))

    env, result = run(scenario)
    assert result.status is InvokeStatus.CRASH
    assert result.error_type == "Runtime.OutOfMemory"
    assert (
        json.loads(result.body)["errorMessage"] == "RequestId: r-hog Error: Runtime exited with error: signal: killed"
    )
    assert result.max_memory_used_mb >= 60
    assert env.state is EnvironmentState.DEAD


def test_on_demand_init_past_its_cap_is_retried_in_the_first_invoke():
    async def scenario(host):
        spec = dict(folder="slow_init", init_cap_s=0.3, user_environment={"SLOW_INIT_S": "0.8"}, timeout_s=5.0)
        env = await host.spawn(make_spec(**spec))
        first_pid = env.pid
        init = await env.wait_ready()
        result = await env.invoke(request({}, "r-first", timeout_s=5.0))
        assert env.state is EnvironmentState.READY
        return env, first_pid, init, result

    env, first_pid, init, result = run(scenario)
    assert not init.ok and init.status == "timeout" and init.retry_in_invoke
    assert "slow init begins" in init.logs
    assert result.status is InvokeStatus.SUCCESS
    assert json.loads(result.body) == {"ok": True}
    assert result.init_duration_s >= 0.75  # INIT ran again, to completion, inside the invoke
    assert "Phase: init\tStatus: timeout" in init.logs  # INIT_REPORT of the INIT that ran past its cap
    assert result.logs.startswith("START RequestId: r-first") and "slow init ends" in result.logs  # the re-run
    assert env.pid != first_pid and gone(first_pid)


def test_retried_init_longer_than_the_function_timeout_times_out():
    async def scenario(host):
        spec = dict(folder="slow_init", init_cap_s=0.2, user_environment={"SLOW_INIT_S": "5"}, timeout_s=0.6)
        env = await host.spawn(make_spec(**spec))
        await env.wait_ready()
        return env, await env.invoke(request({}, "r-first", timeout_s=0.6))

    env, result = run(scenario)
    assert result.status is InvokeStatus.TIMEOUT
    assert json.loads(result.body)["errorMessage"] == "RequestId: r-first Error: Task timed out after 0.60 seconds"
    assert env.state is EnvironmentState.DEAD


def test_environment_sees_only_reserved_and_function_variables(monkeypatch):
    monkeypatch.setenv("LAMBDALAB_HOST_SECRET", "do-not-leak")

    async def scenario(host):
        env = await ready_env(host, user_environment={"TABLE_NAME": "orders"})
        return env, await env.invoke(request({"action": "env"}))

    env, result = run(scenario)
    seen = json.loads(result.body)
    environ = seen["environ"]
    assert "LAMBDALAB_HOST_SECRET" not in environ
    assert environ["TABLE_NAME"] == "orders"
    assert environ["AWS_LAMBDA_RUNTIME_API"] == env.server.address
    assert environ["AWS_ACCESS_KEY_ID"] == constants.FAKE_ACCESS_KEY_ID
    assert environ["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    code_dir = str((FIXTURES / "basic").resolve())
    assert seen["cwd"] == code_dir
    assert seen["path0"] == code_dir


def test_context_carries_request_headers():
    custom = {"custom": {"tenant": "a"}, "client": None, "env": None}
    client_context = base64.b64encode(json.dumps(custom).encode()).decode()
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"

    async def scenario(host):
        env = await ready_env(host)
        req = request({"action": "context"}, "r-ctx", timeout_s=2.0, trace_header=trace, client_context=client_context)
        return await env.invoke(req)

    seen = json.loads(run(scenario).body)
    assert seen["request_id"] == "r-ctx"
    assert seen["arn"] == ARN
    assert 0 < seen["remaining_ms"] <= 2000
    assert seen["client_context"] == {"tenant": "a"}
    assert seen["trace"] == trace


def test_lines_written_just_before_the_response_are_kept():
    async def scenario(host):
        env = await ready_env(host)
        return [await env.invoke(request({"action": "many_lines", "lines": 3000}, f"r{i}")) for i in range(3)]

    for result in run(scenario):
        lines = result.logs.splitlines()
        assert lines[0].startswith("START ") and lines[-2].startswith("END ") and lines[-1].startswith("REPORT ")
        assert lines[2:3002] == [f"line {i}" for i in range(3000)]
        assert lines[-3] == "last line on stderr"


def test_response_over_6_mb_is_a_function_error():
    async def scenario(host):
        env = await ready_env(host, memory_mb=512)
        return await env.invoke(request({"action": "big", "size": constants.SYNC_PAYLOAD_LIMIT + 10}, "r-big"))

    result = run(scenario)
    assert result.status is InvokeStatus.FUNCTION_ERROR
    assert result.error_type == "Function.ResponseSizeTooLarge"


def test_runtime_api_rejects_wrong_request_ids_and_paths():
    async def scenario(host):
        env = await ready_env(host)
        base = f"http://{env.server.address}/2018-06-01/runtime"
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/invocation/not-current/response", data=b"{}") as resp:
                wrong_id = (resp.status, await resp.json())
            async with session.get(f"{base}/nothing-here") as resp:
                unknown = resp.status
            async with session.post(f"{base}/init/error", data=b"{}") as resp:
                late_init_error = resp.status
        still_works = await env.invoke(request({"action": "echo"}))
        return wrong_id, unknown, late_init_error, still_works

    wrong_id, unknown, late_init_error, still_works = run(scenario)
    assert wrong_id[0] == 403 and wrong_id[1]["errorType"] == "InvalidRequestID"
    assert unknown == 404
    assert late_init_error == 403
    assert still_works.status is InvokeStatus.SUCCESS


def test_lifecycle_rejects_illegal_transitions():
    async def scenario(host):
        env = await ready_env(host)
        with pytest.raises(IllegalTransition):
            env._transition(EnvironmentState.INIT)
        task = asyncio.create_task(env.invoke(request({"action": "loop"}, "r-busy", timeout_s=0.3)))
        await asyncio.sleep(0.05)
        assert env.state is EnvironmentState.BUSY
        with pytest.raises(IllegalTransition):
            await env.invoke(request({"action": "echo"}, "r-second"))  # one request at a time
        await task
        await env.kill()
        with pytest.raises(IllegalTransition):
            await env.invoke(request({"action": "echo"}, "r-dead"))
        return env

    env = run(scenario)
    assert env.state is EnvironmentState.DEAD


def test_function_logging_goes_once_through_the_runtimes_handler():
    async def scenario(host):
        env = await ready_env(host)
        return await env.invoke(request({"action": "log"}, "r-log"))

    result = run(scenario)
    warnings = [line for line in result.logs.splitlines() if "a warning from the handler" in line]
    assert len(warnings) == 1
    assert warnings[0].startswith("[WARNING]\t") and "\tr-log\t" in warnings[0]  # awslambdaric's text format
    assert "an info record" not in result.logs
    fds = json.loads(result.body)["fds"]
    assert len(fds) < 12, fds  # stdin/out/err, the runtime's sockets: nothing inherited from the fork server


def test_runtime_connections_have_nagle_off():
    async def scenario(host):
        env = await ready_env(host)
        await env.invoke(request({"action": "echo"}))
        return env.server.nodelay_flags()

    flags = run(scenario)
    assert flags and all(flags)


def test_a_bad_client_context_is_rejected_and_the_environment_stays_ready():
    async def scenario(host):
        env = await ready_env(host)
        with pytest.raises(ValueError, match="base64"):
            await env.invoke(request({"action": "echo"}, client_context="not base64!"))
        assert env.state is EnvironmentState.READY
        return await env.invoke(request({"action": "echo"}))

    assert run(scenario).status is InvokeStatus.SUCCESS


def test_an_inits_wait_for_this_machine_counts_its_run_queue_delay(monkeypatch):
    # GIVEN an INIT in progress (it sleeps), whose process the kernel reports 0.5 s runnable without a CPU since its
    # INIT began (a CPU shared with a storm's other INITs)
    from lambdalab.awslambda.runtime import environment

    async def scenario(host):
        env = await host.spawn(make_spec(folder="slow_init", user_environment={"SLOW_INIT_S": "0.6"}))
        while env.init_started_at is None:  # the INIT mark: the child's run-queue delay then is known
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        mark = env._clock.run_queue_at_mark or 0.0
        unloaded = env.init_waited_s(time.time())
        monkeypatch.setattr(environment, "run_queue_delay_s", lambda pid: mark + 0.5)
        await asyncio.sleep(environment.RUN_QUEUE_REREAD_S * 2)
        loaded = env.init_waited_s(time.time())
        await env.wait_ready()
        return unloaded, loaded, env.init_waited_s(time.time())

    unloaded, loaded, after = run(scenario)
    # THEN it is counted as waiting for this machine (with its fork and any CPU-gate wait); once over, None
    assert unloaded is not None and loaded is not None
    assert loaded == pytest.approx(unloaded + 0.5, abs=0.1)
    assert after is None
