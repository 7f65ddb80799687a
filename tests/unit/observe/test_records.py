"""The run directory: whole lines, order, flushing, meta.json, the latest link, and its speed."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lambdalab.clock import Clocks, EpochClock
from lambdalab.observe.model import EnvironmentEvent
from lambdalab.observe.records import (
    FLUSH_INTERVAL_S,
    RunDirectory,
    RunMeta,
    latest_run,
    new_run_id,
    read_jsonl,
)
from tests.unit.observe.conftest import build_record

EPOCH = EpochClock()  # the flushing tests wait in real time


def test_run_ids_sort_by_time():
    early = new_run_id(datetime(2026, 11, 22, 6, 0, 0, tzinfo=UTC))
    late = new_run_id(datetime(2026, 11, 22, 6, 0, 1, tzinfo=UTC))
    assert early.startswith("20261122T060000Z-")
    assert early < late


def test_records_meta_and_latest_link(tmp_path: Path):
    meta = RunMeta(template="template.yaml", parameters={"Stage": "lab"}, time_scale=0.1)
    clock, clocks = Clocks.virtual(start_epoch=datetime(2026, 11, 22, 6, 26, 30, tzinfo=UTC).timestamp())
    with RunDirectory(tmp_path, epoch=clocks.epoch, meta=meta) as run:
        assert run.run_id.startswith("20261122T062630Z-")  # the epoch clock's time, not the machine's
        run.append_invocation(build_record(request_id="a"))
        run.append_environment(EnvironmentEvent("env-1", "fn", "$LATEST", "on-demand", "created", 1.0))
        started = json.loads((run.path / "meta.json").read_text())
        assert started["started_at"] == "2026-11-22T06:26:30+00:00"
        assert started["ended_at"] is None
        clock.advance(90)
    rows = list(read_jsonl(run.invocations_path))
    assert rows == [build_record(request_id="a").to_json()]
    assert next(read_jsonl(run.environments_path))["event"] == "created"
    done = json.loads((run.path / "meta.json").read_text())
    assert done["template"] == "template.yaml"
    assert done["parameters"] == {"Stage": "lab"}
    assert done["time_scale"] == 0.1
    assert done["ended_at"] == "2026-11-22T06:28:00+00:00"
    assert "python" in done["versions"]
    assert (tmp_path / "latest").resolve() == run.path.resolve()
    assert latest_run(tmp_path) == run.path.resolve()


def test_latest_moves_to_the_newest_run(tmp_path: Path):
    first = RunDirectory(tmp_path, epoch=EPOCH, run_id="20260101T000000Z-aaaaaa")
    second = RunDirectory(tmp_path, epoch=EPOCH, run_id="20260101T000001Z-bbbbbb")
    first.close()
    second.close()
    assert (tmp_path / "latest").resolve() == second.path.resolve()


def test_lines_reach_the_file_within_the_flush_interval_without_close(tmp_path: Path):
    run = RunDirectory(tmp_path, epoch=EPOCH)
    try:
        run.append_invocation(build_record(request_id="tail-me"))
        deadline = time.monotonic() + 4 * FLUSH_INTERVAL_S
        rows: list[dict] = []
        while time.monotonic() < deadline and not rows:  # bounded: waits for the background flush
            time.sleep(0.05)
            rows = list(read_jsonl(run.invocations_path))
        assert [r["request_id"] for r in rows] == ["tail-me"]
    finally:
        run.close()


def test_concurrent_writers_produce_whole_lines(tmp_path: Path):
    run = RunDirectory(tmp_path, epoch=EPOCH)

    def write(thread: int) -> None:
        for n in range(2000):
            run.append_invocation(build_record(request_id=f"{thread}-{n}", error_message="x" * (n % 300)))

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.close()
    ids = [row["request_id"] for row in read_jsonl(run.invocations_path)]
    assert len(ids) == 8000
    assert len(set(ids)) == 8000
    for t in range(4):  # each writer's lines stay in its order
        mine = [i for i in ids if i.startswith(f"{t}-")]
        assert mine == [f"{t}-{n}" for n in range(2000)]


def test_a_partial_last_line_is_skipped_by_readers(tmp_path: Path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n{"a": 2')
    assert list(read_jsonl(path)) == [{"a": 1}]


def test_append_after_close_is_an_error(tmp_path: Path):
    run = RunDirectory(tmp_path, epoch=EPOCH)
    run.close()
    run.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        run.append_invocation(build_record())


def test_the_hot_path_takes_at_least_50000_records_per_second(tmp_path: Path):
    records = [build_record(request_id=str(n)) for n in range(50_000)]
    run = RunDirectory(tmp_path, epoch=EPOCH)
    started = time.perf_counter()
    for rec in records:
        run.append_invocation(rec)
    elapsed = time.perf_counter() - started
    run.close()
    assert elapsed < 1.0, f"{50_000 / elapsed:.0f} records/s"
    assert sum(1 for _ in read_jsonl(run.invocations_path)) == 50_000
