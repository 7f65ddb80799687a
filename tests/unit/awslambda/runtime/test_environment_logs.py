"""What a real execution environment writes to its CloudWatch Logs stream: every byte, in order, in Lambda's lines."""

from __future__ import annotations

import asyncio
import json
import re

from lambdalab.awslambda.hosting import InvokeStatus
from lambdalab.awslambda.runtime.host import ProcessHost
from lambdalab.clock import Clocks, EpochClock
from lambdalab.logs.function import FunctionLogs, LoggingConfig
from lambdalab.logs.store import LogStore
from lambdalab.logs.writer import LogWriter

from .test_environment import make_spec, request

REPORT = re.compile(
    r"REPORT RequestId: (?P<rid>\S+)\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\tMemory Size: 128 MB\t"
    r"Max Memory Used: \d+ MB\t(?P<init>Init Duration: [\d.]+ ms\t)?(?P<status>Status: .*)?\n"
)


def run_logged(scenario):
    """Run `scenario(host)` on a host whose environments write into a fresh store; returns (result, store)."""
    store = LogStore("us-east-1", "123456789012", epoch=EpochClock())
    writer = LogWriter(store, interval_s=0)

    async def main():
        writer.start()
        host = ProcessHost(
            logs=FunctionLogs(writer, region="us-east-1", account_id="123456789012", epoch=EpochClock()),
            clocks=Clocks.wall(),
        )
        await host.start()
        try:
            return await scenario(host)
        finally:
            await host.stop()
            writer.close()

    return asyncio.run(main()), store


def stream_messages(store: LogStore, group: str = "/aws/lambda/fn") -> dict[str, list[str]]:
    return {s.name: [e.message for e in s.events] for s in store.group(group).streams.values()}


def test_one_stream_per_environment_with_init_start_report_and_init_duration_on_the_cold_call_only():
    async def scenario(host):
        envs = [await host.spawn(make_spec(f"env-{i}")) for i in range(2)]
        for env in envs:
            assert (await env.wait_ready()).ok
        first = await envs[0].invoke(request({"action": "stream"}, "cold-a"))
        warm = await envs[0].invoke(request({"action": "echo"}, "warm-a"))
        other = await envs[1].invoke(request({"action": "echo"}, "cold-b"))
        return envs, first, warm, other

    (envs, first, warm, _other), store = run_logged(scenario)
    streams = stream_messages(store)
    assert set(streams) == {env.log.stream for env in envs}  # one stream each, named as the environment was told
    assert json.loads(first.body) == {"stream": envs[0].log.stream, "group": "/aws/lambda/fn"}
    assert all(re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", name) for name in streams)
    lines = streams[envs[0].log.stream]
    assert lines[0].startswith("INIT_START Runtime Version: python:3.13.v0\tRuntime Version ARN: arn:aws:lambda:")
    assert lines[1:4] == [
        "init: module imported\n",
        "START RequestId: cold-a Version: $LATEST\n",
        "handling stream #1\n",
    ]
    assert lines[4] == "END RequestId: cold-a\n"
    cold = REPORT.fullmatch(lines[5])
    assert cold and cold["rid"] == "cold-a" and cold["init"] and not cold["status"]
    assert lines[6:9] == ["START RequestId: warm-a Version: $LATEST\n", "handling echo #2\n", "END RequestId: warm-a\n"]
    warm_report = REPORT.fullmatch(lines[9])
    assert warm_report and warm_report["rid"] == "warm-a" and not warm_report["init"]
    assert len(lines) == 10
    # the Invoke API's tail is what the stream got for that call
    assert first.logs == "".join(lines[2:6]) and warm.logs == "".join(lines[6:10])
    assert REPORT.fullmatch(streams[envs[1].log.stream][-1])["init"]  # the other environment's first call: cold


def test_a_logging_record_of_several_lines_is_one_event_and_print_lines_are_split():
    async def scenario(host):
        env = await host.spawn(make_spec())
        await env.wait_ready()
        return env, await env.invoke(request({"action": "traceback"}, "r-tb"))

    (env, result), store = run_logged(scenario)
    assert result.status is InvokeStatus.SUCCESS
    lines = stream_messages(store)[env.log.stream]
    (record,) = [m for m in lines if "it failed" in m]  # awslambdaric's frame: the record with its traceback
    assert record.startswith("[ERROR]\t") and "\tr-tb\tit failed\n" in record
    assert "Traceback (most recent call last):" in record and record.rstrip().endswith("RuntimeError: inner")


def test_last_words_before_a_crash_are_kept_then_the_exit_and_the_report():
    async def scenario(host):
        env = await host.spawn(make_spec())
        await env.wait_ready()
        return env, await env.invoke(request({"action": "last_words"}, "r-crash"))

    (env, result), store = run_logged(scenario)
    assert result.status is InvokeStatus.CRASH
    lines = stream_messages(store)[env.log.stream]
    start = lines.index("START RequestId: r-crash Version: $LATEST\n")
    assert lines[start + 1 :] == [
        "handling last_words #1\n",
        "my last words",
        "RequestId: r-crash Error: Runtime exited with error: exit status 1\nRuntime.ExitError\n",
        "END RequestId: r-crash\n",
        lines[-1],
    ]
    report = REPORT.fullmatch(lines[-1])
    assert report and report["status"] == "Status: error\tError Type: Runtime.ExitError\t"


def test_a_timeout_writes_its_line_after_the_report_and_output_before_it_is_kept():
    async def scenario(host):
        env = await host.spawn(make_spec(timeout_s=0.5))
        await env.wait_ready()
        return env, await env.invoke(request({"action": "sleep", "s": 5}, "r-slow", timeout_s=0.5))

    (env, result), store = run_logged(scenario)
    assert result.status is InvokeStatus.TIMEOUT
    lines = stream_messages(store)[env.log.stream]
    assert lines[-4:-2] == ["handling sleep #1\n", "END RequestId: r-slow\n"]
    assert REPORT.fullmatch(lines[-2])["status"] == "Status: timeout\t"
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z r-slow Task timed out after 0\.50 seconds\n", lines[-1]
    )


