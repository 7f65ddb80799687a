"""Factories for the observers' tests: invocation records as the Lambda service would produce them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from lambdalab.observe.model import InvocationRecord

T0 = 1_763_799_960.0  # an epoch second on a minute boundary (2025-11-22T08:26:00Z)


def build_record(**overrides: Any) -> InvocationRecord:
    """A warm, successful synchronous invocation of ``fn`` received at T0 + 1, with any field overridden."""
    received = overrides.pop("received_at", T0 + 1.0)
    fields: dict[str, Any] = {
        "request_id": "11111111-2222-3333-4444-555555555555",
        "function_name": "fn",
        "function_arn": "arn:aws:lambda:us-east-1:123456789012:function:fn",
        "qualifier": "$LATEST",
        "version": "$LATEST",
        "invocation_type": "RequestResponse",
        "outcome": "success",
        "start_kind": "warm",
        "spillover": False,
        "environment_id": "env-1",
        "received_at": received,
        "init_start": None,
        "init_duration_s": None,
        "invoke_start": received + 0.001,
        "invoke_end": received + 0.101,
        "duration_s": 0.1,
        "billed_duration_ms": 100,
        "memory_mb": 128,
        "max_memory_used_mb": 40,
    }
    fields.update(overrides)
    return InvocationRecord(**fields)


@pytest.fixture
def make_record() -> Callable[..., InvocationRecord]:
    return build_record
