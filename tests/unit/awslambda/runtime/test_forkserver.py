"""Environments see what the Lambda runtime gives them, on the runtime's Python; the SDK the fork server pre-imported
is handed back on import at its cost alone; a storm of INITs is reported as each INIT would take alone."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import time
from pathlib import Path

import pytest

from lambdalab.awslambda.runtime.environment import LocalCapacityError
from lambdalab.awslambda.runtime.host import ForkServerProcess, ProcessHost, Runtime
from lambdalab.awslambda.runtime.interpreters import UnsupportedRuntime, find_interpreter
from lambdalab.awslambda.runtime.probe import RuntimeCosts
from lambdalab.clock import Clocks
from tests.unit.awslambda.runtime.test_environment import make_spec, ready_env, request, run


def has_python(minor: str) -> bool:
    return not find_interpreter(f"python{minor}").fallback


@pytest.mark.skipif(not has_python("3.13"), reason="python3.13 is not installed on this machine")
def test_a_python313_function_runs_on_python_313_with_the_runtimes_sdk() -> None:
    async def scenario(host):
        env = await ready_env(host, folder="sdk", runtime="python3.13")
        result = await env.invoke(request({}))
        return json.loads(result.body), host.runtime("python3.13")

    body, runtime = run(scenario)
    assert body["python"].startswith("3.13.")
    assert body["boto3_file"].startswith(str(runtime.site))  # the runtime's packages, never the lab's venv
    assert body["same_botocore"] is True  # the handed-back modules are one consistent set
    assert not any(".venv" in p for p in body["path"]), body["path"]


def test_the_labs_own_packages_are_not_importable() -> None:
    async def scenario(host):
        env = await ready_env(host, folder="lab_import", runtime="python3.13")
        result = await env.invoke(request({"modules": ["moto", "aiohttp", "lambdalab", "psutil", "boto3", "json"]}))
        return json.loads(result.body)

    body = run(scenario)
    assert body["importable"] == {
        "moto": False, "aiohttp": False, "lambdalab": False, "psutil": False, "boto3": True, "json": True,
    }  # fmt: skip


def test_a_pre_imported_module_is_invisible_until_imported() -> None:
    # GIVEN a function that never imports boto3 (the fork server has it in memory)
    async def scenario(host):
        env = await ready_env(host, folder="lab_import", runtime="python3.13")
        first = json.loads((await env.invoke(request({"modules": []}, "r-1"))).body)
        second = json.loads((await env.invoke(request({"modules": ["boto3"]}, "r-2"))).body)
        third = json.loads((await env.invoke(request({"modules": []}, "r-3"))).body)
        return first, second, third

    first, second, third = run(scenario)
    # THEN it does not see boto3 in sys.modules, until it imports it
    assert "boto3" not in first["loaded"] and "botocore" not in first["loaded"]
    assert second["importable"] == {"boto3": True}
    assert {"boto3", "botocore", "urllib3"} <= set(third["loaded"])


def test_a_function_that_ships_its_own_sdk_imports_its_own() -> None:
    async def scenario(host):
        env = await ready_env(host, folder="own_sdk", runtime="python3.13")
        return json.loads((await env.invoke(request({}))).body)

    body = run(scenario)
    assert body["boto3_version"] == "0.0.own"
    assert "own_sdk" in body["boto3_file"]


def test_a_package_the_function_does_not_ship_is_an_import_module_error() -> None:
    async def scenario(host):
        env = await host.spawn(make_spec(folder="needs_requests", runtime="python3.13"))
        return await env.wait_ready()

    init = run(scenario)
    assert not init.ok
    assert init.error_type == "Runtime.ImportModuleError"
    assert "No module named 'requests'" in (init.error_message or "")


def test_importing_the_sdk_costs_its_measured_time_and_its_memory_counts_from_then() -> None:
    # GIVEN a function that imports boto3 during INIT and one that does not
    async def scenario(host):
        plain = await ready_env(host, env_id="plain", folder="basic", runtime="python3.13")
        sdk = await host.spawn(make_spec(env_id="sdk", folder="sdk", runtime="python3.13"))
        sdk_init = await sdk.wait_ready()
        plain_result = await plain.invoke(request({"action": "echo"}, "r-plain"))
        sdk_result = await sdk.invoke(request({}, "r-sdk"))
        costs = host.runtime("python3.13").costs
        return sdk_init, json.loads(sdk_result.body), plain_result, sdk_result, costs

    sdk_init, body, plain_result, sdk_result, costs = run(scenario)
    # THEN the import took (as a wait) what it costs alone, and the INIT includes it and the runtime's own start
    assert body["import_s"] == pytest.approx(costs.import_cost("boto3"), rel=0.5, abs=0.02)
    assert sdk_init.init_duration_s >= costs.startup_s + costs.import_cost("boto3")
    # AND the SDK's pages count in Max Memory Used only for the function that imported it
    assert sdk_result.max_memory_used_mb - plain_result.max_memory_used_mb >= costs.preload_rss / 2**20 / 2


def test_the_sdk_data_every_client_reads_is_handed_over_parsed_at_its_cost_alone() -> None:
    # GIVEN a function that makes a boto3 client during INIT
    async def scenario(host):
        sdk = await ready_env(host, env_id="sdk-data", folder="sdk", runtime="python3.13")
        body = json.loads((await sdk.invoke(request({}, "r-data"))).body)
        return body, host.runtime("python3.13").costs

    body, costs = run(scenario)
    parse_alone = sum(costs.data_s.values())
    assert {"endpoints", "partitions"} <= set(costs.data_s) and parse_alone > 0.002
    # THEN making the client took at least what parsing that data alone costs (a wait) ...
    assert body["client_s"] >= 0.9 * parse_alone
    # ... but not its CPU: the fork server had parsed it (the CPU clock counts only what this process ran)
    assert body["client_cpu_s"] <= body["client_s"] - 0.5 * parse_alone


def test_a_storm_of_inits_is_reported_as_each_would_take_alone() -> None:
    # GIVEN the INIT of a boto3 function measured alone, three times
    async def scenario(host):
        alone = []
        for i in range(3):
            env = await host.spawn(make_spec(env_id=f"alone-{i}", folder="sdk", runtime="python3.13"))
            alone.append((await env.wait_ready()).init_duration_s)
        # WHEN 16 start at once on this machine's cores (one INIT token)
        envs = await asyncio.gather(
            *(host.spawn(make_spec(env_id=f"storm-{i}", folder="sdk", runtime="python3.13")) for i in range(16))
        )
        started = time.monotonic()
        inits = await asyncio.gather(*(env.wait_ready() for env in envs))
        return alone, inits, time.monotonic() - started

    alone, inits, wall = run_with_gate(scenario, capacity=1)
    # THEN none failed, each INIT reads within 25 % of alone, and the time spent waiting for the machine is apart
    assert all(i.ok for i in inits), [i.error_message for i in inits if not i.ok]
    ratio = statistics.median(i.init_duration_s for i in inits) / statistics.median(alone)
    assert 0.75 <= ratio <= 1.25, (ratio, alone, [i.init_duration_s for i in inits])
    waited = [i.local_wait_s for i in inits]
    assert max(waited) > 0.2  # sixteen INITs through one token: the later ones queued
    assert wall >= max(i.init_duration_s for i in inits)


def test_an_init_never_reads_shorter_than_it_slept() -> None:
    # GIVEN 30 INITs that each sleep 0.5 s, started at once through one CPU token
    async def scenario(host):
        envs = await asyncio.gather(
            *(
                host.spawn(make_spec(env_id=f"sleepy-{i}", folder="slow_init", user_environment={"SLOW_INIT_S": "0.5"}))
                for i in range(30)
            )
        )
        return await asyncio.gather(*(env.wait_ready() for env in envs))

    inits = run_with_gate(scenario, capacity=1)
    # THEN whatever each waited for the machine, none is reported shorter than its sleep (asleep is not waiting)
    assert all(i.ok for i in inits)
    assert min(i.init_duration_s for i in inits) >= 0.5, sorted(round(i.init_duration_s, 3) for i in inits)[:5]


def run_with_gate(scenario, capacity: int):
    async def main():
        host = ProcessHost(init_concurrency=capacity, clocks=Clocks.wall())
        await host.start()
        try:
            return await scenario(host)
        finally:
            await host.stop()

    return asyncio.run(main())


async def test_a_full_fork_server_socket_makes_a_spawn_wait_not_fail() -> None:
    # GIVEN a fork server whose control socket is full (it is busy and reads nothing)
    interpreter = find_interpreter("python3.13")
    runtime = Runtime("python3.13", interpreter, Path("/nowhere"), RuntimeCosts(0.0, {}, {}, 0))
    server = ForkServerProcess(ProcessHost(clocks=Clocks.wall()), runtime)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server.use_socket(ours)
    filler = b"x" * 4096
    with pytest.raises(BlockingIOError):
        while True:
            ours.send(filler)
    # WHEN a spawn request is sent
    sending = asyncio.ensure_future(server.send({"op": "spawn", "env_id": "e"}))
    await asyncio.sleep(0.3)
    # THEN it waits (no error, however long) ...
    assert not sending.done()
    # ... and goes out as soon as the fork server reads
    theirs.setblocking(False)
    drained = 0
    while True:
        try:
            drained += len(theirs.recv(65536))
        except BlockingIOError:
            break
    await asyncio.wait_for(sending, timeout=5)
    assert json.loads(theirs.recv(65536)) == {"op": "spawn", "env_id": "e"}
    assert drained > 0
    # AND a fork server that is gone (its end closed) is a local error, never an AWS one
    theirs.close()
    await asyncio.sleep(0.05)  # the host sees the end of the socket
    assert server.gone
    with pytest.raises(LocalCapacityError, match=r"the python3\.13 fork server is not running"):
        await server.send({"op": "spawn", "env_id": "f"})


def test_spawns_of_a_runtime_this_machine_cannot_prepare_fail_clearly() -> None:
    async def scenario(host):
        with pytest.raises(UnsupportedRuntime, match=r"'python2\.7' is not a Python runtime"):
            await host.spawn(make_spec(runtime="python2.7"))

    run(scenario)