def test_an_init_failure_writes_the_error_record_and_init_report():
    async def scenario(host):
        env = await host.spawn(make_spec(folder="import_error"))
        return env, await env.wait_ready()

    (env, init), store = run_logged(scenario)
    assert not init.ok and init.error_type == "Runtime.ImportModuleError"
    lines = stream_messages(store)[env.log.stream]
    assert lines[0].startswith("INIT_START ")
    assert any(m.startswith("[ERROR] Runtime.ImportModuleError: Unable to import module 'app'") for m in lines)
    assert re.fullmatch(
        r"INIT_REPORT Init Duration: [\d.]+ ms\tPhase: init\tStatus: error\tError Type: Runtime.ImportModuleError\n",
        lines[-1],
    )
    assert init.logs == "".join(lines)


def test_json_format_records_carry_level_and_request_id_and_levels_filter():
    config = LoggingConfig.from_api({"LogFormat": "JSON", "ApplicationLogLevel": "WARN", "SystemLogLevel": "INFO"})

    async def scenario(host):
        env = await host.spawn(make_spec(logging=config))
        await env.wait_ready()
        return env, await env.invoke(request({"action": "log"}, "r-json"))

    (env, _), store = run_logged(scenario)
    records = [json.loads(m) for m in stream_messages(store)[env.log.stream] if m.startswith("{")]
    types = [r.get("type") or r.get("level") for r in records]
    # awslambdaric (AWS's own runtime client) names Python's level: WARNING; the INFO record is below WARN
    assert types == ["platform.initStart", "platform.start", "WARNING", "platform.report"]
    warning = records[2]
    assert warning["message"] == "a warning from the handler" and warning["requestId"] == "r-json"
    assert records[-1]["record"]["requestId"] == "r-json" and "initDurationMs" in records[-1]["record"]["metrics"]
