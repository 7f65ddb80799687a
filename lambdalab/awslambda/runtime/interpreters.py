"""Which Python interpreter runs a `python3.X` runtime: CPython 3.X when this machine has it, else the lab's own.

Search order for ``python3.13`` (the first that answers ``--version`` with 3.13 wins):

1. ``LAMBDALAB_PYTHON3_13`` (a path; the variable name is the runtime's with the dot as ``_``);
2. pyenv's installs, ``$PYENV_ROOT/versions/3.13.*/bin/python3.13`` (``~/.pyenv`` without ``PYENV_ROOT``), newest
   patch release first;
3. ``python3.13`` on ``PATH`` (a pyenv shim that has no such version fails the check and is skipped).

When none is found the runtime falls back to the interpreter running the lab, and the deploy says so in one line:
functions still run, on another minor version than AWS would use.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LOG = logging.getLogger(__name__)

_RUNTIME_RE = re.compile(r"^python(3)\.(\d+)$")
_PROBE = "import sys; print('%d.%d.%d' % sys.version_info[:3])"


class UnsupportedRuntime(ValueError):
    """The runtime is not a Python runtime this machine can run (`python3.X`)."""


@dataclass(frozen=True)
class Interpreter:
    """One interpreter for one runtime."""

    runtime: str  # "python3.13"
    executable: Path  # the binary, resolved
    version: tuple[int, int, int]  # what the binary reports
    fallback: bool  # True when it is not the version the runtime names

    @property
    def minor(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    def note(self) -> str | None:
        """The one line the deploy prints when the runtime cannot run on its own version here; None otherwise."""
        if not self.fallback:
            return None
        return (
            f"{self.runtime} is not installed on this machine; its functions run on Python {self.minor} "
            f"({self.executable}). Install Python {self.runtime[6:]} (e.g. with pyenv) to run them as on AWS."
        )


def runtime_version(runtime: str) -> tuple[int, int]:
    """`python3.13` → (3, 13); anything else raises UnsupportedRuntime."""
    match = _RUNTIME_RE.match(runtime)
    if match is None:
        raise UnsupportedRuntime(f"{runtime!r} is not a Python runtime (python3.X)")
    return int(match.group(1)), int(match.group(2))


def _version_of(executable: Path) -> tuple[int, int, int] | None:
    try:
        out = subprocess.run(
            [str(executable), "-I", "-S", "-c", _PROBE], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    parts = out.stdout.strip().split(".")
    try:
        major, minor, patch = (int(p) for p in parts)
    except ValueError:
        return None
    return major, minor, patch


def _candidates(major: int, minor: int) -> list[Path]:
    name = f"python{major}.{minor}"
    found: list[Path] = []
    explicit = os.environ.get(f"LAMBDALAB_PYTHON{major}_{minor}")
    if explicit:
        found.append(Path(explicit))
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if root.is_dir():

        def patch_of(path: Path) -> int:
            tail = path.name.split(".")
            return int(tail[2]) if len(tail) > 2 and tail[2].isdigit() else -1

        versions = [p for p in root.glob(f"{major}.{minor}.*") if re.fullmatch(rf"{major}\.{minor}\.\d+", p.name)]
        found.extend(p / "bin" / name for p in sorted(versions, key=patch_of, reverse=True))
    on_path = shutil.which(name)
    if on_path:
        found.append(Path(on_path))
    return found


@functools.cache
def find_interpreter(runtime: str) -> Interpreter:
    """The interpreter for `runtime` (cached per process). Raises UnsupportedRuntime for a non-Python runtime."""
    major, minor = runtime_version(runtime)
    for candidate in _candidates(major, minor):
        if not candidate.is_file():
            continue
        version = _version_of(candidate)
        if version is not None and version[:2] == (major, minor):
            return Interpreter(runtime, candidate.resolve(), version, fallback=False)
        LOG.debug("%s does not run Python %d.%d (it reports %s)", candidate, major, minor, version)
    host = Path(sys.executable)
    return Interpreter(runtime, host, tuple(sys.version_info[:3]), fallback=sys.version_info[:2] != (major, minor))  # type: ignore[arg-type]
