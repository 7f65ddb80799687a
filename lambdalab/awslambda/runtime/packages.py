"""The packages a Lambda Python runtime provides by itself (Lambda's ``/var/runtime``), one folder per interpreter.

On AWS a Python function can import the runtime interface client and the AWS SDK (boto3, botocore and their
dependencies) without shipping them; anything else it must bring in its deployment package or a layer. Locally the
same folder is built once per interpreter and cached under ``<cache>/runtimes/``: for the lab's own Python version
the files are copied from the lab's virtualenv (offline), for another version they are installed with that
interpreter's pip (PyPI once, then cached). The versions are those of the lab's virtualenv, so the SDK a function
sees locally is the lab's, not necessarily the one a given AWS runtime release ships (a documented difference).

Nothing else of the lab's virtualenv (moto, aiohttp, ...) is ever on a function's import path.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import logging
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from lambdalab import constants
from lambdalab.awslambda.runtime.interpreters import Interpreter

LOG = logging.getLogger(__name__)

# What Lambda's Python runtimes provide: the runtime interface client (and what it needs) and the AWS SDK.
RUNTIME_DISTRIBUTIONS = (
    "awslambdaric",
    "simplejson",
    "snapshot-restore-py",
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "python-dateutil",
    "six",
    "urllib3",
)
_LAYOUT_VERSION = "1"  # bump when the folder's layout changes, so old caches are not reused
_INSTALL_TIMEOUT_S = 600.0


class RuntimePackagesError(RuntimeError):
    """The runtime's packages could not be prepared (no network for pip, a failed install): names what and why."""


def pins() -> dict[str, str]:
    """distribution → version, as installed in the lab's own environment."""
    found = {}
    for name in RUNTIME_DISTRIBUTIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            raise RuntimePackagesError(f"{name} is not installed with the lab; reinstall it (make venv)") from None
    return found


def runtime_key(interpreter: Interpreter) -> str:
    """A stable name for the folder: runtime version, machine and exact pins."""
    digest = hashlib.sha256(
        json.dumps(
            [_LAYOUT_VERSION, interpreter.minor, platform.machine(), sorted(pins().items())], separators=(",", ":")
        ).encode()
    ).hexdigest()[:12]
    return f"python{interpreter.minor}-{digest}"


def runtime_root(interpreter: Interpreter, cache: Path | None = None) -> Path:
    return (cache or constants.cache_dir()) / "runtimes" / runtime_key(interpreter)


def ensure_runtime_packages(interpreter: Interpreter, cache: Path | None = None) -> Path:
    """The folder of runtime-provided packages for `interpreter`, built on first use. Safe across processes."""
    root = runtime_root(interpreter, cache)
    site = root / "site"
    if (root / "complete").is_file():
        return site
    root.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(root.parent / f"{root.name}.lock"):
        if (root / "complete").is_file():  # another process built it while we waited
            return site
        LOG.warning("preparing the %s runtime's packages (awslambdaric, boto3) in %s, once", interpreter.runtime, root)
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
        try:
            if interpreter.version[:2] == sys.version_info[:2]:
                _copy_from_lab(staging / "site")
            else:
                _pip_install(interpreter, staging / "site")
            (staging / "complete").write_text(json.dumps(pins(), indent=1) + "\n")
            if root.exists():
                shutil.rmtree(root)
            staging.rename(root)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return site


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (created if need be), across processes: one builder at a time."""
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _copy_from_lab(target: Path) -> None:
    """Copy each distribution's installed files (its RECORD) from the lab's environment, byte for byte."""
    target.mkdir(parents=True)
    for name in RUNTIME_DISTRIBUTIONS:
        dist = importlib.metadata.distribution(name)
        files = dist.files
        if files is None:
            raise RuntimePackagesError(f"{name} has no file list (RECORD); cannot copy it for the runtime")
        for item in files:
            source = Path(str(dist.locate_file(item)))
            if (item.parts and item.parts[0] in ("..", "")) or not source.is_file():
                continue  # scripts installed outside site-packages (bin/), or files pip did not keep
            destination = target / Path(*item.parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


def _pip_install(interpreter: Interpreter, target: Path) -> None:
    requirements = [f"{name}=={version}" for name, version in sorted(pins().items())]
    command = [
        str(interpreter.executable),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",  # the list is complete: exactly these, at the lab's versions
        "--only-binary=:all:",
        "--target",
        str(target),
        *requirements,
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimePackagesError(f"cannot run pip of {interpreter.executable}: {exc}") from None
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise RuntimePackagesError(
            f"pip could not install the {interpreter.runtime} runtime's packages ({', '.join(requirements[:3])}, ...) "
            f"for {interpreter.executable}: {' / '.join(tail) or 'exit ' + str(result.returncode)}. It needs PyPI "
            "once; afterwards the folder is reused offline."
        )
