"""Splitting a function's output into events: any chunking of the same bytes gives the same events."""

from __future__ import annotations

import os
import threading

from hypothesis import given
from hypothesis import strategies as st

from lambdalab.logs.capture import Captured, FrameDecoder, LineSplitter, application_passes, encode_frame

lines = st.lists(st.text(alphabet=st.characters(blacklist_characters="\n", blacklist_categories=("Cs",))), max_size=8)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, previous = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[previous:point])
        previous = point
    return pieces


@given(lines, st.booleans(), st.lists(st.integers(min_value=0, max_value=10_000), max_size=10))
def test_lines_survive_any_chunking(texts: list[str], terminated: bool, cuts: list[int]) -> None:
    data = "".join(t + "\n" for t in texts).encode() + (b"" if terminated else "tail \u00e9".encode())
    splitter = LineSplitter()
    events: list[Captured] = []
    for index, piece in enumerate(chunked(data, cuts)):
        events.extend(splitter.feed(piece, 1000 + index))
    events.extend(splitter.flush())
    expected = [t + "\n" for t in texts] + ([] if terminated else ["tail \u00e9"])
    assert [e.message for e in events] == expected
    stamps = [e.timestamp_ms for e in events]
    assert stamps == sorted(stamps)


def test_a_line_is_stamped_when_its_first_byte_arrived() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"hel", 10) == []
    assert splitter.feed(b"lo\nwor", 20) == [Captured(10, "hello\n")]
    assert splitter.flush() == [Captured(20, "wor")]


@given(
    st.lists(st.tuples(st.text(max_size=50), st.sampled_from([None, "DEBUG", "INFO", "WARN", "ERROR"]), st.booleans())),
    st.lists(st.integers(min_value=0, max_value=5000), max_size=10),
)
def test_frames_survive_any_chunking(records: list[tuple[str, str | None, bool]], cuts: list[int]) -> None:
    data = b"".join(
        encode_frame(m, 1_700_000_000_000_000 + i * 1000, lvl, json_format=j) for i, (m, lvl, j) in enumerate(records)
    )
    decoder = FrameDecoder()
    events: list[Captured] = []
    for piece in chunked(data, cuts):
        events.extend(decoder.feed(piece))
    assert [(e.message, e.level) for e in events] == [(m, lvl) for m, lvl, _ in records]
    assert [e.timestamp_ms for e in events] == [1_700_000_000_000 + i for i in range(len(records))]
    assert decoder.pending() == 0 and not decoder.corrupt


def test_awslambdaric_frames_decode_one_event_per_record(monkeypatch) -> None:
    """The real runtime client's sink, through a real pipe: a multi-line record and a traceback stay one event."""
    import logging

    from awslambdaric import bootstrap

    read_fd, write_fd = os.pipe()
    received = bytearray()
    reader = threading.Thread(target=lambda: received.extend(iter_read(read_fd)))
    reader.start()
    sink = bootstrap.FramedTelemetryLogSink(write_fd)
    with sink:
        handler = bootstrap.LambdaLoggerHandlerWithFrameType(sink)
        handler.setFormatter(logging.Formatter("[%(levelname)s]\t%(message)s\n"))
        record = logging.LogRecord("x", logging.WARNING, __file__, 1, "line one\nline two", None, None)
        handler.emit(record)
        bootstrap.log_error(bootstrap.make_error("boom", "ValueError", ['  File "app.py", line 3\n']), sink)
    reader.join(5)
    events = FrameDecoder().feed(bytes(received))
    assert next(e.message for e in events) == "[WARNING]\tline one\nline two\n"
    assert events[0].level == "WARN"
    assert events[1].message.startswith("[ERROR] ValueError: boom\nTraceback (most recent call last):")
    assert events[1].level == "ERROR"


def iter_read(fd: int):
    while chunk := os.read(fd, 65536):
        yield from chunk
    os.close(fd)


def test_a_torn_frame_is_kept_as_text() -> None:
    decoder = FrameDecoder()
    data = encode_frame("complete", 5_000_000) + encode_frame("torn record", 6_000_000)[:-4]
    assert [e.message for e in decoder.feed(data)] == ["complete"]
    assert [e.message for e in decoder.flush()] == ["torn re"]


def test_application_level_filtering_is_json_only() -> None:
    debug_line = Captured(0, '{"level": "debug", "msg": "x"}\n')
    assert application_passes(debug_line, "Text", None)
    assert not application_passes(debug_line, "JSON", "INFO")
    assert application_passes(Captured(0, "plain print\n"), "JSON", "INFO")  # no level: INFO
    assert not application_passes(Captured(0, "plain print\n"), "JSON", "WARN")
    assert application_passes(Captured(0, "x", "ERROR"), "JSON", "WARN")
