"""A fake execution-environment driver: feeds EnvironmentLog the sequence Lambda produces and checks the streams.

This is the harness for the environment wiring: the real environment layer must produce the same calls in the same
order (INIT_START, INIT output, START, output, END/REPORT; provisioned INIT before any request; crash; timeout).
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from lambdalab.clock import EpochClock
from lambdalab.logs import formats
from lambdalab.logs.capture import encode_frame
from lambdalab.logs.function import FunctionInfo, FunctionLogs, LoggingConfig
from lambdalab.logs.store import LogStore
from lambdalab.logs.writer import LogWriter

ARN = "arn:aws:lambda:us-east-1:123456789012:function:fn"


def setup(config: LoggingConfig = LoggingConfig()) -> tuple[LogStore, LogWriter, FunctionLogs, FunctionInfo]:
    store = LogStore("us-east-1", "123456789012", epoch=EpochClock())
    writer = LogWriter(store, interval_s=0)
    writer.start()
    return (
        store,
        writer,
        FunctionLogs(writer, region="us-east-1", account_id="123456789012", epoch=EpochClock()),
        FunctionInfo("fn", ARN, "python3.13", 128, config),
    )


def messages(store: LogStore, group: str, stream: str) -> list[str]:
    return [e.message for e in store.stream(group, stream).events]


def report(rid: str, init: float | None = None, **kw: object) -> formats.Report:
    return formats.Report(rid, 12.5, 13, 128, 50, init_duration_ms=init, **kw)  # type: ignore[arg-type]


def test_cold_then_warm_invocations_in_one_stream() -> None:
    store, writer, logs, fn = setup()
    env = logs.environment(fn, version="$LATEST", init_type="on-demand")
    env.init_start(1000)
    env.stdout(b"importing\n", 1001)
    env.start(1100, "r1")
    env.stdout(b"hello ", 1101)
    env.telemetry(encode_frame("[INFO]\t2026-11-22T08:00:01.102Z\tr1\tmulti\nline\n", 1_102_000, "INFO"))
    env.stdout(b"world\n", 1103)
    env.end(1200, report("r1", init=99.0))
    env.start(2000, "r2")
    env.end(2100, report("r2"))
    writer.close()
    assert [g.name for g in store.groups()] == ["/aws/lambda/fn"]
    got = messages(store, env.group, env.stream)
    assert got[0].startswith("INIT_START Runtime Version: python:3.13.v0\t")
    assert got[1:] == [
        "importing\n",
        "START RequestId: r1 Version: $LATEST\n",
        "[INFO]\t2026-11-22T08:00:01.102Z\tr1\tmulti\nline\n",  # one event, as awslambdaric framed it
        "hello world\n",
        "END RequestId: r1\n",
        formats.report_text(report("r1", init=99.0)),
        "START RequestId: r2 Version: $LATEST\n",
        "END RequestId: r2\n",
        formats.report_text(report("r2")),
    ]
    assert "Init Duration" in got[6] and "Init Duration" not in got[9]


def test_provisioned_environment_writes_init_before_any_request() -> None:
    store, writer, logs, fn = setup()
    env = logs.environment(fn, version="3", init_type="provisioned-concurrency")
    env.init_start(1000)
    env.stdout(b"ready\n", 1500)
    writer.flush()
    assert messages(store, env.group, env.stream)[1:] == ["ready\n"]
    assert "[3]" in env.stream
    writer.close()


def test_crash_keeps_last_words_and_writes_the_exit() -> None:
    store, writer, logs, fn = setup()
    env = logs.environment(fn, version="$LATEST", init_type="on-demand")
    env.init_start(1000)
    env.start(1100, "r1")
    env.stdout(b"about to exit", 1101)  # no newline: sys.exit right after
    env.end(
        1102,
        report("r1", status="error", error_type="Runtime.ExitError"),
        exit_reason="exit status 1",
    )
    env.close(1103)
    writer.close()
    got = messages(store, env.group, env.stream)
    assert got[2:] == [
        "about to exit",
        "RequestId: r1 Error: Runtime exited with error: exit status 1\nRuntime.ExitError\n",
        "END RequestId: r1\n",
        formats.report_text(report("r1", status="error", error_type="Runtime.ExitError")),
    ]


def test_timeout_writes_the_timed_out_line() -> None:
    store, writer, logs, fn = setup()
    env = logs.environment(fn, version="$LATEST", init_type="on-demand")
    env.start(1000, "r1")
    env.stdout(b"still working\n", 3999)
    env.end(4001, report("r1", status="timeout"), timeout_s=3)
    writer.close()
    got = messages(store, env.group, env.stream)
    assert got[-1] == "1970-01-01T00:00:04.001Z r1 Task timed out after 3.00 seconds\n"
    assert got[-2].endswith("Status: timeout\t\n") and got[0] == "START RequestId: r1 Version: $LATEST\n"


def test_init_failure_writes_init_report() -> None:
    store, writer, logs, fn = setup()
    env = logs.environment(fn, version="$LATEST", init_type="on-demand")
    env.init_start(1000)
    env.telemetry(encode_frame("[ERROR] Runtime.ImportModuleError: Unable to import module 'app'", 1_001_000, "ERROR"))
    env.init_report(1002, 2.0, status="error", error_type="Runtime.ImportModuleError")
    writer.close()
    assert messages(store, env.group, env.stream)[-1] == (
        "INIT_REPORT Init Duration: 2.00 ms\tPhase: init\tStatus: error\tError Type: Runtime.ImportModuleError\n"
    )


def test_json_format_with_levels_and_a_custom_group() -> None:
    config = LoggingConfig.from_api(
        {"LogFormat": "JSON", "ApplicationLogLevel": "WARN", "SystemLogLevel": "INFO", "LogGroup": "/shared"}
    )
    store, writer, logs, fn = setup(config)
    env = logs.environment(fn, version="$LATEST", init_type="on-demand")
    assert env.group == "/shared" and "/fn[$LATEST]" in env.stream
    assert config.runtime_variables() == {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "WARN"}
    env.init_start(1000)
    env.start(1100, "r1")
    env.stdout(b'{"level": "INFO", "message": "dropped"}\n{"level": "ERROR", "message": "kept"}\n', 1101)
    env.telemetry(encode_frame('{"level":"DEBUG","message":"dropped"}\n', 1_102_000, "DEBUG", json_format=True))
    env.end(1200, report("r1", init=5.0))
    writer.close()
    records = [json.loads(m) for m in messages(store, env.group, env.stream)]
    assert [r.get("type", r.get("level")) for r in records] == [
        "platform.initStart",
        "platform.start",
        "ERROR",
        "platform.report",
    ]
    assert records[-1]["record"]["metrics"]["initDurationMs"] == 5.0


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.binary(max_size=40), max_size=4), min_size=1, max_size=6), st.integers(0, 5))
def test_nothing_lost_or_reordered_across_environments(invocations: list[list[bytes]], skew: int) -> None:
    """Interleaved environments, chunks with clocks that step back: each stream has every byte, in order."""
    store, writer, logs, fn = setup()
    envs = [logs.environment(fn, version="$LATEST", init_type="on-demand") for _ in range(2)]
    clock = 1000
    for number, chunks in enumerate(invocations):
        env = envs[number % 2]
        env.start(clock, f"r{number}")
        for chunk in chunks:
            clock += 1
            env.stdout(chunk, clock - (skew if number % 3 == 0 else 0))  # a child's clock may lag
        env.end(clock + 1, report(f"r{number}"))
        clock += 2
    for env in envs:
        env.close(clock)
    writer.close()
    for index, env in enumerate(envs):
        mine = [c for n, c in enumerate(invocations) if n % 2 == index]
        if not mine:
            continue
        got = messages(store, env.group, env.stream)
        output = "".join(m for m in got if not m.startswith(("START ", "END ", "REPORT ")))
        assert output == "".join(b"".join(c).decode("utf-8", errors="replace") for c in mine) or output.replace(
            "\ufffd", ""
        ) == "".join(b"".join(c).decode("utf-8", errors="replace") for c in mine).replace("\ufffd", "")
        starts = [m for m in got if m.startswith("START ")]
        assert starts == [
            f"START RequestId: r{n} Version: $LATEST\n" for n in range(len(invocations)) if n % 2 == index
        ]
        stamps = [e.timestamp for e in store.stream(env.group, env.stream).events]
        assert stamps == sorted(stamps)
