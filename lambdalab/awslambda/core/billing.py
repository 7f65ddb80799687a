"""What Lambda bills for one invocation: pure, shared by the REPORT line, the run records and the simulator."""

from __future__ import annotations

import math


def billed_duration_ms(duration_s: float, init_duration_s: float | None = None) -> int:
    """Billed Duration: the invoke's duration plus, on an on-demand cold start, its INIT — billed since 1 August 2025
    for on-demand ZIP functions on managed runtimes (AWS Compute Blog, "AWS Lambda standardizes billing for INIT
    Phase") — rounded up to the next millisecond. Pass `init_duration_s` only for on-demand cold starts: provisioned
    concurrency's INIT is billed as provisioned time, not per invocation."""
    return math.ceil((duration_s + (init_duration_s or 0.0)) * 1000 - 1e-9)
