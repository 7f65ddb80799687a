"""A run directory: meta.json, invocations.jsonl and environments.jsonl, appended whole-line and flushed often."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from lambdalab.clock import Clock
from lambdalab.observe.model import EnvironmentEvent, InvocationRecord

LOG = logging.getLogger(__name__)

INVOCATIONS_FILE = "invocations.jsonl"
ENVIRONMENTS_FILE = "environments.jsonl"
META_FILE = "meta.json"
LATEST_LINK = "latest"

FLUSH_INTERVAL_S = 0.5  # the promise to readers tailing the files: nothing stays buffered longer than this
_FLUSH_RECORDS = 20_000  # and no more than this many records are held in memory between flushes
_FLUSHER_TICK_S = FLUSH_INTERVAL_S / 2

_INVOCATION_FIELDS = tuple(f.name for f in dataclasses.fields(InvocationRecord))
_ENVIRONMENT_FIELDS = tuple(f.name for f in dataclasses.fields(EnvironmentEvent))
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def _fields(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The record's fields as a dict: its ``__dict__`` when it has one (fast), else field by field."""
    values = getattr(obj, "__dict__", None)
    if values is not None and len(values) == len(names):
        return values
    return {name: getattr(obj, name) for name in names}


def new_run_id(now: datetime) -> str:
    """A sortable run id: UTC time to the second, then 6 random hex digits (``20261122T062630Z-1a2b3c``)."""
    when = now.astimezone(UTC)
    return f"{when:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class RunMeta:
    """What a run was: the template, its parameters and the local time scale. Written to meta.json."""

    template: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    time_scale: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)


