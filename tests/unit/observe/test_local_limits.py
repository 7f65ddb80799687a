"""A plain line when this machine, not Lambda, made calls wait or fail; nothing when it kept up."""

from __future__ import annotations

from dataclasses import replace

from lambdalab.observe.local_limits import LocalLimits
from lambdalab.observe.model import InvocationRecord

BASE = InvocationRecord(
    request_id="r", function_name="fn", function_arn="arn", qualifier="$LATEST", version="$LATEST",
    invocation_type="RequestResponse", outcome="success", start_kind="cold", spillover=False, environment_id="e",
    received_at=1.0, init_start=1.0, init_duration_s=0.3, invoke_start=1.5, invoke_end=1.6, duration_s=0.1,
    billed_duration_ms=400, memory_mb=128, max_memory_used_mb=60,
)  # fmt: skip


def test_nothing_to_say_when_the_machine_kept_up() -> None:
    limits = LocalLimits()
    limits.record(BASE)
    limits.record(replace(BASE, local_wait_s=0.01))  # a little run-queue delay is noise
    assert limits.take(10) is None


def test_waits_and_local_errors_are_said_once_per_window() -> None:
    limits = LocalLimits()
    limits.record(replace(BASE, init_local_wait_s=1.5, local_wait_s=1.6))
    limits.record(replace(BASE, init_local_wait_s=0.5, local_wait_s=0.5))
    limits.record(replace(BASE, outcome="local_error", start_kind="cold"))
    line = limits.take(10)
    assert line is not None
    assert "this machine limited the last 10 s" in line
    assert "2 INITs waited 2.0 s for a CPU" in line and "invocations waited 0.1 s more" in line
    assert "1 calls failed for a local reason" in line and "not Lambda's behaviour" in line
    assert limits.take(10) is None  # the window was taken
    assert limits.total.inits_waited == 2 and limits.total.local_errors == 1
