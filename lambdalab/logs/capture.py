"""How a function's output becomes log events: stdout split per line, awslambdaric's telemetry frames one per record.

On Lambda the Python runtime client (awslambdaric, which our environments run) writes every `logging` record and its
own error records as *frames* to the file descriptor named by ``_LAMBDA_TELEMETRY_LOG_FD``: 4 bytes of frame type
(``0xa55a0003`` text, with the level in the low byte; ``0xa55a0002``… for JSON), 4 bytes of length, 8 bytes of
timestamp in microseconds, then the message (awslambdaric ``FramedTelemetryLogSink``). So a multi-line record (a
traceback, ``logger.info("a\\nb")``) is one event, stamped when it was written. Anything else the function writes
(``print``, ``sys.stdout.write``, C extensions) goes to stdout and stderr, which Lambda splits at each newline.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

from lambdalab.logs import formats

# awslambdaric lambda_runtime_log_utils: _TEXT_FRAME_TYPES / _JSON_FRAME_TYPES
_FRAME_LEVELS = {
    0xA55A0003: (None, False),
    0xA55A000B: ("DEBUG", False),
    0xA55A000F: ("INFO", False),
    0xA55A0013: ("WARN", False),
    0xA55A0017: ("ERROR", False),
    0xA55A001B: ("FATAL", False),
    0xA55A0002: (None, True),
    0xA55A000A: ("DEBUG", True),
    0xA55A000E: ("INFO", True),
    0xA55A0012: ("WARN", True),
    0xA55A0016: ("ERROR", True),
    0xA55A001A: ("FATAL", True),
}
_HEADER = struct.Struct(">IIQ")
# A frame longer than this is not a frame: the stream is corrupt (the runtime died mid-write). Lambda's own limit
# for one event is 256 KB; awslambdaric does not split, so allow far more before declaring the stream broken.
MAX_FRAME_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Captured:
    """One log event from the function, before it is filtered and written."""

    timestamp_ms: int
    message: str
    level: str | None = None  # from the frame type, or a JSON line's "level"; None: not known (counts as INFO)


class LineSplitter:
    """Incremental stdout/stderr splitting: one event per line (the newline kept, as CloudWatch shows it).

    A line is stamped with the time its first byte was read. Bytes are decoded per complete line, so a UTF-8
    character split across two reads is kept whole; undecodable bytes become U+FFFD.
    """

    def __init__(self) -> None:
        self._pending = bytearray()
        self._pending_ts: int | None = None

    def feed(self, data: bytes, timestamp_ms: int) -> list[Captured]:
        out: list[Captured] = []
        start = 0
        while True:
            newline = data.find(b"\n", start)
            if newline < 0:
                break
            piece = data[start : newline + 1]
            if self._pending:
                self._pending += piece
                line = bytes(self._pending)
                stamp = self._pending_ts if self._pending_ts is not None else timestamp_ms
                self._pending.clear()
                self._pending_ts = None
            else:
                line, stamp = piece, timestamp_ms
            out.append(Captured(stamp, line.decode("utf-8", errors="replace")))
            start = newline + 1
        if start < len(data):
            if not self._pending:
                self._pending_ts = timestamp_ms
            self._pending += data[start:]
        return out

    def flush(self) -> list[Captured]:
        """The unterminated rest (the function's last words before the invoke ended, it exited or was killed)."""
        if not self._pending:
            return []
        line = Captured(self._pending_ts or 0, bytes(self._pending).decode("utf-8", errors="replace"))
        self._pending.clear()
        self._pending_ts = None
        return [line]


class FrameDecoder:
    """Incremental decoding of awslambdaric's telemetry frames (one event per frame, its own timestamp and level)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.corrupt = False

    def feed(self, data: bytes) -> list[Captured]:
        self._buffer += data
        out: list[Captured] = []
        offset = 0
        buffer = self._buffer
        while len(buffer) - offset >= _HEADER.size:
            frame_type, length, micros = _HEADER.unpack_from(buffer, offset)
            if frame_type not in _FRAME_LEVELS or length > MAX_FRAME_BYTES:
                # Not a frame: keep what follows as text rather than lose it.
                self.corrupt = True
                rest = bytes(buffer[offset:]).decode("utf-8", errors="replace")
                out.append(Captured(0, rest))
                offset = len(buffer)
                break
            end = offset + _HEADER.size + length
            if end > len(buffer):
                break
            level, _is_json = _FRAME_LEVELS[frame_type]
            message = bytes(buffer[offset + _HEADER.size : end]).decode("utf-8", errors="replace")
            out.append(Captured(micros // 1000, message, level))
            offset = end
        del buffer[:offset]
        return out

    def flush(self) -> list[Captured]:
        """An incomplete last frame (the process died mid-write) as text, so its bytes are not lost."""
        if not self._buffer:
            return []
        rest = bytes(self._buffer)
        self._buffer.clear()
        body = rest[_HEADER.size :] if len(rest) >= _HEADER.size else rest
        return [Captured(0, body.decode("utf-8", errors="replace"))]

    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered."""
        return len(self._buffer)


def encode_frame(message: str, timestamp_us: int, level: str | None = None, *, json_format: bool = False) -> bytes:
    """A frame as awslambdaric writes it (for tests and fakes)."""
    wanted = (level, json_format)
    frame_type = next(t for t, v in _FRAME_LEVELS.items() if v == wanted)
    body = message.encode()
    return _HEADER.pack(frame_type, len(body), timestamp_us) + body


def json_level(message: str) -> str | None:
    """The "level" of a stdout line that is a JSON object; None when it is not one or has none (Lambda: INFO)."""
    text = message.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    level = parsed.get("level") if isinstance(parsed, dict) else None
    return level.upper() if isinstance(level, str) and level.upper() in formats.LEVEL_RANK else None


def application_passes(event: Captured, log_format: str, application_level: str | None) -> bool:
    """ApplicationLogLevel filtering: JSON format only (Lambda: "To use log-level filtering, your function must be
    configured to use the JSON log format"); a line without a valid level counts as INFO."""
    if log_format != formats.JSON or application_level is None:
        return True
    level = event.level or json_level(event.message)
    return formats.passes(level, application_level)