def _versions() -> dict[str, str]:
    """Versions of what shaped the run's behaviour, for reading old runs correctly."""
    found = {"python": platform.python_version()}
    for dist in ("lambdalab", "moto", "boto3", "awslambdaric", "aws-xray-sdk"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


class _JsonlAppender:
    """One append-only JSON-lines file. ``add`` only queues the record (the hot path); ``flush`` encodes the queued
    records and writes them as whole lines, in order, with one ``os.write`` loop on an ``O_APPEND`` descriptor.

    Records are frozen dataclasses, so encoding them later, off the caller's path, sees the same values.
    """

    def __init__(self, path: Path, names: tuple[str, ...]) -> None:
        self.path = path
        self._names = names
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._pending: list[Any] = []
        self._lines = 0

    def add(self, record: Any) -> bool:
        """Queue one record (call with the run's lock held); True when enough is queued that a flush is due."""
        self._pending.append(record)
        self._lines += 1
        return len(self._pending) >= _FLUSH_RECORDS

    @property
    def lines(self) -> int:
        return self._lines

    def take(self) -> list[Any]:
        """The queued records, leaving the queue empty (call with the run's lock held)."""
        taken, self._pending = self._pending, []
        return taken

    def write(self, records: list[Any]) -> None:
        """Encode and append ``records`` (call with the run's write lock held, so batches stay in order)."""
        if not records:
            return
        names = self._names
        data = ("\n".join([_ENCODE(_fields(r, names)) for r in records]) + "\n").encode()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def close(self) -> None:
        os.close(self._fd)


class RunDirectory:
    """``<root>/<run_id>/`` with meta.json, invocations.jsonl and environments.jsonl, and ``<root>/latest``.

    Thread-safe and cheap on the hot path: ``append_*`` only queues the (frozen) record under a lock. A background
    thread encodes and writes the queue every 0.25 s (so nothing waits longer than 0.5 s) and as soon as 20,000
    records are queued: whole lines, in order, no fsync. ``close()`` writes the rest and stamps the end time into
    meta.json.
    """

    def __init__(self, root: Path, run_id: str | None = None, *, epoch: Clock, meta: RunMeta | None = None) -> None:
        self.root = Path(root)
        self._epoch = epoch  # the run id and meta.json's started_at / ended_at
        self._started_at = self._now()
        self.run_id = run_id or new_run_id(self._started_at)
        self.path = self.root / self.run_id
        self.path.mkdir(parents=True, exist_ok=False)
        self._meta = meta or RunMeta()
        self._lock = threading.Lock()  # guards the queues and _closed
        self._write_lock = threading.Lock()  # one writer at a time, so batches land in order
        self._invocations = _JsonlAppender(self.path / INVOCATIONS_FILE, _INVOCATION_FIELDS)
        self._environments = _JsonlAppender(self.path / ENVIRONMENTS_FILE, _ENVIRONMENT_FIELDS)
        self._closed = False
        self._files_closed = False
        self._write_meta(ended_at=None)
        self._point_latest()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name=f"run-flusher-{self.run_id}", daemon=True)
        self._flusher.start()
        LOG.info("run directory %s", self.path)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._epoch.now(), UTC)

    # --- the hot path ------------------------------------------------------------------------------------------
    def append_invocation(self, rec: InvocationRecord) -> None:
        self._append(self._invocations, rec)

    def append_environment(self, event: EnvironmentEvent) -> None:
        self._append(self._environments, event)

    def _append(self, appender: _JsonlAppender, record: Any) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"run {self.run_id} is closed; cannot append to {appender.path.name}")
            if appender.add(record):
                self._wake.set()

    # --- flushing and closing ----------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write every queued record now (the background thread does this on its own every 0.25 s)."""
        with self._write_lock:
            if self._files_closed:
                return
            with self._lock:
                invocations = self._invocations.take()
                environments = self._environments.take()
            self._invocations.write(invocations)
            self._environments.write(environments)

    def _flush_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(_FLUSHER_TICK_S)
            self._wake.clear()
            try:
                self.flush()
            except OSError:
                LOG.exception("could not write run files under %s", self.path)

    def close(self) -> None:
        """Write everything queued, close the files, stamp the end time into meta.json. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._wake.set()
        if threading.current_thread() is not self._flusher:
            self._flusher.join(timeout=10 * FLUSH_INTERVAL_S)
            if self._flusher.is_alive():
                LOG.warning("run flusher for %s did not stop within %.1f s", self.run_id, 10 * FLUSH_INTERVAL_S)
        self.flush()
        with self._write_lock:
            self._files_closed = True
            self._invocations.close()
            self._environments.close()
        self._write_meta(ended_at=self._now())
        LOG.info(
            "run %s closed: %d invocations, %d environment events",
            self.run_id,
            self._invocations.lines,
            self._environments.lines,
        )

    def __enter__(self) -> RunDirectory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def invocations_path(self) -> Path:
        return self.path / INVOCATIONS_FILE

    @property
    def environments_path(self) -> Path:
        return self.path / ENVIRONMENTS_FILE

    # --- meta.json and the latest link -------------------------------------------------------------------------
    def _write_meta(self, ended_at: datetime | None) -> None:
        doc = {
            "run_id": self.run_id,
            "template": self._meta.template,
            "parameters": dict(self._meta.parameters),
            "time_scale": self._meta.time_scale,
            "versions": _versions(),
            "started_at": self._started_at.isoformat(),
            "ended_at": ended_at.isoformat() if ended_at else None,
            **({"extra": dict(self._meta.extra)} if self._meta.extra else {}),
        }
        tmp = self.path / f".{META_FILE}.tmp"
        tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path / META_FILE)

    def _point_latest(self) -> None:
        """Repoint ``<root>/latest`` at this run atomically (a relative link, so the tree can be moved)."""
        link = self.root / LATEST_LINK
        tmp = self.root / f".{LATEST_LINK}.{self.run_id}.tmp"
        try:
            if tmp.is_symlink():
                tmp.unlink()
            tmp.symlink_to(self.run_id, target_is_directory=True)
            os.replace(tmp, link)
        except OSError as exc:  # e.g. a filesystem without symlinks: the run still works, only the shortcut is lost
            LOG.warning("could not point %s at %s: %s", link, self.run_id, exc)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete line of a JSON-lines file; a partial last line (a writer mid-flush) is skipped."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                LOG.debug("skipping a partial last line in %s", path)
                return
            if line.strip():
                yield json.loads(line)


def latest_run(root: Path) -> Path | None:
    """The newest run under ``root``: the ``latest`` link if present, else the greatest (sortable) run id."""
    link = Path(root) / LATEST_LINK
    if link.is_dir():
        return link.resolve()
    runs = sorted(p for p in Path(root).glob("*") if p.is_dir() and (p / META_FILE).exists())
    return runs[-1] if runs else None
