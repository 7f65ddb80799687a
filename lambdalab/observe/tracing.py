"""X-Ray trace headers (``X-Amzn-Trace-Id``) and trace / segment id generation."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field

LOG = logging.getLogger(__name__)

TRACE_ID_RE = re.compile(r"^1-[0-9a-f]{8}-[0-9a-f]{24}$")
SEGMENT_ID_RE = re.compile(r"^[0-9a-f]{16}$")

HEADER_NAME = "X-Amzn-Trace-Id"
LAMBDA_ENV_VAR = "_X_AMZN_TRACE_ID"  # what the runtime sets from the Lambda-Runtime-Trace-Id header


def new_trace_id(epoch: float) -> str:
    """``1-<8 hex: epoch seconds>-<24 hex: random>``, the X-Ray trace id format (`epoch`: the caller's clock)."""
    seconds = int(epoch)
    return f"1-{seconds:08x}-{os.urandom(12).hex()}"


def new_segment_id() -> str:
    """16 random hex digits, never all zeros."""
    while True:
        candidate = os.urandom(8).hex()
        if candidate != "0" * 16:
            return candidate


def is_trace_id(value: str | None) -> bool:
    return bool(value) and TRACE_ID_RE.match(value or "") is not None


def is_segment_id(value: str | None) -> bool:
    return bool(value) and SEGMENT_ID_RE.match(value or "") is not None


@dataclass(frozen=True)
class TraceHeader:
    """``Root=1-...;Parent=...;Sampled=1;Lineage=...``; ``sampled`` is True, False or None ("?" or absent).

    Keys the lab does not interpret (``Self``, custom ones) are kept in ``extra`` and written back in order.
    """

    root: str | None = None
    parent: str | None = None
    sampled: bool | None = None
    lineage: str | None = None
    extra: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def parse(cls, header: str | None) -> TraceHeader:
        """Lenient like the SDKs: unknown keys are kept, malformed parts are dropped, never an exception."""
        if not header:
            return cls()
        root = parent = lineage = None
        sampled: bool | None = None
        extra: list[tuple[str, str]] = []
        for part in header.split(";"):
            key, sep, value = part.strip().partition("=")
            if not sep:
                continue
            key, value = key.strip(), value.strip()
            lowered = key.lower()
            if lowered == "root":
                root = value if is_trace_id(value) else None
                if root is None:
                    LOG.debug("ignoring malformed trace root %r", value)
            elif lowered == "parent":
                parent = value if is_segment_id(value) else None
            elif lowered == "sampled":
                sampled = {"1": True, "0": False}.get(value)
            elif lowered == "lineage":
                lineage = value or None
            else:
                extra.append((key, value))
        return cls(root=root, parent=parent, sampled=sampled, lineage=lineage, extra=tuple(extra))

    def format(self) -> str:
        parts = []
        if self.root:
            parts.append(f"Root={self.root}")
        if self.parent:
            parts.append(f"Parent={self.parent}")
        if self.sampled is not None:
            parts.append(f"Sampled={1 if self.sampled else 0}")
        if self.lineage:
            parts.append(f"Lineage={self.lineage}")
        parts.extend(f"{key}={value}" for key, value in self.extra)
        return ";".join(parts)

    def __str__(self) -> str:
        return self.format()
