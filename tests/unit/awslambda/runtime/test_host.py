"""The process host: it spawns environments from its fork server, keeps their table, and leaves no process behind
when it stops or dies."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from lambdalab.awslambda.hosting import InvokeStatus
from lambdalab.awslambda.runtime.environment import EnvironmentState
from lambdalab.awslambda.runtime.host import ProcessHost
from lambdalab.clock import Clocks

from .test_environment import gone, make_spec, ready_env, request, run


def test_kill_and_stop_leave_no_process_behind():
    pids: list[int] = []
    before = {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}  # a session fixture's cloud, say

    async def scenario(host):
        envs = [await host.spawn(make_spec(f"env-{i}")) for i in range(3)]
        for env in envs:
            await env.wait_ready()
        pids.extend([host.forkserver_pid, *(env.pid for env in envs)])
        await envs[0].kill()
        assert envs[0].state is EnvironmentState.DEAD and gone(envs[0].pid)
        busy = asyncio.create_task(envs[1].invoke(request({"action": "loop"}, "r-loop", timeout_s=30)))
        await asyncio.sleep(0.05)
        children = psutil.Process(host.forkserver_pid).children(recursive=True)
        assert {p.pid for p in children} == {envs[1].pid, envs[2].pid}
        return busy

    async def main():
        host = ProcessHost(clocks=Clocks.wall())
        await host.start()
        busy = await scenario(host)
        await host.stop()
        result = await busy  # the in-flight invoke ends (as a crash) when the host stops
        return result

    result = asyncio.run(main())
    assert result.status is InvokeStatus.CRASH
    for pid in pids:
        assert gone(pid), pid
    left = psutil.Process(os.getpid()).children(recursive=True)
    assert not [p for p in left if p.pid not in before and p.status() != psutil.STATUS_ZOMBIE]


HOST_SCRIPT = """
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from lambdalab.awslambda.runtime.host import ProcessHost
from lambdalab.clock import Clocks
from tests.unit.awslambda.runtime.test_environment import make_spec

async def main():
    host = ProcessHost(clocks=Clocks.wall())
    await host.start()
    envs = [await host.spawn(make_spec(f"env-{i}")) for i in range(2)]
    for env in envs:
        await env.wait_ready()
    print(json.dumps([host.forkserver_pid, *(env.pid for env in envs)]), flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_a_crashed_host_leaves_no_process_behind(tmp_path):
    # GIVEN a host process with a fork server and two environments
    script = tmp_path / "host.py"
    script.write_text(HOST_SCRIPT)
    repo = Path(__file__).resolve().parents[4]
    proc = subprocess.Popen([sys.executable, str(script), str(repo)], stdout=subprocess.PIPE, text=True)
    try:
        pids = json.loads(proc.stdout.readline())
        assert len(pids) == 3 and all(psutil.pid_exists(pid) for pid in pids)
        # WHEN the host dies without stopping anything
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        # THEN the fork server and the environments die with it (PR_SET_PDEATHSIG)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(gone(pid) for pid in pids):
            time.sleep(0.02)
        assert all(gone(pid) for pid in pids), [pid for pid in pids if not gone(pid)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()


def test_dead_environments_leave_the_hosts_table():
    async def scenario(host):
        env = await ready_env(host)
        await env.invoke(request({"action": "exit"}, "r-exit"))
        deadline = time.monotonic() + 5
        while env.spec.env_id in host.environments and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert env.spec.env_id not in host.environments
        again = await ready_env(host)  # the same id can be used for a new environment
        return again

    env = run(scenario)
    assert env.state is EnvironmentState.DEAD  # stopped with the host


def test_spawn_rejects_a_missing_code_directory(tmp_path):
    async def scenario(host):
        with pytest.raises(ValueError, match="does not exist"):
            await host.spawn(make_spec(code_dir=tmp_path / "missing"))
        return host.environments

    assert run(scenario) == {}
